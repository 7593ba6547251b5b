//! The pieces the Kubernetes target runs as pods, run here as processes:
//! `klab broker exec` (the broker image's entrypoint), `klab consume` and
//! `klab produce`, whose outcomes klab assembles into one StepResult.

mod common;

use common::*;
use klab::broker::admin::Admin;
use klab::load::outcome::{ConsumerOutcome, ProducerOutcome, assemble};
use klab::model::Workload;
use std::process::Stdio;
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the child when the test ends, whatever happens.
struct Reap(std::process::Child);
impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn broker_exec_produce_and_consume_as_separate_processes() {
    let dir = tempfile::tempdir().unwrap();
    let (bp, cp) = (free_port(), free_port());
    let broker = klab()
        .args(["broker", "exec", "--advertised-host", "127.0.0.1"])
        .args([
            "--broker-port",
            &bp.to_string(),
            "--controller-port",
            &cp.to_string(),
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--config-dir")
        .arg(dir.path().join("conf"))
        .env(
            "KLAB_BROKER_CONFIG",
            "heap = \"384m\"\n[properties]\n\"num.io.threads\" = \"3\"\n",
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _broker = Reap(broker);
    let bootstrap = format!("127.0.0.1:{bp}");
    let admin = Admin::connect(&bootstrap).unwrap();
    let node = wait_for("the broker to answer", Duration::from_secs(90), || {
        admin.node_id(Duration::from_secs(1)).ok()
    });
    let eff = admin.describe_broker(node).unwrap();
    assert_eq!(eff["num.io.threads"].value.as_deref(), Some("3"));
    let gc = std::fs::read_to_string(dir.path().join("conf/gc.log")).unwrap();
    assert!(gc.contains("Heap Max Capacity: 384M"), "{gc}");

    let secret = "pods-test-secret";
    let consumer = klab()
        .args([
            "consume",
            "--bootstrap",
            &bootstrap,
            "--topic",
            "pods",
            "--create-partitions",
            "3",
        ])
        .args(["--producers", "2", "--timeout", "120s"])
        .env("KLAB_SECRET", secret)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let produced = klab()
        .args([
            "produce",
            "--bootstrap",
            &bootstrap,
            "--topic",
            "pods",
            "--partitions",
            "3",
        ])
        .args([
            "--producers",
            "2",
            "--rate",
            "4000",
            "--duration",
            "3s",
            "--warmup",
            "1s",
        ])
        .env("KLAB_SECRET", secret)
        .output()
        .unwrap();
    assert!(
        produced.status.success(),
        "{}",
        String::from_utf8_lossy(&produced.stderr)
    );
    let consumed = consumer.wait_with_output().unwrap();
    assert!(consumed.status.success());
    let p: ProducerOutcome = serde_json::from_slice(produced.stdout.trim_ascii()).unwrap();
    let c: ConsumerOutcome = serde_json::from_slice(consumed.stdout.trim_ascii()).unwrap();
    assert_eq!(p.producers, 2);
    let w = Workload {
        rate: Some(4000.0),
        duration: Some(Duration::from_secs(3)),
        partitions: 3,
        producers: 2,
        ..Workload::default()
    };
    let r = assemble(&w, &p, &c, Vec::new());
    assert!(r.complete, "{:?}", r.reason);
    assert_eq!(r.consumed, r.acked);
    assert_eq!((r.lost, r.duplicated, r.corrupt), (0, 0, 0));
    assert!(r.e2e_latency_ms.count > 0 && r.publish_latency_ms.count > 0);
    assert!(
        r.throughput.msgs_per_s > 3000.0,
        "{}",
        r.throughput.msgs_per_s
    );

    // Without the shared secret, the pods refuse to start (exit 2).
    let out = klab()
        .args(["consume", "--bootstrap", &bootstrap, "--topic", "pods"])
        .env_remove("KLAB_SECRET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn broker_render_uses_the_same_spelling() {
    let out = klab()
        .args([
            "broker",
            "render",
            "--config",
            "-",
            "--advertised-host",
            "kafka-0.kafka-headless.klab.svc",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(b"heap = \"256m\"\n[properties]\n\"num.network.threads\" = \"1\"\n")?;
            c.wait_with_output()
        })
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("-Xmx256m"), "{text}");
    assert!(text.contains("num.network.threads=1"), "{text}");
    assert!(
        text.contains("advertised.listeners=PLAINTEXT://kafka-0.kafka-headless.klab.svc:9092"),
        "{text}"
    );
    let bad = klab()
        .args(["broker", "render"])
        .env(
            "KLAB_BROKER_CONFIG",
            "[properties]\n\"num.io.threads\" = \"zero\"\n",
        )
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("KLAB_BROKER_CONFIG"));
}
