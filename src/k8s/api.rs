//! The only place klab talks to the Kubernetes API server: a small
//! synchronous facade over kube-rs (its own tokio runtime), one method per
//! call, each in a `tracing` span and with its errors explained
//! ([`super::error`]).

use super::error::{Call, Cluster, explain};
use super::objects;
use super::status::{Rollout, crash_looping, describe_pod, is_ready, revision, rollout};
use crate::error::Interrupted;
use crate::model::BrokerConfig;
use crate::usage;
use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, LogParams, Patch, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use std::future::Future;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// A rollout that did not finish: timed out, or the new pods crash. The
/// message says what was waited for and where the pods are.
#[derive(Debug, Clone)]
pub struct RolloutFailed(pub String);

impl std::fmt::Display for RolloutFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RolloutFailed {}

/// A connection to one namespace of one cluster.
pub struct Kube {
    rt: tokio::runtime::Runtime,
    client: Client,
    namespace: String,
    cluster: Cluster,
    /// Upper bound of a single API call.
    call_timeout: Duration,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    // One worker keeps pooled connections serviced between calls.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("klab-k8s")
        .enable_all()
        .build()
        .context("starting the tokio runtime for the Kubernetes client")
}

/// The kubeconfig user of `context` (or of the current context), for
/// messages.
fn kubeconfig_user(context: Option<&str>) -> (Option<String>, Option<String>) {
    let Ok(kc) = Kubeconfig::read() else {
        return (context.map(String::from), None);
    };
    let name = context.map(String::from).or(kc.current_context.clone());
    let user = name.as_ref().and_then(|n| {
        kc.contexts
            .iter()
            .find(|c| &c.name == n)
            .and_then(|c| c.context.as_ref())
            .and_then(|c| c.user.clone())
    });
    (name, user)
}

fn kubeconfig_hint() -> String {
    match std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        Some(p) => format!("KUBECONFIG={}", p.to_string_lossy()),
        None => "~/.kube/config".into(),
    }
}

async fn load_config(context: Option<&str>) -> Result<(Config, Cluster)> {
    let opts = KubeConfigOptions {
        context: context.map(String::from),
        ..Default::default()
    };
    let (config, ctx, user) = match Config::from_kubeconfig(&opts).await {
        Ok(c) => {
            let (ctx, user) = kubeconfig_user(context);
            (c, ctx, user)
        }
        Err(e) => {
            if let Some(ctx) = context {
                return Err(match e {
                    kube::config::KubeconfigError::LoadContext(_) => usage!(
                        "--context {ctx}: no such context in your kubeconfig ({}); `kubectl config get-contexts` lists them. The k3d target's context is k3d-klab: `nix run .#demo -- --target k3d` creates it",
                        kubeconfig_hint()
                    ),
                    e => usage!(
                        "--context {ctx}: cannot use your kubeconfig ({}): {e}",
                        kubeconfig_hint()
                    ),
                });
            }
            // No kubeconfig: inside a pod, its service account (klab-runner).
            match Config::incluster() {
                Ok(c) => {
                    let sa = "the pod's service account".to_string();
                    (c, None, Some(sa))
                }
                Err(ie) => {
                    return Err(usage!(
                        "no Kubernetes cluster to talk to: no usable kubeconfig ({}: {e}) and not inside a pod ({ie}). `nix run .#demo -- --target k3d` creates a k3d cluster and runs this demo there; for your own cluster, pass --context or set KUBECONFIG",
                        kubeconfig_hint()
                    ));
                }
            }
        }
    };
    let cluster = Cluster {
        url: config.cluster_url.to_string(),
        context: ctx,
        user,
    };
    Ok((config, cluster))
}

impl Kube {
    /// Connects through the kubeconfig (`context`, or its current context),
    /// or from inside a pod through its service account. Nothing is sent
    /// yet: the first call shows whether the cluster answers.
    pub fn connect(context: Option<&str>, namespace: &str) -> Result<Kube> {
        let rt = runtime()?;
        let (config, cluster) = rt.block_on(load_config(context))?;
        Self::build(rt, config, namespace, cluster)
    }

    /// From a ready `Config` (tests: a kubeconfig file, impersonation).
    pub fn from_config(config: Config, namespace: &str) -> Result<Kube> {
        let rt = runtime()?;
        let cluster = Cluster {
            url: config.cluster_url.to_string(),
            context: None,
            user: config.auth_info.impersonate.clone(),
        };
        Self::build(rt, config, namespace, cluster)
    }

