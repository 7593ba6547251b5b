//! Latency histograms: microsecond HDR histograms with 3 significant digits,
//! kept per one-second interval so a stall shows where it happened, and
//! written in HdrHistogram's interval log format.

use crate::model::Percentiles;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
use std::io::Write;
use std::time::{Duration, SystemTime};

/// The highest latency a histogram tracks: one hour, in microseconds.
pub const MAX_TRACKABLE_US: u64 = 3_600_000_000;
pub const SIGFIGS: u8 = 3;

pub fn new_histogram() -> Histogram<u64> {
    // Bounds are constants that hdrhistogram accepts.
    Histogram::new_with_bounds(1, MAX_TRACKABLE_US, SIGFIGS)
        .unwrap_or_else(|_| unreachable!("constant histogram bounds are valid"))
}

/// Records latencies into a total histogram and one per interval.
#[derive(Clone)]
pub struct Recorder {
    total: Histogram<u64>,
    interval: Duration,
    /// (interval index, histogram) for every interval that saw a value.
    intervals: Vec<(u64, Histogram<u64>)>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new(Duration::from_secs(1))
    }
}

impl Recorder {
    pub fn new(interval: Duration) -> Recorder {
        Recorder {
            total: new_histogram(),
            interval,
            intervals: Vec::new(),
        }
    }

    /// Records `latency_us`, observed `at` after the run's time origin.
    #[inline]
    pub fn record(&mut self, latency_us: u64, at: Duration) {
        let v = latency_us.clamp(1, MAX_TRACKABLE_US);
        self.total.saturating_record(v);
        let idx = (at.as_nanos() / self.interval.as_nanos().max(1)) as u64;
        match self.intervals.last_mut() {
            Some((i, h)) if *i == idx => h.saturating_record(v),
            _ => {
                // Out-of-order intervals are rare (clock origin shared by
                // threads); find or insert the right one.
                if let Some((_, h)) = self.intervals.iter_mut().rev().find(|(i, _)| *i == idx) {
                    h.saturating_record(v);
                } else {
                    let mut h = new_histogram();
                    h.saturating_record(v);
                    self.intervals.push((idx, h));
                    self.intervals.sort_by_key(|(i, _)| *i);
                }
            }
        }
    }

    pub fn total(&self) -> &Histogram<u64> {
        &self.total
    }

    pub fn len(&self) -> u64 {
        self.total.len()
    }

    pub fn is_empty(&self) -> bool {
        self.total.is_empty()
    }

    pub fn percentiles(&self) -> Percentiles {
        percentiles(&self.total)
    }

    /// The per-interval histograms, in time order, with their index
    /// (interval number since the run's time origin).
    pub fn intervals(&self) -> &[(u64, Histogram<u64>)] {
        &self.intervals
    }

    /// Adds another run's intervals after this one's (a second
    /// measurement of the same step), so both runs' seconds stay apart.
    pub fn append(&mut self, other: &Recorder) {
        let next = self.intervals.last().map(|(i, _)| i + 1).unwrap_or(0);
        let first = other.intervals.first().map(|(i, _)| *i).unwrap_or(0);
        for (i, h) in &other.intervals {
            self.intervals.push((next + (i - first), h.clone()));
        }
        let _ = self.total.add(&other.total);
    }

    /// Per-interval (start seconds, p99 ms, max ms), for plots.
    pub fn timeline(&self) -> Vec<(f64, f64, f64)> {
        self.intervals
            .iter()
            .map(|(i, h)| {
                (
                    *i as f64 * self.interval.as_secs_f64(),
                    h.value_at_quantile(0.99) as f64 / 1000.0,
                    h.max() as f64 / 1000.0,
                )
            })
            .collect()
    }

    pub fn merge(&mut self, other: &Recorder) {
        let _ = self.total.add(&other.total);
        for (i, h) in &other.intervals {
            if let Some((_, mine)) = self.intervals.iter_mut().find(|(j, _)| j == i) {
                let _ = mine.add(h);
            } else {
                self.intervals.push((*i, h.clone()));
            }
        }
        self.intervals.sort_by_key(|(i, _)| *i);
    }

    /// Writes the interval histograms as an HdrHistogram interval log
    /// (values in microseconds; max column shown in milliseconds).
    pub fn write_log<W: Write>(
        &self,
        out: &mut W,
        origin: SystemTime,
        what: &str,
    ) -> anyhow::Result<()> {
        let mut ser = V2DeflateSerializer::new();
        let mut builder = IntervalLogWriterBuilder::new();
        builder
            .add_comment(&format!("klab {what} latency, values in microseconds"))
            .with_start_time(origin)
            .with_base_time(origin)
            .with_max_value_divisor(1000.0);
        let mut w = builder.begin_log_with(out, &mut ser)?;
        for (i, h) in &self.intervals {
            let start = self.interval * (*i as u32);
            w.write_histogram(h, start, self.interval, None)
                .map_err(|e| anyhow::anyhow!("writing the {what} histogram log: {e}"))?;
        }
        Ok(())
    }
}

