//! besip-netconfd against hostile SSH/NETCONF clients: idle connections that
//! never log in (per-source limit, login grace time), password guessing
//! (delay per source and user), channel floods and XML bombs. Clients are
//! plain sockets and paramiko bound to distinct 127.0.0.x sources.

use besip_tests::netconf::{python, NetconfServer, ADMIN_PASSWORD};

/// Commit besip-system netconf settings, then restart (netconfd reads them at start).
fn restart_with(server: NetconfServer, netconf_leaves: &str) -> NetconfServer {
    let (ok, out) = python(
        server.port,
        ADMIN_PASSWORD,
        &format!("m = connect(); m.edit_config(target='candidate', config='<config><system xmlns=\"urn:besip:system\"><netconf>{netconf_leaves}</netconf></system></config>'); m.commit()"),
    );
    assert!(ok, "{out}");
    NetconfServer::start_in(server.stop())
}

/// Python helpers: a socket from a given 127.0.0.x source, and what an idle
/// socket sees within `wait` seconds ('banner' = the server's SSH version
/// line, then still open; 'closed'; 'open' = nothing at all).
const SOCKETS: &str = r#"
import socket
def tcp(source):
    s = socket.socket(); s.bind((source, 0)); s.connect(('127.0.0.1', PORT)); return s
def state(s, wait):
    s.settimeout(wait); data = b''
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk: return 'closed'
            data += chunk
            if data.endswith(b'\n'): return 'banner'
    except socket.timeout: return 'open'
    except OSError: return 'closed'
def closed_within(s, limit):
    end = time.time() + limit
    while time.time() < end:
        if state(s, 1) == 'closed': return True
    return False
def transport(source):
    t = paramiko.Transport(tcp(source)); t.start_client(timeout=20); return t
"#;

#[test]
fn idle_preauth_connections_do_not_block_the_admin_and_are_closed_at_the_grace_time() {
    let server = restart_with(
        NetconfServer::start(),
        "<login-grace-time>20</login-grace-time>",
    );
    let script = [SOCKETS, r#"
held = [tcp('127.0.0.%d' % (2 + i % 8)) for i in range(64)]
extra = [tcp('127.0.0.10') for i in range(20)]
print('HELD', [state(s, 10) for s in held].count('banner'))
extra_states = [state(s, 10) for s in extra]
print('EXTRA-BANNER', extra_states.count('banner'), 'EXTRA-CLOSED', extra_states.count('closed'))
m = connect(); print('ADMIN', m.get_config('running').data_xml.count('<hostname>')); m.close_session()
print('STILL-OPEN', [state(s, 0.1) for s in held].count('open'))
kexed = transport('127.0.0.11')
print('ALL-CLOSED', all(closed_within(s, 90) for s in held))
end = time.time() + 30
while kexed.is_active() and time.time() < end: time.sleep(0.5)
print('KEXED-ACTIVE', kexed.is_active())
"#]
    .concat();
    let (ok, out) = python(server.port, ADMIN_PASSWORD, &script);
    assert!(ok, "{out}\n{}", server.log());
    // 8 sources x 8 connections: all under the per-source limit (10), held.
    assert!(out.contains("HELD 64"), "{out}");
    // One source with 20: its first 10 are held, the rest closed at once.
    assert!(out.contains("EXTRA-BANNER 10 EXTRA-CLOSED 10"), "{out}");
    assert!(out.contains("ADMIN 1"), "{out}\n{}", server.log());
    // Not logged in, and closed only at the grace time.
    assert!(out.contains("STILL-OPEN 64"), "{out}");
    assert!(out.contains("ALL-CLOSED True"), "{out}");
    // Also a connection that finished the key exchange but never logged in.
    assert!(out.contains("KEXED-ACTIVE False"), "{out}");
    assert!(server.log().contains("no SSH login within the grace time"));
}

#[test]
fn password_failures_delay_that_source_and_user_only() {
    let server = NetconfServer::start();
    let script = [
        SOCKETS,
        r#"
def login(t, pw):
    try:
        t.auth_password('admin', pw); return t.is_authenticated()
    except paramiko.AuthenticationException:
        return False
# One login attempt per connection (paramiko asks for the ssh-userauth
# service again on a second attempt, which russh does not answer).
def attempt(source, pw):
    t = transport(source); ok = login(t, pw); t.close(); return ok
ready = transport('127.0.0.2')
print('WRONG', [attempt('127.0.0.2', 'guess%d' % i) for i in range(3)])
# The right password at once from the guessing source: still delayed.
print('RIGHT-FROM-GUESSER', login(ready, PW)); ready.close()
# The admin from another address is not delayed at all.
a = transport('127.0.0.3'); print('RIGHT-ELSEWHERE', login(a, PW)); a.close()
# A delay, not a ban: the guessing source gets in once it has passed.
ok = False; end = time.time() + 60
while not ok and time.time() < end:
    time.sleep(1); ok = attempt('127.0.0.2', PW)
print('RIGHT-FROM-GUESSER-LATER', ok)
"#,
    ]
    .concat();
    let (ok, out) = python(server.port, ADMIN_PASSWORD, &script);
    assert!(ok, "{out}\n{}", server.log());
    assert!(out.contains("WRONG [False, False, False]"), "{out}");
    assert!(out.contains("RIGHT-FROM-GUESSER False"), "{out}");
    assert!(out.contains("RIGHT-ELSEWHERE True"), "{out}");
    assert!(out.contains("RIGHT-FROM-GUESSER-LATER True"), "{out}");
    let log = server.log();
    let delayed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("login refused without checking the password"))
        .collect();
    assert!(!delayed.is_empty(), "{log}");
    assert!(delayed.iter().all(|l| l.contains("127.0.0.2")), "{log}");
}

