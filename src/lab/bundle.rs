//! A run's hand-in file: `bundle.json` in the run folder of every `klab lab
//! run`, `lab check`, `demo` and capacity lab, written where the run
//! concludes (also after a `NOT YET`, an error or Ctrl-C, with what was
//! measured). One small file a student copies to the class's share: who
//! ran it, which labs, the command line, when, how it ended (the verdict
//! and the exit code klab returned), every row of `verdicts.json` with each
//! bound's measured value and limit (or a capacity lab's two searches), and
//! what it ran on. `klab class` reads a folder of them ([`read`]).
//!
//! A bundle is evidence, not proof: it is plain JSON a student could edit.
//! What it carries to make a change visible is each lab's `definition`
//! (SHA-256 over the `lab.toml` files of its `extends` chain, so a
//! loosened expectation differs from the class's) beside the fingerprint
//! every result already has (the NAR hash of the lab folder, which also
//! covers the student's own `my-fix.toml`).

use crate::capacity::report::CapacityReport;
use crate::lab::summary::Row;
use crate::lab::{Lab, Labs, MAIN_TRACK, tracks};
use crate::model::{Band, StepResult};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

/// The `format` of every bundle this klab writes and reads.
pub const FORMAT: &str = "klab-bundle/1";
/// The file's name in the run folder.
pub const FILE: &str = "bundle.json";
/// A bundle is a few kilobytes (a demo's, tens); a reader refuses more.
pub const MAX_BYTES: u64 = 1 << 20;
/// The longest student name a bundle carries.
const MAX_STUDENT: usize = 64;

/// The verdict words a bundle may carry, with the exit codes they go with.
const VERDICTS: [(&str, &[u8]); 6] = [
    ("as expected", &[0]),
    ("not as expected", &[1]),
    ("incomplete", &[1]),
    ("interrupted", &[130]),
    ("bad input", &[2]),
    ("error", &[1]),
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bundle {
    /// [`FORMAT`].
    pub format: String,
    /// `--student`/`KLAB_STUDENT`, else `user@host`.
    pub student: String,
    /// Whether the student was named (else the name is `user@host`).
    pub named: bool,
    /// `run`, `check` or `demo` (`klab lab run|check`, `klab demo`).
    pub command: String,
    /// The whole command line, the program as `klab`.
    pub command_line: Vec<String>,
    /// The labs the run graded (a lab run of a track's reference: that one).
    pub labs: Vec<LabRef>,
    pub started_at: String,
    pub ended_at: String,
    pub wall_s: f64,
    /// How it ended: one of [`VERDICTS`].
    pub verdict: String,
    /// The exit code klab returned (0, 1, 2 or 130).
    pub exit_code: u8,
    /// The error, when the run ended with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Every row of `verdicts.json`.
    #[serde(default)]
    pub rows: Vec<BundleRow>,
    /// A capacity lab: its two searches and their ratio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<CapacityFigures>,
    pub provenance: Provenance,
    /// The run folder it was written in (on the student's machine).
    pub run_dir: String,
}

/// A lab a bundle grades.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabRef {
    /// `04-flush-every-record`, or `durability/03-acks-one` off the broker track.
    pub lab: String,
    /// The lab has a fix, so passing it takes `klab lab check` of the
    /// student's own fix; else (a reference, a lab with nothing to fix) a
    /// `klab lab run` that ends as expected.
    pub needs_check: bool,
    /// SHA-256 over the `lab.toml` files of the lab's `extends` chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<String>,
    /// The results' `environment.lab_fingerprint` (the lab folder's NAR
    /// hash, the student's `my-fix.toml` included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

/// One row of `verdicts.json`, with the counts the durability labs grade.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleRow {
    /// As [`LabRef::lab`].
    pub lab: String,
    /// `reference`, `degraded`, `fixed`, `your fix`, `tuned`.
    pub step: String,
    pub what: String,
    pub complete: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub runs: u32,
    pub records_per_s: f64,
    pub e2e_p99_ms: f64,
    pub publish_p99_ms: f64,
    /// Against the track's reference in the same run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vs_reference: Option<VsReference>,
    pub lost: u64,
    pub failed: u64,
    pub unsent: u64,
    pub duplicated: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_alone: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_s: Option<f64>,
    /// The lab's verdict on the step (`yes`, `NO`, `unsure`); None: the
    /// lab expects nothing of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    #[serde(default)]
    pub bounds: Vec<Bound>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VsReference {
    pub throughput: f64,
    pub p99: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput_band: Option<Band>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_band: Option<Band>,
}

/// One bound of the lab's expectation, measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bound {
    /// `e2e p99 >= 1.5x lab 01`, `lost <= 0`.
    pub bound: String,
    /// None: nothing measured (no fault window), or never (a rate that
    /// never came back).
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band: Option<Band>,
    pub limit: f64,
    pub verdict: String,
    /// A ratio against the reference (else a count or seconds).
    pub ratio: bool,
}

