//! A capacity search as JSON, as a table and as a latency–throughput curve.

use super::{Capacity, Phase, Ratio, Settings, Stop};
use crate::model::Workload;
use crate::stats::plot::{esc, nice_max, svg_head};
use crate::stats::table::{align_numbers, fmt_ms, fmt_rate, new_table};
use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// `capacity.json`: the first configuration's answer and probes at the
/// top, the second one (`--compare`) beside it with the ratio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityReport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lab: Option<String>,
    pub settings: Settings,
    /// The workload of every probe, but its rate.
    pub workload: Workload,
    #[serde(flatten)]
    pub capacity: Capacity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compared_with: Option<Capacity>,
    /// `compared_with`'s capacity over the first one's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<Ratio>,
    pub started_at: String,
    pub wall_seconds: f64,
    /// A capacity lab's `[expect.capacity]` and how this run met it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<CapacityExpect>,
}

/// `[expect.capacity] fixed_at_least` judged: the fix's capacity over the
/// degraded configuration's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CapacityExpect {
    pub fixed_at_least: f64,
    /// None when a search found no capacity (nothing to divide).
    pub pass: Option<bool>,
    /// The limit lies inside the range the two brackets allow: the search's
    /// resolution cannot tell, whatever the point ratio says.
    pub within_resolution: bool,
}

impl CapacityExpect {
    pub fn judge(fixed_at_least: f64, ratio: Option<&Ratio>) -> CapacityExpect {
        CapacityExpect {
            fixed_at_least,
            pass: ratio.map(|q| q.ratio >= fixed_at_least),
            within_resolution: ratio
                .is_some_and(|q| q.min < fixed_at_least && fixed_at_least <= q.max),
        }
    }

    pub fn line(&self, r: Option<&Ratio>) -> String {
        let want = format!(
            "capacity of the fix ≥ {}x the degraded one's",
            self.fixed_at_least
        );
        match (self.pass, r) {
            (Some(pass), Some(q)) => format!(
                "expected {want}: {} ({:.2}x){}",
                if pass { "PASS" } else { "NOT YET" },
                q.ratio,
                if self.within_resolution {
                    format!(
                        " ≈ the limit lies within {:.2}x to {:.2}x, the range the brackets allow: run it again to be sure",
                        q.min, q.max
                    )
                } else {
                    String::new()
                }
            ),
            _ => format!("expected {want}: cannot tell, a search found no capacity"),
        }
    }
}

impl CapacityReport {
    /// The report of the searches of one configuration, or of two (the
    /// second compared with the first, `ratio` = second / first).
    /// `workload` is the first's; `started` when the searches began.
    pub fn assemble(
        lab: Option<String>,
        settings: Settings,
        workload: Workload,
        mut caps: Vec<Capacity>,
        started_at: String,
        started: std::time::Instant,
    ) -> CapacityReport {
        let b = if caps.len() > 1 { caps.pop() } else { None };
        let first = caps.pop().unwrap_or_else(|| Capacity {
            name: "base".into(),
            capacity_records_per_s: None,
            failed_at_records_per_s: None,
            max_records_per_s: None,
            stop: Stop::Interrupted,
            probes: Vec::new(),
        });
        let ratio = b.as_ref().and_then(|b| super::ratio(&first, b));
        CapacityReport {
            lab,
            settings,
            workload,
            capacity: first,
            compared_with: b,
            ratio,
            started_at,
            wall_seconds: started.elapsed().as_secs_f64(),
            expect: None,
        }
    }

    pub fn searches(&self) -> Vec<&Capacity> {
        std::iter::once(&self.capacity)
            .chain(self.compared_with.as_ref())
            .collect()
    }

