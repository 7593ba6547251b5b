//! Keyed records: Kafka's own partitioner for a key (the partition the Java
//! client picks: the positive part of the key's murmur2 hash, modulo the
//! partition count) and each producer's reproducible choice of keys.

use crate::model::{KeyDist, key_bytes};
use crate::random::splitmix64;

/// The seed Kafka's `Utils.murmur2` starts from.
const MURMUR2_SEED: u32 = 0x9747_b28c;
/// MurmurHash2's multiplier and shift.
const M: u32 = 0x5bd1_e995;
const R: u32 = 24;

/// MurmurHash2 (32 bits) of `data` as Kafka's Java client computes it
/// (`org.apache.kafka.common.utils.Utils.murmur2`): 4-byte little-endian
/// words, the last 1 to 3 bytes folded in, seeded with 0x9747b28c. The
/// result is the Java `int` (it may be negative).
pub fn murmur2(data: &[u8]) -> i32 {
    // The seed is mixed with the length as a Java int would be.
    let mut h = MURMUR2_SEED ^ data.len() as u32;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        let mut k = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        // The trailing bytes, lowest first, then one multiplication.
        for (i, b) in tail.iter().enumerate().rev() {
            h ^= u32::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's Java client sends a record with key `key` to:
/// `toPositive(murmur2(key)) % partitions` (toPositive clears the sign
/// bit; it is not the absolute value).
pub fn kafka_partition(key: &[u8], partitions: i32) -> i32 {
    let positive = murmur2(key) & 0x7fff_ffff;
    positive % partitions.max(1)
}

/// Draws one producer's keys: the same producer index and workload always
/// give the same sequence of keys.
pub struct KeyChooser {
    /// Each key's partition (index: the key's number).
    partitions: Vec<i32>,
    /// The last key drawn, `k` and its number in decimal: written in place
    /// per record, so no key is kept or allocated.
    key: [u8; 11],
    key_len: usize,
    /// How keys are drawn.
    draw: Draw,
    /// Zipf: the keys' cumulative shares, ascending to 1 (else empty).
    cdf: Vec<f64>,
    state: u64,
}

enum Draw {
    Uniform,
    /// By the cumulative shares (`KeyChooser::cdf`).
    Zipf,
    /// The hot key's share (0..=1); the rest uniform over keys 1..N.
    Hot(f64),
}

/// Mixed into each producer's seed, so the key sequence is its own.
const KEY_SEED: u64 = 0x6b6c_6162_6b65_7973;

impl KeyChooser {
    /// The chooser for producer `producer` (0-based) of a workload with
    /// `keys` keys spread by `dist` over `partitions` partitions.
    pub fn new(keys: u32, dist: KeyDist, partitions: i32, producer: u32) -> KeyChooser {
        let keys = keys.max(1);
        let parts = (0..keys)
            .map(|i| kafka_partition(&key_bytes(i), partitions))
            .collect();
        let mut cdf = Vec::new();
        let draw = match dist {
            KeyDist::Uniform => Draw::Uniform,
            KeyDist::Hot(pct) => Draw::Hot((pct / 100.0).clamp(0.0, 1.0)),
            KeyDist::Zipf(_) => {
                let mut acc = 0.0;
                cdf = dist
                    .shares(keys)
                    .into_iter()
                    .map(|w| {
                        acc += w;
                        acc
                    })
                    .collect();
                Draw::Zipf
            }
        };
        KeyChooser {
            partitions: parts,
            key: [0; 11],
            key_len: 0,
            draw,
            cdf,
            state: KEY_SEED ^ u64::from(producer).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(1);
        splitmix64(self.state)
    }

    /// A number in [0, 1).
    fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A whole number in `0..n` (n ≥ 1).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// The next record's key index.
    pub fn next_index(&mut self) -> usize {
        let n = self.partitions.len();
        match self.draw {
            Draw::Uniform => self.below(n),
            Draw::Hot(share) => {
                if n == 1 || self.next_unit() < share {
                    0
                } else {
                    1 + self.below(n - 1)
                }
            }
            Draw::Zipf => {
                let u = self.next_unit();
                self.cdf.partition_point(|c| *c <= u).min(n - 1)
            }
        }
    }

    /// The next record's key and its partition.
    pub fn next_key(&mut self) -> (&[u8], i32) {
        let i = self.next_index();
        self.write_key(i);
        (&self.key[..self.key_len], self.partitions[i])
    }

    /// Writes key `k<i>`: `k`, then the digits of i (at most 10 for a
    /// u32), highest first.
    fn write_key(&mut self, i: usize) {
        let digits = (i.max(1).ilog10() + 1) as usize;
        let mut rest = i;
        for d in (1..=digits).rev() {
            self.key[d] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        self.key[0] = b'k';
        self.key_len = 1 + digits;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values Kafka's own UtilsTest expects of `Utils.murmur2`.
    #[test]
    fn murmur2_gives_kafkas_test_values() {
        for (input, want) in [
            (&b"21"[..], -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ] {
            assert_eq!(murmur2(input), want, "{}", String::from_utf8_lossy(input));
        }
        // toPositive clears the sign bit: -790332482 & 0x7fffffff is
        // 1357151166, which is 6 modulo 10.
        assert_eq!(kafka_partition(b"foobar", 10), 6);
        assert_eq!(kafka_partition(b"anything", 1), 0);
    }

    /// The share of `draws` records each key got.
    fn shares(dist: KeyDist, keys: u32, draws: usize) -> Vec<f64> {
        let mut c = KeyChooser::new(keys, dist, 3, 0);
        let mut n = vec![0usize; keys as usize];
        for _ in 0..draws {
            n[c.next_index()] += 1;
        }
        n.iter().map(|x| *x as f64 / draws as f64).collect()
    }

    #[test]
    fn keys_are_drawn_in_their_distributions_shares() {
        let draws = 200_000;
        for (dist, keys) in [
            (KeyDist::Uniform, 8),
            (KeyDist::Zipf(1.0), 20),
            (KeyDist::Zipf(2.5), 5),
            (KeyDist::Hot(50.0), 10),
            (KeyDist::Hot(100.0), 4),
        ] {
            let got = shares(dist, keys, draws);
            for (i, g) in got.iter().enumerate() {
                let want = dist.share(i as u32, keys);
                assert!(
                    (g - want).abs() < 0.01,
                    "{dist} over {keys} keys: k{i} got {g:.4}, expected {want:.4}"
                );
            }
        }
    }

    #[test]
    fn a_producer_draws_the_same_keys_every_run_and_others_draw_their_own() {
        let seq = |producer| {
            let mut c = KeyChooser::new(100, KeyDist::Zipf(1.1), 6, producer);
            (0..50)
                .map(|_| {
                    let (k, p) = c.next_key();
                    (k.to_vec(), p)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(seq(0), seq(0));
        assert_ne!(seq(0), seq(1));
        // Each key goes where Kafka's partitioner puts it, and is written
        // as model::key_bytes spells it.
        for (k, p) in seq(2) {
            assert_eq!(p, kafka_partition(&k, 6));
        }
        let mut c = KeyChooser::new(1, KeyDist::Uniform, 6, 0);
        for i in [0, 7, 9, 10, 99, 100, 12_345, 99_999, u32::MAX as usize] {
            c.write_key(i);
            assert_eq!(&c.key[..c.key_len], key_bytes(i as u32).as_slice());
        }
    }
}
