//! The lab file format (`labs/NN-slug/lab.toml`) and its validation.
//!
//! Every error names the file, the line and column, the field and what is
//! allowed. Unknown keys are errors, so a typo never silently does nothing.

use crate::error::line_col;
use crate::model::{Acks, BrokerConfig, limits};
use crate::units::{MemSize, parse_duration};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

use super::expect::expect;
pub use super::expect::{Expect, Metric, RawExpect, Rule};
pub use super::fix::Fix;
use super::located::Ctx;
pub use super::located::LabFileError;
pub use crate::model::settings::{Given, RateSpec, SetError, WorkloadPatch};

/// A lab file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLab {
    pub title: Spanned<String>,
    /// The lab this one builds on (`01`, or `01-baseline`).
    pub extends: Option<Spanned<String>>,
    pub summary: Option<String>,
    /// What this lab changes on the broker (laid over the lab it extends).
    pub broker: Option<RawBroker>,
    /// The healthy values of what this lab (and the labs before it) broke.
    pub fix: Option<RawFix>,
    pub workload: Option<RawWorkload>,
    /// Workload overrides for `--quick`.
    pub quick: Option<RawWorkload>,
    pub expect: Option<RawExpect>,
    /// The local cluster the lab runs on.
    pub cluster: Option<RawCluster>,
    /// Faults on each step's measured window.
    pub faults: Option<Vec<RawFault>>,
    /// What `klab capacity --lab` searches for.
    pub capacity: Option<super::capacity::RawCapacity>,
    /// The links between the clients and the nodes and between nodes.
    pub network: Option<super::network::RawNetwork>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    /// Brokers, 1 to 5.
    pub brokers: Spanned<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFault {
    pub at: Spanned<String>,
    pub action: Spanned<String>,
    pub broker: Option<Spanned<toml::Value>>,
    /// A consumer event's member (1 = the first).
    pub consumer: Option<Spanned<toml::Value>>,
    #[serde(rename = "for")]
    pub duration: Option<Spanned<String>>,
    pub restart_after: Option<Spanned<String>>,
    /// What a `slow` adds.
    pub latency: Option<Spanned<String>>,
    /// What a `slow` leaves each connection.
    pub bandwidth: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBroker {
    pub heap: Option<Spanned<String>>,
    #[serde(default)]
    pub properties: BTreeMap<String, Spanned<toml::Value>>,
}

/// A fix: broker settings and, for client-side damage, producer settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFix {
    pub heap: Option<Spanned<String>>,
    #[serde(default)]
    pub properties: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    pub producer: BTreeMap<String, Spanned<toml::Value>>,
    /// The producers' acks (a workload setting, not a librdkafka key).
    pub acks: Option<Spanned<toml::Value>>,
    /// The topic's min.insync.replicas.
    pub min_insync_replicas: Option<Spanned<i64>>,
    /// Partitions of the workload's topic and consumers reading it.
    pub partitions: Option<Spanned<i64>>,
    pub consumers: Option<Spanned<i64>>,
    #[serde(default)]
    pub consumer: BTreeMap<String, Spanned<toml::Value>>,
}

/// `[workload]` or `[quick]` as written: each setting by its key (see
/// `model::settings`), read through `WorkloadPatch::set`; its client tables
/// come from [`ClientTables`] (a second reading keeps their keys' places).
pub type RawWorkload = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

/// The `producer` and `consumer` tables of `[workload]` and `[quick]`,
/// with the place of each key.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ClientTables {
    #[serde(default)]
    pub producer: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    pub consumer: BTreeMap<String, Spanned<toml::Value>>,
}

/// The second reading of a lab file: only the client tables of its
/// workloads (everything else is the first reading's).
#[derive(Debug, Clone, Default, Deserialize)]
struct RawClients {
    #[serde(default)]
    workload: ClientTables,
    #[serde(default)]
    quick: ClientTables,
}

