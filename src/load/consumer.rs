//! The verifying consumer: reads every partition of the topic from the
//! start, checks each record's HMAC tag and sequence, and records end-to-end
//! latency from the record's due time to the moment it is received.
//!
//! It needs no side channel: each producer ends with a marker per partition
//! that says how many records it had acknowledged there, so the consumer
//! knows when it has everything and what is missing.

use crate::cancel::Cancel;
use crate::load::clock::Clock;
use crate::load::payload::{Decoded, Decoder, FLAG_WARMUP, Secret};
use crate::load::tally::{Counts, Tally};
use crate::stats::hist::Recorder;
use anyhow::{Context, Result, bail};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    pub bootstrap: String,
    pub topic: String,
    /// How many producers to wait for (each ends with its own markers).
    pub producers: usize,
    pub secret: Secret,
    /// Extra librdkafka consumer settings.
    pub settings: Vec<(String, String)>,
    /// Give up when nothing at all arrives for this long after the
    /// producers are done (see [`ConsumerHandle::producers_done`]).
    pub drain_timeout: Duration,
    /// Hard upper bound on the whole run, for standalone consumers.
    pub deadline: Option<Instant>,
}

impl ConsumerSpec {
    pub fn new(bootstrap: &str, topic: &str, secret: Secret) -> ConsumerSpec {
        ConsumerSpec {
            bootstrap: bootstrap.to_string(),
            topic: topic.to_string(),
            producers: 1,
            secret,
            settings: Vec::new(),
            drain_timeout: Duration::from_secs(30),
            deadline: None,
        }
    }
}

/// End-to-end latency as the consumer saw it so far, updated once per
/// second (when the first record of the next second arrives), for the
/// live view.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveLatency {
    /// The last full second (on the run's clock) and its p50, p99 and max
    /// in ms.
    pub second: Option<u64>,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Every record so far (warm-up included), counted into the buckets of
    /// [`crate::stats::hist::LATENCY_BUCKETS_S`] plus one, and their sum.
    pub buckets: Vec<u64>,
    pub sum_s: f64,
}

/// Shared between the consumer thread and whoever runs it.
#[derive(Clone, Default)]
pub struct ConsumerHandle {
    ready: Arc<AtomicBool>,
    producers_done: Arc<AtomicBool>,
    consumed: Arc<AtomicU64>,
    live: Arc<Mutex<LiveLatency>>,
}

impl ConsumerHandle {
    /// True once partitions are assigned and the broker answered.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Tells the consumer the producers have finished (or failed), which
    /// starts its drain timeout.
    pub fn producers_done(&self) {
        self.producers_done.store(true, Ordering::SeqCst);
    }

    pub fn consumed(&self) -> u64 {
        self.consumed.load(Ordering::Relaxed)
    }

