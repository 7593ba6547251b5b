//! Writing results: JSON written atomically (temp file + rename), the
//! histograms beside it, and a few formatting helpers.

use crate::model::StepResult;
use crate::stats::hist::Recorder;
use anyhow::{Context, Result};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Writes `bytes` to `path` through a temporary file next to it, so readers
/// never see a half-written file. The rename replaces only a regular file
/// (or nothing): a device, a FIFO or a socket at `path` is an error, never
/// replaced; a symbolic link is followed, and the file it names replaced.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let path = output_target(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let dir = parent_of(&path);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".klab-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    // The mode of the file it replaces, else an ordinary file's (a
    // temporary file is created owner-only).
    let mode = std::fs::metadata(&path).map_or(0o644, |m| {
        use std::os::unix::fs::PermissionsExt;
        m.permissions().mode() & 0o7777
    });
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("syncing {}", path.display()))?;
    // Checked again just before the rename: the target may have changed
    // since the command's inputs were checked.
    output_target(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    tmp.persist(&path)
        .map_err(|e| e.error)
        .with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(value)?;
    text.push(b'\n');
    write_atomic(path, &text)
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The file an output named `path` really goes to: `path` itself when it
/// is missing or a regular file, the file a symbolic link names; `Err`
/// says why anything else (a directory, a device such as `/dev/null`, a
/// FIFO, a socket) is not replaced.
fn output_target(path: &Path) -> std::result::Result<PathBuf, String> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(path.to_path_buf()),
        Err(e) => return Err(format!("cannot look at it: {e}")),
    };
    let kind = meta.file_type();
    if kind.is_symlink() {
        return match std::fs::canonicalize(path) {
            Ok(real) if real.is_dir() => Err(format!(
                "a link to the directory {}; give a file name",
                real.display()
            )),
            Ok(real) => output_target(&real),
            Err(_) => Err(
                "a symbolic link to nothing (or a loop of links); remove it or give another file name"
                    .into(),
            ),
        };
    }
    let what = if kind.is_file() {
        return Ok(path.to_path_buf());
    } else if kind.is_dir() {
        return Err("is a directory; give a file name".into());
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(format!(
        "{what}, not a regular file: klab writes its output to a new file or replaces a regular one, never anything else"
    ))
}

/// Checks that an output file can be written at `path` (used before any
/// broker starts, so a bad `--json` fails in milliseconds): it is new or a
/// regular file ([`output_target`]), and its directory takes new files.
pub fn check_writable(path: &Path) -> std::result::Result<(), String> {
    let path = output_target(path)?;
    let dir = parent_of(&path);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return Err(format!("cannot create directory {}: {e}", dir.display()));
    }
    tempfile::Builder::new()
        .prefix(".klab-probe-")
        .tempfile_in(&dir)
        .map(|_| ())
        .map_err(|e| format!("cannot write in {}: {e}", dir.display()))
}

/// `x.json` → `x.publish.hlog`.
pub fn sibling(json: &Path, suffix: &str) -> PathBuf {
    let stem = json
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "result".into());
    json.with_file_name(format!("{stem}.{suffix}"))
}

/// A result plus the histograms behind it.
#[derive(Clone)]
pub struct Measurement {
    pub result: StepResult,
    pub publish: Recorder,
    pub e2e: Recorder,
    pub origin: std::time::SystemTime,
}

impl Measurement {
    /// Writes the histogram logs beside `json`, then the JSON itself.
    pub fn save(&mut self, json: &Path) -> Result<()> {
        // Beside the file itself when `json` is a link to it.
        let json = &output_target(json).map_err(|e| anyhow::anyhow!("{}: {e}", json.display()))?;
        let publish = sibling(json, "publish.hlog");
        let e2e = sibling(json, "e2e.hlog");
        let mut buf = Vec::new();
        self.publish.write_log(&mut buf, self.origin, "publish")?;
        write_atomic(&publish, &buf)?;
        buf.clear();
        self.e2e.write_log(&mut buf, self.origin, "end-to-end")?;
        write_atomic(&e2e, &buf)?;
        let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().to_string());
        self.result.histograms.publish = name(&publish);
        self.result.histograms.e2e = name(&e2e);
        write_json(json, &self.result)
    }

    /// This measurement and `other` (the same step measured again) as one:
    /// their seconds side by side, percentiles and noise from both, rates
    /// weighted by their windows, counts added. `result.runs` says how
    /// many measurements it holds.
    pub fn pool(&self, other: &Measurement) -> Measurement {
        let mut publish = self.publish.clone();
        publish.append(&other.publish);
        let mut e2e = self.e2e.clone();
        e2e.append(&other.e2e);
        let (a, b) = (&self.result, &other.result);
        let (wa, wb) = (a.measured_seconds, b.measured_seconds);
        let weighted = |x: f64, y: f64| {
            if wa + wb > 0.0 {
                (x * wa + y * wb) / (wa + wb)
            } else {
                (x + y) / 2.0
            }
        };
        let mut r = b.clone();
        r.complete = a.complete && b.complete;
        r.reason = a.reason.clone().or_else(|| b.reason.clone());
        crate::add_counts!(r += a: produced, acked, failed, consumed, lost, duplicated,
            reordered, corrupt, foreign, warmup_records, unsent);
        crate::stats::add_each(&mut r.acked_per_partition, &a.acked_per_partition);
        r.achieved_rate = weighted(a.achieved_rate, b.achieved_rate);
        r.throughput.msgs_per_s = weighted(a.throughput.msgs_per_s, b.throughput.msgs_per_s);
        r.throughput.mb_per_s = weighted(a.throughput.mb_per_s, b.throughput.mb_per_s);
        r.read_rate = weighted(a.read_rate, b.read_rate);
        r.measured_seconds = wa + wb;
        r.publish_latency_ms = publish.percentiles();
        r.e2e_latency_ms = e2e.percentiles();
        r.noise = crate::stats::noise::of(&publish, &e2e, r.throughput.msgs_per_s);
        r.runs = a.runs.max(1) + b.runs.max(1);
        r.gc = match (&a.gc, &b.gc) {
            (Some(x), Some(y)) => Some(crate::model::GcSummary::new(
                x.pauses + y.pauses,
                x.total_ms + y.total_ms,
                x.max_ms.max(y.max_ms),
                y.heap.clone().or_else(|| x.heap.clone()),
            )),
            (x, y) => y.clone().or_else(|| x.clone()),
        };
        Measurement {
            result: r,
            publish,
            e2e,
            origin: self.origin,
        }
    }
}

