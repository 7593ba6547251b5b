//! A rehearsal: every lab of a campaign run again and again, counted by
//! whether it showed its lesson (every verdict as the lab promises) and
//! by the spread of the figures its verdicts rest on. The night before a
//! class, on a student's laptop, it says which labs are dependable there.
//!
//! A campaign lives in one folder: `campaign.json` (what it rehearses),
//! `rounds.jsonl` (one line per lab and finished round, appended as rounds
//! end, so a campaign spread over several sittings keeps every round),
//! `round-NN/` (each round's own results) and `rehearsal.json` /
//! `rehearsal.txt` (the tally).

use crate::capacity::report::CapacityReport;
use crate::lab::summary::Row;
use crate::lab::verdict::fmt_x;
use crate::stats::table::{align_numbers, group, new_table};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// What a campaign rehearses (kept in `campaign.json`, checked when a
/// campaign is continued).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Campaign {
    /// The tracks and labs as given (`durability`, `client/01`).
    pub targets: Vec<String>,
    pub quick: bool,
    pub started_at: String,
}

/// One lab in one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabRound {
    pub round: usize,
    /// With its track: `durability/03-acks-one` (`04-flush-every-record` on
    /// the broker track).
    pub lab: String,
    /// Every graded step as the lab promises; None when the lab grades
    /// nothing (the reference).
    pub shown: Option<bool>,
    /// Each graded bound and what was measured for it:
    /// (`degraded: lost >= 1`, 8188).
    pub figures: Vec<(String, f64)>,
    /// What was not as promised, in words.
    pub missed: Vec<String>,
    /// The round's wall time (every lab of the round shares it).
    pub round_s: f64,
    /// The machine's 5-minute load average when the round ended, with its
    /// cores: a round measured while other work ran (a build, another
    /// program) shows it, so a miss can be read for what it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<MachineLoad>,
}

/// The 5-minute load average and the number of cores (`/proc/loadavg`),
/// and the cores other programs than klab and its brokers kept busy over
/// the round.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MachineLoad {
    pub load5: f64,
    pub cores: usize,
    /// Average cores busy with other programs during the round (None in
    /// campaigns older than this figure: their load average alone counts
    /// the rehearsal's own brokers too, so it cannot tell).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub others_cores: Option<f64>,
}

/// Above this many cores busy with other programs on average, a round
/// was not measured on a quiet machine.
const BUSY_OTHERS_CORES: f64 = 0.25;

impl MachineLoad {
    /// Now, where the system says (Linux); None elsewhere. `since` is the
    /// round's start, for the other programs' share.
    pub fn now(since: Option<&crate::stats::cpu::OthersMark>) -> Option<MachineLoad> {
        let text = std::fs::read_to_string("/proc/loadavg").ok()?;
        let load5 = text.split_whitespace().nth(1)?.parse().ok()?;
        let cores = std::thread::available_parallelism().ok()?.get();
        Some(MachineLoad {
            load5,
            cores,
            others_cores: since.and_then(|m| m.others_cores()),
        })
    }
}

/// `04-flush-every-record` on the broker track, `durability/03-acks-one`
/// on another.
pub fn qualified(track: &str, id: &str) -> String {
    if track == crate::lab::MAIN_TRACK {
        id.to_string()
    } else {
        format!("{track}/{id}")
    }
}

/// A round of labs measured against one reference: one [`LabRound`] per
/// lab that has rows (the reference included, ungraded).
pub fn from_rows(round: usize, track: &str, rows: &[Row], round_s: f64) -> Vec<LabRound> {
    let mut by_lab: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        by_lab.entry(r.lab.as_str()).or_default().push(r);
    }
    by_lab
        .into_iter()
        .map(|(lab, rows)| {
            let graded = rows.iter().any(|r| r.expected.is_some());
            let missed: Vec<String> = rows
                .iter()
                .filter_map(|r| r.shortfall().map(|why| format!("{}: {why}", r.step)))
                .collect();
            let figures = rows
                .iter()
                .flat_map(|r| {
                    r.expected
                        .iter()
                        .flat_map(|j| j.checks.iter())
                        .map(|c| (format!("{}: {}", r.step, c.bound), c.value))
                })
                .collect();
            LabRound {
                round,
                lab: qualified(track, lab),
                shown: graded.then_some(missed.is_empty()),
                figures,
                missed,
                round_s,
                load: None,
            }
        })
        .collect()
}

