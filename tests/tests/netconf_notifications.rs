//! A daemon's notification reaches a NETCONF subscriber end to end: besip-secd
//! (in a network namespace of the test's own, ipset backend) bans a flooding
//! source and lifts the ban; an ncclient session subscribed on besip-netconfd
//! receives both `ban-added` and `ban-lifted` as RFC 5277 notifications.

use besip_tests::netconf::{NetconfServer, PythonLines, ADMIN_PASSWORD};
use besip_tests::security::{options_burst, tools_present, write_config, Netns, SecDaemon};
use std::time::Duration;

const SUBSCRIBER: &str = r#"
import sys
from ncclient import manager
m = manager.connect(host='127.0.0.1', port=int(sys.argv[1]), username='admin', password=sys.argv[2],
                    hostkey_verify=False, allow_agent=False, look_for_keys=False, timeout=30)
m.create_subscription()
print('SUBSCRIBED', flush=True)
seen = set()
for _ in range(50):
    n = m.take_notification(timeout=1)
    if n is None:
        continue
    print('NOTIFICATION', n.notification_xml.replace('\n', ' '), flush=True)
    for name in ('ban-added', 'ban-lifted'):
        if '<' + name in n.notification_xml:
            seen.add(name)
    if len(seen) == 2:
        break
print('DONE', flush=True)
"#;

#[test]
fn a_ban_by_the_security_daemon_reaches_a_netconf_subscriber() {
    if !tools_present(&["ip", "ipset", "iptables"]) {
        return;
    }
    let server = NetconfServer::start();
    // netconfd rendered its defaults at start; the daemon gets a test policy
    // with a rule that bans quickly and lifts the ban after 2 s.
    let set = format!("bnot{}", std::process::id());
    let root = besip_tests::harness::TempRoot::existing(server.root_path());
    write_config(&root, "iptables-ipset", &set, "");
    let ns = Netns::new("notif");
    let daemon = SecDaemon::start(&ns, &root);
    // netconfd retries the daemon's socket every 2 s.
    std::thread::sleep(Duration::from_millis(2500));

    let subscriber = PythonLines::spawn(SUBSCRIBER, &[&server.port.to_string(), ADMIN_PASSWORD]);
    subscriber.expect_line("SUBSCRIBED", Duration::from_secs(30));

    // 10 OPTIONS from one source in well under 5 s cross the 'short' rule (5 in 5 s).
    options_burst(&ns, "127.0.0.9", 10);
    let received = subscriber.lines_until("DONE", Duration::from_secs(60));
    drop(subscriber);
    let log = daemon.log();
    daemon.stop();
    let all = received.join("\n");
    let added = received
        .iter()
        .find(|l| l.contains("<ban-added") && l.contains("urn:besip:security"))
        .unwrap_or_else(|| panic!("no ban-added notification: {all}\nsecd log:\n{log}"));
    assert!(added.contains("127.0.0.9"), "{added}");
    assert!(added.contains("<eventTime>"), "{added}");
    let lifted = received
        .iter()
        .find(|l| l.contains("<ban-lifted") && l.contains("urn:besip:security"))
        .unwrap_or_else(|| panic!("no ban-lifted notification: {all}"));
    assert!(lifted.contains("127.0.0.9"), "{lifted}");
}
