//! WAV files (RIFF): recordings written as 16-bit PCM at 8 kHz, mono
//! (voicemail) or stereo (call recording, one party per channel); prompts
//! read from 16-bit PCM, A-law or µ-law at 8 kHz, checked before use since
//! they may come from an upload.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;

use snafu::{ensure, OptionExt, ResultExt, Snafu};

use crate::g711::Law;
use crate::RATE;

#[derive(Debug, Snafu)]
pub enum WavError {
    #[snafu(display("not a RIFF/WAVE file"))]
    NotWave,
    #[snafu(display("the WAV file has no {chunk} chunk"))]
    MissingChunk { chunk: &'static str },
    #[snafu(display(
        "unsupported WAV format: {what} (16-bit PCM, A-law or µ-law at 8000 Hz only)"
    ))]
    Unsupported { what: String },
    #[snafu(display("cannot write the WAV file: {source}"))]
    Write { source: io::Error },
}

/// Audio read from a WAV file, as 16-bit samples (interleaved when stereo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audio {
    pub channels: u16,
    pub samples: Vec<i16>,
}

impl Audio {
    /// Duration in milliseconds.
    pub fn millis(&self) -> u64 {
        self.samples.len() as u64 * 1000 / u64::from(RATE) / u64::from(self.channels.max(1))
    }

    /// One channel of a stereo file (0 left, 1 right); the mono file itself.
    pub fn channel(&self, index: usize) -> Vec<i16> {
        let n = usize::from(self.channels.max(1));
        self.samples
            .iter()
            .skip(index)
            .step_by(n)
            .copied()
            .collect()
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses a WAV file's bytes.
pub fn parse(bytes: &[u8]) -> Result<Audio, WavError> {
    ensure!(
        bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WAVE",
        NotWaveSnafu
    );
    let mut at = 12;
    let mut format: Option<(u16, u16, u32, u16)> = None;
    while let (Some(id), Some(size)) = (bytes.get(at..at + 4), u32_at(bytes, at + 4)) {
        let body_start = at + 8;
        let size = size as usize;
        let body_end = body_start.saturating_add(size).min(bytes.len());
        let body = &bytes[body_start..body_end];
        if id == b"fmt " {
            let f = (
                u16_at(body, 0),
                u16_at(body, 2),
                u32_at(body, 4),
                u16_at(body, 14),
            );
            let (Some(tag), Some(channels), Some(rate), Some(bits)) = f else {
                return Err(WavError::Unsupported {
                    what: "short fmt chunk".into(),
                });
            };
            format = Some((tag, channels, rate, bits));
        } else if id == b"data" {
            let (tag, channels, rate, bits) = format.context(MissingChunkSnafu { chunk: "fmt" })?;
            ensure!(
                rate == RATE && (1..=2).contains(&channels),
                UnsupportedSnafu {
                    what: format!("{channels} channels at {rate} Hz")
                }
            );
            let samples = match (tag, bits) {
                (1, 16) => body
                    .chunks_exact(2)
                    .map(|c| i16::from_le_bytes([c[0], c[1]]))
                    .collect(),
                (6, 8) => body.iter().map(|&b| Law::A.decode(b)).collect(),
                (7, 8) => body.iter().map(|&b| Law::Mu.decode(b)).collect(),
                _ => {
                    return Err(WavError::Unsupported {
                        what: format!("format tag {tag} with {bits} bits"),
                    })
                }
            };
            return Ok(Audio { channels, samples });
        }
        // Chunks are padded to an even size.
        at = body_start.saturating_add(size).saturating_add(size & 1);
    }
    Err(WavError::MissingChunk { chunk: "data" })
}

/// The bytes of a 16-bit PCM WAV file of `samples` (interleaved).
pub fn encode(channels: u16, samples: &[i16]) -> Vec<u8> {
    let mut v = header(channels, (samples.len() * 2) as u32).to_vec();
    for s in samples {
        v.extend_from_slice(&s.to_le_bytes());
    }
    v
}

fn header(channels: u16, data_len: u32) -> [u8; 44] {
    let mut h = [0u8; 44];
    let block = 2 * channels;
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(36 + data_len).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes());
    h[22..24].copy_from_slice(&channels.to_le_bytes());
    h[24..28].copy_from_slice(&RATE.to_le_bytes());
    h[28..32].copy_from_slice(&(RATE * u32::from(block)).to_le_bytes());
    h[32..34].copy_from_slice(&block.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_len.to_le_bytes());
    h
}

/// A recording written as it goes; the sizes in the header are right
/// after `finish` (and after every `flush`, so a crash leaves a playable file).
pub struct Writer {
    file: io::BufWriter<File>,
    channels: u16,
    data_len: u32,
}

impl Writer {
    pub fn create(path: &Path, channels: u16) -> Result<Writer, WavError> {
        let mut file = io::BufWriter::new(File::create(path).context(WriteSnafu)?);
        file.write_all(&header(channels, 0)).context(WriteSnafu)?;
        Ok(Writer {
            file,
            channels,
            data_len: 0,
        })
    }

