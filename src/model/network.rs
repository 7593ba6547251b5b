//! The network a run asks for, as data: the link between the clients and
//! the nodes, the links between nodes, and zones as a shortcut for both.
//!
//! Every link is a TCP proxy in front of one listener of one node (see
//! `broker::local::network`), so what a link can be is what a proxy on the
//! path can do to the bytes: delay them (latency, jitter), pace them
//! (bandwidth, per connection) and hold or cut them (faults). Latency here
//! is a round trip: half of it is added on the way to the node and half on
//! the way back.

use crate::units::{format_duration, parse_duration};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// The longest round trip a link may add: more than any real network
/// between two places on Earth, and well inside Kafka's request timeouts.
pub const MAX_LATENCY: Duration = Duration::from_secs(2);

/// One kind of link: what every connection of that kind goes through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// Round trip added to every request and its answer.
    #[serde(with = "crate::units::duration_secs", default)]
    pub latency: Duration,
    /// Each direction's delay varies by up to half of this either way.
    #[serde(with = "crate::units::duration_secs", default)]
    pub jitter: Duration,
    /// Bytes per second each connection may carry, in each direction
    /// (None: as fast as loopback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<u64>,
}

impl Link {
    /// Adds nothing: a proxy that only passes the bytes on.
    pub fn is_clear(&self) -> bool {
        *self == Link::default()
    }

    /// The delay and jitter on the way to the node and on the way back, in
    /// whole milliseconds that add up to the round trip (an odd
    /// millisecond goes to the way back).
    pub fn directions(&self) -> [(u64, u64); 2] {
        let split = |d: Duration| {
            let ms = d.as_millis() as u64;
            (ms / 2, ms - ms / 2)
        };
        let (lat_to, lat_back) = split(self.latency);
        let (jit_to, jit_back) = split(self.jitter);
        [(lat_to, jit_to), (lat_back, jit_back)]
    }
}

/// Nodes in zones: a link between two zones adds `latency` (a round trip)
/// to the links' own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Zones {
    /// The zone of node 1, node 2, ...
    pub nodes: Vec<String>,
    /// The clients' zone (one of the nodes' zones).
    pub clients: String,
    /// Round trip between two different zones.
    #[serde(with = "crate::units::duration_secs")]
    pub latency: Duration,
}

/// The network of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// Between the clients (producers, consumers) and each node.
    #[serde(default)]
    pub clients: Link,
    /// Between two nodes: replication and the controller quorum.
    #[serde(default)]
    pub nodes: Link,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zones: Option<Zones>,
}

/// Where a connection starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Clients,
    /// Node `n` (1 = the first).
    Node(u32),
}

/// The keys of `[network]` and `--net KEY=VALUE`, with what each takes.
pub const KEYS: &[(&str, &str)] = &[
    (
        "client_latency",
        "round trip added between the clients and every node, e.g. 10ms",
    ),
    ("client_jitter", "how much that varies, e.g. 2ms"),
    (
        "client_bandwidth",
        "bytes per second per client connection, each way, e.g. 10MB/s",
    ),
    (
        "node_latency",
        "round trip added between every two nodes, e.g. 1ms",
    ),
    ("node_jitter", "how much that varies"),
    (
        "node_bandwidth",
        "bytes per second per connection between nodes, each way",
    ),
    (
        "zones",
        "each node's zone in node order, e.g. [\"a\", \"b\", \"c\"] (\"a,b,c\" on the command line)",
    ),
    ("client_zone", "the zone the clients are in (one of zones)"),
    (
        "zone_latency",
        "round trip added between two different zones, e.g. 10ms",
    ),
];

/// A value as written: a lab file's string or list, or a flag's text.
pub enum NetValue<'a> {
    Text(&'a str),
    List(Vec<String>),
}