#[test]
fn channels_per_connection_are_bounded() {
    let server = NetconfServer::start();
    let script = [
        SOCKETS,
        r#"
t = transport('127.0.0.2'); t.auth_password('admin', PW)
opened, refused = [], 0
for i in range(20):
    try:
        opened.append(t.open_session(timeout=10))
    except paramiko.ChannelException:
        refused += 1
print('OPENED', len(opened), 'REFUSED', refused)
opened[0].close(); time.sleep(0.5)
again = None
for i in range(20):
    try:
        again = t.open_session(timeout=10); break
    except paramiko.ChannelException:
        time.sleep(0.25)
print('REOPENED', again is not None)
m = connect(); print('OTHER', m.get_config('running').data_xml.count('<hostname>'))
"#,
    ]
    .concat();
    let (ok, out) = python(server.port, ADMIN_PASSWORD, &script);
    assert!(ok, "{out}\n{}", server.log());
    assert!(out.contains("OPENED 4 REFUSED 16"), "{out}");
    assert!(out.contains("REOPENED True"), "{out}");
    assert!(out.contains("OTHER 1"), "{out}");
}

#[test]
fn deep_and_huge_rpcs_get_too_big_and_the_server_goes_on() {
    let server = NetconfServer::start();
    let script = [SOCKETS, r#"
t = transport('127.0.0.2'); t.auth_password('admin', PW)
c = t.open_session(); c.invoke_subsystem('netconf')
def send(text): c.sendall((text + ']]>]]>').encode())
buf = b''
def receive():
    global buf
    while b']]>]]>' not in buf:
        chunk = c.recv(65536)
        if not chunk: raise EOFError('closed')
        buf += chunk
    msg, _, buf = buf.partition(b']]>]]>'); return msg.decode()
receive()
send('<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities><capability>urn:ietf:params:netconf:base:1.0</capability></capabilities></hello>')
rpc = '<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="%s"><get-config><source><running/></source><filter type="subtree">%s</filter></get-config></rpc>'
send(rpc % ('1', '<a>' * 100000 + '</a>' * 100000))
deep = receive(); print('DEEP', 'too-big' in deep, 'nested deeper' in deep)
send(rpc % ('2', '<a/>' * 300000))
flat = receive(); print('FLAT', 'too-big' in flat, 'more than 200000 elements' in flat)
send(rpc % ('3', '<system xmlns="urn:besip:system"><hostname/></system>'))
print('SAME-SESSION', '<hostname>' in receive())
m = connect(); print('OTHER', m.get_config('running').data_xml.count('<hostname>'))
"#]
    .concat();
    let (ok, out) = python(server.port, ADMIN_PASSWORD, &script);
    assert!(ok, "{out}\n{}", server.log());
    assert!(out.contains("DEEP True True"), "{out}");
    assert!(out.contains("FLAT True True"), "{out}");
    assert!(out.contains("SAME-SESSION True"), "{out}");
    assert!(out.contains("OTHER 1"), "{out}");
}
