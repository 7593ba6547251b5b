//! What a consumer group did after each consumer event of a step (a join,
//! a leave, a death, a stall): read off the members' rebalance callbacks
//! and the partitions' stretches without a read, from the event until the
//! next consumer event or the end of the step.

use crate::model::{FaultRecord, PartitionPause, RebalanceEvent, RebalanceSummary};
use std::collections::BTreeMap;

/// The group's side of the step, on the measured window's axis (seconds).
pub struct GroupTrace<'a> {
    /// Every member's callbacks, in order (`at_s` on the window's axis).
    pub callbacks: &'a [RebalanceEvent],
    /// `(partition, from_s, to_s)`: stretches without a read.
    pub pauses: &'a [(i32, f64, f64)],
    /// When records were read a second time.
    pub duplicates_at_s: &'a [f64],
    /// The topic's partitions.
    pub partitions: usize,
}

/// A callback this long before the event's record still belongs to it
/// (the event is fired, then carried out by the member's thread).
const SLACK_S: f64 = 0.05;

/// Fills in `rebalance` of every consumer event among `records`.
pub fn summarize(records: &mut [FaultRecord], trace: &GroupTrace<'_>) {
    let mut starts: Vec<f64> = records
        .iter()
        .filter(|r| r.action.is_consumer())
        .map(|r| r.at_s)
        .collect();
    starts.sort_by(f64::total_cmp);
    for r in records.iter_mut().filter(|r| r.action.is_consumer()) {
        let end = starts
            .iter()
            .copied()
            .find(|s| *s > r.at_s)
            .unwrap_or(f64::INFINITY);
        r.rebalance = Some(summary(trace, r.at_s, end));
    }
}

/// Who holds each partition after the callbacks before `t` (None: nobody).
fn owners(callbacks: &[RebalanceEvent], t: f64) -> BTreeMap<i32, Option<u32>> {
    let mut own: BTreeMap<i32, Option<u32>> = BTreeMap::new();
    for e in callbacks.iter().filter(|e| e.at_s < t) {
        for p in &e.partitions {
            match e.what.as_str() {
                "assigned" => {
                    own.insert(*p, Some(e.consumer));
                }
                "revoked" | "died" if own.get(p) == Some(&Some(e.consumer)) => {
                    own.insert(*p, None);
                }
                _ => {}
            }
        }
    }
    own
}

fn summary(trace: &GroupTrace<'_>, at: f64, end: f64) -> RebalanceSummary {
    let from = at - SLACK_S;
    let inside: Vec<&RebalanceEvent> = trace
        .callbacks
        .iter()
        .filter(|e| e.at_s >= from && e.at_s < end && e.what != "died")
        .collect();
    let before = owners(trace.callbacks, from);
    let after = owners(trace.callbacks, end);
    let held = |o: &BTreeMap<i32, Option<u32>>| {
        (0..trace.partitions as i32).all(|p| o.get(&p).is_some_and(Option::is_some))
    };
    let moved = (0..trace.partitions as i32)
        .filter(|p| before.get(p).copied().flatten() != after.get(p).copied().flatten())
        .count() as u32;
    // The longest stretch without a read of each partition that began
    // after the event (or spans it), longest first.
    let mut longest: BTreeMap<i32, PartitionPause> = BTreeMap::new();
    for &(p, a, b) in trace.pauses {
        if b <= at || a >= end {
            continue;
        }
        let seconds = b - a;
        let slot = longest.entry(p).or_insert(PartitionPause {
            partition: p,
            from_s: a,
            seconds: 0.0,
        });
        if seconds > slot.seconds {
            *slot = PartitionPause {
                partition: p,
                from_s: round(a),
                seconds: round(seconds),
            };
        }
    }
    let mut paused: Vec<PartitionPause> = longest.into_values().collect();
    paused.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    RebalanceSummary {
        began_s: inside.first().map(|e| round(e.at_s)),
        ended_s: inside
            .last()
            .filter(|_| held(&after))
            .map(|e| round(e.at_s)),
        partitions_moved: moved,
        paused,
        duplicates: trace
            .duplicates_at_s
            .iter()
            .filter(|t| **t >= from && **t < end)
            .count() as u64,
    }
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FaultAction;

    fn cb(at_s: f64, consumer: u32, what: &str, parts: &[i32]) -> RebalanceEvent {
        RebalanceEvent {
            at_s,
            consumer,
            what: what.into(),
            partitions: parts.to_vec(),
            error: None,
        }
    }

    fn event(action: FaultAction, at_s: f64, consumer: u32) -> FaultRecord {
        FaultRecord {
            action,
            broker: -1,
            at_s,
            consumer: Some(consumer),
            ..Default::default()
        }
    }

    #[test]
    fn an_eager_leave_moves_what_the_leaver_held_and_pauses_every_partition() {
        // Two members, p0 and p1 with consumer 1, p2 with 2. Consumer 2
        // leaves at 5 s: everyone gives everything up, consumer 1 gets all
        // three back at 5.8 s; a join at 9 s is the next event.
        let callbacks = [
            cb(-2.0, 1, "assigned", &[0, 1]),
            cb(-2.0, 2, "assigned", &[2]),
            cb(5.01, 2, "revoked", &[2]),
            cb(5.02, 1, "revoked", &[0, 1]),
            cb(5.8, 1, "assigned", &[0, 1, 2]),
            cb(9.5, 1, "revoked", &[0, 1, 2]),
        ];
        let pauses = [
            (0, 4.99, 5.9),
            (1, 4.99, 5.85),
            (2, 4.98, 6.4),
            (2, 9.4, 10.0),
        ];
        let dups = [5.9, 5.95, 9.6];
        let mut records = vec![
            event(FaultAction::Leave, 5.0, 2),
            event(FaultAction::Join, 9.0, 3),
        ];
        summarize(
            &mut records,
            &GroupTrace {
                callbacks: &callbacks,
                pauses: &pauses,
                duplicates_at_s: &dups,
                partitions: 3,
            },
        );
        let s = records[0].rebalance.clone().unwrap();
        assert_eq!(s.began_s, Some(5.01));
        assert_eq!(s.ended_s, Some(5.8));
        assert_eq!(s.partitions_moved, 1, "only p2 changed hands");
        assert_eq!(
            s.paused.iter().map(|p| p.partition).collect::<Vec<_>>(),
            [2, 0, 1]
        );
        assert!((s.paused[0].seconds - 1.42).abs() < 1e-9);
        assert_eq!(s.duplicates, 2);
        // The join's rebalance has not ended: nothing was assigned again.
        let j = records[1].rebalance.clone().unwrap();
        assert_eq!((j.began_s, j.ended_s), (Some(9.5), None));
        assert_eq!(j.partitions_moved, 3);
        assert_eq!(j.duplicates, 1);
    }
}
