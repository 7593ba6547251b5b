//! The load side of a step: what drives the records (the producers and
//! the verifying consumer) and what it tells the step while it runs. Here
//! they are threads of this process ([`ThreadLoad`]); a target whose load
//! runs elsewhere gives the same snapshots and outcomes.

use crate::cancel::Cancel;
use crate::load::clock::Clock;
use crate::load::consumer::{self, ConsumerHandle, ConsumerReport, ConsumerSpec, LiveLatency};
use crate::load::outcome::{ConsumerOutcome, ProducerOutcome};
use crate::load::payload::Secret;
use crate::load::producer::{self, ProducerReport, ProducerSpec};
use crate::model::Workload;
use crate::stats::progress::ProducerProgress;
use crate::stats::windows::PerSecond;
use anyhow::{Context, Result, anyhow};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The load at one instant, as the watchers see it.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The producers' progress added up.
    pub progress: ProducerProgress,
    /// Records the consumer verified so far.
    pub consumed: u64,
    /// The consumer's last full second of latency and its buckets.
    pub live: LiveLatency,
    /// Every producer has finished (or failed).
    pub producers_done: bool,
}

/// What a finished load hands the step.
#[derive(Default)]
pub struct LoadOutcome {
    pub producer: ProducerOutcome,
    pub consumer: ConsumerOutcome,
    /// Failed, duplicated and missing records per second of the run's
    /// clock (by due time), for the windows around faults.
    pub per_second: PerSecond,
    /// The run's clock, where `window_start` and the per-second keys count
    /// from (Unix time).
    pub origin: Duration,
    /// When the measured window began on that clock.
    pub window_start: Duration,
    /// Where the consumer started reading (a read-back of the same records
    /// starts there too).
    pub started_at: consumer::StartAt,
}

pub trait LoadDriver {
    /// Starts the consumer and, once it has its partitions (at most 30 s
    /// later), the producers. The measured window begins a warm-up after.
    fn start(&mut self) -> Result<()>;
    /// Time since the load's clock began.
    fn elapsed(&self) -> Duration;
    /// When the measured window begins on that clock (after `start`).
    fn window_start(&self) -> Option<Duration>;
    fn snapshot(&self) -> Snapshot;
    /// Everything has ended (producers and consumer).
    fn finished(&self) -> bool;
    /// Asks everything to stop; the first reason wins.
    fn cancel(&self, reason: String);
    fn cancelled(&self) -> bool;
    fn reason(&self) -> Option<String>;
    /// The load's consumer group, for consumer events on the timeline
    /// (None: its consumers are not a group this process can reach).
    fn members(&self) -> Option<crate::load::group::Members> {
        None
    }
    /// Waits for the end and hands the outcome over. A consumer that was
    /// stopped (by a watcher, Ctrl-C) is an outcome, not an error.
    fn finish(self: Box<Self>) -> Result<LoadOutcome>;
}

/// Producers and the consumer as threads of this process, each with its own
/// client.
pub struct ThreadLoad {
    pspecs: Arc<Vec<ProducerSpec>>,
    cspec: Arc<ConsumerSpec>,
    warmup: Duration,
    clock: Clock,
    cancel: Cancel,
    handle: ConsumerHandle,
    progress: Arc<Vec<Mutex<ProducerProgress>>>,
    consumer: Option<JoinHandle<Result<ConsumerReport>>>,
    producers: Option<JoinHandle<Result<ProducerReport>>>,
    window_start: Option<Duration>,
}

impl ThreadLoad {
    /// `n` producers sharing the workload's rate, and one consumer (with
    /// the workload's consumer clients) verifying everything on `topic`
    /// from `start`.
    pub fn new(
        bootstrap: &str,
        topic: &str,
        workload: &Workload,
        secret: &Secret,
        replicated: bool,
        start: consumer::StartAt,
    ) -> ThreadLoad {
        let n = workload.producers.max(1) as usize;
        let pspecs: Vec<ProducerSpec> = (0..n)
            .map(|j| ProducerSpec {
                replicated,
                index: j as u32,
                ..ProducerSpec::new(
                    bootstrap,
                    topic,
                    crate::step::share_of(workload, j, n),
                    secret.clone(),
                )
            })
            .collect();
        let mut cspec = ConsumerSpec::new(bootstrap, topic, secret.clone());
        cspec.producers = n;
        cspec.consumers = workload.consumers.max(1) as usize;
        cspec.processing = workload.processing;
        cspec.settings = workload.consumer.clone().into_iter().collect();
        cspec.drain_timeout = Duration::from_secs(30);
        cspec.start = start;
        cspec.group = workload.group.map(|g| (g, workload.assignor));
        ThreadLoad {
            pspecs: Arc::new(pspecs),
            cspec: Arc::new(cspec),
            warmup: workload.warmup,
            clock: Clock::new(),
            cancel: Cancel::new(),
            handle: ConsumerHandle::default(),
            progress: Arc::new(
                (0..n)
                    .map(|_| Mutex::new(ProducerProgress::default()))
                    .collect(),
            ),
            consumer: None,
            producers: None,
            window_start: None,
        }
    }

