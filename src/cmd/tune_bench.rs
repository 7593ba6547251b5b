//! `klab tune-bench`: the tuner's strategies side by side at the same
//! budget, on a simulated surface (seconds) and on real labs.
//!
//! With the score objective: guided against random search per seed. With
//! the capacity objective, per lab: the start's capacity is searched once
//! and shared; then, per seed, Kafka's and librdkafka's defaults (a full
//! capacity search of the healthy values, no tuning), guided and random.
//! The defaults' searches, repeated, are the measured noise the goals are
//! judged against.

use super::Outcome;
use crate::lab::run::{LabMeasurer, tuner_start};
use crate::lab::{Lab, load_with};
use crate::stats::Spread;
use crate::stats::report::{write_atomic, write_json};
use crate::stats::table::fmt_rate;
use crate::tuner::space::{Candidate, Space};
use crate::tuner::{Measurer, Objective, Strategy, TuneOptions, TuneReport, tune};
use crate::usage;
use anyhow::Result;
use serde::Serialize;
use std::time::Instant;

/// One run in the evaluation.
#[derive(Debug, Clone, Serialize)]
struct EvalRun {
    surface: &'static str,
    /// The lab (empty on the simulated surface).
    lab: String,
    strategy: String,
    seed: u64,
    /// The start's figure and the best's: records/s at the lab's load for
    /// the score objective, the capacity at the SLO for the capacity one.
    start: f64,
    best: f64,
    best_p99_ms: f64,
    best_score: f64,
    trials: usize,
    /// Steps measured (capacity: probes), the start's shared search not
    /// counted.
    measurements: usize,
    wall_s: f64,
    /// The best settings that differ from the start.
    recommended: Vec<String>,
    /// Simulated surface only: did the run end at the optimum?
    reached_optimum: Option<bool>,
    /// An agent's run: how its search ended (`failed` when it crashed,
    /// hung or answered garbage).
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<crate::tuner::AgentEnd>,
    #[serde(skip)]
    best_config: Option<Candidate>,
}

fn strategies(
    seeds: std::ops::RangeInclusive<u64>,
    with_defaults: bool,
    agent: Option<(&str, std::time::Duration)>,
) -> Vec<(&'static str, Option<Strategy>, u64)> {
    let mut out = Vec::new();
    for s in seeds {
        if with_defaults {
            out.push(("defaults", None, s));
        }
        out.push(("guided", Some(Strategy::Guided), s));
        out.push(("random", Some(Strategy::Random { seed: s }), s));
        if let Some((command, timeout)) = agent {
            let exec = Strategy::Exec {
                command: command.to_string(),
                answer_timeout_ms: timeout.as_millis() as u64,
            };
            out.push(("agent", Some(exec), s));
        }
    }
    out
}

fn run_of(surface: &'static str, lab: &str, strategy: &str, seed: u64) -> EvalRun {
    EvalRun {
        surface,
        lab: lab.to_string(),
        strategy: strategy.to_string(),
        seed,
        start: 0.0,
        best: 0.0,
        best_p99_ms: f64::NAN,
        best_score: 0.0,
        trials: 0,
        measurements: 0,
        wall_s: 0.0,
        recommended: Vec::new(),
        reached_optimum: None,
        agent: None,
        best_config: None,
    }
}

/// A tuning run's figures, as the evaluation keeps them.
fn from_report(mut run: EvalRun, r: &TuneReport, by_capacity: bool, started: Instant) -> EvalRun {
    run.start = if by_capacity {
        r.start_score
    } else {
        r.start.throughput.msgs_per_s
    };
    run.best = if by_capacity {
        r.best_score
    } else {
        r.best.throughput.msgs_per_s
    };
    run.best_p99_ms = r.best.e2e_latency_ms.p99;
    run.best_score = r.best_score;
    run.trials = r.trials.len();
    run.measurements = r.measurements;
    run.wall_s = started.elapsed().as_secs_f64();
    run.recommended = r.recommended.clone();
    run.best_config = Some(r.best_config.clone());
    run.agent = r.agent.clone();
    if let Some(end) = r.agent.as_ref().filter(|e| e.failed) {
        crate::errln!(
            "klab: the agent's run ({} {}seed {}) ended early: {}; it counts with the {} trial(s) it made",
            run.surface,
            if run.lab.is_empty() {
                String::new()
            } else {
                format!("lab {}, ", run.lab)
            },
            run.seed,
            end.ended,
            run.trials
        );
    }
    run
}

