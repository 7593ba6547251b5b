//! Labs as users meet them: every shipped lab loads; a broken lab file is
//! reported with its location and exit code 2 before any broker starts; a
//! short lab, a check and a tuning run go end to end on a real broker.

mod common;

use common::*;
use klab::lab::Labs;
use std::path::Path;

#[test]
fn every_shipped_lab_loads_and_extends_the_one_before() {
    let labs = Labs::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("labs")).unwrap();
    assert!(labs.labs.len() >= 7);
    for (i, l) in labs.labs.iter().enumerate() {
        assert!(l.dir.join("README.md").is_file(), "{} has no README", l.id);
        if i == 0 {
            assert!(l.extends.is_none());
            continue;
        }
        assert_eq!(
            l.extends.as_deref(),
            Some(labs.labs[i - 1].id.as_str()),
            "{}",
            l.id
        );
        // Each lab makes something worse, and its fix repairs everything
        // broken so far: the fixed broker equals lab 01's on every key the
        // chain touched.
        assert_ne!(l.what_changed(), "(reference)");
        let fixed = l.fixed_broker(&l.fix);
        for (k, v) in &l.broker.properties {
            let good = fixed
                .properties
                .get(k)
                .unwrap_or_else(|| panic!("{}: fix leaves {k} at {v}", l.id));
            if let Some(info) = klab::broker::knobs::lookup(k) {
                assert!(
                    good == info.default || labs.baseline().broker.properties.get(k) == Some(good),
                    "{}: fix sets {k}={good}, neither Kafka's default nor lab 01's",
                    l.id
                );
            }
        }
        assert_eq!(fixed.heap, labs.baseline().broker.heap, "{}", l.id);
        l.workload(true, Some(10_000.0)).unwrap();
    }
}

/// Every lab of every track folder (found as `klab lab list` finds them,
/// so a new track is checked without a change here): it loads, has a
/// README, a fix that changes something, and workloads that resolve, quick
/// and full, with its fix and without.
#[test]
fn every_lab_of_every_track_loads_with_its_readme_and_fix() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("labs");
    let tracks = klab::lab::tracks(&root);
    let names: Vec<&str> = tracks.iter().map(|(n, _)| n.as_str()).collect();
    for expected in ["broker", "durability", "client"] {
        assert!(
            names.contains(&expected),
            "track {expected} not found: {names:?}"
        );
    }
    let mut seen = 0;
    for (name, dir) in &tracks {
        assert!(
            dir.join("README.md").is_file(),
            "track {name} has no README"
        );
        let labs = klab::lab::load_track(&root, name).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        for (i, l) in labs.labs.iter().enumerate() {
            let id = format!("{name}/{}", l.id);
            assert!(l.dir.join("README.md").is_file(), "{id} has no README");
            for quick in [true, false] {
                l.workload(quick, Some(10_000.0))
                    .unwrap_or_else(|e| panic!("{id}: {e:#}"));
                l.fixed_workload(&l.fix, quick, Some(10_000.0))
                    .unwrap_or_else(|e| panic!("{id} fixed: {e:#}"));
            }
            // A lab graded on its fix has one (a lab that only shows, like
            // durability/02, has none and grades no fixed step).
            if (i > 0 && !l.expect.fixed.is_empty()) || l.is_capacity_lab() {
                assert!(!l.fix.is_empty(), "{id} has no fix");
            }
            seen += 1;
        }
    }
    assert!(seen >= 17, "{seen} labs");
}

/// A labs directory with a fast reference and one lab.
fn tiny_labs(dir: &Path) {
    write_lab(
        dir,
        "01-base",
        "title = \"base\"\n[workload]\nrate = 2000\nduration = \"5s\"\nwarmup = \"1s\"\npartitions = 2\n",
    );
    write_lab(
        dir,
        "02-io",
        "title = \"io\"\nextends = \"01\"\n[broker.properties]\n\"num.io.threads\" = 2\n[fix.properties]\n\"num.io.threads\" = 8\n[expect.fixed]\nthroughput_at_least = 0.5\np99_at_most = 1000.0\n",
    );
}

/// The output of a `klab lab ...` command that starts no broker and must succeed.
fn labs_stdout(labs: &Path, args: &[&str]) -> String {
    let out = klab().args(args).arg("--labs").arg(labs).output().unwrap();
    stdout_of_success(&out)
}

fn lab_cmd(labs: &Path, results: &Path, args: &[&str]) -> std::process::Output {
    klab()
        .args(args)
        .arg("--labs")
        .arg(labs)
        .arg("--results")
        .arg(results)
        .output()
        .unwrap()
}

