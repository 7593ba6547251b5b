//! `klab capacity`: the highest offered rate at which e2e p99 stays under
//! the SLO with nothing lost (see [`crate::capacity`]).

use super::Outcome;
use crate::broker::kafka_home::{KafkaHome, java};
use crate::capacity::report::{CapacityReport, answer_lines, svg, table};
use crate::cli::capacity::CapacityArgs;
use crate::lab::Lab;
use crate::lab::capacity::{BASE, Config, TYPICAL_PROBES, search};
use crate::lab::file::parse_fix_file;
use crate::lab::session::{Session, SessionOptions};
use crate::lab::target::{describe_estimate, estimate};
use crate::model::{BrokerConfig, Workload, defaults};
use crate::stats::report::{check_writable, new_run_dir, utc_now, write_atomic, write_json};
use crate::usage;
use anyhow::Result;
use std::time::{Duration, Instant};

/// Probe windows with `--quick` (as lab 01's `[quick]`).
const QUICK_DURATION: Duration = Duration::from_secs(6);
const QUICK_WARMUP: Duration = Duration::from_secs(2);

pub fn execute(a: &CapacityArgs) -> Result<Outcome> {
    // Everything the user typed is checked before anything starts.
    let w = &a.workload;
    if w.rate.is_some() || w.max {
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
    if let Some(j) = &a.json {
        check_writable(j).map_err(|e| usage!("--json {}: {e}", j.display()))?;
    }
    let brokers = a.brokers.unwrap_or(lab.brokers);
    if let Some(rf) = workload.replication_factor
        && a.bootstrap.is_none()
        && rf > brokers
    {
        return Err(usage!(
            "--replication-factor {rf}: the cluster has {brokers} broker(s) (--brokers)"
        ));
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
            Some(k)
        }
    };
    let _ui = super::start_ui(&a.ui)?;
    let run_dir = new_run_dir(&a.results)?;
    let mut s = Session::new(SessionOptions {
        kafka,
        run_dir: run_dir.clone(),
        quick: a.quick,
        progress: crate::stats::progress::Progress::detect(a.quiet),
        brokers,
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
    finish(&run_dir, &lab, &report, a.json.as_deref(), error, stop)
}

/// Writes `capacity.json`, `.svg` and `.txt` (also after an error or
/// Ctrl-C: every probe measured so far is in them), prints the probes and
/// the answer, and says how the run ended.
fn finish(
    run_dir: &std::path::Path,
    lab: &Lab,
    report: &CapacityReport,
    json: Option<&std::path::Path>,
    error: Option<anyhow::Error>,
    stop: Result<()>,
) -> Result<Outcome> {
    write_json(&run_dir.join("capacity.json"), report)?;
    write_atomic(
        &run_dir.join("capacity.svg"),
        svg(&format!("klab capacity {}", lab.id), report).as_bytes(),
    )?;
    let mut t = table(report);
    let text = format!(
        "{}\n{}",
        crate::stats::table::file_text(&mut t),
        answer_lines(report)
    );
    write_atomic(&run_dir.join("capacity.txt"), text.as_bytes())?;
    if let Some(j) = json {
        write_json(j, report)?;
    }
    if !report.capacity.probes.is_empty() {
        crate::outln!("{}", table(report));
    }
    crate::out!("{}", answer_lines(report));
    crate::outln!("results: {}", run_dir.display());
    if let Some(e) = error {
        return super::interrupted_or(e);
    }
    stop?;
    let all = report
        .searches()
        .iter()
        .all(|c| c.stop == crate::capacity::Stop::Converged);
    // A capacity lab judges (its fix against its own settings): one rule
    // with every judging command. A plain search only says whether it
    // found its answer.
    Ok(match &report.expect {
        Some(e) if all && e.pass == Some(true) => {
            crate::outln!("verdict: as the lab expects (exit 0)");
            Outcome::Done
        }
        Some(_) => {
            crate::outln!(
                "verdict: not as the lab expects (exit 1): {}",
                if all {
                    "the fix's capacity ratio is below the lab's bound"
                } else {
                    "a search did not converge, so the ratio could not be judged"
                }
            );
            Outcome::NotAsExpected
        }
        None if all => Outcome::Done,
        None => Outcome::Incomplete,
    })
}

/// `klab lab run` of a capacity lab (`[expect.capacity]`): the degraded
/// configuration and the fix, searched in alternation, and the ratio of
/// their capacities judged against the lab's expectation.
pub fn lab_run(
    session: &crate::cli::SessionArgs,
    lab: &Lab,
    fix: &crate::lab::file::Fix,
    limit: f64,
) -> Result<Outcome> {
    let _ui = super::start_ui(&session.ui)?;
    let mut s = super::lab::session(session, lab.brokers)?;
    let run_dir = s.opts.run_dir.clone();
    let started = std::time::Instant::now();
    let (report, error) = crate::lab::capacity::capacity_lab(&mut s, lab, fix, limit, true)?;
    let stop = s.stop();
    crate::lab::bundle::prepare(crate::lab::bundle::HandIn {
        run_dir: &run_dir,
        labs_dir: session.dir.labs.as_deref(),
        rows: &[],
        capacity: Some((lab, &report)),
        results: &s.ledger.results,
        started,
    });
    finish(&run_dir, lab, &report, session.json.as_deref(), error, stop)
}

/// `--lab`: the lab's degraded broker and workload; workload flags are
/// refused (the lab sets the workload).
fn lab_mode(
    a: &CapacityArgs,
    key: &str,
) -> Result<(Lab, Workload, crate::lab::capacity::CapacityPatch)> {
    let w = &a.workload;
    let given = [
        (w.duration.is_some(), "--duration"),
        (w.warmup.is_some(), "--warmup"),
        (w.topic.is_some(), "--topic"),
        (!w.producer_set.is_empty(), "--producer-set"),
        (w.replication_factor.is_some(), "--replication-factor"),
        (w.min_insync_replicas.is_some(), "--min-insync-replicas"),
        (
            w.message_bytes != defaults::MESSAGE_BYTES,
            "--message-bytes",
        ),
        (w.partitions != defaults::PARTITIONS, "--partitions"),
        (w.producers != defaults::PRODUCERS, "--producers"),
        (w.acks != crate::model::Acks::All, "--acks"),
    ];
    if let Some((_, flag)) = given.iter().find(|(g, _)| *g) {
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
    Ok(Lab::bare("capacity", a.results.join(".capacity")))
}

fn run_mode_workload(a: &CapacityArgs) -> Result<Workload> {
    let mut w = a.workload.workload()?;
    if a.quick {
        if a.workload.duration.is_none() {
            w.duration = Some(QUICK_DURATION);
        }
        if a.workload.warmup.is_none() {
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
