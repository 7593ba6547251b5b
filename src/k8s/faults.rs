//! Faults on Kubernetes: a broker is a pod of the StatefulSet, so `kill`
//! deletes it with grace period 0 (its containers are killed at once) and
//! `stop` deletes it with its own grace period (a controlled shutdown); the
//! StatefulSet controller then creates it again, on the same volume.
//!
//! What the API cannot do is refused when the labs are read, before
//! anything starts: `pause` (a pod cannot be frozen), `restart` (that is
//! what `stop` is here), `restart_after` (the StatefulSet decides when the
//! pod is back), and the targets `leader`, `controller` and `followers`,
//! which the local target resolves through Kafka's Admin API: klab runs
//! outside the cluster and cannot reach the brokers' listeners. A broker is
//! named by its number: node 1 is pod `kafka-0`.
//!
//! The timeline is the local target's: each fault fires `at` after the
//! measured window starts. klab does not see the producer's clock while it
//! runs, so the window's start is estimated (the producer pod seen running,
//! plus the warm-up); once the producer reports where its window really
//! began, each record's times are taken against that.

use super::api::Kube;
use super::status::is_ready;
use crate::lab::Lab;
use crate::model::{FaultAction, FaultRecord, FaultSpec, FaultTarget};
use crate::usage;
use anyhow::Result;
use std::time::{Duration, SystemTime};

/// The field of a `[[faults]]` entry a refusal points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Action,
    Broker,
    RestartAfter,
}

impl Field {
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Action => "action",
            Field::Broker => "broker",
            Field::RestartAfter => "restart_after",
        }
    }
}

/// Why `f` cannot run on Kubernetes (and which field says so), or None.
pub fn refusal(f: &FaultSpec) -> Option<(Field, String)> {
    let allowed = "allowed there: kill (delete the broker pod with grace period 0) and stop (delete it with its grace period); the StatefulSet starts it again";
    match f.action {
        FaultAction::Pause => {
            return Some((
                Field::Action,
                format!(
                    "pause cannot run on Kubernetes: the API cannot freeze a pod's processes; {allowed}"
                ),
            ));
        }
        FaultAction::Restart => {
            return Some((
                Field::Action,
                format!("restart: on Kubernetes use stop, which is a restart there; {allowed}"),
            ));
        }
        FaultAction::Isolate
        | FaultAction::CutReplication
        | FaultAction::Disconnect
        | FaultAction::Partition
        | FaultAction::Slow
        | FaultAction::Reset => {
            return Some((
                Field::Action,
                format!(
                    "{} acts on the links between the nodes, which only the local target puts behind proxies (a [network]); run the lab locally, or {allowed}",
                    f.action.as_str()
                ),
            ));
        }
        FaultAction::Join | FaultAction::Leave | FaultAction::Die | FaultAction::Stall => {
            return Some((
                Field::Action,
                format!(
                    "{} acts on a member of the load's consumer group, which only the local target can do (there the members are threads of klab; on Kubernetes they live in a consumer pod); run the lab locally, or {allowed}",
                    f.action.as_str()
                ),
            ));
        }
        FaultAction::Kill | FaultAction::Stop => {}
    }
    if !matches!(f.broker, FaultTarget::Node(_)) {
        return Some((
            Field::Broker,
            format!(
                "\"{}\" cannot be resolved on Kubernetes: klab finds it through Kafka's Admin API, and from outside the cluster it cannot reach the brokers; name a broker by number (1 = pod kafka-0, 2 = kafka-1, ...)",
                f.broker
            ),
        ));
    }
    if f.restart_after.is_some() {
        return Some((
            Field::RestartAfter,
            "on Kubernetes the StatefulSet starts a deleted broker pod again as soon as it can; leave restart_after out".into(),
        ));
    }
    None
}

/// A lab whose faults cannot all run on Kubernetes is an input error that
/// names the file, the line and the field.
pub fn check_lab(lab: &Lab) -> Result<()> {
    if lab.needs_network() {
        let place = match &lab.network_from {
            Some((file, l, c)) => format!("{}:{l}:{c}", file.display()),
            None => format!("lab {}", lab.id),
        };
        return Err(usage!(
            "{place}: network: the links between the nodes are proxies only the local target starts (a pod's network is the cluster's); run lab {} locally (without --target k8s)",
            lab.id
        ));
    }
    let faults = lab.workload.faults.as_deref().unwrap_or(&[]);
    for (i, f) in faults.iter().enumerate() {
        let Some((field, why)) = refusal(f) else {
            continue;
        };
        let spans = lab
            .faults_from
            .as_ref()
            .and_then(|(file, spans)| spans.get(i).map(|s| (file, s)));
        let place = match spans {
            Some((file, s)) => {
                let (l, c) = match field {
                    Field::Action => s.action,
                    Field::Broker => s.broker,
                    Field::RestartAfter => s.restart_after.unwrap_or(s.at),
                };
                format!("{}:{l}:{c}", file.display())
            }
            None => format!("lab {}", lab.id),
        };
        return Err(usage!(
            "{place}: faults[{}].{}: {why} (lab {}, --target k8s)",
            i + 1,
            field.as_str(),
            lab.id
        ));
    }
    Ok(())
}

