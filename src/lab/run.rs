//! Running labs: one local broker for a whole session, reconfigured between
//! steps (dynamically when Kafka allows it, by a restart when a restart-only
//! knob changes), with every step's result saved as it is measured.

use crate::broker::external::ExternalBroker;
use crate::broker::kafka_home::KafkaHome;
use crate::broker::knobs;
use crate::broker::local::{LocalBroker, LocalOptions};
use crate::cancel;
use crate::error::Interrupted;
use crate::lab::file::Fix;
use crate::lab::{Lab, Labs};
use crate::load::payload::Secret;
use crate::model::{BrokerConfig, StepResult, Workload};
use crate::stats::plot::{self, Bar, Kind};
use crate::stats::progress::with_spinner;
use crate::stats::report::Measurement;
use crate::stats::report::write_json;
use crate::stats::table::{align_numbers, fmt_ms, fmt_rate, group, new_table};
use crate::step::{self, StepOptions, Target};
use crate::tuner::space::{Candidate, Space};
use crate::tuner::{Measurer, TuneOptions, TuneReport};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// The Kafka to start; None with an external broker.
    pub kafka: Option<KafkaHome>,
    /// `results/<timestamp>/`: every step's JSON and histograms go here.
    pub run_dir: PathBuf,
    pub quick: bool,
    pub progress: bool,
}

/// A progress line: on stderr when progress shows, else in the log.
pub fn say(progress: bool, msg: &str) {
    if progress {
        eprintln!("{msg}");
    } else {
        tracing::info!("{msg}");
    }
}

/// How long the throw-away load after a broker (re)start runs.
pub const WARM_UP: std::time::Duration = std::time::Duration::from_secs(6);

/// The throw-away load after a (re)start: `workload` for [`WARM_UP`],
/// without a warm-up of its own.
pub fn warm_up_workload(workload: &Workload) -> Workload {
    Workload {
        messages: None,
        duration: Some(WARM_UP),
        warmup: std::time::Duration::ZERO,
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

/// How a config reached the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Started,
    Restarted,
    Dynamic,
    Unchanged,
}

impl Applied {
    /// A fresh JVM: its JIT needs a throw-away load before a measurement.
    pub fn fresh_jvm(self) -> bool {
        matches!(self, Applied::Started | Applied::Restarted)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Applied::Started => "static (started)",
            Applied::Restarted => "static (restarted)",
            Applied::Dynamic => "dynamic (no restart)",
            Applied::Unchanged => "unchanged",
        }
    }
}

/// The broker of a session.
pub enum SessionBroker {
    Local(Box<LocalBroker>),
    External(ExternalBroker),
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
}

/// A lab session: one broker, a secret, the measurements so far.
pub struct Session {
    pub opts: SessionOptions,
    broker: Option<SessionBroker>,
    secret: Secret,
    pub ledger: Ledger,
    pub restarts: u32,
    /// Put before each step's file name, so several tuner runs in one run
    /// directory (`klab tune-bench`) keep every step's files.
    pub step_file_prefix: String,
}

impl Session {
    pub fn new(opts: SessionOptions) -> Result<Session> {
        std::fs::create_dir_all(&opts.run_dir)
            .with_context(|| format!("creating {}", opts.run_dir.display()))?;
        Ok(Session {
            opts,
            broker: None,
            secret: Secret::from_env_or_random()?,
            ledger: Ledger::default(),
            restarts: 0,
            step_file_prefix: String::new(),
        })
    }

    /// Uses a broker klab does not own: only dynamic changes are possible.
    pub fn connect(&mut self, bootstrap: &str) -> Result<()> {
        self.broker = Some(SessionBroker::External(ExternalBroker::connect(bootstrap)?));
        Ok(())
    }

    /// The broker's current settings (for an external broker: its dynamic ones).
    pub fn broker_config(&self) -> Option<BrokerConfig> {
        match &self.broker {
            Some(SessionBroker::Local(b)) => Some(b.config()),
            Some(SessionBroker::External(b)) => Some(b.config()),
            None => None,
        }
    }

