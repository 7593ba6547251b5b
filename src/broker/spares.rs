//! Warm spares: brokers a session started earlier and keeps running, idle,
//! after it moved on to a config that needed a fresh JVM.
//!
//! The labs are cumulative: a lab's degraded step restarts the broker with
//! a small heap, and its fix goes back to the settings the reference ran
//! with. Restarting for the fix costs a JVM start and a JIT warm-up of 20
//! to 30 s on 2 cores, and measures the fix on a different JVM than the
//! reference (JVM starts alone move a broker's figures by up to 1.4x on
//! such a machine). With a spare, the session keeps the reference's broker
//! up while the degraded one runs, and returns to it when a config needs
//! no restart from the spare's: the fix is measured on the reference's own
//! warm JVM.
//!
//! [`Spares`] is the bookkeeping: which spare reaches a config without a
//! restart, and which to stop when there are too many or their heaps add
//! up to too much memory. The session owns the brokers.

use crate::broker::knobs;
use crate::model::BrokerConfig;

/// How many spares a session keeps by default (`KLAB_SPARES` changes it;
/// 0 turns them off).
const DEFAULT_SPARES: usize = 2;

/// The most heap the running brokers of a session may have together (the
/// one measured and its spares); spares are stopped, least recently used
/// first, until the sum fits.
pub const MAX_TOTAL_HEAP: u64 = 3 * crate::units::MemSize::GIB;

