//! What a lab changes in the workload (`[workload]`, `[quick]`): a patch
//! over its parent's, resolved along the `extends` chain and then applied
//! to the defaults; the rate may be a share of the calibrated capacity.

use crate::model::Acks;
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
    /// lab 01 with `max` first.
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

/// A workload whose fields may still be unset (patches are laid on top of
/// one another along the `extends` chain).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct WorkloadPatch {
    pub rate: Option<RateSpec>,
    /// `Some(Some(n))` sets a message count, `Some(None)` is never produced
    /// by the parser; duration and messages replace each other.
    pub messages: Option<u64>,
    pub duration: Option<Duration>,
    pub warmup: Option<Duration>,
    pub message_bytes: Option<usize>,
    pub partitions: Option<i32>,
    pub acks: Option<Acks>,
    pub producers: Option<u32>,
    pub replication_factor: Option<u32>,
    pub min_insync_replicas: Option<u32>,
    /// The lab's own `[[faults]]` replace those of the lab it extends.
    pub faults: Option<Vec<crate::model::FaultSpec>>,
    pub producer: BTreeMap<String, String>,
    pub payload: Option<crate::model::Payload>,
    pub consumers: Option<u32>,
    pub processing: Option<Duration>,
    pub consumer: BTreeMap<String, String>,
}

impl WorkloadPatch {
    /// `self` with `over` laid on top.
    pub fn overlay(&self, over: &WorkloadPatch) -> WorkloadPatch {
        let mut out = self.clone();
        if over.rate.is_some() {
            out.rate = over.rate;
        }
        if over.messages.is_some() {
            out.messages = over.messages;
            out.duration = None;
        }
        if over.duration.is_some() {
            out.duration = over.duration;
            out.messages = None;
        }
        if over.warmup.is_some() {
            out.warmup = over.warmup;
        }
        if over.message_bytes.is_some() {
            out.message_bytes = over.message_bytes;
        }
        if over.partitions.is_some() {
            out.partitions = over.partitions;
        }
        if over.acks.is_some() {
            out.acks = over.acks;
        }
        if over.producers.is_some() {
            out.producers = over.producers;
        }
        if over.replication_factor.is_some() {
            out.replication_factor = over.replication_factor;
        }
        if over.min_insync_replicas.is_some() {
            out.min_insync_replicas = over.min_insync_replicas;
        }
        if over.faults.is_some() {
            out.faults = over.faults.clone();
        }
        for (k, v) in &over.producer {
            out.producer.insert(k.clone(), v.clone());
        }
        if over.payload.is_some() {
            out.payload = over.payload;
        }
        if over.consumers.is_some() {
            out.consumers = over.consumers;
        }
        if over.processing.is_some() {
            out.processing = over.processing;
        }
        for (k, v) in &over.consumer {
            out.consumer.insert(k.clone(), v.clone());
        }
        out
    }

    /// Settings of `over` that differ from `self`, as `key=value` strings.
    pub fn changes(&self, over: &WorkloadPatch) -> Vec<String> {
        let mut out = Vec::new();
        let after = self.overlay(over);
        if after.rate != self.rate
            && let Some(r) = after.rate
        {
            out.push(format!("rate={r}"));
        }
        if after.message_bytes != self.message_bytes
            && let Some(b) = after.message_bytes
        {
            out.push(format!("message_bytes={b}"));
        }
        if after.partitions != self.partitions
            && let Some(p) = after.partitions
        {
            out.push(format!("partitions={p}"));
        }
        if after.acks != self.acks
            && let Some(a) = after.acks
        {
            out.push(format!("acks={a}"));
        }
        if after.producers != self.producers
            && let Some(n) = after.producers
        {
            out.push(format!("producers={n}"));
        }
        if after.replication_factor != self.replication_factor
            && let Some(n) = after.replication_factor
        {
            out.push(format!("replication_factor={n}"));
        }
        if after.min_insync_replicas != self.min_insync_replicas
            && let Some(n) = after.min_insync_replicas
        {
            out.push(format!("min.insync.replicas={n}"));
        }
        for (k, v) in &over.producer {
            if self.producer.get(k) != Some(v) {
                out.push(format!("{k}={v}"));
            }
        }
        if after.payload != self.payload
            && let Some(p) = after.payload
        {
            out.push(format!("payload={p}"));
        }
        if after.consumers != self.consumers
            && let Some(n) = after.consumers
        {
            out.push(format!("consumers={n}"));
        }
        if after.processing != self.processing
            && let Some(d) = after.processing
        {
            out.push(format!("processing={}", crate::units::format_duration(d)));
        }
        for (k, v) in &over.consumer {
            if self.consumer.get(k) != Some(v) {
                out.push(format!("consumer.{k}={v}"));
            }
        }
        if after.faults != self.faults
            && let Some(fs) = &after.faults
        {
            out.extend(fs.iter().map(|f| format!("fault: {f}")));
        }
        out
    }
}
