//! One node of the cluster on its own: started again, stopped, killed,
//! frozen and thawed (what faults do), the active controller, and bringing
//! every node back after a step with faults.

use super::LocalBroker;
use crate::broker::node::Node;
use anyhow::{Result, bail};
use std::time::{Duration, Instant};

impl LocalBroker {
    /// Starts node `id` again (after a fault stopped or killed it) with the
    /// cluster's config, without waiting for it: a fault's timeline goes on
    /// meanwhile (the step's cluster watch shows when it is back in sync,
    /// and a node that dies on the way ends the step like any other).
    pub fn launch_node(&mut self, id: i32) -> Result<()> {
        let cfg = self.opts.config.clone();
        let (java, kafka, cid) = (
            self.java.clone(),
            self.opts.kafka.clone(),
            self.cluster_id.clone(),
        );
        let node = self.node_mut(id)?;
        if node.is_running() {
            return Ok(());
        }
        node.launch(&java, &kafka, &cfg, &cid)
    }

    /// Starts node `id` again and waits until the cluster lists it.
    pub fn start_node(&mut self, id: i32) -> Result<()> {
        if self.node_mut(id)?.is_running() {
            return Ok(());
        }
        self.launch_node(id)?;
        self.wait_listed(id)?;
        self.announce("node started", Some(id));
        Ok(())
    }

    /// Waits until the cluster lists node `id` (it registered with the
    /// controller), failing fast when a node dies.
    fn wait_listed(&mut self, id: i32) -> Result<()> {
        let deadline = Instant::now() + self.opts.start_timeout;
        loop {
            let listed = self
                .admin()?
                .broker_ids(Duration::from_secs(1))
                .is_ok_and(|ids| ids.contains(&id));
            if listed {
                return Ok(());
            }
            if let Some((dead, s)) = self.died() {
                return Err(self.node(dead)?.death_report(Some(s)));
            }
            if Instant::now() >= deadline {
                bail!(
                    "broker {id} did not rejoin the cluster within {}s",
                    self.opts.start_timeout.as_secs()
                );
            }
            if crate::cancel::interrupted() {
                return Err(crate::error::Interrupted.into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM to node `id` (a controlled shutdown, not waited for); it is
    /// down on purpose.
    pub fn terminate_node(&mut self, id: i32) -> Result<()> {
        let n = self.node_mut(id)?;
        n.down = true;
        n.terminate();
        Ok(())
    }

    /// Stops node `id` (waiting for it) and starts it again.
    pub fn restart_node(&mut self, id: i32) -> Result<()> {
        let grace = self.opts.stop_grace;
        let n = self.node_mut(id)?;
        n.down = true;
        n.stop(grace)?;
        self.start_node(id)
    }

    /// Brings back what faults left: paused nodes continue, stopped or
    /// killed ones start again; then waits until nothing is
    /// under-replicated, so the next step starts on a whole cluster.
    pub fn heal(&mut self) -> Result<()> {
        let ids: Vec<i32> = self.nodes.iter().filter(|n| n.down).map(Node::id).collect();
        for id in ids {
            let n = self.node_mut(id)?;
            if n.is_running() {
                let _ = n.signal(libc::SIGCONT);
                n.down = false;
                n.paused = false;
            } else {
                self.start_node(id)?;
            }
        }
        // A node a fault started again was not waited for then.
        for id in self.nodes.iter().map(Node::id).collect::<Vec<_>>() {
            self.wait_listed(id)?;
        }
        self.wait_fully_replicated(Duration::from_secs(120))?;
        self.wait_preferred_leaders(Duration::from_secs(30));
        Ok(())
    }

    /// The active KRaft controller: the controller node whose log most
    /// recently says it became the active controller.
    pub fn active_controller(&self) -> Option<i32> {
        self.nodes
            .iter()
            .filter(|n| n.is_controller())
            .filter_map(|n| {
                let log = std::fs::read_to_string(n.log_path()).ok()?;
                // Lines start with the time: "[2026-12-01 22:24:11,089] ...".
                let line = log
                    .lines()
                    .rev()
                    .find(|l| l.contains("Becoming the active controller"))?;
                Some((line.get(..25)?.to_string(), n.id()))
            })
            .max()
            .map(|(_, id)| id)
    }

    /// Marks node `id`, which died on its own, as down: it is not reported
    /// again, and [`LocalBroker::heal`] starts it again.
    pub fn note_down(&mut self, id: i32) {
        if let Ok(n) = self.node_mut(id) {
            n.down = true;
        }
    }

    /// Whether the cluster goes on without node `id` (besides the nodes
    /// already down): more than one node, and a majority of them, the
    /// controllers' quorum among them, still running.
    pub fn survives_loss_of(&self, id: i32) -> bool {
        let size = self.nodes.len();
        let alive = |n: &Node| n.id() != id && !n.down;
        let up = self.nodes.iter().filter(|n| alive(n)).count();
        let controllers = self.nodes.iter().filter(|n| n.is_controller()).count();
        let controllers_up = self
            .nodes
            .iter()
            .filter(|n| n.is_controller() && alive(n))
            .count();
        size > 1 && 2 * up > size && 2 * controllers_up > controllers
    }

    /// Sends a signal to node `id` and marks it down on purpose (its death
    /// fails no measurement).
    pub fn signal_node(&mut self, id: i32, sig: i32, down: bool) -> Result<()> {
        let n = self.node_mut(id)?;
        n.signal(sig)?;
        n.down = down;
        match sig {
            libc::SIGSTOP => n.paused = true,
            libc::SIGCONT => n.paused = false,
            _ => {}
        }
        Ok(())
    }
}
