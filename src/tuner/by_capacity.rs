//! The capacity objective's part of the search: the rate a trial is
//! challenged at, the trial itself (a warm capacity search), and which
//! side of the pipeline gave way (the order the guided descent takes).

use super::space::{self, Point};
use super::{CapacitySettings, Refused, Search, Stop, Trial, Warm};
use anyhow::Result;

impl Search<'_> {
    /// The order a pass of the descent visits the knobs: the space's; with
    /// the capacity objective, when the consumer is what failed first at
    /// the best's lowest failing rate (it read less than was acknowledged),
    /// the consumer side (consumers, partitions, fetch settings) first.
    pub(super) fn knob_order(&self) -> Vec<usize> {
        let all: Vec<usize> = (0..self.space.knobs.len()).collect();
        if !self.consumer_bound() {
            return all;
        }
        let consumer_side = |i: &usize| {
            matches!(
                self.space.knobs[*i].place,
                space::Place::Consumers | space::Place::Partitions | space::Place::Consumer(_)
            )
        };
        let (first, rest): (Vec<usize>, Vec<usize>) = all.into_iter().partition(consumer_side);
        first.into_iter().chain(rest).collect()
    }

    /// The best's failing probes say the consumer side gave way: the
    /// producers were acknowledged in full and quickly (publish p99 within
    /// the SLO), while the records were read too slowly or too late.
    fn consumer_bound(&self) -> bool {
        let (Some(settings), Some(cap)) = (self.opts.objective.capacity, &self.best_cap) else {
            return false;
        };
        let failed: Vec<&crate::capacity::Probe> = cap
            .probes
            .iter()
            .filter(|p| !p.pass && p.offered_records_per_s.is_some())
            .collect();
        !failed.is_empty()
            && failed.iter().all(|p| {
                let need = settings.min_delivered * p.offered_records_per_s.unwrap_or_default();
                p.acked_records_per_s >= need && p.publish_p99_ms <= settings.slo_p99_ms
            })
    }

    /// The rate a capacity trial is challenged at: where the best failed
    /// (the healthy values: where it passed).
    fn challenge(&self, healthy: bool) -> f64 {
        let best = self.best_score;
        let failed = self
            .best_cap
            .as_ref()
            .and_then(|c| c.failed_at_records_per_s);
        if healthy && best > 0.0 {
            return best;
        }
        // A failure below the answer (noise the search could not place)
        // is no challenge.
        failed
            .filter(|f| *f > best)
            .or((best > 0.0).then_some(best * 1.25))
            .unwrap_or(crate::capacity::START_SHARE * self.scale)
    }

    /// A capacity trial of `p` (warm, challenged as [`Search::challenge`]
    /// says); kept as the best when its capacity holds at the challenge.
    /// The trial is returned, not yet recorded.
    pub(super) fn capacity_trial(
        &mut self,
        p: &Point,
        healthy: bool,
        settings: CapacitySettings,
        why: Option<String>,
    ) -> Result<Trial> {
        let n = self.trials.len() + 1;
        let change = self.space.describe_move(&self.best_point, p);
        let config = self.space.candidate(&self.base, p);
        let challenge = self.challenge(healthy);
        let warm = Warm {
            max: self.scale.max(self.best_score).max(challenge),
            challenge,
        };
        let rate = crate::stats::table::fmt_rate;
        let measured = match self
            .m
            .capacity(&format!("trial {n}"), &config, &settings, Some(warm))
        {
            Ok(m) => m,
            Err(e) => match e.chain().find_map(|c| c.downcast_ref::<Refused>()) {
                Some(r) => {
                    return Ok(Trial {
                        n,
                        change,
                        config,
                        result: None,
                        score: 0.0,
                        accepted: false,
                        reason: r.to_string(),
                        why,
                        capacity: None,
                    });
                }
                None => return Err(e),
            },
        };
        self.measurements += measured.capacity.probes.len();
        let cap = measured.capacity.capacity_records_per_s;
        let score = cap.unwrap_or(0.0);
        let last_missed = measured
            .capacity
            .probes
            .last()
            .map(|p| p.missed.join("; "))
            .unwrap_or_default();
        let (accepted, reason) = match (cap, measured.capacity.stop) {
            (Some(c), Stop::Converged | Stop::Budget | Stop::AboveCeiling) if healthy => (
                true,
                format!(
                    "healthy values carry {}/s (the best {}/s): between equals the defaults win",
                    rate(c),
                    rate(self.best_score)
                ),
            ),
            (Some(c), Stop::Converged | Stop::Budget | Stop::AboveCeiling)
                if c > self.best_score =>
            {
                (
                    true,
                    format!(
                        "capacity {}/s: passes twice at {}/s, where the best failed",
                        rate(c),
                        rate(challenge)
                    ),
                )
            }
            (_, Stop::BelowChallenge) => (
                false,
                format!(
                    "capacity below {}/s{}: {last_missed}",
                    rate(challenge),
                    if healthy {
                        " (the best's)"
                    } else {
                        " (where the best failed)"
                    }
                ),
            ),
            (Some(c), Stop::Converged | Stop::Budget | Stop::AboveCeiling) => (
                false,
                format!(
                    "capacity {}/s is not above the best's {}/s",
                    rate(c),
                    rate(self.best_score)
                ),
            ),
            (_, stop) => (false, crate::capacity::report::stop_text(stop).to_string()),
        };
        if accepted && let Some(res) = &measured.result {
            self.best_point = p.clone();
            self.best_score = score;
            self.best_result = res.clone();
            self.best_cap = Some(measured.capacity.clone());
        }
        Ok(Trial {
            n,
            change,
            config,
            result: measured.result,
            score,
            accepted,
            reason,
            why,
            capacity: Some(measured.capacity),
        })
    }
}
