//! What load to put on a broker: the producer's acks, the workload's
//! fields, their defaults and limits, and the rules for client overrides
//! and topic names.

use super::{Assignor, FaultSpec, GroupProtocol, KeyDist, Partitioner, Payload};
use crate::units::duration_secs;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// The producer's `acks` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Acks {
    #[serde(rename = "0")]
    Zero,
    #[serde(rename = "1")]
    One,
    #[default]
    #[serde(rename = "all")]
    All,
}

impl Acks {
    pub fn as_kafka(self) -> &'static str {
        match self {
            Acks::Zero => "0",
            Acks::One => "1",
            Acks::All => "all",
        }
    }
}

impl std::str::FromStr for Acks {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "0" => Ok(Acks::Zero),
            "1" => Ok(Acks::One),
            "all" | "-1" => Ok(Acks::All),
            other => Err(format!(
                "'{other}' is not an acks value; allowed: 0, 1, all"
            )),
        }
    }
}

impl fmt::Display for Acks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_kafka())
    }
}

/// Limits on workload values, shared by the CLI and lab files.
pub mod limits {
    /// Header (32 bytes) + HMAC tag (32 bytes).
    pub const MIN_MESSAGE_BYTES: usize = 64;
    /// Kafka's default `message.max.bytes` is about 1 MiB.
    pub const MAX_MESSAGE_BYTES: usize = 1_000_000;
    pub const MAX_PARTITIONS: i32 = 1024;
    pub const MAX_RATE: f64 = 10_000_000.0;
    pub const MAX_MESSAGES: u64 = 1_000_000_000;
    pub const MAX_PRODUCERS: u32 = 64;
    /// Kafka allows more, but a lab cluster has at most 5 brokers.
    pub const MAX_REPLICATION: u32 = 5;
    /// Consumers of one workload (each reads its share of the partitions).
    pub const MAX_CONSUMERS: u32 = 64;
    /// The shortest measured window (its records/s and percentiles are
    /// per second).
    pub const MIN_DURATION: std::time::Duration = std::time::Duration::from_secs(1);
    /// A consumer's simulated work per record.
    pub const MAX_PROCESSING: std::time::Duration = std::time::Duration::from_secs(1);
}

/// What a workload is when nothing says otherwise: the command line's
/// defaults and the labs' (lab 01 sets its own on top).
pub mod defaults {
    use std::time::Duration;
    pub const RATE: f64 = 10_000.0;
    pub const DURATION: Duration = Duration::from_secs(10);
    pub const WARMUP: Duration = Duration::from_secs(2);
    pub const MESSAGE_BYTES: usize = 1024;
    pub const PARTITIONS: i32 = 3;
    pub const PRODUCERS: u32 = 1;
    pub const CONSUMERS: u32 = 1;
}

/// The load of one measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Open-loop target in records/s; `None` means as fast as acks allow.
    pub rate: Option<f64>,
    /// Stop after this many measured records ...
    pub messages: Option<u64>,
    /// ... or after this long (exactly one of the two is set).
    #[serde(with = "opt_secs", default)]
    pub duration: Option<Duration>,
    /// Sent and measured before the counted part, but not counted.
    #[serde(with = "duration_secs")]
    pub warmup: Duration,
    pub message_bytes: usize,
    pub partitions: i32,
    pub acks: Acks,
    /// Extra librdkafka producer settings (`linger.ms`, `batch.size`, ...).
    #[serde(default)]
    pub producer: BTreeMap<String, String>,
    /// Topic to use; by default a fresh one per run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Independent producer clients (each its own connection), sharing the
    /// rate and the messages equally.
    #[serde(default = "default_producers")]
    pub producers: u32,
    /// Replicas per partition of a topic klab creates (None: as many
    /// brokers as there are, at most 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<u32>,
    /// The topic's `min.insync.replicas` (None: the broker's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_insync_replicas: Option<u32>,
    /// Faults on the measured window's timeline (local clusters).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultSpec>,
    /// What the records' bodies hold.
    #[serde(default)]
    pub payload: Payload,
    /// Consumer clients; consumer `k` of `n` reads the partitions `p` with
    /// `p % n == k`, as a group's assignor would share them.
    #[serde(default = "default_consumers")]
    pub consumers: u32,
    /// Simulated work per record in each consumer (it waits, so it costs
    /// no CPU): a consumer takes at most 1/processing records/s.
    #[serde(with = "duration_secs", default)]
    pub processing: Duration,
    /// Extra librdkafka consumer settings (`fetch.min.bytes`, ...).
    #[serde(default)]
    pub consumer: BTreeMap<String, String>,
    /// Keyed records: each record carries one of the keys `k0`..`k<N-1>`
    /// and goes to the partition Kafka's Java client picks for it (None:
    /// no keys; record i goes to partition `i % partitions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<u32>,
    /// How the records are spread over the keys (None: uniform); only
    /// with `keys`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_dist: Option<KeyDist>,
    /// Where keyless records go: round robin (klab picks) or sticky (the
    /// client picks, as real clients do).
    #[serde(default, skip_serializing_if = "Partitioner::is_default")]
    pub partitioner: Partitioner,
    /// The consumers as one group the broker coordinates, with this
    /// protocol (None: each consumer takes fixed partitions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupProtocol>,
    /// The group's assignor (None: the protocol's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignor: Option<Assignor>,
    /// The links between the clients and the nodes and between nodes
    /// (None: loopback, the brokers reached directly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<super::Network>,
}

