//! The load generator: an open-loop (or as-fast-as-acks-allow) rdkafka
//! producer that signs every record and measures publish latency from each
//! record's due time to its delivery report.
//!
//! Open loop: record `i` is due at `t0 + i/R`. Records are handed to
//! librdkafka as soon as they are due; if the client or the broker falls
//! behind, later records are sent late but keep their due time, so the delay
//! lands in the latency histograms instead of silently lowering the load
//! (no coordinated omission).

use crate::cancel::Cancel;
use crate::load::clock::Clock;
use crate::load::keys::KeyChooser;
use crate::load::payload::{Encoder, FLAG_WARMUP, MarkerBody, Secret};
use crate::load::schedule::Schedule;
use crate::load::topic_handle::TopicHandle;
use crate::model::{Acks, Partitioner, Workload};
use crate::stats::hist::Recorder;
use crate::stats::progress::ProducerProgress;
use anyhow::{Context, Result};
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{
    DeliveryResult, PARTITION_UA, Producer, ProducerContext, ThreadedProducer,
};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The delivery opaque packs the due time (µs after the clock origin) and a
/// warm-up bit into one `usize`, so sending allocates nothing per record.
const WARMUP_BIT: usize = 1 << 63;

/// The open loop's pacing granularity: between bursts the sender sleeps at
/// least this long. A record may be handed over up to that much after its
/// due time; its latency, measured from the due time, includes it.
/// (Delivery reports are served by the producer's own polling thread.)
const PACING: Duration = Duration::from_millis(1);

/// How long the sender waits before retrying when librdkafka's queue is full.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_micros(500);

#[derive(Default)]
struct Deliveries {
    publish: Recorder,
    publish_warmup: Recorder,
    acked: u64,
    acked_measured: u64,
    failed: u64,
    acked_per_partition: Vec<u64>,
    /// Failed deliveries by the partition the record went to (beside
    /// `acked_per_partition`: where a sticky partitioner's records went).
    failed_per_partition: Vec<u64>,
    /// Acknowledgements by partition and second of their arrival (clock
    /// seconds): `[partition][second]`.
    acked_by_second: Vec<Vec<u64>>,
    last_ack: Duration,
    first_error: Option<String>,
    /// Failed deliveries per second of their due time (clock seconds).
    failed_per_second: std::collections::BTreeMap<u64, u64>,
}

struct DeliveryContext {
    clock: Clock,
    state: Mutex<Deliveries>,
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        crate::load::client_log::log_line(level, fac, log_message);
    }
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        crate::load::client_log::error_line(&error, reason);
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        let now = self.clock.elapsed();
        let warm = opaque & WARMUP_BIT != 0;
        let due_us = (opaque & !WARMUP_BIT) as u64;
        let Ok(mut s) = self.state.lock() else { return };
        match result {
            Ok(msg) => {
                let lat = (now.as_micros() as u64).saturating_sub(due_us);
                if warm {
                    s.publish_warmup.record(lat, now);
                } else {
                    s.publish.record(lat, now);
                    s.acked_measured += 1;
                    s.last_ack = now;
                }
                s.acked += 1;
                let p = msg.partition().max(0) as usize;
                if let Some(c) = s.acked_per_partition.get_mut(p) {
                    *c += 1;
                }
                let sec = now.as_secs() as usize;
                if let Some(v) = s.acked_by_second.get_mut(p) {
                    if v.len() <= sec {
                        v.resize(sec + 1, 0);
                    }
                    v[sec] += 1;
                }
            }
            Err((err, msg)) => {
                s.failed += 1;
                // A record that failed before a partition was chosen for
                // it counts on partition 0.
                let p = msg.partition().max(0) as usize;
                if let Some(c) = s.failed_per_partition.get_mut(p) {
                    *c += 1;
                }
                *s.failed_per_second.entry(due_us / 1_000_000).or_default() += 1;
                if s.first_error.is_none() {
                    s.first_error = Some(err.to_string());
                }
            }
        }
    }
}

