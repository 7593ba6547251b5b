//! `klab lab list|show|run|check` (`klab lab rehearse` is `cmd::rehearse`).

use super::Outcome;
use crate::app::session::{announce, conclude, fix_source, session};
use crate::cli::{FixWith, LabCheckArgs, LabRunArgs, LabShowArgs, LabsDirArgs};
use crate::lab::file::{Fix, parse_fix_file};
use crate::lab::run::{FixSource, run_lab};
use crate::lab::verdict::Verdict;
use crate::lab::{Lab, Labs, labs_dir, load_with};
use crate::stats::table::new_table;
use crate::usage;
use anyhow::Result;
use std::time::Instant;

pub fn list(a: &LabsDirArgs) -> Result<Outcome> {
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
        // A track's labs may run on clusters of different sizes (the
        // network track's capacity lab on one broker).
        let sizes = labs.labs.iter().map(|l| l.brokers);
        let (least, most) = (sizes.clone().min(), sizes.max());
        let brokers = match (least, most) {
            (Some(a), Some(b)) if a != b => format!("{a} to {b}"),
            _ => labs.baseline().brokers.to_string(),
        };
        crate::outln!(
            "track {name} ({} labs, {brokers} broker(s)){how}",
            labs.labs.len()
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

pub fn show(a: &LabShowArgs) -> Result<Outcome> {
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
                let w = p
                    .resolve(Some(1.0))
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

pub fn run(a: &LabRunArgs) -> Result<Outcome> {
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
        return crate::app::capacity::lab_run(&a.session, &lab, &fix, limit);
    }
    let _ui = super::start_ui(&a.session.ui)?;
    let mut s = session(&a.session, lab.brokers, lab.needs_network())?;
    s.ledger.steps_planned = if lab.extends.is_none() { 1 } else { 3 };
    let started = Instant::now();
    let fix = fix_source(&a.fix, a.session.quick, 3, 6);
    s.ledger.steps_planned = match &fix {
        FixSource::Tuner(o) if lab.extends.is_some() => 2 + o.budget,
        _ => s.ledger.steps_planned,
    };
    announce(&s, &labs, &[&lab], s.ledger.steps_planned);
    let (code, _) = run_and_conclude(&mut s, &labs, &lab, &fix, "lab", &a.session, started)?;
    Ok(code)
}

/// Runs `lab` (of `labs`) with `fix` in the session and ends the session
/// as the `what` of the lab (the summary, the verdict, the hand-in); what
/// it measured is kept also after an error or Ctrl-C.
fn run_and_conclude(
    s: &mut crate::lab::session::Session,
    labs: &Labs,
    lab: &Lab,
    fix: &FixSource,
    what: &str,
    args: &crate::cli::SessionArgs,
    started: Instant,
) -> Result<(Outcome, Vec<crate::lab::summary::Row>)> {
    let mut rows = Vec::new();
    let outcome = run_lab(s, labs, lab, fix).map(|r| rows = r);
    let title = format!("{what} {}", lab.id);
    let code = conclude(s, &title, &rows, args, outcome, started)?;
    Ok((code, rows))
}

pub fn check(a: &LabCheckArgs) -> Result<Outcome> {
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
        return crate::app::capacity::lab_run(&a.session, &lab, &fix, limit);
    }
    let _ui = super::start_ui(&a.session.ui)?;
    let mut s = session(&a.session, lab.brokers, lab.needs_network())?;
    s.ledger.steps_planned = 3;
    announce(&s, &labs, &[&lab], 3);
    let started = Instant::now();
    let given = FixSource::Given(fix.clone());
    let (code, rows) = run_and_conclude(&mut s, &labs, &lab, &given, "check", &a.session, started)?;
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
