//! A lab session on Kubernetes: the broker StatefulSet reconfigured between
//! steps (dynamically through a tuner pod when Kafka allows it, by a
//! rollout when a restart-only knob changes), each step a consumer pod and
//! a producer pod whose outcomes become a StepResult; and the demo loop
//! over the labs, with the same rows, ratios and summary as the local demo.

use super::api::{Kube, RolloutFailed};
use super::faults::PodFaults;
use super::objects::{self, Component, PodRequest};
use super::status::{PodState, describe_pod, last_json, pod_state, tail};
use super::{Timeouts, bootstrap};
use crate::broker::admin::Refused;
use crate::broker::apply::Reconfigure;
use crate::broker::dynamic::{dynamic_settings, mismatches};
use crate::broker::knobs;
use crate::cancel;
use crate::error::Interrupted;
use crate::lab::target::{LabTarget, Ledger, StepSpec, step_file, warm_up_workload};
use crate::load::outcome::{ConsumerOutcome, ProducerOutcome, assemble};
use crate::model::{Applied, TargetKind};
use crate::model::{BrokerConfig, EffectiveValue, FaultRecord, Workload};
use crate::stats::report::Measurement;
use crate::step;
use crate::usage;
use anyhow::{Result, anyhow};
use k8s_openapi::api::core::v1::Pod;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where a finished pod's output comes from. The API (`pods/log`) in real
/// use; a test without kubelets supplies what the pod would have printed.
pub trait PodLogs {
    fn logs(&self, kube: &Kube, pod: &Pod) -> Result<String>;
}

/// Reads the log of the pod's (only) container through the API.
pub struct ApiLogs;

impl PodLogs for ApiLogs {
    fn logs(&self, kube: &Kube, pod: &Pod) -> Result<String> {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let container = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .map(|c| c.name.clone())
            .unwrap_or_default();
        kube.pod_logs(name, &container)
    }
}

#[derive(Debug, Clone)]
pub struct K8sOptions {
    /// `results/<timestamp>/`: every step's JSON and histograms go here.
    pub run_dir: PathBuf,
    pub quick: bool,
    pub progress: crate::stats::progress::Progress,
    pub timeouts: Timeouts,
    /// The broker StatefulSet (`kafka`).
    pub statefulset: String,
    /// Brokers the labs run on (`[cluster] brokers` of the track's first
    /// lab): [`K8sSession::prepare`] scales the StatefulSet to it.
    pub brokers: u32,
}

/// One run against the broker of one namespace.
pub struct K8sSession {
    pub kube: Kube,
    pub opts: K8sOptions,
    logs: Box<dyn PodLogs>,
    /// `app.kubernetes.io/instance` of this run's pods and ConfigMap.
    pub instance: String,
    /// What the StatefulSet's pod template says (KLAB_BROKER_CONFIG).
    static_cfg: BrokerConfig,
    /// The StatefulSet's size (`spec.replicas` and KLAB_BROKER_REPLICAS).
    replicas: u32,
    /// Per-broker dynamic settings klab made since the last (re)start.
    dynamic: BTreeMap<String, String>,
    /// The broker's effective config, as the last tuner pod reported it.
    effective: BTreeMap<String, EffectiveValue>,
    pub ledger: Ledger,
    /// Pods of this run that may still exist.
    live: Vec<String>,
}

/// How long a workload runs (warm-up included), to size deadlines.
fn run_estimate(w: &Workload) -> Duration {
    let body = match (w.duration, w.messages, w.rate) {
        (Some(d), _, _) => d,
        (None, Some(n), Some(r)) if r > 0.0 => Duration::from_secs_f64(n as f64 / r),
        _ => Duration::from_secs(600),
    };
    w.warmup + body
}

/// The consumer's own deadline: twice the run, plus time for the producer
/// pod to start and find the topic, plus the consumer's drain.
fn consumer_timeout(w: &Workload) -> Duration {
    run_estimate(w) * 2 + Duration::from_secs(180)
}

/// A label value made of the run directory's name: `run-20261123-051702`.
fn instance_of(run_dir: &std::path::Path) -> String {
    let base: String = run_dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let mut s = format!("run-{base}");
    s.truncate(63);
    s.trim_end_matches('-').to_string()
}

