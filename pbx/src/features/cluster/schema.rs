//! The shared location's tables (component "location" of
//! besip_core::shared_db): boxes and their phones' bindings.

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
];

pub async fn migrate(client: &mut Client) -> Result<usize, tokio_postgres::Error> {
    besip_core::shared_db::migrate(client, "location", MIGRATIONS).await
}
