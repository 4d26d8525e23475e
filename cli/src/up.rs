//! `besip up`: the whole box on loopback, each daemon as its own process,
//! with a built-in default configuration; Ctrl-C stops everything.

use besip_core::datastore::{CommitOptions, Datastore, NoReload, TestOption};
use besip_core::edit::{DefaultOperation, ErrorOption};
use besip_core::paths::Layout;
use besip_core::xml::escape;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// The daemons `besip up` starts when their binary sits next to `besip`.
const DAEMONS: &[&str] = &["besip-pbxd", "besip-secd", "besip-monitord"];

#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    /// Directory that holds the whole box (configuration, databases, sockets).
    #[arg(long)]
    pub root: PathBuf,
    /// Port of the NETCONF over SSH server on 127.0.0.1.
    #[arg(long, default_value_t = 8830)]
    pub netconf_port: u16,
    /// SIP port of the PBX on 127.0.0.1.
    #[arg(long, default_value_t = 5060)]
    pub sip_port: u16,
    /// STUN port of the PBX on 127.0.0.1 (default: 3478 + the SIP port - 5060,
    /// so boxes side by side do not collide).
    #[arg(long)]
    pub stun_port: Option<u16>,
    /// SIP over TLS port of the PBX on 127.0.0.1 (default: the SIP port + 1;
    /// the certificate is self-signed, generated on the first start).
    #[arg(long)]
    pub sip_tls_port: Option<u16>,
    /// HTTPS port on 127.0.0.1 of the web administration (/admin/) and
    /// RESTCONF (/restconf), both served by besip-netconfd.
    #[arg(long, default_value_t = 8443)]
    pub web_port: u16,
    /// HTTPS port on 127.0.0.1 of besip-monitord's call-quality (MOS)
    /// panel (default: the web port + 1).
    #[arg(long)]
    pub panel_port: Option<u16>,
    /// Port on 127.0.0.1 where plain HTTP redirects to the MOS panel's
    /// HTTPS port (0: no plain HTTP).
    #[arg(long, default_value_t = 8080)]
    pub web_http_port: u16,
    /// Share the location service with other boxes on this PostgreSQL
    /// database (postgresql://user:password@host/db); the box is named
    /// after --box-name.
    #[arg(long)]
    pub database: Option<String>,
    /// This box's name in the shared database (with --database).
    #[arg(long, default_value = "box")]
    pub box_name: String,
    /// Serve the box's Prometheus metrics (every daemon's) at
    /// http://127.0.0.1:N/metrics (default: not served).
    #[arg(long)]
    pub metrics_port: Option<u16>,
    /// Older name of --web-port (RESTCONF and the web administration are
    /// one port); wins over --web-port when both are given.
    #[arg(long)]
    pub restconf_port: Option<u16>,
    /// Password of `admin` (set on the first start, reset when given later).
    #[arg(long, env = "BESIP_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
}

impl UpArgs {
    /// The HTTPS port of RESTCONF and the web administration.
    pub fn admin_port(&self) -> u16 {
        self.restconf_port.unwrap_or(self.web_port)
    }

    /// --panel-port, or the port after the web port.
    pub fn panel_port(&self) -> Result<u16, String> {
        match self.panel_port {
            Some(port) => Ok(port),
            None => self.web_port.checked_add(1).ok_or_else(|| {
                format!(
                    "no default panel port for web port {}: give --panel-port",
                    self.web_port
                )
            }),
        }
    }

    /// --sip-tls-port, or the port after the SIP port.
    pub fn sip_tls_port(&self) -> Result<u16, String> {
        match self.sip_tls_port {
            Some(port) => Ok(port),
            None => self.sip_port.checked_add(1).ok_or_else(|| {
                format!(
                    "no default SIP TLS port for SIP port {}: give --sip-tls-port",
                    self.sip_port
                )
            }),
        }
    }

    /// --stun-port, or its default beside the SIP port.
    pub fn stun_port(&self) -> Result<u16, String> {
        if let Some(port) = self.stun_port {
            return Ok(port);
        }
        let port = 3478 + i32::from(self.sip_port) - 5060;
        u16::try_from(port).ok().filter(|p| *p != 0).ok_or_else(|| {
            format!(
                "no default STUN port for SIP port {}: give --stun-port",
                self.sip_port
            )
        })
    }
}

