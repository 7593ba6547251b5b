//! The workload flags every measuring command shares (`klab run`,
//! `klab capacity`, `klab produce`...).

use super::flagify;
use crate::model::Workload;
use crate::model::settings::{RateSpec, WorkloadFlags, WorkloadPatch};
use crate::units::parse_key_value;
use crate::usage;
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct WorkloadArgs {
    /// The workload's settings, defined once with the lab files' (see
    /// `model::settings`): `--rate`, `--duration`, `--partitions`, ...
    #[command(flatten)]
    pub settings: WorkloadFlags,
    /// Produce as fast as acknowledgements allow (bounded in-flight): the
    /// same as --rate max.
    #[arg(long, conflicts_with = "rate")]
    pub max: bool,
    /// Topic to use (created when missing, and kept); default: a fresh topic per run, deleted after it.
    #[arg(long, value_name = "T")]
    pub topic: Option<String>,
    /// A librdkafka producer setting, e.g. linger.ms=5 (repeatable).
    #[arg(long = "producer-set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub producer_set: Vec<(String, String)>,
    /// A librdkafka consumer setting, e.g. fetch.min.bytes=65536 (repeatable).
    #[arg(long = "consumer-set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub consumer_set: Vec<(String, String)>,
}

impl WorkloadArgs {
    /// What the flags set, as a patch (`--max` as `--rate max`, the client
    /// settings beside); each value checked as a lab file's would be.
    pub fn patch(&self) -> WorkloadPatch {
        let mut p = self.settings.patch();
        if self.max {
            p.rate = Some(RateSpec::Max);
        }
        p.producer = self.producer_set.iter().cloned().collect();
        p.consumer = self.consumer_set.iter().cloned().collect();
        p
    }

    /// The workload the flags describe, over the defaults.
    pub fn workload(&self) -> anyhow::Result<Workload> {
        let p = self.patch();
        if let Some(RateSpec::OfCapacity(_)) = p.rate {
            return Err(usage!(
                "--rate: a share of capacity (NN%) needs a lab's calibration; give records/s or max"
            ));
        }
        let mut w = p.resolve(None).map_err(|e| usage!("{}", flagify(&e)))?;
        w.topic = self.topic.clone();
        if let Some(t) = &w.topic {
            crate::model::check_topic_name(t).map_err(|e| usage!("--topic: {e}"))?;
        }
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
