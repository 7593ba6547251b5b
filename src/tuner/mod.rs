//! `klab tune`: a budgeted, noise-aware search of broker (and producer)
//! settings.
//!
//! Objective: at the lab's offered load, maximise
//! `score = acknowledged records/s ÷ (1 + e2e p99 / SLO)`: throughput first,
//! and among settings that carry the same load, the lower tail latency. A
//! step that loses, duplicates or corrupts a record, or does not complete,
//! scores 0.
//!
//! Strategy ("guided"): measure the start twice to estimate run-to-run
//! noise; first try putting every knob that deviates from its known-healthy
//! value back (one trial, kept unless it measures worse beyond the noise:
//! between equals, Kafka's defaults win); then coordinate descent over the knobs, one knob
//! at a time, doubling the step while it keeps winning. A change is accepted
//! when it beats the best by more than twice the noise; a marginal win
//! (between one and two times the noise) is measured again and kept only if
//! the average still wins. Every measurement counts against `--budget`
//! except the two start measurements.
//!
//! The capacity objective (`--objective capacity`) asks a different
//! question: the highest offered rate at which the SLO holds
//! ([`crate::capacity`]). The start gets a full capacity search; each
//! trial a warm one that first probes the rate the best settings failed
//! at: a candidate that does not pass there twice is not better (one
//! probe, usually), one that does is searched upwards to its own capacity
//! and kept. Putting the healthy values back is challenged at the best's
//! capacity instead (between equals the defaults win). The search's
//! resolution stands for the noise.

mod by_capacity;
pub mod exec;
pub mod sim;
pub mod space;
pub mod trace;

use crate::model::StepResult;
use crate::random::splitmix64;
use anyhow::Result;
use serde::Serialize;
use space::{Candidate, Point, Space};
use std::collections::HashMap;

/// Measures a candidate. `Err` with a [`Refused`] inside means the broker
/// refused the change: the trial is recorded as rejected, the search goes on.
pub trait Measurer {
    fn measure(&mut self, label: &str, c: &Candidate) -> Result<StepResult>;

    /// The capacity of `c` at the SLO of `settings`: a full search, or a
    /// warm one (see [`crate::capacity::Search::warm`]).
    fn capacity(
        &mut self,
        label: &str,
        c: &Candidate,
        settings: &CapacitySettings,
        warm: Option<Warm>,
    ) -> Result<Measured> {
        let _ = (label, c, settings, warm);
        anyhow::bail!("this target measures no capacity")
    }

    /// Put `prefix` before every label from now on (runs that share one
    /// run folder keep their step files apart).
    fn set_prefix(&mut self, prefix: &str) {
        let _ = prefix;
    }

    /// Whether `best` already reaches what the run tunes for (in a lab run
    /// or the demo: the lab's own verdict against the reference passes).
    /// The search then ends before its budget: no further trial could
    /// change the verdict. None: there is no such goal (`klab tune`).
    fn goal_reached(&self, best: &StepResult) -> Option<String> {
        let _ = best;
        None
    }
}

/// A capacity trial's start: the scale known from the start's search, and
/// the rate probed first.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Warm {
    pub max: f64,
    pub challenge: f64,
}

/// A capacity measurement of one candidate.
#[derive(Debug, Clone)]
pub struct Measured {
    pub capacity: Capacity,
    /// The step at the answer (else the last rate probe's).
    pub result: Option<StepResult>,
}

use crate::capacity::{Capacity, Settings as CapacitySettings, Stop};

pub use crate::broker::admin::Refused;
pub use space::diff_lines;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Objective {
    /// The latency the score is measured against, in ms.
    pub slo_p99_ms: f64,
    /// The capacity objective, with its search's settings (their SLO is
    /// `slo_p99_ms`); None: the score at the lab's offered load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<CapacitySettings>,
}

impl Objective {
    /// The score at the lab's offered load, against an SLO in ms.
    pub fn score_at(slo_p99_ms: f64) -> Objective {
        Objective {
            slo_p99_ms,
            capacity: None,
        }
    }