pub fn run(args: UpArgs) -> Result<(), String> {
    let runtime =
        tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(up(args))
}

/// Write the loopback ports (and the admin password, if given) into the
/// configuration through the datastore, so they are validated like any commit.
async fn configure(layout: &Layout, args: &UpArgs) -> Result<PasswordNote, String> {
    let mut store = Datastore::open(layout.clone()).map_err(|e| e.to_string())?;
    let running = store.print(besip_core::datastore::Source::Running, Default::default());
    let has_users = running.contains("<user>");
    let mut note = PasswordNote::Unchanged;
    let mut admin = String::new();
    match (&args.admin_password, has_users) {
        (Some(pw), true) => {
            let hash = besip_core::password::hash(pw)?;
            admin = format!(
                "<user><name>admin</name><password-hash>{}</password-hash><group>admin</group></user>",
                escape(&hash)
            );
            note = PasswordNote::Given(pw.clone());
        }
        (Some(pw), false) => note = PasswordNote::Given(pw.clone()),
        (None, false) => note = PasswordNote::Given(besip_core::password::random_password()),
        (None, true) => {}
    }
    let schema = besip_core::schema::Schema::get().map_err(|e| e.to_string())?;
    let pbx = if schema.modules().iter().any(|m| m.name == "besip-pbx") {
        format!(
            "<pbx xmlns=\"urn:besip:pbx\"><listen><name>up</name><transport>udp</transport><address>127.0.0.1</address><port>{}</port></listen><listen><name>up-tls</name><transport>tls</transport><address>127.0.0.1</address><port>{}</port></listen><stun><enabled>true</enabled><address>127.0.0.1</address><port>{}</port></stun>{}</pbx>",
            args.sip_port,
            args.sip_tls_port()?,
            args.stun_port()?,
            cluster(args)
        )
    } else {
        String::new()
    };
    // A loopback box watches loopback: capturing on every interface would need
    // capture rights on the host and measure traffic that is not the box's.
    let monitoring = if schema
        .modules()
        .iter()
        .any(|m| m.name == "besip-monitoring")
    {
        format!(
            "<monitoring xmlns=\"urn:besip:monitoring\"><interface>lo</interface><sip-port>{}</sip-port></monitoring>",
            args.sip_port
        )
    } else {
        String::new()
    };
    let security = if schema.modules().iter().any(|m| m.name == "besip-security") {
        format!(
            "<security xmlns=\"urn:besip:security\"><capture><interface>lo</interface><sip-port>{}</sip-port></capture></security>",
            args.sip_port
        )
    } else {
        String::new()
    };
    // Without --metrics-port an earlier start's endpoint is closed.
    let metrics = match args.metrics_port {
        Some(port) => format!(
            "<metrics><enabled>true</enabled><listen-address>127.0.0.1</listen-address><port>{port}</port></metrics>"
        ),
        None => "<metrics><enabled>false</enabled></metrics>".to_owned(),
    };
    // RESTCONF and the web administration: one HTTPS port, served by
    // besip-netconfd where running says; the MOS panel (besip-monitord's
    // /system/web) beside it.
    let restconf = format!(
        "<restconf><enabled>true</enabled><listen-address>127.0.0.1</listen-address><port>{}</port></restconf>",
        args.admin_port()
    );
    let xml = format!(
        "<system xmlns=\"urn:besip:system\">{admin}{metrics}{restconf}<netconf><port>{}</port></netconf><web><listen-address>127.0.0.1</listen-address><port>{}</port><http-redirect-port>{}</http-redirect-port></web></system>{pbx}{monitoring}{security}",
        args.netconf_port, args.panel_port()?, args.web_http_port
    );
    let config = besip_core::xml::parse(&xml).map_err(|e| e.to_string())?;
    store
        .edit_candidate(
            &config,
            DefaultOperation::Merge,
            ErrorOption::StopOnError,
            TestOption::TestThenSet,
        )
        .map_err(|e| format!("the loopback configuration is refused: {e}"))?;
    let options = CommitOptions {
        user: "besip up".into(),
        comment: "loopback ports of besip up".into(),
        ..Default::default()
    };
    store
        .commit(options, &NoReload)
        .await
        .map_err(|e| format!("the loopback configuration is refused: {e}"))?;
    Ok(note)
}

