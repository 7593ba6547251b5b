//! CPU time from /proc: of one process, of the whole host, and what a
//! measured window cost each side. On a 2-core laptop the load generator
//! competes with the broker for the same cores; a step records how much
//! of the machine klab's own clients took, so a reader can tell whether a
//! lab measured the broker or the client.

use crate::model::CpuUse;
use crate::units::clock_ticks;
use std::collections::BTreeMap;
use std::time::Instant;

/// CPU seconds (user + system, every thread) a running process has used
/// so far, from /proc/<pid>/stat; None where it cannot be read.
pub fn proc_cpu_s(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, so 11 and 12
    // after the state field (index 0 here).
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// (busy, total) jiffies of the whole host from /proc/stat.
pub fn host_jiffies() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// The CPU counters at the start of a window: klab's own process (its
/// producers and consumer are threads of it), each broker JVM, the host.
#[derive(Debug, Clone)]
pub struct CpuSampler {
    at: Instant,
    client: Option<f64>,
    brokers: BTreeMap<u32, f64>,
    host: Option<(u64, u64)>,
    /// The network's proxy process and its CPU seconds at the start.
    proxy: Option<(u32, f64)>,
}

impl CpuSampler {
    pub fn start(broker_pids: &[u32]) -> CpuSampler {
        CpuSampler {
            at: Instant::now(),
            client: proc_cpu_s(std::process::id()),
            brokers: broker_pids
                .iter()
                .filter_map(|&p| Some((p, proc_cpu_s(p)?)))
                .collect(),
            host: host_jiffies(),
            proxy: None,
        }
    }

    /// Also counts the network's proxy process `pid` (when there is one).
    pub fn with_proxy(mut self, pid: Option<u32>) -> CpuSampler {
        self.proxy = pid.and_then(|p| Some((p, proc_cpu_s(p)?)));
        self
    }

    /// What the window since [`CpuSampler::start`] cost. A broker JVM counts
    /// when it ran at both ends (one killed or restarted by a fault in
    /// between is left out, so `broker_s` is then a lower bound); without
    /// broker processes here (an external broker, Kubernetes) `broker_s`
    /// is None.
    pub fn finish(&self, broker_pids: &[u32]) -> Option<CpuUse> {
        let window_s = self.at.elapsed().as_secs_f64();
        let client_s = proc_cpu_s(std::process::id())? - self.client?;
        let (b1, t1) = host_jiffies()?;
        let (b0, t0) = self.host?;
        let host_busy_s = b1.saturating_sub(b0) as f64 / clock_ticks();
        let host_total_s = t1.saturating_sub(t0) as f64 / clock_ticks();
        let mut broker: Option<f64> = None;
        for p in broker_pids {
            if let (Some(before), Some(now)) = (self.brokers.get(p), proc_cpu_s(*p)) {
                *broker.get_or_insert(0.0) += (now - before).max(0.0);
            }
        }
        let mut used = CpuUse::new(
            window_s,
            host_total_s,
            host_busy_s,
            client_s.max(0.0),
            broker,
        );
        used.proxy_s = self
            .proxy
            .and_then(|(p, before)| Some((proc_cpu_s(p)? - before).max(0.0)));
        Some(used)
    }
}

/// One process's CPU ticks from /proc/<pid>/stat: (parent pid, its own
/// user + system, and its waited-for children's).
fn proc_ticks(pid: u32) -> Option<(u32, u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok());
    // After the state (index 0): ppid 1, utime 11, stime 12, cutime 13,
    // cstime 14.
    Some((n(1)? as u32, n(11)? + n(12)?, n(13)? + n(14)?))
}

