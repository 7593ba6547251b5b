//! How far behind the verifying consumer is: records due and not yet read,
//! per second, and a group's partitions' stretches without a read.

/// The shortest stretch without a record of a partition that a group's
/// consumer writes down (records arrive every few ms at a lab's rates).
pub const PAUSE_NS: u64 = 200_000_000;

/// Partition `p` was read at `at_ns`: a stretch of at least [`PAUSE_NS`]
/// since its last read goes into `pauses`.
pub(crate) fn note_read(
    last_read: &mut Vec<u64>,
    pauses: &mut Vec<(i32, u64, u64)>,
    p: i32,
    at_ns: u64,
) {
    let Ok(i) = usize::try_from(p) else { return };
    if last_read.len() <= i {
        last_read.resize(i + 1, 0);
    }
    let before = last_read[i];
    if before > 0 && at_ns.saturating_sub(before) >= PAUSE_NS {
        pauses.push((p, before, at_ns));
    }
    last_read[i] = last_read[i].max(at_ns);
}

/// Consumer lag as records due but not yet read: per Unix second, the
/// records due in it and the records read in it.
#[derive(Default)]
pub(crate) struct Lag {
    due: std::collections::BTreeMap<u64, u64>,
    read: std::collections::BTreeMap<u64, u64>,
}

impl Lag {
    pub(crate) fn read(&mut self, due_ns: u64, at_ns: u64) {
        *self.due.entry(due_ns / 1_000_000_000).or_default() += 1;
        *self.read.entry(at_ns / 1_000_000_000).or_default() += 1;
    }

    /// A record sent and never read: due, and never off the lag.
    pub(crate) fn missing(&mut self, due_ns: u64) {
        *self.due.entry(due_ns / 1_000_000_000).or_default() += 1;
    }

    /// `(t, lag)`: records due before Unix second `t` and not read before
    /// it, for every second from the first record due to the last read.
    pub(crate) fn per_second(&self) -> Vec<(u64, u64)> {
        let (Some(first), Some(last)) = (
            self.due.keys().next().copied(),
            self.read.keys().next_back().copied(),
        ) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let (mut due, mut read) = (0u64, 0u64);
        for s in first..=last.max(first) {
            due += self.due.get(&s).copied().unwrap_or(0);
            read += self.read.get(&s).copied().unwrap_or(0);
            out.push((s + 1, due.saturating_sub(read)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn lag_counts_records_due_and_not_yet_read() {
        let mut lag = Lag::default();
        // Second 10: 3 due, 1 read at once; second 11: the other two are
        // read, one more falls due and is read in second 12; one is lost.
        lag.read(10 * S, 10 * S + 1);
        lag.read(10 * S + 5, 11 * S);
        lag.read(10 * S + 6, 11 * S + 2);
        lag.read(11 * S + 3, 12 * S);
        lag.missing(11 * S + 9);
        assert_eq!(lag.per_second(), [(11, 2), (12, 2), (13, 1)]);
        assert!(Lag::default().per_second().is_empty());
    }

    #[test]
    fn a_partition_unread_for_long_enough_is_a_pause() {
        let (mut last, mut pauses) = (Vec::new(), Vec::new());
        note_read(&mut last, &mut pauses, 1, 10 * S);
        note_read(&mut last, &mut pauses, 1, 10 * S + PAUSE_NS - 1);
        note_read(&mut last, &mut pauses, 1, 12 * S);
        note_read(&mut last, &mut pauses, 0, 12 * S);
        assert_eq!(pauses, [(1, 10 * S + PAUSE_NS - 1, 12 * S)]);
        assert_eq!(last, [12 * S, 12 * S]);
    }
}
