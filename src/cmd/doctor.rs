//! `klab doctor`: is this machine ready for a class? Each check says ok,
//! WARN or FAIL, what it found and what to do. It starts nothing, measures
//! nothing and never takes the machine from a run: it can run beside one.
//! Exit 0 when nothing FAILs, 1 when something does, 2 for bad input.

use super::Outcome;
use crate::broker::kafka_home::{ENV_KAFKA_HOME, KafkaHome, java, java_version};
use crate::cli::DoctorArgs;
use crate::lab::calibration::{Calibration, Key, cache_dir};
use crate::lab::{Labs, labs_dir, tracks};
use crate::stats::report::{check_writable, write_json};
use crate::stats::table::new_table;
use crate::units::MemSize;
use crate::usage;
use anyhow::Result;
use serde::Serialize;
use std::path::{Path, PathBuf};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// What a broker JVM may take beyond its heap (metaspace, code cache,
/// thread stacks, direct buffers): an allowance, not a measurement. The
/// heap is the upper part: the 1 GiB-heap broker of tests/kit.rs's short
/// check (1,000 records/s) peaked at 418 MiB resident, its heap not yet
/// all touched.
const JVM_BEYOND_HEAP: u64 = 256 * MIB;
/// klab's own process at a lab's load (producers, consumer, histograms):
/// an allowance.
const KLAB_RSS: u64 = 256 * MIB;
/// What a run folder may take while it runs (the brokers' data of a step,
/// logs, results): an allowance; the short check above left 476 KiB once
/// its brokers' data was deleted.
const DISK_PER_RUN: u64 = 2 * GIB;
/// Listeners a local cluster of three binds on 127.0.0.1 (broker and
/// controller per node), with room.
const PORTS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
enum Status {
    #[serde(rename = "ok")]
    Ok,
    #[serde(rename = "WARN")]
    Warn,
    #[serde(rename = "FAIL")]
    Fail,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
struct Finding {
    check: String,
    status: Status,
    detail: String,
    /// What to do about it (empty when nothing).
    todo: String,
}

fn finding(check: &str, status: Status, detail: String, todo: &str) -> Finding {
    Finding {
        check: check.to_string(),
        status,
        detail,
        todo: todo.to_string(),
    }
}

pub fn execute(a: &DoctorArgs) -> Result<Outcome> {
    if let Some(j) = a.json.as_deref().filter(|j| *j != Path::new("-")) {
        check_writable(j).map_err(|e| usage!("--json {}: {e}", j.display()))?;
    }
    let mut out = vec![java_check(), kafka_check(a.kafka.kafka_home.as_deref())];
    let root = labs_dir(a.dir.labs.as_deref());
    let loaded = labs_checks(&root, &mut out);
    out.push(cores_check());
    if let Some(f) = load_check() {
        out.push(f);
    }
    memory_checks(&loaded, &mut out);
    out.push(disk_check(&a.results));
    out.push(ports_check());
    out.push(live_view_check());
    out.push(lock_check());
    out.push(calibration_check());
    let fails = out.iter().filter(|f| f.status == Status::Fail).count();
    let warns = out.iter().filter(|f| f.status == Status::Warn).count();
    let verdict = match (fails, warns) {
        (0, 0) => "ready for a class: every check ok".to_string(),
        (0, w) => format!("ready for a class, with {w} warning(s) to read"),
        (f, _) => format!("not ready: {f} check(s) FAIL (exit 1)"),
    };
    let json = serde_json::json!({
        "ready": fails == 0,
        "verdict": verdict,
        "checks": out,
    });
    match a.json.as_deref() {
        Some(p) if p == Path::new("-") => crate::outln!("{}", serde_json::to_string_pretty(&json)?),
        other => {
            if let Some(p) = other {
                write_json(p, &json)?;
            }
            let mut t = new_table(&["check", "", "detail", "what to do"]);
            for f in &out {
                t.add_row(vec![
                    f.check.clone(),
                    f.status.as_str().to_string(),
                    f.detail.clone(),
                    f.todo.clone(),
                ]);
            }
            crate::outln!("{t}");
            crate::outln!("{verdict}");
        }
    }
    Ok(if fails == 0 {
        Outcome::Done
    } else {
        Outcome::NotAsExpected
    })
}

/// `openjdk version "17.0.15" 2025-04-15` → 17; `"1.8.0_381"` → 8.
fn java_major(line: &str) -> Option<u32> {
    let v = line.split('"').nth(1)?;
    let mut parts = v.split(|c: char| !c.is_ascii_digit());
    let first: u32 = parts.next()?.parse().ok()?;
    if first == 1 {
        parts.next()?.parse().ok()
    } else {
        Some(first)
    }
}

fn java_check() -> Finding {
    const GET: &str = "install a JDK 17 or newer (the kit's, or your system's openjdk-17/21), then set JAVA_HOME or put java on PATH";
    let path = match java() {
        Ok(p) => p,
        Err(e) => return finding("java", Status::Fail, e.to_string(), GET),
    };
    let line = match java_version(&path) {
        Ok(l) => l,
        Err(e) => {
            return finding(
                "java",
                Status::Fail,
                format!("{}: {e:#}", path.display()),
                GET,
            );
        }
    };
    match java_major(&line) {
        Some(m) if m >= 17 => finding(
            "java",
            Status::Ok,
            format!("Java {m}: {line} ({})", path.display()),
            "",
        ),
        Some(m) => finding(
            "java",
            Status::Fail,
            format!(
                "Java {m} at {}; Kafka 4.1 needs 17 or newer",
                path.display()
            ),
            GET,
        ),
        None => finding(
            "java",
            Status::Fail,
            format!(
                "{} -version said {line:?}, not a version klab can read",
                path.display()
            ),
            GET,
        ),
    }
}

fn kafka_check(flag: Option<&Path>) -> Finding {
    let from = match flag {
        Some(_) => "--kafka-home",
        None => ENV_KAFKA_HOME,
    };
    match KafkaHome::locate(flag) {
        Ok(k) if k.version.starts_with("4.1.") => finding(
            "kafka",
            Status::Ok,
            format!("Kafka {} at {} ({from})", k.version, k.dir.display()),
            "",
        ),
        Ok(k) => finding(
            "kafka",
            Status::Warn,
            format!(
                "Kafka {} at {} ({from}); the labs are written and rehearsed for 4.1",
                k.version,
                k.dir.display()
            ),
            "use Kafka 4.1 (scripts/kafka-home fetches 4.1.2's jars), or rehearse the labs on this one",
        ),
        Err(e) => finding(
            "kafka",
            Status::Fail,
            e.to_string(),
            "export KLAB_KAFKA_HOME=<the kit's kafka-4.1.2 folder> (or $(./scripts/kafka-home) with internet)",
        ),
    }
}

/// One row per track: its labs load (every `lab.toml` valid) and every
/// `my-fix.toml` parses. Returns the tracks that loaded.
fn labs_checks(root: &Path, out: &mut Vec<Finding>) -> Vec<(String, Labs)> {
    let found = tracks(root);
    if found.is_empty() {
        out.push(finding(
            "labs",
            Status::Fail,
            format!("no labs at {}", root.display()),
            "run klab from the kit's klab folder (it has labs/), or pass --labs DIR or set KLAB_LABS_DIR",
        ));
        return Vec::new();
    }
    let mut loaded = Vec::new();
    for (name, dir) in found {
        let check = format!("labs: {name}");
        let labs = match Labs::load(&dir) {
            Ok(l) => l,
            Err(e) => {
                out.push(finding(
                    &check,
                    Status::Fail,
                    e.to_string(),
                    "restore the lab files from the kit (git checkout -- labs/, or copy them again)",
                ));
                continue;
            }
        };
        let broken: Vec<String> = labs
            .labs
            .iter()
            .map(|l| l.dir.join("my-fix.toml"))
            .filter(|f| f.is_file())
            .filter_map(|f| crate::lab::file::parse_fix_file(&f).err())
            .map(|e| e.to_string())
            .collect();
        let ids: Vec<&str> = labs.labs.iter().map(|l| l.number.as_str()).collect();
        let detail = format!(
            "{} labs ({}), {} broker(s), in {}",
            labs.labs.len(),
            ids.join(" "),
            labs.baseline().brokers,
            dir.display()
        );
        if broken.is_empty() {
            out.push(finding(&check, Status::Ok, detail, ""));
        } else {
            out.push(finding(
                &check,
                Status::Warn,
                format!("{detail}; a fix file klab lab check would refuse: {}", broken.join("; ")),
                "repair or restore that my-fix.toml (the kit's copy is a template with every key commented out)",
            ));
        }
        loaded.push((name, labs));
    }
    loaded
}

fn cores_check() -> Finding {
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if n >= 2 {
        finding("cores", Status::Ok, format!("{n}"), "")
    } else {
        finding(
            "cores",
            Status::Warn,
            format!(
                "{n}: the labs are rehearsed on 2 cores; on 1 the brokers and the load share it"
            ),
            "rehearse the class's labs here (klab lab rehearse TRACK --runs 3 --quick) before counting on them",
        )
    }
}

/// Other work on the machine right now (a build, a browser, another
/// program): the 1-minute load average against the cores. A busy machine
/// makes the capacity labs' p99 and the rehearsal's figures the machine's,
/// not the lab's. None where the system does not say (not Linux).
fn load_check() -> Option<Finding> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let load1: f64 = text.split_whitespace().next()?.parse().ok()?;
    let cores = std::thread::available_parallelism().ok()?.get();
    let detail = format!("1-minute load average {load1:.1} on {cores} core(s)");
    Some(if load1 > cores as f64 {
        finding(
            "load",
            Status::Warn,
            format!("{detail}: something else is using the machine"),
            "stop other work (builds, browsers) before a class or a rehearsal: the capacity labs' verdicts rest on tail latency",
        )
    } else {
        finding("load", Status::Ok, detail, "")
    })
}

