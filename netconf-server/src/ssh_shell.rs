//! The command shell over SSH (besip-shell): the interactive CLI on a
//! `shell` request (`ssh -p 830 admin@box`) and one command list on an
//! `exec` request (`ssh -p 830 admin@box 'set system hostname x; commit'`).
//! Both talk NETCONF to an in-process session of the logged-in user, so the
//! user's group rights and NACM apply exactly as for any NETCONF client.

use crate::server::Server;
use crate::ssh::{ChannelSlot, LoginUser};
use besip_shell::batch::{decode_command_list, run_list};
use besip_shell::editor::run_shell;
use besip_shell::stream::NetconfStream;
use besip_shell::{Session, ShellError};
use russh::server::Msg;
use russh::Channel;
use std::sync::Arc;
use tokio::io::{AsyncWriteExt, DuplexStream};

/// Start an in-process NETCONF session for `user` and exchange hellos with it.
async fn netconf_session(
    server: Arc<Server>,
    user: &LoginUser,
) -> Result<NetconfStream<DuplexStream>, ShellError> {
    let (netconf_end, shell_end) = tokio::io::duplex(1 << 20);
    tokio::spawn(crate::session::run(
        server,
        netconf_end,
        user.name.clone(),
        user.group,
        user.source.clone(),
    ));
    NetconfStream::start(shell_end).await
}

/// The interactive CLI on this channel until `exit`, Ctrl-D or disconnect.
pub fn spawn_interactive(
    server: Arc<Server>,
    channel: Channel<Msg>,
    slot: ChannelSlot,
    user: LoginUser,
) {
    tokio::spawn(async move {
        let _slot = slot;
        let (input, mut output) = tokio::io::split(channel.into_stream());
        let prompt = format!("{}@besip> ", user.name);
        match netconf_session(server, &user).await {
            Ok(mut netconf) => {
                if let Err(e) = run_shell(input, &mut output, &mut netconf, &prompt).await {
                    tracing::info!(error = %e, user = user.name, "CLI shell ended");
                }
                let _ = netconf.rpc("<close-session/>").await;
            }
            Err(e) => {
                let _ = output
                    .write_all(format!("error: the CLI could not start: {e}\r\n").as_bytes())
                    .await;
            }
        }
        let _ = output.shutdown().await;
    });
}

/// Run the command list of an exec request: output on the channel's
/// stdout, the error (if any) on its stderr, then the exit status with the
/// CLI's exit codes (0 ok, 1 command error, 2 usage, 3 session failure),
/// EOF and close. `terminal`: a pty was requested, so lines end in CRLF.
pub fn spawn_exec(
    server: Arc<Server>,
    channel: Channel<Msg>,
    slot: ChannelSlot,
    user: LoginUser,
    command: Vec<u8>,
    terminal: bool,
) {
    tokio::spawn(async move {
        let _slot = slot;
        let newline = if terminal { "\r\n" } else { "\n" };
        let result = exec(server, &channel, &user, &command, newline).await;
        let code = match result {
            Ok(()) => 0,
            Err(e) => {
                tracing::info!(user = user.name, error = %e, "SSH exec command failed");
                let text = e.to_string();
                let text = text.strip_prefix("error: ").unwrap_or(&text);
                let _ = channel
                    .extended_data_bytes(1, format!("error: {text}{newline}").into_bytes())
                    .await;
                e.exit_code()
            }
        };
        let _ = channel.exit_status(code as u32).await;
        let _ = channel.eof().await;
        let _ = channel.close().await;
    });
}

async fn exec(
    server: Arc<Server>,
    channel: &Channel<Msg>,
    user: &LoginUser,
    command: &[u8],
    newline: &str,
) -> Result<(), ShellError> {
    let list = decode_command_list(command)?;
    // The command itself is not logged: it may hold a password.
    tracing::info!(
        user = user.name,
        from = user.source,
        bytes = list.len(),
        "SSH exec"
    );
    let mut netconf = netconf_session(server, user).await?;
    let mut stdout = channel.make_writer();
    let result = run_list(&mut netconf, list, &mut stdout, newline).await;
    let _ = netconf.rpc("<close-session/>").await;
    result
}
