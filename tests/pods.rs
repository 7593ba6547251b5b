//! The pieces the Kubernetes target runs as pods, run here as processes:
//! `klab broker exec` (the broker image's entrypoint), `klab consume` and
//! `klab produce`, whose outcomes klab assembles into one StepResult, and
//! the `/metrics` they serve with `--metrics`.

mod common;

use common::*;
use klab::broker::admin::Admin;
use klab::load::outcome::{ConsumerOutcome, ProducerOutcome, assemble};
use klab::model::Workload;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The tests that run a broker take turns: two at once on a small machine
/// starve each other.
static TURNS: Mutex<()> = Mutex::new(());

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
    let _turn = TURNS.lock().unwrap_or_else(|p| p.into_inner());
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

/// One GET (Connection: close): status and body.
fn get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    request("GET", addr, path)
}

fn request(method: &str, addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

/// Scrapes `addr` once: the parsed exposition, None once the process is
/// gone. Checks the families and types, that the secret stays out, and
/// that the counters in `last` did not go down.
fn scrape(
    addr: &str,
    families: &[(&str, openmetrics_parser::OpenMetricsType)],
    absent: &[&str],
    last: &mut [f64],
    secret: &str,
) -> Option<Exposition> {
    let Ok((200, text)) = get(addr, "/metrics") else {
        return None;
    };
    assert!(!text.contains(secret), "the secret is in /metrics");
    let e = openmetrics_parser::openmetrics::parse_openmetrics(&text)
        .unwrap_or_else(|err| panic!("/metrics does not parse: {err:?}\n{text}"));
    for (i, (name, t)) in families.iter().enumerate() {
        let f = e
            .families
            .get(*name)
            .unwrap_or_else(|| panic!("no {name} in\n{text}"));
        assert_eq!(&f.family_type, t, "{name}");
        if matches!(
            t,
            openmetrics_parser::OpenMetricsType::Counter
                | openmetrics_parser::OpenMetricsType::Histogram
        ) {
            let v = value(&e, name);
            assert!(v >= last[i], "{name} went down: {} → {v}", last[i]);
            last[i] = v;
        }
    }
    for name in absent {
        assert!(
            !e.families.contains_key(*name),
            "{name} in a process that cannot know it"
        );
    }
    Some(e)
}

/// The address a `--metrics` process printed (`metrics: http://ADDR/metrics`),
/// as one to connect to.
fn metrics_addr(line: &str) -> String {
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no address in '{line}'"));
    addr.replace("0.0.0.0", "127.0.0.1")
}

#[test]
fn produce_and_consume_serve_metrics_whose_counters_grow() {
    use openmetrics_parser::OpenMetricsType as T;
    let _turn = TURNS.lock().unwrap_or_else(|p| p.into_inner());
    let bootstrap = shared_broker().bootstrap();
    let secret = "metrics-test-secret";
    let topic = format!("pods-metrics-{}", std::process::id());

    // A taken port is a usage error before anything starts.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let out = klab()
        .args(["produce", "--bootstrap", &bootstrap, "--topic", &topic])
        .args(["--metrics", &taken])
        .env("KLAB_SECRET", secret)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use") && err.contains("--metrics"), "{err}");

    // The consumer on every interface (one warning line), the producer on
    // loopback; both on a port the kernel picks.
    let mut consumer = klab()
        .args(["consume", "--bootstrap", &bootstrap, "--topic", &topic])
        .args(["--create-partitions", "2", "--timeout", "120s"])
        .args(["--metrics", "0.0.0.0:0", "--delete-topic"])
        .env("KLAB_SECRET", secret)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let clines = lines_of(consumer.stderr.take().unwrap());
    let warning = wait_line(&clines, "warning:", Duration::from_secs(30));
    assert!(
        warning.contains("/metrics listens on 0.0.0.0:"),
        "{warning}"
    );
    let caddr = metrics_addr(&wait_line(
        &clines,
        "metrics: http://",
        Duration::from_secs(30),
    ));
    let _consumer = Reap(consumer);

    let mut producer = klab()
        .args(["produce", "--bootstrap", &bootstrap, "--topic", &topic])
        .args(["--partitions", "2", "--rate", "2000", "--duration", "6s"])
        .args(["--warmup", "1s", "--metrics", "127.0.0.1:0"])
        .env("KLAB_SECRET", secret)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let plines = lines_of(producer.stderr.take().unwrap());
    let paddr = metrics_addr(&wait_line(
        &plines,
        "metrics: http://",
        Duration::from_secs(30),
    ));
    let mut producer = Reap(producer);

    // Only /metrics, read-only.
    assert_eq!(get(&paddr, "/").unwrap().0, 404);
    assert_eq!(get(&caddr, "/events").unwrap().0, 404);
    assert_eq!(request("POST", &paddr, "/metrics").unwrap().0, 405);

    let pfam = [
        ("klab_produced_records", T::Counter),
        ("klab_acknowledged_records", T::Counter),
        ("klab_publish_latency_p99_seconds", T::Gauge),
        ("klab_step", T::Info),
    ];
    let cfam = [
        ("klab_consumed_records", T::Counter),
        ("klab_lost_records", T::Counter),
        ("klab_duplicated_records", T::Counter),
        ("klab_e2e_latency_seconds", T::Histogram),
        ("klab_e2e_latency_max_seconds", T::Gauge),
        ("klab_step", T::Info),
    ];
    let pabsent = ["klab_consumed_records", "klab_e2e_latency_seconds"];
    let cabsent = ["klab_produced_records", "klab_consumer_lag_records"];
    let (mut plast, mut clast) = (vec![0.0; pfam.len()], vec![0.0; cfam.len()]);
    let mut publish_p99 = 0.0f64;
    let deadline = Instant::now() + Duration::from_secs(120);
    // Scrape while the producer runs, until both sides have counted records.
    loop {
        assert!(Instant::now() < deadline, "no growing counters within 120s");
        let p = scrape(&paddr, &pfam, &pabsent, &mut plast, secret);
        let c = scrape(&caddr, &cfam, &cabsent, &mut clast, secret);
        if let Some(p) = &p {
            publish_p99 = publish_p99.max(value(p, "klab_publish_latency_p99_seconds"));
        }
        let grown = plast[0] > 0.0 && plast[1] > 0.0 && clast[0] > 0.0 && clast[3] > 0.0;
        if grown && publish_p99 > 0.0 {
            break;
        }
        if p.is_none() || c.is_none() {
            panic!(
                "a process ended before its counters grew: produced {}, acked {}, consumed {}, e2e count {}, publish p99 {publish_p99}",
                plast[0], plast[1], clast[0], clast[3]
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // A later scrape has counted more.
    let before = (plast[0], clast[0]);
    loop {
        assert!(Instant::now() < deadline, "the counters stopped growing");
        let p = scrape(&paddr, &pfam, &pabsent, &mut plast, secret);
        let c = scrape(&caddr, &cfam, &cabsent, &mut clast, secret);
        if plast[0] > before.0 && clast[0] > before.1 {
            break;
        }
        assert!(p.is_some() && c.is_some(), "a process ended first");
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = producer.0.wait().unwrap();
    assert!(status.success(), "klab produce: {status}");
}
