//! The bench as a table (stdout) and a plot (SVG).

use super::summary::find;
use super::{BenchReport, Side, Test};
use crate::stats::Spread;
use crate::stats::plot::{Bar, Kind, bars_and_latency};
use crate::stats::table::{align_numbers, fmt_ms, fmt_rate, new_table};

fn spread(s: Option<&Spread>, fmt: &dyn Fn(f64) -> String) -> String {
    match s {
        Some(s) if s.n > 1 => format!("{} ({}–{})", fmt(s.median), fmt(s.min), fmt(s.max)),
        Some(s) => fmt(s.median),
        None => "–".into(),
    }
}

fn ratio(x: f64) -> String {
    format!("{x:.2}x")
}

fn us(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0} µs")
    } else {
        format!("{x:.2} µs")
    }
}

/// A table row: name, test, figure, ratio key, number format.
type Row<'a> = (
    &'a str,
    Test,
    &'a str,
    Option<&'a str>,
    &'a dyn Fn(f64) -> String,
);

/// The summary table: one row per figure, median (min–max) per side and
/// the klab / peer ratio.
pub fn table(r: &BenchReport) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "klab bench: {} pair(s), {} B records, acks=all, linger.ms={}, batch.size={}, {} partitions; Kafka {}, {} cores{}\n",
        r.settings.pairs,
        r.settings.record_bytes,
        r.settings.linger_ms,
        r.settings.batch_size,
        r.settings.partitions,
        r.kafka_version,
        r.cores,
        if r.settings.quick { ", --quick" } else { "" }
    ));
    let mut t = new_table(&["figure", "klab", "peer", "klab / peer"]);
    let get = |test: Test, side: Side, fig: &str| {
        r.summary
            .get(&super::summary_key(test, side))
            .and_then(|m| m.get(fig))
    };
    let rows: &[Row] = &[
        (
            "producer records/s (vs ProducerPerformance)",
            Test::Producer,
            "records_per_s",
            Some("klab_vs_producer_performance"),
            &fmt_rate,
        ),
        (
            "producer CPU / record",
            Test::Producer,
            "cpu_per_record_us",
            Some("cpu_per_record_producer"),
            &us,
        ),
        (
            "  … without start-up",
            Test::Producer,
            "cpu_per_record_us_excl_startup",
            Some("cpu_per_record_producer_excl_startup"),
            &us,
        ),
        (
            "  broker CPU / record",
            Test::Producer,
            "broker_cpu_per_record_us",
            Some("broker_cpu_per_record_producer"),
            &us,
        ),
        ("  host CPU busy", Test::Producer, "host_busy", None, &|x| {
            format!("{:.0}%", x * 100.0)
        }),
        (
            "producer records/s (vs rdkafka_performance)",
            Test::Producer,
            "records_per_s",
            Some("klab_vs_rdkafka_performance"),
            &fmt_rate,
        ),
        (
            "producer CPU / record (vs rdkafka_performance)",
            Test::Producer,
            "cpu_per_record_us",
            Some("cpu_per_record_vs_rdkafka_performance"),
            &us,
        ),
        (
            "  … without start-up",
            Test::Producer,
            "cpu_per_record_us_excl_startup",
            Some("cpu_per_record_vs_rdkafka_performance_excl_startup"),
            &us,
        ),
        (
            "  broker CPU / record",
            Test::Producer,
            "broker_cpu_per_record_us",
            Some("broker_cpu_per_record_vs_rdkafka_performance"),
            &us,
        ),
        (
            "consumer records/s (vs ConsumerPerformance)",
            Test::Consumer,
            "records_per_s",
            Some("klab_vs_consumer_performance"),
            &fmt_rate,
        ),
        (
            "consumer CPU / record",
            Test::Consumer,
            "cpu_per_record_us",
            Some("cpu_per_record_consumer"),
            &us,
        ),
        (
            "  … without start-up",
            Test::Consumer,
            "cpu_per_record_us_excl_startup",
            Some("cpu_per_record_consumer_excl_startup"),
            &us,
        ),
        (
            "e2e p50 ms (vs EndToEndLatency)",
            Test::Latency,
            "p50_ms",
            Some("e2e_p50_klab_vs_end_to_end_latency"),
            &fmt_ms,
        ),
        (
            "e2e p99 ms",
            Test::Latency,
            "p99_ms",
            Some("e2e_p99_klab_vs_end_to_end_latency"),
            &fmt_ms,
        ),
        ("e2e p99.9 ms", Test::Latency, "p999_ms", None, &fmt_ms),
        (
            "e2e average ms",
            Test::Latency,
            "avg_ms",
            Some("e2e_avg_klab_vs_end_to_end_latency"),
            &fmt_ms,
        ),
        (
            "e2e records/s (open vs closed loop)",
            Test::Latency,
            "records_per_s",
            None,
            &fmt_rate,
        ),
    ];
    for (name, test, fig, ratio_key, fmt) in rows {
        // The rdkafka_performance rows put its figure in the peer column.
        let peer = if ratio_key.is_some_and(|k| k.contains("rdkafka_performance")) {
            Side::Rdkafka
        } else {
            Side::Peer
        };
        t.add_row(vec![
            name.to_string(),
            spread(get(*test, Side::Klab, fig), fmt),
            spread(get(*test, peer, fig), fmt),
            ratio_key
                .map(|k| spread(r.ratios.get(k), &ratio))
                .unwrap_or_default(),
        ]);
    }
    align_numbers(&mut t);
    out.push_str(&format!("{t}\n"));
    out.push_str("median (min–max) over the pairs; peer = Kafka's own tool (rdkafka_performance in its rows); EndToEndLatency's percentiles are whole ms, truncated\n");
    let ready: Vec<String> = [("1_broker", "1 broker"), ("3_nodes", "3 nodes")]
        .iter()
        .filter_map(|(k, name)| {
            r.ready_s
                .get(*k)
                .map(|s| format!("{name} {}", spread(Some(s), &|x| format!("{x:.1} s"))))
        })
        .collect();
    if !ready.is_empty() {
        out.push_str(&format!(
            "cold start → ready (median (min–max) of {} start(s) each): {}\n",
            r.ready_runs_s.get("1_broker").map_or(0, Vec::len),
            ready.join(", ")
        ));
    }
    if let Some(j) = &r.jit_warm_up {
        out.push_str(&format!(
            "broker JIT warm-up before the counted pairs: {:.0} s at {:.0} records/s ({})\n",
            j.seconds,
            j.rate,
            if j.settled {
                "the JIT settled".to_string()
            } else {
                format!("its {:.0} s limit reached first", j.max_s)
            }
        ));
    }
    for g in &r.goals {
        let state = match g.met {
            Some(true) => "met",
            Some(false) => "NOT met",
            None => "not measured",
        };
        out.push_str(&format!("goal {} {}: {state}\n", g.ratio, g.target));
    }
    let incomplete: Vec<String> = r
        .incomplete()
        .map(|x| {
            format!(
                "pair {} {}: {}",
                x.pair,
                x.tool,
                x.problem.as_deref().unwrap_or("incomplete")
            )
        })
        .collect();
    for line in incomplete {
        out.push_str(&format!("incomplete: {line}\n"));
    }
    out
}

