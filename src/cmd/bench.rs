//! `klab bench`: klab against Kafka's own perf tools on one local broker.

use super::Outcome;
use crate::bench::{self, BenchOptions};
use crate::broker::kafka_home::KafkaHome;
use crate::cli::BenchArgs;
use crate::model::BrokerConfig;
use crate::stats::report::{check_writable, new_run_dir};
use crate::usage;
use anyhow::{Context, Result};

pub fn execute(args: &BenchArgs) -> Result<Outcome> {
    if let Some(j) = &args.json {
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
    let show = crate::stats::progress::Progress::detect(args.quiet);
    opts.progress = show;

    let kafka = KafkaHome::locate(args.kafka.kafka_home.as_deref())?;
    kafka.check_tools()?;
    crate::broker::kafka_home::java()?;
    let run_dir = new_run_dir(&args.results)?;
    let mut broker = super::start_local_broker(
        show,
        kafka,
        run_dir.join("broker"),
        BrokerConfig::default(),
        1,
    )?;
    let report = bench::run(&mut broker, &opts);
    broker.stop().context("stopping the broker")?;
    let report = report?;

    bench::save(&report, &run_dir.join("bench.json"))?;
    if let Some(j) = &args.json {
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