/// The pod of node `n` (1-based) of StatefulSet `set`.
fn pod_of(set: &str, n: u32) -> String {
    format!("{set}-{}", n.saturating_sub(1))
}

struct Fired {
    record: FaultRecord,
    pod: String,
    /// The pod that was deleted; back is a pod of another uid, ready.
    uid: Option<String>,
    at: SystemTime,
    back: Option<SystemTime>,
}

/// The faults of one step on the broker StatefulSet.
pub struct PodFaults {
    statefulset: String,
    specs: Vec<FaultSpec>,
    /// Indices into `specs`, by `at`, not fired yet.
    pending: Vec<usize>,
    fired: Vec<Fired>,
}

impl PodFaults {
    pub fn new(statefulset: &str, specs: &[FaultSpec]) -> PodFaults {
        let mut pending: Vec<usize> = (0..specs.len()).collect();
        pending.sort_by_key(|&i| specs[i].at);
        PodFaults {
            statefulset: statefulset.to_string(),
            specs: specs.to_vec(),
            pending,
            fired: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// When the next fault is due (time since the window started).
    pub fn next_due(&self) -> Option<Duration> {
        self.pending.first().map(|&i| self.specs[i].at)
    }

    /// Fires what is due at `t` (time since the measured window started)
    /// and notes deleted pods that are back (recreated and ready).
    pub fn tick(&mut self, t: Duration, kube: &Kube) {
        while let Some(&i) = self.pending.first() {
            if self.specs[i].at > t {
                break;
            }
            self.pending.remove(0);
            self.fire(i, t, kube);
        }
        for f in self
            .fired
            .iter_mut()
            .filter(|f| f.back.is_none() && f.uid.is_some())
        {
            if let Ok(Some(p)) = kube.get_pod(&f.pod)
                && p.metadata.uid != f.uid
                && p.metadata.deletion_timestamp.is_none()
                && is_ready(&p)
            {
                f.back = Some(SystemTime::now());
            }
        }
    }

    fn fire(&mut self, i: usize, t: Duration, kube: &Kube) {
        let spec = &self.specs[i];
        let FaultTarget::Node(n) = spec.broker else {
            // Refused when the lab was read (see `check_lab`).
            return;
        };
        let pod = pod_of(&self.statefulset, n);
        // Every action named: a new one must say what it is on Kubernetes
        // (here and in `refusal`), never fall into a default.
        let grace = match spec.action {
            FaultAction::Kill => Some(0),
            FaultAction::Stop => None,
            // Refused when the lab was read (see `refusal`).
            FaultAction::Pause
            | FaultAction::Restart
            | FaultAction::Isolate
            | FaultAction::CutReplication
            | FaultAction::Disconnect
            | FaultAction::Partition
            | FaultAction::Slow
            | FaultAction::Reset
            | FaultAction::Join
            | FaultAction::Leave
            | FaultAction::Die
            | FaultAction::Stall => return,
        };
        tracing::info!(
            "fault: {} broker {n} (pod {pod}) at {:.1}s",
            spec.action.as_str(),
            t.as_secs_f64()
        );
        crate::events::emit(crate::events::Event::Fault {
            action: spec.action.as_str().to_string(),
            broker: n as i32,
            consumer: None,
            at_s: t.as_secs_f64(),
        });
        let mut record = FaultRecord {
            action: spec.action,
            broker: n as i32,
            target: spec.broker.to_string(),
            at_s: t.as_secs_f64(),
            ..Default::default()
        };
        let at = SystemTime::now();
        let uid = match kube.delete_pod_graced(&pod, grace) {
            Ok(Some(uid)) => Some(uid),
            Ok(None) => {
                record.error = Some(format!("pod {pod} did not exist"));
                None
            }
            Err(e) => {
                record.error = Some(format!("deleting pod {pod}: {e:#}"));
                None
            }
        };
        self.fired.push(Fired {
            record,
            pod,
            uid,
            at,
            back: None,
        });
    }

    /// The records, with their times taken against `window_start` (where
    /// the producer says its measured window began), when known.
    pub fn finish(self, window_start: Option<SystemTime>) -> Vec<FaultRecord> {
        self.fired
            .into_iter()
            .map(|f| {
                let mut r = f.record;
                if let Some(w) = window_start {
                    r.at_s = seconds_after(w, f.at);
                    r.back_at_s = f.back.map(|b| seconds_after(w, b));
                }
                r
            })
            .collect()
    }
}

/// Seconds from `from` to `t` (negative if `t` came first).
fn seconds_after(from: SystemTime, t: SystemTime) -> f64 {
    match t.duration_since(from) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::file::FaultSpans;

    fn spec(s: &str) -> FaultSpec {
        s.parse().unwrap()
    }

    #[test]
    fn only_kill_and_stop_of_a_numbered_broker_run_on_kubernetes() {
        assert_eq!(refusal(&spec("at=1s,action=kill,broker=2")), None);
        assert_eq!(refusal(&spec("at=1s,action=stop,broker=1")), None);
        let (f, why) = refusal(&spec("at=1s,action=pause,broker=1,for=2s")).unwrap();
        assert_eq!(f, Field::Action);
        assert!(why.starts_with("pause cannot run on Kubernetes"), "{why}");
        assert!(why.contains("kill") && why.contains("stop"), "{why}");
        let (f, why) = refusal(&spec("at=1s,action=restart,broker=1")).unwrap();
        assert_eq!(f, Field::Action);
        assert!(why.contains("use stop"), "{why}");
        for who in [
            "leader",
            "controller",
            "followers",
            "follower",
            "other_follower",
        ] {
            let (f, why) = refusal(&spec(&format!("at=1s,action=kill,broker={who}"))).unwrap();
            assert_eq!(f, Field::Broker);
            assert!(why.contains(who) && why.contains("by number"), "{why}");
        }
        let (f, _) = refusal(&spec("at=1s,action=kill,broker=1,restart_after=3s")).unwrap();
        assert_eq!(f, Field::RestartAfter);
    }

    #[test]
    fn a_refused_fault_names_file_line_and_field() {
        let mut lab = Lab {
            number: "02".into(),
            title: "x".into(),
            brokers: 3,
            ..Lab::bare("02-x", "labs/d/02-x".into())
        };
        lab.workload.faults = Some(vec![
            spec("at=1s,action=kill,broker=2"),
            spec("at=2s,action=pause,broker=1,for=1s"),
        ]);
        let spans = |l: usize| FaultSpans {
            at: (l, 6),
            action: (l + 1, 10),
            broker: (l + 2, 10),
            restart_after: None,
        };
        lab.faults_from = Some(("labs/d/01-y/lab.toml".into(), vec![spans(3), spans(8)]));
        let e = check_lab(&lab).unwrap_err();
        assert!(crate::error::is_usage(&e));
        let m = e.to_string();
        assert!(
            m.starts_with(
                "labs/d/01-y/lab.toml:9:10: faults[2].action: pause cannot run on Kubernetes"
            ),
            "{m}"
        );
        lab.workload.faults = Some(vec![spec("at=1s,action=kill,broker=2")]);
        check_lab(&lab).unwrap();
        lab.workload.faults = Some(vec![spec("at=1s,action=isolate,broker=2,for=2s")]);
        let m = check_lab(&lab).unwrap_err().to_string();
        assert!(
            m.contains("faults[1].action: isolate acts on the links"),
            "{m}"
        );
        lab.workload.faults = None;
        lab.workload.network = Some(crate::model::Network::default());
        lab.network_from = Some(("labs/n/01-z/lab.toml".into(), 12, 16));
        let m = check_lab(&lab).unwrap_err().to_string();
        assert!(
            m.starts_with("labs/n/01-z/lab.toml:12:16: network: "),
            "{m}"
        );
        assert_eq!(pod_of("kafka", 1), "kafka-0");
        assert_eq!(pod_of("kafka", 3), "kafka-2");
    }

    #[test]
    fn times_are_taken_against_the_producers_window() {
        let mut pf = PodFaults::new(
            "kafka",
            &[
                spec("at=3s,action=kill,broker=1"),
                spec("at=1s,action=stop,broker=2"),
            ],
        );
        assert_eq!(pf.next_due(), Some(Duration::from_secs(1)));
        let w = SystemTime::now();
        pf.fired.push(Fired {
            record: FaultRecord::default(),
            pod: "kafka-0".into(),
            uid: None,
            at: w + Duration::from_millis(1500),
            back: Some(w + Duration::from_secs(4)),
        });
        pf.pending.clear();
        assert_eq!(pf.next_due(), None);
        let r = pf.finish(Some(w));
        assert!((r[0].at_s - 1.5).abs() < 1e-6);
        assert!((r[0].back_at_s.unwrap() - 4.0).abs() < 1e-6);
    }
}
