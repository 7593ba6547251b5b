//! One Kafka JVM of a local cluster: its files, its process, its signals.
//!
//! klab never leaves a JVM behind. The JVM runs in its own process group
//! (so a terminal's Ctrl-C reaches klab, which then stops the brokers in
//! order) and the kernel is asked to SIGKILL it if the thread that started
//! it goes away (PR_SET_PDEATHSIG): that covers klab being killed,
//! panicking past its destructors, or a second Ctrl-C. Start nodes from a
//! thread that lives as long as the cluster.

use crate::broker::kafka_home::KafkaHome;
use crate::broker::render::{self, NodeLayout};
use crate::model::BrokerConfig;
use crate::units::MemSize;
use anyhow::{Context, Result, anyhow, bail};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How [`Node::stop`] ended the JVM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// It was not running (never started, already stopped, or died).
    NotRunning,
    /// It shut down on SIGTERM within the grace period.
    Clean,
    /// It ignored SIGTERM for the grace period and was killed.
    Killed,
}

pub(crate) use crate::process::{spawn_tied, tail};

/// The heap the JVM itself reports in its GC log ("Heap Max Capacity").
pub fn heap_from_gc_log(path: &Path) -> Option<MemSize> {
    let text = fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.contains("Heap Max Capacity:"))?;
    let v = line.split("Heap Max Capacity:").nth(1)?.trim();
    // The JVM prints e.g. "256M" or "1G".
    v.to_ascii_lowercase().parse().ok()
}

/// The least free space klab starts a local broker with: room for its
/// own logs and the metadata log, and the records of a short load.
pub const MIN_FREE_BYTES: u64 = 256 << 20;

/// Bytes an unprivileged writer may still use on the file system of
/// `path` (or of its nearest ancestor that exists).
fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let mut p = path;
    while !p.exists() {
        match p.parent() {
            Some(q) if !q.as_os_str().is_empty() => p = q,
            _ => {
                p = Path::new(".");
                break;
            }
        }
    }
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs fills the struct it is given.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

/// `Err` (a sentence naming the disk) when the file system of `dir` has
/// less than `least` bytes free.
pub fn check_free_space(dir: &Path, least: u64) -> Result<()> {
    match free_bytes(dir) {
        Some(free) if free < least => bail!(
            "the disk is (nearly) full: the file system of {} has {} MiB free, and a local broker needs at least {} MiB for its logs and the load's records; free some space or give --results a folder on another disk",
            dir.display(),
            free >> 20,
            least >> 20
        ),
        _ => Ok(()),
    }
}

/// What Java says when a write finds the disk full.
const NO_SPACE: &str = "No space left on device";

