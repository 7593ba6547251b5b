//! Faults as data: what a fault does, to which broker, when (`FaultSpec`,
//! from `--fault` and `[[faults]]`), what it did (`FaultRecord`), and the
//! parts of a measured window around it (`Window`).

use super::opt_secs;
use crate::units::duration_secs;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// What a fault does to its broker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultAction {
    /// SIGKILL: the JVM dies at once, nothing is flushed.
    #[default]
    Kill,
    /// SIGTERM: a controlled shutdown.
    Stop,
    /// SIGSTOP for `for`, then SIGCONT: the broker freezes (a long GC, a VM
    /// pause) and comes back.
    Pause,
    /// A controlled shutdown and a start.
    Restart,
    /// For `for`: every link between the node and the other nodes is cut
    /// (replication and the controller quorum); the clients still reach it.
    Isolate,
    /// For `for`: the replication links between the node and the other
    /// nodes are cut; its links to the controllers stay up.
    CutReplication,
    /// For `for`: the clients cannot reach the node; the nodes still can.
    Disconnect,
    /// For `for`: every link to and from the node is cut.
    Partition,
    /// For `for`: every link to and from the node adds `latency` (a round
    /// trip) to what the network already adds, and/or carries at most
    /// `bandwidth` per connection each way.
    Slow,
    /// Every connection to and from the node is closed, once; the parties
    /// connect again at once.
    Reset,
    /// A new consumer joins the group (numbered after the others).
    Join,
    /// A consumer leaves the group cleanly: it closes, and the group
    /// rebalances at once.
    Leave,
    /// A consumer dies without leaving: it stops heartbeating, and the
    /// group notices only when its session times out.
    Die,
    /// A consumer stops polling for `for` (its processing stalls): past
    /// `max.poll.interval.ms` it is put out of the group, and it joins
    /// again when it polls again.
    Stall,
}

/// Every action, by its name in `--fault` and `[[faults]]`.
const ACTIONS: &[(&str, FaultAction)] = &[
    ("kill", FaultAction::Kill),
    ("stop", FaultAction::Stop),
    ("pause", FaultAction::Pause),
    ("restart", FaultAction::Restart),
    ("isolate", FaultAction::Isolate),
    ("cut_replication", FaultAction::CutReplication),
    ("disconnect", FaultAction::Disconnect),
    ("partition", FaultAction::Partition),
    ("slow", FaultAction::Slow),
    ("reset", FaultAction::Reset),
    ("join", FaultAction::Join),
    ("leave", FaultAction::Leave),
    ("die", FaultAction::Die),
    ("stall", FaultAction::Stall),
];

impl FaultAction {
    pub const ALL: &'static str = "kill, stop, pause, restart; with a network: isolate, cut_replication, disconnect, partition, slow, reset; on a consumer group's members: join, leave, die, stall";

