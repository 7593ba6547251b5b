//! Capacity under a latency SLO: the highest offered rate a broker carries
//! while the e2e p99 stays at or under the SLO, nothing is lost, and what
//! was offered is acknowledged and read (at least [`Settings::min_delivered`]
//! of it).
//!
//! The search is a pure state machine ([`Search`]): it says which rate to
//! probe next, the caller measures it and hands the probe back. First one
//! probe at max (what the pipeline sustains with no rate at all) sets the
//! scale; then the search brackets the answer (down by halves from 80% of
//! that figure, or up by quarters), bisects the bracket on a log scale until
//! its ends lie within the resolution of their middle, and measures the
//! highest passing rate once more before it answers: a rate that passed
//! once by luck and fails the second time becomes the upper end and the
//! bisection goes on. The answer is the highest rate that passed twice;
//! the true knee lies between it and the lowest rate that failed.
//!
//! `lab::capacity` runs a search on a lab target; `klab capacity` is the
//! command. [`report`] draws the table and the latency–throughput curve.

pub mod report;

use crate::model::StepResult;
use serde::{Deserialize, Serialize};

/// What a probe must meet, and how precisely the answer is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// The e2e p99 a passing probe stays at or under.
    pub slo_p99_ms: f64,
    /// The answer's precision: the search stops when the highest passing
    /// and lowest failing rates lie within ± this share of their middle.
    pub resolution: f64,
    /// At most this many probes per configuration (the max probe included).
    pub max_probes: usize,
    /// Share of the offered rate that must be acknowledged, and read.
    pub min_delivered: f64,
}

pub const DEFAULT_SLO_P99_MS: f64 = 50.0;
const DEFAULT_RESOLUTION: f64 = 0.05;
pub const DEFAULT_MAX_PROBES: usize = 14;
const MIN_DELIVERED: f64 = 0.98;
/// Allowed resolutions: 1% to 25%.
pub const RESOLUTION_RANGE: (f64, f64) = (0.01, 0.25);
/// Allowed probe budgets.
pub const MAX_PROBES_RANGE: (usize, usize) = (4, 40);

impl Default for Settings {
    fn default() -> Self {
        Settings {
            slo_p99_ms: DEFAULT_SLO_P99_MS,
            resolution: DEFAULT_RESOLUTION,
            max_probes: DEFAULT_MAX_PROBES,
            min_delivered: MIN_DELIVERED,
        }
    }
}

impl Settings {
    /// The bracket is narrow enough when `hi / lo` is at most this.
    fn narrow_enough(&self) -> f64 {
        (1.0 + self.resolution) / (1.0 - self.resolution)
    }
}

/// Why a probe was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// No rate: what the pipeline sustains (sets the search's scale).
    Max,
    /// Looking for one rate that passes and one that fails.
    Bracket,
    /// Halving the bracket.
    Bisect,
    /// The highest passing rate, measured again.
    Confirm,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Max => "max",
            Phase::Bracket => "bracket",
            Phase::Bisect => "bisect",
            Phase::Confirm => "confirm",
        })
    }
}

/// One measurement of the search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    /// 1-based, in the order measured (across configurations).
    pub n: usize,
    pub phase: Phase,
    /// None for the max probe.
    pub offered_records_per_s: Option<f64>,
    /// Acknowledged per second of the window (for the max probe: the
    /// median full second, acknowledged and read, whichever is lower).
    pub acked_records_per_s: f64,
    pub read_records_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Send to acknowledgement, p99: a low one beside a high e2e p99 says
    /// the records waited after the broker had them (the consumer side).
    #[serde(default)]
    pub publish_p99_ms: f64,
    pub lost: u64,
    /// Records whose delivery failed.
    pub failed: u64,
    pub complete: bool,
    /// Met every bound (always false for the max probe, which has none).
    pub pass: bool,
    /// Each bound the probe missed, with the measured value and the limit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missed: Vec<String>,
    /// The probe's step result, beside the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_file: Option<String>,
}

impl Probe {
    /// A probe of `offered` (None: the max probe) from its step result.
    pub fn of(n: usize, phase: Phase, offered: Option<f64>, r: &StepResult, s: &Settings) -> Probe {
        let missed = match offered {
            Some(rate) => judge(r, rate, s),
            None => Vec::new(),
        };
        Probe {
            n,
            phase,
            offered_records_per_s: offered,
            acked_records_per_s: r.throughput.msgs_per_s,
            read_records_per_s: r.read_rate,
            p50_ms: r.e2e_latency_ms.p50,
            p99_ms: r.e2e_latency_ms.p99,
            publish_p99_ms: r.publish_latency_ms.p99,
            lost: r.lost,
            failed: r.failed,
            complete: r.complete,
            pass: offered.is_some() && missed.is_empty(),
            missed,
            result_file: None,
        }
    }
}

