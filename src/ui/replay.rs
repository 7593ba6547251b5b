//! `klab ui RUN_DIR`: a finished run folder turned back into the events
//! the live view would have shown, from each step's JSON and histogram
//! logs (the tuner's trials, the labs' verdicts), placed at the wall-clock
//! times they happened.
//!
//! What a folder cannot give back: the warm-up seconds (their histograms
//! are not kept), the produced rate (shown as acknowledged), and the lag,
//! which is estimated from the schedule (records due at the target rate
//! minus records read). A second the measured window covers only in part
//! (its first and last) is drawn at its rate over the part it covers, or
//! left out when that is under half a second, so a step's edges do not
//! look like drops; between steps the page leaves the gap empty.
//!
//! A run folder may come from anyone: the replay reads only regular files
//! directly inside it (no symbolic link, FIFO or device; a histogram log
//! named by a step's JSON must be a plain file name), at most
//! [`MAX_FILE_BYTES`] each, and refuses a step whose figures are out of
//! range (exit 2, naming the file and the field) instead of computing
//! with them.

use crate::events::{Event, Stamped};
use crate::model::{Applied, BrokerConfig, StepResult};
use crate::stats::hist::{LATENCY_BUCKETS_S, add_to_buckets, read_log};
use crate::usage;
use anyhow::Result;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

/// The most `klab ui` reads of one file of a run folder.
const MAX_FILE_BYTES: u64 = 64 << 20;

/// The largest figure a step's JSON may hold as a fraction or exponent
/// (counts are integers, anything else is far below): beyond it a crafted
/// file could overflow a duration.
const MAX_FIGURE: f64 = 1e15;

/// The latest time in a step a replay places: 100 days of seconds.
const MAX_STEP_S: f64 = 8.64e6;

/// Files of a run folder that are not one step's result.
fn is_step_file(name: &str) -> bool {
    name.ends_with(".json")
        && !name.ends_with(".tune.json")
        && !matches!(
            name,
            "summary.json"
                | "verdicts.json"
                | "tune.json"
                | "tune-bench.json"
                | "bench.json"
                | "compare.json"
        )
}

/// What the replay says of a file it will not read.
const ONLY: &str = "klab ui reads only regular files directly inside the run folder";

/// Reads `path`, a regular file of at most [`MAX_FILE_BYTES`]: never
/// through a symbolic link, never waiting on a FIFO or reading a device.
fn read_regular(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => usage!("{}: a symbolic link; {ONLY}", path.display()),
            _ => usage!("{}: cannot read: {e}", path.display()),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| usage!("{}: cannot read: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(usage!(
            "{}: not a regular file (a FIFO, a device or a folder); {ONLY}",
            path.display()
        ));
    }
    let too_big = || {
        usage!(
            "{}: larger than the {} MiB klab ui reads of one file",
            path.display(),
            MAX_FILE_BYTES >> 20
        )
    };
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_big());
    }
    let mut out = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| usage!("{}: cannot read: {e}", path.display()))?;
    if out.len() as u64 > MAX_FILE_BYTES {
        return Err(too_big());
    }
    Ok(out)
}

/// One second of a histogram log, summed up as the page draws it.
struct Sec {
    /// Its start on the run's clock (seconds).
    t: f64,
    n: u64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// Per bucket of [`LATENCY_BUCKETS_S`] (one more above), and the sum.
    buckets: Vec<u64>,
    sum_s: f64,
}

