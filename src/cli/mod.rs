//! Command-line arguments (clap). Parsing of single values happens here, so
//! a bad value is rejected by clap with the flag's name and exit code 2.

use crate::model::{Acks, BrokerConfig, limits};
use crate::units::{MemSize, parse_duration, parse_key_value};
use crate::usage;
use clap::{Args, Parser, Subcommand};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

mod broker;
pub mod capacity;
pub mod kit;
mod lab;
mod workload;
pub use broker::{BrokerExecArgs, BrokerRenderArgs, BrokerSetArgs, NodeArgs};
pub use capacity::{ObjectiveArgs, ObjectiveKind};
pub use kit::{ClassArgs, DoctorArgs, HandInArgs};
pub use lab::{
    FixArgs, FixWith, LabCheckArgs, LabCommand, LabRehearseArgs, LabRunArgs, LabShowArgs,
    LabsDirArgs, SessionArgs,
};
pub use workload::WorkloadArgs;

#[derive(Parser, Debug)]
#[command(
    name = "klab",
    version,
    about = "A reproducible Kafka tuning lab: break a broker on purpose, measure it, fix it, measure again.",
    propagate_version = true
)]
pub struct Cli {
    /// More logging on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum Command {
    /// Measure one workload against a broker (a local one by default).
    Run(RunArgs),
    /// The highest rate a broker carries with e2e p99 under an SLO and
    /// nothing lost: bracket, bisect, re-measure the boundary; a curve.
    Capacity(capacity::CapacityArgs),
    /// The numbered labs: list, show, run, check your fix.
    #[command(subcommand)]
    Lab(LabCommand),
    /// Every lab in order on one local broker, unattended, with a summary
    /// table and plot.
    Demo(DemoArgs),
    /// Search broker (and producer) settings that carry a lab's load with
    /// the most throughput and the least tail latency.
    Tune(TuneArgs),
    /// Evaluate the tuner: guided search against random search with the same
    /// budget, on a simulated response surface and on the real broker.
    TuneBench(TuneBenchArgs),
    /// List the broker configs klab knows (Kafka 4.1) and whether each can
    /// change without a restart.
    Knobs(KnobsArgs),
    /// Two results side by side (result files or run folders), with ratios
    /// and their noise.
    Compare(CompareArgs),
    /// klab side by side with Kafka's own perf tools (ProducerPerformance,
    /// ConsumerPerformance, EndToEndLatency) on one local broker.
    Bench(BenchArgs),
    /// Only the producer side of a run (the producer image's entrypoint):
    /// prints its outcome as one JSON line.
    Produce(ProduceArgs),
    /// Only the consumer side of a run (the consumer image's entrypoint):
    /// prints its outcome as one JSON line.
    Consume(ConsumeArgs),
    /// The broker's own config: render it, or run a broker from it (the
    /// broker image's entrypoint).
    #[command(subcommand)]
    Broker(BrokerCommand),
    /// Replay a finished run folder in the live view's page (and its
    /// /metrics), until Ctrl-C.
    Ui(UiReplayArgs),
    /// Is this machine ready for a class? Java, Kafka, the labs, cores,
    /// memory per track, disk, ports, the machine lock, the calibration.
    Doctor(DoctorArgs),
    /// A folder of handed-in bundles (bundle.json of lab run, lab check,
    /// demo) as a class table: who passed which lab, with the figures.
    Class(ClassArgs),
}

/// `--ui`: the live view of a run.
#[derive(Args, Debug, Clone, Default)]
pub struct UiArgs {
    /// Serve a live view of the run (a page, its event stream and
    /// /metrics) while it runs and after it, until Ctrl-C: `--ui` on
    /// 127.0.0.1:8484, `--ui=ADDR` on HOST:PORT, HOST or PORT. Read-only.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, require_equals = true, default_missing_value = "", value_parser = parse_ui_addr)]
    pub ui: Option<std::net::SocketAddr>,
    /// With --ui: end the live view, and klab, when the run ends. Without
    /// it the page stays up after the run until Ctrl-C (the exit code is
    /// still the run's).
    #[arg(long, requires = "ui")]
    pub ui_exit: bool,
}

