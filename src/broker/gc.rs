//! The JVM's garbage-collection pauses, read from the broker's GC log
//! (`-Xlog:gc*` with wall-clock time, see `render::jvm_flags`), so a result
//! says how often and how long the broker stopped during its window.

use crate::model::GcSummary;

/// Milliseconds since the Unix epoch of a GC log's time decoration, e.g.
/// `2026-12-01T22:23:55.153+0000` (the offset may be any `±hhmm`).
fn parse_time(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 28 || b[4] != b'-' || b[10] != b'T' || b[19] != b'.' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec, ms) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
    let sign = match b[23] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let offset_min = sign * (num(24..26)? * 60 + num(26..28)?);
    // Days from the civil date (the inverse of `stats::report::rfc3339`).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    u64::try_from(secs * 1000 + ms).ok()
}

/// One pause line: its end time (Unix ms) and length (ms).
fn pause(line: &str) -> Option<(u64, f64)> {
    if !line.contains(" Pause ") || !line.contains("[gc ") && !line.contains("[gc]") {
        return None;
    }
    let time = parse_time(line.strip_prefix('[')?)?;
    let ms = line.trim_end().strip_suffix("ms")?;
    let len: f64 = ms.rsplit(' ').next()?.parse().ok()?;
    Some((time, len))
}

/// The pauses of `log` that ended between `from_ms` and `to_ms` (Unix ms),
/// and the heap the JVM reported at its start.
pub fn summary(log: &str, from_ms: u64, to_ms: u64) -> GcSummary {
    let pauses: Vec<f64> = log
        .lines()
        .filter_map(pause)
        .filter(|(t, _)| (from_ms..=to_ms).contains(t))
        .map(|(_, ms)| ms)
        .collect();
    // A fold from +0.0: an empty sum of floats is -0.0, printed "-0.00".
    let total = pauses.iter().fold(0.0, |a, b| a + b);
    let heap = log
        .lines()
        .find_map(|l| l.split("Heap Max Capacity:").nth(1))
        .map(|v| v.trim().to_string());
    let max = pauses.iter().copied().fold(0.0, f64::max);
    GcSummary::new(pauses.len() as u64, total, max, heap)
}

/// The pauses of several brokers together (the longest is the worst).
pub fn combine(nodes: &[GcSummary]) -> Option<GcSummary> {
    let first = nodes.first()?;
    let pauses: u64 = nodes.iter().map(|g| g.pauses).sum();
    let total_ms = nodes.iter().fold(0.0, |a, g| a + g.total_ms);
    let max_ms = nodes.iter().map(|g| g.max_ms).fold(0.0, f64::max);
    Some(GcSummary::new(pauses, total_ms, max_ms, first.heap.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
[2026-12-01T22:23:53.310+0000][0.004s][info][gc,init] Heap Max Capacity: 1G
[2026-12-01T22:23:55.123+0000][1.811s][info][gc,start    ] GC(0) Pause Young (Normal) (G1 Evacuation Pause)
[2026-12-01T22:23:55.153+0000][1.840s][info][gc          ] GC(0) Pause Young (Normal) (G1 Evacuation Pause) 51M->8M(1024M) 29.552ms
[2026-12-01T22:23:55.512+0000][2.200s][info][gc          ] GC(2) Pause Remark 10M->10M(1024M) 5.418ms
[2026-12-01T22:23:59.108+0000][5.796s][info][gc          ] GC(6) Pause Young (Normal) (G1 Evacuation Pause) 210M->169M(1024M) 21.761ms
[2026-12-01T22:23:59.200+0000][5.900s][info][gc,phases   ] GC(6)   Other: 0.4ms
";

    #[test]
    fn times_parse_with_their_offset() {
        assert_eq!(parse_time("1970-01-01T00:00:01.250+0000"), Some(1250));
        assert_eq!(parse_time("1970-01-01T01:00:01.250+0100"), Some(1250));
        assert_eq!(
            parse_time("2026-12-01T22:23:55.153+0000"),
            Some(1_796_163_835_153)
        );
        assert_eq!(parse_time("not a time"), None);
    }

    #[test]
    fn pauses_in_the_window_are_counted() {
        let all = summary(LOG, 0, u64::MAX);
        assert_eq!(all.pauses, 3);
        assert!((all.max_ms - 29.552).abs() < 1e-9);
        assert!((all.total_ms - (29.552 + 5.418 + 21.761)).abs() < 1e-9);
        assert_eq!(all.heap.as_deref(), Some("1G"));
        let from = parse_time("2026-12-01T22:23:55.200+0000").unwrap();
        let late = summary(LOG, from, u64::MAX);
        assert_eq!(late.pauses, 2);
        assert!((late.mean_ms - (5.418 + 21.761) / 2.0).abs() < 1e-9);
        assert_eq!(summary("", 0, 1).pauses, 0);
        // No pause is 0 ms, not -0 ms ("-0.00 ms in all" on the GC line).
        let none = summary(LOG, 0, 1);
        assert!(none.total_ms.is_sign_positive(), "{}", none.total_ms);
        assert!(
            combine(&[none.clone(), none])
                .unwrap()
                .total_ms
                .is_sign_positive()
        );
    }
}
