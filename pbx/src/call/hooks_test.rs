//! The engine runs with any feature set: here one that answers every
//! request itself, with no module of features/ involved.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::location::Location;
use super::{Engine, Hooks};
use crate::config::{Config, Transport};
use crate::sip::{response_to, Message};
use crate::transport::Transports;

/// A feature set of one: every new request is answered 200 here.
#[derive(Default)]
struct AnswerAll {
    requests: AtomicU64,
}

impl Hooks for AnswerAll {
    type CallData = ();
    type Retry = ();

    fn on_request(
        engine: &Arc<Engine<Self>>,
        key: &str,
        msg: Message,
        _source: SocketAddr,
        _transport: Transport,
        _local: SocketAddr,
    ) {
        engine.features().requests.fetch_add(1, Ordering::Relaxed);
        engine.reply(key, response_to(&msg, 200, "OK", Some("t")));
    }

    fn on_ack(_: &Arc<Engine<Self>>, _: Message, _: SocketAddr, _: Transport) {}
}

#[test]
fn a_feature_set_is_one_hooks_implementation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("besip_pbx");
    std::fs::write(
        &path,
        "package besip_pbx\n\nconfig pbx 'main'\n\toption mode 'proxy'\n",
    )
    .unwrap();
    let config = Config::load(&path).unwrap();
    let location = Arc::new(Location::open(&dir.path().join("pbx.db")).unwrap());
    let engine: Arc<Engine<AnswerAll>> = Arc::new(Engine::new(
        config,
        location,
        Transports::new(Some(1)),
        Vec::new(),
    ));
    let options = b"OPTIONS sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKhooks1\r\nFrom: <sip:a@127.0.0.1>;tag=f\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: hooks-1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    let source: SocketAddr = "127.0.0.1:5999".parse().unwrap();
    let local: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    engine.on_message(options, source, Transport::Udp, local);
    // A retransmission is absorbed by the transaction layer: no second hook call.
    engine.on_message(options, source, Transport::Udp, local);
    assert_eq!(engine.features().requests.load(Ordering::Relaxed), 1);
    assert_eq!(engine.counters().requests.load(Ordering::Relaxed), 2);
    assert_eq!(engine.counters().replies[1].load(Ordering::Relaxed), 1);
}
