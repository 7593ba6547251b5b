//! A deterministic, simulated response surface for testing and evaluating
//! search strategies without a broker: throughput and p99 are smooth
//! functions of each knob's distance from a chosen optimum, with seeded
//! multiplicative noise.

use super::space::{Candidate, Point, Space};
use super::{Measured, Measurer, Warm};
use crate::capacity::{Next, Phase, Probe, Search, Settings};
use crate::model::StepResult;
use crate::random::splitmix64;

pub struct Simulated {
    space: Space,
    optimum: Point,
    state: u64,
    /// Relative noise (uniform ±), e.g. 0.03.
    pub noise: f64,
    pub calls: usize,
}

impl Simulated {
    pub fn new(space: Space, optimum: Point, seed: u64) -> Simulated {
        Simulated {
            space,
            optimum,
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03,
            noise: 0.03,
            calls: 0,
        }
    }

    fn jitter(&mut self) -> f64 {
        self.state = splitmix64(self.state);
        let u = (self.state >> 11) as f64 / (1u64 << 53) as f64; // [0,1)
        1.0 + self.noise * (2.0 * u - 1.0)
    }

    /// Noise-free throughput and p99 at a point.
    pub fn truth(&self, p: &Point) -> (f64, f64) {
        let mut tput = 100_000.0;
        let mut p99 = 10.0;
        for (i, (&a, &b)) in p.iter().zip(&self.optimum).enumerate() {
            let d = (a as f64 - b as f64).abs();
            // Knobs earlier in the space matter more.
            let weight = 1.0 / (1.0 + i as f64 * 0.15);
            tput /= 1.0 + weight * 0.6 * d.powf(1.3);
            p99 *= 1.0 + weight * 0.8 * d;
        }
        (tput, p99)
    }
}

impl Simulated {
    /// A step at `rate` (None: no rate) for a point whose knee is `knee`:
    /// below it everything offered arrives at `p99`; above it the step
    /// carries only the knee, late.
    fn step_at(
        &mut self,
        label: &str,
        rate: Option<f64>,
        knee: f64,
        p99: f64,
        slo: f64,
    ) -> StepResult {
        self.calls += 1;
        let mut r = StepResult {
            label: Some(label.to_string()),
            complete: true,
            ..Default::default()
        };
        let (carried, late) = match rate {
            Some(x) if x <= knee => (x, false),
            _ => (knee, true),
        };
        r.throughput.msgs_per_s = carried;
        r.read_rate = carried;
        r.e2e_latency_ms.p99 = if late { slo * 4.0 } else { p99.min(slo * 0.8) };
        r.acked = carried as u64;
        r.consumed = r.acked;
        r
    }
}

impl Measurer for Simulated {
    fn measure(&mut self, label: &str, c: &Candidate) -> anyhow::Result<StepResult> {
        self.calls += 1;
        let p = self.space.locate(c);
        let (t, l) = self.truth(&p);
        let mut r = StepResult {
            label: Some(label.to_string()),
            complete: true,
            ..Default::default()
        };
        r.throughput.msgs_per_s = t * self.jitter();
        r.e2e_latency_ms.p99 = l * self.jitter();
        r.acked = r.throughput.msgs_per_s as u64;
        r.consumed = r.acked;
        Ok(r)
    }

    /// The capacity at a point is its noise-free throughput; each probe
    /// sees a knee moved by the noise.
    fn capacity(
        &mut self,
        label: &str,
        c: &Candidate,
        settings: &Settings,
        warm: Option<Warm>,
    ) -> anyhow::Result<Measured> {
        let (t, l) = self.truth(&self.space.locate(c));
        let mut search = match warm {
            Some(w) => Search::warm(label, *settings, w.max, w.challenge),
            None => Search::new(label, *settings),
        };
        let mut at: Vec<(f64, StepResult)> = Vec::new();
        loop {
            let (phase, rate) = match search.next() {
                Next::Done(_) => break,
                Next::Max => (Phase::Max, None),
                Next::Rate(p, r) => (p, Some(r.round())),
            };
            let knee = t * self.jitter();
            let r = self.step_at(label, rate, knee, l, settings.slo_p99_ms);
            let n = search.probes().len() + 1;
            search.record(Probe::of(n, phase, rate, &r, settings), true);
            if let Some(x) = rate {
                at.push((x, r));
            }
        }
        let capacity = search.answer();
        let result = crate::capacity::result_at(&capacity, &at);
        Ok(Measured { capacity, result })
    }
}