impl Network {
    /// Sets one key (see [`KEYS`]). The error says what is allowed; the
    /// caller names the file, line and field, or the flag.
    pub fn set(&mut self, key: &str, value: NetValue<'_>) -> Result<(), String> {
        let text = || match &value {
            NetValue::Text(t) => Ok(*t),
            NetValue::List(_) => Err(format!("{key}: a single value, not a list")),
        };
        match key {
            "client_latency" => self.clients.latency = latency(key, text()?)?,
            "client_jitter" => self.clients.jitter = latency(key, text()?)?,
            "client_bandwidth" => self.clients.bandwidth = Some(bandwidth(key, text()?)?),
            "node_latency" => self.nodes.latency = latency(key, text()?)?,
            "node_jitter" => self.nodes.jitter = latency(key, text()?)?,
            "node_bandwidth" => self.nodes.bandwidth = Some(bandwidth(key, text()?)?),
            "zones" => {
                let names = match value {
                    NetValue::List(l) => l,
                    NetValue::Text(t) => t.split(',').map(|s| s.trim().to_string()).collect(),
                };
                for n in &names {
                    zone_name(n)?;
                }
                self.zones_mut().nodes = names;
            }
            "client_zone" => {
                let t = text()?.trim();
                zone_name(t)?;
                self.zones_mut().clients = t.to_string();
            }
            "zone_latency" => self.zones_mut().latency = latency(key, text()?)?,
            other => {
                let hint = crate::error::closest(other, KEYS.iter().map(|(k, _)| *k), 3)
                    .map(|k| format!(" (did you mean {k}?)"))
                    .unwrap_or_default();
                return Err(format!(
                    "{other}: not a network setting{hint}; allowed: {}",
                    KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
                ));
            }
        }
        Ok(())
    }

    fn zones_mut(&mut self) -> &mut Zones {
        self.zones.get_or_insert_with(|| Zones {
            nodes: Vec::new(),
            clients: String::new(),
            latency: Duration::ZERO,
        })
    }

