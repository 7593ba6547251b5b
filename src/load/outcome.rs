//! What a producer and a consumer hand over at the end of a run, in a form
//! that also travels between processes (pods print it as JSON), and the one
//! function that turns them into a [`StepResult`].

use crate::load::consumer::ConsumerReport;
use crate::load::producer::ProducerReport;
use crate::load::tally::Counts;
use crate::model::{StepResult, Throughput, Workload};
use crate::stats::hist::Recorder;
use serde::{Deserialize, Serialize};

/// The last line of a log that is a JSON value of type `T`. `klab produce`
/// and `klab consume` (a pod, a bench child) print their outcome as one JSON
/// line on stdout; warnings on stderr may come before or after it in a log.
pub fn last_json<T: serde::de::DeserializeOwned>(log: &str) -> Option<T> {
    log.lines()
        .rev()
        .map(str::trim)
        .filter(|l| l.starts_with('{'))
        .find_map(|l| serde_json::from_str(l).ok())
}

/// The last `n` lines of a log, each shortened to 300 characters (an
/// outcome line holds histograms).
pub fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| {
            if l.chars().count() > 300 {
                format!("{}…", l.chars().take(300).collect::<String>())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProducerOutcome {
    pub producers: u32,
    pub produced: u64,
    pub warmup_records: u64,
    pub acked: u64,
    pub acked_measured: u64,
    pub failed: u64,
    pub unsent: u64,
    pub measured_sent: u64,
    /// Unix nanoseconds.
    pub window_start_ns: u64,
    pub last_send_ns: u64,
    pub last_ack_ns: u64,
    pub markers_sent: bool,
    pub first_error: Option<String>,
    pub stopped: Option<String>,
    pub publish: Recorder,
    /// Records acknowledged on each partition (index: partition).
    #[serde(default)]
    pub acked_per_partition: Vec<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConsumerOutcome {
    pub consumed: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub corrupt: u64,
    pub foreign: u64,
    pub finished: bool,
    pub stopped: Option<String>,
    /// Unix nanoseconds of the last measured record read.
    pub last_receive_ns: u64,
    pub e2e: Recorder,
    /// `(t, lag)`: records due before Unix second `t` and not yet read.
    #[serde(default)]
    pub lag_per_second: Vec<(u64, u64)>,
    /// A group's rebalance callbacks, `at_s` in Unix seconds here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rebalances: Vec<crate::model::RebalanceEvent>,
    /// A group's partitions' stretches without a read: `(partition, from,
    /// to)` in Unix ns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pauses: Vec<(i32, u64, u64)>,
    /// A group's records read a second time: when (Unix ns).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub duplicate_at_ns: Vec<u64>,
}

fn ns(clock: &crate::load::clock::Clock, d: std::time::Duration) -> u64 {
    clock.unix_ns_at(d)
}

impl ProducerOutcome {
    pub fn from_report(r: &ProducerReport, clock: &crate::load::clock::Clock) -> ProducerOutcome {
        ProducerOutcome {
            producers: r.merged.max(1) as u32,
            produced: r.produced,
            warmup_records: r.warmup_records,
            acked: r.acked,
            acked_measured: r.acked_measured,
            failed: r.failed,
            unsent: r.unsent,
            measured_sent: r.measured_sent,
            window_start_ns: ns(clock, r.window_start),
            last_send_ns: ns(clock, r.last_send),
            last_ack_ns: ns(clock, r.last_ack),
            markers_sent: r.markers_sent,
            first_error: r.first_error.clone(),
            stopped: r.stopped.clone(),
            publish: r.publish.clone(),
            acked_per_partition: r.acked_by_second.iter().map(|s| s.iter().sum()).collect(),
        }
    }

    /// Adds another producer's outcome (producers of one step).
    pub fn merge(&mut self, o: &ProducerOutcome) {
        let first = self.producers == 0;
        self.producers += o.producers.max(1);
        crate::add_counts!(self += o: produced, warmup_records, acked, acked_measured, failed,
            unsent, measured_sent);
        self.window_start_ns = if first {
            o.window_start_ns
        } else {
            self.window_start_ns.min(o.window_start_ns)
        };
        self.last_send_ns = self.last_send_ns.max(o.last_send_ns);
        self.last_ack_ns = self.last_ack_ns.max(o.last_ack_ns);
        self.markers_sent = if first {
            o.markers_sent
        } else {
            self.markers_sent && o.markers_sent
        };
        if self.first_error.is_none() {
            self.first_error = o.first_error.clone();
        }
        if self.stopped.is_none() {
            self.stopped = o.stopped.clone();
        }
        self.publish.merge(&o.publish);
        crate::stats::add_each(&mut self.acked_per_partition, &o.acked_per_partition);
    }
}

impl ConsumerOutcome {
    pub fn from_report(r: &ConsumerReport, clock: &crate::load::clock::Clock) -> ConsumerOutcome {
        let Counts {
            consumed,
            duplicated,
            reordered,
            corrupt,
            foreign,
            lost,
            ..
        } = r.counts;
        ConsumerOutcome {
            consumed,
            lost,
            duplicated,
            reordered,
            corrupt,
            foreign,
            finished: r.finished,
            stopped: r.stopped.clone(),
            last_receive_ns: ns(clock, r.last_receive),
            e2e: r.e2e.clone(),
            lag_per_second: r.lag_per_second.clone(),
            rebalances: r.rebalances.clone(),
            pauses: r.pauses.clone(),
            duplicate_at_ns: r.duplicate_at_ns.clone(),
        }
    }
}

fn per_second(count: u64, from_ns: u64, to_ns: u64) -> f64 {
    let secs = to_ns.saturating_sub(from_ns) as f64 / 1e9;
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

/// The measured part of a StepResult (broker, environment, lab and label
/// are the caller's). `reasons` are why the run stopped early, if it did.
pub fn assemble(
    workload: &Workload,
    p: &ProducerOutcome,
    c: &ConsumerOutcome,
    mut reasons: Vec<String>,
) -> StepResult {
    if let Some(r) = &p.stopped
        && !reasons.iter().any(|x| x.contains(r.as_str()))
    {
        reasons.push(format!("producer: {r}"));
    }
    if !c.finished
        && let Some(r) = &c.stopped
        && !reasons.iter().any(|x| x.contains(r.as_str()))
    {
        reasons.push(format!("consumer: {r}"));
    }
    if p.acked_measured == 0 && reasons.is_empty() {
        reasons.push("no record was acknowledged in the measured window".into());
    }
    let complete = reasons.is_empty() && c.finished;
    if !complete && reasons.is_empty() {
        reasons.push("the consumer did not see every end-of-run marker".into());
    }
    let msgs = per_second(p.acked_measured, p.window_start_ns, p.last_ack_ns);
    StepResult {
        complete,
        reason: (!complete).then(|| reasons.join("; ")),
        produced: p.produced,
        acked: p.acked,
        failed: p.failed,
        consumed: c.consumed,
        lost: c.lost,
        duplicated: c.duplicated,
        reordered: c.reordered,
        corrupt: c.corrupt,
        foreign: c.foreign,
        warmup_records: p.warmup_records,
        unsent: p.unsent,
        target_rate: workload.rate,
        achieved_rate: per_second(p.measured_sent, p.window_start_ns, p.last_send_ns),
        throughput: Throughput {
            msgs_per_s: msgs,
            mb_per_s: msgs * workload.message_bytes as f64 / 1e6,
        },
        read_rate: per_second(c.e2e.len(), p.window_start_ns, c.last_receive_ns),
        publish_latency_ms: p.publish.percentiles(),
        e2e_latency_ms: c.e2e.percentiles(),
        measured_seconds: p.last_ack_ns.saturating_sub(p.window_start_ns) as f64 / 1e9,
        e2e_timeline: c
            .e2e
            .timeline()
            .into_iter()
            .map(|(t, p99, max)| [(t * 10.0).round() / 10.0, p99, max])
            .collect(),
        workload: workload.clone(),
        noise: crate::stats::noise::of(&p.publish, &c.e2e, msgs),
        consumer_lag: lag_in_window(c, p.window_start_ns, p.last_ack_ns.max(c.last_receive_ns)),
        acked_per_partition: match workload.keys {
            Some(_) => p.acked_per_partition.clone(),
            None => Vec::new(),
        },
        // On the measured window's axis (before it: negative).
        rebalances: c
            .rebalances
            .iter()
            .map(|e| crate::model::RebalanceEvent {
                at_s: ((e.at_s - p.window_start_ns as f64 / 1e9) * 1000.0).round() / 1000.0,
                ..e.clone()
            })
            .collect(),
        ..Default::default()
    }
}

/// The consumer's lag at the end of each whole second of the measured
/// window `[from_ns, to_ns]`.
fn lag_in_window(c: &ConsumerOutcome, from_ns: u64, to_ns: u64) -> Vec<u64> {
    c.lag_per_second
        .iter()
        .filter(|(t, _)| {
            let t = t.saturating_mul(1_000_000_000);
            t > from_ns && t <= to_ns.max(from_ns)
        })
        .map(|(_, lag)| *lag)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const S: u64 = 1_000_000_000;

    fn producer(acked_measured: u64, window_s: u64) -> ProducerOutcome {
        let mut publish = Recorder::default();
        publish.record(2_000, Duration::ZERO);
        ProducerOutcome {
            producers: 1,
            produced: acked_measured + 100,
            warmup_records: 100,
            acked: acked_measured + 100,
            acked_measured,
            measured_sent: acked_measured,
            window_start_ns: 10 * S,
            last_send_ns: (10 + window_s) * S,
            last_ack_ns: (10 + window_s) * S,
            markers_sent: true,
            publish,
            ..Default::default()
        }
    }

    fn consumer(consumed: u64, finished: bool) -> ConsumerOutcome {
        let mut e2e = Recorder::default();
        for _ in 0..consumed.saturating_sub(100) {
            e2e.record(5_000, Duration::from_secs(1));
        }
        ConsumerOutcome {
            consumed,
            finished,
            last_receive_ns: 20 * S,
            e2e,
            ..Default::default()
        }
    }

    #[test]
    fn a_complete_run_gives_rates_over_the_measured_window() {
        let w = Workload::default();
        let r = assemble(
            &w,
            &producer(10_000, 10),
            &consumer(10_100, true),
            Vec::new(),
        );
        assert!(r.complete, "{:?}", r.reason);
        assert_eq!(r.reason, None);
        assert_eq!(r.throughput.msgs_per_s, 1000.0);
        assert_eq!(r.throughput.mb_per_s, 1000.0 * 1024.0 / 1e6);
        assert_eq!(r.achieved_rate, 1000.0);
        assert_eq!(r.read_rate, 1000.0);
        assert_eq!(r.measured_seconds, 10.0);
        assert_eq!(
            (r.acked, r.consumed, r.warmup_records),
            (10_100, 10_100, 100)
        );
        assert_eq!(r.e2e_latency_ms.count, 10_000);
        assert_eq!(r.e2e_timeline.len(), 1);
    }

    #[test]
    fn a_keyed_run_keeps_its_records_per_partition() {
        let mut p = producer(100, 1);
        p.acked_per_partition = vec![150, 50];
        let mut other = producer(100, 1);
        other.acked_per_partition = vec![10, 20, 30];
        p.merge(&other);
        assert_eq!(p.acked_per_partition, [160, 70, 30]);
        let keyed = Workload {
            keys: Some(10),
            ..Workload::default()
        };
        let r = assemble(&keyed, &p, &consumer(200, true), Vec::new());
        assert_eq!(r.acked_per_partition, [160, 70, 30]);
        // Without keys the result stays as it was.
        let r = assemble(&Workload::default(), &p, &consumer(200, true), Vec::new());
        assert!(r.acked_per_partition.is_empty());
    }

    #[test]
    fn a_consumer_without_every_marker_makes_it_incomplete() {
        let w = Workload::default();
        let r = assemble(&w, &producer(100, 1), &consumer(150, false), Vec::new());
        assert!(!r.complete);
        assert_eq!(
            r.reason.as_deref(),
            Some("the consumer did not see every end-of-run marker")
        );
        let mut c = consumer(150, false);
        c.stopped = Some("no end-of-run markers".into());
        let r = assemble(&w, &producer(100, 1), &c, vec!["interrupted".into()]);
        assert_eq!(
            r.reason.as_deref(),
            Some("interrupted; consumer: no end-of-run markers")
        );
    }

    #[test]
    fn a_stopped_producer_is_named_once() {
        let w = Workload::default();
        let mut p = producer(100, 1);
        p.stopped = Some("interrupted".into());
        let r = assemble(&w, &p, &consumer(200, true), vec!["interrupted".into()]);
        assert!(!r.complete);
        assert_eq!(r.reason.as_deref(), Some("interrupted"));
        // An empty window divides by nothing, and measured nothing.
        let r = assemble(&w, &producer(0, 0), &consumer(0, true), Vec::new());
        assert_eq!(r.throughput.msgs_per_s, 0.0);
        assert!(!r.complete);
        assert_eq!(
            r.reason.as_deref(),
            Some("no record was acknowledged in the measured window")
        );
    }
}
