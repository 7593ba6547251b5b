//! The plain data klab passes around: what a broker should look like
//! ([`BrokerConfig`]), what load to put on it ([`Workload`]) and what came out
//! ([`StepResult`]). No I/O lives here, so every other module may use it.

use crate::units::MemSize;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// An enum a workload names by one word each: `as_str`, `FromStr` (whose
/// error lists the words allowed) and `Display`.
macro_rules! named_by_word {
    ($t:ident, $what:literal, { $($v:ident => $w:literal),+ $(,)? }) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($t::$v => $w,)+
                }
            }
        }

        impl std::str::FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s.trim() {
                    $($w => Ok($t::$v),)+
                    other => Err(format!(
                        "'{other}' is not {}; allowed: {}",
                        $what,
                        [$($w),+].join(", ")
                    )),
                }
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

mod cpu;
mod fault;
mod group;
mod keys;
pub mod network;
mod payload;
pub mod settings;
mod workload;
pub use cpu::CpuUse;
pub use fault::*;
pub use group::{
    Assignor, GroupProtocol, PartitionPause, RebalanceEvent, RebalanceSummary, check as check_group,
};
pub use keys::{KeyDist, MAX_KEYS, Partitioner, key_bytes};
pub use network::Network;
pub use payload::Payload;
pub use settings::{RateSpec, WorkloadPatch};
pub(crate) use workload::opt_secs;
pub use workload::*;

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
    /// On a replicated topic: every change of a partition's leader or ISR
    /// the brokers reported during the step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster: Vec<ClusterChange>,
    /// On a replicated topic: records acknowledged in a second through
    /// which their partition's ISR was its leader alone (one copy when
    /// acknowledged, whatever `acks` said). None: not watched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_alone: Option<u64>,
    /// CPU over the measured window: klab's clients, the brokers, the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuUse>,
    /// Where the measured window starts on the `e2e_timeline` axis
    /// (seconds), to place faults on it.
    #[serde(default)]
    pub window_start_s: f64,
    /// Keyed runs: the records acknowledged on each partition (index:
    /// partition; warm-up included), to see a hot partition. Empty
    /// without keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acked_per_partition: Vec<u64>,
    /// Consumer lag: records due but not yet read (processed), at the end
    /// of each whole second of the measured window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumer_lag: Vec<u64>,
    /// A consumer group's rebalance callbacks, each member's, with
    /// `at_s` from the measured window's start (negative: before it, the
    /// joins). Empty without a group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rebalances: Vec<RebalanceEvent>,
    /// `klab run --kafka-offsets`: the topic's offsets by Kafka's own tool
    /// against klab's counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_offsets: Option<KafkaOffsets>,
    /// What the target this step ran on could not measure, each with why
    /// (the Kubernetes target's pods report totals, not per-second counts,
    /// so its fault steps have no before/during/after windows). Empty: the
    /// whole pipeline ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<String>,
}

/// What a step wrote into its topic by Kafka's own offsets, against what
/// klab counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KafkaOffsets {
    /// The tool that read them (Kafka's GetOffsetShell).
    pub tool: String,
    /// Each partition's latest offset after the step.
    pub end_offsets: std::collections::BTreeMap<i32, i64>,
    /// Records the step added to the topic: end offsets minus those before it.
    pub records: u64,
    /// Records klab's producers had acknowledged (warm-up records included).
    pub acked: u64,
    /// klab's end-of-run markers (one per producer and partition).
    pub markers: u64,
    /// `records - (acked + markers)`: 0 when the topic holds exactly what
    /// was acknowledged; below 0 by the acknowledged records it no longer
    /// holds; above 0 by records written but never acknowledged (or twice).
    pub difference: i64,
}

