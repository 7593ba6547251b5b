//! Verdicts: how a step compares with the reference, and whether that is
//! what the lab promised (the "expected" column, `PASS` / `NOT YET`).
//!
//! Every ratio carries a band from the noise of both steps (see
//! [`crate::stats::noise`]): the step's band divided by the reference's, at
//! its widest. A bound decides only when the whole band is on one side of
//! it; otherwise it is `unsure`, and the runner measures the step once more
//! before it decides.

use crate::lab::Lab;
use crate::model::{Band, StepResult};
use serde::Serialize;

/// Ratios of a step against lab 01's reference step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ratios {
    pub throughput: f64,
    pub p99: f64,
    /// Where the ratio lies given both steps' noise (None without noise
    /// figures, e.g. a window too short).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput_band: Option<Band>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_band: Option<Band>,
}

impl Ratios {
    /// Point ratios without bands.
    pub fn plain(throughput: f64, p99: f64) -> Ratios {
        Ratios {
            throughput,
            p99,
            throughput_band: None,
            p99_band: None,
        }
    }
}

fn div(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// The band of `step / reference` from the two bands.
fn ratio_band(step: Option<Band>, reference: Option<Band>) -> Option<Band> {
    let (s, r) = (step?, reference?);
    (r.lo > 0.0 && r.hi > 0.0).then(|| Band {
        lo: s.lo / r.hi,
        hi: s.hi / r.lo,
    })
}

pub fn ratios(step: &StepResult, reference: &StepResult) -> Ratios {
    let noise = |r: &StepResult| r.noise;
    Ratios {
        throughput: div(step.throughput.msgs_per_s, reference.throughput.msgs_per_s),
        p99: div(step.e2e_latency_ms.p99, reference.e2e_latency_ms.p99),
        throughput_band: ratio_band(
            noise(step).map(|n| n.msgs_per_s),
            noise(reference).map(|n| n.msgs_per_s),
        ),
        p99_band: ratio_band(
            noise(step).map(|n| n.e2e_p99_ms),
            noise(reference).map(|n| n.e2e_p99_ms),
        ),
    }
}

/// What a bound (or a lab's expectation) says about a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Met, beyond the noise.
    Yes,
    /// Missed, beyond the noise.
    No,
    /// The limit lies inside the noise band.
    Unsure,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Yes => "yes",
            Verdict::No => "NO",
            Verdict::Unsure => "unsure",
        }
    }
}

/// One bound of a lab's expectation, measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// e.g. `e2e p99 >= 1.5x lab 01`.
    pub bound: String,
    pub value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub band: Option<Band>,
    pub limit: f64,
    pub verdict: Verdict,
}

impl Check {
    fn new(what: &str, at_least: bool, value: f64, band: Option<Band>, limit: f64) -> Check {
        let b = band.unwrap_or(Band {
            lo: value,
            hi: value,
        });
        let verdict = match at_least {
            true if b.lo >= limit => Verdict::Yes,
            true if b.hi < limit => Verdict::No,
            false if b.hi <= limit => Verdict::Yes,
            false if b.lo > limit => Verdict::No,
            _ => Verdict::Unsure,
        };
        Check {
            bound: format!(
                "{what} {} {limit}x lab 01",
                if at_least { ">=" } else { "<=" }
            ),
            value,
            band,
            limit,
            verdict,
        }
    }

    /// `e2e p99 >= 1.5x lab 01: measured 1.2x (0.9-1.6)`.
    pub fn describe(&self) -> String {
        let band = self
            .band
            .map(|b| format!(" ({}–{})", fmt_x(b.lo), fmt_x(b.hi)))
            .unwrap_or_default();
        format!(
            "{}: measured {}x{band} ({})",
            self.bound,
            fmt_x(self.value),
            self.verdict.as_str()
        )
    }
}

/// A ratio with two significant digits: 0.95, 1.5, 15, 710.
pub fn fmt_x(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// A lab's verdict on a step with the bounds behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Judged {
    pub verdict: Verdict,
    pub checks: Vec<Check>,
}

impl Judged {
    /// The bounds that did not hold (or could not be told from the noise).
    pub fn failed(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.verdict != Verdict::Yes)
    }
}