    /// A capacity lab's verdict, the one rule `lab run`, `lab check` and
    /// the rehearsal judge by: Ok when the fix carried at least the lab's
    /// bound more, else why not. Both searches converged: the point ratio
    /// decides. A search that ran out of probes with its answer bracketed
    /// (a rate that passed, one above it that failed) still decides when
    /// even the bracket's worst case (the fix's capacity over the rate the
    /// degraded configuration failed at) meets the bound: no rate inside
    /// the brackets could turn the verdict.
    pub fn lab_verdict(&self) -> Result<(), String> {
        let Some(e) = &self.expect else {
            return Err("not a capacity lab (no [expect.capacity])".into());
        };
        let Some(q) = &self.ratio else {
            return Err("no capacity ratio (a search found no capacity)".into());
        };
        let searches = self.searches();
        if searches.iter().all(|c| c.stop == Stop::Converged) {
            return if q.ratio >= e.fixed_at_least {
                Ok(())
            } else {
                Err(format!(
                    "the fix's capacity ratio {:.2}x is below the lab's bound {}x",
                    q.ratio, e.fixed_at_least
                ))
            };
        }
        let bracketed = searches.iter().all(|c| {
            matches!(c.stop, Stop::Converged | Stop::Budget)
                && c.capacity_records_per_s.is_some()
                && c.failed_at_records_per_s.is_some()
        });
        if !bracketed {
            return Err(
                "a capacity search did not converge, so the ratio could not be judged".into(),
            );
        }
        if q.min >= e.fixed_at_least {
            Ok(())
        } else {
            Err(format!(
                "a capacity search ran out of probes, and its brackets allow a ratio of {:.2}x, below the lab's bound {}x",
                q.min, e.fixed_at_least
            ))
        }
    }
}

pub fn stop_text(s: Stop) -> &'static str {
    match s {
        Stop::Searching => "still searching",
        Stop::Converged => "converged",
        Stop::Budget => "the probe budget ran out before the bracket was narrow enough",
        Stop::BelowFloor => "no rate passed, down to 1/64 of the max figure",
        Stop::AboveCeiling => "every rate passed, up to 4x the max figure",
        Stop::NoScale => "the max probe measured no throughput",
        Stop::Interrupted => "interrupted",
        Stop::BelowChallenge => "below the challenge rate (a warm search measures no further)",
    }
}

/// One line per configuration: the answer, its bracket, how it ended.
pub fn answer_lines(r: &CapacityReport) -> String {
    let s = &r.settings;
    let mut out = String::new();
    for c in r.searches() {
        let line = match c.capacity_records_per_s {
            Some(cap) => {
                let upper = c
                    .failed_at_records_per_s
                    .map(|h| format!(", {}/s failed", fmt_rate(h)))
                    .unwrap_or_default();
                format!(
                    "capacity ({}) at e2e p99 ≤ {} ms: {} records/s (±{:.0}%{upper}; {})",
                    c.name,
                    s.slo_p99_ms,
                    fmt_rate(cap),
                    s.resolution * 100.0,
                    stop_text(c.stop)
                )
            }
            None => format!(
                "capacity ({}) at e2e p99 ≤ {} ms: none found ({})",
                c.name,
                s.slo_p99_ms,
                stop_text(c.stop)
            ),
        };
        let _ = writeln!(out, "{line}");
    }
    if let (Some(q), Some(b)) = (&r.ratio, &r.compared_with) {
        let _ = writeln!(
            out,
            "{} / {}: {:.2}x (the brackets allow {:.2}x to {:.2}x)",
            b.name, r.capacity.name, q.ratio, q.min, q.max
        );
    }
    if let Some(e) = &r.expect {
        let _ = writeln!(out, "{}", e.line(r.ratio.as_ref()));
    }
    out
}

/// Every probe in the order measured.
pub fn table(r: &CapacityReport) -> comfy_table::Table {
    let searches = r.searches();
    let two = searches.len() > 1;
    let mut header = vec!["probe"];
    if two {
        header.push("config");
    }
    header.extend([
        "phase",
        "offered/s",
        "acked/s",
        "read/s",
        "e2e p50 ms",
        "e2e p99 ms",
        "lost",
        "verdict",
    ]);
    let mut t = new_table(&header);
    let mut rows: Vec<(&str, &super::Probe)> = searches
        .iter()
        .flat_map(|c| c.probes.iter().map(move |p| (c.name.as_str(), p)))
        .collect();
    rows.sort_by_key(|(_, p)| p.n);
    for (name, p) in rows {
        let mut row = vec![p.n.to_string()];
        if two {
            row.push(name.to_string());
        }
        let verdict = if p.phase == Phase::Max && p.missed.is_empty() {
            "sets the scale".to_string()
        } else if p.phase == Phase::Max {
            p.missed.join("; ")
        } else if p.pass {
            "pass".to_string()
        } else {
            format!("fail: {}", p.missed.join("; "))
        };
        row.extend([
            p.phase.to_string(),
            p.offered_records_per_s
                .map(fmt_rate)
                .unwrap_or_else(|| "max".into()),
            fmt_rate(p.acked_records_per_s),
            fmt_rate(p.read_records_per_s),
            fmt_ms(p.p50_ms),
            fmt_ms(p.p99_ms),
            p.lost.to_string(),
            verdict,
        ]);
        t.add_row(row);
    }
    align_numbers(&mut t);
    t
}

