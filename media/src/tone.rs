//! Tones the services play (beeps, join/leave chimes) and the Goertzel
//! filter that measures how much of a frequency a signal holds: the tests
//! and the benchmark hear with it, and it tells a tone from speech.

use crate::RATE;

/// A sine of `frequency` Hz at `amplitude`, continuing from `phase`
/// (samples already played).
pub fn sine_into(out: &mut [i16], frequency: f64, amplitude: f64, phase: &mut u64) {
    let step = std::f64::consts::TAU * frequency / f64::from(RATE);
    for s in out.iter_mut() {
        *s = (amplitude * (step * *phase as f64).sin()) as i16;
        *phase += 1;
    }
}

/// `ms` milliseconds of a sine.
pub fn sine(frequency: f64, amplitude: f64, ms: u32) -> Vec<i16> {
    let mut v = vec![0i16; (RATE * ms / 1000) as usize];
    sine_into(&mut v, frequency, amplitude, &mut 0);
    v
}

/// Power of `frequency` in `samples` (Goertzel), normalised by the length
/// so that a full-scale sine scores about 0.25 × amplitude².
pub fn goertzel(samples: &[i16], frequency: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let n = samples.len() as f64;
    // The exact frequency, not the nearest DFT bin: short frames would
    // otherwise miss a tone between two bins.
    let w = std::f64::consts::TAU * frequency / f64::from(RATE);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (n * n)
}

/// Mean power of `samples` (the same scale as `goertzel` for a sine: half).
pub fn power(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / samples.len() as f64
}

/// True when `frequency` carries at least a `share` of the signal's power.
pub fn holds(samples: &[i16], frequency: f64, share: f64) -> bool {
    let total = power(samples);
    // A sine of power P scores P/2 in Goertzel's normalised form.
    total > 1.0 && 2.0 * goertzel(samples, frequency) >= share * total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tone_is_heard_and_others_are_not() {
        let t = sine(697.0, 8000.0, 200);
        assert!(holds(&t, 697.0, 0.8));
        assert!(!holds(&t, 1209.0, 0.1));
        let mut mixed = sine(440.0, 6000.0, 200);
        for (m, x) in mixed.iter_mut().zip(sine(1000.0, 6000.0, 200)) {
            *m += x;
        }
        assert!(holds(&mixed, 440.0, 0.3) && holds(&mixed, 1000.0, 0.3));
        assert!(!holds(&mixed, 700.0, 0.1));
        assert!(!holds(&[0; 160], 440.0, 0.1), "silence holds nothing");
    }

    #[test]
    fn phase_continues_across_frames() {
        let whole = sine(500.0, 1000.0, 40);
        let mut parts = vec![0i16; 320];
        let mut phase = 0;
        sine_into(&mut parts[..160], 500.0, 1000.0, &mut phase);
        sine_into(&mut parts[160..], 500.0, 1000.0, &mut phase);
        assert_eq!(whole, parts);
    }
}
