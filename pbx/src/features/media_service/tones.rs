//! What the media services play when they have no words: short tones
//! (ITU-style beeps) that a caller learns and a test can hear (Goertzel).

use besip_media::{tone, Frame, FRAME};

/// Hz and milliseconds of each signal.
pub const PIN_PROMPT: (f64, u32) = (440.0, 200);
pub const WRONG: (f64, u32) = (300.0, 600);
pub const JOIN: (f64, u32) = (880.0, 200);
pub const LEAVE: (f64, u32) = (660.0, 200);
pub const BEEP: (f64, u32) = (1000.0, 400);
pub const NONE_LEFT: (f64, u32) = (350.0, 600);
pub const MESSAGE_MARK: (f64, u32) = (1400.0, 100);

const AMPLITUDE: f64 = 6000.0;

/// Samples of a signal.
pub fn samples((frequency, ms): (f64, u32)) -> Vec<i16> {
    tone::sine(frequency, AMPLITUDE, ms)
}

/// Plays samples frame by frame.
#[derive(Default)]
pub struct Player {
    samples: Vec<i16>,
    at: usize,
}

impl Player {
    pub fn new(samples: Vec<i16>) -> Player {
        Player { samples, at: 0 }
    }

    /// Queues more after what is playing.
    pub fn queue(&mut self, more: &[i16]) {
        if self.at >= self.samples.len() {
            self.samples.clear();
            self.at = 0;
        }
        self.samples.extend_from_slice(more);
    }

    pub fn is_done(&self) -> bool {
        self.at >= self.samples.len()
    }

    /// The next frame (silence-padded at the end); None when done.
    pub fn next_frame(&mut self) -> Option<Frame> {
        if self.is_done() {
            return None;
        }
        let mut f = [0i16; FRAME];
        let end = (self.at + FRAME).min(self.samples.len());
        f[..end - self.at].copy_from_slice(&self.samples[self.at..end]);
        self.at = end;
        Some(f)
    }
}
