//! Cooperative stopping: Ctrl-C, SIGTERM, a dead broker or a failed
//! component set a flag that every loop checks at least every 100 ms.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Set by the SIGINT/SIGTERM handlers (or by tests).
static SIGNALLED: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();

fn signal_flag() -> &'static Arc<AtomicBool> {
    SIGNALLED.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Routes SIGINT and SIGTERM to [`interrupted`]: the first asks every loop
/// to stop (klab then stops its brokers in order and saves what was
/// measured). A second one ends klab at once with status 130, after the
/// emergency clean-up: every registered process is killed and its files
/// removed ([`on_emergency`]).
pub fn install_signal_handlers() -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let f = Arc::clone(signal_flag());
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("klab-signals".into())
        .spawn(move || {
            for _ in signals.forever() {
                if f.swap(true, Ordering::SeqCst) {
                    emergency_exit();
                }
                crate::errln!(
                    "klab: stopping and saving what was measured (Ctrl-C again to quit at once)"
                );
            }
        })?;
    Ok(())
}

/// A process klab started and the files that go with it, for the emergency
/// clean-up of a second Ctrl-C.
struct Emergency {
    id: u64,
    pid: u32,
    /// `pid` leads a process group, killed as a whole.
    group: bool,
    remove: Vec<std::path::PathBuf>,
}

static EMERGENCY: Mutex<Vec<Emergency>> = Mutex::new(Vec::new());
static NEXT_EMERGENCY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Registers process `pid` to be killed, and `remove` deleted, if klab must
/// quit at once; drop the guard when the process is stopped in order.
pub fn on_emergency(pid: u32, remove: Vec<std::path::PathBuf>) -> EmergencyGuard {
    register(pid, false, remove)
}

/// As [`on_emergency`] for the process group `pgid` leads (an agent and
/// whatever it started), with no files.
pub fn on_emergency_group(pgid: u32) -> EmergencyGuard {
    register(pgid, true, Vec::new())
}

fn register(pid: u32, group: bool, remove: Vec<std::path::PathBuf>) -> EmergencyGuard {
    let id = NEXT_EMERGENCY.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut v) = EMERGENCY.lock() {
        v.push(Emergency {
            id,
            pid,
            group,
            remove,
        });
    }
    EmergencyGuard(id)
}

/// Unregisters its process when dropped.
#[derive(Debug)]
pub struct EmergencyGuard(u64);

impl Drop for EmergencyGuard {
    fn drop(&mut self) {
        if let Ok(mut v) = EMERGENCY.lock() {
            v.retain(|e| e.id != self.0);
        }
    }
}

/// The second Ctrl-C: kill what is registered, wait (briefly) for it to
/// go, remove its files, and exit 130.
fn emergency_exit() -> ! {
    let list: Vec<Emergency> = EMERGENCY
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default();
    for e in &list {
        // SAFETY: plain kill(2) on a process (or group) klab started.
        unsafe {
            if e.group {
                libc::killpg(e.pid as i32, libc::SIGKILL);
            } else {
                libc::kill(e.pid as i32, libc::SIGKILL);
            }
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    for e in &list {
        while std::path::Path::new(&format!("/proc/{}/cmdline", e.pid)).exists()
            && std::fs::read(format!("/proc/{}/cmdline", e.pid)).is_ok_and(|c| !c.is_empty())
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        for p in &e.remove {
            let _ = std::fs::remove_dir_all(p);
        }
    }
    crate::errln!(
        "klab: second interrupt: stopped at once ({} broker process(es) killed, their data removed; results written so far are kept)",
        list.iter().filter(|e| !e.group).count()
    );
    std::process::exit(130)
}

/// True once Ctrl-C or SIGTERM arrived.
#[inline]
pub fn interrupted() -> bool {
    signal_flag().load(Ordering::Relaxed)
}

/// A shared stop flag with the reason of whoever set it first.
#[derive(Clone, Default)]
pub struct Cancel {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    flag: AtomicBool,
    reason: Mutex<Option<String>>,
}

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Asks everyone to stop; the first reason wins.
    pub fn cancel(&self, reason: impl Into<String>) {
        if let Ok(mut r) = self.inner.reason.lock()
            && r.is_none()
        {
            *r = Some(reason.into());
        }
        self.inner.flag.store(true, Ordering::SeqCst);
    }

    /// Set by [`Cancel::cancel`] or by Ctrl-C.
    #[inline]
    pub fn is_cancelled(&self) -> bool {
        self.inner.flag.load(Ordering::Relaxed) || interrupted()
    }

    pub fn reason(&self) -> Option<String> {
        if let Ok(r) = self.inner.reason.lock()
            && let Some(r) = r.as_ref()
        {
            return Some(r.clone());
        }
        if interrupted() {
            return Some("interrupted".into());
        }
        None
    }
}