impl K8sSession {
    pub fn new(kube: Kube, opts: K8sOptions) -> Result<K8sSession> {
        std::fs::create_dir_all(&opts.run_dir)?;
        Ok(K8sSession {
            instance: instance_of(&opts.run_dir),
            kube,
            opts,
            logs: Box::new(ApiLogs),
            static_cfg: BrokerConfig::default(),
            replicas: 1,
            dynamic: BTreeMap::new(),
            effective: BTreeMap::new(),
            ledger: Ledger::default(),
            live: Vec::new(),
        })
    }

    /// Replaces where pod output comes from (tests without a kubelet).
    pub fn set_pod_logs(&mut self, logs: Box<dyn PodLogs>) {
        self.logs = logs;
    }

    fn bootstrap(&self) -> String {
        bootstrap(self.kube.namespace())
    }

    /// The broker's settings now: its static config with klab's dynamic
    /// changes on top.
    pub fn config(&self) -> BrokerConfig {
        let mut c = self.static_cfg.clone();
        for (k, v) in &self.dynamic {
            c.properties.insert(k.clone(), v.clone());
        }
        c
    }

    pub fn effective(&self) -> &BTreeMap<String, EffectiveValue> {
        &self.effective
    }

    /// Reads the broker's config from the StatefulSet, waits until it is
    /// rolled out and ready, and removes dynamic settings an earlier run
    /// may have left (they live in the KRaft metadata on the broker's volume
    /// and would hide the static config).
    pub fn prepare(&mut self) -> Result<()> {
        let name = self.opts.statefulset.clone();
        let sts = self.kube.broker_statefulset(&name)?;
        self.static_cfg = objects::broker_config_of(&sts)?;
        let (replicas, told) = objects::broker_replicas_of(&sts);
        self.replicas = replicas;
        let want = self.opts.brokers.max(1);
        if want != replicas || told != Some(want) {
            self.say(&format!(
                "broker: StatefulSet {}/{name} has {replicas} pod(s); scaling it to {want} (one KRaft quorum, the labs' [cluster] brokers)",
                self.kube.namespace()
            ));
            let cfg = self.static_cfg.clone();
            self.kube.apply_broker_config(&name, &cfg, want)?;
            self.replicas = want;
        }
        self.say(&format!(
            "broker: StatefulSet {}/{name}, {} pod(s) ({}); waiting until it is ready",
            self.kube.namespace(),
            self.replicas,
            self.static_cfg
        ));
        self.kube
            .wait_rollout(&name, self.opts.timeouts.rollout, self.opts.timeouts.poll)?;
        let pools = knobs::THREAD_POOLS.iter().map(|k| k.to_string()).collect();
        self.effective = self.clear_dynamic(pools)?;
        Ok(())
    }

    /// Walks the thread pools among `pools` back to their static values,
    /// then removes every dynamic setting (the tuner pod's
    /// `klab broker set --clear`); returns the effective config.
    fn clear_dynamic(&mut self, pools: Vec<String>) -> Result<BTreeMap<String, EffectiveValue>> {
        let back = knobs::pool_fallbacks(&self.static_cfg, pools.iter().map(String::as_str));
        let eff = self.broker_set(&back, true)?;
        self.dynamic.clear();
        Ok(eff)
    }

    /// Dynamic settings through a tuner pod (`klab broker set`, which
    /// reads every value back: a setting that did not take fails the pod).
    fn set_dynamic(&mut self, changes: &BTreeMap<String, String>) -> Result<()> {
        match self.broker_set(changes, false) {
            Ok(eff) => {
                self.effective = eff;
                self.dynamic.extend(changes.clone());
                Ok(())
            }
            Err(e) => {
                // Some steps may have been taken: learn where the broker is.
                if let Ok(eff) = self.broker_set(&BTreeMap::new(), false) {
                    self.dynamic = dynamic_settings(&eff);
                    self.effective = eff;
                }
                Err(e)
            }
        }
    }

