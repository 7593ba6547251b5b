//! A lab's fix as data: the broker settings, client overrides and topic
//! changes laid over its degraded setup (parsed in [`super::file`]).

use crate::model::{Acks, BrokerConfig};
use std::collections::BTreeMap;

/// Parsed fix: laid over a lab's degraded broker and workload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fix {
    pub broker: BrokerConfig,
    pub producer: BTreeMap<String, String>,
    pub acks: Option<Acks>,
    pub min_insync_replicas: Option<u32>,
    pub partitions: Option<i32>,
    pub consumers: Option<u32>,
    pub consumer: BTreeMap<String, String>,
}

impl Fix {
    pub fn overlay(&self, over: &Fix) -> Fix {
        let mut producer = self.producer.clone();
        for (k, v) in &over.producer {
            producer.insert(k.clone(), v.clone());
        }
        let mut consumer = self.consumer.clone();
        for (k, v) in &over.consumer {
            consumer.insert(k.clone(), v.clone());
        }
        Fix {
            broker: self.broker.overlay(&over.broker),
            producer,
            acks: over.acks.or(self.acks),
            min_insync_replicas: over.min_insync_replicas.or(self.min_insync_replicas),
            partitions: over.partitions.or(self.partitions),
            consumers: over.consumers.or(self.consumers),
            consumer,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.broker.is_empty()
            && self.producer.is_empty()
            && self.acks.is_none()
            && self.min_insync_replicas.is_none()
            && self.partitions.is_none()
            && self.consumers.is_none()
            && self.consumer.is_empty()
    }

    /// `heap=1g num.io.threads=8 linger.ms=5 acks=all`.
    pub fn lines(&self) -> Vec<String> {
        let mut l = self.broker.lines();
        l.extend(self.producer.iter().map(|(k, v)| format!("{k}={v}")));
        if let Some(a) = self.acks {
            l.push(format!("acks={a}"));
        }
        if let Some(n) = self.partitions {
            l.push(format!("partitions={n}"));
        }
        if let Some(n) = self.consumers {
            l.push(format!("consumers={n}"));
        }
        l.extend(
            self.consumer
                .iter()
                .map(|(k, v)| format!("consumer.{k}={v}")),
        );
        if let Some(n) = self.min_insync_replicas {
            l.push(format!("min.insync.replicas={n}"));
        }
        l
    }
}
