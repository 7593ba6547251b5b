//! The lab runner, the same on every [`LabTarget`]: the reference (lab 01)
//! once, then each lab degraded and fixed (by its own fix, a student's, or
//! the tuner), a verdict per step and a second measurement of a step whose
//! verdict is unsure, with a summary row per step; and below, how every step
//! is applied, announced, warmed up, measured and kept, and how capacity is
//! calibrated. The target supplies only what differs: applying a broker
//! config and measuring a load.

use crate::cancel;
use crate::error::Interrupted;
use crate::lab::calibration::{Calibration, Key};
use crate::lab::file::Fix;
use crate::lab::summary::Row;
use crate::lab::target::{LabTarget, StepSpec};
use crate::lab::verdict::{self, Check, Judged, Ratios, Verdict, ratios};
use crate::lab::{Lab, Labs};
use crate::model::{Applied, BrokerConfig, StepResult, Workload};
use crate::stats::report::Measurement;
use crate::stats::report::write_json;
use crate::tuner::space::{Candidate, Space};
use crate::tuner::{Measurer, TuneOptions, TuneReport};
use anyhow::Result;

/// A demo's outcome as its summary wants it: an error is said at once
/// (the summary of what was measured follows), and an interruption, however
/// wrapped, becomes plain [`Interrupted`].
pub fn demo_outcome(outcome: Result<()>) -> Result<()> {
    match outcome {
        Err(e) if crate::error::is_interrupted(&e) => Err(Interrupted.into()),
        Err(e) => {
            if !cancel::interrupted() {
                crate::errln!("klab: the demo stopped: {e:#}");
            }
            Err(e)
        }
        ok => ok,
    }
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
    /// The reference of a lab run or the demo: after its first trial the
    /// tuner stops once its best passes the lab's verdict against it. None
    /// for `klab tune`.
    pub reference: Option<&'a StepResult>,
}

impl LabMeasurer<'_> {
    /// The lab's workload with the candidate's client settings and shape;
    /// a shape the workload cannot take is a refused change.
    fn workload_for(&self, c: &Candidate) -> Result<Workload> {
        let mut w = self.workload.clone();
        for (k, v) in &c.producer {
            w.producer.insert(k.clone(), v.clone());
        }
        for (k, v) in &c.consumer {
            w.consumer.insert(k.clone(), v.clone());
        }
        if let Some(p) = c.partitions {
            w.partitions = i32::try_from(p).unwrap_or(i32::MAX);
        }
        if let Some(n) = c.consumers {
            w.consumers = n;
        }
        w.validate().map_err(|e| {
            crate::broker::admin::Refused(format!("not a workload klab can run: {e}"))
        })?;
        Ok(w)
    }
}

impl Measurer for LabMeasurer<'_> {
    fn measure(&mut self, label: &str, c: &Candidate) -> Result<StepResult> {
        let w = self.workload_for(c)?;
        measure(self.session, self.lab, label, &c.broker, &w).map(|m| m.result)
    }

    fn set_prefix(&mut self, prefix: &str) {
        self.session.set_step_prefix(prefix);
    }

    fn goal_reached(&self, best: &StepResult) -> Option<String> {
        let j = verdict::fixed(self.lab, best, self.reference?)?;
        (j.verdict == Verdict::Yes).then(|| {
            let bounds: Vec<String> = j.checks.iter().map(Check::describe).collect();
            format!("the best passes the lab's verdict ({})", bounds.join("; "))
        })
    }

    fn capacity(
        &mut self,
        label: &str,
        c: &Candidate,
        settings: &crate::capacity::Settings,
        warm: Option<crate::tuner::Warm>,
    ) -> Result<crate::tuner::Measured> {
        let mut workload = self.workload_for(c)?;
        workload.rate = None;
        workload.faults.clear();
        let cfg = crate::lab::capacity::Config {
            name: label.to_string(),
            broker: c.broker.clone(),
            workload,
        };
        let (capacity, result) = crate::lab::capacity::search_one(
            self.session,
            self.lab,
            &cfg,
            *settings,
            warm.map(|w| (w.max, w.challenge)),
        )?;
        Ok(crate::tuner::Measured { capacity, result })
    }
}

/// The tuner's starting point for a lab: its degraded broker, its client
/// settings and its shape (partitions, consumers).
pub fn tuner_start(lab: &Lab) -> Candidate {
    Candidate {
        broker: lab.broker.clone(),
        producer: lab.workload.producer.clone(),
        consumer: lab.workload.consumer.clone(),
        partitions: lab.workload.partitions.and_then(|p| u32::try_from(p).ok()),
        consumers: lab.workload.consumers,
    }
}

