//! The plain data klab passes around: what a broker should look like
//! ([`BrokerConfig`]), what load to put on it ([`Workload`]) and what came out
//! ([`StepResult`]). No I/O lives here, so every other module may use it.

use crate::units::{MemSize, duration_secs};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

mod cpu;
mod fault;
mod payload;
pub use cpu::CpuUse;
pub use fault::*;
pub use payload::Payload;

/// Settings of one broker, in Kafka's own vocabulary. `heap` becomes
/// `-Xms`/`-Xmx`; `properties` are server.properties keys (`num.io.threads`).
/// This is the only place a broker setting is spelled; the local broker, the
/// broker image and the Kubernetes patch all render it from here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heap: Option<MemSize>,
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

impl BrokerConfig {
    /// `self` with every setting of `over` laid on top.
    pub fn overlay(&self, over: &BrokerConfig) -> BrokerConfig {
        let mut out = self.clone();
        if over.heap.is_some() {
            out.heap = over.heap;
        }
        for (k, v) in &over.properties {
            out.properties.insert(k.clone(), v.clone());
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_none() && self.properties.is_empty()
    }

    /// The settings in `to` that differ from `self` (as a config to overlay).
    pub fn diff(&self, to: &BrokerConfig) -> BrokerConfig {
        let mut out = BrokerConfig::default();
        if self.heap != to.heap {
            out.heap = to.heap;
        }
        for (k, v) in &to.properties {
            if self.properties.get(k) != Some(v) {
                out.properties.insert(k.clone(), v.clone());
            }
        }
        out
    }

    /// One line per setting: `heap=512m`, `num.io.threads=2`.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(h) = self.heap {
            out.push(format!("heap={h}"));
        }
        for (k, v) in &self.properties {
            out.push(format!("{k}={v}"));
        }
        out
    }
}

impl fmt::Display for BrokerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines = self.lines();
        if lines.is_empty() {
            f.write_str("(defaults)")
        } else {
            f.write_str(&lines.join(" "))
        }
    }
}

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
            (_, Some(d)) if d.is_zero() => return Err("duration: must be longer than 0".into()),
            _ => {}
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
pub const RESERVED_PRODUCER_KEYS: &[&str] = &[
    "bootstrap.servers",
    "acks",
    "request.required.acks",
    "dr_msg_cb",
    "dr_cb",
    "delivery.report.only.error",
];

/// Consumer keys klab owns: it reads every partition itself from the
/// start, commits nothing, and needs to see every record.
pub const RESERVED_CONSUMER_KEYS: &[&str] = &[
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
        let v = Option::<f64>::deserialize(d)?;
        match v {
            None => Ok(None),
            Some(s) if s.is_finite() && s >= 0.0 => Ok(Some(Duration::from_secs_f64(s))),
            Some(_) => Err(serde::de::Error::custom("a duration must be >= 0 seconds")),
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Records acknowledged by the broker per second of the measured window.
    pub msgs_per_s: f64,
    /// The same in megabytes (10^6 bytes) of record value per second.
    pub mb_per_s: f64,
}

/// One broker setting as the broker itself reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EffectiveValue {
    pub value: Option<String>,
    /// Which level won: DynamicBroker, DynamicDefaultBroker, StaticBroker,
    /// Default (Kafka's names), or `jvm` for the heap.
    pub source: String,
}

/// What kind of broker a result was measured on (`broker.target`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// Brokers klab started as child processes on 127.0.0.1.
    #[default]
    Local,
    /// A broker someone else runs (`--bootstrap HOST:PORT`).
    Bootstrap,
    /// The broker StatefulSet of `manifests/` in a Kubernetes cluster.
    Kubernetes,
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TargetKind::Local => "local",
            TargetKind::Bootstrap => "bootstrap",
            TargetKind::Kubernetes => "kubernetes",
        })
    }
}