/// A lab id as a file name part.
fn tag(lab: &str) -> String {
    if lab.is_empty() {
        "sim".into()
    } else {
        lab.replace('/', "-")
    }
}

/// Where an evaluation runs (the surface, the lab, the run folder), and
/// the agent it evaluates beside klab's strategies.
struct Site<'a> {
    surface: &'static str,
    lab: &'a str,
    out: Option<&'a std::path::Path>,
    agent: Option<(&'a str, std::time::Duration)>,
}

impl Site<'_> {
    /// Keeps a run's own report beside its step files (nothing without a
    /// run folder).
    fn keep<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        match self.out {
            Some(d) => write_json(
                &d.join(format!("eval-{}-{name}.json", tag(self.lab))),
                value,
            ),
            None => Ok(()),
        }
    }
}

/// Runs every strategy on one measurer from `start`.
fn evaluate(
    m: &mut dyn Measurer,
    site: Site<'_>,
    space: &Space,
    start: &Candidate,
    base: &TuneOptions,
    seeds: std::ops::RangeInclusive<u64>,
    runs: &mut Vec<EvalRun>,
) -> Result<()> {
    let (surface, lab, agent) = (site.surface, site.lab, site.agent);
    let by_capacity = base.objective.capacity;
    let mut opts = base.clone();
    if let Some(settings) = by_capacity {
        // One search of the start, shared by every run.
        let started = Instant::now();
        m.set_prefix(&format!("eval-{}-start.", tag(lab)));
        let m0 = m.capacity("start", start, &settings, None)?;
        let mut run = run_of(surface, lab, "start", 0);
        run.start = m0.capacity.capacity_records_per_s.unwrap_or(0.0);
        run.best = run.start;
        run.measurements = m0.capacity.probes.len();
        run.wall_s = started.elapsed().as_secs_f64();
        run.best_config = Some(start.clone());
        runs.push(run);
        site.keep("start.capacity", &m0.capacity)?;
        opts.prior_capacity = Some(m0);
    }
    let healthy = space.candidate(start, &space.healthy(&space.locate(start)));
    for (name, strategy, seed) in strategies(seeds, by_capacity.is_some(), agent) {
        m.set_prefix(&format!("eval-{}-{name}-{seed}.", tag(lab)));
        let started = Instant::now();
        let run = run_of(surface, lab, name, seed);
        match (strategy, by_capacity) {
            (Some(strategy), _) => {
                let o = TuneOptions {
                    strategy,
                    ..opts.clone()
                };
                let r = tune(m, space, start, &o)?;
                site.keep(&format!("{name}-{seed}.tune"), &r)?;
                runs.push(from_report(run, &r, by_capacity.is_some(), started));
            }
            (None, Some(settings)) => {
                let d = m.capacity(&format!("defaults {seed}"), &healthy, &settings, None)?;
                site.keep(&format!("{name}-{seed}.capacity"), &d.capacity)?;
                let mut run = run;
                run.start = opts
                    .prior_capacity
                    .as_ref()
                    .and_then(|p| p.capacity.capacity_records_per_s)
                    .unwrap_or(0.0);
                run.best = d.capacity.capacity_records_per_s.unwrap_or(0.0);
                run.best_score = run.best;
                run.best_p99_ms = d.result.map(|r| r.e2e_latency_ms.p99).unwrap_or(f64::NAN);
                run.measurements = d.capacity.probes.len();
                run.wall_s = started.elapsed().as_secs_f64();
                run.recommended = crate::tuner::diff_lines(start, &healthy);
                run.best_config = Some(healthy.clone());
                runs.push(run);
            }
            (None, None) => {}
        }
    }
    Ok(())
}

