//! `klab lab list|show|run|check` and `klab demo`.

use super::Outcome;
use crate::broker::kafka_home::{KafkaHome, java};
use crate::cli::{
    FixArgs, FixWith, LabCheckArgs, LabCommand, LabRunArgs, LabShowArgs, LabsDirArgs, SessionArgs,
};
use crate::lab::file::{Fix, parse_fix_file};
use crate::lab::run::{FixSource, run_lab};
use crate::lab::session::{Session, SessionOptions};
use crate::lab::summary::{Row, summary_table, write_summary};
use crate::lab::verdict::Verdict;
use crate::lab::{Lab, Labs, labs_dir, load_with};
use crate::stats::report::{check_writable, new_run_dir};
use crate::stats::table::new_table;
use crate::tuner::{Objective, TuneOptions};
use crate::usage;
use anyhow::Result;
use std::time::Instant;

pub fn execute(cmd: &LabCommand) -> Result<Outcome> {
    match cmd {
        LabCommand::List(a) => list(a),
        LabCommand::Show(a) => show(a),
        LabCommand::Run(a) => run(a),
        LabCommand::Check(a) => check(a),
        LabCommand::Rehearse(a) => super::rehearse::execute(a),
    }
}

fn list(a: &LabsDirArgs) -> Result<Outcome> {
    let root = labs_dir(a.labs.as_deref());
    let tracks = crate::lab::tracks(&root);
    if tracks.is_empty() {
        // Says where it looked and how to point klab at the labs.
        Labs::load(&root)?;
    }
    for (name, dir) in &tracks {
        let labs = Labs::load(dir)?;
        let prefix = if name == crate::lab::MAIN_TRACK {
            String::new()
        } else {
            format!("{name}/")
        };
        let how = if prefix.is_empty() {
            String::new()
        } else if labs.labs.iter().all(Lab::is_capacity_lab) {
            format!(": klab lab run {prefix}NN (capacity labs: each against its own fix)")
        } else {
            format!(": klab lab run {prefix}NN, klab demo --track {name}")
        };
        crate::outln!(
            "track {name} ({} labs, {} broker(s)){how}",
            labs.labs.len(),
            labs.baseline().brokers,
        );
        list_track(&labs, &prefix);
    }
    crate::outln!("labs: {}", root.display());
    Ok(Outcome::Done)
}

fn list_track(labs: &Labs, prefix: &str) {
    let mut t = new_table(&["lab", "title", "makes worse", "restart?"]);
    for l in &labs.labs {
        let prev = l
            .extends
            .as_ref()
            .and_then(|e| labs.get(e).ok())
            .map(|p| p.broker.clone())
            .unwrap_or_default();
        if l.is_capacity_lab() {
            t.add_row(vec![
                format!("{prefix}{}", l.id),
                l.title.clone(),
                format!("its own settings; fix: {}", l.fix.lines().join(" ")),
                String::new(),
            ]);
            continue;
        }
        let restart = if l.extends.is_none() {
            ""
        } else if crate::broker::knobs::needs_restart(&prev, &l.broker) {
            "yes"
        } else {
            "no"
        };
        t.add_row(vec![
            format!("{prefix}{}", l.id),
            l.title.clone(),
            l.what_changed(),
            restart.to_string(),
        ]);
    }
    crate::outln!("{t}");
}

