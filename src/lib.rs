//! klab: a reproducible Kafka tuning lab.
//!
//! Layers, bottom up: plain data ([`model`], [`units`]); the broker
//! ([`broker`]) and the load ([`load`]); one measurement ([`step`]); and the
//! command line on top (`main.rs`).

pub mod app;
pub mod bench;
pub mod broker;
pub mod cancel;
pub mod capacity;
pub mod cli;
pub mod cmd;
pub mod error;
pub mod events;
pub mod infile;
pub mod k8s;
pub mod lab;
pub mod load;
pub mod model;
pub mod net;
pub mod process;
pub mod provenance;
pub mod random;
pub mod stats;
pub mod step;
pub mod term;
pub mod tuner;
pub mod ui;
pub mod units;