/// Whether a degraded step shows the damage the lab promises: either bound
/// suffices.
pub fn degraded(lab: &Lab, r: Ratios) -> Option<Judged> {
    let e = lab.expect;
    let checks: Vec<Check> = [
        e.degraded_throughput_at_most
            .map(|m| Check::new("records/s", false, r.throughput, r.throughput_band, m)),
        e.degraded_p99_at_least
            .map(|m| Check::new("e2e p99", true, r.p99, r.p99_band, m)),
    ]
    .into_iter()
    .flatten()
    .collect();
    if checks.is_empty() {
        return None;
    }
    let verdict = if checks.iter().any(|c| c.verdict == Verdict::Yes) {
        Verdict::Yes
    } else if checks.iter().all(|c| c.verdict == Verdict::No) {
        Verdict::No
    } else {
        Verdict::Unsure
    };
    Some(Judged { verdict, checks })
}

/// Whether a fixed step is back where the lab says it should be: every
/// bound must hold.
pub fn fixed(lab: &Lab, r: Ratios) -> Option<Judged> {
    let e = lab.expect;
    let checks: Vec<Check> = [
        e.fixed_throughput_at_least
            .map(|m| Check::new("records/s", true, r.throughput, r.throughput_band, m)),
        e.fixed_p99_at_most
            .map(|m| Check::new("e2e p99", false, r.p99, r.p99_band, m)),
    ]
    .into_iter()
    .flatten()
    .collect();
    if checks.is_empty() {
        return None;
    }
    let verdict = if checks.iter().all(|c| c.verdict == Verdict::Yes) {
        Verdict::Yes
    } else if checks.iter().any(|c| c.verdict == Verdict::No) {
        Verdict::No
    } else {
        Verdict::Unsure
    };
    Some(Judged { verdict, checks })
}

