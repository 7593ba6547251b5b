//! Consumers as one group: the context each client runs with, which
//! carries out the group's assignments and writes them down, and the
//! state the members share (who holds what, whether the group is ready).

use crate::load::clock::Clock;
use crate::model::{Assignor, GroupProtocol, RebalanceEvent};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::{Offset, TopicPartitionList};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A consumer client's context: its log lines go where klab's go, and in a
/// group its rebalances are carried out and written down.
pub struct LoadContext {
    /// Which consumer (0-based) and the group's shared state; None for
    /// fixed partitions (no rebalance ever comes).
    pub(crate) group: Option<(usize, Arc<Group>)>,
}

impl rdkafka::ClientContext for LoadContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        crate::load::client_log::log_line(level, fac, log_message);
    }
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        crate::load::client_log::error_line(&error, reason);
    }
}

/// What the members of one group share: where a partition read for the
/// first time starts, who holds what, and the rebalances so far.
pub(crate) struct Group {
    topic: String,
    partitions: usize,
    members: usize,
    /// The load's start on each partition (None: the beginning).
    start: std::collections::BTreeMap<i32, i64>,
    clock: Clock,
    state: Mutex<GroupState>,
    ready: Arc<AtomicBool>,
}

#[derive(Default)]
struct GroupState {
    /// Partitions some member has been given at least once.
    ever: std::collections::BTreeSet<i32>,
    /// What each member holds now.
    held: Vec<std::collections::BTreeSet<i32>>,
    events: Vec<RebalanceEvent>,
}

impl Group {
    /// A group of `members` over `partitions` of `topic`, each starting
    /// at `start` (a partition not named: its beginning); `ready` is set
    /// once every member holds a partition and every partition is held.
    pub(crate) fn new(
        topic: &str,
        partitions: usize,
        members: usize,
        start: std::collections::BTreeMap<i32, i64>,
        clock: Clock,
        ready: Arc<AtomicBool>,
    ) -> Group {
        Group {
            topic: topic.to_string(),
            partitions,
            members,
            start,
            clock,
            state: Mutex::new(GroupState::default()),
            ready,
        }
    }

    /// Every member's rebalance callbacks so far, in order.
    pub(crate) fn events(&self) -> Vec<RebalanceEvent> {
        self.state
            .lock()
            .map(|s| s.events.clone())
            .unwrap_or_default()
    }

    /// Writes down a callback; the group is ready once every member holds
    /// a partition and every partition is held.
    fn note(&self, k: usize, what: &str, parts: &[i32], error: Option<String>) {
        let Ok(mut s) = self.state.lock() else { return };
        // An incremental protocol's callbacks may carry nothing.
        if parts.is_empty() && error.is_none() {
            return;
        }
        let members = self.members.max(k + 1);
        if s.held.len() < members {
            s.held.resize(members, Default::default());
        }
        match what {
            "assigned" => s.held[k].extend(parts.iter().copied()),
            "revoked" => parts.iter().for_each(|p| {
                s.held[k].remove(p);
            }),
            // Gone without a callback: what it held is held by nobody
            // until the group gives it out again.
            "died" => s.held[k].clear(),
            _ => {}
        }
        s.events.push(RebalanceEvent {
            at_s: self.clock.now_ns() as f64 / 1e9,
            consumer: k as u32 + 1,
            what: what.into(),
            partitions: parts.to_vec(),
            error,
        });
        let all: std::collections::BTreeSet<i32> = s.held.iter().flatten().copied().collect();
        if all.len() >= self.partitions && s.held.iter().all(|h| !h.is_empty()) {
            self.ready.store(true, Ordering::SeqCst);
        }
    }
}

impl Group {
    /// Member `k` died without leaving: the group is told nothing until
    /// its session times out; written down with what it held.
    pub(crate) fn died(&self, k: usize) {
        let held: Vec<i32> = self
            .state
            .lock()
            .ok()
            .and_then(|s| s.held.get(k).map(|h| h.iter().copied().collect()))
            .unwrap_or_default();
        self.note(k, "died", &held, None);
    }
}

/// What the step asks of one member of the group while the load runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberOrder {
    /// Close: leave the group cleanly.
    Leave,
    /// Stop heartbeating without leaving.
    Die,
    /// Stop polling for this long.
    Stall(Duration),
}

/// The step's line to the group's members while the load runs: members
/// to add and orders for members by number, which the consumer's threads
/// carry out. Refuses everything until the load's consumers run as a group.
#[derive(Clone, Default)]
pub struct Members {
    inner: Arc<Mutex<Orders>>,
    /// Something is waiting in `inner` (checked on every poll).
    waiting: Arc<AtomicBool>,
}

#[derive(Default)]
struct Orders {
    /// Members so far, joined ones included (None: not a group, or not
    /// started yet).
    count: Option<usize>,
    /// Members to start (0-based), and orders by member (0-based).
    joins: Vec<usize>,
    orders: Vec<(usize, MemberOrder)>,
}

impl Members {
    /// The group runs with `n` members.
    pub(crate) fn started(&self, n: usize) {
        if let Ok(mut o) = self.inner.lock() {
            o.count = Some(n);
        }
    }

    /// Adds a member; its number (1 = the first).
    pub fn join(&self) -> Result<u32, String> {
        let mut o = self
            .inner
            .lock()
            .map_err(|_| "the group's orders are lost")?;
        let n = o.count.ok_or(NOT_A_GROUP)?;
        o.count = Some(n + 1);
        o.joins.push(n);
        self.waiting.store(true, Ordering::SeqCst);
        Ok(n as u32 + 1)
    }

