//! A broker klab does not own (`--bootstrap HOST:PORT`): it may read its
//! config and change dynamic settings, never restart it.

use crate::broker::admin::Admin;
use crate::broker::apply::{Reconfigure, cannot_restart};
use crate::broker::dynamic;
use crate::model::{BrokerConfig, EffectiveValue};
use anyhow::Result;
use std::collections::BTreeMap;
use std::time::Duration;

pub struct ExternalBroker {
    bootstrap: String,
    admin: Admin,
    node_id: i32,
    /// Per-broker dynamic settings, as found and as changed by klab.
    dynamic: BTreeMap<String, String>,
    effective: BTreeMap<String, EffectiveValue>,
}

impl ExternalBroker {
    pub fn connect(bootstrap: &str) -> Result<ExternalBroker> {
        let admin = Admin::connect(bootstrap)?;
        let node_id = admin.node_id(Duration::from_secs(10))?;
        let effective = admin.describe_broker(node_id)?;
        let dynamic = dynamic::dynamic_settings(&effective);
        Ok(ExternalBroker {
            bootstrap: bootstrap.to_string(),
            admin,
            node_id,
            dynamic,
            effective,
        })
    }

    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// The dynamic settings (no heap: klab cannot know or change it).
    pub fn config(&self) -> BrokerConfig {
        BrokerConfig {
            heap: None,
            properties: self.dynamic.clone(),
        }
    }

    pub fn effective(&self) -> &BTreeMap<String, EffectiveValue> {
        &self.effective
    }

    pub fn set_dynamic(&mut self, changes: &BTreeMap<String, String>) -> Result<()> {
        let admin = &self.admin;
        let node = self.node_id;
        let describe = || admin.describe_broker(node);
        self.effective = dynamic::apply(
            admin,
            node,
            &mut self.dynamic,
            &self.effective,
            changes,
            &describe,
        )?;
        Ok(())
    }

    /// Removes every per-broker dynamic setting (see [`dynamic::clear`]).
    pub fn clear_dynamic(&mut self) -> Result<()> {
        self.effective = dynamic::clear(&self.admin, self.node_id)?;
        self.dynamic.clear();
        Ok(())
    }
}

impl Reconfigure for ExternalBroker {
    fn config(&self) -> BrokerConfig {
        ExternalBroker::config(self)
    }
    fn restart(&mut self, cfg: &BrokerConfig) -> Result<()> {
        Err(cannot_restart(cfg, &self.bootstrap))
    }
    fn set_dynamic(&mut self, changes: &BTreeMap<String, String>) -> Result<()> {
        ExternalBroker::set_dynamic(self, changes)
    }
}
