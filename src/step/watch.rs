//! What watches a step while its load runs: a list of small watchers, each
//! with one `tick` (about ten a second) and a `finish` that adds what it
//! found to the result. Time comes in the tick, never from the clock of
//! the watcher itself, so each is tested on a fake clock without a JVM.

use crate::events::{self, Event};
use crate::model::{CpuUse, StepResult};
use crate::stats::cpu::CpuSampler;
use crate::step::driver::{LoadOutcome, Snapshot};
use crate::step::side::BrokerSide;
use std::collections::VecDeque;
use std::time::Duration;

/// One look at a running step.
pub struct Tick<'a> {
    /// Since the load's clock began.
    pub t: Duration,
    /// Since the measured window began (None during the warm-up).
    pub window: Option<Duration>,
    pub load: &'a Snapshot,
    /// Already asked to stop (by a watcher, the load, or Ctrl-C).
    pub stopping: bool,
}

/// What a watcher may do to the step: stop it, with a reason.
#[derive(Debug, Default)]
pub struct Verdicts {
    /// The first reason to stop the load, if any watcher gave one this tick.
    pub stop: Option<String>,
    /// A node died by itself: the step ends, the cluster is not healed and
    /// the topic is not read back.
    pub broker_died: Option<String>,
    /// A node of a cluster died by itself and the others carried on: the
    /// step goes on, and says so (a sentence each).
    pub outside_deaths: Vec<String>,
}

impl Verdicts {
    pub fn stop(&mut self, why: impl Into<String>) {
        self.stop.get_or_insert_with(|| why.into());
    }
}

