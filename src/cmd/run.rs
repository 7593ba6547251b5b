//! `klab run`: one measurement.

use super::Outcome;
use crate::broker::kafka_home::KafkaHome;
use crate::cli::RunArgs;
use crate::load::payload::Secret;
use crate::model::Applied;
use crate::stats::report::{check_writable, new_run_dir};
use crate::stats::table::step_table;
use crate::step::side::BrokerSide;
use crate::step::{self, StepOptions};
use crate::usage;
use anyhow::{Context, Result};

pub fn execute(args: &RunArgs) -> Result<Outcome> {
    // Everything the user typed is checked before anything starts.
    let mut workload = args.workload.workload()?;
    workload.faults = args.faults.clone();
    workload.network = args.network().map_err(|e| usage!("{e}"))?;
    if workload.network.is_some() && args.bootstrap.is_none() {
        // A missing proxy is found before any broker starts.
        crate::net::Toxiproxy::binary()?;
    }
    workload
        .validate()
        .map_err(|e| usage!("{}", crate::cli::flagify(&e)))?;
    for (i, f) in workload.faults.iter().enumerate() {
        if let crate::model::FaultTarget::Node(n) = f.broker
            && n > args.brokers
        {
            return Err(usage!(
                "--fault (number {}) broker: {n} of {}; the cluster has brokers 1..={} (--brokers)",
                i + 1,
                args.brokers,
                args.brokers
            ));
        }
    }
    if let Some(rf) = workload.replication_factor
        && args.bootstrap.is_none()
        && rf > args.brokers
    {
        return Err(usage!(
            "--replication-factor {rf}: the cluster has {} broker(s) (--brokers)",
            args.brokers
        ));
    }
    let requested = args.broker.config()?;
    if let Some(j) = &args.out.json {
        check_writable(j).map_err(|e| usage!("--json {}: {e}", j.display()))?;
    }
    if args.kafka_offsets {
        if args.bootstrap.is_some() && workload.topic.is_none() {
            return Err(usage!(
                "--kafka-offsets reads the step's topic after the step: with --bootstrap, name it with --topic (klab deletes a topic it named itself)"
            ));
        }
        // A topic of the step's own, kept after it so its offsets can be
        // read (the broker's data goes when klab stops it).
        workload.topic.get_or_insert_with(step::fresh_topic);
        KafkaHome::locate(args.kafka.kafka_home.as_deref())?
            .check_tools()
            .map_err(|e| usage!("--kafka-offsets: {e}"))?;
    }
    let show = crate::stats::progress::Progress::detect(args.out.quiet);
    let secret = Secret::from_env_or_random()?;
    let _ui = super::start_ui(&args.ui)?;
    let run = |applied| StepOptions {
        progress: show,
        title: "run".into(),
        requested: requested.clone(),
        applied,
        ..Default::default()
    };

    if let Some(bootstrap) = &args.bootstrap {
        if !requested.is_empty() {
            return Err(usage!(
                "--heap and --broker-set change a broker klab starts itself; with --bootstrap {bootstrap} klab does not own the broker (drop them, or drop --bootstrap)"
            ));
        }
        if !workload.faults.is_empty() || args.brokers != 1 || workload.network.is_some() {
            return Err(usage!(
                "--fault, --net and --brokers act on brokers klab starts itself; with --bootstrap {bootstrap} klab does not own them"
            ));
        }
        super::check_bootstrap(bootstrap)?;
        let run_dir = new_run_dir(&args.out.results)?;
        let effective = crate::broker::external::ExternalBroker::connect(bootstrap)
            .map(|b| b.effective().clone())
            .unwrap_or_default();
        let mut target = step::External {
            bootstrap: bootstrap.clone(),
            effective,
        };
        let opts = run(Applied::External);
        let m = Offsets::around(args, bootstrap, &mut target, &workload, &secret, &opts)?;
        return finish(args, m, &run_dir);
    }

    let kafka = KafkaHome::locate(args.kafka.kafka_home.as_deref())?;
    let (run_dir, mut broker) = super::start_in_run_dir(
        kafka,
        &args.out,
        requested.clone(),
        args.brokers,
        workload.network.is_some(),
    )?;
    // A fresh JVM runs interpreted code for its first seconds: warm it up
    // the way the labs do after every (re)start, so the run measures the
    // broker and not its JIT compiler.
    let warm = StepOptions {
        progress: show,
        title: "JIT warm-up".into(),
        throwaway: true,
        until_jit_settles: true,
        ..Default::default()
    };
    let w = crate::lab::target::warm_up_workload(&workload, crate::step::jit_warm_up_max());
    let warmed = step::measure(&mut broker, &w, &secret, &warm);
    let opts = run(Applied::Started);
    let bootstrap = broker.bootstrap();
    let m = match warmed {
        Ok(_) if crate::cancel::interrupted() => Err(crate::error::Interrupted.into()),
        Ok(_) => Offsets::around(args, &bootstrap, &mut broker, &workload, &secret, &opts),
        Err(e) => Err(e),
    };
    broker.stop().context("stopping the broker")?;
    // The broker's data goes before the results are written: when a full
    // disk ended the run, that frees the room they need.
    drop(broker);
    finish(args, m?, &run_dir)
}

