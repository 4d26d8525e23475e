//! The SSH side (russh): host key, password and public-key authentication
//! against besip-system users, the session limit, a bounded number of
//! channels per connection, the `netconf` subsystem, and the command shell
//! (`shell` and `exec` requests, run by `ssh_shell`). Accepting connections
//! (grace time, per-source limit) is in `ssh_accept`.

use crate::server::{Group, Server};
use crate::users;
use russh::keys::{PrivateKey, PublicKey};
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelOpenFailure, MethodKind, MethodSet};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::watch;

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
    // A seed from the OS generator (russh's key type wants a newer rand_core than ours).
    let mut seed = [0u8; 32];
    rand::RngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut seed)
        .map_err(|e| format!("cannot generate an SSH host key: {e}"))?;
    let key = PrivateKey::from(russh::keys::ssh_key::private::Ed25519Keypair::from_seed(
        &seed,
    ));
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
        methods: methods(),
        auth_rejection_time: std::time::Duration::from_millis(300),
        auth_rejection_time_initial: Some(std::time::Duration::from_millis(0)),
        inactivity_timeout: server.settings.idle_timeout,
        max_auth_attempts: 6,
        nodelay: true,
        ..Default::default()
    }
}

/// Session channels one SSH connection may hold open at once (NETCONF needs
/// one; a few more for clients that open a shell beside it).
pub const MAX_CHANNELS_PER_CONNECTION: usize = 4;

/// One open session channel of a connection; dropping it frees the place.
pub struct ChannelSlot(Arc<AtomicUsize>);

impl Drop for ChannelSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Who a channel's session runs as, and from where (for the session list).
pub struct LoginUser {
    pub name: String,
    pub group: Group,
    pub source: String,
}