#[test]
fn bad_lab_files_exit_2_with_their_location_and_start_nothing() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "empty"),
        (b"title = \"x\"\n[workload\n", ":2:"),
        (b"title = \"\xff\"\n", "UTF-8"),
        (b"title = \"a\"\ntitle = \"b\"\n", ":2:"),
        (b"title = \"a\"\nspeed = 3\n", "speed"),
        (b"title = \"a\"\n[workload]\npartitions = \"six\"\n", ":3:"),
        (b"title = \"a\"\n[workload]\nrate = -5\n", "workload.rate"),
        (
            b"title = \"a\"\n[broker.properties]\n\"num.io.threads\" = 0\n",
            "out of range",
        ),
        (b"title = \"a\"\nextends = \"07\"\n", "no lab '07'"),
        (
            b"title = \"a\"\nextends = \"01\"\n[workload]\nreplication_factor = 3\n",
            "replication_factor = 3 needs at least 3 brokers, and the cluster has 1 ([cluster] brokers)",
        ),
    ];
    for (text, expect) in cases {
        let d = tempfile::tempdir().unwrap();
        tiny_labs(d.path());
        std::fs::write(d.path().join("02-io/lab.toml"), text).unwrap();
        let results = d.path().join("results");
        let out = lab_cmd(d.path(), &results, &["lab", "run", "02", "--quick"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{expect}: {err}");
        assert!(err.contains("02-io/lab.toml"), "{expect}: {err}");
        assert!(err.contains(expect), "{expect}: {err}");
        assert!(!results.exists(), "{expect}: a run directory was created");
    }
}

/// Runs klab; kills it and fails if it has not ended within 15 s.
fn output_within_15s(cmd: &mut std::process::Command) -> std::process::Output {
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output().unwrap()));
    rx.recv_timeout(std::time::Duration::from_secs(15))
        .unwrap_or_else(|_| {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("klab {cmd:?} did not end within 15 s")
        })
}

/// A fix file that is a FIFO or a device, and a cluster too small for a
/// lab's replication factor, are refused before anything starts (they used
/// to hang, fill the memory, or fail after a minute of measuring).
#[test]
fn fix_files_and_clusters_that_cannot_work_exit_2_at_once() {
    let d = tempfile::tempdir().unwrap();
    tiny_labs(d.path());
    write_lab(
        d.path(),
        "03-rf",
        "title = \"rf\"\nextends = \"02\"\n[cluster]\nbrokers = 3\n[workload]\nreplication_factor = 3\n",
    );
    let fifo = d.path().join("fix.fifo");
    mkfifo(&fifo);
    let results = d.path().join("results");
    let fifo_arg = fifo.to_str().unwrap();
    for (args, expect) in [
        (
            &["lab", "check", "02", "--fix", fifo_arg][..],
            "a FIFO, not a regular file",
        ),
        (
            &["lab", "check", "02", "--fix", "/dev/zero"][..],
            "a device, not a regular file",
        ),
        (
            &["lab", "run", "03", "--brokers", "1"][..],
            "03-rf/lab.toml: workload.replication_factor = 3 needs at least 3 brokers, and the cluster has 1 (--brokers)",
        ),
        (
            // The factor is the lab's, not a flag the user gave.
            &["capacity", "--lab", "03", "--brokers", "1"][..],
            "03-rf/lab.toml (or a lab it extends): workload.replication_factor = 3 needs at least 3 brokers, and --brokers 1 gives 1",
        ),
    ] {
        let out = output_within_15s(
            klab()
                .args(args)
                .arg("--labs")
                .arg(d.path())
                .arg("--results")
                .arg(&results),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expect), "{args:?}: {err}");
        assert!(!results.exists(), "{args:?}: a run directory was created");
    }
}

