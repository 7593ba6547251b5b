//! A lab's expectations: the `[expect]` tables as written, and the rules
//! they become (a metric, a direction, a limit), which `lab::verdict`
//! judges against a measured step.

use super::file::{Ctx, LabFileError};
use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExpect {
    pub degraded: Option<RawDegraded>,
    pub fixed: Option<RawFixed>,
    pub capacity: Option<RawCapacityExpect>,
}

/// A lab measured by capacity at its SLO (the client track): how much more
/// the fix must carry than the degraded configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCapacityExpect {
    /// The fix's capacity over the degraded one's, at least.
    pub fixed_at_least: Spanned<f64>,
}

/// The lab counts as degraded when either bound is met (vs lab 01).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDegraded {
    /// "any" (the default: one rule showing the damage suffices) or "all"
    /// (a lab whose "degraded" step is a fault the settings must survive).
    pub combine: Option<Spanned<String>>,
    pub throughput_at_most: Option<Spanned<f64>>,
    pub p99_at_least: Option<Spanned<f64>>,
    pub lost_at_least: Option<Spanned<f64>>,
    pub failed_at_least: Option<Spanned<f64>>,
    pub duplicated_at_least: Option<Spanned<f64>>,
    pub fault_p99_at_least: Option<Spanned<f64>>,
    pub lost_at_most: Option<Spanned<f64>>,
    pub failed_at_most: Option<Spanned<f64>>,
    pub recovery_s_at_most: Option<Spanned<f64>>,
    pub fault_p99_at_most: Option<Spanned<f64>>,
}

/// A fix is good when both bounds hold (vs lab 01).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFixed {
    pub throughput_at_least: Option<Spanned<f64>>,
    pub p99_at_most: Option<Spanned<f64>>,
    pub lost_at_most: Option<Spanned<f64>>,
    pub failed_at_most: Option<Spanned<f64>>,
    pub duplicated_at_most: Option<Spanned<f64>>,
    pub recovery_s_at_most: Option<Spanned<f64>>,
    pub fault_p99_at_most: Option<Spanned<f64>>,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Expect {
    /// The damage the degraded step must show: any one rule suffices
    /// (every one with `degraded_all`).
    pub degraded: Vec<Rule>,
    pub degraded_all: bool,
    /// Where the fixed step must be back: every rule must hold.
    pub fixed: Vec<Rule>,
    /// `[expect.capacity] fixed_at_least`: a capacity lab, judged by the
    /// fix's capacity at the SLO over the degraded configuration's.
    pub capacity_at_least: Option<f64>,
}

/// What a rule of `[expect]` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Acknowledged records/s against the reference's (a ratio).
    Throughput,
    /// e2e p99 against the reference's (a ratio).
    P99,
    /// The highest e2e p99 of the windows during the step's faults,
    /// against the reference's p99 (a ratio).
    FaultP99,
    /// Acknowledged records never read (a count).
    Lost,
    /// Sends that failed (a count).
    Failed,
    /// Records read more than once (a count).
    Duplicated,
    /// Seconds until the rate came back after the faults.
    RecoveryS,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Throughput => "records/s",
            Metric::P99 => "e2e p99",
            Metric::FaultP99 => "e2e p99 during the faults",
            Metric::Lost => "lost",
            Metric::Failed => "failed sends",
            Metric::Duplicated => "duplicated",
            Metric::RecoveryS => "recovery",
        }
    }

    /// A ratio against the reference (else an absolute value).
    pub fn is_ratio(self) -> bool {
        matches!(self, Metric::Throughput | Metric::P99 | Metric::FaultP99)
    }
}

/// One bound of a lab's expectation.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Rule {
    pub metric: Metric,
    /// `>=` (else `<=`).
    pub at_least: bool,
    pub limit: f64,
}

impl Rule {
    /// `e2e p99 >= 1.5x lab 01`, `lost <= 0`, `recovery <= 10 s`.
    pub fn describe(&self) -> String {
        let op = if self.at_least { ">=" } else { "<=" };
        let limit = if self.metric.is_ratio() {
            format!("{}x lab 01", self.limit)
        } else if self.metric == Metric::RecoveryS {
            format!("{} s", self.limit)
        } else {
            format!("{}", self.limit)
        };
        format!("{} {op} {limit}", self.metric.name())
    }
}

fn ratio(cx: &Ctx<'_>, name: &str, v: &Spanned<f64>) -> Result<f64, LabFileError> {
    let x = *v.get_ref();
    if !(x.is_finite() && x > 0.0 && x <= 1000.0) {
        return Err(cx.err(
            v,
            format!("expect.{name}: {x} is out of range; a ratio against lab 01 in (0, 1000]"),
        ));
    }
    Ok(x)
}

