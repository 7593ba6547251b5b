//! What Kafka 4.1's broker accepts: every config key with its type, default,
//! dynamic update mode and validator, as dumped from Kafka's own ConfigDef
//! (scripts/gen-broker-configs.java writes kafka-4.1-broker-configs.tsv).
//! klab checks `--broker-set` flags and lab files against it before any
//! broker starts, and uses the update mode to decide between a dynamic
//! change and a restart.

use crate::broker::render::LAYOUT_KEYS;
use crate::model::BrokerConfig;
use crate::usage;
use anyhow::Result;
use std::collections::BTreeMap;
use std::sync::LazyLock;

const TABLE_TSV: &str = include_str!("kafka-4.1-broker-configs.tsv");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    ReadOnly,
    PerBroker,
    ClusterWide,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub name: &'static str,
    pub ty: &'static str,
    pub default: &'static str,
    pub mode: Mode,
    pub valid: &'static str,
}

impl KeyInfo {
    pub fn is_dynamic(&self) -> bool {
        self.mode != Mode::ReadOnly
    }
}

static TABLE: LazyLock<BTreeMap<&'static str, KeyInfo>> = LazyLock::new(|| {
    let mut m = BTreeMap::new();
    for line in TABLE_TSV.lines().skip(1) {
        let mut f = line.split('\t');
        let (Some(name), Some(ty), Some(default), Some(mode)) =
            (f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let valid = f.next().unwrap_or("");
        let mode = match mode {
            "per-broker" => Mode::PerBroker,
            "cluster-wide" => Mode::ClusterWide,
            _ => Mode::ReadOnly,
        };
        m.insert(
            name,
            KeyInfo {
                name,
                ty,
                default,
                mode,
                valid,
            },
        );
    }
    m
});

pub fn lookup(name: &str) -> Option<&'static KeyInfo> {
    TABLE.get(name)
}

pub fn all() -> impl Iterator<Item = &'static KeyInfo> {
    TABLE.values()
}

/// Thread pools Kafka resizes live, within [old/2, 2*old] per change.
pub const THREAD_POOLS: &[&str] = &[
    "num.io.threads",
    "num.network.threads",
    "num.replica.fetchers",
    "num.recovery.threads.per.data.dir",
    "background.threads",
];

/// The known key closest to `name`, if any is close.
fn suggest(name: &str) -> Option<&'static str> {
    crate::error::closest(name, TABLE.keys().copied(), 3)
}

/// Parses a ConfigDef range such as `[1,...]` or `[0,...,10]`.
fn range(valid: &str) -> Option<(f64, Option<f64>)> {
    let inner = valid.strip_prefix('[')?.split(']').next()?;
    let parts: Vec<&str> = inner.split(',').map(str::trim).collect();
    match parts.as_slice() {
        [lo, "..."] => Some((lo.parse().ok()?, None)),
        [lo, "...", hi] => Some((lo.parse().ok()?, Some(hi.parse().ok()?))),
        _ => None,
    }
}

/// Checks one broker setting: a known key, not one klab sets itself, a
/// value of the right type and in range. The error says what is allowed.
pub fn check_setting(key: &str, value: &str) -> Result<&'static KeyInfo, String> {
    if LAYOUT_KEYS.contains(&key) {
        return Err(format!(
            "'{key}' is set by klab itself (node layout: listeners, ids, log.dirs); it cannot be changed"
        ));
    }
    let Some(info) = lookup(key) else {
        let hint = suggest(key)
            .map(|s| format!("; did you mean '{s}'?"))
            .unwrap_or_default();
        return Err(format!(
            "'{key}' is not a Kafka 4.1 broker config{hint} (see `klab knobs` for the list)"
        ));
    };
    let v = value.trim();
    let expected = |what: &str| format!("{key}={value}: expected {what}");
    let num: Option<f64> = match info.ty {
        "int" => Some(v.parse::<i32>().map_err(|_| expected("an int (32-bit)"))? as f64),
        "short" => Some(
            v.parse::<i16>()
                .map_err(|_| expected("a short (16-bit int)"))? as f64,
        ),
        "long" => Some(
            v.parse::<i64>()
                .map_err(|_| expected("a long (64-bit int)"))? as f64,
        ),
        "double" => Some(v.parse::<f64>().map_err(|_| expected("a number"))?),
        "boolean" => {
            if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") {
                return Err(expected("true or false"));
            }
            None
        }
        _ => None,
    };
    if let (Some(n), Some((lo, hi))) = (num, range(info.valid)) {
        // "[1,...,9] or -1" style validators allow an extra value.
        let extra_ok = info
            .valid
            .split(" or ")
            .skip(1)
            .any(|alt| alt.trim().parse::<f64>().ok() == Some(n));
        if !extra_ok && (n < lo || hi.is_some_and(|h| n > h)) {
            return Err(format!(
                "{key}={value}: out of range; Kafka allows {}",
                info.valid
            ));
        }
    }
    if info.ty == "string"
        && info.valid.starts_with('[')
        && !info.valid.contains("...")
        && !info.valid.is_empty()
    {
        let choices: Vec<String> = info
            .valid
            .trim_matches(|c| c == '[' || c == ']')
            .split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .collect();
        if !choices.contains(&v.to_ascii_lowercase()) {
            return Err(expected(&format!("one of {}", info.valid)));
        }
    }
    Ok(info)
}