    /// A new static config: clear klab's dynamic settings, apply the
    /// config to the pod template, wait for the rollout, check what the
    /// broker reports.
    fn rollout(&mut self, cfg: &BrokerConfig) -> Result<()> {
        if !self.dynamic.is_empty() {
            let pools = self.dynamic.keys().cloned().collect();
            self.clear_dynamic(pools)?;
        }
        let name = self.opts.statefulset.clone();
        self.say(&format!(
            "restarting the broker: rollout of StatefulSet {}/{name} with {cfg}",
            self.kube.namespace()
        ));
        self.kube.apply_broker_config(&name, cfg, self.replicas)?;
        self.static_cfg = cfg.clone();
        match self
            .kube
            .wait_rollout(&name, self.opts.timeouts.rollout, self.opts.timeouts.poll)
        {
            Ok(()) => {}
            Err(e) if e.downcast_ref::<RolloutFailed>().is_some() => {
                return Err(anyhow::Error::new(Refused(format!(
                    "the broker did not become ready with {cfg}: {e:#}"
                ))));
            }
            Err(e) => return Err(e),
        }
        self.effective = self.broker_set(&BTreeMap::new(), false)?;
        let want = BrokerConfig {
            heap: None,
            properties: cfg.properties.clone(),
        };
        let problems = mismatches(&want, &self.effective, "StaticBroker");
        if !problems.is_empty() {
            return Err(anyhow::Error::new(Refused(format!(
                "the broker did not take these settings: {}",
                problems.join("; ")
            ))));
        }
        Ok(())
    }

    /// Brokers the StatefulSet runs now.
    pub fn replicas(&self) -> u32 {
        self.replicas
    }

