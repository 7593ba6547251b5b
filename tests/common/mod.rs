//! Shared by the integration tests: a real Kafka broker started through
//! klab's own code, and helpers to run the klab binary.
#![allow(dead_code)]

use klab::broker::kafka_home::KafkaHome;
use klab::broker::local::{LocalBroker, LocalOptions};
use klab::model::BrokerConfig;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The Kafka installation the tests use. scripts/test sets KLAB_KAFKA_HOME;
/// without it the tests fail and say how to get one (they never skip).
pub fn kafka_home() -> KafkaHome {
    match KafkaHome::locate(None) {
        Ok(h) => h,
        Err(e) => panic!(
            "integration tests need a Kafka installation: run ./scripts/test, or export KLAB_KAFKA_HOME=$(./scripts/kafka-home) ({e})"
        ),
    }
}

pub fn start_broker(dir: &Path, cfg: BrokerConfig) -> LocalBroker {
    LocalBroker::start(LocalOptions::new(kafka_home(), dir.join("broker"), cfg))
        .expect("starting a local broker")
}

/// One broker with Kafka's defaults for every test of a test binary that
/// neither kills, pauses nor reconfigures it; each test uses its own topic.
/// It is started from a thread that lives as long as the test process (the
/// kernel kills the JVM when the thread that started it ends, see
/// `broker::local`), and dies with the process.
pub fn shared_broker() -> std::sync::MutexGuard<'static, LocalBroker> {
    static BROKER: OnceLock<Mutex<LocalBroker>> = OnceLock::new();
    BROKER
        .get_or_init(|| {
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
                "shared-broker-{}",
                std::env::current_exe()
                    .ok()
                    .and_then(|e| e.file_stem().map(|s| s.to_string_lossy().to_string()))
                    .unwrap_or_default()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let b = LocalBroker::start(LocalOptions::new(
                    kafka_home(),
                    dir,
                    BrokerConfig::default(),
                ));
                let _ = tx.send(b);
                loop {
                    std::thread::park();
                }
            });
            let b = rx
                .recv()
                .expect("the broker thread")
                .expect("starting the shared broker");
            Mutex::new(b)
        })
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Waits (up to `timeout`) until a measurement against `bootstrap` has
/// started its measured window.
pub fn wait_measuring(sub: &klab::events::Subscription, bootstrap: &str, timeout: Duration) {
    let seen = sub.wait_for(
        timeout,
        |e| matches!(e, klab::events::Event::Measuring { bootstrap: b, .. } if b == bootstrap),
    );
    assert!(
        seen.is_some(),
        "no measured window on {bootstrap} within {timeout:?}"
    );
}

pub fn klab() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_klab"));
    c.env("KLAB_KAFKA_HOME", kafka_home().dir);
    // These tests check what klab counts and writes, not the broker's
    // steady-state latency: a short JIT warm-up saves minutes.
    c.env("KLAB_JIT_WARM_UP", "6s");
    // Each command its own calibration cache: a figure kept by another
    // test (or by the user's own runs) would change what a test sees.
    let cache = fresh_cache_dir();
    // ... and its own machine lock: the suite runs measurements side by
    // side on purpose (tests/cli.rs checks the lock itself).
    c.env("KLAB_LOCK_DIR", &cache);
    c.env("KLAB_CACHE_DIR", cache);
    c
}

/// A new, empty directory under Cargo's scratch space for tests.
pub fn fresh_cache_dir() -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("klab-cache")
        .join(format!("{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("creating a test cache directory");
    d
}

/// Asserts that a command (klab, kubectl) exited 0, showing both of its
/// streams if not, and returns its stdout.
#[track_caller]
pub fn stdout_of_success(out: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing klab writes to a pipe carries terminal colour codes.
    for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        assert!(
            !bytes.contains(&0x1b),
            "an escape code in piped {name}:\n{}",
            String::from_utf8_lossy(bytes)
        );
    }
    stdout
}

/// Polls `f` until it returns Some or the deadline passes.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// JVMs whose command line mentions `needle` (a test's own directory).
pub fn jvms_mentioning(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd);
        if cmd.contains("kafka.Kafka") && cmd.contains(needle) {
            // A zombie has an empty cmdline; this one is alive.
            out.push(pid);
        }
    }
    out
}

/// The only run directory under `results`.
pub fn only_run_dir(results: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(results)
        .expect("results dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

/// The lines a child writes to a pipe, as they come.
pub fn lines_of(pipe: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for a line containing `needle` (up to `timeout`) and returns it;
/// fails with every line seen so far.
pub fn wait_line(
    lines: &std::sync::mpsc::Receiver<String>,
    needle: &str,
    timeout: Duration,
) -> String {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(l) if l.contains(needle) => return l,
            Ok(l) => seen.push(l),
            Err(_) => panic!(
                "no line with '{needle}' within {timeout:?}; got:\n{}",
                seen.join("\n")
            ),
        }
    }
}

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `/metrics` scrape as the OpenMetrics parser reads it.
pub type Exposition = openmetrics_parser::MetricsExposition<
    openmetrics_parser::OpenMetricsType,
    openmetrics_parser::OpenMetricsValue,
>;

/// A family's one sample: a counter's or gauge's value, a histogram's count.
pub fn value(e: &Exposition, family: &str) -> f64 {
    let f = e
        .families
        .get(family)
        .unwrap_or_else(|| panic!("no family {family}"));
    let m = f
        .iter_samples()
        .next()
        .unwrap_or_else(|| panic!("{family} has no sample"));
    match &m.value {
        openmetrics_parser::OpenMetricsValue::Counter(c) => c.value.as_f64(),
        openmetrics_parser::OpenMetricsValue::Gauge(g) => g.as_f64(),
        openmetrics_parser::OpenMetricsValue::Histogram(h) => h.count.unwrap_or(0) as f64,
        other => panic!("{family}: {other:?}"),
    }
}

/// Writes a lab folder `dir/name` with `lab_toml` and a one-line README.
pub fn write_lab(dir: &Path, name: &str, lab_toml: &str) {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("lab.toml"), lab_toml).unwrap();
    std::fs::write(d.join("README.md"), format!("# {name}\n")).unwrap();
}

/// Makes a FIFO at `path` (a file that is not a regular one, nobody writing).
pub fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o600) },
        0,
        "mkfifo {path:?}"
    );
}

/// True when process `pid` has ended: gone, or a zombie waiting for
/// whoever adopted it.
pub fn has_ended(pid: &str) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next());
    matches!(state, None | Some('Z') | Some('X'))
}