    fn is_done(h: &Option<JoinHandle<impl Send>>) -> bool {
        h.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

impl LoadDriver for ThreadLoad {
    fn start(&mut self) -> Result<()> {
        let (cspec, clock, cancel, handle) = (
            Arc::clone(&self.cspec),
            self.clock,
            self.cancel.clone(),
            self.handle.clone(),
        );
        let c = std::thread::Builder::new()
            .name("klab-consumer".into())
            .spawn(move || consumer::run(&cspec, &clock, &cancel, &handle))
            .context("starting the consumer thread")?;
        // Start producing only once the consumer is assigned.
        let ready_deadline = Instant::now() + Duration::from_secs(30);
        while !self.handle.is_ready() && !c.is_finished() && Instant::now() < ready_deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !self.handle.is_ready() {
            self.cancel.cancel("the consumer did not start within 30s");
        }
        self.consumer = Some(c);
        self.window_start = Some(self.clock.elapsed() + self.warmup);
        let (pspecs, clock, cancel, handle, progress) = (
            Arc::clone(&self.pspecs),
            self.clock,
            self.cancel.clone(),
            self.handle.clone(),
            Arc::clone(&self.progress),
        );
        let p = std::thread::Builder::new()
            .name("klab-producers".into())
            .spawn(move || {
                let r = producer::run_all(&pspecs, &clock, &cancel, &progress);
                handle.producers_done();
                r
            })
            .context("starting the producer threads")?;
        self.producers = Some(p);
        Ok(())
    }

    fn elapsed(&self) -> Duration {
        self.clock.elapsed()
    }

    fn window_start(&self) -> Option<Duration> {
        self.window_start
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            progress: crate::step::sum_progress(&self.progress),
            consumed: self.handle.consumed(),
            live: self.handle.live(),
            producers_done: self.producers.is_some() && Self::is_done(&self.producers),
        }
    }

    fn finished(&self) -> bool {
        Self::is_done(&self.producers) && Self::is_done(&self.consumer)
    }

    fn cancel(&self, reason: String) {
        self.cancel.cancel(reason);
    }

    fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    fn reason(&self) -> Option<String> {
        self.cancel.reason()
    }

    fn members(&self) -> Option<crate::load::group::Members> {
        self.cspec
            .group
            .is_some()
            .then(|| self.handle.members.clone())
    }

    fn finish(mut self: Box<Self>) -> Result<LoadOutcome> {
        let preport = joined(self.producers.take(), "producer threads", "producers");
        let creport = joined(self.consumer.take(), "consumer thread", "consumer");
        let preport = preport.context("producer")?;
        let creport = match creport {
            Ok(c) => c,
            Err(e) if self.cancel.is_cancelled() => {
                tracing::debug!("consumer ended early: {e:#}");
                ConsumerReport {
                    stopped: self.cancel.reason(),
                    ..Default::default()
                }
            }
            Err(e) => return Err(e.context("consumer")),
        };
        let per_second = PerSecond {
            failed: preport.failed_per_second.clone(),
            duplicated: creport.duplicated_per_second.clone(),
            missing: creport.missing_per_second.clone(),
            acked_by_partition: preport.acked_by_second.clone(),
        };
        Ok(LoadOutcome {
            producer: ProducerOutcome::from_report(&preport, &self.clock),
            consumer: ConsumerOutcome::from_report(&creport, &self.clock),
            per_second,
            origin: self
                .clock
                .wall_origin()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default(),
            window_start: self.window_start.unwrap_or_default(),
            started_at: creport.started_at.clone(),
        })
    }
}

/// What a load thread returned: an error when it panicked (`what`
/// panicked) or never started (`who` never started).
fn joined<T>(handle: Option<JoinHandle<Result<T>>>, what: &str, who: &str) -> Result<T> {
    match handle {
        Some(h) => h
            .join()
            .map_err(|_| anyhow!("the {what} panicked"))
            .and_then(|r| r),
        None => Err(anyhow!("the {who} never started")),
    }
}

impl Drop for ThreadLoad {
    /// A load dropped before [`LoadDriver::finish`] (an error on the way)
    /// stops its threads and waits for them: no client outlives its step.
    fn drop(&mut self) {
        if self.producers.is_some() || self.consumer.is_some() {
            self.cancel.cancel("the step ended");
            self.handle.producers_done();
            if let Some(p) = self.producers.take() {
                let _ = p.join();
            }
            if let Some(c) = self.consumer.take() {
                let _ = c.join();
            }
        }
    }
}