/// The bounds a measurement at `offered` records/s missed (empty: it
/// passed), each with its measured value against the limit.
pub fn judge(r: &StepResult, offered: f64, s: &Settings) -> Vec<String> {
    let mut missed = Vec::new();
    if !r.complete {
        missed.push(format!(
            "incomplete: {}",
            r.reason.as_deref().unwrap_or("the step did not finish")
        ));
    }
    if r.lost > 0 {
        missed.push(format!("lost {} records (allowed 0)", r.lost));
    }
    if r.failed > 0 {
        missed.push(format!("{} deliveries failed (allowed 0)", r.failed));
    }
    let floor = s.min_delivered * offered;
    if r.throughput.msgs_per_s < floor {
        missed.push(format!(
            "acknowledged {:.0}/s < {:.0}% of {offered:.0}/s",
            r.throughput.msgs_per_s,
            s.min_delivered * 100.0
        ));
    }
    if r.read_rate < floor {
        missed.push(format!(
            "consumer read {:.0}/s < {:.0}% of {offered:.0}/s",
            r.read_rate,
            s.min_delivered * 100.0
        ));
    }
    // A NaN p99 (nothing read) fails too.
    if r.e2e_latency_ms.p99.is_nan() || r.e2e_latency_ms.p99 > s.slo_p99_ms {
        missed.push(format!(
            "e2e p99 {:.1} ms > SLO {} ms",
            r.e2e_latency_ms.p99, s.slo_p99_ms
        ));
    }
    missed
}

/// A failed probe that met every bound but the p99, and missed that by
/// less than the SLO again.
pub fn marginal(p: &Probe, s: &Settings) -> bool {
    let Some(rate) = p.offered_records_per_s else {
        return false;
    };
    let need = s.min_delivered * rate;
    !p.pass
        && p.complete
        && p.lost == 0
        && p.failed == 0
        && p.acked_records_per_s >= need
        && p.read_records_per_s >= need
        && p.p99_ms <= 2.0 * s.slo_p99_ms
}

/// How a search ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// Still searching.
    Searching,
    /// The bracket is within the resolution and its lower end passed twice.
    Converged,
    /// The probe budget ran out first.
    Budget,
    /// Nothing passed down to [`FLOOR_SHARE`] of the max figure.
    BelowFloor,
    /// Everything passed up to [`CEILING_SHARE`] of the max figure.
    AboveCeiling,
    /// The max probe measured nothing (no throughput, or incomplete).
    NoScale,
    /// Ctrl-C, or a measurement that ended in an error.
    Interrupted,
    /// A warm search ([`Search::warm`]): the challenge rate did not pass
    /// twice, so the capacity is below it (not searched further).
    BelowChallenge,
}

/// The lowest rate the search brackets down to, as a share of the max figure.
const FLOOR_SHARE: f64 = 1.0 / 64.0;
/// The highest rate it brackets up to.
const CEILING_SHARE: f64 = 4.0;
/// Where the bracket starts, as a share of the max figure.
pub const START_SHARE: f64 = 0.8;

/// What to measure next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    Max,
    Rate(Phase, f64),
    Done(Stop),
}

/// A search's answer and its probes, as in the JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    /// The configuration (`base`, or a `--compare` file's name).
    pub name: String,
    /// The highest offered rate that passed twice (None: none did).
    pub capacity_records_per_s: Option<f64>,
    /// The lowest rate that failed above it.
    pub failed_at_records_per_s: Option<f64>,
    /// The max probe's figure.
    pub max_records_per_s: Option<f64>,
    pub stop: Stop,
    pub probes: Vec<Probe>,
}

/// The search for one configuration.
#[derive(Debug, Clone)]
pub struct Search {
    pub settings: Settings,
    pub name: String,
    max: Option<f64>,
    lo: Option<f64>,
    /// `lo` passed a second time.
    confirmed: bool,
    hi: Option<f64>,
    probes: Vec<Probe>,
    stop: Stop,
    /// A warm search's first rate; failing it ends the search.
    challenge: Option<f64>,
    /// A warm search has measured its own max figure.
    own_scale: bool,
}