    /// Makes room for pod `name`: one of this run, or one that has
    /// finished, is deleted (and klab waits until its name is free); one of
    /// another run that still works means two runs share this broker.
    fn free_name(&mut self, name: &str) -> Result<()> {
        let Some(old) = self.kube.get_pod(name)? else {
            return Ok(());
        };
        let instance = old
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("app.kubernetes.io/instance"))
            .cloned()
            .unwrap_or_default();
        let ours = instance == self.instance;
        if !ours && !pod_state(&old).is_finished() && old.metadata.deletion_timestamp.is_none() {
            return Err(usage!(
                "pod {name} of another klab run ({instance}) is still working in namespace {ns}: two runs on one broker would disturb each other's measurements. Wait for it, or delete it: kubectl -n {ns} delete pod {name}",
                ns = self.kube.namespace()
            ));
        }
        tracing::info!(pod = name, "deleting a pod left from {instance}");
        self.kube.delete_pod(name)?;
        self.kube
            .wait_pod_gone(name, self.opts.timeouts.pod_start, self.opts.timeouts.poll)
    }

    fn create(&mut self, c: Component, args: Vec<String>, deadline: Duration) -> Result<String> {
        let name = c.pod_name();
        self.free_name(&name)?;
        let pod = objects::pod(&PodRequest {
            name: name.clone(),
            namespace: self.kube.namespace().to_string(),
            component: c,
            instance: self.instance.clone(),
            args,
            active_deadline: deadline,
        });
        tracing::info!(pod = name, "creating");
        self.kube.create_pod(&pod)?;
        self.live.push(name.clone());
        Ok(name)
    }

    /// Deletes this run's pods that may still exist (best effort).
    pub fn cleanup(&mut self) {
        for name in std::mem::take(&mut self.live) {
            if let Err(e) = self.kube.delete_pod(&name) {
                tracing::warn!("could not delete pod {name}: {e:#}");
            }
        }
    }

    fn stuck(&self, name: &str, c: Component, why: &str) -> anyhow::Error {
        let ns = self.kube.namespace();
        if why.contains("CreateContainerConfigError") && why.contains(super::HMAC_SECRET) {
            usage!(
                "pod {name} cannot start: {why}. Producer and consumer read the HMAC key from the Secret {}; create it once: kubectl -n {ns} create secret generic {} --from-file=secret=<(head -c 32 /dev/urandom | base64 | tr -d '\\n')",
                super::HMAC_SECRET,
                super::HMAC_SECRET
            )
        } else if why.contains("Image") || why.contains("image") {
            usage!(
                "pod {name} cannot start: {why}. The image {} must already be in the cluster (imagePullPolicy IfNotPresent; klab's images are built by Nix, never pulled): `nix run .#demo -- --target k3d` imports them into k3d, or load `nix build .#{}-image` into your cluster's nodes",
                c.image(),
                c.as_str()
            )
        } else {
            usage!("pod {name} cannot start: {why}")
        }
    }

    /// Polls pods until `done` holds for all of them; a stuck pod, an
    /// interruption or the deadline end the wait.
    fn wait_pods(
        &self,
        pods: &[(&str, Component)],
        done: impl Fn(&PodState) -> bool,
        deadline: Instant,
        what: &str,
    ) -> Result<Vec<Pod>> {
        self.wait_pods_with(pods, done, deadline, what, &mut |_| None)
    }

    /// [`K8sSession::wait_pods`], calling `each` with the pods after every
    /// look; `each` may ask for the next look sooner than the poll interval.
    fn wait_pods_with(
        &self,
        pods: &[(&str, Component)],
        done: impl Fn(&PodState) -> bool,
        deadline: Instant,
        what: &str,
        each: &mut dyn FnMut(&[Pod]) -> Option<Duration>,
    ) -> Result<Vec<Pod>> {
        loop {
            if cancel::interrupted() {
                return Err(Interrupted.into());
            }
            let mut out = Vec::new();
            let mut pending = Vec::new();
            for (name, c) in pods {
                let pod = self.kube.get_pod(name)?.ok_or_else(|| {
                    anyhow!("pod {name} disappeared (deleted by someone else, or evicted)")
                })?;
                let st = pod_state(&pod);
                if let PodState::Stuck(why) = &st {
                    return Err(self.stuck(name, *c, why));
                }
                if !done(&st) {
                    pending.push(describe_pod(&pod));
                }
                out.push(pod);
            }
            let sooner = each(&out);
            if pending.is_empty() {
                return Ok(out);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(anyhow!(
                    "timed out waiting for {what}: {}",
                    pending.join("; ")
                ));
            }
            let poll = sooner.map_or(self.opts.timeouts.poll, |d| d.min(self.opts.timeouts.poll));
            std::thread::sleep(poll.min(deadline - now));
        }
    }

    /// Runs a tuner pod: `klab broker set` with `changes` (and `--clear`);
    /// returns the effective config it printed.
    fn broker_set(
        &mut self,
        changes: &BTreeMap<String, String>,
        clear: bool,
    ) -> Result<BTreeMap<String, EffectiveValue>> {
        let args = objects::broker_set_args(&self.bootstrap(), changes, clear);
        let timeout = self.opts.timeouts.tuner;
        let name = self.create(Component::Tuner, args, timeout + Duration::from_secs(60))?;
        let r = self.finish_tuner(&name, changes, timeout);
        let _ = self.kube.delete_pod(&name);
        self.live.retain(|n| n != &name);
        r
    }

    fn finish_tuner(
        &self,
        name: &str,
        changes: &BTreeMap<String, String>,
        timeout: Duration,
    ) -> Result<BTreeMap<String, EffectiveValue>> {
        let what = if changes.is_empty() {
            "reading the broker's config".to_string()
        } else {
            format!(
                "setting {}",
                changes
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        };
        let pods = self.wait_pods(
            &[(name, Component::Tuner)],
            PodState::is_finished,
            Instant::now() + timeout,
            &format!("the tuner pod ({what})"),
        )?;
        let pod = &pods[0];
        let log = self.logs.logs(&self.kube, pod)?;
        let state = pod_state(pod);
        match last_json::<BTreeMap<String, EffectiveValue>>(&log) {
            Some(eff) if state == PodState::Succeeded => Ok(eff),
            _ => {
                let msg = format!(
                    "the tuner pod ({what}) did not report the broker's config: {}; its log ends with:\n{}",
                    describe_pod(pod),
                    tail(&log, 10)
                );
                if log.contains("refused:") {
                    Err(anyhow::Error::new(Refused(msg)))
                } else {
                    Err(anyhow!(msg))
                }
            }
        }
    }

    /// One load: a consumer pod (creates the topic, deletes it at the end)
    /// and, once it runs, a producer pod; returns their outcomes and what
    /// the workload's faults did.
    fn run_load(&mut self, w: &Workload) -> Result<(Load, String)> {
        let topic = step::fresh_topic();
        let r = self.run_load_pods(w, &topic);
        self.cleanup();
        r.map(|l| (l, topic))
    }

    fn run_load_pods(&mut self, w: &Workload, topic: &str) -> Result<Load> {
        let b = self.bootstrap();
        let ctimeout = consumer_timeout(w);
        let pod_deadline = ctimeout + Duration::from_secs(120);
        let replication = step::replication_of(w, self.replicas as usize)?;
        let c = self.create(
            Component::Consumer,
            objects::consumer_args(&b, topic, w, ctimeout, replication),
            pod_deadline,
        )?;
        self.wait_pods(
            &[(&c, Component::Consumer)],
            |s| matches!(s, PodState::Running) || s.is_finished(),
            Instant::now() + self.opts.timeouts.pod_start,
            "the consumer pod to start",
        )?;
        let p = self.create(
            Component::Producer,
            objects::producer_args(&b, topic, w),
            pod_deadline,
        )?;
        let mut faults = PodFaults::new(&self.opts.statefulset, &w.faults);
        // The measured window starts about a warm-up after the producer
        // pod runs (see `super::faults`).
        let mut window: Option<Instant> = None;
        let kube = &self.kube;
        let mut each = |pods: &[Pod]| {
            if faults.is_empty() {
                return None;
            }
            let now = Instant::now();
            if window.is_none()
                && pods
                    .first()
                    .is_some_and(|p| pod_state(p) == PodState::Running)
            {
                window = Some(now + w.warmup);
            }
            let Some(start) = window else {
                return Some(Duration::from_millis(100));
            };
            if now >= start {
                faults.tick(now - start, kube);
            }
            let next = faults
                .next_due()
                .map(|at| (start + at).saturating_duration_since(now));
            Some(
                next.unwrap_or(Duration::from_millis(500))
                    .max(Duration::from_millis(20)),
            )
        };
        let pods = self.wait_pods_with(
            &[(&p, Component::Producer), (&c, Component::Consumer)],
            PodState::is_finished,
            Instant::now() + ctimeout + Duration::from_secs(60),
            "the producer and consumer pods to finish",
            &mut each,
        )?;
        // The consumer's first: it started first.
        let clog = self.pod_log(&pods[1], "consumer")?;
        let plog = self.pod_log(&pods[0], "producer")?;
        let po: ProducerOutcome = pod_outcome(&pods[0], "producer", &plog)?;
        let co: ConsumerOutcome = pod_outcome(&pods[1], "consumer", &clog)?;
        let start = (po.window_start_ns > 0)
            .then(|| std::time::UNIX_EPOCH + Duration::from_nanos(po.window_start_ns));
        Ok(Load {
            faults: faults.finish(start),
            producer: po,
            consumer: co,
        })
    }

    /// The log of a finished load pod; an empty one is an error.
    fn pod_log(&self, pod: &Pod, who: &str) -> Result<String> {
        let log = self.logs.logs(&self.kube, pod)?;
        if log.trim().is_empty() {
            anyhow::bail!("the {who} pod printed nothing: {}", describe_pod(pod));
        }
        Ok(log)
    }
}