/// A parsed, validated lab file (before its `extends` chain is resolved).
#[derive(Debug, Clone)]
pub struct LabFile {
    pub path: PathBuf,
    pub title: String,
    pub extends: Option<(String, usize, usize)>,
    pub summary: Option<String>,
    pub broker: BrokerConfig,
    pub fix: Fix,
    pub workload: WorkloadPatch,
    pub quick: WorkloadPatch,
    pub expect: Expect,
    /// `[cluster] brokers`, with its line and column.
    pub brokers: Option<(u32, usize, usize)>,
    /// Where each `[[faults]]` entry's fields are (the faults themselves
    /// are in `workload.faults`).
    pub fault_spans: Vec<FaultSpans>,
    /// Where `[network]`'s first setting is (line, column).
    pub network_at: Option<(usize, usize)>,
    /// `[capacity]`.
    pub capacity: super::capacity::CapacityPatch,
}

/// Line and column of the fields of one `[[faults]]` entry, so that a
/// target that cannot run a fault points at the field it refuses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultSpans {
    pub at: (usize, usize),
    pub action: (usize, usize),
    pub broker: (usize, usize),
    pub restart_after: Option<(usize, usize)>,
}

/// A lab or fix file's bytes: a regular file of at most 1 MiB (a FIFO or
/// `/dev/zero` is refused at once).
fn read(path: &Path) -> Result<Vec<u8>, LabFileError> {
    crate::infile::read(path, crate::infile::MAX_TEXT).map_err(|message| LabFileError {
        file: path.to_path_buf(),
        line: None,
        column: None,
        message,
    })
}

/// Reads and validates one lab file.
pub fn parse_file(path: &Path) -> Result<LabFile, LabFileError> {
    let bytes = read(path)?;
    parse_bytes(path, &bytes)
}

pub fn parse_bytes(path: &Path, bytes: &[u8]) -> Result<LabFile, LabFileError> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            let good = std::str::from_utf8(good).unwrap_or("");
            let (line, column) = line_col(good, good.len());
            return Err(LabFileError {
                file: path.to_path_buf(),
                line: Some(line),
                column: Some(column),
                message: format!(
                    "not valid UTF-8 (byte 0x{:02x} at offset {}); lab files are UTF-8 text",
                    bytes[e.valid_up_to()],
                    e.valid_up_to()
                ),
            });
        }
    };
    let cx = Ctx { path, text };
    if text.trim().is_empty() {
        return Err(cx.err_at(
            None,
            "the file is empty; a lab needs at least `title = \"...\"`".into(),
        ));
    }
    let raw: RawLab = toml::from_str(text).map_err(|e| {
        let msg = e.message().trim().to_string();
        let hint = if msg.contains("unknown field") {
            " (see labs/README.md for the lab file format)"
        } else {
            ""
        };
        cx.err_at(e.span(), format!("{msg}{hint}"))
    })?;
    validate(&cx, raw)
}

fn validate(cx: &Ctx<'_>, raw: RawLab) -> Result<LabFile, LabFileError> {
    if raw.title.get_ref().trim().is_empty() {
        return Err(cx.err(&raw.title, "title: must not be empty".into()));
    }
    let extends = match &raw.extends {
        Some(e) => {
            let (l, c) = line_col(cx.text, e.span().start);
            let id = e.get_ref().trim().to_string();
            if id.is_empty() {
                return Err(cx.err(e, "extends: must name a lab, e.g. \"01\"".into()));
            }
            Some((id, l, c))
        }
        None => None,
    };
    let broker = match &raw.broker {
        Some(b) => parse_broker(cx, "broker", b)?,
        None => BrokerConfig::default(),
    };
    let fix = match &raw.fix {
        Some(f) => parse_fix(cx, "fix", f)?,
        None => Fix::default(),
    };
    // Valid TOML by now, so the second reading cannot fail on syntax.
    let clients: RawClients = toml::from_str(cx.text).unwrap_or_default();
    let workload = match &raw.workload {
        Some(w) => parse_workload(cx, "workload", w, &clients.workload)?,
        None => WorkloadPatch::default(),
    };
    let quick = match &raw.quick {
        Some(w) => parse_workload(cx, "quick", w, &clients.quick)?,
        None => WorkloadPatch::default(),
    };
    let expect = match &raw.expect {
        Some(e) => expect(cx, e)?,
        None => Expect::default(),
    };
    let brokers = match &raw.cluster {
        Some(c) => {
            let hi = crate::broker::local::MAX_BROKERS as u64;
            let n = cx.in_range(&c.brokers, "cluster.brokers", 1, hi)? as u32;
            let (l, col) = line_col(cx.text, c.brokers.span().start);
            Some((n, l, col))
        }
        None => None,
    };
    let capacity = match &raw.capacity {
        Some(c) => super::capacity::parse_capacity(cx, c)?,
        None => Default::default(),
    };
    let mut workload = workload;
    let mut fault_spans = Vec::new();
    if let Some(fs) = &raw.faults {
        let mut out = Vec::new();
        for (i, f) in fs.iter().enumerate() {
            out.push(parse_fault(cx, i + 1, f)?);
            let lc = |start: usize| line_col(cx.text, start);
            fault_spans.push(FaultSpans {
                at: lc(f.at.span().start),
                action: lc(f.action.span().start),
                // A consumer event points at its consumer (or its action).
                broker: lc(f
                    .broker
                    .as_ref()
                    .or(f.consumer.as_ref())
                    .map_or(f.action.span().start, |b| b.span().start)),
                restart_after: f.restart_after.as_ref().map(|r| lc(r.span().start)),
            });
        }
        workload.faults = Some(out);
    }
    let mut network_at = None;
    if let Some(n) = &raw.network {
        workload.network = Some(super::network::parse_network(cx, n)?);
        network_at = n.values().map(|v| line_col(cx.text, v.span().start)).min();
    }
    Ok(LabFile {
        path: cx.path.to_path_buf(),
        title: raw.title.into_inner(),
        extends,
        summary: raw.summary,
        broker,
        fix,
        workload,
        quick,
        expect,
        brokers,
        fault_spans,
        network_at,
        capacity,
    })
}