impl Search {
    pub fn new(name: &str, settings: Settings) -> Search {
        Search {
            settings,
            name: name.to_string(),
            max: None,
            lo: None,
            confirmed: false,
            hi: None,
            probes: Vec::new(),
            stop: Stop::Searching,
            challenge: None,
            own_scale: false,
        }
    }

    /// A search that only wants to know whether the capacity is at least
    /// `challenge`, and how far above it: the scale is known (`max`, from
    /// an earlier search), so there is no max probe; the first probe is at
    /// `challenge`; if that rate does not pass twice the search ends with
    /// [`Stop::BelowChallenge`], otherwise it brackets upwards and bisects
    /// as usual. The tuner's capacity trials: one probe for a candidate
    /// that is not better, a few for one that is.
    pub fn warm(name: &str, settings: Settings, max: f64, challenge: f64) -> Search {
        Search {
            max: Some(max),
            challenge: Some(challenge),
            ..Search::new(name, settings)
        }
    }

    pub fn probes(&self) -> &[Probe] {
        &self.probes
    }

    /// The max figure, once measured.
    pub fn max(&self) -> Option<f64> {
        self.max
    }

    pub fn next(&self) -> Next {
        if self.stop != Stop::Searching {
            return Next::Done(self.stop);
        }
        let Some(max) = self.max else {
            return Next::Max;
        };
        if self.probes.len() >= self.settings.max_probes {
            return Next::Done(Stop::Budget);
        }
        match (self.lo, self.hi) {
            (None, None) => Next::Rate(Phase::Bracket, self.challenge.unwrap_or(START_SHARE * max)),
            (None, Some(h)) if self.challenge.is_some_and(|c| h <= c * 1.001) => {
                if self.retest(h) {
                    Next::Rate(Phase::Confirm, h)
                } else {
                    Next::Done(Stop::BelowChallenge)
                }
            }
            (None, Some(h)) => {
                // Halving, but the floor itself is the last rate tried.
                let floor = FLOOR_SHARE * max;
                if h <= floor * 1.001 {
                    Next::Done(Stop::BelowFloor)
                } else {
                    Next::Rate(Phase::Bracket, (h / 2.0).max(floor))
                }
            }
            // A passed challenge is measured again before anything else:
            // a lucky pass near the best's knee costs two probes, not five.
            (Some(l), None) if self.challenge == Some(l) && !self.confirmed => {
                Next::Rate(Phase::Confirm, l)
            }
            (Some(_), None) if self.challenge.is_some() && !self.own_scale => Next::Max,
            (Some(l), None) => {
                let r = if self.challenge.is_some() {
                    (START_SHARE * max).max(l * 1.25)
                } else {
                    l * 1.25
                };
                if r > CEILING_SHARE * max {
                    Next::Done(Stop::AboveCeiling)
                } else {
                    Next::Rate(Phase::Bracket, r)
                }
            }
            (Some(l), Some(h)) => {
                if h / l > self.settings.narrow_enough() {
                    Next::Rate(Phase::Bisect, (l * h).sqrt())
                } else if !self.confirmed {
                    Next::Rate(Phase::Confirm, l)
                } else {
                    Next::Done(Stop::Converged)
                }
            }
        }
    }

    /// Hands back a measured probe. A max probe sets the scale when `use_it`
    /// (a probe on a cold JVM is kept in the list but not used).
    pub fn record(&mut self, probe: Probe, use_it: bool) {
        match probe.offered_records_per_s {
            None => {
                if use_it {
                    let m = probe.acked_records_per_s.min(probe.read_records_per_s);
                    if probe.complete && m > 0.0 {
                        self.max = Some(m);
                        self.own_scale = true;
                    } else {
                        self.stop = Stop::NoScale;
                    }
                }
            }
            Some(r) => {
                if probe.pass && self.challenge == Some(r) && self.hi == Some(r) {
                    // The retest of a narrow failure passed: it was noise.
                    self.hi = None;
                }
                if probe.pass {
                    if self.lo == Some(r) {
                        self.confirmed = true;
                    } else if self.lo.is_none_or(|l| r > l) {
                        self.lo = Some(r);
                        self.confirmed = false;
                    }
                } else if self.lo == Some(r) {
                    // The boundary's second measurement failed: it was luck.
                    self.hi = Some(r);
                    self.lo = self.best_pass_below(r);
                    self.confirmed = false;
                } else if self.hi.is_none_or(|h| r < h) {
                    self.hi = Some(r);
                }
            }
        }
        self.probes.push(probe);
    }

