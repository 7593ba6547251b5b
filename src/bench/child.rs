//! Running one tool as a child process and measuring what it cost: wall
//! time, and user + system CPU time from `wait4`'s rusage (the whole
//! process, every thread, start-up included), the same way for klab's own
//! processes and for Kafka's JVM tools.

use crate::broker::local::LocalBroker;
use crate::stats::cpu;
use anyhow::{Context, Result, anyhow};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
pub struct ChildRun {
    /// Exit code, or 128 + signal number.
    pub status: i32,
    pub wall: Duration,
    pub user_s: f64,
    pub sys_s: f64,
    pub stdout: String,
    /// The last 16 KiB of stderr.
    pub stderr: String,
}

impl ChildRun {
    pub fn cpu_s(&self) -> f64 {
        self.user_s + self.sys_s
    }

    pub fn ok(&self) -> bool {
        self.status == 0
    }

    /// The end of stderr, for error messages.
    pub fn stderr_tail(&self, lines: usize) -> String {
        crate::load::outcome::tail(&self.stderr, lines)
    }
}

fn tv_secs(tv: libc::timeval) -> f64 {
    tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6
}

fn collect<R: Read + Send + 'static>(
    r: Option<R>,
    keep_tail: usize,
) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let Some(mut r) = r else {
            return String::new();
        };
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    if keep_tail > 0 && out.len() > 4 * keep_tail {
                        out.drain(..out.len() - keep_tail);
                    }
                }
            }
        }
        if keep_tail > 0 && out.len() > keep_tail {
            out.drain(..out.len() - keep_tail);
        }
        String::from_utf8_lossy(&out).into_owned()
    })
}

/// Runs `cmd` to its end (or kills it after `timeout`, or on Ctrl-C) and
/// returns its output and resource use. The child gets its own process
/// group and is killed if this thread dies.
pub fn run(cmd: &mut Command, timeout: Duration) -> Result<ChildRun> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = crate::broker::node::spawn_tied(cmd)
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
    let pid = child.id() as libc::pid_t;
    let out = collect(child.stdout.take(), 0);
    let err = collect(child.stderr.take(), 16 * 1024);
    let mut status: libc::c_int = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let mut killed = false;
    loop {
        // SAFETY: wait4 on our own child; `status` and `ru` are valid.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
        if r == pid {
            break;
        }
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(anyhow!("waiting for {:?}: {e}", cmd.get_program()));
        }
        if !killed && (started.elapsed() >= timeout || crate::cancel::interrupted()) {
            // The child leads its own process group: kill all of it, so no
            // grandchild keeps the output pipes open.
            // SAFETY: kill(2) on our own child's group (it has not been reaped).
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // The child is reaped; `child` must not be waited for again (dropping
    // a std Child neither waits nor kills).
    drop(child);
    let wall = started.elapsed();
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        -1
    };
    if killed && !crate::cancel::interrupted() {
        return Err(anyhow!(
            "{:?} did not finish within {}s and was killed; its last output:\n{}",
            cmd.get_program(),
            timeout.as_secs(),
            crate::load::outcome::tail(&stderr, 15)
        ));
    }
    Ok(ChildRun {
        status: code,
        wall,
        user_s: tv_secs(ru.ru_utime),
        sys_s: tv_secs(ru.ru_stime),
        stdout,
        stderr,
    })
}

/// The broker's and the host's CPU over a stretch of the bench (a run of
/// a tool, or a measurement klab makes itself).
pub struct CpuWatch {
    broker_pid: Option<u32>,
    broker0: Option<f64>,
    host0: Option<(u64, u64)>,
}

impl CpuWatch {
    pub fn start(broker: &LocalBroker) -> CpuWatch {
        let broker_pid = broker.pid();
        CpuWatch {
            broker_pid,
            broker0: broker_pid.and_then(cpu::proc_cpu_s),
            host0: cpu::host_jiffies(),
        }
    }

    /// (broker CPU seconds, host busy share) since start.
    pub fn stop(&self) -> (Option<f64>, Option<f64>) {
        let broker = match (self.broker0, self.broker_pid.and_then(cpu::proc_cpu_s)) {
            (Some(a), Some(b)) => Some((b - a).max(0.0)),
            _ => None,
        };
        let host = match (self.host0, cpu::host_jiffies()) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                Some((b1 - b0) as f64 / (t1 - t0) as f64)
            }
            _ => None,
        };
        (broker, host)
    }
}

pub fn per_record_us(secs: Option<f64>, records: u64) -> Option<f64> {
    secs.filter(|_| records > 0)
        .map(|s| s * 1e6 / records as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_reports_output_and_cpu() {
        let r = run(
            Command::new("sh").args([
                "-c",
                "echo hi; echo oops >&2; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exit 3",
            ]),
            Duration::from_secs(30),
        )
        .unwrap();
        assert_eq!(r.status, 3);
        assert_eq!(r.stdout.trim(), "hi");
        assert_eq!(r.stderr.trim(), "oops");
        assert!(r.cpu_s() > 0.0, "{r:?}");
        assert!(r.wall > Duration::ZERO);
    }

    #[test]
    fn a_child_past_its_timeout_is_killed() {
        let e = run(
            Command::new("sh").args(["-c", "sleep 30"]),
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(e.to_string().contains("killed"), "{e}");
    }
}