/// What one load's pods reported, and its faults.
struct Load {
    producer: ProducerOutcome,
    consumer: ConsumerOutcome,
    faults: Vec<FaultRecord>,
}

/// The outcome a load pod printed last (one JSON line), or an error with
/// the end of its log.
fn pod_outcome<T: serde::de::DeserializeOwned>(pod: &Pod, who: &str, log: &str) -> Result<T> {
    last_json(log).ok_or_else(|| {
        anyhow!(
            "the {who} pod printed no outcome: {}; its log ends with:\n{}",
            describe_pod(pod),
            tail(log, 10)
        )
    })
}

impl Reconfigure for K8sSession {
    fn config(&self) -> BrokerConfig {
        K8sSession::config(self)
    }
    fn restart(&mut self, cfg: &BrokerConfig) -> Result<()> {
        self.rollout(cfg)
    }
    fn set_dynamic(&mut self, changes: &BTreeMap<String, String>) -> Result<()> {
        K8sSession::set_dynamic(self, changes)
    }
}

impl Drop for K8sSession {
    fn drop(&mut self) {
        self.cleanup();
    }
}

impl LabTarget for K8sSession {
    fn ledger(&mut self) -> &mut Ledger {
        &mut self.ledger
    }
    fn quick(&self) -> bool {
        self.opts.quick
    }
    fn run_dir(&self) -> &std::path::Path {
        &self.opts.run_dir
    }
    fn say(&self, msg: &str) {
        self.opts.progress.say(msg)
    }
    fn apply(&mut self, cfg: &BrokerConfig) -> Result<Applied> {
        crate::broker::apply::apply(self, cfg)
    }
    fn current_config(&self) -> Option<BrokerConfig> {
        Some(self.config())
    }
    /// The load as pods, for a few seconds.
    fn warm_up(&mut self, workload: &Workload, _settle: bool) -> Result<()> {
        self.say("JIT warm-up of the restarted broker");
        self.run_load(&warm_up_workload(workload, crate::lab::target::WARM_UP))
            .map(|_| ())
    }
    fn measure_raw(&mut self, step: StepSpec<'_>) -> Result<Measurement> {
        let (lab, label, workload) = (step.lab, step.label, step.workload);
        let (load, topic) = self.run_load(workload)?;
        let Load {
            producer: po,
            consumer: co,
            faults,
        } = load;
        let mut result = assemble(workload, &po, &co, Vec::new());
        // What the faults did; the before/during/after windows, which need
        // the per-second counts only the local step keeps, are not cut here,
        // and the result says so (as it does for what no pod watches).
        result.unavailable = unavailable_on_kubernetes(!faults.is_empty());
        result.faults = faults;
        let opts = step::StepOptions {
            lab: Some(lab.id.clone()),
            label: Some(label.to_string()),
            lab_fingerprint: crate::provenance::lab_fingerprint(&lab.dir),
            requested: step.cfg.clone(),
            applied: step.applied,
            ..Default::default()
        };
        let env = step::environment(None, None, None);
        let bootstrap = self.bootstrap();
        step::stamp(
            &mut result,
            &opts,
            TargetKind::Kubernetes,
            bootstrap,
            &self.effective,
            topic,
            env,
        );
        let mut m = Measurement {
            result,
            origin: std::time::UNIX_EPOCH + Duration::from_nanos(po.window_start_ns),
            publish: po.publish,
            e2e: co.e2e,
        };
        m.save(&step_file(&self.opts.run_dir, "", lab, label))?;
        Ok(m)
    }
}