/// One `[[faults]]` entry; errors name `faults[N].field`.
fn parse_fault(
    cx: &Ctx<'_>,
    n: usize,
    f: &RawFault,
) -> Result<crate::model::FaultSpec, LabFileError> {
    use crate::model::{FaultAction, FaultSpec, FaultTarget};
    let dur = |v: &Spanned<String>, field: &str| {
        parse_duration(v.get_ref()).map_err(|e| cx.err(v, format!("faults[{n}].{field}: {e}")))
    };
    let action = FaultAction::parse(f.action.get_ref())
        .map_err(|e| cx.err(&f.action, format!("faults[{n}].action: {e}")))?;
    let broker = match (&f.broker, &f.consumer) {
        (Some(b), None) => FaultTarget::parse(&scalar(b.get_ref()).unwrap_or_default())
            .map_err(|e| cx.err(b, format!("faults[{n}].broker: {e}")))?,
        (None, Some(c)) => crate::model::consumer_number(&scalar(c.get_ref()).unwrap_or_default())
            .map_err(|e| cx.err(c, format!("faults[{n}].{e}")))?,
        (Some(_), Some(c)) => {
            return Err(cx.err(
                c,
                format!(
                    "faults[{n}].consumer: a fault acts on a broker or on a consumer, not both"
                ),
            ));
        }
        (None, None) if action.is_consumer() => FaultTarget::Consumer(0),
        (None, None) => {
            return Err(cx.err(
                &f.action,
                format!("faults[{n}].broker: missing (a node number, leader, follower, other_follower, followers or controller)"),
            ));
        }
    };
    let spec = FaultSpec {
        at: dur(&f.at, "at")?,
        action,
        broker,
        duration: f.duration.as_ref().map(|d| dur(d, "for")).transpose()?,
        restart_after: f
            .restart_after
            .as_ref()
            .map(|d| dur(d, "restart_after"))
            .transpose()?,
        latency: f.latency.as_ref().map(|d| dur(d, "latency")).transpose()?,
        bandwidth: f
            .bandwidth
            .as_ref()
            .map(|b| {
                crate::model::network::parse_bandwidth(b.get_ref())
                    .map_err(|e| cx.err(b, format!("faults[{n}].bandwidth: {e}")))
            })
            .transpose()?,
    };
    // What needs only the entry itself; the window is checked once the
    // lab's workload is known.
    spec.validate(None)
        .map_err(|e| cx.err(&f.action, format!("faults[{n}].{e}")))?;
    Ok(spec)
}

