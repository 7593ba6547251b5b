//! One measurement: put a workload on a broker and return a [`StepResult`].
//! `klab run`, the labs, the tuner and the bench all measure through
//! [`measure`], so there is one place where a measurement happens.

pub mod faults;

use crate::broker::admin::Admin;
use crate::broker::kafka_home::store_path_of;
use crate::broker::knobs;
use crate::broker::local::LocalBroker;
use crate::cancel::Cancel;
use crate::events::{self, Event};
use crate::load::clock::Clock;
use crate::load::consumer::{self, ConsumerHandle, ConsumerReport, ConsumerSpec};
use crate::load::outcome::{ConsumerOutcome, ProducerOutcome, assemble};
use crate::load::payload::Secret;
use crate::load::producer::{self, ProducerReport, ProducerSpec};
use crate::model::{
    Applied, BrokerConfig, BrokerReport, EffectiveValue, Environment, LogCheck, StepResult,
    TargetKind, Workload,
};
use crate::stats::cpu::CpuSampler;
use crate::stats::progress::{ProducerProgress, Progress};
use crate::stats::report::Measurement;
use crate::usage;
use anyhow::{Context, Result, anyhow};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where the load goes.
pub enum Target<'a> {
    /// A broker klab started (and may restart or reconfigure).
    Local(&'a mut LocalBroker),
    /// A broker someone else runs; klab only connects to it (and records
    /// the effective config it read, if any).
    External {
        bootstrap: String,
        effective: BTreeMap<String, EffectiveValue>,
    },
}