/// The current time as an RFC 3339 UTC timestamp.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(secs)
}

/// Seconds since the epoch as `YYYY-MM-DDThh:mm:ssZ` (proleptic Gregorian).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// A directory name for a run: `20261123-051702` (UTC), made unique.
pub fn new_run_dir(base: &Path) -> Result<PathBuf> {
    let stamp = utc_now()
        .replace(['-', ':'], "")
        .replace('T', "-")
        .trim_end_matches('Z')
        .to_string();
    for i in 0..1000 {
        let name = if i == 0 {
            stamp.clone()
        } else {
            format!("{stamp}-{i}")
        };
        let dir = base.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(base).map_err(|e| cannot(base, e))?;
                continue;
            }
            Err(e) => return Err(cannot(base, e)),
        }
    }
    anyhow::bail!("could not create a run directory under {}", base.display())
}

/// `base` is always the `--results` a user gave: a folder klab cannot
/// create there is a usage error (exit 2), and nothing has started yet.
fn cannot(base: &Path, e: std::io::Error) -> anyhow::Error {
    crate::usage!(
        "--results {}: cannot create a run folder there ({e}); give a directory klab may write in",
        base.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    #[test]
    fn pooled_keyed_measurements_add_their_partitions() {
        let m = |parts: Vec<u64>| Measurement {
            result: StepResult {
                acked: parts.iter().sum(),
                acked_per_partition: parts,
                ..Default::default()
            },
            publish: Recorder::default(),
            e2e: Recorder::default(),
            origin: std::time::SystemTime::UNIX_EPOCH,
        };
        let pooled = m(vec![5, 1]).pool(&m(vec![2, 3, 4]));
        assert_eq!(pooled.result.acked_per_partition, [7, 4, 4]);
        assert_eq!(pooled.result.acked, 15);
    }

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_400_000), "2026-11-23T02:13:20Z");
    }

    #[test]
    fn atomic_write_leaves_no_temp_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("r.json");
        write_json(&p, &serde_json::json!({"a": 1})).unwrap();
        write_json(&p, &serde_json::json!({"a": 2})).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&p), 0o644);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_json(&p, &serde_json::json!({"a": 2})).unwrap();
        assert_eq!(mode(&p), 0o640);
        let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1);
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(v["a"], 2);
    }

    #[test]
    fn output_replaces_only_a_regular_file_or_nothing() {
        let d = tempfile::tempdir().unwrap();
        // A FIFO stands for any file that is not a regular one (/dev/null,
        // /dev/full): refused, and left as it was.
        let fifo = d.path().join("pipe");
        crate::infile::mkfifo(&fifo);
        let e = check_writable(&fifo).unwrap_err();
        assert!(e.contains("a FIFO, not a regular file"), "{e}");
        let e = write_atomic(&fifo, b"x").unwrap_err().to_string();
        assert!(e.contains("a FIFO"), "{e}");
        assert!(
            std::fs::symlink_metadata(&fifo)
                .unwrap()
                .file_type()
                .is_fifo()
        );
        let dev = check_writable(Path::new("/dev/null")).unwrap_err();
        assert!(dev.contains("a device"), "{dev}");
        // A link is followed: the file it names is replaced, the link stays.
        let real = d.path().join("sub/real.json");
        std::fs::create_dir_all(real.parent().unwrap()).unwrap();
        std::fs::write(&real, "old").unwrap();
        let link = d.path().join("link.json");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        check_writable(&link).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new");
        let dangling = d.path().join("dangling");
        std::os::unix::fs::symlink(d.path().join("nothing/here"), &dangling).unwrap();
        assert!(
            check_writable(&dangling)
                .unwrap_err()
                .contains("link to nothing")
        );
    }

    #[test]
    fn writability() {
        let d = tempfile::tempdir().unwrap();
        assert!(check_writable(&d.path().join("a/b.json")).is_ok());
        assert!(check_writable(d.path()).is_err());
        assert!(check_writable(Path::new("/proc/klab/x.json")).is_err());
    }

    #[test]
    fn run_dirs_are_unique() {
        let d = tempfile::tempdir().unwrap();
        let a = new_run_dir(&d.path().join("results")).unwrap();
        let b = new_run_dir(&d.path().join("results")).unwrap();
        assert_ne!(a, b);
        assert_eq!(
            sibling(Path::new("x/r.json"), "e2e.hlog"),
            Path::new("x/r.e2e.hlog")
        );
    }
}
