//! NETCONF over SSH client (russh): host key check, password login,
//! subsystem `netconf`; the NETCONF framing is the shell's [`NetconfStream`].

use crate::known_hosts::{self, HostKeyPolicy, Verdict};
use besip_core::xml::Element;
use besip_shell::stream::NetconfStream;
use besip_shell::{Session, ShellError};
use russh::client;
use russh::ChannelStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Checks the box's host key against the known-hosts file (see
/// [`known_hosts`]); a refusal is kept for the error message.
struct Handler {
    policy: HostKeyPolicy,
    name: String,
    host: String,
    port: u16,
    refusal: Arc<Mutex<Option<String>>>,
}

impl client::Handler for Handler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        offered: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = offered.public_key();
        let refusal = match known_hosts::check(&self.policy, &self.name, &key) {
            Ok(Verdict::Known) => return Ok(true),
            Ok(Verdict::Stored) => {
                eprintln!(
                    "besip: stored the host key of {} ({}) in {}",
                    self.name,
                    known_hosts::fingerprint(&key),
                    self.policy.file.display()
                );
                return Ok(true);
            }
            Ok(Verdict::Replaced) => {
                eprintln!(
                    "besip: replaced the stored host key of {} with {} in {}",
                    self.name,
                    known_hosts::fingerprint(&key),
                    self.policy.file.display()
                );
                return Ok(true);
            }
            Ok(Verdict::Changed { line, stored }) => format!(
                "the host key of {name} has changed: {file} line {line} holds {stored}, the box offers {offered}. \
                 Someone may be intercepting the connection, or the box was reinstalled. \
                 If you trust the new key, accept it with --accept-new-host-key (besip --host {host} --port {port} --accept-new-host-key) \
                 or remove line {line} from {file}",
                name = self.name,
                file = self.policy.file.display(),
                offered = known_hosts::fingerprint(&key),
                host = self.host,
                port = self.port,
            ),
            Err(e) => format!("cannot check the host key of {}: {e}", self.name),
        };
        *self.refusal.lock().unwrap_or_else(|e| e.into_inner()) = Some(refusal);
        Ok(false)
    }
}

/// NETCONF over SSH to a box.
pub struct NetconfClient {
    inner: NetconfStream<ChannelStream<client::Msg>>,
    _handle: client::Handle<Handler>,
}

fn conn(message: String) -> ShellError {
    ShellError::Connection { message }
}

impl NetconfClient {
    /// Connect, check the host key, log in and exchange hellos.
    pub async fn connect(
        host: &str,
        port: u16,
        user: &str,
        password: &str,
        host_keys: &HostKeyPolicy,
    ) -> Result<NetconfClient, ShellError> {
        let config = Arc::new(client::Config {
            inactivity_timeout: None,
            ..Default::default()
        });
        let refusal = Arc::new(Mutex::new(None));
        let handler = Handler {
            policy: host_keys.clone(),
            name: known_hosts::host_name(host, port),
            host: host.to_owned(),
            port,
            refusal: refusal.clone(),
        };
        let connect = client::connect(config, (host, port), handler);
        let mut handle = tokio::time::timeout(Duration::from_secs(20), connect)
            .await
            .map_err(|_| conn(format!("no SSH answer from {host}:{port} within 20 s")))?
            .map_err(
                |e| match refusal.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    Some(why) => conn(why),
                    None => conn(format!("cannot connect to {host}:{port}: {e}")),
                },
            )?;
        let auth = handle
            .authenticate_password(user, password)
            .await
            .map_err(|e| conn(format!("SSH login to {host}:{port} failed: {e}")))?;
        if !auth.success() {
            return Err(conn(format!(
                "login refused for user '{user}' on {host}:{port}: check the user name and password"
            )));
        }
        let channel = handle
            .channel_open_session()
            .await
            .map_err(|e| conn(format!("cannot open an SSH session channel: {e}")))?;
        channel
            .request_subsystem(true, "netconf")
            .await
            .map_err(|e| conn(format!("the server has no netconf subsystem: {e}")))?;
        let inner = NetconfStream::start(channel.into_stream()).await?;
        Ok(NetconfClient {
            inner,
            _handle: handle,
        })
    }

    /// Close the session politely.
    pub async fn close(mut self) {
        let _ = self.rpc("<close-session/>").await;
    }
}

impl Session for NetconfClient {
    async fn rpc(&mut self, body: &str) -> Result<Element, ShellError> {
        self.inner.rpc(body).await
    }
}
