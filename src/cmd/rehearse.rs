//! `klab lab rehearse`: labs run again and again with their own fix, as an
//! instructor would the night before a class (see [`crate::lab::rehearse`]).

use super::Outcome;
use crate::broker::kafka_home::{KafkaHome, java};
use crate::cli::LabRehearseArgs;
use crate::lab::rehearse::{self, Campaign, LabRound, MachineLoad};
use crate::lab::run::{FixSource, run_labs};
use crate::lab::session::{Session, SessionOptions};
use crate::lab::summary::{Row, write_summary};
use crate::lab::{Lab, Labs, labs_dir, tracks};
use crate::stats::progress::Progress;
use crate::stats::report::{check_writable, new_run_dir, utc_now, write_atomic, write_json};
use crate::usage;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The labs of one track a campaign rehearses.
struct Group {
    track: String,
    labs: Labs,
    /// Lab ids, in the track's order (never the reference alone).
    chosen: Vec<String>,
}

/// Whether every target names a track or a lab under `--labs` (the
/// error names the unknown one and every track's labs).
pub fn check_targets(a: &LabRehearseArgs) -> Result<()> {
    groups(&labs_dir(a.session.dir.labs.as_deref()), &a.targets).map(|_| ())
}

/// The tracks and labs the targets name, grouped by track in the order
/// given. Unknown names are refused with every track's labs listed.
fn groups(root: &Path, targets: &[String]) -> Result<Vec<Group>> {
    let all = tracks(root);
    let mut out: Vec<Group> = Vec::new();
    for t in targets {
        let t = t.trim().trim_end_matches('/');
        let (track, labs, ids) = match all.iter().find(|(n, _)| n == t) {
            Some((name, dir)) => {
                let labs = Labs::load(dir)?;
                let ids: Vec<String> = if labs.labs.iter().all(Lab::is_capacity_lab) {
                    labs.labs.iter().map(|l| l.id.clone()).collect()
                } else {
                    labs.labs.iter().skip(1).map(|l| l.id.clone()).collect()
                };
                (name.clone(), labs, ids)
            }
            None => {
                let (labs, id) = crate::lab::load_with(Some(root), t)?;
                let name = all
                    .iter()
                    .find(|(_, d)| *d == labs.dir)
                    .map(|(n, _)| n.clone())
                    .unwrap_or_else(|| crate::lab::MAIN_TRACK.to_string());
                if labs.baseline().id == id && !labs.baseline().is_capacity_lab() {
                    return Err(usage!(
                        "{t}: the reference of its track is measured in every round anyway; name a lab that it grades, or the track ({name})"
                    ));
                }
                (name, labs, vec![id])
            }
        };
        match out.iter_mut().find(|g| g.track == track) {
            Some(g) => {
                for id in ids {
                    if !g.chosen.contains(&id) {
                        g.chosen.push(id);
                    }
                }
                let order: Vec<String> = g.labs.labs.iter().map(|l| l.id.clone()).collect();
                g.chosen
                    .sort_by_key(|id| order.iter().position(|o| o == id).unwrap_or(usize::MAX));
            }
            None => out.push(Group {
                track,
                labs,
                chosen: ids,
            }),
        }
    }
    Ok(out)
}

/// The campaign's folder: `--into DIR` (continued when it holds the same
/// campaign), else a new one under `--results`.
fn campaign_dir(a: &LabRehearseArgs, campaign: &Campaign) -> Result<(PathBuf, Vec<LabRound>)> {
    let Some(dir) = &a.into else {
        return Ok((new_run_dir(&a.session.out.results)?, Vec::new()));
    };
    let file = dir.join("campaign.json");
    if file.is_file() {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let kept: Campaign = serde_json::from_str(&text)
            .map_err(|e| usage!("--into {}: campaign.json: {e}", dir.display()))?;
        if kept.targets != campaign.targets || kept.quick != campaign.quick {
            return Err(usage!(
                "--into {}: that folder rehearses {}{}, not {}{}; give the same targets (and --quick alike) to continue it, or another folder",
                dir.display(),
                kept.targets.join(" "),
                if kept.quick { " --quick" } else { "" },
                campaign.targets.join(" "),
                if campaign.quick { " --quick" } else { "" },
            ));
        }
        return Ok((dir.clone(), rehearse::load(dir)));
    }
    std::fs::create_dir_all(dir).map_err(|e| usage!("--into {}: {e}", dir.display()))?;
    Ok((dir.clone(), Vec::new()))
}

