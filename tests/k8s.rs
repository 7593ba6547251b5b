//! klab's Kubernetes target against a real kube-apiserver (v1.34, with etcd
//! and the StatefulSet controller of kube-controller-manager) from
//! scripts/kube-testenv. There is no scheduler and no kubelet: pods stay
//! Pending unless a test plays kubelet by writing their status (the
//! `pods/status` subresource), and pod logs cannot be read (the demo test
//! supplies what the pods would have printed).
//!
//! One testenv serves every test of this file (started on first use,
//! stopped at exit); each test works in its own namespace, except the RBAC
//! and manifest tests, which use `klab` as deployed by `kubectl apply -k
//! manifests`. The binaries are built by `scripts/kube-testenv build` when
//! missing (once, ~5 minutes cold; cached under ~/.cache/klab), or taken
//! from KUBE_TESTENV_BIN (the Nix check uses nixpkgs' kubernetes and etcd).
//! Linux only: the testenv script relies on /proc, setsid and flock.
#![cfg(target_os = "linux")]

mod common;

use common::stdout_of_success as ok;
use common::wait_for;
use common::write_lab;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use klab::k8s::api::{Kube, RolloutFailed};
use klab::k8s::objects::{self, Component, PodRequest};
use klab::k8s::session::{K8sOptions, K8sSession, PodLogs};
use klab::k8s::{Timeouts, status};
use klab::lab::Labs;
use klab::lab::run::FixSource;
use klab::lab::run::run_demo;
use klab::load::outcome::{ConsumerOutcome, ProducerOutcome};
use klab::model::{Applied, TargetKind};
use klab::model::{BrokerConfig, EffectiveValue};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

// ------------------------------------------------------------ the testenv

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn script() -> PathBuf {
    repo().join("scripts/kube-testenv")
}

struct Env {
    kubeconfig: PathBuf,
    /// What `kubectl apply --dry-run=server -k manifests` printed (before
    /// the real apply).
    dry_run: Output,
}

/// Stops the testenv when dropped.
struct Stopper(tempfile::TempDir);

impl Drop for Stopper {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("stop")
            .arg(self.0.path())
            .status();
    }
}

static ENV: OnceLock<Env> = OnceLock::new();
static BARE: OnceLock<PathBuf> = OnceLock::new();
static STOPPERS: Mutex<Vec<Stopper>> = Mutex::new(Vec::new());

/// Statics are never dropped: stop the testenvs when the test binary exits.
extern "C" fn stop_testenvs() {
    if let Ok(mut s) = STOPPERS.lock() {
        s.clear();
    }
}

/// Builds the binaries if needed (cached), starts a testenv (with
/// kube-controller-manager running `controllers`, if any), returns its
/// kubeconfig.
fn start_testenv(controllers: &str) -> PathBuf {
    let build = Command::new(script()).arg("build").output().unwrap();
    assert!(
        build.status.success(),
        "scripts/kube-testenv build failed (needs Go >= 1.24 and the Go module proxy):\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let dir = tempfile::Builder::new()
        .prefix("klab-kube-testenv-")
        .tempdir()
        .unwrap();
    let path = dir.path().to_path_buf();
    {
        let mut s = STOPPERS.lock().unwrap();
        if s.is_empty() {
            // SAFETY: registers a plain function without arguments.
            unsafe {
                libc::atexit(stop_testenvs);
            }
        }
        s.push(Stopper(dir));
    }
    let start = Command::new(script())
        .arg("start")
        .arg(&path)
        .env("KUBE_TESTENV_CONTROLLERS", controllers)
        .output()
        .unwrap();
    assert!(
        start.status.success(),
        "scripts/kube-testenv start failed:\n{}",
        String::from_utf8_lossy(&start.stderr)
    );
    path.join("kubeconfig")
}

/// The shared testenv: kube-apiserver, etcd and the StatefulSet controller,
/// klab deployed in namespace klab.
fn env() -> &'static Env {
    ENV.get_or_init(|| {
        let t0 = Instant::now();
        let kubeconfig = start_testenv("statefulset");
        let k = |args: &[&str]| kubectl_with(&kubeconfig, args);
        ok(&k(&["create", "namespace", "klab"]));
        // Objects in a namespace that does not exist yet fail a server dry
        // run (kubernetes#83562): the namespace comes first.
        let dry_run = k(&["apply", "--dry-run=server", "-k", "manifests"]);
        ok(&k(&["apply", "-k", "manifests"]));
        eprintln!("testenv ready in {:.1}s", t0.elapsed().as_secs_f64());
        Env {
            kubeconfig,
            dry_run,
        }
    })
}

fn kubectl_with(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .current_dir(repo())
        .output()
        .expect("running kubectl")
}

fn kubectl(args: &[&str]) -> Output {
    kubectl_with(&env().kubeconfig, args)
}

/// A namespace with the broker's StatefulSet and Services of
/// manifests/broker.yaml (and, with `rbac`, the Roles of manifests/rbac.yaml,
/// still bound to the service accounts of namespace klab).
fn namespace_with_broker(ns: &str, rbac: bool) {
    ok(&kubectl(&["create", "namespace", ns]));
    let mut args = vec!["apply", "-n", ns, "-f", "manifests/broker.yaml"];
    if rbac {
        args.extend(["-f", "manifests/rbac.yaml"]);
    }
    ok(&kubectl(&args));
}

/// klab's API facade for `ns`, as the testenv's admin or as `who`
/// (impersonated, e.g. system:serviceaccount:klab:klab-runner).
fn kube_as(ns: &str, who: Option<&str>) -> Kube {
    let kc = Kubeconfig::read_from(&env().kubeconfig).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut cfg = rt
        .block_on(kube::Config::from_custom_kubeconfig(
            kc,
            &KubeConfigOptions::default(),
        ))
        .unwrap();
    cfg.auth_info.impersonate = who.map(String::from);
    Kube::from_config(cfg, ns).unwrap()
}

const RUNNER: &str = "system:serviceaccount:klab:klab-runner";
const TUNER: &str = "system:serviceaccount:klab:klab-tuner";

// ------------------------------------------------------------ a fake kubelet

/// Which broker pods the fake kubelet reports ready.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ready {
    None,
    All,
    /// Only pods of the StatefulSet's current update revision.
    UpdateRevision,
}

