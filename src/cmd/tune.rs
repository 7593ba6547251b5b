//! `klab tune`: search settings from a lab's degraded broker.

use super::Outcome;
use crate::cli::{StrategyArg, TuneArgs};
use crate::lab::run::{LabMeasurer, tuner_start};
use crate::lab::session::{Session, SessionOptions};
use crate::lab::summary::{Row, write_summary};
use crate::lab::{Lab, load_with};
use crate::model::Workload;
use crate::stats::report::{write_atomic, write_json};
use crate::tuner::space::{Candidate, Space};
use crate::tuner::{Strategy, TuneOptions, trace, tune};
use crate::usage;
use anyhow::Result;
use std::time::Instant;

pub fn execute(a: &TuneArgs) -> Result<Outcome> {
    let (labs, id) = load_with(a.session.dir.labs.as_deref(), &a.lab)?;
    let lab = labs.get(&id)?.clone();
    if a.bootstrap.is_none() {
        lab.check_brokers(a.session.brokers)?;
    }
    a.objective.check().map_err(|e| usage!("{e}"))?;
    let objective = a.objective.objective(&lab.capacity);
    let by_capacity = objective.capacity.is_some();
    if !by_capacity {
        crate::lab::run::refuse_capacity_labs([&lab])
            .map_err(|e| usage!("{e}; or tune it with --objective capacity"))?;
    }
    let dynamic_only = a.bootstrap.is_some();
    let all = if by_capacity {
        Space::capacity_space(dynamic_only)
    } else {
        Space::default_space(dynamic_only)
    };
    let space = if a.knobs.is_empty() {
        all
    } else {
        Space::only_of(all, &a.knobs).map_err(|e| usage!("--knobs: {e}"))?
    };
    if space.knobs.is_empty() {
        return Err(usage!("--knobs: nothing left to tune"));
    }
    let _ui = super::start_ui(&a.session.ui)?;
    let mut s = match &a.bootstrap {
        Some(b) => {
            super::check_bootstrap(b)?;
            if let Some(j) = &a.session.out.json {
                crate::stats::report::check_writable(j)
                    .map_err(|e| usage!("--json {}: {e}", j.display()))?;
            }
            let run_dir = crate::stats::report::new_run_dir(&a.session.out.results)?;
            let mut s = Session::new(SessionOptions {
                kafka: None,
                run_dir,
                quick: a.session.quick,
                progress: crate::stats::progress::Progress::detect(a.session.out.quiet),
                brokers: 1,
                network: false,
                recalibrate: a.session.recalibrate,
            })?;
            s.connect(b)?;
            s
        }
        None => crate::app::session::session(&a.session, lab.brokers, lab.needs_network())?,
    };
    let opts = TuneOptions {
        budget: a.budget,
        strategy: match &a.strategy {
            StrategyArg::Guided => Strategy::Guided,
            StrategyArg::Random => Strategy::Random { seed: a.seed },
            StrategyArg::Exec(command) => Strategy::Exec {
                command: command.clone(),
                answer_timeout_ms: a.answer_timeout.as_millis() as u64,
            },
        },
        objective,
        ..Default::default()
    };
    crate::outln!("klab tune {} — {}", lab.id, lab.title);
    crate::outln!("objective: {}", opts.objective.describe());
    crate::outln!(
        "strategy: {}, budget {} trials (+{}), knobs: {}",
        match &opts.strategy {
            Strategy::Guided => "guided".to_string(),
            Strategy::Random { seed } => format!("random (seed {seed})"),
            Strategy::Exec {
                command,
                answer_timeout_ms,
            } => format!(
                "exec: {command} (each answer within {})",
                crate::units::format_duration(std::time::Duration::from_millis(*answer_timeout_ms))
            ),
        },
        opts.budget,
        if by_capacity {
            "a capacity search of the start".to_string()
        } else {
            format!("{} start measurements", opts.start_repeats)
        },
        space
            .knobs
            .iter()
            .map(|k| k.name)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let started = Instant::now();
    s.ledger.steps_planned = if by_capacity {
        0
    } else {
        opts.start_repeats + opts.budget
    };
    if by_capacity {
        crate::outln!(
            "plan: a capacity search of the start (about {} probes), then {} trials of one probe (not better) to about five (better)",
            crate::lab::capacity::TYPICAL_PROBES,
            opts.budget
        );
    } else if let Ok(w) = lab.workload(a.session.quick, Some(1.0)) {
        // Restart-only knobs: a trial that moves one restarts the broker,
        // and the next trial usually restarts it back.
        let restart_knobs = space.knobs.iter().filter(|k| k.restart).count();
        let restarts = 1 + (2 * restart_knobs).min(opts.budget);
        let calibration = usize::from(lab.needs_capacity() && a.bootstrap.is_none());
        let d = crate::lab::target::estimate(&w, s.ledger.steps_planned + calibration, restarts);
        crate::outln!(
            "plan: {} measurements{}: {} (restarts included as estimated)",
            s.ledger.steps_planned,
            if calibration > 0 {
                " and a calibration"
            } else {
                ""
            },
            crate::lab::target::describe_estimate(d)
        );
    }
    let outcome = (|| -> Result<crate::tuner::TuneReport> {
        // The capacity objective sets the rate per probe: no calibration.
        let capacity = if lab.needs_capacity() && !by_capacity {
            Some(crate::lab::run::calibrate(&mut s, labs.baseline())?)
        } else {
            None
        };
        let workload = lab.workload(a.session.quick, capacity.or(Some(1.0)))?;
        let start = match &a.bootstrap {
            Some(_) => Candidate {
                broker: s.broker_config().unwrap_or_default(),
                ..tuner_start(&lab)
            },
            None => tuner_start(&lab),
        };
        // The agent is told the workload it is measured with (the rate
        // only exists after the calibration).
        let opts = TuneOptions {
            context: agent_context(&lab, &workload, a.session.quick),
            ..opts.clone()
        };
        let mut m = LabMeasurer {
            session: &mut s,
            lab: &lab,
            workload,
            reference: None,
        };
        tune(&mut m, &space, &start, &opts)
    })();
    let stop = s.stop();
    let report = match outcome {
        Ok(r) => r,
        Err(e) => {
            // Keep what was measured: every step is already saved; add the list.
            let rows: Vec<Row> = Vec::new();
            let _ = write_summary(
                &s.opts.run_dir,
                "tune",
                &rows,
                &s.ledger.results,
                a.session.out.json.as_deref(),
            );
            crate::errln!(
                "klab: the trials measured so far are in {}",
                s.opts.run_dir.display()
            );
            return super::interrupted_or(e);
        }
    };
    stop?;
    let dir = s.opts.run_dir.clone();
    write_json(&dir.join("tune.json"), &report)?;
    if let Some(j) = &a.session.out.json {
        write_json(j, &report)?;
    }
    let mut table = trace::table(&report);
    let shown = table.to_string();
    let rec = trace::recommendation(&report);
    let text = crate::stats::table::file_text(&mut table);
    write_atomic(&dir.join("tune.txt"), format!("{text}\n{rec}").as_bytes())?;
    write_atomic(
        &dir.join("tune.svg"),
        trace::plot(&report, &format!("klab tune {}", lab.id)).as_bytes(),
    )?;
    crate::outln!("{shown}");
    crate::outln!("{rec}");
    let agent_failed = match &report.agent {
        Some(end) if end.failed => {
            crate::errln!(
                "klab: the search ended early: {}; the {} trial(s) measured so far are kept",
                end.ended,
                report.trials.len()
            );
            true
        }
        Some(end) => {
            crate::outln!("the agent's search ended: {}", end.ended);
            false
        }
        None => false,
    };
    crate::outln!(
        "wall time {:.0}s, {} trials, {}; results: {} (tune.json, tune.svg)",
        started.elapsed().as_secs_f64(),
        report.trials.len(),
        s.ledger.restarts_line(),
        dir.display()
    );
    Ok(if agent_failed {
        Outcome::Incomplete
    } else {
        Outcome::Done
    })
}

/// What an `exec` agent is told about the lab: which one, its workload and
/// the durability floor no knob may lower.
fn agent_context(lab: &Lab, w: &Workload, quick: bool) -> serde_json::Value {
    serde_json::json!({
        "lab": lab.id,
        "title": lab.title,
        "summary": lab.summary,
        "quick": quick,
        "workload": w.describe(),
        "floors": {
            "acks": w.acks.to_string(),
            "replication_factor": w.replication_factor,
            "min_insync_replicas": w.min_insync_replicas,
        },
    })
}