    /// Appends samples (interleaved when stereo).
    pub fn write(&mut self, samples: &[i16]) -> Result<(), WavError> {
        for s in samples {
            self.file.write_all(&s.to_le_bytes()).context(WriteSnafu)?;
        }
        self.data_len = self.data_len.saturating_add(samples.len() as u32 * 2);
        Ok(())
    }

    /// Milliseconds written so far.
    pub fn millis(&self) -> u64 {
        u64::from(self.data_len) / 2 * 1000 / u64::from(RATE) / u64::from(self.channels)
    }

    pub fn flush(&mut self) -> Result<(), WavError> {
        let h = header(self.channels, self.data_len);
        self.file.flush().context(WriteSnafu)?;
        let f = self.file.get_mut();
        f.seek(SeekFrom::Start(0)).context(WriteSnafu)?;
        f.write_all(&h).context(WriteSnafu)?;
        f.seek(SeekFrom::End(0)).context(WriteSnafu)?;
        Ok(())
    }

    pub fn finish(mut self) -> Result<u64, WavError> {
        self.flush()?;
        self.file.get_mut().sync_all().context(WriteSnafu)?;
        Ok(self.millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_files_read_back() {
        let dir = std::env::temp_dir().join(format!("besip-wav-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.wav");
        let mut w = Writer::create(&path, 2).unwrap();
        w.write(&[1, -1, 2, -2]).unwrap();
        w.write(&[3, -3]).unwrap();
        assert_eq!(w.finish().unwrap(), 0);
        let audio = parse(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(audio.channels, 2);
        assert_eq!(audio.channel(0), vec![1, 2, 3]);
        assert_eq!(audio.channel(1), vec![-1, -2, -3]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn g711_files_are_decoded() {
        let mut v = encode(1, &[]);
        v[20] = 7; // µ-law
        v[34] = 8;
        v.truncate(36);
        v.extend_from_slice(b"data");
        v.extend_from_slice(&2u32.to_le_bytes());
        v.extend_from_slice(&[0xFF, 0x80]);
        assert_eq!(parse(&v).unwrap().samples, vec![0, 32124]);
    }

    #[test]
    fn wrong_files_get_a_clear_error() {
        assert!(matches!(parse(b"hello"), Err(WavError::NotWave)));
        let mut v = encode(1, &[0; 10]);
        v[24..28].copy_from_slice(&44100u32.to_le_bytes());
        assert!(parse(&v).unwrap_err().to_string().contains("44100 Hz"));
        let mut v = encode(1, &[0; 10]);
        v[12..16].copy_from_slice(b"junk");
        assert!(matches!(
            parse(&v),
            Err(WavError::MissingChunk { chunk: "fmt" })
        ));
        // A chunk size that runs past the end does not panic.
        let mut v = encode(1, &[0; 10]);
        v[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse(&v).is_err());
        for cut in 0..60 {
            let _ = parse(&encode(2, &[5; 20])[..cut.min(84)]);
        }
    }
}
