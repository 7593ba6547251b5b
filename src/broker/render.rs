//! Turns a [`BrokerConfig`] into what a Kafka JVM reads: server.properties
//! text and JVM flags. The local broker and the broker image's entrypoint
//! (`klab broker exec`) both call these functions, so every knob has exactly
//! one spelling.

use crate::model::BrokerConfig;
use crate::units::MemSize;
use std::collections::BTreeMap;
use std::path::Path;

/// Heap when a config does not name one: what Kafka's own start script uses.
pub const DEFAULT_HEAP: MemSize = MemSize(MemSize::GIB);

/// A voter of the KRaft controller quorum: `id@host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    pub id: i32,
    pub host: String,
    pub port: u16,
}

/// Where one node of a KRaft cluster listens and keeps its data: a broker,
/// and a controller too when it has a controller port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLayout {
    pub node_id: i32,
    /// Address the listeners bind to (`127.0.0.1` locally, `0.0.0.0` in a pod).
    pub bind_host: String,
    /// Host clients are told to connect to.
    pub advertised_host: String,
    pub broker_port: u16,
    /// The controller listener's port; None for a broker-only node.
    pub controller_port: Option<u16>,
    pub log_dir: String,
    /// The controller quorum (every node knows all voters).
    pub voters: Vec<Voter>,
    /// Brokers in the cluster: replication defaults follow it.
    pub cluster_size: u32,
    /// With a network: the listeners behind proxies (None: every
    /// connection reaches the `PLAINTEXT` listener directly).
    pub links: Option<NodeLinks>,
}

/// The listeners of a node whose connections pass through proxies. Each
/// listener is bound on the node's own port and advertised at the port of
/// the proxy in front of it, so whoever learns the address from Kafka's
/// metadata connects through the proxy. The `PLAINTEXT` listener stays
/// direct: klab's own Admin client uses it, and a fault on a link never
/// blinds the measurement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLinks {
    /// `CLIENT`, the producers' and consumers' listener: (bound, advertised).
    pub client: (u16, u16),
    /// `FROM_NODE_<m>` for every node m, the listener node m replicates
    /// from: (m, bound, advertised). A node replicates over its own
    /// number's listener (`inter.broker.listener.name`), so the link from
    /// m to this node is a proxy of its own; its own entry is direct.
    pub from: Vec<(i32, u16, u16)>,
    /// The controller quorum as this node reaches it: the other voters at
    /// the proxies from this node to them.
    pub voters: Vec<Voter>,
}

/// The name of the listener node `m` replicates over.
pub fn from_listener(m: i32) -> String {
    format!("FROM_NODE_{m}")
}

impl NodeLayout {
    pub fn bootstrap(&self) -> String {
        format!("{}:{}", self.advertised_host, self.broker_port)
    }

    /// A one-node cluster: broker and the only controller, voting for
    /// itself on `voter_host` (the node reaches itself there).
    pub fn single(
        node_id: i32,
        bind_host: &str,
        advertised_host: &str,
        voter_host: &str,
        broker_port: u16,
        controller_port: u16,
        log_dir: &str,
    ) -> NodeLayout {
        NodeLayout {
            node_id,
            bind_host: bind_host.into(),
            advertised_host: advertised_host.into(),
            broker_port,
            controller_port: Some(controller_port),
            log_dir: log_dir.into(),
            voters: vec![Voter {
                id: node_id,
                host: voter_host.into(),
                port: controller_port,
            }],
            cluster_size: 1,
            links: None,
        }
    }

    /// Where the producers and consumers bootstrap: the proxy in front of
    /// the `CLIENT` listener with a network, else the direct listener.
    pub fn client_bootstrap(&self) -> String {
        match &self.links {
            Some(l) => format!("{}:{}", self.advertised_host, l.client.1),
            None => self.bootstrap(),
        }
    }
}

/// Keys klab sets from the [`NodeLayout`]; a lab or a flag may not change them.
pub const LAYOUT_KEYS: &[&str] = &[
    "process.roles",
    "node.id",
    "broker.id",
    "controller.quorum.voters",
    "controller.quorum.bootstrap.servers",
    "listeners",
    "advertised.listeners",
    "listener.security.protocol.map",
    "controller.listener.names",
    "inter.broker.listener.name",
    "log.dirs",
    "log.dir",
];

/// Settings every single-node klab broker gets before the lab's own (see
/// [`cluster_defaults`]).
pub fn single_node_defaults() -> BTreeMap<String, String> {
    cluster_defaults(1)
}