#[test]
fn unknown_labs_and_cycles() {
    let d = tempfile::tempdir().unwrap();
    tiny_labs(d.path());
    let out = lab_cmd(d.path(), &d.path().join("r"), &["lab", "run", "09"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("01-base, 02-io"), "{err}");
    std::fs::write(
        d.path().join("01-base/lab.toml"),
        "title = \"base\"\nextends = \"02\"\n",
    )
    .unwrap();
    let out = klab()
        .args(["lab", "list", "--labs"])
        .arg(d.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cycle"));
}

#[test]
fn a_short_lab_runs_end_to_end_and_a_check_and_the_tuner_work() {
    let d = tempfile::tempdir().unwrap();
    tiny_labs(d.path());
    let results = d.path().join("results");
    let out = lab_cmd(
        d.path(),
        &results,
        &["lab", "run", "02", "--fix-with", "lab"],
    );
    let stdout = stdout_of_success(&out);
    // stderr is not a terminal here: progress comes as plain lines.
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in [
        "plan: up to 3 measurements",
        "[1/3] 01-base reference",
        "01 reference: measuring,",
    ] {
        assert!(stderr.contains(line), "no '{line}' in:\n{stderr}");
    }
    let run = only_run_dir(&results);
    let steps: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap();
    // A step whose verdict (or a reference whose noise) needs it is
    // measured once more: "... again".
    let labels: Vec<&str> = steps
        .iter()
        .map(|s| s["label"].as_str().unwrap())
        .filter(|l| !l.ends_with(" again"))
        .collect();
    assert_eq!(labels, ["reference", "degraded", "fixed"]);
    let step = |label: &str| {
        steps
            .iter()
            .find(|s| s["label"] == label)
            .unwrap_or_else(|| panic!("no step {label}"))
    };
    for s in &steps {
        assert_eq!(s["complete"], true);
        assert_eq!(s["lost"], 0);
        assert!(s["lab"].as_str().is_some());
        assert!(
            s["environment"]["lab_fingerprint"]
                .as_str()
                .unwrap()
                .starts_with("sha256-")
        );
    }
    assert_eq!(
        step("degraded")["broker"]["effective"]["num.io.threads"]["value"],
        "2"
    );
    assert_eq!(
        step("fixed")["broker"]["effective"]["num.io.threads"]["value"],
        "8"
    );
    assert_eq!(step("fixed")["broker"]["applied"], "dynamic");
    let verdicts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("verdicts.json")).unwrap()).unwrap();
    let rows = verdicts.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows[0]["noise"]["e2e_p99_ms"]["lo"].as_f64().is_some());
    assert!(rows[2]["vs_reference"]["p99"].as_f64().is_some());
    assert!(run.join("summary.svg").is_file() && run.join("summary.txt").is_file());
    assert!(stdout.contains("02-io"));

    // The student's fix, given as a flag.
    let out = lab_cmd(
        d.path(),
        &d.path().join("r2"),
        &["lab", "check", "02", "--broker-set", "num.io.threads=8"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("PASS"), "{stdout}");
    // No fix at all is an input error.
    let out = lab_cmd(d.path(), &d.path().join("r3"), &["lab", "check", "02"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("my-fix.toml"));

    // The tuner from the degraded lab, two trials.
    let json = d.path().join("tune.json");
    let out = klab()
        .args([
            "tune",
            "--lab",
            "02",
            "--budget",
            "2",
            "--knobs",
            "num.io.threads",
            "--labs",
        ])
        .arg(d.path())
        .arg("--results")
        .arg(d.path().join("r4"))
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = stdout_of_success(&out);
    assert!(stdout.contains("objective: maximise"), "{stdout}");
    let t: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(t["trials"].as_array().unwrap().len(), 2);
    assert_eq!(t["start_repeats"].as_array().unwrap().len(), 2);
    for tr in t["trials"].as_array().unwrap() {
        assert_eq!(tr["result"]["lost"], 0);
    }
    // The first trial is the repair: num.io.threads back to 8.
    assert_eq!(
        t["trials"][0]["config"]["broker"]["properties"]["num.io.threads"],
        "8"
    );
    assert!(t["best_config"].is_object() && t["best"].is_object() && t["start"].is_object());
}

/// A lab whose degraded step needs a fresh JVM (the heap) and whose fix
/// goes back to the reference's settings: the fix is measured on the
/// reference's own broker, kept running idle meanwhile (a warm spare); the
/// tuner stops once its best passes the lab's verdict.
#[test]
fn a_fix_returns_to_the_warm_reference_broker_and_the_tuner_stops_at_the_goal() {
    let d = tempfile::tempdir().unwrap();
    tiny_labs(d.path());
    write_lab(
        d.path(),
        "03-heap",
        "title = \"heap\"\nextends = \"01\"\n[broker]\nheap = \"256m\"\n[fix]\nheap = \"1g\"\n[expect.fixed]\nthroughput_at_least = 0.5\np99_at_most = 1000.0\n",
    );
    let results = d.path().join("results");
    let out = lab_cmd(
        d.path(),
        &results,
        &["lab", "run", "03", "--fix-with", "lab"],
    );
    let stdout = stdout_of_success(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("1 broker restart(s), 1 return(s) to a warm broker"),
        "{stdout}"
    );
    assert!(stderr.contains("back to the warm broker of"), "{stderr}");
    let run = only_run_dir(&results);
    let step = |label: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(run.join(format!("03-heap.{label}.json"))).unwrap())
            .unwrap()
    };
    assert_eq!(step("degraded")["broker"]["applied"], "restarted");
    assert_eq!(step("fixed")["broker"]["applied"], "reused");
    // The fix ran on the reference's JVM: lab 01's broker directory.
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("01-base.reference.json")).unwrap())
            .unwrap();
    assert_eq!(
        step("fixed")["broker"]["bootstrap"],
        reference["broker"]["bootstrap"]
    );
    assert_ne!(
        step("degraded")["broker"]["bootstrap"],
        reference["broker"]["bootstrap"]
    );
    assert_eq!(
        step("fixed")["broker"]["effective"]["heap"]["value"],
        reference["broker"]["effective"]["heap"]["value"]
    );
    // Both brokers stopped, both data directories gone, their logs kept.
    let run_s = run.to_string_lossy().to_string();
    assert!(jvms_mentioning(&run_s).is_empty());
    for b in ["broker", "broker-2"] {
        assert!(run.join(b).join("broker.log").is_file(), "{b}");
        assert!(!run.join(b).join("data").exists(), "{b}/data left behind");
    }

    // The tuner from the degraded lab: its repair is measured, and then
    // the best passes the verdict, so one trial of the three is enough.
    let results = d.path().join("r2");
    let out = lab_cmd(
        d.path(),
        &results,
        &["lab", "run", "03", "--fix-with", "tuner", "--budget", "3"],
    );
    stdout_of_success(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("03-heap tuner: the best passes the lab's verdict"),
        "{stderr}"
    );
    let run = only_run_dir(&results);
    let t: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("03-heap.tune.json")).unwrap()).unwrap();
    assert_eq!(t["trials"].as_array().unwrap().len(), 1, "{t}");
    assert!(
        t["goal_reached"]
            .as_str()
            .unwrap()
            .contains("after trial 1 of 3")
    );
    let trial: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("03-heap.trial-1.json")).unwrap()).unwrap();
    assert_eq!(trial["broker"]["applied"], "reused");
    assert!(jvms_mentioning(&run.to_string_lossy()).is_empty());
}

