//! `klab ui RUN_DIR`: a finished run folder turned back into the events
//! the live view would have shown, from each step's JSON and histogram
//! logs (and the tuner's trials), placed at the wall-clock times they
//! happened.
//!
//! What a folder cannot give back: the warm-up seconds (their histograms
//! are not kept), the produced rate (shown as acknowledged), and the lag,
//! which is estimated from the schedule (records due at the target rate
//! minus records read).

use crate::events::{Event, Stamped};
use crate::model::{Applied, BrokerConfig, StepResult};
use crate::stats::hist::{LATENCY_BUCKETS_S, add_to_buckets, read_log};
use crate::usage;
use anyhow::Result;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

/// Files of a run folder that are not one step's result.
fn is_step_file(name: &str) -> bool {
    name.ends_with(".json")
        && !name.ends_with(".tune.json")
        && !matches!(
            name,
            "summary.json" | "tune.json" | "tune-bench.json" | "bench.json" | "compare.json"
        )
}

struct Step {
    result: StepResult,
    /// The run clock's origin, ms since the epoch.
    origin_ms: u64,
    e2e: Vec<(Duration, hdrhistogram::Histogram<u64>)>,
    publish: Vec<(Duration, hdrhistogram::Histogram<u64>)>,
}

fn log_of(
    json: &Path,
    name: Option<&String>,
) -> (
    Option<Duration>,
    Vec<(Duration, hdrhistogram::Histogram<u64>)>,
) {
    let Some(name) = name else {
        return (None, Vec::new());
    };
    let path = json.with_file_name(name);
    match std::fs::read(&path)
        .map_err(anyhow::Error::from)
        .and_then(|b| read_log(&b))
    {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("{}: {e:#}", path.display());
            (None, Vec::new())
        }
    }
}

fn load_step(path: &Path) -> Option<Step> {
    let text = std::fs::read_to_string(path).ok()?;
    let result: StepResult = serde_json::from_str(&text).ok()?;
    let (start_e2e, e2e) = log_of(path, result.histograms.e2e.as_ref());
    let (start_pub, publish) = log_of(path, result.histograms.publish.as_ref());
    let origin = start_e2e.or(start_pub).or_else(|| {
        // No histograms: the file was written when the step ended.
        let m = std::fs::metadata(path).ok()?.modified().ok()?;
        let back = Duration::from_secs_f64(result.window_start_s + result.measured_seconds + 1.0);
        m.checked_sub(back)?.duration_since(UNIX_EPOCH).ok()
    })?;
    Some(Step {
        result,
        origin_ms: origin.as_millis() as u64,
        e2e,
        publish,
    })
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn at(origin_ms: u64, t: f64) -> u64 {
    origin_ms + (t.max(0.0) * 1000.0) as u64
}

fn step_events(s: &Step, before: Option<&BrokerConfig>, out: &mut Vec<Stamped>) {
    let r = &s.result;
    let o = s.origin_ms;
    let mut push = |at_ms: u64, event: Event| out.push(Stamped { at_ms, event });
    let topic = r.workload.topic.clone().unwrap_or_default();
    let bootstrap = r.broker.bootstrap.clone();
    let first_s = s
        .e2e
        .first()
        .map(|(t, _)| t.as_secs_f64())
        .unwrap_or(r.window_start_s);
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
    for (t, h) in &s.e2e {
        let ts = t.as_secs_f64();
        let p = s.publish.iter().find(|(pt, _)| pt == t).map(|(_, ph)| ph);
        let acked_now = p.map(|ph| ph.len()).unwrap_or(0);
        acked += acked_now;
        consumed += h.len();
        sum_s += add_to_buckets(h, &mut buckets);
        let due = match (r.target_rate, planned) {
            (Some(rate), Some(total)) => {
                (rate * (ts + 1.0 - r.window_start_s).max(0.0)).min(total) as u64
            }
            _ => acked,
        };
        let mut e = second(
            &bootstrap,
            &topic,
            ts,
            Some(ms(h.value_at_quantile(0.5))),
            Some(ms(h.value_at_quantile(0.99))),
            Some(ms(h.max())),
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
        } = &mut e
        {
            *sent = acked;
            *a = acked;
            *c = consumed;
            *d = due.max(consumed);
            *sent_per_s = acked_now as f64;
            *acked_per_s = acked_now as f64;
            *consumed_per_s = h.len() as f64;
            *publish_p99_ms = p.map(|ph| ms(ph.value_at_quantile(0.99)));
            *e2e_buckets = buckets.clone();
            *e2e_sum_s = sum_s;
        }
        push(at(o, ts + 1.0), e);
        last_t = ts;
    }
    for f in &r.faults {
        push(
            at(o, r.window_start_s + f.at_s),
            Event::Fault {
                action: f.action.as_str().to_string(),
                broker: f.broker,
                at_s: f.at_s,
            },
        );
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

/// The tuner's trials of a `*.tune.json` (or `tune.json`): (lab, label of
/// the step that measured it, the event).
fn trials(path: &Path) -> Vec<(Option<String>, Option<String>, Event)> {
    let Some(v) = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
    else {
        return Vec::new();
    };
    let Some(list) = v.get("trials").and_then(|t| t.as_array()) else {
        return Vec::new();
    };
    let text = |t: &serde_json::Value, k: &str| t.get(k).and_then(|x| x.as_str()).map(String::from);
    list.iter()
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
        .collect()
}

/// Every event of the run in `dir`, in time order. A folder that is not
/// one, or holds no step result, is a usage error.
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
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut steps: Vec<Step> = Vec::new();
    let mut tune = Vec::new();
    for f in &files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if name.ends_with(".tune.json") || name == "tune.json" {
            tune.extend(trials(f));
        } else if is_step_file(&name) {
            match load_step(f) {
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
        // The tuner's verdict on this step, just after it ends.
        let end = out[from..]
            .iter()
            .map(|e| e.at_ms)
            .max()
            .unwrap_or(s.origin_ms);
        for (lab, label, e) in &tune {
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

    #[test]
    fn a_folder_without_results_is_a_usage_error() {
        let d = tempfile::tempdir().unwrap();
        let e = events_of(d.path()).unwrap_err();
        assert!(crate::error::is_usage(&e), "{e}");
        assert!(e.to_string().contains("no step results"), "{e}");
        let e = events_of(&d.path().join("missing")).unwrap_err();
        assert!(e.to_string().contains("not a folder"), "{e}");
    }

    #[test]
    fn a_saved_measurement_comes_back_as_seconds_and_a_step() {
        use crate::stats::hist::Recorder;
        let d = tempfile::tempdir().unwrap();
        let mut e2e = Recorder::default();
        let mut publish = Recorder::default();
        for s in 2..5u64 {
            for i in 0..100u64 {
                let t = Duration::from_secs(s) + Duration::from_millis(i * 10);
                e2e.record(5_000 + i, t);
                publish.record(2_000, t);
            }
        }
        let mut result = StepResult {
            label: Some("run".into()),
            complete: true,
            window_start_s: 2.0,
            measured_seconds: 3.0,
            target_rate: Some(100.0),
            ..Default::default()
        };
        result.workload.duration = Some(Duration::from_secs(3));
        let mut m = crate::stats::report::Measurement {
            result,
            publish,
            e2e,
            origin: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        };
        m.save(&d.path().join("result.json")).unwrap();
        let ev = events_of(d.path()).unwrap();
        let seconds: Vec<&Event> = ev
            .iter()
            .map(|s| &s.event)
            .filter(|e| matches!(e, Event::Second { .. }))
            .collect();
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
}