/// A capacity lab's round: shown when its fix carried at least the lab's
/// bound more than its own settings ([`CapacityReport::lab_verdict`]).
pub fn from_capacity(
    round: usize,
    track: &str,
    id: &str,
    report: Option<&CapacityReport>,
    error: Option<String>,
    round_s: f64,
) -> LabRound {
    let mut missed: Vec<String> = error.into_iter().collect();
    let mut figures = Vec::new();
    if let Some(r) = report {
        if let (Some(e), Some(q)) = (&r.expect, &r.ratio) {
            figures.push((format!("fixed capacity >= {}x", e.fixed_at_least), q.ratio));
        }
        if let Err(why) = r.lab_verdict() {
            missed.push(why);
        }
    } else if missed.is_empty() {
        missed.push("not measured".into());
    }
    LabRound {
        round,
        lab: qualified(track, id),
        shown: Some(missed.is_empty()),
        figures,
        missed,
        round_s,
        load: None,
    }
}

/// Appends a finished round's lines to `rounds.jsonl`.
pub fn append(dir: &Path, rounds: &[LabRound]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut text = String::new();
    for r in rounds {
        text.push_str(&serde_json::to_string(r)?);
        text.push('\n');
    }
    let path = dir.join("rounds.jsonl");
    // A line a crash cut short ends here, so the next one starts clean.
    let torn = std::fs::read(&path).is_ok_and(|b| b.last().is_some_and(|c| *c != b'\n'));
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    if torn {
        f.write_all(b"\n")?;
    }
    f.write_all(text.as_bytes())?;
    f.sync_data()?;
    Ok(())
}

/// Every finished round kept in `rounds.jsonl` (a line cut short by a
/// crash is skipped).
pub fn load(dir: &Path) -> Vec<LabRound> {
    std::fs::read_to_string(dir.join("rounds.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// How many rounds have finished.
pub fn rounds_done(rounds: &[LabRound]) -> usize {
    rounds.iter().map(|r| r.round).max().unwrap_or(0)
}

/// One figure over the rounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub figure: String,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// One lab over the campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabTally {
    pub lab: String,
    pub rounds: usize,
    /// Rounds in which it showed its lesson (None: it grades nothing).
    pub shown: Option<usize>,
    /// `shown` is at least the campaign's share of its rounds.
    pub dependable: Option<bool>,
    pub figures: Vec<Spread>,
    /// What went wrong in the rounds that missed, most frequent first.
    pub missed: Vec<(String, usize)>,
}

/// The rounds measured while other programs kept the machine busy (on
/// average more than a quarter of a core besides klab and its brokers),
/// as a line for the tally; None when there were none or no round
/// recorded that figure.
pub fn busy_rounds_line(rounds: &[LabRound]) -> Option<String> {
    let mut busy: BTreeMap<usize, f64> = BTreeMap::new();
    for r in rounds {
        if let Some(others) = r.load.and_then(|m| m.others_cores)
            && others > BUSY_OTHERS_CORES
        {
            busy.insert(r.round, others);
        }
    }
    if busy.is_empty() {
        return None;
    }
    let list: Vec<String> = busy.iter().map(|(n, c)| format!("{n} ({c:.1})")).collect();
    Some(format!(
        "rounds measured while other programs used the machine (average cores they kept busy): {}; a miss there may be the machine's, not the lab's: rehearse again on a quiet machine",
        list.join(", ")
    ))
}

/// "1 round", "5 rounds".
fn rounds_word(n: usize) -> String {
    format!("{n} round{}", if n == 1 { "" } else { "s" })
}

/// The median wall time of a round (0 before any).
pub fn median_round_s(rounds: &[LabRound]) -> f64 {
    let mut per_round: BTreeMap<usize, f64> = BTreeMap::new();
    for r in rounds {
        per_round.insert(r.round, r.round_s);
    }
    let mut v: Vec<f64> = per_round.into_values().collect();
    if v.is_empty() { 0.0 } else { median(&mut v) }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Each lab's rounds, shown count and figures. `need` is the share of
/// rounds a dependable lab shows its lesson in (0.9: 9 of 10).
pub fn tally(rounds: &[LabRound], need: f64) -> Vec<LabTally> {
    let mut labs: Vec<&str> = Vec::new();
    for r in rounds {
        if !labs.contains(&r.lab.as_str()) {
            labs.push(&r.lab);
        }
    }
    labs.iter()
        .map(|lab| {
            let mine: Vec<&LabRound> = rounds.iter().filter(|r| r.lab == *lab).collect();
            let graded = mine.iter().any(|r| r.shown.is_some());
            let shown = graded.then(|| mine.iter().filter(|r| r.shown == Some(true)).count());
            let mut by_figure: Vec<(String, Vec<f64>)> = Vec::new();
            for (name, v) in mine.iter().flat_map(|r| r.figures.iter()) {
                match by_figure.iter_mut().find(|(n, _)| n == name) {
                    Some((_, vs)) => vs.push(*v),
                    None => by_figure.push((name.clone(), vec![*v])),
                }
            }
            let figures = by_figure
                .into_iter()
                .map(|(figure, mut vs)| {
                    let min = vs.iter().copied().fold(f64::INFINITY, f64::min);
                    let max = vs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    Spread {
                        figure,
                        median: median(&mut vs),
                        min,
                        max,
                    }
                })
                .collect();
            let mut missed: Vec<(String, usize)> = Vec::new();
            for why in mine.iter().flat_map(|r| r.missed.iter()) {
                // Group by the bound, not by the value measured.
                let key = why.split(": measured").next().unwrap_or(why).to_string();
                match missed.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, n)) => *n += 1,
                    None => missed.push((key, 1)),
                }
            }
            missed.sort_by_key(|b| std::cmp::Reverse(b.1));
            LabTally {
                lab: lab.to_string(),
                rounds: mine.len(),
                dependable: shown.map(|s| s as f64 >= need * mine.len() as f64 - 1e-9),
                shown,
                figures,
                missed,
            }
        })
        .collect()
}

