//! `klab bench`: klab side by side with Apache Kafka's own perf tools on one
//! local broker.
//!
//! Three comparisons, each run as alternating pairs (klab, then the peer, on
//! the same broker, with the same record size, acks, linger.ms, batch.size
//! and partitions; every run on a fresh topic):
//!
//! - producer: `klab produce --max` against `ProducerPerformance`, both as
//!   child processes so their CPU time is measured the same way (wait4);
//! - consumer: `klab consume` (verifies every record's HMAC and sequence)
//!   against `ConsumerPerformance`, each reading what its own side produced;
//! - end-to-end latency at a low rate: klab's open loop (through
//!   [`crate::step::measure`], the one place klab measures) against
//!   `EndToEndLatency`'s closed loop (one record in flight).
//!
//! A warm-up pair (not counted) goes first, then one small run per tool that
//! measures its fixed start-up cost. Ratios are klab / peer per pair, and the
//! report gives their median with min and max over the pairs.

pub mod child;
pub mod parse;
pub mod report;

use crate::broker::admin::Admin;
use crate::broker::local::LocalBroker;
use crate::load::outcome::{ConsumerOutcome, ProducerOutcome, last_json};
use crate::load::payload::Secret;
use crate::model::{Acks, Workload};
use crate::step::{self, StepOptions, Target};
use anyhow::{Context, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
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
    #[serde(skip)]
    pub progress: bool,
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
            progress: false,
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
    Peer,
}

impl Side {
    /// Its name in the JSON (as serde writes it).
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Klab => "klab",
            Side::Peer => "peer",
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

/// Median, min and max over the counted pairs.
pub use crate::stats::Spread;

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
    pub goals: Vec<Goal>,
    pub notes: Vec<String>,
}

impl BenchReport {
    /// Measured runs that did not complete (left out of the ratios).
    pub fn incomplete(&self) -> impl Iterator<Item = &Run> {
        self.runs
            .iter()
            .filter(|r| r.phase == Phase::Measured && !r.complete)
    }
}

/// JVM flags Kafka's own `kafka-*-perf-test.sh` scripts use
/// (KAFKA_HEAP_OPTS=-Xmx512M and KAFKA_JVM_PERFORMANCE_OPTS), plus an
/// English locale so the numbers they print parse the same everywhere.
const PEER_JVM_FLAGS: &[&str] = &[
    "-Xmx512M",
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15",
    "-Djava.awt.headless=true",
    "-Duser.language=en",
    "-Duser.country=US",
];

const CHILD_TIMEOUT: Duration = Duration::from_secs(600);

struct Bench<'a> {
    broker: &'a mut LocalBroker,
    admin: Admin,
    opts: &'a BenchOptions,
    bootstrap: String,
    java: PathBuf,
    classpath: String,
    log4j: PathBuf,
    secret_hex: String,
    secret: Secret,
    bar: Option<ProgressBar>,
    runs: Vec<Run>,
    seq: u32,
}

/// Measures `f`'s effect on the broker's and the host's CPU.
struct CpuWatch {
    broker_pid: Option<u32>,
    broker0: Option<f64>,
    host0: Option<(u64, u64)>,
}

impl CpuWatch {
    fn start(broker: &LocalBroker) -> CpuWatch {
        let broker_pid = broker.pid();
        CpuWatch {
            broker_pid,
            broker0: broker_pid.and_then(child::proc_cpu_s),
            host0: child::host_jiffies(),
        }
    }

    /// (broker CPU seconds, host busy share) since start.
    fn stop(&self) -> (Option<f64>, Option<f64>) {
        let broker = match (self.broker0, self.broker_pid.and_then(child::proc_cpu_s)) {
            (Some(a), Some(b)) => Some((b - a).max(0.0)),
            _ => None,
        };
        let host = match (self.host0, child::host_jiffies()) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                Some((b1 - b0) as f64 / (t1 - t0) as f64)
            }
            _ => None,
        };
        (broker, host)
    }
}

fn per_record_us(secs: Option<f64>, records: u64) -> Option<f64> {
    secs.filter(|_| records > 0)
        .map(|s| s * 1e6 / records as f64)
}

