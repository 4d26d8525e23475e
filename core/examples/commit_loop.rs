//! Commits forever into the datastore under ROOT (argv[1]); used by the crash
//! test, which kills this process at random moments.

use besip_core::datastore::{CommitOptions, Datastore, NoReload, TestOption};
use besip_core::edit::{DefaultOperation, ErrorOption};
use besip_core::paths::Layout;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let root = std::env::args().nth(1).expect("usage: commit_loop ROOT");
    let mut store = Datastore::open(Layout::new(root)).expect("open datastore");
    let mut n: u64 = store.history().map(|h| h.len() as u64).unwrap_or(0);
    loop {
        n += 1;
        let xml = format!(
            "<config><system xmlns=\"urn:besip:system\"><hostname>box{n}</hostname>\
             <user><name>u{n}</name><group>operator</group><full-name>User {n} with a long name to make the file bigger</full-name></user>\
             </system></config>"
        );
        let elements = besip_core::xml::parse(&xml).expect("xml");
        store
            .edit_candidate(
                &elements[0].children,
                DefaultOperation::Merge,
                ErrorOption::StopOnError,
                TestOption::Set,
            )
            .expect("edit");
        store
            .commit(
                CommitOptions {
                    user: "crash".into(),
                    comment: format!("c{n}"),
                    ..Default::default()
                },
                &NoReload,
            )
            .await
            .expect("commit");
    }
}
