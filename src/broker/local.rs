//! The embedded target: one KRaft broker+controller as a child process of
//! klab on 127.0.0.1.
//!
//! klab never leaves a JVM behind. The JVM runs in its own process group
//! (so a terminal's Ctrl-C reaches klab, which then stops the broker in
//! order) and the kernel is asked to SIGKILL it if the thread that started
//! it goes away (PR_SET_PDEATHSIG): that covers klab being killed, panicking
//! past its destructors, or a second Ctrl-C.

use crate::broker::admin::Admin;
use crate::broker::apply::{Reconfigure, refused_start};
use crate::broker::dynamic::{self, mismatches};
use crate::broker::kafka_home::{KafkaHome, java, java_version};
use crate::broker::render::{self, NodeLayout};
use crate::model::{BrokerConfig, EffectiveValue};
use crate::units::MemSize;
use anyhow::{Context, Result, anyhow, bail};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct LocalOptions {
    pub kafka: KafkaHome,
    /// Directory for server.properties, broker.log, gc.log and data.
    pub dir: PathBuf,
    pub config: BrokerConfig,
    pub start_timeout: Duration,
    pub stop_grace: Duration,
}

impl LocalOptions {
    pub fn new(kafka: KafkaHome, dir: PathBuf, config: BrokerConfig) -> LocalOptions {
        LocalOptions {
            kafka,
            dir,
            config,
            start_timeout: Duration::from_secs(90),
            stop_grace: Duration::from_secs(20),
        }
    }
}

pub struct LocalBroker {
    opts: LocalOptions,
    java: PathBuf,
    java_version: String,
    layout: NodeLayout,
    child: Option<Child>,
    node_id: i32,
    admin: Option<Admin>,
    /// What the broker reported after the last start or change.
    effective: BTreeMap<String, EffectiveValue>,
    /// Keys set through the Admin API since the last start.
    dynamic: BTreeMap<String, String>,
    formatted: bool,
    starts: u32,
    /// When a change last shrank the request handler pools (see
    /// [`LocalBroker::let_removed_handlers_exit`]).
    handlers_shrunk_at: Option<Instant>,
    /// A second Ctrl-C kills the JVM and removes its data (see `cancel`).
    emergency: Option<crate::cancel::EmergencyGuard>,
}

/// How [`LocalBroker::stop`] ended the JVM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// It was not running (never started, already stopped, or died).
    NotRunning,
    /// It shut down on SIGTERM within the grace period.
    Clean,
    /// It ignored SIGTERM for the grace period and was killed.
    Killed,
}

/// Asks the OS for a free loopback port.
fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free port on 127.0.0.1")?;
    Ok(l.local_addr()?.port())
}

/// A random KRaft cluster id: 16 bytes in URL-safe base64 without padding,
/// the form `kafka-storage random-uuid` prints. Like Kafka's own generator,
/// it never starts with '-', which a command line would take for an option.
pub fn cluster_id() -> String {
    use base64::Engine;
    loop {
        let a = crate::random::u64().to_le_bytes();
        let b = crate::random::u64().to_le_bytes();
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&a);
        bytes[8..].copy_from_slice(&b);
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        if !id.starts_with('-') {
            return id;
        }
    }
}

