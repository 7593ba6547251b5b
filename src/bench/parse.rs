//! Reading what Kafka's own perf tools print (Kafka 4.1's
//! `org.apache.kafka.tools.{ProducerPerformance, ConsumerPerformance,
//! EndToEndLatency}`). Each parser takes the whole stdout and looks for the
//! lines it knows, so progress lines before them do not matter.

use serde::Serialize;

/// ProducerPerformance's final summary line:
/// `100000 records sent, 11726.1 records/sec (11.45 MB/sec), 1984.79 ms avg latency,
/// 3707.00 ms max latency, 1831 ms 50th, 3522 ms 95th, 3653 ms 99th, 3702 ms 99.9th.`
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ProducerPerfSummary {
    pub records: u64,
    pub records_per_s: f64,
    pub mb_per_s: f64,
    pub avg_ms: f64,
    pub max_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

/// The number in front of `suffix` in `part` ("1984.79 ms avg latency").
fn number_before(part: &str, suffix: &str) -> Option<f64> {
    let head = part.trim().strip_suffix(suffix)?.trim();
    // The number is the last whitespace-separated token (a '(' may precede it).
    let tok = head
        .rsplit(|c: char| c.is_whitespace() || c == '(')
        .next()?;
    tok.parse().ok()
}

pub fn producer_performance(stdout: &str) -> Option<ProducerPerfSummary> {
    // The final line is the last one with "records sent" and percentiles.
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.contains("records sent,") && l.contains("99.9th"))?;
    let line = line.trim().trim_end_matches('.');
    let parts: Vec<&str> = line.split(',').map(str::trim).collect();
    if parts.len() != 8 {
        return None;
    }
    // "11726.1 records/sec (11.45 MB/sec)"
    let (rate, mb) = parts[1].split_once('(')?;
    Some(ProducerPerfSummary {
        records: number_before(parts[0], "records sent")? as u64,
        records_per_s: number_before(rate, "records/sec")?,
        mb_per_s: number_before(mb.trim_end_matches(')'), "MB/sec")?,
        avg_ms: number_before(parts[2], "ms avg latency")?,
        max_ms: number_before(parts[3], "ms max latency")?,
        p50_ms: number_before(parts[4], "ms 50th")?,
        p95_ms: number_before(parts[5], "ms 95th")?,
        p99_ms: number_before(parts[6], "ms 99th")?,
        p999_ms: number_before(parts[7], "ms 99.9th")?,
    })
}

/// rdkafka_performance's summary line (printed once a second and at the
/// end; the last one counts): `% 200000 messages produced (204800000
/// bytes), 200000 delivered (offset 33190, 0 failed) in 1587ms: 126023
/// msgs/s and 129.05 MB/s, 0 produce failures, 0 in queue, no compression`.
/// Its time runs from the first send to the last delivery report.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RdkafkaPerfSummary {
    pub produced: u64,
    pub bytes: u64,
    pub delivered: u64,
    pub failed: u64,
    pub elapsed_ms: u64,
    /// Delivered records per second of that time.
    pub records_per_s: f64,
    pub mb_per_s: f64,
    pub produce_failures: u64,
    pub in_queue: u64,
}

pub fn rdkafka_performance(stdout: &str) -> Option<RdkafkaPerfSummary> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("% ") && l.contains(" messages produced ("))?;
    // Every number of the line, in order, with the word after it.
    let words: Vec<&str> = line
        .split(|c: char| c.is_whitespace() || "(),:".contains(c))
        .filter(|w| !w.is_empty())
        .collect();
    let after = |key: &str| -> Option<&str> {
        let i = words.iter().position(|w| *w == key)?;
        words.get(i.checked_sub(1)?).copied()
    };
    let int = |key: &str| after(key)?.parse::<u64>().ok();
    let elapsed_ms = words
        .iter()
        .find_map(|w| w.strip_suffix("ms")?.parse::<u64>().ok())?;
    let delivered = int("delivered")?;
    Some(RdkafkaPerfSummary {
        produced: int("messages")?,
        bytes: int("bytes")?,
        delivered,
        failed: int("failed")?,
        elapsed_ms,
        records_per_s: if elapsed_ms > 0 {
            delivered as f64 * 1000.0 / elapsed_ms as f64
        } else {
            0.0
        },
        mb_per_s: after("MB/s")?.parse().ok()?,
        produce_failures: int("produce")?,
        in_queue: words
            .iter()
            .position(|w| *w == "queue")
            .and_then(|i| words.get(i.checked_sub(2)?))
            .and_then(|w| w.parse().ok())?,
    })
}

/// EndToEndLatency's result lines:
/// `Avg latency: 2.4015 ms` and `Percentiles: 50th = 1, 99th = 11, 99.9th = 83`
/// (the percentiles are whole milliseconds, truncated).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EndToEndSummary {
    pub avg_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

pub fn end_to_end_latency(stdout: &str) -> Option<EndToEndSummary> {
    let avg = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Avg latency:"))
        .and_then(|r| number_before(r, "ms"))?;
    let pct = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Percentiles:"))?;
    let mut p = [None; 3];
    for item in pct.split(',') {
        let (name, value) = item.split_once('=')?;
        let v: f64 = value.trim().parse().ok()?;
        match name.trim() {
            "50th" => p[0] = Some(v),
            "99th" => p[1] = Some(v),
            "99.9th" => p[2] = Some(v),
            _ => {}
        }
    }
    Some(EndToEndSummary {
        avg_ms: avg,
        p50_ms: p[0]?,
        p99_ms: p[1]?,
        p999_ms: p[2]?,
    })
}

