//! A lab's expectations: the `[expect]` tables as written, and the rules
//! they become (a metric, a direction, a limit), which `lab::verdict`
//! judges against a measured step.

use super::located::{Ctx, LabFileError};
use serde::Deserialize;
use toml::Spanned;

/// A lab measured by capacity at its SLO (the client track): how much more
/// the fix must carry than the degraded configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCapacityExpect {
    /// The fix's capacity over the degraded one's, at least.
    pub fixed_at_least: Spanned<f64>,
}

/// `[expect.degraded]` or `[expect.fixed]` as written: rules by key
/// (`<metric>_at_least`, `<metric>_at_most`, see [`Metric::key`]) and, for
/// the degraded step, `combine`.
pub type RawRules = std::collections::BTreeMap<Spanned<String>, Spanned<toml::Value>>;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExpect {
    pub degraded: Option<RawRules>,
    pub fixed: Option<RawRules>,
    pub capacity: Option<RawCapacityExpect>,
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
    /// Publish p99 (due time to the acknowledgement) against the
    /// reference's (a ratio): what `acks` changes, where e2e cannot tell.
    PublishP99,
    /// Acknowledged records never read (a count).
    Lost,
    /// Sends that failed (a count).
    Failed,
    /// Records read more than once (a count).
    Duplicated,
    /// Seconds until the rate came back after the faults.
    RecoveryS,
    /// Records acknowledged while their partition's ISR was its leader
    /// alone (a count; needs a replicated topic).
    AckedAlone,
}

/// Every metric, for the keys a lab file may use.
const METRICS: [Metric; 9] = [
    Metric::Throughput,
    Metric::P99,
    Metric::FaultP99,
    Metric::PublishP99,
    Metric::Lost,
    Metric::Failed,
    Metric::Duplicated,
    Metric::RecoveryS,
    Metric::AckedAlone,
];

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Throughput => "records/s",
            Metric::P99 => "e2e p99",
            Metric::FaultP99 => "e2e p99 during the faults",
            Metric::PublishP99 => "publish p99",
            Metric::Lost => "lost",
            Metric::Failed => "failed sends",
            Metric::Duplicated => "duplicated",
            Metric::RecoveryS => "recovery",
            Metric::AckedAlone => "acknowledged by the leader alone",
        }
    }

    /// How a lab file names it, before `_at_least` or `_at_most`.
    pub fn key(self) -> &'static str {
        match self {
            Metric::Throughput => "throughput",
            Metric::P99 => "p99",
            Metric::FaultP99 => "fault_p99",
            Metric::PublishP99 => "publish_p99",
            Metric::Lost => "lost",
            Metric::Failed => "failed",
            Metric::Duplicated => "duplicated",
            Metric::RecoveryS => "recovery_s",
            Metric::AckedAlone => "acked_alone",
        }
    }

    /// A ratio against the reference (else an absolute value).
    pub fn is_ratio(self) -> bool {
        matches!(
            self,
            Metric::Throughput | Metric::P99 | Metric::FaultP99 | Metric::PublishP99
        )
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

/// The rules of one table (`degraded` or `fixed`), in the order of
/// [`METRICS`], and its `combine` (degraded only).
fn rules(
    cx: &Ctx<'_>,
    table: &str,
    raw: &RawRules,
) -> Result<(Vec<Rule>, Option<bool>), LabFileError> {
    let mut found: Vec<(usize, Rule)> = Vec::new();
    let mut combine = None;
    let keys = || {
        METRICS
            .iter()
            .flat_map(|m| [(*m, true), (*m, false)])
            .map(|(m, at_least)| {
                let dir = if at_least { "at_least" } else { "at_most" };
                (format!("{}_{dir}", m.key()), m, at_least)
            })
    };
    for (k, v) in raw {
        let name = k.get_ref().as_str();
        let field = format!("expect.{table}.{name}");
        if name == "combine" && table == "degraded" {
            combine = Some(match v.get_ref().as_str() {
                Some("all") => true,
                Some("any") => false,
                _ => {
                    return Err(cx.err(
                        v,
                        format!(
                            "{field}: {} is not allowed; \"any\" or \"all\"",
                            v.get_ref()
                        ),
                    ));
                }
            });
            continue;
        }
        let Some((order, (_, metric, at_least))) =
            keys().enumerate().find(|(_, (key, _, _))| key == name)
        else {
            let all: Vec<String> = keys().map(|(key, _, _)| key).collect();
            let hint = crate::error::closest(name, all.iter().map(String::as_str), 4)
                .map(|c| format!(" (did you mean {c}?)"))
                .unwrap_or_default();
            return Err(cx.err(
                k,
                format!(
                    "{field}: unknown rule{hint}; a rule is <metric>_at_least or <metric>_at_most with the metric one of {}{}",
                    METRICS.map(Metric::key).join(", "),
                    if table == "degraded" { ", or combine" } else { "" }
                ),
            ));
        };
        let Some(x) = v
            .get_ref()
            .as_float()
            .or_else(|| v.get_ref().as_integer().map(|i| i as f64))
        else {
            return Err(cx.err(
                v,
                format!("{field}: expected a number, found {}", v.get_ref()),
            ));
        };
        let limit = if metric.is_ratio() {
            if !(x.is_finite() && x > 0.0 && x <= 1000.0) {
                return Err(cx.err(
                    v,
                    format!("{field}: {x} is out of range; a ratio against lab 01 in (0, 1000]"),
                ));
            }
            x
        } else {
            if !(x.is_finite() && x >= 0.0) {
                return Err(cx.err(v, format!("{field}: {x} is out of range; at least 0")));
            }
            x
        };
        found.push((
            order,
            Rule {
                metric,
                at_least,
                limit,
            },
        ));
    }
    found.sort_by_key(|(o, _)| *o);
    Ok((found.into_iter().map(|(_, r)| r).collect(), combine))
}

pub(super) fn expect(cx: &Ctx<'_>, e: &RawExpect) -> Result<Expect, LabFileError> {
    let mut out = Expect::default();
    if let Some(d) = &e.degraded {
        let (r, combine) = rules(cx, "degraded", d)?;
        out.degraded = r;
        out.degraded_all = combine.unwrap_or(false);
    }
    if let Some(f) = &e.fixed {
        out.fixed = rules(cx, "fixed", f)?.0;
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
    Ok(out)
}
