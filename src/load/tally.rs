//! The consumer's bookkeeping: which sequence numbers arrived, how often
//! and in what order, and what each producer's end-of-run markers promised.

use crate::load::payload::{Header, MarkerBody};
use std::collections::{BTreeMap, HashMap};

/// A growable set of sequence numbers.
#[derive(Default, Clone)]
struct SeqSet {
    words: Vec<u64>,
}

impl SeqSet {
    /// Inserts `seq`; false when it was already there.
    #[inline]
    fn insert(&mut self, seq: u64) -> bool {
        let w = (seq / 64) as usize;
        if w >= self.words.len() {
            self.words.resize((w + 1).next_power_of_two(), 0);
        }
        let bit = 1u64 << (seq % 64);
        let was = self.words[w] & bit != 0;
        self.words[w] |= bit;
        !was
    }

    /// The numbers in `0..end` that are not in the set.
    fn absent(&self, end: u64) -> impl Iterator<Item = u64> + '_ {
        (0..end.div_ceil(64)).flat_map(move |w| {
            let word = self.words.get(w as usize).copied().unwrap_or(0);
            // Whole words present are skipped at once.
            (word != u64::MAX)
                .then(|| {
                    (0..64)
                        .filter(move |b| word & (1 << b) == 0)
                        .map(move |b| w * 64 + b)
                })
                .into_iter()
                .flatten()
                .filter(move |s| *s < end)
        })
    }
}

#[derive(Default, Clone)]
struct PartitionState {
    last_seq: Option<u64>,
    unique: u64,
}

#[derive(Default, Clone)]
struct ProducerState {
    seen: SeqSet,
    partitions: HashMap<i32, PartitionState>,
    markers: BTreeMap<u32, MarkerBody>,
    /// Partition count announced by this producer's markers.
    expected_partitions: Option<u32>,
    /// The lowest and the highest sequence seen, with their due times: an
    /// open loop's due time is linear in the sequence, so a missing
    /// record's due time lies on that line.
    lowest: Option<(u64, u64)>,
    highest: Option<(u64, u64)>,
}

/// What happened to one data record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// First time seen, in order.
    New,
    /// First time seen, but after a higher sequence on the same partition.
    Reordered,
    /// Seen before.
    Duplicate,
}

/// Counts across all producers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Data records received with a valid tag (duplicates included).
    pub consumed: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub corrupt: u64,
    pub foreign: u64,
    pub warmup: u64,
    /// Records acknowledged to a producer (per its markers) and never seen.
    pub lost: u64,
    /// Acknowledged records announced by the markers seen so far.
    pub expected: u64,
}

#[derive(Default, Clone)]
pub struct Tally {
    producers: HashMap<u64, ProducerState>,
    counts: Counts,
}

impl Tally {
    pub fn new() -> Tally {
        Tally::default()
    }

    #[inline]
    pub fn record(&mut self, partition: i32, h: &Header) -> Arrival {
        self.counts.consumed += 1;
        let p = self.producers.entry(h.producer_id).or_default();
        if !p.seen.insert(h.seq) {
            self.counts.duplicated += 1;
            return Arrival::Duplicate;
        }
        if p.lowest.is_none_or(|(s, _)| h.seq < s) {
            p.lowest = Some((h.seq, h.due_ns));
        }
        if p.highest.is_none_or(|(s, _)| h.seq > s) {
            p.highest = Some((h.seq, h.due_ns));
        }
        let ps = p.partitions.entry(partition).or_default();
        ps.unique += 1;
        let arrival = match ps.last_seq {
            Some(last) if h.seq < last => {
                self.counts.reordered += 1;
                Arrival::Reordered
            }
            _ => {
                ps.last_seq = Some(h.seq);
                Arrival::New
            }
        };
        if h.flags & crate::load::payload::FLAG_WARMUP != 0 {
            self.counts.warmup += 1;
        }
        arrival
    }

    pub fn marker(&mut self, h: &Header, m: MarkerBody) {
        let p = self.producers.entry(h.producer_id).or_default();
        p.expected_partitions = Some(m.partitions);
        p.markers.insert(m.partition, m);
    }

    pub fn corrupt(&mut self) {
        self.counts.corrupt += 1;
    }

    pub fn foreign(&mut self) {
        self.counts.foreign += 1;
    }

    /// True once `producers` producers have each delivered a marker on every
    /// partition they wrote to. Markers follow the data on each partition,
    /// so everything a producer had acknowledged has been read by then.
    pub fn finished(&self, producers: usize) -> bool {
        let done = self
            .producers
            .values()
            .filter(|p| matches!(p.expected_partitions, Some(n) if p.markers.len() as u32 >= n))
            .count();
        done >= producers.max(1)
    }

    /// Producers seen with at least one marker.
    pub fn producers_with_markers(&self) -> usize {
        self.producers
            .values()
            .filter(|p| !p.markers.is_empty())
            .count()
    }

    /// The due times (Unix ns) of the records the producers sent (per their
    /// markers) that never arrived, acknowledged or not, each placed on the
    /// line of its producer's seen sequences and due times.
    pub fn missing_due_ns(&self) -> Vec<u64> {
        let mut out = Vec::new();
        for p in self.producers.values() {
            let sent: u64 = p.markers.values().map(|m| m.sent).sum();
            let (Some((s0, d0)), Some((s1, d1))) = (p.lowest, p.highest) else {
                continue;
            };
            let slope = if s1 > s0 {
                (d1 as f64 - d0 as f64) / (s1 - s0) as f64
            } else {
                0.0
            };
            out.extend(
                p.seen
                    .absent(sent)
                    .map(|s| (d0 as f64 + (s as f64 - s0 as f64) * slope).max(0.0) as u64),
            );
        }
        out
    }