/// What a run of a track holds in memory at most: its broker JVMs (a
/// cluster's nodes; one broker and its warm spares, their heaps capped as
/// the session caps them), each its heap and what a JVM takes beyond
/// it, and klab's own process.
fn need_of(labs: &Labs) -> u64 {
    let heaps = labs.labs.iter().flat_map(|l| {
        [
            crate::broker::knobs::heap_of(&l.broker).bytes(),
            crate::broker::knobs::heap_of(&l.fixed_broker(&l.fix)).bytes(),
        ]
    });
    let heap = heaps.max().unwrap_or(MemSize::GIB);
    let brokers = u64::from(labs.baseline().brokers.max(1));
    let jvms = if brokers > 1 {
        brokers
    } else {
        1 + crate::broker::spares::allowed(1) as u64
    };
    let heap_total = if brokers > 1 {
        brokers * heap
    } else {
        (jvms * heap).min(crate::broker::spares::MAX_TOTAL_HEAP.max(heap))
    };
    heap_total + jvms * JVM_BEYOND_HEAP + KLAB_RSS
}

fn gib(b: u64) -> String {
    format!("{:.1} GiB", b as f64 / GIB as f64)
}

fn memory_checks(tracks: &[(String, Labs)], out: &mut Vec<Finding>) {
    let Some(free) = crate::broker::knobs::meminfo("MemAvailable") else {
        out.push(finding(
            "memory",
            Status::Warn,
            "cannot read MemAvailable from /proc/meminfo".into(),
            "check by hand: the durability track needs about 2.5 GiB free, the others about 4 GiB",
        ));
        return;
    };
    for (name, labs) in tracks {
        let need = need_of(labs);
        let check = format!("memory: {name}");
        let detail = format!(
            "{} available, a {name} run needs up to {}",
            gib(free),
            gib(need)
        );
        if free >= need + need / 4 {
            out.push(finding(&check, Status::Ok, detail, ""));
        } else if free >= need {
            out.push(finding(
                &check,
                Status::Warn,
                format!("{detail}: little to spare"),
                "close browsers, IDEs and containers before the class",
            ));
        } else {
            out.push(finding(
                &check,
                Status::Fail,
                detail,
                "free memory (close other programs), or run this track on another machine",
            ));
        }
    }
}

