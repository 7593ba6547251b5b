//! `klab compare A B`: two results side by side, step by step, with the
//! ratios B / A and the band each ratio lies in given both results' noise.

use super::Outcome;
use crate::cli::CompareArgs;
use crate::lab::verdict::{Ratios, fmt_x, ratios};
use crate::model::StepResult;
use crate::stats::report::{check_writable, write_json};
use crate::stats::table::{align_numbers, fmt_ms, fmt_rate, new_table};
use crate::usage;
use anyhow::Result;
use serde::Serialize;
use std::path::Path;

/// The results a path holds: a step's JSON (one result), a JSON list of
/// results (summary.json), or a run folder (its summary.json, else its
/// result.json).
pub fn load(path: &Path) -> Result<Vec<StepResult>> {
    let file = if path.is_dir() {
        ["summary.json", "result.json"]
            .iter()
            .map(|f| path.join(f))
            .find(|f| f.is_file())
            .ok_or_else(|| {
                usage!(
                    "{}: a run folder with neither summary.json nor result.json",
                    path.display()
                )
            })?
    } else {
        path.to_path_buf()
    };
    let text = crate::infile::read_text(&file, crate::infile::MAX_JSON)
        .map_err(|e| usage!("{}: {e}", file.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| usage!("{}: not JSON ({e})", file.display()))?;
    let parse = |v: serde_json::Value| -> Result<StepResult> {
        serde_json::from_value(v).map_err(|e| {
            usage!(
                "{}: not a klab result ({e}); give a step's JSON, a summary.json or a run folder",
                file.display()
            )
        })
    };
    match value {
        serde_json::Value::Array(items) => items.into_iter().map(parse).collect(),
        v => Ok(vec![parse(v)?]),
    }
}

/// How a step is matched between A and B: its lab and label.
fn key(r: &StepResult) -> String {
    match (&r.lab, &r.label) {
        (Some(l), Some(s)) => format!("{l} {s}"),
        (None, Some(s)) => s.clone(),
        (Some(l), None) => l.clone(),
        (None, None) => "run".into(),
    }
}

#[derive(Debug, Serialize)]
struct Pair<'a> {
    step: String,
    a: &'a StepResult,
    b: &'a StepResult,
    /// B / A with bands.
    ratios: Ratios,
}

#[derive(Debug, Serialize)]
struct Comparison<'a> {
    a: String,
    b: String,
    pairs: Vec<Pair<'a>>,
    only_in_a: Vec<String>,
    only_in_b: Vec<String>,
}

fn cell(x: f64, band: Option<crate::model::Band>) -> String {
    match band {
        Some(b) if b.contains(1.0) => format!("≈{}x ({}–{})", fmt_x(x), fmt_x(b.lo), fmt_x(b.hi)),
        Some(b) => format!("{}x ({}–{})", fmt_x(x), fmt_x(b.lo), fmt_x(b.hi)),
        None => format!("{}x", fmt_x(x)),
    }
}

pub fn execute(args: &CompareArgs) -> Result<Outcome> {
    if let Some(j) = &args.json {
        check_writable(j).map_err(|e| usage!("--json {}: {e}", j.display()))?;
    }
    let a = load(&args.a)?;
    let b = load(&args.b)?;
    // With one result on each side, compare them whatever they are called.
    let single = a.len() == 1 && b.len() == 1;
    let mut pairs = Vec::new();
    for x in &a {
        let found = if single {
            b.first()
        } else {
            b.iter().find(|y| key(y) == key(x))
        };
        if let Some(y) = found {
            pairs.push(Pair {
                step: key(x),
                a: x,
                b: y,
                ratios: ratios(y, x),
            });
        }
    }
    let paired: Vec<String> = pairs.iter().map(|p| p.step.clone()).collect();
    let only_in_a: Vec<String> = a
        .iter()
        .map(key)
        .filter(|k| !single && !paired.contains(k))
        .collect();
    let only_in_b: Vec<String> = b
        .iter()
        .map(key)
        .filter(|k| !single && !paired.contains(k))
        .collect();
    if pairs.is_empty() {
        return Err(usage!(
            "{} and {} have no step in common (A: {}; B: {})",
            args.a.display(),
            args.b.display(),
            a.iter().map(key).collect::<Vec<_>>().join(", "),
            b.iter().map(key).collect::<Vec<_>>().join(", ")
        ));
    }
    let mut t = new_table(&[
        "step",
        "records/s A",
        "records/s B",
        "B / A",
        "e2e p99 ms A",
        "e2e p99 ms B",
        "B / A",
        "lost A",
        "lost B",
    ]);
    for p in &pairs {
        t.add_row(vec![
            p.step.clone(),
            fmt_rate(p.a.throughput.msgs_per_s),
            fmt_rate(p.b.throughput.msgs_per_s),
            cell(p.ratios.throughput, p.ratios.throughput_band),
            fmt_ms(p.a.e2e_latency_ms.p99),
            fmt_ms(p.b.e2e_latency_ms.p99),
            cell(p.ratios.p99, p.ratios.p99_band),
            p.a.lost.to_string(),
            p.b.lost.to_string(),
        ]);
    }
    align_numbers(&mut t);
    crate::outln!("A: {}\nB: {}", args.a.display(), args.b.display());
    crate::outln!("{t}");
    crate::outln!(
        "B / A with the 90% band from both results' noise; ≈ marks a ratio whose band holds 1 (no difference beyond the noise)"
    );
    for (side, steps) in [("A", &only_in_a), ("B", &only_in_b)] {
        if !steps.is_empty() {
            crate::outln!("only in {side}: {}", steps.join(", "));
        }
    }
    if let Some(j) = &args.json {
        write_json(
            j,
            &Comparison {
                a: args.a.display().to_string(),
                b: args.b.display().to_string(),
                pairs,
                only_in_a,
                only_in_b,
            },
        )?;
    }
    Ok(Outcome::Done)
}