    fn build(
        rt: tokio::runtime::Runtime,
        mut config: Config,
        namespace: &str,
        cluster: Cluster,
    ) -> Result<Kube> {
        config.connect_timeout = Some(Duration::from_secs(10));
        config.read_timeout = Some(Duration::from_secs(60));
        config.reset_reader_on_write = true;
        // The client's buffer task needs the runtime's context.
        let client = {
            let _guard = rt.enter();
            Client::try_from(config).context("creating the Kubernetes client")?
        };
        Ok(Kube {
            rt,
            client,
            namespace: namespace.to_string(),
            cluster,
            call_timeout: Duration::from_secs(90),
        })
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Runs a future on this connection's runtime (tests).
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    fn call<T>(&self, call: Call, fut: impl Future<Output = Result<T, kube::Error>>) -> Result<T> {
        let span = tracing::info_span!(
            "k8s",
            verb = call.verb,
            resource = call.resource,
            name = call.name.unwrap_or(""),
            namespace = call.namespace
        );
        let started = Instant::now();
        let limit = self.call_timeout;
        let r = self
            .rt
            .block_on(async { tokio::time::timeout(limit, fut).await }.instrument(span.clone()));
        let _e = span.enter();
        match r {
            Ok(Ok(v)) => {
                tracing::debug!(ms = started.elapsed().as_millis() as u64, "ok");
                Ok(v)
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "failed");
                Err(explain(e, &call, &self.cluster))
            }
            Err(_) => Err(anyhow::anyhow!(
                "the API server at {} did not answer `{call}` within {}s",
                self.cluster.url,
                limit.as_secs()
            )),
        }
    }

    fn c<'a>(&'a self, verb: &'a str, resource: &'a str, name: Option<&'a str>) -> Call<'a> {
        Call {
            verb,
            resource,
            name,
            namespace: &self.namespace,
        }
    }

    fn statefulsets(&self) -> Api<StatefulSet> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn get_statefulset(&self, name: &str) -> Result<Option<StatefulSet>> {
        let api = self.statefulsets();
        self.call(self.c("get", "statefulsets", Some(name)), api.get_opt(name))
    }

    /// The StatefulSet `name`, or a message that says how to deploy it.
    pub fn broker_statefulset(&self, name: &str) -> Result<StatefulSet> {
        self.get_statefulset(name)?.ok_or_else(|| {
            usage!(
                "there is no StatefulSet {name} in namespace {}{}: deploy klab first (kubectl apply -k manifests, and the Secret klab-hmac as manifests/kustomization.yaml says), or pass --namespace; `nix run .#demo -- --target k3d` does all of it on a k3d cluster",
                self.namespace,
                self.cluster
                    .context
                    .as_ref()
                    .map(|c| format!(" (context {c})"))
                    .unwrap_or_default()
            )
        })
    }

    /// Server-side applies `cfg` as the broker's KLAB_BROKER_CONFIG and
    /// `replicas` as its size (field manager `klab`); returns the
    /// StatefulSet as stored.
    pub fn apply_broker_config(
        &self,
        name: &str,
        cfg: &BrokerConfig,
        replicas: u32,
    ) -> Result<StatefulSet> {
        let body = objects::broker_config_apply(&self.namespace, name, cfg, replicas)?;
        let api = self.statefulsets();
        let pp = objects::apply_params();
        self.call(
            self.c("patch", "statefulsets", Some(name)),
            api.patch(name, &pp, &Patch::Apply(&body)),
        )
    }

