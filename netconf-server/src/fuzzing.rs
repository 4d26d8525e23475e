//! Entry points for the cargo-fuzz targets (`netconf-server/fuzz`): what
//! reads a client's bytes before any operation runs — RFC 6242 framing, the
//! `<rpc>` XML, the arguments every operation reads — and the edit of a
//! candidate datastore from `<config>` content. Must never panic.

use crate::framing::{FrameReader, Framing};
use crate::rpc;
use besip_core::datastore::{Datastore, Source, TestOption, WithDefaults};
use besip_core::edit::{DefaultOperation, ErrorOption};
use besip_core::paths::Layout;
use std::future::Future;
use std::sync::{Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

/// The largest message the fuzzed reader accepts (small, so TooBig is reached).
const LIMIT: usize = 4096;

/// Reads `data` as a session's byte stream in both framings, message after
/// message, until it closes or fails.
pub fn framing(data: &[u8]) {
    for framing in [Framing::EndOfMessage, Framing::Chunked] {
        let mut reader = FrameReader::new(data, LIMIT);
        reader.framing = framing;
        for _ in 0..data.len() + 1 {
            match poll_once(reader.next_message()) {
                Some(Ok(message)) => {
                    // What we frame, we read back whole.
                    let framed = crate::framing::encode(&message, framing);
                    let mut again = FrameReader::new(&framed[..], framed.len());
                    again.framing = framing;
                    match poll_once(again.next_message()) {
                        Some(Ok(back)) => assert_eq!(back, message),
                        other => panic!("an encoded message does not read back: {other:?}"),
                    }
                }
                Some(Err(_)) => break,
                None => panic!("reading from memory must not wait"),
            }
        }
    }
}

/// Parses `data` as an `<rpc>` and reads every argument the operations
/// read; `<config>` content is applied to a scratch candidate (then discarded).
pub fn rpc_xml(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(roots) = besip_core::xml::parse(&text) else {
        return;
    };
    for rpc_element in &roots {
        for op in &rpc_element.children {
            for which in ["target", "source"] {
                let _ = rpc::store_arg(op, which);
            }
            let _ = rpc::with_defaults(op);
            if let Ok(filter) = rpc::filter(rpc_element, op) {
                let _ = besip_core::filter::to_xpaths(&filter);
                if let Some(store) = scratch_store() {
                    if let Ok(store) = store.lock() {
                        let _ = store.get_config(Source::Running, &filter, WithDefaults::Explicit);
                    }
                }
            }
            for name in ["url", "default-operation", "error-option", "test-option"] {
                if let Some(value) = rpc::text_of(op, name) {
                    let _ = rpc::url_path(value);
                }
            }
            if let Some(config) = rpc::base_child(op, "config") {
                edit_scratch(&config.children);
            }
        }
    }
}

fn edit_scratch(config: &[besip_core::xml::Element]) {
    let Some(store) = scratch_store() else {
        return;
    };
    let Ok(mut store) = store.lock() else {
        return;
    };
    let _ = store.edit_candidate(
        config,
        DefaultOperation::Merge,
        ErrorOption::RollbackOnError,
        TestOption::TestThenSet,
    );
    let _ = store.validate(Source::Candidate);
    let _ = store.discard_changes();
}

/// One datastore per fuzzing process, in a directory of its own.
fn scratch_store() -> Option<&'static Mutex<Datastore>> {
    static STORE: OnceLock<Option<Mutex<Datastore>>> = OnceLock::new();
    STORE
        .get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("besip-fuzz-{}", std::process::id()));
            Datastore::open(Layout::new(dir)).ok().map(Mutex::new)
        })
        .as_ref()
}

/// Polls a future once: reading from a byte slice never waits.
fn poll_once<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}
