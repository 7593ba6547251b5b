//! Running the tools: klab's producer and consumer as child processes (and
//! its open loop through [`crate::step::measure`]), and Kafka's own
//! ProducerPerformance, ConsumerPerformance and EndToEndLatency, each on a
//! fresh topic, with the CPU they and the broker used.

use super::child::{self, CpuWatch, per_record_us};
use super::model::{BenchOptions, BenchReport, JitWarmUp, Latency, Phase, Run, Side, Test};
use super::parse;
use super::summary::summarize;
use super::tools::{Tools, command_line};
use crate::broker::admin::Admin;
use crate::broker::local::LocalBroker;
use crate::load::outcome::{ConsumerOutcome, ProducerOutcome, last_json};
use crate::load::payload::Secret;
use crate::model::{Acks, Workload};
use crate::stats::progress::Progress;
use crate::stats::report::Measurement;
use crate::step::{self, StepOptions};
use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

const CHILD_TIMEOUT: Duration = Duration::from_secs(600);

struct Bench<'a> {
    broker: &'a mut LocalBroker,
    admin: Admin,
    opts: &'a BenchOptions,
    tools: Tools,
    secret: Secret,
    bar: Option<ProgressBar>,
    runs: Vec<Run>,
    seq: u32,
}

impl Bench<'_> {
    fn step(&self, msg: String) {
        match &self.bar {
            Some(b) => b.set_message(msg),
            None => self.opts.progress.say(&format!("bench: {msg}")),
        }
    }

    fn advance(&self) {
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }

    fn check_interrupt(&self) -> Result<()> {
        if crate::cancel::interrupted() {
            return Err(crate::error::Interrupted.into());
        }
        Ok(())
    }

    fn topic(&mut self, what: &str) -> String {
        self.seq += 1;
        format!(
            "klab-bench-{}-{what}-{:04x}",
            self.seq,
            crate::random::u64() & 0xffff
        )
    }

    fn create(&mut self, what: &str) -> Result<String> {
        let t = self.topic(what);
        self.admin.create_topic(&t, self.opts.partitions)?;
        Ok(t)
    }

    fn delete(&self, topic: &str) {
        if let Err(e) = self.admin.delete_topic(topic) {
            tracing::warn!("could not delete topic {topic}: {e:#}");
        } else if !self
            .broker
            .wait_topic_files_gone(topic, Duration::from_secs(60))
        {
            tracing::warn!("the files of topic {topic} were still there after 60s");
        }
    }

    fn check_broker(&mut self) -> Result<()> {
        if let Some(status) = self.broker.exited() {
            return Err(self.broker.death_report(Some(status)));
        }
        Ok(())
    }

    fn base_run(&self, phase: Phase, pair: usize, test: Test, side: Side, tool: &str) -> Run {
        Run {
            phase,
            pair,
            test,
            side,
            tool: tool.to_string(),
            topic: String::new(),
            records: 0,
            wall_s: 0.0,
            records_per_s: 0.0,
            mb_per_s: 0.0,
            throughput_basis: String::new(),
            cpu_user_s: None,
            cpu_sys_s: None,
            cpu_per_record_us: None,
            broker_cpu_s: None,
            broker_cpu_per_record_us: None,
            host_busy: None,
            latency: None,
            complete: false,
            problem: None,
            detail: serde_json::Value::Null,
        }
    }

    /// Runs a child, filling the common figures of `run`.
    fn run_child(&mut self, mut cmd: Command, run: &mut Run) -> Result<child::ChildRun> {
        let watch = CpuWatch::start(self.broker);
        let out = child::run(&mut cmd, CHILD_TIMEOUT)?;
        let (broker_cpu, host) = watch.stop();
        self.check_interrupt()?;
        self.check_broker()?;
        run.wall_s = out.wall.as_secs_f64();
        run.cpu_user_s = Some(out.user_s);
        run.cpu_sys_s = Some(out.sys_s);
        run.broker_cpu_s = broker_cpu;
        run.host_busy = host;
        if !out.ok() {
            run.problem = Some(format!(
                "{} exited with status {}: {}",
                run.tool,
                out.status,
                out.stderr_tail(5)
            ));
        }
        Ok(out)
    }

    fn finish_counts(&self, run: &mut Run) {
        run.mb_per_s = run.records_per_s * self.opts.record_bytes as f64 / 1e6;
        run.cpu_per_record_us = per_record_us(
            run.cpu_user_s.zip(run.cpu_sys_s).map(|(u, s)| u + s),
            run.records,
        );
        run.broker_cpu_per_record_us = per_record_us(run.broker_cpu_s, run.records);
    }

    /// One run of a tool as a child process: `fill` reads its output into
    /// the run and says whether the output held a result at all (if not,
    /// the run's problem is `missing` and the end of its stderr); `basis`
    /// says how its records/s were counted.
    fn tool_run(
        &mut self,
        mut run: Run,
        topic: &str,
        cmd: Command,
        missing: &str,
        basis: &str,
        fill: impl FnOnce(&mut Run, &child::ChildRun) -> Result<bool>,
    ) -> Result<Run> {
        run.topic = topic.to_string();
        let out = self.run_child(cmd, &mut run)?;
        if !fill(&mut run, &out)? {
            run.problem
                .get_or_insert_with(|| format!("{missing}: {}", out.stderr_tail(5)));
        }
        run.throughput_basis = basis.into();
        self.finish_counts(&mut run);
        Ok(run)
    }

    fn klab_producer(&mut self, phase: Phase, pair: usize, topic: &str, n: u64) -> Result<Run> {
        let run = self.base_run(phase, pair, Test::Producer, Side::Klab, "klab produce");
        let cmd = self.tools.klab_producer_cmd(topic, n);
        let basis = "acked records / (last ack - first send)";
        self.tool_run(
            run,
            topic,
            cmd,
            "klab produce printed no outcome",
            basis,
            |run, out| {
                let Some(o) = last_json::<ProducerOutcome>(&out.stdout) else {
                    return Ok(false);
                };
                let secs = o.last_ack_ns.saturating_sub(o.window_start_ns) as f64 / 1e9;
                run.records = o.acked_measured;
                run.records_per_s = if secs > 0.0 {
                    o.acked_measured as f64 / secs
                } else {
                    0.0
                };
                run.complete = out.ok() && o.failed == 0 && o.acked_measured == n;
                if !run.complete && run.problem.is_none() {
                    run.problem = Some(format!(
                        "acked {} of {n}, failed {}{}",
                        o.acked_measured,
                        o.failed,
                        o.first_error
                            .as_deref()
                            .map(|e| format!(" ({e})"))
                            .unwrap_or_default()
                    ));
                }
                run.detail = serde_json::json!({
                    "acked": o.acked,
                    "failed": o.failed,
                    "window_s": secs,
                    "publish_latency_ms": o.publish.percentiles(),
                });
                Ok(true)
            },
        )
    }

    fn peer_producer(&mut self, phase: Phase, pair: usize, topic: &str, n: u64) -> Result<Run> {
        let run = self.base_run(
            phase,
            pair,
            Test::Producer,
            Side::Peer,
            "ProducerPerformance",
        );
        let cmd = self.tools.peer_producer_cmd(topic, n);
        let missing = "no ProducerPerformance summary line in its output";
        let basis = "its own figure: records / (last completion - start of sending)";
        self.tool_run(run, topic, cmd, missing, basis, |run, out| {
            let Some(s) = parse::producer_performance(&out.stdout) else {
                return Ok(false);
            };
            run.records = s.records;
            run.records_per_s = s.records_per_s;
            run.complete = out.ok() && s.records == n;
            run.detail = serde_json::to_value(s)?;
            Ok(true)
        })
    }

    fn rdkafka_producer(&mut self, phase: Phase, pair: usize, topic: &str, n: u64) -> Result<Run> {
        let run = self.base_run(
            phase,
            pair,
            Test::Producer,
            Side::Rdkafka,
            "rdkafka_performance",
        );
        let cmd = self.tools.rdkafka_producer_cmd(topic, n);
        let missing = "no rdkafka_performance summary line in its output";
        let basis = "its own figure: delivered records / (last delivery report - first send)";
        self.tool_run(run, topic, cmd, missing, basis, |run, out| {
            let Some(s) = parse::rdkafka_performance(&out.stdout) else {
                return Ok(false);
            };
            run.records = s.delivered;
            run.records_per_s = s.records_per_s;
            run.complete = out.ok() && s.delivered == n && s.failed == 0;
            if !run.complete && run.problem.is_none() {
                run.problem = Some(format!(
                    "delivered {} of {n}, failed {}",
                    s.delivered, s.failed
                ));
            }
            run.detail = serde_json::to_value(s)?;
            Ok(true)
        })
    }

    fn klab_consumer(&mut self, phase: Phase, pair: usize, topic: &str, n: u64) -> Result<Run> {
        let run = self.base_run(phase, pair, Test::Consumer, Side::Klab, "klab consume");
        let cmd = self.tools.klab_consumer_cmd(topic);
        let basis = "records / wall time of the process (start-up and verification included)";
        self.tool_run(
            run,
            topic,
            cmd,
            "klab consume printed no outcome",
            basis,
            |run, out| {
                let Some(o) = last_json::<ConsumerOutcome>(&out.stdout) else {
                    return Ok(false);
                };
                run.records = o.consumed;
                run.records_per_s = o.consumed as f64 / run.wall_s.max(1e-9);
                run.complete = out.ok()
                    && o.finished
                    && o.consumed == n
                    && o.lost + o.corrupt + o.duplicated == 0;
                if !run.complete && run.problem.is_none() {
                    run.problem = Some(format!(
                        "consumed {} of {n}: lost {}, corrupt {}, duplicated {}, finished {}",
                        o.consumed, o.lost, o.corrupt, o.duplicated, o.finished
                    ));
                }
                run.detail = serde_json::json!({
                    "consumed": o.consumed, "lost": o.lost, "duplicated": o.duplicated,
                    "reordered": o.reordered, "corrupt": o.corrupt, "foreign": o.foreign,
                    "finished": o.finished,
                });
                Ok(true)
            },
        )
    }

    fn peer_consumer(&mut self, phase: Phase, pair: usize, topic: &str, n: u64) -> Result<Run> {
        let run = self.base_run(
            phase,
            pair,
            Test::Consumer,
            Side::Peer,
            "ConsumerPerformance",
        );
        let cmd = self.tools.peer_consumer_cmd(topic, n);
        let missing = "no ConsumerPerformance result line in its output";
        let basis =
            "its own fetch.nMsg.sec: records / fetch time (JVM start and group join excluded)";
        self.tool_run(run, topic, cmd, missing, basis, |run, out| {
            let Some(s) = parse::consumer_performance(&out.stdout) else {
                return Ok(false);
            };
            run.records = s.records;
            run.records_per_s = s.fetch_records_per_s;
            run.complete = out.ok() && s.records >= n;
            if !run.complete && run.problem.is_none() {
                run.problem = Some(format!("read {} of {n} records", s.records));
            }
            run.detail = serde_json::to_value(s)?;
            Ok(true)
        })
    }

    fn latency_run(&self, pair: usize, side: Side, tool: &str) -> Run {
        self.base_run(Phase::Measured, pair, Test::Latency, side, tool)
    }

    /// klab's open loop on one producer with acks=all, at the bench's
    /// record size, partitions and batch.size.
    fn open_loop(
        &self,
        rate: f64,
        duration: Duration,
        warmup: Duration,
        linger_ms: u32,
    ) -> Workload {
        let mut producer = BTreeMap::new();
        producer.insert("linger.ms".to_string(), linger_ms.to_string());
        producer.insert("batch.size".to_string(), self.opts.batch_size.to_string());
        Workload {
            rate: Some(rate),
            messages: None,
            duration: Some(duration),
            warmup,
            message_bytes: self.opts.record_bytes,
            partitions: self.opts.partitions,
            acks: Acks::All,
            producer,
            topic: None,
            producers: 1,
            ..Workload::default()
        }
    }

    /// One step on the bench's broker, which klab started.
    fn measure(&mut self, w: &Workload, opts: StepOptions) -> Result<Measurement> {
        let opts = StepOptions {
            applied: crate::model::Applied::Started,
            ..opts
        };
        step::measure(self.broker, w, &self.secret, &opts)
    }

    fn klab_latency(&mut self, pair: usize) -> Result<Run> {
        let mut run = self.latency_run(pair, Side::Klab, "klab (open loop)");
        // EndToEndLatency forces linger.ms=0 on its producer; so does klab here.
        let o = self.opts;
        let w = self.open_loop(o.latency_rate, o.latency_duration, o.latency_warmup, 0);
        let watch = CpuWatch::start(self.broker);
        let started = std::time::Instant::now();
        let m = self.measure(
            &w,
            StepOptions {
                label: Some(format!("bench latency pair {pair}")),
                ..Default::default()
            },
        )?;
        let (broker_cpu, host) = watch.stop();
        self.check_interrupt()?;
        let r = &m.result;
        run.topic = r.workload.topic.clone().unwrap_or_default();
        run.wall_s = started.elapsed().as_secs_f64();
        run.records = r.e2e_latency_ms.count;
        run.records_per_s = r.achieved_rate;
        run.broker_cpu_s = broker_cpu;
        run.host_busy = host;
        let e = r.e2e_latency_ms;
        run.latency = Some(Latency {
            p50_ms: e.p50,
            p99_ms: e.p99,
            p999_ms: e.p999,
            avg_ms: e.mean,
            max_ms: Some(e.max),
        });
        run.complete = r.complete && r.lost == 0 && r.corrupt == 0;
        run.problem = r.reason.clone();
        run.throughput_basis = "records offered per second of the measured window".into();
        run.detail = serde_json::json!({
            "target_rate": r.target_rate,
            "e2e_latency_ms": r.e2e_latency_ms,
            "publish_latency_ms": r.publish_latency_ms,
            "warmup_records": r.warmup_records,
            "lost": r.lost,
        });
        self.finish_counts(&mut run);
        Ok(run)
    }

    fn peer_latency(&mut self, pair: usize) -> Result<Run> {
        let mut run = self.latency_run(pair, Side::Peer, "EndToEndLatency (closed loop)");
        let topic = self.create("e2e-peer")?;
        run.topic = topic.clone();
        let out = self.run_child(self.tools.peer_latency_cmd(&topic), &mut run)?;
        match parse::end_to_end_latency(&out.stdout) {
            Some(s) => {
                run.records = self.opts.latency_messages_peer;
                // One record in flight: the rate is one per round trip.
                run.records_per_s = if s.avg_ms > 0.0 {
                    1000.0 / s.avg_ms
                } else {
                    0.0
                };
                run.latency = Some(Latency {
                    p50_ms: s.p50_ms,
                    p99_ms: s.p99_ms,
                    p999_ms: s.p999_ms,
                    avg_ms: s.avg_ms,
                    max_ms: None,
                });
                run.complete = out.ok();
                run.detail = serde_json::to_value(s)?;
            }
            None => {
                run.problem.get_or_insert_with(|| {
                    format!(
                        "no EndToEndLatency result in its output: {}",
                        out.stderr_tail(5)
                    )
                });
            }
        }
        run.throughput_basis = "1 / average round trip (closed loop)".into();
        // CPU of a closed loop at its own rate says little; keep it raw.
        self.finish_counts(&mut run);
        self.delete(&topic);
        Ok(run)
    }

    /// A throw-away load at half the rate klab reached in the warm-up pair,
    /// until the broker's JIT compilers settle, as a lab runs after every
    /// broker start: the warm-up pair alone is shorter than the JIT needs,
    /// and the first measured pair then met a broker still compiling (every
    /// tool was slowest in pair 1, which widened every min–max).
    fn jit_warm_up(&mut self) -> Result<JitWarmUp> {
        let rate = self
            .runs
            .iter()
            .find(|r| {
                r.phase == Phase::Warmup
                    && r.side == Side::Klab
                    && r.test == Test::Producer
                    && r.records_per_s > 0.0
            })
            .map_or(self.opts.latency_rate, |r| r.records_per_s / 2.0);
        let max = step::jit_warm_up_max();
        let w = self.open_loop(rate, max, Duration::ZERO, self.opts.linger_ms);
        self.step(format!(
            "broker JIT warm-up at {rate:.0} rec/s, not counted, until the JIT settles (at most {}s)",
            max.as_secs()
        ));
        let started = std::time::Instant::now();
        let m = self.measure(
            &w,
            StepOptions {
                label: Some("bench JIT warm-up".into()),
                throwaway: true,
                until_jit_settles: true,
                ..Default::default()
            },
        )?;
        self.check_interrupt()?;
        self.advance();
        let settled = m
            .result
            .reason
            .as_deref()
            .is_some_and(|r| r.contains(step::JIT_SETTLED_REASON));
        Ok(JitWarmUp {
            rate,
            seconds: started.elapsed().as_secs_f64(),
            max_s: max.as_secs_f64(),
            settled,
        })
    }

    fn push(&mut self, run: Run) {
        if let Some(p) = &run.problem {
            tracing::warn!("{} ({:?} {:?}): {p}", run.tool, run.phase, run.test);
        }
        self.runs.push(run);
        self.advance();
    }

    /// One producer + consumer pair of runs per side; `pair` 0 for the
    /// unmeasured phases.
    fn throughput_pair(&mut self, phase: Phase, pair: usize, n: u64) -> Result<()> {
        let label = match phase {
            Phase::Warmup => "warm-up".to_string(),
            Phase::Startup => "start-up cost".to_string(),
            Phase::Measured => format!("pair {pair}/{}", self.opts.pairs),
        };
        let tk = self.create("klab")?;
        self.step(format!("{label}: klab produce --max, {n} records"));
        let r = self.klab_producer(phase, pair, &tk, n)?;
        self.push(r);
        let tp = self.create("peer")?;
        self.step(format!("{label}: ProducerPerformance, {n} records"));
        let r = self.peer_producer(phase, pair, &tp, n)?;
        self.push(r);
        // librdkafka's own benchmark: its topic is only written.
        let tr = self.create("rdkafka")?;
        self.step(format!("{label}: rdkafka_performance, {n} records"));
        let r = self.rdkafka_producer(phase, pair, &tr, n)?;
        self.push(r);
        self.delete(&tr);
        self.step(format!("{label}: klab consume"));
        let r = self.klab_consumer(phase, pair, &tk, n)?;
        self.push(r);
        self.step(format!("{label}: ConsumerPerformance"));
        let r = self.peer_consumer(phase, pair, &tp, n)?;
        self.push(r);
        self.step(format!("{label}: deleting topics"));
        self.delete(&tk);
        self.delete(&tp);
        Ok(())
    }

    fn latency_pair(&mut self, pair: usize) -> Result<()> {
        let label = format!("pair {pair}/{}", self.opts.pairs);
        self.step(format!(
            "{label}: klab e2e latency at {:.0} rec/s",
            self.opts.latency_rate
        ));
        let r = self.klab_latency(pair)?;
        self.push(r);
        self.step(format!(
            "{label}: EndToEndLatency, {} records one at a time",
            self.opts.latency_messages_peer
        ));
        let r = self.peer_latency(pair)?;
        self.push(r);
        Ok(())
    }
}