struct Step {
    result: StepResult,
    /// The run clock's origin, ms since the epoch.
    origin_ms: u64,
    e2e: Vec<Sec>,
    publish: Vec<Sec>,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// The seconds of the histogram log a step's JSON names in `field`, with
/// the log's start time. A missing log is left out (with a warning); one
/// outside the folder, not a regular file, too large or not a log is
/// refused.
fn seconds_of(
    json: &Path,
    field: &str,
    name: Option<&String>,
) -> Result<(Option<Duration>, Vec<Sec>)> {
    let Some(name) = name else {
        return Ok((None, Vec::new()));
    };
    let mut parts = Path::new(name).components();
    let file = match (parts.next(), parts.next()) {
        (Some(Component::Normal(f)), None) => f,
        _ => {
            return Err(usage!(
                "{}: {field} = {name:?} is not a file name in the run folder; {ONLY}",
                json.display()
            ));
        }
    };
    let path = json.with_file_name(file);
    if std::fs::symlink_metadata(&path).is_err() {
        tracing::warn!("{}: missing; its seconds are left out", path.display());
        return Ok((None, Vec::new()));
    }
    let bytes = read_regular(&path)?;
    let mut out = Vec::new();
    let start = read_log(&bytes, |t, h| {
        let mut buckets = vec![0u64; LATENCY_BUCKETS_S.len() + 1];
        let sum_s = add_to_buckets(&h, &mut buckets);
        out.push(Sec {
            t: t.as_secs_f64(),
            n: h.len(),
            p50_ms: ms(h.value_at_quantile(0.5)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
            buckets,
            sum_s,
        });
    })
    .map_err(|e| usage!("{}: {e:#}", path.display()))?;
    if out.iter().any(|s| s.t > MAX_STEP_S) {
        return Err(usage!(
            "{}: an interval starts more than {MAX_STEP_S} s into its step",
            path.display()
        ));
    }
    Ok((start, out))
}

/// Refuses a number a step's JSON holds as a fraction or exponent beyond
/// [`MAX_FIGURE`]; `at` is its field's path (`workload.duration`).
fn check_figures(v: &serde_json::Value, at: &str, file: &Path) -> Result<()> {
    use serde_json::Value;
    match v {
        Value::Number(n) if n.is_f64() && !n.as_f64().is_some_and(|x| x.abs() <= MAX_FIGURE) => {
            Err(usage!(
                "{}: {at} = {n} is out of range (a step's figures stay below {MAX_FIGURE:e})",
                file.display()
            ))
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, x)| check_figures(x, &format!("{at}[{i}]"), file)),
        Value::Object(map) => map.iter().try_for_each(|(k, x)| {
            let at = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            check_figures(x, &at, file)
        }),
        _ => Ok(()),
    }
}

/// Refuses a step whose times the replay cannot place: each must be
/// between 0 and [`MAX_STEP_S`].
fn check_times(r: &StepResult, file: &Path) -> Result<()> {
    let mut times = vec![
        ("window_start_s", r.window_start_s),
        ("measured_seconds", r.measured_seconds),
    ];
    times.extend(r.e2e_timeline.iter().map(|[t, ..]| ("e2e_timeline", *t)));
    times.extend(r.faults.iter().map(|f| ("faults.at_s", f.at_s)));
    // A change's time counts from the window's start (negative in the
    // warm-up): placed, it is that much after the load began.
    times.extend(
        r.cluster
            .iter()
            .map(|c| ("window_start_s + cluster.at_s", r.window_start_s + c.at_s)),
    );
    match times
        .into_iter()
        .find(|(_, t)| !(0.0..=MAX_STEP_S).contains(t))
    {
        Some((field, t)) => Err(usage!(
            "{}: {field} = {t} is out of range (0 to {MAX_STEP_S} seconds)",
            file.display()
        )),
        None => Ok(()),
    }
}

/// A step's JSON and its histogram logs; None when the file is not a
/// step's result.
fn load_step(path: &Path) -> Result<Option<Step>> {
    let bytes = read_regular(path)?;
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Ok(None);
    };
    if value.get("workload").is_none() || value.get("window_start_s").is_none() {
        return Ok(None);
    }
    check_figures(&value, "", path)?;
    let Ok(result) = serde_json::from_value::<StepResult>(value) else {
        return Ok(None);
    };
    check_times(&result, path)?;
    let (start_e2e, e2e) = seconds_of(path, "histograms.e2e", result.histograms.e2e.as_ref())?;
    let (start_pub, publish) = seconds_of(
        path,
        "histograms.publish",
        result.histograms.publish.as_ref(),
    )?;
    let origin = start_e2e.or(start_pub).or_else(|| {
        // No histograms: the file was written when the step ended.
        let m = std::fs::symlink_metadata(path).ok()?.modified().ok()?;
        let back =
            Duration::try_from_secs_f64(result.window_start_s + result.measured_seconds + 1.0)
                .ok()?;
        m.checked_sub(back)?.duration_since(UNIX_EPOCH).ok()
    });
    let Some(origin) = origin else {
        return Ok(None);
    };
    Ok(Some(Step {
        result,
        origin_ms: u64::try_from(origin.as_millis()).unwrap_or(u64::MAX),
        e2e,
        publish,
    }))
}

