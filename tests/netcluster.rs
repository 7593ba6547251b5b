//! A real three-node cluster behind klab's proxies (a network): zones
//! 10 ms apart make acks=all wait a replication round trip that acks=1 does
//! not; a leader cut off from its followers' replication shrinks the ISR
//! and, with acks=all and min.insync.replicas=2, fails sends and loses
//! nothing; no proxy or JVM outlives the cluster; a network that cannot
//! work is refused before anything starts.

mod common;

use common::*;
use klab::broker::local::{LocalBroker, LocalOptions};
use klab::load::payload::Secret;
use klab::model::network::NetValue;
use klab::model::{Acks, BrokerConfig, FaultSpec, Network, Workload};
use klab::step::{StepOptions, measure};
use std::time::Duration;

fn zones(latency: &str) -> Network {
    let mut n = Network::default();
    for (k, v) in [
        ("zones", "a,b,c"),
        ("client_zone", "a"),
        ("zone_latency", latency),
    ] {
        n.set(k, NetValue::Text(v)).unwrap();
    }
    n.validate().unwrap();
    n
}

/// A trickle that three JVMs on two cores keep up with, replicated three
/// times, five requests in flight (see tests/cluster.rs).
fn workload(acks: Acks, net: &Network, faults: Vec<FaultSpec>) -> Workload {
    Workload {
        rate: Some(200.0),
        messages: None,
        duration: Some(Duration::from_secs(10)),
        warmup: Duration::from_secs(2),
        message_bytes: 512,
        partitions: 3,
        acks,
        replication_factor: Some(3),
        min_insync_replicas: Some(2),
        faults,
        network: Some(net.clone()),
        producer: [
            (
                "max.in.flight.requests.per.connection".to_string(),
                "5".to_string(),
            ),
            // A send the cluster cannot take fails within the step.
            ("message.timeout.ms".to_string(), "4000".to_string()),
        ]
        .into(),
        ..Workload::default()
    }
}

fn step(b: &mut LocalBroker, w: &Workload, throwaway: bool) -> klab::stats::report::Measurement {
    let opts = StepOptions {
        throwaway,
        ..StepOptions::default()
    };
    measure(b, w, &Secret::new(b"net-test".to_vec()), &opts).expect("a step on the cluster")
}