    /// The capacity at the SLO of `settings`.
    pub fn capacity(settings: CapacitySettings) -> Objective {
        Objective {
            slo_p99_ms: settings.slo_p99_ms,
            capacity: Some(settings),
        }
    }

    pub fn score(&self, r: &StepResult) -> f64 {
        if !r.complete || !r.intact() {
            return 0.0;
        }
        r.throughput.msgs_per_s / (1.0 + r.e2e_latency_ms.p99 / self.slo_p99_ms)
    }

    pub fn describe(&self) -> String {
        if let Some(c) = &self.capacity {
            return format!(
                "maximise the capacity: the highest offered rate with e2e p99 ≤ {:.0} ms, nothing lost and at least {:.0}% acknowledged and read (±{:.0}%); a trial is kept when it passes twice at the rate the best failed at",
                c.slo_p99_ms,
                c.min_delivered * 100.0,
                c.resolution * 100.0
            );
        }
        format!(
            "maximise score = acknowledged records/s ÷ (1 + e2e p99 / {:.0} ms) at the lab's offered load; a step that loses, duplicates or corrupts a record scores 0",
            self.slo_p99_ms
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    Guided,
    Random {
        seed: u64,
    },
    /// An outside program proposes the trials (`exec`).
    Exec {
        command: String,
        answer_timeout_ms: u64,
    },
}

/// How an `exec` agent's search ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentEnd {
    pub command: String,
    /// `stop` (the agent said so), `budget`, or what went wrong.
    pub ended: String,
    /// The agent crashed, hung or answered garbage: the search ended early.
    pub failed: bool,
}

#[derive(Debug, Clone)]
pub struct TuneOptions {
    pub budget: usize,
    pub strategy: Strategy,
    pub objective: Objective,
    /// Measurements of the start (at least 1; 2 estimate the noise).
    pub start_repeats: usize,
    /// The smallest relative noise assumed, whatever the repeats say.
    pub noise_floor: f64,
    /// A measurement of the start made before tuning (the demo's degraded
    /// step); it counts as the first start repeat.
    pub prior_start: Option<StepResult>,
    /// What an `exec` agent is told about the run (the lab, its floors).
    pub context: serde_json::Value,
    /// The capacity objective: the start's search made before tuning
    /// (tune-bench shares it between strategies).
    pub prior_capacity: Option<Measured>,
}

impl Default for TuneOptions {
    fn default() -> Self {
        TuneOptions {
            budget: 12,
            strategy: Strategy::Guided,
            objective: Objective::score_at(100.0),
            start_repeats: 2,
            noise_floor: 0.05,
            prior_start: None,
            context: serde_json::Value::Null,
            prior_capacity: None,
        }
    }
}

/// One measured candidate.
#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    pub n: usize,
    /// What changed against the best settings at the time.
    pub change: String,
    pub config: Candidate,
    pub result: Option<StepResult>,
    pub score: f64,
    pub accepted: bool,
    pub reason: String,
    /// An `exec` agent's own words for why it proposed this trial.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// The capacity objective: the trial's search, every probe in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Capacity>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TuneReport {
    pub strategy: Strategy,
    pub objective: String,
    pub slo_p99_ms: f64,
    pub budget: usize,
    /// Relative run-to-run noise of the score, from the start repeats.
    pub noise: f64,
    pub start_config: Candidate,
    pub start: StepResult,
    pub start_repeats: Vec<StepResult>,
    pub start_score: f64,
    pub best_config: Candidate,
    pub best: StepResult,
    pub best_score: f64,
    pub trials: Vec<Trial>,
    /// The recommended settings that differ from the start, as key=value.
    pub recommended: Vec<String>,
    /// `exec` only: how the agent's search ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentEnd>,
    /// The capacity objective: the start's search and the best's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_capacity: Option<Capacity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_capacity: Option<Capacity>,
    /// Measurements made (steps; for the capacity objective, probes).
    pub measurements: usize,
    /// Why the search ended before its budget: its best reached the run's
    /// goal (see [`Measurer::goal_reached`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goal_reached: Option<String>,
}

