//! Results as text tables.

use crate::model::{Percentiles, StepResult};
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table};

/// How wide a table written to a file may be before cells wrap.
const FILE_WIDTH: u16 = 200;

/// A table for stdout: its cells wrap to the terminal's width, or to
/// [`FILE_WIDTH`] when stdout is not a terminal (or one that reports no
/// usable width), never to one character per cell.
pub fn new_table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.iter().map(Cell::new));
    let width = t.width().filter(|w| *w >= 80).unwrap_or(FILE_WIDTH);
    t.set_width(width);
    t
}

/// `t` as text for a file: as wide as [`FILE_WIDTH`], whatever the terminal.
pub fn file_text(t: &mut Table) -> String {
    t.set_width(FILE_WIDTH);
    t.to_string()
}

/// Right-aligns every column but the first.
pub fn align_numbers(t: &mut Table) {
    let n = t.column_count();
    for i in 1..n {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
}

pub fn fmt_rate(x: f64) -> String {
    if x >= 100.0 {
        group(x.round() as u64)
    } else {
        format!("{x:.1}")
    }
}

/// Two significant digits (three from 100 up): 0.95, 1.5, 15, 710.
pub fn fmt_ms(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// 1234567 → "1,234,567".
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn latency_row(name: &str, p: &Percentiles) -> Vec<String> {
    vec![
        name.to_string(),
        fmt_ms(p.p50),
        fmt_ms(p.p90),
        fmt_ms(p.p99),
        fmt_ms(p.p999),
        fmt_ms(p.max),
    ]
}

/// A consumer event and what the group did after it: `leave consumer 2
/// at 5.0s; rebalance 5.0-5.8s, 1 partition moved; unread: p2 1.4s, p0
/// 0.9s; 2 duplicates`.
fn consumer_event_line(f: &crate::model::FaultRecord) -> String {
    let who = f
        .consumer
        .map_or_else(|| f.target.clone(), |c| format!("consumer {c}"));
    let mut line = format!("{} {who} at {:.1}s", f.action.as_str(), f.at_s);
    if let Some(b) = f.back_at_s {
        line.push_str(&format!("; polling again at {b:.1}s"));
    }
    if let Some(g) = &f.rebalance {
        match (g.began_s, g.ended_s) {
            (None, _) => line.push_str("; no rebalance"),
            (Some(a), Some(b)) => line.push_str(&format!("; rebalance {a:.1}-{b:.1}s")),
            (Some(a), None) => line.push_str(&format!(
                "; rebalance from {a:.1}s, not every partition held again after it"
            )),
        }
        let s = if g.partitions_moved == 1 { "" } else { "s" };
        line.push_str(&format!(", {} partition{s} moved", g.partitions_moved));
        if !g.paused.is_empty() {
            const SHOWN: usize = 4;
            let mut parts: Vec<String> = g
                .paused
                .iter()
                .take(SHOWN)
                .map(|p| format!("p{} {:.1}s", p.partition, p.seconds))
                .collect();
            if g.paused.len() > SHOWN {
                parts.push(format!("{} more", g.paused.len() - SHOWN));
            }
            line.push_str(&format!("; unread: {}", parts.join(", ")));
        }
        line.push_str(&format!("; {} duplicate(s)", g.duplicates));
    }
    if let Some(e) = &f.error {
        line.push_str(&format!(" (error: {e})"));
    }
    line
}

/// What the faults of a step did: one line per fault (when it fired, when
/// its partitions had new leaders, when the broker was back, when the
/// rate recovered) and the window table (before, during and after each
/// fault: rate, latency, failed, duplicated and lost). Empty without faults.
pub fn fault_text(r: &StepResult) -> String {
    let mut out = String::new();
    for (n, idx) in crate::stats::windows::by_fault(&r.faults) {
        let recs: Vec<&crate::model::FaultRecord> = idx.iter().map(|i| &r.faults[*i]).collect();
        let f = recs[0];
        if f.action.is_consumer() {
            out.push_str(&format!("fault {n}: {}\n", consumer_event_line(f)));
            continue;
        }
        let brokers: Vec<String> = recs.iter().map(|f| f.broker.to_string()).collect();
        let mut line = format!(
            "fault {n}: {} broker{} {} ({}) at {:.1}s",
            f.action.as_str(),
            if recs.len() > 1 { "s" } else { "" },
            brokers.join(", "),
            f.target,
            f.at_s
        );
        if let Some(m) = recs
            .iter()
            .filter_map(|f| f.leader_moved_s)
            .reduce(f64::max)
        {
            line.push_str(&format!("; its partitions had new leaders after {m:.1}s"));
        }
        if let Some(b) = recs.iter().filter_map(|f| f.back_at_s).reduce(f64::max) {
            line.push_str(&format!("; back at {b:.1}s"));
        }
        match f.recovery_s {
            Some(x) => line.push_str(&format!("; rate recovered after {x:.0}s")),
            None => line.push_str("; the rate did not recover in the window"),
        }
        for e in recs.iter().filter_map(|f| f.error.as_ref()) {
            line.push_str(&format!(" (error: {e})"));
        }
        out.push_str(&line);
        out.push('\n');
    }
    if !r.windows.is_empty() {
        let mut t = new_table(&[
            "window",
            "seconds",
            "records/s",
            "e2e p50",
            "e2e p99",
            "e2e max",
            "publish p99",
            "failed",
            "duplicated",
            "lost",
        ]);
        for w in &r.windows {
            t.add_row(vec![
                format!("{} fault {}", w.name, w.fault),
                format!("{:.1}–{:.1}", w.from_s, w.to_s),
                fmt_rate(w.records_per_s),
                fmt_ms(w.e2e_p50_ms),
                fmt_ms(w.e2e_p99_ms),
                fmt_ms(w.e2e_max_ms),
                fmt_ms(w.publish_p99_ms),
                group(w.failed),
                group(w.duplicated),
                group(w.lost),
            ]);
        }
        align_numbers(&mut t);
        out.push_str(&format!("{t}\n"));
    }
    out.push_str(&cluster_text(r));
    out.push_str(&group_text(r));
    for u in &r.unavailable {
        out.push_str(&format!("not measured on this target: {u}\n"));
    }
    if let Some(lc) = &r.log_check {
        out.push_str(&format!(
            "read back from the topic's start after the faults: {} records, {} acknowledged records missing{} (the live consumer missed {}){}\n",
            group(lc.read),
            group(lc.lost),
            if lc.duplicated > 0 {
                format!(", {} twice", group(lc.duplicated))
            } else {
                String::new()
            },
            group(lc.lost_live),
            if lc.complete {
                ""
            } else {
                "; not every producer's end-of-run marker was found"
            }
        ));
    }
    out
}

/// What the cluster did (leaders and ISRs, from the brokers' metadata),
/// one line per change, and how many records only a leader held when it
/// acknowledged them.
fn cluster_text(r: &StepResult) -> String {
    let mut out = String::new();
    const SHOWN: usize = 12;
    for c in r.cluster.iter().take(SHOWN) {
        let isr: Vec<String> = c.isr.iter().map(i32::to_string).collect();
        let leader = if c.leader < 0 {
            "none".to_string()
        } else {
            c.leader.to_string()
        };
        out.push_str(&format!(
            "cluster at {:.1}s: partition {} {}: leader {leader}, isr [{}]\n",
            c.at_s,
            c.partition,
            c.what,
            isr.join(",")
        ));
    }
    if r.cluster.len() > SHOWN {
        out.push_str(&format!(
            "cluster: {} more changes in the step's JSON (`cluster`)\n",
            r.cluster.len() - SHOWN
        ));
    }
    if let Some(n) = r.acked_alone.filter(|n| *n > 0) {
        out.push_str(&format!(
            "acknowledged while the ISR was the leader alone: {} records (one copy when acknowledged)\n",
            group(n)
        ));
    }
    out
}

/// A consumer group's rebalance callbacks, one line per member and
/// moment (`group at -1.0s: consumer 2 assigned p2`), the first 12.
fn group_text(r: &StepResult) -> String {
    const SHOWN: usize = 12;
    let mut out = String::new();
    for e in r.rebalances.iter().take(SHOWN) {
        let parts: Vec<String> = e.partitions.iter().map(|p| format!("p{p}")).collect();
        out.push_str(&format!(
            "group at {:.1}s: consumer {} {} {}{}\n",
            e.at_s,
            e.consumer,
            e.what,
            parts.join(","),
            e.error
                .as_ref()
                .map(|x| format!(" ({x})"))
                .unwrap_or_default()
        ));
    }
    if r.rebalances.len() > SHOWN {
        out.push_str(&format!(
            "group: {} more rebalance callbacks in the step's JSON (`rebalances`)\n",
            r.rebalances.len() - SHOWN
        ));
    }
    out
}

/// Keyed runs: each partition's share of the acknowledged records on one
/// line (`partitions: p0 48%, p1 9%, ...`), the first 16 of them.
fn partition_shares(r: &StepResult) -> Option<String> {
    const SHOWN: usize = 16;
    let total: u64 = r.acked_per_partition.iter().sum();
    if total == 0 {
        return None;
    }
    let shares: Vec<String> = r
        .acked_per_partition
        .iter()
        .take(SHOWN)
        .enumerate()
        .map(|(p, n)| format!("p{p} {:.0}%", *n as f64 * 100.0 / total as f64))
        .collect();
    let more = match r.acked_per_partition.len().saturating_sub(SHOWN) {
        0 => String::new(),
        n => format!(", … {n} more in the JSON (`acked_per_partition`)"),
    };
    let hottest = r.acked_per_partition.iter().max().copied().unwrap_or(0);
    let even = total as f64 / r.acked_per_partition.len().max(1) as f64;
    Some(format!(
        "partitions (share of the acknowledged records, by key): {}{more}; the busiest has {:.1}x an even share\n",
        shares.join(", "),
        hottest as f64 / even
    ))
}

/// The table `klab run` prints.
pub fn step_table(r: &StepResult) -> String {
    let mut out = String::new();
    let status = if r.complete {
        "complete".to_string()
    } else {
        format!("INCOMPLETE: {}", r.reason.as_deref().unwrap_or("unknown"))
    };
    out.push_str(&format!(
        "{} on {} ({}), Kafka {}, {} cores — {}\n",
        r.workload.describe(),
        r.broker.bootstrap,
        r.broker.target,
        r.environment.kafka_version.as_deref().unwrap_or("?"),
        r.environment.cores,
        status
    ));
    let mut t = new_table(&[
        "throughput",
        "records/s",
        "MB/s",
        "target/s",
        "offered/s",
        "window s",
    ]);
    t.add_row(vec![
        "acknowledged".to_string(),
        fmt_rate(r.throughput.msgs_per_s),
        format!("{:.1}", r.throughput.mb_per_s),
        r.target_rate.map(fmt_rate).unwrap_or_else(|| "max".into()),
        fmt_rate(r.achieved_rate),
        format!("{:.1}", r.measured_seconds),
    ]);
    align_numbers(&mut t);
    out.push_str(&format!("{t}\n"));
    let mut t = new_table(&["latency (ms)", "p50", "p90", "p99", "p99.9", "max"]);
    t.add_row(latency_row("publish (due → ack)", &r.publish_latency_ms));
    t.add_row(latency_row("end-to-end (due → read)", &r.e2e_latency_ms));
    align_numbers(&mut t);
    out.push_str(&format!("{t}\n"));
    let mut t = new_table(&[
        "records",
        "produced",
        "acked",
        "failed",
        "consumed",
        "lost",
        "duplicated",
        "reordered",
        "corrupt",
        "foreign",
    ]);
    t.add_row(vec![
        format!("(warm-up {})", group(r.warmup_records)),
        group(r.produced),
        group(r.acked),
        group(r.failed),
        group(r.consumed),
        group(r.lost),
        group(r.duplicated),
        group(r.reordered),
        group(r.corrupt),
        group(r.foreign),
    ]);
    align_numbers(&mut t);
    out.push_str(&format!("{t}\n"));
    if let Some(max) = r.consumer_lag.iter().max() {
        let shown: Vec<String> = r.consumer_lag.iter().take(30).map(|n| group(*n)).collect();
        let more = if r.consumer_lag.len() > 30 {
            " …"
        } else {
            ""
        };
        out.push_str(&format!(
            "consumer lag (records due, not yet read) at the end of each second, {} consumer(s) on {} partition(s): {}{more} (max {})\n",
            r.workload.consumers,
            r.workload.partitions,
            shown.join(" "),
            group(*max)
        ));
    }
    if let Some(line) = partition_shares(r) {
        out.push_str(&line);
    }
    if r.unsent > 0 {
        out.push_str(&format!(
            "saturated: {} records due in the window were never sent (the broker or client could not keep up with the target rate)\n",
            group(r.unsent)
        ));
    }
    out.push_str(&fault_text(r));
    if let Some(g) = &r.gc {
        out.push_str(&format!(
            "broker GC in the window: {} pause(s), {} ms in all, max {} ms, mean {} ms (heap {})\n",
            g.pauses,
            fmt_ms(g.total_ms),
            fmt_ms(g.max_ms),
            fmt_ms(g.mean_ms),
            g.heap.as_deref().unwrap_or("?")
        ));
    }
    if let Some(c) = &r.cpu {
        out.push_str(&format!("{}\n", c.describe()));
    }
    if !r.broker.requested.is_empty() {
        out.push_str(&format!("broker settings: {}\n", r.broker.requested));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1234567), "1,234,567");
        assert_eq!(fmt_rate(12.34), "12.3");
        assert_eq!(fmt_ms(0.1234), "0.12");
        assert_eq!(fmt_ms(1234.6), "1235");
    }

    #[test]
    fn step_table_shows_the_counts() {
        let r = StepResult {
            produced: 1000,
            acked: 1000,
            consumed: 1000,
            complete: true,
            ..Default::default()
        };
        let t = step_table(&r);
        assert!(t.contains("1,000"));
        assert!(t.contains("complete"));
        assert!(t.contains("end-to-end"));
    }

    #[test]
    fn a_keyed_run_shows_its_hot_partition_on_one_line() {
        let mut r = StepResult {
            acked_per_partition: vec![480, 90, 430],
            ..Default::default()
        };
        let t = step_table(&r);
        assert!(
            t.contains("partitions (share of the acknowledged records, by key): p0 48%, p1 9%, p2 43%; the busiest has 1.4x an even share"),
            "{t}"
        );
        r.acked_per_partition = vec![1; 20];
        assert!(step_table(&r).contains("p15 5%, … 4 more in the JSON"));
        r.acked_per_partition.clear();
        assert!(!step_table(&r).contains("partitions ("));
    }

    #[test]
    fn a_group_shows_each_rebalance_callback() {
        let mut r = StepResult::default();
        assert!(!step_table(&r).contains("group at"));
        r.rebalances = (0..14)
            .map(|i| crate::model::RebalanceEvent {
                at_s: -1.0 + f64::from(i),
                consumer: 2,
                what: "assigned".into(),
                partitions: vec![1, 2],
                error: None,
            })
            .collect();
        let t = step_table(&r);
        assert!(
            t.contains("group at -1.0s: consumer 2 assigned p1,p2\n"),
            "{t}"
        );
        assert!(t.contains("group: 2 more rebalance callbacks"), "{t}");
    }
}
