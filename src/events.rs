//! What happens during a run, as it happens: a step begins, its measured
//! window starts, a second of load is over, a setting changes, a broker
//! (re)starts, a step ends. Anything in klab may [`emit`]; whoever wants to
//! follow the run (the live page, a test waiting for the measured window)
//! [`subscribe`]s. A run is one process, so the bus is one per process.
//!
//! Subscribers get bounded queues: a slow one never slows the run, it
//! loses events instead, and [`Subscription::dropped`] says how many. With
//! no subscriber an event costs a lock and a look at an empty list; events
//! are emitted per step and per second, never per record.

use crate::model::{Applied, ClusterChange};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A measurement begins (its topic exists, the consumer is starting).
    StepBegin {
        lab: Option<String>,
        label: Option<String>,
        bootstrap: String,
        topic: String,
        /// `rate 20000/s, 1024 B, ...`
        workload: String,
        /// The requested broker settings.
        broker: String,
        applied: Applied,
        /// A throw-away load (the JIT warm-up), not a measurement.
        #[serde(default)]
        throwaway: bool,
    },
    /// The warm-up is over: from now on records count.
    Measuring { bootstrap: String, topic: String },
    /// Once a second while a load runs: counts so far.
    Second {
        bootstrap: String,
        topic: String,
        /// Seconds since the load began.
        t_s: f64,
        measuring: bool,
        sent: u64,
        acked: u64,
        consumed: u64,
        /// Records due by now (open loop: by the schedule; at max: sent).
        #[serde(default)]
        due: u64,
        /// Records/s over the last second: handed to the producer,
        /// acknowledged, read by the consumer.
        #[serde(default)]
        sent_per_s: f64,
        #[serde(default)]
        acked_per_s: f64,
        #[serde(default)]
        consumed_per_s: f64,
        /// End-to-end latency of the last full second (ms), when records
        /// arrived in it.
        #[serde(default)]
        e2e_p50_ms: Option<f64>,
        #[serde(default)]
        e2e_p99_ms: Option<f64>,
        #[serde(default)]
        e2e_max_ms: Option<f64>,
        /// Publish latency p99 of the last full second (ms; the highest of
        /// the producers).
        #[serde(default)]
        publish_p99_ms: Option<f64>,
        /// Every end-to-end latency of this step so far, counted into the
        /// buckets of [`crate::stats::hist::LATENCY_BUCKETS_S`] (one more
        /// for anything above the last), with their sum: what `/metrics`
        /// turns into a histogram.
        #[serde(default)]
        e2e_buckets: Vec<u64>,
        #[serde(default)]
        e2e_sum_s: f64,
    },
    /// A fault fired (`at_s` after the measured window began).
    Fault {
        action: String,
        /// The node it hit (-1: a consumer event).
        broker: i32,
        /// A consumer event's member (1 = the first).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        consumer: Option<u32>,
        at_s: f64,
    },
    /// The brokers' metadata showed leaders or in-sync replicas changing:
    /// one event per reading that saw a change, with a marker per kind of
    /// change ([`crate::model::change_markers`]). `t_s` is on the load's
    /// clock, and so are the changes' `at_s` here (a result's count from
    /// the measured window's start).
    Cluster {
        t_s: f64,
        markers: Vec<String>,
        changes: Vec<ClusterChange>,
    },
    /// A measurement ended.
    StepEnd {
        lab: Option<String>,
        label: Option<String>,
        topic: String,
        complete: bool,
        records_per_s: f64,
        e2e_p99_ms: f64,
        lost: u64,
        #[serde(default)]
        throwaway: bool,
        #[serde(default)]
        duplicated: u64,
        #[serde(default)]
        e2e_p50_ms: f64,
        #[serde(default)]
        e2e_max_ms: f64,
        #[serde(default)]
        publish_p99_ms: f64,
        #[serde(default)]
        reason: Option<String>,
        /// The step's final counts and latency buckets (as in [`Event::Second`]).
        #[serde(default)]
        produced: u64,
        #[serde(default)]
        acked: u64,
        #[serde(default)]
        consumed: u64,
        #[serde(default)]
        e2e_buckets: Vec<u64>,
        #[serde(default)]
        e2e_sum_s: f64,
        /// Sends that failed (never acknowledged), and records due in the
        /// window the producer never handed over (as in the step's result).
        #[serde(default)]
        failed: u64,
        #[serde(default)]
        unsent: u64,
    },
    /// A lab judged a step against its expectation (`klab lab run`,
    /// `lab check`, the demo), just after the step's [`Event::StepEnd`].
    Verdict {
        lab: String,
        /// The judged measurement's label, as in its `StepEnd`
        /// (`degraded`, `fixed again` when pooled, `trial 3` when tuned).
        label: Option<String>,
        /// The summary row's step: `degraded`, `fixed`, `your fix`, `tuned`.
        step: String,
        /// `yes`, `NO` or `unsure`, as the summary table prints it.
        verdict: String,
        /// Each bound with what was measured, as the summary describes it.
        bounds: Vec<String>,
    },
    /// Broker settings changed between steps: `how` is `dynamic` (live,
    /// through the Admin API) or `restarted` (a new static config).
    Setting { how: Applied, changes: Vec<String> },
    /// A local broker (or one node of it) started: `action` is `started`,
    /// `restarted` or `node started` (after a fault).
    Broker {
        action: String,
        node: Option<i32>,
        config: String,
    },
    /// The tuner measured a candidate and kept or rejected it.
    Trial {
        n: usize,
        change: String,
        score: f64,
        accepted: bool,
        reason: String,
    },
}

