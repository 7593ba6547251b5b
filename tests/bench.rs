//! `klab bench` end to end against a real broker and Kafka's real tools:
//! it must produce a report with the ratio fields, every figure finite and
//! positive. No timing assertions: the figures are benchmark results.

mod common;

use common::*;
use serde_json::Value;

fn finite_positive(v: &Value, what: &str) -> f64 {
    let x = v
        .as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"));
    assert!(x.is_finite() && x > 0.0, "{what} = {x}");
    x
}

/// librdkafka's benchmark: `$KLAB_RDKAFKA_PERFORMANCE` (scripts/test sets
/// it), else built (or found in the cache) by scripts/rdkafka-performance.
fn rdkafka_performance() -> String {
    if let Ok(p) = std::env::var("KLAB_RDKAFKA_PERFORMANCE") {
        return p;
    }
    let out = std::process::Command::new("scripts/rdkafka-performance")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/rdkafka-performance: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn bench_quick_one_pair_writes_ratios() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("out/bench.json");
    let out = klab()
        .args([
            "bench",
            "--quick",
            "--runs",
            "1",
            "--messages",
            "20000",
            "--startups",
            "1",
            "--quiet",
        ])
        .arg("--rdkafka-performance")
        .arg(rdkafka_performance())
        .arg("--json")
        .arg(&json)
        .arg("--results")
        .arg(dir.path().join("results"))
        // The broker's JIT-settling load, short here (a figure of this
        // test is not a benchmark result).
        .env("KLAB_JIT_WARM_UP", "8s")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "klab bench failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("klab / peer"), "{stdout}");
    assert!(stdout.contains("producer records/s"), "{stdout}");

    let v: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    for key in [
        "klab_vs_producer_performance",
        "cpu_per_record_producer",
        "cpu_per_record_consumer",
        "klab_vs_consumer_performance",
        "klab_vs_rdkafka_performance",
        "cpu_per_record_vs_rdkafka_performance",
        // Not p50: EndToEndLatency prints whole milliseconds, often a 0.
        "e2e_avg_klab_vs_end_to_end_latency",
    ] {
        let r = &v["ratios"][key];
        let med = finite_positive(&r["median"], &format!("{key}.median"));
        let min = finite_positive(&r["min"], &format!("{key}.min"));
        let max = finite_positive(&r["max"], &format!("{key}.max"));
        assert!(min <= med && med <= max, "{key}: {r}");
    }
    // The JIT-settling load ran after the warm-up pair at half klab's
    // warm-up rate, within its limit.
    let jit = &v["jit_warm_up"];
    let warm_klab = v["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["phase"] == "warmup" && r["side"] == "klab" && r["test"] == "producer")
        .unwrap();
    let half = finite_positive(&warm_klab["records_per_s"], "warm-up rate") / 2.0;
    assert!(
        (finite_positive(&jit["rate"], "jit rate") - half).abs() < 1e-6 * half,
        "{jit}"
    );
    assert_eq!(jit["max_s"], 8.0, "{jit}");
    assert!(
        finite_positive(&jit["seconds"], "jit seconds") > 0.0,
        "{jit}"
    );
    // One cold start each of one broker and of three nodes, timed.
    for key in ["1_broker", "3_nodes"] {
        finite_positive(&v["ready_s"][key]["median"], key);
        assert_eq!(v["ready_runs_s"][key].as_array().unwrap().len(), 1);
    }
    assert!(stdout.contains("cold start → ready"), "{stdout}");
    let runs = v["runs"].as_array().unwrap();
    let measured: Vec<&Value> = runs.iter().filter(|r| r["phase"] == "measured").collect();
    // One pair: producer, consumer and latency, klab and peer each, and
    // rdkafka_performance's producer.
    assert_eq!(measured.len(), 7, "{measured:#?}");
    assert!(
        measured
            .iter()
            .any(|r| r["side"] == "rdkafka_performance" && r["test"] == "producer"),
        "{measured:#?}"
    );
    assert!(stdout.contains("vs rdkafka_performance"), "{stdout}");
    for r in &measured {
        assert_eq!(r["complete"], true, "{r:#}");
        finite_positive(&r["records_per_s"], "records_per_s");
        if r["test"] != "latency" {
            finite_positive(&r["cpu_per_record_us"], "cpu_per_record_us");
            assert_eq!(r["records"], 20000, "{r:#}");
        } else {
            finite_positive(&r["latency"]["avg_ms"], "latency avg");
        }
    }
    // klab's consumer checked every record.
    let kc = measured
        .iter()
        .find(|r| r["test"] == "consumer" && r["side"] == "klab")
        .unwrap();
    assert_eq!(kc["detail"]["lost"], 0);
    assert_eq!(kc["detail"]["corrupt"], 0);
    // The plot is beside the JSON, and the run directory has its own copy.
    let svg = std::fs::read_to_string(dir.path().join("out/bench.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("ProducerPerf #1"));
    assert!(svg.contains("rdkafka_perf #1"));
    let run_dir = only_run_dir(&dir.path().join("results"));
    assert!(run_dir.join("bench.json").is_file());
    // No JVM is left behind (the broker, the tools).
    assert!(jvms_mentioning(dir.path().to_str().unwrap()).is_empty());
}

#[test]
fn bench_rejects_bad_flags_before_starting_anything() {
    let out = klab().args(["bench", "--runs", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = klab().args(["bench", "--startups", "11"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = klab()
        .args(["bench", "--json", "/proc/klab/x.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // A missing peer is named, with how to build it; no broker starts.
    let dir = tempfile::tempdir().unwrap();
    let out = klab()
        .args([
            "bench",
            "--quick",
            "--rdkafka-performance",
            "/nonexistent/rdkafka_performance",
        ])
        .arg("--results")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/rdkafka_performance")
            && err.contains("scripts/rdkafka-performance"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
}
