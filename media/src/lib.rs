//! The audio side of the box's own media services (conference bridges,
//! voicemail): codecs, packets, buffers and signal processing, with no
//! sockets and no SIP. The PBX's media endpoint drives it.

pub mod codec;
pub mod dtmf;
pub mod g711;
pub mod jitter;
pub mod mixer;
pub mod rtcp;
pub mod rtp;
pub mod tone;
pub mod wav;

/// Samples per second of every stream here (G.711, narrowband).
pub const RATE: u32 = 8000;
/// Samples of one 20 ms frame, the packet time of every stream here.
pub const FRAME: usize = 160;

/// One 20 ms frame of 16-bit linear audio.
pub type Frame = [i16; FRAME];

/// A frame of silence.
pub const SILENCE: Frame = [0; FRAME];