    pub fn parse(s: &str) -> Result<FaultAction, String> {
        let s = s.trim();
        match ACTIONS.iter().find(|(name, _)| *name == s) {
            Some((_, a)) => Ok(*a),
            None => Err(format!(
                "'{s}' is not a fault action; allowed: {}",
                FaultAction::ALL
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        ACTIONS
            .iter()
            .find(|(_, a)| *a == self)
            .map_or("kill", |(name, _)| name)
    }

    /// Acts on the links, not on the process: needs a network.
    pub fn is_network(self) -> bool {
        matches!(
            self,
            FaultAction::Isolate
                | FaultAction::CutReplication
                | FaultAction::Disconnect
                | FaultAction::Partition
                | FaultAction::Slow
                | FaultAction::Reset
        )
    }

    /// Acts on a member of the load's consumer group, not on a broker.
    pub fn is_consumer(self) -> bool {
        matches!(
            self,
            FaultAction::Join | FaultAction::Leave | FaultAction::Die | FaultAction::Stall
        )
    }

    /// Lasts `for` and then ends by itself.
    pub fn lasts(self) -> bool {
        self.is_network() && self != FaultAction::Reset
            || matches!(self, FaultAction::Pause | FaultAction::Stall)
    }
}

/// Which broker a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultTarget {
    /// A node by its number (1 = the first).
    Node(u32),
    /// The leader of partition 0 of the workload's topic when it fires.
    Leader,
    /// The active KRaft controller when it fires.
    Controller,
    /// Every replica of partition 0 but its leader, when it fires.
    Followers,
    /// One of them: the lowest-numbered replica of partition 0 not leading
    /// it when it fires (the others stay as they are).
    Follower,
    /// Another: the highest-numbered of them (with three replicas, the one
    /// `follower` does not name), so two faults can hit one follower each.
    OtherFollower,
    /// Not a broker: a member of the load's consumer group, by its number
    /// (1 = the first; 0: the new member a `join` adds).
    Consumer(u32),
}

impl FaultTarget {
    pub fn parse(s: &str) -> Result<FaultTarget, String> {
        match s.trim() {
            "leader" => Ok(FaultTarget::Leader),
            "controller" => Ok(FaultTarget::Controller),
            "followers" => Ok(FaultTarget::Followers),
            "follower" => Ok(FaultTarget::Follower),
            "other_follower" => Ok(FaultTarget::OtherFollower),
            "new consumer" => Ok(FaultTarget::Consumer(0)),
            c if c.starts_with("consumer ") => c["consumer ".len()..]
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .map(FaultTarget::Consumer)
                .ok_or_else(|| {
                    format!("'{c}' is not a consumer; expected consumer 1, consumer 2, ...")
                }),
            n => match n.parse::<u32>() {
                Ok(i) if i >= 1 => Ok(FaultTarget::Node(i)),
                _ => Err(format!(
                    "'{n}' is not a broker; allowed: a node number (1, 2, ...), \"leader\", \"follower\", \"other_follower\", \"followers\" or \"controller\""
                )),
            },
        }
    }
}

impl fmt::Display for FaultTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultTarget::Node(n) => write!(f, "{n}"),
            FaultTarget::Leader => f.write_str("leader"),
            FaultTarget::Controller => f.write_str("controller"),
            FaultTarget::Followers => f.write_str("followers"),
            FaultTarget::Follower => f.write_str("follower"),
            FaultTarget::OtherFollower => f.write_str("other_follower"),
            FaultTarget::Consumer(0) => f.write_str("new consumer"),
            FaultTarget::Consumer(n) => write!(f, "consumer {n}"),
        }
    }
}

impl Serialize for FaultTarget {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            FaultTarget::Node(n) => s.serialize_u32(*n),
            other => s.serialize_str(&other.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for FaultTarget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        let s = match &v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            other => other.to_string(),
        };
        FaultTarget::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A fault on the measured window's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultSpec {
    /// When it fires, after the measured window starts.
    #[serde(with = "duration_secs")]
    pub at: Duration,
    pub action: FaultAction,
    pub broker: FaultTarget,
    /// How long a `pause` lasts.
    #[serde(
        rename = "for",
        with = "opt_secs",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub duration: Option<Duration>,
    /// After a `kill` or `stop`: start the broker again this much later.
    #[serde(with = "opt_secs", default, skip_serializing_if = "Option::is_none")]
    pub restart_after: Option<Duration>,
    /// What a `slow` adds to every link of the node (a round trip).
    #[serde(with = "opt_secs", default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Duration>,
    /// What a `slow` leaves every connection of the node, bytes/s each way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<u64>,
}