/// Free space of the file system `path` (or its nearest existing
/// ancestor) is on, for an unprivileged user.
fn free_disk(path: &Path) -> std::io::Result<(u64, PathBuf)> {
    let mut p = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    while !p.exists() {
        if !p.pop() {
            return Err(std::io::Error::other("no existing folder on the way"));
        }
    }
    let c =
        std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: `c` is a valid C string; `st` is written by statvfs only.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // the field types differ by platform
    Ok((st.f_bavail as u64 * st.f_frsize as u64, p))
}

fn disk_check(results: &Path) -> Finding {
    match free_disk(results) {
        Err(e) => finding(
            "disk",
            Status::Warn,
            format!(
                "cannot tell the free space under {}: {e}",
                results.display()
            ),
            "check by hand: a run needs up to 2 GiB while it runs",
        ),
        Ok((free, at)) => {
            let detail = format!(
                "{} free under {} ({}); a run takes up to {} while it runs",
                gib(free),
                results.display(),
                at.display(),
                gib(DISK_PER_RUN)
            );
            if free >= 5 * DISK_PER_RUN {
                finding("disk", Status::Ok, detail, "")
            } else if free >= DISK_PER_RUN {
                finding(
                    "disk",
                    Status::Warn,
                    detail,
                    "free some space: old run folders under results/ can go (keep the bundles handed in)",
                )
            } else {
                finding(
                    "disk",
                    Status::Fail,
                    detail,
                    "free disk space, or point --results at a file system with room",
                )
            }
        }
    }
}

