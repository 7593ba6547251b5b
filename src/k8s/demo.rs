//! `klab demo --target k8s`: every lab on the cluster's broker, the same
//! summary as the local demo, and the ConfigMap `klab-summary`.

use super::api::Kube;
use super::objects;
use super::session::{K8sOptions, K8sSession};
use super::{BROKER_STATEFULSET, Timeouts};
use crate::cli::DemoArgs;
use crate::lab::run::run_demo;
use crate::lab::run::{FixSource, Row, summary_table, write_summary};
use crate::lab::{Labs, labs_dir};
use crate::stats::report::{check_writable, new_run_dir};
use crate::usage;
use anyhow::{Context, Result};
use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;

/// ConfigMaps hold at most 1 MiB; leave room for metadata.
const CONFIGMAP_BUDGET: usize = 900 * 1024;

pub fn run(a: &DemoArgs, fix: FixSource) -> Result<i32> {
    let labs = Labs::load(&labs_dir(a.session.dir.labs.as_deref()))?;
    if let Some(j) = &a.session.json {
        check_writable(j).map_err(|e| usage!("--json {}: {e}", j.display()))?;
    }
    let kube = Kube::connect(a.context.as_deref(), &a.namespace)?;
    // Before anything is written: is the cluster there, may we read the
    // broker, is klab deployed?
    kube.broker_statefulset(BROKER_STATEFULSET)?;
    let run_dir = new_run_dir(&a.session.results)?;
    let mut s = K8sSession::new(
        kube,
        K8sOptions {
            run_dir,
            quick: a.session.quick,
            progress: !a.session.quiet && std::io::stderr().is_terminal(),
            timeouts: Timeouts::default(),
            statefulset: BROKER_STATEFULSET.into(),
        },
    )?;
    let started = Instant::now();
    let mut rows = Vec::new();
    let outcome = s
        .prepare()
        .and_then(|()| run_demo(&mut s, &labs, &fix, &mut rows));
    let outcome = crate::lab::run::demo_outcome(outcome);
    conclude(
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
pub fn conclude(
    s: &mut K8sSession,
    title: &str,
    rows: &[Row],
    a: &DemoArgs,
    outcome: Result<()>,
    started: Instant,
) -> Result<i32> {
    s.cleanup();
    let dir = s.opts.run_dir.clone();
    if !rows.is_empty() {
        write_summary(
            &dir,
            title,
            rows,
            &s.ledger.results,
            a.session.json.as_deref(),
        )?;
        println!("{}", summary_table(rows));
        match publish_summary(s, &dir) {
            Ok(()) => println!(
                "summary: ConfigMap {}/{} (kubectl -n {} get configmap {} -o jsonpath='{{.data.summary\\.txt}}')",
                s.kube.namespace(),
                super::SUMMARY_CONFIGMAP,
                s.kube.namespace(),
                super::SUMMARY_CONFIGMAP
            ),
            Err(e) => eprintln!("klab: could not write the summary ConfigMap: {e:#}"),
        }
    }
    println!(
        "wall time {:.0}s, {} broker restart(s) (rollouts); results: {}",
        started.elapsed().as_secs_f64(),
        s.restarts,
        dir.display()
    );
    crate::cmd::lab::print_plot(&dir);
    crate::cmd::lab::exit_code(rows, outcome)
}

/// summary.json and summary.txt of `dir` into the ConfigMap `klab-summary`
/// (server-side apply). A summary.json too large for a ConfigMap loses its
/// per-second latency timelines first.
pub fn publish_summary(s: &K8sSession, dir: &Path) -> Result<()> {
    let txt = std::fs::read_to_string(dir.join("summary.txt")).context("reading summary.txt")?;
    let mut json =
        std::fs::read_to_string(dir.join("summary.json")).context("reading summary.json")?;
    if json.len() + txt.len() > CONFIGMAP_BUDGET {
        let mut results = s.ledger.results.clone();
        for r in &mut results {
            r.e2e_timeline.clear();
        }
        json = serde_json::to_string(&results)?;
        if json.len() + txt.len() > CONFIGMAP_BUDGET {
            anyhow::bail!(
                "summary.json is {} KiB, too large for a ConfigMap; it is in {}",
                json.len() / 1024,
                dir.display()
            );
        }
    }
    let cm = objects::summary_configmap(s.kube.namespace(), &s.instance, json, txt);
    s.kube.apply_configmap(&cm)?;
    Ok(())
}
