//! Changing broker settings without a restart, and checking they took.
//! Shared by the local broker and a broker klab only connects to.

use crate::broker::admin::{Admin, Refused};
use crate::model::{BrokerConfig, EffectiveValue};
use crate::units::MemSize;
use anyhow::Result;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Values as the broker reports them now (for planning thread-pool steps).
fn current_values(eff: &BTreeMap<String, EffectiveValue>) -> BTreeMap<String, String> {
    eff.iter()
        .filter_map(|(k, v)| v.value.as_ref().map(|x| (k.clone(), x.clone())))
        .collect()
}

/// The per-broker dynamic settings in an effective config.
pub fn dynamic_settings(eff: &BTreeMap<String, EffectiveValue>) -> BTreeMap<String, String> {
    eff.iter()
        .filter(|(_, v)| v.source == "DynamicBroker")
        .filter_map(|(k, v)| v.value.clone().map(|x| (k.clone(), x)))
        .collect()
}

/// Removes every per-broker dynamic setting of `node_id` (legacy
/// AlterConfigs with an empty set) and waits, up to 15 s, until the broker
/// reports none; returns the effective config then. Walk the thread pools
/// back first ([`crate::broker::knobs::pool_fallbacks`]). A refused call
/// is a [`Refused`] error.
pub fn clear(admin: &Admin, node_id: i32) -> Result<BTreeMap<String, EffectiveValue>> {
    admin
        .set_broker_dynamic(node_id, &BTreeMap::new())
        .map_err(|e| anyhow::Error::new(Refused(format!("clearing dynamic settings: {e}"))))?;
    // KRaft applies the change when the broker replays its metadata log.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let eff = admin.describe_broker(node_id)?;
        let left = dynamic_settings(&eff);
        if left.is_empty() {
            return Ok(eff);
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "dynamic settings still reported 15s after clearing them: {}",
                join_kv(&left)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn join_kv(m: &BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Lays `changes` over the broker's dynamic per-broker settings
/// (`dynamic`, updated as steps succeed), in steps Kafka accepts, waiting
/// after each step until the broker reports it. `describe` reads the
/// effective config. Returns the effective config at the end; a refusal or a
/// value that did not take is a [`Refused`] error.
pub fn apply(
    admin: &Admin,
    node_id: i32,
    dynamic: &mut BTreeMap<String, String>,
    effective: &BTreeMap<String, EffectiveValue>,
    changes: &BTreeMap<String, String>,
    describe: &dyn Fn() -> Result<BTreeMap<String, EffectiveValue>>,
) -> Result<BTreeMap<String, EffectiveValue>> {
    let mut target = dynamic.clone();
    for (k, v) in changes {
        target.insert(k.clone(), v.clone());
    }
    let mut eff = effective.clone();
    let current = current_values(&eff);
    for step in crate::broker::knobs::dynamic_steps(&current, &target) {
        admin.set_broker_dynamic(node_id, &step).map_err(|e| {
            anyhow::Error::new(Refused(format!("{e} (setting {})", join_kv(&step))))
        })?;
        *dynamic = step.clone();
        // KRaft applies a committed change when the broker replays the
        // metadata log, a moment after the call returns: poll for it.
        let want = BrokerConfig {
            heap: None,
            properties: step,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            eff = describe()?;
            if mismatches(&want, &eff, "DynamicBroker").is_empty() || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let want = BrokerConfig {
        heap: None,
        properties: changes.clone(),
    };
    let problems = mismatches(&want, &eff, "DynamicBroker");
    if !problems.is_empty() {
        return Err(anyhow::Error::new(Refused(format!(
            "the broker did not take these settings: {}",
            problems.join("; ")
        ))));
    }
    Ok(eff)
}

/// Requested settings that the effective config does not show, each as
/// "key: wanted X, broker has Y (source)". `expected_source` is checked too
/// (StaticBroker after a start, DynamicBroker after a dynamic change).
pub fn mismatches(
    want: &BrokerConfig,
    eff: &BTreeMap<String, EffectiveValue>,
    expected_source: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(h) = want.heap {
        match eff.get("heap").and_then(|v| v.value.as_ref()) {
            Some(got) if got.parse::<MemSize>().ok() == Some(h) => {}
            Some(got) => out.push(format!("heap: wanted {h}, the JVM reports {got}")),
            None => out.push(format!(
                "heap: wanted {h}, but the JVM's heap could not be read from gc.log"
            )),
        }
    }
    for (k, v) in &want.properties {
        match eff.get(k) {
            None => out.push(format!("{k}: the broker does not report this key")),
            Some(e) => {
                let got = e.value.clone().unwrap_or_default();
                if !same_value(&got, v) {
                    out.push(format!("{k}: wanted {v}, broker has {got} ({})", e.source));
                } else if e.source != expected_source && e.source != "Unknown" {
                    out.push(format!(
                        "{k}: value {got} comes from {} instead of {expected_source}",
                        e.source
                    ));
                }
            }
        }
    }
    out
}

/// Compares config values the way Kafka normalises them (whitespace in
/// lists, case of booleans).
fn same_value(got: &str, want: &str) -> bool {
    let norm = |s: &str| -> String {
        s.split(',')
            .map(|p| p.trim().to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join(",")
    };
    norm(got) == norm(want)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(v: &str, s: &str) -> EffectiveValue {
        EffectiveValue {
            value: Some(v.into()),
            source: s.into(),
        }
    }

    #[test]
    fn mismatch_reports_value_source_and_heap() {
        let mut eff = BTreeMap::new();
        eff.insert("num.io.threads".to_string(), ev("8", "Default"));
        eff.insert("num.network.threads".to_string(), ev("1", "StaticBroker"));
        eff.insert("heap".to_string(), ev("256m", "jvm"));
        let mut want = BrokerConfig {
            heap: Some(MemSize::mib(256)),
            ..Default::default()
        };
        want.properties
            .insert("num.network.threads".into(), "1".into());
        assert!(mismatches(&want, &eff, "StaticBroker").is_empty());
        want.properties.insert("num.io.threads".into(), "2".into());
        want.heap = Some(MemSize::mib(512));
        let m = mismatches(&want, &eff, "StaticBroker");
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(m[0].starts_with("heap: wanted 512m"));
        assert!(m[1].contains("wanted 2, broker has 8"));
        want.properties.clear();
        want.heap = None;
        want.properties
            .insert("num.network.threads".into(), "1".into());
        assert!(mismatches(&want, &eff, "DynamicBroker")[0].contains("instead of DynamicBroker"));
    }
}