    /// Counts, with `lost` computed from the markers seen so far.
    pub fn counts(&self) -> Counts {
        let mut c = self.counts;
        c.lost = 0;
        c.expected = 0;
        for p in self.producers.values() {
            for (part, m) in &p.markers {
                let got = p
                    .partitions
                    .get(&(*part as i32))
                    .map(|s| s.unique)
                    .unwrap_or(0);
                c.expected += m.acked;
                c.lost += m.acked.saturating_sub(got);
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::payload::FLAG_WARMUP;

    fn h(producer_id: u64, seq: u64) -> Header {
        Header {
            flags: 0,
            producer_id,
            seq,
            due_ns: 0,
        }
    }

    fn marker(partition: u32, partitions: u32, acked: u64) -> MarkerBody {
        MarkerBody {
            partition,
            partitions,
            acked,
            sent: acked,
            total_acked: 0,
        }
    }

    #[test]
    fn in_order_complete_stream() {
        let mut t = Tally::new();
        for seq in 0..1000u64 {
            assert_eq!(t.record((seq % 2) as i32, &h(1, seq)), Arrival::New);
        }
        assert!(!t.finished(1));
        t.marker(&h(1, u64::MAX), marker(0, 2, 500));
        assert!(!t.finished(1));
        t.marker(&h(1, u64::MAX), marker(1, 2, 500));
        assert!(t.finished(1));
        let c = t.counts();
        assert_eq!(
            (c.consumed, c.lost, c.duplicated, c.reordered),
            (1000, 0, 0, 0)
        );
        assert_eq!(c.expected, 1000);
    }

    #[test]
    fn duplicates_reorders_and_losses() {
        let mut t = Tally::new();
        for seq in [0u64, 1, 3, 2, 3, 5] {
            t.record(0, &h(7, seq));
        }
        t.marker(&h(7, u64::MAX), marker(0, 1, 7)); // 0..=6 acked; 4 and 6 never came
        let c = t.counts();
        assert_eq!(c.consumed, 6);
        assert_eq!(c.duplicated, 1);
        assert_eq!(c.reordered, 1);
        assert_eq!(c.lost, 2);
    }

    #[test]
    fn order_is_checked_per_partition_whatever_partition_a_key_picks() {
        // Keyed: one producer's records go to partitions by key, and the
        // partitions are read in any interleaving.
        let mut t = Tally::new();
        let parts = [2, 0, 0, 1, 2, 2, 0, 1];
        // Partition 2 is read first, then 0 and 1.
        for p in [2, 0, 1] {
            for (seq, _) in parts.iter().enumerate().filter(|(_, q)| **q == p) {
                assert_eq!(t.record(p, &h(1, seq as u64)), Arrival::New);
            }
        }
        for (p, n) in [(0u32, 3u64), (1, 2), (2, 3)] {
            t.marker(&h(1, u64::MAX), marker(p, 3, n));
        }
        assert!(t.finished(1));
        let c = t.counts();
        assert_eq!((c.lost, c.reordered, c.duplicated), (0, 0, 0));
        // Out of order within one partition is still a reorder.
        assert_eq!(t.record(0, &h(2, 5)), Arrival::New);
        assert_eq!(t.record(0, &h(2, 3)), Arrival::Reordered);
    }

    #[test]
    fn producers_are_tracked_apart() {
        let mut t = Tally::new();
        t.record(0, &h(1, 0));
        t.record(0, &h(2, 0));
        assert_eq!(t.counts().duplicated, 0);
        t.marker(&h(1, u64::MAX), marker(0, 1, 1));
        assert!(t.finished(1));
        assert!(!t.finished(2));
        t.marker(&h(2, u64::MAX), marker(0, 1, 1));
        assert!(t.finished(2));
    }

    #[test]
    fn warmup_is_counted_separately() {
        let mut t = Tally::new();
        let mut w = h(1, 0);
        w.flags = FLAG_WARMUP;
        t.record(0, &w);
        t.record(0, &h(1, 1));
        assert_eq!(t.counts().warmup, 1);
        assert_eq!(t.counts().consumed, 2);
    }

    #[test]
    fn missing_records_get_due_times_on_their_producers_line() {
        let mut t = Tally::new();
        for seq in [0u64, 1, 2, 5, 6, 9] {
            let mut x = h(3, seq);
            x.due_ns = 1_000 + seq * 100;
            t.record(0, &x);
        }
        // 10 sent, so 3, 4, 7 and 8 are missing.
        t.marker(
            &h(3, u64::MAX),
            MarkerBody {
                partition: 0,
                partitions: 1,
                acked: 10,
                sent: 10,
                total_acked: 10,
            },
        );
        assert_eq!(t.missing_due_ns(), vec![1300, 1400, 1700, 1800]);
        let mut s = SeqSet::default();
        for i in 0..200 {
            if i != 150 {
                s.insert(i);
            }
        }
        assert_eq!(s.absent(200).collect::<Vec<_>>(), vec![150]);
        assert_eq!(s.absent(202).collect::<Vec<_>>(), vec![150, 200, 201]);
    }

    #[test]
    fn large_sequence_numbers_grow_the_set() {
        let mut t = Tally::new();
        assert_eq!(t.record(0, &h(1, 10_000_000)), Arrival::New);
        assert_eq!(t.record(0, &h(1, 10_000_000)), Arrival::Duplicate);
    }
}
