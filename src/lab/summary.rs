//! The summary of a lab run or the demo: one row per step, printed as a
//! table and saved as summary.json, summary.txt and summary.svg.

use crate::lab::verdict::Ratios;
use crate::model::StepResult;
use crate::stats::plot::{self, Bar, Kind};
use crate::stats::report::write_json;
use crate::stats::table::{align_numbers, file_text, fmt_ms, fmt_rate, group, new_table};
use anyhow::Result;
use std::path::Path;

/// One row of a summary.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    pub lab: String,
    pub step: String,
    pub what: String,
    pub result: StepResult,
    pub vs_reference: Option<Ratios>,
    pub as_expected: Option<bool>,
}

/// The table printed at the end of a lab run or the demo.
pub fn summary_table(rows: &[Row]) -> String {
    summary(rows).to_string()
}

fn summary(rows: &[Row]) -> comfy_table::Table {
    let mut t = new_table(&[
        "lab",
        "step",
        "what changed",
        "records/s",
        "MB/s",
        "e2e p99 ms",
        "vs lab 01",
        "lost",
        "expected",
    ]);
    for r in rows {
        let vs = match r.vs_reference {
            Some(x) => format!("{:.2}x rec/s, {:.1}x p99", x.throughput, x.p99),
            None => "reference".into(),
        };
        let lost = if r.result.complete {
            group(r.result.lost)
        } else {
            format!("{} (incomplete)", group(r.result.lost))
        };
        let expected = match r.as_expected {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        t.add_row(vec![
            r.lab.clone(),
            r.step.clone(),
            r.what.clone(),
            fmt_rate(r.result.throughput.msgs_per_s),
            format!("{:.1}", r.result.throughput.mb_per_s),
            fmt_ms(r.result.e2e_latency_ms.p99),
            vs,
            lost,
            expected.to_string(),
        ]);
    }
    align_numbers(&mut t);
    if let Some(c) = t.column_mut(2) {
        c.set_constraint(comfy_table::ColumnConstraint::UpperBoundary(
            comfy_table::Width::Fixed(48),
        ));
        c.set_cell_alignment(comfy_table::CellAlignment::Left);
    }
    t
}

pub fn summary_plot(title: &str, rows: &[Row]) -> String {
    let bars: Vec<Bar> = rows
        .iter()
        .map(|r| Bar {
            label: format!("{} {}", r.lab.split('-').next().unwrap_or(&r.lab), r.step),
            kind: match r.step.as_str() {
                "reference" => Kind::Reference,
                "degraded" => Kind::Degraded,
                _ => Kind::Fixed,
            },
            value: r.result.throughput.msgs_per_s,
            latency: Some(r.result.e2e_latency_ms.p99),
        })
        .collect();
    plot::bars_and_latency(title, "records/s acknowledged", "e2e p99 ms", &bars)
}

/// Writes summary.json (every StepResult), summary.txt and summary.svg.
/// `results` is every step measured (tuner trials included), `rows` the
/// summary lines.
pub fn write_summary(
    dir: &Path,
    title: &str,
    rows: &[Row],
    results: &[StepResult],
    extra_json: Option<&Path>,
) -> Result<()> {
    write_json(&dir.join("summary.json"), &results)?;
    crate::stats::report::write_atomic(
        &dir.join("summary.txt"),
        file_text(&mut summary(rows)).as_bytes(),
    )?;
    crate::stats::report::write_atomic(
        &dir.join("summary.svg"),
        summary_plot(title, rows).as_bytes(),
    )?;
    if let Some(j) = extra_json {
        write_json(j, &results)?;
    }
    Ok(())
}
