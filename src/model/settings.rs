//! The workload's settings, defined once. Every setting is a line of the
//! [`workload_settings!`] invocation below: its key (the lab file's
//! `[workload]` key, and `--key-with-dashes` on the command line), its type,
//! how a value is read and checked, and its help. From that one list come
//! the partial workload ([`WorkloadPatch`]) that lab files, `[quick]`,
//! `extends` chains, fixes and command lines all fill, its overlay, its
//! "what changed" list, reading a value from a flag or from TOML with the
//! same checks, and the command line's flags ([`WorkloadFlags`]).
//! [`WorkloadPatch::resolve`] turns a patch into a [`Workload`] over the
//! defaults.
//!
//! Adding a workload setting: a line below, a field in [`Workload`] (what a
//! result records), a line in [`WorkloadPatch::resolve`], and its docs.

use super::workload::{Acks, Workload, limits};
use super::{Assignor, FaultSpec, GroupProtocol, KeyDist, Partitioner, Payload};
use crate::units::parse_duration;
use std::collections::BTreeMap;
use std::time::Duration;

/// How fast to produce.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RateSpec {
    /// Records per second.
    Fixed(f64),
    /// As fast as acknowledgements allow.
    Max,
    /// A share (0-1] of this machine's capacity, measured by calibrating
    /// the track's reference at max first.
    OfCapacity(f64),
}

impl std::fmt::Display for RateSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RateSpec::Fixed(r) => write!(f, "{r:.0}/s"),
            RateSpec::Max => f.write_str("max"),
            RateSpec::OfCapacity(p) => write!(f, "{:.0}% of capacity", p * 100.0),
        }
    }
}

/// A value as given: a command-line flag's text, or a lab file's TOML value.
#[derive(Debug, Clone, Copy)]
pub enum Given<'a> {
    Flag(&'a str),
    Toml(&'a toml::Value),
}

impl Given<'_> {
    /// The value as text, where text is what the setting takes.
    fn text(&self) -> Result<String, String> {
        match self {
            Given::Flag(s) => Ok(s.trim().to_string()),
            Given::Toml(toml::Value::String(s)) => Ok(s.trim().to_string()),
            Given::Toml(other) => Err(format!("expected a string, found {other}")),
        }
    }
}

/// A whole number in `lo..=hi` (a TOML integer, or a flag's digits).
fn count(g: &Given<'_>, lo: u64, hi: u64) -> Result<u64, String> {
    let n: i128 = match g {
        Given::Flag(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("'{}' is not a whole number", s.trim()))?,
        Given::Toml(toml::Value::Integer(i)) => i128::from(*i),
        Given::Toml(other) => return Err(format!("expected a whole number, found {other}")),
    };
    if n < i128::from(lo) || n > i128::from(hi) {
        return Err(format!("{n} is out of range; expected {lo}..={hi}"));
    }
    Ok(n as u64)
}

fn duration(g: &Given<'_>) -> Result<Duration, String> {
    match g {
        Given::Toml(v) if !v.is_str() => Err(format!(
            "expected a duration such as \"10s\" or \"500ms\", found {v}"
        )),
        _ => parse_duration(&g.text()?),
    }
}

fn rate(g: &Given<'_>) -> Result<RateSpec, String> {
    let allowed = "records/s (a number above 0), \"max\", or a share of capacity like \"60%\"";
    let number = |r: f64, shown: &str| {
        if r > 0.0 && r <= limits::MAX_RATE && r.is_finite() {
            Ok(RateSpec::Fixed(r))
        } else {
            Err(format!(
                "{shown} is out of range; records/s in (0, {}]",
                limits::MAX_RATE
            ))
        }
    };
    let text = match g {
        Given::Toml(toml::Value::Integer(i)) => return number(*i as f64, &i.to_string()),
        Given::Toml(toml::Value::Float(f)) => return number(*f, &f.to_string()),
        Given::Toml(toml::Value::String(s)) => s.trim(),
        Given::Flag(s) => s.trim(),
        Given::Toml(other) => return Err(format!("{other} is not {allowed}")),
    };
    if text == "max" {
        return Ok(RateSpec::Max);
    }
    if let Some(p) = text.strip_suffix('%') {
        let p: f64 = p
            .trim()
            .parse()
            .map_err(|_| format!("'{text}' is not {allowed}"))?;
        if !(p > 0.0 && p <= 100.0) {
            return Err(format!("{text} is out of range; a share is in (0%, 100%]"));
        }
        return Ok(RateSpec::OfCapacity(p / 100.0));
    }
    match text.parse::<f64>() {
        Ok(r) => number(r, text),
        Err(_) => Err(format!("'{text}' is not {allowed}")),
    }
}