fn default_producers() -> u32 {
    defaults::PRODUCERS
}

fn default_consumers() -> u32 {
    defaults::CONSUMERS
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            rate: Some(defaults::RATE),
            messages: None,
            duration: Some(defaults::DURATION),
            warmup: defaults::WARMUP,
            message_bytes: defaults::MESSAGE_BYTES,
            partitions: defaults::PARTITIONS,
            acks: Acks::All,
            producer: BTreeMap::new(),
            topic: None,
            producers: defaults::PRODUCERS,
            replication_factor: None,
            min_insync_replicas: None,
            faults: Vec::new(),
            payload: Payload::Fixed,
            consumers: defaults::CONSUMERS,
            processing: Duration::ZERO,
            consumer: BTreeMap::new(),
            keys: None,
            key_dist: None,
            partitioner: Partitioner::RoundRobin,
            group: None,
            assignor: None,
            network: None,
        }
    }
}

impl Workload {
    /// Checks the invariants; the error names the field and what is allowed.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(r) = self.rate
            && !(r.is_finite() && r > 0.0 && r <= limits::MAX_RATE)
        {
            return Err(format!(
                "rate: {r} is not allowed; expected records/s in (0, {}]",
                limits::MAX_RATE
            ));
        }
        match (self.messages, self.duration) {
            (Some(_), Some(_)) => return Err("messages and duration: give one, not both".into()),
            (None, None) => return Err("messages or duration: one of them is required".into()),
            (Some(0), _) => return Err("messages: must be at least 1".into()),
            (Some(n), _) if n > limits::MAX_MESSAGES => {
                return Err(format!(
                    "messages: {n} is absurd; at most {}",
                    limits::MAX_MESSAGES
                ));
            }
            (_, Some(d)) if d < limits::MIN_DURATION => {
                return Err(format!(
                    "duration: {d:?} is too short; a window is measured in whole seconds, so at least {}",
                    crate::units::format_duration(limits::MIN_DURATION)
                ));
            }
            _ => {}
        }
        // An open loop whose window holds no record for some producer
        // would measure nothing and call it complete.
        if let Some(r) = self.rate {
            let producers = f64::from(self.producers.max(1));
            match (self.duration, self.messages) {
                (Some(d), _) if r * d.as_secs_f64() < producers => {
                    return Err(format!(
                        "rate: {r}/s over {} is less than one record per producer; at least {:.3}/s",
                        crate::units::format_duration(d),
                        producers / d.as_secs_f64()
                    ));
                }
                (_, Some(n)) if n as f64 / r > crate::units::MAX_DURATION.as_secs_f64() => {
                    return Err(format!(
                        "rate: {n} records at {r}/s would take more than a week; raise the rate or lower messages"
                    ));
                }
                _ => {}
            }
        }
        if !(limits::MIN_MESSAGE_BYTES..=limits::MAX_MESSAGE_BYTES).contains(&self.message_bytes) {
            return Err(format!(
                "message_bytes: {} is not allowed; expected {}..={} (64 bytes of header and HMAC tag are included)",
                self.message_bytes,
                limits::MIN_MESSAGE_BYTES,
                limits::MAX_MESSAGE_BYTES
            ));
        }
        if !(1..=limits::MAX_PARTITIONS).contains(&self.partitions) {
            return Err(format!(
                "partitions: {} is not allowed; expected 1..={}",
                self.partitions,
                limits::MAX_PARTITIONS
            ));
        }
        if !(1..=limits::MAX_PRODUCERS).contains(&self.producers) {
            return Err(format!(
                "producers: {} is not allowed; expected 1..={}",
                self.producers,
                limits::MAX_PRODUCERS
            ));
        }
        if let Some(n) = self.messages
            && n < u64::from(self.producers)
        {
            return Err(format!(
                "messages: {n} is fewer than one per producer ({})",
                self.producers
            ));
        }
        for key in self.producer.keys() {
            check_producer_key(key).map_err(|e| format!("producer: {e}"))?;
        }
        if !(1..=limits::MAX_CONSUMERS).contains(&self.consumers) {
            return Err(format!(
                "consumers: {} is not allowed; expected 1..={}",
                self.consumers,
                limits::MAX_CONSUMERS
            ));
        }
        if !consumers_fit(self.consumers, i64::from(self.partitions)) {
            return Err(format!(
                "consumers: {} is more than the {} partition(s); each partition is read by one consumer, so at most {} can read (raise partitions too)",
                self.consumers, self.partitions, self.partitions
            ));
        }
        if self.processing > limits::MAX_PROCESSING {
            return Err(format!(
                "processing: {} per record is not allowed; expected 0s..=1s",
                crate::units::format_duration(self.processing)
            ));
        }
        for key in self.consumer.keys() {
            check_consumer_key(key).map_err(|e| format!("consumer: {e}"))?;
        }
        if let Some(rf) = self.replication_factor
            && !(1..=limits::MAX_REPLICATION).contains(&rf)
        {
            return Err(format!(
                "replication_factor: {rf} is not allowed; expected 1..={}",
                limits::MAX_REPLICATION
            ));
        }
        for (i, f) in self.faults.iter().enumerate() {
            f.validate(self.duration)
                .map_err(|e| format!("faults[{}].{e}", i + 1))?;
        }
        if !self.faults.is_empty() && self.duration.is_none() {
            return Err(
                "faults: a timeline of faults needs a duration, not a message count".into(),
            );
        }
        self.check_keys()?;
        super::group::check(self.group, self.assignor, self.consumer.keys())?;
        self.check_consumer_events()?;
        if let Some(n) = &self.network {
            n.validate().map_err(|e| format!("network.{e}"))?;
        }
        if let Some(isr) = self.min_insync_replicas {
            let most = self.replication_factor.unwrap_or(limits::MAX_REPLICATION);
            if !(1..=most).contains(&isr) {
                return Err(format!(
                    "min_insync_replicas: {isr} is not allowed; expected 1..={most} (at most the replication factor)"
                ));
            }
        }
        Ok(())
    }

    /// Consumer events act on a group, on members it has when they fire.
    fn check_consumer_events(&self) -> Result<(), String> {
        match consumer_event_error(self.group, self.consumers, &self.faults) {
            Some((i, e)) => Err(format!("faults[{}].{e}", i + 1)),
            None => Ok(()),
        }
    }

    /// The keys and their distribution; the error names the field.
    fn check_keys(&self) -> Result<(), String> {
        match (self.keys, self.key_dist) {
            (Some(n), _) if !(1..=super::MAX_KEYS).contains(&n) => Err(format!(
                "keys: {n} is not allowed; expected 1..={}",
                super::MAX_KEYS
            )),
            (None, Some(d)) => Err(format!(
                "key_dist: {d} needs keys (how many keys the records carry, e.g. keys = 100)"
            )),
            (Some(n), Some(d)) => d.check(n).map_err(|e| format!("key_dist: {e}")),
            _ if self.keys.is_some() && self.partitioner != Partitioner::RoundRobin => {
                Err(format!(
                    "partitioner: {} places records without a key, but these carry keys (they go by their key's hash); leave one of keys and partitioner out",
                    self.partitioner
                ))
            }
            _ => Ok(()),
        }
    }

    /// The keys' distribution when the records are keyed.
    pub fn keyed(&self) -> Option<(u32, KeyDist)> {
        self.keys
            .map(|n| (n, self.key_dist.unwrap_or(KeyDist::Uniform)))
    }

    /// The most records/s the consumers can read when each record costs
    /// them `processing` (None without simulated work).
    pub fn read_ceiling(&self) -> Option<f64> {
        (!self.processing.is_zero())
            .then(|| f64::from(self.consumers.max(1)) / self.processing.as_secs_f64())
    }

    /// A short human description: `rate 20000/s, 1024 B, 3 partitions, 30s`.
    pub fn describe(&self) -> String {
        let load = match self.rate {
            Some(r) => format!("rate {r:.0}/s"),
            None => "max".to_string(),
        };
        let stop = match (self.messages, self.duration) {
            (Some(n), _) => format!("{n} records"),
            (_, Some(d)) => crate::units::format_duration(d),
            _ => String::new(),
        };
        let mut who = if self.producers > 1 {
            format!(", {} producers", self.producers)
        } else {
            String::new()
        };
        if self.consumers > 1 {
            who.push_str(&format!(", {} consumers", self.consumers));
        }
        if !self.processing.is_zero() {
            who.push_str(&format!(
                ", {} per record",
                crate::units::format_duration(self.processing)
            ));
        }
        if self.payload != Payload::Fixed {
            who.push_str(&format!(", {} payload", self.payload));
        }
        if let Some((n, d)) = self.keyed() {
            who.push_str(&format!(", {n} keys ({d})"));
        }
        if let Some(g) = self.group {
            match self.assignor {
                Some(a) => who.push_str(&format!(", {g} group ({a})")),
                None => who.push_str(&format!(", {g} group")),
            }
        }
        if self.partitioner != Partitioner::RoundRobin {
            who.push_str(&format!(", {} partitioner", self.partitioner));
        }
        if let Some(net) = &self.network {
            who.push_str(&format!(", network: {net}"));
        }
        let rf = match (self.replication_factor, self.min_insync_replicas) {
            (Some(r), Some(i)) => format!(", RF {r}, min ISR {i}"),
            (Some(r), None) => format!(", RF {r}"),
            (None, Some(i)) => format!(", min ISR {i}"),
            (None, None) => String::new(),
        };
        format!(
            "{load}, {} B, {} partition(s){rf}, acks={}{who}, {stop}",
            self.message_bytes, self.partitions, self.acks
        )
    }
}

