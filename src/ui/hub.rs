//! What the server hands out: every event of the run so far, serialized
//! once as a Server-Sent Events frame, in a bounded history that browsers
//! read at their own pace (a late one starts from the beginning, a slow
//! one falls behind without holding anyone up), and the metrics the same
//! events add up to.

use super::metrics::{Metrics, Role};
use crate::events::Stamped;
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Events kept for browsers that join late. A run emits about two per
/// second of load, so this holds many hours; beyond it the oldest go (and
/// a browser that had not read them counts them as dropped).
const HISTORY: usize = 200_000;

/// Whether the page follows a run or replays a finished one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Live,
    Replay(String),
}

pub struct Hub {
    pub mode: Mode,
    inner: Mutex<History>,
    /// The id the next event gets: browsers wait on its changes.
    next: tokio::sync::watch::Sender<u64>,
    metrics: Mutex<Metrics>,
    /// Events a browser never got: the bus's queue was full, or a browser
    /// fell so far behind that the history no longer held what it had not
    /// read.
    dropped: AtomicU64,
    capacity: usize,
}

struct History {
    /// The id of `frames[0]`.
    first: u64,
    frames: VecDeque<Bytes>,
}

impl Hub {
    pub fn new(mode: Mode) -> Hub {
        Hub::with_capacity(mode, HISTORY)
    }

    pub fn with_capacity(mode: Mode, capacity: usize) -> Hub {
        Hub::build(mode, capacity, Metrics::new())
    }

    /// A hub for `/metrics` alone (`klab produce/consume --metrics`): the
    /// metrics of `role`, and no history worth the name, since no page
    /// reads it.
    pub fn for_metrics(role: Role) -> Hub {
        Hub::build(Mode::Live, 1, Metrics::for_role(role))
    }

    fn build(mode: Mode, capacity: usize, metrics: Metrics) -> Hub {
        Hub {
            mode,
            inner: Mutex::new(History {
                first: 0,
                frames: VecDeque::new(),
            }),
            next: tokio::sync::watch::Sender::new(0),
            metrics: Mutex::new(metrics),
            dropped: AtomicU64::new(0),
            capacity: capacity.max(1),
        }
    }

    /// Adds an event: to the metrics, and as a frame to the history.
    pub fn push(&self, e: &Stamped) {
        if let Ok(mut m) = self.metrics.lock() {
            m.observe(&e.event);
        }
        match serde_json::to_string(e) {
            Ok(json) => self.push_json(&json),
            Err(err) => tracing::warn!("live view: an event did not serialize: {err}"),
        }
    }

    /// Adds one JSON object as the next frame.
    pub fn push_json(&self, json: &str) {
        let id = {
            let Ok(mut h) = self.inner.lock() else {
                return;
            };
            let id = h.first + h.frames.len() as u64;
            h.frames
                .push_back(Bytes::from(format!("id: {id}\ndata: {json}\n\n")));
            while h.frames.len() > self.capacity {
                h.frames.pop_front();
                h.first += 1;
            }
            id
        };
        self.next.send_replace(id + 1);
    }

    /// Frames from `*cursor` on (at most `max`), joined, and moves the
    /// cursor past them. Frames the history no longer holds are skipped
    /// and counted as dropped.
    pub fn since(&self, cursor: &mut u64, max: usize) -> Option<Bytes> {
        let h = self.inner.lock().ok()?;
        if *cursor < h.first {
            self.dropped.fetch_add(h.first - *cursor, Ordering::Relaxed);
            *cursor = h.first;
        }
        let from = (*cursor - h.first) as usize;
        if from >= h.frames.len() {
            return None;
        }
        let mut out = Vec::new();
        for f in h.frames.iter().skip(from).take(max.max(1)) {
            out.extend_from_slice(f);
            *cursor += 1;
        }
        Some(Bytes::from(out))
    }

    /// Changes whenever an event is added.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.next.subscribe()
    }

    /// Events added so far.
    pub fn len(&self) -> u64 {
        *self.next.borrow()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn add_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// `/metrics` in the OpenMetrics text format.
    pub fn metrics_text(&self, clients: usize) -> String {
        match self.metrics.lock() {
            Ok(mut m) => m.encode(self.dropped(), clients),
            Err(_) => "# EOF\n".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Event, Stamped};

    fn ev(t: &str) -> Stamped {
        Stamped {
            at_ms: 1,
            event: Event::Measuring {
                bootstrap: "b".into(),
                topic: t.into(),
            },
        }
    }

    #[test]
    fn late_readers_get_everything_and_the_cursor_moves() {
        let hub = Hub::new(Mode::Live);
        hub.push(&ev("a"));
        hub.push(&ev("b"));
        let mut c = 0;
        let text = String::from_utf8(hub.since(&mut c, 10).unwrap().to_vec()).unwrap();
        assert!(text.starts_with("id: 0\ndata: {"), "{text}");
        assert!(text.contains("id: 1\ndata: "), "{text}");
        assert!(text.contains("\"topic\":\"b\""), "{text}");
        assert_eq!(c, 2);
        assert!(hub.since(&mut c, 10).is_none());
        assert_eq!(hub.len(), 2);
    }

    #[test]
    fn a_reader_behind_a_full_history_skips_and_counts() {
        let hub = Hub::with_capacity(Mode::Live, 3);
        for i in 0..10 {
            hub.push(&ev(&format!("t{i}")));
        }
        let mut c = 0;
        let text = String::from_utf8(hub.since(&mut c, 100).unwrap().to_vec()).unwrap();
        assert!(text.starts_with("id: 7\n"), "{text}");
        assert_eq!(hub.dropped(), 7);
        assert_eq!(c, 10);
    }
}
