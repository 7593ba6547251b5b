//! The summary of a lab run or the demo: one row per step, printed as a
//! table and saved as summary.json, summary.txt and summary.svg.

use crate::lab::verdict::{Judged, Ratios, Verdict, fmt_x};
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
    /// The lab's expectation for this step, judged (None: it has none).
    pub expected: Option<Judged>,
}

impl Row {
    pub fn verdict(&self) -> Option<Verdict> {
        self.expected.as_ref().map(|j| j.verdict)
    }

    /// Whether this row is as the lab promises: its verdict `yes` where
    /// the lab states an expectation for the step (complete or not: a
    /// fault may stop a producer, and the lab's rules say what counts),
    /// else a complete step. None when it is; else why not, in a few words.
    pub fn shortfall(&self) -> Option<String> {
        match &self.expected {
            Some(j) if j.verdict == Verdict::Yes => None,
            Some(j) => {
                let bounds: Vec<String> = j.failed().map(|c| c.describe()).collect();
                Some(format!("{} ({})", j.verdict.as_str(), bounds.join("; ")))
            }
            None if self.result.complete => None,
            None => Some(format!(
                "incomplete ({})",
                self.result.reason.as_deref().unwrap_or("no reason given")
            )),
        }
    }
}

/// `0.98x` or, when the band holds 1, `≈1.0x`; a band that is wider than
/// the value is worth showing follows in brackets.
fn ratio_cell(x: f64, band: Option<crate::model::Band>, what: &str, show_band: bool) -> String {
    match band {
        Some(b) if b.contains(1.0) => format!("≈1.0x {what}"),
        Some(b) if show_band && b.width_ratio() > 1.2 => {
            format!("{}x {what} ({}–{})", fmt_x(x), fmt_x(b.lo), fmt_x(b.hi))
        }
        _ => format!("{}x {what}", fmt_x(x)),
    }
}

/// `3, max 29 ms` (empty where klab could not read the GC log).
fn gc_cell(gc: Option<&crate::model::GcSummary>) -> String {
    match gc {
        Some(g) if g.pauses > 0 => format!("{}, max {}", g.pauses, fmt_ms(g.max_ms)),
        Some(_) => "0".into(),
        None => String::new(),
    }
}

/// Per-second e2e p99 as a sparkline on one fixed log scale (▁ under 2 ms,
/// █ at 5 s and above), so rows compare at a glance.
fn sparkline(timeline: &[[f64; 3]]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let (lo, hi) = (2f64.log10(), 5000f64.log10());
    timeline
        .iter()
        .map(|s| {
            let x = (s[1].max(1e-3).log10() - lo) / (hi - lo);
            BARS[((x * 7.0).round().clamp(0.0, 7.0)) as usize]
        })
        .collect()
}

/// A row as `verdicts.json` keeps it: the step, its ratios against the
/// reference with their bands, and the lab's verdict with every bound.
#[derive(serde::Serialize)]
struct RowJson<'a> {
    lab: &'a str,
    step: &'a str,
    what: &'a str,
    label: Option<&'a str>,
    runs: u32,
    complete: bool,
    msgs_per_s: f64,
    e2e_p99_ms: f64,
    noise: Option<crate::model::Noise>,
    vs_reference: Option<Ratios>,
    expected: Option<&'a Judged>,
}

