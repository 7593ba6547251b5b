//! Small SVG charts, written by hand (no plotting dependency): one bar per
//! step for throughput on a linear axis, and a dot per step for a latency
//! on a log axis. Used by the demo, the labs, the tuner and the bench.

use std::fmt::Write;

/// How a bar is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Reference,
    Degraded,
    Fixed,
    Accepted,
    Rejected,
    Peer,
    /// klab itself, beside a peer tool (`klab bench`).
    Klab,
    /// A trial that scored 0: it lost records or did not complete.
    Failed,
}

impl Kind {
    fn color(self) -> &'static str {
        match self {
            Kind::Reference => "#7f8c8d",
            Kind::Degraded => "#d35400",
            Kind::Fixed => "#27ae60",
            Kind::Accepted => "#2980b9",
            Kind::Rejected => "#bdc3c7",
            Kind::Peer => "#8e44ad",
            Kind::Klab => "#2980b9",
            Kind::Failed => "#c0392b",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Reference => "reference",
            Kind::Degraded => "degraded",
            Kind::Fixed => "fixed",
            Kind::Accepted => "accepted",
            Kind::Rejected => "rejected",
            Kind::Peer => "peer",
            Kind::Klab => "klab",
            Kind::Failed => "failed (scored 0)",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    pub kind: Kind,
    /// Left axis (e.g. records/s).
    pub value: f64,
    /// Right axis, log scale (e.g. e2e p99 in ms); None draws no dot.
    pub latency: Option<f64>,
}

/// An SVG's start: its root element, `width` by `height` in a sans-serif
/// font of `font_size`, on a white background.
fn svg_open(width: f64, height: f64, font_size: u32) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" font-family="sans-serif" font-size="{font_size}">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    s
}

/// [`svg_open`] in an 11-point font, then `title` in bold at `left` and
/// the grey `subtitle` under it at height `subtitle_y`.
pub fn svg_head(
    (width, height, left): (f64, f64, f64),
    title: &str,
    subtitle_y: u32,
    subtitle: &str,
) -> String {
    let mut s = svg_open(width, height, 11);
    let _ = writeln!(
        s,
        r##"<text x="{left}" y="22" font-size="15" font-weight="bold">{}</text><text x="{left}" y="{subtitle_y}" fill="#555">{subtitle}</text>"##,
        esc(title)
    );
    s
}

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A round axis maximum at or above `x`.
pub fn nice_max(x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(x.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * p >= x {
            return m * p;
        }
    }
    10.0 * p
}

fn short(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.0}k", x / 1e3)
    } else if x >= 10.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// Renders bars (left axis, `value_label`) and latency dots (right log
