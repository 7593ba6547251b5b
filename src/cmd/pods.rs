//! `klab produce` and `klab consume`: the two halves of a run as separate
//! processes (the producer and consumer pods on Kubernetes). Each prints its
//! outcome as one JSON line on stdout; `klab` combines them with the same
//! code that assembles a local run.
//!
//! With `--metrics ADDR` each serves `/metrics` while it runs: once a
//! second it emits what it knows as an [`Event::Second`] (the producer its
//! counts and publish p99, the consumer its counts and latency), which the
//! live view's metrics add up, under the live view's names.

use super::Outcome;
use crate::broker::admin::Admin;
use crate::cancel::Cancel;
use crate::cli::{ConsumeArgs, ProduceArgs};
use crate::events::{self, Event};
use crate::load::clock::Clock;
use crate::load::consumer::{self, ConsumerHandle, ConsumerSpec};
use crate::load::outcome::{ConsumerOutcome, ProducerOutcome};
use crate::load::payload::Secret;
use crate::load::producer::{self, ProducerSpec};
use crate::stats::progress::ProducerProgress;
use crate::stats::report::{check_writable, write_json};
use crate::ui::metrics::Role;
use crate::usage;
use anyhow::{Result, anyhow};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Producer and consumer in separate processes must share the secret.
fn shared_secret() -> Result<Secret> {
    match std::env::var_os("KLAB_SECRET") {
        Some(s) if !s.is_empty() => Ok(Secret::new(s.into_encoded_bytes())),
        _ => Err(usage!(
            "KLAB_SECRET is not set: a producer and a consumer in separate processes must share the HMAC secret (on Kubernetes it comes from the Secret klab-hmac)"
        )),
    }
}

fn emit<T: serde::Serialize>(value: &T, file: Option<&std::path::Path>) -> Result<()> {
    if let Some(f) = file {
        write_json(f, value)?;
    }
    crate::outln!("{}", serde_json::to_string(value)?);
    Ok(())
}