fn messages(g: &Given<'_>) -> Result<u64, String> {
    count(g, 1, limits::MAX_MESSAGES)
}

fn window(g: &Given<'_>) -> Result<Duration, String> {
    let d = duration(g)?;
    if d.is_zero() {
        return Err("must be longer than 0".into());
    }
    Ok(d)
}

fn message_bytes(g: &Given<'_>) -> Result<usize, String> {
    count(
        g,
        limits::MIN_MESSAGE_BYTES as u64,
        limits::MAX_MESSAGE_BYTES as u64,
    )
    .map(|n| n as usize)
}

fn partitions(g: &Given<'_>) -> Result<i32, String> {
    count(g, 1, limits::MAX_PARTITIONS as u64).map(|n| n as i32)
}

fn producers(g: &Given<'_>) -> Result<u32, String> {
    count(g, 1, u64::from(limits::MAX_PRODUCERS)).map(|n| n as u32)
}

fn replicas(g: &Given<'_>) -> Result<u32, String> {
    count(g, 1, u64::from(limits::MAX_REPLICATION)).map(|n| n as u32)
}

fn consumers(g: &Given<'_>) -> Result<u32, String> {
    count(g, 1, u64::from(limits::MAX_CONSUMERS)).map(|n| n as u32)
}

fn acks(g: &Given<'_>) -> Result<Acks, String> {
    match g {
        Given::Toml(toml::Value::Integer(i)) => i.to_string().parse(),
        _ => g.text()?.parse(),
    }
}

fn payload(g: &Given<'_>) -> Result<Payload, String> {
    g.text()?.parse()
}

fn keys(g: &Given<'_>) -> Result<u32, String> {
    count(g, 1, u64::from(super::MAX_KEYS)).map(|n| n as u32)
}

fn key_dist(g: &Given<'_>) -> Result<KeyDist, String> {
    g.text()?.parse()
}

fn partitioner(g: &Given<'_>) -> Result<Partitioner, String> {
    g.text()?.parse()
}

fn group(g: &Given<'_>) -> Result<GroupProtocol, String> {
    g.text()?.parse()
}

fn assignor(g: &Given<'_>) -> Result<Assignor, String> {
    g.text()?.parse()
}

fn processing(g: &Given<'_>) -> Result<Duration, String> {
    let d = duration(g)?;
    if d > limits::MAX_PROCESSING {
        return Err("at most 1s per record".into());
    }
    Ok(d)
}

/// A setting's value as "what changed" shows it.
pub trait Shown {
    fn shown(&self) -> String;
}

impl Shown for Duration {
    fn shown(&self) -> String {
        crate::units::format_duration(*self)
    }
}