#[test]
fn zones_cost_acks_all_a_round_trip_and_a_cut_leader_loses_nothing() {
    if klab::net::Toxiproxy::binary().is_err() && std::env::var_os("KLAB_TOXIPROXY").is_none() {
        eprintln!("skipped: no toxiproxy-server (scripts/toxiproxy builds one)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let needle = dir.path().to_string_lossy().to_string();
    let cfg = BrokerConfig {
        heap: Some("256m".parse().unwrap()),
        // A follower that stops fetching leaves the ISR after 3 s.
        properties: [("replica.lag.time.max.ms".into(), "3000".into())].into(),
    };
    let opts = LocalOptions::new(kafka_home(), dir.path().join("broker"), cfg)
        .brokers(3)
        .network(true);
    let mut b = LocalBroker::start(opts).expect("three nodes behind proxies");
    let proxy_pid = b.network().map(|n| n.pid()).expect("a network");
    assert_ne!(b.client_bootstrap(), b.bootstrap());

    let net = zones("10ms");
    step(&mut b, &workload(Acks::All, &net, Vec::new()), true);
    let one = step(&mut b, &workload(Acks::One, &net, Vec::new()), false);
    let all = step(&mut b, &workload(Acks::All, &net, Vec::new()), false);
    for m in [&one, &all] {
        assert!(m.result.complete, "{:?}", m.result.reason);
        assert_eq!(m.result.lost, 0);
        assert_eq!(m.result.workload.network.as_ref(), Some(&net));
        let proxy_s = m.result.cpu.as_ref().and_then(|c| c.proxy_s);
        assert!(
            proxy_s.is_some_and(|s| s > 0.0),
            "the proxy's CPU: {proxy_s:?}"
        );
    }
    // A follower in another zone fetches across 10 ms before the leader
    // may acknowledge with acks=all; with acks=1 it answers at once.
    let (p1, pall) = (
        one.result.publish_latency_ms.p50,
        all.result.publish_latency_ms.p50,
    );
    assert!(
        pall >= p1 + 10.0,
        "acks=all publish p50 {pall} ms, acks=1 {p1} ms"
    );

    // The leader of partition 0 cut from its followers' fetches for 8 s:
    // it still reaches the controller, so the ISR shrinks to it alone, and
    // with min.insync.replicas=2 acks=all sends fail; none is lost.
    let cut: FaultSpec = "at=3s,action=cut_replication,broker=leader,for=8s"
        .parse()
        .unwrap();
    let mut w = workload(Acks::All, &net, vec![cut]);
    w.duration = Some(Duration::from_secs(16));
    // What the live view hears while the step runs.
    let live = klab::events::subscribe(4096);
    let m = step(&mut b, &w, false);
    let r = &m.result;
    assert!(r.complete, "{:?}", r.reason);
    assert_eq!(r.lost, 0, "{r:#?}");
    assert!(r.failed > 0, "sends fail while the ISR is short: {r:#?}");
    assert_eq!(r.faults.len(), 1);
    let f = &r.faults[0];
    assert!(f.error.is_none(), "{f:?}");
    assert!(f.back_at_s.is_some_and(|t| t >= 10.9), "{f:?}");
    assert!(
        r.cluster
            .iter()
            .any(|c| c.what.contains("isr shrank") && c.isr == vec![f.broker]),
        "the ISR of a partition the cut leader led shrank to it: {:?}",
        r.cluster
    );
    // The live view was told as it happened, a marker per kind of change: the partitions it names
    // (`isr shrank p0,p1`) or, past two, how many (`isr shrank ×3`), as the cut leader led.
    let mut told = Vec::new();
    while let Some(e) = live.try_next() {
        if let klab::events::Event::Cluster { markers, .. } = &e.event {
            told.extend(markers.iter().cloned());
        }
    }
    assert!(
        told.iter().any(|m| m
            .strip_prefix("isr shrank ")
            .is_some_and(|w| w.starts_with('p') || w.starts_with('×'))),
        "{told:?}"
    );

    b.stop().unwrap();
    drop(b);
    assert!(jvms_mentioning(&needle).is_empty());
    wait_for("the proxy process to end", Duration::from_secs(10), || {
        has_ended(&proxy_pid.to_string()).then_some(())
    });
}

#[test]
fn a_network_that_cannot_work_is_refused_before_anything_starts() {
    for (args, want) in [
        (
            &[
                "--net",
                "zones=a,b",
                "--net",
                "client_zone=a",
                "--net",
                "zone_latency=5ms",
                "--brokers",
                "3",
            ][..],
            "2 zone(s) given (a, b) for a cluster of 3 node(s)",
        ),
        (
            &["--net", "client_latncy=5ms"][..],
            "did you mean client_latency",
        ),
        (&["--net", "client_latency=-5ms"][..], "client_latency"),
        (&["--net", "client_bandwidth=0MB/s"][..], "below 1KB/s"),
        (
            &["--net", "client_latency=1ms", "--bootstrap", "127.0.0.1:9"][..],
            "--net",
        ),
        (
            &[
                "--fault",
                "at=1s,action=isolate,broker=4,for=2s",
                "--brokers",
                "3",
                "--net",
                "clear",
            ][..],
            "broker: 4 of 3",
        ),
        (
            &["--fault", "at=1s,action=slow,broker=1,for=2s"][..],
            "latency: slow needs",
        ),
    ] {
        let out = klab()
            .args(["run", "--duration", "5s"])
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// The processes whose parent is `ppid` and whose command line mentions
/// `name`.
fn children_named(ppid: u32, name: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid ...: the fields after the last ')'.
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if parent == Some(ppid) && String::from_utf8_lossy(&cmdline).contains(name) {
            out.push(pid);
        }
    }
    out
}

/// `klab run` at 500 records/s through a network of 2 ms, results in
/// `results`, once it measures: the child, its stderr lines (keep them: the
/// pipe is read while they are) and its one proxy process.
fn measuring_run(
    results: &std::path::Path,
    duration: &str,
    extra: &[&str],
) -> (
    std::process::Child,
    std::sync::mpsc::Receiver<String>,
    Vec<u32>,
) {
    let mut child = klab()
        .args(["run", "--rate", "500", "--duration", duration])
        .args(["--net", "client_latency=2ms"])
        .args(extra)
        .arg("--results")
        .arg(results)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(child.stderr.take().unwrap());
    wait_line(&lines, "run: measuring,", Duration::from_secs(120));
    let proxies = children_named(child.id(), "toxiproxy-server");
    assert_eq!(proxies.len(), 1, "one proxy process: {proxies:?}");
    (child, lines, proxies)
}

/// Ctrl-C during a run with a network: klab stops, exit 130, and neither
/// the broker's JVM nor the proxy outlives it.
#[test]
fn ctrl_c_leaves_no_proxy_and_no_jvm() {
    if klab::net::Toxiproxy::binary().is_err() && std::env::var_os("KLAB_TOXIPROXY").is_none() {
        eprintln!("skipped: no toxiproxy-server (scripts/toxiproxy builds one)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let (mut child, _lines, proxies) = measuring_run(&results, "120s", &[]);
    let needle = results.to_string_lossy().to_string();
    assert_eq!(jvms_mentioning(&needle).len(), 1);
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = wait_for("klab to exit", Duration::from_secs(60), || {
        child.try_wait().unwrap()
    });
    assert_eq!(status.code(), Some(130));
    assert!(jvms_mentioning(&needle).is_empty(), "a JVM outlived klab");
    wait_for("the proxy to end", Duration::from_secs(10), || {
        has_ended(&proxies[0].to_string()).then_some(())
    });
}

/// Without a toxiproxy-server, a run or a lab that needs a network is
/// refused before anything starts (exit 2), naming how to get one.
#[test]
fn a_network_without_its_proxy_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["run", "--net", "client_latency=2ms"][..],
        &["lab", "run", "network/02", "--quick", "--fix-with", "lab"][..],
    ] {
        let out = klab()
            .args(args)
            .arg("--results")
            .arg(dir.path())
            .env_remove("KLAB_TOXIPROXY")
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("scripts/toxiproxy"), "{args:?}: {err}");
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

/// A proxy that dies during a run: the step ends incomplete, naming the
/// proxy, keeps what it measured, and no JVM or proxy outlives klab.
#[test]
fn a_proxy_that_dies_mid_run_ends_the_step_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let json = dir.path().join("run.json");
    let json_arg = json.to_string_lossy().to_string();
    let (mut child, _lines, proxies) = measuring_run(&results, "60s", &["--json", &json_arg]);
    let needle = results.to_string_lossy().to_string();
    unsafe { libc::kill(proxies[0] as i32, libc::SIGKILL) };
    let status = wait_for("klab to exit", Duration::from_secs(60), || {
        child.try_wait().unwrap()
    });
    assert_eq!(status.code(), Some(1), "an incomplete run exits 1");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(r["complete"], false, "{r}");
    let reason = r["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("proxy"), "{reason}");
    assert!(
        r["produced"].as_u64().unwrap_or(0) > 0,
        "what was measured is kept"
    );
    assert!(jvms_mentioning(&needle).is_empty(), "a JVM outlived klab");
}
