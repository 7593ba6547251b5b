//! Real local clusters of three brokers, and faults inside a measured run:
//! what acks=all with min.insync.replicas=2 keeps when the leader dies, what
//! a paused broker does to the tail, and that no JVM outlives klab.

mod common;

use common::*;
use klab::broker::local::{LocalBroker, LocalOptions};
use klab::load::payload::Secret;
use klab::model::{BrokerConfig, FaultAction, FaultSpec, Workload};
use klab::step::{StepOptions, measure};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Two clusters of three JVMs at once on two cores (the test harness runs
/// tests in parallel) starve each other: a fault's "after" window never
/// comes. The tests that start a cluster take turns.
static ONE_CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_cluster_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner())
}

/// A low rate: three JVMs that just started share two cores while their JIT
/// compilers work (the tests cap the JIT warm-up), and run interpreted code
/// meanwhile; at 500 records/s of 512 B a fresh cluster here fell seconds
/// behind, at 100 records/s it kept its p99 under 40 ms.
fn workload(faults: Vec<FaultSpec>) -> Workload {
    Workload {
        rate: Some(200.0),
        messages: None,
        duration: Some(Duration::from_secs(12)),
        warmup: Duration::from_secs(2),
        message_bytes: 512,
        partitions: 3,
        replication_factor: Some(3),
        min_insync_replicas: Some(2),
        faults,
        // librdkafka pipelines up to a million requests per connection and
        // the broker serves one at a time per connection: with acks=all each
        // waits a replication round trip, so a trickle of one-record batches
        // queues up behind itself. Five in flight (the Java client's
        // default, and what idempotence allows) lets the batches grow.
        producer: [(
            "max.in.flight.requests.per.connection".to_string(),
            "5".to_string(),
        )]
        .into(),
        ..Workload::default()
    }
}

/// One measured step on the cluster, with the tests' key.
fn step(b: &mut LocalBroker, w: &Workload, opts: &StepOptions) -> klab::stats::report::Measurement {
    measure(b, w, &Secret::new(b"cluster-test".to_vec()), opts).expect("a step on the cluster")
}

/// A throw-away load: three JVMs compiling on two cores, leadership moving,
/// a node catching up are no baseline for a fault's window.
fn warm_up(b: &mut LocalBroker) {
    let mut w = workload(Vec::new());
    w.duration = Some(Duration::from_secs(15));
    let opts = StepOptions {
        throwaway: true,
        ..StepOptions::default()
    };
    step(b, &w, &opts);
}

#[test]
fn a_node_that_ignores_sigterm_is_killed_and_ctrl_c_leaves_no_jvm() {
    let _turn = one_cluster_at_a_time();
    // A stopped (SIGSTOP) JVM handles no SIGTERM: stop() must kill it
    // after the grace period.
    let dir = tempfile::tempdir().unwrap();
    let needle = dir.path().to_string_lossy().to_string();
    let mut opts = LocalOptions::new(
        kafka_home(),
        dir.path().join("broker"),
        BrokerConfig {
            heap: Some("512m".parse().unwrap()),
            ..Default::default()
        },
    )
    .brokers(3);
    opts.stop_grace = Duration::from_secs(5);
    let mut b = LocalBroker::start(opts).unwrap();
    // Frozen behind klab's back (not a fault's pause): SIGTERM stays
    // pending, as for a JVM whose shutdown hangs.
    b.node(2).unwrap().signal(libc::SIGSTOP).unwrap();
    let began = Instant::now();
    let stopped = b.stop().unwrap();
    assert_eq!(stopped, klab::broker::node::Stopped::Killed);
    assert!(began.elapsed() >= Duration::from_secs(5));
    assert!(jvms_mentioning(&needle).is_empty());
    drop(b);

    // klab run --brokers 3, interrupted: every JVM goes.
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let mut child = klab()
        .args([
            "run",
            "--brokers",
            "3",
            "--rate",
            "1000",
            "--duration",
            "120s",
            "--results",
        ])
        .arg(&results)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(child.stderr.take().unwrap());
    wait_line(&lines, "run: measuring,", Duration::from_secs(180));
    let run = std::fs::read_dir(&results)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let needle = run.to_string_lossy().to_string();
    assert_eq!(jvms_mentioning(&needle).len(), 3);
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = wait_for("klab to exit", Duration::from_secs(60), || {
        child.try_wait().unwrap()
    });
    assert_eq!(status.code(), Some(130));
    assert!(jvms_mentioning(&needle).is_empty(), "a JVM outlived klab");
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("result.json")).unwrap()).unwrap();
    assert_eq!(v["workload"]["replication_factor"], serde_json::Value::Null);
    assert_eq!(v["complete"], false);
}

