//! One time origin for a run: a wall-clock reading taken once, advanced by
//! the monotonic clock. Due times travel in records as Unix nanoseconds, so
//! a consumer in another process can compare them with its own clock; in one
//! process both sides share this origin and no clock step can skew them.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
    origin_unix_ns: u64,
    wall: SystemTime,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    pub fn new() -> Clock {
        let wall = SystemTime::now();
        let origin = Instant::now();
        let origin_unix_ns = wall
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Clock {
            origin,
            origin_unix_ns,
            wall,
        }
    }

    pub fn origin(&self) -> Instant {
        self.origin
    }

    pub fn wall_origin(&self) -> SystemTime {
        self.wall
    }

    /// Time since the origin.
    #[inline]
    pub fn elapsed(&self) -> Duration {
        self.origin.elapsed()
    }

    /// Now, in Unix nanoseconds.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.origin_unix_ns + self.origin.elapsed().as_nanos() as u64
    }

    /// A point `offset` after the origin, in Unix nanoseconds.
    #[inline]
    pub fn unix_ns_at(&self, offset: Duration) -> u64 {
        self.origin_unix_ns + offset.as_nanos() as u64
    }

    /// Unix nanoseconds back to an offset from the origin (saturating at 0).
    #[inline]
    pub fn offset_of(&self, unix_ns: u64) -> Duration {
        Duration::from_nanos(unix_ns.saturating_sub(self.origin_unix_ns))
    }
}
