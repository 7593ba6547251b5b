//! Running labs on any [`LabTarget`]: the reference (lab 01) once, then
//! each lab degraded and fixed (by its own fix, a student's, or the tuner),
//! with a summary row per step.

use crate::cancel;
use crate::error::Interrupted;
use crate::lab::file::Fix;
use crate::lab::summary::Row;
use crate::lab::target::LabTarget;
use crate::lab::verdict::{self, Check, Judged, Ratios, Verdict, ratios};
use crate::lab::{Lab, Labs};
use crate::model::{BrokerConfig, StepResult, Workload};
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
        self.session
            .measure(self.lab, label, &c.broker, &w)
            .map(|m| m.result)
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
pub fn tune_lab(
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
        Some(session.calibrate(baseline)?)
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
    let m = session.measure(baseline, "reference", &baseline.broker, w)?;
    let Some(n) = m.result.noise.filter(|_| !steady(&m)) else {
        return Ok(m);
    };
    session.say(&format!(
        "{} reference: too noisy to compare against (e2e p99 {:.1}–{:.1} ms, records/s {:.0}–{:.0}); measuring it once more",
        baseline.id, n.e2e_p99_ms.lo, n.e2e_p99_ms.hi, n.msgs_per_s.lo, n.msgs_per_s.hi
    ));
    let again = session.measure(baseline, "reference again", &baseline.broker, w)?;
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
    let m = session.measure(s.lab, s.label, s.cfg, s.workload)?;
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
    let again = session.measure(s.lab, &format!("{} again", s.label), s.cfg, s.workload)?;
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
    session.ledger().steps_planned = 1 + per_lab * (labs.labs.len() - 1);
    let all: Vec<&Lab> = labs.labs.iter().skip(1).collect();
    run_labs(session, labs, &all, fix, rows)
}