/// How many spares a session of `brokers` nodes keeps: `KLAB_SPARES` (a
/// count) or [`DEFAULT_SPARES`]; a cluster keeps none (three more JVMs per
/// spare).
pub fn allowed(brokers: u32) -> usize {
    if brokers != 1 {
        return 0;
    }
    std::env::var("KLAB_SPARES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_SPARES)
}

/// How many broker JVMs a session starts to run `configs` in order, with
/// `max` spares: the session's own bookkeeping ([`Spares`]) played on the
/// configs alone, so every config that neither the current broker nor a
/// spare reaches without a restart counts as a fresh JVM (the first one
/// included).
pub fn fresh_jvms(configs: &[BrokerConfig], max: usize) -> usize {
    let mut spares = Spares::new(max, MAX_TOTAL_HEAP);
    let mut current: Option<BrokerConfig> = None;
    let mut fresh = 0;
    for c in configs {
        match current.take() {
            Some(cur) if !knobs::needs_restart(&cur, c) => {}
            Some(cur) => {
                if spares.take(c).0.is_none() {
                    fresh += 1;
                }
                spares.park(cur, knobs::heap_of(c).bytes());
            }
            None => fresh += 1,
        }
        current = Some(c.clone());
    }
    fresh
}

/// A config stands for a broker in [`fresh_jvms`]'s play.
impl Spare for BrokerConfig {
    fn settings(&self) -> BrokerConfig {
        self.clone()
    }
    fn alive(&mut self) -> bool {
        true
    }
}

/// What [`Spares`] needs to know of a broker.
pub trait Spare {
    /// The settings it runs with now (static config and dynamic changes).
    fn settings(&self) -> BrokerConfig;
    /// False once its JVM has gone: a dead spare is dropped, not reused.
    fn alive(&mut self) -> bool;
}

/// Idle brokers, least recently used first.
pub struct Spares<B> {
    parked: Vec<B>,
    max: usize,
    max_heap: u64,
}

impl<B: Spare> Spares<B> {
    pub fn new(max: usize, max_heap: u64) -> Spares<B> {
        Spares {
            parked: Vec::new(),
            max,
            max_heap,
        }
    }

    /// [`allowed`] spares for a session of `brokers` nodes.
    pub fn for_session(brokers: u32) -> Spares<B> {
        Spares::new(allowed(brokers), MAX_TOTAL_HEAP)
    }

    /// Whether the session keeps spares at all.
    pub fn enabled(&self) -> bool {
        self.max > 0
    }

    /// Takes out a spare that reaches `cfg` without a restart (the most
    /// recently used of them); dead spares found on the way are returned
    /// in the second place, for the caller to drop.
    pub fn take(&mut self, cfg: &BrokerConfig) -> (Option<B>, Vec<B>) {
        let mut dead = Vec::new();
        let mut i = 0;
        while i < self.parked.len() {
            if self.parked[i].alive() {
                i += 1;
            } else {
                dead.push(self.parked.remove(i));
            }
        }
        let found = self
            .parked
            .iter()
            .rposition(|b| !knobs::needs_restart(&b.settings(), cfg))
            .map(|i| self.parked.remove(i));
        (found, dead)
    }

    /// Keeps `b` as the most recently used spare while a broker with
    /// `active_heap` runs; returns the spares that no longer fit (least
    /// recently used first; the caller stops them). With spares off, `b`
    /// itself comes back.
    pub fn park(&mut self, b: B, active_heap: u64) -> Vec<B> {
        self.parked.push(b);
        let mut out = Vec::new();
        while !self.parked.is_empty()
            && (self.parked.len() > self.max || self.heap() + active_heap > self.max_heap)
        {
            out.push(self.parked.remove(0));
        }
        out
    }

    /// The spare parked last (to undo a [`Spares::park`] when the broker
    /// that was to replace it did not start).
    pub fn unpark_last(&mut self) -> Option<B> {
        self.parked.pop()
    }

    /// Every spare, for the caller to stop.
    pub fn drain(&mut self) -> Vec<B> {
        std::mem::take(&mut self.parked)
    }

    /// The spares' heaps together.
    fn heap(&self) -> u64 {
        self.parked
            .iter()
            .map(|b| knobs::heap_of(&b.settings()).bytes())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::MemSize;

    struct Fake {
        cfg: BrokerConfig,
        alive: bool,
    }

    impl Spare for Fake {
        fn settings(&self) -> BrokerConfig {
            self.cfg.clone()
        }
        fn alive(&mut self) -> bool {
            self.alive
        }
    }

    fn cfg(heap_mib: u64, props: &[(&str, &str)]) -> BrokerConfig {
        BrokerConfig {
            heap: Some(MemSize(heap_mib * MemSize::MIB)),
            properties: props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn fake(c: BrokerConfig) -> Fake {
        Fake {
            cfg: c,
            alive: true,
        }
    }

    #[test]
    fn a_spare_is_found_when_only_dynamic_settings_differ() {
        let mut s = Spares::new(2, MAX_TOTAL_HEAP);
        let healthy = cfg(1024, &[("num.io.threads", "8")]);
        assert!(s.park(fake(healthy.clone()), 256 * MemSize::MIB).is_empty());
        // Another static value: no spare reaches it.
        let (none, dead) = s.take(&cfg(1024, &[("socket.receive.buffer.bytes", "8192")]));
        assert!(none.is_none() && dead.is_empty());
        assert_eq!(s.parked.len(), 1);
        // A dynamic key changed, and a default written out: the spare.
        let want = cfg(
            1024,
            &[
                ("num.io.threads", "1"),
                ("socket.receive.buffer.bytes", "102400"),
            ],
        );
        let (found, _) = s.take(&want);
        assert_eq!(found.map(|b| b.cfg), Some(healthy));
        assert!(s.parked.is_empty());
    }

    #[test]
    fn the_least_recently_used_spare_goes_first_and_dead_ones_are_dropped() {
        let mut s = Spares::new(2, MAX_TOTAL_HEAP);
        let (a, b, c) = (cfg(1024, &[]), cfg(256, &[]), cfg(512, &[]));
        assert!(s.park(fake(a.clone()), 0).is_empty());
        assert!(s.park(fake(b.clone()), 0).is_empty());
        let out = s.park(fake(c.clone()), 0);
        assert_eq!(out.iter().map(|f| f.cfg.clone()).collect::<Vec<_>>(), [a]);
        assert_eq!(
            s.parked.iter().map(|f| f.cfg.clone()).collect::<Vec<_>>(),
            [b.clone(), c.clone()]
        );
        s.parked[0].alive = false;
        let (found, dead) = s.take(&c);
        assert_eq!(found.map(|f| f.cfg), Some(c));
        assert_eq!(dead.len(), 1);
        assert!(s.parked.is_empty());
    }

    #[test]
    fn spares_stop_when_the_heaps_add_up_to_too_much() {
        let mut s = Spares::new(4, 3 * MemSize::GIB);
        assert!(s.park(fake(cfg(1024, &[])), 1024 * MemSize::MIB).is_empty());
        // 1g spare + 2g active = 3g: fits. Another 1g spare does not.
        assert!(s.park(fake(cfg(256, &[])), 1792 * MemSize::MIB).is_empty());
        let out = s.park(fake(cfg(1024, &[])), 2048 * MemSize::MIB);
        assert_eq!(out.len(), 2, "both older spares go");
        assert_eq!(s.parked.len(), 1);
    }

    #[test]
    fn the_plan_counts_a_fresh_jvm_only_where_no_spare_reaches_the_config() {
        let healthy = cfg(1024, &[]);
        let small = cfg(256, &[]);
        let small_flush = cfg(256, &[("log.flush.interval.messages", "1")]);
        let small_sock = cfg(256, &[("socket.receive.buffer.bytes", "8192")]);
        // reference, degraded, fix, degraded (dynamic change), fix, degraded
        // (static change), fix.
        let run = [
            healthy.clone(),
            small.clone(),
            healthy.clone(),
            small_flush,
            healthy.clone(),
            small_sock,
            healthy,
        ];
        assert_eq!(fresh_jvms(&run, 2), 3);
        // Without spares every static change is a restart.
        assert_eq!(fresh_jvms(&run, 0), 7);
    }

    #[test]
    fn with_no_spares_allowed_the_parked_broker_comes_back() {
        let mut s = Spares::new(0, MAX_TOTAL_HEAP);
        assert!(!s.enabled());
        assert_eq!(s.park(fake(cfg(1024, &[])), 0).len(), 1);
        assert!(s.parked.is_empty());
    }
}
