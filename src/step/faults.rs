//! Faults on a measured window's timeline: each fires at its time after
//! the window starts (kill, stop, pause, restart a broker; cut, slow or
//! reset its links), schedules what undoes it (a resume, a start, a
//! mend), and is watched until the partitions its
//! broker led have new leaders.

use crate::broker::admin::Admin;
use crate::broker::local::LocalBroker;
use crate::broker::local::network::Cut;
use crate::events::{self, Event};
use crate::load::group::{MemberOrder, Members};
use crate::model::network::Link;
use crate::model::{FaultAction, FaultRecord, FaultSpec, FaultTarget};
use anyhow::Result;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Where faults act: the nodes of a cluster, by node id. One method per
/// thing a fault does or undoes, so a new [`FaultAction`] is a compile
/// error in [`Timeline`] until every host says how it does it (or refuses).
pub trait FaultHost {
    /// SIGKILL: no shutdown, no flush.
    fn kill(&mut self, node: i32) -> Result<()>;
    /// A controlled shutdown (SIGTERM), waited for.
    fn stop(&mut self, node: i32) -> Result<()>;
    /// Frozen (SIGSTOP): its connections stay open, nothing answers.
    fn pause(&mut self, node: i32) -> Result<()>;
    /// Unfrozen (SIGCONT).
    fn resume(&mut self, node: i32) -> Result<()>;
    /// Stopped and started again, waited for until it is ready.
    fn restart(&mut self, node: i32) -> Result<()>;
    /// Started again after a kill or a stop (not waited for: the timeline
    /// goes on while it starts).
    fn start(&mut self, node: i32) -> Result<()>;
    /// Cuts (`on`) or mends the node's links that `cut` names.
    fn cut(&mut self, node: i32, cut: Cut, on: bool) -> Result<()>;
    /// Slows every link of the node by `by`'s latency and bandwidth (None:
    /// ends the slowdown).
    fn slow(&mut self, node: i32, by: Option<Link>) -> Result<()>;
    /// Closes every connection to and from the node.
    fn reset_links(&mut self, node: i32) -> Result<()>;
    /// The node that is the KRaft quorum's active controller now.
    fn active_controller(&self) -> Option<i32>;
    /// Each partition's leader of `topic` now (-1: none), in partition
    /// order; empty when it cannot be told.
    fn leaders(&self, topic: &str) -> Vec<i32>;
    /// The followers of `topic`'s partition 0: its replicas but the one
    /// leading it now.
    fn followers(&self, topic: &str) -> Vec<i32>;
}

impl FaultHost for LocalBroker {
    fn kill(&mut self, node: i32) -> Result<()> {
        self.signal_node(node, libc::SIGKILL, true)
    }
    fn stop(&mut self, node: i32) -> Result<()> {
        self.terminate_node(node)
    }
    fn pause(&mut self, node: i32) -> Result<()> {
        self.signal_node(node, libc::SIGSTOP, true)
    }
    fn resume(&mut self, node: i32) -> Result<()> {
        self.signal_node(node, libc::SIGCONT, false)
    }
    fn restart(&mut self, node: i32) -> Result<()> {
        self.restart_node(node)
    }
    fn start(&mut self, node: i32) -> Result<()> {
        self.launch_node(node)
    }
    fn cut(&mut self, node: i32, cut: Cut, on: bool) -> Result<()> {
        self.network_mut()?.cut(node as u32, cut, on)
    }
    fn slow(&mut self, node: i32, by: Option<Link>) -> Result<()> {
        self.network_mut()?.slow(node as u32, by.as_ref())
    }
    fn reset_links(&mut self, node: i32) -> Result<()> {
        self.network_mut()?.reset(node as u32)
    }
    fn active_controller(&self) -> Option<i32> {
        LocalBroker::active_controller(self)
    }
    fn leaders(&self, topic: &str) -> Vec<i32> {
        Admin::connect(&self.bootstrap())
            .and_then(|a| a.leaders(topic, Duration::from_secs(2)))
            .unwrap_or_default()
    }
    fn followers(&self, topic: &str) -> Vec<i32> {
        let Ok(admin) = Admin::connect(&self.bootstrap()) else {
            return Vec::new();
        };
        let leader = admin
            .leaders(topic, Duration::from_secs(2))
            .ok()
            .and_then(|l| l.first().copied());
        let replicas = admin
            .replicas(topic, 0, Duration::from_secs(2))
            .unwrap_or_default();
        // Every replica but the one leading now (the preferred leader, the
        // first replica, unless leadership has moved).
        match leader.filter(|l| *l >= 0) {
            Some(l) => replicas.into_iter().filter(|r| *r != l).collect(),
            None => replicas.into_iter().skip(1).collect(),
        }
    }
}