impl KafkaOffsets {
    /// One line for the terminal.
    pub fn describe(&self) -> String {
        let verdict = match self.difference {
            0 => "equal".to_string(),
            d if d < 0 => format!("{} fewer in the topic than acknowledged", -d),
            d => format!("{d} more in the topic than acknowledged"),
        };
        format!(
            "Kafka's own offsets ({}): {} records written in the step; klab: {} acknowledged + {} end-of-run markers = {}: {verdict}",
            self.tool.rsplit('.').next().unwrap_or(&self.tool),
            self.records,
            self.acked,
            self.markers,
            self.acked + self.markers
        )
    }
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

impl GcSummary {
    /// `pauses` pauses of `total_ms` together (mean 0 without pauses).
    pub fn new(pauses: u64, total_ms: f64, max_ms: f64, heap: Option<String>) -> GcSummary {
        let mean_ms = if pauses > 0 {
            total_ms / pauses as f64
        } else {
            0.0
        };
        GcSummary {
            pauses,
            total_ms,
            mean_ms,
            max_ms,
            heap,
        }
    }
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
    use std::time::Duration;

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
        // Windows that would hold no record, or last less than a second.
        for (rate, duration, messages, what) in [
            (
                Some(0.0001),
                Some(Duration::from_secs(10)),
                None,
                "less than one record",
            ),
            (
                Some(0.15),
                Some(Duration::from_secs(10)),
                None,
                "at least 0.200/s",
            ),
            (None, Some(Duration::from_nanos(100)), None, "at least 1s"),
            (Some(0.0001), None, Some(1000), "more than a week"),
        ] {
            let w = Workload {
                rate,
                duration,
                messages,
                producers: 2,
                ..Workload::default()
            };
            let e = w.validate().unwrap_err();
            assert!(e.contains(what), "{e}");
        }
        let w = Workload {
            rate: Some(0.5),
            duration: Some(Duration::from_secs(4)),
            producers: 2,
            ..Workload::default()
        };
        assert!(w.validate().is_ok());
    }

