//! A capacity lab's run (`klab lab run`/`check` of a lab with
//! `[expect.capacity]`) and the report every capacity search ends with
//! (`klab capacity` too).

use super::Outcome;
use crate::capacity::report::{CapacityReport, answer_lines, svg, table};
use crate::lab::Lab;
use crate::stats::report::{write_atomic, write_json};
use anyhow::Result;

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
    let mut s = super::session::session(session, lab.brokers, lab.needs_network())?;
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
    finish(
        &run_dir,
        lab,
        &report,
        session.out.json.as_deref(),
        error,
        stop,
    )
}

/// Writes `capacity.json`, `.svg` and `.txt` (also after an error or
/// Ctrl-C: every probe measured so far is in them), prints the probes and
/// the answer, and says how the run ended.
pub fn finish(
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
    Ok(match (&report.expect, report.lab_verdict()) {
        (Some(_), Ok(())) => {
            crate::outln!("verdict: as the lab expects (exit 0)");
            Outcome::Done
        }
        (Some(_), Err(why)) => {
            crate::outln!("verdict: not as the lab expects (exit 1): {why}");
            Outcome::NotAsExpected
        }
        (None, _) if all => Outcome::Done,
        (None, _) => Outcome::Incomplete,
    })
}