/// Why a setting's value is not a scalar, in words. A table here is
/// almost always an unquoted dotted key (`num.io.threads = 8` is, in TOML,
/// `num = { io = { threads = 8 } }`): say how to write it.
fn not_scalar(key: &str, v: &toml::Value) -> String {
    fn first_leaf(prefix: String, v: &toml::Value) -> (String, String) {
        match v {
            toml::Value::Table(t) => match t.iter().next() {
                Some((k, inner)) => first_leaf(format!("{prefix}.{k}"), inner),
                None => (prefix, String::new()),
            },
            other => (prefix, other.to_string()),
        }
    }
    match v {
        toml::Value::Table(_) => {
            let (dotted, value) = first_leaf(key.to_string(), v);
            format!(
                "a table, not a value: quote a key with dots in it, \"{dotted}\" = {value} (unquoted, TOML reads {dotted} as nested tables)"
            )
        }
        _ => "expected a string, number or boolean".to_string(),
    }
}

/// A TOML scalar as the string Kafka would read.
fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn parse_broker(cx: &Ctx<'_>, table: &str, b: &RawBroker) -> Result<BrokerConfig, LabFileError> {
    let mut out = BrokerConfig::default();
    if let Some(h) = &b.heap {
        let size: MemSize = h
            .get_ref()
            .parse()
            .map_err(|e: String| cx.err(h, format!("{table}.heap: {e}")))?;
        crate::broker::knobs::check_heap(size)
            .map_err(|e| cx.err(h, format!("{table}.heap: {e}")))?;
        out.heap = Some(size);
    }
    for (k, v) in &b.properties {
        let Some(s) = scalar(v.get_ref()) else {
            return Err(cx.err(
                v,
                format!("{table}.properties.\"{k}\": {}", not_scalar(k, v.get_ref())),
            ));
        };
        crate::broker::knobs::check_setting(k, &s)
            .map_err(|e| cx.err(v, format!("{table}.properties: {e}")))?;
        out.properties.insert(k.clone(), s);
    }
    Ok(out)
}

/// Parses a fix table (also the format of a student's `my-fix.toml`).
fn parse_fix(cx: &Ctx<'_>, table: &str, f: &RawFix) -> Result<Fix, LabFileError> {
    let broker = parse_broker(
        cx,
        table,
        &RawBroker {
            heap: f.heap.clone(),
            properties: f.properties.clone(),
        },
    )?;
    let producer = producer_settings(cx, table, &f.producer)?;
    let acks = f
        .acks
        .as_ref()
        .map(|a| {
            scalar(a.get_ref())
                .unwrap_or_default()
                .parse::<Acks>()
                .map_err(|e| cx.err(a, format!("{table}.acks: {e}")))
        })
        .transpose()?;
    // A count in 1..=hi, when the fix sets it.
    let count = |v: &Option<Spanned<i64>>, key: &str, hi: u64| {
        v.as_ref()
            .map(|v| cx.in_range(v, &format!("{table}.{key}"), 1, hi))
            .transpose()
    };
    let replicas = limits::MAX_REPLICATION as u64;
    let min_insync = count(&f.min_insync_replicas, "min_insync_replicas", replicas)?;
    let partitions = count(&f.partitions, "partitions", limits::MAX_PARTITIONS as u64)?;
    let consumers = count(&f.consumers, "consumers", limits::MAX_CONSUMERS as u64)?;
    Ok(Fix {
        broker,
        producer,
        acks,
        min_insync_replicas: min_insync.map(|n| n as u32),
        partitions: partitions.map(|n| n as i32),
        consumers: consumers.map(|n| n as u32),
        consumer: client_settings(cx, table, "consumer", &f.consumer)?,
    })
}

/// A `[*.producer]` table: librdkafka keys klab does not own, scalar values.
fn producer_settings(
    cx: &Ctx<'_>,
    table: &str,
    raw: &BTreeMap<String, Spanned<toml::Value>>,
) -> Result<BTreeMap<String, String>, LabFileError> {
    client_settings(cx, table, "producer", raw)
}