pub trait Watcher {
    fn tick(&mut self, now: &Tick<'_>, side: &mut dyn BrokerSide, out: &mut Verdicts);
    /// Once the load has ended: adds what it found to the step's result
    /// (before the faults' windows are cut and the topic is read back).
    fn finish(
        &mut self,
        side: &mut dyn BrokerSide,
        outcome: &LoadOutcome,
        result: &mut StepResult,
    ) {
        let _ = (side, outcome, result);
    }
}

/// After the producers are done, the consumer has `limit` to reach every
/// end-of-run marker; a throw-away load (the JIT warm-up) is not waited
/// for at all.
pub struct CatchUp {
    pub limit: Duration,
    pub throwaway: bool,
    producers_end: Option<Duration>,
}

impl CatchUp {
    pub fn new(limit: Duration, throwaway: bool) -> CatchUp {
        CatchUp {
            limit,
            throwaway,
            producers_end: None,
        }
    }
}

impl Watcher for CatchUp {
    fn tick(&mut self, now: &Tick<'_>, _: &mut dyn BrokerSide, out: &mut Verdicts) {
        if !now.load.producers_done || now.stopping {
            return;
        }
        let end = *self.producers_end.get_or_insert(now.t);
        if self.throwaway {
            out.stop("a throw-away load: the consumer is not waited for");
        } else if now.t.saturating_sub(end) >= self.limit {
            out.stop(format!(
                "the consumer fell behind: {} records read {}s after the producers were done, and the end-of-run markers not yet reached (the broker serves reads slower than it takes writes)",
                now.load.consumed,
                self.limit.as_secs()
            ));
        }
    }
}

/// A node that dies by itself ends the step, unless the cluster carries on
/// without it ([`BrokerSide::lost_node`]).
#[derive(Default)]
pub struct NodeDeath {
    seen: bool,
}

impl Watcher for NodeDeath {
    fn tick(&mut self, _: &Tick<'_>, side: &mut dyn BrokerSide, out: &mut Verdicts) {
        if self.seen {
            return;
        }
        if let Some(note) = side.lost_node() {
            out.outside_deaths.push(note);
        }
        if let Some(e) = side.died() {
            self.seen = true;
            let why = format!("{e:#}");
            out.stop(why.clone());
            out.broker_died = Some(why);
        }
    }
}

/// The step's faults, fired on the measured window's timeline.
pub struct Faults {
    timeline: Option<crate::step::faults::Timeline>,
}

impl Faults {
    pub fn new(timeline: crate::step::faults::Timeline) -> Faults {
        Faults {
            timeline: Some(timeline),
        }
    }
}

impl Watcher for Faults {
    fn tick(&mut self, now: &Tick<'_>, side: &mut dyn BrokerSide, _: &mut Verdicts) {
        if now.stopping {
            return;
        }
        if let (Some(tl), Some(t), Some(host)) =
            (self.timeline.as_mut(), now.window, side.fault_host())
        {
            tl.tick(t, host);
        }
    }
    fn finish(&mut self, _: &mut dyn BrokerSide, outcome: &LoadOutcome, result: &mut StepResult) {
        if let Some(tl) = self.timeline.take() {
            result.faults = tl.finish();
            group_side(&mut result.faults, outcome);
        }
    }
}

/// What the consumer group did after each consumer event, on the measured
/// window's axis.
fn group_side(records: &mut [crate::model::FaultRecord], outcome: &LoadOutcome) {
    if !records.iter().any(|r| r.action.is_consumer()) {
        return;
    }
    let c = &outcome.consumer;
    let zero = (outcome.origin + outcome.window_start).as_secs_f64();
    let s = |ns: u64| ns as f64 / 1e9 - zero;
    let callbacks: Vec<crate::model::RebalanceEvent> = c
        .rebalances
        .iter()
        .map(|e| crate::model::RebalanceEvent {
            at_s: e.at_s - zero,
            ..e.clone()
        })
        .collect();
    let pauses: Vec<(i32, f64, f64)> = c.pauses.iter().map(|&(p, a, b)| (p, s(a), s(b))).collect();
    let dups: Vec<f64> = c.duplicate_at_ns.iter().map(|&t| s(t)).collect();
    crate::step::consumers::summarize(
        records,
        &crate::step::consumers::GroupTrace {
            callbacks: &callbacks,
            pauses: &pauses,
            duplicates_at_s: &dups,
            partitions: outcome.producer.acked_per_partition.len(),
        },
    );
}

/// The JIT has settled when the brokers' compiler threads used less than
/// this much CPU over the last [`JIT_LOOKBACK`].
pub const JIT_SETTLED: Duration = Duration::from_millis(1000);
pub const JIT_LOOKBACK: Duration = Duration::from_secs(5);
pub const JIT_MIN: Duration = Duration::from_secs(6);
/// How a JIT-settling load's `reason` starts when the JIT settled (rather
/// than the load running to its limit).
pub const JIT_SETTLED_REASON: &str = "the JIT settled after";

/// A throw-away load that ends as soon as the brokers' JIT compilers have
/// settled, after at least [`JIT_MIN`].
#[derive(Default)]
pub struct JitSettle {
    /// (tick time, compiler CPU seconds).
    samples: VecDeque<(Duration, f64)>,
}

impl Watcher for JitSettle {
    fn tick(&mut self, now: &Tick<'_>, side: &mut dyn BrokerSide, out: &mut Verdicts) {
        let Some(cpu) = side.jit_cpu_s() else {
            return;
        };
        let t = now.t;
        self.samples.push_back((t, cpu));
        while self.samples.len() > 1 && t - self.samples[1].0 >= JIT_LOOKBACK {
            self.samples.pop_front();
        }
        if let Some((t0, c0)) = self.samples.front()
            && t - *t0 >= JIT_LOOKBACK
            && t >= JIT_MIN
            && cpu - c0 < JIT_SETTLED.as_secs_f64()
            && !now.stopping
        {
            out.stop(format!("{JIT_SETTLED_REASON} {:.0}s", t.as_secs_f64()));
            tracing::info!("JIT warm-up: settled after {:.0?}", t);
        }
    }
}

/// CPU of klab, the brokers and the host from the measured window's start
/// until the producers are done (`result.cpu`).
#[derive(Default)]
pub struct Cpu {
    start: Option<CpuSampler>,
    done: Option<CpuUse>,
}

impl Watcher for Cpu {
    fn tick(&mut self, now: &Tick<'_>, side: &mut dyn BrokerSide, _: &mut Verdicts) {
        if self.start.is_none() && now.load.progress.measuring {
            self.start = Some(CpuSampler::start(&side.pids()).with_proxy(side.proxy_pid()));
        }
        if self.done.is_none()
            && now.load.producers_done
            && let Some(s) = &self.start
        {
            self.done = s.finish(&side.pids());
        }
    }
    fn finish(&mut self, side: &mut dyn BrokerSide, _: &LoadOutcome, result: &mut StepResult) {
        // The consumer may reach the end markers before a tick sees the
        // producers done: they are done by now either way.
        if self.done.is_none()
            && let Some(s) = &self.start
        {
            self.done = s.finish(&side.pids());
        }
        result.cpu = self.done.take();
    }
}

/// The live view's events: `Measuring` once the window starts, and a
/// `Second` every second with the rates and the last full second's
/// latency.
pub struct Seconds {
    bootstrap: String,
    topic: String,
    measuring: bool,
    last: Option<Duration>,
    counts: (u64, u64, u64),
    latency_second: Option<u64>,
}

impl Seconds {
    pub fn new(bootstrap: &str, topic: &str) -> Seconds {
        Seconds {
            bootstrap: bootstrap.to_string(),
            topic: topic.to_string(),
            measuring: false,
            last: None,
            counts: (0, 0, 0),
            latency_second: None,
        }
    }
}

impl Watcher for Seconds {
    fn tick(&mut self, now: &Tick<'_>, _: &mut dyn BrokerSide, _: &mut Verdicts) {
        let p = &now.load.progress;
        if p.measuring && !self.measuring {
            self.measuring = true;
            events::emit(Event::Measuring {
                bootstrap: self.bootstrap.clone(),
                topic: self.topic.clone(),
            });
        }
        let last = *self.last.get_or_insert(Duration::ZERO);
        if now.t.saturating_sub(last) < Duration::from_secs(1) {
            return;
        }
        let dt = (now.t - last).as_secs_f64();
        self.last = Some(now.t);
        let consumed = now.load.consumed;
        let live = &now.load.live;
        // Latency only for a second not reported before: while nothing
        // arrives, the chart shows a gap, not old values.
        let fresh = live.second.is_some() && live.second != self.latency_second;
        self.latency_second = live.second;
        let rate = |now: u64, before: u64| now.saturating_sub(before) as f64 / dt;
        let (s0, a0, c0) = self.counts;
        self.counts = (p.sent, p.acked, consumed);
        events::emit(Event::Second {
            bootstrap: self.bootstrap.clone(),
            topic: self.topic.clone(),
            t_s: now.t.as_secs_f64(),
            measuring: p.measuring,
            sent: p.sent,
            acked: p.acked,
            consumed,
            due: p.due.max(p.sent),
            sent_per_s: rate(p.sent, s0),
            acked_per_s: rate(p.acked, a0),
            consumed_per_s: rate(consumed, c0),
            e2e_p50_ms: fresh.then_some(live.p50_ms),
            e2e_p99_ms: fresh.then_some(live.p99_ms),
            e2e_max_ms: fresh.then_some(live.max_ms),
            publish_p99_ms: p.publish_p99_ms,
            e2e_buckets: live.buckets.clone(),
            e2e_sum_s: live.sum_s,
        });
    }
}

/// The progress bar (or plain lines) on stderr.
pub struct Bar(pub crate::stats::progress::StepBar);

impl Watcher for Bar {
    fn tick(&mut self, now: &Tick<'_>, _: &mut dyn BrokerSide, _: &mut Verdicts) {
        self.0.update(&now.load.progress, now.load.consumed);
    }
    fn finish(&mut self, _: &mut dyn BrokerSide, _: &LoadOutcome, _: &mut StepResult) {
        self.0.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::admin::Admin;
    use crate::model::{EffectiveValue, FaultAction, FaultSpec, FaultTarget, TargetKind};
    use crate::step::faults::{FaultHost, Timeline};
    use std::collections::BTreeMap;

    /// A broker side on a script: JIT CPU by tick time, a node that dies,
    /// and a fault host that writes down what it was asked to do.
    #[derive(Default)]
    struct Fake {
        now: Duration,
        jit: Option<fn(Duration) -> f64>,
        dies_at: Option<Duration>,
        calls: Vec<String>,
    }

    impl BrokerSide for Fake {
        fn kind(&self) -> TargetKind {
            TargetKind::Local
        }
        fn bootstrap(&self) -> String {
            "fake:1".into()
        }
        fn brokers(&self, _: &Admin) -> anyhow::Result<usize> {
            Ok(3)
        }
        fn effective(&self) -> BTreeMap<String, EffectiveValue> {
            BTreeMap::new()
        }
        fn died(&mut self) -> Option<anyhow::Error> {
            self.dies_at
                .filter(|d| self.now >= *d)
                .map(|_| anyhow::anyhow!("broker 2 exited with signal 9"))
        }
        fn jit_cpu_s(&self) -> Option<f64> {
            self.jit.map(|f| f(self.now))
        }
        fn check_faults(&self, _: &[FaultSpec]) -> anyhow::Result<()> {
            Ok(())
        }
        fn fault_host(&mut self) -> Option<&mut dyn FaultHost> {
            Some(self)
        }
    }

    impl FaultHost for Fake {
        fn kill(&mut self, n: i32) -> anyhow::Result<()> {
            self.calls.push(format!("kill {n} at {:?}", self.now));
            Ok(())
        }
        fn stop(&mut self, n: i32) -> anyhow::Result<()> {
            self.calls.push(format!("stop {n}"));
            Ok(())
        }
        fn pause(&mut self, n: i32) -> anyhow::Result<()> {
            self.calls.push(format!("pause {n} at {:?}", self.now));
            Ok(())
        }
        fn resume(&mut self, n: i32) -> anyhow::Result<()> {
            self.calls.push(format!("resume {n} at {:?}", self.now));
            Ok(())
        }
        fn restart(&mut self, n: i32) -> anyhow::Result<()> {
            self.calls.push(format!("restart {n}"));
            Ok(())
        }
        fn start(&mut self, n: i32) -> anyhow::Result<()> {
            self.calls.push(format!("start {n} at {:?}", self.now));
            Ok(())
        }
        fn cut(
            &mut self,
            n: i32,
            cut: crate::broker::local::network::Cut,
            on: bool,
        ) -> anyhow::Result<()> {
            self.calls
                .push(format!("cut {cut:?} of {n} {on} at {:?}", self.now));
            Ok(())
        }
        fn slow(&mut self, n: i32, by: Option<crate::model::network::Link>) -> anyhow::Result<()> {
            let l = by.map(|b| b.latency);
            self.calls.push(format!("slow {n} {l:?} at {:?}", self.now));
            Ok(())
        }
        fn reset_links(&mut self, n: i32) -> anyhow::Result<()> {
            self.calls.push(format!("reset {n} at {:?}", self.now));
            Ok(())
        }
        fn active_controller(&self) -> Option<i32> {
            Some(1)
        }
        fn leaders(&self, _: &str) -> Vec<i32> {
            Vec::new()
        }
        fn followers(&self, _: &str) -> Vec<i32> {
            vec![2, 3]
        }
    }

    /// Ticks `w` every 100 ms of fake time from `from` to `to` (the
    /// window starts at 2 s, the producers are done from `done`), and
    /// returns the first stop reason with its time.
    fn run(w: &mut dyn Watcher, side: &mut Fake, to: f64, done: f64) -> Option<(Duration, String)> {
        let mut t = Duration::ZERO;
        while t.as_secs_f64() <= to {
            side.now = t;
            let load = Snapshot {
                producers_done: t.as_secs_f64() >= done,
                ..Default::default()
            };
            let tick = Tick {
                t,
                window: t.checked_sub(Duration::from_secs(2)),
                load: &load,
                stopping: false,
            };
            let mut v = Verdicts::default();
            w.tick(&tick, side, &mut v);
            if let Some(why) = v.stop {
                return Some((t, why));
            }
            t += Duration::from_millis(100);
        }
        None
    }

    #[test]
    fn catch_up_gives_the_consumer_its_limit_and_a_throwaway_none() {
        let mut side = Fake::default();
        let mut w = CatchUp::new(Duration::from_secs(5), false);
        let (t, why) = run(&mut w, &mut side, 30.0, 10.0).unwrap();
        assert!((t.as_secs_f64() - 15.0).abs() < 0.15, "{t:?}");
        assert!(why.contains("fell behind"), "{why}");
        let mut w = CatchUp::new(Duration::from_secs(5), true);
        let (t, why) = run(&mut w, &mut side, 30.0, 10.0).unwrap();
        assert!((t.as_secs_f64() - 10.0).abs() < 0.15, "{t:?}");
        assert!(why.contains("throw-away"), "{why}");
        // Producers still sending: nothing to do.
        assert!(
            run(
                &mut CatchUp::new(Duration::ZERO, true),
                &mut side,
                30.0,
                99.0
            )
            .is_none()
        );
    }

    #[test]
    fn the_jit_settles_once_its_compilers_go_quiet_and_not_before_the_minimum() {
        // Compilers busy (0.8 s of CPU per second) until 20 s, then quiet.
        let mut side = Fake {
            jit: Some(|t| 0.8 * t.as_secs_f64().min(20.0)),
            ..Default::default()
        };
        let (t, why) = run(&mut JitSettle::default(), &mut side, 60.0, 99.0).unwrap();
        // Quiet enough once less than 1 s of compiling lies in the last 5 s.
        assert!(t.as_secs_f64() > 20.0 && t.as_secs_f64() < 25.0, "{t:?}");
        assert!(why.starts_with(JIT_SETTLED_REASON), "{why}");
        // Quiet from the start: still not before JIT_MIN.
        let mut side = Fake {
            jit: Some(|_| 0.0),
            ..Default::default()
        };
        let (t, _) = run(&mut JitSettle::default(), &mut side, 60.0, 99.0).unwrap();
        assert!(t >= JIT_MIN, "{t:?}");
        // A side that cannot see its JIT never stops the load.
        let mut side = Fake::default();
        assert!(run(&mut JitSettle::default(), &mut side, 60.0, 99.0).is_none());
    }

    #[test]
    fn a_node_that_dies_stops_the_step_once_and_says_how() {
        let mut side = Fake {
            dies_at: Some(Duration::from_secs(4)),
            ..Default::default()
        };
        let mut w = NodeDeath::default();
        let (t, why) = run(&mut w, &mut side, 10.0, 99.0).unwrap();
        assert_eq!(t, Duration::from_secs(4));
        assert!(why.contains("signal 9"), "{why}");
        assert!(run(&mut w, &mut side, 10.0, 99.0).is_none(), "said twice");
    }

    #[test]
    fn faults_fire_on_the_window_timeline_and_are_undone() {
        let specs = vec![
            FaultSpec {
                at: Duration::from_secs(1),
                action: FaultAction::Pause,
                broker: FaultTarget::Followers,
                duration: Some(Duration::from_secs(3)),
                restart_after: None,
                latency: None,
                bandwidth: None,
            },
            FaultSpec {
                at: Duration::from_secs(2),
                action: FaultAction::Kill,
                broker: FaultTarget::Node(1),
                duration: None,
                restart_after: Some(Duration::from_secs(4)),
                latency: None,
                bandwidth: None,
            },
        ];
        let mut side = Fake::default();
        let mut w = Faults::new(Timeline::new(&specs, "fake:1", "t"));
        assert!(run(&mut w, &mut side, 10.0, 99.0).is_none());
        // The window starts at 2 s of the load's clock.
        let s = |x: u64| format!("{:?}", Duration::from_secs(x));
        assert_eq!(
            side.calls,
            [
                format!("pause 2 at {}", s(3)),
                format!("pause 3 at {}", s(3)),
                format!("kill 1 at {}", s(4)),
                format!("resume 2 at {}", s(6)),
                format!("resume 3 at {}", s(6)),
                format!("start 1 at {}", s(8)),
            ]
        );
        let mut r = StepResult::default();
        w.finish(&mut side, &LoadOutcome::default(), &mut r);
        assert_eq!(r.faults.len(), 3, "{:?}", r.faults);
        assert_eq!(r.faults[2].back_at_s, Some(6.0));
    }

    #[test]
    fn network_faults_cut_and_slow_links_and_mend_them() {
        let spec = |s: &str| -> FaultSpec { s.parse().unwrap() };
        let specs = vec![
            spec("at=1s,action=cut_replication,broker=2,for=3s"),
            spec("at=2s,action=slow,broker=1,for=2s,latency=40ms"),
            spec("at=3s,action=reset,broker=3"),
        ];
        let mut side = Fake::default();
        let mut w = Faults::new(Timeline::new(&specs, "fake:1", "t"));
        assert!(run(&mut w, &mut side, 10.0, 99.0).is_none());
        let s = |x: u64| format!("{:?}", Duration::from_secs(x));
        let ms40 = Some(Duration::from_millis(40));
        assert_eq!(
            side.calls,
            [
                format!("cut Replication of 2 true at {}", s(3)),
                format!("slow 1 {ms40:?} at {}", s(4)),
                format!("reset 3 at {}", s(5)),
                format!("cut Replication of 2 false at {}", s(6)),
                format!("slow 1 None at {}", s(6)),
            ]
        );
        let mut r = StepResult::default();
        w.finish(&mut side, &LoadOutcome::default(), &mut r);
        assert_eq!(r.faults[0].back_at_s, Some(4.0));
        assert_eq!(r.faults[1].back_at_s, Some(4.0));
        assert_eq!(r.faults[2].back_at_s, None);
    }
}