fn show(a: &LabShowArgs) -> Result<Outcome> {
    let (labs, id) = load_with(a.dir.labs.as_deref(), &a.lab)?;
    let lab = labs.get(&id)?;
    crate::outln!("{} — {}", lab.id, lab.title);
    if let Some(s) = &lab.summary {
        crate::outln!("{s}");
    }
    let chain = {
        let mut c = vec![lab.id.clone()];
        let mut cur = lab.extends.clone();
        while let Some(e) = cur {
            c.push(e.clone());
            cur = labs.get(&e).ok().and_then(|l| l.extends.clone());
        }
        c.reverse();
        c.join(" → ")
    };
    if lab.is_capacity_lab() {
        crate::outln!(
            "a capacity lab: its own settings against its fix, each searched for the highest \
             rate under the SLO"
        );
    } else {
        if lab.extends.is_some() {
            crate::outln!("extends: {chain}");
        } else {
            crate::outln!(
                "extends: nothing (this is the reference every other lab is compared with)"
            );
        }
        crate::outln!("makes worse: {}", lab.what_changed());
    }
    let mut t = new_table(&["broker setting", "value", "set by"]);
    let heap = lab
        .broker
        .heap
        .map(|h| (h.jvm(), lab.origin.get("heap").cloned().unwrap_or_default()))
        .unwrap_or_else(|| {
            (
                crate::broker::render::DEFAULT_HEAP.jvm(),
                "klab default (as Kafka's scripts)".into(),
            )
        });
    t.add_row(vec!["heap (-Xms/-Xmx)".to_string(), heap.0, heap.1]);
    for (k, v) in &lab.broker.properties {
        t.add_row(vec![
            k.clone(),
            v.clone(),
            lab.origin.get(k).cloned().unwrap_or_default(),
        ]);
    }
    let cluster = if lab.brokers > 1 {
        format!("klab default for {} brokers", lab.brokers)
    } else {
        "klab single-node default".to_string()
    };
    for (k, v) in crate::broker::render::cluster_defaults(lab.brokers) {
        if !lab.broker.properties.contains_key(&k) {
            t.add_row(vec![k, v, cluster.clone()]);
        }
    }
    for k in [
        "num.network.threads",
        "num.io.threads",
        "log.flush.interval.messages",
        "socket.send.buffer.bytes",
        "socket.receive.buffer.bytes",
    ] {
        if !lab.broker.properties.contains_key(k)
            && let Some(info) = crate::broker::knobs::lookup(k)
        {
            t.add_row(vec![
                k.to_string(),
                info.default.to_string(),
                "Kafka default".into(),
            ]);
        }
    }
    crate::outln!("{t}");
    let fix = lab.fix.lines();
    crate::outln!(
        "fix: {}",
        if fix.is_empty() {
            "(none: this is the reference)".into()
        } else {
            fix.join(" ")
        }
    );
    for (name, quick) in [("workload", false), ("workload --quick", true)] {
        match lab.workload(quick, None) {
            Ok(w) => crate::outln!("{name}: {}", w.describe()),
            Err(_) => {
                let p = if quick {
                    lab.workload.overlay(&lab.quick)
                } else {
                    lab.workload.clone()
                };
                let w = crate::lab::workload_from_patch(&p, Some(1.0))
                    .map(|w| {
                        w.describe().replacen(
                            "rate 1/s",
                            &p.rate.map(|r| format!("rate {r}")).unwrap_or_default(),
                            1,
                        )
                    })
                    .unwrap_or_default();
                crate::outln!("{name}: {w}");
            }
        }
    }
    if let Some(fs) = &lab.workload.faults {
        for f in fs {
            crate::outln!("fault: {f}");
        }
    }
    if lab.brokers > 1 {
        crate::outln!("cluster: {} brokers", lab.brokers);
    }
    let p = lab
        .workload
        .producer
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>();
    if !p.is_empty() {
        crate::outln!("producer: {}", p.join(" "));
    }
    if lab.is_capacity_lab() {
        let c = lab.capacity.settings();
        crate::outln!(
            "capacity search: e2e p99 <= {} ms, resolution ±{:.0}%, at most {} probes per configuration",
            c.slo_p99_ms,
            c.resolution * 100.0,
            c.max_probes
        );
    }
    for line in crate::lab::verdict::how_bounds_combine(lab) {
        crate::outln!("expect {line}");
    }
    crate::outln!("walkthrough: {}", lab.dir.join("README.md").display());
    Ok(Outcome::Done)
}