/// What to produce, and where.
#[derive(Debug, Clone)]
pub struct ProducerSpec {
    pub bootstrap: String,
    pub topic: String,
    pub workload: Workload,
    pub secret: Secret,
    pub producer_id: u64,
    /// How long to wait for outstanding acknowledgements at the end.
    pub flush_timeout: Duration,
    /// The topic has more than one replica (see [`client_config`]).
    pub replicated: bool,
    /// Which of the step's producers this is (0-based): with keys, it
    /// seeds the producer's own sequence of keys.
    pub index: u32,
}

impl ProducerSpec {
    pub fn new(bootstrap: &str, topic: &str, workload: Workload, secret: Secret) -> ProducerSpec {
        ProducerSpec {
            bootstrap: bootstrap.to_string(),
            topic: topic.to_string(),
            workload,
            secret,
            producer_id: crate::random::u64(),
            flush_timeout: Duration::from_secs(120),
            replicated: false,
            index: 0,
        }
    }
}

/// Everything the producer measured.
#[derive(Clone, Default)]
pub struct ProducerReport {
    pub producer_id: u64,
    pub produced: u64,
    pub warmup_records: u64,
    pub acked: u64,
    pub acked_measured: u64,
    pub failed: u64,
    pub publish: Recorder,
    pub publish_warmup: Recorder,
    /// When the measured window began, after the clock origin.
    pub window_start: Duration,
    /// When the last measured record was handed to librdkafka.
    pub last_send: Duration,
    /// When the last measured record was acknowledged.
    pub last_ack: Duration,
    pub measured_sent: u64,
    /// Records due before the send deadline that were never handed over,
    /// because the client or the broker could not keep up.
    pub unsent: u64,
    pub markers_sent: bool,
    pub first_error: Option<String>,
    /// Set when the producer stopped early; says why.
    pub stopped: Option<String>,
    /// How many reports were merged into this one.
    pub merged: usize,
    /// Failed deliveries per second of their due time (clock seconds).
    pub failed_per_second: std::collections::BTreeMap<u64, u64>,
    /// Acknowledgements by partition and second of their arrival (clock
    /// seconds): `[partition][second]`.
    pub acked_by_second: Vec<Vec<u64>>,
}

impl ProducerReport {
    /// Adds another producer's report (same clock, same window).
    pub fn merge(&mut self, o: &ProducerReport) {
        let first = self.merged == 0;
        self.merged += 1;
        if first {
            self.window_start = o.window_start;
            self.producer_id = o.producer_id;
            self.markers_sent = o.markers_sent;
        } else {
            self.markers_sent &= o.markers_sent;
        }
        crate::add_counts!(self += o: produced, warmup_records, acked, acked_measured, failed,
            measured_sent, unsent);
        self.publish.merge(&o.publish);
        self.publish_warmup.merge(&o.publish_warmup);
        self.window_start = self.window_start.min(o.window_start);
        self.last_send = self.last_send.max(o.last_send);
        self.last_ack = self.last_ack.max(o.last_ack);
        for (k, n) in &o.failed_per_second {
            *self.failed_per_second.entry(*k).or_default() += n;
        }
        add_counts(&mut self.acked_by_second, &o.acked_by_second);
        if self.first_error.is_none() {
            self.first_error = o.first_error.clone();
        }
        if self.stopped.is_none() {
            self.stopped = o.stopped.clone();
        }
    }
}

/// Adds `[partition][second]` counts into `into`, growing it as needed.
pub fn add_counts(into: &mut Vec<Vec<u64>>, from: &[Vec<u64>]) {
    if into.len() < from.len() {
        into.resize(from.len(), Vec::new());
    }
    for (a, b) in into.iter_mut().zip(from) {
        crate::stats::add_each(a, b);
    }
}

