//! `klab capacity`: the highest offered rate at which e2e p99 stays under
//! the SLO with nothing lost (see [`crate::capacity`]).

use super::Outcome;
use crate::app::capacity::finish;
use crate::broker::kafka_home::{KafkaHome, java};
use crate::capacity::report::CapacityReport;
use crate::cli::capacity::CapacityArgs;
use crate::lab::Lab;
use crate::lab::capacity::{BASE, Config, TYPICAL_PROBES, search};
use crate::lab::file::parse_fix_file;
use crate::lab::session::{Session, SessionOptions};
use crate::lab::target::{describe_estimate, estimate};
use crate::model::{BrokerConfig, Workload};
use crate::stats::report::{check_writable, new_run_dir, utc_now};
use crate::usage;
use anyhow::Result;
use std::time::{Duration, Instant};

/// Probe windows with `--quick` (as lab 01's `[quick]`).
const QUICK_DURATION: Duration = Duration::from_secs(6);
const QUICK_WARMUP: Duration = Duration::from_secs(2);

pub fn execute(a: &CapacityArgs) -> Result<Outcome> {
    // Everything the user typed is checked before anything starts.
    let w = a.workload.patch();
    if w.rate.is_some() {
        return Err(usage!(
            "--rate/--max: klab capacity chooses each probe's rate itself (drop the flag)"
        ));
    }
    if w.messages.is_some() {
        return Err(usage!(
            "--messages: capacity probes are timed windows; give --duration instead"
        ));
    }
    let (lab, mut workload, patch) = match &a.lab {
        Some(key) => lab_mode(a, key)?,
        None => (run_mode_lab(a)?, run_mode_workload(a)?, Default::default()),
    };
    workload.faults.clear();
    let mut settings = patch.settings();
    if let Some(d) = a.slo_p99 {
        settings.slo_p99_ms = d.as_secs_f64() * 1000.0;
    }
    if let Some(r) = a.resolution {
        settings.resolution = r;
    }
    if let Some(n) = a.max_probes {
        settings.max_probes = n;
    }
    let base_broker = lab.broker.overlay(&a.broker.config()?);
    let configs = configs(a, &base_broker, &workload)?;
    if let Some(j) = &a.out.json {
        check_writable(j).map_err(|e| usage!("--json {}: {e}", j.display()))?;
    }
    let brokers = a.brokers.unwrap_or(lab.brokers);
    if let Some(rf) = workload.replication_factor
        && a.bootstrap.is_none()
        && rf > brokers
    {
        // Name where the factor came from: the flag, or the lab's file.
        return Err(match &a.lab {
            Some(_) => usage!(
                "{} (or a lab it extends): workload.replication_factor = {rf} needs at least {rf} brokers, and --brokers {brokers} gives {brokers}; drop --brokers (the lab's [cluster] brokers = {}) or give --brokers {rf}",
                lab.dir.join("lab.toml").display(),
                lab.brokers
            ),
            None => {
                usage!("--replication-factor {rf}: the cluster has {brokers} broker(s) (--brokers)")
            }
        });
    }
    if let Some(b) = &a.bootstrap {
        if !base_broker.is_empty() || configs.iter().any(|c| !c.broker.is_empty()) {
            return Err(usage!(
                "--bootstrap {b}: klab does not own that broker, so broker settings (--heap, --broker-set, a lab's [broker], a --compare file's heap or [properties]) cannot be applied; drop them"
            ));
        }
        if a.brokers.is_some() {
            return Err(usage!(
                "--brokers acts on brokers klab starts itself; drop it with --bootstrap"
            ));
        }
        super::check_bootstrap(b)?;
    }
    let kafka = match &a.bootstrap {
        Some(_) => None,
        None => {
            let k = KafkaHome::locate(a.kafka.kafka_home.as_deref())?;
            java()?;
            if lab.needs_network() {
                crate::net::Toxiproxy::binary()?;
            }
            Some(k)
        }
    };
    let _ui = super::start_ui(&a.ui)?;
    let run_dir = new_run_dir(&a.out.results)?;
    let mut s = Session::new(SessionOptions {
        kafka,
        run_dir: run_dir.clone(),
        quick: a.quick,
        progress: crate::stats::progress::Progress::detect(a.out.quiet),
        brokers,
        network: lab.needs_network(),
        recalibrate: false,
    })?;
    if let Some(b) = &a.bootstrap {
        s.connect(b)?;
    }

    crate::outln!(
        "klab capacity{}: the highest offered rate with e2e p99 ≤ {} ms, nothing lost, and ≥ {:.0}% of it acknowledged and read (±{:.0}%)",
        a.lab
            .as_ref()
            .map(|_| format!(" {}", lab.id))
            .unwrap_or_default(),
        settings.slo_p99_ms,
        settings.min_delivered * 100.0,
        settings.resolution * 100.0
    );
    let probes = configs.len() * TYPICAL_PROBES;
    let restarts = if configs.len() > 1 && restart_between(&configs) {
        probes
    } else {
        1
    };
    crate::outln!(
        "plan: about {TYPICAL_PROBES} probes per configuration (at most {}), each a {} window after a {} warm-up ({}); {}{}",
        settings.max_probes,
        crate::units::format_duration(workload.duration.unwrap_or_default()),
        crate::units::format_duration(workload.warmup),
        workload.describe().trim_start_matches("max, "),
        describe_estimate(estimate(&workload, probes, restarts)),
        if restarts > 1 {
            " (the two differ in a restart-only setting: the broker restarts between probes)"
        } else {
            ""
        }
    );
    let started_at = utc_now();
    let started = Instant::now();
    let (caps, error) = search(&mut s, &lab, &configs, settings);
    let stop = s.stop();
    let report = CapacityReport::assemble(
        a.lab.as_ref().map(|_| lab.id.clone()),
        settings,
        workload,
        caps,
        started_at,
        started,
    );
    finish(&run_dir, &lab, &report, a.out.json.as_deref(), error, stop)
}

