//! The KRaft quorum of a cluster of N nodes, shared by both places klab
//! runs one: the local target (processes on 127.0.0.1) and the broker
//! StatefulSet on Kubernetes, where each pod works out its own place from
//! its name (`kafka-2` is ordinal 2, node 3) and reaches its peers by their
//! stable DNS names (`kafka-0.kafka-headless.NS.svc`).
//!
//! Up to [`MAX_VOTERS`] nodes each are broker and controller (all voters);
//! the nodes above are brokers only. Node ids count from 1.

use crate::broker::render::{NodeLayout, Voter};
use sha2::{Digest, Sha256};

/// The most nodes a cluster may have.
pub const MAX_NODES: u32 = 5;
/// The most voters a cluster uses: three tolerate one failure; five would
/// cost two more controllers on a laptop for a second tolerated failure.
const MAX_VOTERS: u32 = 3;

/// Voters of a cluster of `nodes`: all of them up to three, else three.
pub fn voter_count(nodes: u32) -> u32 {
    nodes.clamp(1, MAX_VOTERS)
}

/// `kafka-2` → (`kafka`, 2): a StatefulSet pod's name is its set's name,
/// a dash and its ordinal.
pub fn parse_pod_name(pod: &str) -> Result<(String, u32), String> {
    let bad = || {
        format!(
            "'{pod}' is not the name of a StatefulSet pod (NAME-ORDINAL, e.g. kafka-0); pass the pod's own name, e.g. --pod $(POD_NAME)"
        )
    };
    let (set, ordinal) = pod.rsplit_once('-').ok_or_else(bad)?;
    if set.is_empty() || ordinal.is_empty() || !ordinal.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let ordinal = ordinal.parse::<u32>().map_err(|_| bad())?;
    Ok((set.to_string(), ordinal))
}

/// The stable DNS name of pod `ordinal` of StatefulSet `set` behind its
/// headless Service, whose domain is `domain` (`kafka-headless.NS.svc`).
fn pod_host(set: &str, ordinal: u32, domain: &str) -> String {
    format!("{set}-{ordinal}.{domain}")
}

/// Where the controller quorum of StatefulSet `set` with `replicas` pods
/// listens: the first [`MAX_VOTERS`] pods, node id = ordinal + 1.
fn pod_voters(set: &str, replicas: u32, domain: &str, controller_port: u16) -> Vec<Voter> {
    (0..voter_count(replicas))
        .map(|i| Voter {
            id: i as i32 + 1,
            host: pod_host(set, i, domain),
            port: controller_port,
        })
        .collect()
}

/// What the broker StatefulSet's pod needs to know to render its node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNode<'a> {
    /// The pod's own name (`kafka-2`).
    pub pod: &'a str,
    /// Pods in the StatefulSet (1..=[`MAX_NODES`]).
    pub replicas: u32,
    /// The headless Service's domain: `kafka-headless.NS.svc`.
    pub domain: &'a str,
    pub broker_port: u16,
    pub controller_port: u16,
    pub log_dir: &'a str,
}

/// The layout of one pod of the broker StatefulSet: its node id from its
/// ordinal, advertised under its stable DNS name, a controller if it is
/// one of the first three pods, and the same voters as every other pod.
/// Listeners bind every interface of the pod.
pub fn pod_layout(p: &PodNode<'_>) -> Result<NodeLayout, String> {
    let (set, ordinal) = parse_pod_name(p.pod)?;
    if !(1..=MAX_NODES).contains(&p.replicas) {
        return Err(format!(
            "--replicas {}: a broker StatefulSet has 1 to {MAX_NODES} pods",
            p.replicas
        ));
    }
    if ordinal >= p.replicas {
        return Err(format!(
            "pod {} is ordinal {ordinal}, but --replicas {} allows ordinals 0..={}: the StatefulSet was scaled without updating KLAB_BROKER_REPLICAS (klab sets both; by hand, change both together)",
            p.pod,
            p.replicas,
            p.replicas - 1
        ));
    }
    if p.domain.trim().is_empty() {
        return Err("--peer-domain: empty; the headless Service's domain, e.g. kafka-headless.$(POD_NAMESPACE).svc".into());
    }
    Ok(NodeLayout {
        node_id: ordinal as i32 + 1,
        bind_host: "0.0.0.0".into(),
        advertised_host: pod_host(&set, ordinal, p.domain),
        broker_port: p.broker_port,
        controller_port: (ordinal < voter_count(p.replicas)).then_some(p.controller_port),
        log_dir: p.log_dir.into(),
        voters: pod_voters(&set, p.replicas, p.domain, p.controller_port),
        cluster_size: p.replicas,
        links: None,
    })
}