#[derive(Args, Debug)]
pub struct UiReplayArgs {
    /// A run folder (results/<time>/) of klab run, lab, demo or tune.
    pub run_dir: PathBuf,
    /// Where to serve the page: HOST:PORT, HOST or PORT.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8484", value_parser = parse_ui_addr)]
    pub addr: std::net::SocketAddr,
}

pub fn parse_ui_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    crate::ui::parse_addr(s)
}

pub fn parse_metrics_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    crate::ui::parse_metrics_addr(s)
}

#[derive(Args, Debug)]
pub struct ProduceArgs {
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap: String,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// Serve /metrics (Prometheus' text format; nothing else, read-only)
    /// while it runs, at HOST:PORT, HOST (port 9464) or PORT. Off unless
    /// given; the pods klab creates on Kubernetes get 0.0.0.0:9464.
    #[arg(long, value_name = "ADDR", value_parser = parse_metrics_addr)]
    pub metrics: Option<std::net::SocketAddr>,
    /// Wait this long for the topic to appear (the consumer creates it).
    #[arg(long, value_name = "D", default_value = "120s", value_parser = parse_nonzero_duration)]
    pub wait_topic: Duration,
    /// Also write the outcome to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap: String,
    #[arg(long, value_name = "T")]
    pub topic: String,
    /// Create the topic with this many partitions when it does not exist.
    #[arg(long, value_name = "P", value_parser = parse_partitions)]
    pub create_partitions: Option<i32>,
    /// Replicas per partition of the topic it creates (default 1).
    #[arg(long, value_name = "N", requires = "create_partitions", value_parser = parse_replication)]
    pub create_replication_factor: Option<u32>,
    /// `min.insync.replicas` of the topic it creates (default: the broker's).
    #[arg(long, value_name = "N", requires = "create_partitions", value_parser = parse_replication)]
    pub create_min_insync_replicas: Option<u32>,
    /// Producers whose end-of-run markers to wait for.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = parse_producers)]
    pub producers: u32,
    /// Consumer clients sharing the partitions (one thread each).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = parse_consumer_count)]
    pub consumers: u32,
    /// Simulated work per record in each consumer, e.g. 200us (default 0).
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub processing: Option<Duration>,
    /// The consumers as one group with this protocol (classic or
    /// consumer); default: fixed partitions.
    #[arg(long, value_name = "classic|consumer")]
    pub group: Option<crate::model::GroupProtocol>,
    /// The group's assignor (needs --group).
    #[arg(long, value_name = "NAME", requires = "group")]
    pub assignor: Option<crate::model::Assignor>,
    /// A librdkafka consumer setting, e.g. fetch.min.bytes=65536 (repeatable).
    #[arg(long = "consumer-set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub consumer_set: Vec<(String, String)>,
    /// Give up after this long.
    #[arg(long, value_name = "D", default_value = "15m", value_parser = parse_nonzero_duration)]
    pub timeout: Duration,
    /// Serve /metrics (Prometheus' text format; nothing else, read-only)
    /// while it runs, at HOST:PORT, HOST (port 9464) or PORT. Off unless
    /// given; the pods klab creates on Kubernetes get 0.0.0.0:9464.
    #[arg(long, value_name = "ADDR", value_parser = parse_metrics_addr)]
    pub metrics: Option<std::net::SocketAddr>,
    /// Delete the topic when done (after printing the outcome), so a small
    /// broker volume does not fill up over many runs.
    #[arg(long)]
    pub delete_topic: bool,
    /// Also write the outcome to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum BrokerCommand {
    /// Print the server.properties and JVM flags klab renders for a config.
    Render(BrokerRenderArgs),
    /// Render the config from $KLAB_BROKER_CONFIG, format the storage if
    /// needed and exec Kafka (what the broker image runs).
    Exec(BrokerExecArgs),
    /// Change dynamic settings of a running broker (no restart) and print
    /// its effective config as one JSON line (the tuner pod on Kubernetes).
    Set(BrokerSetArgs),
}

