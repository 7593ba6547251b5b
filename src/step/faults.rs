//! Faults on a measured window's timeline: each fires at its time after
//! the window starts (kill, stop, pause, restart a broker), schedules what
//! undoes it (a resume, a start), and is watched until the partitions its
//! broker led have new leaders.

use crate::broker::admin::Admin;
use crate::broker::local::LocalBroker;
use crate::events::{self, Event};
use crate::model::{FaultAction, FaultRecord, FaultSpec, FaultTarget};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Node `id` of `b` died during a step, and no klab fault did it. When the
/// cluster goes on without it, the step goes on too (its records counted,
/// the topic read back), the node is marked down (started again after the
/// step) and the sentence for the result comes back; None when the step
/// cannot go on.
pub fn outside_death(
    b: &mut LocalBroker,
    id: i32,
    status: std::process::ExitStatus,
) -> Option<String> {
    if !b.survives_loss_of(id) {
        return None;
    }
    let note = format!(
        "broker {id} died during the step ({status}), not by a klab fault; the other brokers carried on and it was started again after the step"
    );
    tracing::warn!("{note}");
    b.note_down(id);
    Some(note)
}

enum Job {
    /// Fire fault `i` of the spec list.
    Fire(usize),
    /// Continue paused node `node` (for record `i`).
    Resume { node: i32, i: usize },
    /// Start stopped or killed node `node` again (for record `i`).
    Start { node: i32, i: usize },
}

struct Pending {
    at: Duration,
    job: Job,
}

/// The faults of one step and what has happened to them.
pub struct Timeline {
    specs: Vec<FaultSpec>,
    pending: Vec<Pending>,
    records: Vec<FaultRecord>,
    /// One thread per fault whose broker led partitions: when did they all
    /// have another leader?
    watches: Vec<(usize, JoinHandle<Option<f64>>)>,
    stop: Arc<AtomicBool>,
    bootstrap: String,
    topic: String,
}

impl Timeline {
    pub fn new(specs: &[FaultSpec], bootstrap: &str, topic: &str) -> Timeline {
        let mut pending: Vec<Pending> = specs
            .iter()
            .enumerate()
            .map(|(i, f)| Pending {
                at: f.at,
                job: Job::Fire(i),
            })
            .collect();
        pending.sort_by_key(|p| p.at);
        Timeline {
            specs: specs.to_vec(),
            pending,
            records: Vec::new(),
            watches: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
            bootstrap: bootstrap.to_string(),
            topic: topic.to_string(),
        }
    }

    /// Does everything due at `t` (time since the measured window began).
    pub fn tick(&mut self, t: Duration, broker: &mut LocalBroker) {
        while let Some(i) = self.pending.iter().position(|p| p.at <= t) {
            let p = self.pending.remove(i);
            match p.job {
                Job::Fire(i) => self.fire(i, t, broker),
                Job::Resume { node, i } => {
                    let r = broker.signal_node(node, libc::SIGCONT, false);
                    self.back(i, t, r.err());
                }
                Job::Start { node, i } => {
                    let r = broker.start_node(node);
                    self.back(i, t, r.err());
                }
            }
        }
    }

    fn back(&mut self, i: usize, t: Duration, err: Option<anyhow::Error>) {
        if let Some(r) = self.records.get_mut(i) {
            r.back_at_s = Some(t.as_secs_f64());
            if let Some(e) = err {
                r.error
                    .get_or_insert(format!("bringing broker {} back: {e:#}", r.broker));
            }
        }
    }

