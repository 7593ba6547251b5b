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
const MAX_TRACKABLE_US: u64 = 3_600_000_000;
const SIGFIGS: u8 = 3;

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

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recorder({} values)", self.len())
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

    /// The histogram of interval `idx`, if it saw a value (the latest
    /// intervals are looked at first).
    pub fn interval(&self, idx: u64) -> Option<&Histogram<u64>> {
        self.intervals
            .iter()
            .rev()
            .take_while(|(i, _)| *i >= idx)
            .find(|(i, _)| *i == idx)
            .map(|(_, h)| h)
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

/// The most intervals [`read_log`] takes from one log: a day of seconds.
const MAX_INTERVALS: usize = 86_400;

/// HdrHistogram's V2 cookies (plain and deflated), as its serializers
/// write them.
const V2_COOKIE: u32 = 0x1c84_9313;
const V2_DEFLATED_COOKIE: u32 = 0x1c84_9314;

/// Refuses an encoded histogram before hdrhistogram allocates for it: a
/// V2 header (inflated first when deflated) whose payload is longer than
/// klab's own histogram can be, or whose bounds are not within klab's
/// ([`MAX_TRACKABLE_US`], [`SIGFIGS`]). hdrhistogram sizes its buffers
/// from these fields, so a crafted log could otherwise ask for gigabytes.
fn check_encoded(raw: &[u8], most: usize) -> anyhow::Result<()> {
    use std::io::Read;
    let be32 = |b: &[u8], at: usize| {
        b.get(at..at + 4)
            .map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
    };
    let cookie = be32(raw, 0).ok_or_else(|| anyhow::anyhow!("too short"))?;
    let mut inner = [0u8; 32];
    let header: &[u8] = match cookie {
        V2_COOKIE => raw,
        V2_DEFLATED_COOKIE => {
            let len = be32(raw, 4).unwrap_or(0) as usize;
            let body = raw
                .get(8..8 + len)
                .ok_or_else(|| anyhow::anyhow!("a deflated length past its end"))?;
            flate2::read::ZlibDecoder::new(body)
                .read_exact(&mut inner)
                .map_err(|e| anyhow::anyhow!("not deflated: {e}"))?;
            &inner
        }
        _ => anyhow::bail!("not an HdrHistogram V2 encoding"),
    };
    let field = |at: usize| {
        header
            .get(at..at + 8)
            .map(|x| u64::from_be_bytes([x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]]))
    };
    let payload = be32(header, 4).unwrap_or(u32::MAX) as usize;
    let digits = be32(header, 12).unwrap_or(u32::MAX);
    let (low, high) = (field(16).unwrap_or(0), field(24).unwrap_or(u64::MAX));
    if payload > most || digits > u32::from(SIGFIGS) || low < 1 || high > MAX_TRACKABLE_US {
        anyhow::bail!(
            "a histogram beyond klab's own (payload {payload} bytes, {digits} digits, values {low}..{high}; klab's: 1..{MAX_TRACKABLE_US} us, {SIGFIGS} digits)"
        );
    }
    Ok(())
}

/// Reads an interval log as [`Recorder::write_log`] writes it, one
/// interval at a time: `each` gets each interval's start (after the log's
/// start) and its histogram. Returns the log's StartTime (seconds since
/// the epoch), when present. At most [`MAX_INTERVALS`] intervals, each
/// within klab's own histogram bounds.
pub fn read_log(
    bytes: &[u8],
    mut each: impl FnMut(Duration, Histogram<u64>),
) -> anyhow::Result<Option<Duration>> {
    use base64::Engine;
    use hdrhistogram::serialization::Deserializer;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    let mut start = None;
    let mut base = None;
    let mut n = 0;
    let mut de = Deserializer::new();
    // The longest payload of klab's histogram: each count a varint of at
    // most 9 bytes.
    let most = new_histogram().distinct_values() * 9;
    for entry in IntervalLogIterator::new(bytes) {
        match entry.map_err(|e| anyhow::anyhow!("not an interval log: {e:?}"))? {
            LogEntry::StartTime(t) => start = Some(t),
            LogEntry::BaseTime(t) => base = Some(t),
            LogEntry::Interval(i) => {
                n += 1;
                if n > MAX_INTERVALS {
                    anyhow::bail!("more than {MAX_INTERVALS} intervals");
                }
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(i.encoded_histogram())
                    .map_err(|e| anyhow::anyhow!("an interval's histogram: {e}"))?;
                check_encoded(&raw, most)
                    .map_err(|e| anyhow::anyhow!("an interval's histogram: {e}"))?;
                let h: Histogram<u64> = de
                    .deserialize(&mut std::io::Cursor::new(raw))
                    .map_err(|e| anyhow::anyhow!("an interval's histogram: {e:?}"))?;
                each(i.start_timestamp(), h);
            }
        }
    }
    Ok(start.or(base))
}