fn finish(
    args: &RunArgs,
    mut m: crate::stats::report::Measurement,
    run_dir: &std::path::Path,
) -> Result<Outcome> {
    m.save(&run_dir.join("result.json"))?;
    let series = crate::stats::plot::Series {
        label: "run".into(),
        kind: crate::stats::plot::Kind::Klab,
        timeline: &m.result.e2e_timeline,
        markers: crate::lab::summary::fault_markers(&m.result),
        changes: crate::lab::summary::change_markers(&m.result),
    };
    crate::stats::report::write_atomic(
        &run_dir.join("timeline.svg"),
        crate::stats::plot::timelines("klab run", &[series]).as_bytes(),
    )?;
    if let Some(j) = &args.out.json {
        m.save(j)?;
    }
    crate::out!("{}", step_table(&m.result));
    if let Some(c) = &m.result.log_check {
        crate::outln!(
            "read back after the faults: {} records, lost {}, duplicated {}, every end-of-run marker found: {}",
            c.read,
            c.lost,
            c.duplicated,
            if c.complete { "yes" } else { "no" }
        );
    }
    if let Some(o) = &m.result.kafka_offsets {
        crate::outln!("{}", o.describe());
    }
    crate::outln!("results: {}", run_dir.display());
    let o = Outcome::of(m.result.complete);
    if o == Outcome::Incomplete {
        crate::errln!(
            "klab: the run is incomplete: {}",
            m.result.reason.as_deref().unwrap_or("unknown reason")
        );
    }
    Ok(o)
}

/// `--kafka-offsets`: the topic's end offsets by Kafka's GetOffsetShell
/// before the step, to hold against them after it.
struct Offsets {
    check: Option<(std::path::PathBuf, KafkaHome, String, String)>,
    before: std::collections::BTreeMap<i32, i64>,
}

impl Offsets {
    fn before(args: &RunArgs, bootstrap: &str, w: &crate::model::Workload) -> Result<Offsets> {
        let (true, Some(topic)) = (args.kafka_offsets, w.topic.clone()) else {
            return Ok(Offsets {
                check: None,
                before: Default::default(),
            });
        };
        let java = crate::broker::kafka_home::java()?;
        let kafka = KafkaHome::locate(args.kafka.kafka_home.as_deref())?;
        let before = crate::broker::offsets::end_offsets(&java, &kafka, bootstrap, &topic)?;
        Ok(Offsets {
            check: Some((java, kafka, bootstrap.to_string(), topic)),
            before,
        })
    }

    /// The step measured between a reading of the offsets before it and
    /// one after it.
    fn around(
        args: &RunArgs,
        bootstrap: &str,
        side: &mut dyn BrokerSide,
        workload: &crate::model::Workload,
        secret: &Secret,
        opts: &StepOptions,
    ) -> Result<crate::stats::report::Measurement> {
        let offsets = Offsets::before(args, bootstrap, workload)?;
        let mut m = step::measure(side, workload, secret, opts)?;
        offsets.after(&mut m.result)?;
        Ok(m)
    }

    /// Reads the offsets again and puts the comparison into `r`.
    fn after(&self, r: &mut crate::model::StepResult) -> Result<()> {
        let Some((java, kafka, bootstrap, topic)) = &self.check else {
            return Ok(());
        };
        let after = crate::broker::offsets::end_offsets(java, kafka, bootstrap, topic)?;
        let markers = u64::from(r.workload.producers.max(1)) * r.workload.partitions.max(1) as u64;
        r.kafka_offsets = Some(crate::broker::offsets::compare(
            &self.before,
            &after,
            r.acked,
            markers,
        ));
        Ok(())
    }
}
