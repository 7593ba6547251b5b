//! Reading what the cluster reports, without I/O: is a StatefulSet rolled
//! out, where is a pod, what does its log say.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ContainerState, Pod};

pub use crate::load::outcome::{last_json, tail};

/// Where a StatefulSet's rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    /// Every pod runs the current template and is ready.
    Complete,
    /// Not yet; what is missing.
    Waiting(String),
    /// It never will by itself (the reason says why).
    Impossible(String),
}

/// The rollout check of `kubectl rollout status` for a StatefulSet: the
/// controller has seen the latest generation, every replica is updated and
/// ready, and the current revision is the update revision.
pub fn rollout(sts: &StatefulSet) -> Rollout {
    let generation = sts.metadata.generation.unwrap_or(0);
    let spec = sts.spec.as_ref();
    let want = spec.and_then(|s| s.replicas).unwrap_or(1);
    if let Some(t) = spec
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        && t == "OnDelete"
    {
        return Rollout::Impossible(
            "its updateStrategy is OnDelete, so a changed pod template never rolls out by itself; klab needs RollingUpdate (manifests/broker.yaml)".into(),
        );
    }
    let Some(st) = &sts.status else {
        return Rollout::Waiting(
            "the StatefulSet has no status yet (the StatefulSet controller has not seen it)".into(),
        );
    };
    let observed = st.observed_generation.unwrap_or(0);
    if observed < generation {
        return Rollout::Waiting(format!(
            "the StatefulSet controller has not processed generation {generation} yet (observed: {observed})"
        ));
    }
    let updated = st.updated_replicas.unwrap_or(0);
    if updated < want {
        return Rollout::Waiting(format!("{updated} of {want} pods updated"));
    }
    let ready = st.ready_replicas.unwrap_or(0);
    if ready < want {
        return Rollout::Waiting(format!("{ready} of {want} updated pods ready"));
    }
    if st.replicas > want {
        return Rollout::Waiting(format!(
            "{} pods exist, {want} wanted: old pods still terminating",
            st.replicas
        ));
    }
    if st.current_revision != st.update_revision {
        return Rollout::Waiting(format!(
            "current revision {} is not yet the update revision {}",
            st.current_revision.as_deref().unwrap_or("(none)"),
            st.update_revision.as_deref().unwrap_or("(none)")
        ));
    }
    Rollout::Complete
}

/// Where a run-once pod is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodState {
    /// Not running yet (scheduling, pulling, creating); what it waits for.
    Pending(String),
    Running,
    Succeeded,
    /// Ended with an error; how.
    Failed(String),
    /// Will not start without help (image missing, Secret missing, ...).
    Stuck(String),
}

impl PodState {
    pub fn is_finished(&self) -> bool {
        matches!(self, PodState::Succeeded | PodState::Failed(_))
    }
}

/// Container waiting reasons that do not resolve by waiting.
const STUCK_REASONS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

pub fn pod_state(pod: &Pod) -> PodState {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    let containers = status
        .and_then(|s| s.container_statuses.as_ref())
        .map(|v| v.as_slice())
        .unwrap_or(&[]);
    match phase {
        "Succeeded" => return PodState::Succeeded,
        "Failed" => {
            let how = containers
                .iter()
                .find_map(|c| c.state.as_ref().and_then(describe_terminated))
                .or_else(|| {
                    status.and_then(|s| {
                        s.reason
                            .as_ref()
                            .map(|r| format!("{r}: {}", s.message.as_deref().unwrap_or("")))
                    })
                })
                .unwrap_or_else(|| "failed".into());
            return PodState::Failed(how);
        }
        _ => {}
    }
    for c in containers {
        if let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            let reason = w.reason.as_deref().unwrap_or("");
            if STUCK_REASONS.contains(&reason) {
                return PodState::Stuck(format!(
                    "container {}: {reason}: {}",
                    c.name,
                    w.message.as_deref().unwrap_or("")
                ));
            }
        }
    }
    if phase == "Running" {
        return PodState::Running;
    }
    PodState::Pending(describe_pod(pod))
}

fn describe_terminated(s: &ContainerState) -> Option<String> {
    let t = s.terminated.as_ref()?;
    let mut out = format!("exit code {}", t.exit_code);
    if let Some(r) = &t.reason {
        out.push_str(&format!(" ({r})"));
    }
    if let Some(sig) = t.signal {
        out.push_str(&format!(", signal {sig}"));
    }
    if let Some(m) = t.message.as_deref().filter(|m| !m.trim().is_empty()) {
        out.push_str(&format!(": {}", m.trim()));
    }
    Some(out)
}

fn describe_state(s: &ContainerState) -> String {
    if let Some(w) = &s.waiting {
        let mut out = format!("waiting ({}", w.reason.as_deref().unwrap_or("no reason"));
        if let Some(m) = w.message.as_deref().filter(|m| !m.is_empty()) {
            out.push_str(&format!(": {m}"));
        }
        out.push(')');
        out
    } else if s.running.is_some() {
        "running".into()
    } else if let Some(t) = describe_terminated(s) {
        format!("terminated, {t}")
    } else {
        "unknown".into()
    }
}