    /// Brings the broker to `cfg`: start, dynamic change, or restart.
    pub fn apply(&mut self, cfg: &BrokerConfig) -> Result<Applied> {
        if cancel::interrupted() {
            return Err(Interrupted.into());
        }
        if let Some(SessionBroker::External(b)) = self.broker.as_mut() {
            let current = b.config();
            if &current == cfg {
                return Ok(Applied::Unchanged);
            }
            if cfg.heap.is_some() || knobs::needs_restart(&current, cfg) {
                return Err(anyhow::Error::new(crate::broker::admin::Refused(format!(
                    "{cfg} needs a restart, and klab does not own the broker at {}",
                    b.bootstrap()
                ))));
            }
            b.set_dynamic(&current.diff(cfg).properties)?;
            return Ok(Applied::Dynamic);
        }
        let b = match self.broker.as_mut() {
            Some(SessionBroker::Local(b)) => Some(b),
            _ => None,
        };
        let Some(b) = b else {
            let kafka =
                self.opts.kafka.clone().ok_or_else(|| {
                    anyhow::anyhow!("no Kafka installation to start a broker with")
                })?;
            let started = with_spinner(
                self.opts.progress,
                &format!("starting the broker ({cfg})"),
                || {
                    LocalBroker::start(LocalOptions::new(
                        kafka,
                        self.opts.run_dir.join("broker"),
                        cfg.clone(),
                    ))
                },
            );
            self.broker = Some(SessionBroker::Local(Box::new(started?)));
            return Ok(Applied::Started);
        };
        let current = b.config();
        if !b.is_running() {
            // A previous change left no broker (it failed to start): start
            // again with what is asked now.
            let r = b.restart(cfg.clone());
            self.restarts += 1;
            return r.map(|_| Applied::Restarted).map_err(refused_start);
        }
        if &current == cfg {
            return Ok(Applied::Unchanged);
        }
        if knobs::needs_restart(&current, cfg) {
            let r = with_spinner(
                self.opts.progress,
                &format!("restarting the broker ({cfg})"),
                || b.restart(cfg.clone()),
            );
            self.restarts += 1;
            r.map_err(refused_start)?;
            return Ok(Applied::Restarted);
        }
        let diff = current.diff(cfg);
        b.set_dynamic(&diff.properties)?;
        Ok(Applied::Dynamic)
    }

    fn measure_step(
        &mut self,
        lab: &Lab,
        label: &str,
        workload: &Workload,
        cfg: &BrokerConfig,
        applied: &str,
    ) -> Result<Measurement> {
        let mut target = match self.broker.as_mut() {
            Some(SessionBroker::Local(b)) => Target::Local(b),
            Some(SessionBroker::External(b)) => Target::External {
                bootstrap: b.bootstrap().to_string(),
                effective: b.effective().clone(),
            },
            None => anyhow::bail!("no broker running"),
        };
        let opts = StepOptions {
            lab: Some(lab.id.clone()),
            label: Some(label.to_string()),
            progress: self.opts.progress,
            title: format!("{} {label}", lab.number),
            lab_fingerprint: crate::provenance::lab_fingerprint(&lab.dir),
            requested: cfg.clone(),
            applied: applied.to_string(),
            ..Default::default()
        };
        let mut m = step::measure(&mut target, workload, &self.secret, &opts)?;
        m.save(&step_file(
            &self.opts.run_dir,
            &self.step_file_prefix,
            lab,
            label,
        ))?;
        Ok(m)
    }

    /// [`LabTarget::warm_up`] on the local broker (an external one is left
    /// alone: klab did not start it).
    fn warm_up_local(&mut self, workload: &Workload) -> Result<()> {
        let Some(SessionBroker::Local(b)) = self.broker.as_mut() else {
            return Ok(());
        };
        let w = warm_up_workload(workload);
        let opts = StepOptions {
            progress: self.opts.progress,
            title: "JIT warm-up".into(),
            throwaway: true,
            ..Default::default()
        };
        let m = step::measure(&mut Target::Local(b), &w, &self.secret, &opts)?;
        if !m.result.complete && cancel::interrupted() {
            return Err(Interrupted.into());
        }
        Ok(())
    }

    pub fn stop(&mut self) -> Result<()> {
        if let Some(SessionBroker::Local(mut b)) = self.broker.take() {
            b.stop()?;
        }
        Ok(())
    }