/// Runs the whole bench against `broker` (a local broker klab started).
pub fn run(broker: &mut LocalBroker, opts: &BenchOptions) -> Result<BenchReport> {
    if opts.pairs == 0 {
        bail!("the bench needs at least one pair of runs");
    }
    let started_at = crate::stats::report::utc_now();
    let bootstrap = broker.bootstrap();
    let admin = Admin::connect(&bootstrap)?;
    let kafka = broker.kafka().clone();
    let log4j = kafka.dir.join("config/tools-log4j2.properties");
    let java = crate::broker::kafka_home::java()?;
    let secret_hex = crate::random::hex(32);
    let steps = (2 + opts.pairs) * 5 + opts.pairs * 2 + 1;
    let bar = (opts.progress == Progress::Bars).then(|| {
        let b = ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stderr());
        b.set_style(
            ProgressStyle::with_template(
                "{prefix:>8.bold} [{bar:25}] {pos}/{len} {msg} ({elapsed})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        b.set_prefix("bench");
        b.enable_steady_tick(Duration::from_millis(200));
        b
    });
    let mut b = Bench {
        admin,
        opts,
        tools: Tools {
            opts: opts.clone(),
            bootstrap: bootstrap.clone(),
            java,
            classpath: kafka.classpath(),
            log4j: if log4j.is_file() {
                log4j
            } else {
                broker.dir().join("log4j2.properties")
            },
            secret_hex: secret_hex.clone(),
        },
        secret: Secret::new(secret_hex.into_bytes()),
        bar,
        runs: Vec::new(),
        seq: 0,
        broker,
    };
    let mut jit = None;
    let result = (|| -> Result<()> {
        b.throughput_pair(Phase::Warmup, 0, opts.warmup_messages)?;
        jit = Some(b.jit_warm_up()?);
        b.throughput_pair(Phase::Startup, 0, opts.startup_messages)?;
        for pair in 1..=opts.pairs {
            b.throughput_pair(Phase::Measured, pair, opts.messages)?;
            b.latency_pair(pair)?;
        }
        Ok(())
    })();
    if let Some(bar) = &b.bar {
        bar.finish_and_clear();
    }
    result?;

    let mut peer_commands = BTreeMap::new();
    for (name, cmd) in [
        (
            "ProducerPerformance",
            b.tools.peer_producer_cmd("TOPIC", opts.messages),
        ),
        (
            "ConsumerPerformance",
            b.tools.peer_consumer_cmd("TOPIC", opts.messages),
        ),
        ("EndToEndLatency", b.tools.peer_latency_cmd("TOPIC")),
        (
            "rdkafka_performance",
            b.tools.rdkafka_producer_cmd("TOPIC", opts.messages),
        ),
        (
            "klab produce",
            b.tools.klab_producer_cmd("TOPIC", opts.messages),
        ),
        ("klab consume", b.tools.klab_consumer_cmd("TOPIC")),
    ] {
        peer_commands.insert(name.to_string(), command_line(&cmd));
    }
    let runs = std::mem::take(&mut b.runs);
    let mut report = BenchReport {
        klab_version: env!("CARGO_PKG_VERSION").to_string(),
        kafka_version: kafka.version.clone(),
        java_version: b.broker.java_version().to_string(),
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        started_at,
        finished_at: crate::stats::report::utc_now(),
        settings: opts.clone(),
        peer_commands,
        runs,
        summary: BTreeMap::new(),
        ratios: BTreeMap::new(),
        startup_cpu_s: BTreeMap::new(),
        jit_warm_up: jit,
        ready_s: BTreeMap::new(),
        ready_runs_s: BTreeMap::new(),
        goals: Vec::new(),
        notes: Vec::new(),
    };
    summarize(&mut report);
    Ok(report)
}
