//! A capacity search ([`crate::capacity`]) on a lab target, and the lab
//! file's `[capacity]` table.
//!
//! Every probe is a full step through [`LabTarget::measure`], so it gets
//! what every lab step gets: the broker brought to the configuration (a
//! restart when a static setting differs, then the JIT warm-up), a fresh
//! topic, and its result saved in the run folder. With two configurations
//! the probes alternate, A then B, so that a machine that drifts during
//! the run moves both searches alike.

use super::Lab;
use super::located::{Ctx, LabFileError};
use super::target::{LabTarget, step_file};
use crate::capacity::report::{CapacityExpect, CapacityReport};
use crate::capacity::{Capacity, Next, Phase, Probe, Search, Settings};
use crate::model::{BrokerConfig, StepResult, Workload};
use crate::units::parse_duration;
use anyhow::Result;
use serde::Deserialize;
use std::time::Duration;
use toml::Spanned;

/// `[capacity]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCapacity {
    /// e.g. "50ms".
    pub slo_p99: Option<Spanned<String>>,
    /// e.g. "5%".
    pub resolution: Option<Spanned<String>>,
    pub max_probes: Option<Spanned<i64>>,
}

/// `[capacity]` parsed; unset fields come from the lab it extends, then
/// from the defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CapacityPatch {
    pub slo_p99: Option<Duration>,
    pub resolution: Option<f64>,
    pub max_probes: Option<usize>,
}

impl CapacityPatch {
    pub fn overlay(&self, over: &CapacityPatch) -> CapacityPatch {
        CapacityPatch {
            slo_p99: over.slo_p99.or(self.slo_p99),
            resolution: over.resolution.or(self.resolution),
            max_probes: over.max_probes.or(self.max_probes),
        }
    }

    pub fn settings(&self) -> Settings {
        let d = Settings::default();
        Settings {
            slo_p99_ms: self
                .slo_p99
                .map(|t| t.as_secs_f64() * 1000.0)
                .unwrap_or(d.slo_p99_ms),
            resolution: self.resolution.unwrap_or(d.resolution),
            max_probes: self.max_probes.unwrap_or(d.max_probes),
            min_delivered: d.min_delivered,
        }
    }
}

/// A resolution such as `5%`: 1% to 25%.
pub fn parse_resolution(s: &str) -> Result<f64, String> {
    let (lo, hi) = crate::capacity::RESOLUTION_RANGE;
    let pct = s
        .trim()
        .strip_suffix('%')
        .and_then(|n| n.trim().parse::<f64>().ok())
        .ok_or_else(|| format!("'{s}' is not a percentage; expected e.g. 5%"))?;
    let share = pct / 100.0;
    if !(lo..=hi).contains(&share) {
        return Err(format!(
            "{pct}% is not allowed; expected {:.0}% to {:.0}%",
            lo * 100.0,
            hi * 100.0
        ));
    }
    Ok(share)
}

/// A probe budget: 4 to 40.
pub fn check_max_probes(n: i64) -> Result<usize, String> {
    let (lo, hi) = crate::capacity::MAX_PROBES_RANGE;
    match usize::try_from(n) {
        Ok(u) if (lo..=hi).contains(&u) => Ok(u),
        _ => Err(format!("{n} is out of range; expected {lo}..={hi} probes")),
    }
}

pub(super) fn parse_capacity(
    cx: &Ctx<'_>,
    raw: &RawCapacity,
) -> Result<CapacityPatch, LabFileError> {
    let slo_p99 = match &raw.slo_p99 {
        Some(v) => {
            let d = parse_duration(v.get_ref())
                .map_err(|e| cx.err(v, format!("capacity.slo_p99: {e}")))?;
            if d.is_zero() {
                return Err(cx.err(v, "capacity.slo_p99: must be above 0, e.g. \"50ms\"".into()));
            }
            Some(d)
        }
        None => None,
    };
    let resolution = match &raw.resolution {
        Some(v) => Some(
            parse_resolution(v.get_ref())
                .map_err(|e| cx.err(v, format!("capacity.resolution: {e}")))?,
        ),
        None => None,
    };
    let max_probes = match &raw.max_probes {
        Some(v) => Some(
            check_max_probes(*v.get_ref())
                .map_err(|e| cx.err(v, format!("capacity.max_probes: {e}")))?,
        ),
        None => None,
    };
    Ok(CapacityPatch {
        slo_p99,
        resolution,
        max_probes,
    })
}

/// One configuration a search measures: the broker's settings and the
/// workload (each probe sets its rate).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub name: String,
    pub broker: BrokerConfig,
    pub workload: Workload,
}

/// Probes a configuration is expected to take (for the plan line and the
/// `[n/m]` counter): the max probe, one more after the JIT warm-up, about
/// three to bracket, three to bisect and one to confirm.
pub const TYPICAL_PROBES: usize = 9;

