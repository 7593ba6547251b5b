//! A lab session opened from the command line (`lab run`, `lab check`,
//! `demo`, `tune`, `tune-bench`, `capacity --lab`) and how a run of labs
//! ends: the summary, the verdict lines and the exit rule.

use super::Outcome;
use crate::broker::kafka_home::{KafkaHome, java};
use crate::cli::{FixArgs, FixWith, SessionArgs};
use crate::lab::Labs;
use crate::lab::run::FixSource;
use crate::lab::session::{Session, SessionOptions};
use crate::lab::summary::{Row, summary_table, write_summary};
use crate::stats::report::{check_writable, new_run_dir};
use crate::tuner::{Objective, TuneOptions};
use crate::usage;
use anyhow::Result;
use std::time::Instant;

/// Checks everything a session needs before any broker starts.
/// `brokers`: the lab's `[cluster] brokers` (`--brokers` wins); `network`:
/// whether a lab of the session has a `[network]` (the cluster then starts
/// behind proxies).
pub fn session(args: &SessionArgs, brokers: u32, network: bool) -> Result<Session> {
    let brokers = args.brokers.unwrap_or(brokers);
    if let Some(j) = &args.out.json {
        check_writable(j).map_err(|e| usage!("--json {}: {e}", j.display()))?;
    }
    let kafka = KafkaHome::locate(args.kafka.kafka_home.as_deref())?;
    java()?;
    if network {
        crate::net::Toxiproxy::binary()?;
    }
    let run_dir = new_run_dir(&args.out.results)?;
    Session::new(SessionOptions {
        kafka: Some(kafka),
        run_dir,
        quick: args.quick,
        progress: crate::stats::progress::Progress::detect(args.out.quiet),
        brokers,
        network,
        recalibrate: args.recalibrate,
    })
}

/// Prints and saves what was measured, also after an error or Ctrl-C.
pub fn conclude(
    s: &mut Session,
    title: &str,
    rows: &[Row],
    args: &SessionArgs,
    outcome: Result<()>,
    started: Instant,
) -> Result<Outcome> {
    let stop = s.stop();
    if !rows.is_empty() {
        write_summary(
            &s.opts.run_dir,
            title,
            rows,
            &s.ledger.results,
            args.out.json.as_deref(),
        )?;
        crate::outln!("{}", summary_table(rows));
    }
    crate::outln!(
        "wall time {:.0}s, {}; results: {}",
        started.elapsed().as_secs_f64(),
        s.ledger.restarts_line(),
        s.opts.run_dir.display()
    );
    let code = match stop {
        Err(e) if outcome.is_ok() => Err(e),
        _ => exit_code(rows, outcome),
    };
    crate::lab::bundle::prepare(crate::lab::bundle::HandIn {
        run_dir: &s.opts.run_dir,
        labs_dir: args.dir.labs.as_deref(),
        rows,
        capacity: None,
        results: &s.ledger.results,
        started,
    });
    code
}

/// How a run of labs (on any target) ended, by one rule for every command
/// that judges: Done (exit 0) when every row is as the lab expects (its
/// verdict `yes`, or complete where the step has no expectation),
/// NotAsExpected (exit 1) when any is not, Interrupted after Ctrl-C (what
/// was measured is saved), else the error. The last line says which.
pub fn exit_code(rows: &[Row], outcome: Result<()>) -> Result<Outcome> {
    match outcome {
        Ok(()) if crate::cancel::interrupted() => Ok(Outcome::Interrupted),
        Ok(()) => {
            let off: Vec<String> = rows
                .iter()
                .filter_map(|r| {
                    r.shortfall()
                        .map(|why| format!("{} {}: {why}", r.lab, r.step))
                })
                .collect();
            if off.is_empty() {
                crate::outln!("verdict: every step as the lab expects (exit 0)");
                return Ok(Outcome::Done);
            }
            crate::outln!(
                "verdict: {} of {} step(s) not as the lab expects (exit 1):",
                off.len(),
                rows.len()
            );
            for o in &off {
                crate::outln!("  {o}");
            }
            Ok(Outcome::NotAsExpected)
        }
        Err(e) => super::interrupted_or(e),
    }
}

