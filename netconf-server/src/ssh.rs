//! The SSH side (russh): host key, password and public-key authentication
//! against besip-system users, the session limit, and the `netconf` subsystem.

use crate::server::{Group, Server};
use crate::users;
use russh::keys::{PrivateKey, PublicKey};
use russh::server::{Auth, Msg, Session};
use russh::{Channel, ChannelId, MethodKind, MethodSet};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Load the ed25519 host key, generating it on first start (mode 0600).
pub fn host_key(path: &Path) -> Result<PrivateKey, String> {
    if path.exists() {
        return russh::keys::load_secret_key(path, None).map_err(|e| {
            format!(
                "cannot load the SSH host key {}: {e}; remove it to generate a new one",
                path.display()
            )
        });
    }
    let key = PrivateKey::random(
        &mut russh::keys::ssh_key::rand_core::OsRng,
        russh::keys::Algorithm::Ed25519,
    )
    .map_err(|e| format!("cannot generate an SSH host key: {e}"))?;
    let text = key
        .to_openssh(russh::keys::ssh_key::LineEnding::LF)
        .map_err(|e| format!("cannot encode the SSH host key: {e}"))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        f.write_all(text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    tracing::info!(path = %path.display(), "generated a new SSH host key");
    Ok(key)
}

pub fn config(key: PrivateKey, server: &Server) -> russh::server::Config {
    russh::server::Config {
        keys: vec![key],
        methods: MethodSet::from(&[MethodKind::PublicKey, MethodKind::Password][..]),
        auth_rejection_time: std::time::Duration::from_millis(300),
        auth_rejection_time_initial: Some(std::time::Duration::from_millis(0)),
        inactivity_timeout: server.settings.idle_timeout,
        max_auth_attempts: 6,
        nodelay: true,
        ..Default::default()
    }
}

#[derive(Clone)]
pub struct SshServer {
    pub server: Arc<Server>,
}

impl russh::server::Server for SshServer {
    type Handler = Connection;

    fn new_client(&mut self, peer: Option<SocketAddr>) -> Connection {
        let open = self.server.connections.fetch_add(1, Ordering::SeqCst) + 1;
        let over_limit = open as usize > self.server.settings.max_sessions;
        if over_limit {
            self.server.dropped_sessions.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                ?peer,
                open,
                "session limit reached (besip-system netconf/max-sessions); refusing"
            );
        }
        Connection {
            server: self.server.clone(),
            peer,
            user: None,
            channels: HashMap::new(),
            over_limit,
        }
    }
}

pub struct Connection {
    server: Arc<Server>,
    peer: Option<SocketAddr>,
    user: Option<(String, Group)>,
    channels: HashMap<ChannelId, Channel<Msg>>,
    over_limit: bool,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.server.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

fn reject() -> Auth {
    Auth::Reject {
        proceed_with_methods: None,
    }
}

fn same_key(stored: &str, offered: &PublicKey) -> bool {
    PublicKey::from_openssh(stored)
        .map(|k| k.key_data() == offered.key_data())
        .unwrap_or(false)
}

impl Connection {
    async fn key_allowed(&self, user: &str, key: &PublicKey) -> Option<Group> {
        let store = self.server.store.lock().await;
        let u = users::find_user(&store, user)?;
        u.ssh_keys
            .iter()
            .any(|k| same_key(k, key))
            .then_some(u.group)
    }
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        if self.over_limit {
            return Ok(reject());
        }
        let found = {
            let store = self.server.store.lock().await;
            users::find_user(&store, user)
        };
        let Some(found) = found else {
            tracing::info!(user, peer = ?self.peer, "login refused: unknown user");
            return Ok(reject());
        };
        let Some(hash) = found.password_hash.clone() else {
            return Ok(reject());
        };
        let password = password.to_owned();
        let ok =
            tokio::task::spawn_blocking(move || besip_core::password::verify(&hash, &password))
                .await
                .unwrap_or(false);
        if ok {
            self.user = Some((found.name, found.group));
            crate::protect::protect_login_source(&self.server, self.peer);
            Ok(Auth::Accept)
        } else {
            tracing::info!(user, peer = ?self.peer, "login refused: wrong password");
            Ok(reject())
        }
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        key: &PublicKey,
    ) -> Result<Auth, Self::Error> {
        if self.over_limit || self.key_allowed(user, key).await.is_none() {
            return Ok(reject());
        }
        Ok(Auth::Accept)
    }

    async fn auth_publickey(&mut self, user: &str, key: &PublicKey) -> Result<Auth, Self::Error> {
        if self.over_limit {
            return Ok(reject());
        }
        match self.key_allowed(user, key).await {
            Some(group) => {
                self.user = Some((user.to_owned(), group));
                crate::protect::protect_login_source(&self.server, self.peer);
                Ok(Auth::Accept)
            }
            None => Ok(reject()),
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        if self.user.is_none() {
            return Ok(false);
        }
        self.channels.insert(channel.id(), channel);
        Ok(true)
    }

    /// A terminal for the interactive CLI: accepted (the shell draws its own line).
    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.user.is_some() && self.channels.contains_key(&channel) {
            session.channel_success(channel)?;
        } else {
            session.channel_failure(channel)?;
        }
        Ok(())
    }

    /// `ssh -p 830 admin@box`: the unified CLI as the login shell. It talks
    /// NETCONF to an in-process session of this user, so the user's group
    /// rights apply exactly as for any NETCONF client.
    async fn shell_request(
        &mut self,
        id: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (Some((user, group)), Some(channel)) = (self.user.clone(), self.channels.remove(&id))
        else {
            session.channel_failure(id)?;
            return Ok(());
        };
        session.channel_success(id)?;
        let source = self.peer.map(|p| p.ip().to_string()).unwrap_or_default();
        let (netconf_end, shell_end) = tokio::io::duplex(1 << 20);
        tokio::spawn(crate::session::run(
            self.server.clone(),
            netconf_end,
            user.clone(),
            group,
            source,
        ));
        tokio::spawn(async move {
            let (input, mut output) = tokio::io::split(channel.into_stream());
            let prompt = format!("{user}@besip> ");
            match besip_cli::shell::client::NetconfStream::start(shell_end).await {
                Ok(mut netconf) => {
                    if let Err(e) = besip_cli::shell::editor::run_shell(
                        input,
                        &mut output,
                        &mut netconf,
                        &prompt,
                    )
                    .await
                    {
                        tracing::info!(error = %e, user, "CLI shell ended");
                    }
                }
                Err(e) => {
                    use tokio::io::AsyncWriteExt;
                    let _ = output
                        .write_all(format!("error: the CLI could not start: {e}\r\n").as_bytes())
                        .await;
                }
            }
            use tokio::io::AsyncWriteExt;
            let _ = output.shutdown().await;
        });
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        id: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (Some((user, group)), Some(channel)) = (self.user.clone(), self.channels.remove(&id))
        else {
            session.channel_failure(id)?;
            return Ok(());
        };
        if name != "netconf" {
            tracing::info!(subsystem = name, "unknown SSH subsystem refused");
            session.channel_failure(id)?;
            return Ok(());
        }
        session.channel_success(id)?;
        let source = self.peer.map(|p| p.ip().to_string()).unwrap_or_default();
        let server = self.server.clone();
        tokio::spawn(crate::session::run(
            server,
            channel.into_stream(),
            user,
            group,
            source,
        ));
        Ok(())
    }
}