/// Producer keys klab owns: changing them would break the measurement.
const RESERVED_PRODUCER_KEYS: &[&str] = &[
    "bootstrap.servers",
    "acks",
    "request.required.acks",
    "dr_msg_cb",
    "dr_cb",
    "delivery.report.only.error",
];

/// Consumer keys klab owns: it reads every partition itself from the
/// start, commits nothing, and needs to see every record.
const RESERVED_CONSUMER_KEYS: &[&str] = &[
    "bootstrap.servers",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "auto.offset.reset",
    "enable.partition.eof",
];

/// Each partition is read by one consumer of a group: a group of
/// `consumers` has a partition for each only with at least as many.
pub fn consumers_fit(consumers: u32, partitions: i64) -> bool {
    i64::from(consumers) <= partitions
}

/// A consumer setting a workload may carry: any librdkafka key but the
/// ones klab owns ([`RESERVED_CONSUMER_KEYS`]).
pub fn check_consumer_key(key: &str) -> Result<(), String> {
    if RESERVED_CONSUMER_KEYS.contains(&key) {
        return Err(format!(
            "'{key}' is set by klab itself: its consumers read every partition from the start and commit nothing"
        ));
    }
    Ok(())
}

/// Kafka's topic name rule: 1-249 of [a-zA-Z0-9._-], not "." or "..".
pub fn check_topic_name(t: &str) -> Result<(), String> {
    if t.is_empty() || t.len() > 249 || t == "." || t == ".." {
        return Err(format!(
            "'{t}' is not a valid topic name (1 to 249 characters, not . or ..)"
        ));
    }
    if let Some(c) = t
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "'{t}' has '{c}'; topic names allow letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// A producer setting a workload may carry: any librdkafka key but the
/// ones klab owns ([`RESERVED_PRODUCER_KEYS`]).
pub fn check_producer_key(key: &str) -> Result<(), String> {
    if RESERVED_PRODUCER_KEYS.contains(&key) {
        return Err(format!(
            "'{key}' is set by klab itself (use the workload's own field, e.g. acks)"
        ));
    }
    Ok(())
}

pub(crate) mod opt_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<f64>::deserialize(d)?
            .map(crate::units::duration_from_secs)
            .transpose()
            .map_err(serde::de::Error::custom)
    }
}

