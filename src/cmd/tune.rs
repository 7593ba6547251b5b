//! `klab tune`: search settings from a lab's degraded broker.

use super::Outcome;
use crate::cli::{StrategyArg, TuneArgs};
use crate::lab::run::{LabMeasurer, tuner_start};
use crate::lab::session::{Session, SessionOptions};
use crate::lab::summary::{Row, write_summary};
use crate::lab::target::LabTarget;
use crate::lab::{Lab, load_with};
use crate::model::Workload;
use crate::stats::Spread;
use crate::stats::report::{write_atomic, write_json};
use crate::stats::table::fmt_rate;
use crate::tuner::space::{Candidate, Space};
use crate::tuner::{Objective, Strategy, TuneOptions, trace, tune};
use crate::usage;
use anyhow::Result;
use std::time::Instant;

pub fn execute(a: &TuneArgs) -> Result<Outcome> {
    let (labs, id) = load_with(a.session.dir.labs.as_deref(), &a.lab)?;
    let lab = labs.get(&id)?.clone();
    crate::lab::run::refuse_capacity_labs([&lab])?;
    let dynamic_only = a.bootstrap.is_some();
    let space = if a.knobs.is_empty() {
        Space::default_space(dynamic_only)
    } else {
        Space::only(&a.knobs, dynamic_only).map_err(|e| usage!("--knobs: {e}"))?
    };
    if space.knobs.is_empty() {
        return Err(usage!("--knobs: nothing left to tune"));
    }
    let _ui = super::start_ui(&a.session.ui)?;
    let mut s = match &a.bootstrap {
        Some(b) => {
            super::check_bootstrap(b)?;
            if let Some(j) = &a.session.json {
                crate::stats::report::check_writable(j)
                    .map_err(|e| usage!("--json {}: {e}", j.display()))?;
            }
            let run_dir = crate::stats::report::new_run_dir(&a.session.results)?;
            let mut s = Session::new(SessionOptions {
                kafka: None,
                run_dir,
                quick: a.session.quick,
                progress: crate::stats::progress::Progress::detect(a.session.quiet),
                brokers: 1,
                recalibrate: a.session.recalibrate,
            })?;
            s.connect(b)?;
            s
        }
        None => super::lab::session(&a.session, lab.brokers)?,
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
        objective: Objective {
            slo_p99_ms: a.slo_p99.as_secs_f64() * 1000.0,
        },
        ..Default::default()
    };
    crate::outln!("klab tune {} — {}", lab.id, lab.title);
    crate::outln!("objective: {}", opts.objective.describe());
    crate::outln!(
        "strategy: {}, budget {} trials (+{} start measurements), knobs: {}",
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
        opts.start_repeats,
        space
            .knobs
            .iter()
            .map(|k| k.name)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let started = Instant::now();
    s.ledger.steps_planned = opts.start_repeats + opts.budget;
    if let Ok(w) = lab.workload(a.session.quick, Some(1.0)) {
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
                a.session.json.as_deref(),
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
    if let Some(j) = &a.session.json {
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
        "wall time {:.0}s, {} trials, {} broker restart(s); results: {} (tune.json, tune.svg)",
        started.elapsed().as_secs_f64(),
        report.trials.len(),
        s.ledger.restarts,
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

/// One tuning run in the evaluation.
#[derive(Debug, Clone, serde::Serialize)]
struct EvalRun {
    surface: &'static str,
    strategy: String,
    seed: u64,
    start_msgs_per_s: f64,
    best_msgs_per_s: f64,
    best_p99_ms: f64,
    best_score: f64,
    trials: usize,
    /// Simulated surface only: did the run end at the optimum?
    reached_optimum: Option<bool>,
}

fn strategies(seeds: usize) -> Vec<(String, Strategy, u64)> {
    let mut out = Vec::new();
    for s in 1..=seeds as u64 {
        out.push(("guided".to_string(), Strategy::Guided, s));
        out.push(("random".to_string(), Strategy::Random { seed: s }, s));
    }
    out
}

/// `klab tune-bench`: guided vs random search with the same budget.
pub fn bench(a: &crate::cli::TuneBenchArgs) -> Result<Outcome> {
    use crate::tuner::sim::Simulated;
    let objective = Objective {
        slo_p99_ms: a.slo_p99.as_secs_f64() * 1000.0,
    };
    let started = Instant::now();
    let mut runs: Vec<EvalRun> = Vec::new();

    // 1. The simulated surface: the optimum is off the healthy defaults on
    // two knobs, the start is the worst value of every knob.
    let space = Space::default_space(false);
    let mut optimum: Vec<usize> = space.knobs.iter().map(|k| k.good).collect();
    for (name, idx) in [("num.io.threads", 4), ("num.network.threads", 3)] {
        if let Some(i) = space.knobs.iter().position(|k| k.name == name) {
            optimum[i] = idx;
        }
    }
    let start = space.candidate(&Candidate::default(), &vec![0; space.knobs.len()]);
    for (name, strategy, seed) in strategies(a.seeds) {
        // The noise of the simulated measurements differs per run.
        let mut sim = Simulated::new(space.clone(), optimum.clone(), seed * 7919);
        let opts = TuneOptions {
            budget: a.budget,
            strategy,
            objective,
            ..Default::default()
        };
        let r = tune(&mut sim, &space, &start, &opts)?;
        let best = space.locate(&r.best_config);
        let (truth, p99) = sim.truth(&best);
        runs.push(EvalRun {
            surface: "simulated",
            strategy: name,
            seed,
            start_msgs_per_s: sim.truth(&space.locate(&start)).0,
            best_msgs_per_s: truth,
            best_p99_ms: p99,
            best_score: r.best_score,
            trials: r.trials.len(),
            reached_optimum: Some(best == optimum),
        });
    }

    // 2. The real broker, from the lab's degraded settings.
    let mut run_dir = None;
    if !a.simulated_only {
        let (labs, id) = load_with(a.session.dir.labs.as_deref(), &a.lab)?;
        let lab = labs.get(&id)?.clone();
        crate::lab::run::refuse_capacity_labs([&lab])?;
        let _ui = super::start_ui(&a.session.ui)?;
        let mut s = super::lab::session(&a.session, lab.brokers)?;
        run_dir = Some(s.opts.run_dir.clone());
        s.ledger.steps_planned = a.seeds * 2 * (a.budget + 2);
        let outcome = (|| -> Result<()> {
            let capacity = if lab.needs_capacity() {
                Some(s.calibrate(labs.baseline())?)
            } else {
                None
            };
            let workload = lab.workload(a.session.quick, capacity)?;
            let start = tuner_start(&lab);
            for (name, strategy, seed) in strategies(a.seeds) {
                let opts = TuneOptions {
                    budget: a.budget,
                    strategy,
                    objective,
                    ..Default::default()
                };
                s.step_file_prefix = format!("eval-{name}-{seed}.");
                let mut m = LabMeasurer {
                    session: &mut s,
                    lab: &lab,
                    workload: workload.clone(),
                };
                let r = tune(&mut m, &space, &start, &opts)?;
                write_json(
                    &m.session
                        .run_dir()
                        .join(format!("eval-{name}-{seed}.tune.json")),
                    &r,
                )?;
                runs.push(EvalRun {
                    surface: "broker",
                    strategy: name,
                    seed,
                    start_msgs_per_s: r.start.throughput.msgs_per_s,
                    best_msgs_per_s: r.best.throughput.msgs_per_s,
                    best_p99_ms: r.best.e2e_latency_ms.p99,
                    best_score: r.best_score,
                    trials: r.trials.len(),
                    reached_optimum: None,
                });
            }
            Ok(())
        })();
        s.stop()?;
        if let Err(e) = outcome {
            crate::errln!("klab: the runs so far are in {}", s.opts.run_dir.display());
            return super::interrupted_or(e);
        }
    }

    // Summary: median best throughput per surface and strategy.
    let mut t = crate::stats::table::new_table(&[
        "surface",
        "strategy",
        "runs",
        "median best records/s",
        "min",
        "max",
        "median start records/s",
        "median best e2e p99 ms",
        "median best score",
        "reached optimum",
    ]);
    let mut summary = Vec::new();
    for surface in ["simulated", "broker"] {
        for strategy in ["guided", "random"] {
            let sel: Vec<&EvalRun> = runs
                .iter()
                .filter(|r| r.surface == surface && r.strategy == strategy)
                .collect();
            if sel.is_empty() {
                continue;
            }
            let of = |f: fn(&EvalRun) -> f64| {
                Spread::of(&sel.iter().map(|r| f(r)).collect::<Vec<_>>()).unwrap_or_default()
            };
            let best = of(|r| r.best_msgs_per_s);
            let p99 = of(|r| r.best_p99_ms).median;
            let score = of(|r| r.best_score).median;
            let reached = sel
                .iter()
                .filter(|r| r.reached_optimum == Some(true))
                .count();
            t.add_row(vec![
                surface.to_string(),
                strategy.to_string(),
                sel.len().to_string(),
                fmt_rate(best.median),
                fmt_rate(best.min),
                fmt_rate(best.max),
                fmt_rate(of(|r| r.start_msgs_per_s).median),
                format!("{p99:.1}"),
                format!("{score:.0}"),
                if surface == "simulated" {
                    format!("{reached}/{}", sel.len())
                } else {
                    "-".into()
                },
            ]);
            summary.push(serde_json::json!({
                "surface": surface, "strategy": strategy, "runs": sel.len(),
                "median_best_msgs_per_s": best.median,
                "min_best_msgs_per_s": best.min,
                "max_best_msgs_per_s": best.max,
                "median_best_p99_ms": p99,
                "median_best_score": score,
                "reached_optimum": if surface == "simulated" { Some(reached) } else { None },
            }));
        }
    }
    crate::stats::table::align_numbers(&mut t);
    let report = serde_json::json!({
        "budget": a.budget, "seeds": a.seeds, "objective": objective.describe(),
        "summary": summary, "runs": runs,
    });
    if let Some(d) = &run_dir {
        write_json(&d.join("tune-bench.json"), &report)?;
        write_atomic(
            &d.join("tune-bench.txt"),
            crate::stats::table::file_text(&mut t).as_bytes(),
        )?;
    }
    if let Some(j) = &a.session.json {
        write_json(j, &report)?;
    }
    crate::outln!("{t}");
    crate::outln!(
        "budget {} trials per run (+2 start measurements), {} runs per strategy; wall time {:.0}s{}",
        a.budget,
        a.seeds,
        started.elapsed().as_secs_f64(),
        run_dir
            .map(|d| format!("; results: {}", d.display()))
            .unwrap_or_default()
    );
    Ok(Outcome::Done)
}