/// p50/p90/p99/p99.9/max/mean of a microsecond histogram, in milliseconds.
pub fn percentiles(h: &Histogram<u64>) -> Percentiles {
    if h.is_empty() {
        return Percentiles::default();
    }
    let ms = |us: u64| us as f64 / 1000.0;
    Percentiles {
        count: h.len(),
        mean: h.mean() / 1000.0,
        p50: ms(h.value_at_quantile(0.50)),
        p90: ms(h.value_at_quantile(0.90)),
        p99: ms(h.value_at_quantile(0.99)),
        p999: ms(h.value_at_quantile(0.999)),
        max: ms(h.max()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut r = Recorder::default();
        // 1..=1000 ms, one value each.
        for ms in 1..=1000u64 {
            r.record(ms * 1000, Duration::from_millis(ms));
        }
        let p = r.percentiles();
        assert_eq!(p.count, 1000);
        // 3 significant digits: within 0.1%.
        assert!((p.p50 - 500.0).abs() <= 0.5, "{p:?}");
        assert!((p.p90 - 900.0).abs() <= 0.9, "{p:?}");
        assert!((p.p99 - 990.0).abs() <= 1.0, "{p:?}");
        assert!((p.p999 - 999.0).abs() <= 1.0, "{p:?}");
        assert!((p.max - 1000.0).abs() <= 1.0, "{p:?}");
        assert!((p.mean - 500.5).abs() <= 1.0, "{p:?}");
    }

    #[test]
    fn empty_histogram_gives_zeros() {
        assert_eq!(Recorder::default().percentiles(), Percentiles::default());
    }

    #[test]
    fn one_outlier_shows_in_max_not_p50() {
        let mut r = Recorder::default();
        for _ in 0..10_000 {
            r.record(2_000, Duration::ZERO);
        }
        r.record(2_000_000, Duration::from_secs(3));
        let p = r.percentiles();
        assert!((p.p50 - 2.0).abs() < 0.01);
        assert!(p.max >= 1999.0);
        assert_eq!(r.timeline().len(), 2);
    }

    #[test]
    fn interval_log_reads_back() {
        let mut r = Recorder::default();
        for s in 0..3u64 {
            for v in 1..=100u64 {
                r.record(v * 10, Duration::from_secs(s) + Duration::from_millis(v));
            }
        }
        let mut buf = Vec::new();
        r.write_log(&mut buf, SystemTime::UNIX_EPOCH, "e2e")
            .unwrap();
        let text = String::from_utf8(buf.clone()).unwrap();
        assert!(text.starts_with("#klab e2e latency"));
        let n = IntervalLogIterator::new(&buf)
            .filter(|e| matches!(e, Ok(LogEntry::Interval(_))))
            .count();
        assert_eq!(n, 3);
    }
}

/// A recorder as JSON: its interval histograms in HdrHistogram's compressed
/// V2 encoding, base64. Producer and consumer pods hand their histograms to
/// klab this way; the total is rebuilt by adding the intervals.
mod serde_impl {
    use super::{Recorder, new_histogram};
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer as SerdeDe, Serialize, Serializer as SerdeSer};
    use std::time::Duration;

    #[derive(Serialize, Deserialize)]
    struct Wire {
        interval_ms: u64,
        /// [interval index, base64 of the V2-deflate encoded histogram]
        intervals: Vec<(u64, String)>,
    }

    impl Serialize for Recorder {
        fn serialize<S: SerdeSer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut ser = V2DeflateSerializer::new();
            let mut intervals = Vec::new();
            for (i, h) in &self.intervals {
                let mut buf = Vec::new();
                ser.serialize(h, &mut buf)
                    .map_err(|e| serde::ser::Error::custom(format!("{e:?}")))?;
                intervals.push((*i, STANDARD.encode(buf)));
            }
            Wire {
                interval_ms: self.interval.as_millis() as u64,
                intervals,
            }
            .serialize(s)
        }
    }

    impl<'de> Deserialize<'de> for Recorder {
        fn deserialize<D: SerdeDe<'de>>(d: D) -> Result<Self, D::Error> {
            let w = Wire::deserialize(d)?;
            let mut r = Recorder::new(Duration::from_millis(w.interval_ms.max(1)));
            let mut de = Deserializer::new();
            for (i, b64) in w.intervals {
                let bytes = STANDARD.decode(b64).map_err(D::Error::custom)?;
                let h: hdrhistogram::Histogram<u64> = de
                    .deserialize(&mut bytes.as_slice())
                    .map_err(|e| D::Error::custom(format!("{e:?}")))?;
                let mut full = new_histogram();
                full.add(&h)
                    .map_err(|e| D::Error::custom(format!("{e:?}")))?;
                r.total
                    .add(&full)
                    .map_err(|e| D::Error::custom(format!("{e:?}")))?;
                r.intervals.push((i, full));
            }
            r.intervals.sort_by_key(|(i, _)| *i);
            Ok(r)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn recorder_round_trips_through_json() {
            let mut r = Recorder::default();
            for s in 0..3u64 {
                for v in 1..=500u64 {
                    r.record(v * 7, Duration::from_secs(s));
                }
            }
            let json = serde_json::to_string(&r).unwrap();
            let back: Recorder = serde_json::from_str(&json).unwrap();
            assert_eq!(back.percentiles(), r.percentiles());
            assert_eq!(back.timeline(), r.timeline());
        }
    }
}
