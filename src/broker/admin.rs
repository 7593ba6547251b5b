//! Talking to a broker through Kafka's Admin API (rdkafka): readiness,
//! topics, and reading and changing broker configs.
//!
//! Changing configs: rdkafka's safe API only has the legacy, non-incremental
//! AlterConfigs, which replaces *all* dynamic settings of the resource with
//! the ones in the request, and it can only name one broker (`Broker(id)`),
//! not the cluster-wide default. klab therefore always sends the complete
//! set of dynamic per-broker values it wants (what the broker already has
//! dynamically, merged with the change) to `Broker(node_id)`, and reads the
//! result back. Kafka accepts per-broker values for every key klab tunes,
//! and on a single-node cluster per-broker and cluster-wide mean the same.

use crate::model::EffectiveValue;
use anyhow::{Context, Result, anyhow, bail};
use futures_executor::block_on;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::metadata::{Metadata, MetadataPartition, MetadataTopic};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// `topic` in metadata, if it is there.
fn find_topic<'a>(md: &'a Metadata, topic: &str) -> Option<&'a MetadataTopic> {
    md.topics().iter().find(|t| t.name() == topic)
}

/// The broker refused a configuration change (its reason inside). The
/// tuner records such a change as a rejected trial instead of failing.
#[derive(Debug, Clone)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused: {}", self.0)
    }
}

impl std::error::Error for Refused {}

/// Errors worth a retry: the connection went away, or timed out. `msg`
/// must carry the whole chain of an error (`{e:#}`), not only its outermost
/// context, which names the call but not what went wrong.
fn is_transient(msg: &str) -> bool {
    [
        "Transport",
        "transport",
        "AllBrokersDown",
        "TimedOut",
        "timed out",
        "Disconnected",
    ]
    .iter()
    .any(|w| msg.contains(w))
}

/// [`is_transient`] over an error's whole chain: the context klab adds
/// ("describing the configs of broker 1") hides rdkafka's error from
/// `to_string()`.
fn worth_retry(e: &anyhow::Error) -> bool {
    is_transient(&format!("{e:#}"))
}

pub struct Admin {
    client: AdminClient<DefaultClientContext>,
    bootstrap: String,
}

pub fn source_name(s: &ConfigSource) -> &'static str {
    match s {
        ConfigSource::Unknown => "Unknown",
        ConfigSource::DynamicTopic => "DynamicTopic",
        ConfigSource::DynamicBroker => "DynamicBroker",
        ConfigSource::DynamicDefaultBroker => "DynamicDefaultBroker",
        ConfigSource::StaticBroker => "StaticBroker",
        ConfigSource::Default => "Default",
    }
}

impl Admin {
    pub fn connect(bootstrap: &str) -> Result<Admin> {
        Admin::connect_with(bootstrap, &[])
    }

    /// A client for watching the cluster during a fault: a request to a
    /// frozen broker (SIGSTOP keeps its connection open) gives up after a
    /// second, and the next one goes to a broker that answers.
    pub fn connect_watcher(bootstrap: &str) -> Result<Admin> {
        Admin::connect_with(
            bootstrap,
            &[("socket.timeout.ms", "1000"), ("client.id", "klab-watch")],
        )
    }