pub fn produce(a: &ProduceArgs) -> Result<Outcome> {
    let workload = a.workload.workload()?;
    let Some(topic) = workload.topic.clone() else {
        return Err(usage!("--topic is required for klab produce"));
    };
    if let Some(j) = &a.json {
        check_writable(j).map_err(|e| usage!("--json {}: {e}", j.display()))?;
    }
    let secret = shared_secret()?;
    let _metrics = serve_metrics(a.metrics, Role::Producer)?;
    begin(&a.bootstrap, &topic, workload.describe());
    let admin = Admin::connect(&a.bootstrap)?;
    let deadline = Instant::now() + a.wait_topic;
    loop {
        if matches!(admin.topic_partitions(&topic), Ok(Some(n)) if n as i32 >= workload.partitions)
        {
            break;
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "topic {topic} with {} partitions did not appear within {:?}",
                workload.partitions,
                a.wait_topic
            );
        }
        if crate::cancel::interrupted() {
            return Ok(Outcome::Interrupted);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let n = workload.producers.max(1) as usize;
    // The topic as the consumer created it: replicated or not decides the
    // producer's requests in flight (load::producer::client_config).
    let replicated = admin
        .replicas(&topic, 0, Duration::from_secs(10))
        .map(|r| r.len() > 1)
        .unwrap_or(false);
    let specs: Vec<ProducerSpec> = (0..n)
        .map(|j| ProducerSpec {
            replicated,
            index: j as u32,
            ..ProducerSpec::new(
                &a.bootstrap,
                &topic,
                crate::step::share_of(&workload, j, n),
                secret.clone(),
            )
        })
        .collect();
    let clock = Clock::new();
    let progress: Vec<Mutex<ProducerProgress>> = (0..n)
        .map(|_| Mutex::new(ProducerProgress::default()))
        .collect();
    let cancel = Cancel::new();
    let report = std::thread::scope(|s| {
        let run = s.spawn(|| producer::run_all(&specs, &clock, &cancel, &progress));
        let mut seconds = Seconds::new(&a.bootstrap, &topic);
        while !run.is_finished() {
            std::thread::sleep(Duration::from_millis(100));
            if seconds.due() {
                let p = crate::step::sum_progress(&progress);
                seconds.emit(p.sent, p.acked, 0, p.due, p.publish_p99_ms, None);
            }
        }
        run.join()
            .map_err(|_| anyhow!("the producer threads panicked"))
    })??;
    let p = crate::step::sum_progress(&progress);
    Seconds::new(&a.bootstrap, &topic).emit(
        report.produced,
        report.acked,
        0,
        p.due,
        p.publish_p99_ms,
        None,
    );
    let outcome = ProducerOutcome::from_report(&report, &clock);
    emit(&outcome, a.json.as_deref())?;
    Ok(if outcome.stopped.is_some() {
        Outcome::Incomplete
    } else {
        Outcome::Done
    })
}

pub fn consume(a: &ConsumeArgs) -> Result<Outcome> {
    crate::model::check_topic_name(&a.topic).map_err(|e| usage!("--topic: {e}"))?;
    if let Some(j) = &a.json {
        check_writable(j).map_err(|e| usage!("--json {}: {e}", j.display()))?;
    }
    if let (Some(isr), rf) = (a.create_min_insync_replicas, a.create_replication_factor) {
        let rf = rf.unwrap_or(1);
        if isr > rf {
            return Err(usage!(
                "--create-min-insync-replicas {isr}: above the replication factor {rf} (--create-replication-factor), every write would fail"
            ));
        }
    }
    let secret = shared_secret()?;
    let _metrics = serve_metrics(a.metrics, Role::Consumer)?;
    begin(&a.bootstrap, &a.topic, String::new());
    if let Some(p) = a.create_partitions {
        let admin = Admin::connect(&a.bootstrap)?;
        if admin.topic_partitions(&a.topic)?.is_none() {
            let rf = a.create_replication_factor.unwrap_or(1) as i32;
            admin.create_replicated_topic(&a.topic, p, rf, a.create_min_insync_replicas)?;
        }
    }
    for (k, _) in &a.consumer_set {
        crate::model::check_consumer_key(k).map_err(|e| usage!("--consumer-set: {e}"))?;
    }
    if let Some(d) = a.processing
        && d > crate::model::limits::MAX_PROCESSING
    {
        return Err(usage!("--processing: at most 1s per record"));
    }
    let mut spec = ConsumerSpec::new(&a.bootstrap, &a.topic, secret);
    spec.producers = a.producers as usize;
    spec.consumers = a.consumers as usize;
    spec.processing = a.processing.unwrap_or_default();
    spec.settings = a.consumer_set.clone();
    // The same checks as a workload's group (an assignor the protocol does
    // not take, a setting it ignores).
    crate::model::check_group(a.group, a.assignor, a.consumer_set.iter().map(|(k, _)| k))
        .map_err(|e| usage!("{}", crate::cli::flagify(&e)))?;
    spec.group = a.group.map(|g| (g, a.assignor));
    spec.deadline = Some(Instant::now() + a.timeout);
    let clock = Clock::new();
    let cancel = Cancel::new();
    let handle = ConsumerHandle::default();
    let report = std::thread::scope(|s| {
        let run = s.spawn(|| consumer::run(&spec, &clock, &cancel, &handle));
        let mut seconds = Seconds::new(&a.bootstrap, &a.topic);
        while !run.is_finished() {
            std::thread::sleep(Duration::from_millis(100));
            if seconds.due() {
                let consumed = handle.consumed();
                seconds.emit(0, 0, consumed, 0, None, Some(handle.live()));
            }
        }
        run.join()
            .map_err(|_| anyhow!("the consumer thread panicked"))
    })??;
    let outcome = ConsumerOutcome::from_report(&report, &clock);
    let live = handle.live();
    events::emit(Event::StepEnd {
        lab: None,
        label: None,
        topic: a.topic.clone(),
        complete: outcome.finished,
        records_per_s: 0.0,
        e2e_p99_ms: 0.0,
        lost: outcome.lost,
        throwaway: false,
        duplicated: outcome.duplicated,
        e2e_p50_ms: 0.0,
        e2e_max_ms: 0.0,
        publish_p99_ms: 0.0,
        reason: outcome.stopped.clone(),
        produced: 0,
        acked: 0,
        consumed: outcome.consumed.max(handle.consumed()),
        e2e_buckets: live.buckets,
        e2e_sum_s: live.sum_s,
        failed: 0,
        unsent: 0,
    });
    emit(&outcome, a.json.as_deref())?;
    if a.delete_topic {
        // After the outcome is out: a failed cleanup does not lose it.
        match Admin::connect(&a.bootstrap).and_then(|admin| admin.delete_topic(&a.topic)) {
            Ok(()) => tracing::info!("deleted topic {}", a.topic),
            Err(e) => tracing::warn!("could not delete topic {}: {e:#}", a.topic),
        }
    }
    Ok(if outcome.finished {
        Outcome::Done
    } else {
        Outcome::Incomplete
    })
}

/// `--metrics ADDR`: binds before anything else starts (a taken port is
/// exit 2) and serves until the returned value is dropped.
fn serve_metrics(addr: Option<std::net::SocketAddr>, role: Role) -> Result<Option<crate::ui::Ui>> {
    addr.map(|addr| crate::ui::serve_metrics(addr, "--metrics", role))
        .transpose()
}

/// The step this process is part of, for `klab_step_info` (its topic; the
/// label and the broker settings are klab's, not the pod's, to know).
fn begin(bootstrap: &str, topic: &str, workload: String) {
    events::emit(Event::StepBegin {
        lab: None,
        label: None,
        bootstrap: bootstrap.to_string(),
        topic: topic.to_string(),
        workload,
        broker: String::new(),
        applied: crate::model::Applied::Unchanged,
        throwaway: false,
    });
}

/// One [`Event::Second`] a second, with what this half of a run knows
/// (zero for the other half's counts).
struct Seconds {
    bootstrap: String,
    topic: String,
    started: Instant,
    last: Instant,
    counts: (u64, u64, u64),
    latency_second: Option<u64>,
}

impl Seconds {
    fn new(bootstrap: &str, topic: &str) -> Seconds {
        Seconds {
            bootstrap: bootstrap.to_string(),
            topic: topic.to_string(),
            started: Instant::now(),
            last: Instant::now(),
            counts: (0, 0, 0),
            latency_second: None,
        }
    }

    fn due(&self) -> bool {
        self.last.elapsed() >= Duration::from_secs(1)
    }

    fn emit(
        &mut self,
        sent: u64,
        acked: u64,
        consumed: u64,
        due: u64,
        publish_p99_ms: Option<f64>,
        latency: Option<crate::load::consumer::LiveLatency>,
    ) {
        let dt = self.last.elapsed().as_secs_f64().max(1e-3);
        self.last = Instant::now();
        let rate = |now: u64, before: u64| now.saturating_sub(before) as f64 / dt;
        let (s0, a0, c0) = std::mem::replace(&mut self.counts, (sent, acked, consumed));
        let live = latency.unwrap_or_default();
        // Percentiles only for a second not reported before.
        let fresh = live.second.is_some() && live.second != self.latency_second;
        self.latency_second = live.second;
        events::emit(Event::Second {
            bootstrap: self.bootstrap.clone(),
            topic: self.topic.clone(),
            t_s: self.started.elapsed().as_secs_f64(),
            measuring: true,
            sent,
            acked,
            consumed,
            due: due.max(sent),
            sent_per_s: rate(sent, s0),
            acked_per_s: rate(acked, a0),
            consumed_per_s: rate(consumed, c0),
            e2e_p50_ms: fresh.then_some(live.p50_ms),
            e2e_p99_ms: fresh.then_some(live.p99_ms),
            e2e_max_ms: fresh.then_some(live.max_ms),
            publish_p99_ms,
            e2e_buckets: live.buckets,
            e2e_sum_s: live.sum_s,
        });
    }
}
