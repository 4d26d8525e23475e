//! `ssh admin@box`: besip-netconfd offers the unified CLI as the login shell
//! (a pty + shell request, as OpenSSH's client makes), with the user's rights.

use besip_tests::netconf::{python, NetconfServer, ADMIN_PASSWORD};

const SHELL: &str = r#"
def shell(user, pw):
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect('127.0.0.1', port=PORT, username=user, password=pw, allow_agent=False, look_for_keys=False, timeout=30)
    chan = client.invoke_shell(term='xterm', width=120)
    chan.settimeout(15)
    return client, chan

def until(chan, text):
    seen = b''
    deadline = time.time() + 15
    while text.encode() not in seen:
        if time.time() > deadline:
            raise SystemExit('timed out waiting for %r; got %r' % (text, seen))
        seen += chan.recv(65536)
    return seen.decode(errors='replace')

def run(chan, line, prompt):
    chan.send(line + '\r')
    return until(chan, prompt)
"#;

#[test]
fn the_cli_is_the_login_shell_with_the_users_rights() {
    let server = NetconfServer::start();
    let body = format!(
        "{SHELL}
client, chan = shell('admin', PW)
until(chan, 'admin@besip> ')
out = run(chan, 'set system hostname viassh', 'admin@besip> ')
out = run(chan, 'commit comment from the login shell', 'admin@besip> ')
print('COMMIT:', out)
out = run(chan, 'show configuration running system hostname', 'admin@besip> ')
print('SHOW:', out)
out = run(chan, 'set system hostnme x', 'admin@besip> ')
print('TYPO:', out)
out = run(chan, 'set system user mon group monitor', 'admin@besip> ')
out = run(chan, 'set system user mon password-hash \"$6$saltsalt$As4wrv0kZlfch1du9WeH7qhskyLriQWySXrZzynnvi46nFnNxjdpl6ksRegrrKexvhIa/Iny8S8uF3fVWTMuC1\"', 'admin@besip> ')
out = run(chan, 'commit', 'admin@besip> ')
chan.send('exit\\r')
client.close()
m = connect()
print('RUNNING:', m.get_config('running', filter=('subtree', '<system xmlns=\"urn:besip:system\"><hostname/></system>')).data_xml)
client, chan = shell('mon', 's3cret')
until(chan, 'mon@besip> ')
out = run(chan, 'set system hostname bymonitor', 'mon@besip> ')
out = run(chan, 'commit', 'mon@besip> ')
print('MONITOR:', out)
client.close()
"
    );
    let (ok, out) = python(server.port, ADMIN_PASSWORD, &body);
    assert!(ok, "{out}\n{}", server.log());
    assert!(
        out.contains("RUNNING:") && out.contains("<hostname>viassh</hostname>"),
        "commit through the login shell: {out}"
    );
    assert!(out.contains("SHOW:") && out.contains("viassh"), "{out}");
    assert!(
        out.contains("did you mean: hostname"),
        "typo suggestion: {out}"
    );
    let monitor = out.split("MONITOR:").nth(1).unwrap_or_default();
    assert!(
        monitor.contains("access-denied") || monitor.to_lowercase().contains("may not"),
        "monitor refused: {out}"
    );
}
