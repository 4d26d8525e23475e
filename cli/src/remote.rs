//! `besip [--host H] [-c CMD]`, `besip export`, `besip import`: the shell and
//! the whole-box transfer against a box over NETCONF/SSH. Exit codes: 0 ok,
//! 1 command error, 2 usage, 3 connection or login failure (also a host key
//! that differs from the stored one, see `known_hosts`).

use besip_cli::client::NetconfClient;
use besip_cli::known_hosts::HostKeyPolicy;
use besip_cli::shell::editor::run_shell;
use besip_cli::shell::engine::execute;
use besip_cli::shell::ShellError;
use besip_cli::transfer::{self, Format};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

#[derive(Debug, Clone, clap::Args)]
pub struct RemoteArgs {
    /// Box to connect to (NETCONF over SSH).
    #[arg(long, global = true, default_value = "127.0.0.1")]
    pub host: String,
    /// SSH port of besip-netconfd.
    #[arg(long, global = true, default_value_t = 830)]
    pub port: u16,
    /// User to log in as.
    #[arg(long, global = true, default_value = "admin")]
    pub user: String,
    /// Environment variable holding the password (else it is asked on the terminal).
    #[arg(long, global = true, default_value = "BESIP_PASSWORD")]
    pub password_env: String,
    /// Trust a host key that differs from the one stored for this box (after
    /// a reinstall); the new key replaces the stored one.
    #[arg(long, global = true)]
    pub accept_new_host_key: bool,
    /// Run this command and exit (repeatable; stops at the first error).
    #[arg(short = 'c', long = "command")]
    pub commands: Vec<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// xml or json (default: from the file name, else xml).
    #[arg(long)]
    pub format: Option<String>,
    /// File to write ("-" for standard output).
    pub file: PathBuf,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// xml or json (default: from the file name, else xml).
    #[arg(long)]
    pub format: Option<String>,
    /// Only check the file and show what would change.
    #[arg(long)]
    pub dry_run: bool,
    /// Configuration file written by `besip export`.
    pub file: PathBuf,
}

fn password(args: &RemoteArgs) -> Result<String, ShellError> {
    if let Ok(pw) = std::env::var(&args.password_env) {
        return Ok(pw);
    }
    if !std::io::stdin().is_terminal() {
        return Err(ShellError::Usage {
            message: format!(
                "no password: set {} (or name another variable with --password-env)",
                args.password_env
            ),
        });
    }
    eprint!("Password for {}@{}: ", args.user, args.host);
    let _ = std::io::stderr().flush();
    let saved = raw_mode(false);
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    restore(saved);
    eprintln!();
    read.map_err(|e| ShellError::Usage {
        message: format!("cannot read the password: {e}"),
    })?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Terminal mode: `full` raw (for the line editor) or just no echo.
fn raw_mode(full: bool) -> Option<libc::termios> {
    // SAFETY: plain termios calls on fd 0 with a zeroed, then filled struct.
    unsafe {
        let mut saved: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(0, &mut saved) != 0 {
            return None;
        }
        let mut t = saved;
        if full {
            libc::cfmakeraw(&mut t);
            t.c_oflag |= libc::OPOST | libc::ONLCR;
        } else {
            t.c_lflag &= !libc::ECHO;
        }
        libc::tcsetattr(0, libc::TCSANOW, &t);
        Some(saved)
    }
}

fn restore(saved: Option<libc::termios>) {
    if let Some(t) = saved {
        // SAFETY: restores the attributes read by raw_mode.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &t);
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ShellError> {
    tokio::runtime::Runtime::new().map_err(|e| ShellError::Usage {
        message: format!("cannot start the async runtime: {e}"),
    })
}

async fn connect(args: &RemoteArgs) -> Result<NetconfClient, ShellError> {
    let file = HostKeyPolicy::default_file().ok_or_else(|| ShellError::Usage {
        message: "no place for known host keys: set BESIP_KNOWN_HOSTS or HOME".into(),
    })?;
    let host_keys = HostKeyPolicy {
        file,
        accept_new: args.accept_new_host_key,
    };
    let pw = password(args)?;
    NetconfClient::connect(&args.host, args.port, &args.user, &pw, &host_keys).await
}

fn finish(result: Result<(), ShellError>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            let text = e.to_string();
            let text = text.strip_prefix("error: ").unwrap_or(&text);
            eprintln!("besip: {text}");
            e.exit_code()
        }
    }
}

fn print(text: &str) {
    if !text.is_empty() {
        println!("{text}");
    }
}

/// `besip` without a subcommand: `-c`, a script on stdin, or the interactive shell.
pub fn shell(args: &RemoteArgs) -> i32 {
    let result = runtime().and_then(|rt| {
        rt.block_on(async {
            let mut client = connect(args).await?;
            let result = if !args.commands.is_empty() {
                let mut r = Ok(());
                for command in &args.commands {
                    match execute(&mut client, command).await {
                        Ok(text) => print(&text),
                        Err(e) => {
                            r = Err(e);
                            break;
                        }
                    }
                }
                r
            } else if std::io::stdin().is_terminal() {
                let saved = raw_mode(true);
                let prompt = format!("{}@{}> ", args.user, args.host);
                let r = run_shell(
                    tokio::io::stdin(),
                    tokio::io::stdout(),
                    &mut client,
                    &prompt,
                )
                .await;
                restore(saved);
                r
            } else {
                script(&mut client).await
            };
            client.close().await;
            result
        })
    });
    finish(result)
}

/// Commands from standard input, one per line; `#` starts a comment; the
/// first failing line stops the script and names its number.
async fn script(client: &mut NetconfClient) -> Result<(), ShellError> {
    let mut text = String::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| ShellError::Usage {
            message: format!("cannot read the script: {e}"),
        })?;
        text.push_str(&line);
        text.push('\n');
    }
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match execute(client, line).await {
            Ok(out) => print(&out),
            Err(e) => return Err(e.at(&format!("line {}", n + 1))),
        }
    }
    Ok(())
}