pub fn bench(a: &crate::cli::TuneBenchArgs) -> Result<Outcome> {
    use crate::tuner::sim::Simulated;
    a.objective.check().map_err(|e| usage!("{e}"))?;
    let by_capacity = a.objective.objective == crate::cli::ObjectiveKind::Capacity;
    let started = Instant::now();
    let space_for = |capacity: bool| {
        if capacity {
            Space::capacity_space(false)
        } else {
            Space::default_space(false)
        }
    };
    let budget_opts = |objective: Objective| TuneOptions {
        budget: a.budget,
        objective,
        ..Default::default()
    };
    let mut runs: Vec<EvalRun> = Vec::new();

    // 1. The simulated surface: the optimum is off the healthy defaults on
    // two knobs, the start is the worst value of every knob. Each seed has
    // its own noise.
    let sim_objective = a.objective.objective(&Default::default());
    let space = space_for(by_capacity);
    let mut optimum: Vec<usize> = space.healthy(&vec![0; space.knobs.len()]);
    for (name, idx) in [("num.io.threads", 4), ("num.network.threads", 3)] {
        if let Some(i) = space.position(name) {
            optimum[i] = idx;
        }
    }
    let start = space.candidate(&Candidate::default(), &vec![0; space.knobs.len()]);
    for seed in 1..=a.seeds as u64 {
        let mut sim = Simulated::new(space.clone(), optimum.clone(), seed * 7919);
        let mut some = Vec::new();
        evaluate(
            &mut sim,
            Site {
                surface: "simulated",
                lab: "",
                out: None,
                agent: a.agent.as_deref().map(|c| (c, a.answer_timeout)),
            },
            &space,
            &start,
            &budget_opts(sim_objective),
            seed..=seed,
            &mut some,
        )?;
        for mut r in some {
            // The surface's truth, not the noisy figures.
            r.seed = seed;
            r.start = sim.truth(&space.locate(&start)).0;
            if let Some(c) = &r.best_config {
                let best = space.locate(c);
                let (t, p99) = sim.truth(&best);
                r.best = t;
                r.best_p99_ms = p99;
                r.reached_optimum = Some(best == optimum);
            }
            runs.push(r);
        }
    }

    // 2. Real labs, from each lab's degraded settings.
    let mut run_dir = None;
    if !a.simulated_only {
        let mut chosen: Vec<Lab> = Vec::new();
        for key in &a.lab_keys {
            let (labs, id) = load_with(a.session.dir.labs.as_deref(), key)?;
            let lab = labs.get(&id)?.clone();
            lab.check_brokers(a.session.brokers)?;
            if !by_capacity {
                crate::lab::run::refuse_capacity_labs([&lab])
                    .map_err(|e| usage!("{e}; or evaluate it with --objective capacity"))?;
            }
            chosen.push(lab);
        }
        let brokers = chosen.first().map(|l| l.brokers).unwrap_or(1);
        if let Some(l) = chosen.iter().find(|l| l.brokers != brokers) {
            return Err(usage!(
                "--lab: {} runs {} broker(s), {} runs {brokers}: evaluate labs with different clusters in separate runs",
                l.id,
                l.brokers,
                chosen[0].id
            ));
        }
        let (labs, _) = load_with(a.session.dir.labs.as_deref(), &a.lab_keys[0])?;
        let _ui = super::start_ui(&a.session.ui)?;
        let mut s = crate::app::session::session(
            &a.session,
            brokers,
            chosen.iter().any(|l| l.needs_network()),
        )?;
        run_dir = Some(s.opts.run_dir.clone());
        let outcome = (|| -> Result<()> {
            for lab in &chosen {
                let objective = a.objective.objective(&lab.capacity);
                let space = space_for(by_capacity);
                let calibrated = if lab.needs_capacity() && !by_capacity {
                    Some(crate::lab::run::calibrate(&mut s, labs.baseline())?)
                } else {
                    None
                };
                let workload = lab.workload(a.session.quick, calibrated.or(Some(1.0)))?;
                let start = tuner_start(lab);
                let dir = s.opts.run_dir.clone();
                crate::outln!("tune-bench: lab {} ({})", lab.id, objective.describe());
                let mut m = LabMeasurer {
                    session: &mut s,
                    lab,
                    workload,
                    reference: None,
                };
                evaluate(
                    &mut m,
                    Site {
                        surface: "broker",
                        lab: &lab.id,
                        out: Some(&dir),
                        agent: a.agent.as_deref().map(|c| (c, a.answer_timeout)),
                    },
                    &space,
                    &start,
                    &budget_opts(objective),
                    1..=a.seeds as u64,
                    &mut runs,
                )?;
            }
            Ok(())
        })();
        let stopped = s.stop();
        if let Err(e) = outcome {
            // What finished is summed up, then the error or Ctrl-C stands.
            if runs.iter().any(|r| r.surface == "broker") {
                report(a, by_capacity, &runs, run_dir, started)?;
            }
            crate::errln!("klab: the runs so far are in {}", s.opts.run_dir.display());
            return super::interrupted_or(e);
        }
        stopped?;
    }
    report(a, by_capacity, &runs, run_dir, started)
}