/// axis, `latency_label`).
pub fn bars_and_latency(
    title: &str,
    value_label: &str,
    latency_label: &str,
    bars: &[Bar],
) -> String {
    let n = bars.len().max(1);
    let (left, right, top, bottom) = (80.0, 80.0, 50.0, 150.0);
    let slot = (900.0 / n as f64).clamp(28.0, 70.0);
    let width = left + right + slot * n as f64;
    let height = 460.0;
    let plot_h = height - top - bottom;
    let vmax = nice_max(bars.iter().map(|b| b.value).fold(0.0, f64::max));
    let lats: Vec<f64> = bars
        .iter()
        .filter_map(|b| b.latency)
        .filter(|l| *l > 0.0)
        .collect();
    let lmin = lats.iter().cloned().fold(f64::INFINITY, f64::min).max(0.01);
    let lmax = lats.iter().cloned().fold(0.0, f64::max).max(lmin * 10.0);
    let (dlo, dhi) = (
        lmin.log10().floor(),
        lmax.log10().ceil().max(lmin.log10().floor() + 1.0),
    );
    let ly = |v: f64| top + plot_h * (1.0 - (v.max(1e-9).log10() - dlo) / (dhi - dlo));
    let vy = |v: f64| top + plot_h * (1.0 - v / vmax);

    let mut s = svg_open(width, height, 12);
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="24" font-size="16" font-weight="bold">{}</text>"#,
        esc(title)
    );
    // Left axis with 5 ticks.
    for i in 0..=5 {
        let v = vmax * i as f64 / 5.0;
        let y = vy(v);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            width - right,
            left - 6.0,
            y + 4.0,
            short(v)
        );
    }
    let _ = writeln!(
        s,
        r#"<text transform="translate(18,{:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        top + plot_h / 2.0,
        esc(value_label)
    );
    // Right (log) axis.
    if !lats.is_empty() {
        let mut d = dlo;
        while d <= dhi + 1e-9 {
            let v = 10f64.powf(d);
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
                width - right + 6.0,
                ly(v) + 4.0,
                short(v)
            );
            d += 1.0;
        }
        let _ = writeln!(
            s,
            r#"<text transform="translate({:.1},{:.1}) rotate(90)" text-anchor="middle">{}</text>"#,
            width - 18.0,
            top + plot_h / 2.0,
            esc(latency_label)
        );
    }
    // Bars and labels.
    let mut points = Vec::new();
    for (i, b) in bars.iter().enumerate() {
        let x = left + slot * i as f64 + slot * 0.15;
        let w = slot * 0.7;
        let y = vy(b.value.max(0.0));
        let _ = writeln!(
            s,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{:.1}" fill="{}"><title>{}: {} ({})</title></rect>"#,
            (top + plot_h - y).max(0.0),
            b.kind.color(),
            esc(&b.label),
            short(b.value),
            b.kind.name()
        );
        let cx = x + w / 2.0;
        let _ = writeln!(
            s,
            r#"<text transform="translate({cx:.1},{:.1}) rotate(55)" font-size="11">{}</text>"#,
            top + plot_h + 10.0,
            esc(&b.label)
        );
        if let Some(l) = b.latency.filter(|l| *l > 0.0) {
            points.push((cx, ly(l), l));
        }
    }
    if points.len() > 1 {
        let path: Vec<String> = points
            .iter()
            .map(|(x, y, _)| format!("{x:.1},{y:.1}"))
            .collect();
        let _ = writeln!(
            s,
            r##"<polyline points="{}" fill="none" stroke="#c0392b" stroke-width="1.5" stroke-dasharray="4 3"/>"##,
            path.join(" ")
        );
    }
    for (x, y, l) in &points {
        let _ = writeln!(
            s,
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="4" fill="#c0392b"><title>{:.2} ms</title></circle>"##,
            l
        );
    }
    // Legend.
    let mut kinds: Vec<Kind> = Vec::new();
    for b in bars {
        if !kinds.contains(&b.kind) {
            kinds.push(b.kind);
        }
    }
    let mut lx = left + 260.0;
    for k in kinds {
        let _ = writeln!(
            s,
            r#"<rect x="{lx:.1}" y="32" width="10" height="10" fill="{}"/><text x="{:.1}" y="41">{}</text>"#,
            k.color(),
            lx + 14.0,
            k.name()
        );
        lx += 90.0;
    }
    if !lats.is_empty() {
        let _ = writeln!(
            s,
            r##"<circle cx="{:.1}" cy="37" r="4" fill="#c0392b"/><text x="{:.1}" y="41">{} (right, log)</text>"##,
            lx + 5.0,
            lx + 14.0,
            esc(latency_label)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// One step's per-second e2e p99 (`[seconds, p99 ms, max ms]`), for
/// [`timelines`].
pub struct Series<'a> {
    pub label: String,
    pub kind: Kind,
    pub timeline: &'a [[f64; 3]],
    /// Where faults fired, on the timeline's axis (seconds), with a name.
    pub markers: Vec<(f64, String)>,
    /// What the cluster did (an ISR shrank, a leader moved), on the same
    /// axis: drawn apart from the faults, labelled where there is room.
    pub changes: Vec<(f64, String)>,
}

/// Small multiples: a panel per step with its per-second e2e p99 (line)
/// and max (dots), all on one log axis from 1 ms to 10 s so panels compare
/// at a glance: a bad second is a spike, a backlog a climb.
pub fn timelines(title: &str, series: &[Series<'_>]) -> String {
    let cols = 4usize;
    let (pw, ph) = (230.0, 110.0);
    let (left, top) = (40.0, 44.0);
    let rows = series.len().div_ceil(cols).max(1);
    let width = left + cols as f64 * pw + 10.0;
    let height = top + rows as f64 * ph + 10.0;
    let (lo, hi) = (0.0f64, 4.0f64); // log10 of 1 ms and 10 s
    let mut s = svg_head(
        (width, height, left),
        title,
        36,
        "e2e p99 per second (line) and max (dots), log scale 1 ms – 10 s; faults purple, ISR and leader changes orange",
    );
    for (n, se) in series.iter().enumerate() {
        let (cx, cy) = (left + (n % cols) as f64 * pw, top + (n / cols) as f64 * ph);
        let (iw, ih) = (pw - 20.0, ph - 34.0);
        let (x0, y0) = (cx, cy + 16.0);
        let _ = writeln!(
            s,
            r#"<text x="{x0:.1}" y="{:.1}" fill="{}" font-weight="bold">{}</text>"#,
            cy + 11.0,
            se.kind.color(),
            esc(&se.label)
        );
        let _ = writeln!(
            s,
            r##"<rect x="{x0:.1}" y="{y0:.1}" width="{iw:.1}" height="{ih:.1}" fill="none" stroke="#ccc"/>"##
        );
        for (v, name) in [(1.0, "1"), (10.0, "10"), (100.0, "100"), (1000.0, "1s")] {
            let y = y0 + ih * (1.0 - (f64::log10(v) - lo) / (hi - lo));
            let _ = writeln!(
                s,
                r##"<line x1="{x0:.1}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" font-size="9" fill="#888" text-anchor="end">{name}</text>"##,
                x0 + iw,
                x0 - 3.0,
                y + 3.0
            );
        }
        let pts = se.timeline;
        if pts.is_empty() {
            continue;
        }
        let t0 = pts[0][0];
        let t1 = pts[pts.len() - 1][0].max(t0 + 1.0);
        let x = |t: f64| x0 + iw * (t - t0) / (t1 - t0);
        let y = |ms: f64| {
            let l = ms.max(1.0).log10().clamp(lo, hi);
            y0 + ih * (1.0 - (l - lo) / (hi - lo))
        };
        for (at, name) in &se.markers {
            let mx = x(*at).clamp(x0, x0 + iw);
            let _ = writeln!(
                s,
                r##"<line x1="{mx:.1}" x2="{mx:.1}" y1="{y0:.1}" y2="{:.1}" stroke="#8e44ad" stroke-width="1.5" stroke-dasharray="3 2"><title>{}</title></line><text x="{:.1}" y="{:.1}" font-size="9" fill="#8e44ad">{}</text>"##,
                y0 + ih,
                esc(name),
                mx + 2.0,
                y0 + 9.0,
                esc(name)
            );
        }
        // Labels along the panel's foot, each at least this far from the
        // last one written (a line without a label still has its tooltip).
        let mut free_from = f64::MIN;
        for (at, name) in &se.changes {
            let mx = x(*at).clamp(x0, x0 + iw);
            let label = if mx >= free_from {
                free_from = mx + 6.0 * name.chars().count() as f64;
                format!(
                    r##"<text x="{:.1}" y="{:.1}" font-size="9" fill="#d35400">{}</text>"##,
                    mx + 2.0,
                    y0 + ih - 3.0,
                    esc(name)
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                s,
                r##"<line class="change" x1="{mx:.1}" x2="{mx:.1}" y1="{y0:.1}" y2="{:.1}" stroke="#d35400" stroke-width="1" stroke-dasharray="1 2"><title>{}</title></line>{label}"##,
                y0 + ih,
                esc(name),
            );
        }
        let line: Vec<String> = pts
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p[0]), y(p[1])))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="1.6"/>"#,
            line.join(" "),
            se.kind.color()
        );
        for p in pts {
            let _ = writeln!(
                s,
                r##"<circle cx="{:.1}" cy="{:.1}" r="1.6" fill="#c0392b"><title>{:.0} s: p99 {:.1} ms, max {:.1} ms</title></circle>"##,
                x(p[0]),
                y(p[2]),
                p[0],
                p[1],
                p[2]
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_has_a_bar_and_a_dot_per_step() {
        let bars = vec![
            Bar {
                label: "01 baseline".into(),
                kind: Kind::Reference,
                value: 50_000.0,
                latency: Some(5.0),
            },
            Bar {
                label: "02 <heap>".into(),
                kind: Kind::Degraded,
                value: 20_000.0,
                latency: Some(800.0),
            },
            Bar {
                label: "02 fixed".into(),
                kind: Kind::Fixed,
                value: 49_000.0,
                latency: None,
            },
        ];
        let svg = bars_and_latency("demo", "records/s", "e2e p99 ms", &bars);
        assert!(svg.starts_with("<svg"));
        assert_eq!(svg.matches("<rect x=").count(), 3 + 3); // bars + legend
        assert_eq!(svg.matches("<circle").count(), 2 + 1);
        assert!(svg.contains("02 &lt;heap&gt;"));
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn a_timeline_panel_per_step() {
        let a = [[0.0, 10.0, 12.0], [1.0, 250.0, 300.0], [2.0, 9.0, 11.0]];
        let b = [[0.0, 5.0, 6.0]];
        let svg = timelines(
            "t",
            &[
                Series {
                    label: "01 reference".into(),
                    kind: Kind::Reference,
                    timeline: &a,
                    markers: Vec::new(),
                    changes: Vec::new(),
                },
                Series {
                    label: "04 <degraded>".into(),
                    kind: Kind::Degraded,
                    timeline: &b,
                    markers: vec![(0.5, "kill 2".into())],
                    changes: vec![
                        (0.6, "isr shrank p0".into()),
                        (0.62, "isr shrank p1".into()),
                        (1.0, "isr grew ×3".into()),
                    ],
                },
            ],
        );
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("kill 2"));
        // Every change has its line; a label too close to the last is left
        // to the line's tooltip.
        assert_eq!(svg.matches(r#"<line class="change""#).count(), 3);
        assert_eq!(svg.matches(">isr shrank p").count(), 3, "{svg}");
        assert_eq!(svg.matches(">isr grew ×3<").count(), 2, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 4);
        assert!(svg.contains("04 &lt;degraded&gt;"));
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn axis_maxima_are_round() {
        assert_eq!(nice_max(43_000.0), 50_000.0);
        assert_eq!(nice_max(100.0), 100.0);
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(short(1_500_000.0), "1.5M");
    }
}
