//! A real PostgreSQL server for a test: a cluster in a temporary directory
//! (initdb, trust authentication on 127.0.0.1 only, fsync off), run as the
//! `postgres` user, stopped and removed when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Postgres {
    pub port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
    /// More server options (TLS).
    extra: String,
}

/// The newest installed server's bin directory.
fn server_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

fn as_postgres(bin: &Path, tool: &str) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
    c
}

impl Postgres {
    /// None (with a SKIP line) when PostgreSQL or the postgres user is missing.
    pub fn start() -> Option<Postgres> {
        let pg = Postgres::init()?;
        pg.start_again();
        Some(pg)
    }

    /// A server that takes TCP clients over TLS only (`cert`/`key` PEM;
    /// pg_hba: hostssl trust, hostnossl reject; its Unix socket stays plain).
    pub fn start_tls(cert: &str, key: &str) -> Option<Postgres> {
        let mut pg = Postgres::init()?;
        let data = pg.dir.path().join("data");
        std::fs::write(data.join("server.crt"), cert).expect("write cert");
        std::fs::write(data.join("server.key"), key).expect("write key");
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .expect("write pg_hba.conf");
        let owned = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(data.join("server.crt"))
            .arg(data.join("server.key"))
            .arg(data.join("pg_hba.conf"))
            .status();
        assert!(owned.is_ok_and(|s| s.success()), "chown");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            data.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .expect("chmod");
        pg.extra = " -c ssl=on".to_owned();
        pg.start_again();
        Some(pg)
    }

    fn init() -> Option<Postgres> {
        let Some(bin) = server_bin() else {
            eprintln!("SKIP: PostgreSQL server not installed");
            return None;
        };
        let dir = tempfile::tempdir().ok()?;
        let chown = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status();
        if !chown.is_ok_and(|s| s.success()) {
            eprintln!("SKIP: no postgres user");
            return None;
        }
        let data = dir.path().join("data");
        let init = as_postgres(&bin, "initdb")
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "besip", "--no-sync"])
            .output()
            .expect("initdb");
        assert!(
            init.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        Some(Postgres {
            port: crate::web::free_tcp_port(),
            bin,
            dir,
            extra: String::new(),
        })
    }

    /// postgresql://besip@127.0.0.1:PORT/postgres
    pub fn url(&self) -> String {
        format!("postgresql://besip@127.0.0.1:{}/postgres", self.port)
    }

    /// The server over its Unix socket (reachable from a network namespace
    /// of the test, whose loopback is its own).
    pub fn unix_url(&self) -> String {
        format!(
            "postgresql://besip@/postgres?host={}&port={}",
            self.dir.path().display(),
            self.port
        )
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off{}",
            self.port,
            self.dir.path().display(),
            self.extra
        );
        let started = as_postgres(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-o", &options, "-l"])
            .arg(self.dir.path().join("log"))
            .args(["-w", "-t", "30", "start"])
            .output()
            .expect("pg_ctl start");
        assert!(
            started.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&started.stdout),
            std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
        );
    }

    /// Stops the server at once (clients see their connections drop).
    pub fn stop(&self) {
        let _ = as_postgres(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }

    /// Runs `sql` with psql; its unaligned, tuples-only output.
    pub fn psql(&self, sql: &str) -> String {
        self.try_psql(sql)
            .unwrap_or_else(|e| panic!("psql {sql}: {e}"))
    }

    /// `psql`, with the error (e.g. a table not created yet) as a value.
    pub fn try_psql(&self, sql: &str) -> Result<String, String> {
        let out = Command::new("psql")
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url())
            .args(["-c", sql])
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
