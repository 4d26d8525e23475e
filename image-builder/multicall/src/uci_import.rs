//! `besip-uci-import [--root DIR] PACKAGE`: what the init scripts'
//! `reload_service` runs when procd reports a changed /etc/config/besip_*.
//! Asks besip-netconfd over its root-only socket (no NETCONF login on the
//! box itself) to validate and commit the hand edit, or to refuse it and put
//! the file back. Exit 0: committed or unchanged; 1: refused or netconfd
//! unreachable (the message says which); 2: usage.

use besip_core::ipc::{IpcClient, IpcError};
use besip_core::paths::Layout;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// A commit reloads the daemons (two-phase); give them time.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

pub fn run() -> ExitCode {
    let mut root = PathBuf::from("/");
    let mut package = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.len()) {
            ("--root", 1..) => root = args.next().map(PathBuf::from).unwrap_or(root),
            (name, _) if !name.starts_with('-') && package.is_none() => {
                package = Some(name.to_owned())
            }
            _ => return usage(),
        }
    }
    let Some(package) = package else {
        return usage();
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("besip-uci-import: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ask_netconfd(&Layout::new(root), &package)) {
        Ok(result) => {
            println!("{package}: {result}");
            ExitCode::SUCCESS
        }
        Err(IpcError::Remote { message, .. }) => {
            eprintln!("besip-uci-import: {message}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("besip-uci-import: {package} not imported: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn ask_netconfd(layout: &Layout, package: &str) -> Result<String, IpcError> {
    let client = IpcClient::connect(&layout.socket("netconf"))
        .await?
        .with_timeout(ANSWER_TIMEOUT);
    let params = serde_json::json!({
        "name": "besip-system:import-uci",
        "input": {"package": package},
    });
    let answer = client.call("rpc", params).await?;
    Ok(answer
        .get("result")
        .and_then(|r| r.as_str())
        .unwrap_or("done")
        .to_owned())
}

fn usage() -> ExitCode {
    eprintln!("usage: besip-uci-import [--root DIR] PACKAGE   (e.g. besip_pbx)");
    ExitCode::from(2)
}