/// Tunes `lab` from its degraded config; saves `<lab>.tune.json` and
/// `<lab>.tune.svg` in the run directory.
fn tune_lab(
    session: &mut dyn LabTarget,
    lab: &Lab,
    workload: Workload,
    opts: &TuneOptions,
    reference: Option<&StepResult>,
) -> Result<TuneReport> {
    let space = Space::default_space(false);
    let start = tuner_start(lab);
    let report = {
        let mut m = LabMeasurer {
            session,
            lab,
            workload,
            reference,
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
/// Capacity labs (`[expect.capacity]`) are not steps against a reference:
/// the demo, the tuner and a run of several labs refuse them before
/// anything starts.
pub fn refuse_capacity_labs<'a>(labs: impl IntoIterator<Item = &'a Lab>) -> Result<()> {
    match labs.into_iter().find(|l| l.is_capacity_lab()) {
        Some(l) => Err(crate::usage!(
            "lab {} is judged by its capacity at the SLO, not against a reference step: run it with klab lab run {} --fix-with lab (or klab lab check with a fix file)",
            l.id,
            l.dir.display()
        )),
        None => Ok(()),
    }
}

pub fn run_labs(
    session: &mut dyn LabTarget,
    labs: &Labs,
    chosen: &[&Lab],
    fix: &FixSource,
    rows: &mut Vec<Row>,
) -> Result<()> {
    refuse_capacity_labs(std::iter::once(labs.baseline()).chain(chosen.iter().copied()))?;
    let baseline = labs.baseline();
    let quick = session.quick();
    let calibrating = session.ledger().capacity.is_none();
    let capacity = if baseline.needs_capacity() || chosen.iter().any(|l| l.needs_capacity()) {
        Some(calibrate(session, baseline)?)
    } else {
        None
    };
    let ref_w = baseline.workload(quick, capacity)?;
    if calibrating && capacity.is_some() {
        // The calibration ran at max: a few seconds at the reference's own
        // rate let the broker leave that behind (its heap, the deleted
        // topic's files) before the step every ratio divides by.
        session.warm_up(&ref_w, false)?;
    }
    let reference = reference_step(session, baseline, &ref_w)?;
    rows.push(Row {
        lab: baseline.id.clone(),
        step: "reference".into(),
        what: baseline.what_changed(),
        result: reference.result.clone(),
        vs_reference: None,
        expected: None,
    });
    for lab in chosen.iter().filter(|l| l.id != baseline.id) {
        let w = lab.workload(quick, capacity)?;
        let step = Step {
            lab,
            label: "degraded",
            cfg: &lab.broker,
            workload: &w,
        };
        let (degraded, r, expected) = judged_step(session, &step, &reference, verdict::degraded)?;
        rows.push(Row {
            lab: lab.id.clone(),
            step: "degraded".into(),
            what: lab.what_changed(),
            expected,
            result: degraded.result,
            vs_reference: Some(r),
        });
        announce(rows.last());
        if matches!(fix, FixSource::Lab) && lab.fix.is_empty() {
            // A lab that shows what a fault does to healthy settings has
            // nothing to fix.
            continue;
        }
        let row = fix_step(
            session,
            lab,
            fix,
            degraded_for_tuner(rows),
            &reference,
            capacity,
        )?;
        rows.push(row);
        announce(rows.last());
    }
    Ok(())
}

/// Tells the live view (an [`crate::events::Event::Verdict`]) what the lab
/// said of a step it judged.
fn announce(row: Option<&Row>) {
    let Some((row, j)) = row.and_then(|r| Some((r, r.expected.as_ref()?))) else {
        return;
    };
    crate::events::emit(crate::events::Event::Verdict {
        lab: row.lab.clone(),
        label: row.result.label.clone(),
        step: row.step.clone(),
        verdict: j.verdict.as_str().to_string(),
        bounds: j.checks.iter().map(Check::describe).collect(),
    });
}

/// A reference whose own noise is this wide (p99 band hi/lo, records/s
/// band hi/lo) is measured once more: every ratio divides by it.
const REFERENCE_P99_SPREAD: f64 = 2.0;
const REFERENCE_RATE_SPREAD: f64 = 1.1;

/// Whether a reference window is steady enough to divide by.
fn steady(m: &Measurement) -> bool {
    match m.result.noise.filter(|_| m.result.complete) {
        Some(n) => {
            n.e2e_p99_ms.width_ratio() <= REFERENCE_P99_SPREAD
                && n.msgs_per_s.width_ratio() <= REFERENCE_RATE_SPREAD
        }
        None => true,
    }
}

/// Lab 01's step, measured twice when one window is too noisy to divide
/// by. The reference is the yardstick, not the subject: when the second
/// window is steady it alone is the reference (the first stays on disk as
/// `reference.json`); when both are noisy, the two are pooled.
fn reference_step(
    session: &mut dyn LabTarget,
    baseline: &Lab,
    w: &Workload,
) -> Result<Measurement> {
    let m = measure(session, baseline, "reference", &baseline.broker, w)?;
    let Some(n) = m.result.noise.filter(|_| !steady(&m)) else {
        return Ok(m);
    };
    session.say(&format!(
        "{} reference: too noisy to compare against (e2e p99 {:.1}–{:.1} ms, records/s {:.0}–{:.0}); measuring it once more",
        baseline.id, n.e2e_p99_ms.lo, n.e2e_p99_ms.hi, n.msgs_per_s.lo, n.msgs_per_s.hi
    ));
    let again = measure(session, baseline, "reference again", &baseline.broker, w)?;
    if steady(&again) {
        session.say(&format!(
            "{} reference: the second window is steady; it is the reference",
            baseline.id
        ));
        return Ok(again);
    }
    session.say(&format!(
        "{} reference: noisy twice; the two windows pooled are the reference",
        baseline.id
    ));
    Ok(m.pool(&again))
}

/// One step of a lab to measure.
struct Step<'a> {
    lab: &'a Lab,
    label: &'a str,
    cfg: &'a BrokerConfig,
    workload: &'a Workload,
}

/// Measures a step and judges it against the reference; when the verdict
/// is inside the noise, measures the step once more and judges both
/// measurements pooled (and says so).
fn judged_step(
    session: &mut dyn LabTarget,
    s: &Step<'_>,
    reference: &Measurement,
    judge: fn(&Lab, &StepResult, &StepResult) -> Option<Judged>,
) -> Result<(Measurement, Ratios, Option<Judged>)> {
    let m = measure(session, s.lab, s.label, s.cfg, s.workload)?;
    let r = ratios(&m.result, &reference.result);
    let j = judge(s.lab, &m.result, &reference.result);
    let unsure = j.as_ref().filter(|j| j.verdict == Verdict::Unsure);
    let (Some(j), true) = (unsure, m.result.complete) else {
        return Ok((m, r, j));
    };
    let why: Vec<String> = j.failed().map(Check::describe).collect();
    session.say(&format!(
        "{} {}: inside the noise ({}); measuring it once more",
        s.lab.id,
        s.label,
        why.join("; ")
    ));
    let again = measure(
        session,
        s.lab,
        &format!("{} again", s.label),
        s.cfg,
        s.workload,
    )?;
    let pooled = m.pool(&again);
    let r = ratios(&pooled.result, &reference.result);
    let j = judge(s.lab, &pooled.result, &reference.result);
    Ok((pooled, r, j))
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
    reference: &Measurement,
    capacity: Option<f64>,
) -> Result<Row> {
    let quick = session.quick();
    let (step_name, what, fixed, r, expected) = match fix {
        FixSource::Lab | FixSource::Given(_) => {
            let (f, name) = match fix {
                FixSource::Given(f) => (f.clone(), "your fix"),
                _ => (lab.fix.clone(), "fixed"),
            };
            let w = lab.fixed_workload(&f, quick, capacity)?;
            let cfg = lab.fixed_broker(&f);
            let step = Step {
                lab,
                label: name,
                cfg: &cfg,
                workload: &w,
            };
            let (m, r, j) = judged_step(session, &step, reference, verdict::fixed)?;
            (name, f.lines().join(" "), m.result, r, j)
        }
        FixSource::Tuner(opts) => {
            let mut o = (**opts).clone();
            o.prior_start = degraded;
            let w = lab.workload(quick, capacity)?;
            let report = tune_lab(session, lab, w, &o, Some(&reference.result))?;
            if let Some(why) = &report.goal_reached {
                session.say(&format!("{} tuner: {why}", lab.id));
                // The plan counted every trial of the budget.
                let unused = o.budget.saturating_sub(report.trials.len());
                let l = session.ledger();
                l.steps_planned = l.steps_planned.saturating_sub(unused).max(l.steps_done);
            }
            let what = if report.recommended.is_empty() {
                "tuner: no better settings found".to_string()
            } else {
                format!("tuner: {}", report.recommended.join(" "))
            };
            // The tuner has measured its best as often as it needed; its
            // verdict stands as measured.
            let r = ratios(&report.best, &reference.result);
            let j = verdict::fixed(lab, &report.best, &reference.result);
            ("tuned", what, report.best, r, j)
        }
    };
    Ok(Row {
        lab: lab.id.clone(),
        step: step_name.into(),
        what,
        expected,
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
    let all = demo_labs(labs);
    session.ledger().steps_planned = 1 + per_lab * all.len();
    run_labs(session, labs, &all, fix, rows)
}

/// The labs a demo of `labs` measures: every one after the reference but
/// the capacity labs (each a search of its own, on its own broker: `klab
/// lab run` runs them).
pub fn demo_labs(labs: &Labs) -> Vec<&Lab> {
    labs.labs
        .iter()
        .skip(1)
        .filter(|l| !l.is_capacity_lab())
        .collect()
}

// How every target applies, measures and calibrates.

/// [`LabTarget::apply`], counting restarts in the ledger.
fn bring_to<T: LabTarget + ?Sized>(t: &mut T, cfg: &BrokerConfig) -> Result<Applied> {
    let applied = t.apply(cfg)?;
    match applied {
        Applied::Restarted => t.ledger().restarts += 1,
        Applied::Reused => t.ledger().reused += 1,
        _ => {}
    }
    Ok(applied)
}

/// Applies `cfg` and measures `workload`; the result is kept and saved
/// (the histograms stay with the caller, to pool a step measured twice).
pub fn measure<T: LabTarget + ?Sized>(
    t: &mut T,
    lab: &Lab,
    label: &str,
    cfg: &BrokerConfig,
    workload: &Workload,
) -> Result<Measurement> {
    let before = t.current_config();
    let applied = bring_to(t, cfg)?;
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
    let ledger = t.ledger();
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
    t.say(&format!(
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
        t.warm_up(workload, true)?;
    }
    let m = t.measure_raw(StepSpec {
        lab,
        label,
        workload,
        cfg,
        applied,
    })?;
    t.ledger().results.push(m.result.clone());
    if !m.result.complete && cancel::interrupted() {
        return Err(Interrupted.into());
    }
    Ok(m)
}

/// Lab 01's broker at max: what this machine or cluster sustains (once
/// per session).
pub fn calibrate<T: LabTarget + ?Sized>(t: &mut T, baseline: &Lab) -> Result<f64> {
    if let Some(c) = t.ledger().capacity {
        return Ok(c);
    }
    let mut w = baseline.workload(t.quick(), Some(1.0))?;
    w.rate = None;
    let (cfg, applied) = match t.fixed_config() {
        Some(cfg) => (cfg, Applied::External),
        None => (baseline.broker.clone(), bring_to(t, &baseline.broker)?),
    };
    let kept = t.calibration_store(baseline, &w, &cfg);
    if let Some((store, key)) = &kept {
        if t.recalibrate() {
            store.forget(key);
        } else if let Some(c) = store.load(key) {
            return reuse_calibration(t, baseline, c, applied);
        }
    }
    t.say("calibrating: lab 01's broker at max throughput, to size the labs' offered load");
    let mut c = capacity_at_max(t, baseline, &w, &cfg, applied, "calibration")?;
    if applied.fresh_jvm() {
        // A fresh JVM compiles for 40-50 s under load (2 cores), and
        // how far it got moves what it sustains: let the JIT settle at
        // half of this first figure, then measure again.
        let mut half = baseline.workload(t.quick(), Some(c * 0.5))?;
        half.faults.clear();
        t.warm_up(&half, true)?;
        t.say("calibrating again on the warm broker");
        c = capacity_at_max(
            t,
            baseline,
            &w,
            &cfg,
            Applied::Unchanged,
            "calibration-warm",
        )?;
    }
    t.say(&format!(
        "capacity: {c:.0} records/s (median of the calibration's full seconds, acknowledged and read)"
    ));
    t.ledger().capacity = Some(c);
    let run_dir = t.run_dir().to_path_buf();
    let record = match &kept {
        Some((store, key)) => match store.save(key, c, &run_dir) {
            Ok(saved) => {
                t.say("kept for later runs on this machine (--recalibrate measures again)");
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
fn reuse_calibration<T: LabTarget + ?Sized>(
    t: &mut T,
    baseline: &Lab,
    mut c: Calibration,
    applied: Applied,
) -> Result<f64> {
    let cap = c.capacity_records_per_s;
    t.say(&format!(
        "capacity: {cap:.0} records/s, this machine's calibration of {} (from {}; --recalibrate measures again)",
        c.measured_at, c.measured_in
    ));
    c.source = "reused".into();
    write_json(&t.run_dir().join("calibration.json"), &c)?;
    t.ledger().capacity = Some(cap);
    if applied.fresh_jvm() {
        let mut w = baseline.workload(t.quick(), Some(cap))?;
        w.faults.clear();
        t.warm_up(&w, true)?;
    }
    Ok(cap)
}

/// One measurement of `w` at max: what the whole pipeline sustains
/// (the broker acknowledging and the consumer reading: on a small
/// machine they share the cores), each as the median of the window's
/// full seconds, so one slow (or fast) second does not move the labs'
/// offered load.
fn capacity_at_max<T: LabTarget + ?Sized>(
    t: &mut T,
    baseline: &Lab,
    w: &Workload,
    cfg: &BrokerConfig,
    applied: Applied,
    label: &str,
) -> Result<f64> {
    let m = t.measure_raw(StepSpec {
        lab: baseline,
        label,
        workload: w,
        cfg,
        applied,
    })?;
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
