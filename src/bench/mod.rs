//! `klab bench`: klab side by side with Apache Kafka's own perf tools on one
//! local broker.
//!
//! Three comparisons, each run as alternating pairs (klab, then the peer, on
//! the same broker, with the same record size, acks, linger.ms, batch.size
//! and partitions; every run on a fresh topic):
//!
//! - producer: `klab produce --max` against `ProducerPerformance`, both as
//!   child processes so their CPU time is measured the same way (wait4);
//! - consumer: `klab consume` (verifies every record's HMAC and sequence)
//!   against `ConsumerPerformance`, each reading what its own side produced;
//! - end-to-end latency at a low rate: klab's open loop (through
//!   [`crate::step::measure`], the one place klab measures) against
//!   `EndToEndLatency`'s closed loop (one record in flight).
//!
//! A warm-up pair (not counted) goes first, then one small run per tool that
//! measures its fixed start-up cost. Ratios are klab / peer per pair, and the
//! report gives their median with min and max over the pairs.

pub mod child;
pub mod model;
pub mod parse;
pub mod report;
mod runners;
pub mod summary;
pub mod tools;

pub use model::{BenchOptions, BenchReport, Phase, Run, Side, Test, summary_key};
pub use summary::{check_report, summarize};

pub use runners::run;

use anyhow::{Context, Result};
use std::path::PathBuf;

/// Writes the report's JSON (atomically) and its plot beside it.
pub fn save(report: &BenchReport, json: &std::path::Path) -> Result<PathBuf> {
    crate::stats::report::write_json(json, report)
        .with_context(|| format!("writing {}", json.display()))?;
    let svg = crate::stats::report::sibling(json, "svg");
    crate::stats::report::write_atomic(&svg, report::svg(report).as_bytes())?;
    Ok(svg)
}