/// SIGTERM while the nodes of a cluster format their storage (three
/// StorageTool JVMs, seconds on two cores): klab stops at once and leaves
/// no JVM (it used to finish formatting first).
#[test]
fn sigterm_while_a_cluster_formats_its_storage_is_honoured_at_once() {
    let _turn = one_cluster_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let needle = results.to_string_lossy().to_string();
    let mut child = klab()
        .args(["run", "--brokers", "3", "--duration", "5s", "--results"])
        .arg(&results)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let java_with = |what: &str| -> Vec<u32> {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
            .filter(|pid| {
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let cmd = String::from_utf8_lossy(&cmd);
                cmd.contains(what) && cmd.contains(&needle)
            })
            .collect()
    };
    wait_for("the StorageTool JVMs", Duration::from_secs(60), || {
        (!java_with("StorageTool").is_empty()).then_some(())
    });
    let asked = Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = wait_for("klab to exit", Duration::from_secs(30), || {
        child.try_wait().unwrap()
    });
    let took = asked.elapsed();
    assert_eq!(status.code(), Some(130));
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(java_with("StorageTool").is_empty() && jvms_mentioning(&needle).is_empty());
}

#[test]
fn bad_fault_specs_and_cluster_flags_are_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    for (args, want) in [
        (
            &["--fault", "at=1s,action=nuke,broker=1"][..],
            "not a fault action",
        ),
        (
            &[
                "--fault",
                "at=30s,action=kill,broker=1",
                "--duration",
                "10s",
            ][..],
            "not inside the measured window",
        ),
        (
            &["--fault", "at=1s,action=kill,broker=4", "--brokers", "3"][..],
            "broker: 4 of 3",
        ),
        (
            &["--fault", "at=1s,action=pause,broker=1"][..],
            "pause needs how long",
        ),
        (&["--brokers", "9"][..], "--brokers"),
        (&["--replication-factor", "3"][..], "1 broker"),
        (
            &[
                "--fault",
                "at=1s,action=kill,broker=1",
                "--bootstrap",
                "127.0.0.1:9",
            ][..],
            "--fault",
        ),
    ] {
        let out = klab()
            .arg("run")
            .args(args)
            .arg("--results")
            .arg(&results)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert!(!results.exists(), "{args:?} started something");
    }
}

/// One cluster of three for the tests that only need a healthy one: a
/// leader kill (the node restarts, the cluster is whole again), a pause on
/// the same, now warm, cluster, and `klab run --bootstrap` against it. Each
/// cluster start costs three JVM starts and a warm-up on two cores; the
/// checks run in sequence on one. Auto-create is on (Kafka's default) for
/// the last one: a metadata lookup must not create a topic with one
/// partition. Then a node is killed from outside during a step.
#[test]
fn one_three_node_cluster_survives_a_kill_and_a_pause_and_serves_bootstrap() {
    let _turn = one_cluster_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let needle = dir.path().to_string_lossy().to_string();
    let mut b = LocalBroker::start(
        LocalOptions::new(
            kafka_home(),
            dir.path().join("broker"),
            BrokerConfig {
                heap: Some("512m".parse().unwrap()),
                properties: [("auto.create.topics.enable".to_string(), "true".to_string())].into(),
            },
        )
        .brokers(3),
    )
    .expect("starting a local cluster");
    assert_eq!(b.size(), 3);
    assert_eq!(jvms_mentioning(&needle).len(), 3);
    assert!(dir.path().join("broker/node-2/broker.log").is_file());
    assert_eq!(
        b.admin()
            .unwrap()
            .broker_ids(Duration::from_secs(5))
            .unwrap()
            .len(),
        3
    );
    leader_kill_loses_nothing_with_acks_all(&mut b);
    assert!(b.is_running());
    assert_eq!(jvms_mentioning(&needle).len(), 3);
    // The restarted node is a fresh JVM, and leadership moves back to it
    // (preferred leaders, checked every 5 s here): a throw-away load first,
    // so the pause's "before" window is a baseline.
    warm_up(&mut b);
    paused_leader_shows_in_the_fault_window_and_in_recovery(&mut b);
    bootstrap_creates_a_missing_topic_with_its_partitions_and_replicas(&b, dir.path());
    // Last, so the checks above start from the cluster they expect.
    a_node_killed_from_outside_is_noted_and_the_step_goes_on(&mut b);
    assert!(b.is_running());
    assert_eq!(jvms_mentioning(&needle).len(), 3);
    b.stop().unwrap();
    assert!(jvms_mentioning(&needle).is_empty());
}

/// acks=all, min.insync.replicas=2, an idempotent producer: the leader of
/// partition 0 is killed 4 s in and restarted 4 s later.
fn leader_kill_loses_nothing_with_acks_all(b: &mut LocalBroker) {
    let mut w = workload(vec![
        "at=4s,action=kill,broker=leader,restart_after=4s"
            .parse::<FaultSpec>()
            .unwrap(),
    ]);
    w.producer
        .insert("enable.idempotence".into(), "true".into());
    let m = step(b, &w, &StepOptions::default());
    let r = &m.result;
    assert!(r.complete, "{:?}", r.reason);
    // acks=all with two replicas in sync: every acknowledged record is read.
    assert_eq!(r.lost, 0, "{r:#?}");
    assert_eq!(r.consumed, r.acked + r.duplicated);
    assert_eq!(r.duplicated, 0, "idempotent producer");
    assert_eq!(r.faults.len(), 1);
    let f = &r.faults[0];
    assert_eq!(f.action, FaultAction::Kill);
    assert!((1..=3).contains(&f.broker), "{f:?}");
    assert!(f.error.is_none(), "{f:?}");
    assert!(
        f.leader_moved_s.is_some(),
        "the partitions it led moved: {f:?}"
    );
    assert!(f.back_at_s.is_some(), "{f:?}");
    let names: Vec<&str> = r.windows.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names.first(), Some(&"before"), "{:?}", r.windows);
    assert!(names.contains(&"during"), "{:?}", r.windows);
    assert_eq!(r.windows.iter().map(|w| w.lost).sum::<u64>(), 0);
}

