//! Bringing a broker to a config: the one place that decides between
//! "nothing to do", a dynamic change and a restart. The local broker, a
//! broker klab only connects to, and the Kubernetes StatefulSet each say how
//! they restart and how they change settings live ([`Reconfigure`]);
//! [`apply`] decides which of the two a change needs.

use crate::broker::admin::Refused;
use crate::broker::knobs;
use crate::cancel;
use crate::error::Interrupted;
use crate::model::{Applied, BrokerConfig};
use anyhow::Result;
use std::collections::BTreeMap;

/// What klab can do to a broker it measures.
pub trait Reconfigure {
    /// The settings the broker runs with now: its static config with the
    /// dynamic changes klab made since the last (re)start.
    fn config(&self) -> BrokerConfig;

    /// False when an earlier change left no broker running (it did not
    /// start with the config it was given).
    fn is_running(&mut self) -> bool {
        true
    }

    /// Stops the broker and starts it again with `cfg` as its static
    /// config. A broker that does not start with it has, in effect,
    /// refused it: that is a [`Refused`] error. A target that cannot
    /// restart its broker returns [`Refused`] too.
    fn restart(&mut self, cfg: &BrokerConfig) -> Result<()>;

    /// Changes dynamic settings without a restart (in steps Kafka accepts)
    /// and checks the broker reports them; a refusal is [`Refused`].
    fn set_dynamic(&mut self, changes: &BTreeMap<String, String>) -> Result<()>;
}

/// Brings `b` to `cfg`: unchanged, a dynamic change, or a restart (also
/// when an earlier change left no broker running), and tells the event bus
/// what moved.
pub fn apply(b: &mut dyn Reconfigure, cfg: &BrokerConfig) -> Result<Applied> {
    let current = b.config();
    let how = reconcile(b, cfg)?;
    if how != Applied::Unchanged {
        announce(how, &current, cfg);
    }
    Ok(how)
}

/// [`apply`] without the announcement, for a caller that says itself what
/// the change was (a warm spare taken back is `Reused` from the broker
/// before it, not a dynamic change of the spare).
pub fn reconcile(b: &mut dyn Reconfigure, cfg: &BrokerConfig) -> Result<Applied> {
    if cancel::interrupted() {
        return Err(Interrupted.into());
    }
    if !b.is_running() {
        b.restart(cfg)?;
        return Ok(Applied::Restarted);
    }
    let current = b.config();
    match plan(&current, cfg) {
        Applied::Unchanged => Ok(Applied::Unchanged),
        Applied::Dynamic => {
            b.set_dynamic(&knobs::changed_keys(&current, cfg))?;
            Ok(Applied::Dynamic)
        }
        _ => {
            b.restart(cfg)?;
            Ok(Applied::Restarted)
        }
    }
}

/// What moved from `from` to `to`: `key old→new` for every changed key
/// (the heap first), as the event bus and the replay say it.
pub fn setting_changes(from: &BrokerConfig, to: &BrokerConfig) -> Vec<String> {
    let mut changes: Vec<String> = knobs::changed_keys(from, to)
        .into_iter()
        .map(|(k, v)| {
            let was = knobs::value_in(from, &k).unwrap_or_default();
            format!("{k} {was}→{v}")
        })
        .collect();
    let (h0, h1) = (knobs::heap_of(from), knobs::heap_of(to));
    if h0 != h1 {
        changes.insert(0, format!("heap {h0}→{h1}"));
    }
    changes
}

/// Tells the event bus what moved.
pub fn announce(how: Applied, from: &BrokerConfig, to: &BrokerConfig) {
    let changes = setting_changes(from, to);
    crate::events::emit(crate::events::Event::Setting { how, changes });
}

/// What going from `current` to `cfg` takes: Unchanged, Dynamic or
/// Restarted.
pub fn plan(current: &BrokerConfig, cfg: &BrokerConfig) -> Applied {
    if knobs::needs_restart(current, cfg) {
        Applied::Restarted
    } else if knobs::changed_keys(current, cfg).is_empty() {
        Applied::Unchanged
    } else {
        Applied::Dynamic
    }
}

/// The error of a target that cannot restart the broker it measures.
pub fn cannot_restart(cfg: &BrokerConfig, whose: &str) -> anyhow::Error {
    anyhow::Error::new(Refused(format!(
        "{cfg} needs a restart, and klab does not own the broker at {whose}"
    )))
}

/// A failed start is a refusal of its config; Ctrl-C during it stays an
/// interruption.
pub fn refused_start(e: anyhow::Error) -> anyhow::Error {
    if crate::error::is_interrupted(&e) || cancel::interrupted() {
        return e;
    }
    anyhow::Error::new(Refused(format!(
        "the broker did not start with this config: {e:#}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::MemSize;

    /// A broker that records what was asked of it.
    #[derive(Default)]
    struct Fake {
        cfg: BrokerConfig,
        running: bool,
        restarts: Vec<BrokerConfig>,
        dynamic: Vec<BTreeMap<String, String>>,
    }

    impl Reconfigure for Fake {
        fn config(&self) -> BrokerConfig {
            self.cfg.clone()
        }
        fn is_running(&mut self) -> bool {
            self.running
        }
        fn restart(&mut self, cfg: &BrokerConfig) -> Result<()> {
            self.restarts.push(cfg.clone());
            self.cfg = cfg.clone();
            self.running = true;
            Ok(())
        }
        fn set_dynamic(&mut self, changes: &BTreeMap<String, String>) -> Result<()> {
            self.dynamic.push(changes.clone());
            self.cfg.properties.extend(changes.clone());
            Ok(())
        }
    }

    fn cfg(props: &[(&str, &str)]) -> BrokerConfig {
        BrokerConfig {
            heap: None,
            properties: props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn dynamic_keys_change_live_and_only_the_difference_is_sent() {
        let mut b = Fake {
            cfg: cfg(&[("num.io.threads", "8")]),
            running: true,
            ..Default::default()
        };
        let want = cfg(&[
            ("num.io.threads", "8"),
            ("log.flush.interval.messages", "1"),
        ]);
        assert_eq!(apply(&mut b, &want).unwrap(), Applied::Dynamic);
        assert_eq!(
            b.dynamic,
            vec![cfg(&[("log.flush.interval.messages", "1")]).properties]
        );
        assert!(b.restarts.is_empty());
        assert_eq!(apply(&mut b, &want).unwrap(), Applied::Unchanged);
    }

    #[test]
    fn restart_only_keys_and_the_heap_restart() {
        let mut b = Fake {
            running: true,
            ..Default::default()
        };
        let want = cfg(&[("socket.send.buffer.bytes", "8192")]);
        assert_eq!(apply(&mut b, &want).unwrap(), Applied::Restarted);
        let heap = BrokerConfig {
            heap: Some(MemSize::mib(256)),
            ..want.clone()
        };
        assert_eq!(apply(&mut b, &heap).unwrap(), Applied::Restarted);
        assert_eq!(b.restarts, vec![want, heap]);
    }

    #[test]
    fn a_broker_that_is_not_running_is_restarted_with_the_new_config() {
        let mut b = Fake::default();
        let want = cfg(&[("num.io.threads", "2")]);
        assert_eq!(apply(&mut b, &want).unwrap(), Applied::Restarted);
        assert_eq!(b.restarts, vec![want]);
    }
}
