//! NETCONF 1.0 over any byte stream: base:1.0 end-of-message framing (we
//! advertise only 1.0, so both sides use `]]>]]>`; replies are small enough
//! that chunking buys nothing here). The CLI runs it over an SSH channel,
//! besip-netconfd over an in-process pipe to its own session handler.

use super::{Session, ShellError};
use besip_core::xml::Element;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const EOM: &[u8] = b"]]>]]>";
/// A reply larger than this is refused rather than buffered without end.
const MAX_REPLY: usize = 512 * 1024 * 1024;

fn conn(message: String) -> ShellError {
    ShellError::Connection { message }
}

/// A NETCONF 1.0 session over any byte stream: the SSH channel of
/// the CLI's SSH client, or an in-process pipe to a server's session handler
/// (how besip-netconfd can offer this shell on an SSH `shell` request).
pub struct NetconfStream<T> {
    stream: T,
    buffer: Vec<u8>,
    message_id: u64,
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> NetconfStream<T> {
    /// Exchange hellos on a fresh stream.
    pub async fn start(stream: T) -> Result<NetconfStream<T>, ShellError> {
        let mut client = NetconfStream {
            stream,
            buffer: Vec::new(),
            message_id: 0,
        };
        client
            .send(concat!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
                "<hello xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\"><capabilities>",
                "<capability>urn:ietf:params:netconf:base:1.0</capability>",
                "</capabilities></hello>"
            ))
            .await?;
        let hello = client.receive().await?;
        if !hello.contains("<hello") && !hello.contains(":hello") {
            return Err(conn(
                "the server did not start with a NETCONF <hello>".into(),
            ));
        }
        Ok(client)
    }

    async fn send(&mut self, text: &str) -> Result<(), ShellError> {
        self.stream
            .write_all(text.as_bytes())
            .await
            .map_err(|e| conn(format!("connection lost while sending: {e}")))?;
        self.stream
            .write_all(EOM)
            .await
            .map_err(|e| conn(format!("connection lost while sending: {e}")))?;
        self.stream
            .flush()
            .await
            .map_err(|e| conn(format!("connection lost while sending: {e}")))
    }

    async fn receive(&mut self) -> Result<String, ShellError> {
        let mut chunk = [0u8; 16384];
        loop {
            if let Some(end) = self.buffer.windows(EOM.len()).position(|w| w == EOM) {
                let message: Vec<u8> = self.buffer.drain(..end + EOM.len()).collect();
                return String::from_utf8(message[..end].to_vec())
                    .map_err(|_| conn("the server sent a reply that is not UTF-8".into()));
            }
            if self.buffer.len() > MAX_REPLY {
                return Err(conn("the server's reply is too large".into()));
            }
            let n = self
                .stream
                .read(&mut chunk)
                .await
                .map_err(|e| conn(format!("connection lost: {e}")))?;
            if n == 0 {
                return Err(conn("the server closed the NETCONF session".into()));
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Session for NetconfStream<T> {
    async fn rpc(&mut self, body: &str) -> Result<Element, ShellError> {
        self.message_id += 1;
        let id = self.message_id;
        self.send(&format!(
            "<rpc xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\" message-id=\"{id}\">{body}</rpc>"
        ))
        .await?;
        // Notifications are not subscribed to here, so the next message is our reply.
        let text = self.receive().await?;
        let elements = besip_core::xml::parse(&text)
            .map_err(|e| conn(format!("the server sent malformed XML: {e}")))?;
        elements
            .into_iter()
            .find(|e| e.name == "rpc-reply")
            .ok_or_else(|| conn("the server's answer is not an <rpc-reply>".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Framing over a pipe: hello exchange, a reply split across many reads,
    /// two replies in one burst, and a closed stream (exit code 3).
    #[tokio::test]
    async fn end_of_message_framing_over_a_pipe() {
        let (client_end, mut server_end) = tokio::io::duplex(4096);
        let server = tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut buf = [0u8; 256];
            let hello = b"<hello xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\"><capabilities/></hello>]]>]]>";
            server_end.write_all(hello).await.unwrap();
            let mut answered = false;
            loop {
                let n = server_end.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&seen).to_string();
                if !answered && text.matches("]]>]]>").count() == 2 {
                    answered = true;
                    let reply = "<rpc-reply xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\" message-id=\"1\"><data><x>1</x></data></rpc-reply>]]>]]><rpc-reply xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\" message-id=\"2\"><ok/></rpc-reply>]]>]]>";
                    for piece in reply.as_bytes().chunks(7) {
                        server_end.write_all(piece).await.unwrap();
                    }
                }
                if text.matches("]]>]]>").count() == 3 {
                    break;
                }
            }
            String::from_utf8_lossy(&seen).to_string()
        });
        let mut session = NetconfStream::start(client_end).await.unwrap();
        let reply = session.rpc("<get-config/>").await.unwrap();
        assert_eq!(reply.child("data").unwrap().children[0].name, "x");
        let reply = session.rpc("<commit/>").await.unwrap();
        assert!(reply.child("ok").is_some());
        let seen = server.await.unwrap();
        assert!(seen.contains("<capability>urn:ietf:params:netconf:base:1.0</capability>"));
        assert!(seen.contains("message-id=\"2\"><commit/></rpc>"), "{seen}");
        let e = session.rpc("<get/>").await.err().unwrap();
        assert_eq!(e.exit_code(), 3, "{e}");
    }
}
