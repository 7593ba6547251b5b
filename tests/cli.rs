//! The klab binary as a user meets it: bad input fails fast with exit code
//! 2 and starts nothing; a real run writes its JSON and histograms; Ctrl-C
//! stops cleanly and keeps what was measured.

mod common;

use common::*;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn run_fails_with_2(args: &[&str], expect: &str) {
    let results = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = klab()
        .arg("run")
        .args(args)
        .arg("--results")
        .arg(results.path().join("r"))
        .output()
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(
        stderr.contains(expect),
        "{args:?}: expected '{expect}' in: {stderr}"
    );
    assert!(took < Duration::from_secs(10), "{args:?} took {took:?}");
    // Nothing started, nothing written.
    assert!(
        !results.path().join("r").exists(),
        "{args:?} created a run directory"
    );
    assert!(
        stderr.lines().filter(|l| !l.trim().is_empty()).count() <= 6,
        "{stderr}"
    );
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["--rate", "-1"], "--rate"),
        (&["--rate", "lots"], "--rate"),
        (&["--message-bytes", "0"], "--message-bytes"),
        (&["--message-bytes", "2000000000"], "--message-bytes"),
        (&["--partitions", "0"], "--partitions"),
        (&["--acks", "2"], "--acks"),
        (&["--producer-set", "linger.ms"], "--producer-set"),
        (&["--producer-set", "acks=0"], "--producer-set"),
        (&["--broker-set", "num.io.threads"], "--broker-set"),
        (
            &["--broker-set", "no.such.config=1"],
            "not a Kafka 4.1 broker config",
        ),
        (&["--broker-set", "num.io.threads=0"], "out of range"),
        (
            &["--broker-set", "listeners=PLAINTEXT://:1"],
            "set by klab itself",
        ),
        (&["--heap", "huge"], "--heap"),
        (&["--heap", "1t"], "--heap"),
        (&["--duration", "forever"], "--duration"),
        (&["--warmup", "5 parsecs"], "--warmup"),
        (&["--json", "/proc/klab/result.json"], "--json"),
        (
            &["--bootstrap", "no-such-host.invalid:9092"],
            "cannot resolve",
        ),
        (&["--bootstrap", "127.0.0.1:1"], "nothing answers"),
        (&["--bootstrap", "localhost"], "HOST:PORT"),
        (&["--kafka-home", "/nonexistent"], "--kafka-home"),
        (&["--kafka-home", "/opt/a:b"], "':' cannot be in its path"),
        (
            &["--producer-set", "lingr.ms=5"],
            "--producer-set lingr.ms=5: No such configuration property",
        ),
        (
            &["--consumer-set", "fetch.wait.max.ms=soon"],
            "--consumer-set fetch.wait.max.ms=soon",
        ),
        (
            &["--rate", "0.0001"],
            "--rate: 0.0001/s over 10s is less than one record",
        ),
        (
            &["--duration", "0.0000001s"],
            "--duration: 100ns is too short",
        ),
    ];
    for (args, expect) in cases {
        run_fails_with_2(args, expect);
    }
}

/// Where klab would write what it must not (a `--results` path Kafka
/// reads as two folders, one it cannot create, a `--json` that is not a
/// regular file): exit 2 before anything starts, and nothing changed.
#[test]
fn outputs_klab_cannot_write_exit_2_and_are_left_alone() {
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("out.fifo");
    mkfifo(&fifo);
    let comma = d.path().join("runs/a,b");
    let cases: Vec<(Vec<std::ffi::OsString>, String)> = vec![
        (
            vec!["--results".into(), comma.clone().into()],
            "',' cannot be in a path klab hands to Kafka".into(),
        ),
        (
            vec!["--results".into(), "/proc/klab-results".into()],
            "--results /proc/klab-results: cannot create a run folder there".into(),
        ),
        (
            vec![
                "--results".into(),
                d.path().join("r").into(),
                "--json".into(),
                fifo.clone().into(),
            ],
            format!("--json {}: a FIFO, not a regular file", fifo.display()),
        ),
    ];
    for (args, expect) in cases {
        let out = klab()
            .args(["run", "--duration", "1s"])
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(&expect), "{args:?}: {stderr}");
    }
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert!(!d.path().join("runs").exists() && !d.path().join("r").exists());
}