    pub fn secret(&self) -> &Secret {
        &self.secret
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// A broker that will not start with a config has, in effect, refused it;
/// Ctrl-C during the restart stays an interruption.
fn refused_start(e: anyhow::Error) -> anyhow::Error {
    if crate::error::is_interrupted(&e) || cancel::interrupted() {
        return e;
    }
    anyhow::Error::new(crate::broker::admin::Refused(format!(
        "the broker did not start with this config: {e:#}"
    )))
}

/// What the lab runner needs from a target: the local broker ([`Session`])
/// or a Kubernetes cluster (`k8s::session::K8sSession`). A target says how
/// it changes its broker and measures a load; how a step is counted, warmed
/// up and kept, and how capacity is calibrated, is the same for every target
/// (the provided methods). Both run the same labs through [`run_labs`],
/// [`run_demo`] and [`tune_lab`].
pub trait LabTarget {
    fn ledger(&mut self) -> &mut Ledger;
    fn quick(&self) -> bool;
    fn run_dir(&self) -> &Path;
    /// A progress line (stderr with progress on, else the log).
    fn say(&self, msg: &str);
    /// Brings the broker to `cfg`: start, dynamic change or restart.
    fn apply(&mut self, cfg: &BrokerConfig) -> Result<Applied>;
    /// Runs `workload` for a few seconds and throws the result away: a
    /// fresh JVM runs interpreted code until its JIT compiler catches up,
    /// which takes longer than a step's warm-up, so a step right after a
    /// (re)start would otherwise measure worse than one without.
    fn warm_up(&mut self, workload: &Workload) -> Result<()>;
    /// Measures `workload` on the broker as it is now and saves the result
    /// in the run directory (`applied` says how `cfg` got there).
    fn measure_raw(
        &mut self,
        lab: &Lab,
        label: &str,
        workload: &Workload,
        cfg: &BrokerConfig,
        applied: &str,
    ) -> Result<StepResult>;
    /// A broker klab cannot reconfigure (one it does not own) is calibrated
    /// as it is: its config. None: apply lab 01's broker first.
    fn fixed_config(&self) -> Option<BrokerConfig> {
        None
    }

    /// Applies `cfg` and measures `workload`; the result is kept and saved.
    fn measure(
        &mut self,
        lab: &Lab,
        label: &str,
        cfg: &BrokerConfig,
        workload: &Workload,
    ) -> Result<StepResult> {
        let applied = self.apply(cfg)?;
        let ledger = self.ledger();
        ledger.steps_done += 1;
        let (done, planned) = (
            ledger.steps_done,
            ledger.steps_planned.max(ledger.steps_done),
        );
        self.say(&format!(
            "[{done}/{planned}] {} {label}: {} — broker {} ({})",
            lab.id,
            workload.describe(),
            if cfg.is_empty() {
                "(defaults)".to_string()
            } else {
                cfg.to_string()
            },
            applied.as_str()
        ));
        if applied.fresh_jvm() {
            self.warm_up(workload)?;
        }
        let r = self.measure_raw(lab, label, workload, cfg, applied.as_str())?;
        self.ledger().results.push(r.clone());
        if !r.complete && cancel::interrupted() {
            return Err(Interrupted.into());
        }
        Ok(r)
    }

    /// Lab 01's broker at max: what this machine or cluster sustains (once
    /// per session).
    fn calibrate(&mut self, baseline: &Lab) -> Result<f64> {
        if let Some(c) = self.ledger().capacity {
            return Ok(c);
        }
        let mut w = baseline.workload(self.quick(), Some(1.0))?;
        w.rate = None;
        let cfg = match self.fixed_config() {
            Some(cfg) => cfg,
            None => {
                if self.apply(&baseline.broker)?.fresh_jvm() {
                    self.warm_up(&w)?;
                }
                baseline.broker.clone()
            }
        };
        self.say("calibrating: lab 01's broker at max throughput, to size the labs' offered load");
        let r = self.measure_raw(baseline, "calibration", &w, &cfg, "calibrate")?;
        // What the whole pipeline sustains: the broker acknowledging and the
        // consumer reading (on a small machine they share the cores).
        let c = r.throughput.msgs_per_s.min(r.read_rate);
        if !r.complete || c <= 0.0 {
            anyhow::bail!(
                "calibration did not complete: {}",
                r.reason.unwrap_or_else(|| "no throughput".into())
            );
        }
        self.ledger().capacity = Some(c);
        Ok(c)
    }
}

impl LabTarget for Session {
    fn ledger(&mut self) -> &mut Ledger {
        &mut self.ledger
    }
    fn quick(&self) -> bool {
        self.opts.quick
    }
    fn run_dir(&self) -> &Path {
        &self.opts.run_dir
    }
    fn say(&self, msg: &str) {
        say(self.opts.progress, msg)
    }
    fn apply(&mut self, cfg: &BrokerConfig) -> Result<Applied> {
        Session::apply(self, cfg)
    }
    fn warm_up(&mut self, workload: &Workload) -> Result<()> {
        self.warm_up_local(workload)
    }
    fn measure_raw(
        &mut self,
        lab: &Lab,
        label: &str,
        workload: &Workload,
        cfg: &BrokerConfig,
        applied: &str,
    ) -> Result<StepResult> {
        self.measure_step(lab, label, workload, cfg, applied)
            .map(|m| m.result)
    }
    fn fixed_config(&self) -> Option<BrokerConfig> {
        match &self.broker {
            Some(SessionBroker::External(b)) => Some(b.config()),
            _ => None,
        }
    }
}

/// A demo's outcome as its summary wants it: an error is said at once
/// (the summary of what was measured follows), and an interruption, however
/// wrapped, becomes plain [`Interrupted`].
pub fn demo_outcome(outcome: Result<()>) -> Result<()> {
    match outcome {
        Err(e) if crate::error::is_interrupted(&e) => Err(Interrupted.into()),
        Err(e) => {
            if !cancel::interrupted() {
                eprintln!("klab: the demo stopped: {e:#}");
            }
            Err(e)
        }
        ok => ok,
    }
}

/// Ratios of a step against lab 01's reference step.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Ratios {
    pub throughput: f64,
    pub p99: f64,
}

pub fn ratios(step: &StepResult, reference: &StepResult) -> Ratios {
    let t = if reference.throughput.msgs_per_s > 0.0 {
        step.throughput.msgs_per_s / reference.throughput.msgs_per_s
    } else {
        0.0
    };
    let p = if reference.e2e_latency_ms.p99 > 0.0 {
        step.e2e_latency_ms.p99 / reference.e2e_latency_ms.p99
    } else {
        0.0
    };
    Ratios {
        throughput: t,
        p99: p,
    }
}

/// Whether a degraded step shows the damage the lab promises.
pub fn degraded_as_expected(lab: &Lab, r: Ratios) -> Option<bool> {
    let e = lab.expect;
    let checks: Vec<bool> = [
        e.degraded_throughput_at_most.map(|m| r.throughput <= m),
        e.degraded_p99_at_least.map(|m| r.p99 >= m),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!checks.is_empty()).then(|| checks.iter().any(|c| *c))
}

/// Whether a fixed step is back where the lab says it should be.
pub fn fixed_as_expected(lab: &Lab, r: Ratios) -> Option<bool> {
    let e = lab.expect;
    let checks: Vec<bool> = [
        e.fixed_throughput_at_least.map(|m| r.throughput >= m),
        e.fixed_p99_at_most.map(|m| r.p99 <= m),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!checks.is_empty()).then(|| checks.iter().all(|c| *c))
}

/// One row of a summary.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    pub lab: String,
    pub step: String,
    pub what: String,
    pub result: StepResult,
    pub vs_reference: Option<Ratios>,
    pub as_expected: Option<bool>,
}