fn ports_check() -> Finding {
    let held: Vec<_> = (0..PORTS)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect();
    match held.iter().find_map(|r| r.as_ref().err()) {
        None => finding(
            "loopback ports",
            Status::Ok,
            format!("{PORTS} free ports bound on 127.0.0.1 at once"),
            "",
        ),
        Some(e) => finding(
            "loopback ports",
            Status::Fail,
            format!("cannot bind a port on 127.0.0.1: {e}"),
            "the brokers listen on 127.0.0.1: enable the loopback interface, or ask why a firewall or sandbox blocks it",
        ),
    }
}

fn live_view_check() -> Finding {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], crate::ui::DEFAULT_PORT));
    match std::net::TcpListener::bind(addr) {
        Ok(_) => finding(
            "live view port",
            Status::Ok,
            format!("{addr} is free for --ui"),
            "",
        ),
        Err(e) => finding(
            "live view port",
            Status::Warn,
            format!("{addr}: {e}; a --ui run would be refused there"),
            "stop what holds it (an earlier --ui page waiting for Ctrl-C?), or give --ui=PORT",
        ),
    }
}

/// Whether a process holds the machine lock, read from /proc/locks (the
/// lock itself is never taken here).
fn lock_holder(path: &Path) -> Option<Option<u32>> {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(path).ok()?.ino();
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let holder = locks.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let pos = f.iter().position(|w| *w == "FLOCK")?;
        let pid: u32 = f.get(pos + 3)?.parse().ok()?;
        let inode: u64 = f.get(pos + 4)?.rsplit(':').next()?.parse().ok()?;
        (inode == ino).then_some(pid)
    });
    Some(holder)
}