/// /pbx/cluster of --database (none: an earlier start's is removed).
fn cluster(args: &UpArgs) -> String {
    match &args.database {
        Some(url) => format!(
            "<cluster><database>{}</database><box-name>{}</box-name></cluster>",
            escape(url),
            escape(&args.box_name)
        ),
        None => "<cluster xmlns:nc=\"urn:ietf:params:xml:ns:netconf:base:1.0\" nc:operation=\"remove\"/>".to_owned(),
    }
}

enum PasswordNote {
    Given(String),
    Unchanged,
}

fn spawn(binary: &Path, args: &[String], env: &[(&str, String)]) -> Result<Child, String> {
    let mut cmd = Command::new(binary);
    cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))
}

async fn wait_for_port(port: u16, child: &mut Child) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "besip-netconfd stopped at start ({status}); see its messages above"
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "besip-netconfd does not listen on 127.0.0.1:{port} after 30 s"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn up(args: UpArgs) -> Result<(), String> {
    let root = std::path::absolute(&args.root).map_err(|e| format!("bad --root: {e}"))?;
    let layout = Layout::new(root.clone());
    layout
        .create_dirs()
        .map_err(|e| format!("cannot create the box under {}: {e}", root.display()))?;
    let note = configure(&layout, &args).await?;
    let bin_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .ok_or("cannot find the directory of the besip binary")?;
    let netconfd = bin_dir.join("besip-netconfd");
    if !netconfd.exists() {
        return Err(format!(
            "{} is missing: build it with `cargo build --workspace --bins`",
            netconfd.display()
        ));
    }
    let root_arg = root.display().to_string();
    let mut env = Vec::new();
    if let PasswordNote::Given(pw) = &note {
        env.push(("BESIP_ADMIN_PASSWORD", pw.clone()));
    }
    let mut children: Vec<(String, Child)> = Vec::new();
    let mut netconf = spawn(
        &netconfd,
        &[
            "--root".into(),
            root_arg.clone(),
            "--foreground".into(),
            "--listen".into(),
            format!("127.0.0.1:{}", args.netconf_port),
        ],
        &env,
    )?;
    wait_for_port(args.netconf_port, &mut netconf).await?;
    children.push(("besip-netconfd".into(), netconf));
    for daemon in DAEMONS {
        let path = bin_dir.join(daemon);
        if path.exists() {
            let child = spawn(
                &path,
                &["--root".into(), root_arg.clone(), "--foreground".into()],
                &[],
            )?;
            children.push((daemon.to_string(), child));
        }
    }
    print_banner(&args, &root, &note, &children);

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let reason = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break "Ctrl-C".to_string(),
            _ = term.recv() => break "SIGTERM".to_string(),
            _ = tick.tick() => {
                let stopped = children.iter_mut().enumerate().find_map(|(i, (n, c))| {
                    c.try_wait().ok().flatten().map(|s| (i, n.clone(), s))
                });
                match stopped {
                    // Without netconfd the box cannot be managed: stop it all.
                    Some((0, name, status)) => break format!("{name} stopped ({status})"),
                    // A daemon that stops (e.g. refuses its configuration) is
                    // reported; the rest keeps running so it can be fixed over NETCONF.
                    Some((i, name, status)) => {
                        println!("{name} stopped ({status}); the rest of the box keeps running");
                        children.remove(i);
                    }
                    None => {}
                }
            }
        }
    };
    println!("\nStopping the box ({reason}) ...");
    stop_all(children).await;
    remove_firewall_objects(&bin_dir, &root_arg).await;
    println!("All stopped.");
    Ok(())
}