/// The table printed at the end of a lab run or the demo.
pub fn summary_table(rows: &[Row]) -> String {
    let mut t = new_table(&[
        "lab",
        "step",
        "what changed",
        "records/s",
        "MB/s",
        "e2e p99 ms",
        "vs lab 01",
        "lost",
        "expected",
    ]);
    for r in rows {
        let vs = match r.vs_reference {
            Some(x) => format!("{:.2}x rec/s, {:.1}x p99", x.throughput, x.p99),
            None => "reference".into(),
        };
        let lost = if r.result.complete {
            group(r.result.lost)
        } else {
            format!("{} (incomplete)", group(r.result.lost))
        };
        let expected = match r.as_expected {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        t.add_row(vec![
            r.lab.clone(),
            r.step.clone(),
            r.what.clone(),
            fmt_rate(r.result.throughput.msgs_per_s),
            format!("{:.1}", r.result.throughput.mb_per_s),
            fmt_ms(r.result.e2e_latency_ms.p99),
            vs,
            lost,
            expected.to_string(),
        ]);
    }
    align_numbers(&mut t);
    if let Some(c) = t.column_mut(2) {
        c.set_constraint(comfy_table::ColumnConstraint::UpperBoundary(
            comfy_table::Width::Fixed(48),
        ));
        c.set_cell_alignment(comfy_table::CellAlignment::Left);
    }
    t.to_string()
}

pub fn summary_plot(title: &str, rows: &[Row]) -> String {
    let bars: Vec<Bar> = rows
        .iter()
        .map(|r| Bar {
            label: format!("{} {}", r.lab.split('-').next().unwrap_or(&r.lab), r.step),
            kind: match r.step.as_str() {
                "reference" => Kind::Reference,
                "degraded" => Kind::Degraded,
                _ => Kind::Fixed,
            },
            value: r.result.throughput.msgs_per_s,
            latency: Some(r.result.e2e_latency_ms.p99),
        })
        .collect();
    plot::bars_and_latency(title, "records/s acknowledged", "e2e p99 ms", &bars)
}

/// Writes summary.json (every StepResult), summary.txt and summary.svg.
/// `results` is every step measured (tuner trials included), `rows` the
/// summary lines.
pub fn write_summary(
    dir: &Path,
    title: &str,
    rows: &[Row],
    results: &[StepResult],
    extra_json: Option<&Path>,
) -> Result<()> {
    write_json(&dir.join("summary.json"), &results)?;
    crate::stats::report::write_atomic(&dir.join("summary.txt"), summary_table(rows).as_bytes())?;
    crate::stats::report::write_atomic(
        &dir.join("summary.svg"),
        summary_plot(title, rows).as_bytes(),
    )?;
    if let Some(j) = extra_json {
        write_json(j, &results)?;
    }
    Ok(())
}

/// What fixes a lab in a run: the lab's own fix, a student's, or the tuner.
#[derive(Debug, Clone)]
pub enum FixSource {
    Lab,
    Given(Fix),
    Tuner(Box<TuneOptions>),
}

/// Measures tuner candidates on a target's broker with a lab's workload.
pub struct LabMeasurer<'a> {
    pub session: &'a mut dyn LabTarget,
    pub lab: &'a Lab,
    pub workload: Workload,
}