/// A goal of the evaluation, judged on one lab.
#[derive(Debug, Clone, Serialize)]
struct Goal {
    lab: String,
    goal: String,
    /// guided's median over the other strategy's median.
    ratio: f64,
    /// The measured noise: max/min of the defaults' repeated searches.
    noise: f64,
    /// `met`, `met within the noise` or `not met`.
    verdict: String,
}

fn median_of(runs: &[&EvalRun], f: fn(&EvalRun) -> f64) -> Spread {
    Spread::of(&runs.iter().map(|r| f(r)).collect::<Vec<_>>()).unwrap_or_default()
}

/// The goals of issue-style evaluation on each lab (capacity objective):
/// guided at least 1.2x the defaults, and at least random's median.
fn goals(runs: &[EvalRun]) -> Vec<Goal> {
    let mut labs: Vec<&str> = runs
        .iter()
        .filter(|r| r.surface == "broker")
        .map(|r| r.lab.as_str())
        .collect();
    labs.dedup();
    let mut out = Vec::new();
    for lab in labs {
        let of = |s: &str| -> Vec<&EvalRun> {
            runs.iter()
                .filter(|r| r.surface == "broker" && r.lab == lab && r.strategy == s)
                .collect()
        };
        let (g, d, r) = (of("guided"), of("defaults"), of("random"));
        if g.is_empty() || d.is_empty() {
            continue;
        }
        let (g, d) = (median_of(&g, |x| x.best), median_of(&d, |x| x.best));
        let noise = if d.min > 0.0 { d.max / d.min } else { f64::NAN };
        let judge = |ratio: f64, need: f64| {
            if ratio >= need * noise {
                "met"
            } else if ratio >= need {
                "met within the noise"
            } else {
                "not met"
            }
        };
        let r = median_of(&r, |x| x.best);
        for (other, need, goal) in [
            (d.median, 1.2, "guided ≥ 1.2x the defaults"),
            (r.median, 1.0, "guided ≥ random's median"),
        ] {
            if other > 0.0 {
                let ratio = g.median / other;
                out.push(Goal {
                    lab: lab.to_string(),
                    goal: goal.into(),
                    ratio,
                    noise,
                    verdict: judge(ratio, need).into(),
                });
            }
        }
    }
    out
}

