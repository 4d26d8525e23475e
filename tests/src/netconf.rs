//! Helpers for the netconf tests: a running besip-netconfd on a free loopback
//! port with a known admin password, stopped when dropped.

use crate::harness::{bin_path, TempRoot};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ADMIN_PASSWORD: &str = "Adm1n-test-pw";

pub struct NetconfServer {
    pub root: TempRoot,
    pub port: u16,
    child: Child,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl NetconfServer {
    pub fn start() -> NetconfServer {
        Self::start_in(TempRoot::new())
    }

    /// Start on an existing root (e.g. to check what survives a restart).
    pub fn start_in(root: TempRoot) -> NetconfServer {
        Self::start_with(root, Some(ADMIN_PASSWORD))
    }

    /// `admin_password: None` lets the server pick a random first password.
    pub fn start_with(root: TempRoot, admin_password: Option<&str>) -> NetconfServer {
        Self::launch(root, admin_password, free_port())
    }

    /// Start on a given port (e.g. another box where the last one was).
    pub fn start_on(root: TempRoot, port: u16) -> NetconfServer {
        Self::launch(root, Some(ADMIN_PASSWORD), port)
    }

    /// Start with RESTCONF on a free loopback port too; returns its port.
    pub fn start_with_restconf() -> (NetconfServer, u16) {
        let restconf = free_port();
        let server = Self::launch_with(
            TempRoot::new(),
            Some(ADMIN_PASSWORD),
            free_port(),
            &[
                "--restconf-listen".to_string(),
                format!("127.0.0.1:{restconf}"),
            ],
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", restconf)).is_err() {
            assert!(
                Instant::now() < deadline,
                "RESTCONF did not listen: {}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        (server, restconf)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn launch(root: TempRoot, admin_password: Option<&str>, port: u16) -> NetconfServer {
        Self::launch_with(root, admin_password, port, &[])
    }

    fn launch_with(
        root: TempRoot,
        admin_password: Option<&str>,
        port: u16,
        extra: &[String],
    ) -> NetconfServer {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.path().join("netconfd.log"))
            .expect("log file");
        let mut command = Command::new(bin_path("besip-netconfd"));
        match admin_password {
            Some(pw) => command.env("BESIP_ADMIN_PASSWORD", pw),
            None => command.env_remove("BESIP_ADMIN_PASSWORD"),
        };
        let child = command
            .arg("--root")
            .arg(root.path())
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--log-level")
            .arg("debug")
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start besip-netconfd");
        let server = NetconfServer { root, port, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "besip-netconfd did not listen: {}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("netconfd.log")).unwrap_or_default()
    }

    /// Stop the server (SIGTERM) and give back its root.
    pub fn stop(mut self) -> TempRoot {
        self.terminate();
        let root = std::mem::replace(&mut self.root, TempRoot::new());
        root
    }

    fn terminate(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn root_path(&self) -> &Path {
        self.root.path()
    }
}

impl Drop for NetconfServer {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// Run a Python snippet with ncclient/paramiko; `PORT` and `PW` are defined
/// for it. Returns (success, stdout + stderr).
pub fn python(port: u16, password: &str, body: &str) -> (bool, String) {
    let script = format!(
        "import paramiko, time\nfrom ncclient import manager\nPORT = {port}\nPW = {password:?}\n\
         def connect(user='admin', pw=None):\n    return manager.connect(host='127.0.0.1', port=PORT, username=user, password=PW if pw is None else pw, hostkey_verify=False, allow_agent=False, look_for_keys=False, timeout=30)\n{body}"
    );
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("run /usr/bin/python3");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// What a pytest run of an ncclient suite printed.
pub struct PytestRun {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Run pytest on `target` (a file or directory of tests/netconf) against
/// `server`, with its port, admin password and root in the environment the
/// suites' conftest.py reads. `extra`: more pytest options.
pub fn run_pytest(server: &NetconfServer, target: &Path, extra: &[&str]) -> PytestRun {
    let output = Command::new("/usr/bin/python3")
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-W",
            "ignore::DeprecationWarning",
        ])
        .args(extra)
        .arg(target)
        .env("BESIP_NC_PORT", server.port.to_string())
        .env("BESIP_NC_PASSWORD", ADMIN_PASSWORD)
        .env("BESIP_NC_ROOT", server.root_path())
        .output()
        .expect("run /usr/bin/python3 -m pytest (apt install python3-pytest python3-ncclient)");
    PytestRun {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Directory of the Python (ncclient) and yangcli suites.
pub fn suite_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("netconf")
}

/// A Python (ncclient) script running in the background; each line it prints
/// arrives on `lines`. Killed on drop.
pub struct PythonLines {
    child: Child,
    pub lines: std::sync::mpsc::Receiver<String>,
}

impl PythonLines {
    pub fn spawn(script: &str, args: &[&str]) -> PythonLines {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(script)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run /usr/bin/python3");
        let (tx, lines) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("python stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        PythonLines { child, lines }
    }

    /// The next line must be `expected` (within `wait`).
    pub fn expect_line(&self, expected: &str, wait: Duration) {
        let line = self
            .lines
            .recv_timeout(wait)
            .unwrap_or_else(|_| panic!("the script never printed {expected}"));
        assert_eq!(line, expected);
    }

    /// The lines printed until `last` (or until none came for `quiet`).
    pub fn lines_until(&self, last: &str, quiet: Duration) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(quiet) {
            if line == last {
                break;
            }
            out.push(line);
        }
        out
    }
}

impl Drop for PythonLines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