impl Measurer for LabMeasurer<'_> {
    fn measure(&mut self, label: &str, c: &Candidate) -> Result<StepResult> {
        let mut w = self.workload.clone();
        for (k, v) in &c.producer {
            w.producer.insert(k.clone(), v.clone());
        }
        self.session.measure(self.lab, label, &c.broker, &w)
    }
}

/// The tuner's starting point for a lab: its degraded broker and producer.
pub fn tuner_start(lab: &Lab) -> Candidate {
    Candidate {
        broker: lab.broker.clone(),
        producer: lab.workload.producer.clone(),
    }
}

/// Tunes `lab` from its degraded config; saves `<lab>.tune.json` and
/// `<lab>.tune.svg` in the run directory.
pub fn tune_lab(
    session: &mut dyn LabTarget,
    lab: &Lab,
    workload: Workload,
    opts: &TuneOptions,
) -> Result<TuneReport> {
    let space = Space::default_space(false);
    let start = tuner_start(lab);
    let report = {
        let mut m = LabMeasurer {
            session,
            lab,
            workload,
        };
        crate::tuner::tune(&mut m, &space, &start, opts)?
    };
    let dir = session.run_dir().to_path_buf();
    write_json(&dir.join(format!("{}.tune.json", lab.id)), &report)?;
    crate::stats::report::write_atomic(
        &dir.join(format!("{}.tune.svg", lab.id)),
        crate::tuner::trace::plot(&report, &format!("klab tune {}", lab.id)).as_bytes(),
    )?;
    Ok(report)
}

