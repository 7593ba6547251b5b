//! `klab demo`: every lab in order, on the local broker or on Kubernetes,
//! with a summary table and plot.

use super::Outcome;
use crate::app::session::{conclude, exit_code, fix_source, print_plot, session};
use crate::cli::DemoArgs;
use crate::k8s::api::Kube;
use crate::k8s::session::{K8sOptions, K8sSession};
use crate::k8s::summary::publish_summary;
use crate::k8s::{BROKER_STATEFULSET, Timeouts};
use crate::lab::labs_dir;
use crate::lab::run::{FixSource, demo_labs, demo_outcome, run_demo};
use crate::lab::summary::{Row, summary_table, write_summary};
use crate::stats::progress::Progress;
use crate::stats::report::{check_writable, new_run_dir};
use crate::usage;
use anyhow::Result;
use std::time::Instant;

pub fn execute(a: &DemoArgs) -> Result<Outcome> {
    let labs = crate::lab::load_track(&labs_dir(a.session.dir.labs.as_deref()), &a.track)?;
    if demo_labs(&labs).is_empty() {
        // A track of capacity labs only (the client track).
        crate::lab::run::refuse_capacity_labs(&labs.labs)?;
    }
    for l in labs.labs.iter().filter(|l| l.is_capacity_lab()) {
        crate::outln!(
            "{}/{} is a capacity lab, a search of its own: not in the demo (klab lab run {}/{} --fix-with lab)",
            a.track,
            l.id,
            a.track,
            l.number
        );
    }
    for lab in &labs.labs {
        lab.check_brokers(a.session.brokers)?;
    }
    if a.target == crate::cli::DemoTarget::K8s {
        return k8s(a, fix_source(&a.fix, a.session.quick, 2, 4));
    }
    let _ui = super::start_ui(&a.session.ui)?;
    let mut s = session(
        &a.session,
        labs.baseline().brokers,
        labs.labs.iter().any(|l| l.needs_network()),
    )?;
    let started = Instant::now();
    let mut rows = Vec::new();
    let fix = fix_source(&a.fix, a.session.quick, 2, 4);
    let per_lab = match &fix {
        FixSource::Tuner(o) => 1 + o.budget,
        _ => 2,
    };
    let chosen = demo_labs(&labs);
    crate::app::session::announce(&s, &labs, &chosen, 1 + per_lab * chosen.len());
    let outcome = run_demo(&mut s, &labs, &fix, &mut rows);
    let outcome = demo_outcome(outcome);
    let code = conclude(
        &mut s,
        "klab demo: throughput and e2e p99 per lab",
        &rows,
        &a.session,
        outcome,
        started,
    )?;
    print_plot(&s.opts.run_dir);
    Ok(code)
}

fn k8s(a: &DemoArgs, fix: FixSource) -> Result<Outcome> {
    let labs = crate::lab::load_track(&labs_dir(a.session.dir.labs.as_deref()), &a.track)?;
    // Faults the API cannot run are refused before anything starts.
    for lab in &labs.labs {
        crate::k8s::faults::check_lab(lab)?;
    }
    if let Some(j) = &a.session.out.json {
        check_writable(j).map_err(|e| usage!("--json {}: {e}", j.display()))?;
    }
    let _ui = super::start_ui(&a.session.ui)?;
    let kube = Kube::connect(a.context.as_deref(), &a.namespace)?;
    // Before anything is written: is the cluster there, may we read the
    // broker, is klab deployed?
    kube.broker_statefulset(BROKER_STATEFULSET)?;
    let run_dir = new_run_dir(&a.session.out.results)?;
    let mut s = K8sSession::new(
        kube,
        K8sOptions {
            run_dir,
            quick: a.session.quick,
            progress: Progress::detect(a.session.out.quiet),
            timeouts: Timeouts::default(),
            statefulset: BROKER_STATEFULSET.into(),
            brokers: labs.baseline().brokers,
        },
    )?;
    let started = Instant::now();
    let mut rows = Vec::new();
    let outcome = s
        .prepare()
        .and_then(|()| run_demo(&mut s, &labs, &fix, &mut rows));
    let outcome = demo_outcome(outcome);
    conclude_k8s(
        &mut s,
        "klab demo on Kubernetes: throughput and e2e p99 per lab",
        &rows,
        a,
        outcome,
        started,
    )
}

/// Prints and saves what was measured, also after an error or Ctrl-C:
/// the run directory as on the local target, and the ConfigMap.
fn conclude_k8s(
    s: &mut K8sSession,
    title: &str,
    rows: &[Row],
    a: &DemoArgs,
    outcome: Result<()>,
    started: Instant,
) -> Result<Outcome> {
    s.cleanup();
    let dir = s.opts.run_dir.clone();
    if !rows.is_empty() {
        write_summary(
            &dir,
            title,
            rows,
            &s.ledger.results,
            a.session.out.json.as_deref(),
        )?;
        crate::outln!("{}", summary_table(rows));
        match publish_summary(s, &dir) {
            Ok(()) => crate::outln!(
                "summary: ConfigMap {}/{} (kubectl -n {} get configmap {} -o jsonpath='{{.data.summary\\.txt}}')",
                s.kube.namespace(),
                crate::k8s::SUMMARY_CONFIGMAP,
                s.kube.namespace(),
                crate::k8s::SUMMARY_CONFIGMAP
            ),
            Err(e) => crate::errln!("klab: could not write the summary ConfigMap: {e:#}"),
        }
    }
    crate::outln!(
        "wall time {:.0}s, {} broker restart(s) (rollouts); results: {}",
        started.elapsed().as_secs_f64(),
        s.ledger.restarts,
        dir.display()
    );
    print_plot(&dir);
    crate::lab::bundle::prepare(crate::lab::bundle::HandIn {
        run_dir: &dir,
        labs_dir: a.session.dir.labs.as_deref(),
        rows,
        capacity: None,
        results: &s.ledger.results,
        started,
    });
    exit_code(rows, outcome)
}