/// A `[*.producer]` or `[*.consumer]` table of librdkafka settings.
fn client_settings(
    cx: &Ctx<'_>,
    table: &str,
    client: &str,
    raw: &BTreeMap<String, Spanned<toml::Value>>,
) -> Result<BTreeMap<String, String>, LabFileError> {
    let mut out = BTreeMap::new();
    for (k, v) in raw {
        let Some(s) = scalar(v.get_ref()) else {
            return Err(cx.err(
                v,
                format!("{table}.{client}.\"{k}\": {}", not_scalar(k, v.get_ref())),
            ));
        };
        let checked = if client == "consumer" {
            crate::model::check_consumer_key(k)
        } else {
            crate::model::check_producer_key(k)
        };
        checked
            .and_then(|()| {
                crate::load::check_client_setting(k, &s)
                    .map_err(|e| format!("\"{k}\" = {s:?}: librdkafka refuses it: {e}"))
            })
            .map_err(|e| cx.err(v, format!("{table}.{client}: {e}")))?;
        out.insert(k.clone(), s);
    }
    Ok(out)
}

/// Reads a student's fix file (`my-fix.toml`: `heap`, `[properties]`,
/// `[producer]`, the same keys as a lab's `[fix]`).
pub fn parse_fix_file(path: &Path) -> Result<Fix, LabFileError> {
    let bytes = read(path)?;
    let text = std::str::from_utf8(&bytes).map_err(|e| LabFileError {
        file: path.to_path_buf(),
        line: None,
        column: None,
        message: format!("not valid UTF-8 at byte {}", e.valid_up_to()),
    })?;
    let cx = Ctx { path, text };
    let raw: RawFix =
        toml::from_str(text).map_err(|e| cx.err_at(e.span(), e.message().trim().to_string()))?;
    parse_fix(&cx, "fix", &raw)
}