/// CPU ticks klab and everything below it have used so far: its own, with
/// the children it has waited for, and each live descendant's (a JVM it
/// started, a shell's children). A child that ends in between moves from
/// the second sum to the first, so a difference of two readings holds.
fn tree_ticks() -> Option<u64> {
    let me = std::process::id();
    let mut parent: BTreeMap<u32, (u32, u64)> = BTreeMap::new();
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Some((ppid, own, children)) = proc_ticks(pid) {
            parent.insert(pid, (ppid, own + children));
        }
    }
    let below_me = |mut pid: u32| {
        for _ in 0..64 {
            match parent.get(&pid) {
                Some(&(ppid, _)) if ppid == me => return true,
                Some(&(ppid, _)) if ppid > 1 => pid = ppid,
                _ => return false,
            }
        }
        false
    };
    let (_, own, children) = proc_ticks(me)?;
    let descendants: u64 = parent
        .iter()
        .filter(|(pid, _)| below_me(**pid))
        .map(|(_, (_, t))| t)
        .sum();
    Some(own + children + descendants)
}

/// The host's busy CPU and klab's own (with its children) at one moment:
/// two of them tell how much of the machine *other* programs took in
/// between (a build, a browser, another measurement), which the load
/// average cannot, since it also counts klab's brokers.
#[derive(Debug, Clone, Copy)]
pub struct OthersMark {
    at: Instant,
    host_busy: u64,
    tree: u64,
}

impl OthersMark {
    pub fn now() -> Option<OthersMark> {
        Some(OthersMark {
            at: Instant::now(),
            host_busy: host_jiffies()?.0,
            tree: tree_ticks()?,
        })
    }

    /// The cores other programs kept busy on average since this mark.
    pub fn others_cores(&self) -> Option<f64> {
        let secs = self.at.elapsed().as_secs_f64();
        if secs <= 0.0 {
            return None;
        }
        let host = host_jiffies()?.0.saturating_sub(self.host_busy);
        let tree = tree_ticks()?.saturating_sub(self.tree);
        Some(host.saturating_sub(tree) as f64 / clock_ticks() / secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_and_the_host_from_proc() {
        let c = proc_cpu_s(std::process::id()).unwrap();
        assert!(c >= 0.0);
        let (busy, total) = host_jiffies().unwrap();
        assert!(busy <= total && total > 0);
        assert_eq!(proc_cpu_s(u32::MAX), None);
    }

    #[test]
    fn a_busy_window_is_counted_for_the_client() {
        let s = CpuSampler::start(&[]);
        // Burn some CPU in this process until /proc shows it.
        let t = Instant::now();
        let mut x = 0u64;
        while proc_cpu_s(std::process::id()).unwrap() - s.client.unwrap() < 0.05
            && t.elapsed().as_secs() < 10
        {
            for i in 0..100_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
        }
        std::hint::black_box(x);
        let u = s.finish(&[]).unwrap();
        assert!(u.client_s >= 0.05, "{u:?}");
        assert!(u.host_busy_s >= u.client_s * 0.5, "{u:?}");
        assert_eq!(u.broker_s, None);
        assert_eq!(u.client_vs_broker, None);
    }

    /// Burns CPU in `cmd`'s process until `enough` CPU seconds of it show.
    fn burn(mut child: std::process::Child, enough: f64) {
        let pid = child.id();
        let t = Instant::now();
        while proc_cpu_s(pid).unwrap_or(0.0) < enough && t.elapsed().as_secs() < 20 {
            std::thread::yield_now();
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn a_child_counts_as_klab_and_a_stranger_as_another_program() {
        let spin = || {
            std::process::Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .spawn()
                .unwrap()
        };
        // A child of this process (klab's brokers are): not another program.
        let mark = OthersMark::now().unwrap();
        burn(spin(), 0.3);
        let ours = mark.others_cores().unwrap();
        // A process started by someone else: the shell's grandchild, whose
        // parent exits at once, is adopted by init, outside this tree.
        let mark = OthersMark::now().unwrap();
        let out = std::process::Command::new("sh")
            .args([
                "-c",
                "sh -c 'while :; do :; done' >/dev/null 2>&1 & echo $!",
            ])
            .output()
            .unwrap();
        let pid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let t = Instant::now();
        while proc_cpu_s(pid).unwrap_or(0.0) < 0.3 && t.elapsed().as_secs() < 20 {
            std::thread::yield_now();
        }
        let theirs = mark.others_cores().unwrap();
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        assert!(
            theirs > ours + 0.1,
            "others: {theirs:.2} cores with a stranger spinning, {ours:.2} with our own child"
        );
    }
}