impl<'a> RowJson<'a> {
    fn of(r: &'a Row) -> RowJson<'a> {
        RowJson {
            lab: &r.lab,
            step: &r.step,
            what: &r.what,
            label: r.result.label.as_deref(),
            runs: r.result.runs.max(1),
            complete: r.result.complete,
            msgs_per_s: r.result.throughput.msgs_per_s,
            e2e_p99_ms: r.result.e2e_latency_ms.p99,
            noise: r.result.noise,
            vs_reference: r.vs_reference,
            expected: r.expected.as_ref(),
        }
    }
}

/// The table printed at the end of a lab run or the demo, followed by what
/// the faults of each step did (see [`fault_details`]).
pub fn summary_table(rows: &[Row]) -> String {
    let mut out = summary(rows).to_string();
    if rows.iter().any(|r| !r.result.windows.is_empty()) {
        out.push_str(FAULT_LEGEND);
    }
    let details = fault_details(rows);
    if !details.is_empty() {
        out.push('\n');
        out.push_str(&details);
    }
    out
}

/// Under a table with a step with faults: how to read its ratios.
const FAULT_LEGEND: &str = "\nvs lab 01 of a step with faults: before the first fault → in its worst window during a fault → after the last one\n";

/// A step with faults against the reference, window by window: e2e p99
/// and records/s before the first fault, in the worst "during" window
/// and after the last fault (`p99 1.1x → 27x → 1.2x`). The whole window's
/// ratio would average the fault away, and its noise band, wide by the
/// fault itself, would read as "no difference".
fn fault_vs(r: &StepResult, reference: &StepResult) -> Option<String> {
    let ws = &r.windows;
    let before = ws.iter().find(|w| w.name == "before");
    let during = ws
        .iter()
        .filter(|w| w.name == "during")
        .max_by(|a, b| a.e2e_p99_ms.total_cmp(&b.e2e_p99_ms))?;
    let after = ws.iter().rev().find(|w| w.name == "after");
    let x = |v: f64, by: f64| {
        if by > 0.0 {
            format!("{}x", fmt_x(v / by))
        } else {
            "–".into()
        }
    };
    let arrow = |f: &dyn Fn(&crate::model::Window) -> String| {
        [before, Some(during), after]
            .iter()
            .map(|w| w.map(f).unwrap_or_else(|| "–".into()))
            .collect::<Vec<_>>()
            .join(" → ")
    };
    let (p99, rate) = (
        reference.e2e_latency_ms.p99,
        reference.throughput.msgs_per_s,
    );
    Some(format!(
        "p99 {}, rec/s {}",
        arrow(&|w| x(w.e2e_p99_ms, p99)),
        arrow(&|w| x(w.records_per_s, rate))
    ))
}

fn summary(rows: &[Row]) -> comfy_table::Table {
    // Failed and unsent sends only where a run has any: the durability
    // labs are about them, the other labs never show them.
    let failed = rows.iter().any(|r| r.result.failed > 0);
    let unsent = rows.iter().any(|r| r.result.unsent > 0);
    let mut header = vec![
        "lab",
        "step",
        "what changed",
        "records/s",
        "e2e p99 ms",
        "publish p99 ms",
        "p99 per second",
        "vs lab 01",
        "GC pauses",
        "lost",
    ];
    if failed {
        header.push("failed");
    }
    if unsent {
        header.push("unsent");
    }
    header.push("expected");
    let mut t = new_table(&header);
    let reference = rows.iter().find(|r| r.step == "reference");
    for r in rows {
        let vs = match (r.vs_reference, reference) {
            (Some(_), Some(base)) if !r.result.windows.is_empty() => {
                fault_vs(&r.result, &base.result).unwrap_or_default()
            }
            (Some(x), _) => format!(
                "{}, {}",
                ratio_cell(x.throughput, x.throughput_band, "rec/s", false),
                ratio_cell(x.p99, x.p99_band, "p99", true)
            ),
            (None, _) => "reference".into(),
        };
        let lost = if r.result.complete {
            group(r.result.lost)
        } else {
            format!("{} (incomplete)", group(r.result.lost))
        };
        let step = if r.result.runs > 1 {
            format!("{} ({} runs)", r.step, r.result.runs)
        } else {
            r.step.clone()
        };
        let mut cells = vec![
            r.lab.clone(),
            step,
            r.what.clone(),
            fmt_rate(r.result.throughput.msgs_per_s),
            fmt_ms(r.result.e2e_latency_ms.p99),
            fmt_ms(r.result.publish_latency_ms.p99),
            sparkline(&r.result.e2e_timeline),
            vs,
            gc_cell(r.result.gc.as_ref()),
            lost,
        ];
        if failed {
            cells.push(group(r.result.failed));
        }
        if unsent {
            cells.push(group(r.result.unsent));
        }
        cells.push(
            r.verdict()
                .map(Verdict::as_str)
                .unwrap_or_default()
                .to_string(),
        );
        t.add_row(cells);
    }
    align_numbers(&mut t);
    for (i, max) in [(2, 48), (7, 40)] {
        if let Some(c) = t.column_mut(i) {
            c.set_constraint(comfy_table::ColumnConstraint::UpperBoundary(
                comfy_table::Width::Fixed(max),
            ));
            c.set_cell_alignment(comfy_table::CellAlignment::Left);
        }
    }
    t
}

/// For every step with faults, what they did: the fault lines, the window
/// table and the read-back (the same text `klab run` prints), under the
/// step's name. Empty when no step had faults.
fn fault_details(rows: &[Row]) -> String {
    rows.iter()
        .filter(|r| !r.result.faults.is_empty())
        .map(|r| {
            format!(
                "{} {}:\n{}",
                r.lab,
                r.step,
                crate::stats::table::fault_text(&r.result)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn kind_of(step: &str) -> Kind {
    match step {
        "reference" => Kind::Reference,
        "degraded" => Kind::Degraded,
        _ => Kind::Fixed,
    }
}

/// A result's faults on its timeline's axis.
pub fn fault_markers(r: &StepResult) -> Vec<(f64, String)> {
    r.faults
        .iter()
        .map(|f| {
            let whom = match f.consumer {
                Some(c) => format!("c{c}"),
                None => f.broker.to_string(),
            };
            (
                r.window_start_s + f.at_s,
                format!("{} {whom}", f.action.as_str()),
            )
        })
        .collect()
}

/// A result's cluster changes (ISR, leaders) on its timeline's axis.
pub fn change_markers(r: &StepResult) -> Vec<(f64, String)> {
    crate::model::change_markers(&r.cluster)
        .into_iter()
        .map(|(at, name)| (r.window_start_s + at, name))
        .collect()
}

/// Every step's per-second e2e p99 (timeline.svg).
fn timeline_plot(title: &str, rows: &[Row]) -> String {
    let series: Vec<plot::Series<'_>> = rows
        .iter()
        .map(|r| plot::Series {
            label: format!("{} {}", r.lab.split('-').next().unwrap_or(&r.lab), r.step),
            kind: kind_of(&r.step),
            timeline: &r.result.e2e_timeline,
            markers: fault_markers(&r.result),
            changes: change_markers(&r.result),
        })
        .collect();
    plot::timelines(title, &series)
}

pub fn summary_plot(title: &str, rows: &[Row]) -> String {
    let bars: Vec<Bar> = rows
        .iter()
        .map(|r| Bar {
            label: format!("{} {}", r.lab.split('-').next().unwrap_or(&r.lab), r.step),
            kind: kind_of(&r.step),
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
    write_json(
        &dir.join("verdicts.json"),
        &rows.iter().map(RowJson::of).collect::<Vec<_>>(),
    )?;
    crate::stats::report::write_atomic(
        &dir.join("summary.txt"),
        format!(
            "{}{}\n{}",
            file_text(&mut summary(rows)),
            if rows.iter().any(|r| !r.result.windows.is_empty()) {
                FAULT_LEGEND
            } else {
                ""
            },
            fault_details(rows)
        )
        .as_bytes(),
    )?;
    crate::stats::report::write_atomic(
        &dir.join("summary.svg"),
        summary_plot(title, rows).as_bytes(),
    )?;
    crate::stats::report::write_atomic(
        &dir.join("timeline.svg"),
        timeline_plot(title, rows).as_bytes(),
    )?;
    if let Some(j) = extra_json {
        write_json(j, &results)?;
    }
    Ok(())
}