/// The box on loopback is a run on someone's machine, not an appliance that
/// keeps its bans over a restart: leave no drop rule or ban set behind.
async fn remove_firewall_objects(bin_dir: &Path, root_arg: &str) {
    let secd = bin_dir.join("besip-secd");
    if !secd.exists() {
        return;
    }
    let result = Command::new(&secd)
        .args(["--root", root_arg, "teardown"])
        .output()
        .await;
    match result {
        Ok(out) if out.status.success() => println!("  firewall rules and ban sets removed"),
        Ok(out) => println!(
            "  could not remove the firewall rules: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => println!("  could not run besip-secd teardown: {e}"),
    }
}

async fn stop_all(children: Vec<(String, Child)>) {
    for (name, mut child) in children.into_iter().rev() {
        if let Some(pid) = child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
            Ok(Ok(status)) => println!("  {name}: {status}"),
            _ => {
                let _ = child.kill().await;
                println!("  {name}: killed (did not stop within 10 s)");
            }
        }
    }
}

fn print_banner(args: &UpArgs, root: &Path, note: &PasswordNote, children: &[(String, Child)]) {
    let port = args.netconf_port;
    let password = match note {
        PasswordNote::Given(pw) => pw.clone(),
        PasswordNote::Unchanged => {
            "(unchanged since the first start; pass --admin-password to reset it)".into()
        }
    };
    let running: Vec<&str> = children.iter().map(|(n, _)| n.as_str()).collect();
    println!("BESIP box is up under {}", root.display());
    println!("  running: {}", running.join(", "));
    println!("  SIP (PBX):    udp 127.0.0.1:{}", args.sip_port);
    if let Ok(tls) = args.sip_tls_port() {
        // Generated by besip-pbxd on its first start unless one is configured.
        println!(
            "  SIP over TLS: tls 127.0.0.1:{tls} (certificate {})",
            Layout::new(root.to_path_buf())
                .etc_dir()
                .join("sip-tls-cert.pem")
                .display()
        );
    }
    if let Ok(stun) = args.stun_port() {
        println!("  STUN:         udp 127.0.0.1:{stun}");
    }
    if let Some(url) = &args.database {
        // The password, if any, stays out of the banner.
        let shown = match url.split_once('@') {
            Some((_, host)) => format!("postgresql://…@{host}"),
            None => url.clone(),
        };
        println!("  shared location: {shown} (this box: {})", args.box_name);
    }
    if let Some(port) = args.metrics_port {
        // Gathered from every daemon by besip-netconfd.
        println!("  metrics:      http://127.0.0.1:{port}/metrics");
    }
    // Both served by besip-netconfd on the same datastore and port.
    let admin_port = args.admin_port();
    println!("  web administration: https://127.0.0.1:{admin_port}/admin/");
    println!("  RESTCONF:     https://127.0.0.1:{admin_port}/restconf");
    println!(
        "                e.g. curl -k -u admin:'<password>' https://127.0.0.1:{admin_port}/restconf/data/besip-pbx:pbx"
    );
    println!(
        "                certificate: {} (self-signed: accept it in the browser once)",
        Layout::new(root.to_path_buf())
            .etc_dir()
            .join("restconf-cert.pem")
            .display()
    );
    // Served by besip-monitord; log in with the same users as NETCONF/SSH.
    if let Ok(panel) = args.panel_port() {
        println!("  MOS panel:    https://127.0.0.1:{panel}/");
    }
    if args.web_http_port != 0 {
        println!(
            "                (http://127.0.0.1:{}/ redirects there)",
            args.web_http_port
        );
    }
    // Generated by besip-monitord on its first start unless one is configured.
    println!(
        "                certificate: {} (self-signed: accept it in the browser once)",
        Layout::new(root.to_path_buf())
            .etc_dir()
            .join("web-cert.pem")
            .display()
    );
    println!("  NETCONF/SSH:  127.0.0.1:{port}");
    println!("  user admin, password: {password}");
    println!();
    println!("Connect with:");
    println!("  yangcli:  yangcli --server=127.0.0.1 --ncport={port} --user=admin --password='<password>'");
    println!("  ncclient: python3 -c \"from ncclient import manager; m = manager.connect(host='127.0.0.1', port={port}, username='admin', password='<password>', hostkey_verify=False); print(m.get_config('running'))\"");
    println!("  ssh:      ssh -p {port} -s admin@127.0.0.1 netconf");
    println!();
    println!("Press Ctrl-C to stop everything.");
}