struct Search<'a> {
    m: &'a mut dyn Measurer,
    space: &'a Space,
    base: Candidate,
    opts: TuneOptions,
    noise: f64,
    best_point: Point,
    best_score: f64,
    best_result: StepResult,
    trials: Vec<Trial>,
    seen: HashMap<Point, f64>,
    /// The capacity objective: the best's search (where it failed), and
    /// the scale of the start's.
    best_cap: Option<Capacity>,
    scale: f64,
    measurements: usize,
    /// Set when the best reached the run's goal: no budget is left.
    goal_reached: Option<String>,
}

impl Search<'_> {
    /// Keeps a trial and tells the event bus (the live view marks it).
    fn record(&mut self, t: Trial) {
        crate::events::emit(crate::events::Event::Trial {
            n: t.n,
            change: t.change.clone(),
            score: t.score,
            accepted: t.accepted,
            reason: t.reason.clone(),
        });
        self.trials.push(t);
    }

    fn budget_left(&self) -> usize {
        if self.goal_reached.is_some() {
            return 0;
        }
        self.opts.budget.saturating_sub(self.trials.len())
    }

    fn run_trial(&mut self, p: &Point) -> Result<(Option<StepResult>, f64, Option<String>)> {
        let c = self.space.candidate(&self.base, p);
        let label = format!("trial {}", self.trials.len() + 1);
        self.measurements += 1;
        match self.m.measure(&label, &c) {
            Ok(r) => {
                let s = self.opts.objective.score(&r);
                let why = (!r.complete || !r.intact()).then(|| {
                    r.reason.clone().unwrap_or_else(|| {
                        format!(
                            "lost {}, duplicated {}, corrupt {}",
                            r.lost, r.duplicated, r.corrupt
                        )
                    })
                });
                Ok((Some(r), s, why))
            }
            Err(e) => match e.chain().find_map(|c| c.downcast_ref::<Refused>()) {
                Some(r) => Ok((None, 0.0, Some(r.to_string()))),
                None => Err(e),
            },
        }
    }

    /// Measures `p` (unless already known) and accepts it when it wins.
    /// Returns Some(accepted) or None when the budget is used up.
    fn evaluate(&mut self, p: &Point) -> Result<Option<bool>> {
        self.evaluate_with(p, false)
    }

    /// `healthy`: `p` puts knobs back to their healthy values, which the
    /// tuner prefers unless they measure worse beyond the noise.
    fn evaluate_with(&mut self, p: &Point, healthy: bool) -> Result<Option<bool>> {
        // The point of what is measured (more consumers bring partitions);
        // a shape no workload can take is not worth a trial.
        let p = &self.space.normalise(&self.base, p);
        if *p == self.best_point || !self.space.feasible(&self.space.candidate(&self.base, p)) {
            return Ok(Some(false));
        }
        if let Some(settings) = self.opts.objective.capacity {
            // A point seen before lost to the best at the time, or was the
            // best and has been beaten since.
            if self.seen.contains_key(p) {
                return Ok(Some(false));
            }
            if self.budget_left() == 0 {
                return Ok(None);
            }
            let t = self.capacity_trial(p, healthy, settings, None)?;
            self.seen.insert(p.clone(), t.score);
            let accepted = t.accepted;
            self.record(t);
            return Ok(Some(accepted));
        }
        if let Some(s) = self.seen.get(p) {
            return Ok(Some(*s > self.best_score * (1.0 + 2.0 * self.noise)));
        }
        if self.budget_left() == 0 {
            return Ok(None);
        }
        let change = self.space.describe_move(&self.best_point, p);
        let (r, s, why) = self.run_trial(p)?;
        let n = self.trials.len() + 1;
        let config = self.space.candidate(&self.base, p);
        let clear = self.best_score * (1.0 + 2.0 * self.noise);
        let marginal = self.best_score * (1.0 + self.noise);
        let (accepted, reason, score, result) = if let Some(w) = why {
            (false, w, s, r)
        } else if healthy && s >= self.best_score * (1.0 - self.noise) && s <= clear {
            (
                true,
                format!(
                    "healthy values score {:.0} vs {:.0}: equal within the noise, so the defaults win",
                    s, self.best_score
                ),
                s,
                r,
            )
        } else if s > clear {
            (
                true,
                format!(
                    "score {:.0} beats {:.0} by more than twice the noise",
                    s, self.best_score
                ),
                s,
                r,
            )
        } else if s > marginal && self.budget_left() >= 2 {
            // A marginal win: measure once more before believing it.
            self.record(Trial {
                n,
                change: change.clone(),
                config: config.clone(),
                result: r.clone(),
                score: s,
                accepted: false,
                reason: "marginal win: measuring again".into(),
                why: None,
                capacity: None,
            });
            let (r2, s2, why2) = self.run_trial(p)?;
            let mean = (s + s2) / 2.0;
            let ok = why2.is_none() && mean > marginal;
            let reason = if ok {
                format!("marginal win held on a second measurement (mean score {mean:.0})")
            } else {
                format!(
                    "marginal win did not hold (mean score {mean:.0} vs best {:.0})",
                    self.best_score
                )
            };
            (ok, reason, mean, r2)
        } else {
            (
                false,
                format!(
                    "score {:.0} is not better than {:.0} beyond the noise",
                    s, self.best_score
                ),
                s,
                r,
            )
        };
        self.seen.insert(p.clone(), score);
        if accepted && let Some(res) = &result {
            self.best_point = p.clone();
            self.best_score = score;
            self.best_result = res.clone();
        }
        self.record(Trial {
            n: self.trials.len() + 1,
            change,
            config,
            result,
            score,
            accepted,
            reason,
            why: None,
            capacity: None,
        });
        // The goal is looked at after a measured trial, never before the
        // first: the start alone may pass a lab whose damage is inside the
        // noise, and the tuner still tries its repair.
        if self.goal_reached.is_none() {
            self.goal_reached = self.m.goal_reached(&self.best_result).map(|why| {
                format!(
                    "{why}: the search ended after trial {} of {}",
                    self.trials.len(),
                    self.opts.budget
                )
            });
        }
        Ok(Some(accepted))
    }

    fn guided(&mut self) -> Result<()> {
        // 1. Put every deviating knob back to its healthy value at once.
        let repaired: Point = self.space.healthy(&self.space.locate(&self.base));
        if repaired != self.best_point && self.evaluate_with(&repaired, true)?.is_none() {
            return Ok(());
        }
        // 2. Coordinate descent with step doubling, until a pass finds nothing.
        loop {
            let mut improved = false;
            for i in self.knob_order() {
                match self.line_search(i)? {
                    None => return Ok(()),
                    Some(true) => improved = true,
                    Some(false) => {}
                }
            }
            if !improved {
                return Ok(());
            }
        }
    }

    /// Moves knob `i` while that wins. None: budget exhausted.
    fn line_search(&mut self, i: usize) -> Result<Option<bool>> {
        let k = self.space.knobs[i];
        let n = k.values.len() as i64;
        let cur = self.best_point[i] as i64;
        let good = k.good as i64;
        let dirs: [i64; 2] = if cur > good { [-1, 1] } else { [1, -1] };
        for dir in dirs {
            let mut step = 1i64;
            let mut moved = false;
            loop {
                let from = self.best_point[i] as i64;
                let to = (from + dir * step).clamp(0, n - 1);
                if to == from {
                    break;
                }
                let mut p = self.best_point.clone();
                p[i] = to as usize;
                match self.evaluate(&p)? {
                    None => return Ok(None),
                    Some(true) => {
                        moved = true;
                        step *= 2;
                    }
                    Some(false) if step > 1 => step = 1,
                    Some(false) => break,
                }
            }
            if moved {
                return Ok(Some(true));
            }
        }
        Ok(Some(false))
    }

    fn random(&mut self, seed: u64) -> Result<()> {
        let mut state = seed;
        let mut draws = 0;
        while self.budget_left() > 0 {
            let p: Point = self
                .space
                .knobs
                .iter()
                .map(|k| {
                    state = splitmix64(state);
                    (state % k.values.len() as u64) as usize
                })
                .collect();
            // A shape no workload can take is drawn again (a while).
            draws += 1;
            if !self.space.feasible(&self.space.candidate(&self.base, &p)) && draws < 1000 {
                continue;
            }
            let t = self.measure_against_best(&p, None)?;
            self.record(t);
        }
        Ok(())
    }

    /// Measures `p` and keeps it as the best when it completes intact and
    /// scores higher (random search and agents: no noise margin, the
    /// trace shows every score). The trial is returned, not yet recorded.
    fn measure_against_best(&mut self, p: &Point, why: Option<String>) -> Result<Trial> {
        let p = &self.space.normalise(&self.base, p);
        if let Some(settings) = self.opts.objective.capacity {
            return self.capacity_trial(p, false, settings, why);
        }
        let change = self.space.describe_move(&self.best_point, p);
        let (r, s, failed) = self.run_trial(p)?;
        let accepted = failed.is_none() && s > self.best_score;
        let reason = match failed {
            Some(w) => w,
            None if accepted => format!("best so far (score {s:.0})"),
            None => format!("score {s:.0} below the best {:.0}", self.best_score),
        };
        if accepted && let Some(res) = &r {
            self.best_point = p.clone();
            self.best_score = s;
            self.best_result = res.clone();
        }
        Ok(Trial {
            n: self.trials.len() + 1,
            change,
            config: self.space.candidate(&self.base, p),
            result: r,
            score: s,
            accepted,
            reason,
            why,
            capacity: None,
        })
    }
}

