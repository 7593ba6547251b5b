//! The embedded target: one KRaft broker+controller as a child process of
//! klab on 127.0.0.1.
//!
//! klab never leaves a JVM behind. The JVM runs in its own process group
//! (so a terminal's Ctrl-C reaches klab, which then stops the broker in
//! order) and the kernel is asked to SIGKILL it if the thread that started
//! it goes away (PR_SET_PDEATHSIG): that covers klab being killed, panicking
//! past its destructors, or a second Ctrl-C.

use crate::broker::admin::Admin;
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
}

/// Asks the OS for a free loopback port.
fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free port on 127.0.0.1")?;
    Ok(l.local_addr()?.port())
}

/// A random KRaft cluster id: 16 bytes in URL-safe base64 without padding,
/// the form `kafka-storage random-uuid` prints.
fn cluster_id() -> String {
    use base64::Engine;
    let a = crate::load::payload::random_producer_id().to_le_bytes();
    let b = crate::load::payload::random_producer_id().to_le_bytes();
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a);
    bytes[8..].copy_from_slice(&b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Starts `cmd` so that it dies with this thread and sits in its own
/// process group.
fn spawn_tied(cmd: &mut Command) -> std::io::Result<Child> {
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

    fn gc_log_path(&self) -> PathBuf {
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
            let out = Command::new(&self.java)
                .args(["-Xmx256m", "-cp", &cp])
                .arg(format!("-Dlog4j2.configurationFile={}", log4j.display()))
                .args([
                    "kafka.tools.StorageTool",
                    "format",
                    "--ignore-formatted",
                    "-t",
                ])
                .arg(cluster_id())
                .arg("-c")
                .arg(&props_path)
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
        // A fresh GC log per start, so the heap read back is this start's.
        let _ = fs::remove_file(self.gc_log_path());
        let child = spawn_tied(&mut cmd)
            .with_context(|| format!("starting the broker with {}", self.java.display()))?;
        tracing::info!(pid = child.id(), bootstrap = %self.bootstrap(), "broker starting");
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
        let mut target = self.dynamic.clone();
        for (k, v) in changes {
            target.insert(k.clone(), v.clone());
        }
        let current = current_values(&self.effective);
        for step in crate::broker::knobs::dynamic_steps(&current, &target) {
            self.admin()?
                .set_broker_dynamic(self.node_id, &step)
                .map_err(|e| anyhow!("{e} (setting {})", join_kv(&step)))?;
            self.dynamic = step.clone();
            // KRaft applies a committed change when the broker replays the
            // metadata log, a moment after the call returns: poll for it.
            let want = BrokerConfig {
                heap: None,
                properties: step,
            };
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                self.refresh_effective()?;
                if mismatches(&want, &self.effective, "DynamicBroker").is_empty()
                    || Instant::now() >= deadline
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let want = BrokerConfig {
            heap: None,
            properties: changes.clone(),
        };
        self.check_effective(&want, "DynamicBroker")
    }

    /// Stops the broker and starts it again with `config` (same storage).
    pub fn restart(&mut self, config: BrokerConfig) -> Result<()> {
        self.stop()?;
        self.opts.config = config;
        self.launch()
    }

    /// SIGTERM, then SIGKILL after the grace period. Idempotent.
    pub fn stop(&mut self) -> Result<()> {
        self.admin = None;
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + self.opts.stop_grace;
        loop {
            if child.try_wait()?.is_some() {
                tracing::info!("broker stopped");
                return Ok(());
            }
            if Instant::now() >= deadline {
                tracing::warn!("broker did not stop within the grace period; killing it");
                let _ = child.kill();
                let _ = child.wait();
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn kill_now(&mut self) -> Result<()> {
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

fn join_kv(m: &BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Values as the broker reports them now (for planning thread-pool steps).
pub fn current_values(eff: &BTreeMap<String, EffectiveValue>) -> BTreeMap<String, String> {
    eff.iter()
        .filter_map(|(k, v)| v.value.as_ref().map(|x| (k.clone(), x.clone())))
        .collect()
}

/// Requested settings that the effective config does not show, each as
/// "key: wanted X, broker has Y (source)". `expected_source` is checked too
/// (StaticBroker after a start, DynamicBroker after a dynamic change).
pub fn mismatches(
    want: &BrokerConfig,
    eff: &BTreeMap<String, EffectiveValue>,
    expected_source: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(h) = want.heap {
        match eff.get("heap").and_then(|v| v.value.as_ref()) {
            Some(got) if got.parse::<MemSize>().ok() == Some(h) => {}
            Some(got) => out.push(format!("heap: wanted {h}, the JVM reports {got}")),
            None => out.push(format!(
                "heap: wanted {h}, but the JVM's heap could not be read from gc.log"
            )),
        }
    }
    for (k, v) in &want.properties {
        match eff.get(k) {
            None => out.push(format!("{k}: the broker does not report this key")),
            Some(e) => {
                let got = e.value.clone().unwrap_or_default();
                if !same_value(&got, v) {
                    out.push(format!("{k}: wanted {v}, broker has {got} ({})", e.source));
                } else if e.source != expected_source && e.source != "Unknown" {
                    out.push(format!(
                        "{k}: value {got} comes from {} instead of {expected_source}",
                        e.source
                    ));
                }
            }
        }
    }
    out
}

/// Compares config values the way Kafka normalises them (whitespace in
/// lists, case of booleans).
fn same_value(got: &str, want: &str) -> bool {
    let norm = |s: &str| -> String {
        s.split(',')
            .map(|p| p.trim().to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join(",")
    };
    norm(got) == norm(want)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(v: &str, s: &str) -> EffectiveValue {
        EffectiveValue {
            value: Some(v.into()),
            source: s.into(),
        }
    }

    #[test]
    fn mismatch_reports_value_source_and_heap() {
        let mut eff = BTreeMap::new();
        eff.insert("num.io.threads".to_string(), ev("8", "Default"));
        eff.insert("num.network.threads".to_string(), ev("1", "StaticBroker"));
        eff.insert("heap".to_string(), ev("256m", "jvm"));
        let mut want = BrokerConfig {
            heap: Some(MemSize::mib(256)),
            ..Default::default()
        };
        want.properties
            .insert("num.network.threads".into(), "1".into());
        assert!(mismatches(&want, &eff, "StaticBroker").is_empty());
        want.properties.insert("num.io.threads".into(), "2".into());
        want.heap = Some(MemSize::mib(512));
        let m = mismatches(&want, &eff, "StaticBroker");
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(m[0].starts_with("heap: wanted 512m"));
        assert!(m[1].contains("wanted 2, broker has 8"));
        want.properties.clear();
        want.heap = None;
        want.properties
            .insert("num.network.threads".into(), "1".into());
        assert!(mismatches(&want, &eff, "DynamicBroker")[0].contains("instead of DynamicBroker"));
    }

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
        let id = cluster_id();
        assert_eq!(id.len(), 22);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }
}
