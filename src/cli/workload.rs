//! The workload flags every measuring command shares (`klab run`,
//! `klab capacity`, `klab produce`...).

use super::{
    flagify, parse_acks, parse_message_bytes, parse_messages, parse_nonzero_duration,
    parse_partitions, parse_producers, parse_rate, parse_replication,
};
use crate::model::{Acks, Payload, Workload, defaults, limits};
use crate::units::{parse_duration, parse_key_value};
use crate::usage;
use clap::Args;
use std::time::Duration;

#[derive(Args, Debug, Clone)]
pub struct WorkloadArgs {
    /// Open-loop target rate in records/s (record i is due at t0 + i/R;
    /// default 10000).
    #[arg(long, value_name = "R", allow_hyphen_values = true, value_parser = parse_rate, conflicts_with = "max")]
    pub rate: Option<f64>,
    /// Produce as fast as acknowledgements allow (bounded in-flight).
    #[arg(long)]
    pub max: bool,
    /// Stop after N measured records.
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = parse_messages, conflicts_with = "duration")]
    pub messages: Option<u64>,
    /// Stop after this long, e.g. 30s (default 10s).
    #[arg(long, value_name = "D", allow_hyphen_values = true, value_parser = parse_nonzero_duration)]
    pub duration: Option<Duration>,
    /// Warm-up before measuring: sent and checked, not counted (default 2s).
    #[arg(long, value_name = "D", allow_hyphen_values = true, value_parser = parse_duration)]
    pub warmup: Option<Duration>,
    /// Record size in bytes (64 of them are header and HMAC tag).
    #[arg(long, value_name = "B", default_value_t = defaults::MESSAGE_BYTES, allow_hyphen_values = true, value_parser = parse_message_bytes)]
    pub message_bytes: usize,
    /// Partitions of the topic.
    #[arg(long, value_name = "P", default_value_t = defaults::PARTITIONS, allow_hyphen_values = true, value_parser = parse_partitions)]
    pub partitions: i32,
    /// Topic to use (created when missing, and kept); default: a fresh topic per run, deleted after it.
    #[arg(long, value_name = "T")]
    pub topic: Option<String>,
    /// Producer acks: 0, 1 or all.
    #[arg(long, default_value = "all", value_parser = parse_acks)]
    pub acks: Acks,
    /// A librdkafka producer setting, e.g. linger.ms=5 (repeatable).
    #[arg(long = "producer-set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub producer_set: Vec<(String, String)>,
    /// Independent producer clients, each with its own connection, sharing
    /// the rate.
    #[arg(long, value_name = "N", default_value_t = defaults::PRODUCERS, allow_hyphen_values = true, value_parser = parse_producers)]
    pub producers: u32,
    /// Replicas per partition of the topic klab creates (default: the
    /// number of brokers, at most 3).
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = parse_replication)]
    pub replication_factor: Option<u32>,
    /// The topic's min.insync.replicas (default: the broker's).
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = parse_replication)]
    pub min_insync_replicas: Option<u32>,
    /// What the records' bodies hold: fixed (the same filler in every
    /// record of a producer) or json (a different event log line in each,
    /// compressible as real logs are).
    #[arg(long, value_name = "KIND", default_value = "fixed", value_parser = parse_payload)]
    pub payload: Payload,
    /// Consumer clients; each reads its share of the partitions (at most
    /// one per partition).
    #[arg(long, value_name = "N", default_value_t = defaults::CONSUMERS, allow_hyphen_values = true, value_parser = parse_consumers)]
    pub consumers: u32,
    /// Simulated work per record in each consumer, e.g. 200us (it waits,
    /// so it costs no CPU); default 0.
    #[arg(long, value_name = "D", allow_hyphen_values = true, value_parser = parse_duration)]
    pub processing: Option<Duration>,
    /// A librdkafka consumer setting, e.g. fetch.min.bytes=65536 (repeatable).
    #[arg(long = "consumer-set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub consumer_set: Vec<(String, String)>,
}

pub fn parse_payload(s: &str) -> Result<Payload, String> {
    s.parse()
}

pub fn parse_consumers(s: &str) -> Result<u32, String> {
    super::parse_count(s, limits::MAX_CONSUMERS)
}

impl WorkloadArgs {
    pub fn workload(&self) -> anyhow::Result<Workload> {
        let rate = if self.max {
            None
        } else {
            Some(self.rate.unwrap_or(defaults::RATE))
        };
        let duration = match (self.messages, self.duration) {
            (None, None) => Some(defaults::DURATION),
            (_, d) => d,
        };
        let w = Workload {
            rate,
            messages: self.messages,
            duration,
            warmup: self.warmup.unwrap_or(defaults::WARMUP),
            message_bytes: self.message_bytes,
            partitions: self.partitions,
            acks: self.acks,
            producer: self.producer_set.iter().cloned().collect(),
            topic: self.topic.clone(),
            producers: self.producers,
            replication_factor: self.replication_factor,
            min_insync_replicas: self.min_insync_replicas,
            faults: Vec::new(),
            payload: self.payload,
            consumers: self.consumers,
            processing: self.processing.unwrap_or_default(),
            consumer: self.consumer_set.iter().cloned().collect(),
        };
        if let Some(t) = &w.topic {
            crate::model::check_topic_name(t).map_err(|e| usage!("--topic: {e}"))?;
        }
        w.validate().map_err(|e| usage!("{}", flagify(&e)))?;
        for (flag, set) in [
            ("--producer-set", &w.producer),
            ("--consumer-set", &w.consumer),
        ] {
            for (k, v) in set {
                crate::load::check_client_setting(k, v)
                    .map_err(|e| usage!("{flag} {k}={v}: {e}"))?;
            }
        }
        Ok(w)
    }
}