    /// Waits until StatefulSet `name` is rolled out (see
    /// [`super::status::rollout`]). A pod of an older revision that is not
    /// ready is deleted: the StatefulSet controller would wait for it forever
    /// (the "forced rollback" case of the StatefulSet docs). Fails early
    /// when the new pod keeps crashing.
    pub fn wait_rollout(&self, name: &str, timeout: Duration, poll: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let span = tracing::info_span!("rollout", statefulset = name);
        let _e = span.enter();
        loop {
            if crate::cancel::interrupted() {
                return Err(Interrupted.into());
            }
            let sts = self.broker_statefulset(name)?;
            let waiting = match rollout(&sts) {
                Rollout::Complete => {
                    tracing::info!("rolled out");
                    return Ok(());
                }
                Rollout::Impossible(m) => {
                    return Err(usage!(
                        "StatefulSet {}/{name} cannot roll out: {m}",
                        self.namespace
                    ));
                }
                Rollout::Waiting(m) => m,
            };
            let replicas = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let caught_up =
                sts.status.as_ref().and_then(|s| s.observed_generation) >= sts.metadata.generation;
            let update = sts
                .status
                .as_ref()
                .and_then(|s| s.update_revision.clone())
                .filter(|_| caught_up);
            let mut pods = Vec::new();
            for i in 0..replicas {
                let pod_name = format!("{name}-{i}");
                let Some(p) = self.get_pod(&pod_name)? else {
                    pods.push(format!("pod {pod_name}: not created yet"));
                    continue;
                };
                let old = update.as_deref().is_some_and(|u| revision(&p) != Some(u));
                if old && !is_ready(&p) && p.metadata.deletion_timestamp.is_none() {
                    tracing::info!(
                        pod = pod_name,
                        "deleting a pod of an old revision that is not ready, so that the StatefulSet can replace it"
                    );
                    self.delete_pod(&pod_name)?;
                } else if !old && update.is_some() && crash_looping(&p) {
                    return Err(anyhow::Error::new(RolloutFailed(format!(
                        "the broker of StatefulSet {}/{name} keeps crashing with its new config: {}",
                        self.namespace,
                        describe_pod(&p)
                    ))));
                }
                pods.push(describe_pod(&p));
            }
            if Instant::now() >= deadline {
                return Err(anyhow::Error::new(RolloutFailed(format!(
                    "timed out after {}s waiting for StatefulSet {}/{name} to roll out (observedGeneration >= generation, every replica updated and ready, currentRevision = updateRevision): {waiting}; {}",
                    timeout.as_secs(),
                    self.namespace,
                    pods.join("; ")
                ))));
            }
            tracing::debug!("waiting: {waiting}");
            std::thread::sleep(poll.min(deadline.saturating_duration_since(Instant::now())));
        }
    }

    pub fn create_pod(&self, pod: &Pod) -> Result<Pod> {
        let api = self.pods();
        let name = pod.metadata.name.as_deref();
        self.call(
            self.c("create", "pods", name),
            api.create(&PostParams::default(), pod),
        )
    }

    pub fn get_pod(&self, name: &str) -> Result<Option<Pod>> {
        let api = self.pods();
        self.call(self.c("get", "pods", Some(name)), api.get_opt(name))
    }

    /// Deletes a pod; one that is already gone is fine.
    pub fn delete_pod(&self, name: &str) -> Result<()> {
        self.delete_pod_graced(name, None).map(|_| ())
    }

    /// Deletes a pod with `grace` seconds to stop (0: its containers are
    /// killed at once; None: the pod's own terminationGracePeriodSeconds).
    /// Returns the uid of the pod deleted (empty if the API did not say),
    /// None if it was already gone.
    pub fn delete_pod_graced(&self, name: &str, grace: Option<u32>) -> Result<Option<String>> {
        let api = self.pods();
        let dp = DeleteParams {
            grace_period_seconds: grace,
            ..Default::default()
        };
        self.call(self.c("delete", "pods", Some(name)), async move {
            match api.delete(name, &dp).await {
                // The pod as deleted, or (rarely) only a Status: deleted,
                // uid unknown.
                Ok(either) => Ok(Some(
                    either
                        .left()
                        .and_then(|p| p.metadata.uid)
                        .unwrap_or_default(),
                )),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    /// Waits until pod `name` is gone (a pod being deleted keeps its name
    /// until its containers stopped), polling every `poll`.
    pub fn wait_pod_gone(&self, name: &str, timeout: Duration, poll: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if crate::cancel::interrupted() {
                return Err(Interrupted.into());
            }
            let Some(p) = self.get_pod(name)? else {
                return Ok(());
            };
            if Instant::now() >= deadline {
                return Err(anyhow::anyhow!(
                    "pod {name} still exists {}s after it was deleted: {}",
                    timeout.as_secs(),
                    describe_pod(&p)
                ));
            }
            std::thread::sleep(poll.min(deadline.saturating_duration_since(Instant::now())));
        }
    }

    /// The log of a pod's container (stdout and stderr).
    pub fn pod_logs(&self, name: &str, container: &str) -> Result<String> {
        let api = self.pods();
        let lp = LogParams {
            container: Some(container.to_string()),
            ..Default::default()
        };
        self.call(self.c("get", "pods/log", Some(name)), api.logs(name, &lp))
    }

    /// Server-side applies a ConfigMap (field manager `klab`).
    pub fn apply_configmap(&self, cm: &ConfigMap) -> Result<ConfigMap> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        let name = cm.metadata.name.clone().unwrap_or_default();
        let pp = objects::apply_params();
        self.call(
            self.c("patch", "configmaps", Some(&name)),
            api.patch(&name, &pp, &Patch::Apply(cm)),
        )
    }
}