/// Searches from `start` within `opts.budget` measurements.
pub fn tune(
    m: &mut dyn Measurer,
    space: &Space,
    start: &Candidate,
    opts: &TuneOptions,
) -> Result<TuneReport> {
    let start_point = space.locate(start);
    let (repeats, mean, noise, start_cap, scale, mut measurements) = match opts.objective.capacity {
        Some(settings) => {
            let m0 = match &opts.prior_capacity {
                Some(m) => m.clone(),
                None => m.capacity("start", start, &settings, None)?,
            };
            let Some(max) = m0.capacity.max_records_per_s else {
                anyhow::bail!(
                    "the start's capacity search measured no throughput ({}): nothing to tune from",
                    crate::capacity::report::stop_text(m0.capacity.stop)
                );
            };
            let probes = m0.capacity.probes.len();
            (
                vec![m0.result.clone().unwrap_or_default()],
                m0.capacity.capacity_records_per_s.unwrap_or(0.0),
                settings.resolution.max(opts.noise_floor),
                Some(m0.capacity),
                max,
                probes,
            )
        }
        None => {
            let mut repeats: Vec<StepResult> = opts.prior_start.iter().cloned().collect();
            for i in repeats.len()..opts.start_repeats.max(1) {
                let label = if i == 0 {
                    "start".to_string()
                } else {
                    format!("start (repeat {i})")
                };
                repeats.push(m.measure(&label, start)?);
            }
            let scores: Vec<f64> = repeats.iter().map(|r| opts.objective.score(r)).collect();
            let mean = scores.iter().sum::<f64>() / scores.len() as f64;
            let spread = if scores.len() > 1 && mean > 0.0 {
                let (lo, hi) = scores
                    .iter()
                    .fold((f64::INFINITY, 0.0f64), |(l, h), s| (l.min(*s), h.max(*s)));
                (hi - lo) / mean
            } else {
                0.0
            };
            let n = repeats.len() - usize::from(opts.prior_start.is_some());
            (repeats, mean, spread.max(opts.noise_floor), None, 0.0, n)
        }
    };
    let mut s = Search {
        m,
        space,
        base: start.clone(),
        opts: opts.clone(),
        noise,
        best_point: start_point.clone(),
        best_score: mean,
        best_result: repeats[0].clone(),
        trials: Vec::new(),
        seen: HashMap::new(),
        best_cap: start_cap.clone(),
        scale,
        measurements: 0,
        goal_reached: None,
    };
    let agent = match &opts.strategy {
        Strategy::Guided => {
            s.guided()?;
            None
        }
        Strategy::Random { seed } => {
            s.random(*seed)?;
            None
        }
        Strategy::Exec {
            command,
            answer_timeout_ms,
        } => Some(s.exec(
            command,
            std::time::Duration::from_millis(*answer_timeout_ms),
        )?),
    };
    let best_config = if s.best_point == start_point {
        start.clone()
    } else {
        space.candidate(start, &s.best_point)
    };
    let recommended = diff_lines(start, &best_config);
    Ok(TuneReport {
        strategy: opts.strategy.clone(),
        objective: opts.objective.describe(),
        slo_p99_ms: opts.objective.slo_p99_ms,
        budget: opts.budget,
        noise,
        start_config: start.clone(),
        start: repeats[0].clone(),
        start_score: mean,
        start_repeats: repeats,
        best_config,
        best: s.best_result,
        best_score: s.best_score,
        trials: s.trials,
        recommended,
        agent,
        start_capacity: start_cap,
        best_capacity: s.best_cap,
        measurements: {
            measurements += s.measurements;
            measurements
        },
        goal_reached: s.goal_reached,
    })
}