impl Bench<'_> {
    fn step(&self, msg: String) {
        if let Some(b) = &self.bar {
            b.set_message(msg);
        }
    }

    fn advance(&self) {
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }

    fn check_interrupt(&self) -> Result<()> {
        if crate::cancel::interrupted() {
            return Err(crate::error::Interrupted.into());
        }
        Ok(())
    }

    fn topic(&mut self, what: &str) -> String {
        self.seq += 1;
        format!(
            "klab-bench-{}-{what}-{:04x}",
            self.seq,
            crate::random::u64() & 0xffff
        )
    }

    fn create(&mut self, what: &str) -> Result<String> {
        let t = self.topic(what);
        self.admin.create_topic(&t, self.opts.partitions)?;
        Ok(t)
    }

    fn delete(&self, topic: &str) {
        if let Err(e) = self.admin.delete_topic(topic) {
            tracing::warn!("could not delete topic {topic}: {e:#}");
        } else if !self
            .broker
            .wait_topic_files_gone(topic, Duration::from_secs(60))
        {
            tracing::warn!("the files of topic {topic} were still there after 60s");
        }
    }

    fn check_broker(&mut self) -> Result<()> {
        if let Some(status) = self.broker.exited() {
            return Err(self.broker.death_report(Some(status)));
        }
        Ok(())
    }

    fn java_tool(&self, class: &str) -> Command {
        let mut c = Command::new(&self.java);
        c.args(PEER_JVM_FLAGS)
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                self.log4j.display()
            ))
            .args(["-cp", &self.classpath])
            .arg(format!("org.apache.kafka.tools.{class}"));
        c
    }

    fn klab_cmd(&self) -> Command {
        let mut c = Command::new(&self.opts.klab_exe);
        c.env("KLAB_SECRET", &self.secret_hex)
            .env("RUST_LOG", "warn")
            .env_remove("KLAB_JSON");
        c
    }

    fn producer_props(&self) -> Vec<String> {
        vec![
            format!("bootstrap.servers={}", self.bootstrap),
            "acks=all".into(),
            format!("linger.ms={}", self.opts.linger_ms),
            format!("batch.size={}", self.opts.batch_size),
        ]
    }

    fn peer_producer_cmd(&self, topic: &str, records: u64) -> Command {
        let mut c = self.java_tool("ProducerPerformance");
        c.args(["--topic", topic, "--num-records", &records.to_string()])
            .args(["--record-size", &self.opts.record_bytes.to_string()])
            .args(["--throughput", "-1", "--producer-props"])
            .args(self.producer_props());
        c
    }

    fn klab_producer_cmd(&self, topic: &str, records: u64) -> Command {
        let mut c = self.klab_cmd();
        c.args(["produce", "--bootstrap", &self.bootstrap, "--topic", topic])
            .args(["--partitions", &self.opts.partitions.to_string()])
            .args([
                "--max",
                "--messages",
                &records.to_string(),
                "--warmup",
                "0s",
            ])
            .args(["--message-bytes", &self.opts.record_bytes.to_string()])
            .args(["--acks", "all", "--wait-topic", "60s"])
            .args([
                "--producer-set",
                &format!("linger.ms={}", self.opts.linger_ms),
            ])
            .args([
                "--producer-set",
                &format!("batch.size={}", self.opts.batch_size),
            ]);
        c
    }

    fn peer_consumer_cmd(&self, topic: &str, records: u64) -> Command {
        let mut c = self.java_tool("ConsumerPerformance");
        c.args(["--bootstrap-server", &self.bootstrap, "--topic", topic])
            .args(["--messages", &records.to_string(), "--timeout", "30000"]);
        c
    }

    fn klab_consumer_cmd(&self, topic: &str) -> Command {
        let mut c = self.klab_cmd();
        c.args(["consume", "--bootstrap", &self.bootstrap, "--topic", topic])
            .args(["--producers", "1", "--timeout", "300s"]);
        c
    }

    fn peer_latency_cmd(&self, topic: &str) -> Command {
        let mut c = self.java_tool("EndToEndLatency");
        c.args([
            self.bootstrap.as_str(),
            topic,
            &self.opts.latency_messages_peer.to_string(),
            "all",
            &self.opts.record_bytes.to_string(),
        ]);
        c
    }

    fn base_run(&self, phase: Phase, pair: usize, test: Test, side: Side, tool: &str) -> Run {
        Run {
            phase,
            pair,
            test,
            side,
            tool: tool.to_string(),
            topic: String::new(),
            records: 0,
            wall_s: 0.0,
            records_per_s: 0.0,
            mb_per_s: 0.0,
            throughput_basis: String::new(),
            cpu_user_s: None,
            cpu_sys_s: None,
            cpu_per_record_us: None,
            broker_cpu_s: None,
            broker_cpu_per_record_us: None,
            host_busy: None,
            latency: None,
            complete: false,
            problem: None,
            detail: serde_json::Value::Null,
        }
    }

    /// Runs a child, filling the common figures of `run`.
    fn run_child(&mut self, mut cmd: Command, run: &mut Run) -> Result<child::ChildRun> {
        let watch = CpuWatch::start(self.broker);
        let out = child::run(&mut cmd, CHILD_TIMEOUT)?;
        let (broker_cpu, host) = watch.stop();
        self.check_interrupt()?;
        self.check_broker()?;
        run.wall_s = out.wall.as_secs_f64();
        run.cpu_user_s = Some(out.user_s);
        run.cpu_sys_s = Some(out.sys_s);
        run.broker_cpu_s = broker_cpu;
        run.host_busy = host;
        if !out.ok() {
            run.problem = Some(format!(
                "{} exited with status {}: {}",
                run.tool,
                out.status,
                out.stderr_tail(5)
            ));
        }
        Ok(out)
    }

    fn finish_counts(&self, run: &mut Run) {
        run.mb_per_s = run.records_per_s * self.opts.record_bytes as f64 / 1e6;
        run.cpu_per_record_us = per_record_us(
            run.cpu_user_s.zip(run.cpu_sys_s).map(|(u, s)| u + s),
            run.records,
        );
        run.broker_cpu_per_record_us = per_record_us(run.broker_cpu_s, run.records);
    }

    /// One run of a tool as a child process: `fill` reads its output into
    /// the run and says whether the output held a result at all (if not,
    /// the run's problem is `missing` and the end of its stderr); `basis`
    /// says how its records/s were counted.
    fn tool_run(
        &mut self,
        mut run: Run,
        topic: &str,
        cmd: Command,
        missing: &str,
        basis: &str,
        fill: impl FnOnce(&mut Run, &child::ChildRun) -> Result<bool>,
    ) -> Result<Run> {
        run.topic = topic.to_string();
        let out = self.run_child(cmd, &mut run)?;
        if !fill(&mut run, &out)? {
            run.problem
                .get_or_insert_with(|| format!("{missing}: {}", out.stderr_tail(5)));
        }
        run.throughput_basis = basis.into();
        self.finish_counts(&mut run);
        Ok(run)
    }

    fn klab_producer(&mut self, phase: Phase, pair: usize, topic: &str, n: u64) -> Result<Run> {
        let run = self.base_run(phase, pair, Test::Producer, Side::Klab, "klab produce");
        let cmd = self.klab_producer_cmd(topic, n);
        let basis = "acked records / (last ack - first send)";
        self.tool_run(
            run,
            topic,
            cmd,
            "klab produce printed no outcome",
            basis,
            |run, out| {
                let Some(o) = last_json::<ProducerOutcome>(&out.stdout) else {
                    return Ok(false);
                };
                let secs = o.last_ack_ns.saturating_sub(o.window_start_ns) as f64 / 1e9;
                run.records = o.acked_measured;
                run.records_per_s = if secs > 0.0 {
                    o.acked_measured as f64 / secs
                } else {
                    0.0
                };
                run.complete = out.ok() && o.failed == 0 && o.acked_measured == n;
                if !run.complete && run.problem.is_none() {
                    run.problem = Some(format!(
                        "acked {} of {n}, failed {}{}",
                        o.acked_measured,
                        o.failed,
                        o.first_error
                            .as_deref()
                            .map(|e| format!(" ({e})"))
                            .unwrap_or_default()
                    ));
                }
                run.detail = serde_json::json!({
                    "acked": o.acked,
                    "failed": o.failed,
                    "window_s": secs,
                    "publish_latency_ms": o.publish.percentiles(),
                });
                Ok(true)
            },
        )
    }

    fn peer_producer(&mut self, phase: Phase, pair: usize, topic: &str, n: u64) -> Result<Run> {
        let run = self.base_run(
            phase,
            pair,
            Test::Producer,
            Side::Peer,
            "ProducerPerformance",
        );
        let cmd = self.peer_producer_cmd(topic, n);
        let missing = "no ProducerPerformance summary line in its output";
        let basis = "its own figure: records / (last completion - start of sending)";
        self.tool_run(run, topic, cmd, missing, basis, |run, out| {
            let Some(s) = parse::producer_performance(&out.stdout) else {
                return Ok(false);
            };
            run.records = s.records;
            run.records_per_s = s.records_per_s;
            run.complete = out.ok() && s.records == n;
            run.detail = serde_json::to_value(s)?;
            Ok(true)
        })
    }

    fn klab_consumer(&mut self, phase: Phase, pair: usize, topic: &str, n: u64) -> Result<Run> {
        let run = self.base_run(phase, pair, Test::Consumer, Side::Klab, "klab consume");
        let cmd = self.klab_consumer_cmd(topic);
        let basis = "records / wall time of the process (start-up and verification included)";
        self.tool_run(
            run,
            topic,
            cmd,
            "klab consume printed no outcome",
            basis,
            |run, out| {
                let Some(o) = last_json::<ConsumerOutcome>(&out.stdout) else {
                    return Ok(false);
                };
                run.records = o.consumed;
                run.records_per_s = o.consumed as f64 / run.wall_s.max(1e-9);
                run.complete = out.ok()
                    && o.finished
                    && o.consumed == n
                    && o.lost + o.corrupt + o.duplicated == 0;
                if !run.complete && run.problem.is_none() {
                    run.problem = Some(format!(
                        "consumed {} of {n}: lost {}, corrupt {}, duplicated {}, finished {}",
                        o.consumed, o.lost, o.corrupt, o.duplicated, o.finished
                    ));
                }
                run.detail = serde_json::json!({
                    "consumed": o.consumed, "lost": o.lost, "duplicated": o.duplicated,
                    "reordered": o.reordered, "corrupt": o.corrupt, "foreign": o.foreign,
                    "finished": o.finished,
                });
                Ok(true)
            },
        )
    }

    fn peer_consumer(&mut self, phase: Phase, pair: usize, topic: &str, n: u64) -> Result<Run> {
        let run = self.base_run(
            phase,
            pair,
            Test::Consumer,
            Side::Peer,
            "ConsumerPerformance",
        );
        let cmd = self.peer_consumer_cmd(topic, n);
        let missing = "no ConsumerPerformance result line in its output";
        let basis =
            "its own fetch.nMsg.sec: records / fetch time (JVM start and group join excluded)";
        self.tool_run(run, topic, cmd, missing, basis, |run, out| {
            let Some(s) = parse::consumer_performance(&out.stdout) else {
                return Ok(false);
            };
            run.records = s.records;
            run.records_per_s = s.fetch_records_per_s;
            run.complete = out.ok() && s.records >= n;
            if !run.complete && run.problem.is_none() {
                run.problem = Some(format!("read {} of {n} records", s.records));
            }
            run.detail = serde_json::to_value(s)?;
            Ok(true)
        })
    }

    fn klab_latency(&mut self, pair: usize) -> Result<Run> {
        let mut run = self.base_run(
            Phase::Measured,
            pair,
            Test::Latency,
            Side::Klab,
            "klab (open loop)",
        );
        let mut producer = BTreeMap::new();
        // EndToEndLatency forces linger.ms=0 on its producer; so does klab here.
        producer.insert("linger.ms".to_string(), "0".to_string());
        producer.insert("batch.size".to_string(), self.opts.batch_size.to_string());
        let w = Workload {
            rate: Some(self.opts.latency_rate),
            messages: None,
            duration: Some(self.opts.latency_duration),
            warmup: self.opts.latency_warmup,
            message_bytes: self.opts.record_bytes,
            partitions: self.opts.partitions,
            acks: Acks::All,
            producer,
            topic: None,
            producers: 1,
        };
        let watch = CpuWatch::start(self.broker);
        let started = std::time::Instant::now();
        let m = step::measure(
            &mut Target::Local(self.broker),
            &w,
            &self.secret,
            &StepOptions {
                label: Some(format!("bench latency pair {pair}")),
                applied: crate::model::Applied::Started,
                ..Default::default()
            },
        )?;
        let (broker_cpu, host) = watch.stop();
        self.check_interrupt()?;
        let r = &m.result;
        run.topic = r.workload.topic.clone().unwrap_or_default();
        run.wall_s = started.elapsed().as_secs_f64();
        run.records = r.e2e_latency_ms.count;
        run.records_per_s = r.achieved_rate;
        run.broker_cpu_s = broker_cpu;
        run.host_busy = host;
        let e = r.e2e_latency_ms;
        run.latency = Some(Latency {
            p50_ms: e.p50,
            p99_ms: e.p99,
            p999_ms: e.p999,
            avg_ms: e.mean,
            max_ms: Some(e.max),
        });
        run.complete = r.complete && r.lost == 0 && r.corrupt == 0;
        run.problem = r.reason.clone();
        run.throughput_basis = "records offered per second of the measured window".into();
        run.detail = serde_json::json!({
            "target_rate": r.target_rate,
            "e2e_latency_ms": r.e2e_latency_ms,
            "publish_latency_ms": r.publish_latency_ms,
            "warmup_records": r.warmup_records,
            "lost": r.lost,
        });
        self.finish_counts(&mut run);
        Ok(run)
    }

    fn peer_latency(&mut self, pair: usize) -> Result<Run> {
        let mut run = self.base_run(
            Phase::Measured,
            pair,
            Test::Latency,
            Side::Peer,
            "EndToEndLatency (closed loop)",
        );
        let topic = self.create("e2e-peer")?;
        run.topic = topic.clone();
        let out = self.run_child(self.peer_latency_cmd(&topic), &mut run)?;
        match parse::end_to_end_latency(&out.stdout) {
            Some(s) => {
                run.records = self.opts.latency_messages_peer;
                // One record in flight: the rate is one per round trip.
                run.records_per_s = if s.avg_ms > 0.0 {
                    1000.0 / s.avg_ms
                } else {
                    0.0
                };
                run.latency = Some(Latency {
                    p50_ms: s.p50_ms,
                    p99_ms: s.p99_ms,
                    p999_ms: s.p999_ms,
                    avg_ms: s.avg_ms,
                    max_ms: None,
                });
                run.complete = out.ok();
                run.detail = serde_json::to_value(s)?;
            }
            None => {
                run.problem.get_or_insert_with(|| {
                    format!(
                        "no EndToEndLatency result in its output: {}",
                        out.stderr_tail(5)
                    )
                });
            }
        }
        run.throughput_basis = "1 / average round trip (closed loop)".into();
        // CPU of a closed loop at its own rate says little; keep it raw.
        self.finish_counts(&mut run);
        self.delete(&topic);
        Ok(run)
    }

    fn push(&mut self, run: Run) {
        if let Some(p) = &run.problem {
            tracing::warn!("{} ({:?} {:?}): {p}", run.tool, run.phase, run.test);
        }
        self.runs.push(run);
        self.advance();
    }

    /// One producer + consumer pair of runs per side; `pair` 0 for the
    /// unmeasured phases.
    fn throughput_pair(&mut self, phase: Phase, pair: usize, n: u64) -> Result<()> {
        let label = match phase {
            Phase::Warmup => "warm-up".to_string(),
            Phase::Startup => "start-up cost".to_string(),
            Phase::Measured => format!("pair {pair}/{}", self.opts.pairs),
        };
        let tk = self.create("klab")?;
        self.step(format!("{label}: klab produce --max, {n} records"));
        let r = self.klab_producer(phase, pair, &tk, n)?;
        self.push(r);
        let tp = self.create("peer")?;
        self.step(format!("{label}: ProducerPerformance, {n} records"));
        let r = self.peer_producer(phase, pair, &tp, n)?;
        self.push(r);
        self.step(format!("{label}: klab consume"));
        let r = self.klab_consumer(phase, pair, &tk, n)?;
        self.push(r);
        self.step(format!("{label}: ConsumerPerformance"));
        let r = self.peer_consumer(phase, pair, &tp, n)?;
        self.push(r);
        self.step(format!("{label}: deleting topics"));
        self.delete(&tk);
        self.delete(&tp);
        Ok(())
    }

    fn latency_pair(&mut self, pair: usize) -> Result<()> {
        let label = format!("pair {pair}/{}", self.opts.pairs);
        self.step(format!(
            "{label}: klab e2e latency at {:.0} rec/s",
            self.opts.latency_rate
        ));
        let r = self.klab_latency(pair)?;
        self.push(r);
        self.step(format!(
            "{label}: EndToEndLatency, {} records one at a time",
            self.opts.latency_messages_peer
        ));
        let r = self.peer_latency(pair)?;
        self.push(r);
        Ok(())
    }
}

