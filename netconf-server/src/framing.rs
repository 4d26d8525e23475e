//! RFC 6242 message framing: end-of-message (`]]>]]>`, base:1.0) and chunked
//! (base:1.1), with a limit on the size of one message.

use tokio::io::{AsyncRead, AsyncReadExt};

const EOM: &[u8] = b"]]>]]>";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    EndOfMessage,
    Chunked,
}

#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The peer closed the channel.
    Closed,
    /// A message grew past the limit (bytes).
    TooBig(usize),
    /// Chunked framing that does not follow RFC 6242 §4.2.
    BadChunk(String),
    Io(String),
}

/// Reads whole messages from the SSH channel.
pub struct FrameReader<R> {
    reader: R,
    buffer: Vec<u8>,
    limit: usize,
    pub framing: Framing,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(reader: R, limit: usize) -> Self {
        FrameReader {
            reader,
            buffer: Vec::new(),
            limit,
            framing: Framing::EndOfMessage,
        }
    }

    async fn fill(&mut self) -> Result<(), FrameError> {
        let mut chunk = [0u8; 16384];
        let n = self
            .reader
            .read(&mut chunk)
            .await
            .map_err(|e| FrameError::Io(e.to_string()))?;
        if n == 0 {
            return Err(FrameError::Closed);
        }
        self.buffer.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// The next complete message (as text; invalid UTF-8 is replaced and then
    /// fails XML parsing as malformed-message).
    pub async fn next_message(&mut self) -> Result<String, FrameError> {
        match self.framing {
            Framing::EndOfMessage => self.next_eom().await,
            Framing::Chunked => self.next_chunked().await,
        }
    }

    async fn next_eom(&mut self) -> Result<String, FrameError> {
        let mut searched: usize = 0;
        loop {
            let start = searched.saturating_sub(EOM.len());
            if let Some(pos) = find(&self.buffer[start..], EOM) {
                let end = start + pos;
                let message = String::from_utf8_lossy(&self.buffer[..end]).into_owned();
                self.buffer.drain(..end + EOM.len());
                return Ok(message);
            }
            searched = self.buffer.len();
            if self.buffer.len() > self.limit + EOM.len() {
                return Err(FrameError::TooBig(self.limit));
            }
            self.fill().await?;
        }
    }

    async fn next_chunked(&mut self) -> Result<String, FrameError> {
        let mut message = Vec::new();
        let mut pos = 0;
        loop {
            // Chunk header "\n#<size>\n" or end of chunks "\n##\n".
            let header_end = loop {
                if self.buffer.len() > pos + 1 {
                    if let Some(i) = find(&self.buffer[pos + 1..], b"\n") {
                        break pos + 1 + i;
                    }
                }
                if self.buffer.len() - pos > 32 {
                    return Err(FrameError::BadChunk("chunk header too long".into()));
                }
                self.fill().await?;
            };
            if !self.buffer[pos..].starts_with(b"\n#") {
                // Skip leading whitespace before the very first header only.
                return Err(FrameError::BadChunk(
                    "expected a chunk header (\\n#<size>\\n)".into(),
                ));
            }
            let spec = &self.buffer[pos + 2..header_end];
            if spec == b"#" {
                self.buffer.drain(..header_end + 1);
                return Ok(String::from_utf8_lossy(&message).into_owned());
            }
            let size: usize = std::str::from_utf8(spec)
                .ok()
                .filter(|s| !s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse().ok())
                .filter(|&n: &usize| n > 0 && n <= 4_294_967_295)
                .ok_or_else(|| FrameError::BadChunk("bad chunk size".into()))?;
            if message.len() + size > self.limit {
                return Err(FrameError::TooBig(self.limit));
            }
            let data_start = header_end + 1;
            while self.buffer.len() < data_start + size {
                self.fill().await?;
            }
            message.extend_from_slice(&self.buffer[data_start..data_start + size]);
            pos = data_start + size;
            // Keep the buffer small while a large message streams in.
            self.buffer.drain(..pos);
            pos = 0;
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Frame one outgoing message.
pub fn encode(message: &str, framing: Framing) -> Vec<u8> {
    match framing {
        Framing::EndOfMessage => {
            let mut out = Vec::with_capacity(message.len() + 8);
            out.extend_from_slice(message.as_bytes());
            out.extend_from_slice(EOM);
            out
        }
        Framing::Chunked => {
            let mut out = Vec::with_capacity(message.len() + 32);
            for chunk in message.as_bytes().chunks(1 << 20) {
                out.extend_from_slice(format!("\n#{}\n", chunk.len()).as_bytes());
                out.extend_from_slice(chunk);
            }
            out.extend_from_slice(b"\n##\n");
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_eom_messages_split_anywhere() {
        let data = b"<a/>]]>]]><b/>]]>]]>".to_vec();
        let mut r = FrameReader::new(&data[..], 1000);
        assert_eq!(r.next_message().await.unwrap(), "<a/>");
        assert_eq!(r.next_message().await.unwrap(), "<b/>");
        assert_eq!(r.next_message().await, Err(FrameError::Closed));
    }

    #[tokio::test]
    async fn reads_chunked_messages() {
        let data = b"\n#4\n<rpc\n#3\n/>x\n##\n".to_vec();
        let mut r = FrameReader::new(&data[..], 1000);
        r.framing = Framing::Chunked;
        assert_eq!(r.next_message().await.unwrap(), "<rpc/>x");
        let round = encode("hello", Framing::Chunked);
        let mut r = FrameReader::new(&round[..], 1000);
        r.framing = Framing::Chunked;
        assert_eq!(r.next_message().await.unwrap(), "hello");
    }

    #[tokio::test]
    async fn refuses_bad_chunks_and_oversize() {
        let mut r = FrameReader::new(&b"\n#0\n\n##\n"[..], 1000);
        r.framing = Framing::Chunked;
        assert!(matches!(
            r.next_message().await,
            Err(FrameError::BadChunk(_))
        ));
        let big = vec![b'x'; 5000];
        let mut r = FrameReader::new(&big[..], 1000);
        assert_eq!(r.next_message().await, Err(FrameError::TooBig(1000)));
        let mut r = FrameReader::new(&b"\n#2000\n"[..], 1000);
        r.framing = Framing::Chunked;
        assert_eq!(r.next_message().await, Err(FrameError::TooBig(1000)));
    }
}