impl FaultSpec {
    /// The checks that need nothing but the spec and the workload: each
    /// error names the field and what is allowed.
    pub fn validate(&self, window: Option<Duration>) -> Result<(), String> {
        if let Some(w) = window
            && self.at >= w
        {
            return Err(format!(
                "at: {} is not inside the measured window of {}; a fault fires at 0s..{}",
                crate::units::format_duration(self.at),
                crate::units::format_duration(w),
                crate::units::format_duration(w)
            ));
        }
        let a = self.action;
        match (a.is_consumer(), self.broker) {
            (true, FaultTarget::Consumer(n)) => match (a, n) {
                (FaultAction::Join, 0) => {}
                (FaultAction::Join, _) => {
                    return Err(
                        "consumer: join adds a new consumer, numbered after the others; leave consumer out".into(),
                    );
                }
                (_, 0) => {
                    return Err(format!(
                        "consumer: missing; {} names the consumer it acts on (consumer = 1 is the first)",
                        a.as_str()
                    ));
                }
                _ => {}
            },
            (true, _) => {
                return Err(format!(
                    "broker: {} acts on a consumer of the group; name it with consumer = N (1 = the first) instead of broker",
                    a.as_str()
                ));
            }
            (false, FaultTarget::Consumer(_)) => {
                return Err(format!(
                    "consumer: {} acts on a broker; name it with broker = ... instead",
                    a.as_str()
                ));
            }
            (false, _) => {}
        }
        match (a.lasts(), self.duration) {
            (true, None) => {
                return Err(format!(
                    "for: {} needs how long it lasts, e.g. for = \"3s\"",
                    a.as_str()
                ));
            }
            (true, Some(d)) if d.is_zero() => {
                return Err("for: must be longer than 0".into());
            }
            (false, Some(_)) => {
                return Err(format!(
                    "for: {} does not last (only a pause, a stall and the network faults isolate, cut_replication, disconnect, partition and slow do)",
                    a.as_str()
                ));
            }
            _ => {}
        }
        if self.restart_after.is_some() && !matches!(a, FaultAction::Kill | FaultAction::Stop) {
            return Err(format!(
                "restart_after: only after a kill or a stop; {} {}",
                a.as_str(),
                match (a.is_network(), a.is_consumer()) {
                    (_, true) => "acts on a consumer",
                    (true, _) => "leaves the broker running",
                    _ => "brings the broker back itself",
                }
            ));
        }
        match (a, self.latency, self.bandwidth) {
            (FaultAction::Slow, None, None) => {
                return Err(
                    "latency: slow needs the round trip it adds (latency = \"50ms\") or the bandwidth it leaves (bandwidth = \"200KB/s\"), or both".into(),
                );
            }
            (FaultAction::Slow, Some(l), _)
                if l.is_zero()
                    || l > crate::model::network::MAX_LATENCY
                    || !l.as_micros().is_multiple_of(1000) =>
            {
                return Err(format!(
                    "latency: {} is not allowed; expected 1ms to {} in whole milliseconds",
                    crate::units::format_duration(l),
                    crate::units::format_duration(crate::model::network::MAX_LATENCY)
                ));
            }
            (a, Some(_), _) if a != FaultAction::Slow => {
                return Err(format!(
                    "latency: only slow adds latency; {} does not",
                    a.as_str()
                ));
            }
            (a, _, Some(_)) if a != FaultAction::Slow => {
                return Err(format!(
                    "bandwidth: only slow limits the bandwidth; {} does not",
                    a.as_str()
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// What a `slow` does to each link of its node, as a link's settings.
    pub fn slowdown(&self) -> crate::model::network::Link {
        crate::model::network::Link {
            latency: self.latency.unwrap_or_default(),
            jitter: Duration::ZERO,
            bandwidth: self.bandwidth,
        }
    }
}

impl fmt::Display for FaultSpec {
    /// `kill leader at 4s, back after 5s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = crate::units::format_duration;
        write!(
            f,
            "{} {} at {}",
            self.action.as_str(),
            self.broker,
            d(self.at)
        )?;
        if let Some(x) = self.latency {
            write!(f, " by {}", d(x))?;
        }
        if let Some(b) = self.bandwidth {
            write!(f, " to {}", crate::model::network::format_bandwidth(b))?;
        }
        if let Some(x) = self.duration {
            write!(f, " for {}", d(x))?;
        }
        if let Some(x) = self.restart_after {
            write!(f, ", back after {}", d(x))?;
        }
        Ok(())
    }
}

impl std::str::FromStr for FaultSpec {
    type Err = String;
    /// `at=5s,action=kill,broker=leader[,for=3s][,restart_after=10s]`.
    fn from_str(s: &str) -> Result<FaultSpec, String> {
        let (mut at, mut action, mut broker, mut dur, mut after) = (None, None, None, None, None);
        let (mut latency, mut bandwidth) = (None, None);
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                return Err(format!(
                    "'{part}' is not key=value; a fault is at=5s,action=kill,broker=leader[,for=3s][,restart_after=10s]"
                ));
            };
            let d = || crate::units::parse_duration(v).map_err(|e| format!("{k}: {e}"));
            match k.trim() {
                "at" => at = Some(d()?),
                "action" => {
                    action = Some(FaultAction::parse(v).map_err(|e| format!("action: {e}"))?)
                }
                "broker" => {
                    broker = Some(FaultTarget::parse(v).map_err(|e| format!("broker: {e}"))?)
                }
                "consumer" => broker = Some(consumer_number(v)?),
                "for" => dur = Some(d()?),
                "restart_after" => after = Some(d()?),
                "latency" => latency = Some(d()?),
                "bandwidth" => {
                    bandwidth = Some(
                        crate::model::network::parse_bandwidth(v)
                            .map_err(|e| format!("bandwidth: {e}"))?,
                    )
                }
                other => {
                    return Err(format!(
                        "'{other}' is not a fault field; allowed: at, action, broker, consumer, for, restart_after, latency, bandwidth"
                    ));
                }
            }
        }
        let action = action.ok_or_else(|| format!("action: missing ({})", FaultAction::ALL))?;
        Ok(FaultSpec {
            at: at.ok_or("at: missing (when the fault fires, e.g. at=5s)")?,
            action,
            broker: match (broker, action.is_consumer()) {
                (Some(b), _) => b,
                // Checked by `validate`: only a join needs no number.
                (None, true) => FaultTarget::Consumer(0),
                (None, false) => {
                    return Err("broker: missing (a node number, leader or controller)".into());
                }
            },
            duration: dur,
            restart_after: after,
            latency,
            bandwidth,
        })
    }
}

/// A consumer named by its number in a fault (`consumer = 2`).
pub fn consumer_number(v: &str) -> Result<FaultTarget, String> {
    match v.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok(FaultTarget::Consumer(n)),
        _ => Err(format!(
            "consumer: '{}' is not a consumer; expected its number, 1 = the first",
            v.trim()
        )),
    }
}

/// A fault as it happened.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// Which fault of the step's list this is (1-based): a fault on
    /// `followers` hits several brokers, one record each, one fault.
    /// 0 in results written before it was kept.
    #[serde(default)]
    pub fault: usize,
    pub action: FaultAction,
    /// The node it hit.
    pub broker: i32,
    /// What the spec named: a number, `leader` or `controller`.
    pub target: String,
    /// Seconds after the measured window started.
    pub at_s: f64,
    /// Until every partition the broker led had another leader (None: it
    /// led none, or leadership did not move during the step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_moved_s: Option<f64>,
    /// When the broker was back (resumed, or started again), seconds after
    /// the window started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub back_at_s: Option<f64>,
    /// Until the acknowledged rate was back (see `StepResult::recovery_s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_s: Option<f64>,
    /// Why the fault (or bringing the broker back) failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A consumer event's member (1 = the first; `broker` is -1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<u32>,
    /// What the group did after a consumer event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebalance: Option<crate::model::RebalanceSummary>,
}

