//! The arguments of `klab capacity`.

use super::{
    BrokerArgs, KafkaArgs, LabsDirArgs, OutputArgs, UiArgs, WorkloadArgs, parse_brokers,
    parse_nonzero_duration,
};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct CapacityArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Search a lab's broker and workload (and its [capacity] settings)
    /// instead of the ones `klab run` would measure.
    #[arg(long, value_name = "NN|PATH")]
    pub lab: Option<String>,
    #[command(flatten)]
    pub dir: LabsDirArgs,
    /// The e2e p99 a probe must stay at or under (default 50ms, or the
    /// lab's [capacity] slo_p99).
    #[arg(long = "slo-p99", value_name = "D", value_parser = parse_nonzero_duration)]
    pub slo_p99: Option<Duration>,
    /// How precisely to find the knee, e.g. 5% (1% to 25%; default 5%).
    #[arg(long, value_name = "PCT", value_parser = parse_resolution)]
    pub resolution: Option<f64>,
    /// At most this many probes per configuration (4 to 40; default 14).
    #[arg(long, value_name = "N", value_parser = parse_max_probes)]
    pub max_probes: Option<usize>,
    /// Measure two configurations (fix files: heap, [properties],
    /// [producer]) laid over the broker and workload, their probes in
    /// alternation.
    #[arg(long, num_args = 2, value_names = ["A.toml", "B.toml"])]
    pub compare: Vec<PathBuf>,
    /// Shorter probes (as the labs' --quick: 6 s windows after a 2 s warm-up).
    #[arg(long)]
    pub quick: bool,
    /// Brokers of the local cluster (1 to 5; default 1, or the lab's).
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = parse_brokers)]
    pub brokers: Option<u32>,
    /// Search an existing broker at HOST:PORT instead of starting one.
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap: Option<String>,
    #[command(flatten)]
    pub broker: BrokerArgs,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    #[command(flatten)]
    pub out: OutputArgs,
    #[command(flatten)]
    pub ui: UiArgs,
}

/// What `klab tune` and `klab tune-bench` maximise.
#[derive(Args, Debug, Clone)]
pub struct ObjectiveArgs {
    /// score: records/s ÷ (1 + p99/SLO) at the lab's offered load;
    /// capacity: the highest offered rate at which the SLO holds (every
    /// trial a capacity search; the client knobs and the workload's shape
    /// join the space).
    #[arg(long, value_enum, default_value = "score")]
    pub objective: ObjectiveKind,
    /// The tail latency the objective is measured against (default 100ms
    /// for score; for capacity 50ms, or the lab's [capacity] slo_p99).
    #[arg(long = "slo-p99", value_name = "D", value_parser = parse_nonzero_duration)]
    pub slo_p99: Option<Duration>,
    /// capacity only: how precisely each search finds the knee (1% to
    /// 25%; default the lab's, else 5%).
    #[arg(long, value_name = "PCT", value_parser = parse_resolution)]
    pub resolution: Option<f64>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectiveKind {
    Score,
    Capacity,
}

impl ObjectiveArgs {
    /// The objective, with the lab's [capacity] settings under the flags.
    pub fn objective(&self, lab: &crate::lab::capacity::CapacityPatch) -> crate::tuner::Objective {
        let slo = self.slo_p99.map(|d| d.as_secs_f64() * 1000.0);
        match self.objective {
            ObjectiveKind::Score => crate::tuner::Objective::score_at(slo.unwrap_or(100.0)),
            ObjectiveKind::Capacity => {
                let mut settings = lab.settings();
                if let Some(ms) = slo {
                    settings.slo_p99_ms = ms;
                }
                if let Some(r) = self.resolution {
                    settings.resolution = r;
                }
                crate::tuner::Objective::capacity(settings)
            }
        }
    }

    /// `--resolution` is the capacity objective's.
    pub fn check(&self) -> Result<(), String> {
        if self.objective == ObjectiveKind::Score && self.resolution.is_some() {
            return Err("--resolution: only with --objective capacity".into());
        }
        Ok(())
    }
}

fn parse_resolution(s: &str) -> Result<f64, String> {
    crate::lab::capacity::parse_resolution(s)
}

fn parse_max_probes(s: &str) -> Result<usize, String> {
    let n: i64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a whole number of probes"))?;
    crate::lab::capacity::check_max_probes(n)
}