fn at(origin_ms: u64, t: f64) -> u64 {
    origin_ms.saturating_add((t.max(0.0) * 1000.0) as u64)
}

/// The part of second `t` inside the measured window.
fn covered(r: &StepResult, t: f64) -> f64 {
    let end = r.window_start_s + r.measured_seconds;
    ((t + 1.0).min(end) - t.max(r.window_start_s)).clamp(0.0, 1.0)
}

/// A second covered less than this is left out of the charts (its
/// records still count).
const LEAST_COVERED: f64 = 0.5;

fn step_events(s: &Step, before: Option<&BrokerConfig>, out: &mut Vec<Stamped>) {
    let r = &s.result;
    let o = s.origin_ms;
    let mut push = |at_ms: u64, event: Event| out.push(Stamped { at_ms, event });
    let topic = r.workload.topic.clone().unwrap_or_default();
    let bootstrap = r.broker.bootstrap.clone();
    let first_s = s.e2e.first().map(|x| x.t).unwrap_or(r.window_start_s);
    let begin = at(
        o,
        (r.window_start_s - r.workload.warmup.as_secs_f64()).min(first_s - 1.0),
    );
    match r.broker.applied {
        Applied::Dynamic | Applied::Restarted | Applied::Reused => {
            if r.broker.applied == Applied::Restarted {
                push(
                    begin.saturating_sub(2),
                    Event::Broker {
                        action: "restarted".into(),
                        node: None,
                        config: r.broker.requested.to_string(),
                    },
                );
            }
            push(
                begin.saturating_sub(1),
                Event::Setting {
                    how: r.broker.applied,
                    changes: before
                        .map(|b| crate::broker::apply::setting_changes(b, &r.broker.requested))
                        .unwrap_or_default(),
                },
            );
        }
        Applied::Started => push(
            begin.saturating_sub(1),
            Event::Broker {
                action: "started".into(),
                node: None,
                config: r.broker.requested.to_string(),
            },
        ),
        _ => {}
    }
    push(
        begin,
        Event::StepBegin {
            lab: r.lab.clone(),
            label: r.label.clone(),
            bootstrap: bootstrap.clone(),
            topic: topic.clone(),
            workload: r.workload.describe(),
            broker: r.broker.requested.to_string(),
            applied: r.broker.applied,
            throwaway: false,
        },
    );
    push(
        at(o, r.window_start_s),
        Event::Measuring {
            bootstrap: bootstrap.clone(),
            topic: topic.clone(),
        },
    );
    let mut buckets = vec![0u64; LATENCY_BUCKETS_S.len() + 1];
    let mut sum_s = 0.0;
    let (mut acked, mut consumed) = (0u64, 0u64);
    let planned = r
        .target_rate
        .zip(r.workload.duration)
        .map(|(rate, d)| rate * d.as_secs_f64());
    let mut last_t = first_s;
    if s.e2e.is_empty() {
        // No histograms: the per-second p99 and max of the JSON.
        for [t, p99, max] in &r.e2e_timeline {
            push(
                at(o, t + 1.0),
                second(&bootstrap, &topic, *t, None, Some(*p99), Some(*max)),
            );
            last_t = *t;
        }
    }
    for e in &s.e2e {
        let p = s.publish.iter().find(|p| p.t == e.t);
        let acked_now = p.map(|p| p.n).unwrap_or(0);
        acked = acked.saturating_add(acked_now);
        consumed = consumed.saturating_add(e.n);
        for (b, n) in buckets.iter_mut().zip(&e.buckets) {
            *b = b.saturating_add(*n);
        }
        sum_s += e.sum_s;
        last_t = e.t;
        let part = covered(r, e.t);
        if part < LEAST_COVERED {
            continue;
        }
        let due = match (r.target_rate, planned) {
            (Some(rate), Some(total)) => {
                (rate * (e.t + 1.0 - r.window_start_s).max(0.0)).min(total) as u64
            }
            _ => acked,
        };
        let mut ev = second(
            &bootstrap,
            &topic,
            e.t,
            Some(e.p50_ms),
            Some(e.p99_ms),
            Some(e.max_ms),
        );
        if let Event::Second {
            sent,
            acked: a,
            consumed: c,
            due: d,
            sent_per_s,
            acked_per_s,
            consumed_per_s,
            publish_p99_ms,
            e2e_buckets,
            e2e_sum_s,
            ..
        } = &mut ev
        {
            *sent = acked;
            *a = acked;
            *c = consumed;
            *d = due.max(consumed);
            *sent_per_s = acked_now as f64 / part;
            *acked_per_s = acked_now as f64 / part;
            *consumed_per_s = e.n as f64 / part;
            *publish_p99_ms = p.map(|p| p.p99_ms);
            *e2e_buckets = buckets.clone();
            *e2e_sum_s = sum_s;
        }
        push(at(o, e.t + 1.0), ev);
    }
    for f in &r.faults {
        push(
            at(o, r.window_start_s + f.at_s),
            Event::Fault {
                action: f.action.as_str().to_string(),
                broker: f.broker,
                consumer: f.consumer,
                at_s: f.at_s,
            },
        );
    }
    // The cluster's changes, a reading's at once, on the load's clock.
    let mut readings: Vec<(f64, Vec<crate::model::ClusterChange>)> = Vec::new();
    for c in &r.cluster {
        let t = r.window_start_s + c.at_s;
        let c = crate::model::ClusterChange {
            at_s: t,
            ..c.clone()
        };
        match readings.last_mut() {
            Some((at_s, cs)) if *at_s == t => cs.push(c),
            _ => readings.push((t, vec![c])),
        }
    }
    for (t, changes) in readings {
        push(at(o, t), Event::cluster(t, changes));
    }
    push(
        at(o, last_t + 1.5),
        Event::StepEnd {
            lab: r.lab.clone(),
            label: r.label.clone(),
            topic,
            complete: r.complete,
            records_per_s: r.throughput.msgs_per_s,
            e2e_p99_ms: r.e2e_latency_ms.p99,
            lost: r.lost,
            throwaway: false,
            duplicated: r.duplicated,
            e2e_p50_ms: r.e2e_latency_ms.p50,
            e2e_max_ms: r.e2e_latency_ms.max,
            publish_p99_ms: r.publish_latency_ms.p99,
            reason: r.reason.clone(),
            produced: r.produced,
            acked: r.acked,
            consumed: r.consumed,
            e2e_buckets: buckets,
            e2e_sum_s: sum_s,
            failed: r.failed,
            unsent: r.unsent,
        },
    );
}