#[derive(Args, Debug)]
pub struct TuneBenchArgs {
    /// The labs to start from on the real broker (comma separated or
    /// repeated; each is evaluated in turn).
    #[arg(
        long = "lab",
        id = "lab",
        value_name = "NN|PATH",
        value_delimiter = ',',
        default_value = "08"
    )]
    pub lab_keys: Vec<String>,
    /// Runs per strategy (random search uses seeds 1..=N; with the
    /// capacity objective the defaults are searched once per seed too).
    #[arg(long, default_value_t = 5, value_parser = parse_budget)]
    pub seeds: usize,
    /// Trials per run, the same for every strategy.
    #[arg(long, value_name = "K", default_value = "12", value_parser = parse_budget)]
    pub budget: usize,
    /// Only the simulated surface (seconds, no broker).
    #[arg(long)]
    pub simulated_only: bool,
    /// Also evaluate an agent (as `klab tune --strategy exec:CMD`) at the
    /// same budget, once per seed.
    #[arg(long, value_name = "CMD", value_parser = parse_agent)]
    pub agent: Option<String>,
    /// How long the agent may take over each answer.
    #[arg(long = "answer-timeout", value_name = "D", default_value = "60s", value_parser = parse_nonzero_duration)]
    pub answer_timeout: Duration,
    #[command(flatten)]
    pub objective: ObjectiveArgs,
    #[command(flatten)]
    pub session: SessionArgs,
}

#[derive(Args, Debug)]
pub struct TuneArgs {
    /// The lab to start from (its degraded broker and its workload).
    #[arg(long, value_name = "NN|PATH")]
    pub lab: String,
    /// Tune a running broker's dynamic settings instead of a local one.
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap: Option<String>,
    /// Trials: measurements of candidate settings (the start is measured
    /// twice more to estimate the noise).
    #[arg(long, value_name = "K", default_value = "12", value_parser = parse_budget)]
    pub budget: usize,
    /// guided (coordinate descent from the healthy values), random, or
    /// exec:CMD (the program CMD proposes each trial over JSON lines on its
    /// stdin/stdout: docs/tuner-agents.md).
    #[arg(long, value_name = "guided|random|exec:CMD", default_value = "guided", value_parser = parse_strategy)]
    pub strategy: StrategyArg,
    /// exec:CMD only: how long klab waits for each of the program's answers.
    #[arg(long = "answer-timeout", value_name = "D", default_value = "60s", value_parser = parse_nonzero_duration)]
    pub answer_timeout: Duration,
    /// Seed of the random strategy.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    pub objective: ObjectiveArgs,
    /// Only these knobs (comma separated, e.g. num.io.threads,heap).
    #[arg(long, value_delimiter = ',')]
    pub knobs: Vec<String>,
    #[command(flatten)]
    pub session: SessionArgs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StrategyArg {
    Guided,
    Random,
    /// A shell command line.
    Exec(String),
}

/// `guided`, `random` or `exec:CMD` (CMD not empty).
fn parse_strategy(s: &str) -> Result<StrategyArg, String> {
    match s.trim() {
        "guided" => Ok(StrategyArg::Guided),
        "random" => Ok(StrategyArg::Random),
        t => match t.strip_prefix("exec:") {
            Some(cmd) if !cmd.trim().is_empty() => Ok(StrategyArg::Exec(cmd.trim().to_string())),
            Some(_) => Err("exec: needs a command, e.g. exec:./my-agent".into()),
            None => Err(format!(
                "'{s}' is not a strategy; expected guided, random or exec:CMD"
            )),
        },
    }
}

/// Tuner budgets: at least one trial, at most a few hours of measuring.
/// Consumer clients: 1 to the workload's limit.
fn parse_consumer_count(s: &str) -> Result<u32, String> {
    parse_count(s, crate::model::limits::MAX_CONSUMERS)
}

/// Rounds of a rehearsal: 1 to 100.
pub fn parse_rounds(s: &str) -> Result<usize, String> {
    parse_whole(s, 1..=100, "rounds", "")
}

/// A share: `90%` or `0.9`, in (0, 1].
pub fn parse_share(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let x = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| format!("'{s}' is not a share; write 90% or 0.9"))?;
    if !(x > 0.0 && x <= 1.0) {
        return Err(format!(
            "'{s}' is not allowed; a share above 0% and at most 100%"
        ));
    }
    Ok(x)
}