/// Upper bounds (seconds) of the latency buckets the live view's
/// `/metrics` reports, Prometheus' usual spread from 1 ms to 30 s.
pub const LATENCY_BUCKETS_S: [f64; 14] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
];

/// Adds the values of a microsecond histogram to `counts`: one slot per
/// bound of [`LATENCY_BUCKETS_S`] (values up to it, above the one before)
/// and a last one for the rest. Returns their sum in seconds.
pub fn add_to_buckets(h: &Histogram<u64>, counts: &mut [u64]) -> f64 {
    let mut sum_us = 0.0;
    for v in h.iter_recorded() {
        let us = v.value_iterated_to();
        let n = v.count_at_value();
        sum_us += us as f64 * n as f64;
        let s = us as f64 / 1e6;
        let slot = LATENCY_BUCKETS_S
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(LATENCY_BUCKETS_S.len());
        if let Some(c) = counts.get_mut(slot) {
            *c += n;
        }
    }
    sum_us / 1e6
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
        let origin = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut buf = Vec::new();
        r.write_log(&mut buf, origin, "e2e").unwrap();
        let mut intervals = Vec::new();
        let start = read_log(&buf, |t, h| intervals.push((t, h))).unwrap();
        assert_eq!(start, Some(Duration::from_secs(1_700_000_000)));
        assert_eq!(intervals.len(), 3);
        assert_eq!(intervals[2].0, Duration::from_secs(2));
        assert_eq!(intervals[1].1.len(), 100);
    }

    /// A crafted log cannot make hdrhistogram allocate beyond klab's own
    /// histograms: huge bounds, or a payload length the bytes do not hold.
    #[test]
    fn a_log_beyond_klabs_histograms_is_refused() {
        use base64::Engine;
        use hdrhistogram::serialization::{Serializer, V2DeflateSerializer, V2Serializer};
        let mut big = Histogram::<u64>::new_with_bounds(1, u64::MAX, 5).unwrap();
        big.record(7).unwrap();
        let mut ok = new_histogram();
        ok.record(7).unwrap();
        let line = |h: &Histogram<u64>, deflate: bool| {
            let mut raw = Vec::new();
            if deflate {
                V2DeflateSerializer::new().serialize(h, &mut raw).unwrap();
            } else {
                V2Serializer::new().serialize(h, &mut raw).unwrap();
            }
            raw
        };
        let log = |raw: &[u8]| {
            let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
            format!("#[StartTime: 1.000 (seconds since epoch)]\n0.000,1.000,0.007,{b64}\n")
        };
        for deflate in [false, true] {
            let text = log(&line(&ok, deflate));
            let mut n = 0;
            read_log(text.as_bytes(), |_, h| n += h.len()).unwrap();
            assert_eq!(n, 1);
            let e = read_log(log(&line(&big, deflate)).as_bytes(), |_, _| {}).unwrap_err();
            assert!(e.to_string().contains("beyond klab's own"), "{e}");
        }
        // A plain encoding that claims a 4 GiB payload.
        let mut raw = line(&ok, false);
        raw[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        let e = read_log(log(&raw).as_bytes(), |_, _| {}).unwrap_err();
        assert!(e.to_string().contains("beyond klab's own"), "{e}");
    }

    #[test]
    fn buckets_count_every_value_once() {
        let mut h = new_histogram();
        for us in [500u64, 1_500, 40_000, 40_000, 60_000_000] {
            h.record(us).unwrap();
        }
        let mut c = vec![0; LATENCY_BUCKETS_S.len() + 1];
        let sum = add_to_buckets(&h, &mut c);
        assert_eq!(c.iter().sum::<u64>(), 5);
        assert_eq!(c[0], 1); // <= 1 ms
        assert_eq!(c[1], 1); // <= 2 ms
        assert_eq!(c[5], 2); // <= 50 ms
        assert_eq!(c[LATENCY_BUCKETS_S.len()], 1); // above 30 s
        assert!((sum - 60.0815).abs() < 0.1, "{sum}");
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