/// A capacity lab: the lab's own configuration against the fix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityFigures {
    pub slo_p99_ms: f64,
    pub degraded_records_per_s: Option<f64>,
    pub fixed_records_per_s: Option<f64>,
    /// Fixed over degraded, and the range the two brackets allow.
    pub ratio: Option<f64>,
    pub ratio_min: Option<f64>,
    pub ratio_max: Option<f64>,
    pub fixed_at_least: Option<f64>,
    pub pass: Option<bool>,
    /// Both searches converged.
    pub converged: bool,
}

/// What the run ran on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub klab_version: String,
    pub kafka_version: Option<String>,
    pub java_version: Option<String>,
    pub cores: usize,
    /// MemTotal, GiB.
    pub memory_gib: Option<f64>,
    pub os: String,
    pub arch: String,
    pub host: String,
}

/// How the command ended, as `main` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ending {
    pub exit_code: u8,
    /// One of [`VERDICTS`].
    pub verdict: &'static str,
    pub error: Option<String>,
}

/// What the place where a run concludes hands over.
pub struct HandIn<'a> {
    pub run_dir: &'a Path,
    /// `--labs`, to name each lab with its track.
    pub labs_dir: Option<&'a Path>,
    pub rows: &'a [Row],
    /// A capacity lab: the lab and its report (then `rows` is empty).
    pub capacity: Option<(&'a Lab, &'a CapacityReport)>,
    /// Every step measured (for the provenance).
    pub results: &'a [StepResult],
    pub started: Instant,
}

/// The bundle of this process's run, waiting for its ending.
static PENDING: Mutex<Option<(Bundle, Instant)>> = Mutex::new(None);

/// Gathers the run's bundle where the run concludes; [`seal`] writes it
/// once the command's exit code is known (a `lab check` decides it after
/// the summary).
pub fn prepare(h: HandIn<'_>) {
    let bundle = assemble(&h);
    if let Ok(mut p) = PENDING.lock() {
        *p = Some((bundle, h.started));
    }
}

/// Writes the prepared bundle (if a run prepared one) with who hands it
/// in (`--student`, else `user@host`) and how the command ended, and
/// returns its path. A bundle that cannot be written is a warning: the
/// run's own results are already saved.
pub fn seal(student: Option<&str>, ending: &Ending) -> Option<PathBuf> {
    let (mut b, started) = PENDING.lock().ok()?.take()?;
    (b.student, b.named) = match student {
        Some(s) => (s.to_string(), true),
        None => (format!("{}@{}", user(), host()), false),
    };
    b.verdict = ending.verdict.to_string();
    b.exit_code = ending.exit_code;
    b.error = ending.error.clone();
    b.ended_at = crate::stats::report::utc_now();
    b.wall_s = started.elapsed().as_secs_f64();
    let path = Path::new(&b.run_dir).join(FILE);
    match crate::stats::report::write_json(&path, &b) {
        Ok(()) => Some(path),
        Err(e) => {
            crate::errln!("warning: no {FILE} for this run: {e:#}");
            None
        }
    }
}