/// The first consumer event of `faults` that cannot act (its index and
/// the field's error): consumer events need a `group`, and act on members
/// it has when they fire (the workload's `consumers`, then one more per
/// join; a member that left or died is gone).
pub fn consumer_event_error(
    group: Option<super::GroupProtocol>,
    consumers: u32,
    faults: &[super::FaultSpec],
) -> Option<(usize, String)> {
    let mut events: Vec<(usize, &super::FaultSpec)> = faults
        .iter()
        .enumerate()
        .filter(|(_, f)| f.action.is_consumer())
        .collect();
    if let (Some((i, f)), None) = (events.first(), group) {
        return Some((
            *i,
            format!(
                "action: {} acts on a member of a consumer group, and without group the consumers take fixed partitions; set group = \"classic\" or \"consumer\"",
                f.action.as_str()
            ),
        ));
    }
    events.sort_by_key(|(i, f)| (f.at, *i));
    let mut members = consumers.max(1);
    let mut gone = std::collections::BTreeSet::new();
    for (i, f) in events {
        let super::FaultTarget::Consumer(n) = f.broker else {
            continue;
        };
        if n == 0 {
            members += 1;
        } else if n > members || gone.contains(&n) {
            return Some((
                i,
                format!(
                    "consumer: {n} is not in the group when it fires at {}; it has consumers 1..={members} then (consumers = {}, one more per join before it){}",
                    crate::units::format_duration(f.at),
                    consumers.max(1),
                    if gone.contains(&n) {
                        ", and this one has gone"
                    } else {
                        ""
                    }
                ),
            ));
        } else if matches!(
            f.action,
            super::FaultAction::Leave | super::FaultAction::Die
        ) {
            gone.insert(n);
        }
    }
    None
}
