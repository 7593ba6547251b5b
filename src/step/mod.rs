//! One measurement: put a workload on a broker and return a [`StepResult`].
//! `klab run`, the labs, the tuner and the bench all measure through
//! [`measure`], so there is one place where a measurement happens.
//!
//! A step is a short sequence over two interfaces: the broker side
//! ([`side::BrokerSide`]: what the measured cluster offers while a load runs)
//! and the load ([`driver::LoadDriver`]: what makes the records). While the
//! load runs, a list of watchers ([`watch`]) each look at it about ten times
//! a second: faults on the window's timeline, a node that died, the JIT,
//! CPU, the live view's seconds, the catch-up limit, the progress bar.

pub mod cluster;
pub mod consumers;
pub mod driver;
pub mod faults;
pub mod side;
pub mod watch;

use crate::broker::admin::Admin;
use crate::broker::kafka_home::store_path_of;
use crate::broker::knobs;
use crate::events::{self, Event};
use crate::load::consumer;
use crate::load::outcome::assemble;
use crate::load::payload::Secret;
use crate::model::{
    Applied, BrokerConfig, BrokerReport, EffectiveValue, Environment, LogCheck, StepResult,
    TargetKind, Workload,
};
use crate::stats::progress::{ProducerProgress, Progress};
use crate::stats::report::Measurement;
use crate::usage;
use anyhow::Result;
use driver::{LoadDriver, LoadOutcome, ThreadLoad};
use side::BrokerSide;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;
use watch::{Verdicts, Watcher};