#[cfg(test)]
mod tests {
    use super::sim::Simulated;
    use super::*;

    fn opts(budget: usize) -> TuneOptions {
        TuneOptions {
            budget,
            ..Default::default()
        }
    }

    #[test]
    fn guided_finds_the_optimum_of_a_simulated_surface() {
        let space = Space::default_space(false);
        // An optimum away from the healthy defaults on two knobs.
        let mut optimum: Point = space.knobs.iter().map(|k| k.good).collect();
        let io = space
            .knobs
            .iter()
            .position(|k| k.name == "num.io.threads")
            .unwrap();
        let net = space
            .knobs
            .iter()
            .position(|k| k.name == "num.network.threads")
            .unwrap();
        optimum[io] = 4;
        optimum[net] = 3;
        // Start at the worst value of every knob.
        let start_point: Point = vec![0; space.knobs.len()];
        let start = space.candidate(&Candidate::default(), &start_point);
        for seed in 1..=5 {
            let mut sim = Simulated::new(space.clone(), optimum.clone(), seed);
            let r = tune(&mut sim, &space, &start, &opts(20)).unwrap();
            assert_eq!(
                space.locate(&r.best_config),
                optimum,
                "seed {seed}: {:?}",
                r.recommended
            );
            assert!(r.trials.len() <= 20);
            assert!(r.best_score > r.start_score * 5.0);
        }
    }