/// How a step's broker settings reached the broker (`broker.applied`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Applied {
    /// server.properties and JVM flags when klab started the broker.
    #[default]
    #[serde(alias = "static", alias = "static (started)")]
    Started,
    /// A restart (a rollout on Kubernetes) with a new static config.
    #[serde(alias = "static (restarted)")]
    Restarted,
    /// The Admin API, without a restart.
    #[serde(alias = "dynamic (no restart)")]
    Dynamic,
    /// A broker of the same session kept running idle (a warm spare, see
    /// `broker::spares`), whose static config already was this one: its
    /// dynamic settings changed through the Admin API, its JIT warm.
    Reused,
    /// The broker already ran with these settings.
    Unchanged,
    /// A broker klab does not own, measured as it is.
    External,
}

impl Applied {
    /// A fresh JVM: its JIT needs a throw-away load before a measurement.
    pub fn fresh_jvm(self) -> bool {
        matches!(self, Applied::Started | Applied::Restarted)
    }
}

impl fmt::Display for Applied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Applied::Started => "static (started)",
            Applied::Restarted => "static (restarted)",
            Applied::Dynamic => "dynamic (no restart)",
            Applied::Reused => "static (warm broker reused)",
            Applied::Unchanged => "unchanged",
            Applied::External => "external (as it is)",
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BrokerReport {
    pub target: TargetKind,
    pub bootstrap: String,
    pub requested: BrokerConfig,
    /// Effective values: every requested key, every key klab knows as a
    /// knob, every key not at its default, and `heap` as the JVM reports it.
    pub effective: BTreeMap<String, EffectiveValue>,
    #[serde(default)]
    pub applied: Applied,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    pub klab_version: String,
    pub kafka_version: Option<String>,
    pub java_version: Option<String>,
    pub cores: usize,
    pub os: String,
    pub arch: String,
    /// Nix store path of the klab binary, when it runs from the store.
    pub klab_store_path: Option<String>,
    /// Nix store path of the Kafka installation, when it is in the store.
    pub kafka_store_path: Option<String>,
    /// NAR hash (SRI) of the lab directory, as `nix hash path` prints it.
    pub lab_fingerprint: Option<String>,
    pub started_at: String,
}

/// Where a run's histograms were written, relative to the JSON file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HistogramFiles {
    pub publish: Option<String>,
    pub e2e: Option<String>,
}

/// The outcome of one measurement: counts, rates, latencies and context.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    /// Set when the step belongs to a lab (`05-starved-heap`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lab: Option<String>,
    /// What this step is: `measure`, `fixed`, `trial 3`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub complete: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Records handed to the producer (measured part plus warm-up).
    pub produced: u64,
    /// Records the broker acknowledged.
    pub acked: u64,
    /// Records whose delivery failed (never acknowledged).
    pub failed: u64,
    /// klab records the consumer received and verified (with duplicates).
    pub consumed: u64,
    /// Acknowledged records the consumer never read, or (after faults)
    /// that are no longer in the topic when it is read back (`log_check`).
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub corrupt: u64,
    pub foreign: u64,
    /// Records in the warm-up (all counts above include them).
    pub warmup_records: u64,
    /// Records due in the window that the producer never handed over before
    /// its deadline (the broker or client could not keep up with the rate).
    #[serde(default)]
    pub unsent: u64,
    pub target_rate: Option<f64>,
    /// Records handed to the producer per second in the measured window.
    pub achieved_rate: f64,
    pub throughput: Throughput,
    /// Measured records the consumer verified per second of the window: below
    /// the acknowledged rate, the consumer (or the broker's fetch path) lagged.
    #[serde(default)]
    pub read_rate: f64,
    pub publish_latency_ms: Percentiles,
    pub e2e_latency_ms: Percentiles,
    /// Length of the measured window (after warm-up) in seconds.
    pub measured_seconds: f64,
    /// End-to-end latency per second of the run: [seconds since start, p99
    /// ms, max ms] (warm-up excluded), to see when a stall happened.
    #[serde(default)]
    pub e2e_timeline: Vec<[f64; 3]>,
    pub broker: BrokerReport,
    pub workload: Workload,
    pub environment: Environment,
    #[serde(default)]
    pub histograms: HistogramFiles,
    /// How much the headline figures move from second to second of this
    /// window (see [`Noise`]); None when the window was too short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<Noise>,
    /// Measurements this result pools (a step measured again because its
    /// verdict was inside the noise); 0 or 1: one.
    #[serde(default, skip_serializing_if = "is_one_run")]
    pub runs: u32,
    /// The broker JVM's garbage-collection pauses in the measured window
    /// (local brokers: read from their GC log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc: Option<GcSummary>,
    /// The faults that fired in the measured window, as they happened.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultRecord>,
    /// The window cut before, during and after each fault.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<Window>,
    /// With faults: the longest time, from a fault, until the acknowledged
    /// rate was back within 10% of the rate before it and stayed there for
    /// 3 s; None when a fault's rate never came back in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_s: Option<f64>,
    /// With faults: the topic read back from its start after the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_check: Option<LogCheck>,
    /// CPU over the measured window: klab's clients, the brokers, the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuUse>,
    /// Where the measured window starts on the `e2e_timeline` axis
    /// (seconds), to place faults on it.
    #[serde(default)]
    pub window_start_s: f64,
    /// Consumer lag: records due but not yet read (processed), at the end
    /// of each whole second of the measured window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumer_lag: Vec<u64>,
}