/// librdkafka settings for klab's producer: the workload's own settings win
/// over klab's defaults, klab's reserved keys win over both.
pub fn client_config(spec: &ProducerSpec) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("client.id", "klab-producer");
    // Fail fast when the broker is gone instead of retrying for 5 minutes;
    // long enough to ride out a multi-second stall.
    cfg.set("message.timeout.ms", "60000");
    // Bound what waits in the client: 8 MiB is plenty to keep a broker busy
    // (Kafka's Java producer buffers 32 MiB), and an overloaded broker then
    // holds the producer back within seconds instead of minutes.
    cfg.set("queue.buffering.max.kbytes", "8192");
    // The topic exists before the first record; never create one by accident.
    cfg.set("allow.auto.create.topics", "false");
    // librdkafka allows a million requests in flight per connection; the
    // broker serves one request per connection at a time, and with acks=all
    // on a replicated topic each one waits for the followers' next fetch. A
    // stream of small batches then queues behind itself (3 brokers, 3,000
    // records/s: p99 1.7 s before any fault). Five in flight, the Java
    // client's default and what idempotence allows, lets batches grow while
    // they wait. Only where that applies and the workload says nothing.
    let w = &spec.workload;
    if spec.replicated
        && w.acks == Acks::All
        && !w
            .producer
            .contains_key("max.in.flight.requests.per.connection")
        && !w.producer.contains_key("max.in.flight")
        && !w.producer.contains_key("enable.idempotence")
    {
        cfg.set("max.in.flight.requests.per.connection", "5");
    }
    for (k, v) in &spec.workload.producer {
        cfg.set(k, v);
    }
    cfg.set("bootstrap.servers", &spec.bootstrap);
    cfg.set("acks", spec.workload.acks.as_kafka());
    cfg
}

