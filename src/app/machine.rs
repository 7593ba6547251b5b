//! One measurement at a time per machine. Two runs on one machine share
//! its cores and measure each other: both get worse numbers, and a lab
//! blames its settings for what the other run did. So every command that
//! measures holds an exclusive lock on a file for as long as it runs; a
//! second one is refused at once (exit 2) with who holds the machine.
//!
//! The lock is `flock(2)` through `File::try_lock`: the kernel drops it
//! when the holder exits, however it exits, so it is never stale. The file
//! also says who holds it (pid, command line, start time) for the refusal.

use crate::usage;
use anyhow::Result;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::PathBuf;

/// The lock's file: `$KLAB_LOCK_DIR/klab-measure.lock`, else in the
/// system's temporary directory (shared by every user of the machine).
pub fn lock_path() -> PathBuf {
    let dir = std::env::var_os("KLAB_LOCK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    dir.join("klab-measure.lock")
}

/// Held while a command measures; dropping it (or the process ending)
/// frees the machine.
#[derive(Debug)]
pub struct MachineLock {
    file: File,
}

impl Drop for MachineLock {
    /// Unlocks before the file closes: a child process forked in the
    /// moment before its exec shares the open file, and with it the lock,
    /// so closing our copy alone could leave the machine taken for an
    /// instant after the run (the test below caught that).
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// Takes the machine for this process, or refuses (exit 2) naming the
/// process that holds it.
pub fn acquire() -> Result<MachineLock> {
    acquire_at(&lock_path())
}

fn acquire_at(path: &std::path::Path) -> Result<MachineLock> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .or_else(|_| File::open(path))
        .map_err(|e| {
            usage!(
                "cannot open {} to take this machine for the run: {e} (KLAB_LOCK_DIR names another directory)",
                path.display()
            )
        })?;
    // Anyone may take it next, whoever created it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = file.set_permissions(std::fs::Permissions::from_mode(0o666));
    }
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let holder = if holder.is_empty() {
                "another klab process".to_string()
            } else {
                holder.to_string()
            };
            return Err(usage!(
                "this machine is measuring already: {holder}. Two runs at once share the cores and spoil each other's numbers; wait for it to end (or stop it), then run again"
            ));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(usage!("cannot lock {}: {e}", path.display()));
        }
    }
    let who = format!(
        "pid {} (`{}`, started {})",
        std::process::id(),
        command_line(),
        crate::stats::report::utc_now()
    );
    // Best effort: a holder that cannot write its name is still the holder.
    if file.set_len(0).is_ok() && file.rewind().is_ok() {
        let _ = file.write_all(who.as_bytes());
        let _ = file.flush();
    }
    Ok(MachineLock { file })
}

/// `klab lab run 04 --quick`, the program's own name shortened to klab.
fn command_line() -> String {
    let mut args = std::env::args();
    let _ = args.next();
    std::iter::once("klab".to_string())
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("klab-measure.lock");
        let first = acquire_at(&path).unwrap();
        let e = acquire_at(&path).unwrap_err();
        assert!(crate::error::is_usage(&e), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains("measuring already"), "{msg}");
        drop(first);
        assert!(
            acquire_at(&path).is_ok(),
            "the lock is free once its holder is gone"
        );
    }
}