/// GC pauses of a broker JVM over a window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GcSummary {
    pub pauses: u64,
    pub total_ms: f64,
    pub mean_ms: f64,
    pub max_ms: f64,
    /// The heap as the JVM reported it at start (`1G`).
    pub heap: Option<String>,
}

fn is_one_run(n: &u32) -> bool {
    *n <= 1
}

/// A range a figure lies in with 90% confidence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Band {
    pub lo: f64,
    pub hi: f64,
}

impl Band {
    pub fn contains(&self, x: f64) -> bool {
        self.lo <= x && x <= self.hi
    }

    /// hi / lo (1 for a band of one value; infinite when lo is 0).
    pub fn width_ratio(&self) -> f64 {
        if self.lo > 0.0 {
            self.hi / self.lo
        } else if self.hi > 0.0 {
            f64::INFINITY
        } else {
            1.0
        }
    }
}

/// The noise of a step's figures: 90% bands of acknowledged records/s and
/// of the e2e and publish p99, from resampling the window's seconds (each
/// second a block: its histogram and its acknowledgements). One bad second
/// among a few widens the band, so a verdict can tell it from a real change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Noise {
    pub msgs_per_s: Band,
    pub e2e_p99_ms: Band,
    pub publish_p99_ms: Band,
    /// Seconds of the window the bands come from.
    pub seconds: usize,
}