/// Runs the producer to the end of its workload, or until `cancel` fires.
/// `progress` is called about four times a second.
pub fn run(
    spec: &ProducerSpec,
    clock: &Clock,
    cancel: &Cancel,
    progress: &mut dyn FnMut(ProducerProgress),
) -> Result<ProducerReport> {
    let w = &spec.workload;
    let partitions = w.partitions.max(1) as usize;
    let ctx = DeliveryContext {
        clock: *clock,
        state: Mutex::new(Deliveries {
            acked_per_partition: vec![0; partitions],
            failed_per_partition: vec![0; partitions],
            acked_by_second: vec![Vec::new(); partitions],
            ..Default::default()
        }),
    };
    let producer: ThreadedProducer<DeliveryContext> =
        client_config(spec).create_with_context(ctx).context(
            "creating the producer (check --producer-set keys: they go to librdkafka as they are)",
        )?;

    let mut enc = Encoder::with_payload(&spec.secret, spec.producer_id, w.message_bytes, w.payload);
    let mut report = ProducerReport {
        producer_id: spec.producer_id,
        ..Default::default()
    };
    let mut sent_per_partition = vec![0u64; partitions];
    // Keyed records go where Kafka's partitioner puts their key; without
    // keys, record i goes to partition i mod partitions, or with a sticky
    // partitioner librdkafka chooses (`PARTITION_UA`).
    let sticky = w.partitioner == Partitioner::Sticky;
    let mut chooser = w
        .keyed()
        .map(|(n, dist)| KeyChooser::new(n, dist, w.partitions, spec.index));

    let start = clock.elapsed();
    let schedule = Schedule::new(w, start);
    let Schedule {
        window_start,
        interval,
        total,
        send_deadline,
        ..
    } = schedule;
    report.window_start = window_start;
    let progress_total = total.or(w.messages);
    // In max mode with a message count, the warm-up is time based.
    let mut measured_in_max: u64 = 0;
    let scheduled = |seq: u64| schedule.due(seq);

    let mut seq: u64 = 0;
    // A fatal client error (the idempotent producer's sequence broke):
    // the step's outcome, not klab's failure.
    let mut fatal: Option<String> = None;
    let mut last_progress = Instant::now();
    let topic = spec.topic.as_str();
    let topic_handle = TopicHandle::new(&producer, topic)?;
    'outer: loop {
        if cancel.is_cancelled() {
            break;
        }
        let now = clock.elapsed();
        if let Some(t) = total
            && seq >= t
        {
            break;
        }
        if let Some(end) = send_deadline
            && now >= end
        {
            break;
        }
        // Send everything that is due (in max mode: one batch's worth).
        let mut burst = 0;
        loop {
            if let Some(t) = total
                && seq >= t
            {
                break;
            }
            // One clock read per record: it is the due time in max mode,
            // and the send time in both modes.
            let t = clock.elapsed();
            let due = scheduled(seq).unwrap_or(t);
            if due > now && interval.is_some() {
                break;
            }
            // Warm-up ends by the clock, not by the schedule: a broker that
            // cannot keep up must not hold the whole run in its warm-up.
            // Records sent late keep their due time, so their lateness
            // still shows in the measured latency.
            let warm = t < window_start;
            if w.rate.is_none() && !warm {
                measured_in_max += 1;
                if let Some(n) = w.messages
                    && measured_in_max > n
                {
                    break 'outer;
                }
            }
            let due_ns = clock.unix_ns_at(due);
            let flags = if warm { FLAG_WARMUP } else { 0 };
            let (key, partition) = match chooser.as_mut() {
                Some(c) => c.next_key(),
                None if sticky => (&[][..], PARTITION_UA),
                None => (&[][..], (seq % partitions as u64) as i32),
            };
            let opaque =
                (due.as_micros() as usize & !WARMUP_BIT) | if warm { WARMUP_BIT } else { 0 };
            let payload = enc.record(seq, due_ns, flags);
            // The record's timestamp is its due time, so librdkafka need
            // not read the wall clock for it.
            let timestamp_ms = (due_ns / 1_000_000) as i64;
            // When the record was handed over: `t`, or the last retry's.
            let mut sent_at = t;
            loop {
                match topic_handle.produce(partition, key, payload, opaque, timestamp_ms) {
                    Ok(()) => break,
                    Err(RDKafkaErrorCode::QueueFull) => {
                        // Bounded in-flight: wait for deliveries, then retry.
                        std::thread::sleep(QUEUE_FULL_BACKOFF);
                        sent_at = clock.elapsed();
                        if cancel.is_cancelled() || send_deadline.is_some_and(|d| sent_at >= d) {
                            break 'outer;
                        }
                    }
                    Err(code) => {
                        if let Some((f, why)) = producer.client().fatal_error() {
                            fatal = Some(format!("{f:?}: {why}"));
                            break 'outer;
                        }
                        return Err(anyhow::Error::new(KafkaError::MessageProduction(code))
                            .context("handing a record to librdkafka"));
                    }
                }
            }
            report.produced += 1;
            if let Some(n) = usize::try_from(partition)
                .ok()
                .and_then(|p| sent_per_partition.get_mut(p))
            {
                *n += 1;
            }
            if warm {
                report.warmup_records += 1;
            } else {
                report.measured_sent += 1;
                report.last_send = sent_at;
            }
            seq += 1;
            burst += 1;
            if burst >= 1024 {
                break;
            }
        }
        // Sleep until the next record is due (at least PACING, so the
        // thread does not spin).
        let wait = match scheduled(seq) {
            Some(next) => next
                .saturating_sub(clock.elapsed())
                .clamp(PACING, Duration::from_millis(5)),
            None => Duration::ZERO,
        };
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        if last_progress.elapsed() >= Duration::from_millis(250) {
            last_progress = Instant::now();
            let now = clock.elapsed();
            let (acked, publish_p99_ms) = ctx_snapshot(&producer, now);
            // Open loop: the records the schedule has made due by now.
            let due = match interval {
                Some(iv) if !iv.is_zero() => {
                    let n = (now.saturating_sub(start).as_nanos() / iv.as_nanos()) as u64 + 1;
                    total.map_or(n, |t| n.min(t))
                }
                _ => report.produced,
            };
            progress(ProducerProgress {
                sent: report.produced,
                acked,
                elapsed: now.saturating_sub(start),
                total: progress_total,
                measuring: now >= window_start,
                due: due.max(report.produced),
                publish_p99_ms,
            });
        }
    }

    if let Some(t) = total {
        report.unsent = t.saturating_sub(seq);
    }

    // Wait for every outstanding acknowledgement (or give up on cancel).
    let flush_deadline = Instant::now() + spec.flush_timeout;
    while producer.in_flight_count() > 0 {
        if cancel.is_cancelled() || Instant::now() >= flush_deadline {
            producer.purge(rdkafka::producer::PurgeConfig::default().queue().inflight());
            // Let the polling thread deliver the purge reports.
            let until = Instant::now() + Duration::from_secs(5);
            while producer.in_flight_count() > 0 && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
        if last_progress.elapsed() >= Duration::from_millis(250) {
            last_progress = Instant::now();
            let (acked, publish_p99_ms) = ctx_snapshot(&producer, clock.elapsed());
            progress(ProducerProgress {
                sent: report.produced,
                acked,
                elapsed: clock.elapsed().saturating_sub(start),
                total: progress_total,
                measuring: true,
                due: report.produced,
                publish_p99_ms,
            });
        }
    }
    // Copy out what the delivery callbacks measured.
    let acked_per_partition = {
        let mut s = producer
            .context()
            .state
            .lock()
            .map_err(|_| anyhow::anyhow!("producer state poisoned"))?;
        report.acked = s.acked;
        report.acked_measured = s.acked_measured;
        report.failed = s.failed;
        report.last_ack = s.last_ack;
        report.first_error = s.first_error.take();
        report.failed_per_second = std::mem::take(&mut s.failed_per_second);
        report.acked_by_second = std::mem::take(&mut s.acked_by_second);
        report.publish = std::mem::take(&mut s.publish);
        report.publish_warmup = std::mem::take(&mut s.publish_warmup);
        if sticky {
            // Where librdkafka put them; what was never reported (a run
            // cut short) counts on partition 0, so the markers' sum is
            // what was sent.
            for ((n, a), f) in sent_per_partition
                .iter_mut()
                .zip(&s.acked_per_partition)
                .zip(&s.failed_per_partition)
            {
                *n = a + f;
            }
            let reported: u64 = sent_per_partition.iter().sum();
            if let Some(first) = sent_per_partition.first_mut() {
                *first += report.produced.saturating_sub(reported);
            }
        }
        s.acked_per_partition.clone()
    };

    let ends = Ends {
        partitions,
        acked: &acked_per_partition,
        sent: &sent_per_partition,
        total_acked: report.acked,
    };
    if let Some(f) = fatal {
        report.stopped = Some(format!(
            "the producer stopped on a fatal error ({f}); with enable.idempotence that is the broker finding a gap in this producer's sequence: records it had acknowledged are not on the partition's leader any more"
        ));
        // The markers still go out, through a fresh client without
        // idempotence (the broken one sends nothing more): the consumer
        // and the read-back learn what was acknowledged.
        let mut cfg = client_config(spec);
        cfg.set("enable.idempotence", "false");
        let fresh: ThreadedProducer<DeliveryContext> = cfg
            .create_with_context(DeliveryContext {
                clock: *clock,
                state: Mutex::new(Deliveries::default()),
            })
            .context("creating a producer for the end-of-run markers")?;
        let handle = TopicHandle::new(&fresh, topic)?;
        report.markers_sent = send_markers(&fresh, &handle, &mut enc, clock, cancel, &ends)?;
        return Ok(report);
    }
    if cancel.is_cancelled() {
        report.stopped = cancel.reason();
        return Ok(report);
    }
    if Instant::now() >= flush_deadline {
        report.stopped = Some(format!(
            "records still unacknowledged after {}s",
            spec.flush_timeout.as_secs()
        ));
        return Ok(report);
    }
    report.markers_sent = send_markers(&producer, &topic_handle, &mut enc, clock, cancel, &ends)?;
    if !report.markers_sent {
        report.stopped = Some("end-of-run markers were not acknowledged".into());
    }
    Ok(report)
}

