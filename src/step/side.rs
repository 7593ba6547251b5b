//! The broker side of a step: what a measurement may ask of what it
//! measures while a load runs, in one interface. klab's own local cluster
//! offers all of it (processes, their CPU and JIT, faults, a node that
//! dies); a broker someone else runs offers only its address and the
//! config it reported. What a side cannot do, the step does not ask for,
//! and a fault it cannot run is refused before anything starts.

use crate::broker::admin::Admin;
use crate::broker::local::LocalBroker;
use crate::model::{EffectiveValue, FaultSpec, FaultTarget, GcSummary, TargetKind};
use crate::step::faults::FaultHost;
use crate::usage;
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Facts about the broker for a result's `environment`.
#[derive(Debug, Clone, Default)]
pub struct Versions {
    pub kafka: Option<String>,
    pub java: Option<String>,
    pub kafka_dir: Option<PathBuf>,
}

pub trait BrokerSide {
    /// What it is, for `broker.target`.
    fn kind(&self) -> TargetKind;
    /// Where klab's own Admin client connects (directly, never through a
    /// link a fault could cut).
    fn bootstrap(&self) -> String;
    /// Where the producers and consumers connect: through the links when
    /// the target has a network.
    fn client_bootstrap(&self) -> String {
        self.bootstrap()
    }
    /// Sets the target's links for a step as the workload's `network` asks
    /// (None: no added latency). Only a local cluster started with a
    /// network has links to set.
    fn set_network(&mut self, net: Option<&crate::model::Network>) -> Result<()> {
        match net {
            None => Ok(()),
            Some(_) => Err(usage!(
                "a network (--net, [network]) needs brokers klab starts itself on this machine; {} is not one",
                self.bootstrap()
            )),
        }
    }
    /// How many brokers the cluster has (a step's topic is replicated by
    /// it).
    fn brokers(&self, admin: &Admin) -> Result<usize>;
    /// The broker's config as it reported it.
    fn effective(&self) -> BTreeMap<String, EffectiveValue>;
    fn versions(&self) -> Versions {
        Versions::default()
    }
    /// The broker processes whose CPU a step counts (none when klab cannot
    /// see them).
    fn pids(&self) -> Vec<u32> {
        Vec::new()
    }
    /// The network's proxy process, whose CPU a step counts apart.
    fn proxy_pid(&self) -> Option<u32> {
        None
    }
    /// A node that died by itself (not by a fault): the step ends with it.
    fn died(&mut self) -> Option<anyhow::Error> {
        None
    }
    /// A node of a cluster that died by itself while the others carry on:
    /// it is marked down (started again with the heal after the step, which
    /// goes on) and the sentence for the result comes back.
    fn lost_node(&mut self) -> Option<String> {
        None
    }
    /// CPU seconds the brokers' JIT compilers have used so far (None:
    /// klab cannot see them).
    fn jit_cpu_s(&self) -> Option<f64> {
        None
    }
    /// Refuses (exit 2) a fault this side cannot run, before anything
    /// starts.
    fn check_faults(&self, faults: &[FaultSpec]) -> Result<()>;
    /// Where faults act (None: this side runs none; [`Self::check_faults`]
    /// refused them).
    fn fault_host(&mut self) -> Option<&mut dyn FaultHost> {
        None
    }
    /// Brings every node back after a step's faults.
    fn heal(&mut self) -> Result<()> {
        Ok(())
    }
    /// Garbage collection in the window (Unix ms), from the GC logs.
    fn gc(&self, from_ms: u64, to_ms: u64) -> Option<GcSummary> {
        let _ = (from_ms, to_ms);
        None
    }
    /// After a deleted topic: wait until its files are gone (a local
    /// broker frees the disk before the next step).
    fn topic_deleted(&mut self, topic: &str) {
        let _ = topic;
    }
}

/// A broker klab only connects to: its address and the config it read.
pub struct External {
    pub bootstrap: String,
    pub effective: BTreeMap<String, EffectiveValue>,
}