/// The topic read again from its start after a step with faults (and
/// after the cluster is whole again): what a consumer that comes later
/// finds. A live consumer may have read a record from a leader that then
/// died before any follower had it; an unclean election makes that
/// follower the leader, and the record is gone from the topic although it
/// was acknowledged and even read once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogCheck {
    /// Records read back (duplicates included).
    pub read: u64,
    /// Acknowledged records (per the producers' end-of-run markers) that
    /// are no longer in the topic.
    pub lost: u64,
    /// Records in the topic more than once.
    pub duplicated: u64,
    /// Every producer's markers were found (else `lost` counts only the
    /// partitions whose markers were).
    pub complete: bool,
    /// What the live consumer counted as lost (`StepResult::lost` is the
    /// larger of the two).
    pub lost_live: u64,
}

/// Part of a measured window around a fault.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// `before`, `during` (until the rate recovered) or `after`.
    pub name: String,
    /// The fault (1-based) it belongs to.
    pub fault: usize,
    /// Seconds after the measured window started.
    pub from_s: f64,
    pub to_s: f64,
    /// Acknowledgements per second in the window.
    pub records_per_s: f64,
    pub e2e_p50_ms: f64,
    pub e2e_p99_ms: f64,
    pub e2e_max_ms: f64,
    /// Publish p99 (due time to acknowledgement) of the records
    /// acknowledged in the window: what the producers waited.
    #[serde(default)]
    pub publish_p99_ms: f64,
    /// Sends that failed (never acknowledged), by due time.
    pub failed: u64,
    /// Records read more than once, by due time.
    pub duplicated: u64,
    /// Records missing at the consumer and not failed (acknowledged, then
    /// lost), by their due time.
    pub lost: u64,
}