/// What a producer's end-of-run markers say, per partition.
struct Ends<'a> {
    partitions: usize,
    acked: &'a [u64],
    sent: &'a [u64],
    total_acked: u64,
}

/// Sends one end-of-run marker per partition and waits (30 s at most)
/// until they are acknowledged; true when they all were.
fn send_markers(
    producer: &ThreadedProducer<DeliveryContext>,
    topic_handle: &TopicHandle<'_, DeliveryContext>,
    enc: &mut Encoder,
    clock: &Clock,
    cancel: &Cancel,
    ends: &Ends<'_>,
) -> Result<bool> {
    let due_ns = clock.now_ns();
    for p in 0..ends.partitions {
        let body = MarkerBody {
            partition: p as u32,
            partitions: ends.partitions as u32,
            acked: ends.acked[p],
            sent: ends.sent[p],
            total_acked: ends.total_acked,
        };
        let bytes = enc.marker(body, due_ns).to_vec();
        // Opaque 0: a marker is not a counted record.
        loop {
            match topic_handle.produce(p as i32, &[], &bytes, 0, (due_ns / 1_000_000) as i64) {
                Ok(()) => break,
                Err(RDKafkaErrorCode::QueueFull) => std::thread::sleep(Duration::from_millis(10)),
                Err(code) => {
                    return Err(anyhow::Error::new(KafkaError::MessageProduction(code))
                        .context("sending an end-of-run marker"));
                }
            }
        }
    }
    let marker_deadline = Instant::now() + Duration::from_secs(30);
    while producer.in_flight_count() > 0
        && Instant::now() < marker_deadline
        && !cancel.is_cancelled()
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(producer.in_flight_count() == 0)
}