pub fn parse_budget(s: &str) -> Result<usize, String> {
    parse_whole(s, 1..=200, "trials", " (each a full measurement)")
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    #[command(flatten)]
    pub fix: FixArgs,
    #[command(flatten)]
    pub session: SessionArgs,
    #[command(flatten)]
    pub hand_in: HandInArgs,
    /// Where to run: the embedded local broker (default) or Kubernetes.
    #[arg(long, value_enum, default_value = "local")]
    pub target: DemoTarget,
    /// Which track of labs: `broker` (labs 01-08, the default),
    /// `durability` (a replicated cluster and broker failures), or any
    /// other subfolder of the labs directory (`klab lab list` shows them).
    #[arg(long, value_name = "NAME", default_value = "broker")]
    pub track: String,
    /// Kubernetes namespace of klab's broker (with --target k8s).
    #[arg(long, value_name = "NS", default_value = crate::k8s::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// kubeconfig context to use (with --target k8s; default: the current
    /// context, or the pod's service account inside a cluster).
    #[arg(long, value_name = "CTX")]
    pub context: Option<String>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoTarget {
    /// A broker klab starts as a child process.
    Local,
    /// The StatefulSet `kafka` of manifests/ in a Kubernetes cluster; the
    /// load runs as producer and consumer pods.
    K8s,
}

#[derive(Args, Debug, Clone, Default)]
pub struct KafkaArgs {
    /// Kafka installation (a directory with libs/*.jar); default $KLAB_KAFKA_HOME.
    #[arg(long, value_name = "DIR")]
    pub kafka_home: Option<PathBuf>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct BrokerArgs {
    /// Broker JVM heap (-Xms and -Xmx), e.g. 256m, 1g. Local broker only.
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true, value_parser = parse_heap)]
    pub heap: Option<MemSize>,
    /// A broker setting in Kafka's own name, e.g. num.io.threads=2 (repeatable).
    #[arg(long = "broker-set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub broker_set: Vec<(String, String)>,
}

impl BrokerArgs {
    /// The requested config, each key checked against Kafka 4.1's list.
    pub fn config(&self) -> anyhow::Result<BrokerConfig> {
        let mut cfg = BrokerConfig {
            heap: self.heap,
            ..Default::default()
        };
        if let Some(h) = self.heap {
            crate::broker::knobs::check_heap(h).map_err(|e| usage!("--heap: {e}"))?;
        }
        for (k, v) in &self.broker_set {
            crate::broker::knobs::check_setting(k, v).map_err(|e| usage!("--broker-set: {e}"))?;
            cfg.properties.insert(k.clone(), v.clone());
        }
        Ok(cfg)
    }
}

/// `--net KEY=VALUE`, or `--net clear`; each value is checked when the
/// flags are put together (`RunArgs::network`).
fn parse_net(s: &str) -> Result<(String, String), String> {
    match s.trim() {
        "clear" => Ok(("clear".into(), String::new())),
        _ => crate::units::parse_key_value(s),
    }
}

impl RunArgs {
    /// The network `--net` asks for (None without the flag); each key and
    /// value checked as a lab file's `[network]` is.
    pub fn network(&self) -> Result<Option<crate::model::Network>, String> {
        use crate::model::network::NetValue;
        if self.net.is_empty() {
            return Ok(None);
        }
        let mut n = crate::model::Network::default();
        for (k, v) in self.net.iter().filter(|(k, _)| k != "clear") {
            n.set(k, NetValue::Text(v))
                .map_err(|e| format!("--net {k}={v}: {e}"))?;
        }
        n.validate().map_err(|e| format!("--net {e}"))?;
        n.check_nodes(self.brokers)
            .map_err(|e| format!("--net {e} (--brokers {})", self.brokers))?;
        Ok(Some(n))
    }
}

pub fn parse_brokers(s: &str) -> Result<u32, String> {
    parse_count(s, crate::broker::local::MAX_BROKERS)
}

pub fn parse_fault(s: &str) -> Result<crate::model::FaultSpec, String> {
    s.parse()
}

pub fn parse_replication(s: &str) -> Result<u32, String> {
    parse_count(s, limits::MAX_REPLICATION)
}

pub fn parse_producers(s: &str) -> Result<u32, String> {
    parse_count(s, limits::MAX_PRODUCERS)
}

/// A whole number in 1..=max, with the messages every count flag uses.
pub(crate) fn parse_count<T>(s: &str, max: T) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + From<u8> + std::fmt::Display + Copy,
{
    parse_whole(s, T::from(1)..=max, "", "")
}