    #[test]
    fn the_search_ends_at_the_goal_but_only_after_a_trial() {
        struct WithGoal {
            sim: Simulated,
            at: f64,
        }
        impl Measurer for WithGoal {
            fn measure(&mut self, label: &str, c: &Candidate) -> Result<StepResult> {
                self.sim.measure(label, c)
            }
            fn goal_reached(&self, best: &StepResult) -> Option<String> {
                (best.throughput.msgs_per_s >= self.at).then(|| "at the goal".to_string())
            }
        }
        let space = Space::default_space(false);
        let optimum: Point = space.knobs.iter().map(|k| k.good).collect();
        let start = space.candidate(&Candidate::default(), &vec![0; space.knobs.len()]);
        // The repair reaches the optimum's 100,000/s: one trial, then stop.
        let mut m = WithGoal {
            sim: Simulated::new(space.clone(), optimum.clone(), 3),
            at: 90_000.0,
        };
        let r = tune(&mut m, &space, &start, &opts(8)).unwrap();
        assert_eq!(r.trials.len(), 1, "{:?}", r.trials);
        assert!(
            r.goal_reached
                .as_deref()
                .is_some_and(|g| g.contains("after trial 1 of 8")),
            "{:?}",
            r.goal_reached
        );
        // A start that already passes still gets its repair measured: the
        // goal is only looked at after a trial.
        let mut m = WithGoal {
            sim: Simulated::new(space.clone(), optimum.clone(), 3),
            at: 0.0,
        };
        let r = tune(&mut m, &space, &start, &opts(8)).unwrap();
        assert_eq!(r.trials.len(), 1);
        assert!(r.trials[0].accepted);
        // A goal out of reach leaves the whole budget to the search.
        let mut m = WithGoal {
            sim: Simulated::new(space.clone(), optimum, 3),
            at: f64::INFINITY,
        };
        let r = tune(&mut m, &space, &start, &opts(8)).unwrap();
        assert!(r.goal_reached.is_none());
        assert!(r.trials.len() > 1);
    }