/// Formats a KRaft log directory with Kafka's StorageTool for the node
/// `server_properties` describes (a no-op on a formatted one). Ctrl-C
/// ends the tool at once.
pub fn format_storage(
    java: &Path,
    kafka: &KafkaHome,
    log4j: &Path,
    server_properties: &Path,
    cluster_id: &str,
) -> Result<()> {
    let mut cmd = Command::new(java);
    cmd.args(["-Xmx256m", "-cp", &kafka.classpath()])
        .arg(format!("-Dlog4j2.configurationFile={}", log4j.display()))
        .args([
            "kafka.tools.StorageTool",
            "format",
            "--ignore-formatted",
            "-t",
            cluster_id,
            "-c",
        ])
        .arg(server_properties)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child =
        spawn_tied(&mut cmd).context("running Kafka's StorageTool to format the log directory")?;
    // Its output is a few lines: read it in threads so a full pipe never
    // blocks the tool, and look at Ctrl-C while it runs.
    let read = |p: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = p {
                let _ = p.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = read(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = read(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if crate::cancel::interrupted() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(crate::error::Interrupted.into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = format!(
        "{}{}",
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default()
    );
    if !status.success() {
        if text.contains(NO_SPACE) {
            bail!(
                "formatting KRaft storage failed: the disk is full ({NO_SPACE}; {} MiB free under {})",
                free_bytes(server_properties).unwrap_or(0) >> 20,
                server_properties
                    .parent()
                    .unwrap_or(Path::new("."))
                    .display()
            );
        }
        bail!("formatting KRaft storage failed ({status}):\n{text}");
    }
    Ok(())
}

/// CPU seconds (user + system) of the JIT compiler threads of JVM `pid`
/// (Linux names them "C1 CompilerThre..." and "C2 CompilerThre...").
pub fn jit_cpu_s(pid: u32) -> Option<f64> {
    let ticks = crate::units::clock_ticks();
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0u64;
    for t in tasks.flatten() {
        let comm = fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if !(comm.starts_with("C1 CompilerThre") || comm.starts_with("C2 CompilerThre")) {
            continue;
        }
        let Ok(stat) = fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        // Fields after the ")" that closes the name: utime is the 12th
        // and stime the 13th of them.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let (u, s) = (
            f.get(11)?.parse::<u64>().ok()?,
            f.get(12)?.parse::<u64>().ok()?,
        );
        total += u + s;
    }
    Some(total as f64 / ticks)
}

/// One node: where it lives and, while it runs, its JVM.
pub struct Node {
    pub layout: NodeLayout,
    /// server.properties, log4j2.properties, broker.log, gc.log, data/.
    pub dir: PathBuf,
    child: Option<Child>,
    starts: u32,
    formatted: bool,
    /// A second Ctrl-C kills the JVM and removes its data (see `cancel`).
    emergency: Option<crate::cancel::EmergencyGuard>,
    /// Stopped, killed or paused on purpose (a fault): its exit is no failure.
    pub down: bool,
    /// Paused by a fault (SIGSTOP): a stop continues it first.
    pub paused: bool,
}

impl Node {
    pub fn new(layout: NodeLayout, dir: PathBuf) -> Node {
        Node {
            layout,
            dir,
            child: None,
            starts: 0,
            formatted: false,
            emergency: None,
            down: false,
            paused: false,
        }
    }

    pub fn id(&self) -> i32 {
        self.layout.node_id
    }

    pub fn bootstrap(&self) -> String {
        self.layout.bootstrap()
    }

    /// Where clients connect (through its proxy, with a network).
    pub fn client_bootstrap(&self) -> String {
        self.layout.client_bootstrap()
    }

    pub fn is_controller(&self) -> bool {
        self.layout.controller_port.is_some()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("broker.log")
    }

    /// This start's GC log.
    pub fn gc_log_path(&self) -> PathBuf {
        self.dir.join("gc.log")
    }

    pub fn data_dir(&self) -> PathBuf {
        PathBuf::from(&self.layout.log_dir)
    }

    /// Exit status if the JVM has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// True while the JVM runs.
    pub fn is_running(&mut self) -> bool {
        self.child.is_some() && self.exited().is_none()
    }

    /// An error naming how the node died, with the end of its log.
    pub fn death_report(&self, status: Option<ExitStatus>) -> anyhow::Error {
        let how = match status {
            Some(s) => match s.code() {
                Some(c) => format!("exited with status {c}"),
                None => {
                    use std::os::unix::process::ExitStatusExt;
                    format!("was killed by signal {}", s.signal().unwrap_or(0))
                }
            },
            None => "stopped answering".to_string(),
        };
        let who = if self.layout.cluster_size > 1 {
            format!("Kafka broker {}", self.id())
        } else {
            "the Kafka broker".to_string()
        };
        let why = self
            .disk_full()
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        anyhow!(
            "{who} {how}{why}; last lines of {}:\n{}",
            self.log_path().display(),
            tail(&self.log_path(), 20)
        )
    }

    /// A sentence when the end of the node's log says a write found the
    /// disk full (Kafka then takes its log directory offline, or stops).
    pub fn disk_full(&self) -> Option<String> {
        tail(&self.log_path(), 400).contains(NO_SPACE).then(|| {
            format!(
                "the disk is full: Kafka could not write under {} ({NO_SPACE}; {} MiB free now)",
                self.dir.display(),
                free_bytes(&self.dir).unwrap_or(0) >> 20
            )
        })
    }

    /// Writes the node's server.properties and log4j2 config for `cfg` and
    /// formats its storage the first time; returns the two files' paths.
    /// Safe to run for several nodes at once (each StorageTool is its own
    /// JVM, seconds of start-up each); writing the files again is cheap.
    pub fn prepare(
        &mut self,
        java: &Path,
        kafka: &KafkaHome,
        cfg: &BrokerConfig,
        cluster_id: &str,
    ) -> Result<(PathBuf, PathBuf)> {
        render::check_kafka_path(&self.dir)
            .map_err(|e| anyhow::anyhow!("the broker folder {}: {e}", self.dir.display()))?;
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating the broker directory {}", self.dir.display()))?;
        let props_path = self.dir.join("server.properties");
        let log4j = self.dir.join("log4j2.properties");
        write_file(&props_path, &render::server_properties(&self.layout, cfg))?;
        write_file(&log4j, render::LOG4J2_PROPERTIES)?;
        if !self.formatted {
            format_storage(java, kafka, &log4j, &props_path, cluster_id)?;
            self.formatted = true;
        }
        Ok((props_path, log4j))
    }

    /// Writes the node's files, formats its storage (once) and starts its
    /// JVM; does not wait for it to be ready.
    pub fn launch(
        &mut self,
        java: &Path,
        kafka: &KafkaHome,
        cfg: &BrokerConfig,
        cluster_id: &str,
    ) -> Result<()> {
        let (props_path, log4j) = self.prepare(java, kafka, cfg, cluster_id)?;
        self.starts += 1;
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .with_context(|| format!("opening {}", self.log_path().display()))?;
        let log2 = log.try_clone()?;
        // A fresh GC log per start, so the heap read back is this start's;
        // the previous start's log is kept as gc.<n>.log.
        if self.starts > 1 && self.gc_log_path().exists() {
            let _ = fs::rename(
                self.gc_log_path(),
                self.dir.join(format!("gc.{}.log", self.starts - 1)),
            );
        }
        let mut cmd = Command::new(java);
        cmd.args(render::jvm_flags(cfg, &log4j, &self.gc_log_path()))
            .arg(format!("-Dkafka.logs.dir={}", self.dir.display()))
            .args(["-cp", &kafka.classpath(), "kafka.Kafka"])
            .arg(&props_path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let child = spawn_tied(&mut cmd)
            .with_context(|| format!("starting a broker with {}", java.display()))?;
        tracing::info!(node = self.id(), pid = child.id(), bootstrap = %self.bootstrap(), "broker starting");
        self.emergency = Some(crate::cancel::on_emergency(
            child.id(),
            vec![self.data_dir()],
        ));
        self.child = Some(child);
        self.down = false;
        self.paused = false;
        Ok(())
    }

    /// Sends a signal to the JVM.
    pub fn signal(&self, sig: i32) -> Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow!("broker {} is not running", self.id()))?;
        // SAFETY: plain kill(2) on our own child's pid.
        if unsafe { libc::kill(pid as i32, sig) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        Ok(())
    }

    /// Sends SIGTERM (after SIGCONT when a fault paused it): the first
    /// half of [`Node::stop`]. A JVM that does not act on it is killed by
    /// [`Node::reap`] when the grace period ends.
    pub fn terminate(&self) {
        if self.paused {
            let _ = self.signal(libc::SIGCONT);
        }
        let _ = self.signal(libc::SIGTERM);
    }

    /// Waits for a terminated JVM until `deadline`, then kills it.
    pub fn reap(&mut self, deadline: Instant) -> Result<Stopped> {
        let Some(mut child) = self.child.take() else {
            return Ok(Stopped::NotRunning);
        };
        // Unregistered when the JVM is gone (at the end of this function): a
        // second Ctrl-C during the grace period still cleans up.
        let _emergency = self.emergency.take();
        loop {
            if child.try_wait()?.is_some() {
                tracing::info!(node = self.id(), "broker stopped");
                return Ok(Stopped::Clean);
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    node = self.id(),
                    "broker did not stop within the grace period; killing it"
                );
                let _ = child.kill();
                let _ = child.wait();
                return Ok(Stopped::Killed);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// SIGTERM, then SIGKILL after `grace`. Idempotent.
    pub fn stop(&mut self, grace: Duration) -> Result<Stopped> {
        if !self.is_running() {
            self.emergency = None;
            if let Some(mut c) = self.child.take() {
                let _ = c.wait();
            }
            return Ok(Stopped::NotRunning);
        }
        self.terminate();
        self.reap(Instant::now() + grace)
    }

    /// SIGKILL and wait.
    pub fn kill_now(&mut self) {
        self.emergency = None;
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Threads of the JVM whose (15-byte) Linux name is "data-plane-kafk":
    /// the listeners' acceptors and network threads and the request
    /// handlers. None where /proc is missing.
    pub fn pool_threads(&self) -> Option<usize> {
        let pid = self.pid()?;
        let tasks = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
        Some(
            tasks
                .flatten()
                .filter(|t| {
                    fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|c| c.trim_end() == "data-plane-kafk")
                })
                .count(),
        )
    }

    /// What [`Node::pool_threads`] should count with `io` request handlers
    /// and `net` network threads per listener: a combined node has two
    /// listeners (two of each pool, two acceptors), a broker-only one one.
    pub fn expected_pool_threads(&self, io: usize, net: usize) -> usize {
        let listeners = if self.is_controller() { 2 } else { 1 };
        listeners * (io + net + 1)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.child.is_some() {
            // Shorter grace: we may be unwinding from a panic.
            let _ = self.stop(Duration::from_secs(10));
        }
        let _ = fs::remove_dir_all(self.data_dir());
    }
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gc_log_heap_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("gc.log");
        fs::write(
            &p,
            "[0.004s][info][gc,init] Heap Min Capacity: 256M\n[0.004s][info][gc,init] Heap Max Capacity: 256M\n",
        )
        .unwrap();
        assert_eq!(heap_from_gc_log(&p), Some(MemSize::mib(256)));
        fs::write(&p, "[0.004s][info][gc,init] Heap Max Capacity: 1G\n").unwrap();
        assert_eq!(heap_from_gc_log(&p), Some(MemSize(MemSize::GIB)));
    }

    #[test]
    fn tail_gives_last_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.log");
        fs::write(&p, "a\nb\nc\nd\n").unwrap();
        assert_eq!(tail(&p, 2), "c\nd");
        assert_eq!(tail(&d.path().join("missing"), 2), "");
    }

    #[test]
    fn a_full_disk_is_named_as_such() {
        let d = tempfile::tempdir().unwrap();
        let data = d.path().join("data");
        let l = NodeLayout::single(
            1,
            "127.0.0.1",
            "127.0.0.1",
            "127.0.0.1",
            1,
            2,
            data.to_str().unwrap(),
        );
        let n = Node::new(l, d.path().to_path_buf());
        fs::write(n.log_path(), "[2026-01-01] INFO started\n").unwrap();
        assert_eq!(n.disk_full(), None);
        // What Kafka logs when the log directory's disk is full.
        fs::write(
            n.log_path(),
            "[2026-01-01] ERROR Error while writing to checkpoint file (kafka.server.LogDirFailureChannel)\njava.io.IOException: No space left on device\n\tat java.base/sun.nio.ch.FileDispatcherImpl.write0(Native Method)\n",
        )
        .unwrap();
        let full = n.disk_full().unwrap();
        assert!(
            full.starts_with("the disk is full: Kafka could not write under"),
            "{full}"
        );
        let e = format!("{:#}", n.death_report(None));
        assert!(e.contains("stopped answering: the disk is full"), "{e}");
        // Too little room to start a broker: said before it starts.
        let e = check_free_space(d.path(), u64::MAX)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("the disk is (nearly) full") && e.contains("MiB free"),
            "{e}"
        );
        assert!(check_free_space(&d.path().join("not/yet"), 1).is_ok());
        assert!(free_bytes(Path::new("results/20260101-000000")).is_some());
    }

    #[test]
    fn pool_threads_follow_the_roles() {
        // (A path that does not exist: dropping a node removes its data.)
        let none = "/nonexistent/klab-test";
        let l = NodeLayout::single(1, "127.0.0.1", "127.0.0.1", "127.0.0.1", 1, 2, none);
        let combined = Node::new(l.clone(), none.into());
        assert_eq!(combined.expected_pool_threads(8, 3), 2 * 8 + 2 * 3 + 2);
        let mut b = l;
        b.controller_port = None;
        let broker = Node::new(b, none.into());
        assert_eq!(broker.expected_pool_threads(8, 3), 8 + 3 + 1);
    }
}
