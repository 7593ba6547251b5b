//! The arguments of `klab broker`: render, exec (the broker image's
//! entrypoint, on Kubernetes one pod of the StatefulSet's quorum) and set.

use super::{KafkaArgs, parse_key_value};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct BrokerSetArgs {
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap: String,
    /// A dynamic broker setting in Kafka's own name, e.g. num.io.threads=4
    /// (repeatable). Thread pools move in steps Kafka accepts.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub set: Vec<(String, String)>,
    /// Then remove every per-broker dynamic setting, so the broker runs on
    /// its static config again. Kafka refuses (quietly) a thread pool that
    /// falls back by more than a factor of two: give the pools' static
    /// values with --set first.
    #[arg(long)]
    pub clear: bool,
}

#[derive(Args, Debug, Clone)]
pub struct NodeArgs {
    /// A single node's id (it is its own only voter).
    #[arg(long, default_value_t = 1, conflicts_with = "pod")]
    pub node_id: i32,
    /// Host clients are told to connect to (a single node).
    #[arg(
        long,
        value_name = "HOST",
        default_value = "127.0.0.1",
        conflicts_with = "pod"
    )]
    pub advertised_host: String,
    /// This node is pod NAME of the broker StatefulSet (`kafka-2`): its node
    /// id is the ordinal + 1, it is advertised as NAME.DOMAIN, and the
    /// voters are the first three pods (`kafka-0.DOMAIN`, ...).
    #[arg(long, value_name = "NAME", requires = "peer_domain")]
    pub pod: Option<String>,
    /// Pods in the StatefulSet (with --pod), 1 to 5.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "pod")]
    pub replicas: u32,
    /// The headless Service's domain the pods are reachable under (with
    /// --pod), e.g. kafka-headless.klab.svc.
    #[arg(long, value_name = "DOMAIN", requires = "pod")]
    pub peer_domain: Option<String>,
    #[arg(long, default_value_t = 9092)]
    pub broker_port: u16,
    #[arg(long, default_value_t = 9093)]
    pub controller_port: u16,
}

#[derive(Args, Debug)]
pub struct BrokerRenderArgs {
    /// A TOML broker config (`heap = "512m"` and a [properties] table); `-`
    /// reads stdin; default: $KLAB_BROKER_CONFIG.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub node: NodeArgs,
    #[arg(long, value_name = "DIR", default_value = "/var/lib/kafka/data")]
    pub data_dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct BrokerExecArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub node: NodeArgs,
    /// Kafka's log directory (formatted on first start).
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Where server.properties, the log4j2 config and gc.log go (default: $TMPDIR/klab-broker).
    #[arg(long, value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
}