/// Settings every broker of a klab cluster of `brokers` nodes gets before
/// the lab's own: replication factors its internal topics can have (up to
/// 3, with a minimum in-sync of up to 2), fast group joins, and prompt
/// removal of deleted topics.
pub fn cluster_defaults(brokers: u32) -> BTreeMap<String, String> {
    let rf = brokers.clamp(1, 3).to_string();
    let isr = brokers.clamp(1, 2).to_string();
    let mut out: BTreeMap<String, String> = [
        ("offsets.topic.replication.factor", rf.as_str()),
        ("transaction.state.log.replication.factor", rf.as_str()),
        ("transaction.state.log.min.isr", isr.as_str()),
        (
            "share.coordinator.state.topic.replication.factor",
            rf.as_str(),
        ),
        ("share.coordinator.state.topic.min.isr", isr.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if brokers > 1 {
        // Move leadership back to each partition's preferred replica within
        // seconds of a node's return instead of Kafka's 300 s, so a rolling
        // restart or a fault leaves no broker leading more than its share.
        out.insert("leader.imbalance.check.interval.seconds".into(), "5".into());
    }
    out.extend(other_defaults());
    out
}

fn other_defaults() -> BTreeMap<String, String> {
    [
        ("group.initial.rebalance.delay.ms", "0"),
        ("auto.create.topics.enable", "false"),
        // Each measurement deletes its topic; remove the files at once, so
        // their data is never written back to disk while the next step runs.
        ("log.segment.delete.delay.ms", "0"),
        // ... and start the broker's periodic log tasks (deletion among
        // them) at once instead of 30 s after start.
        ("log.initial.task.delay.ms", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The server.properties of a node: layout, single-node defaults, then the
/// requested settings (which win over the defaults).
pub fn server_properties(layout: &NodeLayout, cfg: &BrokerConfig) -> String {
    let mut props: BTreeMap<String, String> = BTreeMap::new();
    let id = layout.node_id;
    let voters = layout.links.as_ref().map_or(&layout.voters, |l| &l.voters);
    let voters: Vec<String> = voters
        .iter()
        .map(|v| format!("{}@{}:{}", v.id, v.host, v.port))
        .collect();
    let (h, a) = (&layout.bind_host, &layout.advertised_host);
    // (name, bound port, advertised port) of every broker listener.
    let mut named: Vec<(String, u16, u16)> =
        vec![("PLAINTEXT".into(), layout.broker_port, layout.broker_port)];
    let mut inter = "PLAINTEXT".to_string();
    if let Some(l) = &layout.links {
        named.push(("CLIENT".into(), l.client.0, l.client.1));
        named.extend(l.from.iter().map(|(m, b, a)| (from_listener(*m), *b, *a)));
        inter = from_listener(id);
    }
    let mut listeners: Vec<String> = named
        .iter()
        .map(|(n, b, _)| format!("{n}://{h}:{b}"))
        .collect();
    let advertised: Vec<String> = named
        .iter()
        .map(|(n, _, p)| format!("{n}://{a}:{p}"))
        .collect();
    let mut protocols: Vec<String> = named
        .iter()
        .map(|(n, ..)| format!("{n}:PLAINTEXT"))
        .collect();
    protocols.push("CONTROLLER:PLAINTEXT".into());
    let roles = match layout.controller_port {
        Some(c) => {
            listeners.push(format!("CONTROLLER://{h}:{c}"));
            "broker,controller"
        }
        None => "broker",
    };
    let layout_props = [
        ("process.roles", roles.to_string()),
        ("node.id", id.to_string()),
        ("controller.quorum.voters", voters.join(",")),
        ("listeners", listeners.join(",")),
        ("advertised.listeners", advertised.join(",")),
        ("listener.security.protocol.map", protocols.join(",")),
        ("controller.listener.names", "CONTROLLER".to_string()),
        ("inter.broker.listener.name", inter),
        ("log.dirs", layout.log_dir.clone()),
    ];
    for (k, v) in cluster_defaults(layout.cluster_size) {
        props.insert(k, v);
    }
    for (k, v) in &cfg.properties {
        props.insert(k.clone(), v.clone());
    }
    let mut out =
        String::from("# Written by klab; do not edit: klab rewrites it on every start.\n");
    out.push_str("# Node layout (set by klab)\n");
    for (k, v) in layout_props {
        out.push_str(&format!("{k}={}\n", escape_value(&v)));
    }
    out.push_str("# Settings (klab's cluster defaults, then the lab's)\n");
    for (k, v) in &props {
        out.push_str(&format!("{k}={}\n", escape_value(v)));
    }
    out
}

/// Checks that `path` reaches Kafka and its JVM as it is: klab hands a
/// broker's folder to Kafka in `server.properties` (`log.dirs`, which Kafka
/// reads as ISO-8859-1 and as a comma-separated list), and to the JVM in
/// `-Xlog:gc*:file=...` (fields separated by `:`, `"` quotes, `%p` and `%t`
/// expanded) and `-Dlog4j2.configurationFile=...` (a comma-separated list).
/// `Err` names the character and why; what is allowed is printable ASCII
/// without `,` `:` `"` `%`.
pub fn check_kafka_path(path: &Path) -> Result<(), String> {
    const ALLOWED: &str = "use a path of printable ASCII characters without , : \" or %";
    let Some(text) = path.to_str() else {
        return Err(format!("not valid UTF-8; {ALLOWED}"));
    };
    for c in text.chars() {
        let why = match c {
            ',' => {
                "Kafka reads log.dirs as a comma-separated list (a broker's data would land in two folders, one of them outside the run's)"
            }
            ':' => "the JVM's -Xlog option (the broker's GC log) separates its fields with ':'",
            '"' => "the JVM's -Xlog option (the broker's GC log) reads '\"' as a quote",
            '%' => "the JVM's -Xlog option expands %p and %t in the GC log's file name",
            c if c.is_ascii_control() => "Kafka's and the JVM's settings are lines of text",
            c if !c.is_ascii() => {
                "Kafka reads server.properties as ISO-8859-1, so the broker's data would go to a folder of another name"
            }
            _ => continue,
        };
        return Err(format!(
            "{c:?} cannot be in a path klab hands to Kafka: {why}; {ALLOWED}"
        ));
    }
    Ok(())
}

/// Java properties escaping for values (keys are plain Kafka names).
fn escape_value(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            _ => s.push(c),
        }
    }
    s
}

/// The JVM flags of a broker: heap, Kafka's own G1 settings, GC log (which
/// also records the heap the JVM really got), log4j2 configuration.
pub fn jvm_flags(cfg: &BrokerConfig, log4j_config: &Path, gc_log: &Path) -> Vec<String> {
    let heap = cfg.heap.unwrap_or(DEFAULT_HEAP).jvm();
    vec![
        format!("-Xms{heap}"),
        format!("-Xmx{heap}"),
        // As in Kafka's kafka-run-class.sh.
        "-server".into(),
        "-XX:+UseG1GC".into(),
        "-XX:MaxGCPauseMillis=20".into(),
        "-XX:InitiatingHeapOccupancyPercent=35".into(),
        "-XX:+ExplicitGCInvokesConcurrent".into(),
        "-XX:MaxInlineLevel=15".into(),
        "-Djava.awt.headless=true".into(),
        format!(
            "-Xlog:gc*:file={}:time,uptime,level,tags:filecount=2,filesize=20M",
            gc_log.display()
        ),
        format!("-Dlog4j2.configurationFile={}", log4j_config.display()),
    ]
}

/// A log4j2 configuration that sends the broker's log to stdout (klab
/// redirects it into the run's broker.log), at INFO with chatty loggers
/// turned down.
pub const LOG4J2_PROPERTIES: &str = "\
# Written by klab.
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
logger.common.name = org.apache.kafka.common.config
logger.common.level = WARN
";

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> NodeLayout {
        NodeLayout::single(
            1,
            "127.0.0.1",
            "127.0.0.1",
            "127.0.0.1",
            19092,
            19093,
            "/tmp/x/data",
        )
    }

    fn parse(text: &str) -> BTreeMap<String, String> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn requested_settings_win_over_defaults() {
        let mut cfg = BrokerConfig::default();
        cfg.properties.insert("num.io.threads".into(), "2".into());
        cfg.properties
            .insert("group.initial.rebalance.delay.ms".into(), "3000".into());
        let p = parse(&server_properties(&layout(), &cfg));
        assert_eq!(p["num.io.threads"], "2");
        assert_eq!(p["group.initial.rebalance.delay.ms"], "3000");
        assert_eq!(p["offsets.topic.replication.factor"], "1");
        assert_eq!(p["controller.quorum.voters"], "1@127.0.0.1:19093");
        assert_eq!(
            p["listeners"],
            "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
        );
        assert_eq!(p["log.dirs"], "/tmp/x/data");
    }

    #[test]
    fn a_three_node_cluster_votes_for_all_and_replicates_three_times() {
        let voters: Vec<Voter> = (1..=3)
            .map(|id| Voter {
                id,
                host: "127.0.0.1".into(),
                port: 19090 + id as u16,
            })
            .collect();
        let node = |id: i32, controller: Option<u16>| NodeLayout {
            node_id: id,
            bind_host: "127.0.0.1".into(),
            advertised_host: "127.0.0.1".into(),
            broker_port: 19080 + id as u16,
            controller_port: controller,
            log_dir: format!("/tmp/n{id}"),
            voters: voters.clone(),
            cluster_size: 4,
            links: None,
        };
        let p = parse(&server_properties(
            &node(2, Some(19092)),
            &BrokerConfig::default(),
        ));
        assert_eq!(
            p["controller.quorum.voters"],
            "1@127.0.0.1:19091,2@127.0.0.1:19092,3@127.0.0.1:19093"
        );
        assert_eq!(p["process.roles"], "broker,controller");
        assert_eq!(p["offsets.topic.replication.factor"], "3");
        assert_eq!(p["transaction.state.log.min.isr"], "2");
        let p = parse(&server_properties(&node(4, None), &BrokerConfig::default()));
        assert_eq!(p["process.roles"], "broker");
        assert_eq!(p["listeners"], "PLAINTEXT://127.0.0.1:19084");
        assert_eq!(p["controller.listener.names"], "CONTROLLER");
    }

    #[test]
    fn behind_proxies_each_node_replicates_over_its_own_listener() {
        let mut l = layout();
        l.node_id = 2;
        l.links = Some(NodeLinks {
            client: (19100, 29100),
            from: vec![(1, 19101, 29101), (2, 19102, 19102)],
            voters: vec![
                Voter {
                    id: 1,
                    host: "127.0.0.1".into(),
                    port: 29093,
                },
                Voter {
                    id: 2,
                    host: "127.0.0.1".into(),
                    port: 19093,
                },
            ],
        });
        assert_eq!(l.client_bootstrap(), "127.0.0.1:29100");
        assert_eq!(l.bootstrap(), "127.0.0.1:19092");
        let p = parse(&server_properties(&l, &BrokerConfig::default()));
        assert_eq!(
            p["listeners"],
            "PLAINTEXT://127.0.0.1:19092,CLIENT://127.0.0.1:19100,FROM_NODE_1://127.0.0.1:19101,FROM_NODE_2://127.0.0.1:19102,CONTROLLER://127.0.0.1:19093"
        );
        assert_eq!(
            p["advertised.listeners"],
            "PLAINTEXT://127.0.0.1:19092,CLIENT://127.0.0.1:29100,FROM_NODE_1://127.0.0.1:29101,FROM_NODE_2://127.0.0.1:19102"
        );
        assert_eq!(p["inter.broker.listener.name"], "FROM_NODE_2");
        assert_eq!(
            p["listener.security.protocol.map"],
            "PLAINTEXT:PLAINTEXT,CLIENT:PLAINTEXT,FROM_NODE_1:PLAINTEXT,FROM_NODE_2:PLAINTEXT,CONTROLLER:PLAINTEXT"
        );
        assert_eq!(
            p["controller.quorum.voters"],
            "1@127.0.0.1:29093,2@127.0.0.1:19093"
        );
    }

    #[test]
    fn pod_layout_votes_on_loopback() {
        let l = NodeLayout::single(
            1,
            "0.0.0.0",
            "kafka-0.kafka-headless.klab.svc",
            "127.0.0.1",
            19092,
            19093,
            "/tmp/x/data",
        );
        let p = parse(&server_properties(&l, &BrokerConfig::default()));
        assert_eq!(p["controller.quorum.voters"], "1@127.0.0.1:19093");
        assert_eq!(
            p["advertised.listeners"],
            "PLAINTEXT://kafka-0.kafka-headless.klab.svc:19092"
        );
    }

    #[test]
    fn heap_becomes_xms_and_xmx() {
        let cfg = BrokerConfig {
            heap: Some(MemSize::mib(256)),
            ..Default::default()
        };
        let f = jvm_flags(&cfg, Path::new("/l.properties"), Path::new("/gc.log"));
        assert!(f.contains(&"-Xms256m".to_string()));
        assert!(f.contains(&"-Xmx256m".to_string()));
        let d = jvm_flags(&BrokerConfig::default(), Path::new("/l"), Path::new("/g"));
        assert!(d.contains(&"-Xmx1g".to_string()));
    }

    #[test]
    fn paths_kafka_cannot_carry_are_refused() {
        for ok in [
            "results",
            "/tmp/klab runs/2026-01-01",
            "a=b/c#d/e'f",
            "./x_y-z",
        ] {
            assert_eq!(check_kafka_path(Path::new(ok)), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("runs/a,b", "comma-separated list"),
            ("runs/a:b", "separates its fields"),
            ("runs/a\"b", "quote"),
            ("runs/%p", "expands %p"),
            ("runs/é", "ISO-8859-1"),
            ("runs/a\nb", "lines of text"),
        ] {
            let e = check_kafka_path(Path::new(bad)).unwrap_err();
            assert!(
                e.contains(why) && e.contains("printable ASCII"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn values_are_escaped() {
        let mut cfg = BrokerConfig::default();
        cfg.properties.insert("a.b".into(), "x\ny".into());
        assert!(server_properties(&layout(), &cfg).contains("a.b=x\\ny\n"));
    }
}