/// Runs one search per configuration, alternating their probes, until all
/// have ended. An error (Ctrl-C among them) ends every search; what was
/// measured is in the answers, and the error comes back beside them.
pub fn search(
    target: &mut dyn LabTarget,
    lab: &Lab,
    configs: &[Config],
    settings: Settings,
) -> (Vec<Capacity>, Option<anyhow::Error>) {
    let mut searches: Vec<Search> = configs
        .iter()
        .map(|c| Search::new(&c.name, settings))
        .collect();
    target.ledger().steps_planned += configs.len() * TYPICAL_PROBES;
    let mut n = 0;
    let mut error = None;
    'rounds: loop {
        let mut measured = false;
        for (i, cfg) in configs.iter().enumerate() {
            let (phase, rate) = match searches[i].next() {
                Next::Done(_) => continue,
                Next::Max => (Phase::Max, None),
                Next::Rate(p, r) => (p, Some(r.round().max(1.0))),
            };
            measured = true;
            n += 1;
            if let Err(e) = probe(target, lab, cfg, &mut searches[i], n, phase, rate) {
                error = Some(e);
                break 'rounds;
            }
        }
        if !measured {
            break;
        }
    }
    if error.is_some() {
        searches.iter_mut().for_each(Search::interrupt);
    }
    (searches.iter().map(Search::answer).collect(), error)
}

/// One configuration's search, alone: a full one, or warm (`warm`: the
/// scale known from an earlier search and the rate to challenge first, see
/// [`Search::warm`]). Returns the answer and the step result at it (the
/// last probe at the answer's rate; else the last rate probe). An error
/// (Ctrl-C among them) ends it; the probes so far are saved in the run
/// folder.
pub fn search_one(
    target: &mut dyn LabTarget,
    lab: &Lab,
    cfg: &Config,
    settings: Settings,
    warm: Option<(f64, f64)>,
) -> Result<(Capacity, Option<StepResult>)> {
    let mut search = match warm {
        Some((max, challenge)) => Search::warm(&cfg.name, settings, max, challenge),
        None => Search::new(&cfg.name, settings),
    };
    // A warm search that is not better ends after one probe or two.
    target.ledger().steps_planned += if warm.is_some() { 2 } else { TYPICAL_PROBES };
    let mut at: Vec<(f64, StepResult)> = Vec::new();
    let mut n = 0;
    loop {
        let (phase, rate) = match search.next() {
            Next::Done(_) => break,
            Next::Max => (Phase::Max, None),
            Next::Rate(p, r) => (p, Some(r.round().max(1.0))),
        };
        n += 1;
        let r = probe(target, lab, cfg, &mut search, n, phase, rate)?;
        if let Some(rate) = rate {
            at.push((rate, r));
        }
    }
    let answer = search.answer();
    let result = crate::capacity::result_at(&answer, &at);
    Ok((answer, result))
}

#[allow(clippy::too_many_arguments)]
fn probe(
    target: &mut dyn LabTarget,
    lab: &Lab,
    cfg: &Config,
    search: &mut Search,
    n: usize,
    phase: Phase,
    rate: Option<f64>,
) -> Result<StepResult> {
    let mut w = cfg.workload.clone();
    w.rate = rate;
    // Consumers with simulated work read at most `read_ceiling`: a max
    // probe offers twice that, not all the broker takes, so the step does
    // not spend minutes reading a backlog back.
    if rate.is_none()
        && let Some(c) = w.read_ceiling()
    {
        w.rate = Some((2.0 * c).round());
    }
    let label = match rate {
        Some(r) => format!("{}probe {n} {phase} {r:.0}", prefix(&cfg.name)),
        None => format!("{}probe {n} max", prefix(&cfg.name)),
    };
    let m = crate::lab::run::measure(target, lab, &label, &cfg.broker, &w)?;
    let s = search.settings;
    let mut p = Probe::of(n, phase, rate, &m.result, &s);
    p.result_file = step_file(target.run_dir(), target.step_prefix(), lab, &label)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned());
    if rate.is_none() {
        // What the pipeline sustains: the median full second, acknowledged
        // and read, so one slow second does not move the scale.
        let median = crate::stats::noise::median_rate(&m.publish)
            .zip(crate::stats::noise::median_rate(&m.e2e))
            .map(|(a, r)| a.min(r));
        if let Some(x) = median {
            p.acked_records_per_s = x;
            p.read_records_per_s = x;
        }
        let figure = p.acked_records_per_s.min(p.read_records_per_s);
        let cold = m.result.broker.applied.fresh_jvm() && m.result.complete && figure > 0.0;
        target.say(&format!(
            "  max: {}/s{}",
            crate::stats::table::fmt_rate(figure),
            if cold {
                " on a fresh JVM; warming it up at half of that, then measuring again"
            } else {
                ""
            }
        ));
        if cold {
            p.missed = vec!["a fresh JVM: not used".into()];
        }
        search.record(p, !cold);
        if cold {
            let mut half = w.clone();
            half.rate = Some((figure * 0.5).max(1.0));
            target.warm_up(&half, true)?;
        }
        return Ok(m.result);
    }
    target.say(&format!(
        "  {}: acked {}/s, read {}/s, e2e p99 {} ms{}",
        if p.pass { "pass" } else { "fail" },
        crate::stats::table::fmt_rate(p.acked_records_per_s),
        crate::stats::table::fmt_rate(p.read_records_per_s),
        crate::stats::table::fmt_ms(p.p99_ms),
        if p.missed.is_empty() {
            String::new()
        } else {
            format!(" — {}", p.missed.join("; "))
        }
    ));
    search.record(p, true);
    Ok(m.result)
}

