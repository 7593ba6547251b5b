//! The instructor's kit as an instructor meets it: `klab doctor` says FAIL
//! (exit 1) on a laptop without Kafka and never takes the machine; a real
//! `klab lab check` hands in its `bundle.json` and names it last; `klab
//! class` turns three bundles into a class table (text, JSON, HTML with
//! everything a bundle says escaped) and leaves crafted files out, each
//! named.

mod common;

use common::*;
use klab::lab::bundle::{self, Bundle};
use std::path::{Path, PathBuf};

fn shipped_labs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("labs")
}

fn doctor(kafka_home: &Path, args: &[&str]) -> std::process::Output {
    klab()
        .arg("doctor")
        .args(args)
        .arg("--labs")
        .arg(shipped_labs())
        .env("KLAB_KAFKA_HOME", kafka_home)
        .output()
        .unwrap()
}

fn json_of(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn check<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {doc}"))
}

#[test]
fn doctor_fails_without_kafka_refuses_bad_input_and_never_takes_the_machine() {
    let empty = tempfile::tempdir().unwrap();
    // KLAB_KAFKA_HOME names an empty folder: FAIL, exit 1.
    let out = doctor(empty.path(), &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let kafka_row = stdout
        .lines()
        .find(|l| l.contains(" kafka "))
        .unwrap_or_else(|| panic!("no kafka row in:\n{stdout}"));
    assert!(kafka_row.contains("FAIL"), "{kafka_row}");
    assert!(stdout.contains("not ready:"), "{stdout}");
    let out = doctor(empty.path(), &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc = json_of(&out);
    assert_eq!(doc["ready"], false);
    assert_eq!(check(&doc, "kafka")["status"], "FAIL");
    assert_eq!(check(&doc, "labs: durability")["status"], "ok");
    assert!(check(&doc, "memory: durability")["detail"].is_string());

    // With the real Kafka: its row is ok, and the exit code follows the
    // verdict (the memory or disk of the machine running the tests may
    // still FAIL).
    let home = kafka_home().dir;
    let out = doctor(&home, &["--json"]);
    let doc = json_of(&out);
    assert_eq!(check(&doc, "kafka")["status"], "ok", "{doc}");
    assert_eq!(check(&doc, "java")["status"], "ok", "{doc}");
    let ready = doc["ready"].as_bool().unwrap();
    assert_eq!(out.status.code(), Some(if ready { 0 } else { 1 }), "{doc}");

    // A run holds the machine: doctor says so and still runs (it takes
    // nothing, measures nothing).
    let lock_dir = tempfile::tempdir().unwrap();
    let lock = lock_dir.path().join("klab-measure.lock");
    std::fs::write(&lock, "klab lab run 04 (pid 1)").unwrap();
    let held = std::fs::File::open(&lock).unwrap();
    held.try_lock().unwrap();
    let out = klab()
        .args(["doctor", "--json", "--labs"])
        .arg(shipped_labs())
        .env("KLAB_LOCK_DIR", lock_dir.path())
        .output()
        .unwrap();
    let doc = json_of(&out);
    let row = check(&doc, "machine lock");
    assert_eq!(row["status"], "WARN", "{row}");
    assert!(
        row["detail"].as_str().unwrap().contains("klab lab run 04"),
        "{row}"
    );
    drop(held);

    // Bad input: exit 2.
    let out = doctor(&home, &["--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    // --json into a folder that cannot exist (its parent is a file).
    let file = empty.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let json = format!("--json={}/doctor.json", file.display());
    let out = doctor(&home, &[json.as_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("a-file"));
}

/// A reference and a lab whose fix is one setting, both a few seconds.
fn short_labs(dir: &Path) {
    write_lab(
        dir,
        "01-base",
        "title = \"base\"\n[workload]\nrate = 1000\nduration = \"4s\"\nwarmup = \"1s\"\npartitions = 2\n",
    );
    write_lab(
        dir,
        "02-io",
        "title = \"io\"\nextends = \"01\"\n[broker.properties]\n\"num.io.threads\" = 2\n[fix.properties]\n\"num.io.threads\" = 8\n[expect.fixed]\nthroughput_at_least = 0.3\n",
    );
}

/// A bundle written the way klab writes one, by its own types.
fn hand_in(dir: &Path, name: &str, b: &Bundle) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    klab::stats::report::write_json(&path, b).unwrap();
}

#[test]
fn a_lab_check_hands_in_a_bundle_and_three_make_a_class_table() {
    let d = tempfile::tempdir().unwrap();
    short_labs(d.path());
    let results = d.path().join("results");
    let ada = "Ada <b>Lovelace</b>";
    let out = klab()
        .args(["lab", "check", "02", "--broker-set", "num.io.threads=8"])
        .args(["--student", ada, "--labs"])
        .arg(d.path())
        .arg("--results")
        .arg(&results)
        .output()
        .unwrap();
    let stdout = stdout_of_success(&out);
    let run = only_run_dir(&results);
    let path = run.join("bundle.json");
    // The hand-in file is named on the last line.
    assert_eq!(
        stdout.lines().last(),
        Some(format!("hand in: {}", path.display()).as_str()),
        "{stdout}"
    );
    let real = bundle::read(&path).unwrap();
    assert_eq!(real.format, bundle::FORMAT);
    assert_eq!((real.student.as_str(), real.named), (ada, true));
    assert_eq!(real.command, "check");
    assert_eq!((real.exit_code, real.verdict.as_str()), (0, "as expected"));
    assert_eq!(real.labs.len(), 1);
    let lab = &real.labs[0];
    assert_eq!(lab.lab, "02-io");
    assert!(lab.needs_check);
    assert_eq!(lab.definition.as_ref().map(String::len), Some(64));
    assert!(lab.fingerprint.as_deref().unwrap().starts_with("sha256-"));
    let steps: Vec<&str> = real.rows.iter().map(|r| r.step.as_str()).collect();
    assert!(steps.contains(&"your fix"), "{steps:?}");
    let yours = real.rows.iter().find(|r| r.step == "your fix").unwrap();
    assert_eq!(yours.verdict.as_deref(), Some("yes"));
    assert!(yours.bounds.iter().any(|b| b.ratio && b.value.is_some()));
    assert!(yours.records_per_s > 0.0);
    let p = &real.provenance;
    assert!(p.kafka_version.is_some() && p.java_version.is_some() && p.cores >= 1);

    // The class's share: Ada's real bundle, Bob's that fell short, and a
    // lab run (not a check) of someone whose name is markup; beside them a
    // run folder's other JSON, a note, and three crafted files.
    let share = d.path().join("share");
    hand_in(&share, "ada/bundle.json", &real);
    let mut bob = real.clone();
    bob.student = "Bob".into();
    (bob.exit_code, bob.verdict) = (1, "not as expected".into());
    for r in &mut bob.rows {
        for b in &mut r.bounds {
            b.verdict = "NO".into();
        }
    }
    hand_in(&share, "bob-02.json", &bob);
    let mut eve = real.clone();
    eve.student = "<script>alert(1)</script>".into();
    eve.command = "run".into();
    hand_in(&share, "eve/run1/bundle.json", &eve);
    std::fs::copy(run.join("summary.json"), share.join("ada/summary.json")).unwrap();
    std::fs::write(share.join("notes.txt"), "not json").unwrap();
    let mut forged = real.clone();
    forged.exit_code = 1; // "as expected" with exit code 1
    hand_in(&share, "mallory/bundle.json", &forged);
    std::fs::write(
        share.join("broken.json"),
        b"{\"format\": \"klab-bundle/1\", ",
    )
    .unwrap();
    let mut text = serde_json::to_value(&real).unwrap();
    text["student"] = "\u{1b}[2Jx".into();
    std::fs::write(share.join("escape.json"), text.to_string()).unwrap();

    let html = d.path().join("class.html");
    let out = klab()
        .arg("class")
        .arg(&share)
        .arg("--html")
        .arg(&html)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Files were left out: exit 1, each named with why.
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    for (file, why) in [
        ("mallory/bundle.json", "klab never writes that pair"),
        ("broken.json", "not JSON"),
        ("escape.json", "control character"),
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(file) && l.contains(why) && l.ends_with("left out")),
            "{file}: {stderr}"
        );
    }
    assert!(stderr.contains("ada/summary.json"), "{stderr}");
    assert!(!stderr.contains("notes.txt") && !stderr.contains('\u{1b}'));
    assert!(
        stdout.contains("3 student(s), 1 lab(s), 3 bundle(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("02-io: 1 of 3 passed, 3 handed in"),
        "{stdout}"
    );
    let row = |name: &str| {
        stdout
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no row for {name} in:\n{stdout}"))
    };
    assert!(row(ada).contains("PASS (1 attempt)"), "{stdout}");
    assert!(row("Bob").contains("NOT YET (1 attempt)"), "{stdout}");
    assert!(row("<script>").contains("NOT YET"), "{stdout}");
    assert!(stdout.contains("your fix: records/s"), "{stdout}");

    let out = klab()
        .args(["class", "--json"])
        .arg(&share)
        .output()
        .unwrap();
    let t = json_of(&out);
    assert_eq!(t["bundles"], 3);
    assert_eq!(t["labs"][0]["lab"], "02-io");
    assert_eq!(t["labs"][0]["passed"], 1);
    assert_eq!(t["left_out"].as_array().unwrap().len(), 3);
    let student = |name: &str| {
        t["students"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["student"] == name)
            .unwrap_or_else(|| panic!("no {name} in {t}"))
            .clone()
    };
    let a = student(ada);
    assert_eq!(a["labs"]["02-io"]["status"], "PASS");
    assert!(!a["labs"]["02-io"]["figures"].as_array().unwrap().is_empty());
    assert_eq!(student("Bob")["labs"]["02-io"]["status"], "NOT YET");

    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("Ada &lt;b&gt;Lovelace&lt;/b&gt;"), "{page}");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!page.contains("<b>Lovelace") && !page.contains("<script"));
    assert!(!page.contains("src=") && !page.contains("href="), "{page}");

    // Only bundles, all good: exit 0.
    let clean = d.path().join("clean");
    hand_in(&clean, "ada.json", &real);
    let out = klab().arg("class").arg(&clean).output().unwrap();
    let stdout = stdout_of_success(&out);
    assert!(stdout.contains("02-io: 1 of 1 passed"), "{stdout}");
    // Not a folder: exit 2.
    let out = klab()
        .arg("class")
        .arg(d.path().join("nowhere"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
