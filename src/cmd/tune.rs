//! `klab tune`: search settings from a lab's degraded broker.

use crate::cli::{StrategyArg, TuneArgs};
use crate::lab::load_with;
use crate::lab::run::{LabMeasurer, Row, tuner_start};
use crate::stats::report::{write_atomic, write_json};
use crate::tuner::space::{Candidate, Space};
use crate::tuner::{Objective, Strategy, TuneOptions, trace, tune};
use crate::usage;
use anyhow::Result;
use std::time::Instant;

pub fn execute(a: &TuneArgs) -> Result<i32> {
    let (labs, id) = load_with(a.session.dir.labs.as_deref(), &a.lab)?;
    let lab = labs.get(&id)?.clone();
    let dynamic_only = a.bootstrap.is_some();
    let space = if a.knobs.is_empty() {
        Space::default_space(dynamic_only)
    } else {
        Space::only(&a.knobs, dynamic_only).map_err(|e| usage!("--knobs: {e}"))?
    };
    if space.knobs.is_empty() {
        return Err(usage!("--knobs: nothing left to tune"));
    }
    let mut s = match &a.bootstrap {
        Some(b) => {
            super::check_bootstrap(b)?;
            if let Some(j) = &a.session.json {
                crate::stats::report::check_writable(j)
                    .map_err(|e| usage!("--json {}: {e}", j.display()))?;
            }
            let run_dir = crate::stats::report::new_run_dir(&a.session.results)?;
            let mut s = crate::lab::run::Session::new(crate::lab::run::SessionOptions {
                kafka: None,
                run_dir,
                quick: a.session.quick,
                progress: !a.session.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()),
            })?;
            s.connect(b)?;
            s
        }
        None => super::lab::session(&a.session)?,
    };
    let opts = TuneOptions {
        budget: a.budget,
        strategy: match a.strategy {
            StrategyArg::Guided => Strategy::Guided,
            StrategyArg::Random => Strategy::Random { seed: a.seed },
        },
        objective: Objective {
            slo_p99_ms: a.slo_p99.as_secs_f64() * 1000.0,
        },
        ..Default::default()
    };
    println!("klab tune {} — {}", lab.id, lab.title);
    println!("objective: {}", opts.objective.describe());
    println!(
        "strategy: {:?}, budget {} trials (+{} start measurements), knobs: {}",
        opts.strategy,
        opts.budget,
        opts.start_repeats,
        space
            .knobs
            .iter()
            .map(|k| k.name)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let started = Instant::now();
    s.steps_planned = opts.start_repeats + opts.budget;
    let outcome = (|| -> Result<crate::tuner::TuneReport> {
        let capacity = if lab.needs_capacity() {
            Some(s.calibrate(labs.baseline())?)
        } else {
            None
        };
        let workload = lab.workload(a.session.quick, capacity)?;
        let start = match &a.bootstrap {
            Some(_) => Candidate {
                broker: s.broker_config().unwrap_or_default(),
                producer: lab.workload.producer.clone(),
            },
            None => tuner_start(&lab),
        };
        let mut m = LabMeasurer {
            session: &mut s,
            lab: &lab,
            workload,
        };
        tune(&mut m, &space, &start, &opts)
    })();
    let stop = s.stop();
    let report = match outcome {
        Ok(r) => r,
        Err(e) => {
            // Keep what was measured: every step is already saved; add the list.
            let rows: Vec<Row> = Vec::new();
            let _ = crate::lab::run::write_summary(
                &s.opts.run_dir,
                "tune",
                &rows,
                &s.results,
                a.session.json.as_deref(),
            );
            if crate::error::is_interrupted(&e) || crate::cancel::interrupted() {
                eprintln!(
                    "klab: interrupted; the trials measured so far are in {}",
                    s.opts.run_dir.display()
                );
                return Ok(super::EXIT_INTERRUPTED);
            }
            return Err(e);
        }
    };
    stop?;
    let dir = s.opts.run_dir.clone();
    write_json(&dir.join("tune.json"), &report)?;
    if let Some(j) = &a.session.json {
        write_json(j, &report)?;
    }
    let table = trace::table(&report);
    let rec = trace::recommendation(&report);
    write_atomic(&dir.join("tune.txt"), format!("{table}\n{rec}").as_bytes())?;
    write_atomic(
        &dir.join("tune.svg"),
        trace::plot(&report, &format!("klab tune {}", lab.id)).as_bytes(),
    )?;
    println!("{table}");
    println!("{rec}");
    println!(
        "wall time {:.0}s, {} trials, {} broker restart(s); results: {} (tune.json, tune.svg)",
        started.elapsed().as_secs_f64(),
        report.trials.len(),
        s.restarts,
        dir.display()
    );
    Ok(super::EXIT_OK)
}