/// A figure's value as the table shows it: a count grouped, a ratio with
/// two significant digits.
fn value(figure: &str, x: f64) -> String {
    if !x.is_finite() {
        return if x.is_nan() {
            "–".into()
        } else {
            "never".into()
        };
    }
    // A ratio's bound reads `... >= 1.5x lab 01` or `fixed capacity >= 2.5x`.
    let ratio = figure.contains("x lab 01") || figure.contains("capacity >=");
    if ratio {
        format!("{}x", fmt_x(x))
    } else if x >= 0.0 && (x.fract() == 0.0 || x >= 100.0) {
        // A count, or the median of an even number of counts (8,177.5).
        group(x.round() as u64)
    } else {
        format!("{x:.1}")
    }
}

/// A figure over the rounds: `name: median (min–max)`.
fn spread_text(f: &Spread) -> String {
    format!(
        "{}: {} ({}–{})",
        f.figure,
        value(&f.figure, f.median),
        value(&f.figure, f.min),
        value(&f.figure, f.max)
    )
}

/// The campaign's table: per lab, how often it showed its lesson, whether
/// that is dependable, and its figures (median, min–max).
pub fn table(tallies: &[LabTally]) -> String {
    let mut t = new_table(&[
        "lab",
        "showed its lesson",
        "dependable",
        "figures its verdicts rest on: median (min–max)",
    ]);
    for l in tallies {
        let figures: Vec<String> = l.figures.iter().map(spread_text).collect();
        t.add_row(vec![
            l.lab.clone(),
            match l.shown {
                Some(s) => format!("{s}/{}", l.rounds),
                None => format!("(reference, {})", rounds_word(l.rounds)),
            },
            match l.dependable {
                Some(true) => "yes".into(),
                Some(false) => "NO".into(),
                None => String::new(),
            },
            figures.join("\n"),
        ]);
    }
    align_numbers(&mut t);
    for i in [0, 3] {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(comfy_table::CellAlignment::Left);
        }
    }
    t.to_string()
}

/// The campaign's table as Markdown, to paste into a lab's README: the
/// rows of [`table`], the figures of a lab separated by `<br>`.
pub fn markdown(tallies: &[LabTally]) -> String {
    let cell = |s: &str| s.replace('|', "\\|");
    let mut out = String::from(
        "| lab | showed its lesson | dependable | figures its verdicts rest on: median (min–max) |\n|---|---|---|---|\n",
    );
    for l in tallies {
        let figures: Vec<String> = l.figures.iter().map(|f| cell(&spread_text(f))).collect();
        let shown = match l.shown {
            Some(s) => format!("{s}/{}", l.rounds),
            None => format!("reference, {}", rounds_word(l.rounds)),
        };
        let dependable = match l.dependable {
            Some(true) => "yes",
            Some(false) => "**NO**",
            None => "",
        };
        out.push_str(&format!(
            "| {} | {shown} | {dependable} | {} |\n",
            cell(&l.lab),
            figures.join("<br>")
        ));
    }
    out
}