fn assemble(h: &HandIn<'_>) -> Bundle {
    let root = crate::lab::labs_dir(h.labs_dir);
    let mut names = Names::new(&root);
    let mut ids: Vec<String> = Vec::new();
    let mut add = |id: &str| {
        if !ids.iter().any(|i| i == id) {
            ids.push(id.to_string());
        }
    };
    match h.capacity {
        Some((lab, _)) => add(&lab.id),
        None => {
            let graded: Vec<&Row> = h.rows.iter().filter(|r| r.step != "reference").collect();
            // A run of the reference lab alone grades that one.
            for r in if graded.is_empty() {
                h.rows.iter().collect()
            } else {
                graded
            } {
                add(&r.lab);
            }
        }
    }
    let labs = ids
        .iter()
        .map(|id| {
            let mut r = names.lab_ref(id);
            r.fingerprint = h
                .results
                .iter()
                .find(|s| s.lab.as_deref() == Some(id.as_str()))
                .and_then(|s| s.environment.lab_fingerprint.clone());
            r
        })
        .collect();
    let rows = h
        .rows
        .iter()
        .map(|r| row(r, names.qualify(&r.lab)))
        .collect();
    let command_line = command_line();
    let started_at = std::time::SystemTime::now()
        .checked_sub(h.started.elapsed())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| crate::stats::report::rfc3339(d.as_secs()))
        .unwrap_or_default();
    Bundle {
        format: FORMAT.into(),
        // Set by `seal`.
        student: String::new(),
        named: false,
        command: command_of(&command_line),
        command_line,
        labs,
        started_at,
        ended_at: String::new(),
        wall_s: 0.0,
        verdict: String::new(),
        exit_code: 0,
        error: None,
        rows,
        capacity: h.capacity.map(|(_, r)| capacity(r)),
        provenance: provenance(h.results),
        run_dir: h.run_dir.display().to_string(),
    }
}

/// Lab ids with their tracks, from the labs directory.
struct Names {
    tracks: Vec<(String, PathBuf)>,
    loaded: BTreeMap<String, Option<Labs>>,
}

impl Names {
    fn new(root: &Path) -> Names {
        Names {
            tracks: tracks(root),
            loaded: BTreeMap::new(),
        }
    }

    /// The track holding lab `id`, and its folder.
    fn track_of(&self, id: &str) -> Option<&(String, PathBuf)> {
        self.tracks
            .iter()
            .find(|(_, d)| d.join(id).join("lab.toml").is_file())
    }

    /// `durability/03-acks-one`; a lab of the broker track (or one found
    /// nowhere) keeps its bare id.
    fn qualify(&self, id: &str) -> String {
        match self.track_of(id) {
            Some((t, _)) if t != MAIN_TRACK => format!("{t}/{id}"),
            _ => id.to_string(),
        }
    }

    fn lab_ref(&mut self, id: &str) -> LabRef {
        let lab = self.qualify(id);
        let Some((track, dir)) = self.track_of(id).cloned() else {
            return LabRef {
                lab,
                needs_check: true,
                definition: None,
                fingerprint: None,
            };
        };
        let labs = self
            .loaded
            .entry(track)
            .or_insert_with(|| Labs::load(&dir).ok());
        let found = labs.as_ref().and_then(|ls| Some((ls, ls.get(id).ok()?)));
        LabRef {
            lab,
            needs_check: found.is_none_or(|(_, l)| !l.fix.is_empty()),
            definition: found.map(|(ls, l)| definition(ls, l)),
            fingerprint: None,
        }
    }
}

