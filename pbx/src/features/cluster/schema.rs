//! The PBX's shared tables (component "location" of besip_core::shared_db):
//! boxes, their phones' bindings, their CDRs.

use tokio_postgres::Client;

const MIGRATIONS: &[&str] = &[
    // 1: boxes and their phones' bindings.
    "CREATE TABLE besip_box (
       name TEXT PRIMARY KEY,
       sip_address TEXT NOT NULL,
       seen_at BIGINT NOT NULL);
     CREATE TABLE besip_location (
       box TEXT NOT NULL,
       aor TEXT NOT NULL,
       contact TEXT NOT NULL,
       expires_at BIGINT NOT NULL,
       user_agent TEXT NOT NULL,
       PRIMARY KEY (box, aor, contact));
     CREATE INDEX besip_location_expires ON besip_location (expires_at);",
    // 2: every box's CDRs, under the box's own id of each.
    "CREATE TABLE besip_cdr (
       box TEXT NOT NULL,
       local_id BIGINT NOT NULL,
       call_id TEXT NOT NULL,
       caller TEXT NOT NULL,
       callee TEXT NOT NULL,
       start_time TEXT NOT NULL,
       answer_time TEXT,
       end_time TEXT NOT NULL,
       duration_ms BIGINT NOT NULL,
       disposition TEXT NOT NULL,
       code INTEGER NOT NULL,
       trunk TEXT,
       price BIGINT NOT NULL,
       forwarded_by TEXT,
       forwarded_to TEXT,
       forward_reason TEXT,
       did TEXT,
       answered_by TEXT,
       PRIMARY KEY (box, local_id));
     CREATE INDEX besip_cdr_start ON besip_cdr (start_time);",
];

pub async fn migrate(client: &mut Client) -> Result<usize, tokio_postgres::Error> {
    besip_core::shared_db::migrate(client, "location", MIGRATIONS).await
}
