//! `besip up`: starts besip-netconfd and the daemons that exist on loopback,
//! serves daemon state through NETCONF <get>, and stops everything on Ctrl-C.

use besip_tests::harness::{bin_path, TempRoot};
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn up_starts_the_box_and_ctrl_c_stops_it() {
    let root = TempRoot::new();
    let (nc_port, sip_port, web_port) = (free_port(), free_udp_port(), free_port());
    let web_http_port = free_port();
    let stun_port = free_udp_port();
    let sip_tls_port = free_port();
    let mut child = Command::new(bin_path("besip"))
        .args(["up", "--root"])
        .arg(root.path())
        .args(["--netconf-port", &nc_port.to_string()])
        .args(["--sip-port", &sip_port.to_string()])
        .args(["--web-port", &web_port.to_string()])
        .args(["--web-http-port", &web_http_port.to_string()])
        .args(["--stun-port", &stun_port.to_string()])
        .args(["--sip-tls-port", &sip_tls_port.to_string()])
        .args(["--admin-password", "up-test-pw"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start besip up");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut banner = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !banner.contains("Press Ctrl-C") {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                banner.push_str(&line);
                banner.push('\n');
            }
            Err(_) => panic!("besip up did not come up: {banner}"),
        }
    }
    assert!(banner.contains("up-test-pw"), "{banner}");
    assert!(banner.contains(&format!("--ncport={nc_port}")), "{banner}");
    assert!(
        banner.contains(&format!("https://127.0.0.1:{web_port}/"))
            && banner.contains(&format!("http://127.0.0.1:{web_http_port}/ redirects")),
        "{banner}"
    );
    assert!(
        banner.contains("ncclient") && banner.contains("ssh -p"),
        "{banner}"
    );
    let pbx_exists = bin_path_exists("besip-pbxd");
    if pbx_exists {
        assert!(banner.contains("besip-pbxd"), "{banner}");
        assert!(
            banner.contains(&format!("STUN:         udp 127.0.0.1:{stun_port}")),
            "{banner}"
        );
        assert!(
            banner.contains(&format!("SIP over TLS: tls 127.0.0.1:{sip_tls_port}")),
            "{banner}"
        );
    }

    // The box answers NETCONF with the loopback configuration, and daemon state.
    let script = format!(
        "from ncclient import manager\n\
         m = manager.connect(host='127.0.0.1', port={nc_port}, username='admin', password='up-test-pw', hostkey_verify=False, allow_agent=False, look_for_keys=False, timeout=30)\n\
         print(m.get(filter=('subtree', '<pbx xmlns=\"urn:besip:pbx\"/>')).data_xml)\n"
    );
    let mut state = String::new();
    // The PBX may still be opening its socket; a few tries.
    for _ in 0..20 {
        let out = Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(&script)
            .output()
            .expect("python3");
        state = String::from_utf8_lossy(&out.stdout).into_owned();
        if !pbx_exists || state.contains("<counters>") {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        state.contains(&format!("<port>{sip_port}</port>")),
        "{state}"
    );
    if pbx_exists {
        // `counters` is config-false state that only besip-pbxd knows (IPC `state`).
        assert!(state.contains("<counters>"), "{state}");
        // The STUN server answers on the printed port with our source.
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut request = vec![0, 1, 0, 0, 0x21, 0x12, 0xA4, 0x42];
        request.extend_from_slice(b"up-test-txid");
        client.send_to(&request, ("127.0.0.1", stun_port)).unwrap();
        let mut buf = [0u8; 512];
        let (n, _) = client.recv_from(&mut buf).expect("STUN answer");
        assert_eq!(&buf[..2], &[0x01, 0x01], "a Binding success response");
        // XOR-MAPPED-ADDRESS, IPv4: the port XORed with the cookie's top
        // half, 127.0.0.1 with the cookie.
        let port = client.local_addr().unwrap().port() ^ 0x2112;
        let mut expected = vec![0x00, 0x20, 0, 8, 0, 1];
        expected.extend_from_slice(&port.to_be_bytes());
        expected.extend_from_slice(&[127 ^ 0x21, 0x12, 0xA4, 1 ^ 0x42]);
        assert_eq!(&buf[20..n], &expected[..], "the mapped address is ours");
        options_over_tls(root.path(), sip_tls_port);
    }

    // Ctrl-C: everything stops and the ports are free again.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "besip up did not stop after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(rest.iter().any(|l| l.contains("All stopped")), "{rest:?}");
    assert!(TcpStream::connect(("127.0.0.1", nc_port)).is_err());
    if pbx_exists {
        assert!(
            UdpSocket::bind(("127.0.0.1", sip_port)).is_ok(),
            "the PBX still holds its port"
        );
    }
}

fn bin_path_exists(name: &str) -> bool {
    std::panic::catch_unwind(|| bin_path(name)).is_ok()
}

/// A TLS handshake (verifying the certificate besip-pbxd generated under
/// the root) and an OPTIONS answered over it, by Python's ssl module.
fn options_over_tls(root: &std::path::Path, port: u16) {
    let cafile = root.join("etc/besip/sip-tls-cert.pem");
    let script = format!(
        "import socket, ssl\n\
         ctx = ssl.create_default_context(cafile='{}')\n\
         s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', {port}), timeout=10), server_hostname='127.0.0.1')\n\
         s.sendall(b'OPTIONS sip:127.0.0.1:{port} SIP/2.0\\r\\nVia: SIP/2.0/TLS 127.0.0.1:9;branch=z9hG4bKup1\\r\\nFrom: <sip:up@127.0.0.1>;tag=1\\r\\nTo: <sip:127.0.0.1:{port}>\\r\\nCall-ID: up1@test\\r\\nCSeq: 1 OPTIONS\\r\\nMax-Forwards: 70\\r\\nContent-Length: 0\\r\\n\\r\\n')\n\
         print(s.recv(4096).decode().split('\\r\\n')[0])\n",
        cafile.display()
    );
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("python3");
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(
        answer.starts_with("SIP/2.0 200"),
        "OPTIONS over TLS: {answer}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