/// ConsumerPerformance's result (the line after its CSV-like header
/// `start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg,
/// nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ConsumerPerfSummary {
    pub mb: f64,
    pub mb_per_s: f64,
    pub records: u64,
    pub records_per_s: f64,
    pub rebalance_ms: f64,
    pub fetch_ms: f64,
    pub fetch_mb_per_s: f64,
    pub fetch_records_per_s: f64,
}

pub fn consumer_performance(stdout: &str) -> Option<ConsumerPerfSummary> {
    let line = stdout.lines().rev().find(|l| {
        let f: Vec<&str> = l.split(',').collect();
        f.len() == 10 && f[4].trim().parse::<u64>().is_ok()
    })?;
    let f: Vec<f64> = line
        .split(',')
        .skip(2)
        .map(|s| s.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .ok()?;
    Some(ConsumerPerfSummary {
        mb: f[0],
        mb_per_s: f[1],
        records: f[2] as u64,
        records_per_s: f[3],
        rebalance_ms: f[4],
        fetch_ms: f[5],
        fetch_mb_per_s: f[6],
        fetch_records_per_s: f[7],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rdkafka_performance_last_summary_line() {
        let out = "\
% Sending 200000 messages of size 1024 bytes
% 61000 messages produced (62464000 bytes), 60000 delivered (offset 9988, 0 failed) in 1000ms: 60000 msgs/s and 61.44 MB/s, 0 produce failures, 1000 in queue, no compression
% 200000 messages produced (204800000 bytes), 199990 delivered (offset 33190, 10 failed) in 1587ms: 126017 msgs/s and 129.05 MB/s, 3 produce failures, 0 in queue, no compression
";
        let s = rdkafka_performance(out).unwrap();
        assert_eq!((s.produced, s.bytes), (200_000, 204_800_000));
        assert_eq!((s.delivered, s.failed, s.elapsed_ms), (199_990, 10, 1587));
        assert!(
            (s.records_per_s - 126_017.6).abs() < 0.1,
            "{}",
            s.records_per_s
        );
        assert_eq!(s.mb_per_s, 129.05);
        assert_eq!((s.produce_failures, s.in_queue), (3, 0));
        assert_eq!(rdkafka_performance("% Sending 200000 messages\n"), None);
        assert_eq!(rdkafka_performance(""), None);
    }

    #[test]
    fn producer_performance_final_line() {
        let out = "\
500000 records sent, 99980.0 records/sec (97.64 MB/sec), 250.1 ms avg latency, 800.0 ms max latency.
100000 records sent, 11726.1 records/sec (11.45 MB/sec), 1984.79 ms avg latency, 3707.00 ms max latency, 1831 ms 50th, 3522 ms 95th, 3653 ms 99th, 3702 ms 99.9th.
";
        let s = producer_performance(out).unwrap();
        assert_eq!(
            (s.records, s.records_per_s, s.mb_per_s),
            (100_000, 11726.1, 11.45)
        );
        assert_eq!((s.avg_ms, s.max_ms), (1984.79, 3707.0));
        assert_eq!(
            (s.p50_ms, s.p95_ms, s.p99_ms, s.p999_ms),
            (1831.0, 3522.0, 3653.0, 3702.0)
        );
        // A progress line alone is not a result.
        assert_eq!(
            producer_performance(
                "500000 records sent, 99980.0 records/sec (97.64 MB/sec), 250.1 ms avg latency, 800.0 ms max latency.\n"
            ),
            None
        );
        assert_eq!(producer_performance(""), None);
    }

    #[test]
    fn end_to_end_latency_lines() {
        let out = "0\t84.09828900000001\n1000\t1.031794\nAvg latency: 2.4015 ms\nPercentiles: 50th = 1, 99th = 11, 99.9th = 83\n";
        let s = end_to_end_latency(out).unwrap();
        assert_eq!(s.avg_ms, 2.4015);
        assert_eq!((s.p50_ms, s.p99_ms, s.p999_ms), (1.0, 11.0, 83.0));
        assert_eq!(end_to_end_latency("Avg latency: 2.4 ms\n"), None);
        assert_eq!(
            end_to_end_latency(
                "Avg latency: x ms\nPercentiles: 50th = 1, 99th = 11, 99.9th = 83\n"
            ),
            None
        );
    }

    #[test]
    fn consumer_performance_result_line() {
        let out = "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec\n\
2026-11-23 07:53:12:189, 2026-11-23 07:53:15:044, 292.9688, 102.6160, 300000, 105078.8091, 1215, 1640, 178.6395, 182926.8293\n";
        let s = consumer_performance(out).unwrap();
        assert_eq!(s.records, 300_000);
        assert_eq!(s.mb, 292.9688);
        assert_eq!(s.mb_per_s, 102.616);
        assert_eq!(s.records_per_s, 105078.8091);
        assert_eq!(s.rebalance_ms, 1215.0);
        assert_eq!(s.fetch_ms, 1640.0);
        assert_eq!(s.fetch_records_per_s, 182926.8293);
        // The header alone is not a result.
        assert_eq!(
            consumer_performance(
                "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec\n"
            ),
            None
        );
    }
}