/// Plays kubelet for one namespace: writes the status of broker pods
/// (Running and Ready, as `ready` says) and of klab's run-once pods
/// (Succeeded) through the pods/status subresource.
struct Kubelet {
    ready: Arc<Mutex<Ready>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Kubelet {
    fn start(ns: &str, ready: Ready) -> Kubelet {
        let ready = Arc::new(Mutex::new(ready));
        let stop = Arc::new(AtomicBool::new(false));
        let kube = kube_as(ns, None);
        let (r, s) = (ready.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let pods: Api<Pod> = Api::namespaced(kube.client(), kube.namespace());
            let sets: Api<StatefulSet> = Api::namespaced(kube.client(), kube.namespace());
            while !s.load(Ordering::SeqCst) {
                let mode = *r.lock().unwrap();
                kube.block_on(async {
                    let update = sets
                        .get_opt("kafka")
                        .await
                        .ok()
                        .flatten()
                        .and_then(|s| s.status)
                        .and_then(|s| s.update_revision);
                    let Ok(list) = pods.list(&ListParams::default()).await else {
                        return;
                    };
                    for p in list {
                        let name = p.metadata.name.clone().unwrap_or_default();
                        let phase = p.status.as_ref().and_then(|s| s.phase.clone());
                        let klab_pod = p.metadata.labels.as_ref().is_some_and(|l| {
                            l.get("app.kubernetes.io/managed-by").map(String::as_str)
                                == Some("klab")
                        });
                        let body = if klab_pod {
                            if phase.is_some_and(|p| p == "Succeeded") {
                                continue;
                            }
                            succeeded(&p)
                        } else if name.starts_with("kafka-") {
                            let want = match mode {
                                Ready::None => false,
                                Ready::All => true,
                                Ready::UpdateRevision => {
                                    update.is_some() && status::revision(&p) == update.as_deref()
                                }
                            };
                            if !want || status::is_ready(&p) {
                                continue;
                            }
                            running_ready(&p)
                        } else {
                            continue;
                        };
                        let _ = pods
                            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
                            .await;
                    }
                });
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Kubelet {
            ready,
            stop,
            thread: Some(thread),
        }
    }

    fn set(&self, ready: Ready) {
        *self.ready.lock().unwrap() = ready;
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    klab::stats::report::rfc3339(secs)
}

fn container_of(p: &Pod) -> (String, String) {
    let c = &p.spec.as_ref().unwrap().containers[0];
    (c.name.clone(), c.image.clone().unwrap_or_default())
}

fn running_ready(p: &Pod) -> serde_json::Value {
    let (name, image) = container_of(p);
    let t = now();
    serde_json::json!({"status": {
        "phase": "Running",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": t},
            {"type": "Initialized", "status": "True", "lastTransitionTime": t},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": t},
            {"type": "Ready", "status": "True", "lastTransitionTime": t}
        ],
        "containerStatuses": [{"name": name, "image": image, "imageID": "", "ready": true,
            "started": true, "restartCount": 0, "state": {"running": {"startedAt": t}}}]
    }})
}

fn succeeded(p: &Pod) -> serde_json::Value {
    let (name, image) = container_of(p);
    let t = now();
    serde_json::json!({"status": {
        "phase": "Succeeded",
        "conditions": [{"type": "Ready", "status": "False", "reason": "PodCompleted",
            "lastTransitionTime": t}],
        "containerStatuses": [{"name": name, "image": image, "imageID": "", "ready": false,
            "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed",
            "startedAt": t, "finishedAt": t}}}]
    }})
}

fn broker_pod(kube: &Kube) -> Option<Pod> {
    kube.get_pod("kafka-0").unwrap()
}

fn sts(kube: &Kube) -> StatefulSet {
    kube.get_statefulset("kafka").unwrap().unwrap()
}

fn cfg(heap: Option<&str>, props: &[(&str, &str)]) -> BrokerConfig {
    BrokerConfig {
        heap: heap.map(|h| h.parse().unwrap()),
        properties: props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

// ------------------------------------------------------------ manifests, RBAC

#[test]
fn manifests_pass_a_server_side_dry_run() {
    let e = env();
    let out = ok(&e.dry_run);
    for object in [
        "serviceaccount/klab-producer",
        "serviceaccount/klab-consumer",
        "serviceaccount/klab-tuner",
        "serviceaccount/klab-runner",
        "role.rbac.authorization.k8s.io/klab-tuner",
        "role.rbac.authorization.k8s.io/klab-runner",
        "rolebinding.rbac.authorization.k8s.io/klab-tuner",
        "rolebinding.rbac.authorization.k8s.io/klab-runner",
        "service/kafka ",
        "service/kafka-headless",
        "statefulset.apps/kafka",
        "poddisruptionbudget.policy/kafka",
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(object.trim_end()) && l.contains("(server dry run)"));
        assert!(line.is_some(), "{object} not in the dry run:\n{out}");
    }
    // The real apply stored what the dry run validated.
    let got = ok(&kubectl(&[
        "-n",
        "klab",
        "get",
        "statefulset/kafka",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]));
    assert_eq!(got, format!("klab/broker:{}", env!("CARGO_PKG_VERSION")));
}

fn can_i(who: &str, args: &[&str]) -> bool {
    let mut a = vec!["auth", "can-i", "-n", "klab", "--as", who];
    a.extend_from_slice(args);
    let o = kubectl(&a);
    let out = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(
        out == "yes" || out == "no",
        "kubectl {a:?}: {out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out == "yes"
}

#[test]
fn rbac_is_least_privilege() {
    env();
    // The tuner: get and patch only the broker StatefulSet, read pods, no Secrets.
    for (args, want) in [
        (&["patch", "statefulsets/kafka"][..], true),
        (&["get", "statefulsets/kafka"][..], true),
        (&["patch", "statefulsets/other"][..], false),
        (&["delete", "statefulsets/kafka"][..], false),
        (&["delete", "pods/kafka-0"][..], false),
        (&["delete", "pods/klab-producer"][..], false),
        (&["delete", "pods"][..], false),
        (&["list", "pods"][..], true),
        (&["watch", "pods"][..], true),
        (&["get", "pods"][..], true),
        (&["create", "pods"][..], false),
        (&["get", "secrets"][..], false),
        (&["get", "secrets/klab-hmac"][..], false),
        (&["list", "secrets"][..], false),
        (&["get", "configmaps"][..], false),
    ] {
        assert_eq!(can_i(TUNER, args), want, "tuner {args:?}");
    }
    // The runner: what klab's Kubernetes target does, and no Secrets.
    for (args, want) in [
        (&["create", "pods"][..], true),
        (&["get", "pods"][..], true),
        (&["list", "pods"][..], true),
        (&["watch", "pods"][..], true),
        // Delete: its own pods and the broker's (the faults), no other pod.
        (&["delete", "pods"][..], false),
        (&["delete", "pods/klab-producer"][..], true),
        (&["delete", "pods/klab-consumer"][..], true),
        (&["delete", "pods/klab-tuner"][..], true),
        (&["delete", "pods/kafka-0"][..], true),
        (&["delete", "pods/kafka-2"][..], true),
        (&["delete", "pods/kafka-4"][..], true),
        (&["delete", "pods/kafka-5"][..], false),
        (&["delete", "pods/klab-producer-x"][..], false),
        (&["delete", "pods/prometheus-0"][..], false),
        (&["deletecollection", "pods"][..], false),
        (
            &["create", "pods/kafka-0", "--subresource=eviction"][..],
            false,
        ),
        (&["delete", "statefulsets/kafka"][..], false),
        (
            &["delete", "persistentvolumeclaims/data-kafka-0"][..],
            false,
        ),
        (&["get", "pods", "--subresource=log"][..], true),
        (&["create", "configmaps/klab-summary"][..], true),
        (&["patch", "configmaps/klab-summary"][..], true),
        (&["get", "configmaps/klab-summary"][..], true),
        (&["patch", "configmaps/other"][..], false),
        (&["create", "configmaps"][..], false),
        (&["get", "statefulsets/kafka"][..], true),
        (&["patch", "statefulsets/kafka"][..], true),
        (&["patch", "statefulsets/other"][..], false),
        (&["get", "secrets"][..], false),
        (&["get", "secrets/klab-hmac"][..], false),
        (&["create", "pods", "--subresource=exec"][..], false),
    ] {
        assert_eq!(can_i(RUNNER, args), want, "runner {args:?}");
    }
    // Producer and consumer: no API access at all.
    for sa in ["klab-producer", "klab-consumer"] {
        let who = format!("system:serviceaccount:klab:{sa}");
        for args in [&["get", "pods"][..], &["get", "secrets"][..]] {
            assert!(!can_i(&who, args), "{sa} {args:?}");
        }
    }
}

// ------------------------------------------------------------ klab's own calls

#[test]
fn the_runner_applies_the_broker_config_and_the_summary() {
    env();
    let kube = kube_as("klab", Some(RUNNER));
    let before = sts(&kube);
    let wanted = cfg(
        Some("768m"),
        &[("num.io.threads", "4"), ("log.segment.bytes", "1048576")],
    );
    let stored = kube.apply_broker_config("kafka", &wanted, 1).unwrap();
    assert_eq!(objects::broker_config_of(&stored).unwrap(), wanted);
    // Read back: the new value, a new generation, nothing else changed.
    let after = sts(&kube);
    assert_eq!(objects::broker_config_of(&after).unwrap(), wanted);
    assert!(after.metadata.generation > before.metadata.generation);
    let spec = |s: &StatefulSet| {
        let c = s
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .clone();
        let env: Vec<String> = c.env.unwrap().iter().map(|e| e.name.clone()).collect();
        (c.image, c.args, env)
    };
    assert_eq!(spec(&after), spec(&before));
    // klab owns that one env var (server-side apply, field manager klab).
    let klab = after
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .find(|m| m.manager.as_deref() == Some("klab"))
        .expect("a managedFields entry of klab");
    assert_eq!(klab.operation.as_deref(), Some("Apply"));
    let owned = serde_json::to_string(&klab.fields_v1.unwrap().0).unwrap();
    assert!(
        owned.contains(r#"k:{\"name\":\"KLAB_BROKER_CONFIG\"}"#),
        "{owned}"
    );
    assert!(!owned.contains("f:image"), "{owned}");
    assert!(!owned.contains("POD_NAME"), "{owned}");
    // The same config again: no new generation.
    let g = after.metadata.generation;
    kube.apply_broker_config("kafka", &wanted, 1).unwrap();
    assert_eq!(sts(&kube).metadata.generation, g);

    // The summary ConfigMap: created by an apply, then updated by another.
    for txt in ["first", "second"] {
        let cm = objects::summary_configmap("klab", "run-test", "[]".into(), txt.into());
        kube.apply_configmap(&cm).unwrap();
    }
    let api: Api<ConfigMap> = Api::namespaced(kube.client(), "klab");
    let cm = kube.block_on(api.get("klab-summary")).unwrap();
    let data = cm.data.unwrap();
    assert_eq!(data["summary.txt"], "second");
    assert_eq!(data["summary.json"], "[]");

    // The runner may start and delete klab's pods.
    let pod = objects::pod(&PodRequest {
        name: Component::Consumer.pod_name(),
        namespace: "klab".into(),
        component: Component::Consumer,
        instance: "run-test".into(),
        args: vec!["consume".into(), "--help".into()],
        active_deadline: Duration::from_secs(60),
    });
    kube.create_pod(&pod).unwrap();
    assert!(kube.get_pod("klab-consumer").unwrap().is_some());
    kube.delete_pod("klab-consumer").unwrap();
    kube.delete_pod("klab-consumer").unwrap(); // already gone: fine
}

#[test]
fn a_denied_call_names_verb_resource_namespace_and_identity() {
    env();
    let kube = kube_as("klab", Some(TUNER));
    let pod = objects::pod(&PodRequest {
        name: "klab-tuner-denied".into(),
        namespace: "klab".into(),
        component: Component::Tuner,
        instance: "run-test".into(),
        args: vec!["broker".into(), "set".into()],
        active_deadline: Duration::from_secs(60),
    });
    let e = kube.create_pod(&pod).unwrap_err();
    assert!(klab::error::is_usage(&e), "{e:#}");
    let m = e.to_string();
    assert!(
        m.starts_with(&format!(
            "Kubernetes denied {TUNER} permission to create pods/klab-tuner-denied in namespace klab"
        )),
        "{m}"
    );
    assert!(m.contains("403 Forbidden"), "{m}");
    assert!(m.contains("--serviceaccount=klab:klab-tuner"), "{m}");
    let e = kube
        .apply_configmap(&objects::summary_configmap(
            "klab",
            "x",
            "[]".into(),
            "".into(),
        ))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("permission to patch configmaps/klab-summary in namespace klab"),
        "{e}"
    );
    // What the tuner may do, it can.
    assert!(kube.get_statefulset("kafka").unwrap().is_some());
}

#[test]
fn klab_pods_pass_the_restricted_pod_security_standard() {
    env();
    let ns = "t-restricted";
    ok(&kubectl(&["create", "namespace", ns]));
    ok(&kubectl(&[
        "label",
        "namespace",
        ns,
        "pod-security.kubernetes.io/enforce=restricted",
    ]));
    let kube = kube_as(ns, None);
    for c in [Component::Producer, Component::Consumer, Component::Tuner] {
        let pod = objects::pod(&PodRequest {
            name: format!("klab-{}-restricted", c.as_str()),
            namespace: ns.into(),
            component: c,
            instance: "run-test".into(),
            args: vec!["--version".into()],
            active_deadline: Duration::from_secs(60),
        });
        kube.create_pod(&pod)
            .unwrap_or_else(|e| panic!("{c:?} pod rejected: {e:#}"));
    }
    // The check is on: a pod that keeps its capabilities is refused.
    let mut bad = objects::pod(&PodRequest {
        name: "klab-producer-bad".into(),
        namespace: ns.into(),
        component: Component::Producer,
        instance: "run-test".into(),
        args: vec![],
        active_deadline: Duration::from_secs(60),
    });
    bad.spec.as_mut().unwrap().containers[0]
        .security_context
        .as_mut()
        .unwrap()
        .capabilities = None;
    let e = kube.create_pod(&bad).unwrap_err();
    assert!(format!("{e:#}").contains("violates PodSecurity"), "{e:#}");
}

// ------------------------------------------------------------ rollouts

#[test]
fn rollout_waits_with_a_deadline_and_unsticks_a_broken_pod() {
    env();
    let ns = "t-rollout";
    namespace_with_broker(ns, false);
    let kube = kube_as(ns, None);
    let poll = Duration::from_millis(100);
    let kubelet = Kubelet::start(ns, Ready::All);

    // The deployed broker becomes ready: the rollout is complete.
    kube.wait_rollout("kafka", Duration::from_secs(60), poll)
        .unwrap();
    assert!(status::is_ready(&broker_pod(&kube).unwrap()));

    // A new config whose pod never gets ready: klab gives up at its
    // deadline and says what it waited for and where the pod is.
    kubelet.set(Ready::None);
    let two = cfg(Some("256m"), &[]);
    kube.apply_broker_config("kafka", &two, 1).unwrap();
    let t0 = Instant::now();
    let e = kube
        .wait_rollout("kafka", Duration::from_secs(3), poll)
        .unwrap_err();
    let waited = t0.elapsed();
    assert!(e.downcast_ref::<RolloutFailed>().is_some(), "{e:#}");
    let m = e.to_string();
    assert!(
        m.starts_with("timed out after 3s waiting for StatefulSet t-rollout/kafka to roll out"),
        "{m}"
    );
    assert!(
        m.contains("updated pods ready") || m.contains("pods updated"),
        "{m}"
    );
    assert!(
        m.contains("pod kafka-0: phase Pending") || m.contains("pod kafka-0: not created yet"),
        "{m}"
    );
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    let stuck = wait_for(
        "the pod of the second revision",
        Duration::from_secs(30),
        || {
            let st = sts(&kube).status?;
            let p = broker_pod(&kube)?;
            (status::revision(&p) == st.update_revision.as_deref()).then_some(p)
        },
    );
    assert!(!status::is_ready(&stuck));

    // A third config while that pod is not ready: the StatefulSet controller
    // alone would wait for it forever; klab deletes it, and the rollout of
    // the third revision completes once its pod is ready.
    kubelet.set(Ready::UpdateRevision);
    let three = cfg(Some("1g"), &[("num.io.threads", "8")]);
    kube.apply_broker_config("kafka", &three, 1).unwrap();
    kube.wait_rollout("kafka", Duration::from_secs(60), poll)
        .unwrap();
    let s = sts(&kube);
    let st = s.status.clone().unwrap();
    assert_eq!(st.current_revision, st.update_revision);
    let p = broker_pod(&kube).unwrap();
    assert_eq!(status::revision(&p), st.update_revision.as_deref());
    assert_ne!(p.metadata.uid, stuck.metadata.uid);
    let env = &p.spec.unwrap().containers[0].env.clone().unwrap();
    let value = env
        .iter()
        .find(|e| e.name == "KLAB_BROKER_CONFIG")
        .and_then(|e| e.value.clone())
        .unwrap();
    assert_eq!(
        klab::broker::knobs::parse_config(&value, "pod").unwrap(),
        three
    );
}

#[test]
fn without_a_statefulset_controller_the_wait_times_out_and_says_so() {
    // A second testenv without kube-controller-manager: nothing ever
    // processes the StatefulSet.
    let kubeconfig = BARE.get_or_init(|| start_testenv(""));
    let k = |args: &[&str]| kubectl_with(kubeconfig, args);
    ok(&k(&["create", "namespace", "t-bare"]));
    ok(&k(&[
        "apply",
        "-n",
        "t-bare",
        "-f",
        "manifests/broker.yaml",
    ]));
    let kc = Kubeconfig::read_from(kubeconfig).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = rt
        .block_on(kube::Config::from_custom_kubeconfig(
            kc,
            &KubeConfigOptions::default(),
        ))
        .unwrap();
    let kube = Kube::from_config(config, "t-bare").unwrap();
    kube.apply_broker_config("kafka", &cfg(Some("1g"), &[]), 1)
        .unwrap();
    let t0 = Instant::now();
    let e = kube
        .wait_rollout("kafka", Duration::from_secs(2), Duration::from_millis(100))
        .unwrap_err();
    assert!(t0.elapsed() >= Duration::from_secs(2) && t0.elapsed() < Duration::from_secs(8));
    assert!(e.downcast_ref::<RolloutFailed>().is_some(), "{e:#}");
    assert!(!klab::error::is_usage(&e));
    let m = e.to_string();
    assert!(
        m.starts_with("timed out after 2s waiting for StatefulSet t-bare/kafka to roll out (observedGeneration >= generation"),
        "{m}"
    );
    assert!(
        m.contains("the StatefulSet controller has not processed generation 2 yet (observed: 0)"),
        "{m}"
    );
    assert!(m.contains("pod kafka-0: not created yet"), "{m}");
}

#[test]
fn an_on_delete_statefulset_is_refused_at_once() {
    env();
    let ns = "t-ondelete";
    namespace_with_broker(ns, false);
    let kube = kube_as(ns, None);
    let kubelet = Kubelet::start(ns, Ready::All);
    kube.wait_rollout("kafka", Duration::from_secs(60), Duration::from_millis(100))
        .unwrap();
    drop(kubelet);
    // Stop the controller's view of this StatefulSet: an OnDelete strategy
    // never rolls out by itself, and klab says so at once.
    ok(&kubectl(&[
        "-n",
        ns,
        "patch",
        "statefulset/kafka",
        "--type=merge",
        "-p",
        r#"{"spec":{"updateStrategy":{"type":"OnDelete","rollingUpdate":null}}}"#,
    ]));
    kube.apply_broker_config("kafka", &cfg(Some("300m"), &[]), 1)
        .unwrap();
    let t0 = Instant::now();
    let e = kube
        .wait_rollout("kafka", Duration::from_secs(30), Duration::from_millis(100))
        .unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(klab::error::is_usage(&e), "{e:#}");
    assert!(e.to_string().contains("OnDelete"), "{e}");
}

// ------------------------------------------------------------ the demo flow

/// What the pods would have printed: a tuner pod's effective config (from
/// the StatefulSet's static config and the dynamic settings it was told to
/// make), a producer's and a consumer's outcome. Records every pod's name
/// and command.
struct FakeOutput {
    dynamic: Mutex<BTreeMap<String, String>>,
    seen: Seen,
}

/// (pod name, command line) of every pod whose output was read.
type Seen = Arc<Mutex<Vec<(String, Vec<String>)>>>;

impl PodLogs for FakeOutput {
    fn logs(&self, kube: &Kube, pod: &Pod) -> anyhow::Result<String> {
        let args = pod.spec.as_ref().unwrap().containers[0]
            .args
            .clone()
            .unwrap();
        let name = pod.metadata.name.clone().unwrap();
        self.seen.lock().unwrap().push((name, args.clone()));
        let t0 = 1_700_000_000_000_000_000u64;
        let line = match args[0].as_str() {
            "broker" => {
                let mut dynamic = self.dynamic.lock().unwrap();
                for w in args.windows(2).filter(|w| w[0] == "--set") {
                    let (k, v) = w[1].split_once('=').unwrap();
                    dynamic.insert(k.into(), v.into());
                }
                if args.iter().any(|a| a == "--clear") {
                    dynamic.clear();
                }
                let st = kube.get_statefulset("kafka")?.unwrap();
                let statics = objects::broker_config_of(&st)?;
                let mut eff = BTreeMap::new();
                for k in ["num.io.threads", "num.network.threads"] {
                    let info = klab::broker::knobs::lookup(k).unwrap();
                    eff.insert(
                        k.to_string(),
                        EffectiveValue {
                            value: Some(info.default.into()),
                            source: "Default".into(),
                        },
                    );
                }
                for (src, m) in [
                    ("StaticBroker", &statics.properties),
                    ("DynamicBroker", &*dynamic),
                ] {
                    for (k, v) in m {
                        eff.insert(
                            k.clone(),
                            EffectiveValue {
                                value: Some(v.clone()),
                                source: src.into(),
                            },
                        );
                    }
                }
                serde_json::to_string(&eff)?
            }
            "produce" => serde_json::to_string(&ProducerOutcome {
                producers: 1,
                produced: 1000,
                acked: 1000,
                acked_measured: 900,
                measured_sent: 900,
                window_start_ns: t0,
                last_send_ns: t0 + 1_000_000_000,
                last_ack_ns: t0 + 1_000_000_000,
                markers_sent: true,
                ..Default::default()
            })?,
            "consume" => serde_json::to_string(&ConsumerOutcome {
                consumed: 1000,
                finished: true,
                last_receive_ns: t0 + 1_000_000_000,
                ..Default::default()
            })?,
            other => anyhow::bail!("unexpected pod command {other}"),
        };
        Ok(format!("klab: starting\n{line}\nklab: done\n"))
    }
}

#[test]
fn the_demo_runs_every_lab_as_pods_with_the_runners_rights() {
    env();
    let ns = "t-demo";
    namespace_with_broker(ns, true);
    let labs_dir = tempfile::tempdir().unwrap();
    write_lab(
        labs_dir.path(),
        "01-base",
        "title = \"base\"\n[broker]\nheap = \"1g\"\n[workload]\nrate = 1000\nduration = \"1s\"\nwarmup = \"0s\"\n",
    );
    write_lab(
        labs_dir.path(),
        "02-io",
        "title = \"io\"\nextends = \"01\"\n[broker.properties]\n\"num.io.threads\" = 2\n[fix.properties]\n\"num.io.threads\" = 8\n",
    );
    write_lab(
        labs_dir.path(),
        "03-heap",
        "title = \"heap\"\nextends = \"02\"\n[broker]\nheap = \"256m\"\n[fix]\nheap = \"1g\"\n",
    );
    let labs = Labs::load(labs_dir.path()).unwrap();
    let results = tempfile::tempdir().unwrap();
    let run_dir = results.path().join("run");

    let _kubelet = Kubelet::start(ns, Ready::UpdateRevision);
    // klab runs as the runner's service account, bound by manifests/rbac.yaml.
    let kube = kube_as(ns, Some(RUNNER));
    let mut s = K8sSession::new(
        kube,
        K8sOptions {
            run_dir: run_dir.clone(),
            quick: false,
            progress: klab::stats::progress::Progress::Quiet,
            timeouts: Timeouts {
                rollout: Duration::from_secs(60),
                pod_start: Duration::from_secs(30),
                tuner: Duration::from_secs(30),
                poll: Duration::from_millis(100),
            },
            statefulset: "kafka".into(),
            brokers: 1,
        },
    )
    .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    s.set_pod_logs(Box::new(FakeOutput {
        dynamic: Mutex::new(BTreeMap::new()),
        seen: seen.clone(),
    }));
    let t0 = Instant::now();
    s.prepare().unwrap();
    let mut rows = Vec::new();
    run_demo(&mut s, &labs, &FixSource::Lab, &mut rows).unwrap();
    eprintln!("demo flow: {:.1}s", t0.elapsed().as_secs_f64());

    // The rows of the local demo.
    let steps: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.lab.clone(), r.step.clone()))
        .collect();
    let want: Vec<(String, String)> = [
        ("01-base", "reference"),
        ("02-io", "degraded"),
        ("02-io", "fixed"),
        ("03-heap", "degraded"),
        ("03-heap", "fixed"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(steps, want);
    let applied: Vec<Applied> = rows.iter().map(|r| r.result.broker.applied).collect();
    assert_eq!(
        applied,
        [
            Applied::Restarted,
            Applied::Dynamic,
            Applied::Dynamic,
            Applied::Restarted,
            Applied::Restarted
        ]
    );
    for r in &rows {
        let res = &r.result;
        assert!(res.complete, "{:?}", res.reason);
        assert_eq!(res.broker.target, TargetKind::Kubernetes);
        assert_eq!(res.broker.bootstrap, "kafka.t-demo.svc:9092");
        assert_eq!(res.acked, 1000);
        assert!((res.throughput.msgs_per_s - 900.0).abs() < 1e-6);
        assert!(res.workload.topic.as_deref().unwrap().starts_with("klab-"));
    }
    assert_eq!(
        rows[1].result.broker.requested.properties["num.io.threads"],
        "2"
    );
    let eff = &rows[1].result.broker.effective["num.io.threads"];
    assert_eq!(
        (eff.value.as_deref(), eff.source.as_str()),
        (Some("2"), "DynamicBroker")
    );
    let eff = &rows[3].result.broker.effective["num.io.threads"];
    assert_eq!(
        (eff.value.as_deref(), eff.source.as_str()),
        (Some("2"), "StaticBroker")
    );
    assert_eq!(s.ledger.restarts, 3);
    assert!(run_dir.join("02-io.degraded.json").is_file());
    assert!(run_dir.join("02-io.degraded.e2e.hlog").is_file());

    // The broker ends with lab 03's fix as its static config.
    let st = s.kube.get_statefulset("kafka").unwrap().unwrap();
    assert_eq!(
        objects::broker_config_of(&st).unwrap(),
        cfg(Some("1g"), &[("num.io.threads", "8")])
    );

    // The pods, in order: the tuner pod clears dynamic settings before each
    // restart and reads the config after it; a restart is followed by a
    // throw-away warm-up load; every load is a consumer, then a producer.
    // In the order klab read their output (a load's consumer, which it
    // created first, then its producer). One name per component.
    let seen = seen.lock().unwrap().clone();
    for (name, args) in &seen {
        let want = match args[0].as_str() {
            "broker" => "klab-tuner",
            "consume" => "klab-consumer",
            _ => "klab-producer",
        };
        assert_eq!(name, want, "{args:?}");
    }
    let seen: Vec<Vec<String>> = seen.into_iter().map(|(_, a)| a).collect();
    let short: Vec<String> = seen
        .iter()
        .map(|a| match a[0].as_str() {
            "broker" => {
                let mut s = "set".to_string();
                for w in a.windows(2).filter(|w| w[0] == "--set") {
                    if w[1].starts_with("num.io.threads") {
                        s.push(' ');
                        s.push_str(&w[1]);
                    }
                }
                if a.contains(&"--clear".to_string()) {
                    s.push_str(" clear");
                }
                s
            }
            "consume" => "c".into(),
            "produce" => "p".into(),
            other => other.into(),
        })
        .collect();
    let want = [
        "set num.io.threads=8 clear", // prepare: whatever a previous run left
        "set",
        "c",
        "p",
        "c",
        "p", // reference: rollout, read, warm-up, measure
        "set num.io.threads=2",
        "c",
        "p", // 02 degraded
        "set num.io.threads=8",
        "c",
        "p", // 02 fixed
        "set num.io.threads=8 clear",
        "set",
        "c",
        "p",
        "c",
        "p", // 03 degraded
        "set",
        "c",
        "p",
        "c",
        "p", // 03 fixed
    ];
    assert_eq!(short, want);
    // Producer pods run the lab's workload; consumers delete their topic.
    let produce = seen.iter().find(|a| a[0] == "produce").unwrap();
    assert!(
        produce.windows(2).any(|w| w == ["--rate", "1000"]),
        "{produce:?}"
    );
    let consume = seen.iter().find(|a| a[0] == "consume").unwrap();
    assert!(consume.contains(&"--delete-topic".to_string()));

    // No pod of the run is left.
    let pods: Api<Pod> = Api::namespaced(s.kube.client(), ns);
    let lp = ListParams::default().labels(&format!("app.kubernetes.io/instance={}", s.instance));
    let left = s.kube.block_on(pods.list(&lp)).unwrap();
    assert!(
        left.items.is_empty(),
        "{:?}",
        left.items
            .iter()
            .map(|p| &p.metadata.name)
            .collect::<Vec<_>>()
    );

    // The summary as the local demo writes it, and in the ConfigMap.
    klab::lab::summary::write_summary(&run_dir, "test", &rows, &s.ledger.results, None).unwrap();
    klab::k8s::summary::publish_summary(&s, &run_dir).unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(s.kube.client(), ns);
    let cm = s.kube.block_on(cms.get("klab-summary")).unwrap();
    let data = cm.data.unwrap();
    assert!(data["summary.txt"].contains("03-heap"));
    let json: Vec<klab::model::StepResult> = serde_json::from_str(&data["summary.json"]).unwrap();
    assert_eq!(json.len(), 5);
}

// ------------------------------------------------------------ the command line

fn klab_demo(kubeconfig: &Path, extra: &[&str]) -> Output {
    let results = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_klab"))
        .args(["demo", "--target", "k8s", "--quiet", "--results"])
        .arg(results.path())
        .args(extra)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .current_dir(repo())
        .output()
        .unwrap()
}

#[test]
fn an_unreachable_cluster_says_how_to_start_one() {
    let dir = tempfile::tempdir().unwrap();
    // Port 1 on loopback: nothing listens there.
    let kc = dir.path().join("kubeconfig");
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: k3d-klab\n  context:\n    cluster: c\n    user: u\ncurrent-context: k3d-klab\nusers:\n- name: u\n  user:\n    token: x\n",
    )
    .unwrap();
    let t0 = Instant::now();
    let o = klab_demo(&kc, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "cannot reach the Kubernetes API server at https://127.0.0.1:1/ (context k3d-klab)"
        ),
        "{err}"
    );
    assert!(err.contains("nix run .#demo -- --target k3d"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(15));

    let o = klab_demo(&kc, &["--context", "no-such-context"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--context no-such-context: no such context"),
        "{err}"
    );
}

#[test]
fn a_namespace_without_klab_says_how_to_deploy_it() {
    let o = klab_demo(&env().kubeconfig, &["--namespace", "nothing-here"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("there is no StatefulSet kafka in namespace nothing-here"),
        "{err}"
    );
    assert!(err.contains("kubectl apply -k manifests"), "{err}");
}

// ------------------------------------------------------------ N brokers, faults

/// A pod's arguments with the `$(VAR)` references the kubelet expands,
/// resolved from the pod's env (values, and the fieldRefs of name and
/// namespace).
fn expanded_args(p: &Pod) -> (Vec<String>, BTreeMap<String, String>) {
    let c = &p.spec.as_ref().unwrap().containers[0];
    let mut env = BTreeMap::new();
    for e in c.env.iter().flatten() {
        let v = match (&e.value, &e.value_from) {
            (Some(v), _) => v.clone(),
            (None, Some(from)) => match from.field_ref.as_ref().unwrap().field_path.as_str() {
                "metadata.name" => p.metadata.name.clone().unwrap(),
                "metadata.namespace" => p.metadata.namespace.clone().unwrap(),
                other => panic!("fieldRef {other}"),
            },
            _ => String::new(),
        };
        env.insert(e.name.clone(), v);
    }
    let args = c
        .args
        .iter()
        .flatten()
        .map(|a| {
            let mut a = a.clone();
            for (k, v) in &env {
                a = a.replace(&format!("$({k})"), v);
            }
            assert!(!a.contains("$("), "unresolved reference in {a}");
            a
        })
        .collect();
    (args, env)
}

/// `klab broker render` with a broker pod's own arguments and config: the
/// server.properties that pod's `klab broker exec` writes.
fn rendered_for(p: &Pod) -> String {
    let (args, env) = expanded_args(p);
    let o = Command::new(env!("CARGO_BIN_EXE_klab"))
        .args(["broker", "render"])
        .args(&args)
        .env("KLAB_BROKER_CONFIG", &env["KLAB_BROKER_CONFIG"])
        .output()
        .unwrap();
    ok(&o)
}

fn prop(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{key} not in\n{text}"))
        .to_string()
}

#[test]
fn three_brokers_are_one_quorum_with_replicated_topics() {
    env();
    let ns = "t-quorum";
    namespace_with_broker(ns, true);
    // The PodDisruptionBudget came with the broker's manifest.
    let pdb = ok(&kubectl(&[
        "-n",
        ns,
        "get",
        "poddisruptionbudget/kafka",
        "-o",
        "jsonpath={.spec.maxUnavailable} {.spec.selector.matchLabels}",
    ]));
    assert!(pdb.starts_with("1 "), "{pdb}");
    assert!(
        pdb.contains(r#""app.kubernetes.io/component":"broker""#),
        "{pdb}"
    );

    let labs_dir = tempfile::tempdir().unwrap();
    write_lab(
        labs_dir.path(),
        "01-replicated",
        "title = \"replicated\"\n[cluster]\nbrokers = 3\n[broker]\nheap = \"512m\"\n[workload]\nrate = 1000\nduration = \"1s\"\nwarmup = \"0s\"\nreplication_factor = 3\nmin_insync_replicas = 2\n",
    );
    let labs = Labs::load(labs_dir.path()).unwrap();
    let results = tempfile::tempdir().unwrap();
    let _kubelet = Kubelet::start(ns, Ready::UpdateRevision);
    let kube = kube_as(ns, Some(RUNNER));
    let mut s = K8sSession::new(
        kube,
        K8sOptions {
            run_dir: results.path().join("run"),
            quick: false,
            progress: klab::stats::progress::Progress::Quiet,
            timeouts: Timeouts {
                rollout: Duration::from_secs(90),
                pod_start: Duration::from_secs(30),
                tuner: Duration::from_secs(30),
                poll: Duration::from_millis(100),
            },
            statefulset: "kafka".into(),
            brokers: labs.baseline().brokers,
        },
    )
    .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    s.set_pod_logs(Box::new(FakeOutput {
        dynamic: Mutex::new(BTreeMap::new()),
        seen: seen.clone(),
    }));
    // The runner scales the StatefulSet to the lab's 3 brokers and waits
    // for all of them.
    s.prepare().unwrap();
    assert_eq!(s.replicas(), 3);
    let st = sts(&s.kube);
    assert_eq!(objects::broker_replicas_of(&st), (3, Some(3)));
    assert_eq!(st.status.as_ref().unwrap().ready_replicas, Some(3));

    // Each pod runs as its own node of one quorum of three voters.
    let voters = format!(
        "1@kafka-0.kafka-headless.{ns}.svc:9093,2@kafka-1.kafka-headless.{ns}.svc:9093,3@kafka-2.kafka-headless.{ns}.svc:9093"
    );
    let mut ids = Vec::new();
    for i in 0..3 {
        let p = s.kube.get_pod(&format!("kafka-{i}")).unwrap().unwrap();
        let text = rendered_for(&p);
        assert_eq!(prop(&text, "node.id"), (i + 1).to_string(), "{text}");
        assert_eq!(prop(&text, "process.roles"), "broker,controller");
        assert_eq!(prop(&text, "controller.quorum.voters"), voters);
        assert_eq!(
            prop(&text, "advertised.listeners"),
            format!("PLAINTEXT://kafka-{i}.kafka-headless.{ns}.svc:9092")
        );
        assert_eq!(prop(&text, "offsets.topic.replication.factor"), "3");
        let id = text
            .lines()
            .find_map(|l| l.strip_prefix("# KRaft cluster id: "))
            .unwrap()
            .to_string();
        ids.push(id);
    }
    // One cluster id for all of them, this namespace's.
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(
        ids[0],
        klab::broker::quorum::statefulset_cluster_id("kafka", &format!("kafka-headless.{ns}.svc"))
    );

    // The lab's step: its topic gets the lab's replication.
    let mut rows = Vec::new();
    run_demo(&mut s, &labs, &FixSource::Lab, &mut rows).unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].result.complete, "{:?}", rows[0].result.reason);
    let consume: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .find(|(_, a)| a[0] == "consume")
        .map(|(_, a)| a.clone())
        .unwrap();
    assert!(
        consume
            .windows(2)
            .any(|w| w == ["--create-replication-factor", "3"]),
        "{consume:?}"
    );
    assert!(
        consume
            .windows(2)
            .any(|w| w == ["--create-min-insync-replicas", "2"]),
        "{consume:?}"
    );
    // The restart for lab 01's heap kept the size.
    assert_eq!(objects::broker_replicas_of(&sts(&s.kube)), (3, Some(3)));
}

#[test]
fn kill_and_stop_faults_delete_broker_pods_and_the_statefulset_brings_them_back() {
    env();
    let ns = "t-faults";
    namespace_with_broker(ns, true);
    let _kubelet = Kubelet::start(ns, Ready::All);
    let admin = kube_as(ns, None);
    admin
        .apply_broker_config("kafka", &cfg(Some("512m"), &[]), 2)
        .unwrap();
    admin
        .wait_rollout("kafka", Duration::from_secs(60), Duration::from_millis(100))
        .unwrap();
    let uid = |i: u32| {
        admin
            .get_pod(&format!("kafka-{i}"))
            .unwrap()
            .and_then(|p| p.metadata.uid)
    };
    let before = [uid(0), uid(1)];
    assert!(before.iter().all(Option::is_some));

    // The tuner may not delete a broker.
    let e = kube_as(ns, Some(TUNER)).delete_pod("kafka-0").unwrap_err();
    assert!(
        e.to_string().contains("permission to delete pods/kafka-0"),
        "{e}"
    );
    assert_eq!(uid(0), before[0]);

    // As the runner: kill broker 2 (pod kafka-1), stop broker 1 (kafka-0).
    let runner = kube_as(ns, Some(RUNNER));
    let specs: Vec<klab::model::FaultSpec> =
        ["at=0s,action=kill,broker=2", "at=0s,action=stop,broker=1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
    let mut faults = klab::k8s::faults::PodFaults::new("kafka", &specs);
    let t0 = Instant::now();
    let window = std::time::SystemTime::now();
    faults.tick(Duration::ZERO, &runner);
    assert_eq!(faults.next_due(), None);
    // The StatefulSet controller creates both again (new uids), the fake
    // kubelet makes them ready, and the timeline notes they are back.
    wait_for(
        "both broker pods recreated",
        Duration::from_secs(60),
        || {
            (uid(0).is_some() && uid(1).is_some() && uid(0) != before[0] && uid(1) != before[1])
                .then_some(())
        },
    );
    wait_for("both pods ready again", Duration::from_secs(60), || {
        faults.tick(t0.elapsed(), &runner);
        let done = admin
            .get_pod("kafka-0")
            .unwrap()
            .is_some_and(|p| status::is_ready(&p))
            && admin
                .get_pod("kafka-1")
                .unwrap()
                .is_some_and(|p| status::is_ready(&p));
        done.then_some(())
    });
    // One more look after both are ready records the second.
    faults.tick(t0.elapsed(), &runner);
    let records = faults.finish(Some(window));
    assert_eq!(records.len(), 2, "{records:?}");
    for (r, (action, broker)) in records.iter().zip([
        (klab::model::FaultAction::Kill, 2),
        (klab::model::FaultAction::Stop, 1),
    ]) {
        assert_eq!(r.action, action);
        assert_eq!(r.broker, broker);
        assert_eq!(r.error, None, "{r:?}");
        assert!(r.at_s >= 0.0 && r.at_s < 5.0, "{r:?}");
        let back = r.back_at_s.unwrap_or_else(|| panic!("not back: {r:?}"));
        assert!(back >= r.at_s, "{r:?}");
    }
    // A fault on a pod that does not exist says so in its record.
    let mut f = klab::k8s::faults::PodFaults::new(
        "kafka",
        &["at=0s,action=kill,broker=5".parse().unwrap()],
    );
    f.tick(Duration::ZERO, &runner);
    let r = f.finish(None);
    assert_eq!(r[0].error.as_deref(), Some("pod kafka-4 did not exist"));
}

#[test]
fn faults_kubernetes_cannot_run_are_refused_before_anything_starts() {
    let labs = tempfile::tempdir().unwrap();
    write_lab(
        labs.path(),
        "01-base",
        "title = \"base\"\n[cluster]\nbrokers = 3\n[workload]\nrate = 1000\nduration = \"10s\"\n",
    );
    write_lab(
        labs.path(),
        "02-pause",
        "title = \"pause\"\nextends = \"01\"\n\n[[faults]]\nat = \"1s\"\naction = \"kill\"\nbroker = 2\n\n[[faults]]\nat = \"2s\"\naction = \"pause\"\nbroker = 1\nfor = \"2s\"\n",
    );
    // A kubeconfig that points nowhere: the labs are refused first.
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\nusers:\n- name: u\n  user:\n    token: x\n",
    )
    .unwrap();
    let results = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_klab"))
        .args(["demo", "--target", "k8s", "--quiet", "--results"])
        .arg(results.path())
        .arg("--labs")
        .arg(labs.path())
        .env("KUBECONFIG", &kc)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let file = labs.path().join("02-pause/lab.toml");
    assert!(
        err.contains(&format!(
            "{}:11:10: faults[2].action: pause cannot run on Kubernetes",
            file.display()
        )),
        "{err}"
    );
    assert!(!err.contains("cannot reach"), "{err}");
    // Nothing was written.
    assert_eq!(std::fs::read_dir(results.path()).unwrap().count(), 0);
}