    /// A warm search's challenge failed once, narrowly: every bound held
    /// but the p99, and that within twice the SLO. One bad second does
    /// that; the rate is measured once more before the candidate is
    /// called worse.
    fn retest(&self, r: f64) -> bool {
        let at: Vec<&Probe> = self
            .probes
            .iter()
            .filter(|p| p.offered_records_per_s == Some(r))
            .collect();
        at.len() == 1 && marginal(at[0], &self.settings)
    }

    /// The highest rate below `r` that passed and never failed.
    fn best_pass_below(&self, r: f64) -> Option<f64> {
        let failed = |x: f64| {
            self.probes
                .iter()
                .any(|p| p.offered_records_per_s == Some(x) && !p.pass)
        };
        self.probes
            .iter()
            .filter(|p| p.pass)
            .filter_map(|p| p.offered_records_per_s)
            .filter(|&x| x < r && !failed(x))
            .max_by(f64::total_cmp)
    }

    /// Ends the search early (Ctrl-C or an error).
    pub fn interrupt(&mut self) {
        if self.stop == Stop::Searching {
            self.stop = Stop::Interrupted;
        }
    }

    /// The answer so far; its `stop` is what [`Search::next`] says now.
    pub fn answer(&self) -> Capacity {
        let stop = match self.next() {
            Next::Done(s) => s,
            _ => Stop::Searching,
        };
        Capacity {
            name: self.name.clone(),
            capacity_records_per_s: self.lo,
            failed_at_records_per_s: self.hi,
            max_records_per_s: self.max,
            stop,
            probes: self.probes.clone(),
        }
    }
}

/// The step a search's answer stands for: the last probe at the answer's
/// rate, else the last rate probe. `at` holds the rate probes in order.
pub fn result_at(answer: &Capacity, at: &[(f64, StepResult)]) -> Option<StepResult> {
    answer
        .capacity_records_per_s
        .and_then(|c| at.iter().rev().find(|(r, _)| *r == c))
        .or(at.last())
        .map(|(_, r)| r.clone())
}

/// B against A: the ratio of the two capacities, with the range the two
/// brackets allow (lowest: B's answer over A's failing rate; highest: B's
/// failing rate over A's answer).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ratio {
    pub ratio: f64,
    pub min: f64,
    pub max: f64,
}