    /// The latency of the last full second and the step's buckets so far.
    pub fn live(&self) -> LiveLatency {
        self.live.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Publishes second `sec` of `report`'s histograms (measured and
    /// warm-up records alike).
    fn close_second(&self, report: &ConsumerReport, sec: u64) {
        let h = match (report.e2e.interval(sec), report.e2e_warmup.interval(sec)) {
            (Some(a), Some(b)) => {
                let mut m = a.clone();
                let _ = m.add(b);
                std::borrow::Cow::Owned(m)
            }
            (Some(a), None) | (None, Some(a)) => std::borrow::Cow::Borrowed(a),
            (None, None) => return,
        };
        let ms = |us: u64| us as f64 / 1000.0;
        let Ok(mut live) = self.live.lock() else {
            return;
        };
        live.second = Some(sec);
        live.p50_ms = ms(h.value_at_quantile(0.5));
        live.p99_ms = ms(h.value_at_quantile(0.99));
        live.max_ms = ms(h.max());
        if live.buckets.is_empty() {
            live.buckets = vec![0; crate::stats::hist::LATENCY_BUCKETS_S.len() + 1];
        }
        live.sum_s += crate::stats::hist::add_to_buckets(&h, &mut live.buckets);
    }
}

#[derive(Clone, Default)]
pub struct ConsumerReport {
    pub counts: Counts,
    pub e2e: Recorder,
    pub e2e_warmup: Recorder,
    /// All producers' markers arrived.
    pub finished: bool,
    pub stopped: Option<String>,
    /// When the last data record arrived, after the clock origin.
    pub last_receive: Duration,
    /// Records read more than once, per second of their due time.
    pub duplicated_per_second: std::collections::BTreeMap<u64, u64>,
    /// Records sent but never read, per second of their (estimated) due
    /// time.
    pub missing_per_second: std::collections::BTreeMap<u64, u64>,
}

pub fn client_config(spec: &ConsumerSpec) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("client.id", "klab-consumer")
        .set("group.id", format!("klab-{}", crate::random::u64()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        // Do not let a full local queue add a second of latency.
        .set("fetch.queue.backoff.ms", "10")
        .set("fetch.wait.max.ms", "100");
    for (k, v) in &spec.settings {
        cfg.set(k, v);
    }
    cfg.set("bootstrap.servers", &spec.bootstrap);
    cfg
}

/// Reads until every producer's markers have arrived, the drain timeout
/// passes, or `cancel` fires.
pub fn run(
    spec: &ConsumerSpec,
    clock: &Clock,
    cancel: &Cancel,
    handle: &ConsumerHandle,
) -> Result<ConsumerReport> {
    let consumer: BaseConsumer<crate::load::client_log::QuietContext> = client_config(spec)
        .create_with_context(crate::load::client_log::QuietContext)
        .context("creating the consumer")?;

    // Find the partitions (the topic exists before the consumer starts).
    let meta_deadline = Instant::now() + Duration::from_secs(30);
    let partitions = loop {
        if cancel.is_cancelled() {
            bail!("cancelled before the consumer started");
        }
        match consumer.fetch_metadata(Some(&spec.topic), Duration::from_secs(2)) {
            Ok(md) => {
                let n = md
                    .topics()
                    .iter()
                    .find(|t| t.name() == spec.topic)
                    .map(|t| t.partitions().len())
                    .unwrap_or(0);
                if n > 0 {
                    break n;
                }
            }
            Err(e) if Instant::now() >= meta_deadline => {
                return Err(anyhow::Error::new(e).context(format!(
                    "the consumer could not read metadata of topic '{}'",
                    spec.topic
                )));
            }
            Err(_) => {}
        }
        if Instant::now() >= meta_deadline {
            bail!("topic '{}' has no partitions after 30s", spec.topic);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(&spec.topic, p as i32, Offset::Beginning)
            .context("building the partition assignment")?;
    }
    consumer.assign(&tpl).context("assigning partitions")?;
    handle.ready.store(true, Ordering::SeqCst);

    let mut decoder = Decoder::new(&spec.secret);
    let mut tally = Tally::new();
    let mut report = ConsumerReport::default();
    let mut last_arrival = Instant::now();
    let mut done_since: Option<Instant> = None;
    // The second (on the run's clock) records are arriving in, for the
    // live latency: when it changes, the one before is complete.
    let mut open_second: Option<u64> = None;

    loop {
        if cancel.is_cancelled() {
            report.stopped = cancel.reason();
            break;
        }
        if tally.finished(spec.producers) {
            report.finished = true;
            break;
        }
        if let Some(d) = spec.deadline
            && Instant::now() >= d
        {
            report.stopped =
                Some("the consumer's deadline passed before all end-of-run markers arrived".into());
            break;
        }
        if handle.producers_done.load(Ordering::Relaxed) {
            let since = *done_since.get_or_insert_with(Instant::now);
            let quiet = last_arrival.max(since).elapsed();
            if quiet >= spec.drain_timeout {
                report.stopped = Some(format!(
                    "no end-of-run markers from {} producer(s) after {}s of silence",
                    spec.producers - tally.producers_with_markers().min(spec.producers),
                    spec.drain_timeout.as_secs()
                ));
                break;
            }
        }
        let Some(msg) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                // Transient fetch errors are retried by librdkafka itself.
                tracing::debug!("consumer: {e}");
                continue;
            }
        };
        let now_ns = clock.now_ns();
        last_arrival = Instant::now();
        match decoder.decode(msg.payload()) {
            Decoded::Record(h) => {
                if tally.record(msg.partition(), &h) == crate::load::tally::Arrival::Duplicate {
                    let s = clock.offset_of(h.due_ns).as_secs();
                    *report.duplicated_per_second.entry(s).or_default() += 1;
                }
                let lat_us = now_ns.saturating_sub(h.due_ns) / 1000;
                let at = clock.offset_of(now_ns);
                let sec = at.as_secs();
                if open_second != Some(sec) {
                    if let Some(prev) = open_second {
                        handle.close_second(&report, prev);
                    }
                    open_second = Some(sec);
                }
                if h.flags & FLAG_WARMUP != 0 {
                    report.e2e_warmup.record(lat_us, at);
                } else {
                    report.e2e.record(lat_us, at);
                    report.last_receive = at;
                }
                handle.consumed.fetch_add(1, Ordering::Relaxed);
            }
            Decoded::Marker(h, m) => tally.marker(&h, m),
            Decoded::Corrupt => tally.corrupt(),
            Decoded::Foreign => tally.foreign(),
        }
    }
    if let Some(prev) = open_second {
        handle.close_second(&report, prev);
    }
    report.counts = tally.counts();
    for due in tally.missing_due_ns() {
        *report
            .missing_per_second
            .entry(clock.offset_of(due).as_secs())
            .or_default() += 1;
    }
    Ok(report)
}

/// Reads `topic` once more from its start with a fresh consumer group,
/// until every one of `producers` producers' end-of-run markers is found
/// or `timeout` passes, and counts what is there: the log as a consumer
/// that comes later sees it.
pub fn read_back(
    bootstrap: &str,
    topic: &str,
    producers: usize,
    secret: &Secret,
    timeout: Duration,
) -> Result<(Counts, bool)> {
    let mut spec = ConsumerSpec::new(bootstrap, topic, secret.clone());
    spec.producers = producers;
    spec.drain_timeout = timeout;
    spec.deadline = Some(Instant::now() + timeout);
    let handle = ConsumerHandle::default();
    // Nothing is being produced: the drain timeout runs from the start.
    handle.producers_done();
    let r = run(&spec, &Clock::new(), &Cancel::new(), &handle)?;
    Ok((r.counts, r.finished))
}