macro_rules! shown_by_display {
    ($($t:ty),*) => {$(
        impl Shown for $t {
            fn shown(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
shown_by_display!(
    RateSpec,
    u64,
    usize,
    i32,
    u32,
    Acks,
    Payload,
    KeyDist,
    Partitioner,
    GroupProtocol,
    Assignor
);

/// Why a setting could not be set.
#[derive(Debug, Clone, PartialEq)]
pub enum SetError {
    /// No setting has that key (with the closest one, if any is close).
    Unknown(Option<&'static str>),
    /// The value is not allowed: why.
    Bad(String),
}

macro_rules! workload_settings {
    ($(
        $(#[doc = $doc:literal])*
        $key:ident: $ty:ty = $parse:ident, $value_name:literal;
    )*) => {
        /// A workload whose settings may be unset: what a lab's
        /// `[workload]` or `[quick]` says, laid over its parent's along the
        /// `extends` chain, what a fix changes, or what the command line
        /// asked for. Client settings and faults beside the settings.
        #[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
        pub struct WorkloadPatch {
            $( $(#[doc = $doc])* pub $key: Option<$ty>, )*
            /// librdkafka producer settings (`linger.ms`, ...).
            pub producer: BTreeMap<String, String>,
            /// librdkafka consumer settings (`fetch.min.bytes`, ...).
            pub consumer: BTreeMap<String, String>,
            /// A lab's own `[[faults]]` replace those of the lab it extends.
            pub faults: Option<Vec<FaultSpec>>,
            /// A lab's own `[network]` replaces that of the lab it extends.
            pub network: Option<crate::model::Network>,
        }

        impl WorkloadPatch {
            /// Every setting's key, in the order of the definition.
            pub const KEYS: &'static [&'static str] = &[$(stringify!($key)),*];

            /// Sets `key` from a flag's text or a lab file's value, with
            /// the same checks either way.
            pub fn set(&mut self, key: &str, given: Given<'_>) -> Result<(), SetError> {
                match key {
                    $(stringify!($key) => {
                        self.$key = Some($parse(&given).map_err(SetError::Bad)?);
                    })*
                    _ => {
                        return Err(SetError::Unknown(crate::error::closest(
                            key,
                            Self::KEYS.iter().copied(),
                            3,
                        )))
                    }
                }
                self.exclusive(key);
                Ok(())
            }

            /// `self` with every setting `over` has laid on top (client
            /// settings merged key by key, faults replaced).
            pub fn overlay(&self, over: &WorkloadPatch) -> WorkloadPatch {
                let mut out = self.clone();
                $(if over.$key.is_some() {
                    out.$key = over.$key.clone();
                    out.exclusive(stringify!($key));
                })*
                out.producer.extend(over.producer.clone());
                out.consumer.extend(over.consumer.clone());
                if over.faults.is_some() {
                    out.faults = over.faults.clone();
                }
                if over.network.is_some() {
                    out.network = over.network.clone();
                }
                out
            }

            /// Each setting that is set, as `key=value`.
            fn shown(&self) -> Vec<(&'static str, String)> {
                let mut out = Vec::new();
                $(if let Some(v) = &self.$key {
                    out.push((stringify!($key), v.shown()));
                })*
                out
            }
        }

        /// The workload's settings as command-line flags
        /// (`--message-bytes`, ...), read through [`WorkloadPatch::set`]:
        /// the same checks as a lab file's.
        /// A value clap rejects names its flag, and exits 2.
        #[derive(clap::Args, Debug, Clone, Default)]
        #[command(group(clap::ArgGroup::new("stop_after").args(["messages", "duration"])))]
        pub struct WorkloadFlags {
            $(
                $(#[doc = $doc])*
                #[arg(long, value_name = $value_name, allow_hyphen_values = true,
                      value_parser = |s: &str| $parse(&Given::Flag(s)))]
                pub $key: Option<$ty>,
            )*
        }

        impl WorkloadFlags {
            /// The flags given, as a patch.
            pub fn patch(&self) -> WorkloadPatch {
                WorkloadPatch {
                    $( $key: self.$key.clone(), )*
                    ..WorkloadPatch::default()
                }
            }
        }
    };
}

workload_settings! {
    /// Offered load: records/s (open loop: record i is due at t0 + i/R),
    /// "max" (as fast as acknowledgements allow), or in a lab "NN%" of the
    /// machine's calibrated capacity. Default 10000.
    rate: RateSpec = rate, "R";
    /// Stop after this many measured records (instead of a duration).
    messages: u64 = messages, "N";
    /// How long to measure, e.g. 30s (default 10s).
    duration: Duration = window, "D";
    /// Before measuring: sent and checked, not counted (default 2s).
    warmup: Duration = duration, "D";
    /// Record size in bytes, 64 of them header and HMAC tag (default 1024).
    message_bytes: usize = message_bytes, "B";
    /// Partitions of the topic (default 3).
    partitions: i32 = partitions, "P";
    /// Producer acks: 0, 1 or all (default all).
    acks: Acks = acks, "0|1|all";
    /// Independent producer clients, each with its own connection, sharing
    /// the rate (default 1).
    producers: u32 = producers, "N";
    /// Replicas per partition of the topic klab creates (default: the
    /// number of brokers, at most 3).
    replication_factor: u32 = replicas, "N";
    /// The topic's min.insync.replicas (default: the broker's).
    min_insync_replicas: u32 = replicas, "N";
    /// What the records' bodies hold: fixed (one filler per producer) or
    /// json (a different event log line in each, compressible as real
    /// logs are). Default fixed.
    payload: Payload = payload, "KIND";
    /// Consumer clients; each reads its share of the partitions (at most
    /// one per partition; default 1).
    consumers: u32 = consumers, "N";
    /// Simulated work per record in each consumer, e.g. 200us (it waits,
    /// so it costs no CPU); default 0.
    processing: Duration = processing, "D";
    /// Keyed records: each carries one of N keys (`k0`..`k<N-1>`) and goes
    /// to the partition Kafka's Java client picks for its key (murmur2).
    /// Default: no keys (see partitioner).
    keys: u32 = keys, "N";
    /// How records spread over the keys: uniform (default), zipf:S
    /// (exponent S above 0) or hot:SHARE (k0 takes SHARE% of the records,
    /// the rest uniform over the other keys). Needs keys.
    key_dist: KeyDist = key_dist, "DIST";
    /// Where records without a key go: round_robin (default; record i to
    /// partition i mod partitions) or sticky (the client fills one
    /// partition for sticky.partitioning.linger.ms, then moves on, as
    /// librdkafka and the Java client do).
    partitioner: Partitioner = partitioner, "round_robin|sticky";
    /// The consumers as one group the broker coordinates: classic (the
    /// members assign, eager unless the assignor is cooperative) or
    /// consumer (KIP-848: the broker assigns). Default: none, each
    /// consumer takes fixed partitions.
    group: GroupProtocol = group, "classic|consumer";
    /// The group's assignor: range, roundrobin or cooperative-sticky with
    /// classic (default: librdkafka's range,roundrobin), uniform or range
    /// with consumer (default: the broker's). Needs group.
    assignor: Assignor = assignor, "NAME";
}

impl WorkloadPatch {
    /// The keys of the settings this patch sets.
    pub fn keys_set(&self) -> Vec<&'static str> {
        self.shown().into_iter().map(|(k, _)| k).collect()
    }

    /// A message count and a duration replace each other: the one just
    /// set wins.
    fn exclusive(&mut self, key: &str) {
        match key {
            "messages" => self.duration = None,
            "duration" => self.messages = None,
            _ => {}
        }
    }

    /// What `over` changes against `self`, as `key=value` strings (client
    /// settings by their own key, faults by their spec).
    pub fn changes(&self, over: &WorkloadPatch) -> Vec<String> {
        let before: BTreeMap<&str, String> = self.shown().into_iter().collect();
        let after = self.overlay(over);
        let mut out: Vec<String> = after
            .shown()
            .into_iter()
            .filter(|(k, v)| before.get(k) != Some(v))
            .filter(|(k, _)| !matches!(*k, "messages" | "duration" | "warmup"))
            // The topic setting by Kafka's own name, as a fix's lines show it.
            .map(|(k, v)| match k {
                "min_insync_replicas" => format!("min.insync.replicas={v}"),
                _ => format!("{k}={v}"),
            })
            .collect();
        for (prefix, now, was) in [
            ("", &over.producer, &self.producer),
            ("consumer.", &over.consumer, &self.consumer),
        ] {
            for (k, v) in now {
                if was.get(k) != Some(v) {
                    out.push(format!("{prefix}{k}={v}"));
                }
            }
        }
        if after.faults != self.faults
            && let Some(fs) = &after.faults
        {
            out.extend(fs.iter().map(|f| format!("fault: {f}")));
        }
        if after.network != self.network
            && let Some(n) = &after.network
        {
            out.push(format!("network: {n}"));
        }
        out
    }

    /// The workload this patch describes, over the defaults. A rate that
    /// is a share of capacity needs `capacity` (records/s). Checked as a
    /// whole ([`Workload::validate`]).
    pub fn resolve(&self, capacity: Option<f64>) -> Result<Workload, String> {
        let d = Workload::default();
        let rate = match self.rate {
            None => d.rate,
            Some(RateSpec::Fixed(r)) => Some(r),
            Some(RateSpec::Max) => None,
            Some(RateSpec::OfCapacity(s)) => match capacity {
                Some(c) => Some((c * s).max(1.0)),
                None => {
                    return Err("rate is a share of capacity, but no capacity was measured".into());
                }
            },
        };
        let (messages, duration) = match (self.messages, self.duration) {
            (Some(n), _) => (Some(n), None),
            (None, Some(t)) => (None, Some(t)),
            (None, None) => (None, d.duration),
        };
        let w = Workload {
            rate,
            messages,
            duration,
            warmup: self.warmup.unwrap_or(d.warmup),
            message_bytes: self.message_bytes.unwrap_or(d.message_bytes),
            partitions: self.partitions.unwrap_or(d.partitions),
            acks: self.acks.unwrap_or(d.acks),
            producer: self.producer.clone(),
            topic: None,
            producers: self.producers.unwrap_or(d.producers),
            replication_factor: self.replication_factor,
            min_insync_replicas: self.min_insync_replicas,
            faults: self.faults.clone().unwrap_or_default(),
            payload: self.payload.unwrap_or(d.payload),
            consumers: self.consumers.unwrap_or(d.consumers),
            processing: self.processing.unwrap_or(d.processing),
            consumer: self.consumer.clone(),
            keys: self.keys,
            key_dist: self.key_dist,
            partitioner: self.partitioner.unwrap_or(d.partitioner),
            group: self.group,
            assignor: self.assignor,
            network: self.network.clone(),
        };
        w.validate()?;
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toml_value(text: &str) -> toml::Value {
        toml::from_str::<toml::Table>(&format!("v = {text}")).unwrap()["v"].clone()
    }

    #[test]
    fn a_flag_and_a_lab_file_are_read_with_the_same_checks() {
        let mut from_flag = WorkloadPatch::default();
        let mut from_file = WorkloadPatch::default();
        for (key, flag, file) in [
            ("rate", "60%", "\"60%\""),
            ("partitions", "6", "6"),
            ("processing", "500us", "\"500us\""),
            ("acks", "1", "1"),
            ("payload", "json", "\"json\""),
            ("duration", "20s", "\"20s\""),
            ("keys", "100", "100"),
            ("key_dist", "zipf:1.1", "\"zipf:1.1\""),
        ] {
            from_flag.set(key, Given::Flag(flag)).unwrap();
            from_file.set(key, Given::Toml(&toml_value(file))).unwrap();
        }
        assert_eq!(from_flag, from_file);
        assert_eq!(from_file.rate, Some(RateSpec::OfCapacity(0.6)));
        // The same refusals either way.
        let bad = |key: &str, flag: &str, file: &str| {
            let a = WorkloadPatch::default().set(key, Given::Flag(flag));
            let b = WorkloadPatch::default().set(key, Given::Toml(&toml_value(file)));
            assert!(matches!(a, Err(SetError::Bad(_))), "{key}={flag}: {a:?}");
            assert!(matches!(b, Err(SetError::Bad(_))), "{key}={file}: {b:?}");
        };
        bad("partitions", "0", "0");
        bad("rate", "-5", "-5");
        bad("rate", "120%", "\"120%\"");
        bad("processing", "2s", "\"2s\"");
        bad("acks", "2", "2");
        bad("duration", "0s", "\"0s\"");
        // A lab file's types are strict: a count is not a string there.
        assert!(
            WorkloadPatch::default()
                .set("partitions", Given::Toml(&toml_value("\"6\"")))
                .is_err()
        );
        assert_eq!(
            WorkloadPatch::default().set("partition", Given::Flag("6")),
            Err(SetError::Unknown(Some("partitions")))
        );
    }

    #[test]
    fn an_overlay_takes_what_is_set_and_messages_replace_a_duration() {
        let mut base = WorkloadPatch::default();
        base.set("duration", Given::Flag("20s")).unwrap();
        base.set("partitions", Given::Flag("6")).unwrap();
        base.producer.insert("linger.ms".into(), "5".into());
        let mut over = WorkloadPatch::default();
        over.set("messages", Given::Flag("1000")).unwrap();
        over.producer.insert("batch.size".into(), "16384".into());
        let both = base.overlay(&over);
        assert_eq!((both.messages, both.duration), (Some(1000), None));
        assert_eq!(both.partitions, Some(6));
        assert_eq!(both.producer.len(), 2);
        assert_eq!(
            base.changes(&over),
            ["batch.size=16384"],
            "a window's length is not a lab's damage"
        );
        let w = both.resolve(None).unwrap();
        assert_eq!(
            (w.messages, w.duration, w.partitions),
            (Some(1000), None, 6)
        );
    }

    #[test]
    fn keys_and_their_distribution_are_checked_before_anything_starts() {
        let mut p = WorkloadPatch::default();
        p.set("keys", Given::Toml(&toml_value("100"))).unwrap();
        p.set("key_dist", Given::Flag("hot:50")).unwrap();
        let w = p.resolve(None).unwrap();
        assert_eq!(w.keyed(), Some((100, KeyDist::Hot(50.0))));
        assert!(
            w.describe().contains("100 keys (hot:50)"),
            "{}",
            w.describe()
        );
        // Without a distribution, keys are uniform; without keys, none.
        let mut p = WorkloadPatch::default();
        p.set("keys", Given::Flag("4")).unwrap();
        assert_eq!(
            p.resolve(None).unwrap().keyed(),
            Some((4, KeyDist::Uniform))
        );
        assert_eq!(
            WorkloadPatch::default().resolve(None).unwrap().keyed(),
            None
        );
        let refused =
            |key: &str, value: &str| match WorkloadPatch::default().set(key, Given::Flag(value)) {
                Err(SetError::Bad(e)) => e,
                other => panic!("{key}={value}: {other:?}"),
            };
        assert!(refused("keys", "0").contains("0 is out of range; expected 1..=100000"));
        let dists = ["zipf:0", "zipf:-2", "hot:0", "hot:101", "normal"];
        let why: Vec<String> = dists.iter().map(|d| refused("key_dist", d)).collect();
        assert!(why[0].contains("exponent must be above 0"), "{why:?}");
        assert!(why[1].contains("exponent must be above 0"), "{why:?}");
        assert!(why[2].contains("percentage in (0, 100]"), "{why:?}");
        assert!(why[3].contains("percentage in (0, 100]"), "{why:?}");
        assert!(why[4].contains("allowed: uniform, zipf:S"), "{why:?}");
        // A distribution without keys, or a hot key without the rest.
        let mut p = WorkloadPatch::default();
        p.set("key_dist", Given::Flag("zipf:1.1")).unwrap();
        let e = p.resolve(None).unwrap_err();
        assert!(e.starts_with("key_dist: zipf:1.1 needs keys"), "{e}");
        p.set("keys", Given::Flag("1")).unwrap();
        p.set("key_dist", Given::Flag("hot:60")).unwrap();
        let e = p.resolve(None).unwrap_err();
        assert!(
            e.starts_with("key_dist: hot:60 needs at least 2 keys"),
            "{e}"
        );
        // A result read back keeps them.
        let w = Workload {
            keys: Some(3),
            key_dist: Some(KeyDist::Zipf(1.5)),
            ..Workload::default()
        };
        let back: Workload = serde_json::from_str(&serde_json::to_string(&w).unwrap()).unwrap();
        assert_eq!(back, w);
        let bad = Workload {
            keys: Some(0),
            ..Workload::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .starts_with("keys: 0 is not allowed")
        );
    }

    #[test]
    fn a_group_takes_its_protocol_s_assignors_and_settings() {
        let resolve = |pairs: &[(&str, &str)], consumer: &[(&str, &str)]| {
            let mut p = WorkloadPatch::default();
            for (k, v) in pairs {
                p.set(k, Given::Flag(v)).unwrap();
            }
            for (k, v) in consumer {
                p.consumer.insert(k.to_string(), v.to_string());
            }
            p.resolve(None)
        };
        let w = resolve(
            &[("group", "classic"), ("assignor", "cooperative-sticky")],
            &[],
        )
        .unwrap();
        assert_eq!(w.group, Some(GroupProtocol::Classic));
        assert_eq!(w.assignor, Some(Assignor::CooperativeSticky));
        assert!(
            w.describe().contains("classic group (cooperative-sticky)"),
            "{}",
            w.describe()
        );
        let json = serde_json::to_string(&w).unwrap();
        assert_eq!(serde_json::from_str::<Workload>(&json).unwrap(), w);
        assert!(resolve(&[("group", "consumer"), ("assignor", "uniform")], &[]).is_ok());
        let e = resolve(&[("assignor", "range")], &[]).unwrap_err();
        assert!(e.starts_with("assignor: range needs group"), "{e}");
        let e = resolve(&[("group", "consumer"), ("assignor", "roundrobin")], &[]).unwrap_err();
        assert!(
            e.starts_with(
                "assignor: roundrobin is not allowed with group = consumer; allowed: uniform, range"
            ),
            "{e}"
        );
        let e = resolve(&[("group", "consumer")], &[("session.timeout.ms", "6000")]).unwrap_err();
        assert!(
            e.starts_with("consumer.session.timeout.ms: ignored with group = consumer (the broker's group.consumer.session.timeout.ms decides)"),
            "{e}"
        );
        assert!(resolve(&[("group", "classic")], &[("session.timeout.ms", "6000")]).is_ok());
        match WorkloadPatch::default().set("group", Given::Flag("eager")) {
            Err(SetError::Bad(e)) => assert!(e.contains("allowed: classic, consumer"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_sticky_partitioner_places_keyless_records_only() {
        let mut p = WorkloadPatch::default();
        p.set("partitioner", Given::Toml(&toml_value("\"sticky\"")))
            .unwrap();
        let w = p.resolve(None).unwrap();
        assert_eq!(w.partitioner, Partitioner::Sticky);
        assert!(
            w.describe().contains("sticky partitioner"),
            "{}",
            w.describe()
        );
        // In a result only when it is not the default.
        let json = serde_json::to_string(&w).unwrap();
        assert!(json.contains("\"partitioner\":\"sticky\""), "{json}");
        assert_eq!(serde_json::from_str::<Workload>(&json).unwrap(), w);
        let plain = serde_json::to_string(&Workload::default()).unwrap();
        assert!(!plain.contains("partitioner"), "{plain}");
        // Keys decide their records' partitions.
        p.set("keys", Given::Flag("10")).unwrap();
        let e = p.resolve(None).unwrap_err();
        assert!(
            e.starts_with("partitioner: sticky places records without a key"),
            "{e}"
        );
        match WorkloadPatch::default().set("partitioner", Given::Flag("random")) {
            Err(SetError::Bad(e)) => {
                assert!(e.contains("allowed: round_robin, sticky"), "{e}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_read_through_the_patch_and_name_the_flag() {
        use clap::Parser;
        #[derive(clap::Parser, Debug)]
        struct Flags {
            #[command(flatten)]
            w: WorkloadFlags,
        }
        let e = Flags::try_parse_from(["t", "--message-bytes", "32"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--message-bytes"), "{e}");
        assert!(e.to_string().contains("32 is out of range"), "{e}");
        let f = Flags::try_parse_from(["t", "--rate", "60%", "--partitions", "6"]).unwrap();
        let p = f.w.patch();
        assert_eq!(p.rate, Some(RateSpec::OfCapacity(0.6)));
        assert_eq!(p.keys_set(), ["rate", "partitions"]);
        assert!(Flags::try_parse_from(["t", "--messages", "5", "--duration", "1s"]).is_err());
    }
}