/// What a partition's leadership and ISR became at a moment of a step, as
/// the brokers' metadata said (polled four times a second): one record per
/// change seen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterChange {
    /// Seconds after the measured window started (negative: in the
    /// warm-up).
    pub at_s: f64,
    pub partition: i32,
    /// The leader now (-1: none, the partition is offline).
    pub leader: i32,
    /// The in-sync replicas now.
    pub isr: Vec<i32>,
    /// What changed: `isr shrank`, `isr grew`, `leader moved`, `offline`.
    pub what: String,
}

/// The cluster's changes as markers for a timeline: one per kind of change
/// at a moment (every partition a reading saw change shares its time),
/// named by what changed and where: `isr shrank p0`, `isr shrank p0,p1`,
/// `leader moved ×6` past two partitions. In the order they happened.
pub fn change_markers(changes: &[ClusterChange]) -> Vec<(f64, String)> {
    let mut groups: Vec<(f64, &str, Vec<i32>)> = Vec::new();
    for c in changes {
        match groups
            .iter_mut()
            .find(|(at, what, _)| *at == c.at_s && *what == c.what)
        {
            Some((_, _, parts)) => parts.push(c.partition),
            None => groups.push((c.at_s, &c.what, vec![c.partition])),
        }
    }
    groups
        .into_iter()
        .map(|(at, what, parts)| {
            let wher = if parts.len() > 2 {
                format!("×{}", parts.len())
            } else {
                let ps: Vec<String> = parts.iter().map(|p| format!("p{p}")).collect();
                ps.join(",")
            };
            (at, format!("{what} {wher}"))
        })
        .collect()
}

#[cfg(test)]
mod marker_tests {
    use super::*;

    fn change(at_s: f64, partition: i32, what: &str) -> ClusterChange {
        ClusterChange {
            at_s,
            partition,
            leader: 1,
            isr: vec![1],
            what: what.into(),
        }
    }

    #[test]
    fn one_marker_per_kind_of_change_and_moment() {
        let cs = [
            change(4.0, 0, "isr shrank"),
            change(4.0, 1, "isr shrank"),
            change(4.0, 2, "leader moved"),
            change(9.5, 0, "isr grew"),
            change(9.5, 1, "isr grew"),
            change(9.5, 2, "isr grew"),
            change(11.0, 1, "offline"),
        ];
        assert_eq!(
            change_markers(&cs),
            [
                (4.0, "isr shrank p0,p1".to_string()),
                (4.0, "leader moved p2".to_string()),
                (9.5, "isr grew ×3".to_string()),
                (11.0, "offline p1".to_string()),
            ]
        );
        assert!(change_markers(&[]).is_empty());
    }
}