impl StepResult {
    /// No record lost, duplicated or corrupted.
    pub fn intact(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.corrupt == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_and_diff() {
        let mut a = BrokerConfig::default();
        a.properties.insert("num.io.threads".into(), "8".into());
        let mut b = BrokerConfig {
            heap: Some(MemSize::mib(256)),
            ..Default::default()
        };
        b.properties.insert("num.io.threads".into(), "2".into());
        let c = a.overlay(&b);
        assert_eq!(c.heap, Some(MemSize::mib(256)));
        assert_eq!(c.properties["num.io.threads"], "2");
        assert_eq!(a.diff(&c), b);
        assert!(c.diff(&c).is_empty());
    }

    #[test]
    fn workload_validation_names_the_field() {
        let ok = Workload::default();
        assert!(ok.validate().is_ok());
        let w = Workload {
            message_bytes: 10,
            ..Workload::default()
        };
        assert!(w.validate().unwrap_err().starts_with("message_bytes"));
        let w = Workload {
            partitions: 0,
            ..Workload::default()
        };
        assert!(w.validate().unwrap_err().starts_with("partitions"));
        let w = Workload {
            rate: Some(-1.0),
            ..Workload::default()
        };
        assert!(w.validate().unwrap_err().starts_with("rate"));
        let w = Workload {
            messages: Some(5),
            ..Workload::default()
        };
        assert!(w.validate().is_err());
        let mut w = Workload::default();
        w.producer.insert("acks".into(), "0".into());
        assert!(w.validate().unwrap_err().contains("acks"));
    }

    #[test]
    fn fault_specs_parse_and_say_what_is_wrong() {
        let f: FaultSpec = "at=5s,action=kill,broker=leader,restart_after=10s"
            .parse()
            .unwrap();
        assert_eq!(f.at, Duration::from_secs(5));
        assert_eq!(f.broker, FaultTarget::Leader);
        assert_eq!(f.restart_after, Some(Duration::from_secs(10)));
        assert!(f.validate(Some(Duration::from_secs(20))).is_ok());
        let e = f.validate(Some(Duration::from_secs(5))).unwrap_err();
        assert!(
            e.starts_with("at: 5s is not inside the measured window of 5s"),
            "{e}"
        );
        let p: FaultSpec = "at=1s,action=pause,broker=2,for=3s".parse().unwrap();
        assert_eq!(
            (p.broker, p.duration),
            (FaultTarget::Node(2), Some(Duration::from_secs(3)))
        );
        for (spec, want) in [
            (
                "at=1s,action=nuke,broker=1",
                "action: 'nuke' is not a fault action",
            ),
            ("at=1s,action=kill", "broker: missing"),
            ("action=kill,broker=1", "at: missing"),
            ("at=soon,action=kill,broker=1", "at:"),
            ("at=1s,action=kill,broker=0", "broker: '0' is not a broker"),
            (
                "at=1s,action=kill,broker=1,colour=red",
                "'colour' is not a fault field",
            ),
            ("at=1s,action=kill,broker=1,oops", "'oops' is not key=value"),
        ] {
            let e = spec.parse::<FaultSpec>().unwrap_err();
            assert!(e.contains(want), "{spec}: {e}");
        }
        for (spec, want) in [
            ("at=1s,action=pause,broker=1", "for: a pause needs"),
            (
                "at=1s,action=kill,broker=1,for=2s",
                "for: only a pause lasts",
            ),
            (
                "at=1s,action=pause,broker=1,for=2s,restart_after=1s",
                "restart_after: only after",
            ),
        ] {
            let e = spec
                .parse::<FaultSpec>()
                .unwrap()
                .validate(None)
                .unwrap_err();
            assert!(e.starts_with(want), "{spec}: {e}");
        }
        let j = serde_json::to_value(&p).unwrap();
        assert_eq!(j["for"], 3.0);
        assert_eq!(j["broker"], 2);
        assert_eq!(serde_json::from_value::<FaultSpec>(j).unwrap(), p);
    }

    #[test]
    fn acks_round_trip() {
        for a in [Acks::Zero, Acks::One, Acks::All] {
            assert_eq!(a.as_kafka().parse::<Acks>(), Ok(a));
            let j = serde_json::to_string(&a).unwrap();
            assert_eq!(serde_json::from_str::<Acks>(&j).unwrap(), a);
        }
        assert!("2".parse::<Acks>().is_err());
    }

    #[test]
    fn consumers_are_checked_against_the_partitions_and_their_keys() {
        let ok = Workload {
            partitions: 4,
            consumers: 4,
            processing: Duration::from_micros(500),
            ..Workload::default()
        };
        assert!(ok.validate().is_ok());
        let e = Workload {
            consumers: 5,
            ..ok.clone()
        }
        .validate()
        .unwrap_err();
        assert!(
            e.starts_with("consumers: 5 is more than the 4 partition(s)"),
            "{e}"
        );
        let e = Workload {
            consumers: 0,
            ..ok.clone()
        }
        .validate()
        .unwrap_err();
        assert!(e.contains("expected 1..=64"), "{e}");
        let e = Workload {
            processing: Duration::from_secs(2),
            ..ok.clone()
        }
        .validate()
        .unwrap_err();
        assert!(e.starts_with("processing: 2s"), "{e}");
        let mut bad = ok.clone();
        bad.consumer
            .insert("enable.auto.commit".into(), "true".into());
        assert!(
            bad.validate()
                .unwrap_err()
                .starts_with("consumer: 'enable.auto.commit'")
        );
        assert!(
            ok.describe().contains("4 consumers, 500us per record"),
            "{}",
            ok.describe()
        );
    }
}