/// One line with everything a person needs to see why a pod is not where
/// klab wants it: phase, conditions that are not true, each container's
/// state, last state and restarts.
pub fn describe_pod(pod: &Pod) -> String {
    let name = pod.metadata.name.as_deref().unwrap_or("?");
    let Some(st) = &pod.status else {
        return format!("pod {name}: no status yet");
    };
    let mut parts = vec![format!("phase {}", st.phase.as_deref().unwrap_or("(none)"))];
    if let Some(r) = &st.reason {
        parts.push(format!(
            "reason {r}: {}",
            st.message.as_deref().unwrap_or("")
        ));
    }
    for c in st.conditions.iter().flatten() {
        if c.status != "True" {
            let mut s = format!("{}={}", c.type_, c.status);
            if c.reason.is_some() || c.message.is_some() {
                s.push_str(&format!(
                    " ({}{}{})",
                    c.reason.as_deref().unwrap_or(""),
                    if c.reason.is_some() && c.message.is_some() {
                        ": "
                    } else {
                        ""
                    },
                    c.message.as_deref().unwrap_or("")
                ));
            }
            parts.push(s);
        }
    }
    for c in st.container_statuses.iter().flatten() {
        let mut s = format!(
            "container {}: {}",
            c.name,
            c.state
                .as_ref()
                .map(describe_state)
                .unwrap_or_else(|| "no state".into())
        );
        if let Some(t) = c.last_state.as_ref().and_then(describe_terminated) {
            s.push_str(&format!(", last run ended with {t}"));
        }
        if c.restart_count > 0 {
            s.push_str(&format!(", {} restart(s)", c.restart_count));
        }
        parts.push(s);
    }
    format!("pod {name}: {}", parts.join("; "))
}

pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The StatefulSet revision a pod was created from.
pub fn revision(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()?
        .get("controller-revision-hash")
        .map(String::as_str)
}

