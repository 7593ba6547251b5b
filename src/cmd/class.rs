//! `klab class DIR`: the bundles a class handed in (any file names, any
//! subfolders) as one table: which student passed which lab, with the
//! figures the lab grades, the attempts and the machines; as text, JSON
//! and one self-contained HTML page. A file that is not a bundle is left
//! out with a line saying why, and the rest still counts.

use super::Outcome;
use crate::cli::ClassArgs;
use crate::lab::bundle::{Bundle, LabRef, read};
use crate::lab::verdict::fmt_x;
use crate::stats::plot::esc;
use crate::stats::report::{check_writable, utc_now, write_atomic, write_json};
use crate::stats::table::{fmt_ms, fmt_rate, group, new_table};
use crate::usage;
use anyhow::Result;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Folders deeper than this under DIR are not read.
const MAX_DEPTH: usize = 8;
/// Files looked at, at most (a class hands in hundreds).
const MAX_FILES: usize = 100_000;

pub const PASS: &str = "PASS";
const NOT_YET: &str = "NOT YET";
const MISSING: &str = "not handed in";

#[derive(Debug, Serialize)]
pub struct ClassTable {
    pub dir: String,
    pub made_at: String,
    pub bundles: usize,
    /// Every lab any bundle graded, in track order.
    pub labs: Vec<LabColumn>,
    pub students: Vec<StudentRow>,
    /// Files under DIR that are not bundles, and why.
    pub left_out: Vec<LeftOut>,
}

#[derive(Debug, Serialize)]
pub struct LabColumn {
    pub lab: String,
    pub passed: usize,
    pub handed_in: usize,
}

#[derive(Debug, Serialize)]
pub struct StudentRow {
    pub student: String,
    /// False when the bundles carry `user@host` instead of a name.
    pub named: bool,
    /// `host: 2 cores, 7.6 GiB`, one per machine the student ran on.
    pub machines: Vec<String>,
    pub cores: Vec<usize>,
    pub labs: BTreeMap<String, Cell>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    /// [`PASS`], [`NOT_YET`] or [`MISSING`].
    pub status: &'static str,
    /// Bundles of this student for this lab.
    pub attempts: usize,
    /// The figures the lab grades, from the passing bundle (else the last).
    pub figures: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// The lab's `lab.toml` files differ from most of the class's bundles.
    pub lab_files_differ: bool,
}

#[derive(Debug, Serialize)]
pub struct LeftOut {
    pub file: String,
    pub why: String,
}

pub fn execute(a: &ClassArgs) -> Result<Outcome> {
    if !a.dir.is_dir() {
        return Err(usage!(
            "{}: not a folder; give the folder the students hand their bundle.json files in to",
            a.dir.display()
        ));
    }
    for (flag, p) in [("--json", &a.json), ("--html", &a.html)] {
        if let Some(p) = p.as_deref().filter(|p| *p != Path::new("-")) {
            check_writable(p).map_err(|e| usage!("{flag} {}: {e}", p.display()))?;
        }
    }
    let mut files = Vec::new();
    walk(&a.dir, 0, &mut files);
    let mut bundles = Vec::new();
    let mut left_out = Vec::new();
    let mut others = Vec::new();
    for f in files {
        match read(&f) {
            Ok(b) => bundles.push((f, b)),
            Err(_) if other_json(&f) => others.push(shown(&f)),
            Err(why) => {
                let file = shown(&f);
                crate::errln!("class: {file}: {why}; left out");
                left_out.push(LeftOut { file, why });
            }
        }
    }
    if !others.is_empty() {
        let more = others.len().saturating_sub(5);
        crate::errln!(
            "class: {} JSON file(s) that are not bundles (a run folder's other files?) not read: {}{}",
            others.len(),
            others[..others.len() - more].join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        );
    }
    let table = class_table(&a.dir, &bundles, left_out);
    let to_stdout = a.json.as_deref() == Some(Path::new("-"));
    if let Some(p) = a.json.as_deref() {
        if to_stdout {
            crate::outln!("{}", serde_json::to_string_pretty(&table)?);
        } else {
            write_json(p, &table)?;
        }
    }
    if let Some(p) = &a.html {
        write_atomic(p, html(&table).as_bytes())?;
    }
    if !to_stdout {
        crate::out!("{}", text(&table));
        for (flag, p) in [("json", &a.json), ("html", &a.html)] {
            if let Some(p) = p {
                crate::outln!("{flag}: {}", p.display());
            }
        }
    }
    Ok(if table.left_out.is_empty() && table.bundles > 0 {
        Outcome::Done
    } else {
        Outcome::Incomplete
    })
}