/// Producer throughput per run (bars) with the same pair's end-to-end p99
/// (dots, log axis).
pub fn svg(r: &BenchReport) -> String {
    let mut bars = Vec::new();
    let measured = |test: Test, side: Side, pair: usize| find(&r.runs, pair, test, side);
    for pair in 1..=r.settings.pairs {
        for side in [Side::Klab, Side::Peer, Side::Rdkafka] {
            let Some(p) = measured(Test::Producer, side, pair) else {
                continue;
            };
            let lat = measured(Test::Latency, side, pair)
                .and_then(|l| l.latency)
                .map(|l| l.p99_ms);
            bars.push(Bar {
                label: format!(
                    "{} #{pair}",
                    match side {
                        Side::Klab => "klab",
                        Side::Peer => "ProducerPerf",
                        Side::Rdkafka => "rdkafka_perf",
                    }
                ),
                kind: if side == Side::Klab {
                    Kind::Klab
                } else {
                    Kind::Peer
                },
                value: p.records_per_s,
                latency: lat,
            });
        }
    }
    let title = format!(
        "klab vs Kafka's tools and rdkafka_performance: producer records/s ({} B, acks=all, linger.ms={}, batch.size={})",
        r.settings.record_bytes, r.settings.linger_ms, r.settings.batch_size
    );
    bars_and_latency(&title, "producer records/s", "e2e p99 ms", &bars)
}