fn format_of(given: &Option<String>, file: &std::path::Path) -> Result<Format, ShellError> {
    match given {
        Some(f) => Format::parse(f),
        None => Ok(Format::of_file(&file.display().to_string())),
    }
}

pub fn export(remote: &RemoteArgs, args: ExportArgs) -> i32 {
    let result = runtime().and_then(|rt| {
        rt.block_on(async {
            let format = format_of(&args.format, &args.file)?;
            let mut client = connect(remote).await?;
            let text = transfer::export(&mut client, format, &remote.user).await;
            client.close().await;
            let text = text?;
            if args.file.as_os_str() == "-" {
                print!("{text}");
                return Ok(());
            }
            transfer::write_export(&args.file, &text)?;
            eprintln!(
                "Exported the running configuration to {}",
                args.file.display()
            );
            Ok(())
        })
    });
    finish(result)
}

pub fn import(remote: &RemoteArgs, args: ImportArgs) -> i32 {
    let result = runtime().and_then(|rt| {
        rt.block_on(async {
            let format = format_of(&args.format, &args.file)?;
            let name = args.file.display().to_string();
            let text = std::fs::read_to_string(&args.file).map_err(|e| ShellError::Command {
                message: format!("cannot read {name}: {e}"),
            })?;
            let file = transfer::load(&name, &text, format)?;
            let mut client = connect(remote).await?;
            let result = if args.dry_run {
                let running = besip_cli::shell::engine::config_lines(&mut client, "running").await;
                running.map(|r| {
                    besip_cli::shell::render::diff(
                        &r,
                        &besip_cli::shell::render::data_lines(&file.elements),
                    )
                })
            } else {
                transfer::import(&mut client, &file, &remote.user, &format!("import {name}")).await
            };
            client.close().await;
            let changes = result?;
            if changes.is_empty() {
                println!("No changes: {name} equals the running configuration.");
            } else {
                println!("{}", changes.join("\n"));
                if !args.dry_run {
                    println!("Import of {name} committed.");
                }
            }
            Ok(())
        })
    });
    finish(result)
}