    /// Orders member `consumer` (1 = the first).
    pub fn order(&self, consumer: u32, what: MemberOrder) -> Result<(), String> {
        let mut o = self
            .inner
            .lock()
            .map_err(|_| "the group's orders are lost")?;
        let n = o.count.ok_or(NOT_A_GROUP)?;
        if consumer == 0 || consumer as usize > n {
            return Err(format!(
                "consumer {consumer}: the group has consumers 1..={n} now"
            ));
        }
        o.orders.push((consumer as usize - 1, what));
        self.waiting.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// The members to start, if any (for the thread that starts them).
    pub(crate) fn take_joins(&self) -> Vec<usize> {
        if !self.waiting.load(Ordering::Relaxed) {
            return Vec::new();
        }
        let Ok(mut o) = self.inner.lock() else {
            return Vec::new();
        };
        let joins = std::mem::take(&mut o.joins);
        self.settle(&o);
        joins
    }

    /// The fetchers' polls look no further than `waiting` once nothing is
    /// left to carry out.
    fn settle(&self, o: &Orders) {
        self.waiting.store(
            !o.joins.is_empty() || !o.orders.is_empty(),
            Ordering::SeqCst,
        );
    }

    /// Member `k`'s next order, if any.
    pub(crate) fn take_order(&self, k: usize) -> Option<MemberOrder> {
        if !self.waiting.load(Ordering::Relaxed) {
            return None;
        }
        let mut o = self.inner.lock().ok()?;
        let i = o.orders.iter().position(|(m, _)| *m == k)?;
        let (_, what) = o.orders.remove(i);
        self.settle(&o);
        Some(what)
    }
}

const NOT_A_GROUP: &str =
    "the load's consumers are not a group (set group = \"classic\" or \"consumer\")";

/// Ends `consumer` as a crashed process would: its client is destroyed
/// without closing, so it neither leaves the group nor commits; the
/// coordinator finds out when the member's session times out.
pub(crate) fn die(consumer: BaseConsumer<LoadContext>) {
    let ptr = consumer.client().native_ptr();
    // SAFETY: `ptr` is this consumer's live handle, and nothing uses it
    // after this call: the wrapper is forgotten below, so its own drop
    // (which would close the consumer and destroy the handle again) never
    // runs. What stays allocated is the wrapper's queue reference and its
    // context, a few bytes per death in a process that ends with the run.
    unsafe {
        rdkafka::bindings::rd_kafka_destroy_flags(
            ptr,
            rdkafka::bindings::RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE,
        );
    }
    std::mem::forget(consumer);
}

impl ConsumerContext for LoadContext {
    /// Carries out an assignment or a revocation as rdkafka's default does
    /// (incrementally under a cooperative protocol), except that a
    /// partition given to the group for the first time starts where the
    /// load starts; later owners go on from the group's committed offset.
    fn rebalance(
        &self,
        c: &BaseConsumer<Self>,
        err: rdkafka::types::RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        use rdkafka::types::RDKafkaRespErr as E;
        let Some((k, g)) = &self.group else { return };
        let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
        let cooperative = matches!(c.rebalance_protocol(), RebalanceProtocol::Cooperative);
        let done = match err {
            E::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                if let Ok(mut s) = g.state.lock() {
                    for &p in &parts {
                        if s.ever.insert(p) {
                            let from = g
                                .start
                                .get(&p)
                                .map_or(Offset::Beginning, |&o| Offset::Offset(o));
                            let _ = tpl.set_partition_offset(&g.topic, p, from);
                        }
                    }
                }
                let r = if cooperative {
                    c.incremental_assign(tpl)
                } else {
                    c.assign(tpl)
                };
                r.map(|()| "assigned")
            }
            E::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let r = if cooperative {
                    c.incremental_unassign(tpl)
                } else {
                    c.unassign()
                };
                r.map(|()| "revoked")
            }
            other => {
                let e = rdkafka::error::RDKafkaErrorCode::from(other);
                g.note(*k, "error", &parts, Some(e.to_string()));
                // As rdkafka does: give everything up, the group will
                // assign again.
                let _ = c.unassign();
                return;
            }
        };
        match done {
            Ok(what) => g.note(*k, what, &parts, None),
            Err(e) => g.note(*k, "error", &parts, Some(e.to_string())),
        }
    }
}

/// A group member's settings: the group's id and protocol, its assignor,
/// and commits as an at-least-once client makes them: automatic (every
/// 5 s and when partitions are revoked) of the offsets the member stored
/// after taking each record (`enable.auto.offset.store=false`), so a record
/// that a closing client polls and drops is never committed.
pub(crate) fn group_settings(
    cfg: &mut ClientConfig,
    group_id: &str,
    protocol: GroupProtocol,
    assignor: Option<Assignor>,
) {
    cfg.set("group.id", group_id)
        .set("group.protocol", protocol.as_str())
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false");
    match (protocol, assignor) {
        (GroupProtocol::Classic, Some(a)) => {
            cfg.set("partition.assignment.strategy", a.as_str());
        }
        (GroupProtocol::Consumer, Some(a)) => {
            cfg.set("group.remote.assignor", a.as_str());
        }
        (_, None) => {}
    }
}