/// What a step on Kubernetes cannot measure that a local one does, each
/// with why (`result.unavailable`).
fn unavailable_on_kubernetes(faults: bool) -> Vec<String> {
    let mut out = Vec::new();
    if faults {
        out.push(
            "windows before/during/after each fault and recovery_s: the producer and consumer pods report totals, not per-second counts".to_string(),
        );
        out.push(
            "the read-back of the topic after the faults (log_check): no pod reads the topic again"
                .to_string(),
        );
    }
    out.push(
        "ISR and leader changes (cluster, acked_alone): nothing watches the brokers' metadata during a step on Kubernetes".to_string(),
    );
    out.push("CPU per process and GC pauses: the pods' processes are not on this host".to_string());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kubernetes_step_says_what_it_could_not_measure() {
        let with = unavailable_on_kubernetes(true);
        assert!(
            with.iter()
                .any(|u| u.starts_with("windows before/during/after"))
        );
        let without = unavailable_on_kubernetes(false);
        assert!(!without.iter().any(|u| u.contains("windows")));
        assert!(without.iter().any(|u| u.contains("acked_alone")));
        // And the fault lines print it.
        let r = crate::model::StepResult {
            unavailable: with,
            faults: vec![crate::model::FaultRecord::default()],
            ..Default::default()
        };
        let text = crate::stats::table::fault_text(&r);
        assert!(
            text.contains("not measured on this target: windows"),
            "{text}"
        );
    }

    #[test]
    fn deadlines_follow_the_workload() {
        let w = Workload {
            duration: Some(Duration::from_secs(20)),
            warmup: Duration::from_secs(5),
            ..Default::default()
        };
        assert_eq!(run_estimate(&w), Duration::from_secs(25));
        assert_eq!(consumer_timeout(&w), Duration::from_secs(230));
        let w = Workload {
            duration: None,
            messages: Some(100_000),
            rate: Some(10_000.0),
            warmup: Duration::from_secs(2),
            ..Default::default()
        };
        assert_eq!(run_estimate(&w), Duration::from_secs(12));
        let w = Workload {
            duration: None,
            messages: Some(100_000),
            rate: None,
            ..Default::default()
        };
        assert_eq!(run_estimate(&w), Duration::from_secs(602));
    }

    #[test]
    fn instance_labels_are_valid() {
        assert_eq!(
            instance_of(std::path::Path::new("results/20261123-051702-1")),
            "run-20261123-051702-1"
        );
        let long = "x".repeat(100);
        assert_eq!(instance_of(std::path::Path::new(&long)).len(), 63);
    }

    #[test]
    fn dynamic_settings_are_read_from_the_effective_config() {
        let mut eff = BTreeMap::new();
        let ev = |v: &str, s: &str| EffectiveValue {
            value: Some(v.into()),
            source: s.into(),
        };
        eff.insert("num.io.threads".to_string(), ev("2", "DynamicBroker"));
        eff.insert("num.network.threads".to_string(), ev("3", "Default"));
        let d = dynamic_settings(&eff);
        assert_eq!(d.len(), 1);
        assert_eq!(d["num.io.threads"], "2");
    }
}
