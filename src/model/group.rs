//! Consumers as one group the broker coordinates: the protocol and the
//! assignor, as a workload names them (`group`, `assignor`). How the
//! consumers join, and what a rebalance did, is the load's
//! (`load::consumer`).

use serde::{Deserialize, Serialize};

/// The group protocol the consumers speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupProtocol {
    /// The classic protocol: the members join, one of them assigns the
    /// partitions (with the assignor all of them support), and with an
    /// eager assignor every member gives up every partition first.
    Classic,
    /// KIP-848's protocol (`group.protocol=consumer`, GA in Kafka 4.0):
    /// the broker assigns, member by member, and no one stops the world.
    Consumer,
}

named_by_word!(GroupProtocol, "a group protocol", {
    Classic => "classic",
    Consumer => "consumer",
});

impl GroupProtocol {
    /// The assignors this protocol takes.
    pub fn assignors(self) -> &'static [Assignor] {
        match self {
            GroupProtocol::Classic => &[
                Assignor::Range,
                Assignor::RoundRobin,
                Assignor::CooperativeSticky,
            ],
            GroupProtocol::Consumer => &[Assignor::Uniform, Assignor::Range],
        }
    }

    /// Consumer settings the protocol ignores: with `consumer` the broker
    /// decides them (its `group.consumer.*` settings), so a workload that
    /// sets one would silently change nothing.
    pub fn ignored_setting(self, key: &str) -> Option<&'static str> {
        match (self, key) {
            (GroupProtocol::Consumer, "session.timeout.ms") => {
                Some("the broker's group.consumer.session.timeout.ms decides")
            }
            (GroupProtocol::Consumer, "heartbeat.interval.ms") => {
                Some("the broker's group.consumer.heartbeat.interval.ms decides")
            }
            (GroupProtocol::Consumer, "partition.assignment.strategy") => {
                Some("the broker assigns; name its assignor with assignor = uniform or range")
            }
            _ => None,
        }
    }
}

/// How a group's partitions are shared out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Assignor {
    /// Consecutive partitions to each member (classic and consumer).
    Range,
    /// Partitions dealt out one by one (classic, eager).
    #[serde(rename = "roundrobin")]
    RoundRobin,
    /// Classic, incremental: only the partitions that move are revoked.
    CooperativeSticky,
    /// The broker's default with the consumer protocol.
    Uniform,
}

named_by_word!(Assignor, "an assignor", {
    Range => "range",
    RoundRobin => "roundrobin",
    CooperativeSticky => "cooperative-sticky",
    Uniform => "uniform",
});

/// Checks a group, its assignor and the consumer settings beside them: an
/// assignor without a group or one its protocol does not take, and a
/// setting the protocol ignores, are refused; the error names the field.
pub fn check<'a>(
    group: Option<GroupProtocol>,
    assignor: Option<Assignor>,
    consumer_keys: impl IntoIterator<Item = &'a String>,
) -> Result<(), String> {
    match (group, assignor) {
        (None, Some(a)) => Err(format!(
            "assignor: {a} needs group (classic or consumer): without a group each consumer takes fixed partitions"
        )),
        (Some(g), Some(a)) if !g.assignors().contains(&a) => {
            let allowed: Vec<&str> = g.assignors().iter().map(|a| a.as_str()).collect();
            Err(format!(
                "assignor: {a} is not allowed with group = {g}; allowed: {}",
                allowed.join(", ")
            ))
        }
        (Some(g), _) => consumer_keys.into_iter().try_for_each(|k| {
            g.ignored_setting(k).map_or(Ok(()), |why| {
                Err(format!(
                    "consumer.{k}: ignored with group = {g} ({why}); leave it out"
                ))
            })
        }),
        (None, None) => Ok(()),
    }
}

/// One rebalance callback of one consumer: what it was given or gave up,
/// and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RebalanceEvent {
    /// Seconds after the run's clock origin.
    pub at_s: f64,
    /// The consumer, from 1.
    pub consumer: u32,
    /// `assigned`, `revoked` or `error`.
    pub what: String,
    pub partitions: Vec<i32>,
    /// The error, for `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a consumer group did after one consumer event (a join, a leave, a
/// death, a stall), from its members' rebalance callbacks and the records
/// they read, until the next consumer event or the end of the step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RebalanceSummary {
    /// The first rebalance callback after the event, seconds after the
    /// measured window started (None: the group did not rebalance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub began_s: Option<f64>,
    /// The last callback of that rebalance: from then on every partition
    /// was held again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_s: Option<f64>,
    /// Partitions held by another member (or by none) after it than
    /// before the event.
    pub partitions_moved: u32,
    /// Each partition's longest time unread that began after the event,
    /// longest first.
    pub paused: Vec<PartitionPause>,
    /// Records read a second time in that span.
    pub duplicates: u64,
}

/// A stretch of time in which no record of a partition was read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PartitionPause {
    pub partition: i32,
    /// Seconds after the measured window started.
    pub from_s: f64,
    pub seconds: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_and_assignors_read_and_print_as_written() {
        for p in [GroupProtocol::Classic, GroupProtocol::Consumer] {
            assert_eq!(p.as_str().parse::<GroupProtocol>(), Ok(p));
            for a in p.assignors() {
                assert_eq!(a.as_str().parse::<Assignor>(), Ok(*a));
                let json = serde_json::to_string(a).unwrap();
                assert_eq!(json, format!("\"{a}\""));
            }
        }
        assert!(
            "eager"
                .parse::<GroupProtocol>()
                .unwrap_err()
                .contains("allowed: classic, consumer")
        );
        assert!(
            "sticky"
                .parse::<Assignor>()
                .unwrap_err()
                .contains("allowed:")
        );
        assert!(
            GroupProtocol::Consumer
                .ignored_setting("session.timeout.ms")
                .is_some()
        );
        assert!(
            GroupProtocol::Classic
                .ignored_setting("session.timeout.ms")
                .is_none()
        );
    }
}