/// A broker container that keeps crashing (CrashLoopBackOff after a few
/// restarts): its config does not start.
pub fn crash_looping(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.restart_count >= 2
                    && c.state
                        .as_ref()
                        .and_then(|s| s.waiting.as_ref())
                        .and_then(|w| w.reason.as_deref())
                        == Some("CrashLoopBackOff")
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        StatefulSetSpec, StatefulSetStatus, StatefulSetUpdateStrategy,
    };
    use k8s_openapi::api::core::v1::{
        ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, PodCondition, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn sts(generation: i64, replicas: i32, status: Option<StatefulSetStatus>) -> StatefulSet {
        StatefulSet {
            metadata: ObjectMeta {
                name: Some("kafka".into()),
                generation: Some(generation),
                ..Default::default()
            },
            spec: Some(StatefulSetSpec {
                replicas: Some(replicas),
                ..Default::default()
            }),
            status,
        }
    }

    fn status(observed: i64, updated: i32, ready: i32, cur: &str, upd: &str) -> StatefulSetStatus {
        StatefulSetStatus {
            observed_generation: Some(observed),
            replicas: 1,
            updated_replicas: Some(updated),
            ready_replicas: Some(ready),
            current_revision: Some(cur.into()),
            update_revision: Some(upd.into()),
            ..Default::default()
        }
    }

    fn waiting(r: Rollout) -> String {
        match r {
            Rollout::Waiting(s) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rollout_is_complete_only_when_everything_matches() {
        assert_eq!(
            rollout(&sts(2, 1, Some(status(2, 1, 1, "a", "a")))),
            Rollout::Complete
        );
        assert!(waiting(rollout(&sts(2, 1, None))).contains("no status"));
        let w = waiting(rollout(&sts(3, 1, Some(status(2, 1, 1, "a", "a")))));
        assert!(
            w.contains("generation 3") && w.contains("observed: 2"),
            "{w}"
        );
        let w = waiting(rollout(&sts(3, 1, Some(status(3, 0, 1, "a", "b")))));
        assert_eq!(w, "0 of 1 pods updated");
        let w = waiting(rollout(&sts(3, 1, Some(status(3, 1, 0, "a", "b")))));
        assert_eq!(w, "0 of 1 updated pods ready");
        let w = waiting(rollout(&sts(3, 1, Some(status(3, 1, 1, "a", "b")))));
        assert!(
            w.contains("current revision a") && w.contains("update revision b"),
            "{w}"
        );
        let mut two = status(3, 1, 1, "b", "b");
        two.replicas = 2;
        assert!(waiting(rollout(&sts(3, 1, Some(two)))).contains("2 pods exist"));
        // Status fields missing entirely count as zero.
        let empty = StatefulSetStatus {
            observed_generation: Some(1),
            ..Default::default()
        };
        assert_eq!(
            waiting(rollout(&sts(1, 1, Some(empty)))),
            "0 of 1 pods updated"
        );
        // Newer observed generation than the object (a racing read): fine.
        assert_eq!(
            rollout(&sts(2, 1, Some(status(3, 1, 1, "b", "b")))),
            Rollout::Complete
        );
        let mut s = sts(2, 1, Some(status(2, 1, 1, "a", "a")));
        s.spec.as_mut().unwrap().update_strategy = Some(StatefulSetUpdateStrategy {
            type_: Some("OnDelete".into()),
            ..Default::default()
        });
        assert!(matches!(rollout(&s), Rollout::Impossible(m) if m.contains("OnDelete")));
    }

    fn pod(phase: &str, conditions: Vec<(&str, &str, &str)>, state: ContainerState) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                ..Default::default()
            },
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: Some(
                    conditions
                        .into_iter()
                        .map(|(t, s, r)| PodCondition {
                            type_: t.into(),
                            status: s.into(),
                            reason: (!r.is_empty()).then(|| r.into()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                container_statuses: Some(vec![ContainerStatus {
                    name: "c".into(),
                    state: Some(state),
                    restart_count: 0,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn wait_state(reason: &str, msg: &str) -> ContainerState {
        ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.into()),
                message: Some(msg.into()),
            }),
            ..Default::default()
        }
    }

    fn ended_state(exit_code: i32, reason: &str) -> ContainerState {
        ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code,
                reason: Some(reason.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn pod_states() {
        let done = ended_state(0, "Completed");
        assert_eq!(
            pod_state(&pod("Succeeded", vec![], done)),
            PodState::Succeeded
        );
        let oom = ended_state(137, "OOMKilled");
        assert_eq!(
            pod_state(&pod("Failed", vec![], oom)),
            PodState::Failed("exit code 137 (OOMKilled)".into())
        );
        let s = pod_state(&pod(
            "Pending",
            vec![],
            wait_state(
                "CreateContainerConfigError",
                "secret \"klab-hmac\" not found",
            ),
        ));
        assert!(
            matches!(&s, PodState::Stuck(m) if m.contains("CreateContainerConfigError") && m.contains("klab-hmac")),
            "{s:?}"
        );
        let s = pod_state(&pod(
            "Pending",
            vec![],
            wait_state("ErrImageNeverPull", "x"),
        ));
        assert!(matches!(s, PodState::Stuck(_)));
        let s = pod_state(&pod(
            "Pending",
            vec![("PodScheduled", "False", "Unschedulable")],
            wait_state("ContainerCreating", ""),
        ));
        assert!(
            matches!(&s, PodState::Pending(m) if m.contains("PodScheduled=False (Unschedulable)")),
            "{s:?}"
        );
        let running = ContainerState {
            running: Some(Default::default()),
            ..Default::default()
        };
        assert_eq!(
            pod_state(&pod("Running", vec![], running)),
            PodState::Running
        );
    }

    #[test]
    fn describe_names_phase_conditions_and_last_state() {
        let mut p = pod(
            "Running",
            vec![
                ("Ready", "False", "ContainersNotReady"),
                ("PodScheduled", "True", ""),
            ],
            wait_state(
                "CrashLoopBackOff",
                "back-off 40s restarting failed container",
            ),
        );
        let cs = &mut p
            .status
            .as_mut()
            .unwrap()
            .container_statuses
            .as_mut()
            .unwrap()[0];
        cs.restart_count = 3;
        cs.last_state = Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: 1,
                reason: Some("Error".into()),
                ..Default::default()
            }),
            ..Default::default()
        });
        let d = describe_pod(&p);
        assert!(d.starts_with("pod p: phase Running"), "{d}");
        assert!(d.contains("Ready=False (ContainersNotReady)"), "{d}");
        assert!(!d.contains("PodScheduled"), "{d}");
        assert!(
            d.contains("container c: waiting (CrashLoopBackOff: back-off 40s"),
            "{d}"
        );
        assert!(d.contains("last run ended with exit code 1 (Error)"), "{d}");
        assert!(d.contains("3 restart(s)"), "{d}");
        assert!(crash_looping(&p));
        assert!(!is_ready(&p));
    }

    #[test]
    fn the_outcome_is_the_last_json_line_of_its_type() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct O {
            n: u32,
        }
        let log = "starting\n{\"n\": 1}\n{\"other\": true}\n  {\"n\": 2}  \nklab: warning: bye\n";
        assert_eq!(last_json::<O>(log), Some(O { n: 2 }));
        assert_eq!(last_json::<O>("no json\n{broken\n"), None);
        assert_eq!(last_json::<O>(""), None);
        let long = format!("a\nb\n{}", "x".repeat(400));
        let t = tail(&long, 2);
        assert!(t.starts_with("b\n"));
        assert!(t.ends_with('…') && t.chars().count() == 2 + 301);
    }
}
