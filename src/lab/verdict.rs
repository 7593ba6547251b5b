//! Verdicts: how a step compares with the reference, and whether that is
//! what the lab promised (the "expected" column, `PASS` / `NOT YET`).

use crate::lab::Lab;
use crate::model::StepResult;

/// Ratios of a step against lab 01's reference step.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Ratios {
    pub throughput: f64,
    pub p99: f64,
}

pub fn ratios(step: &StepResult, reference: &StepResult) -> Ratios {
    let t = if reference.throughput.msgs_per_s > 0.0 {
        step.throughput.msgs_per_s / reference.throughput.msgs_per_s
    } else {
        0.0
    };
    let p = if reference.e2e_latency_ms.p99 > 0.0 {
        step.e2e_latency_ms.p99 / reference.e2e_latency_ms.p99
    } else {
        0.0
    };
    Ratios {
        throughput: t,
        p99: p,
    }
}

/// Whether a degraded step shows the damage the lab promises.
pub fn degraded_as_expected(lab: &Lab, r: Ratios) -> Option<bool> {
    let e = lab.expect;
    let checks: Vec<bool> = [
        e.degraded_throughput_at_most.map(|m| r.throughput <= m),
        e.degraded_p99_at_least.map(|m| r.p99 >= m),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!checks.is_empty()).then(|| checks.iter().any(|c| *c))
}

/// Whether a fixed step is back where the lab says it should be.
pub fn fixed_as_expected(lab: &Lab, r: Ratios) -> Option<bool> {
    let e = lab.expect;
    let checks: Vec<bool> = [
        e.fixed_throughput_at_least.map(|m| r.throughput >= m),
        e.fixed_p99_at_most.map(|m| r.p99 <= m),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!checks.is_empty()).then(|| checks.iter().all(|c| *c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::file::Expect;

    fn result(msgs: f64, p99: f64) -> StepResult {
        let mut r = StepResult::default();
        r.throughput.msgs_per_s = msgs;
        r.e2e_latency_ms.p99 = p99;
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
        }
    }

    #[test]
    fn ratios_divide_by_the_reference() {
        let r = ratios(&result(500.0, 30.0), &result(1000.0, 10.0));
        assert_eq!(
            r,
            Ratios {
                throughput: 0.5,
                p99: 3.0
            }
        );
        // A reference without figures gives zero, never a division by zero.
        let r = ratios(&result(500.0, 30.0), &result(0.0, 0.0));
        assert_eq!(
            r,
            Ratios {
                throughput: 0.0,
                p99: 0.0
            }
        );
    }

    #[test]
    fn degraded_needs_either_bound_and_fixed_needs_both() {
        let l = lab(Expect {
            degraded_throughput_at_most: Some(0.8),
            degraded_p99_at_least: Some(1.5),
            fixed_throughput_at_least: Some(0.9),
            fixed_p99_at_most: Some(1.5),
        });
        let r = |throughput, p99| Ratios { throughput, p99 };
        assert_eq!(degraded_as_expected(&l, r(1.0, 2.0)), Some(true));
        assert_eq!(degraded_as_expected(&l, r(0.5, 1.0)), Some(true));
        assert_eq!(degraded_as_expected(&l, r(0.9, 1.4)), Some(false));
        assert_eq!(fixed_as_expected(&l, r(0.95, 1.2)), Some(true));
        assert_eq!(fixed_as_expected(&l, r(0.95, 1.6)), Some(false));
        assert_eq!(fixed_as_expected(&l, r(0.85, 1.2)), Some(false));
        // Bounds are inclusive.
        assert_eq!(degraded_as_expected(&l, r(0.8, 1.0)), Some(true));
        assert_eq!(fixed_as_expected(&l, r(0.9, 1.5)), Some(true));
    }

    #[test]
    fn a_lab_without_bounds_has_no_verdict() {
        let l = lab(Expect::default());
        let r = Ratios {
            throughput: 0.1,
            p99: 100.0,
        };
        assert_eq!(degraded_as_expected(&l, r), None);
        assert_eq!(fixed_as_expected(&l, r), None);
    }
}