/// How a lab's expectation combines its bounds, for `klab lab show`.
pub fn how_bounds_combine(lab: &Lab) -> Vec<String> {
    let e = lab.expect;
    let mut out = Vec::new();
    let degraded: Vec<String> = [
        e.degraded_throughput_at_most
            .map(|x| format!("records/s <= {x}x lab 01")),
        e.degraded_p99_at_least
            .map(|x| format!("e2e p99 >= {x}x lab 01")),
    ]
    .into_iter()
    .flatten()
    .collect();
    match degraded.len() {
        0 => {}
        1 => out.push(format!("degraded: {}", degraded[0])),
        _ => out.push(format!(
            "degraded: {} (either suffices)",
            degraded.join(" or ")
        )),
    }
    let fixed: Vec<String> = [
        e.fixed_throughput_at_least
            .map(|x| format!("records/s >= {x}x lab 01")),
        e.fixed_p99_at_most
            .map(|x| format!("e2e p99 <= {x}x lab 01")),
    ]
    .into_iter()
    .flatten()
    .collect();
    match fixed.len() {
        0 => {}
        1 => out.push(format!("fixed: {}", fixed[0])),
        _ => out.push(format!("fixed: {} (both must hold)", fixed.join(" and "))),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::file::Expect;
    use crate::model::Noise;

    fn result(msgs: f64, p99: f64) -> StepResult {
        let mut r = StepResult::default();
        r.throughput.msgs_per_s = msgs;
        r.e2e_latency_ms.p99 = p99;
        r
    }

    fn noisy(msgs: (f64, f64, f64), p99: (f64, f64, f64)) -> StepResult {
        let mut r = result(msgs.1, p99.1);
        r.noise = Some(Noise {
            msgs_per_s: Band {
                lo: msgs.0,
                hi: msgs.2,
            },
            e2e_p99_ms: Band {
                lo: p99.0,
                hi: p99.2,
            },
            publish_p99_ms: Band::default(),
            seconds: 7,
        });
        r
    }

    fn lab(expect: Expect) -> Lab {
        Lab {
            id: "04-x".into(),
            number: "04".into(),
            dir: "labs/04-x".into(),
            title: "x".into(),
            summary: None,
            extends: Some("01-a".into()),
            changes: Default::default(),
            broker: Default::default(),
            fix: Default::default(),
            workload_changes: Vec::new(),
            workload: Default::default(),
            quick: Default::default(),
            expect,
            origin: Default::default(),
            brokers: 1,
        }
    }

    fn full() -> Lab {
        lab(Expect {
            degraded_throughput_at_most: Some(0.8),
            degraded_p99_at_least: Some(1.5),
            fixed_throughput_at_least: Some(0.9),
            fixed_p99_at_most: Some(3.0),
        })
    }

    #[test]
    fn ratios_divide_by_the_reference() {
        let r = ratios(&result(500.0, 30.0), &result(1000.0, 10.0));
        assert_eq!(r, Ratios::plain(0.5, 3.0));
        // A reference without figures gives zero, never a division by zero.
        let r = ratios(&result(500.0, 30.0), &result(0.0, 0.0));
        assert_eq!(r, Ratios::plain(0.0, 0.0));
    }

    #[test]
    fn bands_combine_at_their_widest() {
        let step = noisy((900.0, 1000.0, 1100.0), (20.0, 30.0, 40.0));
        let reference = noisy((1000.0, 1000.0, 1000.0), (8.0, 10.0, 20.0));
        let r = ratios(&step, &reference);
        assert_eq!(r.p99, 3.0);
        assert_eq!(r.p99_band, Some(Band { lo: 1.0, hi: 5.0 }));
        assert_eq!(r.throughput_band, Some(Band { lo: 0.9, hi: 1.1 }));
    }

    #[test]
    fn point_ratios_decide_like_before() {
        let l = full();
        let r = Ratios::plain;
        assert_eq!(degraded(&l, r(1.0, 2.0)).unwrap().verdict, Verdict::Yes);
        assert_eq!(degraded(&l, r(0.5, 1.0)).unwrap().verdict, Verdict::Yes);
        assert_eq!(degraded(&l, r(0.9, 1.4)).unwrap().verdict, Verdict::No);
        assert_eq!(fixed(&l, r(0.95, 1.2)).unwrap().verdict, Verdict::Yes);
        assert_eq!(fixed(&l, r(0.95, 3.6)).unwrap().verdict, Verdict::No);
        assert_eq!(fixed(&l, r(0.85, 1.2)).unwrap().verdict, Verdict::No);
        // Bounds are inclusive.
        assert_eq!(degraded(&l, r(0.8, 1.0)).unwrap().verdict, Verdict::Yes);
        assert_eq!(fixed(&l, r(0.9, 3.0)).unwrap().verdict, Verdict::Yes);
    }

    #[test]
    fn a_bound_inside_the_band_is_unsure() {
        let l = full();
        let with = |t: f64, tb: (f64, f64), p: f64, pb: (f64, f64)| Ratios {
            throughput: t,
            p99: p,
            throughput_band: Some(Band { lo: tb.0, hi: tb.1 }),
            p99_band: Some(Band { lo: pb.0, hi: pb.1 }),
        };
        // The wobbly reference of the issue: a degraded p99 of 1.2x whose
        // band reaches 4x cannot say "not degraded".
        let j = degraded(&l, with(1.0, (0.97, 1.03), 1.2, (0.1, 4.0))).unwrap();
        assert_eq!(j.verdict, Verdict::Unsure);
        assert_eq!(j.failed().count(), 2);
        // Clearly degraded on p99, whatever the noise of the throughput.
        let j = degraded(&l, with(0.9, (0.7, 1.1), 6.0, (2.0, 20.0))).unwrap();
        assert_eq!(j.verdict, Verdict::Yes);
        // A fix whose p99 band straddles 3x is unsure; one clearly above is NO.
        let j = fixed(&l, with(1.0, (0.95, 1.05), 2.5, (1.0, 9.0))).unwrap();
        assert_eq!(j.verdict, Verdict::Unsure);
        let j = fixed(&l, with(1.0, (0.95, 1.05), 9.7, (4.0, 30.0))).unwrap();
        assert_eq!(j.verdict, Verdict::No);
        let failed: Vec<String> = j.failed().map(Check::describe).collect();
        assert_eq!(
            failed,
            ["e2e p99 <= 3x lab 01: measured 9.70x (4.00–30.0) (NO)"]
        );
    }

    #[test]
    fn a_lab_without_bounds_has_no_verdict() {
        let l = lab(Expect::default());
        assert_eq!(degraded(&l, Ratios::plain(0.1, 100.0)), None);
        assert_eq!(fixed(&l, Ratios::plain(0.1, 100.0)), None);
        assert!(how_bounds_combine(&l).is_empty());
    }

    #[test]
    fn lab_show_says_how_bounds_combine() {
        assert_eq!(
            how_bounds_combine(&full()),
            [
                "degraded: records/s <= 0.8x lab 01 or e2e p99 >= 1.5x lab 01 (either suffices)",
                "fixed: records/s >= 0.9x lab 01 and e2e p99 <= 3x lab 01 (both must hold)"
            ]
        );
    }
}
