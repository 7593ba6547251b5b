//! The Kubernetes target: `klab demo --target k8s`.
//!
//! klab runs outside the cluster (a kubeconfig context) or in it (the
//! service account `klab-runner`) and drives the broker deployed by
//! `manifests/` (StatefulSet `kafka`, Service `kafka`):
//!
//! - a broker config that needs a restart (heap, read-only keys) is
//!   server-side applied (field manager `klab`) as the env var
//!   `KLAB_BROKER_CONFIG` of the StatefulSet's pod template, and klab waits
//!   for the rollout; dynamic settings go through a short-lived tuner pod
//!   running `klab broker set`, whose JSON line is the effective config;
//! - each measurement is a consumer pod and a producer pod (`klab consume`,
//!   `klab produce`), whose JSON lines klab assembles into a StepResult with
//!   the same code as a local run;
//! - the summary is printed like the local demo's and also kept in the
//!   ConfigMap `klab-summary`.
//!
//! Layers: [`objects`] and [`status`] are pure (typed objects, request
//! bodies, status evaluation; unit-tested), [`api`] is the only place that
//! talks to the API server, [`session`] runs steps, [`summary`] keeps the
//! summary; the command itself is `cmd::demo`.

pub mod api;
pub mod error;
pub mod faults;
pub mod objects;
pub mod session;
pub mod status;
pub mod summary;

use std::time::Duration;

/// The field manager of every server-side apply klab makes.
pub const FIELD_MANAGER: &str = "klab";
/// Image tags and the `app.kubernetes.io/version` label: the klab version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const DEFAULT_NAMESPACE: &str = "klab";
/// The broker StatefulSet of manifests/broker.yaml and its container.
pub const BROKER_STATEFULSET: &str = "kafka";
pub const BROKER_CONTAINER: &str = "kafka";
/// The env var of the broker container that holds its TOML config.
pub const BROKER_CONFIG_ENV: &str = crate::broker::knobs::ENV_BROKER_CONFIG;
/// The env var that tells the broker pods the StatefulSet's size (their
/// `--replicas`).
pub const BROKER_REPLICAS_ENV: &str = "KLAB_BROKER_REPLICAS";
/// The broker StatefulSet's headless Service: its pods' DNS domain.
pub const BROKER_HEADLESS_SERVICE: &str = "kafka-headless";
/// The Secret (and its key) with the HMAC key producer and consumer share.
pub const HMAC_SECRET: &str = "klab-hmac";
pub const HMAC_SECRET_KEY: &str = "secret";
pub const SUMMARY_CONFIGMAP: &str = "klab-summary";

/// The in-cluster bootstrap address of the broker Service.
pub fn bootstrap(namespace: &str) -> String {
    format!("kafka.{namespace}.svc:9092")
}

/// How long klab waits, and how often it looks.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// A broker rollout (the broker formats its storage and starts a JVM;
    /// its startup probe allows 3 minutes).
    pub rollout: Duration,
    /// A pod from creation until its container runs (scheduling, image).
    pub pod_start: Duration,
    /// A tuner pod (`klab broker set`) from creation until it is done.
    pub tuner: Duration,
    /// Between two looks at an object.
    pub poll: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            rollout: Duration::from_secs(300),
            pod_start: Duration::from_secs(180),
            tuner: Duration::from_secs(180),
            poll: Duration::from_secs(1),
        }
    }
}