const COLORS: [&str; 2] = ["#2980b9", "#d35400"];

/// The latency–throughput curve: e2e p50 (dashed) and p99 (solid) against
/// the offered rate, a filled dot per passing probe and a hollow one per
/// failing probe, the SLO as a red line and each configuration's capacity
/// (the knee) as a vertical line.
pub fn svg(title: &str, r: &CapacityReport) -> String {
    let (w, h) = (760.0, 440.0);
    let (left, right, top, bottom) = (64.0, 24.0, 56.0, 48.0);
    let (iw, ih) = (w - left - right, h - top - bottom);
    let searches = r.searches();
    let x_max = searches
        .iter()
        .flat_map(|c| {
            c.probes
                .iter()
                .filter_map(|p| p.offered_records_per_s)
                .chain(c.max_records_per_s)
        })
        .fold(0.0f64, f64::max);
    let x_max = nice_max(x_max * 1.05);
    // Log axis from 0.1 ms to 10 s.
    let (lo, hi) = (-1.0f64, 4.0f64);
    let x = |v: f64| left + iw * (v / x_max).clamp(0.0, 1.0);
    let y = |ms: f64| {
        let l = ms.max(0.1).log10().clamp(lo, hi);
        top + ih * (1.0 - (l - lo) / (hi - lo))
    };
    let mut s = svg_head(
        (w, h, left),
        title,
        38,
        "e2e latency against the offered rate: p99 (solid) and p50 (dashed); filled dots passed, hollow ones failed",
    );
    let _ = writeln!(
        s,
        r##"<rect x="{left}" y="{top}" width="{iw:.1}" height="{ih:.1}" fill="none" stroke="#ccc"/>"##
    );
    for (v, name) in [
        (0.1, "0.1"),
        (1.0, "1"),
        (10.0, "10"),
        (100.0, "100"),
        (1000.0, "1 s"),
        (10000.0, "10 s"),
    ] {
        let yy = y(v);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" fill="#888" text-anchor="end">{name}</text>"##,
            left + iw,
            left - 4.0,
            yy + 3.0
        );
    }
    for i in 0..=5 {
        let v = x_max * i as f64 / 5.0;
        let xx = x(v);
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.1}" x2="{xx:.1}" y1="{top}" y2="{:.1}" stroke="#f3f3f3"/><text x="{xx:.1}" y="{:.1}" fill="#888" text-anchor="middle">{}</text>"##,
            top + ih,
            top + ih + 14.0,
            short(v)
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" fill="#555" text-anchor="middle">offered records/s</text><text x="14" y="{:.1}" fill="#555" transform="rotate(-90 14 {:.1})" text-anchor="middle">e2e latency, ms (log)</text>"##,
        left + iw / 2.0,
        h - 12.0,
        top + ih / 2.0,
        top + ih / 2.0
    );
    let slo = y(r.settings.slo_p99_ms);
    let _ = writeln!(
        s,
        r##"<line x1="{left}" x2="{:.1}" y1="{slo:.1}" y2="{slo:.1}" stroke="#c0392b" stroke-dasharray="6 3"/><text x="{:.1}" y="{:.1}" fill="#c0392b" text-anchor="end">SLO p99 {} ms</text>"##,
        left + iw,
        left + iw - 4.0,
        slo - 4.0,
        r.settings.slo_p99_ms
    );
    for (i, c) in searches.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut pts: Vec<&super::Probe> = c
            .probes
            .iter()
            .filter(|p| p.offered_records_per_s.is_some() && p.p99_ms.is_finite())
            .collect();
        pts.sort_by(|a, b| {
            a.offered_records_per_s
                .partial_cmp(&b.offered_records_per_s)
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let rate = |p: &super::Probe| p.offered_records_per_s.unwrap_or(0.0);
        for (field, dash) in [(0usize, ""), (1, r#" stroke-dasharray="4 3""#)] {
            let line: Vec<String> = pts
                .iter()
                .map(|p| {
                    let ms = if field == 0 { p.p99_ms } else { p.p50_ms };
                    format!("{:.1},{:.1}", x(rate(p)), y(ms))
                })
                .collect();
            if line.len() > 1 {
                let _ = writeln!(
                    s,
                    r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="1.6"{dash}/>"#,
                    line.join(" ")
                );
            }
        }
        for p in &pts {
            let fill = if p.pass { color } else { "white" };
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{fill}" stroke="{color}" stroke-width="1.5"><title>{} probe {} ({}): {}/s offered, p50 {} ms, p99 {} ms, {}</title></circle>"#,
                x(rate(p)),
                y(p.p99_ms),
                esc(&c.name),
                p.n,
                p.phase,
                fmt_rate(rate(p)),
                fmt_ms(p.p50_ms),
                fmt_ms(p.p99_ms),
                if p.pass {
                    "pass".to_string()
                } else {
                    esc(&p.missed.join("; "))
                }
            );
        }
        if let Some(cap) = c.capacity_records_per_s {
            let xx = x(cap);
            let _ = writeln!(
                s,
                r#"<line x1="{xx:.1}" x2="{xx:.1}" y1="{top}" y2="{:.1}" stroke="{color}" stroke-width="1.5" stroke-dasharray="2 2"/><text x="{:.1}" y="{:.1}" fill="{color}">{} capacity {}/s</text>"#,
                top + ih,
                xx + 4.0,
                top + 14.0 + 14.0 * i as f64,
                esc(&c.name),
                short(cap)
            );
        }
        if let Some(m) = c.max_records_per_s {
            let xx = x(m);
            let yb = top + ih;
            let _ = writeln!(
                s,
                r#"<path d="M{xx:.1},{:.1} l-5,8 h10 z" fill="{color}"><title>{} max probe: {}/s</title></path>"#,
                yb - 8.0,
                esc(&c.name),
                fmt_rate(m)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

fn short(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.0}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Probe, Settings, ratio};
    use super::*;

    fn cap(name: &str, knee: f64) -> Capacity {
        let p = |n, phase, offered: Option<f64>, pass| Probe {
            n,
            phase,
            offered_records_per_s: offered,
            acked_records_per_s: offered.unwrap_or(knee * 1.3),
            read_records_per_s: offered.unwrap_or(knee * 1.3),
            p50_ms: 2.0,
            p99_ms: if pass { 20.0 } else { 400.0 },
            publish_p99_ms: 1.0,
            lost: 0,
            failed: 0,
            complete: true,
            pass,
            missed: if pass || offered.is_none() {
                Vec::new()
            } else {
                vec!["e2e p99 400.0 ms > SLO 50 ms".into()]
            },
            result_file: None,
        };
        Capacity {
            name: name.into(),
            capacity_records_per_s: Some(knee),
            failed_at_records_per_s: Some(knee * 1.08),
            max_records_per_s: Some(knee * 1.3),
            stop: Stop::Converged,
            probes: vec![
                p(1, Phase::Max, None, false),
                p(2, Phase::Bracket, Some(knee), true),
                p(3, Phase::Bracket, Some(knee * 1.08), false),
                p(4, Phase::Confirm, Some(knee), true),
            ],
        }
    }

    fn report(b: Option<Capacity>) -> CapacityReport {
        let a = cap("base", 40_000.0);
        let ratio = b.as_ref().and_then(|b| ratio(&a, b));
        CapacityReport {
            lab: None,
            settings: Settings::default(),
            workload: Workload::default(),
            capacity: a,
            compared_with: b,
            ratio,
            expect: None,
            started_at: "now".into(),
            wall_seconds: 1.0,
        }
    }

    #[test]
    fn the_curve_has_a_dot_per_rate_probe_the_slo_and_the_knee() {
        let one = svg("klab capacity <base>", &report(None));
        assert_eq!(one.matches("<circle").count(), 3);
        assert_eq!(one.matches("<polyline").count(), 2);
        assert!(one.contains("SLO p99 50 ms"));
        assert!(one.contains("base capacity 40k/s"));
        assert!(one.contains("klab capacity &lt;base&gt;"));
        assert!(one.trim_end().ends_with("</svg>"));
        let two = svg("t", &report(Some(cap("b.toml", 52_000.0))));
        assert_eq!(two.matches("<circle").count(), 6);
        assert!(two.contains("b.toml capacity 52k/s"));
    }

    #[test]
    fn the_json_has_the_answer_and_every_probe_at_the_top() {
        let r = report(Some(cap("b", 60_000.0)));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["capacity_records_per_s"], 40_000.0);
        assert_eq!(v["probes"].as_array().unwrap().len(), 4);
        assert_eq!(v["probes"][1]["phase"], "bracket");
        assert_eq!(v["stop"], "converged");
        assert_eq!(v["compared_with"]["capacity_records_per_s"], 60_000.0);
        assert!((v["ratio"]["ratio"].as_f64().unwrap() - 1.5).abs() < 1e-9);
        let back: CapacityReport = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn the_table_and_the_answer_say_why_a_probe_failed() {
        let r = report(Some(cap("b", 60_000.0)));
        let t = table(&r).to_string();
        assert!(t.contains("fail: e2e p99 400.0 ms > SLO 50 ms"), "{t}");
        assert!(t.contains("sets the scale"));
        let a = answer_lines(&r);
        assert!(
            a.contains("capacity (base) at e2e p99 ≤ 50 ms: 40,000 records/s (±5%, 43,200/s failed; converged)"),
            "{a}"
        );
        assert!(a.contains("b / base: 1.50x"), "{a}");
    }

    #[test]
    fn a_capacity_expectation_is_judged_with_its_brackets() {
        let q = |ratio, min, max| crate::capacity::Ratio { ratio, min, max };
        let e = CapacityExpect::judge(1.3, Some(&q(1.8, 1.6, 2.0)));
        assert_eq!((e.pass, e.within_resolution), (Some(true), false));
        assert!(e.line(Some(&q(1.8, 1.6, 2.0))).contains("PASS (1.80x)"));
        let e = CapacityExpect::judge(1.3, Some(&q(1.25, 1.1, 1.4)));
        assert_eq!((e.pass, e.within_resolution), (Some(false), true));
        let line = e.line(Some(&q(1.25, 1.1, 1.4)));
        assert!(line.contains("NOT YET") && line.contains("≈"), "{line}");
        let e = CapacityExpect::judge(1.3, None);
        assert_eq!(e.pass, None);
        assert!(e.line(None).contains("cannot tell"));
    }

    #[test]
    fn a_search_out_of_probes_decides_only_when_its_brackets_cannot_turn_the_verdict() {
        let judged = |stop: Stop, fixed_knee: f64, bound: f64| {
            let mut b = cap("fixed", fixed_knee);
            b.stop = stop;
            let mut r = report(Some(b));
            r.capacity.stop = Stop::Budget;
            r.expect = Some(CapacityExpect::judge(bound, r.ratio.as_ref()));
            r.lab_verdict()
        };
        // Degraded 40,000/s (failed at 43,200/s, out of probes), fixed
        // 200,000/s: 4.63x at worst, the bound 2x holds whatever the rates
        // inside the brackets.
        assert_eq!(judged(Stop::Converged, 200_000.0, 2.0), Ok(()));
        // The point ratio (1.5x) passes a 1.45x bound, the worst case
        // (1.39x) does not: not judged as passing.
        let e = judged(Stop::Converged, 60_000.0, 1.45).unwrap_err();
        assert!(
            e.contains("ran out of probes") && e.contains("1.39x"),
            "{e}"
        );
        // A search without a bracket cannot be judged at all.
        let mut r = report(Some(cap("fixed", 200_000.0)));
        r.capacity.stop = Stop::AboveCeiling;
        r.expect = Some(CapacityExpect::judge(2.0, r.ratio.as_ref()));
        assert!(r.lab_verdict().unwrap_err().contains("did not converge"));
        // Both converged: the point ratio decides.
        let mut r = report(Some(cap("fixed", 60_000.0)));
        r.expect = Some(CapacityExpect::judge(1.45, r.ratio.as_ref()));
        assert_eq!(r.lab_verdict(), Ok(()));
    }
}