/// Checks every property of a config; errors are prefixed by `what`.
fn check_config(cfg: &BrokerConfig) -> Result<(), String> {
    for (k, v) in &cfg.properties {
        check_setting(k, v)?;
    }
    if let Some(h) = cfg.heap {
        check_heap(h)?;
    }
    Ok(())
}

/// The env var the broker image reads its config from (TOML).
pub const ENV_BROKER_CONFIG: &str = "KLAB_BROKER_CONFIG";

/// Parses and checks a TOML broker config; `what` names where it came from.
pub fn parse_config(text: &str, what: &str) -> Result<BrokerConfig> {
    let cfg: BrokerConfig = toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map(|s| {
                let (l, c) = crate::error::line_col(text, s.start);
                format!(":{l}:{c}")
            })
            .unwrap_or_default();
        usage!("{what}{at}: {}", e.message().trim())
    })?;
    check_config(&cfg).map_err(|e| usage!("{what}: {e}"))?;
    Ok(cfg)
}

/// A heap the JVM can start a broker with on this machine.
pub fn check_heap(h: crate::units::MemSize) -> Result<(), String> {
    use crate::units::MemSize;
    if h < MemSize::mib(64) {
        return Err(format!("heap {h} is too small for a broker; at least 64m"));
    }
    let total = physical_memory();
    if let Some(total) = total
        && h.bytes() > total
    {
        return Err(format!(
            "heap {h} is more than this machine's memory ({})",
            MemSize(total)
        ));
    }
    if h > MemSize(64 * MemSize::GIB) {
        return Err(format!("heap {h} is absurd for a lab broker; at most 64g"));
    }
    Ok(())
}

fn physical_memory() -> Option<u64> {
    meminfo("MemTotal")
}

