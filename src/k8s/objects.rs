//! The objects klab sends to the API server, built as typed k8s-openapi
//! values without I/O, so every field is unit-tested: the StatefulSet's
//! server-side apply body, the producer/consumer/tuner pods and their
//! arguments, the summary ConfigMap.

use super::{
    BROKER_CONFIG_ENV, BROKER_CONTAINER, BROKER_REPLICAS_ENV, FIELD_MANAGER, HMAC_SECRET,
    HMAC_SECRET_KEY,
};
use crate::model::{BrokerConfig, Workload};
use crate::units::format_duration;
use crate::usage;
use anyhow::Result;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    Pod, PodSecurityContext, PodSpec, ResourceRequirements, SeccompProfile, SecretKeySelector,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PatchParams;
use std::collections::BTreeMap;
use std::time::Duration;

/// The uid/gid the klab images run as (nix/images.nix).
const UID: i64 = 1000;

/// The port producer and consumer serve `/metrics` on (named `metrics`),
/// the same as `--metrics`' default.
pub const METRICS_PORT: u16 = 9464;

/// What producer and consumer get: `--metrics` on every interface of the
/// pod, so Prometheus reaches it.
fn metrics_flag() -> [String; 2] {
    ["--metrics".into(), format!("0.0.0.0:{METRICS_PORT}")]
}

/// The pods klab runs for a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Producer,
    Consumer,
    /// `klab broker set`: changes dynamic settings and reports the
    /// effective config. Never sees the HMAC key.
    Tuner,
}

impl Component {
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Producer => "producer",
            Component::Consumer => "consumer",
            Component::Tuner => "tuner",
        }
    }

    /// `klab/producer:0.1.0`: imported into the cluster, never pulled.
    pub fn image(self) -> String {
        format!("klab/{}:{}", self.as_str(), super::VERSION)
    }

    /// The pod's name: one per component and namespace (`klab-producer`).
    /// The runner's Role may delete pods of these names only (and the
    /// broker's), and a second run against the same broker, which would
    /// disturb the first one's measurements, finds the name taken.
    pub fn pod_name(self) -> String {
        format!("klab-{}", self.as_str())
    }

    /// The ServiceAccount of manifests/rbac.yaml.
    fn service_account(self) -> String {
        format!("klab-{}", self.as_str())
    }

    /// Only producer and consumer get the HMAC key.
    fn gets_secret(self) -> bool {
        !matches!(self, Component::Tuner)
    }

    /// Only producer and consumer serve `/metrics`.
    fn serves_metrics(self) -> bool {
        !matches!(self, Component::Tuner)
    }

    /// (cpu request, memory request, cpu limit, memory limit). With the
    /// broker's 2 CPUs / 2 GiB they fit the reference machine of 4 CPUs /
    /// 4 GiB.
    pub fn resources(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Component::Producer => ("500m", "256Mi", "1500m", "768Mi"),
            Component::Consumer => ("250m", "256Mi", "1", "512Mi"),
            Component::Tuner => ("50m", "64Mi", "250m", "128Mi"),
        }
    }
}