fn lock_check() -> Finding {
    let path = crate::app::machine::lock_path();
    if !path.exists() {
        return finding(
            "machine lock",
            Status::Ok,
            format!("free (no klab has measured here yet; {})", path.display()),
            "",
        );
    }
    match lock_holder(&path) {
        Some(None) => finding(
            "machine lock",
            Status::Ok,
            format!("free ({})", path.display()),
            "",
        ),
        Some(Some(pid)) => {
            let who = std::fs::read_to_string(&path).unwrap_or_default();
            let who = if who.trim().is_empty() {
                format!("pid {pid}")
            } else {
                who.trim().to_string()
            };
            finding(
                "machine lock",
                Status::Warn,
                format!("another klab is measuring: {who}"),
                "a class run now would be refused (exit 2): wait for it to end, or stop it",
            )
        }
        None => finding(
            "machine lock",
            Status::Warn,
            format!(
                "cannot tell whether a klab holds {} (no /proc/locks)",
                path.display()
            ),
            "a run that finds the machine taken says so and exits 2",
        ),
    }
}

/// The calibrations kept for this machine (its CPU, cores, memory and
/// this klab), by cluster size.
fn calibration_check() -> Finding {
    let Some(dir) = cache_dir().map(|d| d.join("calibration")) else {
        return finding(
            "calibration",
            Status::Warn,
            "no cache folder (neither KLAB_CACHE_DIR, XDG_CACHE_HOME nor HOME is set)".into(),
            "set HOME or KLAB_CACHE_DIR, or every run calibrates again",
        );
    };
    let machine = Key::machine();
    let mut kept: Vec<Calibration> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| crate::infile::read_text(&e.path(), crate::infile::MAX_TEXT).ok())
                .filter_map(|t| serde_json::from_str::<Calibration>(&t).ok())
                .filter(|c| {
                    machine
                        .0
                        .iter()
                        .all(|(k, v)| c.key.0.get(k).is_some_and(|w| w == v))
                })
                .collect()
        })
        .unwrap_or_default();
    if kept.is_empty() {
        return finding(
            "calibration",
            Status::Warn,
            format!("none kept for this machine in {}", dir.display()),
            "the first run of each track measures it before its labs; klab lab rehearse TRACK --runs 3 --quick the day before keeps it",
        );
    }
    kept.sort_by(|a, b| a.key.0.get("brokers").cmp(&b.key.0.get("brokers")));
    let what: Vec<String> = kept
        .iter()
        .map(|c| {
            format!(
                "{} broker(s){}: {} records/s ({})",
                c.key.0.get("brokers").map_or("?", String::as_str),
                if c.key.0.get("quick").is_some_and(|q| q == "true") {
                    " --quick"
                } else {
                    ""
                },
                crate::stats::table::fmt_rate(c.capacity_records_per_s),
                c.measured_at
            )
        })
        .collect();
    finding(
        "calibration",
        Status::Ok,
        format!("{} kept for this machine: {}", kept.len(), what.join("; ")),
        "",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_versions() {
        assert_eq!(
            java_major("openjdk version \"17.0.15\" 2025-04-15"),
            Some(17)
        );
        assert_eq!(java_major("java version \"1.8.0_381\""), Some(8));
        assert_eq!(java_major("openjdk version \"21\" 2023-09-19"), Some(21));
        assert_eq!(java_major("something else"), None);
    }

    #[test]
    fn the_lock_holder_is_read_without_taking_the_lock() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("klab-measure.lock");
        std::fs::write(&path, "").unwrap();
        if std::fs::read_to_string("/proc/locks").is_err() {
            return;
        }
        assert_eq!(lock_holder(&path), Some(None));
        let f = std::fs::File::open(&path).unwrap();
        f.try_lock().unwrap();
        assert_eq!(lock_holder(&path), Some(Some(std::process::id())));
        drop(f);
        assert_eq!(lock_holder(&path), Some(None));
    }
}