/// SHA-256 (hex) over the `lab.toml` of `lab` and of every lab it extends.
fn definition(labs: &Labs, lab: &Lab) -> String {
    let mut h = Sha256::new();
    let mut cur = Some(lab);
    let mut seen = 0;
    while let Some(l) = cur {
        h.update(l.id.as_bytes());
        h.update([0]);
        h.update(std::fs::read(l.dir.join("lab.toml")).unwrap_or_default());
        h.update([0]);
        seen += 1;
        cur = l
            .extends
            .as_ref()
            .filter(|_| seen < 100)
            .and_then(|e| labs.get(e).ok());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

fn band(b: Option<Band>) -> Option<Band> {
    b.filter(|b| b.lo.is_finite() && b.hi.is_finite())
}

fn row(r: &Row, lab: String) -> BundleRow {
    let s = &r.result;
    BundleRow {
        lab,
        step: r.step.clone(),
        what: r.what.clone(),
        complete: s.complete,
        reason: s.reason.clone(),
        runs: s.runs.max(1),
        records_per_s: s.throughput.msgs_per_s,
        e2e_p99_ms: s.e2e_latency_ms.p99,
        publish_p99_ms: s.publish_latency_ms.p99,
        vs_reference: r.vs_reference.map(|v| VsReference {
            throughput: v.throughput,
            p99: v.p99,
            throughput_band: band(v.throughput_band),
            p99_band: band(v.p99_band),
        }),
        lost: s.lost,
        failed: s.failed,
        unsent: s.unsent,
        duplicated: s.duplicated,
        acked_alone: s.acked_alone,
        recovery_s: s.recovery_s.and_then(finite),
        verdict: r.verdict().map(|v| v.as_str().to_string()),
        bounds: r
            .expected
            .iter()
            .flat_map(|j| &j.checks)
            .map(|c| Bound {
                bound: c.bound.clone(),
                value: finite(c.value),
                band: band(c.band),
                limit: c.limit,
                verdict: c.verdict.as_str().to_string(),
                ratio: c.ratio,
            })
            .collect(),
    }
}

fn capacity(r: &CapacityReport) -> CapacityFigures {
    CapacityFigures {
        slo_p99_ms: r.settings.slo_p99_ms,
        degraded_records_per_s: r.capacity.capacity_records_per_s,
        fixed_records_per_s: r
            .compared_with
            .as_ref()
            .and_then(|c| c.capacity_records_per_s),
        ratio: r.ratio.map(|q| q.ratio),
        ratio_min: r.ratio.map(|q| q.min),
        ratio_max: r.ratio.map(|q| q.max),
        fixed_at_least: r.expect.map(|e| e.fixed_at_least),
        pass: r.expect.and_then(|e| e.pass),
        converged: r
            .searches()
            .iter()
            .all(|c| c.stop == crate::capacity::Stop::Converged),
    }
}

fn provenance(results: &[StepResult]) -> Provenance {
    let env = |f: &dyn Fn(&StepResult) -> Option<String>| results.iter().find_map(f);
    Provenance {
        klab_version: env!("CARGO_PKG_VERSION").to_string(),
        kafka_version: env(&|r| r.environment.kafka_version.clone()),
        java_version: env(&|r| r.environment.java_version.clone()),
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        memory_gib: mem_total_gib(),
        os: std::env::consts::OS.to_string(),
        arch: std::env::consts::ARCH.to_string(),
        host: host(),
    }
}

/// MemTotal of /proc/meminfo in GiB, one decimal.
fn mem_total_gib() -> Option<f64> {
    let bytes = crate::broker::knobs::meminfo("MemTotal")?;
    Some((bytes as f64 / (1u64 << 30) as f64 * 10.0).round() / 10.0)
}

/// This machine's host name (`unknown-host` when it has none).
pub fn host() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at
    // most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let name = if rc == 0 {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).trim().to_string()
    } else {
        String::new()
    };
    if name.is_empty() {
        "unknown-host".into()
    } else {
        name
    }
}

fn user() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .filter_map(std::env::var_os)
        .map(|v| v.to_string_lossy().trim().to_string())
        .find(|v| !v.is_empty())
        // SAFETY: getuid cannot fail.
        .unwrap_or_else(|| format!("uid{}", unsafe { libc::getuid() }))
}

/// The command line, the program shortened to `klab`.
fn command_line() -> Vec<String> {
    std::iter::once("klab".to_string())
        .chain(std::env::args().skip(1))
        .collect()
}

/// `run`, `check` or `demo`: the subcommand (global flags before it take
/// no values).
fn command_of(line: &[String]) -> String {
    let words: Vec<&str> = line
        .iter()
        .skip(1)
        .map(String::as_str)
        .filter(|a| !a.starts_with('-'))
        .take(2)
        .collect();
    match words.as_slice() {
        ["lab", sub] => sub.to_string(),
        [cmd, ..] => cmd.to_string(),
        [] => "run".into(),
    }
}

/// A student's name as a bundle may carry it: 1 to [`MAX_STUDENT`]
/// characters, no control characters, trimmed.
pub fn check_student(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(
            "empty; give the name the class table should show, e.g. --student \"Ada Lovelace\""
                .into(),
        );
    }
    if t.chars().count() > MAX_STUDENT {
        return Err(format!("longer than {MAX_STUDENT} characters"));
    }
    if t.chars().any(char::is_control) {
        return Err(
            "a control character (a tab, a newline, an escape code) is not allowed in a name"
                .into(),
        );
    }
    Ok(t.to_string())
}

/// A bundle file, checked: `Err` says in a sentence why it is not one.
pub fn read(path: &Path) -> Result<Bundle, String> {
    let text = crate::infile::read_text(path, MAX_BYTES)?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("not JSON ({e})"))?;
    match value.get("format").and_then(|f| f.as_str()) {
        Some(FORMAT) => {}
        Some(other) => {
            return Err(format!(
                "a bundle of format {other:?}; this klab reads {FORMAT:?}"
            ));
        }
        None => return Err(format!("not a klab bundle (no \"format\": {FORMAT:?})")),
    }
    if let Some(name) = value.get("student").and_then(|s| s.as_str()) {
        check_student(name).map_err(|e| format!("student: {e}"))?;
    }
    let mut value = value;
    plain(&mut value);
    let b: Bundle = serde_json::from_value(value).map_err(|e| format!("a damaged bundle: {e}"))?;
    b.check()?;
    Ok(b)
}

