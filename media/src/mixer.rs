//! N-party mixing of a conference room: everyone hears the sum of the
//! others (never themselves), clipped to 16 bits. One pass sums all
//! speakers; each listener's frame is that sum minus its own.

use crate::{Frame, FRAME};

/// Mixes one 20 ms tick. `inputs[i]` is what participant i said (None:
/// nothing this tick, or muted); `outputs` gets, for each participant, what
/// it hears.
pub fn mix(inputs: &[Option<&Frame>], outputs: &mut Vec<Frame>) {
    let mut sum = [0i32; FRAME];
    for f in inputs.iter().flatten() {
        for (s, &x) in sum.iter_mut().zip(f.iter()) {
            *s += i32::from(x);
        }
    }
    outputs.clear();
    outputs.extend(inputs.iter().map(|own| {
        let mut out = [0i16; FRAME];
        match own {
            Some(own) => {
                for ((o, &s), &x) in out.iter_mut().zip(sum.iter()).zip(own.iter()) {
                    *o = clip(s - i32::from(x));
                }
            }
            None => {
                for (o, &s) in out.iter_mut().zip(sum.iter()) {
                    *o = clip(s);
                }
            }
        }
        out
    }));
}

fn clip(v: i32) -> i16 {
    v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nobody_hears_themselves() {
        let a = [100i16; FRAME];
        let b = [20i16; FRAME];
        let c = [3i16; FRAME];
        let mut out = Vec::new();
        mix(&[Some(&a), Some(&b), Some(&c), None], &mut out);
        assert_eq!(out[0][0], 23);
        assert_eq!(out[1][0], 103);
        assert_eq!(out[2][0], 120);
        assert_eq!(out[3][0], 123, "a silent listener hears everyone");
    }

    #[test]
    fn loud_sums_clip() {
        let loud = [30000i16; FRAME];
        let mut out = Vec::new();
        mix(&[Some(&loud), Some(&loud), Some(&loud)], &mut out);
        assert_eq!(out[0][0], i16::MAX);
        let quiet = [-30000i16; FRAME];
        mix(&[Some(&quiet), Some(&quiet), Some(&quiet)], &mut out);
        assert_eq!(out[0][0], i16::MIN);
    }
}