/// Starts `cmd` so that it dies with this thread and sits in its own
/// process group (the broker, and klab bench's children).
pub(crate) fn spawn_tied(cmd: &mut Command) -> std::io::Result<Child> {
    cmd.process_group(0);
    // SAFETY: prctl is async-signal-safe and only affects the child.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Formats a KRaft log directory with Kafka's StorageTool for the node
/// `server_properties` describes (a no-op on a formatted one).
pub fn format_storage(
    java: &Path,
    kafka: &KafkaHome,
    log4j: &Path,
    server_properties: &Path,
    cluster_id: &str,
) -> Result<()> {
    let out = Command::new(java)
        .args(["-Xmx256m", "-cp", &kafka.classpath()])
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
        .output()
        .context("running Kafka's StorageTool to format the log directory")?;
    if !out.status.success() {
        bail!(
            "formatting KRaft storage failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The last `n` lines of a file (reads at most the last 64 KiB).
pub fn tail(path: &Path, n: usize) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(64 * 1024);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The heap the JVM itself reports in its GC log ("Heap Max Capacity").
pub fn heap_from_gc_log(path: &Path) -> Option<MemSize> {
    let text = fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.contains("Heap Max Capacity:"))?;
    let v = line.split("Heap Max Capacity:").nth(1)?.trim();
    // The JVM prints e.g. "256M" or "1G".
    v.to_ascii_lowercase().parse().ok()
}

impl LocalBroker {
    /// Formats storage, starts the broker, waits until it answers metadata,
    /// and checks every requested setting took effect.
    pub fn start(opts: LocalOptions) -> Result<LocalBroker> {
        let java = java()?;
        let java_version = java_version(&java).unwrap_or_default();
        fs::create_dir_all(&opts.dir)
            .with_context(|| format!("creating the broker directory {}", opts.dir.display()))?;
        let mut b = LocalBroker {
            layout: NodeLayout {
                node_id: 1,
                bind_host: "127.0.0.1".into(),
                advertised_host: "127.0.0.1".into(),
                broker_port: 0,
                controller_port: 0,
                log_dir: opts.dir.join("data").to_string_lossy().to_string(),
            },
            opts,
            java,
            java_version,
            child: None,
            node_id: 1,
            admin: None,
            effective: BTreeMap::new(),
            dynamic: BTreeMap::new(),
            formatted: false,
            starts: 0,
            handlers_shrunk_at: None,
            emergency: None,
        };
        b.launch()?;
        Ok(b)
    }

    pub fn bootstrap(&self) -> String {
        self.layout.bootstrap()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    pub fn kafka(&self) -> &KafkaHome {
        &self.opts.kafka
    }

    pub fn java_version(&self) -> &str {
        &self.java_version
    }

    pub fn dir(&self) -> &Path {
        &self.opts.dir
    }

    pub fn log_path(&self) -> PathBuf {
        self.opts.dir.join("broker.log")
    }

    /// This start's GC log.
    pub fn gc_log_path(&self) -> PathBuf {
        self.opts.dir.join("gc.log")
    }

    /// The config the broker was started with, plus dynamic changes since.
    pub fn config(&self) -> BrokerConfig {
        let mut c = self.opts.config.clone();
        for (k, v) in &self.dynamic {
            c.properties.insert(k.clone(), v.clone());
        }
        c
    }

    pub fn effective(&self) -> &BTreeMap<String, EffectiveValue> {
        &self.effective
    }

    pub fn admin(&self) -> Result<&Admin> {
        self.admin
            .as_ref()
            .ok_or_else(|| anyhow!("the broker is not running"))
    }

    /// Exit status if the JVM has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// An error naming how the broker died, with the end of its log.
    pub fn death_report(&mut self, status: Option<ExitStatus>) -> anyhow::Error {
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
        anyhow!(
            "the Kafka broker {how}; last lines of {}:\n{}",
            self.log_path().display(),
            tail(&self.log_path(), 20)
        )
    }

    fn launch(&mut self) -> Result<()> {
        self.starts += 1;
        let dir = self.opts.dir.clone();
        self.layout.broker_port = free_port()?;
        self.layout.controller_port = free_port()?;
        while self.layout.controller_port == self.layout.broker_port {
            self.layout.controller_port = free_port()?;
        }
        let props_path = dir.join("server.properties");
        let log4j = dir.join("log4j2.properties");
        write_file(
            &props_path,
            &render::server_properties(&self.layout, &self.opts.config),
        )?;
        write_file(&log4j, render::LOG4J2_PROPERTIES)?;
        let cp = self.opts.kafka.classpath();

        if !self.formatted {
            format_storage(
                &self.java,
                &self.opts.kafka,
                &log4j,
                &props_path,
                &cluster_id(),
            )?;
            self.formatted = true;
        }

        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .with_context(|| format!("opening {}", self.log_path().display()))?;
        let log2 = log.try_clone()?;
        let mut cmd = Command::new(&self.java);
        cmd.args(render::jvm_flags(
            &self.opts.config,
            &log4j,
            &self.gc_log_path(),
        ))
        .arg(format!("-Dkafka.logs.dir={}", dir.display()))
        .args(["-cp", &cp, "kafka.Kafka"])
        .arg(&props_path)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
        // A fresh GC log per start, so the heap read back is this start's;
        // the previous start's log is kept as gc.<n>.log.
        if self.starts > 1 && self.gc_log_path().exists() {
            let _ = fs::rename(
                self.gc_log_path(),
                self.opts.dir.join(format!("gc.{}.log", self.starts - 1)),
            );
        }
        let child = spawn_tied(&mut cmd)
            .with_context(|| format!("starting the broker with {}", self.java.display()))?;
        tracing::info!(pid = child.id(), bootstrap = %self.bootstrap(), "broker starting");
        self.emergency = Some(crate::cancel::on_emergency(
            child.id(),
            vec![PathBuf::from(&self.layout.log_dir)],
        ));
        self.child = Some(child);

        let admin = Admin::connect(&self.bootstrap())?;
        let deadline = Instant::now() + self.opts.start_timeout;
        let waited = admin.wait_ready(deadline, || match self.exited_status() {
            Some(s) => Err(anyhow!("exited with {s}")),
            None if crate::cancel::interrupted() => Err(anyhow!("interrupted")),
            None => Ok(()),
        });
        let node_id = match waited {
            Ok(id) => id,
            Err(e) => {
                let status = self.exited();
                let _ = self.kill_now();
                if crate::cancel::interrupted() {
                    return Err(anyhow::Error::new(crate::error::Interrupted));
                }
                let report = self.death_report(status);
                return Err(report.context(format!(
                    "the broker did not become ready within {}s ({e})",
                    self.opts.start_timeout.as_secs()
                )));
            }
        };
        self.node_id = node_id;
        self.admin = Some(admin);
        self.dynamic.clear();
        self.refresh_effective()?;
        self.check_effective(&self.opts.config.clone(), "StaticBroker")?;
        Ok(())
    }

    fn exited_status(&mut self) -> Option<ExitStatus> {
        self.exited()
    }

    /// Reads every broker setting back, plus the heap from the GC log.
    pub fn refresh_effective(&mut self) -> Result<()> {
        let mut eff = self.admin()?.describe_broker(self.node_id)?;
        // The GC log is written at JVM start; wait briefly for it.
        let deadline = Instant::now() + Duration::from_secs(10);
        let heap = loop {
            if let Some(h) = heap_from_gc_log(&self.gc_log_path()) {
                break Some(h);
            }
            if Instant::now() >= deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        eff.insert(
            "heap".into(),
            EffectiveValue {
                value: heap.map(|h| h.jvm()),
                source: "jvm".into(),
            },
        );
        self.effective = eff;
        Ok(())
    }

    /// Fails when a requested setting is not what the broker reports.
    fn check_effective(&self, want: &BrokerConfig, expected_source: &str) -> Result<()> {
        let problems = mismatches(want, &self.effective, expected_source);
        if problems.is_empty() {
            Ok(())
        } else {
            bail!(
                "the broker did not take these settings: {} (see {})",
                problems.join("; "),
                self.log_path().display()
            )
        }
    }

    /// Applies dynamic settings without a restart (see `broker::admin`),
    /// in steps Kafka accepts, and checks the broker reports them.
    pub fn set_dynamic(&mut self, changes: &BTreeMap<String, String>) -> Result<()> {
        if let (Some(now), Some(want)) = (
            self.pool_size("num.io.threads"),
            changes
                .get("num.io.threads")
                .and_then(|v| v.parse::<usize>().ok()),
        ) && want < now
        {
            // Marked before the call: a failed change may have shrunk the
            // pools part of the way.
            self.handlers_shrunk_at = Some(Instant::now());
        }
        let admin = self.admin()?;
        let gc_log = self.gc_log_path();
        let node = self.node_id;
        let describe = || -> Result<BTreeMap<String, EffectiveValue>> {
            let mut eff = admin.describe_broker(node)?;
            eff.insert(
                "heap".into(),
                EffectiveValue {
                    value: heap_from_gc_log(&gc_log).map(|h| h.jvm()),
                    source: "jvm".into(),
                },
            );
            Ok(eff)
        };
        let mut dynamic = self.dynamic.clone();
        let result = dynamic::apply(
            admin,
            node,
            &mut dynamic,
            &self.effective,
            changes,
            &describe,
        );
        self.dynamic = dynamic;
        match result {
            Ok(eff) => {
                self.effective = eff;
                Ok(())
            }
            Err(e) => {
                let _ = self.refresh_effective();
                Err(e)
            }
        }
    }

    /// Waits (up to `timeout`) until no partition directory of `topic` is
    /// left in the log directory: Kafka deletes a topic's files shortly
    /// after the topic, and a measurement should not share the disk with
    /// that cleanup.
    pub fn wait_topic_files_gone(&self, topic: &str, timeout: Duration) -> bool {
        let dir = PathBuf::from(&self.layout.log_dir);
        let prefix = format!("{topic}-");
        let deadline = Instant::now() + timeout;
        loop {
            let left = fs::read_dir(&dir)
                .map(|rd| {
                    rd.flatten()
                        .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                })
                .unwrap_or(false);
            if !left {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// True while the JVM runs (false after a failed start or a stop).
    pub fn is_running(&mut self) -> bool {
        self.child.is_some() && self.exited().is_none()
    }

    /// Stops the broker and starts it again with `config` (same storage).
    ///
    /// KRaft keeps dynamic settings in the cluster's metadata log, so they
    /// would outlive the restart and hide the new static config: klab clears
    /// the dynamic settings it made before it stops the broker.
    pub fn restart(&mut self, config: &BrokerConfig) -> Result<()> {
        if !self.dynamic.is_empty() && self.is_running() {
            self.clear_dynamic()?;
        }
        self.stop()?;
        self.opts.config = config.clone();
        self.launch()
    }

    /// Removes every per-broker dynamic setting (legacy AlterConfigs with
    /// an empty set) and waits until the broker no longer reports any.
    fn clear_dynamic(&mut self) -> Result<()> {
        let back = crate::broker::knobs::pool_fallbacks(
            &self.opts.config,
            self.dynamic.keys().map(String::as_str),
        );
        if !back.is_empty() {
            self.set_dynamic(&back)?;
        }
        crate::broker::dynamic::clear(self.admin()?, self.node_id).context("before a restart")?;
        self.dynamic.clear();
        Ok(())
    }

    /// A thread-pool size as the broker last reported it.
    fn pool_size(&self, key: &str) -> Option<usize> {
        self.effective
            .get(key)
            .and_then(|v| v.value.as_deref())
            .and_then(|v| v.parse().ok())
    }

    /// Works around a shutdown race in Kafka (seen with 4.1.2). Kafka stops
    /// a request handler pool by queueing one "shut down" request per
    /// handler it still counts. A handler that a shrink of `num.io.threads`
    /// removed keeps polling that queue for up to 300 ms; if it takes one of
    /// those requests, a remaining handler never gets its own and the
    /// shutdown hook waits for it forever: the JVM seems to ignore SIGTERM.
    /// klab hit this when a lab change shrank the pools and a failure
    /// stopped the broker 115 ms later. So a stop soon after a shrink first
    /// waits until the JVM runs no more pool threads than the config asks
    /// for (counted in /proc), and at most until 2 s after the shrink.
    fn let_removed_handlers_exit(&self) {
        let Some(at) = self.handlers_shrunk_at else {
            return;
        };
        let deadline = at + Duration::from_secs(2);
        let want = self.expected_pool_threads();
        while Instant::now() < deadline {
            if let (Some(n), Some(want)) = (self.pool_threads(), want)
                && n <= want
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::debug!("request handler pools not settled 2s after a shrink; stopping anyway");
    }

    /// Threads of the JVM whose (15-byte) Linux name is "data-plane-kafk":
    /// both listeners' acceptors and network threads, and the broker's and
    /// the controller's request handlers. None where /proc is missing.
    fn pool_threads(&self) -> Option<usize> {
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

    /// What [`Self::pool_threads`] should count on this combined
    /// broker+controller node with two listeners: two handler pools of
    /// `num.io.threads`, two network pools of `num.network.threads`, and
    /// two acceptors.
    fn expected_pool_threads(&self) -> Option<usize> {
        let io = self.pool_size("num.io.threads")?;
        let net = self.pool_size("num.network.threads")?;
        Some(2 * io + 2 * net + 2)
    }

    /// SIGTERM, then SIGKILL after the grace period. Idempotent.
    pub fn stop(&mut self) -> Result<Stopped> {
        self.admin = None;
        if self.is_running() {
            // Before the child is taken: this reads its pid.
            self.let_removed_handlers_exit();
        }
        self.handlers_shrunk_at = None;
        let Some(mut child) = self.child.take() else {
            return Ok(Stopped::NotRunning);
        };
        // Unregistered when the JVM is gone (at the end of this function): a
        // second Ctrl-C during the grace period still cleans up.
        let _emergency = self.emergency.take();
        if child.try_wait()?.is_some() {
            return Ok(Stopped::NotRunning);
        }
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + self.opts.stop_grace;
        loop {
            if child.try_wait()?.is_some() {
                tracing::info!("broker stopped");
                return Ok(Stopped::Clean);
            }
            if Instant::now() >= deadline {
                tracing::warn!("broker did not stop within the grace period; killing it");
                let _ = child.kill();
                let _ = child.wait();
                return Ok(Stopped::Killed);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn kill_now(&mut self) -> Result<()> {
        self.emergency = None;
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        Ok(())
    }

    /// Sends a signal to the JVM (tests use SIGSTOP/SIGCONT/SIGKILL).
    pub fn signal(&self, sig: i32) -> Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow!("the broker is not running"))?;
        // SAFETY: plain kill(2) on our own child's pid.
        if unsafe { libc::kill(pid as i32, sig) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        Ok(())
    }
}

impl Reconfigure for LocalBroker {
    fn config(&self) -> BrokerConfig {
        LocalBroker::config(self)
    }
    fn is_running(&mut self) -> bool {
        LocalBroker::is_running(self)
    }
    fn restart(&mut self, cfg: &BrokerConfig) -> Result<()> {
        LocalBroker::restart(self, cfg).map_err(refused_start)
    }
    fn set_dynamic(&mut self, changes: &BTreeMap<String, String>) -> Result<()> {
        LocalBroker::set_dynamic(self, changes)
    }
}

impl Drop for LocalBroker {
    fn drop(&mut self) {
        if self.child.is_some() {
            // Shorter grace: we may be unwinding from a panic.
            self.opts.stop_grace = self.opts.stop_grace.min(Duration::from_secs(10));
            let _ = self.stop();
        }
        let _ = fs::remove_dir_all(self.opts.dir.join("data"));
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
    fn cluster_ids_look_like_kafkas() {
        for _ in 0..1000 {
            assert!(!cluster_id().starts_with('-'));
        }
        let id = cluster_id();
        assert_eq!(id.len(), 22);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }
}
