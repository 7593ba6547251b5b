//! The network between klab's clients and local brokers.
//!
//! When a run asks for a network, each listener of a local broker sits
//! behind a TCP proxy that can add latency, jitter, a bandwidth limit or a
//! cut. The proxy is Toxiproxy (a separate program, `toxiproxy-server`);
//! [`toxiproxy`] runs it and speaks its HTTP API. This module knows nothing
//! of Kafka: it proxies TCP addresses.

pub mod toxiproxy;

pub use toxiproxy::{Stream, Toxic, ToxicKind, Toxiproxy};
