//! The embedded target: a KRaft cluster of 1 to 5 nodes as child processes
//! of klab on 127.0.0.1. Up to three nodes each are broker and controller
//! (all voters); above three, nodes 4 and 5 are brokers only. One node is
//! the single-broker lab klab started with; its files sit in the run's
//! `broker/` folder, a bigger cluster's in `broker/node-N/`.
//!
//! A config applies to every node: dynamic changes go to each node,
//! restart-only ones roll the nodes one at a time, each waiting until no
//! partition is under-replicated before the next.

use crate::broker::admin::Admin;
use crate::broker::apply::{Reconfigure, refused_start};
use crate::broker::dynamic::{self, mismatches};
use crate::broker::kafka_home::{KafkaHome, java, java_version};
use crate::broker::node::{Node, Stopped, heap_from_gc_log};
use crate::model::{BrokerConfig, EffectiveValue};
use anyhow::{Context, Result, anyhow, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

mod faults;
mod layout;
pub mod network;
pub use layout::cluster_id;
use layout::layouts;

/// The most nodes a local cluster may have.
pub const MAX_BROKERS: u32 = crate::broker::quorum::MAX_NODES;

#[derive(Debug, Clone)]
pub struct LocalOptions {
    pub kafka: KafkaHome,
    /// Directory for the nodes' files (server.properties, broker.log,
    /// gc.log, data).
    pub dir: PathBuf,
    pub config: BrokerConfig,
    /// Nodes, 1 to [`MAX_BROKERS`].
    pub brokers: u32,
    pub start_timeout: Duration,
    pub stop_grace: Duration,
    /// Every connection through a proxy klab controls (see
    /// [`network`]); false: clients and nodes reach each other directly.
    pub network: bool,
}

impl LocalOptions {
    pub fn new(kafka: KafkaHome, dir: PathBuf, config: BrokerConfig) -> LocalOptions {
        LocalOptions {
            kafka,
            dir,
            config,
            brokers: 1,
            start_timeout: Duration::from_secs(90),
            stop_grace: Duration::from_secs(20),
            network: false,
        }
    }

    pub fn brokers(mut self, n: u32) -> LocalOptions {
        self.brokers = n;
        self
    }

    /// Puts every link behind a proxy (see [`network`]).
    pub fn network(mut self, on: bool) -> LocalOptions {
        self.network = on;
        self
    }
}

/// The local cluster (one node: the single local broker).
pub struct LocalBroker {
    opts: LocalOptions,
    java: PathBuf,
    java_version: String,
    cluster_id: String,
    nodes: Vec<Node>,
    admin: Option<Admin>,
    /// What each node reported after the last start or change, by node id.
    effective: BTreeMap<i32, BTreeMap<String, EffectiveValue>>,
    /// Keys set through the Admin API since the last start (on every node).
    dynamic: BTreeMap<String, String>,
    /// When a change last shrank the request handler pools (see
    /// [`LocalBroker::let_removed_handlers_exit`]).
    handlers_shrunk_at: Option<Instant>,
    /// The proxies in front of the nodes' listeners, when the cluster has a
    /// network. Declared after `nodes`, so it stops after them.
    network: Option<network::ClusterNetwork>,
}

impl LocalBroker {
    /// Formats storage, starts every node, waits until the cluster answers
    /// metadata with all its brokers, and checks every requested setting
    /// took effect on each.
    pub fn start(opts: LocalOptions) -> Result<LocalBroker> {
        if !(1..=MAX_BROKERS).contains(&opts.brokers) {
            bail!(
                "a local cluster has 1 to {MAX_BROKERS} brokers, not {}",
                opts.brokers
            );
        }
        let java = java()?;
        let java_version = java_version(&java).unwrap_or_default();
        crate::broker::node::check_free_space(&opts.dir, crate::broker::node::MIN_FREE_BYTES)?;
        std::fs::create_dir_all(&opts.dir)
            .with_context(|| format!("creating the broker directory {}", opts.dir.display()))?;
        // The nodes' ports stay held while the proxies bind theirs (port 0:
        // the system's choice, which could otherwise be a node's).
        let (mut layouts, reserved) = layouts(&opts.dir, opts.brokers)?;
        let network = match opts.network {
            true => Some(network::ClusterNetwork::start(&opts.dir, &mut layouts)?),
            false => None,
        };
        drop(reserved);
        let nodes = layouts.into_iter().map(|(l, d)| Node::new(l, d)).collect();
        let mut b = LocalBroker {
            opts,
            java,
            java_version,
            cluster_id: cluster_id(),
            nodes,
            admin: None,
            effective: BTreeMap::new(),
            dynamic: BTreeMap::new(),
            handlers_shrunk_at: None,
            network,
        };
        b.launch_all()?;
        b.announce("started", None);
        Ok(b)
    }

    /// Tells the event bus the cluster (or node `node`) started.
    fn announce(&self, action: &str, node: Option<i32>) {
        crate::events::emit(crate::events::Event::Broker {
            action: action.to_string(),
            node,
            config: self.opts.config.to_string(),
        });
    }

    /// Every node's listener, comma separated.
    pub fn bootstrap(&self) -> String {
        self.every_node(Node::bootstrap)
    }

    /// `address` of every node, comma separated.
    fn every_node(&self, address: impl Fn(&Node) -> String) -> String {
        self.nodes.iter().map(address).collect::<Vec<_>>().join(",")
    }

    /// Brokers in the cluster.
    pub fn size(&self) -> u32 {
        self.nodes.len() as u32
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The JVM of the first node (the only one of a single broker).
    pub fn pid(&self) -> Option<u32> {
        self.nodes.first().and_then(Node::pid)
    }

    pub fn node_id(&self) -> i32 {
        self.nodes.first().map(Node::id).unwrap_or(1)
    }

    pub fn kafka(&self) -> &KafkaHome {
        &self.opts.kafka
    }

    pub fn java_version(&self) -> &str {
        &self.java_version
    }

    pub fn dir(&self) -> &Path {
        &self.opts.dir
    }

    /// The first node's broker.log.
    pub fn log_path(&self) -> PathBuf {
        self.nodes
            .first()
            .map(Node::log_path)
            .unwrap_or_else(|| self.opts.dir.join("broker.log"))
    }

    /// Every node's current GC log.
    pub fn gc_log_paths(&self) -> Vec<PathBuf> {
        self.nodes.iter().map(Node::gc_log_path).collect()
    }

    /// The config the cluster was started with, plus dynamic changes since.
    pub fn config(&self) -> BrokerConfig {
        let mut c = self.opts.config.clone();
        for (k, v) in &self.dynamic {
            c.properties.insert(k.clone(), v.clone());
        }
        c
    }

    /// The first node's effective config (all nodes run the same).
    pub fn effective(&self) -> &BTreeMap<String, EffectiveValue> {
        static EMPTY: BTreeMap<String, EffectiveValue> = BTreeMap::new();
        self.effective.get(&self.node_id()).unwrap_or(&EMPTY)
    }

    pub fn admin(&self) -> Result<&Admin> {
        self.admin
            .as_ref()
            .ok_or_else(|| anyhow!("the broker is not running"))
    }

    /// A node that exited without klab asking it to (a fault's victim is
    /// not), with its exit status.
    pub fn died(&mut self) -> Option<(i32, ExitStatus)> {
        self.nodes
            .iter_mut()
            .filter(|n| !n.down)
            .find_map(|n| n.exited().map(|s| (n.id(), s)))
    }

    /// Exit status of the first node that died unexpectedly.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.died().map(|(_, s)| s)
    }

    /// An error naming how a node died, with the end of its log.
    pub fn death_report(&mut self, status: Option<ExitStatus>) -> anyhow::Error {
        let node = self
            .died()
            .and_then(|(id, _)| self.node(id).ok())
            .or(self.nodes.first());
        match node {
            Some(n) => n.death_report(status),
            None => anyhow!("the broker is gone"),
        }
    }

    pub fn node(&self, id: i32) -> Result<&Node> {
        self.nodes
            .iter()
            .find(|n| n.id() == id)
            .ok_or_else(|| anyhow!("no broker {id} in a cluster of {}", self.nodes.len()))
    }

    fn node_mut(&mut self, id: i32) -> Result<&mut Node> {
        let n = self.nodes.len();
        self.nodes
            .iter_mut()
            .find(|x| x.id() == id)
            .ok_or_else(|| anyhow!("no broker {id} in a cluster of {n}"))
    }

    fn launch_all(&mut self) -> Result<()> {
        let cfg = self.opts.config.clone();
        // Storage first, every node at once: formatting is a JVM start
        // each, and three of them one after another was most of a
        // cluster's start-up.
        let (java, kafka, id) = (&self.java, &self.opts.kafka, &self.cluster_id);
        let prepared: Result<()> = std::thread::scope(|s| {
            let jobs: Vec<_> = self
                .nodes
                .iter_mut()
                .map(|n| s.spawn(|| n.prepare(java, kafka, &cfg, id).map(drop)))
                .collect();
            jobs.into_iter().try_for_each(|j| {
                j.join()
                    .unwrap_or_else(|_| Err(anyhow!("formatting storage panicked")))
            })
        });
        prepared?;
        for i in 0..self.nodes.len() {
            let (java, kafka, id) = (&self.java, &self.opts.kafka, &self.cluster_id);
            if let Err(e) = self.nodes[i].launch(java, kafka, &cfg, id) {
                self.kill_all();
                return Err(e);
            }
        }
        let admin = Admin::connect(&self.bootstrap())?;
        let want = self.nodes.len();
        let deadline = Instant::now() + self.opts.start_timeout;
        let waited = admin.wait_brokers(want, deadline, || match self.died() {
            Some((id, s)) => Err(anyhow!("broker {id} exited with {s}")),
            None if crate::cancel::interrupted() => Err(anyhow!("interrupted")),
            // A full disk does not always end the JVM: say so at once
            // rather than after the start timeout.
            None => match self.nodes.iter().find_map(Node::disk_full) {
                Some(full) => Err(anyhow!(full)),
                None => Ok(()),
            },
        });
        if let Err(e) = waited {
            let status = self.died();
            self.kill_all();
            if crate::cancel::interrupted() {
                return Err(anyhow::Error::new(crate::error::Interrupted));
            }
            if let Some(full) = self.nodes.iter().find_map(Node::disk_full) {
                return Err(anyhow!("the broker could not start: {full}"));
            }
            let report = match status.and_then(|(id, s)| Some((self.node(id).ok()?, s))) {
                Some((n, s)) => n.death_report(Some(s)),
                None => self
                    .nodes
                    .first()
                    .map(|n| n.death_report(None))
                    .unwrap_or_else(|| anyhow!("no broker")),
            };
            return Err(report.context(format!(
                "the broker did not become ready within {}s ({e})",
                self.opts.start_timeout.as_secs()
            )));
        }
        self.admin = Some(admin);
        self.dynamic.clear();
        self.refresh_effective()?;
        self.check_effective(&cfg, "StaticBroker")?;
        Ok(())
    }

    /// The node id and GC log of every node that is not down.
    fn live_gc_logs(&self) -> Vec<(i32, PathBuf)> {
        let live = self.nodes.iter().filter(|n| !n.down);
        live.map(|n| (n.id(), n.gc_log_path())).collect()
    }

    /// Reads every node's settings back, plus each JVM's heap from its GC
    /// log.
    fn refresh_effective(&mut self) -> Result<()> {
        for (id, gc) in self.live_gc_logs() {
            let mut eff = self.admin()?.describe_broker(id)?;
            // The GC log is written at JVM start; wait briefly for it.
            let deadline = Instant::now() + Duration::from_secs(10);
            let heap = loop {
                if let Some(h) = heap_from_gc_log(&gc) {
                    break Some(h);
                }
                if Instant::now() >= deadline {
                    break None;
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            eff.insert(
                "heap".into(),
                EffectiveValue {
                    value: heap.map(|h| h.jvm()),
                    source: "jvm".into(),
                },
            );
            self.effective.insert(id, eff);
        }
        Ok(())
    }

    /// Fails when a requested setting is not what a node reports.
    fn check_effective(&self, want: &BrokerConfig, expected_source: &str) -> Result<()> {
        for n in self.nodes.iter().filter(|n| !n.down) {
            let Some(eff) = self.effective.get(&n.id()) else {
                continue;
            };
            let problems = mismatches(want, eff, expected_source);
            if !problems.is_empty() {
                bail!(
                    "the broker did not take these settings: {} (see {})",
                    problems.join("; "),
                    n.log_path().display()
                );
            }
        }
        Ok(())
    }

    /// Applies dynamic settings without a restart to every node (see
    /// `broker::admin`), in steps Kafka accepts, and checks each reports them.
    pub fn set_dynamic(&mut self, changes: &BTreeMap<String, String>) -> Result<()> {
        if let (Some(now), Some(want)) = (
            self.pool_size("num.io.threads"),
            changes
                .get("num.io.threads")
                .and_then(|v| v.parse::<usize>().ok()),
        ) && want < now
        {
            // Marked before the call: a failed change may have shrunk the
            // pools part of the way.
            self.handlers_shrunk_at = Some(Instant::now());
        }
        let mut result = Ok(());
        let mut dynamic = self.dynamic.clone();
        for (id, gc_log) in self.live_gc_logs() {
            let admin = self.admin()?;
            let describe = || -> Result<BTreeMap<String, EffectiveValue>> {
                let mut eff = admin.describe_broker(id)?;
                eff.insert(
                    "heap".into(),
                    EffectiveValue {
                        value: heap_from_gc_log(&gc_log).map(|h| h.jvm()),
                        source: "jvm".into(),
                    },
                );
                Ok(eff)
            };
            let current = self.effective.get(&id).cloned().unwrap_or_default();
            // Every node starts from the same dynamic set.
            let mut mine = self.dynamic.clone();
            match dynamic::apply(admin, id, &mut mine, &current, changes, &describe) {
                Ok(eff) => {
                    self.effective.insert(id, eff);
                    dynamic = mine;
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.dynamic = dynamic;
        if result.is_err() {
            let _ = self.refresh_effective();
        }
        result
    }

    /// Waits (up to `timeout`) until no partition directory of `topic` is
    /// left in any node's log directory: Kafka deletes a topic's files
    /// shortly after the topic, and a measurement should not share the disk
    /// with that cleanup.
    pub fn wait_topic_files_gone(&self, topic: &str, timeout: Duration) -> bool {
        let prefix = format!("{topic}-");
        let dirs: Vec<PathBuf> = self.nodes.iter().map(Node::data_dir).collect();
        let deadline = Instant::now() + timeout;
        loop {
            let left = dirs.iter().any(|d| {
                std::fs::read_dir(d)
                    .map(|rd| {
                        rd.flatten().any(|e| {
                            let name = e.file_name().to_string_lossy().to_string();
                            if !name.starts_with(&prefix) {
                                return false;
                            }
                            // A node that restarted may set its copy aside as
                            // `<partition>.<id>-stray`, which Kafka keeps for an
                            // operator to look at. The data is klab's own, of
                            // a topic already deleted: remove it.
                            if name.ends_with("-stray") {
                                return std::fs::remove_dir_all(e.path()).is_err();
                            }
                            true
                        })
                    })
                    .unwrap_or(false)
            });
            if !left {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// True while every node's JVM runs (false after a failed start or a
    /// stop).
    pub fn is_running(&mut self) -> bool {
        !self.nodes.is_empty() && self.nodes.iter_mut().all(Node::is_running)
    }

    /// Stops the cluster and starts it again with `config` (same storage):
    /// one node at a time when there are several, each waiting until no
    /// partition is under-replicated before the next.
    ///
    /// KRaft keeps dynamic settings in the cluster's metadata log, so they
    /// would outlive the restart and hide the new static config: klab clears
    /// the dynamic settings it made before it restarts.
    pub fn restart(&mut self, config: &BrokerConfig) -> Result<()> {
        if !self.dynamic.is_empty() && self.is_running() {
            self.clear_dynamic()?;
        }
        if self.nodes.len() == 1 || !self.is_running() {
            self.stop()?;
            self.opts.config = config.clone();
            self.launch_all()?;
            self.announce("restarted", None);
            return Ok(());
        }
        self.opts.config = config.clone();
        let ids: Vec<i32> = self.nodes.iter().map(Node::id).collect();
        for id in ids {
            self.let_removed_handlers_exit();
            let grace = self.opts.stop_grace;
            self.node_mut(id)?.stop(grace)?;
            self.start_node(id)?;
            self.wait_fully_replicated(Duration::from_secs(120))?;
        }
        self.wait_preferred_leaders(Duration::from_secs(30));
        self.dynamic.clear();
        self.refresh_effective()?;
        self.check_effective(config, "StaticBroker")?;
        self.announce("restarted", None);
        Ok(())
    }

    /// Waits until no partition of any topic has fewer in-sync replicas
    /// than replicas.
    pub fn wait_fully_replicated(&self, timeout: Duration) -> Result<()> {
        let admin = self.admin()?;
        let deadline = Instant::now() + timeout;
        loop {
            match admin.under_replicated(Duration::from_secs(2)) {
                Ok(0) => return Ok(()),
                Ok(n) if Instant::now() >= deadline => {
                    bail!(
                        "{n} partition(s) still under-replicated after {}s",
                        timeout.as_secs()
                    )
                }
                Err(e) if Instant::now() >= deadline => return Err(e),
                _ => {}
            }
            if crate::cancel::interrupted() {
                return Err(crate::error::Interrupted.into());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits (at most `timeout`) until every partition is led by its
    /// preferred replica again, so the step after a rolling restart does
    /// not measure two brokers leading what three should. The controller
    /// moves leadership back by itself (`leader.imbalance.check.interval.seconds`,
    /// which local clusters set to 5 s); past the deadline klab goes on and
    /// says so.
    pub(super) fn wait_preferred_leaders(&self, timeout: Duration) {
        let Ok(admin) = self.admin() else { return };
        let deadline = Instant::now() + timeout;
        loop {
            match admin.off_preferred_leader(Duration::from_secs(2)) {
                Ok(0) => return,
                Ok(n) if Instant::now() >= deadline => {
                    tracing::warn!(
                        "{n} partition(s) still led by another than their preferred replica {}s after the rolling restart",
                        timeout.as_secs()
                    );
                    return;
                }
                _ if crate::cancel::interrupted() => return,
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Removes every per-broker dynamic setting (legacy AlterConfigs with
    /// an empty set) on every node and waits until none is reported.
    fn clear_dynamic(&mut self) -> Result<()> {
        let back = crate::broker::knobs::pool_fallbacks(
            &self.opts.config,
            self.dynamic.keys().map(String::as_str),
        );
        if !back.is_empty() {
            self.set_dynamic(&back)?;
        }
        let ids: Vec<i32> = self
            .nodes
            .iter()
            .filter(|n| !n.down)
            .map(Node::id)
            .collect();
        for id in ids {
            let eff =
                crate::broker::dynamic::clear(self.admin()?, id).context("before a restart")?;
            self.effective.insert(id, eff);
        }
        self.dynamic.clear();
        Ok(())
    }

    /// A thread-pool size as the first node last reported it.
    fn pool_size(&self, key: &str) -> Option<usize> {
        self.effective()
            .get(key)
            .and_then(|v| v.value.as_deref())
            .and_then(|v| v.parse().ok())
    }

    /// Works around a shutdown race in Kafka (seen with 4.1.2). Kafka stops
    /// a request handler pool by queueing one "shut down" request per
    /// handler it still counts. A handler that a shrink of `num.io.threads`
    /// removed keeps polling that queue for up to 300 ms; if it takes one of
    /// those requests, a remaining handler never gets its own and the
    /// shutdown hook waits for it forever: the JVM seems to ignore SIGTERM.
    /// klab hit this when a lab change shrank the pools and a failure
    /// stopped the broker 115 ms later. So a stop soon after a shrink first
    /// waits until no JVM runs more pool threads than the config asks for
    /// (counted in /proc), and at most until 2 s after the shrink.
    fn let_removed_handlers_exit(&self) {
        let Some(at) = self.handlers_shrunk_at else {
            return;
        };
        let deadline = at + Duration::from_secs(2);
        let (Some(io), Some(net)) = (
            self.pool_size("num.io.threads"),
            self.pool_size("num.network.threads"),
        ) else {
            return;
        };
        while Instant::now() < deadline {
            let settled = self.nodes.iter().all(|n| {
                n.pool_threads()
                    .is_none_or(|have| have <= n.expected_pool_threads(io, net))
            });
            if settled {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::debug!("request handler pools not settled 2s after a shrink; stopping anyway");
    }

    /// Stops every node: SIGTERM to all at once, then SIGKILL to those
    /// still running after the grace period. Idempotent; reports the worst.
    pub fn stop(&mut self) -> Result<Stopped> {
        self.admin = None;
        if self.nodes.iter_mut().any(Node::is_running) {
            self.let_removed_handlers_exit();
        }
        self.handlers_shrunk_at = None;
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].is_running())
            .collect();
        for i in &running {
            self.nodes[*i].terminate();
        }
        let deadline = Instant::now() + self.opts.stop_grace;
        let mut worst = Stopped::NotRunning;
        for n in self.nodes.iter_mut() {
            match n.reap(deadline)? {
                Stopped::Killed => worst = Stopped::Killed,
                Stopped::Clean if worst == Stopped::NotRunning => worst = Stopped::Clean,
                _ => {}
            }
        }
        Ok(worst)
    }

    fn kill_all(&mut self) {
        for n in self.nodes.iter_mut() {
            n.kill_now();
        }
    }

    /// CPU seconds the brokers' JIT compiler threads have used so far (from
    /// /proc; None where it cannot be read).
    pub fn jit_cpu_s(&self) -> Option<f64> {
        let per_node: Vec<f64> = self
            .nodes
            .iter()
            .filter_map(|n| crate::broker::node::jit_cpu_s(n.pid()?))
            .collect();
        (!per_node.is_empty()).then(|| per_node.iter().sum())
    }

    /// Sends a signal to the first node's JVM (tests use SIGSTOP/SIGCONT/SIGKILL).
    pub fn signal(&self, sig: i32) -> Result<()> {
        self.nodes
            .first()
            .ok_or_else(|| anyhow!("no broker"))?
            .signal(sig)
    }
}

impl Reconfigure for LocalBroker {
    fn config(&self) -> BrokerConfig {
        LocalBroker::config(self)
    }
    fn is_running(&mut self) -> bool {
        LocalBroker::is_running(self)
    }
    fn restart(&mut self, cfg: &BrokerConfig) -> Result<()> {
        LocalBroker::restart(self, cfg).map_err(refused_start)
    }
    fn set_dynamic(&mut self, changes: &BTreeMap<String, String>) -> Result<()> {
        LocalBroker::set_dynamic(self, changes)
    }
}

impl Drop for LocalBroker {
    fn drop(&mut self) {
        // Shorter grace: we may be unwinding from a panic.
        self.opts.stop_grace = self.opts.stop_grace.min(Duration::from_secs(10));
        let _ = self.stop();
        // The nodes remove their data when they drop.
    }
}
