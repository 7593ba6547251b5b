//! The arguments of `klab lab`: list, show, run, check and rehearse, and the
//! session flags they share.

use super::kit::HandInArgs;
use super::{
    BrokerArgs, KafkaArgs, OutputArgs, UiArgs, parse_brokers, parse_budget, parse_nonzero_duration,
};
use super::{parse_rounds, parse_share};
use crate::units::parse_key_value;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Subcommand, Debug)]
pub enum LabCommand {
    /// List the labs.
    List(LabsDirArgs),
    /// Show a lab's effective broker config (and where each value comes
    /// from), its fix, workload and expectations.
    Show(LabShowArgs),
    /// Run a lab: measure lab 01 (reference), the degraded broker, then the
    /// fixed one, and compare.
    Run(LabRunArgs),
    /// Measure your fix of a lab (my-fix.toml in the lab folder, and/or
    /// flags) against the lab's expectations.
    Check(LabCheckArgs),
    /// Run labs again and again with their own fix (the night before a
    /// class): how often each showed its lesson, the spread of its figures,
    /// and which are not dependable on this machine.
    Rehearse(LabRehearseArgs),
}

#[derive(Args, Debug)]
pub struct LabRehearseArgs {
    /// Tracks (broker, durability, client) or labs (04, durability/03).
    #[arg(required = true, value_name = "TRACK|LAB")]
    pub targets: Vec<String>,
    /// Rounds: every lab is run this many times (a campaign continued
    /// with --into runs only the rounds it lacks).
    #[arg(long, default_value_t = 10, value_parser = parse_rounds)]
    pub runs: usize,
    /// The share of rounds a lab must show its lesson in to be dependable.
    #[arg(long, default_value = "90%", value_parser = parse_share)]
    pub need: f64,
    /// Continue the campaign in DIR (rounds already there count), or start
    /// one there; without it, a new folder under --results.
    #[arg(long, value_name = "DIR")]
    pub into: Option<PathBuf>,
    #[command(flatten)]
    pub session: SessionArgs,
}

#[derive(Args, Debug, Clone, Default)]
pub struct LabsDirArgs {
    /// Directory of labs (default: $KLAB_LABS_DIR, else ./labs, else
    /// $KLAB_DEFAULT_LABS_DIR, else the labs installed beside klab).
    #[arg(long, value_name = "DIR")]
    pub labs: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct LabShowArgs {
    /// Lab number (03), id (03-one-io-thread) or path.
    pub lab: String,
    #[command(flatten)]
    pub dir: LabsDirArgs,
}

#[derive(Args, Debug, Clone)]
pub struct SessionArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub dir: LabsDirArgs,
    /// Shorter measurements (the whole demo in under 10 minutes on 2 cores).
    #[arg(long)]
    pub quick: bool,
    #[command(flatten)]
    pub out: OutputArgs,
    /// Run the labs on a local cluster of N brokers instead of their own
    /// `[cluster] brokers`.
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = parse_brokers)]
    pub brokers: Option<u32>,
    /// Measure this machine's capacity again instead of reusing the
    /// calibration an earlier run kept (local brokers only; see
    /// `calibration.json` in the run folder).
    #[arg(long)]
    pub recalibrate: bool,
    #[command(flatten)]
    pub ui: UiArgs,
}

#[derive(Args, Debug, Clone)]
pub struct FixArgs {
    /// How to fix each lab: with the tuner, or with the lab's own [fix].
    #[arg(long = "fix-with", value_enum, default_value = "tuner")]
    pub fix_with: FixWith,
    /// Tuner trials per lab (default: 2 with --quick, 4 without in the demo;
    /// 3 / 6 for one lab).
    #[arg(long, value_name = "K", value_parser = parse_budget)]
    pub budget: Option<usize>,
    /// The tail latency the tuner's score is measured against.
    #[arg(long = "slo-p99", value_name = "D", default_value = "100ms", value_parser = parse_nonzero_duration)]
    pub slo_p99: Duration,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FixWith {
    Tuner,
    Lab,
}

#[derive(Args, Debug)]
pub struct LabRunArgs {
    /// Lab number (03), id (03-one-io-thread) or path.
    pub lab: String,
    #[command(flatten)]
    pub fix: FixArgs,
    #[command(flatten)]
    pub session: SessionArgs,
    #[command(flatten)]
    pub hand_in: HandInArgs,
}

#[derive(Args, Debug)]
pub struct LabCheckArgs {
    /// Lab number (03), id (03-one-io-thread) or path.
    pub lab: String,
    /// Your fix as a file (default: my-fix.toml in the lab's folder, if present).
    #[arg(long, value_name = "FILE")]
    pub fix: Option<PathBuf>,
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// A producer setting of your fix, e.g. linger.ms=5 (repeatable).
    #[arg(long = "producer-set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub producer_set: Vec<(String, String)>,
    #[command(flatten)]
    pub session: SessionArgs,
    #[command(flatten)]
    pub hand_in: HandInArgs,
}
