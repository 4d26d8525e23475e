//! REGISTER over TLS as fast as a server answers: `--connections` persistent
//! TLS connections, each registering one user after another (REGISTER, 401,
//! REGISTER with MD5 digest credentials, 200), closed loop. After a warm-up
//! it counts completed registrations for `--secs` seconds and prints them
//! with the CPU the server (a process and its direct children, for
//! Kamailio's worker processes) and this generator used in that window, so
//! a run limited by the generator still compares CPU per REGISTER.
//!
//! Usage: besip-sip-tls-load --target 127.0.0.1:5061 --server-pid PID
//!        [--connections 32] [--users 10000] [--first-user 10000]
//!        [--secs 10] [--warmup 2] [--domain bench.test]
//! Password of user U is "pwU" (as in tests/bench/sip). The server's
//! certificate is not verified: the benchmark measures the server, and
//! both servers present the same certificate.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

struct Options {
    target: SocketAddr,
    server_pid: u32,
    connections: usize,
    users: u64,
    first_user: u64,
    secs: u64,
    warmup: u64,
    domain: String,
    /// Distinguishes this run's Call-IDs from an earlier run's bindings.
    run: u64,
}

fn parse_options() -> Result<Options, String> {
    let mut o = Options {
        target: "127.0.0.1:5061".parse().map_err(|e| format!("{e}"))?,
        server_pid: 0,
        connections: 32,
        users: 10_000,
        first_user: 10_000,
        secs: 10,
        warmup: 2,
        domain: "bench.test".into(),
        run: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--target" => o.target = value.parse().map_err(|e| bad(&e))?,
            "--server-pid" => o.server_pid = value.parse().map_err(|e| bad(&e))?,
            "--connections" => o.connections = value.parse().map_err(|e| bad(&e))?,
            "--users" => o.users = value.parse().map_err(|e| bad(&e))?,
            "--first-user" => o.first_user = value.parse().map_err(|e| bad(&e))?,
            "--secs" => o.secs = value.parse().map_err(|e| bad(&e))?,
            "--warmup" => o.warmup = value.parse().map_err(|e| bad(&e))?,
            "--domain" => o.domain = value,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if o.connections == 0 || o.users == 0 || o.secs == 0 {
        return Err("connections, users and secs must be > 0".into());
    }
    Ok(o)
}

/// Accepts any certificate (see the module comment).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[derive(Default)]
struct Counters {
    completed: AtomicU64,
    failed: AtomicU64,
}

/// One SIP response read off the stream: status code and header block.
struct Response {
    status: u16,
    head: String,
}

/// Reads one response (headers, then Content-Length bytes of body).
async fn read_response<S: AsyncReadExt + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> Result<Response, String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let body_len = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    let name = name.trim();
                    (name.eq_ignore_ascii_case("content-length") || name == "l")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            let total = end + 4 + body_len;
            if buf.len() >= total {
                buf.drain(..total);
                let status = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| format!("not a response: {head:.60}"))?;
                return Ok(Response { status, head });
            }
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The value of `name="v"` or `name=v` in a challenge.
fn param<'a>(challenge: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = challenge;
    while let Some(pos) = rest.find(name) {
        let before_ok = pos == 0 || matches!(rest.as_bytes()[pos - 1], b' ' | b',');
        let after = &rest[pos + name.len()..];
        if before_ok {
            if let Some(v) = after.trim_start().strip_prefix('=') {
                let v = v.trim_start();
                return Some(match v.strip_prefix('"') {
                    Some(q) => &q[..q.find('"')?],
                    None => v.split(',').next()?.trim(),
                });
            }
        }
        rest = after;
    }
    None
}

fn md5_hex(parts: &[&str]) -> String {
    let mut h = Md5::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b":");
        }
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

fn authorization(
    challenge_head: &str,
    user: &str,
    password: &str,
    uri: &str,
    seq: u64,
) -> Option<String> {
    let line = challenge_head.lines().find(|l| {
        l.split_once(':')
            .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case("www-authenticate"))
    })?;
    let challenge = line.split_once(':')?.1.trim();
    let realm = param(challenge, "realm")?;
    let nonce = param(challenge, "nonce")?;
    let ha1 = md5_hex(&[user, realm, password]);
    let ha2 = md5_hex(&["REGISTER", uri]);
    let mut value = format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", algorithm=MD5"
    );
    let qop_auth =
        param(challenge, "qop").is_some_and(|q| q.split(',').any(|q| q.trim() == "auth"));
    let response = if qop_auth {
        let cnonce = format!("{seq:x}");
        value.push_str(&format!(", qop=auth, nc=00000001, cnonce=\"{cnonce}\""));
        md5_hex(&[&ha1, nonce, "00000001", &cnonce, "auth", &ha2])
    } else {
        md5_hex(&[&ha1, nonce, &ha2])
    };
    value.push_str(&format!(", response=\"{response}\""));
    if let Some(opaque) = param(challenge, "opaque") {
        value.push_str(&format!(", opaque=\"{opaque}\""));
    }
    Some(value)
}