/// A count or a number of seconds: finite and at least 0.
fn absolute(cx: &Ctx<'_>, name: &str, v: &Spanned<f64>) -> Result<f64, LabFileError> {
    let x = *v.get_ref();
    if !(x.is_finite() && x >= 0.0) {
        return Err(cx.err(v, format!("expect.{name}: {x} is out of range; at least 0")));
    }
    Ok(x)
}

pub(super) fn expect(cx: &Ctx<'_>, e: &RawExpect) -> Result<Expect, LabFileError> {
    let mut out = Expect::default();
    let push = |rules: &mut Vec<Rule>,
                field: &str,
                v: &Option<Spanned<f64>>,
                metric: Metric,
                at_least: bool|
     -> Result<(), LabFileError> {
        if let Some(v) = v {
            let limit = if metric.is_ratio() {
                ratio(cx, field, v)?
            } else {
                absolute(cx, field, v)?
            };
            rules.push(Rule {
                metric,
                at_least,
                limit,
            });
        }
        Ok(())
    };
    if let Some(d) = &e.degraded {
        let r = &mut out.degraded;
        push(
            r,
            "degraded.throughput_at_most",
            &d.throughput_at_most,
            Metric::Throughput,
            false,
        )?;
        push(
            r,
            "degraded.p99_at_least",
            &d.p99_at_least,
            Metric::P99,
            true,
        )?;
        push(
            r,
            "degraded.fault_p99_at_least",
            &d.fault_p99_at_least,
            Metric::FaultP99,
            true,
        )?;
        push(
            r,
            "degraded.lost_at_least",
            &d.lost_at_least,
            Metric::Lost,
            true,
        )?;
        push(
            r,
            "degraded.failed_at_least",
            &d.failed_at_least,
            Metric::Failed,
            true,
        )?;
        push(
            r,
            "degraded.duplicated_at_least",
            &d.duplicated_at_least,
            Metric::Duplicated,
            true,
        )?;
        push(
            r,
            "degraded.lost_at_most",
            &d.lost_at_most,
            Metric::Lost,
            false,
        )?;
        push(
            r,
            "degraded.failed_at_most",
            &d.failed_at_most,
            Metric::Failed,
            false,
        )?;
        push(
            r,
            "degraded.recovery_s_at_most",
            &d.recovery_s_at_most,
            Metric::RecoveryS,
            false,
        )?;
        push(
            r,
            "degraded.fault_p99_at_most",
            &d.fault_p99_at_most,
            Metric::FaultP99,
            false,
        )?;
        if let Some(c) = &d.combine {
            out.degraded_all = match c.get_ref().as_str() {
                "all" => true,
                "any" => false,
                other => {
                    return Err(cx.err(
                        c,
                        format!(
                            "expect.degraded.combine: '{other}' is not allowed; \"any\" or \"all\""
                        ),
                    ));
                }
            };
        }
    }
    if let Some(c) = &e.capacity {
        let x = *c.fixed_at_least.get_ref();
        if !(x.is_finite() && x > 0.0 && x <= 1000.0) {
            return Err(cx.err(
                &c.fixed_at_least,
                format!(
                    "expect.capacity.fixed_at_least: {x} is out of range; the fix's capacity over the degraded one's, in (0, 1000]"
                ),
            ));
        }
        if e.degraded.is_some() || e.fixed.is_some() {
            return Err(cx.err(
                &c.fixed_at_least,
                "expect.capacity: a capacity lab is judged by its capacity ratio alone; drop [expect.degraded] and [expect.fixed]".into(),
            ));
        }
        out.capacity_at_least = Some(x);
    }
    if let Some(f) = &e.fixed {
        let r = &mut out.fixed;
        push(
            r,
            "fixed.throughput_at_least",
            &f.throughput_at_least,
            Metric::Throughput,
            true,
        )?;
        push(r, "fixed.p99_at_most", &f.p99_at_most, Metric::P99, false)?;
        push(
            r,
            "fixed.fault_p99_at_most",
            &f.fault_p99_at_most,
            Metric::FaultP99,
            false,
        )?;
        push(
            r,
            "fixed.lost_at_most",
            &f.lost_at_most,
            Metric::Lost,
            false,
        )?;
        push(
            r,
            "fixed.failed_at_most",
            &f.failed_at_most,
            Metric::Failed,
            false,
        )?;
        push(
            r,
            "fixed.duplicated_at_most",
            &f.duplicated_at_most,
            Metric::Duplicated,
            false,
        )?;
        push(
            r,
            "fixed.recovery_s_at_most",
            &f.recovery_s_at_most,
            Metric::RecoveryS,
            false,
        )?;
    }
    Ok(out)
}