/// Checks everything a session needs before any broker starts.
/// `brokers`: the lab's `[cluster] brokers` (`--brokers` wins).
pub fn session(args: &SessionArgs, brokers: u32) -> Result<Session> {
    let brokers = args.brokers.unwrap_or(brokers);
    if let Some(j) = &args.json {
        check_writable(j).map_err(|e| usage!("--json {}: {e}", j.display()))?;
    }
    let kafka = KafkaHome::locate(args.kafka.kafka_home.as_deref())?;
    java()?;
    let run_dir = new_run_dir(&args.results)?;
    Session::new(SessionOptions {
        kafka: Some(kafka),
        run_dir,
        quick: args.quick,
        progress: crate::stats::progress::Progress::detect(args.quiet),
        brokers,
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
            args.json.as_deref(),
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

fn run(a: &LabRunArgs) -> Result<Outcome> {
    let (labs, id) = load_with(a.session.dir.labs.as_deref(), &a.lab)?;
    let lab = labs.get(&id)?.clone();
    lab.check_brokers(a.session.brokers)?;
    if let Some(limit) = lab.expect.capacity_at_least {
        let fix = match a.fix.fix_with {
            FixWith::Lab => lab.fix.clone(),
            FixWith::Tuner => {
                return Err(usage!(
                    "--fix-with tuner: lab {} is judged by two capacity searches in alternation, the lab's and a fix's; find a fix with klab tune --lab {} --objective capacity, then klab lab check {} with it as a fix file (or --fix-with lab)",
                    lab.id,
                    a.lab,
                    a.lab
                ));
            }
        };
        return super::capacity::lab_run(&a.session, &lab, &fix, limit);
    }
    let _ui = super::start_ui(&a.session.ui)?;
    let mut s = session(&a.session, lab.brokers)?;
    s.ledger.steps_planned = if lab.extends.is_none() { 1 } else { 3 };
    let started = Instant::now();
    let mut rows = Vec::new();
    let fix = fix_source(&a.fix, a.session.quick, 3, 6);
    s.ledger.steps_planned = match &fix {
        FixSource::Tuner(o) if lab.extends.is_some() => 2 + o.budget,
        _ => s.ledger.steps_planned,
    };
    announce(&s, &labs, &[&lab], s.ledger.steps_planned);
    let outcome = run_lab(&mut s, &labs, &lab, &fix).map(|r| rows = r);
    let code = conclude(
        &mut s,
        &format!("lab {}", lab.id),
        &rows,
        &a.session,
        outcome,
        started,
    )?;
    Ok(code)
}

fn check(a: &LabCheckArgs) -> Result<Outcome> {
    let (labs, id) = load_with(a.session.dir.labs.as_deref(), &a.lab)?;
    let lab = labs.get(&id)?.clone();
    lab.check_brokers(a.session.brokers)?;
    let capacity_lab = lab.expect.capacity_at_least;
    if lab.extends.is_none() && capacity_lab.is_none() {
        return Err(usage!(
            "{} is the reference lab; there is nothing to fix",
            lab.id
        ));
    }
    let file = a.fix.clone().or_else(|| {
        let f = lab.dir.join("my-fix.toml");
        f.is_file().then_some(f)
    });
    let mut fix = match &file {
        Some(f) => parse_fix_file(f).map_err(|e| usage!("{e}"))?,
        None => Fix::default(),
    };
    let flags = a.broker.config()?;
    fix.broker = fix.broker.overlay(&flags);
    for (k, v) in &a.producer_set {
        crate::model::check_producer_key(k)
            .and_then(|()| crate::load::check_client_setting(k, v))
            .map_err(|e| usage!("--producer-set {k}={v}: {e}"))?;
        fix.producer.insert(k.clone(), v.clone());
    }
    if fix.is_empty() {
        return Err(usage!(
            "nothing to check: write your fix into {} (this lab's fix changes: {}) or pass --broker-set/--heap/--producer-set",
            lab.dir.join("my-fix.toml").display(),
            crate::lab::template::keys(&lab).join(", ")
        ));
    }
    // Before anything is measured: a fix that leaves a broken value in
    // place cannot pass.
    for w in still_broken(&lab, &fix) {
        crate::errln!("warning: {w}");
    }
    if let Some(limit) = capacity_lab {
        return super::capacity::lab_run(&a.session, &lab, &fix, limit);
    }
    let _ui = super::start_ui(&a.session.ui)?;
    let mut s = session(&a.session, lab.brokers)?;
    s.ledger.steps_planned = 3;
    announce(&s, &labs, &[&lab], 3);
    let started = Instant::now();
    let mut rows = Vec::new();
    let outcome = run_lab(&mut s, &labs, &lab, &FixSource::Given(fix.clone())).map(|r| rows = r);
    let code = conclude(
        &mut s,
        &format!("check {}", lab.id),
        &rows,
        &a.session,
        outcome,
        started,
    )?;
    if code == Outcome::Interrupted {
        return Ok(code);
    }
    let Some(yours) = rows.iter().find(|r| r.step == "your fix") else {
        return Ok(code);
    };
    let fix_text = fix.lines().join(" ");
    match yours.verdict() {
        Some(Verdict::Yes) if code == Outcome::Done => {
            crate::outln!(
                "PASS: your fix ({fix_text}) brings {} back to the lab's expectation.",
                lab.id
            );
            return Ok(code);
        }
        Some(Verdict::Yes) => {
            crate::outln!(
                "NOT COUNTED: your fix ({fix_text}) meets the lab's expectation, but this run did not show the lab's damage as promised (the verdict above), so it proves nothing yet: run the check again."
            );
            return Ok(code);
        }
        Some(Verdict::Unsure) => crate::outln!(
            "NOT SURE: your fix ({fix_text}) lies inside the noise of this machine, measured twice:"
        ),
        Some(Verdict::No) | None => {
            crate::outln!("NOT YET: your fix ({fix_text}) falls short of the lab's expectation:")
        }
    }
    for c in yours.expected.iter().flat_map(|j| j.failed()) {
        crate::outln!("  {}", c.describe());
    }
    for hint in hints(&lab, &fix) {
        crate::outln!("hint: {hint}");
    }
    Ok(Outcome::NotAsExpected)
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

/// Settings the lab broke that the student's fix leaves at the broken value.
pub fn hints(lab: &crate::lab::Lab, fix: &Fix) -> Vec<String> {
    let mut out = still_broken(lab, fix);
    if out.is_empty() {
        out.push(
            format!(
                "every setting the lab broke is changed; compare your values with `klab lab show {n}` and the tuner's (`klab tune --lab {n} --quick`), or measure again without --quick (measurements vary)",
                n = lab.number
            ),
        );
    }
    out
}

/// What the student's fix leaves at the value the lab broke it to.
pub fn still_broken(lab: &crate::lab::Lab, fix: &Fix) -> Vec<String> {
    crate::lab::template::still_broken(lab, fix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::verdict::{Check, Judged};
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