/// A REGISTER as a phone re-registering sends it: one Call-ID per user and
/// run with a rising CSeq, and the same Contact every time (so a binding is
/// refreshed, not added).
fn register(
    run: u64,
    cseq: u64,
    user: &str,
    domain: &str,
    local: SocketAddr,
    auth: Option<&str>,
) -> String {
    let auth_line = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "REGISTER sip:{domain} SIP/2.0\r\n\
         Via: SIP/2.0/TLS {local};branch=z9hG4bK{run}x{user}x{cseq};rport\r\n\
         From: <sip:{user}@{domain}>;tag=t{run}x{cseq}\r\n\
         To: <sip:{user}@{domain}>\r\n\
         Call-ID: c{run}x{user}@bench\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:{user}@phone.bench.invalid;transport=tls>\r\n\
         Expires: 3600\r\n\
         {auth_line}Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

async fn one_connection(
    conn: usize,
    opts: Arc<Options>,
    connector: TlsConnector,
    counters: Arc<Counters>,
) {
    let tcp = match TcpStream::connect(opts.target).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("connection {conn}: connect: {e}");
            return;
        }
    };
    let _ = tcp.set_nodelay(true);
    let local = match tcp.local_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    let name = ServerName::IpAddress(opts.target.ip().into());
    let mut tls = match connector.connect(name, tcp).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("connection {conn}: TLS handshake: {e}");
            return;
        }
    };
    let mut buf = Vec::with_capacity(16 * 1024);
    let uri = format!("sip:{}", opts.domain);
    let mut seq: u64 = 0;
    loop {
        seq += 1;
        // Each connection owns its share of the users, so no user is ever
        // registering on two connections at once (as with real phones).
        let per_connection = (opts.users / opts.connections as u64).max(1);
        let user =
            (opts.first_user + conn as u64 + opts.connections as u64 * (seq % per_connection))
                .to_string();
        let cseq = 2 * (seq / per_connection) + 1;
        let password = format!("pw{user}");
        let first = register(opts.run, cseq, &user, &opts.domain, local, None);
        let outcome: Result<(), String> = async {
            tls.write_all(first.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            let challenge = read_response(&mut tls, &mut buf).await?;
            if challenge.status == 200 {
                return Ok(());
            }
            if challenge.status != 401 {
                return Err(format!("answer {} to REGISTER", challenge.status));
            }
            let auth = authorization(&challenge.head, &user, &password, &uri, seq)
                .ok_or("401 without a usable WWW-Authenticate")?;
            let second = register(opts.run, cseq + 1, &user, &opts.domain, local, Some(&auth));
            tls.write_all(second.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            let answer = read_response(&mut tls, &mut buf).await?;
            if answer.status != 200 {
                let stale = if answer.head.contains("stale=true") {
                    " (stale nonce)"
                } else {
                    ""
                };
                let reason = answer.head.lines().next().unwrap_or_default().to_owned();
                return Err(format!(
                    "answer {reason}{stale} to REGISTER with credentials"
                ));
            }
            Ok(())
        }
        .await;
        match outcome {
            Ok(()) => {
                counters.completed.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) if e.starts_with("answer ") => {
                // A SIP failure: counted, the connection goes on.
                counters.failed.fetch_add(1, Ordering::Relaxed);
                eprintln!("{e}");
            }
            Err(e) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                eprintln!("connection {conn}: {e}");
                return;
            }
        }
    }
}

/// utime + stime (clock ticks) of `pid` and its direct children.
fn cpu_ticks(pid: u32) -> u64 {
    fn stat_fields(path: &std::path::Path) -> Option<(u32, u64)> {
        let s = std::fs::read_to_string(path).ok()?;
        // The command name may contain spaces: fields start after the last ')'.
        let rest = &s[s.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        let ppid = f.get(1)?.parse().ok()?;
        let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        Some((ppid, ticks))
    }
    let mut total = 0;
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some((ppid, ticks)) = stat_fields(&entry.path().join("stat")) {
                if p == pid || ppid == pid {
                    total += ticks;
                }
            }
        }
    }
    total
}

fn own_cpu_ms() -> f64 {
    // SAFETY: getrusage only writes the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    ms(u.ru_utime) + ms(u.ru_stime)
}

fn main() {
    let opts = match parse_options() {
        Ok(o) => Arc::new(o),
        Err(e) => {
            eprintln!("besip-sip-tls-load: {e}");
            std::process::exit(2);
        }
    };
    // One thread: pinned to one core by the script, like sipp in tests/bench/sip.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("besip-sip-tls-load: runtime: {e}");
            std::process::exit(1);
        }
    };
    runtime.block_on(async move {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = match rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
        {
            Ok(b) => b
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth(),
            Err(e) => {
                eprintln!("besip-sip-tls-load: TLS config: {e}");
                std::process::exit(1);
            }
        };
        let connector = TlsConnector::from(Arc::new(config));
        let counters = Arc::new(Counters::default());
        for conn in 0..opts.connections {
            tokio::spawn(one_connection(conn, opts.clone(), connector.clone(), counters.clone()));
        }
        tokio::time::sleep(Duration::from_secs(opts.warmup)).await;
        let (c0, f0) = (counters.completed.load(Ordering::Relaxed), counters.failed.load(Ordering::Relaxed));
        let (s0, g0, t0) = (cpu_ticks(opts.server_pid), own_cpu_ms(), Instant::now());
        tokio::time::sleep(Duration::from_secs(opts.secs)).await;
        let (c1, f1) = (counters.completed.load(Ordering::Relaxed), counters.failed.load(Ordering::Relaxed));
        let (s1, g1, secs) = (cpu_ticks(opts.server_pid), own_cpu_ms(), t0.elapsed().as_secs_f64());
        let tick_ms = 1000.0 / 100.0; // CLK_TCK is 100 on Linux
        let done = c1 - c0;
        println!(
            "completed {done} failed {} secs {secs:.2} rate {:.0} server_cpu_ms {:.0} load_cpu_ms {:.0}",
            f1 - f0,
            done as f64 / secs,
            (s1 - s0) as f64 * tick_ms,
            g1 - g0
        );
        std::process::exit(0);
    });
}
