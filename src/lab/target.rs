//! What the lab runner needs from a target (the local broker, a broker
//! klab only connects to, a Kubernetes cluster) and what every target keeps
//! of a session. How a step is counted, warmed up and kept, and how capacity
//! is calibrated, is the same for every target: [`crate::lab::run`].

use crate::lab::Lab;
use crate::lab::calibration::{Key, Store};
use crate::model::{Applied, BrokerConfig, StepResult, Workload};
use crate::stats::report::Measurement;
use anyhow::Result;
use std::path::{Path, PathBuf};

/// What a step costs beyond its warm-up and window: topic creation and
/// deletion, consumer start, draining (measured on 2 cores: under 1 s).
const STEP_OVERHEAD: std::time::Duration = std::time::Duration::from_secs(1);
/// A broker (re)start with its JIT warm-up (2 cores, the demo's quick
/// run: 5 s to ready, then 10 to 25 s until the JIT settles).
const RESTART_COST: std::time::Duration = std::time::Duration::from_secs(30);

/// A rough duration of `steps` measurements of `w` with `restarts` broker
/// (re)starts, to say before a long command starts how long it will take.
pub fn estimate(w: &Workload, steps: usize, restarts: usize) -> std::time::Duration {
    let step = w.warmup + w.duration.unwrap_or(std::time::Duration::from_secs(10)) + STEP_OVERHEAD;
    step * steps as u32 + RESTART_COST * restarts as u32
}

/// `about 4 min` / `about 50 s`.
pub fn describe_estimate(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s >= 120 {
        format!("about {} min", (s + 30) / 60)
    } else {
        format!("about {s} s")
    }
}

/// How long the throw-away load after a broker (re)start runs.
/// (A target that cannot watch the broker's JIT, Kubernetes, runs it this
/// long; a local broker runs it until its JIT settles, see
/// [`crate::step::JIT_WARM_UP_MAX`].)
pub const WARM_UP: std::time::Duration = std::time::Duration::from_secs(6);

/// The throw-away load after a (re)start: `workload` for `length`, without
/// a warm-up or faults of its own, on a topic of its own (never the
/// workload's `--topic`, which the measured step then reads).
pub fn warm_up_workload(workload: &Workload, length: std::time::Duration) -> Workload {
    // At least one record per producer, whatever the measured rate.
    let least = f64::from(workload.producers.max(1)) / length.as_secs_f64().max(1.0);
    Workload {
        rate: workload.rate.map(|r| r.max(least)),
        messages: None,
        duration: Some(length),
        warmup: std::time::Duration::ZERO,
        faults: Vec::new(),
        topic: None,
        ..workload.clone()
    }
}

/// Where a step's JSON goes: `<run_dir>/<prefix><lab>.<label>.json` (its
/// histograms go beside it).
pub fn step_file(run_dir: &Path, prefix: &str, lab: &Lab, label: &str) -> PathBuf {
    run_dir.join(format!(
        "{prefix}{}.{}.json",
        lab.id,
        label.replace(' ', "-")
    ))
}

/// What every target keeps of a session: the steps measured so far and the
/// capacity calibration found.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Records/s of lab 01 at max, when a lab asks for a share of capacity.
    pub capacity: Option<f64>,
    /// Every step measured, in order (calibration and warm-ups excluded).
    pub results: Vec<StepResult>,
    pub steps_done: usize,
    /// For the progress line `[done/planned]`.
    pub steps_planned: usize,
    /// Broker restarts (rollouts on Kubernetes) the session made; on the
    /// local target, fresh JVMs started for a new static config.
    pub restarts: u32,
    /// Returns to a warm spare instead of a restart (local target).
    pub reused: u32,
}

impl Ledger {
    /// `N broker restart(s)`, and the returns to a warm spare if any.
    pub fn restarts_line(&self) -> String {
        match self.reused {
            0 => format!("{} broker restart(s)", self.restarts),
            r => format!(
                "{} broker restart(s), {r} return(s) to a warm broker",
                self.restarts
            ),
        }
    }
}

/// One step for a target to measure: the lab and the step's label, the
/// load, and the broker config with how the broker got to it.
pub struct StepSpec<'a> {
    pub lab: &'a Lab,
    pub label: &'a str,
    pub workload: &'a Workload,
    pub cfg: &'a BrokerConfig,
    pub applied: Applied,
}

/// What the lab runner needs from a target: the local broker
/// ([`crate::lab::session::Session`]) or a Kubernetes cluster
/// (`k8s::session::K8sSession`). A target says how it changes its broker
/// and measures a load; how a step is counted, warmed up and kept, and how
/// capacity is calibrated, is the same for every target
/// ([`crate::lab::run::measure`], [`crate::lab::run::calibrate`]).
pub trait LabTarget {
    fn ledger(&mut self) -> &mut Ledger;
    fn quick(&self) -> bool;
    fn run_dir(&self) -> &Path;
    /// Before every step file's name (tune-bench keeps its runs apart).
    fn step_prefix(&self) -> &str {
        ""
    }
    fn set_step_prefix(&mut self, prefix: &str) {
        let _ = prefix;
    }
    /// A progress line (stderr with progress on, else the log).
    fn say(&self, msg: &str);
    /// Brings the broker to `cfg`: start, dynamic change or restart (the
    /// decision is [`crate::broker::apply::apply`]'s).
    fn apply(&mut self, cfg: &BrokerConfig) -> Result<Applied>;
    /// Runs `workload` for a few seconds and throws the result away: a
    /// fresh JVM runs interpreted code until its JIT compiler catches up,
    /// which takes longer than a step's warm-up, so a step right after a
    /// (re)start would otherwise measure worse than one without.
    /// With `settle`, until the broker's JIT settles (where the target can
    /// tell; else as long as [`WARM_UP`]); without, for [`WARM_UP`].
    fn warm_up(&mut self, workload: &Workload, settle: bool) -> Result<()>;
    /// Measures `workload` on the broker as it is now and saves the result
    /// in the run directory (`applied` says how `cfg` got there).
    fn measure_raw(&mut self, step: StepSpec<'_>) -> Result<Measurement>;
    /// The settings the broker runs with now (None before it is started).
    fn current_config(&self) -> Option<BrokerConfig>;
    /// A broker klab cannot reconfigure (one it does not own) is calibrated
    /// as it is: its config. None: apply lab 01's broker first.
    fn fixed_config(&self) -> Option<BrokerConfig> {
        None
    }
    /// Where this target keeps its calibration between runs, under which
    /// key, for lab 01's `cfg` measured with `w` (see
    /// [`crate::lab::calibration`]). None: calibrate in every session.
    fn calibration_store(
        &self,
        _baseline: &Lab,
        _w: &Workload,
        _cfg: &BrokerConfig,
    ) -> Option<(Store, Key)> {
        None
    }
    /// `--recalibrate`: measure even when a calibration is kept.
    fn recalibrate(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warm_up_never_writes_to_the_measured_topic() {
        let w = Workload {
            topic: Some("mine".into()),
            ..Workload::default()
        };
        let warm = warm_up_workload(&w, std::time::Duration::from_secs(6));
        assert_eq!(warm.topic, None);
        assert_eq!(warm.duration, Some(std::time::Duration::from_secs(6)));
    }
}