fn parse_workload(
    cx: &Ctx<'_>,
    table: &str,
    w: &RawWorkload,
    clients: &ClientTables,
) -> Result<WorkloadPatch, LabFileError> {
    let mut out = WorkloadPatch::default();
    let mut length: Option<&Spanned<String>> = None;
    for (k, v) in w {
        let key = k.get_ref().as_str();
        if matches!(key, "producer" | "consumer") {
            if !v.get_ref().is_table() {
                return Err(cx.err(
                    v,
                    format!("{table}.{key}: expected a table of librdkafka settings, e.g. [{table}.{key}] with linger.ms = 5"),
                ));
            }
            continue;
        }
        if matches!(key, "messages" | "duration") {
            if length.is_some() {
                return Err(cx.err(k, format!("{table}: give messages or duration, not both")));
            }
            length = Some(k);
        }
        out.set(key, Given::Toml(v.get_ref()))
            .map_err(|e| {
                match e {
            SetError::Bad(why) => cx.err(v, format!("{table}.{key}: {why}")),
            SetError::Unknown(near) => cx.err(
                k,
                format!(
                    "{table}.{key}: unknown setting{}; the settings are: {}, producer, consumer",
                    near.map(|n| format!(" (did you mean {n}?)")).unwrap_or_default(),
                    WorkloadPatch::KEYS.join(", ")
                ),
            ),
        }
            })?;
    }
    out.producer = client_settings(cx, table, "producer", &clients.producer)?;
    out.consumer = client_settings(cx, table, "consumer", &clients.consumer)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parse(text: &str) -> Result<LabFile, LabFileError> {
        parse_bytes(Path::new("labs/99-test/lab.toml"), text.as_bytes())
    }

    const GOOD: &str = r#"
title = "One IO thread"
extends = "02"
summary = "x"

[broker.properties]
"num.io.threads" = 1

[fix.properties]
"num.io.threads" = 8

[workload]
rate = "60%"
duration = "20s"
warmup = "5s"
message_bytes = 1024
partitions = 6
acks = "all"

[workload.producer]
"linger.ms" = 5

[quick]
duration = "6s"

[expect.degraded]
p99_at_least = 1.5
[expect.fixed]
throughput_at_least = 0.9
p99_at_most = 1.5
"#;

    #[test]
    fn a_good_file_parses() {
        let l = parse(GOOD).unwrap();
        assert_eq!(l.title, "One IO thread");
        assert_eq!(l.extends.as_ref().map(|e| e.0.as_str()), Some("02"));
        assert_eq!(l.broker.properties["num.io.threads"], "1");
        assert_eq!(l.workload.rate, Some(RateSpec::OfCapacity(0.6)));
        assert_eq!(l.workload.producer["linger.ms"], "5");
        assert_eq!(l.quick.duration, Some(Duration::from_secs(6)));
        assert_eq!(
            l.expect.fixed,
            vec![
                Rule {
                    metric: Metric::Throughput,
                    at_least: true,
                    limit: 0.9
                },
                Rule {
                    metric: Metric::P99,
                    at_least: false,
                    limit: 1.5
                }
            ]
        );
    }

    fn err(text: &str) -> LabFileError {
        parse(text).unwrap_err()
    }

    #[test]
    fn empty_and_truncated_files() {
        let e = err("");
        assert!(e.message.contains("empty"), "{e}");
        let e = err("   \n\n");
        assert!(e.message.contains("empty"), "{e}");
        let e = err("title = \"x\"\n[broker.prop");
        assert_eq!(e.line, Some(2), "{e}");
        let e = err("title = \"unterminated\n");
        assert_eq!(e.line, Some(1), "{e}");
        assert!(e.to_string().starts_with("labs/99-test/lab.toml:1:"), "{e}");
    }

    #[test]
    fn non_utf8_is_located() {
        let mut bytes = b"title = \"x\"\nsummary = \"".to_vec();
        bytes.push(0xff);
        bytes.extend_from_slice(b"\"\n");
        let e = parse_bytes(Path::new("l.toml"), &bytes).unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("UTF-8"), "{e}");
    }

    #[test]
    fn duplicate_and_unknown_keys() {
        let e = err("title = \"a\"\ntitle = \"b\"\n");
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.message.to_lowercase().contains("duplicate"), "{e}");
        let e = err("title = \"a\"\n[workload]\nrat = 5\n");
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.message.contains("rat"), "{e}");
        let e = err("title = \"a\"\ncolour = 1\n");
        assert!(e.message.contains("colour"), "{e}");
    }

    #[test]
    fn wrong_types_and_ranges() {
        // A lab file's body after its title, and what its error says.
        for (body, says) in [
            ("[workload]\nrate = -3\n", "workload.rate"),
            ("[workload]\nrate = \"150%\"\n", "out of range"),
            ("[workload]\nmessage_bytes = 10\n", "message_bytes"),
            ("[workload]\nduration = \"soon\"\n", "workload.duration"),
            ("[broker]\nheap = \"2m\"\n", "broker.heap"),
            (
                "[broker.properties]\n\"num.io.threads\" = 0\n",
                "out of range",
            ),
            (
                "[broker.properties]\n\"num.io.thread\" = 2\n",
                "did you mean",
            ),
            ("[workload.producer]\nacks = \"0\"\n", "set by klab"),
            (
                "[expect.fixed]\np99_at_most = -1.0\n",
                "expect.fixed.p99_at_most",
            ),
            ("[workload.producer]\nlinger.ms = 5\n", "\"linger.ms\" = 5"),
            (
                "[expect.degraded]\ncombine = \"some\"\n",
                "\"any\" or \"all\"",
            ),
            ("[expect.fixed]\ncombine = \"all\"\n", "unknown rule"),
            (
                "[expect.fixed]\nlost_at_most = \"none\"\n",
                "expected a number",
            ),
            ("[workload]\nmessages = 5\nduration = \"5s\"\n", "not both"),
        ] {
            let e = err(&format!("title = \"a\"\n{body}"));
            assert!(e.message.contains(says), "{e}");
        }
        let e = err("title = \"a\"\n[workload]\npartitions = \"six\"\n");
        assert_eq!(e.line, Some(3), "{e}");
        let e = err("title = \"a\"\n[workload]\npartitions = 0\n");
        assert!(e.message.contains("workload.partitions"), "{e}");
        assert_eq!((e.line, e.column), (Some(3), Some(14)), "{e}");
        let e = err("title = \"a\"\n[workload]\nproducer = 5\n");
        assert!(
            e.message.contains("workload.producer: expected a table"),
            "{e}"
        );
        assert_eq!(e.line, Some(3), "{e}");
        for (field, value, range) in [
            ("message_bytes", "2000000", "64..=1000000"),
            ("partitions", "-1", "1..=1024"),
            ("producers", "65", "1..=64"),
            ("messages", "0", "1..=1000000000"),
        ] {
            let e = err(&format!("title = \"a\"\n[workload]\n{field} = {value}\n"));
            assert_eq!(
                e.message,
                format!("workload.{field}: {value} is out of range; expected {range}"),
            );
            assert_eq!(e.line, Some(3), "{e}");
        }
        let e = err("title = \"a\"\n[broker.properties]\nnum.io.threads = 8\n");
        assert!(
            e.message.contains("\"num.io.threads\" = 8"),
            "an unquoted dotted key gets a hint to quote it: {e}"
        );
        let e = err("title = \"a\"\n[expect.fixed]\nlost_at_mots = 0\n");
        assert!(e.message.contains("did you mean lost_at_most?"), "{e}");
        assert_eq!(e.line, Some(3), "{e}");
        let l = parse("title = \"a\"\n[expect.degraded]\nacked_alone_at_least = 100\n[expect.fixed]\nacked_alone_at_most = 0\n").unwrap();
        let alone = |at_least, limit| Rule {
            metric: Metric::AckedAlone,
            at_least,
            limit,
        };
        assert_eq!(l.expect.degraded, [alone(true, 100.0)]);
        assert_eq!(l.expect.fixed, [alone(false, 0.0)]);
        let e = err("title = 5\n");
        assert_eq!(e.line, Some(1), "{e}");
        let e = err("title = \"\"\n");
        assert!(e.message.contains("title"), "{e}");
    }

    #[test]
    fn patches_overlay() {
        let base = WorkloadPatch {
            rate: Some(RateSpec::Fixed(100.0)),
            duration: Some(Duration::from_secs(10)),
            ..Default::default()
        };
        let over = WorkloadPatch {
            messages: Some(5),
            producer: [("linger.ms".to_string(), "0".to_string())].into(),
            ..Default::default()
        };
        let o = base.overlay(&over);
        assert_eq!(o.messages, Some(5));
        assert_eq!(o.duration, None);
        assert_eq!(o.rate, Some(RateSpec::Fixed(100.0)));
        assert_eq!(base.changes(&over), vec!["linger.ms=0".to_string()]);
    }

    #[test]
    fn client_side_fields_parse_and_bad_ones_name_the_field() {
        let l = parse(
            "title = \"c\"\n[workload]\npayload = \"json\"\nconsumers = 2\nprocessing = \"250us\"\npartitions = 4\n[workload.consumer]\n\"fetch.min.bytes\" = 65536\n[fix]\npartitions = 8\nconsumers = 8\n[fix.consumer]\n\"fetch.wait.max.ms\" = 10\n[expect.capacity]\nfixed_at_least = 2.0\n",
        )
        .unwrap();
        assert_eq!(l.workload.payload, Some(crate::model::Payload::Json));
        assert_eq!(l.workload.consumers, Some(2));
        assert_eq!(l.workload.processing, Some(Duration::from_micros(250)));
        assert_eq!(l.workload.consumer["fetch.min.bytes"], "65536");
        assert_eq!((l.fix.partitions, l.fix.consumers), (Some(8), Some(8)));
        assert_eq!(l.fix.consumer["fetch.wait.max.ms"], "10");
        assert!(l.fix.lines().contains(&"consumers=8".to_string()));
        assert_eq!(l.expect.capacity_at_least, Some(2.0));
        for (text, want) in [
            (
                "[workload]\npayload = \"xml\"\n",
                "workload.payload: 'xml' is not a payload; allowed: fixed, json",
            ),
            ("[workload]\nconsumers = 0\n", "workload.consumers"),
            (
                "[workload]\nprocessing = \"2s\"\n",
                "workload.processing: at most 1s",
            ),
            (
                "[workload.consumer]\n\"group.id\" = \"x\"\n",
                "workload.consumer: 'group.id' is set by klab",
            ),
            ("[fix]\nconsumers = 65\n", "fix.consumers"),
            (
                "[expect.capacity]\nfixed_at_least = 0.0\n",
                "expect.capacity.fixed_at_least",
            ),
            (
                "[expect.capacity]\nfixed_at_least = 2.0\n[expect.fixed]\np99_at_most = 2.0\n",
                "judged by its capacity ratio alone",
            ),
        ] {
            let e = err(&format!("title = \"a\"\n{text}"));
            assert!(e.message.contains(want), "{text}: {e}");
            assert!(e.line.is_some(), "{text}: {e}");
        }
    }
}