impl Target<'_> {
    pub fn bootstrap(&self) -> String {
        match self {
            Target::Local(b) => b.bootstrap(),
            Target::External { bootstrap, .. } => bootstrap.clone(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct StepOptions {
    pub lab: Option<String>,
    pub label: Option<String>,
    /// How to show progress on stderr.
    pub progress: Progress,
    /// Title of the progress bar.
    pub title: String,
    pub lab_fingerprint: Option<String>,
    /// Settings that were asked for (recorded as `broker.requested`).
    pub requested: BrokerConfig,
    /// How they reached the broker.
    pub applied: Applied,
    /// A throw-away load (the JIT warm-up): once the producers are done the
    /// consumer is stopped instead of waited for.
    pub throwaway: bool,
    /// Overrides [`catch_up_limit`] (tests).
    pub catch_up: Option<Duration>,
    /// A throw-away load on a local broker that ends as soon as the
    /// broker's JIT compilers have settled (see [`JIT_SETTLED`]), after at
    /// least [`JIT_MIN`].
    pub until_jit_settles: bool,
}

/// The JIT has settled when its compiler threads used less than this much
/// CPU (in all the brokers) over the last [`JIT_LOOKBACK`].
pub const JIT_SETTLED: Duration = Duration::from_millis(1000);
pub const JIT_LOOKBACK: Duration = Duration::from_secs(5);
pub const JIT_MIN: Duration = Duration::from_secs(6);
/// How a JIT-settling load's `reason` starts when the JIT settled (rather
/// than the load running to its limit).
pub const JIT_SETTLED_REASON: &str = "the JIT settled after";

/// The longest throw-away load after a local broker (re)starts. On 2
/// cores Kafka's JIT compilers work for 40 to 50 s under load before the
/// broker reaches its steady latency; the warm-up ends as soon as they
/// settle (see [`StepOptions::until_jit_settles`]).
pub const JIT_WARM_UP_MAX: Duration = Duration::from_secs(60);

/// [`JIT_WARM_UP_MAX`], or `$KLAB_JIT_WARM_UP` (a duration) where a test or
/// a CI run trades the JIT's steady state for time.
pub fn jit_warm_up_max() -> Duration {
    std::env::var("KLAB_JIT_WARM_UP")
        .ok()
        .and_then(|v| crate::units::parse_duration(&v).ok())
        .unwrap_or(JIT_WARM_UP_MAX)
}

/// How long the consumer may keep reading after the producers are done
/// before the step ends incomplete: a broker that takes writes faster than
/// it serves reads (tiny `socket.send.buffer.bytes`, for one) would
/// otherwise hold the step for as long as the backlog takes to drain.
pub fn catch_up_limit(w: &Workload) -> Duration {
    let planned = w.warmup + w.duration.unwrap_or(Duration::ZERO);
    (planned * 2).max(Duration::from_secs(60))
}

/// Marks a result with what it measured: the lab and step of `opts`, the
/// broker (`target` kind, bootstrap, requested and effective settings, how
/// they got there), the topic, and the environment with the lab's
/// fingerprint. Every target stamps its results this way.
pub fn stamp(
    result: &mut StepResult,
    opts: &StepOptions,
    target: TargetKind,
    bootstrap: String,
    effective: &BTreeMap<String, EffectiveValue>,
    topic: String,
    mut env: Environment,
) {
    env.lab_fingerprint = opts.lab_fingerprint.clone();
    result.lab = opts.lab.clone();
    result.label = opts.label.clone();
    result.broker = BrokerReport {
        target,
        bootstrap,
        requested: opts.requested.clone(),
        effective: effective_summary(effective, &opts.requested),
        applied: opts.applied,
    };
    result.workload.topic = Some(topic);
    result.environment = env;
}

/// Keys recorded in every result's `broker.effective`, beside the ones that
/// were requested or are not at their default.
/// How long the read-back after faults may take (a durability lab's topic
/// holds some 100k records: seconds).
const READ_BACK_TIMEOUT: Duration = Duration::from_secs(30);

const ALWAYS_RECORDED: &[&str] = &[
    "num.io.threads",
    "num.network.threads",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes",
    "compression.type",
    "message.max.bytes",
    "heap",
];

pub fn effective_summary(
    eff: &BTreeMap<String, EffectiveValue>,
    requested: &BrokerConfig,
) -> BTreeMap<String, EffectiveValue> {
    eff.iter()
        .filter(|(k, v)| {
            ALWAYS_RECORDED.contains(&k.as_str())
                || requested.properties.contains_key(*k)
                || v.source == "DynamicBroker"
                || v.source == "DynamicDefaultBroker"
                || (v.source == "StaticBroker" && knobs::lookup(k).is_some())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Facts about where a result was measured.
pub fn environment(
    kafka_version: Option<String>,
    java_version: Option<String>,
    kafka_dir: Option<&std::path::Path>,
) -> Environment {
    Environment {
        klab_version: env!("CARGO_PKG_VERSION").to_string(),
        kafka_version,
        java_version,
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        os: std::env::consts::OS.to_string(),
        arch: std::env::consts::ARCH.to_string(),
        klab_store_path: std::env::current_exe().ok().and_then(|p| store_path_of(&p)),
        kafka_store_path: kafka_dir.and_then(store_path_of),
        lab_fingerprint: None,
        started_at: crate::stats::report::utc_now(),
    }
}

/// Faults may only name brokers the cluster has.
fn check_fault_nodes(faults: &[crate::model::FaultSpec], brokers: u32) -> Result<()> {
    for (i, f) in faults.iter().enumerate() {
        if let crate::model::FaultTarget::Node(n) = f.broker
            && n > brokers
        {
            return Err(usage!(
                "--fault (number {}) broker: {n} of {brokers}; the cluster has brokers 1..={brokers} (--brokers)",
                i + 1
            ));
        }
    }
    Ok(())
}

/// The replication factor and `min.insync.replicas` of the workload's topic
/// on a cluster of `brokers`: as asked, or as many replicas as brokers (at
/// most 3). More replicas than brokers, or an ISR above the replicas, is an
/// input error.
pub fn replication_of(w: &Workload, brokers: usize) -> Result<(i32, Option<u32>)> {
    let brokers = brokers.max(1) as u32;
    let rf = w.replication_factor.unwrap_or(brokers.min(3));
    if rf > brokers {
        return Err(usage!(
            "--replication-factor {rf}: the cluster has {brokers} broker(s); at most {brokers} replicas"
        ));
    }
    if let Some(isr) = w.min_insync_replicas
        && isr > rf
    {
        return Err(usage!(
            "--min-insync-replicas {isr}: above the replication factor {rf}, every write would fail"
        ));
    }
    Ok((rf as i32, w.min_insync_replicas))
}

/// Producer `j` of `n`: an equal share of the rate and of the messages.
pub fn share_of(w: &Workload, j: usize, n: usize) -> Workload {
    let mut out = w.clone();
    out.rate = w.rate.map(|r| r / n as f64);
    out.messages = w
        .messages
        .map(|m| m / n as u64 + u64::from((j as u64) < m % n as u64));
    out
}

/// The producers' progress added up (publish p99: the highest of them).
pub fn sum_progress(slots: &[Mutex<ProducerProgress>]) -> ProducerProgress {
    let mut t = ProducerProgress::default();
    let mut total = Some(0u64);
    for s in slots {
        if let Ok(p) = s.lock() {
            t.sent += p.sent;
            t.acked += p.acked;
            t.elapsed = t.elapsed.max(p.elapsed);
            t.measuring |= p.measuring;
            t.due += p.due;
            t.publish_p99_ms = match (t.publish_p99_ms, p.publish_p99_ms) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            total = match (total, p.total) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            };
        }
    }
    t.total = total;
    t
}

/// A topic name no earlier run used: `klab-<ms since the epoch>-<random>`.
pub fn fresh_topic() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("klab-{ms}-{:04x}", crate::random::u64() & 0xffff)
}

/// Measures `workload` against `target`.
///
/// Returns a result even when the run could not finish (broker died,
/// Ctrl-C): it is then marked `complete: false` with the reason, and holds
/// everything measured up to that point.
pub fn measure(
    target: &mut Target<'_>,
    workload: &Workload,
    secret: &Secret,
    opts: &StepOptions,
) -> Result<Measurement> {
    workload.validate().map_err(|e| usage!("workload {e}"))?;
    let bootstrap = target.bootstrap();
    let (effective, kafka_version, java_version, kafka_dir) = match target {
        Target::Local(b) => (
            b.effective().clone(),
            Some(b.kafka().version.clone()),
            Some(b.java_version().to_string()),
            Some(b.kafka().dir.clone()),
        ),
        Target::External { effective, .. } => (effective.clone(), None, None, None),
    };
    // Its own admin client, so `target` stays free for the broker watch.
    let admin = Admin::connect(&bootstrap)?;
    let brokers = match target {
        Target::Local(b) => b.size() as usize,
        Target::External { .. } => admin.broker_ids(Duration::from_secs(10))?.len(),
    };
    let (replication, min_isr) = replication_of(workload, brokers)?;
    let create =
        |t: &str| admin.create_replicated_topic(t, workload.partitions, replication, min_isr);
    let (topic, created) = match &workload.topic {
        Some(t) => match admin.topic_partitions(t)? {
            Some(n) if (n as i32) < workload.partitions => {
                return Err(usage!(
                    "--topic {t} has {n} partition(s) but the workload wants {}; use another topic or --partitions {n}",
                    workload.partitions
                ));
            }
            Some(_) => (t.clone(), false),
            None => {
                create(t)?;
                (t.clone(), true)
            }
        },
        None => {
            let t = fresh_topic();
            create(&t)?;
            (t, true)
        }
    };
    let env = environment(kafka_version, java_version, kafka_dir.as_deref());

    let clock = Clock::new();
    let cancel = Cancel::new();
    let handle = ConsumerHandle::default();
    let n = workload.producers.max(1) as usize;
    let pspecs: Vec<ProducerSpec> = (0..n)
        .map(|j| ProducerSpec {
            replicated: replication > 1,
            ..ProducerSpec::new(&bootstrap, &topic, share_of(workload, j, n), secret.clone())
        })
        .collect();
    let mut cspec = ConsumerSpec::new(&bootstrap, &topic, secret.clone());
    cspec.producers = n;
    cspec.consumers = workload.consumers.max(1) as usize;
    cspec.processing = workload.processing;
    cspec.settings = workload.consumer.clone().into_iter().collect();
    cspec.drain_timeout = Duration::from_secs(30);
    // A topic klab did not just create may hold an earlier load's records
    // and end-of-run markers: this step reads only what it writes.
    if !created {
        cspec.start = consumer::StartAt::End;
    }
    let progress: Vec<Mutex<ProducerProgress>> = (0..n)
        .map(|_| Mutex::new(ProducerProgress::default()))
        .collect();
    let bar = crate::stats::progress::StepBar::new(opts.progress, &opts.title, workload);
    let label = opts.label.clone().or_else(|| Some(opts.title.clone()));
    events::emit(Event::StepBegin {
        lab: opts.lab.clone(),
        label: label.clone(),
        bootstrap: bootstrap.clone(),
        topic: topic.clone(),
        workload: workload.describe(),
        broker: opts.requested.to_string(),
        applied: opts.applied,
        throwaway: opts.throwaway,
    });
    let mut measuring = false;
    let mut timeline = match (&*target, workload.faults.is_empty()) {
        (_, true) => None,
        (Target::Local(b), false) => {
            check_fault_nodes(&workload.faults, b.size())?;
            Some(faults::Timeline::new(&workload.faults, &bootstrap, &topic))
        }
        (Target::External { .. }, false) => {
            return Err(usage!(
                "--fault: faults need brokers klab started itself; it does not own the one at {bootstrap}"
            ));
        }
    };
    // When the measured window starts, on the run's clock (set when the
    // producers start).
    let mut window_start: Option<Duration> = None;
    // (when, compiler CPU seconds) samples of the brokers' JIT.
    let mut jit: std::collections::VecDeque<(Instant, f64)> = Default::default();
    let started_at = Instant::now();
    let mut last_second = Instant::now();
    // The counts at the last `Second` event, for its rates, and the last
    // second of latency it reported.
    let mut last_counts = (0u64, 0u64, 0u64);
    let mut last_latency_second: Option<u64> = None;

    let mut broker_died: Option<anyhow::Error> = None;
    // Nodes killed from outside while the others carried on (a sentence each).
    let mut outside_deaths: Vec<String> = Vec::new();
    // CPU from the window's start until the producers are done.
    let broker_pids = |t: &Target| match t {
        Target::Local(b) => b.nodes().iter().filter_map(|n| n.pid()).collect(),
        Target::External { .. } => Vec::new(),
    };
    let mut cpu_start: Option<CpuSampler> = None;
    let mut cpu: Option<crate::model::CpuUse> = None;
    let (preport, creport): (Result<ProducerReport>, Result<ConsumerReport>) = std::thread::scope(
        |s| {
            let c = s.spawn(|| consumer::run(&cspec, &clock, &cancel, &handle));
            // Start producing only once the consumer is assigned.
            let ready_deadline = Instant::now() + Duration::from_secs(30);
            while !handle.is_ready() && !c.is_finished() && Instant::now() < ready_deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if !handle.is_ready() {
                cancel.cancel("the consumer did not start within 30s");
            }
            window_start = Some(clock.elapsed() + workload.warmup);
            let p = s.spawn(|| {
                let r = producer::run_all(&pspecs, &clock, &cancel, &progress);
                handle.producers_done();
                r
            });
            // Watch the broker and draw progress until everyone is done.
            let catch_up = opts.catch_up.unwrap_or_else(|| catch_up_limit(workload));
            let mut producers_end: Option<Instant> = None;
            while !(p.is_finished() && c.is_finished()) {
                if p.is_finished()
                    && cpu.is_none()
                    && let Some(c0) = &cpu_start
                {
                    cpu = c0.finish(&broker_pids(target));
                }
                if p.is_finished() && !cancel.is_cancelled() {
                    let end = *producers_end.get_or_insert_with(Instant::now);
                    if opts.throwaway {
                        cancel.cancel("a throw-away load: the consumer is not waited for");
                    } else if end.elapsed() >= catch_up {
                        cancel.cancel(format!(
                            "the consumer fell behind: {} records read {}s after the producers were done, and the end-of-run markers not yet reached (the broker serves reads slower than it takes writes)",
                            handle.consumed(),
                            catch_up.as_secs()
                        ));
                    }
                }
                if let Target::Local(b) = target
                    && broker_died.is_none()
                    && let Some((id, status)) = b.died()
                {
                    if let Some(note) = faults::outside_death(b, id, status) {
                        outside_deaths.push(note);
                    } else {
                        let err = b.death_report(Some(status));
                        cancel.cancel(format!("{err:#}"));
                        broker_died = Some(err);
                    }
                }
                if let (Some(tl), Target::Local(b), Some(ws)) =
                    (timeline.as_mut(), &mut *target, window_start)
                    && let Some(t) = clock.elapsed().checked_sub(ws)
                    && !cancel.is_cancelled()
                {
                    tl.tick(t, b);
                }
                if opts.until_jit_settles
                    && let Target::Local(b) = target
                    && let Some(cpu) = b.jit_cpu_s()
                {
                    let t = Instant::now();
                    jit.push_back((t, cpu));
                    while jit.len() > 1 && t - jit[1].0 >= JIT_LOOKBACK {
                        jit.pop_front();
                    }
                    if let Some((t0, c0)) = jit.front()
                        && t - *t0 >= JIT_LOOKBACK
                        && started_at.elapsed() >= JIT_MIN
                        && cpu - c0 < JIT_SETTLED.as_secs_f64()
                        && !cancel.is_cancelled()
                    {
                        cancel.cancel(format!(
                            "{JIT_SETTLED_REASON} {:.0}s",
                            started_at.elapsed().as_secs_f64()
                        ));
                        tracing::info!("JIT warm-up: settled after {:.0?}", started_at.elapsed());
                    }
                }
                let now = sum_progress(&progress);
                if now.measuring && !measuring {
                    measuring = true;
                    cpu_start = Some(CpuSampler::start(&broker_pids(target)));
                    events::emit(Event::Measuring {
                        bootstrap: bootstrap.clone(),
                        topic: topic.clone(),
                    });
                }
                if last_second.elapsed() >= Duration::from_secs(1) {
                    let dt = last_second.elapsed().as_secs_f64();
                    last_second = Instant::now();
                    let consumed = handle.consumed();
                    let live = handle.live();
                    // Latency only for a second not reported before: while
                    // nothing arrives, the chart shows a gap, not old values.
                    let fresh = live.second.is_some() && live.second != last_latency_second;
                    last_latency_second = live.second;
                    let rate = |now: u64, before: u64| now.saturating_sub(before) as f64 / dt;
                    let (s0, a0, c0) = last_counts;
                    last_counts = (now.sent, now.acked, consumed);
                    events::emit(Event::Second {
                        bootstrap: bootstrap.clone(),
                        topic: topic.clone(),
                        t_s: started_at.elapsed().as_secs_f64(),
                        measuring: now.measuring,
                        sent: now.sent,
                        acked: now.acked,
                        consumed,
                        due: now.due.max(now.sent),
                        sent_per_s: rate(now.sent, s0),
                        acked_per_s: rate(now.acked, a0),
                        consumed_per_s: rate(consumed, c0),
                        e2e_p50_ms: fresh.then_some(live.p50_ms),
                        e2e_p99_ms: fresh.then_some(live.p99_ms),
                        e2e_max_ms: fresh.then_some(live.max_ms),
                        publish_p99_ms: now.publish_p99_ms,
                        e2e_buckets: live.buckets,
                        e2e_sum_s: live.sum_s,
                    });
                }
                bar.update(&now, handle.consumed());
                std::thread::sleep(Duration::from_millis(100));
            }
            // The consumer may reach the end markers before the loop looks
            // again: the producers are done by now either way.
            if cpu.is_none()
                && let Some(c0) = &cpu_start
            {
                cpu = c0.finish(&broker_pids(target));
            }
            let pr = p
                .join()
                .map_err(|_| anyhow!("the producer threads panicked"))
                .and_then(|r| r);
            let cr = c
                .join()
                .map_err(|_| anyhow!("the consumer thread panicked"))
                .and_then(|r| r);
            (pr, cr)
        },
    );
    bar.finish();
    let fault_records = timeline.map(faults::Timeline::finish);
    let nodes_went_down = fault_records.is_some() || !outside_deaths.is_empty();
    if nodes_went_down
        && let Target::Local(b) = target
        && broker_died.is_none()
        && !crate::cancel::interrupted()
        && let Err(e) = b.heal()
    {
        tracing::warn!("bringing the cluster back after the faults: {e:#}");
    }

    // After faults, and with the cluster whole again: is every acknowledged
    // record still in the topic? (Before the topic goes.)
    let log_check = if nodes_went_down
        && broker_died.is_none()
        && !opts.throwaway
        && !cancel.is_cancelled()
        && !crate::cancel::interrupted()
    {
        let start = creport
            .as_ref()
            .map(|c| c.started_at.clone())
            .unwrap_or(cspec.start.clone());
        match consumer::read_back(&bootstrap, &topic, &start, n, secret, READ_BACK_TIMEOUT) {
            Ok((counts, complete)) => Some(LogCheck {
                read: counts.consumed,
                lost: counts.lost,
                duplicated: counts.duplicated,
                complete,
                lost_live: 0,
            }),
            Err(e) => {
                tracing::warn!("reading topic {topic} back after the faults: {e:#}");
                None
            }
        }
    } else {
        None
    };

    // A topic klab named itself is deleted after the step to free the disk;
    // one the user named (`--topic`) stays, even when klab created it.
    if created && workload.topic.is_none() && broker_died.is_none() && !crate::cancel::interrupted()
    {
        // A failure here does not change the measurement.
        if let Err(e) = admin.delete_topic(&topic) {
            tracing::warn!("could not delete topic {topic}: {e:#}");
        } else if let Target::Local(b) = target
            && !b.wait_topic_files_gone(&topic, Duration::from_secs(60))
        {
            tracing::warn!("the files of topic {topic} were still there after 60s");
        }
    }
    let preport = preport.context("producer")?;
    let creport = match creport {
        Ok(c) => c,
        Err(e) if cancel.is_cancelled() => {
            tracing::debug!("consumer ended early: {e:#}");
            ConsumerReport {
                stopped: cancel.reason(),
                ..Default::default()
            }
        }
        Err(e) => return Err(e.context("consumer")),
    };

    let mut reasons = Vec::new();
    if let Some(e) = &broker_died {
        reasons.push(format!("{e:#}"));
    } else if cancel.is_cancelled() {
        reasons.push(cancel.reason().unwrap_or_else(|| "cancelled".into()));
    }
    reasons.extend(outside_deaths);
    let p = ProducerOutcome::from_report(&preport, &clock);
    let c = ConsumerOutcome::from_report(&creport, &clock);
    let mut result = assemble(workload, &p, &c, reasons);
    let kind = match target {
        Target::Local(_) => TargetKind::Local,
        Target::External { .. } => TargetKind::Bootstrap,
    };
    if let Some(ws) = window_start {
        result.window_start_s = ws.as_secs_f64();
    }
    result.cpu = cpu;
    if let Some(mut lc) = log_check {
        lc.lost_live = result.lost;
        result.lost = result.lost.max(lc.lost);
        result.log_check = Some(lc);
    }
    if let (Some(mut records), Some(ws)) = (fault_records, window_start) {
        let start = ws.as_secs_f64();
        let end = start + workload.duration.unwrap_or_default().as_secs_f64();
        let per_second = crate::stats::windows::PerSecond {
            failed: preport.failed_per_second.clone(),
            duplicated: creport.duplicated_per_second.clone(),
            missing: creport.missing_per_second.clone(),
        };
        result.windows = crate::stats::windows::cut(
            &mut records,
            start,
            end,
            &preport.publish,
            &creport.e2e,
            &per_second,
        );
        result.recovery_s = records
            .iter()
            .map(|r| r.recovery_s)
            .collect::<Option<Vec<f64>>>()
            .and_then(|v| v.into_iter().reduce(f64::max));
        result.faults = records;
    }
    let final_latency = handle.live();
    events::emit(Event::StepEnd {
        lab: opts.lab.clone(),
        label,
        topic: topic.clone(),
        complete: result.complete,
        records_per_s: result.throughput.msgs_per_s,
        e2e_p99_ms: result.e2e_latency_ms.p99,
        lost: result.lost,
        throwaway: opts.throwaway,
        duplicated: result.duplicated,
        e2e_p50_ms: result.e2e_latency_ms.p50,
        e2e_max_ms: result.e2e_latency_ms.max,
        publish_p99_ms: result.publish_latency_ms.p99,
        reason: result.reason.clone(),
        produced: result.produced,
        acked: result.acked,
        consumed: result.consumed,
        e2e_buckets: final_latency.buckets,
        e2e_sum_s: final_latency.sum_s,
    });
    if let Target::Local(b) = target {
        let from = p.window_start_ns / 1_000_000;
        let to = p.last_ack_ns.max(c.last_receive_ns) / 1_000_000;
        let per_node: Vec<crate::model::GcSummary> = b
            .gc_log_paths()
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .map(|log| crate::broker::gc::summary(&log, from, to))
            .collect();
        result.gc = crate::broker::gc::combine(&per_node);
    }
    stamp(&mut result, opts, kind, bootstrap, &effective, topic, env);
    Ok(Measurement {
        result,
        publish: preport.publish,
        e2e: creport.e2e,
        origin: clock.wall_origin(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producers_share_the_rate_and_the_messages() {
        let w = Workload {
            rate: Some(10_000.0),
            messages: Some(10),
            duration: None,
            producers: 3,
            ..Workload::default()
        };
        let shares: Vec<Workload> = (0..3).map(|j| share_of(&w, j, 3)).collect();
        // 10 records over 3 producers: 4, 3, 3 (none lost, none twice).
        let counts: Vec<u64> = shares.iter().map(|s| s.messages.unwrap()).collect();
        assert_eq!(counts, [4, 3, 3]);
        for s in &shares {
            assert!((s.rate.unwrap() - 10_000.0 / 3.0).abs() < 1e-9);
        }
        let max = Workload {
            rate: None,
            ..w.clone()
        };
        assert_eq!(share_of(&max, 1, 3).rate, None);
    }

    #[test]
    fn replication_follows_the_cluster() {
        let w = Workload::default();
        assert_eq!(replication_of(&w, 1).unwrap(), (1, None));
        assert_eq!(replication_of(&w, 5).unwrap(), (3, None));
        let w = Workload {
            replication_factor: Some(3),
            min_insync_replicas: Some(2),
            ..Workload::default()
        };
        assert_eq!(replication_of(&w, 3).unwrap(), (3, Some(2)));
        let e = replication_of(&w, 1).unwrap_err();
        assert!(
            crate::error::is_usage(&e) && e.to_string().contains("1 broker"),
            "{e}"
        );
        let w = Workload {
            min_insync_replicas: Some(2),
            ..Workload::default()
        };
        assert!(replication_of(&w, 1).is_err());
    }

    #[test]
    fn fresh_topics_are_valid_and_differ() {
        let (a, b) = (fresh_topic(), fresh_topic());
        assert_ne!(a, b);
        assert!(crate::model::check_topic_name(&a).is_ok());
    }
}