fn report(
    a: &crate::cli::TuneBenchArgs,
    by_capacity: bool,
    runs: &[EvalRun],
    run_dir: Option<std::path::PathBuf>,
    started: Instant,
) -> Result<Outcome> {
    let figure = if by_capacity {
        "capacity records/s"
    } else {
        "records/s"
    };
    let mut t = crate::stats::table::new_table(&[
        "surface",
        "lab",
        "strategy",
        "runs",
        &format!("median best {figure}"),
        "min",
        "max",
        "median start",
        "median best e2e p99 ms",
        "median measurements",
        "median wall s",
        "reached optimum",
    ]);
    let mut summary = Vec::new();
    let mut keys: Vec<(&str, &str)> = Vec::new();
    for r in runs {
        if !keys.contains(&(r.surface, r.lab.as_str())) {
            keys.push((r.surface, r.lab.as_str()));
        }
    }
    for (surface, lab) in keys {
        for strategy in ["start", "defaults", "guided", "random", "agent"] {
            let sel: Vec<&EvalRun> = runs
                .iter()
                .filter(|r| r.surface == surface && r.lab == lab && r.strategy == strategy)
                .collect();
            if sel.is_empty() {
                continue;
            }
            let best = median_of(&sel, |r| r.best);
            let p99 = median_of(&sel, |r| r.best_p99_ms).median;
            let measured = median_of(&sel, |r| r.measurements as f64).median;
            let wall = median_of(&sel, |r| r.wall_s).median;
            let reached = sel
                .iter()
                .filter(|r| r.reached_optimum == Some(true))
                .count();
            t.add_row(vec![
                surface.to_string(),
                if lab.is_empty() {
                    "-".into()
                } else {
                    lab.to_string()
                },
                strategy.to_string(),
                sel.len().to_string(),
                fmt_rate(best.median),
                fmt_rate(best.min),
                fmt_rate(best.max),
                fmt_rate(median_of(&sel, |r| r.start).median),
                crate::stats::table::fmt_ms(p99),
                format!("{measured:.0}"),
                format!("{wall:.0}"),
                if surface == "simulated" && strategy != "start" {
                    format!("{reached}/{}", sel.len())
                } else {
                    "-".into()
                },
            ]);
            summary.push(serde_json::json!({
                "surface": surface, "lab": lab, "strategy": strategy, "runs": sel.len(),
                "median_best": best.median, "min_best": best.min, "max_best": best.max,
                "median_best_p99_ms": p99,
                "median_measurements": measured,
                "median_wall_s": wall,
                "reached_optimum": (surface == "simulated").then_some(reached),
            }));
        }
    }
    crate::stats::table::align_numbers(&mut t);
    let goals = if by_capacity { goals(runs) } else { Vec::new() };
    let report = serde_json::json!({
        "objective": if by_capacity { "capacity" } else { "score" },
        "figure": figure,
        "budget": a.budget, "seeds": a.seeds,
        "summary": summary, "goals": goals, "runs": runs,
    });
    let goal_lines: Vec<String> = goals
        .iter()
        .map(|g| {
            format!(
                "{}: {}: {:.2}x ({}; the defaults' noise max/min {:.2}x)",
                g.lab, g.goal, g.ratio, g.verdict, g.noise
            )
        })
        .collect();
    if let Some(d) = &run_dir {
        write_json(&d.join("tune-bench.json"), &report)?;
        let mut text = crate::stats::table::file_text(&mut t);
        for l in &goal_lines {
            text.push('\n');
            text.push_str(l);
        }
        write_atomic(&d.join("tune-bench.txt"), text.as_bytes())?;
    }
    if let Some(j) = &a.session.out.json {
        write_json(j, &report)?;
    }
    crate::outln!("{t}");
    for l in &goal_lines {
        crate::outln!("{l}");
    }
    let failed = runs
        .iter()
        .filter(|r| r.agent.as_ref().is_some_and(|e| e.failed))
        .count();
    if failed > 0 {
        crate::errln!(
            "klab: {failed} of the agent's runs ended early (crashed, hung or answered what klab cannot read; above, and `agent` in the JSON's runs)"
        );
    }
    crate::outln!(
        "budget {} trials per run ({}), {} runs per strategy; wall time {:.0}s{}",
        a.budget,
        if by_capacity {
            "the start's capacity search shared by every run of a lab"
        } else {
            "+2 start measurements"
        },
        a.seeds,
        started.elapsed().as_secs_f64(),
        run_dir
            .map(|d| format!("; results: {}", d.display()))
            .unwrap_or_default()
    );
    // An agent that failed is an incomplete evaluation, as in klab tune.
    if failed > 0 {
        return Ok(Outcome::Incomplete);
    }
    // Its goals are verdicts: one rule with every judging command.
    let missed: Vec<&Goal> = goals.iter().filter(|g| g.verdict == "not met").collect();
    if goals.is_empty() {
        return Ok(Outcome::Done);
    }
    if missed.is_empty() {
        crate::outln!("verdict: every goal met (exit 0)");
        return Ok(Outcome::Done);
    }
    crate::outln!(
        "verdict: {} of {} goal(s) not met (exit 1): {}",
        missed.len(),
        goals.len(),
        missed
            .iter()
            .map(|g| format!("{} {}", g.lab, g.goal))
            .collect::<Vec<_>>()
            .join("; ")
    );
    Ok(Outcome::NotAsExpected)
}
