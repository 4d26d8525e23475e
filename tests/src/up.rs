//! `besip up` as a user runs it: started with extra arguments, its banner
//! read until "Press Ctrl-C", stopped with SIGINT (then killed) on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{bin_path, TempRoot};

pub struct Up {
    child: Child,
    pub banner: String,
    pub root: TempRoot,
}

impl Up {
    /// `start` with every port on loopback chosen free (NETCONF on
    /// `netconf`, the web's plain HTTP off), the admin's `password` and
    /// `extra` arguments.
    pub fn on_loopback(netconf: u16, password: &str, extra: &[String]) -> Up {
        let free_udp = || crate::pbx::free_port().to_string();
        let free_tcp = || crate::web::free_tcp_port().to_string();
        let mut args = vec![
            "--netconf-port".to_owned(),
            netconf.to_string(),
            "--sip-port".into(),
            free_udp(),
            "--sip-tls-port".into(),
            free_tcp(),
            "--stun-port".into(),
            free_udp(),
            "--web-port".into(),
            free_tcp(),
            "--web-http-port".into(),
            "0".into(),
            "--admin-password".into(),
            password.into(),
        ];
        args.extend_from_slice(extra);
        Up::start(&args)
    }

    /// `besip up --root <temp> <args>`; panics when it does not come up
    /// within 60 s.
    pub fn start(args: &[String]) -> Up {
        let root = TempRoot::new();
        let mut child = Command::new(bin_path("besip"))
            .args(["up", "--root"])
            .arg(root.path())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start besip up");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
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
                Ok(line) => banner.push_str(&(line + "\n")),
                Err(_) => panic!("besip up did not come up: {banner}"),
            }
        }
        Up {
            child,
            banner,
            root,
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