pub struct Connection {
    server: Arc<Server>,
    peer: SocketAddr,
    user: Option<(String, Group)>,
    /// Channels opened but not yet given a subsystem, shell or command.
    channels: HashMap<ChannelId, (Channel<Msg>, ChannelSlot)>,
    /// Channels that asked for a pty (exec output then ends lines in CRLF).
    terminals: HashSet<ChannelId>,
    /// Session channels open, including those running a subsystem or shell.
    open_channels: Arc<AtomicUsize>,
    /// Tells the accept loop the login succeeded (ends the grace time).
    logged_in: watch::Sender<bool>,
    /// Whether this connection counts against max-sessions.
    counted: bool,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if self.counted {
            self.server.connections.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// The login methods offered: public key and password.
fn methods() -> MethodSet {
    MethodSet::from(&[MethodKind::PublicKey, MethodKind::Password][..])
}

/// Refuse this attempt but keep offering both methods (russh would drop
/// `password` after one wrong password, unlike OpenSSH's retries).
fn reject() -> Auth {
    Auth::Reject {
        proceed_with_methods: Some(methods()),
        partial_success: false,
    }
}

fn same_key(stored: &str, offered: &PublicKey) -> bool {
    PublicKey::from_openssh(stored)
        .map(|k| k.key_data() == offered.key_data())
        .unwrap_or(false)
}

impl Connection {
    pub fn new(server: Arc<Server>, peer: SocketAddr, logged_in: watch::Sender<bool>) -> Self {
        Connection {
            server,
            peer,
            user: None,
            channels: HashMap::new(),
            terminals: HashSet::new(),
            open_channels: Arc::new(AtomicUsize::new(0)),
            logged_in,
            counted: false,
        }
    }

    /// The logged-in user and a channel not yet running anything, taken
    /// out to run a shell or command.
    fn take_channel(&mut self, id: ChannelId) -> Option<(LoginUser, Channel<Msg>, ChannelSlot)> {
        let (name, group) = self.user.clone()?;
        let (channel, slot) = self.channels.remove(&id)?;
        let source = self.peer.ip().to_string();
        Some((
            LoginUser {
                name,
                group,
                source,
            },
            channel,
            slot,
        ))
    }

    async fn key_allowed(&self, user: &str, key: &PublicKey) -> Option<Group> {
        let store = self.server.store.lock().await;
        let u = users::find_user(&store, user)?;
        u.ssh_keys
            .iter()
            .any(|k| same_key(k, key))
            .then_some(u.group)
    }

    /// The one place an SSH login succeeds (password or key): the session
    /// limit applies here, to logged-in connections only.
    fn login_succeeded(&mut self, user: &str, group: Group, method: &str) -> Auth {
        let open = self.server.connections.fetch_add(1, Ordering::SeqCst) + 1;
        if open as usize > self.server.settings.max_sessions {
            self.server.connections.fetch_sub(1, Ordering::SeqCst);
            self.server.dropped_sessions.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                peer = %self.peer,
                user,
                open,
                "session limit reached (besip-system netconf/max-sessions); refusing"
            );
            return reject();
        }
        self.counted = true;
        self.user = Some((user.to_owned(), group));
        let _ = self.logged_in.send(true);
        crate::protect::protect_login_source(&self.server, Some(self.peer));
        tracing::info!(peer = %self.peer, user, method, "SSH login");
        Auth::Accept
    }

    async fn check_password(&self, user: &str, password: &str) -> Option<Group> {
        let found = {
            let store = self.server.store.lock().await;
            users::find_user(&store, user)
        };
        let Some(found) = found else {
            tracing::info!(user, peer = %self.peer, "login refused: unknown user");
            return None;
        };
        let hash = found.password_hash.clone()?;
        let password = password.to_owned();
        let ok =
            tokio::task::spawn_blocking(move || besip_core::password::verify(&hash, &password))
                .await
                .unwrap_or(false);
        if !ok {
            tracing::info!(user, peer = %self.peer, "login refused: wrong password");
        }
        ok.then_some(found.group)
    }
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        if self.user.is_some() {
            return Ok(reject());
        }
        let attempt = match self.server.login_throttle.begin(self.peer.ip(), user) {
            Ok(attempt) => attempt,
            Err(wait) => {
                tracing::info!(user, peer = %self.peer, wait_s = wait.as_secs_f32(),
                    "login refused without checking the password: failed attempts from this source delay the next one");
                return Ok(reject());
            }
        };
        match self.check_password(user, password).await {
            Some(group) => {
                self.server.login_throttle.succeeded(attempt);
                Ok(self.login_succeeded(user, group, "password"))
            }
            None => Ok(reject()),
        }
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        if self.user.is_some() || self.key_allowed(user, offer.public_key).await.is_none() {
            return Ok(reject());
        }
        Ok(Auth::Accept)
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        if self.user.is_some() {
            return Ok(reject());
        }
        match self.key_allowed(user, key.public_key).await {
            Some(group) => Ok(self.login_succeeded(user, group, "publickey")),
            None => Ok(reject()),
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.user.is_none() {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        let open = self.open_channels.fetch_add(1, Ordering::SeqCst) + 1;
        let slot = ChannelSlot(self.open_channels.clone());
        if open > MAX_CHANNELS_PER_CONNECTION {
            tracing::info!(peer = %self.peer, limit = MAX_CHANNELS_PER_CONNECTION, "session channel refused: too many open on this connection");
            drop(slot);
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        }
        self.channels.insert(channel.id(), (channel, slot));
        reply.accept().await;
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        self.terminals.remove(&channel);
        Ok(())
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
            self.terminals.insert(channel);
            session.channel_success(channel)?;
        } else {
            session.channel_failure(channel)?;
        }
        Ok(())
    }

    /// `ssh -p 830 admin@box`: the unified CLI as the login shell (see `ssh_shell`).
    async fn shell_request(
        &mut self,
        id: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some((user, channel, slot)) = self.take_channel(id) else {
            session.channel_failure(id)?;
            return Ok(());
        };
        session.channel_success(id)?;
        crate::ssh_shell::spawn_interactive(self.server.clone(), channel, slot, user);
        Ok(())
    }

    /// `ssh -p 830 admin@box 'show pbx registrations'`: one command list,
    /// its output and the CLI's exit code (see `ssh_shell`). The command
    /// arrives in one SSH packet, whose size russh bounds; the shell refuses
    /// a list over `besip_shell::batch::MAX_COMMAND_LIST` with an error.
    async fn exec_request(
        &mut self,
        id: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let terminal = self.terminals.contains(&id);
        let Some((user, channel, slot)) = self.take_channel(id) else {
            tracing::info!(peer = %self.peer, "exec request refused: the channel already runs a shell or subsystem");
            session.channel_failure(id)?;
            return Ok(());
        };
        session.channel_success(id)?;
        crate::ssh_shell::spawn_exec(
            self.server.clone(),
            channel,
            slot,
            user,
            data.to_vec(),
            terminal,
        );
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        id: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some((user, channel, slot)) = self.take_channel(id) else {
            session.channel_failure(id)?;
            return Ok(());
        };
        if name != "netconf" {
            tracing::info!(subsystem = name, "unknown SSH subsystem refused");
            session.channel_failure(id)?;
            return Ok(());
        }
        session.channel_success(id)?;
        let server = self.server.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let LoginUser {
                name,
                group,
                source,
            } = user;
            crate::session::run(server, channel.into_stream(), name, group, source).await;
        });
        Ok(())
    }
}
