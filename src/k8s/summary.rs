//! The summary of a run on Kubernetes, kept in the ConfigMap
//! `klab-summary` beside the run directory.

use super::objects;
use super::session::K8sSession;
use anyhow::{Context, Result};
use std::path::Path;

/// ConfigMaps hold at most 1 MiB; leave room for metadata.
const CONFIGMAP_BUDGET: usize = 900 * 1024;

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