#[test]
fn a_calibration_is_kept_and_reused_by_the_next_run() {
    let d = tempfile::tempdir().unwrap();
    write_lab(
        d.path(),
        "01-base",
        "title = \"base\"\n[workload]\nrate = \"30%\"\nduration = \"4s\"\nwarmup = \"1s\"\npartitions = 2\n",
    );
    let cache = fresh_cache_dir();
    let run = |results: &str, extra: &[&str]| {
        let out = klab()
            .env("KLAB_CACHE_DIR", &cache)
            .args(["lab", "run", "01"])
            .args(extra)
            .arg("--labs")
            .arg(d.path())
            .arg("--results")
            .arg(d.path().join(results))
            .output()
            .unwrap();
        stdout_of_success(&out);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let dir = only_run_dir(&d.path().join(results));
        let c: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("calibration.json")).unwrap()).unwrap();
        let steps: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
        let rate = steps[0]["target_rate"].as_f64().unwrap();
        (stderr, c, rate)
    };
    let (err1, c1, rate1) = run("r1", &[]);
    assert!(err1.contains("calibrating:"), "{err1}");
    assert_eq!(c1["source"], "measured");
    let capacity = c1["capacity_records_per_s"].as_f64().unwrap();
    assert!(capacity > 0.0);
    assert!(
        (rate1 - 0.3 * capacity).abs() < 1.0,
        "{rate1} vs {capacity}"
    );
    assert_eq!(
        std::fs::read_dir(cache.join("calibration"))
            .unwrap()
            .count(),
        1
    );

    // The next run offers exactly the same load, without measuring.
    let (err2, c2, rate2) = run("r2", &[]);
    assert!(!err2.contains("calibrating:"), "{err2}");
    assert!(err2.contains("this machine's calibration"), "{err2}");
    assert_eq!(c2["source"], "reused");
    assert_eq!(c2["capacity_records_per_s"], c1["capacity_records_per_s"]);
    assert_eq!(rate2, rate1);

    // (--recalibrate forgets the kept entry first: Store::forget, unit
    // tested; a third broker start here would cost another 30 s.)
}