/// The labels of everything klab creates. `instance` tells one run's
/// objects from another's.
pub fn labels(name: &str, component: &str, instance: &str) -> BTreeMap<String, String> {
    [
        ("app.kubernetes.io/name", name),
        ("app.kubernetes.io/component", component),
        ("app.kubernetes.io/part-of", "klab"),
        ("app.kubernetes.io/managed-by", "klab"),
        ("app.kubernetes.io/instance", instance),
        ("app.kubernetes.io/version", super::VERSION),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// What varies between klab's pods.
#[derive(Debug, Clone)]
pub struct PodRequest {
    pub name: String,
    pub namespace: String,
    pub component: Component,
    pub instance: String,
    /// Arguments of `/bin/klab` (the subcommand first).
    pub args: Vec<String>,
    /// The kubelet kills the pod after this long, whatever klab does.
    pub active_deadline: Duration,
}

fn quantity(s: &str) -> Quantity {
    Quantity(s.to_string())
}

/// A pod that runs `klab <args>` once: restricted Pod Security (non-root,
/// read-only root filesystem with an emptyDir at /tmp, no capabilities,
/// RuntimeDefault seccomp), no API token, the HMAC key from the Secret
/// `klab-hmac` for producer and consumer only, and for those two a port
/// named `metrics` with the usual scrape annotations.
pub fn pod(r: &PodRequest) -> Pod {
    let c = r.component;
    let env = c.gets_secret().then(|| {
        vec![EnvVar {
            name: "KLAB_SECRET".into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: HMAC_SECRET.into(),
                    key: HMAC_SECRET_KEY.into(),
                    optional: Some(false),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]
    });
    let (cpu_req, mem_req, cpu_lim, mem_lim) = c.resources();
    let container = Container {
        name: c.as_str().into(),
        image: Some(c.image()),
        image_pull_policy: Some("IfNotPresent".into()),
        // The images' entrypoints differ (`klab produce`, `klab tune`, ...):
        // name the binary and give the whole command line.
        command: Some(vec!["/bin/klab".into()]),
        args: Some(r.args.clone()),
        env,
        ports: c.serves_metrics().then(|| {
            vec![ContainerPort {
                name: Some("metrics".into()),
                container_port: i32::from(METRICS_PORT),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]
        }),
        resources: Some(ResourceRequirements {
            requests: Some(
                [("cpu", cpu_req), ("memory", mem_req)]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), quantity(v)))
                    .collect(),
            ),
            limits: Some(
                [("cpu", cpu_lim), ("memory", mem_lim)]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), quantity(v)))
                    .collect(),
            ),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: "tmp".into(),
            mount_path: "/tmp".into(),
            ..Default::default()
        }]),
        ..Default::default()
    };
    Pod {
        metadata: ObjectMeta {
            name: Some(r.name.clone()),
            namespace: Some(r.namespace.clone()),
            labels: Some(labels(&c.service_account(), c.as_str(), &r.instance)),
            // The convention Prometheus' `kubernetes-pods` scrape job (and
            // most charts) follow.
            annotations: c.serves_metrics().then(|| {
                [
                    ("prometheus.io/scrape", "true".to_string()),
                    ("prometheus.io/port", METRICS_PORT.to_string()),
                    ("prometheus.io/path", "/metrics".to_string()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect()
            }),
            ..Default::default()
        },
        spec: Some(PodSpec {
            service_account_name: Some(c.service_account()),
            // None of klab's pods talks to the Kubernetes API.
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            restart_policy: Some("Never".into()),
            active_deadline_seconds: Some(r.active_deadline.as_secs().max(1) as i64),
            termination_grace_period_seconds: Some(10),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(UID),
                run_as_group: Some(UID),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            containers: vec![container],
            volumes: Some(vec![Volume {
                name: "tmp".into(),
                empty_dir: Some(EmptyDirVolumeSource {
                    size_limit: Some(quantity("64Mi")),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `klab consume` for one step: creates the topic with `replication`
/// (replicas per partition and `min.insync.replicas`, as
/// `step::replication_of` decides for every target), waits for every
/// producer's end-of-run marker, deletes the topic when done.
pub fn consumer_args(
    bootstrap: &str,
    topic: &str,
    w: &Workload,
    timeout: Duration,
    replication: (i32, Option<u32>),
) -> Vec<String> {
    let mut a: Vec<String> = ["consume", "--bootstrap", bootstrap, "--topic", topic]
        .map(String::from)
        .into();
    a.extend([
        "--create-partitions".into(),
        w.partitions.to_string(),
        "--create-replication-factor".into(),
        replication.0.to_string(),
    ]);
    if let Some(isr) = replication.1 {
        a.extend(["--create-min-insync-replicas".into(), isr.to_string()]);
    }
    a.extend([
        "--producers".into(),
        w.producers.max(1).to_string(),
        "--consumers".into(),
        w.consumers.max(1).to_string(),
        "--timeout".into(),
        format_duration(timeout),
        "--delete-topic".into(),
    ]);
    if !w.processing.is_zero() {
        a.extend(["--processing".into(), format_duration(w.processing)]);
    }
    if let Some(g) = w.group {
        a.extend(["--group".into(), g.to_string()]);
    }
    if let Some(x) = w.assignor {
        a.extend(["--assignor".into(), x.to_string()]);
    }
    for (k, v) in &w.consumer {
        a.extend(["--consumer-set".into(), format!("{k}={v}")]);
    }
    a.extend(metrics_flag());
    a
}

/// `klab produce` with every field of the workload spelled as a flag, so
/// the pod runs exactly `w` (the round trip is tested).
pub fn producer_args(bootstrap: &str, topic: &str, w: &Workload) -> Vec<String> {
    let mut a: Vec<String> = ["produce", "--bootstrap", bootstrap, "--topic", topic]
        .map(String::from)
        .into();
    match w.rate {
        Some(r) => a.extend(["--rate".into(), r.to_string()]),
        None => a.push("--max".into()),
    }
    match (w.messages, w.duration) {
        (Some(n), _) => a.extend(["--messages".into(), n.to_string()]),
        (None, Some(d)) => a.extend(["--duration".into(), format_duration(d)]),
        (None, None) => {}
    }
    a.extend([
        "--warmup".into(),
        format_duration(w.warmup),
        "--message-bytes".into(),
        w.message_bytes.to_string(),
        "--partitions".into(),
        w.partitions.to_string(),
        "--acks".into(),
        w.acks.as_kafka().into(),
        "--producers".into(),
        w.producers.max(1).to_string(),
        "--payload".into(),
        w.payload.as_str().into(),
    ]);
    if let Some(n) = w.keys {
        a.extend(["--keys".into(), n.to_string()]);
    }
    if let Some(d) = w.key_dist {
        a.extend(["--key-dist".into(), d.to_string()]);
    }
    if !w.partitioner.is_default() {
        a.extend(["--partitioner".into(), w.partitioner.to_string()]);
    }
    for (k, v) in &w.producer {
        a.extend(["--producer-set".into(), format!("{k}={v}")]);
    }
    a.extend(metrics_flag());
    a
}

/// `klab broker set`: dynamic `changes`, then with `clear` back to the
/// static config. No changes and no clear: just report the effective config.
pub fn broker_set_args(
    bootstrap: &str,
    changes: &BTreeMap<String, String>,
    clear: bool,
) -> Vec<String> {
    let mut a: Vec<String> = ["broker", "set", "--bootstrap", bootstrap]
        .map(String::from)
        .into();
    for (k, v) in changes {
        a.extend(["--set".into(), format!("{k}={v}")]);
    }
    if clear {
        a.push("--clear".into());
    }
    a
}

/// The value of KLAB_BROKER_CONFIG for a config: the TOML that `klab broker
/// exec` parses (`heap` and a [properties] table).
pub fn broker_config_toml(cfg: &BrokerConfig) -> Result<String> {
    Ok(toml::to_string(cfg)?)
}

/// Server-side apply parameters: field manager `klab`, and `force`, because
/// the value was first set by `kubectl apply` (another manager); klab takes
/// over that one field and nothing else.
pub fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// The server-side apply body that sets the broker's config and its size:
/// `spec.replicas` and two env vars of the container `kafka` in the pod
/// template, KLAB_BROKER_CONFIG and KLAB_BROKER_REPLICAS (which the pods'
/// `--replicas $(KLAB_BROKER_REPLICAS)` reads: every pod must know the
/// quorum's size, so a new size rolls them all). Containers and env are
/// lists keyed by name, so the apply merges into them and leaves every
/// other field to its owner. Every apply of klab's carries all three
/// fields: a field klab owns and leaves out of an apply would be removed.
/// (A typed StatefulSet would also carry its required `spec.selector`, an
/// atomic field klab must not claim; so the envelope is plain JSON around
/// the typed container.)
pub fn broker_config_apply(
    namespace: &str,
    name: &str,
    cfg: &BrokerConfig,
    replicas: u32,
) -> Result<serde_json::Value> {
    let container = Container {
        name: BROKER_CONTAINER.into(),
        // In the order of manifests/broker.yaml: a merge that reorders the
        // list would change the pod template, and roll the pods, for nothing.
        env: Some(vec![
            EnvVar {
                name: BROKER_REPLICAS_ENV.into(),
                value: Some(replicas.to_string()),
                ..Default::default()
            },
            EnvVar {
                name: BROKER_CONFIG_ENV.into(),
                value: Some(broker_config_toml(cfg)?),
                ..Default::default()
            },
        ]),
        ..Default::default()
    };
    Ok(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": { "name": name, "namespace": namespace },
        "spec": {
            "replicas": replicas,
            "template": { "spec": { "containers": [container] } }
        }
    }))
}

/// The StatefulSet's size: `spec.replicas` (1 when unset), and the size its
/// pods are told (KLAB_BROKER_REPLICAS; None when missing or not a number).
pub fn broker_replicas_of(sts: &StatefulSet) -> (u32, Option<u32>) {
    let spec = sts.spec.as_ref();
    let replicas = spec.and_then(|s| s.replicas).unwrap_or(1).max(0) as u32;
    let told = spec
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.iter().find(|c| c.name == BROKER_CONTAINER))
        .and_then(|c| c.env.as_ref())
        .and_then(|env| env.iter().find(|e| e.name == BROKER_REPLICAS_ENV))
        .and_then(|e| e.value.as_deref())
        .and_then(|v| v.trim().parse().ok());
    (replicas, told)
}

/// The broker config the StatefulSet's pod template holds now.
pub fn broker_config_of(sts: &StatefulSet) -> Result<BrokerConfig> {
    let name = sts.metadata.name.as_deref().unwrap_or("?");
    let container = sts
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.iter().find(|c| c.name == BROKER_CONTAINER))
        .ok_or_else(|| {
            usage!("StatefulSet {name} has no container '{BROKER_CONTAINER}'; deploy klab's manifests/ (kubectl apply -k manifests)")
        })?;
    let var = container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == BROKER_CONFIG_ENV);
    match var {
        None => Ok(BrokerConfig::default()),
        Some(EnvVar {
            value_from: Some(_),
            ..
        }) => Err(usage!(
            "StatefulSet {name}: {BROKER_CONFIG_ENV} comes from a reference (valueFrom); klab sets it as a plain value, as manifests/broker.yaml does"
        )),
        Some(e) => crate::broker::knobs::parse_config(
            e.value.as_deref().unwrap_or(""),
            &format!("StatefulSet {name}, env {BROKER_CONFIG_ENV}"),
        ),
    }
}

/// The ConfigMap `klab-summary`: the demo's summary.json and summary.txt.
pub fn summary_configmap(
    namespace: &str,
    instance: &str,
    summary_json: String,
    summary_txt: String,
) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(super::SUMMARY_CONFIGMAP.into()),
            namespace: Some(namespace.into()),
            labels: Some(labels(super::SUMMARY_CONFIGMAP, "summary", instance)),
            ..Default::default()
        },
        data: Some(
            [
                ("summary.json".to_string(), summary_json),
                ("summary.txt".to_string(), summary_txt),
            ]
            .into(),
        ),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use crate::model::Acks;
    use clap::Parser;
    use k8s_openapi::api::apps::v1::StatefulSetSpec;
    use k8s_openapi::api::core::v1::PodTemplateSpec;
    use kube::api::Patch;
    use serde_json::json;

    fn req(component: Component, args: &[&str]) -> PodRequest {
        PodRequest {
            name: "klab-x-1".into(),
            namespace: "klab".into(),
            component,
            instance: "run-1".into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            active_deadline: Duration::from_secs(600),
        }
    }

    #[test]
    fn statefulset_apply_request_sets_only_the_config_env_var() {
        let mut cfg = BrokerConfig {
            heap: Some(crate::units::MemSize::mib(256)),
            ..Default::default()
        };
        cfg.properties.insert("num.io.threads".into(), "2".into());
        let body = broker_config_apply("labns", "kafka", &cfg, 3).unwrap();
        let toml = body["spec"]["template"]["spec"]["containers"][0]["env"][1]["value"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            body,
            json!({
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": {"name": "kafka", "namespace": "labns"},
                "spec": {"replicas": 3, "template": {"spec": {"containers": [
                    {"name": "kafka", "env": [
                        {"name": "KLAB_BROKER_REPLICAS", "value": "3"},
                        {"name": "KLAB_BROKER_CONFIG", "value": toml}
                    ]}
                ]}}}
            })
        );
        // What klab reads back of the size.
        let sts: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "kafka"},
            "spec": {"replicas": 3, "selector": {}, "serviceName": "kafka-headless",
                "template": {"spec": {"containers": [
                    {"name": "kafka", "env": [{"name": "KLAB_BROKER_REPLICAS", "value": "3"}]}
                ]}}}
        }))
        .unwrap();
        assert_eq!(broker_replicas_of(&sts), (3, Some(3)));
        assert_eq!(broker_replicas_of(&StatefulSet::default()), (1, None));
        // The value is what the broker image's entrypoint parses back.
        let back = crate::broker::knobs::parse_config(&toml, "test").unwrap();
        assert_eq!(back, cfg);

        // The HTTP request kube sends for it.
        use kube::Resource;
        let url = StatefulSet::url_path(&(), Some("labns"));
        let r = kube::core::Request::new(url)
            .patch("kafka", &apply_params(), &Patch::Apply(&body))
            .unwrap();
        assert_eq!(r.method(), "PATCH");
        assert_eq!(
            r.uri().path(),
            "/apis/apps/v1/namespaces/labns/statefulsets/kafka"
        );
        let q = r.uri().query().unwrap();
        assert!(q.contains("fieldManager=klab"), "{q}");
        assert!(q.contains("force=true"), "{q}");
        assert_eq!(r.headers()["content-type"], "application/apply-patch+yaml");
        let sent: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(sent, body);
    }

    #[test]
    fn broker_config_is_read_back_from_a_statefulset() {
        let sts = |env: Option<EnvVar>| StatefulSet {
            metadata: ObjectMeta {
                name: Some("kafka".into()),
                ..Default::default()
            },
            spec: Some(StatefulSetSpec {
                template: PodTemplateSpec {
                    spec: Some(PodSpec {
                        containers: vec![
                            Container {
                                name: "sidecar".into(),
                                env: Some(vec![EnvVar {
                                    name: BROKER_CONFIG_ENV.into(),
                                    value: Some("heap = \"9g\"".into()),
                                    ..Default::default()
                                }]),
                                ..Default::default()
                            },
                            Container {
                                name: "kafka".into(),
                                env: env.map(|e| vec![e]),
                                ..Default::default()
                            },
                        ],
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            }),
            ..Default::default()
        };
        let v = |s: &str| EnvVar {
            name: BROKER_CONFIG_ENV.into(),
            value: Some(s.into()),
            ..Default::default()
        };
        let c = broker_config_of(&sts(Some(v(
            "heap = \"512m\"\n\n[properties]\n\"num.io.threads\" = \"3\"\n",
        ))))
        .unwrap();
        assert_eq!(c.heap.map(|h| h.jvm()), Some("512m".into()));
        assert_eq!(c.properties["num.io.threads"], "3");
        assert!(broker_config_of(&sts(None)).unwrap().is_empty());
        let e = broker_config_of(&sts(Some(v("heap = 3\n")))).unwrap_err();
        assert!(crate::error::is_usage(&e));
        assert!(e.to_string().contains("StatefulSet kafka"), "{e}");
        let from = EnvVar {
            name: BROKER_CONFIG_ENV.into(),
            value_from: Some(EnvVarSource::default()),
            ..Default::default()
        };
        let e = broker_config_of(&sts(Some(from))).unwrap_err();
        assert!(e.to_string().contains("valueFrom"), "{e}");
    }

    #[test]
    fn load_pods_are_locked_down_and_get_the_secret() {
        for c in [Component::Producer, Component::Consumer] {
            let p = pod(&req(c, &["produce", "--max"]));
            let v = serde_json::to_value(&p).unwrap();
            let spec = &v["spec"];
            assert_eq!(spec["serviceAccountName"], format!("klab-{}", c.as_str()));
            assert_eq!(spec["automountServiceAccountToken"], false);
            assert_eq!(spec["restartPolicy"], "Never");
            assert_eq!(spec["activeDeadlineSeconds"], 600);
            assert_eq!(
                spec["securityContext"],
                json!({"runAsNonRoot": true, "runAsUser": 1000, "runAsGroup": 1000,
                       "seccompProfile": {"type": "RuntimeDefault"}})
            );
            let ctr = &spec["containers"][0];
            assert_eq!(ctr["name"], c.as_str());
            assert_eq!(
                ctr["image"],
                format!("klab/{}:{}", c.as_str(), super::super::VERSION)
            );
            assert_eq!(ctr["imagePullPolicy"], "IfNotPresent");
            assert_eq!(ctr["command"], json!(["/bin/klab"]));
            assert_eq!(ctr["args"], json!(["produce", "--max"]));
            assert_eq!(
                ctr["securityContext"],
                json!({"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                       "runAsNonRoot": true, "capabilities": {"drop": ["ALL"]}})
            );
            assert_eq!(
                ctr["env"],
                json!([{"name": "KLAB_SECRET", "valueFrom": {"secretKeyRef":
                    {"name": "klab-hmac", "key": "secret", "optional": false}}}])
            );
            assert_eq!(
                ctr["volumeMounts"],
                json!([{"name": "tmp", "mountPath": "/tmp"}])
            );
            assert_eq!(
                spec["volumes"],
                json!([{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}])
            );
            for k in ["requests", "limits"] {
                for r in ["cpu", "memory"] {
                    assert!(ctr["resources"][k][r].is_string(), "{k}.{r}");
                }
            }
            let labels = &v["metadata"]["labels"];
            assert_eq!(
                labels["app.kubernetes.io/name"],
                format!("klab-{}", c.as_str())
            );
            assert_eq!(labels["app.kubernetes.io/component"], c.as_str());
            assert_eq!(labels["app.kubernetes.io/part-of"], "klab");
            assert_eq!(labels["app.kubernetes.io/managed-by"], "klab");
            assert_eq!(labels["app.kubernetes.io/instance"], "run-1");
            assert_eq!(
                ctr["ports"],
                json!([{"name": "metrics", "containerPort": 9464, "protocol": "TCP"}])
            );
            assert_eq!(
                v["metadata"]["annotations"],
                json!({"prometheus.io/scrape": "true", "prometheus.io/port": "9464",
                       "prometheus.io/path": "/metrics"})
            );
        }
        // The pods' port is the one `--metrics` defaults to.
        assert_eq!(METRICS_PORT, crate::ui::METRICS_PORT);
    }

    #[test]
    fn the_tuner_pod_never_sees_the_secret() {
        let p = pod(&req(Component::Tuner, &["broker", "set"]));
        let spec = p.spec.clone().unwrap();
        assert_eq!(spec.service_account_name.as_deref(), Some("klab-tuner"));
        assert_eq!(spec.automount_service_account_token, Some(false));
        assert!(spec.containers[0].env.is_none());
        assert!(spec.containers[0].ports.is_none());
        assert!(p.metadata.annotations.is_none());
        assert_eq!(
            spec.containers[0].image.as_deref(),
            Some(format!("klab/tuner:{}", super::super::VERSION).as_str())
        );
    }

    /// The command a pod's arguments are, read by klab's own parser.
    fn parse(args: &[String]) -> Command {
        let mut v = vec!["klab".to_string()];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).unwrap().command
    }

    fn parse_produce_metrics(args: &[String]) -> Option<std::net::SocketAddr> {
        match parse(args) {
            Command::Produce(p) => p.metrics,
            other => panic!("{other:?}"),
        }
    }

    fn parse_produce(args: &[String]) -> Workload {
        match parse(args) {
            Command::Produce(p) => p.workload.workload().unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn producer_args_carry_the_workload_exactly() {
        let mut w = Workload {
            rate: Some(12345.5),
            duration: Some(Duration::from_millis(6500)),
            warmup: Duration::from_secs(2),
            message_bytes: 512,
            partitions: 6,
            acks: Acks::One,
            producers: 2,
            keys: Some(40),
            key_dist: Some(crate::model::KeyDist::Zipf(1.25)),
            ..Default::default()
        };
        w.producer.insert("linger.ms".into(), "5".into());
        w.producer.insert("batch.size".into(), "1000000".into());
        let a = producer_args("kafka.klab.svc:9092", "t1", &w);
        assert_eq!(
            &a[..5],
            [
                "produce",
                "--bootstrap",
                "kafka.klab.svc:9092",
                "--topic",
                "t1"
            ]
        );
        assert_eq!(&a[a.len() - 2..], ["--metrics", "0.0.0.0:9464"]);
        assert_eq!(
            parse_produce_metrics(&a),
            Some("0.0.0.0:9464".parse().unwrap())
        );
        let got = parse_produce(&a);
        assert_eq!(
            got,
            Workload {
                topic: Some("t1".into()),
                ..w.clone()
            }
        );

        // max throughput, a number of messages, no warm-up
        let w = Workload {
            rate: None,
            messages: Some(50_000),
            duration: None,
            warmup: Duration::ZERO,
            ..Default::default()
        };
        let a = producer_args("b:9092", "t2", &w);
        assert!(a.contains(&"--max".to_string()));
        assert_eq!(
            parse_produce(&a),
            Workload {
                topic: Some("t2".into()),
                ..w
            }
        );
    }

    #[test]
    fn consumer_and_tuner_args() {
        let w = Workload {
            partitions: 6,
            producers: 3,
            consumers: 2,
            processing: Duration::from_micros(500),
            consumer: BTreeMap::from([("fetch.min.bytes".to_string(), "1024".to_string())]),
            ..Default::default()
        };
        let a = consumer_args("b:9092", "t", &w, Duration::from_secs(300), (3, Some(2)));
        let timeout = format_duration(Duration::from_secs(300));
        assert_eq!(
            a,
            [
                "consume",
                "--bootstrap",
                "b:9092",
                "--topic",
                "t",
                "--create-partitions",
                "6",
                "--create-replication-factor",
                "3",
                "--create-min-insync-replicas",
                "2",
                "--producers",
                "3",
                "--consumers",
                "2",
                "--timeout",
                timeout.as_str(),
                "--delete-topic",
                "--processing",
                "500us",
                "--consumer-set",
                "fetch.min.bytes=1024",
                "--metrics",
                "0.0.0.0:9464"
            ]
        );
        match parse(&a) {
            Command::Consume(c) => {
                assert_eq!(c.topic, "t");
                assert_eq!(c.create_partitions, Some(6));
                assert_eq!(c.create_replication_factor, Some(3));
                assert_eq!(c.create_min_insync_replicas, Some(2));
                assert_eq!(c.producers, 3);
                assert_eq!(c.consumers, 2);
                assert_eq!(c.processing, Some(Duration::from_micros(500)));
                assert_eq!(c.consumer_set.len(), 1);
                assert_eq!(c.timeout, Duration::from_secs(300));
                assert!(c.delete_topic);
                assert_eq!(c.metrics, Some("0.0.0.0:9464".parse().unwrap()));
            }
            other => panic!("{other:?}"),
        }
        let mut changes = BTreeMap::new();
        changes.insert("num.io.threads".to_string(), "8".to_string());
        changes.insert("num.network.threads".to_string(), "3".to_string());
        let a = broker_set_args("b:9092", &changes, true);
        assert_eq!(
            a,
            [
                "broker",
                "set",
                "--bootstrap",
                "b:9092",
                "--set",
                "num.io.threads=8",
                "--set",
                "num.network.threads=3",
                "--clear"
            ]
        );
        match parse(&a) {
            Command::Broker(crate::cli::BrokerCommand::Set(s)) => {
                assert_eq!(s.set.len(), 2);
                assert!(s.clear);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            broker_set_args("b:9092", &BTreeMap::new(), false),
            ["broker", "set", "--bootstrap", "b:9092"]
        );
    }

    #[test]
    fn summary_configmap_holds_both_files() {
        let cm = summary_configmap("klab", "run-1", "[]".into(), "table".into());
        let v = serde_json::to_value(&cm).unwrap();
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["kind"], "ConfigMap");
        assert_eq!(v["metadata"]["name"], "klab-summary");
        assert_eq!(
            v["data"],
            json!({"summary.json": "[]", "summary.txt": "table"})
        );
    }
}