/// `name ` before a probe's label when configurations are compared
/// (letters, digits, `-` and `_` only: it becomes part of a file name).
fn prefix(name: &str) -> String {
    if name == BASE {
        return String::new();
    }
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{clean} ")
}

/// A capacity lab (`[expect.capacity]`) on `target`: the lab's own
/// configuration and `fix`, searched in alternation, and the ratio of their
/// capacities judged against `limit`. With `say`, the plan first. An error
/// (Ctrl-C among them) comes back beside what was measured.
pub fn capacity_lab(
    target: &mut dyn LabTarget,
    lab: &Lab,
    fix: &crate::lab::fix::Fix,
    limit: f64,
    say: bool,
) -> anyhow::Result<(CapacityReport, Option<anyhow::Error>)> {
    let quick = target.quick();
    let mut degraded = lab.workload(quick, Some(1.0))?;
    let mut fixed = lab.fixed_workload(fix, quick, Some(1.0))?;
    for w in [&mut degraded, &mut fixed] {
        w.rate = None;
        w.faults.clear();
    }
    let configs = vec![
        Config {
            name: "degraded".into(),
            broker: lab.broker.clone(),
            workload: degraded.clone(),
        },
        Config {
            name: "fixed".into(),
            broker: lab.fixed_broker(fix),
            workload: fixed,
        },
    ];
    let settings = lab.capacity.settings();
    if say {
        crate::outln!(
            "lab {} ({}): its capacity at e2e p99 ≤ {} ms, degraded and fixed, searched in alternation (±{:.0}%)",
            lab.id,
            lab.title,
            settings.slo_p99_ms,
            settings.resolution * 100.0
        );
        let probes = 2 * TYPICAL_PROBES;
        let restart = crate::broker::knobs::needs_restart(&configs[0].broker, &configs[1].broker);
        let restarts = if restart { probes } else { 1 };
        crate::outln!(
            "plan: about {probes} probes (at most {}), each a {} window after a {} warm-up: {}",
            2 * settings.max_probes,
            crate::units::format_duration(degraded.duration.unwrap_or_default()),
            crate::units::format_duration(degraded.warmup),
            crate::lab::target::describe_estimate(crate::lab::target::estimate(
                &degraded, probes, restarts
            )),
        );
    }
    let started_at = crate::stats::report::utc_now();
    let started = std::time::Instant::now();
    let (caps, error) = search(target, lab, &configs, settings);
    let mut report = CapacityReport::assemble(
        Some(lab.id.clone()),
        settings,
        degraded,
        caps,
        started_at,
        started,
    );
    report.expect = Some(CapacityExpect::judge(limit, report.ratio.as_ref()));
    Ok((report, error))
}

/// The name of the one configuration when nothing is compared.
pub const BASE: &str = "base";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolutions_and_budgets_are_checked() {
        assert_eq!(parse_resolution("5%"), Ok(0.05));
        assert_eq!(parse_resolution(" 10 %"), Ok(0.10));
        assert!(
            parse_resolution("5")
                .unwrap_err()
                .contains("expected e.g. 5%")
        );
        assert!(parse_resolution("0.5%").unwrap_err().contains("1% to 25%"));
        assert!(parse_resolution("30%").is_err());
        assert_eq!(check_max_probes(14), Ok(14));
        assert!(check_max_probes(2).unwrap_err().contains("4..=40"));
        assert!(check_max_probes(-1).is_err());
    }

    #[test]
    fn patches_lay_over_each_other_and_default_the_rest() {
        let base = CapacityPatch {
            slo_p99: Some(Duration::from_millis(20)),
            resolution: Some(0.1),
            max_probes: None,
        };
        let over = CapacityPatch {
            resolution: Some(0.02),
            ..Default::default()
        };
        let s = base.overlay(&over).settings();
        assert_eq!(s.slo_p99_ms, 20.0);
        assert_eq!(s.resolution, 0.02);
        assert_eq!(s.max_probes, crate::capacity::DEFAULT_MAX_PROBES);
    }

    #[test]
    fn compared_names_become_safe_label_prefixes() {
        assert_eq!(prefix(BASE), "");
        assert_eq!(prefix("my fix.v2"), "my_fix_v2 ");
    }
}
