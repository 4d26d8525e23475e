//! RFC 2782 target selection: lowest priority first; within one priority a
//! weighted random order (a record of weight 0 is picked only when nothing
//! heavier is left, mostly last).

/// One SRV record as the order needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

/// `records` in the order to try them; `random(n)` gives a number in `0..n`
/// (injected so the order can be tested).
pub fn order(mut records: Vec<SrvRecord>, mut random: impl FnMut(u32) -> u32) -> Vec<SrvRecord> {
    records.sort_by_key(|r| r.priority);
    let mut out = Vec::with_capacity(records.len());
    let mut rest = records.as_slice();
    while let Some(first) = rest.first() {
        let same = rest
            .iter()
            .take_while(|r| r.priority == first.priority)
            .count();
        let (group, tail) = rest.split_at(same);
        // RFC 2782: zero weights first, then a running sum over the rest.
        let mut group: Vec<SrvRecord> = group.to_vec();
        group.sort_by_key(|r| r.weight != 0);
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            let pick = random(total + 1);
            let mut sum = 0u32;
            let mut chosen = group.len() - 1;
            for (i, r) in group.iter().enumerate() {
                sum += u32::from(r.weight);
                if sum >= pick {
                    chosen = i;
                    break;
                }
            }
            out.push(group.remove(chosen));
        }
        rest = tail;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(priority: u16, weight: u16, target: &str) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            port: 5060,
            target: target.into(),
        }
    }

    fn names(v: &[SrvRecord]) -> Vec<&str> {
        v.iter().map(|r| r.target.as_str()).collect()
    }

    #[test]
    fn lower_priority_always_first() {
        let recs = vec![rec(20, 100, "c"), rec(10, 1, "a"), rec(10, 1, "b")];
        for seed in 0..50u32 {
            let mut n = seed;
            let o = order(recs.clone(), |m| {
                n = n.wrapping_mul(1_103_515_245).wrapping_add(12345);
                n % m
            });
            assert_eq!(o[2].target, "c");
            assert!(names(&o[..2]).contains(&"a") && names(&o[..2]).contains(&"b"));
        }
    }

    #[test]
    fn weights_share_the_first_place() {
        let recs = vec![
            rec(10, 90, "heavy"),
            rec(10, 10, "light"),
            rec(10, 0, "zero"),
        ];
        let mut firsts = std::collections::HashMap::new();
        let mut n = 7u32;
        for _ in 0..10_000 {
            let o = order(recs.clone(), |m| {
                n = n.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (n >> 8) % m
            });
            *firsts.entry(o[0].target.clone()).or_insert(0u32) += 1;
        }
        let heavy = firsts.get("heavy").copied().unwrap_or(0);
        let light = firsts.get("light").copied().unwrap_or(0);
        assert!((8_000..9_700).contains(&heavy), "{firsts:?}");
        assert!((500..2_000).contains(&light), "{firsts:?}");
        assert!(firsts.get("zero").copied().unwrap_or(0) < 200, "{firsts:?}");
    }

    #[test]
    fn all_zero_weights_still_give_every_record() {
        let recs = vec![rec(1, 0, "a"), rec(1, 0, "b"), rec(1, 0, "c")];
        let o = order(recs, |m| m - 1);
        assert_eq!(o.len(), 3);
    }
}