pub fn execute(a: &LabRehearseArgs) -> Result<Outcome> {
    let root = labs_dir(a.session.dir.labs.as_deref());
    let groups = groups(&root, &a.targets)?;
    if let Some(j) = &a.session.out.json {
        check_writable(j).map_err(|e| usage!("--json {}: {e}", j.display()))?;
    }
    let kafka = KafkaHome::locate(a.session.kafka.kafka_home.as_deref())?;
    java()?;
    if groups
        .iter()
        .any(|g| g.labs.labs.iter().any(|l| l.needs_network()))
    {
        crate::net::Toxiproxy::binary()?;
    }
    let campaign = Campaign {
        targets: a.targets.clone(),
        quick: a.session.quick,
        started_at: utc_now(),
    };
    let (dir, mut done) = campaign_dir(a, &campaign)?;
    if !dir.join("campaign.json").is_file() {
        write_json(&dir.join("campaign.json"), &campaign)?;
    }
    let progress = Progress::detect(a.session.out.quiet);
    let first = rehearse::rounds_done(&done) + 1;
    let labs_n: usize = groups.iter().map(|g| g.chosen.len()).sum();
    crate::outln!(
        "rehearsal of {} lab(s) in {} track(s), round {first} to {} of {}{}; campaign: {}",
        labs_n,
        groups.len(),
        a.runs,
        a.runs,
        if a.session.quick { ", --quick" } else { "" },
        dir.display()
    );
    let started = Instant::now();
    let mut outcome = Ok(());
    for round in first..=a.runs {
        let round_started = Instant::now();
        let others = crate::stats::cpu::OthersMark::now();
        progress.say(&format!(
            "round {round} of {}{}",
            a.runs,
            eta(&done, round, a.runs)
        ));
        match run_round(a, &kafka, &dir, &groups, round, progress) {
            Ok(mut lines) => {
                let secs = round_started.elapsed().as_secs_f64();
                let load = rehearse::MachineLoad::now(others.as_ref());
                for l in &mut lines {
                    l.round_s = secs;
                    l.load = load;
                }
                rehearse::append(&dir, &lines)?;
                // What other programs took, not the load average: three
                // brokers alone make that pass the cores.
                let busy = match load {
                    Some(MachineLoad {
                        others_cores: Some(c),
                        cores,
                        ..
                    }) => format!(" (other programs kept {c:.1} of {cores} cores busy)"),
                    _ => String::new(),
                };
                for l in lines.iter().filter(|l| l.shown.is_some()) {
                    crate::outln!("round {round}: {}{busy}", describe(l));
                }
                done.extend(lines);
            }
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    conclude(a, &dir, &done, started)?;
    match outcome {
        Err(e) => super::interrupted_or(e),
        Ok(()) => {
            let tallies = rehearse::tally(&done, a.need);
            let all = rehearse::rounds_done(&done) >= a.runs;
            let dependable = tallies.iter().all(|t| t.dependable != Some(false));
            Ok(if all && dependable {
                Outcome::Done
            } else {
                Outcome::NotAsExpected
            })
        }
    }
}

/// `, about 40 min left` once a round has been timed.
fn eta(done: &[LabRound], round: usize, runs: usize) -> String {
    // Every lab of a round carries the round's wall time.
    let per_round: std::collections::BTreeMap<usize, f64> =
        done.iter().map(|r| (r.round, r.round_s)).collect();
    if per_round.is_empty() {
        return String::new();
    }
    let mean = per_round.values().sum::<f64>() / per_round.len() as f64;
    let left = std::time::Duration::from_secs_f64(mean * (runs + 1 - round) as f64);
    format!(", {} left", crate::lab::target::describe_estimate(left))
}

/// `durability/03-acks-one: shown (degraded: lost >= 1 = 8188; ...)`.
fn describe(l: &LabRound) -> String {
    let figures: Vec<String> = l
        .figures
        .iter()
        .map(|(f, v)| format!("{f} = {}", (v * 100.0).round() / 100.0))
        .collect();
    match l.shown {
        Some(true) => format!("{}: shown ({})", l.lab, figures.join("; ")),
        _ => format!("{}: NOT SHOWN: {}", l.lab, l.missed.join("; ")),
    }
}

/// One round: each track's labs against one reference, in folders
/// `round-NN/<track>/`, then its capacity labs, each its own two searches
/// on its own broker, in `round-NN/<track>/<lab>/`.
fn run_round(
    a: &LabRehearseArgs,
    kafka: &KafkaHome,
    dir: &Path,
    groups: &[Group],
    round: usize,
    progress: Progress,
) -> Result<Vec<LabRound>> {
    let mut out = Vec::new();
    for g in groups {
        let base = dir.join(format!("round-{round:02}")).join(&g.track);
        let session = |run_dir: PathBuf, brokers: u32, network: bool| -> Result<Session> {
            std::fs::create_dir_all(&run_dir)
                .with_context(|| format!("creating {}", run_dir.display()))?;
            Session::new(SessionOptions {
                kafka: Some(kafka.clone()),
                run_dir,
                quick: a.session.quick,
                progress,
                brokers: a.session.brokers.unwrap_or(brokers),
                network,
                recalibrate: a.session.recalibrate && round == 1,
            })
        };
        let (capacity, chosen): (Vec<&Lab>, Vec<&Lab>) = g
            .chosen
            .iter()
            .filter_map(|id| g.labs.get(id).ok())
            .partition(|l| l.is_capacity_lab());
        if !chosen.is_empty() {
            round_of_steps(&session, base.clone(), g, &chosen, round, &mut out)?;
        }
        for lab in capacity {
            let limit = lab.expect.capacity_at_least.unwrap_or(1.0);
            let mut s = session(base.join(&lab.id), lab.brokers, lab.needs_network())?;
            let t0 = Instant::now();
            let r = crate::lab::capacity::capacity_lab(&mut s, lab, &lab.fix, limit, false);
            let stop = s.stop();
            let (report, error) = r?;
            write_json(&s.opts.run_dir.join("capacity.json"), &report)?;
            if let Some(e) = error {
                if crate::error::is_interrupted(&e) || crate::cancel::interrupted() {
                    return Err(e);
                }
                out.push(rehearse::from_capacity(
                    round,
                    &g.track,
                    &lab.id,
                    Some(&report),
                    Some(format!("{e:#}")),
                    t0.elapsed().as_secs_f64(),
                ));
                continue;
            }
            stop?;
            out.push(rehearse::from_capacity(
                round,
                &g.track,
                &lab.id,
                Some(&report),
                None,
                t0.elapsed().as_secs_f64(),
            ));
        }
    }
    Ok(out)
}

/// The step labs of one track's round, against its reference.
fn round_of_steps(
    session: &dyn Fn(PathBuf, u32, bool) -> Result<Session>,
    base: PathBuf,
    g: &Group,
    chosen: &[&Lab],
    round: usize,
    out: &mut Vec<LabRound>,
) -> Result<()> {
    let network = std::iter::once(g.labs.baseline())
        .chain(chosen.iter().copied())
        .any(Lab::needs_network);
    let mut s = session(base, g.labs.baseline().brokers, network)?;
    s.ledger.steps_planned = 1 + 2 * chosen.len();
    let mut rows: Vec<Row> = Vec::new();
    let run = run_labs(&mut s, &g.labs, chosen, &FixSource::Lab, &mut rows);
    let stop = s.stop();
    if !rows.is_empty() {
        write_summary(
            &s.opts.run_dir,
            &format!("rehearsal round {round}: {}", g.track),
            &rows,
            &s.ledger.results,
            None,
        )?;
    }
    match run {
        Err(e) if crate::error::is_interrupted(&e) || crate::cancel::interrupted() => {
            return Err(e);
        }
        // A round that failed on the way is a round in which the labs
        // it did not reach did not show their lesson.
        Err(e) => {
            let why = format!("{e:#}");
            let mut lines = rehearse::from_rows(round, &g.track, &rows, 0.0);
            for lab in chosen {
                let name = rehearse::qualified(&g.track, &lab.id);
                if !lines.iter().any(|l| l.lab == name) {
                    lines.push(LabRound {
                        round,
                        lab: name,
                        shown: Some(false),
                        figures: Vec::new(),
                        missed: vec![format!("the round stopped: {why}")],
                        round_s: 0.0,
                        load: None,
                    });
                }
            }
            out.extend(lines);
        }
        Ok(()) => {
            stop?;
            out.extend(rehearse::from_rows(round, &g.track, &rows, 0.0));
        }
    }
    Ok(())
}

/// The tally, printed and kept (also after Ctrl-C: every finished round
/// counts).
fn conclude(a: &LabRehearseArgs, dir: &Path, done: &[LabRound], started: Instant) -> Result<()> {
    let tallies = rehearse::tally(done, a.need);
    let table = rehearse::table(&tallies);
    let lines = rehearse::verdict_lines(&tallies, a.need);
    let rounds = rehearse::rounds_done(done);
    let mut text = format!("{table}\n");
    for l in &lines {
        text.push_str(l);
        text.push('\n');
    }
    if let Some(busy) = rehearse::busy_rounds_line(done) {
        text.push_str(&busy);
        text.push('\n');
    }
    let graded = tallies.iter().filter(|t| t.shown.is_some()).count();
    let summary = if lines.is_empty() {
        format!(
            "every graded lab ({graded}) showed its lesson in at least {:.0}% of {rounds} round(s)",
            a.need * 100.0
        )
    } else {
        format!(
            "{} of {graded} graded lab(s) not dependable on this machine; mark them as demonstrations or redesign them",
            lines.len()
        )
    };
    text.push_str(&summary);
    text.push('\n');
    write_atomic(&dir.join("rehearsal.txt"), text.as_bytes())?;
    let md = format!(
        "{} round(s) of `klab lab rehearse {}{}`; a round's median wall time {:.0} s.\n\n{}",
        rounds,
        a.targets.join(" "),
        if a.session.quick { " --quick" } else { "" },
        rehearse::median_round_s(done),
        rehearse::markdown(&tallies)
    );
    let md = match rehearse::busy_rounds_line(done) {
        Some(busy) => format!("{md}\n{busy}\n"),
        None => md,
    };
    write_atomic(&dir.join("rehearsal.md"), md.as_bytes())?;
    let json = serde_json::json!({
        "targets": a.targets,
        "quick": a.session.quick,
        "rounds": rounds,
        "need": a.need,
        "labs": tallies,
    });
    write_json(&dir.join("rehearsal.json"), &json)?;
    if let Some(j) = &a.session.out.json {
        write_json(j, &json)?;
    }
    crate::outln!("{text}");
    crate::outln!(
        "wall time {:.0}s this sitting; campaign: {} (continue it with --into {})",
        started.elapsed().as_secs_f64(),
        dir.display(),
        dir.display()
    );
    Ok(())
}