/// Runs the whole bench against `broker` (a local broker klab started).
pub fn run(broker: &mut LocalBroker, opts: &BenchOptions) -> Result<BenchReport> {
    if opts.pairs == 0 {
        bail!("the bench needs at least one pair of runs");
    }
    let started_at = crate::stats::report::utc_now();
    let bootstrap = broker.bootstrap();
    let admin = Admin::connect(&bootstrap)?;
    let kafka = broker.kafka().clone();
    let log4j = kafka.dir.join("config/tools-log4j2.properties");
    let java = crate::broker::kafka_home::java()?;
    let secret_hex = crate::random::hex(32);
    let steps = (2 + opts.pairs) * 4 + opts.pairs * 2;
    let bar = opts.progress.then(|| {
        let b = ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stderr());
        b.set_style(
            ProgressStyle::with_template(
                "{prefix:>8.bold} [{bar:25}] {pos}/{len} {msg} ({elapsed})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        b.set_prefix("bench");
        b.enable_steady_tick(Duration::from_millis(200));
        b
    });
    let mut b = Bench {
        admin,
        opts,
        bootstrap: bootstrap.clone(),
        java,
        classpath: kafka.classpath(),
        log4j: if log4j.is_file() {
            log4j
        } else {
            broker.dir().join("log4j2.properties")
        },
        secret: Secret::new(secret_hex.clone().into_bytes()),
        secret_hex,
        bar,
        runs: Vec::new(),
        seq: 0,
        broker,
    };
    let result = (|| -> Result<()> {
        b.throughput_pair(Phase::Warmup, 0, opts.warmup_messages)?;
        b.throughput_pair(Phase::Startup, 0, opts.startup_messages)?;
        for pair in 1..=opts.pairs {
            b.throughput_pair(Phase::Measured, pair, opts.messages)?;
            b.latency_pair(pair)?;
        }
        Ok(())
    })();
    if let Some(bar) = &b.bar {
        bar.finish_and_clear();
    }
    result?;

    let mut peer_commands = BTreeMap::new();
    for (name, cmd) in [
        (
            "ProducerPerformance",
            b.peer_producer_cmd("TOPIC", opts.messages),
        ),
        (
            "ConsumerPerformance",
            b.peer_consumer_cmd("TOPIC", opts.messages),
        ),
        ("EndToEndLatency", b.peer_latency_cmd("TOPIC")),
        ("klab produce", b.klab_producer_cmd("TOPIC", opts.messages)),
        ("klab consume", b.klab_consumer_cmd("TOPIC")),
    ] {
        peer_commands.insert(name.to_string(), command_line(&cmd));
    }
    let runs = std::mem::take(&mut b.runs);
    let mut report = BenchReport {
        klab_version: env!("CARGO_PKG_VERSION").to_string(),
        kafka_version: kafka.version.clone(),
        java_version: b.broker.java_version().to_string(),
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        started_at,
        finished_at: crate::stats::report::utc_now(),
        settings: opts.clone(),
        peer_commands,
        runs,
        summary: BTreeMap::new(),
        ratios: BTreeMap::new(),
        startup_cpu_s: BTreeMap::new(),
        goals: Vec::new(),
        notes: Vec::new(),
    };
    summarize(&mut report);
    Ok(report)
}

fn command_line(c: &Command) -> String {
    let mut parts = vec![c.get_program().to_string_lossy().to_string()];
    parts.extend(c.get_args().map(|a| {
        let s = a.to_string_lossy().to_string();
        if s.contains(' ') || s.contains('*') {
            format!("'{s}'")
        } else {
            s
        }
    }));
    parts.join(" ")
}

/// The measured run of `test` by `side` in `pair`.
pub(super) fn find(runs: &[Run], pair: usize, test: Test, side: Side) -> Option<&Run> {
    runs.iter()
        .find(|r| r.phase == Phase::Measured && r.pair == pair && r.test == test && r.side == side)
}

/// Fills summary, ratios, start-up costs and goals from the runs.
pub fn summarize(report: &mut BenchReport) {
    let runs = &report.runs;
    let pairs: Vec<usize> = {
        let mut p: Vec<usize> = runs
            .iter()
            .filter(|r| r.phase == Phase::Measured)
            .map(|r| r.pair)
            .collect();
        p.sort();
        p.dedup();
        p
    };
    // Start-up cost per tool: CPU of the small runs.
    for r in runs.iter().filter(|r| r.phase == Phase::Startup) {
        if let (Some(u), Some(s)) = (r.cpu_user_s, r.cpu_sys_s) {
            report.startup_cpu_s.insert(r.tool.clone(), u + s);
        }
    }
    let startup = report.startup_cpu_s.clone();

    type Fig = fn(&Run, &BTreeMap<String, f64>) -> Option<f64>;
    let throughput: Fig = |r, _| Some(r.records_per_s).filter(|x| *x > 0.0);
    let cpu: Fig = |r, _| r.cpu_per_record_us;
    let cpu_net: Fig = |r, st| {
        let total = r.cpu_user_s? + r.cpu_sys_s?;
        let s = st.get(&r.tool).copied().unwrap_or(0.0);
        (r.records > 0).then(|| (total - s).max(0.0) * 1e6 / r.records as f64)
    };
    let broker_cpu: Fig = |r, _| r.broker_cpu_per_record_us;
    let host: Fig = |r, _| r.host_busy;
    let p50: Fig = |r, _| r.latency.map(|l| l.p50_ms);
    let p99: Fig = |r, _| r.latency.map(|l| l.p99_ms);
    let p999: Fig = |r, _| r.latency.map(|l| l.p999_ms);
    let avg: Fig = |r, _| r.latency.map(|l| l.avg_ms);

    let figures: &[(Test, &str, Fig)] = &[
        (Test::Producer, "records_per_s", throughput),
        (Test::Producer, "cpu_per_record_us", cpu),
        (Test::Producer, "cpu_per_record_us_excl_startup", cpu_net),
        (Test::Producer, "broker_cpu_per_record_us", broker_cpu),
        (Test::Producer, "host_busy", host),
        (Test::Consumer, "records_per_s", throughput),
        (Test::Consumer, "cpu_per_record_us", cpu),
        (Test::Consumer, "cpu_per_record_us_excl_startup", cpu_net),
        (Test::Latency, "records_per_s", throughput),
        (Test::Latency, "p50_ms", p50),
        (Test::Latency, "p99_ms", p99),
        (Test::Latency, "p999_ms", p999),
        (Test::Latency, "avg_ms", avg),
    ];
    for (test, name, f) in figures {
        for side in [Side::Klab, Side::Peer] {
            let v: Vec<f64> = pairs
                .iter()
                .filter_map(|p| find(runs, *p, *test, side))
                .filter(|r| r.complete)
                .filter_map(|r| f(r, &startup))
                .collect();
            if let Some(s) = Spread::of(&v) {
                report
                    .summary
                    .entry(summary_key(*test, side))
                    .or_default()
                    .insert(name.to_string(), s);
            }
        }
    }

    let ratio = |test: Test, f: Fig| -> Option<Spread> {
        let v: Vec<f64> = pairs
            .iter()
            .filter_map(|p| {
                let k = find(runs, *p, test, Side::Klab).filter(|r| r.complete)?;
                let q = find(runs, *p, test, Side::Peer).filter(|r| r.complete)?;
                let (a, b) = (f(k, &startup)?, f(q, &startup)?);
                (b > 0.0).then_some(a / b)
            })
            .collect();
        Spread::of(&v)
    };
    let mut ratios = BTreeMap::new();
    for (name, test, f) in [
        ("klab_vs_producer_performance", Test::Producer, throughput),
        ("cpu_per_record_producer", Test::Producer, cpu),
        (
            "cpu_per_record_producer_excl_startup",
            Test::Producer,
            cpu_net,
        ),
        ("broker_cpu_per_record_producer", Test::Producer, broker_cpu),
        ("klab_vs_consumer_performance", Test::Consumer, throughput),
        ("cpu_per_record_consumer", Test::Consumer, cpu),
        (
            "cpu_per_record_consumer_excl_startup",
            Test::Consumer,
            cpu_net,
        ),
        ("e2e_p50_klab_vs_end_to_end_latency", Test::Latency, p50),
        ("e2e_p99_klab_vs_end_to_end_latency", Test::Latency, p99),
        ("e2e_avg_klab_vs_end_to_end_latency", Test::Latency, avg),
    ] {
        if let Some(s) = ratio(test, f) {
            ratios.insert(name.to_string(), s);
        }
    }
    report.goals = vec![
        Goal {
            ratio: "klab_vs_producer_performance".into(),
            target: ">= 1.2 (median)".into(),
            met: ratios
                .get("klab_vs_producer_performance")
                .map(|s| s.median >= 1.2),
        },
        Goal {
            ratio: "cpu_per_record_producer".into(),
            target: "<= 0.7 (median)".into(),
            met: ratios
                .get("cpu_per_record_producer")
                .map(|s| s.median <= 0.7),
        },
    ];
    report.ratios = ratios;
    let incomplete = report.incomplete().count();
    report.notes = vec![
        "ratios are klab / peer per pair; median, min and max over the pairs (a pair with an incomplete run is left out)".into(),
        "producer throughput: klab's acked records / (last ack - first send), ProducerPerformance's own records/sec; both exclude process start-up".into(),
        "consumer throughput is biased against klab: klab's counts its whole process (start-up, HMAC and sequence checks), ConsumerPerformance's is its own fetch.nMsg.sec (JVM start and group join excluded)".into(),
        "cpu_per_record: user + sys of the whole process (wait4) / records, start-up included; *_excl_startup subtracts the CPU of a 'startup' run of the same tool".into(),
        "latency: klab is open loop at a fixed rate (latency from each record's due time); EndToEndLatency is a closed loop (one record in flight, latency from send to receive, whole milliseconds); both linger.ms=0, acks=all. EndToEndLatency prints its percentiles truncated to whole milliseconds (a printed 1 means 1.0 to 1.999 ms, a 0 cannot be divided by); its average is exact, so compare e2e_avg as well".into(),
    ];
    if incomplete > 0 {
        report.notes.push(format!(
            "{incomplete} measured run(s) were incomplete; see runs[].problem"
        ));
    }
}

/// The bench's figures must be finite and positive to mean anything; the
/// tests and the command check this before they trust a report.
pub fn check_report(r: &BenchReport) -> Result<()> {
    for key in [
        "klab_vs_producer_performance",
        "cpu_per_record_producer",
        "cpu_per_record_consumer",
    ] {
        let s = r
            .ratios
            .get(key)
            .ok_or_else(|| anyhow!("the report has no ratio {key} (every pair incomplete?)"))?;
        for v in [s.median, s.min, s.max] {
            if !(v.is_finite() && v > 0.0) {
                bail!("ratio {key} is {v}");
            }
        }
    }
    Ok(())
}

/// Writes the report's JSON (atomically) and its plot beside it.
pub fn save(report: &BenchReport, json: &std::path::Path) -> Result<PathBuf> {
    crate::stats::report::write_json(json, report)
        .with_context(|| format!("writing {}", json.display()))?;
    let svg = crate::stats::report::sibling(json, "svg");
    crate::stats::report::write_atomic(&svg, report::svg(report).as_bytes())?;
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_keys_use_the_json_names() {
        for test in [Test::Producer, Test::Consumer, Test::Latency] {
            for side in [Side::Klab, Side::Peer] {
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