/// Plain words on what is not dependable, one line per lab (empty when
/// every graded lab is).
pub fn verdict_lines(tallies: &[LabTally], need: f64) -> Vec<String> {
    tallies
        .iter()
        .filter(|l| l.dependable == Some(false))
        .map(|l| {
            let why: Vec<String> = l
                .missed
                .iter()
                .take(3)
                .map(|(w, n)| format!("{w} ({n}x)"))
                .collect();
            format!(
                "{} is not dependable on this machine: its lesson showed in {} of {} rounds (needs {:.0}%): {}",
                l.lab,
                l.shown.unwrap_or(0),
                l.rounds,
                need * 100.0,
                why.join("; ")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(n: usize, lab: &str, shown: Option<bool>, lost: f64) -> LabRound {
        LabRound {
            round: n,
            lab: lab.into(),
            shown,
            figures: vec![("degraded: lost >= 1".into(), lost)],
            missed: if shown == Some(false) {
                vec!["degraded: NO (lost >= 1: measured 0 (NO))".into()]
            } else {
                Vec::new()
            },
            round_s: 100.0,
            load: None,
        }
    }

    #[test]
    fn a_lab_is_dependable_when_it_shows_its_lesson_often_enough() {
        let mut rounds = Vec::new();
        for n in 1..=10 {
            rounds.push(round(n, "01-replicated", None, 0.0));
            rounds.push(round(n, "durability/03", Some(n != 4), 100.0 * n as f64));
            rounds.push(round(n, "durability/05", Some(n % 3 != 0), 5.0));
        }
        let t = tally(&rounds, 0.9);
        assert_eq!(rounds_done(&rounds), 10);
        let get = |l: &str| t.iter().find(|x| x.lab == l).unwrap();
        assert_eq!(get("01-replicated").shown, None);
        assert_eq!(get("durability/03").shown, Some(9));
        assert_eq!(get("durability/03").dependable, Some(true));
        assert_eq!(get("durability/05").shown, Some(7));
        assert_eq!(get("durability/05").dependable, Some(false));
        let f = &get("durability/03").figures[0];
        assert_eq!((f.min, f.median, f.max), (100.0, 550.0, 1000.0));
        let lines = verdict_lines(&t, 0.9);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("7 of 10"), "{lines:?}");
        assert!(lines[0].contains("lost >= 1 (3x)"), "{lines:?}");
        let text = table(&t);
        assert!(text.contains("9/10") && text.contains("NO"), "{text}");
    }

    #[test]
    fn the_markdown_table_has_a_row_per_lab_and_escapes_bars() {
        let rounds = vec![
            round(1, "durability/03|x", Some(true), 8000.0),
            round(2, "durability/03|x", Some(false), 0.0),
        ];
        let md = markdown(&tally(&rounds, 0.9));
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines.len(), 3, "{md}");
        assert!(
            lines[2].starts_with("| durability/03\\|x | 1/2 | **NO** |"),
            "{md}"
        );
        assert_eq!(lines[2].matches(" | ").count(), 3, "{md}");
    }

    #[test]
    fn rounds_on_a_busy_machine_are_named() {
        let mut a = round(1, "durability/03-acks-one", Some(true), 1.0);
        let mut b = round(2, "durability/03-acks-one", Some(false), 0.0);
        let mut c = round(3, "durability/03-acks-one", Some(true), 1.0);
        assert_eq!(busy_rounds_line(&[a.clone(), b.clone()]), None);
        // Three brokers alone make a load average of 5 on 2 cores: quiet.
        a.load = Some(MachineLoad {
            load5: 5.1,
            cores: 2,
            others_cores: Some(0.05),
        });
        b.load = Some(MachineLoad {
            load5: 14.2,
            cores: 2,
            others_cores: Some(1.3),
        });
        // An older campaign's round knows only its load average.
        c.load = Some(MachineLoad {
            load5: 9.0,
            cores: 2,
            others_cores: None,
        });
        let line = busy_rounds_line(&[a, b, c]).unwrap();
        assert!(line.contains("busy): 2 (1.3);"), "{line}");
    }

    #[test]
    fn rounds_survive_a_crash_mid_line() {
        let d = tempfile::tempdir().unwrap();
        append(d.path(), &[round(1, "a", Some(true), 1.0)]).unwrap();
        // A line cut short, as a crash would leave it.
        std::fs::OpenOptions::new()
            .append(true)
            .open(d.path().join("rounds.jsonl"))
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"round\": 2, \"la"))
            .unwrap();
        let back = load(d.path());
        assert_eq!(back, [round(1, "a", Some(true), 1.0)]);
        // The next round starts on a line of its own.
        append(d.path(), &[round(2, "a", Some(false), 0.0)]).unwrap();
        assert_eq!(load(d.path()).len(), 2);
        assert_eq!(rounds_done(&load(d.path())), 2);
    }
}