/// `--lab`: the lab's degraded broker and workload; workload flags are
/// refused (the lab sets the workload).
fn lab_mode(
    a: &CapacityArgs,
    key: &str,
) -> Result<(Lab, Workload, crate::lab::capacity::CapacityPatch)> {
    let w = a.workload.patch();
    let flag = |k: &str| format!("--{}", k.replace('_', "-"));
    let given = w
        .keys_set()
        .into_iter()
        .map(flag)
        .chain(a.workload.topic.as_ref().map(|_| "--topic".to_string()))
        .chain((!w.producer.is_empty()).then(|| "--producer-set".to_string()))
        .chain((!w.consumer.is_empty()).then(|| "--consumer-set".to_string()))
        .next();
    if let Some(flag) = given {
        return Err(usage!(
            "{flag}: with --lab the workload is the lab's (see klab lab show {key}); drop the flag, or use --compare with a fix file's [producer]"
        ));
    }
    let (labs, id) = crate::lab::load_with(a.dir.labs.as_deref(), key)?;
    let lab = labs.get(&id)?.clone();
    // The rate is the search's; a share of capacity needs no calibration.
    let mut workload = lab.workload(a.quick, Some(1.0))?;
    if !workload.faults.is_empty() {
        crate::errln!(
            "note: {}'s [[faults]] are left out: a capacity probe measures the cluster whole",
            lab.id
        );
    }
    workload.rate = None;
    let patch = lab.capacity;
    Ok((lab, workload, patch))
}

/// Without a lab: what `klab run` would measure, as a lab named `capacity`.
fn run_mode_lab(a: &CapacityArgs) -> Result<Lab> {
    Ok(Lab::bare("capacity", a.out.results.join(".capacity")))
}

fn run_mode_workload(a: &CapacityArgs) -> Result<Workload> {
    let mut w = a.workload.workload()?;
    if a.quick {
        let given = &a.workload.settings;
        if given.duration.is_none() {
            w.duration = Some(QUICK_DURATION);
        }
        if given.warmup.is_none() {
            w.warmup = QUICK_WARMUP;
        }
    }
    w.rate = None;
    Ok(w)
}

/// The configurations to search: the base one, or the two `--compare`
/// files laid over it (named by their file names).
fn configs(a: &CapacityArgs, broker: &BrokerConfig, w: &Workload) -> Result<Vec<Config>> {
    if a.compare.is_empty() {
        return Ok(vec![Config {
            name: BASE.into(),
            broker: broker.clone(),
            workload: w.clone(),
        }]);
    }
    let mut out: Vec<Config> = Vec::new();
    for path in &a.compare {
        let fix = parse_fix_file(path).map_err(|e| usage!("--compare {e}"))?;
        if fix.acks.is_some() || fix.min_insync_replicas.is_some() {
            return Err(usage!(
                "--compare {}: acks and min_insync_replicas change what is measured, not how fast; compare heap, [properties], [producer], [consumer], partitions and consumers only",
                path.display()
            ));
        }
        let mut workload = w.clone();
        workload.producer.extend(fix.producer.clone());
        if let Some(n) = fix.partitions {
            workload.partitions = n;
        }
        if let Some(n) = fix.consumers {
            workload.consumers = n;
        }
        workload.consumer.extend(fix.consumer.clone());
        workload
            .validate()
            .map_err(|e| usage!("--compare {}: {e}", path.display()))?;
        let mut name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        if out.iter().any(|c| c.name == name) || name == BASE {
            name = format!("{name}#{}", out.len() + 1);
        }
        out.push(Config {
            name,
            broker: broker.overlay(&fix.broker),
            workload,
        });
    }
    Ok(out)
}

/// The two configurations differ in a setting only a restart changes.
fn restart_between(configs: &[Config]) -> bool {
    crate::broker::knobs::needs_restart(&configs[0].broker, &configs[1].broker)
}