pub fn ratio(a: &Capacity, b: &Capacity) -> Option<Ratio> {
    let (ca, cb) = (a.capacity_records_per_s?, b.capacity_records_per_s?);
    if ca <= 0.0 {
        return None;
    }
    let ha = a.failed_at_records_per_s.unwrap_or(ca);
    let hb = b.failed_at_records_per_s.unwrap_or(cb);
    Some(Ratio {
        ratio: cb / ca,
        min: cb / ha,
        max: hb / ca,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(offered: Option<f64>, pass: bool) -> Probe {
        Probe {
            n: 0,
            phase: Phase::Bisect,
            offered_records_per_s: offered,
            acked_records_per_s: offered.unwrap_or(50_000.0),
            read_records_per_s: offered.unwrap_or(50_000.0),
            p50_ms: 2.0,
            p99_ms: if pass { 10.0 } else { 500.0 },
            publish_p99_ms: 1.0,
            lost: 0,
            failed: 0,
            complete: true,
            pass,
            missed: Vec::new(),
            result_file: None,
        }
    }

    /// Runs a search against a broker whose knee is at `knee` records/s
    /// (passes below it), flipping the verdicts listed in `lucky` (the
    /// n-th rate probe passes although it is above the knee).
    fn run(knee: f64, lucky: &[usize], s: Settings) -> Capacity {
        let mut search = Search::new("base", s);
        let mut n = 0;
        loop {
            match search.next() {
                Next::Max => search.record(probe(None, false), true),
                Next::Rate(_, r) => {
                    n += 1;
                    let pass = r <= knee || lucky.contains(&n);
                    search.record(probe(Some(r), pass), true);
                }
                Next::Done(_) => return search.answer(),
            }
        }
    }

    #[test]
    fn the_search_finds_the_knee_within_its_resolution() {
        for knee in [1_000.0, 20_000.0, 39_000.0, 47_000.0, 120_000.0] {
            let c = run(knee, &[], Settings::default());
            assert_eq!(c.stop, Stop::Converged, "knee {knee}: {c:?}");
            let lo = c.capacity_records_per_s.unwrap();
            let hi = c.failed_at_records_per_s.unwrap();
            assert!(lo <= knee && knee < hi, "knee {knee} not in [{lo}, {hi})");
            assert!(hi / lo <= 1.05 / 0.95 + 1e-9, "bracket {lo}..{hi} too wide");
            // The answer was measured twice.
            let at_lo = c
                .probes
                .iter()
                .filter(|p| p.offered_records_per_s == Some(lo))
                .count();
            assert_eq!(at_lo, 2, "knee {knee}");
            assert!(
                c.probes.len() <= 12,
                "knee {knee}: {} probes",
                c.probes.len()
            );
        }
    }

    impl Probe {
        /// The same figures as a max probe (no rate).
        fn with_no_rate(mut self) -> Probe {
            self.offered_records_per_s = None;
            self.pass = false;
            self
        }
    }

    /// A warm search against a knee: (answer, probes measured).
    fn warm(knee: f64, challenge: f64) -> Capacity {
        let mut search = Search::warm("trial", Settings::default(), 100_000.0, challenge);
        loop {
            match search.next() {
                // What the pipeline sustains, a little above the knee.
                Next::Max => search.record(probe(Some(1.2 * knee), true).with_no_rate(), true),
                Next::Rate(_, r) => search.record(probe(Some(r), r <= knee), true),
                Next::Done(_) => return search.answer(),
            }
        }
    }

    #[test]
    fn a_warm_search_stops_at_a_failed_challenge_and_climbs_past_a_passed_one() {
        let below = warm(30_000.0, 40_000.0);
        assert_eq!(below.stop, Stop::BelowChallenge);
        assert_eq!(below.probes.len(), 1, "one probe decides a worse candidate");
        assert_eq!(below.capacity_records_per_s, None);
        assert_eq!(below.failed_at_records_per_s, Some(40_000.0));

        let above = warm(61_000.0, 40_000.0);
        assert_eq!(above.stop, Stop::Converged, "{above:?}");
        // Far above the scale it was given: its own max probe finds it.
        let far = warm(900_000.0, 40_000.0);
        assert_eq!(far.stop, Stop::Converged, "{far:?}");
        let lo = far.capacity_records_per_s.unwrap();
        assert!(lo <= 900_000.0 && 900_000.0 < far.failed_at_records_per_s.unwrap());
        assert!(far.probes.len() <= 12, "{} probes", far.probes.len());
        let lo = above.capacity_records_per_s.unwrap();
        let hi = above.failed_at_records_per_s.unwrap();
        assert!(lo <= 61_000.0 && 61_000.0 < hi, "{lo}..{hi}");
        assert!(above.probes.len() <= 8, "{} probes", above.probes.len());

        // A lucky pass at the challenge costs two probes.
        let mut s = Search::warm("t", Settings::default(), 100_000.0, 40_000.0);
        s.record(probe(Some(40_000.0), true), true);
        s.record(probe(Some(40_000.0), false), true);
        assert_eq!(s.next(), Next::Done(Stop::BelowChallenge));
        assert_eq!(s.answer().probes.len(), 2);

        // A narrow failure (only the p99, within twice the SLO) is
        // measured again; passing then, the search goes on as if it had
        // not failed. A clear failure is not retested.
        let mut s = Search::warm("t", Settings::default(), 100_000.0, 40_000.0);
        let mut narrow = probe(Some(40_000.0), false);
        narrow.p99_ms = 65.0;
        s.record(narrow.clone(), true);
        assert_eq!(s.next(), Next::Rate(Phase::Confirm, 40_000.0));
        s.record(probe(Some(40_000.0), true), true);
        assert_eq!(s.next(), Next::Rate(Phase::Confirm, 40_000.0));
        s.record(probe(Some(40_000.0), true), true);
        assert_eq!(s.next(), Next::Max);
        let mut s = Search::warm("t", Settings::default(), 100_000.0, 40_000.0);
        s.record(narrow.clone(), true);
        s.record(narrow, true);
        assert_eq!(s.next(), Next::Done(Stop::BelowChallenge), "twice is worse");
        let mut s = Search::warm("t", Settings::default(), 100_000.0, 40_000.0);
        s.record(probe(Some(40_000.0), false), true);
        assert_eq!(
            s.next(),
            Next::Done(Stop::BelowChallenge),
            "a clear failure"
        );

        // Passing the challenge twice is not the end: at the knee itself the
        // climb fails and the highest pass is measured again.
        let mut s = Search::warm("t", Settings::default(), 100_000.0, 40_000.0);
        s.record(probe(Some(40_000.0), true), true);
        assert_eq!(s.next(), Next::Rate(Phase::Confirm, 40_000.0));
        s.record(probe(Some(40_000.0), true), true);
        assert_eq!(
            s.next(),
            Next::Max,
            "a confirmed challenge measures its own scale"
        );
        s.record(probe(Some(45_000.0), true).with_no_rate(), true);
        assert!(matches!(s.next(), Next::Rate(Phase::Bracket, r) if r == 50_000.0));
        // Everything above the challenge fails: the answer is the
        // challenge, already measured twice.
        while let Next::Rate(Phase::Bracket | Phase::Bisect, r) = s.next() {
            s.record(probe(Some(r), false), true);
        }
        assert_eq!(s.next(), Next::Done(Stop::Converged));
        assert_eq!(s.answer().capacity_records_per_s, Some(40_000.0));
    }

    #[test]
    fn a_lucky_pass_at_the_boundary_is_caught_by_the_second_measurement() {
        // Rate probes: 1 bracket at 40k passes (knee 30k: lucky), 2 at 50k
        // fails, then bisections below 40k fail until the confirmation of
        // 40k fails too and the search goes down.
        let c = run(30_000.0, &[1], Settings::default());
        assert_eq!(c.stop, Stop::Converged, "{c:?}");
        let lo = c.capacity_records_per_s.unwrap();
        assert!(lo <= 30_000.0, "the lucky 40k stayed the answer: {c:?}");
        assert!(c.failed_at_records_per_s.unwrap() > 30_000.0);
    }

    #[test]
    fn searches_end_below_the_floor_above_the_ceiling_and_on_budget() {
        let c = run(10.0, &[], Settings::default());
        assert_eq!(c.stop, Stop::BelowFloor);
        assert_eq!(c.capacity_records_per_s, None);
        let c = run(1e9, &[], Settings::default());
        assert_eq!(c.stop, Stop::AboveCeiling);
        let c = run(
            31_234.0,
            &[],
            Settings {
                resolution: 0.01,
                max_probes: 5,
                ..Settings::default()
            },
        );
        assert_eq!(c.stop, Stop::Budget);
        assert_eq!(c.probes.len(), 5);
    }

    #[test]
    fn a_max_probe_that_measured_nothing_stops_the_search() {
        let mut s = Search::new("base", Settings::default());
        let mut p = probe(None, false);
        p.complete = false;
        // A cold probe does not count, the warm one does.
        s.record(p.clone(), false);
        assert_eq!(s.next(), Next::Max);
        s.record(p, true);
        assert_eq!(s.next(), Next::Done(Stop::NoScale));
    }

    #[test]
    fn judging_names_every_missed_bound() {
        let mut r = StepResult {
            complete: true,
            ..Default::default()
        };
        r.throughput.msgs_per_s = 9_000.0;
        r.read_rate = 10_000.0;
        r.e2e_latency_ms.p99 = 80.0;
        r.lost = 3;
        let m = judge(&r, 10_000.0, &Settings::default());
        assert_eq!(m.len(), 3, "{m:?}");
        assert!(m[0].contains("lost 3"));
        assert!(m[1].contains("acknowledged 9000/s < 98% of 10000/s"));
        assert!(m[2].contains("e2e p99 80.0 ms > SLO 50 ms"));
        r.throughput.msgs_per_s = 9_900.0;
        r.e2e_latency_ms.p99 = 50.0;
        r.lost = 0;
        assert!(judge(&r, 10_000.0, &Settings::default()).is_empty());
        r.e2e_latency_ms.p99 = f64::NAN;
        assert_eq!(judge(&r, 10_000.0, &Settings::default()).len(), 1);
    }

    #[test]
    fn ratios_carry_the_brackets() {
        let a = run(20_000.0, &[], Settings::default());
        let b = run(30_000.0, &[], Settings::default());
        let r = ratio(&a, &b).unwrap();
        assert!(r.min <= r.ratio && r.ratio <= r.max);
        assert!((r.ratio - 1.5).abs() < 0.15, "{r:?}");
        assert!(ratio(&a, &run(1.0, &[], Settings::default())).is_none());
    }
}