/// A node killed by someone else (not a klab fault) while the others carry
/// on: the step goes on to its end, counts what it sent, reads the topic
/// back, and says what happened; the node is started again after it. (It
/// used to abort the run, count klab's own abort as failed sends and skip
/// the read-back.)
fn a_node_killed_from_outside_is_noted_and_the_step_goes_on(b: &mut LocalBroker) {
    let mut w = workload(Vec::new());
    w.producer
        .insert("enable.idempotence".into(), "true".into());
    let pid = b.node(3).unwrap().pid().unwrap() as i32;
    let events = klab::events::subscribe(64);
    let bootstrap = b.bootstrap();
    let killer = std::thread::spawn(move || {
        wait_measuring(&events, &bootstrap, Duration::from_secs(60));
        unsafe { libc::kill(pid, libc::SIGKILL) };
    });
    let m = step(b, &w, &StepOptions::default());
    killer.join().unwrap();
    let r = &m.result;
    assert!(!r.complete, "an outside death is not a clean measurement");
    let reason = r.reason.as_deref().unwrap_or("");
    assert!(
        reason.contains("broker 3 died during the step") && reason.contains("not by a klab fault"),
        "{reason}"
    );
    assert_eq!((r.failed, r.lost, r.duplicated), (0, 0, 0), "{r:#?}");
    assert_eq!(r.consumed, r.acked);
    // Measured to the end of its window, and read back.
    assert!(r.measured_seconds >= 10.0, "{}", r.measured_seconds);
    let lc = r.log_check.as_ref().expect("the topic was read back");
    assert!(lc.complete && lc.lost == 0, "{lc:?}");
    assert_eq!(lc.read, r.acked);
}

fn paused_leader_shows_in_the_fault_window_and_in_recovery(b: &mut LocalBroker) {
    // A pause shorter than the broker session timeout: the leader comes
    // back and stays the leader; records wait for it.
    let mut w = workload(vec![
        "at=3s,action=pause,broker=leader,for=2s"
            .parse::<FaultSpec>()
            .unwrap(),
    ]);
    // Recovery needs three steady seconds after the backlog's burst; on two
    // busy cores (a clean CI build) 12 s left too few of them.
    w.duration = Some(Duration::from_secs(20));
    let m = step(b, &w, &StepOptions::default());
    let r = &m.result;
    assert!(r.complete, "{:?}", r.reason);
    assert_eq!(r.lost, 0);
    let before = r.windows.iter().find(|w| w.name == "before").unwrap();
    let during = r.windows.iter().find(|w| w.name == "during").unwrap();
    assert!(
        during.e2e_p99_ms >= 1000.0 && during.e2e_p99_ms > 3.0 * before.e2e_p99_ms,
        "{:?}",
        r.windows
    );
    let Some(rec) = r.recovery_s else {
        panic!(
            "the rate never came back: {:?} {:?} {:?}",
            r.faults, r.windows, r.e2e_timeline
        );
    };
    let after = r.windows.iter().find(|w| w.name == "after");
    let after = after.expect("recovered, so an after window");
    assert!(after.e2e_p99_ms < during.e2e_p99_ms, "{:?}", r.windows);
    assert!(rec >= 1.0, "{rec}");
    assert_eq!(r.faults[0].back_at_s.map(|x| x.round()), Some(5.0));
}

fn bootstrap_creates_a_missing_topic_with_its_partitions_and_replicas(
    b: &LocalBroker,
    dir: &std::path::Path,
) {
    let out = klab()
        .args([
            "run",
            "--bootstrap",
            &b.bootstrap(),
            "--topic",
            "brand-new",
            "--partitions",
            "6",
        ])
        .args([
            "--replication-factor",
            "2",
            "--rate",
            "500",
            "--duration",
            "2s",
            "--warmup",
            "1s",
        ])
        .arg("--results")
        .arg(dir.join("results"))
        .output()
        .unwrap();
    stdout_of_success(&out);
    let admin = b.admin().unwrap();
    assert_eq!(admin.topic_partitions("brand-new").unwrap(), Some(6));
    assert_eq!(admin.under_replicated(Duration::from_secs(5)).unwrap(), 0);
    let leaders = admin.leaders("brand-new", Duration::from_secs(5)).unwrap();
    assert_eq!(leaders.len(), 6);
}