/// The KRaft cluster id of StatefulSet `set` behind `domain`: the same for
/// every pod and every start (a pod formatting its fresh volume joins the
/// cluster its peers formatted), different for another namespace or set.
/// 16 bytes of SHA-256 in URL-safe base64 without padding, the form Kafka's
/// own ids take; the first byte's top bit is cleared so that the id never
/// starts with '-' (a command line would take it for an option).
pub fn statefulset_cluster_id(set: &str, domain: &str) -> String {
    use base64::Engine;
    let digest = Sha256::digest(format!("klab KRaft cluster {set}.{domain}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[0] &= 0x7f;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::render::server_properties;
    use crate::model::BrokerConfig;

    fn node(pod: &str, replicas: u32) -> Result<NodeLayout, String> {
        pod_layout(&PodNode {
            pod,
            replicas,
            domain: "kafka-headless.klab.svc",
            broker_port: 9092,
            controller_port: 9093,
            log_dir: "/var/lib/kafka/data",
        })
    }

    fn prop(text: &str, key: &str) -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key} not in\n{text}"))
            .to_string()
    }

    #[test]
    fn pod_names_give_set_and_ordinal() {
        assert_eq!(parse_pod_name("kafka-0").unwrap(), ("kafka".into(), 0));
        assert_eq!(
            parse_pod_name("my-kafka-12").unwrap(),
            ("my-kafka".into(), 12)
        );
        for bad in ["kafka", "kafka-", "-3", "kafka-x", "kafka-+1", ""] {
            let e = parse_pod_name(bad).unwrap_err();
            assert!(e.contains("NAME-ORDINAL"), "{bad}: {e}");
        }
    }

    #[test]
    fn three_pods_are_one_quorum_of_three_voters() {
        let voters = "1@kafka-0.kafka-headless.klab.svc:9093,2@kafka-1.kafka-headless.klab.svc:9093,3@kafka-2.kafka-headless.klab.svc:9093";
        for ordinal in 0..3 {
            let l = node(&format!("kafka-{ordinal}"), 3).unwrap();
            let text = server_properties(&l, &BrokerConfig::default());
            assert_eq!(prop(&text, "node.id"), (ordinal + 1).to_string());
            assert_eq!(prop(&text, "process.roles"), "broker,controller");
            assert_eq!(prop(&text, "controller.quorum.voters"), voters);
            assert_eq!(
                prop(&text, "listeners"),
                "PLAINTEXT://0.0.0.0:9092,CONTROLLER://0.0.0.0:9093"
            );
            assert_eq!(
                prop(&text, "advertised.listeners"),
                format!("PLAINTEXT://kafka-{ordinal}.kafka-headless.klab.svc:9092")
            );
            // Replication defaults follow the cluster's size.
            assert_eq!(prop(&text, "offsets.topic.replication.factor"), "3");
            assert_eq!(prop(&text, "transaction.state.log.min.isr"), "2");
        }
    }

    #[test]
    fn above_three_pods_the_rest_are_brokers_only() {
        let l = node("kafka-4", 5).unwrap();
        assert_eq!(l.node_id, 5);
        assert_eq!(l.controller_port, None);
        assert_eq!(l.voters.len(), 3);
        let text = server_properties(&l, &BrokerConfig::default());
        assert_eq!(prop(&text, "process.roles"), "broker");
        assert!(
            prop(&text, "controller.quorum.voters")
                .ends_with("3@kafka-2.kafka-headless.klab.svc:9093")
        );
        assert!(node("kafka-2", 5).unwrap().controller_port.is_some());
        // One pod: its own only voter, under its DNS name.
        let one = node("kafka-0", 1).unwrap();
        assert_eq!(one.voters.len(), 1);
        assert_eq!(one.voters[0].host, "kafka-0.kafka-headless.klab.svc");
    }

    #[test]
    fn a_pod_outside_the_replicas_is_refused() {
        let e = node("kafka-1", 1).unwrap_err();
        assert!(
            e.contains("ordinal 1") && e.contains("KLAB_BROKER_REPLICAS"),
            "{e}"
        );
        assert!(node("kafka-0", 0).unwrap_err().contains("1 to 5"));
        assert!(node("kafka-0", 6).unwrap_err().contains("1 to 5"));
    }

    #[test]
    fn cluster_ids_are_shared_and_kafka_shaped() {
        let a = statefulset_cluster_id("kafka", "kafka-headless.klab.svc");
        assert_eq!(
            a,
            statefulset_cluster_id("kafka", "kafka-headless.klab.svc")
        );
        assert_ne!(
            a,
            statefulset_cluster_id("kafka", "kafka-headless.other.svc")
        );
        assert_ne!(
            a,
            statefulset_cluster_id("kafka2", "kafka-headless.klab.svc")
        );
        for i in 0..200 {
            let id = statefulset_cluster_id("kafka", &format!("d{i}"));
            assert_eq!(id.len(), 22, "{id}");
            assert!(!id.starts_with('-'), "{id}");
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
        }
    }
}
