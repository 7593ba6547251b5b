//! Finding a Kafka installation and a Java runtime.
//!
//! Accepted shapes, all with the jars under `libs/`: nixpkgs' `apacheKafka`
//! output, Apache's binary tarball, and the directory `scripts/kafka-home`
//! builds from Maven artifacts.

use crate::usage;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const ENV_KAFKA_HOME: &str = "KLAB_KAFKA_HOME";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaHome {
    pub dir: PathBuf,
    pub libs: PathBuf,
    pub version: String,
}

const HOW_TO_GET_ONE: &str = "\
get one with Nix (`nix develop` sets KLAB_KAFKA_HOME) or without it: \
`export KLAB_KAFKA_HOME=$(./scripts/kafka-home)` fetches Apache Kafka's jars with Maven; \
an unpacked Apache Kafka tarball works too";

impl KafkaHome {
    /// Fails (a usage error) without the kafka-tools jar, where
    /// ProducerPerformance, ConsumerPerformance and EndToEndLatency live.
    pub fn check_tools(&self) -> anyhow::Result<()> {
        let has_tools = std::fs::read_dir(&self.libs)
            .map(|rd| {
                rd.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("kafka-tools-"))
            })
            .unwrap_or(false);
        if !has_tools {
            return Err(crate::usage!(
                "{} has no kafka-tools jar (ProducerPerformance, ConsumerPerformance, EndToEndLatency); scripts/kafka-home fetches it, nixpkgs' apacheKafka ships it",
                self.libs.display()
            ));
        }
        Ok(())
    }

    /// `--kafka-home` if given, else `$KLAB_KAFKA_HOME`.
    pub fn locate(flag: Option<&Path>) -> Result<KafkaHome> {
        if let Some(dir) = flag {
            return KafkaHome::at(dir).map_err(|e| usage!("--kafka-home {}: {e}", dir.display()));
        }
        match std::env::var_os(ENV_KAFKA_HOME) {
            Some(v) if !v.is_empty() => {
                let dir = PathBuf::from(v);
                KafkaHome::at(&dir).map_err(|e| usage!("{ENV_KAFKA_HOME}={}: {e}", dir.display()))
            }
            _ => Err(usage!(
                "no Kafka installation: pass --kafka-home DIR or set {ENV_KAFKA_HOME}; {HOW_TO_GET_ONE}"
            )),
        }
    }

    /// Checks that `dir` looks like a Kafka installation.
    pub fn at(dir: &Path) -> std::result::Result<KafkaHome, String> {
        if dir.to_string_lossy().contains(':') {
            return Err(
                "':' cannot be in its path: the JVM's class path (libs/*) separates its entries with ':'; move or link the installation to a path without one"
                    .into(),
            );
        }
        if !dir.is_dir() {
            return Err(format!("not a directory; {HOW_TO_GET_ONE}"));
        }
        let libs = dir.join("libs");
        let entries = std::fs::read_dir(&libs)
            .map_err(|e| format!("no readable libs/ directory ({e}); {HOW_TO_GET_ONE}"))?;
        let mut version = None;
        let mut has_server = false;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if let Some(v) = name
                .strip_prefix("kafka-clients-")
                .and_then(|r| r.strip_suffix(".jar"))
            {
                version = Some(v.to_string());
            }
            if name.starts_with("kafka_2.13-") || name.starts_with("kafka-server-") {
                has_server = true;
            }
        }
        let Some(version) = version else {
            return Err(format!("libs/ has no kafka-clients jar; {HOW_TO_GET_ONE}"));
        };
        if !has_server {
            return Err(format!(
                "libs/ has no Kafka broker jar (kafka_2.13-*.jar); {HOW_TO_GET_ONE}"
            ));
        }
        Ok(KafkaHome {
            dir: dir.to_path_buf(),
            libs,
            version,
        })
    }

    /// The `-cp` argument: every jar in libs/.
    pub fn classpath(&self) -> String {
        format!("{}/*", self.libs.display())
    }
}

/// `/nix/store/<hash>-<name>` when `p` (resolved) lies in the Nix store.
pub fn store_path_of(p: &Path) -> Option<String> {
    let real = std::fs::canonicalize(p).ok()?;
    let mut comps = real.components();
    let mut out = PathBuf::new();
    for want in ["/", "nix", "store"] {
        let c = comps.next()?;
        if c.as_os_str() != want {
            return None;
        }
        out.push(c);
    }
    out.push(comps.next()?);
    Some(out.to_string_lossy().to_string())
}

/// The `java` to run: `$KLAB_JAVA`, `$JAVA_HOME/bin/java`, or `java` on PATH.
pub fn java() -> Result<PathBuf> {
    if let Some(j) = std::env::var_os("KLAB_JAVA").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(j));
    }
    if let Some(home) = std::env::var_os("JAVA_HOME").filter(|v| !v.is_empty()) {
        let j = PathBuf::from(home).join("bin/java");
        if j.is_file() {
            return Ok(j);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let j = dir.join("java");
            if j.is_file() {
                return Ok(j);
            }
        }
    }
    Err(usage!(
        "no Java runtime: Kafka 4.1 needs Java 17 or newer; set JAVA_HOME or put `java` on PATH (`nix develop` provides one)"
    ))
}

/// `java -version`'s first line, e.g. `openjdk version "17.0.15" 2025-04-15`.
pub fn java_version(java: &Path) -> Result<String> {
    let out = Command::new(java)
        .arg("-version")
        .output()
        .with_context(|| format!("running {} -version", java.display()))?;
    let text = String::from_utf8_lossy(&out.stderr);
    Ok(text.lines().next().unwrap_or("").trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_home(jars: &[&str]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("libs")).unwrap();
        for j in jars {
            std::fs::write(d.path().join("libs").join(j), b"").unwrap();
        }
        d
    }

    #[test]
    fn accepts_a_libs_directory_and_reads_the_version() {
        let d = fake_home(&["kafka-clients-4.1.2.jar", "kafka_2.13-4.1.2.jar", "x.jar"]);
        let h = KafkaHome::at(d.path()).unwrap();
        assert_eq!(h.version, "4.1.2");
        assert!(h.classpath().ends_with("libs/*"));
    }

    #[test]
    fn rejects_what_is_not_kafka() {
        let d = fake_home(&["x.jar"]);
        let e = KafkaHome::at(d.path()).unwrap_err();
        assert!(e.contains("kafka-clients"), "{e}");
        assert!(e.contains("scripts/kafka-home"), "{e}");
        let d = fake_home(&["kafka-clients-4.1.2.jar"]);
        assert!(KafkaHome::at(d.path()).unwrap_err().contains("broker jar"));
        assert!(KafkaHome::at(Path::new("/nonexistent/klab")).is_err());
    }

    #[test]
    fn store_paths() {
        assert_eq!(store_path_of(Path::new("/tmp")), None);
    }
}