/// An event with the wall-clock time it was emitted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stamped {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    #[serde(flatten)]
    pub event: Event,
}

struct Subscriber {
    id: u64,
    tx: SyncSender<Arc<Stamped>>,
    dropped: Arc<AtomicU64>,
}

static SUBSCRIBERS: Mutex<Vec<Subscriber>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A place in the bus's list of subscribers; dropping it unsubscribes.
pub struct Subscription {
    id: u64,
    rx: Receiver<Arc<Stamped>>,
    dropped: Arc<AtomicU64>,
}

impl Subscription {
    /// The next event, waiting at most `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<Arc<Stamped>> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// The next event without waiting.
    pub fn try_next(&self) -> Option<Arc<Stamped>> {
        self.rx.try_recv().ok()
    }

    /// Events this subscriber lost because its queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits up to `timeout` for an event `want` accepts, skipping others.
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut want: impl FnMut(&Event) -> bool,
    ) -> Option<Arc<Stamped>> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(std::time::Instant::now())?;
            let e = self.next(left)?;
            if want(&e.event) {
                return Some(e);
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Ok(mut subs) = SUBSCRIBERS.lock() {
            subs.retain(|s| s.id != self.id);
        }
    }
}

/// Follows every event emitted from now on, in a queue of `capacity`.
pub fn subscribe(capacity: usize) -> Subscription {
    let (tx, rx) = sync_channel(capacity.max(1));
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let dropped = Arc::new(AtomicU64::new(0));
    if let Ok(mut subs) = SUBSCRIBERS.lock() {
        subs.push(Subscriber {
            id,
            tx,
            dropped: Arc::clone(&dropped),
        });
    }
    Subscription { id, rx, dropped }
}

impl Event {
    /// The changes one metadata reading showed (`t_s` on the load's clock,
    /// and the changes' `at_s` too), with their markers.
    pub fn cluster(t_s: f64, changes: Vec<ClusterChange>) -> Event {
        let markers = crate::model::change_markers(&changes)
            .into_iter()
            .map(|(_, m)| m)
            .collect();
        Event::Cluster {
            t_s,
            markers,
            changes,
        }
    }
}

/// Hands `event` to every subscriber that has room for it.
pub fn emit(event: Event) {
    let Ok(mut subs) = SUBSCRIBERS.lock() else {
        return;
    };
    if subs.is_empty() {
        return;
    }
    let at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let stamped = Arc::new(Stamped { at_ms, event });
    subs.retain(|s| match s.tx.try_send(Arc::clone(&stamped)) {
        Ok(()) => true,
        Err(TrySendError::Full(_)) => {
            s.dropped.fetch_add(1, Ordering::Relaxed);
            true
        }
        // The receiver is gone.
        Err(TrySendError::Disconnected(_)) => false,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measuring(topic: &str) -> Event {
        Event::Measuring {
            bootstrap: "b".into(),
            topic: topic.into(),
        }
    }

    #[test]
    fn subscribers_get_what_is_emitted_after_they_subscribe() {
        emit(measuring("before"));
        let s = subscribe(8);
        emit(measuring("t-sub-1"));
        let got = s
            .wait_for(
                Duration::from_secs(1),
                |e| matches!(e, Event::Measuring { topic, .. } if topic.starts_with("t-sub")),
            )
            .unwrap();
        assert_eq!(got.event, measuring("t-sub-1"));
        assert!(got.at_ms > 0);
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        let s = subscribe(2);
        for i in 0..10 {
            emit(measuring(&format!("t-full-{i}")));
        }
        // Other tests may emit too; at least 8 of these were dropped.
        assert!(s.dropped() >= 8, "{}", s.dropped());
        let json = serde_json::to_value(&*s.try_next().unwrap()).unwrap();
        assert_eq!(json["kind"], "measuring");
    }

    #[test]
    fn a_dropped_subscription_leaves_the_bus() {
        let s = subscribe(1);
        let id = s.id;
        drop(s);
        let subs = SUBSCRIBERS.lock().unwrap();
        assert!(subs.iter().all(|x| x.id != id));
    }
}
