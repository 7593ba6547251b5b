//! The verifying consumer: reads every partition of the topic from where
//! the load begins (the topic's start, or its end when the consumer starts
//! on a topic that may hold earlier records), checks each record's HMAC tag
//! and sequence, and records end-to-end latency from the record's due time
//! to the moment it is received.
//!
//! It needs no side channel: each producer ends with a marker per partition
//! that says how many records it had acknowledged there, so the consumer
//! knows when it has everything and what is missing.

use crate::cancel::Cancel;
use crate::load::clock::Clock;
use crate::load::group::{Group, LoadContext, MemberOrder, Members, die, group_settings};
use crate::load::lag::{Lag, PAUSE_NS, note_read};
use crate::load::payload::{Decoded, Decoder, FLAG_WARMUP, Secret};
use crate::load::tally::{Counts, Tally};
use crate::model::{Assignor, GroupProtocol, RebalanceEvent};
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
    /// Consumer clients sharing the partitions.
    pub consumers: usize,
    /// Simulated work per record in each consumer.
    pub processing: Duration,
    /// Where each partition is read from.
    pub start: StartAt,
    /// The consumers as one group the broker coordinates (None: each
    /// takes fixed partitions).
    pub group: Option<(GroupProtocol, Option<Assignor>)>,
}

/// Where a consumer starts reading each partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StartAt {
    /// The first offset still in the log (a topic created for this load:
    /// everything in it is the load's).
    #[default]
    Beginning,
    /// Each partition's end when the consumer starts: only what is written
    /// after that (a topic that may hold an earlier load's records and
    /// end-of-run markers, which would otherwise end the count early).
    End,
    /// These offsets (a read-back of one load's records); a partition not
    /// named is read from its beginning.
    Offsets(std::collections::BTreeMap<i32, i64>),
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
            consumers: 1,
            processing: Duration::ZERO,
            start: StartAt::Beginning,
            group: None,
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
    /// A group's members, for the step's consumer events.
    pub members: Members,
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
    /// `(t, lag)`: records due before Unix second `t` and not yet read.
    pub lag_per_second: Vec<(u64, u64)>,
    /// Where it started ([`StartAt::End`] resolved to offsets), for a later
    /// read-back of the same records.
    pub started_at: StartAt,
    /// A group's rebalance callbacks, each consumer's, in order (`at_s`
    /// in Unix seconds).
    pub rebalances: Vec<RebalanceEvent>,
    /// A group's partitions' stretches without a record read, at least
    /// [`PAUSE_NS`](crate::load::lag::PAUSE_NS) long: `(partition, from, to)` in Unix ns.
    pub pauses: Vec<(i32, u64, u64)>,
    /// A group's records read a second time: when (Unix ns).
    pub duplicate_at_ns: Vec<u64>,
}

/// A consumer client's settings; `group_id` names the group a group's
/// members share (None: a group of its own, for fixed partitions). The
/// workload's own settings come last but for the bootstrap.
pub fn client_config(spec: &ConsumerSpec, group_id: Option<&str>) -> ClientConfig {
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
    if let (Some((protocol, assignor)), Some(id)) = (spec.group, group_id) {
        group_settings(&mut cfg, id, protocol, assignor);
    }
    for (k, v) in &spec.settings {
        cfg.set(k, v);
    }
    cfg.set("bootstrap.servers", &spec.bootstrap);
    cfg
}

/// One record value as a fetcher saw it: where from, what it decoded to,
/// and when it was done with it (Unix ns: received, plus the simulated
/// processing of the records before it).
struct Seen {
    partition: i32,
    decoded: Decoded,
    at_ns: u64,
}

/// Consumer `k` of `n` reads the partitions `p` with `p % n == k`.
fn partitions_of(k: usize, n: usize, partitions: usize) -> Vec<i32> {
    (0..partitions)
        .filter(|p| p % n.max(1) == k)
        .map(|p| p as i32)
        .collect()
}

