//! The knobs the tuner may turn, the values it tries for each, and which
//! value is known to be healthy.

use crate::model::BrokerConfig;
use crate::units::MemSize;
use std::collections::BTreeMap;

/// Where a knob lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The broker JVM's heap (restart).
    Heap,
    /// One or more broker keys set to the same value.
    Broker(&'static [&'static str]),
    /// A librdkafka producer key (client side).
    Producer(&'static str),
    /// A librdkafka consumer key (client side).
    Consumer(&'static str),
    /// The topic's partition count (the workload's shape: its healthy
    /// value is wherever the lab put it).
    Partitions,
    /// Consumers in the group (the workload's shape, as partitions); more
    /// consumers raise the partitions with them, as a group needs.
    Consumers,
}

impl Place {
    /// The workload's shape, not a setting with a default: "putting the
    /// defaults back" leaves it where the lab put it.
    fn is_shape(&self) -> bool {
        matches!(self, Place::Partitions | Place::Consumers)
    }

    /// A client-side knob (needs no broker, and a broker klab does not
    /// own cannot take it either).
    fn is_client(&self) -> bool {
        !matches!(self, Place::Heap | Place::Broker(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Knob {
    /// The name the trace shows (Kafka's own key where there is one).
    pub name: &'static str,
    pub place: Place,
    /// Candidate values, in increasing order of "more resources / more batching".
    pub values: &'static [&'static str],
    /// Index of the known-healthy value (Kafka's or librdkafka's default, or
    /// klab's baseline).
    pub good: usize,
    /// Needs a broker restart to change.
    pub restart: bool,
}

/// The default search space, in the order the tuner looks at knobs when it
/// refines (roughly: biggest effect first, from measurements on 2 cores).
const KNOBS: &[Knob] = &[
    Knob {
        name: "log.flush.interval.messages",
        place: Place::Broker(&["log.flush.interval.messages"]),
        values: &["1", "10", "100", "1000", "10000", "9223372036854775807"],
        good: 5,
        restart: false,
    },
    Knob {
        name: "linger.ms",
        place: Place::Producer("linger.ms"),
        values: &["0", "1", "5", "10", "20"],
        good: 2,
        restart: false,
    },
    Knob {
        name: "batch.size",
        place: Place::Producer("batch.size"),
        values: &["16384", "65536", "262144", "1000000"],
        good: 3,
        restart: false,
    },
    Knob {
        name: "socket.send/receive.buffer.bytes",
        place: Place::Broker(&["socket.send.buffer.bytes", "socket.receive.buffer.bytes"]),
        values: &["8192", "32768", "102400", "1048576"],
        good: 2,
        restart: true,
    },
    Knob {
        name: "num.network.threads",
        place: Place::Broker(&["num.network.threads"]),
        values: &["1", "2", "3", "4", "6", "8"],
        good: 2,
        restart: false,
    },
    Knob {
        name: "num.io.threads",
        place: Place::Broker(&["num.io.threads"]),
        values: &["1", "2", "4", "8", "12", "16"],
        good: 3,
        restart: false,
    },
    Knob {
        name: "heap",
        place: Place::Heap,
        values: &["256m", "512m", "1g", "2g"],
        good: 2,
        restart: true,
    },
    Knob {
        name: "log.segment.bytes",
        place: Place::Broker(&["log.segment.bytes"]),
        values: &["1048576", "16777216", "134217728", "1073741824"],
        good: 3,
        restart: false,
    },
    Knob {
        name: "compression.type",
        place: Place::Producer("compression.type"),
        values: &["none", "lz4", "zstd"],
        good: 0,
        restart: false,
    },
];

/// Knobs only the capacity objective turns: the consumer side and the
/// workload's shape. At one offered rate they change little a score can
/// see; at the edge of capacity they decide it.
const CAPACITY_KNOBS: &[Knob] = &[
    Knob {
        name: "consumers",
        place: Place::Consumers,
        values: &["1", "2", "3", "6", "12"],
        good: 0,
        restart: false,
    },
    Knob {
        name: "partitions",
        place: Place::Partitions,
        values: &["1", "2", "3", "6", "12", "24"],
        good: 3,
        restart: false,
    },
    Knob {
        name: "fetch.min.bytes",
        place: Place::Consumer("fetch.min.bytes"),
        values: &["1", "1024", "65536", "1048576"],
        good: 0,
        restart: false,
    },
    Knob {
        name: "fetch.wait.max.ms",
        place: Place::Consumer("fetch.wait.max.ms"),
        values: &["5", "50", "100", "500"],
        good: 3,
        restart: false,
    },
    Knob {
        name: "max.partition.fetch.bytes",
        place: Place::Consumer("max.partition.fetch.bytes"),
        values: &["65536", "262144", "1048576", "4194304"],
        good: 2,
        restart: false,
    },
];

/// The capacity objective's order: client knobs first (on the client track
/// they decide the capacity), then the broker's, biggest effect first.
const CAPACITY_ORDER: &[&str] = &[
    "linger.ms",
    "batch.size",
    "compression.type",
    "consumers",
    "partitions",
    "fetch.min.bytes",
    "fetch.wait.max.ms",
    "max.partition.fetch.bytes",
    "num.io.threads",
    "num.network.threads",
    "log.flush.interval.messages",
    "socket.send/receive.buffer.bytes",
    "heap",
    "log.segment.bytes",
];

/// A full set of settings: broker config plus client overrides and, for
/// the capacity objective, the workload's shape (None: the lab's).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Candidate {
    pub broker: BrokerConfig,
    pub producer: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub consumer: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumers: Option<u32>,
}

/// A point in the space: one value index per knob.
pub type Point = Vec<usize>;

#[derive(Debug, Clone)]
pub struct Space {
    pub knobs: Vec<Knob>,
}

impl Space {
    pub fn new(knobs: Vec<Knob>) -> Space {
        Space { knobs }
    }

    /// The default space; `dynamic_only` drops restart-only and client knobs
    /// (for a broker klab does not own).
    pub fn default_space(dynamic_only: bool) -> Space {
        Space {
            knobs: KNOBS
                .iter()
                .filter(|k| !dynamic_only || (!k.restart && !k.place.is_client()))
                .copied()
                .collect(),
        }
    }

    /// The capacity objective's space: every knob, in [`CAPACITY_ORDER`];
    /// `dynamic_only` as for [`Space::default_space`].
    pub fn capacity_space(dynamic_only: bool) -> Space {
        let all: Vec<Knob> = KNOBS.iter().chain(CAPACITY_KNOBS).copied().collect();
        Space {
            knobs: CAPACITY_ORDER
                .iter()
                .filter_map(|n| all.iter().find(|k| k.name == *n))
                .filter(|k| !dynamic_only || (!k.restart && !k.place.is_client()))
                .copied()
                .collect(),
        }
    }

    /// The point of what `p` measures: a knob that moves another (more
    /// consumers raise the partitions) shows the move in the point too.
    pub fn normalise(&self, base: &Candidate, p: &Point) -> Point {
        self.locate(&self.candidate(base, p))
    }

    /// A candidate a workload can take: no more consumers than partitions
    /// (the workload's own rule).
    pub fn feasible(&self, c: &Candidate) -> bool {
        match (c.consumers, c.partitions) {
            (Some(n), Some(p)) => crate::model::consumers_fit(n, i64::from(p)),
            _ => true,
        }
    }

    /// Every knob at its healthy value, but the workload's shape where
    /// `start` has it: Kafka's and librdkafka's defaults for this lab.
    pub fn healthy(&self, start: &Point) -> Point {
        self.knobs
            .iter()
            .zip(start)
            .map(|(k, &i)| if k.place.is_shape() { i } else { k.good })
            .collect()
    }

    /// Knobs by name (for `--knobs`); an unknown name is an error listing them.
    pub fn only(names: &[String], dynamic_only: bool) -> Result<Space, String> {
        Space::only_of(Space::default_space(dynamic_only), names)
    }

    /// Knobs by name out of `all`.
    pub fn only_of(all: Space, names: &[String]) -> Result<Space, String> {
        let mut knobs = Vec::new();
        for n in names {
            match all.position(n) {
                Some(i) => knobs.push(all.knobs[i]),
                None => {
                    return Err(format!(
                        "unknown knob '{n}'; the tuner knows: {}",
                        all.knobs
                            .iter()
                            .map(|k| k.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
        }
        Ok(Space { knobs })
    }

    /// The knob called `name`, by its trace name or one of its keys.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.knobs
            .iter()
            .position(|k| k.name == name || k.place_keys().contains(&name))
    }

    /// The point nearest to a candidate's current values.
    pub fn locate(&self, c: &Candidate) -> Point {
        self.knobs
            .iter()
            .map(|k| k.nearest(&k.current(c)))
            .collect()
    }

    /// `base` with every knob set as `p` says. A knob left where `base`
    /// already is keeps `base`'s own spelling (or stays unset), so no
    /// setting changes that the point does not change (and no restart).
    pub fn candidate(&self, base: &Candidate, p: &Point) -> Candidate {
        let mut c = base.clone();
        let here = self.locate(base);
        for ((k, i), h) in self.knobs.iter().zip(p).zip(&here) {
            if i != h {
                k.set(&mut c, k.values[*i]);
            }
        }
        c
    }

    /// The knob-wise differences between two points, as `name: a → b`.
    pub fn describe_move(&self, from: &Point, to: &Point) -> String {
        let parts: Vec<String> = self
            .knobs
            .iter()
            .zip(from.iter().zip(to))
            .filter(|(_, (a, b))| a != b)
            .map(|(k, (a, b))| format!("{} {}→{}", k.name, k.values[*a], k.values[*b]))
            .collect();
        if parts.is_empty() {
            "(no change)".into()
        } else {
            parts.join(", ")
        }
    }
}

impl Knob {
    pub fn place_keys(&self) -> Vec<&'static str> {
        match self.place {
            Place::Heap => vec!["heap"],
            Place::Broker(keys) => keys.to_vec(),
            Place::Producer(k) | Place::Consumer(k) => vec![k],
            Place::Partitions => vec!["partitions"],
            Place::Consumers => vec!["consumers"],
        }
    }

    /// The knob's value in `c` (None: not set, i.e. the default). For a
    /// knob over several keys, the lowest value set (the worst one).
    pub fn current(&self, c: &Candidate) -> Option<String> {
        match self.place {
            Place::Heap => c.broker.heap.map(|h| h.jvm()),
            Place::Broker(keys) => keys
                .iter()
                .filter_map(|k| c.broker.properties.get(*k))
                .min_by_key(|v| v.parse::<i64>().unwrap_or(i64::MAX))
                .cloned(),
            Place::Producer(k) => c.producer.get(k).cloned(),
            Place::Consumer(k) => c.consumer.get(k).cloned(),
            Place::Partitions => c.partitions.map(|n| n.to_string()),
            Place::Consumers => c.consumers.map(|n| n.to_string()),
        }
    }

    /// Index of the candidate value closest to `v` (the healthy value when
    /// unset).
    pub fn nearest(&self, v: &Option<String>) -> usize {
        let Some(v) = v else { return self.good };
        if let Some(i) = self.values.iter().position(|x| x == v) {
            return i;
        }
        let num = |s: &str| -> Option<f64> {
            if let Ok(m) = s.parse::<MemSize>() {
                return Some(m.bytes() as f64);
            }
            s.parse::<f64>().ok()
        };
        match num(v) {
            Some(x) => self
                .values
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    num(s).map(|y| (i, ((x.max(1.0)).ln() - y.max(1.0).ln()).abs()))
                })
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(i, _)| i)
                .unwrap_or(self.good),
            None => self.good,
        }
    }

    pub fn set(&self, c: &mut Candidate, value: &str) {
        match self.place {
            Place::Heap => c.broker.heap = value.parse().ok(),
            Place::Broker(keys) => {
                for k in keys {
                    c.broker.properties.insert(k.to_string(), value.to_string());
                }
            }
            Place::Producer(k) => {
                c.producer.insert(k.to_string(), value.to_string());
            }
            Place::Consumer(k) => {
                c.consumer.insert(k.to_string(), value.to_string());
            }
            Place::Partitions => c.partitions = value.parse().ok(),
            Place::Consumers => {
                c.consumers = value.parse().ok();
                // A consumer without a partition reads nothing.
                if let (Some(n), Some(p)) = (c.consumers, c.partitions)
                    && p < n
                {
                    c.partitions = Some(n);
                }
            }
        }
    }
}

/// `key=value` for every setting of `to` that differs from `from`.
pub fn diff_lines(from: &Candidate, to: &Candidate) -> Vec<String> {
    let mut out = from.broker.diff(&to.broker).lines();
    for (k, v) in &to.producer {
        if from.producer.get(k) != Some(v) {
            out.push(format!("producer {k}={v}"));
        }
    }
    for (k, v) in &to.consumer {
        if from.consumer.get(k) != Some(v) {
            out.push(format!("consumer {k}={v}"));
        }
    }
    if to.partitions != from.partitions
        && let Some(n) = to.partitions
    {
        out.push(format!("partitions={n}"));
    }
    if to.consumers != from.consumers
        && let Some(n) = to.consumers
    {
        out.push(format!("consumers={n}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_knob_has_its_place_in_the_capacity_order() {
        let names: Vec<&str> = KNOBS.iter().chain(CAPACITY_KNOBS).map(|k| k.name).collect();
        for n in &names {
            assert!(
                CAPACITY_ORDER.contains(n),
                "knob {n} is missing from CAPACITY_ORDER: --objective capacity would never try it"
            );
        }
        for n in CAPACITY_ORDER {
            assert!(
                names.contains(n),
                "CAPACITY_ORDER names {n}, which is no knob"
            );
        }
        assert_eq!(Space::capacity_space(false).knobs.len(), names.len());
    }

    #[test]
    fn every_knob_value_is_valid_for_kafka() {
        for k in KNOBS {
            assert!(k.good < k.values.len());
            if let Place::Broker(keys) = k.place {
                for key in keys {
                    for v in k.values {
                        crate::broker::knobs::check_setting(key, v).unwrap();
                    }
                    let info = crate::broker::knobs::lookup(key).unwrap();
                    assert_eq!(k.restart, !info.is_dynamic(), "{key}");
                }
            }
        }
    }

    #[test]
    fn locate_and_rebuild() {
        let s = Space::default_space(false);
        let mut c = Candidate::default();
        c.broker.heap = "256m".parse().ok();
        c.broker
            .properties
            .insert("num.io.threads".into(), "3".into());
        c.producer.insert("linger.ms".into(), "0".into());
        let p = s.locate(&c);
        let io = s
            .knobs
            .iter()
            .position(|k| k.name == "num.io.threads")
            .unwrap();
        assert_eq!(s.knobs[io].values[p[io]], "4"); // nearest to 3 on a log scale
        let heap = s.knobs.iter().position(|k| k.name == "heap").unwrap();
        assert_eq!(p[heap], 0);
        // Unchanged knobs keep their spelling (3 stays 3, unset stays unset).
        let back = s.candidate(&c, &p);
        assert_eq!(back, c);
        let mut moved = p.clone();
        moved[io] = 3;
        let back = s.candidate(&c, &moved);
        assert_eq!(back.broker.properties["num.io.threads"], "8");
        assert_eq!(back.producer["linger.ms"], "0");
        assert!(
            !back
                .broker
                .properties
                .contains_key("socket.send.buffer.bytes")
        );
        let mut q = p.clone();
        q[heap] = 2;
        assert_eq!(s.describe_move(&p, &q), "heap 256m→1g");
    }

    #[test]
    fn a_two_key_knob_reads_its_worst_key() {
        let s = Space::only(&["socket.send/receive.buffer.bytes".into()], false).unwrap();
        let mut c = Candidate::default();
        c.broker
            .properties
            .insert("socket.receive.buffer.bytes".into(), "8192".into());
        assert_eq!(s.locate(&c), vec![0]);
        let fixed = s.candidate(&c, &vec![2]);
        assert_eq!(
            fixed.broker.properties["socket.receive.buffer.bytes"],
            "102400"
        );
        assert_eq!(
            fixed.broker.properties["socket.send.buffer.bytes"],
            "102400"
        );
    }

    #[test]
    fn more_consumers_bring_their_partitions_and_the_shape_stays_healthy() {
        let s = Space::capacity_space(false);
        assert_eq!(s.knobs[0].name, "linger.ms");
        let cons = s.position("consumers").unwrap();
        let parts = s.position("partitions").unwrap();
        let base = Candidate {
            partitions: Some(2),
            consumers: Some(1),
            ..Default::default()
        };
        let here = s.locate(&base);
        assert_eq!(s.knobs[parts].values[here[parts]], "2");
        // The healthy point keeps the lab's shape.
        let h = s.healthy(&here);
        assert_eq!((h[cons], h[parts]), (here[cons], here[parts]));
        let mut p = here.clone();
        p[cons] = 3; // 6 consumers
        let c = s.candidate(&base, &p);
        assert_eq!((c.consumers, c.partitions), (Some(6), Some(6)));
        // Every knob value of the capacity space is a valid setting.
        for k in CAPACITY_KNOBS {
            assert!(k.good < k.values.len());
            if let Place::Consumer(key) = k.place {
                crate::model::check_consumer_key(key).unwrap();
            }
        }
    }

    #[test]
    fn dynamic_only_space_has_no_restarts() {
        let s = Space::default_space(true);
        assert!(
            s.knobs
                .iter()
                .all(|k| !k.restart && !matches!(k.place, Place::Producer(_)))
        );
        assert!(Space::only(&["num.io.threads".into()], false).is_ok());
        assert!(
            Space::only(&["num.io.thread".into()], false)
                .unwrap_err()
                .contains("tuner knows")
        );
    }
}