/// A path as a line may show it: control characters (a crafted file
/// name's escape codes) as `?`.
fn shown(p: &Path) -> String {
    p.display()
        .to_string()
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Every `*.json` file under `dir` (links to files followed, links to
/// folders not; hidden files and folders skipped), in name order: a
/// student's whole run folder may be handed in, its logs are not read.
fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        crate::errln!("class: {}: cannot read this folder; left out", shown(dir));
        return;
    };
    let mut entries: Vec<_> = rd.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if out.len() >= MAX_FILES {
            return;
        }
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let p = e.path();
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() && depth < MAX_DEPTH => walk(&p, depth + 1, out),
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.is_symlink() && p.is_dir() => {}
            Ok(_) if is_json(&p) => out.push(p),
            Ok(_) => {}
            Err(_) => {}
        }
    }
}

/// A JSON file that does not claim to be a bundle (no `format`, not named
/// `bundle.json`): a run folder's `summary.json` or `results.json` handed
/// in beside its bundle.
fn other_json(p: &Path) -> bool {
    p.file_name().is_some_and(|n| n != crate::lab::bundle::FILE)
        && crate::infile::read_text(p, crate::lab::bundle::MAX_BYTES)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|v| v.get("format").is_none())
}

fn is_json(p: &Path) -> bool {
    p.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

/// `durability/03-acks-one` sorts after the broker track's labs.
fn lab_order(lab: &str) -> (bool, &str) {
    (lab.contains('/'), lab)
}

/// The class table from the bundles read.
fn class_table(dir: &Path, bundles: &[(PathBuf, Bundle)], left_out: Vec<LeftOut>) -> ClassTable {
    let mut lab_names: Vec<String> = bundles
        .iter()
        .flat_map(|(_, b)| b.labs.iter().map(|l| l.lab.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    lab_names.sort_by(|a, b| lab_order(a).cmp(&lab_order(b)));
    // The definition most of the class's bundles carry, per lab.
    let mut definitions: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
    for (_, b) in bundles {
        for l in &b.labs {
            if let Some(d) = &l.definition {
                *definitions.entry(&l.lab).or_default().entry(d).or_default() += 1;
            }
        }
    }
    let usual = |lab: &str| -> Option<&str> {
        definitions
            .get(lab)?
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(d, _)| *d)
    };
    let mut by_student: BTreeMap<String, Vec<(&PathBuf, &Bundle)>> = BTreeMap::new();
    for (p, b) in bundles {
        by_student
            .entry(b.student.clone())
            .or_default()
            .push((p, b));
    }
    let mut students: Vec<StudentRow> = by_student
        .into_iter()
        .map(|(student, mine)| {
            let labs = lab_names
                .iter()
                .map(|lab| (lab.clone(), cell(lab, &mine, usual(lab))))
                .collect();
            let machines: BTreeSet<String> = mine
                .iter()
                .map(|(_, b)| {
                    let p = &b.provenance;
                    format!(
                        "{}: {} cores{}",
                        p.host,
                        p.cores,
                        p.memory_gib
                            .map(|m| format!(", {m} GiB"))
                            .unwrap_or_default()
                    )
                })
                .collect();
            let cores: BTreeSet<usize> = mine.iter().map(|(_, b)| b.provenance.cores).collect();
            StudentRow {
                named: mine.iter().any(|(_, b)| b.named),
                student,
                machines: machines.into_iter().collect(),
                cores: cores.into_iter().collect(),
                labs,
            }
        })
        .collect();
    students.sort_by_key(|s| s.student.to_lowercase());
    let labs = lab_names
        .iter()
        .map(|lab| LabColumn {
            lab: lab.clone(),
            passed: students
                .iter()
                .filter(|s| s.labs.get(lab).is_some_and(|c| c.status == PASS))
                .count(),
            handed_in: students
                .iter()
                .filter(|s| s.labs.get(lab).is_some_and(|c| c.attempts > 0))
                .count(),
        })
        .collect();
    ClassTable {
        dir: dir.display().to_string(),
        made_at: utc_now(),
        bundles: bundles.len(),
        labs,
        students,
        left_out,
    }
}

/// One student's standing on one lab.
fn cell(lab: &str, mine: &[(&PathBuf, &Bundle)], usual: Option<&str>) -> Cell {
    let attempts: Vec<(&PathBuf, &Bundle, &LabRef)> = mine
        .iter()
        .filter_map(|(p, b)| Some((*p, *b, b.labs.iter().find(|l| l.lab == lab)?)))
        .collect();
    let latest = |pass_only: bool| {
        attempts
            .iter()
            .filter(|(_, b, l)| !pass_only || b.passes(l))
            .max_by(|x, y| x.1.ended_at.cmp(&y.1.ended_at))
            .copied()
    };
    let passing = latest(true);
    let Some((path, b, l)) = passing.or_else(|| latest(false)) else {
        return Cell {
            status: MISSING,
            attempts: 0,
            figures: Vec::new(),
            bundle: None,
            command: None,
            ended_at: None,
            lab_files_differ: false,
        };
    };
    Cell {
        status: if passing.is_some() { PASS } else { NOT_YET },
        attempts: attempts.len(),
        figures: figures(b, lab),
        bundle: Some(path.display().to_string()),
        command: Some(b.command_line.join(" ")),
        ended_at: Some(b.ended_at.clone()),
        lab_files_differ: match (&l.definition, usual) {
            (Some(d), Some(u)) => d != u,
            _ => false,
        },
    }
}

/// `lost 0`, `records/s 1.02x`: a bound's measured value by its name.
fn bound_figure(bound: &crate::lab::bundle::Bound) -> String {
    let name = bound
        .bound
        .split([' '])
        .take_while(|w| *w != ">=" && *w != "<=")
        .collect::<Vec<_>>()
        .join(" ");
    let value = match bound.value {
        None => "–".to_string(),
        Some(v) if bound.ratio => format!("{}x", fmt_x(v)),
        Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => group(v.abs() as u64),
        Some(v) => format!("{v:.1}"),
    };
    let mark = if bound.verdict == "yes" { "" } else { " ✗" };
    format!("{name} {value}{mark}")
}

/// The figures a lab grades in a bundle: each bound of each judged step
/// (the student's fix alone in a `lab check`), a capacity lab's ratio, or
/// a reference's own figures; and the error, if the run ended with one.
fn figures(b: &Bundle, lab: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(c) = &b.capacity {
        out.push(match (c.ratio, c.fixed_at_least) {
            (Some(r), Some(l)) => format!("capacity {}x (needs ≥ {}x)", fmt_x(r), l),
            (Some(r), None) => format!("capacity {}x", fmt_x(r)),
            _ => "capacity: no answer".into(),
        });
    }
    let rows: Vec<_> = b.rows_of(lab).collect();
    let judged: Vec<_> = rows
        .iter()
        .filter(|r| r.verdict.is_some())
        .filter(|r| b.command != "check" || r.step == "your fix")
        .collect();
    for r in &judged {
        let bounds: Vec<String> = r.bounds.iter().map(bound_figure).collect();
        out.push(format!("{}: {}", r.step, bounds.join(", ")));
    }
    if judged.is_empty()
        && let Some(r) = rows.first()
    {
        out.push(format!(
            "{}: {} records/s, e2e p99 {} ms",
            r.step,
            fmt_rate(r.records_per_s),
            fmt_ms(r.e2e_p99_ms)
        ));
    }
    if let Some(e) = &b.error {
        let short: String = e.chars().take(120).collect();
        out.push(format!("{}: {short}", b.verdict));
    } else if b.verdict == "interrupted" {
        out.push("interrupted".into());
    }
    out
}

/// `PASS (2 attempts)`.
fn status_line(c: &Cell) -> String {
    match c.attempts {
        0 => c.status.to_string(),
        1 => format!("{} (1 attempt)", c.status),
        n => format!("{} ({n} attempts)", c.status),
    }
}

fn student_name(s: &StudentRow) -> String {
    if s.named {
        s.student.clone()
    } else {
        format!("{} (not named)", s.student)
    }
}

/// The table as text: a row per student, a column per lab.
pub fn text(t: &ClassTable) -> String {
    let mut header = vec!["student", "cores"];
    header.extend(t.labs.iter().map(|l| l.lab.as_str()));
    let mut table = new_table(&header);
    for s in &t.students {
        let mut row = vec![
            student_name(s),
            s.cores
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        ];
        for l in &t.labs {
            let c = &s.labs[&l.lab];
            let mut lines = vec![status_line(c)];
            lines.extend(c.figures.iter().cloned());
            if c.lab_files_differ {
                lines.push("lab files differ from the class's".into());
            }
            row.push(lines.join("\n"));
        }
        table.add_row(row);
    }
    let mut out = format!(
        "class table of {}: {} student(s), {} lab(s), {} bundle(s){}\n{table}\n",
        t.dir,
        t.students.len(),
        t.labs.len(),
        t.bundles,
        match t.left_out.len() {
            0 => String::new(),
            n => format!(", {n} file(s) left out (above)"),
        }
    );
    for l in &t.labs {
        out.push_str(&format!(
            "{}: {} of {} passed, {} handed in\n",
            l.lab,
            l.passed,
            t.students.len(),
            l.handed_in
        ));
    }
    if t.bundles == 0 {
        out.push_str("no bundle handed in yet\n");
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;font-size:14px}th,td{border:1px solid #bbb;padding:4px 8px;\
vertical-align:top;text-align:left}th{background:#eee}td.pass{background:#dff3df}\
td.notyet{background:#fde8c8}td.missing{color:#888}.fig{font-size:12px;color:#444}\
.warn{color:#a40000}caption{text-align:left;font-weight:bold;margin-bottom:.5em}";

/// The table as one HTML page: no script, no outside resource.
pub fn html(t: &ClassTable) -> String {
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">");
    h.push_str(&format!(
        "<title>klab class table: {}</title><style>{STYLE}</style></head><body>\n",
        esc(&t.dir)
    ));
    h.push_str(&format!(
        "<h1>Class table</h1><p>{} student(s), {} lab(s), {} bundle(s) from <code>{}</code>, made {}.</p>\n",
        t.students.len(),
        t.labs.len(),
        t.bundles,
        esc(&t.dir),
        esc(&t.made_at)
    ));
    h.push_str("<table><thead><tr><th>student</th><th>machine(s)</th>");
    for l in &t.labs {
        h.push_str(&format!(
            "<th>{}<br><span class=\"fig\">{} of {} passed</span></th>",
            esc(&l.lab),
            l.passed,
            t.students.len()
        ));
    }
    h.push_str("</tr></thead><tbody>\n");
    for s in &t.students {
        h.push_str(&format!(
            "<tr><th>{}</th><td class=\"fig\">{}</td>",
            esc(&student_name(s)),
            s.machines
                .iter()
                .map(|m| esc(m))
                .collect::<Vec<_>>()
                .join("<br>")
        ));
        for l in &t.labs {
            let c = &s.labs[&l.lab];
            let class = match c.status {
                PASS => "pass",
                NOT_YET => "notyet",
                _ => "missing",
            };
            h.push_str(&format!(
                "<td class=\"{class}\"><b>{}</b>",
                esc(&status_line(c))
            ));
            for f in &c.figures {
                h.push_str(&format!("<br><span class=\"fig\">{}</span>", esc(f)));
            }
            if c.lab_files_differ {
                h.push_str("<br><span class=\"warn\">lab files differ from the class's</span>");
            }
            h.push_str("</td>");
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table>\n");
    if !t.left_out.is_empty() {
        h.push_str("<h2>Left out</h2><ul>\n");
        for l in &t.left_out {
            h.push_str(&format!(
                "<li><code>{}</code>: {}</li>\n",
                esc(&l.file),
                esc(&l.why)
            ));
        }
        h.push_str("</ul>\n");
    }
    h.push_str(
        "<p class=\"fig\">PASS: a <code>klab lab check</code> of the student's own fix ended as the lab expects \
         (a lab with nothing to fix: a <code>klab lab run</code> did). NOT YET: handed in, not passed. \
         Figures: each bound the lab grades, measured (✗: not met).</p>\n</body></html>\n",
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_everything_it_is_given() {
        assert_eq!(
            esc("<script>alert(1)</script> & \"q\""),
            "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn bounds_read_as_name_and_value() {
        let b = |bound: &str, value: Option<f64>, ratio: bool, verdict: &str| {
            bound_figure(&crate::lab::bundle::Bound {
                bound: bound.into(),
                value,
                band: None,
                limit: 0.0,
                verdict: verdict.into(),
                ratio,
            })
        };
        assert_eq!(b("lost <= 0", Some(0.0), false, "yes"), "lost 0");
        assert_eq!(
            b("records/s >= 0.5x lab 01", Some(1.0234), true, "yes"),
            "records/s 1.02x"
        );
        assert_eq!(b("lost >= 1", Some(12345.0), false, "NO"), "lost 12,345 ✗");
        assert_eq!(b("recovery <= 8 s", None, false, "NO"), "recovery – ✗");
    }
}