impl BrokerSide for External {
    fn kind(&self) -> TargetKind {
        TargetKind::Bootstrap
    }
    fn bootstrap(&self) -> String {
        self.bootstrap.clone()
    }
    fn brokers(&self, admin: &Admin) -> Result<usize> {
        Ok(admin.broker_ids(Duration::from_secs(10))?.len())
    }
    fn effective(&self) -> BTreeMap<String, EffectiveValue> {
        self.effective.clone()
    }
    fn check_faults(&self, faults: &[FaultSpec]) -> Result<()> {
        match faults.first() {
            None => Ok(()),
            Some(_) => Err(usage!(
                "--fault: faults need brokers klab started itself; it does not own the one at {}",
                self.bootstrap
            )),
        }
    }
}

impl BrokerSide for LocalBroker {
    fn kind(&self) -> TargetKind {
        TargetKind::Local
    }
    fn bootstrap(&self) -> String {
        LocalBroker::bootstrap(self)
    }
    fn client_bootstrap(&self) -> String {
        LocalBroker::client_bootstrap(self)
    }
    fn set_network(&mut self, net: Option<&crate::model::Network>) -> Result<()> {
        LocalBroker::set_network(self, net)
    }
    fn brokers(&self, _admin: &Admin) -> Result<usize> {
        Ok(self.size() as usize)
    }
    fn effective(&self) -> BTreeMap<String, EffectiveValue> {
        LocalBroker::effective(self).clone()
    }
    fn versions(&self) -> Versions {
        Versions {
            kafka: Some(self.kafka().version.clone()),
            java: Some(self.java_version().to_string()),
            kafka_dir: Some(self.kafka().dir.clone()),
        }
    }
    fn pids(&self) -> Vec<u32> {
        self.nodes().iter().filter_map(|n| n.pid()).collect()
    }
    fn proxy_pid(&self) -> Option<u32> {
        self.network().map(|n| n.pid())
    }
    fn died(&mut self) -> Option<anyhow::Error> {
        // The proxies carry every byte of a cluster with a network: without
        // them nothing moves, as if every node had died.
        if let Some(Err(e)) = self.network().map(|n| n.check()) {
            return Some(e.context("the network's proxy (Toxiproxy) stopped"));
        }
        let status = self.exited()?;
        Some(self.death_report(Some(status)))
    }
    fn lost_node(&mut self) -> Option<String> {
        let (id, status) = LocalBroker::died(self)?;
        if !self.survives_loss_of(id) {
            return None;
        }
        let note = format!(
            "broker {id} died during the step ({status}), not by a klab fault; the other brokers carried on and it was started again after the step"
        );
        tracing::warn!("{note}");
        self.note_down(id);
        Some(note)
    }
    fn jit_cpu_s(&self) -> Option<f64> {
        LocalBroker::jit_cpu_s(self)
    }
    /// Faults may only name brokers the cluster has.
    fn check_faults(&self, faults: &[FaultSpec]) -> Result<()> {
        let brokers = self.size();
        for (i, f) in faults.iter().enumerate() {
            if let FaultTarget::Node(n) = f.broker
                && n > brokers
            {
                return Err(usage!(
                    "--fault (number {}) broker: {n} of {brokers}; the cluster has brokers 1..={brokers} (--brokers)",
                    i + 1
                ));
            }
        }
        Ok(())
    }
    fn fault_host(&mut self) -> Option<&mut dyn FaultHost> {
        Some(self)
    }
    fn heal(&mut self) -> Result<()> {
        LocalBroker::heal(self)
    }
    fn gc(&self, from_ms: u64, to_ms: u64) -> Option<GcSummary> {
        let per_node: Vec<GcSummary> = self
            .gc_log_paths()
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .map(|log| crate::broker::gc::summary(&log, from_ms, to_ms))
            .collect();
        crate::broker::gc::combine(&per_node)
    }
    fn topic_deleted(&mut self, topic: &str) {
        if !self.wait_topic_files_gone(topic, Duration::from_secs(60)) {
            tracing::warn!("the files of topic {topic} were still there after 60s");
        }
    }
}