/// A whole number in `range`; the messages name its `unit` (none when
/// empty), and a refused value's adds `note`.
fn parse_whole<T>(s: &str, range: RangeInclusive<T>, unit: &str, note: &str) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let (of, unit) = if unit.is_empty() {
        (String::new(), String::new())
    } else {
        (format!(" of {unit}"), format!(" {unit}"))
    };
    let n: T = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a whole number{of}"))?;
    if !range.contains(&n) {
        let (lo, hi) = (range.start(), range.end());
        return Err(format!(
            "{n} is not allowed; expected {lo}..={hi}{unit}{note}"
        ));
    }
    Ok(n)
}

/// Workload errors start with the field name; on the command line, name
/// the flag instead.
pub fn flagify(e: &str) -> String {
    let (field, rest) = e.split_once(':').unwrap_or(("", e));
    if let Some(f) = field.strip_prefix("faults[") {
        // faults[2].at → --fault (the 2nd) at
        let (n, sub) = f.split_once("].").unwrap_or((f, ""));
        return format!("--fault (number {n}) {sub}:{rest}");
    }
    let flag = match field {
        "producer" => "--producer-set".to_string(),
        "consumer" => "--consumer-set".to_string(),
        "" => return e.to_string(),
        f if f.starts_with("consumer.") => format!("--consumer-set {}", &f["consumer.".len()..]),
        f => format!("--{}", f.replace('_', "-")),
    };
    format!("{flag}:{rest}")
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Brokers of the local cluster (1 to 5; up to 3 of them are also the
    /// KRaft controllers).
    #[arg(long, value_name = "N", default_value_t = 1, allow_hyphen_values = true, value_parser = parse_brokers)]
    pub brokers: u32,
    /// A fault during the measured window, e.g.
    /// at=5s,action=kill,broker=leader,restart_after=10s (repeatable;
    /// actions kill, stop, pause (with for=D), restart, and with --net
    /// isolate, cut_replication, disconnect, partition, slow (for=D with
    /// latency=D and/or bandwidth=R), reset; broker N, leader, follower,
    /// other_follower, followers or controller). With --group, consumer
    /// events: join, leave (consumer=N), die (consumer=N), stall
    /// (consumer=N, for=D).
    #[arg(long = "fault", value_name = "SPEC", value_parser = parse_fault)]
    pub faults: Vec<crate::model::FaultSpec>,
    /// A link setting, e.g. client_latency=10ms (repeatable): every
    /// connection between the clients and the nodes and between nodes then
    /// passes a proxy klab controls (Toxiproxy). Keys: client_latency,
    /// client_jitter, client_bandwidth, node_latency, node_jitter,
    /// node_bandwidth, zones=a,b,c, client_zone, zone_latency (see
    /// docs/network.md). `--net clear` puts the proxies in without adding
    /// anything.
    #[arg(long = "net", value_name = "KEY=VALUE", value_parser = parse_net)]
    pub net: Vec<(String, String)>,
    /// Use an existing broker at HOST:PORT instead of starting one (broker
    /// settings are then refused: klab does not own that broker).
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap: Option<String>,
    #[command(flatten)]
    pub broker: BrokerArgs,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// After the step, count the topic with Kafka's own GetOffsetShell against
    /// klab's counts (`kafka_offsets`; with --bootstrap, name it with --topic).
    #[arg(long)]
    pub kafka_offsets: bool,
    #[command(flatten)]
    pub out: OutputArgs,
    #[command(flatten)]
    pub ui: UiArgs,
}

/// Where a measuring command writes: `--json`, `--results`, `--quiet`.
#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Also write the result as JSON to FILE (what the command measured:
    /// a step, every step of a lab run, a report).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Where run folders go (results, histograms, plots, broker logs).
    #[arg(long, value_name = "DIR", default_value = "results", value_parser = parse_results)]
    pub results: PathBuf,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Three pairs of short runs (about 3 minutes on 2 cores) instead of
    /// five longer pairs.
    #[arg(long)]
    pub quick: bool,
    /// Pairs of runs (klab, peer) per comparison (default 3 with --quick, else 5).
    #[arg(long, value_name = "N", value_parser = parse_runs)]
    pub runs: Option<usize>,
    /// Records per producer/consumer run (default 200000 with --quick, else 500000).
    #[arg(long, value_name = "N", value_parser = parse_messages)]
    pub messages: Option<u64>,
    #[command(flatten)]
    pub out: OutputArgs,
    /// Cold starts of one broker and of a 3-node cluster, each timed from
    /// start to ready (0 to 10; default 3 with --quick, else 5).
    #[arg(long, value_name = "N", value_parser = parse_startups)]
    pub startups: Option<usize>,
    /// librdkafka's own benchmark, the second producer peer (default
    /// $KLAB_RDKAFKA_PERFORMANCE, else where scripts/rdkafka-performance
    /// puts it in the klab cache).
    #[arg(long, value_name = "PATH")]
    pub rdkafka_performance: Option<PathBuf>,
}