/// A field of /proc/meminfo (`MemTotal`, `MemAvailable`), in bytes.
pub fn meminfo(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The value `key` has on a broker that runs `cfg`: the config's own,
/// else klab's single-node default, else Kafka's default.
pub fn value_in(cfg: &BrokerConfig, key: &str) -> Option<String> {
    cfg.properties
        .get(key)
        .cloned()
        .or_else(|| crate::broker::render::single_node_defaults().remove(key))
        .or_else(|| lookup(key).map(|i| i.default.to_string()))
}

fn same(a: &Option<String>, b: &Option<String>) -> bool {
    let norm = |v: &Option<String>| v.as_deref().map(|s| s.trim().to_ascii_lowercase());
    norm(a) == norm(b)
}

/// The settings whose value differs between a broker running `from` and
/// one running `to`, with their value in `to` (a key `to` leaves out goes
/// back to its default). Equal values written differently, or a default
/// written out, are no change.
pub fn changed_keys(from: &BrokerConfig, to: &BrokerConfig) -> BTreeMap<String, String> {
    let keys: std::collections::BTreeSet<&String> =
        from.properties.keys().chain(to.properties.keys()).collect();
    keys.into_iter()
        .filter_map(|k| {
            let (a, b) = (value_in(from, k), value_in(to, k));
            (!same(&a, &b)).then(|| (k.clone(), b.unwrap_or_default()))
        })
        .collect()
}

/// The heap a config gives the JVM.
pub fn heap_of(cfg: &BrokerConfig) -> crate::units::MemSize {
    cfg.heap.unwrap_or(crate::broker::render::DEFAULT_HEAP)
}

/// True when going from `from` to `to` needs a broker restart: the heap
/// changes, or a read-only key changes value (a key left out counts as its
/// default, so `heap = "1g"` written out, or a socket buffer at its default,
/// is no change).
pub fn needs_restart(from: &BrokerConfig, to: &BrokerConfig) -> bool {
    heap_of(from) != heap_of(to)
        || changed_keys(from, to)
            .keys()
            .any(|k| !lookup(k).is_some_and(KeyInfo::is_dynamic))
}

/// The static value (from `static_cfg`, else Kafka's default) of each thread
/// pool among `keys`. A pool must walk back to it, in steps Kafka accepts,
/// before its dynamic value is removed: Kafka refuses (in the background) a
/// fallback that more than halves or doubles the pool.
pub fn pool_fallbacks<'a>(
    static_cfg: &BrokerConfig,
    keys: impl IntoIterator<Item = &'a str>,
) -> BTreeMap<String, String> {
    keys.into_iter()
        .filter(|k| THREAD_POOLS.contains(k))
        .filter_map(|k| {
            let v = static_cfg
                .properties
                .get(k)
                .cloned()
                .or_else(|| lookup(k).map(|i| i.default.to_string()))?;
            Some((k.to_string(), v))
        })
        .collect()
}