    /// What needs only the settings themselves: jitter within its latency,
    /// zones complete and the clients' zone among them.
    pub fn validate(&self) -> Result<(), String> {
        for (name, l) in [("client", &self.clients), ("node", &self.nodes)] {
            if l.jitter > l.latency {
                return Err(format!(
                    "{name}_jitter: {} is more than {name}_latency ({}); the delay would go below zero",
                    format_duration(l.jitter),
                    format_duration(l.latency)
                ));
            }
        }
        if let Some(z) = &self.zones {
            if z.nodes.is_empty() {
                return Err(
                    "zones: client_zone and zone_latency need zones, the zone of each node (e.g. zones = [\"a\", \"b\", \"c\"])".into(),
                );
            }
            if z.clients.is_empty() {
                return Err(format!(
                    "client_zone: zones need the clients' zone, one of {}",
                    z.nodes.join(", ")
                ));
            }
            if !z.nodes.contains(&z.clients) {
                return Err(format!(
                    "client_zone: '{}' is not one of the zones ({})",
                    z.clients,
                    z.nodes.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// What needs the cluster: one zone per node.
    pub fn check_nodes(&self, nodes: u32) -> Result<(), String> {
        match &self.zones {
            Some(z) if z.nodes.len() != nodes as usize => Err(format!(
                "zones: {} zone(s) given ({}) for a cluster of {nodes} node(s); give one zone per node, in node order",
                z.nodes.len(),
                z.nodes.join(", ")
            )),
            _ => Ok(()),
        }
    }

    /// The link a connection from `from` to node `to` goes through.
    pub fn link(&self, from: Source, to: u32) -> Link {
        let mut l = match from {
            Source::Clients => self.clients,
            Source::Node(_) => self.nodes,
        };
        if let Some(z) = &self.zones {
            let zone_of = |n: u32| z.nodes.get(n as usize - 1).map(String::as_str);
            let here = match from {
                Source::Clients => Some(z.clients.as_str()),
                Source::Node(n) => zone_of(n),
            };
            if here != zone_of(to) {
                l.latency += z.latency;
            }
        }
        l
    }

    /// Every link adds nothing (the proxies only pass bytes on).
    pub fn is_clear(&self) -> bool {
        self.clients.is_clear()
            && self.nodes.is_clear()
            && self.zones.as_ref().is_none_or(|z| z.latency.is_zero())
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        for (name, l) in [("client", &self.clients), ("node", &self.nodes)] {
            if !l.latency.is_zero() {
                parts.push(format!("{name}_latency={}", format_duration(l.latency)));
            }
            if !l.jitter.is_zero() {
                parts.push(format!("{name}_jitter={}", format_duration(l.jitter)));
            }
            if let Some(b) = l.bandwidth {
                parts.push(format!("{name}_bandwidth={}", format_bandwidth(b)));
            }
        }
        if let Some(z) = &self.zones {
            parts.push(format!("zones={}", z.nodes.join(",")));
            parts.push(format!("client_zone={}", z.clients));
            parts.push(format!("zone_latency={}", format_duration(z.latency)));
        }
        if parts.is_empty() {
            f.write_str("no added latency")
        } else {
            f.write_str(&parts.join(" "))
        }
    }
}

fn latency(key: &str, text: &str) -> Result<Duration, String> {
    let d = parse_duration(text).map_err(|e| format!("{key}: {e}"))?;
    // The proxy delays in whole milliseconds.
    if !d.as_micros().is_multiple_of(1000) {
        return Err(format!(
            "{key}: '{text}' is not a whole number of milliseconds (a link delays in steps of 1ms)"
        ));
    }
    if d > MAX_LATENCY {
        return Err(format!(
            "{key}: {} is more than the {} a link may add",
            format_duration(d),
            format_duration(MAX_LATENCY)
        ));
    }
    Ok(d)
}

/// "10MB/s", "512KB/s", "1GB/s", "100Mbit/s": bytes per second, above 0.
/// KB, MB and GB are powers of 1000 here, as network rates are.
pub fn parse_bandwidth(text: &str) -> Result<u64, String> {
    let allowed = "a rate such as 512KB/s, 10MB/s, 1GB/s or 100Mbit/s";
    let t = text.trim();
    let Some(amount) = t.strip_suffix("/s") else {
        return Err(format!("'{text}' is not {allowed}"));
    };
    let (n, unit) = crate::units::number_and_unit(amount)
        .ok_or_else(|| format!("'{text}' is not {allowed}"))?;
    let scale = match unit {
        "B" => 1.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "Kbit" | "kbit" => 1e3 / 8.0,
        "Mbit" => 1e6 / 8.0,
        "Gbit" => 1e9 / 8.0,
        _ => return Err(format!("'{text}' has an unknown unit; expected {allowed}")),
    };
    let bytes = n * scale;
    // Toxiproxy paces in whole kilobytes per second.
    if !bytes.is_finite() || bytes < 1000.0 {
        return Err(format!("'{text}' is below 1KB/s; expected {allowed}"));
    }
    if bytes > 1e12 {
        return Err(format!(
            "'{text}' is more than 1000GB/s; expected {allowed}"
        ));
    }
    Ok(bytes.round() as u64)
}

fn bandwidth(key: &str, text: &str) -> Result<u64, String> {
    parse_bandwidth(text).map_err(|e| format!("{key}: {e}"))
}

/// Prints a rate the way [`parse_bandwidth`] reads it back.
pub fn format_bandwidth(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000_000 && b % 1_000_000 == 0 => format!("{}MB/s", b / 1_000_000),
        b if b >= 1_000_000 && b % 1000 == 0 => {
            let mb = b as f64 / 1e6;
            format!("{}MB/s", trim_float(mb))
        }
        b if b % 1000 == 0 => format!("{}KB/s", b / 1000),
        b => format!("{b}B/s"),
    }
}

fn trim_float(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn zone_name(n: &str) -> Result<(), String> {
    let ok = !n.is_empty()
        && n.len() <= 32
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    match ok {
        true => Ok(()),
        false => Err(format!(
            "'{n}' is not a zone name; use 1 to 32 letters, digits, '-' or '_'"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(pairs: &[(&str, &str)]) -> Result<Network, String> {
        let mut n = Network::default();
        for (k, v) in pairs {
            n.set(k, NetValue::Text(v))?;
        }
        n.validate()?;
        Ok(n)
    }

    #[test]
    fn zones_add_their_latency_between_different_zones_only() {
        let n = net(&[
            ("zones", "a,b,c"),
            ("client_zone", "a"),
            ("zone_latency", "10ms"),
            ("node_latency", "1ms"),
        ])
        .unwrap();
        n.check_nodes(3).unwrap();
        assert!(n.check_nodes(2).unwrap_err().contains("3 zone(s)"));
        assert_eq!(n.link(Source::Clients, 1).latency, Duration::ZERO);
        assert_eq!(
            n.link(Source::Clients, 2).latency,
            Duration::from_millis(10)
        );
        assert_eq!(
            n.link(Source::Node(2), 3).latency,
            Duration::from_millis(11)
        );
        assert_eq!(n.link(Source::Node(1), 1).latency, Duration::from_millis(1));
        assert!(!n.is_clear());
        assert_eq!(
            n.to_string(),
            "node_latency=1ms zones=a,b,c client_zone=a zone_latency=10ms"
        );
    }

    #[test]
    fn bad_settings_say_what_is_allowed() {
        let e = net(&[("client_latncy", "1ms")]).unwrap_err();
        assert!(e.contains("did you mean client_latency"), "{e}");
        let e = net(&[("client_latency", "-1ms")]).unwrap_err();
        assert!(e.starts_with("client_latency: "), "{e}");
        let e = net(&[("client_latency", "1500us")]).unwrap_err();
        assert!(e.contains("whole number of milliseconds"), "{e}");
        let e = net(&[("client_latency", "5s")]).unwrap_err();
        assert!(e.contains("more than the 2s"), "{e}");
        let e = net(&[("client_bandwidth", "0MB/s")]).unwrap_err();
        assert!(e.contains("below 1KB/s"), "{e}");
        let e = net(&[("client_bandwidth", "10MB")]).unwrap_err();
        assert!(e.contains("10MB/s"), "{e}");
        let e = net(&[("client_latency", "1ms"), ("client_jitter", "2ms")]).unwrap_err();
        assert!(e.starts_with("client_jitter: 2ms is more than"), "{e}");
        let e = net(&[("zones", "a,b"), ("client_zone", "c")]).unwrap_err();
        assert!(e.contains("'c' is not one of the zones (a, b)"), "{e}");
        let e = net(&[("zone_latency", "3ms")]).unwrap_err();
        assert!(e.starts_with("zones: "), "{e}");
        let e = net(&[("zones", "a,,c")]).unwrap_err();
        assert!(e.contains("'' is not a zone name"), "{e}");
    }

    #[test]
    fn bandwidths_read_and_print_back() {
        for (text, bytes) in [
            ("10MB/s", 10_000_000),
            ("512KB/s", 512_000),
            ("100Mbit/s", 12_500_000),
            ("1.5MB/s", 1_500_000),
            ("2GB/s", 2_000_000_000),
        ] {
            assert_eq!(parse_bandwidth(text), Ok(bytes), "{text}");
            assert_eq!(parse_bandwidth(&format_bandwidth(bytes)), Ok(bytes));
        }
    }

    #[test]
    fn a_network_survives_json() {
        let n = net(&[
            ("client_latency", "4ms"),
            ("client_bandwidth", "1MB/s"),
            ("zones", "a,b,c"),
            ("client_zone", "b"),
            ("zone_latency", "2ms"),
        ])
        .unwrap();
        let back: Network = serde_json::from_str(&serde_json::to_string(&n).unwrap()).unwrap();
        assert_eq!(back, n);
        assert_eq!(n.link(Source::Clients, 1).directions(), [(3, 0), (3, 0)]);
        let mut odd = Link {
            latency: Duration::from_millis(5),
            jitter: Duration::from_millis(1),
            bandwidth: None,
        };
        assert_eq!(odd.directions(), [(2, 0), (3, 1)]);
        odd.latency = Duration::ZERO;
        odd.jitter = Duration::ZERO;
        assert!(odd.is_clear());
    }
}