fn parse_agent(s: &str) -> Result<String, String> {
    match s.trim() {
        "" => Err("needs a command, e.g. --agent ./my-agent".into()),
        t => Ok(t.to_string()),
    }
}

fn parse_startups(s: &str) -> Result<usize, String> {
    parse_whole(s, 0..=10, "starts", "")
}

fn parse_runs(s: &str) -> Result<usize, String> {
    parse_whole(s, 1..=50, "pairs", "")
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// The first result: a step's JSON, a run folder, or a summary.json.
    pub a: PathBuf,
    /// The second one, compared against the first (ratios are B / A).
    pub b: PathBuf,
    /// Also write the comparison as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct KnobsArgs {
    /// Only keys that change without a restart.
    #[arg(long)]
    pub dynamic: bool,
    /// Only keys containing this text.
    pub filter: Option<String>,
}

/// `--results DIR`: brokers' folders go under it ([`crate::broker::render::check_kafka_path`]).
pub fn parse_results(s: &str) -> Result<PathBuf, String> {
    crate::broker::render::check_kafka_path(s.as_ref()).map(|()| PathBuf::from(s))
}

pub fn parse_rate(s: &str) -> Result<f64, String> {
    let r: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number; expected records/s > 0"))?;
    if !(r.is_finite() && r > 0.0) {
        return Err(format!("{s} is not allowed; expected records/s > 0"));
    }
    if r > limits::MAX_RATE {
        return Err(format!(
            "{s} is absurd; at most {} records/s",
            limits::MAX_RATE
        ));
    }
    Ok(r)
}

pub fn parse_messages(s: &str) -> Result<u64, String> {
    let n: u64 = s
        .trim()
        .replace('_', "")
        .parse()
        .map_err(|_| format!("'{s}' is not a whole number of records"))?;
    if n == 0 || n > limits::MAX_MESSAGES {
        return Err(format!(
            "{s} is not allowed; expected 1..={}",
            limits::MAX_MESSAGES
        ));
    }
    Ok(n)
}

pub fn parse_nonzero_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err("must be longer than 0".into());
    }
    Ok(d)
}

pub fn parse_message_bytes(s: &str) -> Result<usize, String> {
    let range = limits::MIN_MESSAGE_BYTES..=limits::MAX_MESSAGE_BYTES;
    parse_whole(s, range, "bytes", " (64 are header and HMAC tag)")
}

pub fn parse_partitions(s: &str) -> Result<i32, String> {
    parse_count(s, limits::MAX_PARTITIONS)
}

pub fn parse_acks(s: &str) -> Result<Acks, String> {
    s.parse()
}