    fn connect_with(bootstrap: &str, extra: &[(&str, &str)]) -> Result<Admin> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", bootstrap)
            .set("client.id", "klab-admin")
            // Looking a topic up must not create it (librdkafka's producer
            // default, which its admin client shares, would ask a broker
            // with auto.create.topics.enable to create it with defaults).
            .set("allow.auto.create.topics", "false")
            // A missing broker should fail a call in seconds, not minutes.
            .set("socket.connection.setup.timeout.ms", "5000");
        for (k, v) in extra {
            config.set(*k, *v);
        }
        let client: AdminClient<DefaultClientContext> = config
            .create()
            .with_context(|| format!("creating an admin client for {bootstrap}"))?;
        Ok(Admin {
            client,
            bootstrap: bootstrap.to_string(),
        })
    }

    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    fn opts(&self) -> AdminOptions {
        AdminOptions::new()
            .request_timeout(Some(Duration::from_secs(15)))
            .operation_timeout(Some(Duration::from_secs(15)))
    }

    /// Metadata of every topic and broker (never creates a topic).
    fn cluster_metadata(&self, timeout: Duration) -> Result<Metadata> {
        self.client
            .inner()
            .fetch_metadata(None, timeout)
            .with_context(|| format!("fetching metadata from {}", self.bootstrap))
    }

    /// Metadata of `topic` alone.
    fn topic_metadata(&self, topic: &str, timeout: Duration) -> Result<Metadata> {
        self.client
            .inner()
            .fetch_metadata(Some(topic), timeout)
            .with_context(|| format!("reading metadata of topic {topic}"))
    }

    /// The node id of the (first) broker, if metadata can be fetched.
    pub fn node_id(&self, timeout: Duration) -> Result<i32> {
        let md = self.cluster_metadata(timeout)?;
        md.brokers()
            .first()
            .map(|b| b.id())
            .ok_or_else(|| anyhow!("{} answered metadata without any broker", self.bootstrap))
    }

    /// The ids of the brokers metadata lists.
    pub fn broker_ids(&self, timeout: Duration) -> Result<Vec<i32>> {
        let md = self.cluster_metadata(timeout)?;
        Ok(md.brokers().iter().map(|b| b.id()).collect())
    }

    /// Polls metadata until it lists `n` brokers or `deadline` passes.
    /// `alive` is called between attempts so a dead broker fails fast.
    pub fn wait_brokers(
        &self,
        n: usize,
        deadline: Instant,
        mut alive: impl FnMut() -> Result<()>,
    ) -> Result<Vec<i32>> {
        loop {
            alive()?;
            match self.broker_ids(Duration::from_millis(1000)) {
                Ok(ids) if ids.len() >= n => return Ok(ids),
                Ok(ids) if Instant::now() >= deadline => {
                    bail!("metadata lists {} of {n} brokers", ids.len())
                }
                Err(e) if Instant::now() >= deadline => return Err(e),
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Partitions (of every topic) with fewer in-sync replicas than
    /// replicas, or without a leader.
    pub fn under_replicated(&self, timeout: Duration) -> Result<usize> {
        self.count_partitions(timeout, |p| {
            p.leader() < 0 || p.isr().len() < p.replicas().len()
        })
    }

    /// Partitions whose leader is not their preferred replica (the first
    /// of their replica list): after a rolling restart the last node to
    /// restart leads nothing until the controller moves leadership back.
    pub fn off_preferred_leader(&self, timeout: Duration) -> Result<usize> {
        self.count_partitions(timeout, |p| {
            p.replicas().first().is_some_and(|r| *r != p.leader())
        })
    }

    /// How many partitions of every topic `pred` holds for.
    fn count_partitions(
        &self,
        timeout: Duration,
        pred: impl Fn(&MetadataPartition) -> bool,
    ) -> Result<usize> {
        let md = self.cluster_metadata(timeout)?;
        let partitions = md.topics().iter().flat_map(|t| t.partitions());
        Ok(partitions.filter(|p| pred(p)).count())
    }

    /// The replicas of partition `p` of `topic`, its leader first.
    pub fn replicas(&self, topic: &str, p: i32, timeout: Duration) -> Result<Vec<i32>> {
        let md = self.topic_metadata(topic, timeout)?;
        let part = find_topic(&md, topic)
            .and_then(|t| t.partitions().iter().find(|x| x.id() == p))
            .ok_or_else(|| anyhow!("no partition {p} of topic {topic}"))?;
        let mut out = vec![part.leader()];
        out.extend(
            part.replicas()
                .iter()
                .copied()
                .filter(|r| *r != part.leader()),
        );
        Ok(out)
    }

    /// The leader of each partition of `topic` (-1: none), by partition.
    pub fn leaders(&self, topic: &str, timeout: Duration) -> Result<Vec<i32>> {
        let states = self.partition_states(topic, timeout)?;
        Ok(states.into_iter().map(|(leader, _)| leader).collect())
    }

    /// Each partition of `topic` as the broker that answers sees it: its
    /// leader (-1: none) and in-sync replicas, by partition.
    pub fn partition_states(&self, topic: &str, timeout: Duration) -> Result<Vec<(i32, Vec<i32>)>> {
        let md = self.topic_metadata(topic, timeout)?;
        let t = find_topic(&md, topic).ok_or_else(|| anyhow!("no topic {topic}"))?;
        let mut out = vec![(-1, Vec::new()); t.partitions().len()];
        for p in t.partitions() {
            if let Some(slot) = out.get_mut(p.id() as usize) {
                let mut isr = p.isr().to_vec();
                isr.sort_unstable();
                *slot = (p.leader(), isr);
            }
        }
        Ok(out)
    }

    /// Polls metadata until a broker answers or `deadline` passes. `alive`
    /// is called between attempts so a dead broker fails fast.
    pub fn wait_ready(
        &self,
        deadline: Instant,
        mut alive: impl FnMut() -> Result<()>,
    ) -> Result<i32> {
        loop {
            alive()?;
            match self.node_id(Duration::from_millis(1000)) {
                Ok(id) => return Ok(id),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Creates a topic with replication factor 1 and waits until every
    /// partition has a leader.
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<()> {
        self.create_replicated_topic(name, partitions, 1, None)
    }

    /// Creates a topic with `replication` replicas per partition (and
    /// `min.insync.replicas` when given) and waits until every partition
    /// has a leader and all its replicas in sync.
    pub fn create_replicated_topic(
        &self,
        name: &str,
        partitions: i32,
        replication: i32,
        min_insync: Option<u32>,
    ) -> Result<()> {
        let isr = min_insync.map(|n| n.to_string());
        let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(replication));
        if let Some(v) = &isr {
            topic = topic.set("min.insync.replicas", v);
        }
        let res = block_on(self.client.create_topics([&topic], &self.opts()))
            .with_context(|| format!("creating topic {name}"))?;
        for r in res {
            if let Err((t, code)) = r {
                bail!("creating topic {t}: {code}");
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(md) = self.topic_metadata(name, Duration::from_secs(2))
                && let Some(t) = find_topic(&md, name)
                && t.partitions().len() == partitions as usize
                && t.partitions()
                    .iter()
                    .all(|p| p.leader() >= 0 && p.isr().len() >= p.replicas().len())
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("topic {name} has no leader for every partition after 30s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Partition count of an existing topic, or None when it does not exist.
    pub fn topic_partitions(&self, name: &str) -> Result<Option<usize>> {
        let md = self.topic_metadata(name, Duration::from_secs(5))?;
        Ok(find_topic(&md, name)
            .filter(|t| t.error().is_none())
            .map(|t| t.partitions().len())
            .filter(|n| *n > 0))
    }

    /// Deletes a topic and waits (up to 30 s) until metadata no longer
    /// lists it.
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        let res = block_on(self.client.delete_topics(&[name], &self.opts()))
            .with_context(|| format!("deleting topic {name}"))?;
        for r in res {
            if let Err((t, code)) = r {
                bail!("deleting topic {t}: {code}");
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if matches!(self.topic_partitions(name), Ok(None)) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("topic {name} still listed 30s after its deletion")
    }

    /// Every config of broker `node_id` with its value and source. Retried
    /// for a few seconds: resizing the network thread pool closes the
    /// connections of the removed threads, this client's among them.
    pub fn describe_broker(&self, node_id: i32) -> Result<BTreeMap<String, EffectiveValue>> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.describe_broker_once(node_id) {
                Ok(m) => return Ok(m),
                Err(e) if Instant::now() < deadline && worth_retry(&e) => {
                    tracing::info!("describe configs: {e:#}; retrying");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn describe_broker_once(&self, node_id: i32) -> Result<BTreeMap<String, EffectiveValue>> {
        let spec = ResourceSpecifier::Broker(node_id);
        let res = block_on(self.client.describe_configs([&spec], &self.opts()))
            .with_context(|| format!("describing the configs of broker {node_id}"))?;
        let mut out = BTreeMap::new();
        for r in res {
            let r = r.map_err(|code| anyhow!("describing broker {node_id}: {code}"))?;
            for e in r.entries {
                out.insert(
                    e.name.clone(),
                    EffectiveValue {
                        value: e.value.clone(),
                        source: source_name(&e.source).to_string(),
                    },
                );
            }
        }
        Ok(out)
    }

    /// Replaces the dynamic per-broker settings of `node_id` with `all`
    /// (legacy AlterConfigs: keys not in `all` fall back to their static or
    /// default values). See the module docs.
    pub fn set_broker_dynamic(
        &self,
        node_id: i32,
        all: &BTreeMap<String, String>,
    ) -> std::result::Result<(), String> {
        // The whole set is sent each time, so a retry after a dropped
        // connection is safe.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.set_broker_dynamic_once(node_id, all) {
                Err(e) if Instant::now() < deadline && is_transient(&e) => {
                    tracing::debug!("alter configs: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(200));
                }
                other => return other,
            }
        }
    }

    fn set_broker_dynamic_once(
        &self,
        node_id: i32,
        all: &BTreeMap<String, String>,
    ) -> std::result::Result<(), String> {
        let mut ac = AlterConfig::new(ResourceSpecifier::Broker(node_id));
        for (k, v) in all {
            ac = ac.set(k, v);
        }
        let res = block_on(self.client.alter_configs([&ac], &self.opts()))
            .map_err(|e| format!("the broker refused the change: {e}"))?;
        for r in res {
            if let Err((_, code)) = r {
                return Err(format!("the broker refused the change: {code:?} ({code})"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};

    #[test]
    fn a_dropped_connection_under_context_is_retried() {
        // What DescribeConfigs returns when a network thread pool shrinks
        // under the admin client's connection, as describe_broker_once
        // wraps it.
        let e = anyhow::Error::new(KafkaError::AdminOp(
            RDKafkaErrorCode::BrokerTransportFailure,
        ))
        .context("describing the configs of broker 1");
        assert!(!is_transient(&e.to_string()), "the context alone hides it");
        assert!(worth_retry(&e));
        let timed_out =
            anyhow::Error::new(KafkaError::AdminOp(RDKafkaErrorCode::OperationTimedOut))
                .context("describing the configs of broker 1");
        assert!(worth_retry(&timed_out));
    }

    #[test]
    fn a_refusal_is_not_retried() {
        let e = anyhow::Error::new(KafkaError::AdminOp(RDKafkaErrorCode::InvalidConfig))
            .context("describing the configs of broker 1");
        assert!(!worth_retry(&e));
        assert!(!worth_retry(&anyhow!(
            "describing broker 1: unknown broker"
        )));
    }
}