    #[test]
    fn random_search_is_reproducible_per_seed() {
        let space = Space::default_space(false);
        let optimum: Point = space.knobs.iter().map(|k| k.good).collect();
        let start = space.candidate(&Candidate::default(), &vec![0; space.knobs.len()]);
        let run = |seed| {
            let mut sim = Simulated::new(space.clone(), optimum.clone(), 7);
            let o = TuneOptions {
                strategy: Strategy::Random { seed },
                ..opts(12)
            };
            tune(&mut sim, &space, &start, &o).unwrap()
        };
        let (a, b) = (run(3), run(3));
        assert_eq!(a.best_config, b.best_config);
        assert_eq!(a.trials.len(), 12);
    }

    #[test]
    fn refused_changes_are_rejected_trials_not_errors() {
        struct Refuser(Simulated);
        impl Measurer for Refuser {
            fn measure(&mut self, label: &str, c: &Candidate) -> Result<StepResult> {
                if c.broker
                    .properties
                    .get("num.io.threads")
                    .is_some_and(|v| v == "16")
                {
                    return Err(Refused("num.io.threads: value too large".into()).into());
                }
                self.0.measure(label, c)
            }
        }
        let space = Space::only(&["num.io.threads".into()], false).unwrap();
        let optimum = vec![5];
        let start = space.candidate(&Candidate::default(), &vec![3]);
        let mut m = Refuser(Simulated::new(space.clone(), optimum, 1));
        let r = tune(&mut m, &space, &start, &opts(6)).unwrap();
        let refused: Vec<&Trial> = r
            .trials
            .iter()
            .filter(|t| t.reason.starts_with("refused"))
            .collect();
        assert_eq!(refused.len(), 1, "{:#?}", r.trials);
        assert!(!refused[0].accepted);
        assert_eq!(r.best_config.broker.properties["num.io.threads"], "12");
    }

    fn capacity_opts(budget: usize, strategy: Strategy) -> TuneOptions {
        TuneOptions {
            budget,
            strategy,
            objective: Objective::capacity(CapacitySettings::default()),
            ..Default::default()
        }
    }

    #[test]
    fn the_capacity_objective_climbs_and_a_worse_trial_costs_one_probe() {
        let space = Space::capacity_space(false);
        let mut optimum = space.healthy(&vec![0; space.knobs.len()]);
        let io = space.position("num.io.threads").unwrap();
        optimum[io] = 4;
        let start_point = vec![0; space.knobs.len()];
        let start = space.candidate(&Candidate::default(), &start_point);
        for seed in 1..=3 {
            let mut sim = Simulated::new(space.clone(), optimum.clone(), seed);
            let r = tune(
                &mut sim,
                &space,
                &start,
                &capacity_opts(16, Strategy::Guided),
            )
            .unwrap();
            let start_cap = r.start_capacity.as_ref().unwrap();
            assert_eq!(start_cap.stop, Stop::Converged, "{start_cap:?}");
            assert!(r.best_score > 5.0 * r.start_score, "seed {seed}: {r:#?}");
            // The first trial puts the healthy values back (not the shape).
            assert_eq!(
                space.locate(&r.trials[0].config),
                space.healthy(&start_point)
            );
            assert!(r.trials[0].accepted);
            for t in &r.trials {
                let Some(c) = &t.capacity else { continue };
                if t.accepted {
                    assert!(c.capacity_records_per_s.unwrap() > 0.0);
                } else if c.stop == Stop::BelowChallenge {
                    assert!(c.probes.len() <= 2, "trial {}: {:?}", t.n, c.probes);
                }
            }
            // Every kept trial's capacity beats the one before it.
            let kept: Vec<f64> = r
                .trials
                .iter()
                .filter(|t| t.accepted)
                .map(|t| t.score)
                .collect();
            assert!(
                kept.windows(2).all(|w| w[1] > w[0]) || kept.len() < 2,
                "{kept:?}"
            );
            // Each trial is at least one probe; the total is counted.
            let probes: usize = r
                .trials
                .iter()
                .filter_map(|t| t.capacity.as_ref())
                .map(|c| c.probes.len())
                .sum::<usize>()
                + start_cap.probes.len();
            assert_eq!(r.measurements, probes);
            assert_eq!(sim.calls, probes);
        }
    }