    fn fire(&mut self, spec_i: usize, t: Duration, broker: &mut LocalBroker) {
        let spec = self.specs[spec_i].clone();
        let admin = Admin::connect(&self.bootstrap);
        let leaders = admin
            .as_ref()
            .ok()
            .and_then(|a| a.leaders(&self.topic, Duration::from_secs(2)).ok())
            .unwrap_or_default();
        let victims: Vec<i32> = match spec.broker {
            FaultTarget::Node(n) => vec![n as i32],
            FaultTarget::Leader => leaders
                .first()
                .copied()
                .filter(|l| *l >= 0)
                .into_iter()
                .collect(),
            FaultTarget::Controller => broker.active_controller().into_iter().collect(),
            FaultTarget::Followers => admin
                .as_ref()
                .ok()
                .and_then(|a| a.replicas(&self.topic, 0, Duration::from_secs(2)).ok())
                .map(|r| r.into_iter().skip(1).collect())
                .unwrap_or_default(),
        };
        if victims.is_empty() {
            self.records.push(FaultRecord {
                action: spec.action,
                broker: -1,
                target: spec.broker.to_string(),
                at_s: t.as_secs_f64(),
                error: Some(format!(
                    "no broker to {}: {} not found",
                    spec.action.as_str(),
                    spec.broker
                )),
                ..Default::default()
            });
            return;
        }
        for v in victims {
            self.fire_at(&spec, v, t, broker, &leaders);
        }
        self.pending.sort_by_key(|p| p.at);
    }

    /// Fault `spec` on node `v` at `t`.
    fn fire_at(
        &mut self,
        spec: &FaultSpec,
        v: i32,
        t: Duration,
        broker: &mut LocalBroker,
        leaders: &[i32],
    ) {
        let i = self.records.len();
        let mut record = FaultRecord {
            action: spec.action,
            broker: v,
            target: spec.broker.to_string(),
            at_s: t.as_secs_f64(),
            ..Default::default()
        };
        events::emit(Event::Fault {
            action: spec.action.as_str().to_string(),
            broker: v,
            at_s: record.at_s,
        });
        tracing::info!(
            "fault: {} broker {v} at {:.1}s",
            spec.action.as_str(),
            record.at_s
        );
        let done = match spec.action {
            FaultAction::Kill => broker.signal_node(v, libc::SIGKILL, true),
            FaultAction::Stop => broker.terminate_node(v),
            FaultAction::Pause => broker.signal_node(v, libc::SIGSTOP, true).map(|()| {
                self.pending.push(Pending {
                    at: t + spec.duration.unwrap_or_default(),
                    job: Job::Resume { node: v, i },
                });
            }),
            FaultAction::Restart => {
                let began = Instant::now();
                let r = broker.restart_node(v);
                record.back_at_s = Some(t.as_secs_f64() + began.elapsed().as_secs_f64());
                r
            }
        };
        if let Err(e) = done {
            record.error = Some(format!("{e:#}"));
        } else if let Some(after) = spec.restart_after {
            self.pending.push(Pending {
                at: t + after,
                job: Job::Start { node: v, i },
            });
        }
        if leaders.contains(&v) {
            self.watches.push((
                i,
                watch_leaders(&self.bootstrap, &self.topic, v, leaders, &self.stop),
            ));
        }
        self.records.push(record);
    }

    /// The records, once the step is over (the leadership watches stop).
    pub fn finish(mut self) -> Vec<FaultRecord> {
        self.stop.store(true, Ordering::SeqCst);
        for (i, h) in self.watches.drain(..) {
            if let (Ok(moved), Some(r)) = (h.join(), self.records.get_mut(i)) {
                r.leader_moved_s = moved;
            }
        }
        self.records
    }
}

/// Polls the topic's leaders until no partition that `victim` led is led by
/// it or has no leader; the seconds that took, or None if `stop` came first.
fn watch_leaders(
    bootstrap: &str,
    topic: &str,
    victim: i32,
    before: &[i32],
    stop: &Arc<AtomicBool>,
) -> JoinHandle<Option<f64>> {
    let (bootstrap, topic, stop) = (bootstrap.to_string(), topic.to_string(), Arc::clone(stop));
    let led: Vec<usize> = before
        .iter()
        .enumerate()
        .filter(|(_, l)| **l == victim)
        .map(|(p, _)| p)
        .collect();
    std::thread::spawn(move || {
        let started = Instant::now();
        let admin = Admin::connect(&bootstrap).ok()?;
        while !stop.load(Ordering::SeqCst) {
            if let Ok(now) = admin.leaders(&topic, Duration::from_millis(500))
                && led
                    .iter()
                    .all(|p| now.get(*p).is_some_and(|l| *l >= 0 && *l != victim))
            {
                return Some(started.elapsed().as_secs_f64());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    })
}