/// Reads until every producer's markers have arrived, the drain timeout
/// passes, or `cancel` fires.
///
/// `spec.consumers` clients each read their share of the partitions in
/// their own thread: fetch, check the tag, and wait out the simulated
/// processing of each record (`spec.processing`). They hand what they read
/// to this thread, which keeps the one tally, the latency histograms and
/// the lag.
pub fn run(
    spec: &ConsumerSpec,
    clock: &Clock,
    cancel: &Cancel,
    handle: &ConsumerHandle,
) -> Result<ConsumerReport> {
    let n = spec.consumers.max(1);
    let group_id = format!("klab-{}", crate::random::u64());
    // The group's shared state, filled in once the partitions are known.
    let mut group: Option<Arc<Group>> = None;
    let make = |k: usize, g: Option<Arc<Group>>| {
        let mut cfg = client_config(spec, Some(&group_id));
        if n > 1 {
            cfg.set("client.id", format!("klab-consumer-{}", k + 1));
        }
        cfg.create_with_context(LoadContext {
            group: g.map(|g| (k, g)),
        })
        .context("creating the consumer")
    };
    // The first client finds the partitions; in a group the members are
    // made once the group's state can say where each partition starts.
    let probe: BaseConsumer<LoadContext> = make(0, None)?;

    // Find the partitions (the topic exists before the consumer starts),
    // within 30 s and the consumer's own deadline.
    let meta_deadline = (Instant::now() + Duration::from_secs(30)).min(
        spec.deadline
            .unwrap_or(Instant::now() + Duration::from_secs(30)),
    );
    let partitions = loop {
        if cancel.is_cancelled() {
            bail!("cancelled before the consumer started");
        }
        match probe.fetch_metadata(Some(&spec.topic), Duration::from_secs(2)) {
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
    let started_at = match &spec.start {
        StartAt::End => StartAt::Offsets(end_offsets(
            &probe,
            &spec.topic,
            partitions,
            meta_deadline,
            cancel,
        )?),
        other => other.clone(),
    };
    let consumers = if spec.group.is_some() {
        // Members of one group: each subscribes, and the group is ready
        // when every member holds a partition and every partition is held
        // (the fetchers' polls carry the joins out).
        let g = Arc::new(Group::new(
            &spec.topic,
            partitions,
            n,
            match &started_at {
                StartAt::Offsets(o) => o.clone(),
                _ => Default::default(),
            },
            *clock,
            Arc::clone(&handle.ready),
        ));
        group = Some(Arc::clone(&g));
        drop(probe);
        let members = (0..n)
            .map(|k| member(&make, k, &g, &spec.topic))
            .collect::<Result<Vec<_>>>()?;
        handle.members.started(n);
        members
    } else {
        let mut clients = vec![probe];
        for k in 1..n {
            clients.push(make(k, None)?);
        }
        for (k, consumer) in clients.iter().enumerate() {
            let mut tpl = TopicPartitionList::new();
            for p in partitions_of(k, n, partitions) {
                let from = match &started_at {
                    StartAt::Offsets(o) => {
                        o.get(&p).map_or(Offset::Beginning, |&x| Offset::Offset(x))
                    }
                    _ => Offset::Beginning,
                };
                tpl.add_partition_offset(&spec.topic, p, from)
                    .context("building the partition assignment")?;
            }
            consumer.assign(&tpl).context("assigning partitions")?;
        }
        handle.ready.store(true, Ordering::SeqCst);
        clients
    };

    let stop = AtomicBool::new(false);
    let (tx, rx) = std::sync::mpsc::channel::<Vec<Seen>>();
    std::thread::scope(|s| {
        let stop = &stop;
        let fetcher = |k: usize, consumer: BaseConsumer<LoadContext>| {
            let tx = tx.clone();
            let members = &handle.members;
            let g = group.as_deref();
            move || fetch(consumer, k, spec, clock, stop, &tx, members, g)
        };
        for (k, consumer) in consumers.into_iter().enumerate() {
            s.spawn(fetcher(k, consumer));
        }
        // Members that join during the load (a group's only).
        let mut joins = || {
            let Some(g) = &group else { return };
            for k in handle.members.take_joins() {
                match member(&make, k, g, &spec.topic) {
                    Ok(c) => {
                        s.spawn(fetcher(k, c));
                    }
                    Err(e) => tracing::warn!("consumer {} could not join: {e:#}", k + 1),
                }
            }
        };
        let report = tally_arrivals(spec, clock, cancel, handle, &rx, &mut joins);
        stop.store(true, Ordering::SeqCst);
        stop.store(true, Ordering::SeqCst);
        let rebalances = group.as_ref().map(|g| g.events()).unwrap_or_default();
        report.map(|r| ConsumerReport {
            started_at,
            rebalances,
            ..r
        })
    })
}

/// Member `k` of group `g`, made and subscribed.
fn member(
    make: &dyn Fn(usize, Option<Arc<Group>>) -> Result<BaseConsumer<LoadContext>>,
    k: usize,
    g: &Arc<Group>,
    topic: &str,
) -> Result<BaseConsumer<LoadContext>> {
    let m = make(k, Some(Arc::clone(g)))?;
    m.subscribe(&[topic])
        .context("subscribing the group's members to the topic")?;
    Ok(m)
}

/// The end (high watermark) of each of the `partitions` of `topic` now.
/// A partition whose leader is not known yet (a topic just created, a
/// leader just moved) is asked again until `deadline`.
fn end_offsets(
    consumer: &BaseConsumer<LoadContext>,
    topic: &str,
    partitions: usize,
    deadline: Instant,
    cancel: &Cancel,
) -> Result<std::collections::BTreeMap<i32, i64>> {
    let mut out = std::collections::BTreeMap::new();
    for p in 0..partitions as i32 {
        let high = loop {
            match consumer.fetch_watermarks(topic, p, Duration::from_secs(2)) {
                Ok((_, high)) => break high,
                Err(e) if Instant::now() >= deadline || cancel.is_cancelled() => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("reading the end offset of {topic}/{p}")));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        out.insert(p, high);
    }
    Ok(out)
}

/// A fetcher's loop: polls its consumer (member `k`), checks each record
/// and sends what it read on in batches, until `stop` or an order to
/// leave or die. A stall order stops its polls for a while.
#[allow(clippy::too_many_arguments)]
fn fetch(
    consumer: BaseConsumer<LoadContext>,
    k: usize,
    spec: &ConsumerSpec,
    clock: &Clock,
    stop: &AtomicBool,
    tx: &std::sync::mpsc::Sender<Vec<Seen>>,
    members: &Members,
    group: Option<&Group>,
) {
    let mut decoder = Decoder::new(&spec.secret);
    let processing_ns = spec.processing.as_nanos() as u64;
    // When the simulated work on the records read so far is done.
    let mut busy_until = 0u64;
    let mut batch: Vec<Seen> = Vec::with_capacity(256);
    let mut batch_since = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if let Some(order) = members.take_order(k) {
            // What it read is counted before it goes.
            if !batch.is_empty() && tx.send(std::mem::take(&mut batch)).is_err() {
                return;
            }
            match order {
                // Dropped at the end: closed, it leaves the group.
                MemberOrder::Leave => return,
                MemberOrder::Die => {
                    if let Some(g) = group {
                        g.died(k);
                    }
                    die(consumer);
                    return;
                }
                MemberOrder::Stall(d) => {
                    let until = Instant::now() + d;
                    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
        }
        let polled = consumer.poll(Duration::from_millis(20));
        let idle = polled.is_none();
        if let Some(msg) = polled {
            match msg {
                Ok(msg) => {
                    let now_ns = clock.now_ns();
                    let decoded = decoder.decode(msg.payload());
                    let at_ns = if processing_ns > 0 && matches!(decoded, Decoded::Record(_)) {
                        busy_until = busy_until.max(now_ns) + processing_ns;
                        busy_until
                    } else {
                        now_ns.max(busy_until)
                    };
                    if batch.is_empty() {
                        batch_since = Instant::now();
                    }
                    // Taken: a group's next commit may include it.
                    if group.is_some()
                        && let Err(e) = consumer.store_offset_from_message(&msg)
                    {
                        tracing::debug!("consumer {}: storing an offset: {e}", k + 1);
                    }
                    batch.push(Seen {
                        partition: msg.partition(),
                        decoded,
                        at_ns,
                    });
                }
                // Transient fetch errors are retried by librdkafka itself.
                Err(e) => tracing::debug!("consumer: {e}"),
            }
        }
        let ahead = busy_until.saturating_sub(clock.now_ns());
        let flush = idle
            || batch.len() >= 256
            || batch_since.elapsed() >= Duration::from_millis(5)
            || ahead >= 1_000_000;
        if flush && !batch.is_empty() {
            if tx.send(std::mem::take(&mut batch)).is_err() {
                return;
            }
            batch.reserve(256);
        }
        // Wait out the work on what was read (in steps of at least 1 ms).
        if ahead >= 1_000_000 {
            std::thread::sleep(Duration::from_nanos(ahead).min(Duration::from_millis(100)));
        }
    }
}

/// Counts what the fetchers read until every marker is in, the drain
/// timeout passes, the deadline passes or `cancel` fires.
fn tally_arrivals(
    spec: &ConsumerSpec,
    clock: &Clock,
    cancel: &Cancel,
    handle: &ConsumerHandle,
    rx: &std::sync::mpsc::Receiver<Vec<Seen>>,
    joins: &mut dyn FnMut(),
) -> Result<ConsumerReport> {
    let mut tally = Tally::new();
    let mut report = ConsumerReport::default();
    // A group's partitions: when each was last read (Unix ns).
    let grouped = spec.group.is_some();
    let mut last_read: Vec<u64> = Vec::new();
    let mut lag = Lag::default();
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
        joins();
        let batch = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(b) => b,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                bail!("every consumer thread ended")
            }
        };
        last_arrival = Instant::now();
        for seen in batch {
            match seen.decoded {
                Decoded::Record(h) => {
                    let arrival = tally.record(seen.partition, &h);
                    if grouped {
                        note_read(
                            &mut last_read,
                            &mut report.pauses,
                            seen.partition,
                            seen.at_ns,
                        );
                    }
                    if arrival == crate::load::tally::Arrival::Duplicate {
                        let s = clock.offset_of(h.due_ns).as_secs();
                        *report.duplicated_per_second.entry(s).or_default() += 1;
                        if grouped {
                            report.duplicate_at_ns.push(seen.at_ns);
                        }
                    } else {
                        lag.read(h.due_ns, seen.at_ns);
                    }
                    let lat_us = seen.at_ns.saturating_sub(h.due_ns) / 1000;
                    let at = clock.offset_of(seen.at_ns);
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
    }
    if let Some(prev) = open_second {
        handle.close_second(&report, prev);
    }
    // A partition not read again until the end was paused until then.
    let end = last_read.iter().copied().max().unwrap_or(0);
    for (p, at) in last_read.iter().enumerate() {
        if *at > 0 && end - at >= PAUSE_NS {
            report.pauses.push((p as i32, *at, end));
        }
    }
    report.counts = tally.counts();
    for due in tally.missing_due_ns() {
        *report
            .missing_per_second
            .entry(clock.offset_of(due).as_secs())
            .or_default() += 1;
        lag.missing(due);
    }
    report.lag_per_second = lag.per_second();
    Ok(report)
}

/// Reads `topic` once more from `start` (where the live consumer of the
/// same load started) with a fresh consumer group, until every one of
/// `producers` producers' end-of-run markers is found or `timeout` passes,
/// and counts what is there: the log as a consumer that comes later sees it.
pub fn read_back(
    bootstrap: &str,
    topic: &str,
    start: &StartAt,
    producers: usize,
    secret: &Secret,
    timeout: Duration,
) -> Result<(Counts, bool)> {
    let mut spec = ConsumerSpec::new(bootstrap, topic, secret.clone());
    spec.start = start.clone();
    spec.producers = producers;
    spec.drain_timeout = timeout;
    spec.deadline = Some(Instant::now() + timeout);
    let handle = ConsumerHandle::default();
    // Nothing is being produced: the drain timeout runs from the start.
    handle.producers_done();
    let r = run(&spec, &Clock::new(), &Cancel::new(), &handle)?;
    Ok((r.counts, r.finished))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_shared_as_an_assignor_would() {
        assert_eq!(partitions_of(0, 1, 3), [0, 1, 2]);
        assert_eq!(partitions_of(1, 3, 6), [1, 4]);
        assert!(partitions_of(3, 4, 3).is_empty());
    }
}