pub fn parse_heap(s: &str) -> Result<MemSize, String> {
    s.parse()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let mut v = vec!["klab"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v)
    }

    fn run_args(args: &[&str]) -> RunArgs {
        let mut v = vec!["run"];
        v.extend_from_slice(args);
        match parse(&v).unwrap().command {
            Command::Run(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bad_values_are_rejected_by_flag() {
        for (args, flag) in [
            (&["run", "--rate", "-5"][..], "--rate"),
            (&["run", "--rate", "fast"][..], "--rate"),
            (&["run", "--message-bytes", "0"][..], "--message-bytes"),
            (
                &["run", "--message-bytes", "99999999"][..],
                "--message-bytes",
            ),
            (&["run", "--partitions", "0"][..], "--partitions"),
            (&["run", "--acks", "2"][..], "--acks"),
            (
                &["run", "--producer-set", "linger.ms"][..],
                "--producer-set",
            ),
            (&["run", "--broker-set", "=3"][..], "--broker-set"),
            (&["run", "--heap", "lots"][..], "--heap"),
            (&["run", "--duration", "soon"][..], "--duration"),
            (&["run", "--warmup", "-1s"][..], "--warmup"),
            (&["run", "--messages", "0"][..], "--messages"),
            (&["run", "--keys", "0"][..], "--keys"),
            (&["run", "--key-dist", "zipf:0"][..], "--key-dist"),
            (&["run", "--key-dist", "hot:150"][..], "--key-dist"),
        ] {
            let e = parse(args).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}");
            assert!(e.to_string().contains(flag), "{args:?}: {e}");
        }
        assert!(parse(&["run", "--rate", "5", "--max"]).is_err());
        assert!(parse(&["run", "--messages", "5", "--duration", "1s"]).is_err());
    }

    #[test]
    fn ui_takes_an_optional_address() {
        assert_eq!(run_args(&[]).ui.ui, None);
        assert_eq!(
            run_args(&["--ui"]).ui.ui.unwrap().to_string(),
            "127.0.0.1:8484"
        );
        assert_eq!(
            run_args(&["--ui=0.0.0.0:9001"]).ui.ui.unwrap().to_string(),
            "0.0.0.0:9001"
        );
        let e = parse(&["run", "--ui=somewhere:else"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--ui"), "{e}");
        match parse(&["lab", "run", "03", "--ui"]).unwrap().command {
            Command::Lab(LabCommand::Run(a)) => assert!(a.session.ui.ui.is_some()),
            other => panic!("{other:?}"),
        }
        assert!(!run_args(&["--ui"]).ui.ui_exit);
        assert!(run_args(&["--ui", "--ui-exit"]).ui.ui_exit);
        let e = parse(&["run", "--ui-exit"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn workload_defaults_and_modes() {
        let w = run_args(&[]).workload.workload().unwrap();
        assert_eq!(w.rate, Some(10_000.0));
        assert_eq!(w.duration, Some(Duration::from_secs(10)));
        let w = run_args(&["--max", "--messages", "1000"])
            .workload
            .workload()
            .unwrap();
        assert_eq!(w.rate, None);
        assert_eq!(w.messages, Some(1000));
        assert_eq!(w.duration, None);
        let w = run_args(&["--producer-set", "linger.ms=5", "--acks", "1"])
            .workload
            .workload()
            .unwrap();
        assert_eq!(w.producer["linger.ms"], "5");
        assert_eq!(w.acks, Acks::One);
    }

    #[test]
    fn semantic_errors_name_the_flag() {
        let e = run_args(&["--producer-set", "acks=0"])
            .workload
            .workload()
            .unwrap_err();
        assert!(crate::error::is_usage(&e));
        assert!(e.to_string().starts_with("--producer-set"), "{e}");
        for (args, starts) in [
            (
                &["--key-dist", "zipf:1.1"][..],
                "--key-dist: zipf:1.1 needs keys",
            ),
            (
                &["--keys", "1", "--key-dist", "hot:50"][..],
                "--key-dist: hot:50 needs at least 2 keys",
            ),
        ] {
            let e = run_args(args).workload.workload().unwrap_err();
            assert!(crate::error::is_usage(&e), "{args:?}");
            assert!(e.to_string().starts_with(starts), "{args:?}: {e}");
        }
        let e = run_args(&["--topic", "bad topic"])
            .workload
            .workload()
            .unwrap_err();
        assert!(e.to_string().starts_with("--topic"), "{e}");
        let e = run_args(&["--broker-set", "num.io.threads=zero"])
            .broker
            .config()
            .unwrap_err();
        assert!(e.to_string().starts_with("--broker-set"), "{e}");
        let e = run_args(&["--broker-set", "no.such.key=1"])
            .broker
            .config()
            .unwrap_err();
        assert!(
            e.to_string().contains("not a Kafka 4.1 broker config"),
            "{e}"
        );
        let e = run_args(&["--heap", "8m"]).broker.config().unwrap_err();
        assert!(e.to_string().starts_with("--heap"), "{e}");
    }
}
