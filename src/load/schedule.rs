//! The open loop's schedule: when a producer sends record `seq`, when
//! its measured window starts and when it stops sending, from the workload
//! alone (no clock, no client: tested as plain arithmetic).

use crate::model::Workload;
use std::time::Duration;

/// When a producer sends what, relative to the clock origin: the pure part
/// of the open loop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// When the producer started.
    pub start: Duration,
    /// When the warm-up ends and records start to count.
    pub window_start: Duration,
    /// Time between two records (None: as fast as acks allow).
    pub interval: Option<Duration>,
    /// Records to send, warm-up included (None: until the deadline, or in
    /// max mode until the message count is measured).
    pub total: Option<u64>,
    /// When sending stops whatever is left: with a duration, in max mode at
    /// the end of the window, in rate mode a quarter later (at least 1 s),
    /// so a producer that fell behind can catch up; records it never handed
    /// over are `unsent`.
    pub send_deadline: Option<Duration>,
}

impl Schedule {
    pub fn new(w: &Workload, start: Duration) -> Schedule {
        let window_start = start + w.warmup;
        let interval = w.rate.map(|r| Duration::from_secs_f64(1.0 / r));
        let warmup_count = w
            .rate
            .map(|r| (r * w.warmup.as_secs_f64()).round() as u64)
            .unwrap_or(0);
        let total = match (w.rate, w.messages, w.duration) {
            (Some(r), None, Some(d)) => {
                Some(warmup_count + (r * d.as_secs_f64()).round().max(1.0) as u64)
            }
            (Some(_), Some(n), _) => Some(warmup_count + n),
            _ => None,
        };
        let send_deadline = match (w.rate, w.messages, w.duration) {
            (None, _, Some(d)) => Some(window_start + d),
            (Some(_), None, Some(d)) => {
                Some(window_start + d + (d / 4).max(Duration::from_secs(1)))
            }
            _ => None,
        };
        Schedule {
            start,
            window_start,
            interval,
            total,
            send_deadline,
        }
    }

    /// When record `seq` is due: `start + seq / rate` in an open loop; None
    /// in max mode, where a record is due when it is sent.
    #[inline]
    pub fn due(&self, seq: u64) -> Option<Duration> {
        self.interval.map(|iv| self.start + iv.mul_f64(seq as f64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn an_open_loop_with_a_duration() {
        let w = Workload {
            rate: Some(1000.0),
            duration: Some(secs(10.0)),
            warmup: secs(2.0),
            ..Workload::default()
        };
        let s = Schedule::new(&w, secs(1.0));
        assert_eq!(s.window_start, secs(3.0));
        // 2 s of warm-up and 10 s measured at 1000/s.
        assert_eq!(s.total, Some(12_000));
        assert_eq!(s.due(0), Some(secs(1.0)));
        assert_eq!(s.due(1000), Some(secs(2.0)));
        assert_eq!(s.due(12_000), Some(secs(13.0)));
        // A quarter of the duration to catch up.
        assert_eq!(s.send_deadline, Some(secs(15.5)));
        let short = Workload {
            duration: Some(secs(2.0)),
            ..w.clone()
        };
        assert_eq!(
            Schedule::new(&short, Duration::ZERO).send_deadline,
            Some(secs(5.0))
        );
    }

    #[test]
    fn an_open_loop_with_a_message_count_has_no_deadline() {
        let w = Workload {
            rate: Some(500.0),
            messages: Some(1000),
            duration: None,
            warmup: secs(1.0),
            ..Workload::default()
        };
        let s = Schedule::new(&w, Duration::ZERO);
        assert_eq!(s.total, Some(1500));
        assert_eq!(s.send_deadline, None);
        assert_eq!(s.due(500), Some(secs(1.0)));
    }

    #[test]
    fn max_mode_has_no_due_times() {
        let w = Workload {
            rate: None,
            duration: Some(secs(5.0)),
            warmup: secs(1.0),
            ..Workload::default()
        };
        let s = Schedule::new(&w, Duration::ZERO);
        assert_eq!(s.due(7), None);
        assert_eq!(s.total, None);
        assert_eq!(s.send_deadline, Some(secs(6.0)));
        let counted = Workload {
            messages: Some(100),
            duration: None,
            ..w
        };
        let s = Schedule::new(&counted, Duration::ZERO);
        assert_eq!((s.total, s.send_deadline), (None, None));
    }
}