    /// Why a fault spec that parses cannot run.
    fn refused(spec: &str) -> String {
        spec.parse::<FaultSpec>()
            .unwrap()
            .validate(None)
            .unwrap_err()
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
            (
                "at=1s,action=slow,broker=1,for=2s,bandwidth=5",
                "bandwidth: '5' is not a rate",
            ),
        ] {
            let e = spec.parse::<FaultSpec>().unwrap_err();
            assert!(e.contains(want), "{spec}: {e}");
        }
        for (spec, want) in [
            ("at=1s,action=pause,broker=1", "for: pause needs"),
            (
                "at=1s,action=kill,broker=1,for=2s",
                "for: kill does not last",
            ),
            ("at=1s,action=isolate,broker=1", "for: isolate needs"),
            ("at=1s,action=slow,broker=1,for=2s", "latency: slow needs"),
            (
                "at=1s,action=slow,broker=1,for=2s,latency=1500us",
                "latency: 1500us is not allowed",
            ),
            (
                "at=1s,action=partition,broker=1,for=2s,latency=5ms",
                "latency: only slow",
            ),
            (
                "at=1s,action=isolate,broker=1,for=2s,bandwidth=1MB/s",
                "bandwidth: only slow",
            ),
            (
                "at=1s,action=disconnect,broker=1,for=2s,restart_after=3s",
                "restart_after: only after a kill or a stop; disconnect leaves",
            ),
            (
                "at=1s,action=reset,broker=1,for=2s",
                "for: reset does not last",
            ),
            (
                "at=1s,action=pause,broker=1,for=2s,restart_after=1s",
                "restart_after: only after",
            ),
        ] {
            let e = refused(spec);
            assert!(e.starts_with(want), "{spec}: {e}");
        }
        // A slow with a bandwidth only, on one follower: valid, said and
        // kept in bytes/s.
        let slow: FaultSpec = "at=2s,action=slow,broker=follower,for=20s,bandwidth=200KB/s"
            .parse()
            .unwrap();
        assert_eq!(slow.validate(None), Ok(()));
        assert_eq!(slow.broker, FaultTarget::Follower);
        assert_eq!(
            FaultTarget::parse("other_follower"),
            Ok(FaultTarget::OtherFollower)
        );
        assert_eq!(FaultTarget::OtherFollower.to_string(), "other_follower");
        assert_eq!(slow.to_string(), "slow follower at 2s to 200KB/s for 20s");
        assert_eq!(slow.slowdown().bandwidth, Some(200_000));
        assert!(slow.slowdown().latency.is_zero());
        let j = serde_json::to_value(&slow).unwrap();
        assert_eq!(
            (&j["bandwidth"], &j["broker"]),
            (&serde_json::json!(200_000), &serde_json::json!("follower"))
        );
        assert_eq!(serde_json::from_value::<FaultSpec>(j).unwrap(), slow);
        let j = serde_json::to_value(&p).unwrap();
        assert_eq!(j["for"], 3.0);
        assert_eq!(j["broker"], 2);
        assert_eq!(serde_json::from_value::<FaultSpec>(j).unwrap(), p);
    }

    #[test]
    fn consumer_events_name_a_member_and_need_a_group_that_has_it() {
        let leave: FaultSpec = "at=2s,action=leave,consumer=2".parse().unwrap();
        assert_eq!(leave.broker, FaultTarget::Consumer(2));
        assert_eq!(leave.to_string(), "leave consumer 2 at 2s");
        let join: FaultSpec = "at=1s,action=join".parse().unwrap();
        assert_eq!(
            (join.broker, join.validate(None)),
            (FaultTarget::Consumer(0), Ok(()))
        );
        let stall: FaultSpec = "at=1s,action=stall,consumer=1,for=8s".parse().unwrap();
        assert_eq!(stall.validate(None), Ok(()));
        // Written out and read back, as results keep them.
        for f in [&leave, &join, &stall] {
            let j = serde_json::to_value(f).unwrap();
            assert_eq!(&serde_json::from_value::<FaultSpec>(j).unwrap(), f);
        }
        for (spec, want) in [
            ("at=1s,action=leave", "consumer: missing; leave names"),
            (
                "at=1s,action=join,consumer=2",
                "consumer: join adds a new consumer",
            ),
            (
                "at=1s,action=die,broker=leader",
                "broker: die acts on a consumer",
            ),
            (
                "at=1s,action=kill,consumer=1",
                "consumer: kill acts on a broker",
            ),
            ("at=1s,action=stall,consumer=1", "for: stall needs"),
            (
                "at=1s,action=die,consumer=1,for=2s",
                "for: die does not last",
            ),
        ] {
            let e = refused(spec);
            assert!(e.starts_with(want), "{spec}: {e}");
        }
        let e = "at=1s,action=leave,consumer=0"
            .parse::<FaultSpec>()
            .unwrap_err();
        assert!(e.starts_with("consumer: '0' is not a consumer"), "{e}");
        // The workload: a group, and members it has when each event fires.
        let with = |group: Option<GroupProtocol>, faults: &[&str]| Workload {
            duration: Some(Duration::from_secs(20)),
            messages: None,
            consumers: 2,
            partitions: 4,
            group,
            faults: faults.iter().map(|f| f.parse().unwrap()).collect(),
            ..Workload::default()
        };
        let classic = Some(GroupProtocol::Classic);
        assert_eq!(
            with(
                classic,
                &["at=5s,action=join", "at=8s,action=die,consumer=3"]
            )
            .validate(),
            Ok(())
        );
        for (group, faults, want) in [
            (
                None,
                &["at=1s,action=join"][..],
                "faults[1].action: join acts on a member of a consumer group",
            ),
            (
                classic,
                &["at=1s,action=leave,consumer=3"][..],
                "faults[1].consumer: 3 is not in the group when it fires at 1s; it has consumers 1..=2",
            ),
            (
                classic,
                &["at=9s,action=leave,consumer=3", "at=5s,action=join"][..],
                "",
            ),
            (
                classic,
                &[
                    "at=1s,action=die,consumer=2",
                    "at=3s,action=stall,consumer=2,for=2s",
                ][..],
                "faults[2].consumer: 2 is not in the group when it fires at 3s; it has consumers 1..=2 then (consumers = 2, one more per join before it), and this one has gone",
            ),
        ] {
            match with(group, faults).validate() {
                Ok(()) => assert!(want.is_empty(), "{faults:?}"),
                Err(e) => assert!(!want.is_empty() && e.starts_with(want), "{faults:?}: {e}"),
            }
        }
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
