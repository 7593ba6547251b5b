//! What the lab runner needs from a target (the local broker, a broker
//! klab only connects to, a Kubernetes cluster) and what every target keeps
//! of a session. How a step is counted, warmed up and kept, and how capacity
//! is calibrated, is the same for every target: the provided methods of
//! [`LabTarget`].

use crate::cancel;
use crate::error::Interrupted;
use crate::lab::Lab;
use crate::lab::calibration::{Calibration, Key, Store};
use crate::model::{Applied, BrokerConfig, StepResult, Workload};
use crate::stats::report::{Measurement, write_json};
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

/// What the lab runner needs from a target: the local broker
/// ([`crate::lab::session::Session`]) or a Kubernetes cluster
/// (`k8s::session::K8sSession`). A target says how it changes its broker
/// and measures a load; how a step is counted, warmed up and kept, and how
/// capacity is calibrated, is the same for every target (the provided
/// methods). All run the same labs through [`crate::lab::run`].
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
    fn measure_raw(
        &mut self,
        lab: &Lab,
        label: &str,
        workload: &Workload,
        cfg: &BrokerConfig,
        applied: Applied,
    ) -> Result<Measurement>;
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

    /// [`LabTarget::apply`], counting restarts in the ledger.
    fn bring_to(&mut self, cfg: &BrokerConfig) -> Result<Applied> {
        let applied = self.apply(cfg)?;
        match applied {
            Applied::Restarted => self.ledger().restarts += 1,
            Applied::Reused => self.ledger().reused += 1,
            _ => {}
        }
        Ok(applied)
    }

    /// Applies `cfg` and measures `workload`; the result is kept and saved
    /// (the histograms stay with the caller, to pool a step measured twice).
    fn measure(
        &mut self,
        lab: &Lab,
        label: &str,
        cfg: &BrokerConfig,
        workload: &Workload,
    ) -> Result<Measurement> {
        let before = self.current_config();
        let applied = self.bring_to(cfg)?;
        // What moved on the broker (against the broker as it was, which
        // after a rejected trial is not the tuner's best).
        let moved = match (&before, applied) {
            (Some(b), Applied::Dynamic | Applied::Restarted | Applied::Reused) => {
                format!(
                    ": {}",
                    crate::broker::apply::setting_changes(b, cfg).join(", ")
                )
            }
            _ => String::new(),
        };
        let ledger = self.ledger();
        ledger.steps_done += 1;
        let (done, planned) = (
            ledger.steps_done,
            ledger.steps_planned.max(ledger.steps_done),
        );
        let producer = if workload.producer.is_empty() {
            String::new()
        } else {
            let kv: Vec<String> = workload
                .producer
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!(", producer {}", kv.join(" "))
        };
        self.say(&format!(
            "[{done}/{planned}] {} {label}: {}{producer} — broker {} ({applied}{moved})",
            lab.id,
            workload.describe(),
            if cfg.is_empty() {
                "(defaults)".to_string()
            } else {
                cfg.to_string()
            },
        ));
        if applied.fresh_jvm() {
            self.warm_up(workload, true)?;
        }
        let m = self.measure_raw(lab, label, workload, cfg, applied)?;
        self.ledger().results.push(m.result.clone());
        if !m.result.complete && cancel::interrupted() {
            return Err(Interrupted.into());
        }
        Ok(m)
    }

    /// Lab 01's broker at max: what this machine or cluster sustains (once
    /// per session).
    fn calibrate(&mut self, baseline: &Lab) -> Result<f64> {
        if let Some(c) = self.ledger().capacity {
            return Ok(c);
        }
        let mut w = baseline.workload(self.quick(), Some(1.0))?;
        w.rate = None;
        let (cfg, applied) = match self.fixed_config() {
            Some(cfg) => (cfg, Applied::External),
            None => (baseline.broker.clone(), self.bring_to(&baseline.broker)?),
        };
        let kept = self.calibration_store(baseline, &w, &cfg);
        if let Some((store, key)) = &kept {
            if self.recalibrate() {
                store.forget(key);
            } else if let Some(c) = store.load(key) {
                return self.reuse_calibration(baseline, c, applied);
            }
        }
        self.say("calibrating: lab 01's broker at max throughput, to size the labs' offered load");
        let mut c = self.capacity_at_max(baseline, &w, &cfg, applied, "calibration")?;
        if applied.fresh_jvm() {
            // A fresh JVM compiles for 40-50 s under load (2 cores), and
            // how far it got moves what it sustains: let the JIT settle at
            // half of this first figure, then measure again.
            let mut half = baseline.workload(self.quick(), Some(c * 0.5))?;
            half.faults.clear();
            self.warm_up(&half, true)?;
            self.say("calibrating again on the warm broker");
            c = self.capacity_at_max(baseline, &w, &cfg, Applied::Unchanged, "calibration-warm")?;
        }
        self.say(&format!(
            "capacity: {c:.0} records/s (median of the calibration's full seconds, acknowledged and read)"
        ));
        self.ledger().capacity = Some(c);
        let run_dir = self.run_dir().to_path_buf();
        let record = match &kept {
            Some((store, key)) => match store.save(key, c, &run_dir) {
                Ok(saved) => {
                    self.say("kept for later runs on this machine (--recalibrate measures again)");
                    saved
                }
                Err(e) => {
                    tracing::warn!("could not keep the calibration: {e:#}");
                    Calibration::measured_now(c, &run_dir, key.clone())
                }
            },
            None => Calibration::measured_now(c, &run_dir, Key::default()),
        };
        write_json(&run_dir.join("calibration.json"), &record)?;
        Ok(c)
    }

    /// Takes a kept calibration instead of measuring. A broker that just
    /// started still gets the JIT warm-up the measured path gives it, at
    /// the reference's own load.
    fn reuse_calibration(
        &mut self,
        baseline: &Lab,
        mut c: Calibration,
        applied: Applied,
    ) -> Result<f64> {
        let cap = c.capacity_records_per_s;
        self.say(&format!(
            "capacity: {cap:.0} records/s, this machine's calibration of {} (from {}; --recalibrate measures again)",
            c.measured_at, c.measured_in
        ));
        c.source = "reused".into();
        write_json(&self.run_dir().join("calibration.json"), &c)?;
        self.ledger().capacity = Some(cap);
        if applied.fresh_jvm() {
            let mut w = baseline.workload(self.quick(), Some(cap))?;
            w.faults.clear();
            self.warm_up(&w, true)?;
        }
        Ok(cap)
    }

    /// One measurement of `w` at max: what the whole pipeline sustains
    /// (the broker acknowledging and the consumer reading: on a small
    /// machine they share the cores), each as the median of the window's
    /// full seconds, so one slow (or fast) second does not move the labs'
    /// offered load.
    fn capacity_at_max(
        &mut self,
        baseline: &Lab,
        w: &Workload,
        cfg: &BrokerConfig,
        applied: Applied,
        label: &str,
    ) -> Result<f64> {
        let m = self.measure_raw(baseline, label, w, cfg, applied)?;
        let r = &m.result;
        let per_second = crate::stats::noise::median_rate(&m.publish)
            .zip(crate::stats::noise::median_rate(&m.e2e))
            .map(|(acked, read)| acked.min(read));
        let c = per_second.unwrap_or_else(|| r.throughput.msgs_per_s.min(r.read_rate));
        if !r.complete || c <= 0.0 {
            anyhow::bail!(
                "calibration did not complete: {}",
                r.reason.clone().unwrap_or_else(|| "no throughput".into())
            );
        }
        Ok(c)
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
