#![allow(dead_code)]
use besip_core::datastore::{Datastore, TestOption};
use besip_core::edit::{DefaultOperation, ErrorOption};
use besip_core::error::ConfigErrors;
use besip_core::paths::Layout;

pub const SYS: &str = "urn:besip:system";
pub const NC: &str = "urn:ietf:params:xml:ns:netconf:base:1.0";

pub fn open() -> (tempfile::TempDir, Datastore) {
    let dir = tempfile::tempdir().unwrap();
    let store = Datastore::open(Layout::new(dir.path())).unwrap();
    (dir, store)
}

pub fn edit_with(
    store: &mut Datastore,
    xml: &str,
    default_op: DefaultOperation,
    error_option: ErrorOption,
) -> Result<(), ConfigErrors> {
    let doc = format!("<config xmlns:nc=\"{NC}\">{xml}</config>");
    let elements = besip_core::xml::parse(&doc).unwrap();
    store
        .edit_candidate(
            &elements[0].children,
            default_op,
            error_option,
            TestOption::TestThenSet,
        )
        .map(|_| ())
}

pub fn edit(store: &mut Datastore, xml: &str) -> Result<(), ConfigErrors> {
    edit_with(
        store,
        xml,
        DefaultOperation::Merge,
        ErrorOption::StopOnError,
    )
}

pub fn user(name: &str, group: &str) -> String {
    format!(
        "<system xmlns=\"{SYS}\"><user><name>{name}</name><group>{group}</group></user></system>"
    )
}
