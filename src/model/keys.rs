//! Keyed records: how many keys a workload's records carry and how the
//! records are spread over them ([`KeyDist`]). Which partition a key goes
//! to, and drawing the keys, is the load's (`load::keys`).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a record without a key goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Partitioner {
    /// klab picks: record i to partition `i % partitions`. Every batch
    /// holds a third of what it would with one partition per batch, so
    /// the load makes more, smaller requests than a real client's.
    #[default]
    RoundRobin,
    /// The client picks, as librdkafka (and the Java client since
    /// KIP-480) does for keyless records: one partition, chosen at random,
    /// takes every record for `sticky.partitioning.linger.ms` (librdkafka's
    /// default: twice `linger.ms`; 0 makes it random per record), then
    /// another; a partition without a leader is left at once.
    Sticky,
}

named_by_word!(Partitioner, "a partitioner", {
    RoundRobin => "round_robin",
    Sticky => "sticky",
});

impl Partitioner {
    /// True for the default, which a result's JSON leaves out.
    pub fn is_default(&self) -> bool {
        *self == Partitioner::default()
    }
}

/// The most keys a workload may have: each producer works out every key's
/// partition (and for Zipf its cumulative share) before the run, 12 bytes
/// a key.
pub const MAX_KEYS: u32 = 100_000;

/// How records are spread over the keys `k0`..`k<N-1>`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KeyDist {
    /// Every key equally likely.
    Uniform,
    /// Key `k<i>` with a weight of `1/(i+1)^S` (S above 0): `k0` is the
    /// most frequent, and the larger S, the steeper the fall.
    Zipf(f64),
    /// `k0` takes this percentage of the records (in (0, 100]); the rest
    /// are spread evenly over the other keys.
    Hot(f64),
}

impl KeyDist {
    /// The share (0..=1) of the records each key `k0`..`k<keys-1>` gets.
    pub fn shares(&self, keys: u32) -> Vec<f64> {
        let n = keys.max(1);
        match *self {
            KeyDist::Uniform => vec![1.0 / f64::from(n); n as usize],
            KeyDist::Zipf(s) => {
                let weights: Vec<f64> = (1..=n).map(|r| f64::from(r).powf(-s)).collect();
                let total: f64 = weights.iter().sum();
                weights.into_iter().map(|w| w / total).collect()
            }
            KeyDist::Hot(pct) => {
                let rest = (1.0 - pct / 100.0) / f64::from(n - 1).max(1.0);
                let mut v = vec![rest; n as usize];
                v[0] = pct / 100.0;
                v
            }
        }
    }

    /// The share (0..=1) of the records key `k<i>` of `keys` gets.
    pub fn share(&self, i: u32, keys: u32) -> f64 {
        self.shares(keys).get(i as usize).copied().unwrap_or(0.0)
    }

    /// Checks the distribution against the number of keys; the error says
    /// what is allowed (without the field's name).
    pub fn check(&self, keys: u32) -> Result<(), String> {
        match *self {
            KeyDist::Uniform => Ok(()),
            KeyDist::Zipf(s) if !(s.is_finite() && s > 0.0) => Err(format!(
                "zipf:{s} is not allowed; the exponent must be above 0 (e.g. zipf:1.1)"
            )),
            KeyDist::Hot(p) if !(p.is_finite() && p > 0.0 && p <= 100.0) => Err(format!(
                "hot:{p} is not allowed; the hot key's share is a percentage in (0, 100]"
            )),
            KeyDist::Hot(p) if keys < 2 && p < 100.0 => Err(format!(
                "hot:{p} needs at least 2 keys (the hot one and the rest); keys is {keys}"
            )),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for KeyDist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyDist::Uniform => f.write_str("uniform"),
            KeyDist::Zipf(s) => write!(f, "zipf:{s}"),
            KeyDist::Hot(p) => write!(f, "hot:{p}"),
        }
    }
}

const ALLOWED: &str =
    "uniform, zipf:S (an exponent above 0) or hot:SHARE (a percentage in (0, 100])";

impl std::str::FromStr for KeyDist {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "uniform" {
            return Ok(KeyDist::Uniform);
        }
        let (kind, arg) = s
            .split_once(':')
            .ok_or_else(|| format!("'{s}' is not a key distribution; allowed: {ALLOWED}"))?;
        let number: f64 = arg
            .trim()
            .trim_end_matches('%')
            .trim()
            .parse()
            .map_err(|_| format!("'{s}': '{arg}' is not a number; allowed: {ALLOWED}"))?;
        let d = match kind.trim() {
            "zipf" => KeyDist::Zipf(number),
            "hot" => KeyDist::Hot(number),
            _ => {
                return Err(format!(
                    "'{s}' is not a key distribution; allowed: {ALLOWED}"
                ));
            }
        };
        // The number's own range; the number of keys is checked later.
        d.check(u32::MAX)?;
        Ok(d)
    }
}

impl Serialize for KeyDist {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KeyDist {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The bytes of key `k<i>`: the letter k and `i` in decimal ASCII.
pub fn key_bytes(i: u32) -> Vec<u8> {
    format!("k{i}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributions_read_back_as_they_are_written() {
        for text in ["uniform", "zipf:1.1", "hot:50", "hot:100", "zipf:0.5"] {
            let d: KeyDist = text.parse().unwrap();
            assert_eq!(d.to_string(), text);
            let json = serde_json::to_string(&d).unwrap();
            assert_eq!(serde_json::from_str::<KeyDist>(&json).unwrap(), d);
        }
        assert_eq!("hot:48%".parse::<KeyDist>(), Ok(KeyDist::Hot(48.0)));
    }

    #[test]
    fn impossible_distributions_say_what_is_allowed() {
        for (text, says) in [
            ("zipf:0", "above 0"),
            ("zipf:-1", "above 0"),
            ("zipf:nan", "above 0"),
            ("hot:0", "(0, 100]"),
            ("hot:120", "(0, 100]"),
            ("hot:-5", "(0, 100]"),
            ("hot", "allowed: uniform"),
            ("pareto:2", "allowed: uniform"),
            ("zipf:steep", "not a number"),
        ] {
            let e = text.parse::<KeyDist>().unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
        assert!(KeyDist::Hot(50.0).check(1).unwrap_err().contains("2 keys"));
        assert_eq!(KeyDist::Hot(100.0).check(1), Ok(()));
    }

    #[test]
    fn shares_add_up_to_one() {
        for d in [KeyDist::Uniform, KeyDist::Zipf(1.2), KeyDist::Hot(40.0)] {
            let total: f64 = (0..10).map(|i| d.share(i, 10)).sum();
            assert!((total - 1.0).abs() < 1e-9, "{d}: {total}");
        }
        assert_eq!(KeyDist::Hot(40.0).share(0, 10), 0.4);
        assert!((KeyDist::Hot(40.0).share(3, 10) - 0.6 / 9.0).abs() < 1e-12);
        assert_eq!(key_bytes(17), b"k17");
    }
}