/// Points to the demo's plot, when there is one.
pub fn print_plot(run_dir: &std::path::Path) {
    let svg = run_dir.join("summary.svg");
    if svg.is_file() {
        crate::outln!("plot: {}", svg.display());
    }
}

/// Says up front how long a run of labs will take: `steps` measurements
/// (plus the calibration) and the restarts the labs' settings need.
pub fn announce(s: &Session, labs: &Labs, chosen: &[&crate::lab::Lab], steps: usize) {
    let base = labs.baseline();
    let Ok(w) = base.workload(s.opts.quick, Some(1.0)) else {
        return;
    };
    // Lab 01's broker starts once; each lab's degraded step and its fix
    // go to a running broker where a spare reaches their settings, else to
    // a fresh JVM.
    let mut configs = vec![base.broker.clone()];
    for l in chosen {
        configs.push(l.broker.clone());
        configs.push(l.fixed_broker(&l.fix));
    }
    let restarts =
        crate::broker::spares::fresh_jvms(&configs, crate::broker::spares::allowed(s.opts.brokers));
    let calibration = base.needs_capacity() || chosen.iter().any(|l| l.needs_capacity());
    let d = crate::lab::target::estimate(&w, steps + usize::from(calibration), restarts);
    s.opts.progress.say(&format!(
        "plan: up to {steps} measurements{}, {restarts} broker start(s): {} (more if a step is measured again)",
        if calibration { ", a calibration" } else { "" },
        crate::lab::target::describe_estimate(d)
    ));
}

/// The fix step of `lab run` and `demo`: the tuner (with a budget that
/// depends on --quick) or the lab's own fix.
pub fn fix_source(a: &FixArgs, quick: bool, quick_budget: usize, full_budget: usize) -> FixSource {
    match a.fix_with {
        FixWith::Lab => FixSource::Lab,
        FixWith::Tuner => FixSource::Tuner(Box::new(TuneOptions {
            budget: a
                .budget
                .unwrap_or(if quick { quick_budget } else { full_budget }),
            objective: Objective::score_at(a.slo_p99.as_secs_f64() * 1000.0),
            // The degraded step is the start; a second start measurement
            // would cost as much as a trial, so assume 10% noise instead.
            start_repeats: 1,
            noise_floor: 0.10,
            ..Default::default()
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::verdict::{Check, Judged, Verdict};
    use crate::model::StepResult;

    fn row(step: &str, verdict: Option<Verdict>, complete: bool) -> Row {
        Row {
            lab: "04".into(),
            step: step.into(),
            what: String::new(),
            result: StepResult {
                complete,
                reason: (!complete).then(|| "the producer stopped".into()),
                ..Default::default()
            },
            vs_reference: None,
            expected: verdict.map(|v| Judged {
                verdict: v,
                checks: vec![Check {
                    bound: "lost >= 1".into(),
                    value: 0.0,
                    band: None,
                    limit: 1.0,
                    verdict: v,
                    ratio: false,
                }],
            }),
        }
    }

    #[test]
    fn the_exit_code_follows_the_verdicts() {
        let reference = row("reference", None, true);
        let yes = row("degraded", Some(Verdict::Yes), true);
        let code = |rows: &[Row]| exit_code(rows, Ok(())).unwrap();
        assert_eq!(code(&[reference.clone(), yes.clone()]), Outcome::Done);
        // A step whose rules hold counts, complete or not (a fault may stop
        // a producer: lab durability/05).
        let yes_incomplete = row("degraded", Some(Verdict::Yes), false);
        assert_eq!(code(&[reference.clone(), yes_incomplete]), Outcome::Done);
        for off in [
            row("degraded", Some(Verdict::No), true),
            row("fixed", Some(Verdict::Unsure), true),
            // Nothing to judge it by, and it did not finish.
            row("reference", None, false),
        ] {
            assert_eq!(
                code(&[reference.clone(), yes.clone(), off.clone()]),
                Outcome::NotAsExpected,
                "{:?}",
                off.expected
            );
        }
    }
}
