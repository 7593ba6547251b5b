//! The bench's figures: per comparison and side over the counted pairs,
//! klab / peer ratios, start-up costs and goals.

use super::model::{BenchReport, Goal, Phase, Run, Side, Test, summary_key};
use crate::stats::Spread;
use anyhow::{Result, anyhow, bail};
use std::collections::BTreeMap;

/// The measured run of `test` by `side` in `pair`.
pub fn find(runs: &[Run], pair: usize, test: Test, side: Side) -> Option<&Run> {
    runs.iter()
        .find(|r| r.phase == Phase::Measured && r.pair == pair && r.test == test && r.side == side)
}

/// Fills summary, ratios, start-up costs and goals from the runs.
pub fn summarize(report: &mut BenchReport) {
    let runs = &report.runs;
    let pairs: Vec<usize> = {
        let mut p: Vec<usize> = runs
            .iter()
            .filter(|r| r.phase == Phase::Measured)
            .map(|r| r.pair)
            .collect();
        p.sort();
        p.dedup();
        p
    };
    // Start-up cost per tool: CPU of the small runs.
    for r in runs.iter().filter(|r| r.phase == Phase::Startup) {
        if let (Some(u), Some(s)) = (r.cpu_user_s, r.cpu_sys_s) {
            report.startup_cpu_s.insert(r.tool.clone(), u + s);
        }
    }
    let startup = report.startup_cpu_s.clone();

    type Fig = fn(&Run, &BTreeMap<String, f64>) -> Option<f64>;
    let throughput: Fig = |r, _| Some(r.records_per_s).filter(|x| *x > 0.0);
    let cpu: Fig = |r, _| r.cpu_per_record_us;
    let cpu_net: Fig = |r, st| {
        let total = r.cpu_user_s? + r.cpu_sys_s?;
        let s = st.get(&r.tool).copied().unwrap_or(0.0);
        (r.records > 0).then(|| (total - s).max(0.0) * 1e6 / r.records as f64)
    };
    let broker_cpu: Fig = |r, _| r.broker_cpu_per_record_us;
    let host: Fig = |r, _| r.host_busy;
    let p50: Fig = |r, _| r.latency.map(|l| l.p50_ms);
    let p99: Fig = |r, _| r.latency.map(|l| l.p99_ms);
    let p999: Fig = |r, _| r.latency.map(|l| l.p999_ms);
    let avg: Fig = |r, _| r.latency.map(|l| l.avg_ms);

    let figures: &[(Test, &str, Fig)] = &[
        (Test::Producer, "records_per_s", throughput),
        (Test::Producer, "cpu_per_record_us", cpu),
        (Test::Producer, "cpu_per_record_us_excl_startup", cpu_net),
        (Test::Producer, "broker_cpu_per_record_us", broker_cpu),
        (Test::Producer, "host_busy", host),
        (Test::Consumer, "records_per_s", throughput),
        (Test::Consumer, "cpu_per_record_us", cpu),
        (Test::Consumer, "cpu_per_record_us_excl_startup", cpu_net),
        (Test::Latency, "records_per_s", throughput),
        (Test::Latency, "p50_ms", p50),
        (Test::Latency, "p99_ms", p99),
        (Test::Latency, "p999_ms", p999),
        (Test::Latency, "avg_ms", avg),
    ];
    for (test, name, f) in figures {
        for side in [Side::Klab, Side::Peer, Side::Rdkafka] {
            let v: Vec<f64> = pairs
                .iter()
                .filter_map(|p| find(runs, *p, *test, side))
                .filter(|r| r.complete)
                .filter_map(|r| f(r, &startup))
                .collect();
            if let Some(s) = Spread::of(&v) {
                report
                    .summary
                    .entry(summary_key(*test, side))
                    .or_default()
                    .insert(name.to_string(), s);
            }
        }
    }

    let ratio = |test: Test, peer: Side, f: Fig| -> Option<Spread> {
        let v: Vec<f64> = pairs
            .iter()
            .filter_map(|p| {
                let k = find(runs, *p, test, Side::Klab).filter(|r| r.complete)?;
                let q = find(runs, *p, test, peer).filter(|r| r.complete)?;
                let (a, b) = (f(k, &startup)?, f(q, &startup)?);
                (b > 0.0).then_some(a / b)
            })
            .collect();
        Spread::of(&v)
    };
    let mut ratios = BTreeMap::new();
    for (name, test, f) in [
        ("klab_vs_rdkafka_performance", Test::Producer, throughput),
        ("cpu_per_record_vs_rdkafka_performance", Test::Producer, cpu),
        (
            "cpu_per_record_vs_rdkafka_performance_excl_startup",
            Test::Producer,
            cpu_net,
        ),
        (
            "broker_cpu_per_record_vs_rdkafka_performance",
            Test::Producer,
            broker_cpu,
        ),
    ] {
        if let Some(s) = ratio(test, Side::Rdkafka, f) {
            ratios.insert(name.to_string(), s);
        }
    }
    for (name, test, f) in [
        ("klab_vs_producer_performance", Test::Producer, throughput),
        ("cpu_per_record_producer", Test::Producer, cpu),
        (
            "cpu_per_record_producer_excl_startup",
            Test::Producer,
            cpu_net,
        ),
        ("broker_cpu_per_record_producer", Test::Producer, broker_cpu),
        ("klab_vs_consumer_performance", Test::Consumer, throughput),
        ("cpu_per_record_consumer", Test::Consumer, cpu),
        (
            "cpu_per_record_consumer_excl_startup",
            Test::Consumer,
            cpu_net,
        ),
        ("e2e_p50_klab_vs_end_to_end_latency", Test::Latency, p50),
        ("e2e_p99_klab_vs_end_to_end_latency", Test::Latency, p99),
        ("e2e_avg_klab_vs_end_to_end_latency", Test::Latency, avg),
    ] {
        if let Some(s) = ratio(test, Side::Peer, f) {
            ratios.insert(name.to_string(), s);
        }
    }
    // A goal on a ratio's median: `>=` or `<=` a limit.
    let goal = |ratio: &str, op: &str, limit: f64| Goal {
        ratio: ratio.into(),
        target: format!("{op} {limit} (median)"),
        met: ratios.get(ratio).map(|s| match op {
            ">=" => s.median >= limit,
            _ => s.median <= limit,
        }),
    };
    report.goals = vec![
        goal("klab_vs_rdkafka_performance", ">=", 0.95),
        goal("cpu_per_record_vs_rdkafka_performance", "<=", 1.3),
        goal("klab_vs_producer_performance", ">=", 1.2),
        goal("cpu_per_record_producer", "<=", 0.7),
    ];
    report.ratios = ratios;
    let incomplete = report.incomplete().count();
    report.notes = vec![
        "ratios are klab / peer per pair; median, min and max over the pairs (a pair with an incomplete run is left out)".into(),
        "*_vs_rdkafka_performance: klab produce --max against librdkafka's own benchmark (the same librdkafka, C, no signing, no latency bookkeeping), built by scripts/rdkafka-performance; its throughput is delivered records / (last delivery report - first send)".into(),
        "producer throughput: klab's acked records / (last ack - first send), ProducerPerformance's own records/sec; both exclude process start-up".into(),
        "consumer throughput is biased against klab: klab's counts its whole process (start-up, HMAC and sequence checks), ConsumerPerformance's is its own fetch.nMsg.sec (JVM start and group join excluded)".into(),
        "cpu_per_record: user + sys of the whole process (wait4) / records, start-up included; *_excl_startup subtracts the CPU of a 'startup' run of the same tool".into(),
        "latency: klab is open loop at a fixed rate (latency from each record's due time); EndToEndLatency is a closed loop (one record in flight, latency from send to receive, whole milliseconds); both linger.ms=0, acks=all. EndToEndLatency prints its percentiles truncated to whole milliseconds (a printed 1 means 1.0 to 1.999 ms, a 0 cannot be divided by); its average is exact, so compare e2e_avg as well".into(),
    ];
    if incomplete > 0 {
        report.notes.push(format!(
            "{incomplete} measured run(s) were incomplete; see runs[].problem"
        ));
    }
}

/// The start-up goal: one broker from start to ready in at most 5 s
/// (median of the cold starts).
pub fn ready_goal(report: &mut BenchReport) {
    report.goals.push(Goal {
        ratio: "ready_s.1_broker".into(),
        target: "<= 5 s (median)".into(),
        met: report.ready_s.get("1_broker").map(|s| s.median <= 5.0),
    });
}

/// The bench's figures must be finite and positive to mean anything; the
/// tests and the command check this before they trust a report.
pub fn check_report(r: &BenchReport) -> Result<()> {
    for key in [
        "klab_vs_producer_performance",
        "klab_vs_rdkafka_performance",
        "cpu_per_record_producer",
        "cpu_per_record_consumer",
    ] {
        let s = r
            .ratios
            .get(key)
            .ok_or_else(|| anyhow!("the report has no ratio {key} (every pair incomplete?)"))?;
        for v in [s.median, s.min, s.max] {
            if !(v.is_finite() && v > 0.0) {
                bail!("ratio {key} is {v}");
            }
        }
    }
    Ok(())
}