#[test]
fn tuner_input_errors_exit_2() {
    let d = tempfile::tempdir().unwrap();
    tiny_labs(d.path());
    for (args, expect) in [
        (&["tune", "--lab", "02", "--budget", "0"][..], "--budget"),
        (
            &["tune", "--lab", "02", "--budget", "100000"][..],
            "--budget",
        ),
        (
            &["tune", "--lab", "02", "--knobs", "num.io.thread"][..],
            "unknown knob",
        ),
        (&["tune", "--lab", "42"][..], "no lab '42'"),
        (
            &["tune", "--lab", "02", "--strategy", "exec:"][..],
            "exec: needs a command",
        ),
        (
            &["tune", "--lab", "02", "--strategy", "greedy"][..],
            "expected guided, random or exec:CMD",
        ),
        (
            &[
                "tune",
                "--lab",
                "02",
                "--strategy",
                "exec:true",
                "--answer-timeout",
                "0s",
            ][..],
            "--answer-timeout",
        ),
        (
            &["tune", "--lab", "02", "--objective", "speed"][..],
            "--objective",
        ),
        (
            &["tune", "--lab", "02", "--resolution", "5%"][..],
            "--resolution: only with --objective capacity",
        ),
        (
            &[
                "tune",
                "--lab",
                "02",
                "--objective",
                "capacity",
                "--resolution",
                "50%",
            ][..],
            "--resolution",
        ),
        (
            &[
                "tune",
                "--lab",
                "02",
                "--objective",
                "capacity",
                "--knobs",
                "consumer",
            ][..],
            "unknown knob",
        ),
        (
            &[
                "tune-bench",
                "--lab",
                "02",
                "--objective",
                "capacity",
                "--slo-p99",
                "0s",
            ][..],
            "--slo-p99",
        ),
    ] {
        let out = klab()
            .args(args)
            .arg("--labs")
            .arg(d.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(expect),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `--strategy exec:CMD` on a real broker: a scripted agent repairs the
/// broken knob, then proposes a value outside the space (a rejected trial),
/// then stops; klab keeps every trial and tells the agent each result.
#[test]
fn an_exec_agent_tunes_a_real_broker_within_the_space() {
    let d = tempfile::tempdir().unwrap();
    tiny_labs(d.path());
    let seen = d.path().join("seen.jsonl");
    let agent = d.path().join("agent.sh");
    std::fs::write(
        &agent,
        format!(
            r#"read hello; echo "$hello" >> {seen}
echo '{{"set": {{"num.io.threads": "8"}}, "why": "one io thread per core is too few"}}'
read r; echo "$r" >> {seen}
echo '{{"set": {{"num.io.threads": "64"}}}}'
read r; echo "$r" >> {seen}
echo '{{"stop": true}}'
read r; echo "$r" >> {seen}
"#,
            seen = seen.display()
        ),
    )
    .unwrap();
    let json = d.path().join("tune.json");
    let out = klab()
        .args([
            "tune",
            "--lab",
            "02",
            "--budget",
            "4",
            "--knobs",
            "num.io.threads",
        ])
        .arg("--strategy")
        .arg(format!("exec:sh {}", agent.display()))
        .arg("--labs")
        .arg(d.path())
        .arg("--results")
        .arg(d.path().join("r"))
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = stdout_of_success(&out);
    assert!(
        stdout.contains("the agent's search ended: stop"),
        "{stdout}"
    );
    let t: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let trials = t["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 2, "{trials:#?}");
    assert_eq!(trials[0]["result"]["lost"], 0);
    assert_eq!(trials[0]["why"], "one io thread per core is too few");
    assert!(trials[1]["result"].is_null());
    assert!(
        trials[1]["reason"]
            .as_str()
            .unwrap()
            .contains("num.io.threads=64 is not allowed"),
        "{}",
        trials[1]["reason"]
    );
    assert_eq!(t["agent"]["ended"], "stop");
    assert_eq!(t["agent"]["failed"], false);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&seen)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert_eq!(lines[0]["context"]["lab"], "02-io");
    assert_eq!(lines[0]["context"]["floors"]["acks"], "all");
    assert_eq!(lines[0]["knobs"][0]["current"], "2");
    assert!(lines[1]["result"]["records_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(lines[3]["type"], "end");
}

/// The capacity objective on a real broker: the start's capacity search,
/// then a warm trial of one more consumer, each probe kept as a step file.
#[test]
fn the_capacity_objective_searches_the_start_and_each_trial_on_a_real_broker() {
    let d = tempfile::tempdir().unwrap();
    tiny_labs(d.path());
    write_lab(
        d.path(),
        "03-slow",
        "title = \"slow consumer\"\nextends = \"01\"\n[workload]\nduration = \"3s\"\npartitions = 2\nconsumers = 1\nprocessing = \"2ms\"\n[capacity]\nslo_p99 = \"200ms\"\nresolution = \"25%\"\nmax_probes = 4\n",
    );
    let json = d.path().join("tune.json");
    let out = klab()
        .args(["tune", "--lab", "03", "--objective", "capacity"])
        .args(["--budget", "1", "--knobs", "consumers"])
        .arg("--labs")
        .arg(d.path())
        .arg("--results")
        .arg(d.path().join("r"))
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = stdout_of_success(&out);
    assert!(stdout.contains("capacity records/s"), "{stdout}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let start = &v["start_capacity"];
    let start_probes = start["probes"].as_array().unwrap();
    assert!(
        !start_probes.is_empty() && start_probes.len() <= 4,
        "{start}"
    );
    assert_eq!(start_probes[0]["phase"], "max");
    let trials = v["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 1, "{v}");
    assert_eq!(trials[0]["change"], "consumers 1→2");
    let probes = trials[0]["capacity"]["probes"].as_array().unwrap();
    // Warm: it starts at the rate the start failed at (a quarter above its
    // capacity when none failed within the probe budget), with no max probe.
    let challenge = start["failed_at_records_per_s"]
        .as_f64()
        .unwrap_or_else(|| (1.25 * start["capacity_records_per_s"].as_f64().unwrap()).round());
    assert_eq!(
        probes[0]["offered_records_per_s"].as_f64(),
        Some(challenge),
        "{v}"
    );
    assert_eq!(probes[0]["phase"], "bracket");
    assert_eq!(
        v["measurements"].as_u64().unwrap() as usize,
        start_probes.len() + probes.len()
    );
    let run = only_run_dir(&d.path().join("r"));
    for p in start_probes.iter().chain(probes) {
        let f = p["result_file"].as_str().unwrap();
        assert!(run.join(f).is_file(), "probe file {f} missing");
    }
    if trials[0]["accepted"] == true {
        assert_eq!(v["best_config"]["consumers"], 2);
        assert!(v["best_score"].as_f64() > v["start_score"].as_f64(), "{v}");
    }
}

/// The capacity evaluation on the simulated surface (no broker): every
/// strategy, an agent among them, gets its runs, and the summary says so.
#[test]
fn tune_bench_evaluates_defaults_guided_random_and_an_agent_by_capacity() {
    let d = tempfile::tempdir().unwrap();
    let json = d.path().join("tb.json");
    let out = klab()
        .args(["tune-bench", "--simulated-only", "--objective", "capacity"])
        .args(["--seeds", "2", "--budget", "3"])
        .args([
            "--agent",
            r#"read h; echo '{"set": {"linger.ms": "5"}}'; read r; echo '{"stop": true}'"#,
        ])
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = stdout_of_success(&out);
    assert!(
        stdout.contains("median best capacity records/s"),
        "{stdout}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["objective"], "capacity");
    let runs = v["runs"].as_array().unwrap();
    for strategy in ["start", "defaults", "guided", "random", "agent"] {
        let n = runs.iter().filter(|r| r["strategy"] == strategy).count();
        assert_eq!(n, 2, "{strategy}: {v}");
    }
    // The agent stopped after one trial; the others used the budget or
    // ran out of moves.
    for r in runs.iter().filter(|r| r["strategy"] == "agent") {
        assert_eq!(r["trials"], 1, "{r}");
        assert_eq!(r["agent"]["ended"], "stop", "{r}");
    }
    // The guided search is at least as good as the defaults it starts with.
    let median = |s: &str| {
        v["summary"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["strategy"] == s)
            .unwrap()["median_best"]
            .as_f64()
            .unwrap()
    };
    assert!(median("guided") >= median("defaults"), "{v}");
}

/// An agent that answers garbage, exits mid-search or falls silent is
/// named in `klab tune-bench` as in `klab tune`, and the command exits 1
/// (it used to show the agent at its start score, exit 0, no word).
#[test]
fn tune_bench_names_an_agent_that_failed() {
    for (agent, says) in [
        ("read h; echo 'raise linger.ms'", "cannot read"),
        (
            r#"read h; echo '{"set": {"linger.ms": "5"}}'; exit 3"#,
            "exit status: 3",
        ),
        ("read h; exec sleep 600", "did not answer within 1s"),
    ] {
        let out = klab()
            .args([
                "tune-bench",
                "--simulated-only",
                "--seeds",
                "1",
                "--budget",
                "2",
            ])
            .args(["--answer-timeout", "1s", "--agent", agent])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{agent}: {stderr}");
        assert!(
            stderr.contains("the agent's run (simulated seed 1) ended early")
                && stderr.contains(says),
            "{agent}: {stderr}"
        );
    }
}

/// Ctrl-C while klab waits for an agent's answer stops klab at once (it
/// used to wait out the answer time limit), and the agent's whole process
/// group goes with it.
#[test]
fn ctrl_c_stops_a_search_waiting_for_its_agent() {
    let d = tempfile::tempdir().unwrap();
    let pidfile = d.path().join("pid");
    let agent = format!(
        "read h; sleep 600 & echo $! > {}.tmp; mv {0}.tmp {0}; wait",
        pidfile.display()
    );
    let mut child = klab()
        .args([
            "tune-bench",
            "--simulated-only",
            "--seeds",
            "1",
            "--budget",
            "2",
        ])
        .args(["--agent", &agent])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = wait_for(
        "the agent's child",
        std::time::Duration::from_secs(30),
        || std::fs::read_to_string(&pidfile).ok(),
    );
    let asked = std::time::Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = wait_for("klab to end", std::time::Duration::from_secs(10), || {
        child.try_wait().unwrap()
    });
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    let pid = pid.trim();
    wait_for(
        "the agent's child to go",
        std::time::Duration::from_secs(10),
        || has_ended(pid).then_some(()),
    );
}

/// Each tuner run of `klab tune-bench` keeps its own step files: the
/// guided and the random run measure the same labels ("trial-1", ...) in
/// one run directory.
#[test]
fn tune_bench_keeps_the_step_files_of_every_run() {
    let d = tempfile::tempdir().unwrap();
    tiny_labs(d.path());
    let results = d.path().join("results");
    let out = lab_cmd(
        d.path(),
        &results,
        &[
            "tune-bench",
            "--lab",
            "02",
            "--seeds",
            "1",
            "--budget",
            "1",
            "--quiet",
        ],
    );
    stdout_of_success(&out);
    let run = only_run_dir(&results);
    let names: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for strategy in ["guided", "random"] {
        let eval: serde_json::Value = serde_json::from_slice(
            &std::fs::read(run.join(format!("eval-02-io-{strategy}-1.tune.json"))).unwrap(),
        )
        .unwrap();
        // The start, its repeat and the trial (unless the broker refused
        // it), each with its own file.
        let trials = eval["trials"].as_array().unwrap();
        assert_eq!(trials.len(), 1);
        let measured = trials.iter().filter(|t| t["result"].is_object()).count()
            + eval["start_repeats"].as_array().unwrap().len();
        assert!(measured >= 2, "{eval}");
        let prefix = format!("eval-02-io-{strategy}-1.02-io.");
        let steps: Vec<&String> = names
            .iter()
            .filter(|n| n.starts_with(&prefix) && n.ends_with(".json"))
            .collect();
        assert_eq!(steps.len(), measured, "{strategy}: {names:?}");
    }
}

/// A tuner trial that changes only a producer setting leaves the broker as
/// it is: no restart, not even from a candidate that writes every knob out.
#[test]
fn a_producer_only_trial_does_not_restart_the_broker() {
    use klab::broker::apply::plan;
    use klab::model::Applied;
    use klab::tuner::space::Space;
    let labs = klab::lab::Labs::load(std::path::Path::new("labs")).unwrap();
    let lab = labs.get("08").unwrap();
    let space = Space::default_space(false);
    let start = klab::lab::run::tuner_start(lab);
    // The guided search's first trial: every knob at its healthy value.
    let repaired: Vec<usize> = space.knobs.iter().map(|k| k.good).collect();
    let best = space.candidate(&start, &repaired);
    assert_eq!(plan(&lab.broker, &best.broker), Applied::Restarted);
    let linger = space
        .knobs
        .iter()
        .position(|k| k.name == "linger.ms")
        .unwrap();
    let mut p = repaired.clone();
    p[linger] += 1;
    let trial = space.candidate(&start, &p);
    assert_ne!(trial.producer, best.producer);
    assert_eq!(plan(&best.broker, &trial.broker), Applied::Unchanged);
    // Lab 01's broker written out knob by knob is lab 01's broker.
    let base = labs.baseline();
    let written = space.candidate(
        &klab::lab::run::tuner_start(base),
        &space.knobs.iter().map(|k| k.good).collect::<Vec<_>>(),
    );
    assert_eq!(plan(&base.broker, &written.broker), Applied::Unchanged);
}

#[test]
fn the_durability_track_loads_lists_and_shows_its_faults() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("labs");
    let labs = Labs::load(&root.join("durability")).unwrap();
    assert!(labs.labs.len() >= 5, "{} labs", labs.labs.len());
    for (i, l) in labs.labs.iter().enumerate() {
        assert!(l.dir.join("README.md").is_file(), "{} has no README", l.id);
        assert_eq!(l.brokers, 3, "{}", l.id);
        let w = l.workload(true, Some(10_000.0)).unwrap();
        // Labs 04 and 05 keep two copies: taking both followers of three away
        // would freeze two of the three KRaft voters (their READMEs say why).
        let copies = if l.id.starts_with("04") || l.id.starts_with("05") {
            2
        } else {
            3
        };
        assert_eq!(w.replication_factor, Some(copies), "{}", l.id);
        if i > 0 {
            assert_ne!(l.what_changed(), "(reference)", "{}", l.id);
        }
        // Every fault fires inside the quick window.
        for f in &w.faults {
            assert!(
                Some(f.at) < w.duration,
                "{}: a fault at {:?} after the window",
                l.id,
                f.at
            );
        }
    }
    let list = labs_stdout(&root, &["lab", "list"]);
    assert!(list.contains("track durability"), "{list}");
    assert!(list.contains("durability/02-leader-killed"), "{list}");
    // A track whose labs run on clusters of different sizes says so.
    assert!(
        list.contains("track network (7 labs, 1 to 3 broker(s))"),
        "{list}"
    );
    assert!(
        list.contains("network/05-one-request-per-round-trip"),
        "{list}"
    );
    let show = labs_stdout(&root, &["lab", "show", "durability/04"]);
    assert!(
        show.contains("kill followers at 1s, back after 18s"),
        "{show}"
    );
    assert!(show.contains("min.insync.replicas"), "{show}");
}

#[test]
fn the_client_track_loads_as_capacity_labs_and_lists_its_fixes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("labs");
    let labs = Labs::load(&root.join("client")).unwrap();
    assert!(labs.labs.len() >= 3, "{} labs", labs.labs.len());
    for l in &labs.labs {
        assert!(l.dir.join("README.md").is_file(), "{} has no README", l.id);
        assert!(l.is_capacity_lab(), "{} has no [expect.capacity]", l.id);
        assert!(l.extends.is_none(), "{} extends another lab", l.id);
        assert!(!l.fix.is_empty(), "{} has no fix", l.id);
        // Both configurations are valid workloads, and the fix changes one.
        let own = l.workload(true, None).unwrap();
        let fixed = l.fixed_workload(&l.fix, true, None).unwrap();
        assert_ne!(own, fixed, "{}: the fix changes nothing", l.id);
    }
    let list = labs_stdout(&root, &["lab", "list"]);
    assert!(list.contains("track client"), "{list}");
    assert!(list.contains("client/03-slow-consumer"), "{list}");
    assert!(list.contains("partitions=6 consumers=6"), "{list}");
    let show = labs_stdout(&root, &["lab", "show", "client/03"]);
    assert!(show.contains("expect capacity"), "{show}");
    assert!(show.contains("per record"), "{show}");
    // A capacity lab cannot be tuned or shown in a demo yet: refused
    // before anything starts.
    let out = klab()
        .args(["tune", "--lab", "client/01", "--quick"])
        .arg("--labs")
        .arg(&root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn a_durability_lab_kills_a_leader_on_three_brokers_and_grades_the_loss() {
    let d = tempfile::tempdir().unwrap();
    let track = d.path().join("durability");
    write_lab(
        &track,
        "01-replicated",
        r#"title = "replicated"
[cluster]
brokers = 3
[broker]
heap = "512m"
[broker.properties]
"broker.heartbeat.interval.ms" = 500
"broker.session.timeout.ms" = 3000
[workload]
rate = 300
duration = "12s"
warmup = "2s"
message_bytes = 512
partitions = 3
acks = "all"
replication_factor = 3
min_insync_replicas = 2
[workload.producer]
"enable.idempotence" = true
"#,
    );
    write_lab(
        &track,
        "02-kill",
        r#"title = "kill"
extends = "01"
[[faults]]
at = "3s"
action = "kill"
broker = "leader"
restart_after = "3s"
[expect.degraded]
combine = "all"
lost_at_most = 0
"#,
    );
    let results = d.path().join("results");
    let out = lab_cmd(
        d.path(),
        &results,
        &["lab", "run", "durability/02", "--fix-with", "lab"],
    );
    let stdout = stdout_of_success(&out);
    assert!(stdout.contains("fault: kill leader at 3s"), "{stdout}");
    // The summary shows what the fault did, as `klab run` does: the fault
    // line, the windows around it and the read-back; and the verdict line.
    for needle in [
        "02-kill degraded:",
        "fault 1: kill broker",
        "before fault 1",
        "during fault 1",
        "read back from the topic's start after the faults",
        "vs lab 01 of a step with faults: before the first fault",
        "verdict: every step as the lab expects (exit 0)",
    ] {
        assert!(stdout.contains(needle), "no '{needle}' in:\n{stdout}");
    }
    let run = only_run_dir(&results);
    for n in 1..=3 {
        assert!(run.join(format!("broker/node-{n}/broker.log")).is_file());
    }
    let needle = run.to_string_lossy().to_string();
    assert!(jvms_mentioning(&needle).is_empty(), "a JVM outlived klab");
    let steps: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap();
    let degraded = steps
        .iter()
        .find(|s| s["label"] == "degraded")
        .expect("a degraded step");
    assert_eq!(degraded["lost"], 0, "{degraded:#}");
    // Read back from the start after the cluster healed: every
    // acknowledged record is still in the topic.
    let lc = &degraded["log_check"];
    assert_eq!(lc["complete"], true, "{lc}");
    assert_eq!(lc["lost"], 0, "{lc}");
    assert!(
        lc["read"].as_u64().unwrap() >= degraded["acked"].as_u64().unwrap(),
        "{lc} vs acked {}",
        degraded["acked"]
    );
    assert_eq!(degraded["workload"]["replication_factor"], 3);
    assert_eq!(degraded["faults"][0]["action"], "kill");
    assert!(degraded["faults"][0]["back_at_s"].as_f64().is_some());
    assert_eq!(degraded["windows"][0]["name"], "before");
    let verdicts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("verdicts.json")).unwrap()).unwrap();
    let row = &verdicts.as_array().unwrap()[1];
    assert_eq!(row["expected"]["verdict"], "yes", "{row:#}");
    assert!(
        row["expected"]["checks"][0]["bound"]
            .as_str()
            .unwrap()
            .contains("lost"),
        "{row:#}"
    );
}

/// One rule for every command that judges: a verdict that is not as the
/// lab expects exits 1 (after the results are written), and the last lines
/// say which step and why.
#[test]
fn a_lab_whose_verdict_is_no_exits_1() {
    let d = tempfile::tempdir().unwrap();
    write_lab(
        d.path(),
        "01-base",
        "title = \"base\"\n[workload]\nrate = 1000\nduration = \"3s\"\nwarmup = \"1s\"\npartitions = 1\n",
    );
    // A healthy broker cannot lose 99% of its rate: the degraded step's
    // verdict is NO.
    write_lab(
        d.path(),
        "02-never",
        "title = \"never\"\nextends = \"01\"\n[broker.properties]\n\"num.io.threads\" = 4\n[expect.degraded]\nthroughput_at_most = 0.01\n",
    );
    let results = d.path().join("results");
    let out = lab_cmd(
        d.path(),
        &results,
        &["lab", "run", "02", "--fix-with", "lab"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("verdict: 1 of 2 step(s) not as the lab expects (exit 1)"),
        "{stdout}"
    );
    assert!(stdout.contains("02-never degraded: NO"), "{stdout}");
    let run = only_run_dir(&results);
    assert!(run.join("verdicts.json").is_file() && run.join("summary.txt").is_file());
}

/// Every lab with a fix ships a `my-fix.toml` template made from that fix:
/// each setting it changes, commented out, with what the lab runs with
/// and which lab set it (never the answer). `KLAB_BLESS=1` writes them.
#[test]
fn every_gradable_lab_has_the_fix_template_its_fix_gives() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("labs");
    let bless = std::env::var_os("KLAB_BLESS").is_some();
    for (track, dir) in klab::lab::tracks(&root) {
        let labs = Labs::load(&dir).unwrap();
        for l in labs.labs.iter().filter(|l| !l.fix.is_empty()) {
            let key = klab::lab::rehearse::qualified(&track, &l.number);
            let want = klab::lab::template::my_fix(l, &key);
            let path = l.dir.join("my-fix.toml");
            if bless {
                std::fs::write(&path, &want).unwrap();
            }
            let have = std::fs::read_to_string(&path).unwrap_or_default();
            assert_eq!(have, want, "{} (KLAB_BLESS=1 writes it)", path.display());
            // A template checks nothing until the student writes in it.
            let fix = klab::lab::file::parse_fix_file(&path).unwrap();
            assert!(fix.is_empty(), "{}", path.display());
        }
    }
}

/// A track whose labs are measured two ways, steps against its reference
/// and capacity searches: a rehearsal round measures each its own way
/// (the network track's lab 05 is a capacity lab among step labs).
#[test]
fn a_round_of_a_mixed_track_measures_step_and_capacity_labs_each_its_own_way() {
    let d = tempfile::tempdir().unwrap();
    tiny_labs(d.path());
    write_lab(
        d.path(),
        "03-cap",
        // One consumer spending 500 us a record: a knee near 2,000
        // records/s whatever else runs beside the test (the suite runs
        // two at a time), found in a few cheap probes.
        "title = \"cap\"\n[workload]\nduration = \"2s\"\nwarmup = \"1s\"\npartitions = 2\nconsumers = 1\nprocessing = \"500us\"\n[fix]\nconsumers = 2\n[capacity]\nslo_p99 = \"200ms\"\nmax_probes = 6\nresolution = \"25%\"\n[expect.capacity]\nfixed_at_least = 0.01\n",
    );
    let results = d.path().join("results");
    let campaign = d.path().join("campaign");
    let out = klab()
        .args(["lab", "rehearse", "02", "03", "--runs", "1", "--labs"])
        .arg(d.path())
        .arg("--results")
        .arg(&results)
        .arg("--into")
        .arg(&campaign)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let rounds = std::fs::read_to_string(campaign.join("rounds.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = rounds
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let shown = |lab: &str| {
        lines
            .iter()
            .find(|l| l["lab"].as_str().is_some_and(|n| n.ends_with(lab)))
            .unwrap_or_else(|| panic!("no {lab} in {rounds}"))["shown"]
            .clone()
    };
    assert_eq!(shown("01-base"), serde_json::Value::Null, "{rounds}");
    assert_eq!(shown("02-io"), true, "{rounds}");
    assert_eq!(shown("03-cap"), true, "{rounds}");
    // The capacity lab searched on a broker of its own, in its own folder.
    let round = campaign.join("round-01");
    let cap = std::fs::read_dir(&round)
        .unwrap()
        .flatten()
        .map(|t| t.path().join("03-cap").join("capacity.json"))
        .find(|p| p.is_file());
    assert!(cap.is_some(), "no capacity.json under {}", round.display());
}