/// Every string of a bundle without control characters (an error message
/// may hold a newline; a crafted bundle, escape codes for the terminal the
/// class table is printed on): each becomes a space.
fn plain(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::String(s) if s.chars().any(char::is_control) => {
            *s = s
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
        }
        Value::Array(a) => a.iter_mut().for_each(plain),
        Value::Object(o) => o.values_mut().for_each(plain),
        _ => {}
    }
}

impl Bundle {
    /// What a reader relies on: a name it can show, a known verdict with
    /// its exit code, lab names as klab writes them, times, a machine.
    pub fn check(&self) -> Result<(), String> {
        check_student(&self.student).map_err(|e| format!("student: {e}"))?;
        match VERDICTS.iter().find(|(w, _)| *w == self.verdict) {
            Some((_, codes)) if codes.contains(&self.exit_code) => {}
            Some(_) => {
                return Err(format!(
                    "verdict {:?} with exit code {}: klab never writes that pair",
                    self.verdict, self.exit_code
                ));
            }
            None => return Err(format!("verdict {:?} is not one klab writes", self.verdict)),
        }
        if !["run", "check", "demo"].contains(&self.command.as_str()) {
            return Err(format!(
                "command {:?}: expected run, check or demo",
                self.command
            ));
        }
        let lab_name = |n: &str| {
            let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/');
            !n.is_empty() && n.len() <= 128 && n.chars().all(ok)
        };
        for n in self
            .labs
            .iter()
            .map(|l| &l.lab)
            .chain(self.rows.iter().map(|r| &r.lab))
        {
            if !lab_name(n) {
                return Err(format!("lab {n:?} is not a lab name klab writes"));
            }
        }
        for (what, t) in [
            ("started_at", &self.started_at),
            ("ended_at", &self.ended_at),
        ] {
            if !is_timestamp(t) {
                return Err(format!(
                    "{what} {t:?}: expected a time as YYYY-MM-DDThh:mm:ssZ"
                ));
            }
        }
        if !(1..=65_536).contains(&self.provenance.cores) {
            return Err(format!(
                "provenance.cores {}: not a machine's core count",
                self.provenance.cores
            ));
        }
        Ok(())
    }

    /// The rows of lab `lab` (qualified).
    pub fn rows_of<'a>(&'a self, lab: &'a str) -> impl Iterator<Item = &'a BundleRow> + 'a {
        self.rows.iter().filter(move |r| r.lab == lab)
    }

    /// Whether this bundle passes `lab`: a `lab check` of the student's fix
    /// that ended as expected, or, for a lab with nothing to fix, a run
    /// that did.
    pub fn passes(&self, lab: &LabRef) -> bool {
        self.exit_code == 0 && (self.command == "check" || !lab.needs_check)
    }
}

/// `2026-01-31T09:05:00Z`.
fn is_timestamp(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn student_names() {
        assert_eq!(check_student("  Ada Lovelace ").unwrap(), "Ada Lovelace");
        assert_eq!(check_student("Zoë <b>").unwrap(), "Zoë <b>");
        assert!(check_student("   ").is_err());
        assert!(check_student("a\tb").is_err());
        assert!(check_student("\u{1b}[31mred").is_err());
        assert!(check_student(&"x".repeat(65)).is_err());
        assert!(check_student(&"é".repeat(64)).is_ok());
    }

    #[test]
    fn the_command_is_the_subcommand() {
        let line = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(command_of(&line("klab lab check 04 --quick")), "check");
        assert_eq!(command_of(&line("klab -v lab run durability/03")), "run");
        assert_eq!(command_of(&line("klab demo --quick")), "demo");
    }

    #[test]
    fn timestamps() {
        assert!(is_timestamp("2026-01-31T09:05:00Z"));
        assert!(is_timestamp(&crate::stats::report::utc_now()));
        assert!(!is_timestamp("2026-01-31 09:05:00"));
        assert!(!is_timestamp("<script>alert(1)</script>"));
    }
}