fn second(
    bootstrap: &str,
    topic: &str,
    t_s: f64,
    p50: Option<f64>,
    p99: Option<f64>,
    max: Option<f64>,
) -> Event {
    Event::Second {
        bootstrap: bootstrap.to_string(),
        topic: topic.to_string(),
        t_s,
        measuring: true,
        sent: 0,
        acked: 0,
        consumed: 0,
        due: 0,
        sent_per_s: 0.0,
        acked_per_s: 0.0,
        consumed_per_s: 0.0,
        e2e_p50_ms: p50,
        e2e_p99_ms: p99,
        e2e_max_ms: max,
        publish_p99_ms: None,
        e2e_buckets: Vec::new(),
        e2e_sum_s: 0.0,
    }
}

/// A JSON file of the folder as a value; None when it is not JSON.
fn json_of(path: &Path) -> Result<Option<serde_json::Value>> {
    Ok(serde_json::from_slice(&read_regular(path)?).ok())
}

fn text(v: &serde_json::Value, k: &str) -> Option<String> {
    v.get(k).and_then(|x| x.as_str()).map(String::from)
}

/// Events that follow the step a lab and label name: (lab, label, event).
type After = Vec<(Option<String>, Option<String>, Event)>;

/// The tuner's trials of a `*.tune.json` (or `tune.json`).
fn trials(path: &Path) -> Result<After> {
    let Some(v) = json_of(path)? else {
        return Ok(Vec::new());
    };
    let Some(list) = v.get("trials").and_then(|t| t.as_array()) else {
        return Ok(Vec::new());
    };
    Ok(list
        .iter()
        .map(|t| {
            let result = t.get("result").cloned().unwrap_or_default();
            (
                text(&result, "lab"),
                text(&result, "label"),
                Event::Trial {
                    n: t.get("n").and_then(|x| x.as_u64()).unwrap_or(0) as usize,
                    change: text(t, "change").unwrap_or_default(),
                    score: t.get("score").and_then(|x| x.as_f64()).unwrap_or(0.0),
                    accepted: t.get("accepted").and_then(|x| x.as_bool()).unwrap_or(false),
                    reason: text(t, "reason").unwrap_or_default(),
                },
            )
        })
        .collect())
}