/// Records acknowledged so far, and the publish p99 (ms) of the second
/// before the one `now` is in.
fn ctx_snapshot(p: &ThreadedProducer<DeliveryContext>, now: Duration) -> (u64, Option<f64>) {
    let Ok(s) = p.context().state.lock() else {
        return (0, None);
    };
    let p99 = now.as_secs().checked_sub(1).and_then(|sec| {
        s.publish
            .interval(sec)
            .or_else(|| s.publish_warmup.interval(sec))
            .map(|h| h.value_at_quantile(0.99) as f64 / 1000.0)
    });
    (s.acked, p99)
}

/// Runs one producer per spec, each on its own thread with its own client
/// (connection), and merges their reports. `progress[i]` receives producer
/// i's snapshots. A failing producer cancels the others.
pub fn run_all(
    specs: &[ProducerSpec],
    clock: &Clock,
    cancel: &Cancel,
    progress: &[Mutex<ProducerProgress>],
) -> Result<ProducerReport> {
    std::thread::scope(|s| {
        let handles: Vec<_> = specs
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let slot = progress.get(i);
                s.spawn(move || {
                    let mut cb = |pp: ProducerProgress| {
                        if let Some(Ok(mut g)) = slot.map(|m| m.lock()) {
                            *g = pp;
                        }
                    };
                    let r = run(spec, clock, cancel, &mut cb);
                    if r.is_err() {
                        cancel.cancel("a producer failed");
                    }
                    r
                })
            })
            .collect();
        let mut all = ProducerReport::default();
        let mut first_err = None;
        for h in handles {
            match h
                .join()
                .map_err(|_| anyhow::anyhow!("a producer thread panicked"))
                .and_then(|r| r)
            {
                Ok(r) => all.merge(&r),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(all),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_all_on_a_replicated_topic_keeps_five_requests_in_flight() {
        let inflight = |replicated: bool, w: Workload| {
            let spec = ProducerSpec {
                replicated,
                ..ProducerSpec::new("h:1", "t", w, Secret::new(b"k".to_vec()))
            };
            client_config(&spec)
                .get("max.in.flight.requests.per.connection")
                .map(str::to_string)
        };
        let w = Workload::default();
        assert_eq!(inflight(true, w.clone()), Some("5".into()));
        // One replica: as librdkafka has it.
        assert_eq!(inflight(false, w.clone()), None);
        let one = Workload {
            acks: Acks::One,
            ..w.clone()
        };
        assert_eq!(inflight(true, one), None);
        // What the workload says wins, and idempotence brings its own limit.
        let mut own = w.clone();
        own.producer
            .insert("max.in.flight.requests.per.connection".into(), "1".into());
        assert_eq!(inflight(true, own), Some("1".into()));
        let mut idem = w;
        idem.producer
            .insert("enable.idempotence".into(), "true".into());
        assert_eq!(inflight(true, idem), None);
    }
}