enum Job {
    /// Fire fault `i` of the spec list.
    Fire(usize),
    /// Continue paused node `node` (for record `i`).
    Resume { node: i32, i: usize },
    /// Start stopped or killed node `node` again (for record `i`).
    Start { node: i32, i: usize },
    /// End network fault `action` on node `node` (for record `i`).
    Mend {
        node: i32,
        i: usize,
        action: FaultAction,
    },
}

/// The links a cutting action cuts (None: it cuts nothing).
fn cut_of(action: FaultAction) -> Option<Cut> {
    match action {
        FaultAction::Isolate => Some(Cut::Nodes),
        FaultAction::CutReplication => Some(Cut::Replication),
        FaultAction::Disconnect => Some(Cut::Clients),
        FaultAction::Partition => Some(Cut::All),
        FaultAction::Kill
        | FaultAction::Stop
        | FaultAction::Pause
        | FaultAction::Restart
        | FaultAction::Slow
        | FaultAction::Reset
        | FaultAction::Join
        | FaultAction::Leave
        | FaultAction::Die
        | FaultAction::Stall => None,
    }
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
    /// The load's consumer group, for consumer events (None: the load
    /// cannot take them, and they fail with an error in their record).
    members: Option<Members>,
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
            members: None,
        }
    }

    /// Consumer events go to these members.
    pub fn with_members(mut self, members: Option<Members>) -> Timeline {
        self.members = members;
        self
    }

    /// Does everything due at `t` (time since the measured window began).
    pub fn tick(&mut self, t: Duration, broker: &mut dyn FaultHost) {
        while let Some(i) = self.pending.iter().position(|p| p.at <= t) {
            let p = self.pending.remove(i);
            match p.job {
                Job::Fire(i) => self.fire(i, t, broker),
                Job::Resume { node, i } => {
                    let r = broker.resume(node);
                    self.back(i, t, r.err());
                }
                Job::Start { node, i } => {
                    let r = broker.start(node);
                    self.back(i, t, r.err());
                }
                Job::Mend { node, i, action } => {
                    let r = match cut_of(action) {
                        Some(cut) => broker.cut(node, cut, false),
                        None => broker.slow(node, None),
                    };
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

    fn fire(&mut self, spec_i: usize, t: Duration, broker: &mut dyn FaultHost) {
        let spec = self.specs[spec_i].clone();
        if let FaultTarget::Consumer(n) = spec.broker {
            self.fire_consumer(spec_i, &spec, n, t);
            return;
        }
        let leaders = broker.leaders(&self.topic);
        let victims: Vec<i32> = match spec.broker {
            FaultTarget::Node(n) => vec![n as i32],
            FaultTarget::Leader => leaders
                .first()
                .copied()
                .filter(|l| *l >= 0)
                .into_iter()
                .collect(),
            FaultTarget::Controller => broker.active_controller().into_iter().collect(),
            FaultTarget::Followers => broker.followers(&self.topic),
            // Fired by `fire_consumer`.
            FaultTarget::Consumer(_) => Vec::new(),
            FaultTarget::Follower | FaultTarget::OtherFollower => {
                let followers = broker.followers(&self.topic).into_iter();
                let one = match spec.broker {
                    FaultTarget::Follower => followers.min(),
                    _ => followers.max(),
                };
                one.into_iter().collect()
            }
        };
        if victims.is_empty() {
            self.records.push(FaultRecord {
                fault: spec_i + 1,
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
            self.fire_at(spec_i, &spec, v, t, broker, &leaders);
        }
        self.pending.sort_by_key(|p| p.at);
    }

    /// Fault `spec` on node `v` at `t`.
    fn fire_at(
        &mut self,
        spec_i: usize,
        spec: &FaultSpec,
        v: i32,
        t: Duration,
        broker: &mut dyn FaultHost,
        leaders: &[i32],
    ) {
        let i = self.records.len();
        let mut record = FaultRecord {
            fault: spec_i + 1,
            action: spec.action,
            broker: v,
            target: spec.broker.to_string(),
            at_s: t.as_secs_f64(),
            ..Default::default()
        };
        events::emit(Event::Fault {
            action: spec.action.as_str().to_string(),
            broker: v,
            consumer: None,
            at_s: record.at_s,
        });
        tracing::info!(
            "fault: {} broker {v} at {:.1}s",
            spec.action.as_str(),
            record.at_s
        );
        let done = match spec.action {
            FaultAction::Kill => broker.kill(v),
            FaultAction::Stop => broker.stop(v),
            FaultAction::Pause => broker.pause(v).map(|()| {
                self.pending.push(Pending {
                    at: t + spec.duration.unwrap_or_default(),
                    job: Job::Resume { node: v, i },
                });
            }),
            FaultAction::Restart => {
                let began = Instant::now();
                let r = broker.restart(v);
                record.back_at_s = Some(t.as_secs_f64() + began.elapsed().as_secs_f64());
                r
            }
            FaultAction::Isolate
            | FaultAction::CutReplication
            | FaultAction::Disconnect
            | FaultAction::Partition
            | FaultAction::Slow => {
                let r = match cut_of(spec.action) {
                    Some(cut) => broker.cut(v, cut, true),
                    None => broker.slow(v, Some(spec.slowdown())),
                };
                r.map(|()| {
                    self.pending.push(Pending {
                        at: t + spec.duration.unwrap_or_default(),
                        job: Job::Mend {
                            node: v,
                            i,
                            action: spec.action,
                        },
                    });
                })
            }
            FaultAction::Reset => broker.reset_links(v),
            FaultAction::Join | FaultAction::Leave | FaultAction::Die | FaultAction::Stall => Err(
                anyhow::anyhow!("{} acts on a consumer, not a broker", spec.action.as_str()),
            ),
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

    /// Consumer event `spec` on member `n` (0: a new one) at `t`.
    fn fire_consumer(&mut self, spec_i: usize, spec: &FaultSpec, n: u32, t: Duration) {
        let mut record = FaultRecord {
            fault: spec_i + 1,
            action: spec.action,
            broker: -1,
            target: spec.broker.to_string(),
            at_s: t.as_secs_f64(),
            consumer: (n > 0).then_some(n),
            ..Default::default()
        };
        let done = match (&self.members, spec.action) {
            (None, _) => Err(format!(
                "{} acts on the load's consumer group, and this load has none it can reach",
                spec.action.as_str()
            )),
            (Some(m), FaultAction::Join) => m.join().map(|k| record.consumer = Some(k)),
            (Some(m), FaultAction::Leave) => m.order(n, MemberOrder::Leave),
            (Some(m), FaultAction::Die) => m.order(n, MemberOrder::Die),
            (Some(m), FaultAction::Stall) => {
                let d = spec.duration.unwrap_or_default();
                m.order(n, MemberOrder::Stall(d)).map(|()| {
                    record.back_at_s = Some((t + d).as_secs_f64());
                })
            }
            (Some(_), other) => Err(format!("{} acts on a broker", other.as_str())),
        };
        if let Err(e) = done {
            record.error = Some(e);
        }
        events::emit(Event::Fault {
            action: spec.action.as_str().to_string(),
            broker: -1,
            consumer: record.consumer,
            at_s: record.at_s,
        });
        tracing::info!(
            "consumer event: {} consumer {} at {:.1}s",
            spec.action.as_str(),
            record.consumer.unwrap_or(0),
            record.at_s
        );
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