/// The labs' verdicts of `verdicts.json` (a lab run or the demo).
fn verdicts(path: &Path) -> Result<After> {
    let Some(v) = json_of(path)? else {
        return Ok(Vec::new());
    };
    let rows = v.as_array().cloned().unwrap_or_default();
    Ok(rows
        .iter()
        .filter_map(|row| {
            let expected = row.get("expected").filter(|e| !e.is_null())?;
            let verdict = match expected.get("verdict")?.as_str()? {
                "no" => "NO".to_string(),
                v => v.to_string(),
            };
            let bounds = expected
                .get("checks")
                .and_then(|c| c.as_array())
                .map(|c| c.iter().filter_map(|x| text(x, "bound")).collect())
                .unwrap_or_default();
            let lab = text(row, "lab");
            Some((
                lab.clone(),
                text(row, "label"),
                Event::Verdict {
                    lab: lab.unwrap_or_default(),
                    label: text(row, "label"),
                    step: text(row, "step").unwrap_or_default(),
                    verdict,
                    bounds,
                },
            ))
        })
        .collect())
}

/// Every event of the run in `dir`, in time order. A folder that is not
/// one, or holds no step result, is a usage error; so is a file the
/// replay refuses to read (see the module's notes).
pub fn events_of(dir: &Path) -> Result<Vec<Stamped>> {
    if !dir.is_dir() {
        return Err(usage!(
            "{}: not a folder; give a run folder (results/<time>/) of klab run, lab, demo or tune",
            dir.display()
        ));
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| usage!("{}: cannot read: {e}", dir.display()))?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .collect();
    files.sort();
    let mut steps: Vec<Step> = Vec::new();
    let mut after = Vec::new();
    for f in &files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if name.ends_with(".tune.json") || name == "tune.json" {
            after.extend(trials(f)?);
        } else if name == "verdicts.json" {
            after.extend(verdicts(f)?);
        } else if is_step_file(&name) {
            match load_step(f)? {
                Some(s) => steps.push(s),
                None => tracing::info!("{}: not a step's result; left out", f.display()),
            }
        }
    }
    if steps.is_empty() {
        return Err(usage!(
            "{}: no step results in this folder (the JSON files klab run, lab, demo and tune write)",
            dir.display()
        ));
    }
    steps.sort_by_key(|s| s.origin_ms);
    let mut out = Vec::new();
    let mut before: Option<&BrokerConfig> = None;
    for s in &steps {
        let from = out.len();
        step_events(s, before, &mut out);
        before = Some(&s.result.broker.requested);
        // The tuner's trial and the lab's verdict on this step, just after
        // it ends.
        let end = out[from..]
            .iter()
            .map(|e| e.at_ms)
            .max()
            .unwrap_or(s.origin_ms);
        for (lab, label, e) in &after {
            if label.is_some() && *label == s.result.label && *lab == s.result.lab {
                out.push(Stamped {
                    at_ms: end + 1,
                    event: e.clone(),
                });
            }
        }
    }
    out.sort_by_key(|e| e.at_ms);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::hist::Recorder;

    #[test]
    fn a_folder_without_results_is_a_usage_error() {
        let d = tempfile::tempdir().unwrap();
        let e = events_of(d.path()).unwrap_err();
        assert!(crate::error::is_usage(&e), "{e}");
        assert!(e.to_string().contains("no step results"), "{e}");
        let e = events_of(&d.path().join("missing")).unwrap_err();
        assert!(e.to_string().contains("not a folder"), "{e}");
    }

    /// A step of 100 records in each of the seconds `from..to`, its
    /// window starting at `window_start_s`, saved in `dir` as result.json.
    fn save_step(dir: &Path, from: u64, to: u64, window_start_s: f64) {
        let mut e2e = Recorder::default();
        let mut publish = Recorder::default();
        for s in from..to {
            for i in 0..100u64 {
                let t = Duration::from_secs(s) + Duration::from_millis(i * 10);
                e2e.record(5_000 + i, t);
                publish.record(2_000, t);
            }
        }
        let mut result = StepResult {
            label: Some("run".into()),
            complete: true,
            window_start_s,
            measured_seconds: (to - from) as f64,
            target_rate: Some(100.0),
            ..Default::default()
        };
        result.workload.duration = Some(Duration::from_secs(to - from));
        let mut m = crate::stats::report::Measurement {
            result,
            publish,
            e2e,
            origin: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        };
        m.save(&dir.join("result.json")).unwrap();
    }

    fn seconds(ev: &[Stamped]) -> Vec<&Event> {
        ev.iter()
            .map(|s| &s.event)
            .filter(|e| matches!(e, Event::Second { .. }))
            .collect()
    }

    #[test]
    fn a_saved_measurement_comes_back_as_seconds_and_a_step() {
        let d = tempfile::tempdir().unwrap();
        save_step(d.path(), 2, 5, 2.0);
        let ev = events_of(d.path()).unwrap();
        let seconds = seconds(&ev);
        assert_eq!(seconds.len(), 3);
        let Event::Second {
            consumed_per_s,
            e2e_p99_ms,
            publish_p99_ms,
            consumed,
            ..
        } = seconds[2]
        else {
            unreachable!()
        };
        assert_eq!(*consumed_per_s, 100.0);
        assert_eq!(*consumed, 300);
        assert!(e2e_p99_ms.unwrap() > 5.0);
        assert!((publish_p99_ms.unwrap() - 2.0).abs() < 0.01);
        assert!(matches!(
            ev.first().map(|e| &e.event),
            Some(Event::Broker { .. })
        ));
        assert!(matches!(
            ev.last().map(|e| &e.event),
            Some(Event::StepEnd { .. })
        ));
        assert!(ev[0].at_ms + 10 >= 1_800_000_000_000);
    }

    /// The window's first and last seconds are only partly inside it: one
    /// is drawn at its rate over what it covers, the other (under half a
    /// second) left out, so neither looks like a drop.
    #[test]
    fn partial_seconds_at_a_windows_edges_are_no_drops() {
        let d = tempfile::tempdir().unwrap();
        // Records in seconds 2..6, the window 2.3 s to 5.3 s.
        save_step(d.path(), 2, 6, 2.3);
        edit(d.path(), |v| v["measured_seconds"] = serde_json::json!(3.0));
        let ev = events_of(d.path()).unwrap();
        let rates: Vec<f64> = seconds(&ev)
            .iter()
            .map(|e| match e {
                Event::Second { consumed_per_s, .. } => *consumed_per_s,
                _ => unreachable!(),
            })
            .collect();
        // Second 2 covers 0.7 s, 3 and 4 all of it, 5 covers 0.3 s.
        assert_eq!(rates.len(), 3, "{rates:?}");
        assert!((rates[0] - 100.0 / 0.7).abs() < 0.01, "{rates:?}");
        assert_eq!(&rates[1..], [100.0, 100.0]);
    }

    fn edit(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
        let path = dir.join("result.json");
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        f(&mut v);
        std::fs::write(&path, v.to_string()).unwrap();
    }

    fn refused(dir: &Path, want: &[&str]) {
        let e = events_of(dir).unwrap_err();
        assert!(crate::error::is_usage(&e), "{e:#}");
        for w in want {
            assert!(e.to_string().contains(w), "no {w:?} in: {e}");
        }
    }

    #[test]
    fn out_of_range_figures_are_refused_naming_file_and_field() {
        let d = tempfile::tempdir().unwrap();
        save_step(d.path(), 2, 5, 2.0);
        edit(d.path(), |v| v["window_start_s"] = serde_json::json!(1e300));
        refused(d.path(), &["result.json", "window_start_s", "out of range"]);
        edit(d.path(), |v| v["window_start_s"] = serde_json::json!(-5.0));
        refused(d.path(), &["result.json", "window_start_s", "out of range"]);
        edit(d.path(), |v| {
            v["window_start_s"] = serde_json::json!(2.0);
            v["workload"]["duration"] = serde_json::json!(1e300);
        });
        refused(
            d.path(),
            &["result.json", "workload.duration", "out of range"],
        );
        edit(d.path(), |v| {
            v["workload"]["duration"] = serde_json::json!(3.0);
            v["e2e_timeline"] = serde_json::json!([[1e12, 1.0, 2.0]]);
        });
        refused(d.path(), &["result.json", "e2e_timeline", "out of range"]);
    }

    #[test]
    fn the_clusters_changes_come_back_as_one_event_per_reading() {
        let d = tempfile::tempdir().unwrap();
        save_step(d.path(), 2, 8, 2.0);
        let change = |at_s: f64, p: i32, what: &str| serde_json::json!({"at_s": at_s, "partition": p, "leader": 1, "isr": [1], "what": what});
        edit(d.path(), |v| {
            v["cluster"] = serde_json::json!([
                change(1.5, 0, "isr shrank"),
                change(1.5, 1, "isr shrank"),
                change(4.0, 0, "isr grew"),
            ])
        });
        let ev = events_of(d.path()).unwrap();
        let got: Vec<(f64, Vec<String>, usize)> = ev
            .iter()
            .filter_map(|s| match &s.event {
                Event::Cluster {
                    t_s,
                    markers,
                    changes,
                } => Some((*t_s, markers.clone(), changes.len())),
                _ => None,
            })
            .collect();
        assert_eq!(
            got,
            [
                (3.5, vec!["isr shrank p0,p1".to_string()], 2),
                (6.0, vec!["isr grew p0".to_string()], 1),
            ]
        );
        // A change the replay cannot place is refused like a fault's.
        edit(d.path(), |v| {
            v["cluster"][0]["at_s"] = serde_json::json!(-9.0)
        });
        refused(d.path(), &["result.json", "cluster.at_s", "out of range"]);
    }

    #[test]
    fn only_regular_files_inside_the_folder_are_read() {
        let d = tempfile::tempdir().unwrap();
        save_step(d.path(), 2, 5, 2.0);
        for outside in ["/dev/zero", "../result.e2e.hlog", "sub/result.e2e.hlog"] {
            edit(d.path(), |v| {
                v["histograms"]["e2e"] = serde_json::json!(outside)
            });
            refused(
                d.path(),
                &["result.json", "histograms.e2e", "not a file name"],
            );
        }
        edit(d.path(), |v| {
            v["histograms"]["e2e"] = serde_json::json!("result.e2e.hlog")
        });
        let log = d.path().join("result.e2e.hlog");
        std::fs::remove_file(&log).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &log).unwrap();
        refused(d.path(), &["result.e2e.hlog", "symbolic link"]);
        std::fs::remove_file(&log).unwrap();
        let c = std::ffi::CString::new(log.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo(3) on a path in a fresh temporary folder.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        refused(d.path(), &["result.e2e.hlog", "not a regular file"]);
        std::fs::remove_file(&log).unwrap();
        let f = std::fs::File::create(&log).unwrap();
        f.set_len(MAX_FILE_BYTES + 1).unwrap();
        refused(d.path(), &["result.e2e.hlog", "larger than"]);
    }
}
