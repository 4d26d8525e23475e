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

fn free_port() -> u16 {
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
        let port = free_port();
        let log = std::fs::File::create(root.path().join("netconfd.log")).expect("log file");
        let child = Command::new(bin_path("besip-netconfd"))
            .arg("--root")
            .arg(root.path())
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--log-level")
            .arg("debug")
            .env("BESIP_ADMIN_PASSWORD", ADMIN_PASSWORD)
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

/// Directory of the Python (ncclient) and yangcli suites.
pub fn suite_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("netconf")
}