pub use side::External;
pub use watch::{JIT_LOOKBACK, JIT_MIN, JIT_SETTLED, JIT_SETTLED_REASON};

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
fn catch_up_limit(w: &Workload) -> Duration {
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

/// Measures `workload` against `side`.
///
/// Returns a result even when the run could not finish (broker died,
/// Ctrl-C): it is then marked `complete: false` with the reason, and holds
/// everything measured up to that point.
pub fn measure(
    side: &mut dyn BrokerSide,
    workload: &Workload,
    secret: &Secret,
    opts: &StepOptions,
) -> Result<Measurement> {
    workload.validate().map_err(|e| usage!("workload {e}"))?;
    side.check_faults(&workload.faults)?;
    side.set_network(workload.network.as_ref())?;
    let bootstrap = side.bootstrap();
    let client_bootstrap = side.client_bootstrap();
    // Its own admin client, so `side` stays free for the watchers.
    let admin = Admin::connect(&bootstrap)?;
    let (replication, min_isr) = replication_of(workload, side.brokers(&admin)?)?;
    let (topic, created) = prepare_topic(&admin, workload, replication, min_isr)?;
    let effective = side.effective();
    let versions = side.versions();
    let env = environment(versions.kafka, versions.java, versions.kafka_dir.as_deref());

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
    // A topic klab did not just create may hold an earlier load's records
    // and end-of-run markers: this step reads only what it writes.
    let start = match created {
        true => consumer::StartAt::Beginning,
        false => consumer::StartAt::End,
    };
    let mut load: Box<dyn LoadDriver> = Box::new(ThreadLoad::new(
        &client_bootstrap,
        &topic,
        workload,
        secret,
        replication > 1,
        start,
    ));
    let mut watchers = watchers(
        opts,
        workload,
        &bootstrap,
        &topic,
        replication > 1,
        load.members(),
    );
    load.start()?;
    let verdicts = watch_until_done(&mut *load, side, &mut watchers);
    let cancelled = load.cancelled();
    let stop_reason = load.reason();
    // Every record's latency bucket, warm-up included (the live view's).
    let final_live = load.snapshot().live;
    let outcome = load.finish()?;
    let mut findings = StepResult::default();
    for w in &mut watchers {
        w.finish(side, &outcome, &mut findings);
    }
    let died = verdicts.broker_died;
    // Nodes that died by themselves while the cluster carried on are healed
    // and read back after, as faults are.
    let outside = verdicts.outside_deaths;
    let faulted = !findings.faults.is_empty() || !workload.faults.is_empty() || !outside.is_empty();
    let interrupted = crate::cancel::interrupted();
    if faulted
        && died.is_none()
        && !interrupted
        && let Err(e) = side.heal()
    {
        tracing::warn!("bringing the cluster back after the faults: {e:#}");
    }
    // After faults, and with the cluster whole again: is every acknowledged
    // record still in the topic? (Before the topic goes.)
    let log_check = (faulted && died.is_none() && !opts.throwaway && !cancelled && !interrupted)
        .then(|| read_back(&bootstrap, &topic, &outcome.started_at, workload, secret))
        .flatten();
    // A topic klab named itself is deleted after the step to free the disk;
    // one the user named (`--topic`) stays, even when klab created it.
    if created && workload.topic.is_none() && died.is_none() && !interrupted {
        // A failure here does not change the measurement.
        match admin.delete_topic(&topic) {
            Err(e) => tracing::warn!("could not delete topic {topic}: {e:#}"),
            Ok(()) => side.topic_deleted(&topic),
        }
    }

    let mut reasons = Vec::new();
    if let Some(e) = died {
        reasons.push(e);
    } else if cancelled {
        reasons.push(stop_reason.unwrap_or_else(|| "cancelled".into()));
    }
    reasons.extend(outside);
    let mut result = assemble(workload, &outcome.producer, &outcome.consumer, reasons);
    result.window_start_s = outcome.window_start.as_secs_f64();
    result.cpu = findings.cpu;
    result.cluster = findings.cluster;
    result.acked_alone = findings.acked_alone;
    if let Some(mut lc) = log_check {
        lc.lost_live = result.lost;
        result.lost = result.lost.max(lc.lost);
        result.log_check = Some(lc);
    }
    cut_windows(&mut result, findings.faults, workload, &outcome);
    emit_step_end(opts, label, &topic, &result, final_live);
    let from = outcome.producer.window_start_ns / 1_000_000;
    let to = outcome
        .producer
        .last_ack_ns
        .max(outcome.consumer.last_receive_ns)
        / 1_000_000;
    result.gc = side.gc(from, to);
    stamp(
        &mut result,
        opts,
        side.kind(),
        bootstrap,
        &effective,
        topic,
        env,
    );
    Ok(Measurement {
        result,
        publish: outcome.producer.publish,
        e2e: outcome.consumer.e2e,
        origin: std::time::UNIX_EPOCH + outcome.origin,
    })
}

/// The step's topic: the one the workload names (created if missing, and
/// refused if it has too few partitions), else a fresh one. Whether klab
/// created it.
fn prepare_topic(
    admin: &Admin,
    workload: &Workload,
    replication: i32,
    min_isr: Option<u32>,
) -> Result<(String, bool)> {
    let create =
        |t: &str| admin.create_replicated_topic(t, workload.partitions, replication, min_isr);
    match &workload.topic {
        Some(t) => match admin.topic_partitions(t)? {
            Some(n) if (n as i32) < workload.partitions => Err(usage!(
                "--topic {t} has {n} partition(s) but the workload wants {}; use another topic or --partitions {n}",
                workload.partitions
            )),
            Some(_) => Ok((t.clone(), false)),
            None => {
                create(t)?;
                Ok((t.clone(), true))
            }
        },
        None => {
            let t = fresh_topic();
            create(&t)?;
            Ok((t, true))
        }
    }
}

/// The watchers of a step, in the order they look.
fn watchers(
    opts: &StepOptions,
    workload: &Workload,
    bootstrap: &str,
    topic: &str,
    replicated: bool,
    members: Option<crate::load::group::Members>,
) -> Vec<Box<dyn Watcher>> {
    let catch_up = opts.catch_up.unwrap_or_else(|| catch_up_limit(workload));
    let mut w: Vec<Box<dyn Watcher>> = vec![
        Box::new(watch::CatchUp::new(catch_up, opts.throwaway)),
        Box::new(watch::NodeDeath::default()),
    ];
    if replicated && !opts.throwaway {
        w.push(Box::new(cluster::ClusterWatch::start(bootstrap, topic)));
    }
    if !workload.faults.is_empty() {
        w.push(Box::new(watch::Faults::new(
            faults::Timeline::new(&workload.faults, bootstrap, topic).with_members(members),
        )));
    }
    if opts.until_jit_settles {
        w.push(Box::new(watch::JitSettle::default()));
    }
    w.push(Box::new(watch::Cpu::default()));
    w.push(Box::new(watch::Seconds::new(bootstrap, topic)));
    w.push(Box::new(watch::Bar(crate::stats::progress::StepBar::new(
        opts.progress,
        &opts.title,
        workload,
    ))));
    w
}

/// Ticks every watcher about ten times a second until the load has ended;
/// a watcher's reason to stop stops the load.
fn watch_until_done(
    load: &mut dyn LoadDriver,
    side: &mut dyn BrokerSide,
    watchers: &mut [Box<dyn Watcher>],
) -> Verdicts {
    let mut all = Verdicts::default();
    while !load.finished() {
        let snapshot = load.snapshot();
        let t = load.elapsed();
        let tick = watch::Tick {
            t,
            window: load.window_start().and_then(|ws| t.checked_sub(ws)),
            load: &snapshot,
            stopping: load.cancelled(),
        };
        let mut v = Verdicts::default();
        for w in watchers.iter_mut() {
            w.tick(&tick, side, &mut v);
        }
        if let Some(why) = v.stop {
            load.cancel(why);
        }
        if all.broker_died.is_none() {
            all.broker_died = v.broker_died;
        }
        all.outside_deaths.extend(v.outside_deaths);
        std::thread::sleep(Duration::from_millis(100));
    }
    all
}

/// The topic read again from where the step's consumer started (a fresh
/// group), after faults.
fn read_back(
    bootstrap: &str,
    topic: &str,
    start: &consumer::StartAt,
    w: &Workload,
    secret: &Secret,
) -> Option<LogCheck> {
    let producers = w.producers.max(1) as usize;
    match consumer::read_back(
        bootstrap,
        topic,
        start,
        producers,
        secret,
        READ_BACK_TIMEOUT,
    ) {
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
}

/// The faults' records into the result, with the window cut before,
/// during and after each, and the slowest recovery.
fn cut_windows(
    result: &mut StepResult,
    mut records: Vec<crate::model::FaultRecord>,
    workload: &Workload,
    outcome: &LoadOutcome,
) {
    if records.is_empty() {
        return;
    }
    let start = outcome.window_start.as_secs_f64();
    let end = start + workload.duration.unwrap_or_default().as_secs_f64();
    result.windows = crate::stats::windows::cut(
        &mut records,
        start,
        end,
        &outcome.producer.publish,
        &outcome.consumer.e2e,
        &outcome.per_second,
    );
    result.recovery_s = records
        .iter()
        .map(|r| r.recovery_s)
        .collect::<Option<Vec<f64>>>()
        .and_then(|v| v.into_iter().reduce(f64::max));
    result.faults = records;
}

fn emit_step_end(
    opts: &StepOptions,
    label: Option<String>,
    topic: &str,
    result: &StepResult,
    live: consumer::LiveLatency,
) {
    events::emit(Event::StepEnd {
        lab: opts.lab.clone(),
        label,
        topic: topic.to_string(),
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
        e2e_buckets: live.buckets,
        e2e_sum_s: live.sum_s,
        failed: result.failed,
        unsent: result.unsent,
    });
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