/// Runs one lab: reference (lab 01), degraded, fixed. Returns the rows.
pub fn run_lab(
    session: &mut dyn LabTarget,
    labs: &Labs,
    lab: &Lab,
    fix: &FixSource,
) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    run_labs(session, labs, &[lab], fix, &mut rows)?;
    Ok(rows)
}

/// The reference (lab 01) once, then each of `chosen` degraded and fixed.
/// Rows are pushed as they are measured, so an error or Ctrl-C keeps them.
pub fn run_labs(
    session: &mut dyn LabTarget,
    labs: &Labs,
    chosen: &[&Lab],
    fix: &FixSource,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let baseline = labs.baseline();
    let quick = session.quick();
    let capacity = if baseline.needs_capacity() || chosen.iter().any(|l| l.needs_capacity()) {
        Some(session.calibrate(baseline)?)
    } else {
        None
    };
    let ref_w = baseline.workload(quick, capacity)?;
    let reference = session.measure(baseline, "reference", &baseline.broker, &ref_w)?;
    rows.push(Row {
        lab: baseline.id.clone(),
        step: "reference".into(),
        what: baseline.what_changed(),
        result: reference.clone(),
        vs_reference: None,
        as_expected: None,
    });
    for lab in chosen.iter().filter(|l| l.id != baseline.id) {
        let w = lab.workload(quick, capacity)?;
        let degraded = session.measure(lab, "degraded", &lab.broker, &w)?;
        let r = ratios(&degraded, &reference);
        rows.push(Row {
            lab: lab.id.clone(),
            step: "degraded".into(),
            what: lab.what_changed(),
            as_expected: degraded_as_expected(lab, r),
            result: degraded,
            vs_reference: Some(r),
        });
        let row = fix_step(
            session,
            lab,
            fix,
            degraded_for_tuner(rows),
            &reference,
            capacity,
        )?;
        rows.push(row);
    }
    Ok(())
}

fn degraded_for_tuner(rows: &[Row]) -> Option<StepResult> {
    rows.last()
        .filter(|r| r.step == "degraded")
        .map(|r| r.result.clone())
}

/// Fixes a lab (by its own fix, a given one, or the tuner) and measures it.
fn fix_step(
    session: &mut dyn LabTarget,
    lab: &Lab,
    fix: &FixSource,
    degraded: Option<StepResult>,
    reference: &StepResult,
    capacity: Option<f64>,
) -> Result<Row> {
    let quick = session.quick();
    let (step_name, what, fixed) = match fix {
        FixSource::Lab | FixSource::Given(_) => {
            let (f, name) = match fix {
                FixSource::Given(f) => (f.clone(), "your fix"),
                _ => (lab.fix.clone(), "fixed"),
            };
            let w = lab.fixed_workload(&f, quick, capacity)?;
            let r = session.measure(lab, name, &lab.fixed_broker(&f), &w)?;
            (name, f.lines().join(" "), r)
        }
        FixSource::Tuner(opts) => {
            let mut o = (**opts).clone();
            o.prior_start = degraded;
            let w = lab.workload(quick, capacity)?;
            let report = tune_lab(session, lab, w, &o)?;
            let what = if report.recommended.is_empty() {
                "tuner: no better settings found".to_string()
            } else {
                format!("tuner: {}", report.recommended.join(" "))
            };
            ("tuned", what, report.best)
        }
    };
    let r = ratios(&fixed, reference);
    Ok(Row {
        lab: lab.id.clone(),
        step: step_name.into(),
        what,
        as_expected: fixed_as_expected(lab, r),
        result: fixed,
        vs_reference: Some(r),
    })
}

/// Every lab in order on one broker: the reference once, then each lab
/// degraded and fixed.
pub fn run_demo(
    session: &mut dyn LabTarget,
    labs: &Labs,
    fix: &FixSource,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let per_lab = match fix {
        FixSource::Tuner(o) => 1 + o.budget,
        _ => 2,
    };
    session.ledger().steps_planned = 1 + per_lab * (labs.labs.len() - 1);
    let all: Vec<&Lab> = labs.labs.iter().skip(1).collect();
    run_labs(session, labs, &all, fix, rows)
}
