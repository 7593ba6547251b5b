//! The bench's data: what it runs, each run of a tool, and the report.

use crate::stats::Spread;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// What the bench runs; [`BenchOptions::quick`] and [`BenchOptions::full`]
/// are the two presets of the command line.
#[derive(Debug, Clone, Serialize)]
pub struct BenchOptions {
    pub quick: bool,
    /// Counted pairs (klab + peer) of each comparison.
    pub pairs: usize,
    /// Records per producer/consumer run.
    pub messages: u64,
    /// Records per warm-up run (not counted).
    pub warmup_messages: u64,
    /// Records of the runs that measure each tool's start-up cost.
    pub startup_messages: u64,
    pub record_bytes: usize,
    pub partitions: i32,
    pub linger_ms: u32,
    pub batch_size: u32,
    /// klab's open-loop rate in the latency comparison.
    pub latency_rate: f64,
    #[serde(with = "crate::units::duration_secs")]
    pub latency_duration: Duration,
    #[serde(with = "crate::units::duration_secs")]
    pub latency_warmup: Duration,
    /// Records EndToEndLatency sends (one at a time).
    pub latency_messages_peer: u64,
    /// The klab binary the producer and consumer runs start.
    #[serde(skip)]
    pub klab_exe: PathBuf,
    /// librdkafka's `rdkafka_performance`, the second producer peer.
    #[serde(skip)]
    pub rdkafka_performance: PathBuf,
    #[serde(skip)]
    pub progress: crate::stats::progress::Progress,
}

impl BenchOptions {
    pub fn quick(klab_exe: PathBuf) -> BenchOptions {
        BenchOptions {
            quick: true,
            pairs: 3,
            messages: 200_000,
            warmup_messages: 100_000,
            startup_messages: 1_000,
            record_bytes: 1024,
            partitions: 6,
            linger_ms: 5,
            batch_size: 65_536,
            latency_rate: 1000.0,
            latency_duration: Duration::from_secs(5),
            latency_warmup: Duration::from_secs(1),
            latency_messages_peer: 3_000,
            klab_exe,
            rdkafka_performance: PathBuf::new(),
            progress: crate::stats::progress::Progress::Quiet,
        }
    }

    pub fn full(klab_exe: PathBuf) -> BenchOptions {
        BenchOptions {
            quick: false,
            pairs: 5,
            messages: 500_000,
            warmup_messages: 200_000,
            latency_duration: Duration::from_secs(10),
            latency_warmup: Duration::from_secs(2),
            latency_messages_peer: 6_000,
            ..BenchOptions::quick(klab_exe)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Test {
    Producer,
    Consumer,
    Latency,
}

impl Test {
    /// Its name in the JSON (as serde writes it).
    pub fn as_str(self) -> &'static str {
        match self {
            Test::Producer => "producer",
            Test::Consumer => "consumer",
            Test::Latency => "latency",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Klab,
    /// Kafka's own tool.
    Peer,
    /// librdkafka's `rdkafka_performance` (the producer only).
    #[serde(rename = "rdkafka_performance")]
    Rdkafka,
}

impl Side {
    /// Its name in the JSON (as serde writes it).
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Klab => "klab",
            Side::Peer => "peer",
            Side::Rdkafka => "rdkafka_performance",
        }
    }
}

/// The key of `BenchReport::summary` for one test and side: `producer_klab`.
pub fn summary_key(test: Test, side: Side) -> String {
    format!("{}_{}", test.as_str(), side.as_str())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Warms the broker's JIT and page cache; not counted.
    Warmup,
    /// A small run that measures a tool's fixed start-up cost.
    Startup,
    Measured,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub avg_ms: f64,
    pub max_ms: Option<f64>,
}

/// One run of one tool.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub phase: Phase,
    /// 1-based pair number (0 for warm-up and start-up runs).
    pub pair: usize,
    pub test: Test,
    pub side: Side,
    pub tool: String,
    pub topic: String,
    pub records: u64,
    /// Wall time of the whole process (or measurement), start-up included.
    pub wall_s: f64,
    /// The throughput this comparison uses (see `throughput_basis`).
    pub records_per_s: f64,
    pub mb_per_s: f64,
    pub throughput_basis: String,
    pub cpu_user_s: Option<f64>,
    pub cpu_sys_s: Option<f64>,
    /// (user + sys) / records, in microseconds, start-up included.
    pub cpu_per_record_us: Option<f64>,
    /// CPU the broker JVM used during the run.
    pub broker_cpu_s: Option<f64>,
    pub broker_cpu_per_record_us: Option<f64>,
    /// Share of all the host's cores that were busy during the run.
    pub host_busy: Option<f64>,
    pub latency: Option<Latency>,
    pub complete: bool,
    pub problem: Option<String>,
    /// The tool's own figures as it reported them.
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct Goal {
    pub ratio: String,
    pub target: String,
    pub met: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub klab_version: String,
    pub kafka_version: String,
    pub java_version: String,
    pub cores: usize,
    pub started_at: String,
    pub finished_at: String,
    pub settings: BenchOptions,
    /// Peer command lines (for reproducing a run by hand).
    pub peer_commands: BTreeMap<String, String>,
    pub runs: Vec<Run>,
    /// Per comparison and side: figures over the counted pairs.
    pub summary: BTreeMap<String, BTreeMap<String, Spread>>,
    /// klab / peer per pair: median, min, max.
    pub ratios: BTreeMap<String, Spread>,
    /// Start-up CPU seconds per tool (from the start-up runs).
    pub startup_cpu_s: BTreeMap<String, f64>,
    /// The broker's JIT-settling load after the warm-up pair.
    pub jit_warm_up: Option<JitWarmUp>,
    /// Cold starts of local clusters, start to ready: `1_broker` and
    /// `3_nodes`, median, min and max over the starts (seconds).
    pub ready_s: BTreeMap<String, Spread>,
    /// Every start's seconds, per key of `ready_s`.
    pub ready_runs_s: BTreeMap<String, Vec<f64>>,
    pub goals: Vec<Goal>,
    pub notes: Vec<String>,
}

/// The throw-away load that lets the broker's JIT compilers settle before
/// the counted pairs (after the warm-up pair, whose klab rate it halves).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JitWarmUp {
    /// Records/s offered (half what klab reached in the warm-up pair).
    pub rate: f64,
    /// How long it ran, start-up and drain included.
    pub seconds: f64,
    /// Its limit (`$KLAB_JIT_WARM_UP`, default 60 s).
    pub max_s: f64,
    /// True when the JIT settled before the limit.
    pub settled: bool,
}

impl BenchReport {
    /// Measured runs that did not complete (left out of the ratios).
    pub fn incomplete(&self) -> impl Iterator<Item = &Run> {
        self.runs
            .iter()
            .filter(|r| r.phase == Phase::Measured && !r.complete)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_keys_use_the_json_names() {
        for test in [Test::Producer, Test::Consumer, Test::Latency] {
            for side in [Side::Klab, Side::Peer, Side::Rdkafka] {
                let json = |v: serde_json::Value| v.as_str().map(String::from);
                let want = format!(
                    "{}_{}",
                    json(serde_json::json!(test)).unwrap_or_default(),
                    json(serde_json::json!(side)).unwrap_or_default()
                );
                assert_eq!(summary_key(test, side), want);
            }
        }
        assert_eq!(summary_key(Test::Producer, Side::Klab), "producer_klab");
    }
}