/// Log lines that go to a file or a pipe are plain text (they carried
/// ANSI colour codes); and a consumer with nothing to read from ends at its
/// --timeout, not after 30 s of looking for the topic.
#[test]
fn log_lines_to_a_file_have_no_colour_codes() {
    let started = Instant::now();
    let out = klab()
        .env("RUST_LOG", "debug")
        .env("KLAB_SECRET", "test")
        .args(["consume", "--topic", "t", "--timeout", "2s", "--bootstrap"])
        .arg(format!("127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DEBUG"), "{stderr}");
    assert!(!stderr.contains('\x1b'), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn broker_knobs_are_refused_with_bootstrap() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    run_fails_with_2(
        &["--bootstrap", &addr, "--heap", "512m"],
        "does not own the broker",
    );
}

#[test]
fn missing_kafka_says_how_to_get_it() {
    let results = tempfile::tempdir().unwrap();
    let out = klab()
        .env_remove("KLAB_KAFKA_HOME")
        .args(["run", "--results"])
        .arg(results.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("scripts/kafka-home"), "{stderr}");
}

#[test]
fn a_run_writes_json_and_histograms() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("out/run.json");
    // --json through a link: the file it names is replaced, and the
    // histograms go beside that file.
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    std::fs::write(&json, "old").unwrap();
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink(&json, &link).unwrap();
    // -vv: klab's debug lines and librdkafka's own, all to stderr, none
    // with colour codes when stderr is a pipe (stdout_of_success checks).
    let out = klab()
        .args([
            "-vv",
            "run",
            "--rate",
            "3000",
            "--duration",
            "3s",
            "--warmup",
            "1s",
        ])
        .args(["--heap", "512m", "--broker-set", "num.io.threads=4"])
        // A named topic: the JIT warm-up must not write into it, and Kafka's
        // own offsets must hold what klab counted.
        .args(["--topic", "named-by-the-user", "--kafka-offsets"])
        .arg("--json")
        .arg(&link)
        .arg("--results")
        .arg(dir.path().join("results"))
        .output()
        .unwrap();
    let stdout = stdout_of_success(&out);
    assert!(stdout.contains("end-to-end"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(" INFO "), "no log lines in:\n{stderr}");
    assert!(
        !stdout.contains("DEBUG") && !stdout.contains(" INFO "),
        "{stdout}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    for key in [
        "produced",
        "acked",
        "consumed",
        "lost",
        "duplicated",
        "reordered",
        "corrupt",
        "foreign",
        "target_rate",
        "achieved_rate",
        "complete",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    for p in ["p50", "p90", "p99", "p999", "max"] {
        assert!(v["e2e_latency_ms"][p].as_f64().unwrap() > 0.0);
        assert!(v["publish_latency_ms"][p].as_f64().unwrap() > 0.0);
    }
    assert!(v["throughput"]["msgs_per_s"].as_f64().unwrap() > 0.0);
    assert!(v["throughput"]["mb_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(v["complete"], true);
    assert_eq!(v["lost"], 0);
    assert_eq!(v["consumed"], v["acked"]);
    let acked = v["acked"].as_u64().unwrap();
    assert!(acked >= 11_000, "{acked}");
    let o = &v["kafka_offsets"];
    assert_eq!(o["records"].as_u64(), Some(acked + 3), "{o}");
    assert_eq!(
        (o["markers"].as_u64(), o["difference"].as_i64()),
        (Some(3), Some(0)),
        "{o}"
    );
    assert!(
        stdout.contains("Kafka's own offsets (GetOffsetShell)"),
        "{stdout}"
    );
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(v["target_rate"], 3000.0);
    assert_eq!(v["broker"]["requested"]["heap"], "512m");
    assert_eq!(v["broker"]["effective"]["heap"]["value"], "512m");
    assert_eq!(v["broker"]["effective"]["num.io.threads"]["value"], "4");
    assert!(
        v["environment"]["kafka_version"]
            .as_str()
            .unwrap()
            .starts_with("4.")
    );
    assert!(v["environment"]["cores"].as_u64().unwrap() >= 1);
    assert!(v["workload"]["message_bytes"] == 1024);
    let e2e = dir
        .path()
        .join("out")
        .join(v["histograms"]["e2e"].as_str().unwrap());
    let text = std::fs::read_to_string(e2e).unwrap();
    assert!(text.contains("#[StartTime:"), "{text}");
    assert!(text.lines().filter(|l| !l.starts_with('#')).count() >= 2);
    let run = only_run_dir(&dir.path().join("results"));
    assert!(run.join("result.json").is_file());
    assert!(run.join("broker/broker.log").is_file());
    assert!(
        std::fs::read_to_string(run.join("broker/broker.log"))
            .unwrap()
            .contains("Kafka Server started")
    );
}

#[test]
fn ctrl_c_stops_the_run_and_keeps_what_was_measured() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let json = dir.path().join("r.json");
    // Both commands below share one machine lock.
    let lock = dir.path().join("lock");
    std::fs::create_dir(&lock).unwrap();
    let mut child = klab()
        .env("KLAB_LOCK_DIR", &lock)
        .args([
            "run",
            "--rate",
            "2000",
            "--duration",
            "120s",
            "--warmup",
            "1s",
            "--json",
        ])
        .arg(&json)
        .arg("--results")
        .arg(&results)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Without a terminal klab prints progress lines; wait for the one that
    // says the measured window has started.
    let lines = lines_of(child.stderr.take().unwrap());
    wait_line(&lines, "run: measuring,", Duration::from_secs(120));
    let run = std::fs::read_dir(&results)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let needle = run.to_string_lossy().to_string();
    assert_eq!(jvms_mentioning(&needle).len(), 1);
    // A second measurement on the same machine is refused at once, naming
    // the one that holds it, and starts nothing.
    let second = klab()
        .env("KLAB_LOCK_DIR", &lock)
        .args(["lab", "run", "04", "--quick", "--results"])
        .arg(dir.path().join("second"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{err}");
    assert!(err.contains("measuring already"), "{err}");
    assert!(err.contains(&format!("pid {}", child.id())), "{err}");
    assert!(!dir.path().join("second").exists());
    // A misspelt lab is bad input whoever holds the machine: named as such.
    let typo = klab()
        .env("KLAB_LOCK_DIR", &lock)
        .args(["lab", "rehearse", "durabilty/03", "--quick"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&typo.stderr);
    assert_eq!(typo.status.code(), Some(2), "{err}");
    assert!(err.contains("did you mean durability/03"), "{err}");
    assert!(!err.contains("measuring already"), "{err}");
    // So is a workload that cannot run.
    let bad = klab()
        .env("KLAB_LOCK_DIR", &lock)
        .args(["run", "--keys", "3", "--partitioner", "sticky"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--partitioner: sticky places records"),
        "{err}"
    );
    assert!(!err.contains("measuring already"), "{err}");
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let sent = Instant::now();
    let status = wait_for("klab to exit", Duration::from_secs(30), || {
        child.try_wait().unwrap()
    });
    assert!(sent.elapsed() < Duration::from_secs(30));
    assert_eq!(status.code(), Some(130));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["complete"], false);
    assert!(v["reason"].as_str().unwrap().contains("interrupted"), "{v}");
    assert!(v["acked"].as_u64().unwrap() > 0);
    assert!(jvms_mentioning(&needle).is_empty(), "a JVM outlived klab");
}

#[test]
fn a_killed_klab_takes_its_broker_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let mut child = klab()
        .args(["run", "--rate", "1000", "--duration", "120s", "--results"])
        .arg(&results)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let run = wait_for("the broker to start", Duration::from_secs(90), || {
        let run = std::fs::read_dir(&results).ok()?.flatten().next()?.path();
        std::fs::read_to_string(run.join("broker/broker.log"))
            .ok()?
            .contains("Kafka Server started")
            .then_some(run)
    });
    let needle = run.to_string_lossy().to_string();
    assert_eq!(jvms_mentioning(&needle).len(), 1);
    child.kill().unwrap(); // SIGKILL: no destructor runs
    child.wait().unwrap();
    wait_for("the JVM to die with klab", Duration::from_secs(10), || {
        jvms_mentioning(&needle).is_empty().then_some(())
    });
}

/// A reader that goes away (`klab knobs | head -2`) ends klab quietly.
#[test]
fn a_closed_stdout_ends_quietly() {
    for args in [
        &["knobs"][..],
        &["lab", "show", "03"][..],
        &["lab", "list"][..],
    ] {
        let mut child = klab()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Close the read end before klab writes anything: every write of
        // klab's then meets a closed pipe.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
}

/// A second Ctrl-C quits at once, and still leaves no JVM and no broker
/// data behind.
#[test]
fn a_second_ctrl_c_quits_at_once_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let mut child = klab()
        .args(["run", "--rate", "2000", "--duration", "120s", "--results"])
        .arg(&results)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(child.stderr.take().unwrap());
    wait_line(&lines, "run: measuring,", Duration::from_secs(120));
    let run = std::fs::read_dir(&results)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let data = run.join("broker/data");
    assert!(data.is_dir());
    let needle = run.to_string_lossy().to_string();
    assert_eq!(jvms_mentioning(&needle).len(), 1);
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    // Signals of one kind may merge: the second goes once the first is seen.
    wait_line(&lines, "Ctrl-C again", Duration::from_secs(30));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = wait_for("klab to exit", Duration::from_secs(30), || {
        child.try_wait().unwrap()
    });
    assert_eq!(status.code(), Some(130));
    let said: Vec<String> = lines.try_iter().collect();
    assert!(
        said.iter().any(|l| l.contains("second interrupt")),
        "{said:?}"
    );
    assert!(jvms_mentioning(&needle).is_empty(), "a JVM outlived klab");
    assert!(
        !data.exists(),
        "the broker's data is still in {}",
        data.display()
    );
}

/// `klab compare` puts two results side by side; bad paths are input errors.
#[test]
fn compare_shows_ratios_and_refuses_what_is_not_a_result() {
    let dir = tempfile::tempdir().unwrap();
    let result = |msgs: f64, p99: f64| {
        let mut r = klab::model::StepResult {
            complete: true,
            label: Some("run".into()),
            ..Default::default()
        };
        r.throughput.msgs_per_s = msgs;
        r.e2e_latency_ms.p99 = p99;
        r
    };
    let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
    std::fs::write(&a, serde_json::to_vec(&result(1000.0, 10.0)).unwrap()).unwrap();
    std::fs::write(&b, serde_json::to_vec(&result(500.0, 40.0)).unwrap()).unwrap();
    let json = dir.path().join("cmp.json");
    let out = klab()
        .arg("compare")
        .arg(&a)
        .arg(&b)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = stdout_of_success(&out);
    assert!(
        stdout.contains("0.50x") && stdout.contains("4.00x"),
        "{stdout}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["pairs"][0]["ratios"]["p99"], 4.0);
    let out = klab()
        .arg("compare")
        .arg(&a)
        .arg(dir.path().join("none"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("none"));
    std::fs::write(&b, "{\"x\": 1}").unwrap();
    let out = klab().arg("compare").arg(&a).arg(&b).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a klab result"));
    // Crafted figures: a duration past what a Duration holds (it panicked,
    // exit 101), and every number at 1e300; a device instead of a file.
    let mut v = serde_json::to_value(result(500.0, 40.0)).unwrap();
    v["workload"]["duration"] = serde_json::json!(1e300);
    std::fs::write(&b, serde_json::to_vec(&v).unwrap()).unwrap();
    let out = klab().arg("compare").arg(&a).arg(&b).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("a duration must be 0 to 604800 seconds"),
        "{stderr}"
    );
    // Every figure (a float: rates, latencies, seconds) at 1e300, the
    // workload's durations aside: compared, not a panic.
    fn huge(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Number(n) if n.is_f64() => *v = serde_json::json!(1e300),
            serde_json::Value::Array(a) => a.iter_mut().for_each(huge),
            serde_json::Value::Object(o) => o
                .iter_mut()
                .filter(|(k, _)| *k != "workload")
                .for_each(|(_, x)| huge(x)),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(result(500.0, 40.0)).unwrap();
    huge(&mut v);
    std::fs::write(&b, serde_json::to_vec(&v).unwrap()).unwrap();
    let out = klab().arg("compare").arg(&a).arg(&b).output().unwrap();
    stdout_of_success(&out);
    let out = klab()
        .args(["compare", "/dev/zero"])
        .arg(&a)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("a device, not a regular file"));
}

#[test]
fn bad_capacity_input_exits_2_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fix = dir.path().join("a.toml");
    std::fs::write(&fix, "[properties]\n\"num.io.threads\" = 4\n").unwrap();
    let fix = fix.to_string_lossy().into_owned();
    let cases: &[(&[&str], &str)] = &[
        (&["--rate", "5000"], "chooses each probe's rate"),
        (&["--resolution", "50%"], "expected 1% to 25%"),
        (&["--resolution", "5"], "expected e.g. 5%"),
        (&["--max-probes", "2"], "4..=40"),
        (&["--messages", "1000"], "--messages"),
        (
            &["--compare", &fix, "/nonexistent/b.toml"],
            "/nonexistent/b.toml",
        ),
        (&["--lab", "01", "--partitions", "9"], "--partitions"),
    ];
    for (args, expect) in cases {
        let out = klab()
            .arg("capacity")
            .args(*args)
            .arg("--results")
            .arg(dir.path().join("r"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(expect),
            "{args:?}: expected '{expect}' in {stderr}"
        );
        assert!(!dir.path().join("r").exists(), "{args:?} wrote results");
    }
}

#[test]
fn a_capacity_search_finds_a_knee_and_keeps_every_probe() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("cap.json");
    let out = klab()
        .args(["capacity", "--duration", "3s", "--warmup", "1s"])
        .args(["--resolution", "25%", "--max-probes", "8", "--heap", "512m"])
        .arg("--json")
        .arg(&json)
        .arg("--results")
        .arg(dir.path().join("results"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Converged (0), or the budget ran out on a noisy machine (1).
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{stdout}\n{stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let probes = v["probes"].as_array().unwrap();
    assert!(probes.len() >= 3, "{v}");
    assert_eq!(probes[0]["phase"], "max");
    let run = only_run_dir(&dir.path().join("results"));
    for p in probes {
        let f = p["result_file"].as_str().unwrap();
        assert!(run.join(f).is_file(), "probe file {f} missing");
    }
    assert!(run.join("capacity.svg").is_file());
    assert!(
        stdout.contains("capacity (base) at e2e p99 ≤ 50 ms"),
        "{stdout}"
    );
    let cap = v["capacity_records_per_s"].as_f64().expect("a knee");
    assert!(cap > 0.0);
    // The answer passed, twice when converged; nothing above it did.
    let at_cap: Vec<_> = probes
        .iter()
        .filter(|p| p["offered_records_per_s"].as_f64() == Some(cap))
        .collect();
    assert!(at_cap.iter().all(|p| p["pass"] == true), "{v}");
    if v["stop"] == "converged" {
        assert_eq!(at_cap.len(), 2, "{v}");
        let hi = v["failed_at_records_per_s"].as_f64().unwrap();
        assert!(hi > cap && hi / cap <= 1.25 / 0.75 + 1e-6, "{v}");
    }
}
