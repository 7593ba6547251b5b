//! `klab broker set`, the command of the Kubernetes target's tuner pod, run
//! here as a process against a real local broker: dynamic changes in steps
//! Kafka accepts, kept across invocations, cleared on request, printed as
//! one JSON line.

mod common;

use common::*;
use klab::model::{BrokerConfig, EffectiveValue};
use std::collections::BTreeMap;

fn ev(v: &str, source: &str) -> EffectiveValue {
    EffectiveValue {
        value: Some(v.into()),
        source: source.into(),
    }
}

#[test]
fn broker_set_changes_keeps_and_clears_dynamic_settings() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path(), BrokerConfig::default());
    let bootstrap = broker.bootstrap();
    let run = |args: &[&str]| {
        let o = klab()
            .args(["broker", "set", "--bootstrap", &bootstrap])
            .args(args)
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        (o.status.code(), out, err)
    };
    let effective = |out: &str| -> BTreeMap<String, EffectiveValue> {
        assert_eq!(out.lines().count(), 1, "one JSON line: {out}");
        serde_json::from_str(out.trim()).unwrap()
    };

    // 8 → 2 IO threads: Kafka takes at most a factor of two per change.
    let (code, out, err) = run(&[
        "--set",
        "num.io.threads=2",
        "--set",
        "log.flush.interval.ms=1000",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let eff = effective(&out);
    assert_eq!(eff["num.io.threads"], ev("2", "DynamicBroker"));
    assert_eq!(eff["log.flush.interval.ms"], ev("1000", "DynamicBroker"));

    // Another process (another pod) keeps what the first one set.
    let (code, out, err) = run(&["--set", "num.network.threads=2"]);
    assert_eq!(code, Some(0), "{err}");
    let eff = effective(&out);
    assert_eq!(eff["num.network.threads"], ev("2", "DynamicBroker"));
    assert_eq!(eff["num.io.threads"], ev("2", "DynamicBroker"));

    // No --set: only report.
    let (code, out, _) = run(&[]);
    assert_eq!(code, Some(0));
    assert_eq!(effective(&out)["num.io.threads"], ev("2", "DynamicBroker"));

    // Walk the pools back to their static values, then clear everything.
    let (code, out, err) = run(&[
        "--set",
        "num.io.threads=8",
        "--set",
        "num.network.threads=3",
        "--clear",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let eff = effective(&out);
    let left: Vec<&String> = eff
        .iter()
        .filter(|(_, v)| v.source == "DynamicBroker")
        .map(|(k, _)| k)
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(eff["num.io.threads"].value.as_deref(), Some("8"));
    assert_eq!(eff["num.network.threads"].value.as_deref(), Some("3"));

    // Mistakes the user can fix: exit code 2, nothing on stdout.
    let (code, out, err) = run(&["--set", "queued.max.requests=100"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(out.is_empty());
    assert!(err.contains("needs a broker restart"), "{err}");
    let (code, _, err) = run(&["--set", "num.io.thread=4"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("did you mean"), "{err}");
    drop(broker);
}