/// Splits a change of dynamic keys into AlterConfigs requests Kafka accepts:
/// thread pools move at most by a factor of two per request. Each returned
/// map is the complete dynamic set to send (legacy AlterConfigs semantics).
/// `current` holds the values the broker reports now.
pub fn dynamic_steps(
    current: &BTreeMap<String, String>,
    target: &BTreeMap<String, String>,
) -> Vec<BTreeMap<String, String>> {
    let mut steps = Vec::new();
    let mut now: BTreeMap<String, i64> = BTreeMap::new();
    for k in THREAD_POOLS {
        if let Some(v) = current.get(*k).and_then(|v| v.parse().ok()) {
            now.insert(k.to_string(), v);
        }
    }
    loop {
        let mut step = target.clone();
        let mut more = false;
        for (k, want) in target {
            let (Some(cur), Ok(want)) = (now.get(k).copied(), want.parse::<i64>()) else {
                continue;
            };
            let lo = (cur / 2).max(1);
            let hi = cur.saturating_mul(2);
            let next = want.clamp(lo, hi);
            if next != want {
                more = true;
            }
            step.insert(k.clone(), next.to_string());
            now.insert(k.clone(), next);
        }
        steps.push(step);
        if !more || steps.len() > 64 {
            break;
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::MemSize;

    #[test]
    fn table_has_the_keys_klab_uses() {
        for k in [
            "num.io.threads",
            "num.network.threads",
            "log.flush.interval.messages",
            "socket.send.buffer.bytes",
            "socket.receive.buffer.bytes",
        ] {
            assert!(lookup(k).is_some(), "{k}");
        }
        assert!(lookup("num.io.threads").unwrap().is_dynamic());
        assert!(!lookup("socket.send.buffer.bytes").unwrap().is_dynamic());
        assert!(all().count() > 300);
    }

    #[test]
    fn settings_are_checked() {
        assert!(check_setting("num.io.threads", "4").is_ok());
        let e = check_setting("num.io.thread", "4").unwrap_err();
        assert!(e.contains("did you mean 'num.io.threads'"), "{e}");
        assert!(
            check_setting("num.io.threads", "four")
                .unwrap_err()
                .contains("expected an int")
        );
        assert!(
            check_setting("num.io.threads", "0")
                .unwrap_err()
                .contains("out of range")
        );
        assert!(
            check_setting("listeners", "x")
                .unwrap_err()
                .contains("set by klab")
        );
        assert!(check_setting("auto.create.topics.enable", "maybe").is_err());
        assert!(check_setting("compression.type", "zstd").is_ok());
        assert!(check_setting("compression.type", "brotli").is_err());
        assert!(check_setting("compression.gzip.level", "-1").is_ok());
        assert!(check_setting("compression.gzip.level", "12").is_err());
        assert!(check_setting("log.flush.interval.messages", "1").is_ok());
    }

    #[test]
    fn broker_config_toml_is_checked_and_located() {
        let c = parse_config("heap = \"512m\"\n\n[properties]\n", "env").unwrap();
        assert_eq!(c.heap.map(|h| h.jvm()), Some("512m".into()));
        let c = parse_config("[properties]\n\"num.io.threads\" = \"2\"\n", "env").unwrap();
        assert_eq!(c.properties["num.io.threads"], "2");
        let e = parse_config("heap = \"512m\"\ncolour = 1\n", "env")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("env:2:"), "{e}");
        let e = parse_config("[properties]\n\"num.io.thread\" = \"2\"\n", "env")
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean"), "{e}");
        assert!(parse_config("", "env").unwrap().is_empty());
    }

    #[test]
    fn heaps_are_checked() {
        assert!(check_heap(MemSize::mib(256)).is_ok());
        assert!(check_heap(MemSize::mib(16)).is_err());
        assert!(check_heap(MemSize(1 << 50)).is_err());
    }

    #[test]
    fn restarts_only_when_needed() {
        let mut a = BrokerConfig::default();
        let mut b = a.clone();
        b.properties.insert("num.io.threads".into(), "2".into());
        assert!(!needs_restart(&a, &b));
        b.properties
            .insert("socket.send.buffer.bytes".into(), "4096".into());
        assert!(needs_restart(&a, &b));
        a.heap = Some(MemSize::mib(256));
        assert!(needs_restart(
            &a,
            &BrokerConfig {
                heap: None,
                ..a.clone()
            }
        ));
    }

    #[test]
    fn defaults_written_out_are_no_change() {
        // What a tuner candidate looks like next to the lab's own config:
        // every knob written out, most at their defaults.
        let lab = BrokerConfig {
            heap: None,
            properties: [("log.segment.bytes".to_string(), "1048576".to_string())].into(),
        };
        let mut candidate = lab.clone();
        candidate.heap = Some(MemSize(MemSize::GIB));
        for (k, v) in [
            ("socket.send.buffer.bytes", "102400"),
            ("socket.receive.buffer.bytes", "102400"),
            ("num.network.threads", "3"),
            ("num.io.threads", "8"),
            ("auto.create.topics.enable", "false"),
        ] {
            candidate.properties.insert(k.into(), v.into());
        }
        assert!(changed_keys(&lab, &candidate).is_empty());
        assert!(!needs_restart(&lab, &candidate));
        // A key left out goes back to its default: a live change.
        let mut flushed = lab.clone();
        flushed
            .properties
            .insert("log.flush.interval.messages".into(), "1".into());
        let back = changed_keys(&flushed, &lab);
        assert_eq!(back["log.flush.interval.messages"], "9223372036854775807");
        assert!(!needs_restart(&flushed, &lab));
    }

    #[test]
    fn thread_pools_move_by_at_most_double() {
        let cur: BTreeMap<String, String> =
            [("num.io.threads".to_string(), "8".to_string())].into();
        let target: BTreeMap<String, String> = [
            ("num.io.threads".to_string(), "1".to_string()),
            ("log.flush.interval.messages".to_string(), "1".to_string()),
        ]
        .into();
        let steps = dynamic_steps(&cur, &target);
        let io: Vec<&str> = steps.iter().map(|s| s["num.io.threads"].as_str()).collect();
        assert_eq!(io, ["4", "2", "1"]);
        assert!(
            steps
                .iter()
                .all(|s| s["log.flush.interval.messages"] == "1")
        );
        let up: BTreeMap<String, String> =
            [("num.io.threads".to_string(), "20".to_string())].into();
        let one: BTreeMap<String, String> =
            [("num.io.threads".to_string(), "1".to_string())].into();
        let io: Vec<String> = dynamic_steps(&one, &up)
            .iter()
            .map(|s| s["num.io.threads"].clone())
            .collect();
        assert_eq!(io, ["2", "4", "8", "16", "20"]);
    }
}
