//! `klab bench`: klab against Kafka's own perf tools on one local broker.

use super::Outcome;
use crate::bench::{self, BenchOptions};
use crate::broker::kafka_home::KafkaHome;
use crate::cli::BenchArgs;
use crate::model::BrokerConfig;
use crate::stats::report::check_writable;
use crate::usage;
use anyhow::{Context, Result};

pub fn execute(args: &BenchArgs) -> Result<Outcome> {
    if let Some(j) = &args.out.json {
        check_writable(j).map_err(|e| usage!("--json {}: {e}", j.display()))?;
    }
    let exe = std::env::current_exe().context("finding the klab binary to run")?;
    let mut opts = if args.quick {
        BenchOptions::quick(exe)
    } else {
        BenchOptions::full(exe)
    };
    if let Some(n) = args.runs {
        opts.pairs = n;
    }
    if let Some(n) = args.messages {
        opts.messages = n;
        opts.warmup_messages = opts.warmup_messages.min(n);
        opts.startup_messages = opts.startup_messages.min(n);
    }
    opts.rdkafka_performance = rdkafka_performance(args)?;
    let show = crate::stats::progress::Progress::detect(args.out.quiet);
    opts.progress = show;

    let kafka = KafkaHome::locate(args.kafka.kafka_home.as_deref())?;
    kafka.check_tools()?;
    let kafka_home = kafka.clone();
    let (run_dir, mut broker) =
        super::start_in_run_dir(kafka, &args.out, BrokerConfig::default(), 1, false)?;
    let report = bench::run(&mut broker, &opts);
    broker.stop().context("stopping the broker")?;
    let mut report = report?;
    let starts = args.startups.unwrap_or(if args.quick { 3 } else { 5 });
    for (key, nodes) in [("1_broker", 1), ("3_nodes", 3)] {
        let mut times = Vec::new();
        for i in 1..=starts {
            if crate::cancel::interrupted() {
                return Err(crate::error::Interrupted.into());
            }
            times.push(ready_time(show, &kafka_home, &run_dir, nodes, i)?);
        }
        if let Some(s) = crate::stats::Spread::of(&times) {
            report.ready_s.insert(key.to_string(), s);
        }
        report.ready_runs_s.insert(key.to_string(), times);
    }
    bench::summary::ready_goal(&mut report);

    bench::save(&report, &run_dir.join("bench.json"))?;
    if let Some(j) = &args.out.json {
        bench::save(&report, j)?;
    }
    crate::out!("{}", bench::report::table(&report));
    crate::outln!("results: {}", run_dir.display());
    let incomplete = report.incomplete().next().is_some();
    match bench::check_report(&report) {
        Ok(()) if !incomplete => Ok(Outcome::Done),
        Ok(()) => {
            crate::errln!(
                "klab: some runs were incomplete (see the table); their pairs are left out of the ratios"
            );
            Ok(Outcome::Incomplete)
        }
        Err(e) => {
            crate::errln!("klab: the bench has no usable ratios: {e:#}");
            Ok(Outcome::Incomplete)
        }
    }
}

/// Where librdkafka's benchmark is: `--rdkafka-performance`, else
/// `$KLAB_RDKAFKA_PERFORMANCE`, else where scripts/rdkafka-performance puts
/// it for klab's own librdkafka version. Missing: a usage error (exit 2)
/// before anything starts, saying how to build it.
fn rdkafka_performance(args: &BenchArgs) -> Result<std::path::PathBuf> {
    let (_, version) = rdkafka::util::get_rdkafka_version();
    let (path, from) = match (
        &args.rdkafka_performance,
        std::env::var_os("KLAB_RDKAFKA_PERFORMANCE"),
    ) {
        (Some(p), _) => (p.clone(), "--rdkafka-performance"),
        (None, Some(p)) => (std::path::PathBuf::from(p), "$KLAB_RDKAFKA_PERFORMANCE"),
        (None, None) => match crate::lab::calibration::cache_dir() {
            Some(d) => (
                d.join(format!("rdkafka_performance-{version}"))
                    .join("rdkafka_performance"),
                "the klab cache",
            ),
            None => {
                return Err(usage!(
                    "rdkafka_performance: no cache directory (set HOME or KLAB_CACHE_DIR), and neither --rdkafka-performance nor $KLAB_RDKAFKA_PERFORMANCE is given"
                ));
            }
        },
    };
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(path),
        _ => Err(usage!(
            "rdkafka_performance (librdkafka {version}'s own benchmark, the bench's second producer peer) is not an executable at {} ({from}): build it with scripts/rdkafka-performance after cargo build --release, or pass --rdkafka-performance PATH",
            path.display()
        )),
    }
}

/// One cold start of a local cluster of `nodes` in its own directory:
/// seconds from the start to ready (every node answers metadata with every
/// broker), then stopped and its files removed.
fn ready_time(
    show: crate::stats::progress::Progress,
    kafka: &KafkaHome,
    run_dir: &std::path::Path,
    nodes: u32,
    i: usize,
) -> Result<f64> {
    let dir = run_dir.join(format!("startup-{nodes}-{i}"));
    let started = std::time::Instant::now();
    let mut b = super::start_local_broker(
        show,
        kafka.clone(),
        dir.clone(),
        BrokerConfig::default(),
        nodes,
        false,
    )?;
    let secs = started.elapsed().as_secs_f64();
    b.stop().context("stopping a start-up broker")?;
    // An empty cluster: nothing in it is worth keeping.
    let _ = std::fs::remove_dir_all(&dir);
    Ok(secs)
}
