//! A machine's calibration kept between runs.
//!
//! Calibrating (lab 01's broker at max) says what this machine sustains,
//! and the labs offer a share of it. Within one run it holds to a few
//! percent, but every run starts a fresh JVM, and fresh JVMs on the same
//! quiet 2-core machine sustained 92k to 128k records/s (1.39x): the
//! offered load, and every latency that depends on it, moved with the
//! broker start. A lab whose load changes from run to run is not
//! repeatable, so the local target measures once per machine and setup,
//! keeps the figure, and offers the same load on every later run until
//! `--recalibrate` (or anything in the key) changes.
//!
//! The key is everything that moves the figure: the machine (CPU model,
//! logical CPUs, memory), klab's version, Kafka's and Java's, the lab 01
//! files (their NAR hash), the broker settings and workload measured, the
//! cluster size, `--quick` and the JIT warm-up. The cache lives in
//! `$KLAB_CACHE_DIR`, else `$XDG_CACHE_HOME/klab`, else `~/.cache/klab`,
//! as `calibration/<hash>.json`; each run also writes `calibration.json`
//! into its run folder, saying whether it measured or reused the figure.

use crate::stats::report::{utc_now, write_json};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a calibration depends on, as name → value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key(pub BTreeMap<String, String>);

impl Key {
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Key {
        self.0.insert(name.to_string(), value.into());
        self
    }

    /// The machine's part of the key, from /proc (empty values where it
    /// cannot be read: the key then only matches the same gap).
    pub fn machine() -> Key {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get().to_string())
            .unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        // Whole GiB: MemTotal moves by a few kB between kernels.
        let mem_gib = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| ((kb as f64) / (1024.0 * 1024.0)).round().to_string())
            .unwrap_or_default();
        Key::default()
            .with("cpu", model)
            .with("cpus", cpus)
            .with("memory_gib", mem_gib)
            .with("klab", env!("CARGO_PKG_VERSION"))
    }

    /// File name of this key's entry: the first 16 bytes of SHA-256 over
    /// the key's JSON, in hex.
    fn file_name(&self) -> String {
        let json = serde_json::to_vec(&self.0).unwrap_or_default();
        let digest = Sha256::digest(&json);
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("{hex}.json")
    }
}

/// One kept calibration (the cache entry), and also what a run folder's
/// `calibration.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Records/s of lab 01's broker at max: what the labs' shares divide.
    pub capacity_records_per_s: f64,
    /// When it was measured (RFC 3339, UTC).
    pub measured_at: String,
    /// The run folder that measured it.
    pub measured_in: String,
    /// "measured" (this run) or "reused" (kept from `measured_in`).
    #[serde(default)]
    pub source: String,
    pub key: Key,
}

impl Calibration {
    /// A figure this run measured and did not keep.
    pub fn measured_now(capacity: f64, run_dir: &Path, key: Key) -> Calibration {
        Calibration {
            capacity_records_per_s: capacity,
            measured_at: utc_now(),
            measured_in: run_dir.display().to_string(),
            source: "measured".into(),
            key,
        }
    }
}

/// The cache directory: `$KLAB_CACHE_DIR`, `$XDG_CACHE_HOME/klab` or
/// `~/.cache/klab`; None without any of them.
pub fn cache_dir() -> Option<PathBuf> {
    let var = |n: &str| std::env::var_os(n).filter(|v| !v.is_empty());
    if let Some(d) = var("KLAB_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = var("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("klab"));
    }
    var("HOME").map(|h| PathBuf::from(h).join(".cache/klab"))
}

/// Kept calibrations in one directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(cache_dir: &Path) -> Store {
        Store {
            dir: cache_dir.join("calibration"),
        }
    }

    /// The cache in [`cache_dir`], if there is one.
    pub fn default_location() -> Option<Store> {
        cache_dir().map(|d| Store::new(&d))
    }

    fn path(&self, key: &Key) -> PathBuf {
        self.dir.join(key.file_name())
    }

    /// The calibration kept for `key`: None when there is none, or when
    /// the entry cannot be read or was written for another key (a log
    /// line says so; the caller measures again and overwrites it).
    pub fn load(&self, key: &Key) -> Option<Calibration> {
        let path = self.path(key);
        let text = crate::infile::read_text(&path, crate::infile::MAX_TEXT).ok()?;
        match serde_json::from_str::<Calibration>(&text) {
            Ok(c) if &c.key == key && c.capacity_records_per_s > 0.0 => Some(c),
            Ok(_) => {
                tracing::warn!(
                    "{}: another key's calibration; measuring again",
                    path.display()
                );
                None
            }
            Err(e) => {
                tracing::warn!("{}: unreadable ({e}); measuring again", path.display());
                None
            }
        }
    }

    /// Keeps `capacity` for `key` (atomically: a reader sees the old entry
    /// or the new one).
    pub fn save(&self, key: &Key, capacity: f64, run_dir: &Path) -> Result<Calibration> {
        std::fs::create_dir_all(&self.dir)?;
        let c = Calibration::measured_now(capacity, run_dir, key.clone());
        write_json(&self.path(key), &c)?;
        Ok(c)
    }

    /// Forgets the calibration of `key` (`--recalibrate`).
    pub fn forget(&self, key: &Key) {
        let _ = std::fs::remove_file(self.path(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(v: &str) -> Key {
        Key::machine().with("lab", v)
    }

    #[test]
    fn a_kept_calibration_comes_back_for_its_key_only() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path());
        assert!(s.load(&key("a")).is_none());
        let saved = s
            .save(&key("a"), 123_456.0, Path::new("results/x"))
            .unwrap();
        let got = s.load(&key("a")).unwrap();
        assert_eq!(got, saved);
        assert_eq!(got.capacity_records_per_s, 123_456.0);
        assert!(s.load(&key("b")).is_none());
        s.forget(&key("a"));
        assert!(s.load(&key("a")).is_none());
    }

    #[test]
    fn a_damaged_or_foreign_entry_is_measured_again() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path());
        let k = key("a");
        std::fs::create_dir_all(d.path().join("calibration")).unwrap();
        std::fs::write(s.path(&k), "{ not json").unwrap();
        assert!(s.load(&k).is_none());
        // An entry whose own key differs (a hash collision, a hand edit).
        let other = s.save(&key("b"), 1.0, Path::new("r")).unwrap();
        std::fs::write(s.path(&k), serde_json::to_string(&other).unwrap()).unwrap();
        assert!(s.load(&k).is_none());
    }

    #[test]
    fn the_machine_key_names_what_moves_the_figure() {
        let k = Key::machine();
        for name in ["cpu", "cpus", "memory_gib", "klab"] {
            assert!(k.0.contains_key(name), "{name}: {k:?}");
        }
        assert_ne!(key("a").file_name(), key("b").file_name());
        assert_eq!(key("a").file_name(), key("a").file_name());
    }
}
