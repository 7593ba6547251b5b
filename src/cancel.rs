//! Cooperative stopping: Ctrl-C, SIGTERM, a dead broker or a failed
//! component set a flag that every loop checks at least every 100 ms.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Set by the SIGINT/SIGTERM handlers (or by tests).
static SIGNALLED: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();

fn signal_flag() -> &'static Arc<AtomicBool> {
    SIGNALLED.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Routes SIGINT and SIGTERM to [`interrupted`]. A second signal ends klab at
/// once with status 130; the broker JVM dies with it, because `broker::local`
/// asks the kernel to kill the JVM when its parent goes.
pub fn install_signal_handlers() -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::flag;
    let f = signal_flag();
    for sig in [SIGINT, SIGTERM] {
        // Order matters: the conditional shutdown sees the flag set by the
        // first signal and exits on the second.
        flag::register_conditional_shutdown(sig, 130, Arc::clone(f))?;
        flag::register(sig, Arc::clone(f))?;
    }
    Ok(())
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