    /// A surface whose consumer is the bottleneck: at a failing probe the
    /// producers are acknowledged in full and the consumer falls short.
    struct ConsumerBound(Simulated);
    impl Measurer for ConsumerBound {
        fn measure(&mut self, label: &str, c: &Candidate) -> Result<StepResult> {
            self.0.measure(label, c)
        }
        fn capacity(
            &mut self,
            label: &str,
            c: &Candidate,
            settings: &CapacitySettings,
            warm: Option<Warm>,
        ) -> Result<Measured> {
            let mut m = self.0.capacity(label, c, settings, warm)?;
            // At the lowest failing rate only the p99 gave way (as at a
            // real knee); above it the consumer read too little.
            let lowest = m
                .capacity
                .probes
                .iter()
                .filter(|p| !p.pass)
                .filter_map(|p| p.offered_records_per_s)
                .fold(f64::INFINITY, f64::min);
            for p in &mut m.capacity.probes {
                if let (Some(rate), false) = (p.offered_records_per_s, p.pass) {
                    p.acked_records_per_s = rate;
                    p.read_records_per_s = if rate > lowest { 0.9 * rate } else { rate };
                    p.publish_p99_ms = 5.0;
                }
            }
            Ok(m)
        }
    }

    #[test]
    fn a_consumer_bound_best_turns_the_consumer_side_first() {
        let space = Space::capacity_space(false);
        let cons = space.position("consumers").unwrap();
        let base = Candidate {
            partitions: Some(2),
            consumers: Some(1),
            ..Default::default()
        };
        let here = space.locate(&base);
        // Healthy everywhere but the shape: more consumers is the way up.
        let start = space.candidate(&base, &space.healthy(&here));
        let mut optimum = space.locate(&start);
        optimum[cons] = 3;
        let mut m = ConsumerBound(Simulated::new(space.clone(), optimum, 3));
        let r = tune(&mut m, &space, &start, &capacity_opts(3, Strategy::Guided)).unwrap();
        assert!(
            r.trials[0].change.starts_with("consumers 1→2"),
            "{:#?}",
            r.trials.iter().map(|t| &t.change).collect::<Vec<_>>()
        );
        assert!(r.best_score > r.start_score);
        assert_eq!(
            r.best_config.partitions,
            r.best_config.consumers.max(Some(2))
        );
    }

    #[test]
    fn a_shared_start_search_is_not_measured_again() {
        let space = Space::capacity_space(false);
        let optimum = space.healthy(&vec![0; space.knobs.len()]);
        let start = space.candidate(&Candidate::default(), &vec![0; space.knobs.len()]);
        let mut sim = Simulated::new(space.clone(), optimum.clone(), 5);
        let s = CapacitySettings::default();
        let prior = sim.capacity("start", &start, &s, None).unwrap();
        let calls = sim.calls;
        let o = TuneOptions {
            prior_capacity: Some(prior.clone()),
            ..capacity_opts(3, Strategy::Random { seed: 2 })
        };
        let r = tune(&mut sim, &space, &start, &o).unwrap();
        assert_eq!(r.start_capacity.as_ref(), Some(&prior.capacity));
        assert_eq!(r.trials.len(), 3);
        // Only the trials were measured.
        let trial_probes: usize = r
            .trials
            .iter()
            .filter_map(|t| t.capacity.as_ref())
            .map(|c| c.probes.len())
            .sum();
        assert_eq!(sim.calls - calls, trial_probes);
    }

    #[test]
    fn a_lossy_trial_scores_zero() {
        let o = Objective::score_at(100.0);
        let mut r = StepResult {
            complete: true,
            ..Default::default()
        };
        r.throughput.msgs_per_s = 1000.0;
        r.e2e_latency_ms.p99 = 100.0;
        assert_eq!(o.score(&r), 500.0);
        r.lost = 1;
        assert_eq!(o.score(&r), 0.0);
    }
}
