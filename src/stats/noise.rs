//! How much a step's figures would move if the same window were measured
//! again: a block bootstrap over its seconds. Each second of the window is a
//! block (its e2e and publish histograms, its count of acknowledgements);
//! drawing as many seconds as the window has, with replacement, and
//! computing the figure again, many times, gives the figure's spread. A
//! window whose seconds all look alike gets a narrow band; one bad second
//! among six widens the p99 band from the good value to the bad one, which
//! is what a verdict needs to know.

use crate::model::{Band, Noise};
use crate::random::splitmix64;
use crate::stats::hist::Recorder;
use hdrhistogram::Histogram;

/// Resamples per band; fixed, with a fixed seed, so a result always gets
/// the same band.
const RESAMPLES: usize = 200;
const SEED: u64 = 0x6b6c_6162;

/// Fewer seconds than this say nothing about the spread (the first and
/// the last second of a window are partial; three full ones are the least).
const MIN_SECONDS: usize = 5;

/// The noise of a window from its publish (by ack time) and e2e (by
/// receive time) recorders; `msgs_per_s` is the window's headline rate.
pub fn of(publish: &Recorder, e2e: &Recorder, msgs_per_s: f64) -> Option<Noise> {
    let e2e_s = e2e.intervals();
    let pub_s = publish.intervals();
    if e2e_s.len() < MIN_SECONDS || pub_s.len() < MIN_SECONDS {
        return None;
    }
    Some(Noise {
        msgs_per_s: rate_band(pub_s, msgs_per_s),
        e2e_p99_ms: p99_band(e2e_s, e2e.percentiles().p99),
        publish_p99_ms: p99_band(pub_s, publish.percentiles().p99),
        seconds: e2e_s.len(),
    })
}

/// The median number of records per full second of a recorder (its
/// first and last second are partial and left out): a rate that one slow
/// or one fast second does not move. None with fewer than three full
/// seconds.
pub fn median_rate(r: &Recorder) -> Option<f64> {
    let s = r.intervals();
    if s.len() < MIN_SECONDS {
        return None;
    }
    let mut counts: Vec<f64> = s[1..s.len() - 1]
        .iter()
        .map(|(_, h)| h.len() as f64)
        .collect();
    counts.sort_by(f64::total_cmp);
    let n = counts.len();
    Some(if n % 2 == 1 {
        counts[n / 2]
    } else {
        (counts[n / 2 - 1] + counts[n / 2]) / 2.0
    })
}

/// Draws `n` indices in 0..n per resample.
fn resamples(n: usize) -> impl Iterator<Item = Vec<usize>> {
    let mut state = SEED;
    (0..RESAMPLES).map(move |_| {
        (0..n)
            .map(|_| {
                state = splitmix64(state);
                (state % n as u64) as usize
            })
            .collect()
    })
}

/// The 5th and 95th percentiles of `v`, widened to hold `point`.
fn band(mut v: Vec<f64>, point: f64) -> Band {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    Band {
        lo: at(0.05).min(point),
        hi: at(0.95).max(point),
    }
}

fn p99_band(seconds: &[(u64, Histogram<u64>)], point: f64) -> Band {
    // Each second as counts over the values any second recorded (a few
    // hundred to a few thousand), so a resample adds short dense vectors
    // instead of whole histograms.
    let mut values: Vec<u64> = seconds
        .iter()
        .flat_map(|(_, h)| {
            h.iter_recorded()
                .map(|v| h.highest_equivalent(v.value_iterated_to()))
        })
        .collect();
    values.sort_unstable();
    values.dedup();
    let dense: Vec<Vec<u64>> = seconds
        .iter()
        .map(|(_, h)| {
            let mut c = vec![0u64; values.len()];
            for v in h.iter_recorded() {
                let at = h.highest_equivalent(v.value_iterated_to());
                if let Ok(i) = values.binary_search(&at) {
                    c[i] += v.count_at_value();
                }
            }
            c
        })
        .collect();
    let mut sum = vec![0u64; values.len()];
    let v = resamples(seconds.len())
        .map(|draw| {
            sum.iter_mut().for_each(|x| *x = 0);
            for i in draw {
                for (s, c) in sum.iter_mut().zip(&dense[i]) {
                    *s += c;
                }
            }
            quantile(&values, &sum, 0.99) as f64 / 1000.0
        })
        .collect();
    band(v, point)
}

/// The value at quantile `q` of counts over sorted values, as
/// hdrhistogram's `value_at_quantile` picks it.
fn quantile(values: &[u64], counts: &[u64], q: f64) -> u64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return 0;
    }
    let want = ((q * total as f64).ceil() as u64).max(1);
    let mut seen = 0;
    for (v, c) in values.iter().zip(counts) {
        seen += c;
        if seen >= want {
            return *v;
        }
    }
    values.last().copied().unwrap_or(0)
}

/// Acknowledgements per second. Seconds of an open loop are not
/// independent: a second that acknowledges late is followed by one that
/// catches up, so resampling single seconds would overstate the noise of
/// the rate. The band instead spans the rates of every run of at least half
/// the window's full seconds (the first and the last second are partial and
/// left out), relative to the full seconds' mean and applied to the
/// headline rate: a lag that is caught up within the window moves it
/// little, a rate that changes over the window moves it a lot.
fn rate_band(seconds: &[(u64, Histogram<u64>)], point: f64) -> Band {
    let full: Vec<f64> = seconds[1..seconds.len() - 1]
        .iter()
        .map(|(_, h)| h.len() as f64)
        .collect();
    let n = full.len();
    let mean = full.iter().sum::<f64>() / n as f64;
    if mean <= 0.0 {
        return Band {
            lo: point,
            hi: point,
        };
    }
    let mut rates = Vec::new();
    for len in n.div_ceil(2)..=n {
        for start in 0..=n - len {
            let m = full[start..start + len].iter().sum::<f64>() / len as f64;
            rates.push(point * m / mean);
        }
    }
    band(rates, point)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// `per_second[i]` records of latency `ms[i]` in second i.
    fn recorder(per_second: &[u64], ms: &[u64]) -> Recorder {
        let mut r = Recorder::default();
        for (i, (n, l)) in per_second.iter().zip(ms).enumerate() {
            for _ in 0..*n {
                r.record(l * 1000, Duration::from_secs(i as u64));
            }
        }
        r
    }

    #[test]
    fn steady_seconds_give_a_narrow_band() {
        let r = recorder(&[1000; 8], &[10; 8]);
        let n = of(&r, &r, 1000.0).unwrap();
        assert_eq!(n.seconds, 8);
        assert!(n.e2e_p99_ms.width_ratio() < 1.01, "{n:?}");
        assert!(n.msgs_per_s.width_ratio() < 1.01, "{n:?}");
        assert!(n.e2e_p99_ms.contains(r.percentiles().p99));
    }

    #[test]
    fn one_bad_second_among_seven_spans_good_to_bad() {
        // The per-second p99 of a wobbly reference seen on 2 cores.
        let r = recorder(&[1000; 7], &[12, 276, 69, 15, 8, 8, 7]);
        let point = r.percentiles().p99;
        let n = of(&r, &r, 1000.0).unwrap();
        assert!(n.e2e_p99_ms.contains(point));
        assert!(n.e2e_p99_ms.lo < 80.0, "{n:?}");
        assert!(n.e2e_p99_ms.hi > 250.0, "{n:?}");
    }

    #[test]
    fn a_rate_that_falls_widens_the_band_more_than_a_lag_caught_up() {
        let steady = recorder(&[1000; 8], &[5; 8]);
        let caught_up = recorder(&[1000, 1000, 600, 1400, 1000, 800, 1200, 1000], &[5; 8]);
        let falling = recorder(&[900, 1000, 1000, 1000, 400, 300, 200, 100], &[5; 8]);
        let band = |r: &Recorder| of(r, r, 1000.0).unwrap().msgs_per_s;
        assert!(band(&steady).width_ratio() < 1.01, "{:?}", band(&steady));
        assert!(
            band(&caught_up).width_ratio() < 1.2,
            "{:?}",
            band(&caught_up)
        );
        assert!(band(&falling).width_ratio() > 1.5, "{:?}", band(&falling));
        assert!(band(&falling).contains(1000.0));
    }

    #[test]
    fn the_dense_quantile_agrees_with_hdrhistogram() {
        let r = recorder(&[300, 500, 200, 100, 100], &[3, 40, 7, 5, 5]);
        let whole = r.percentiles().p99;
        // The band of a resample that is the whole window holds its p99.
        let n = of(&r, &r, 1.0).unwrap();
        assert!(n.e2e_p99_ms.contains(whole), "{n:?} {whole}");
        let mut h = crate::stats::hist::new_histogram();
        for (_, x) in r.intervals() {
            h.add(x).unwrap();
        }
        let values: Vec<u64> = h
            .iter_recorded()
            .map(|v| h.highest_equivalent(v.value_iterated_to()))
            .collect();
        let counts: Vec<u64> = h.iter_recorded().map(|v| v.count_at_value()).collect();
        for q in [0.5, 0.9, 0.99, 0.999] {
            assert_eq!(
                quantile(&values, &counts, q),
                h.value_at_quantile(q),
                "q {q}"
            );
        }
    }

    #[test]
    fn the_median_rate_ignores_one_slow_second_and_the_partial_edges() {
        let r = recorder(&[10, 1000, 1000, 100, 1000, 1000, 20], &[5; 7]);
        assert_eq!(median_rate(&r), Some(1000.0));
        assert_eq!(median_rate(&recorder(&[5, 5, 5], &[1; 3])), None);
    }

    #[test]
    fn too_short_a_window_has_no_band() {
        let r = recorder(&[100, 100, 100, 100], &[5, 5, 5, 5]);
        assert!(of(&r, &r, 100.0).is_none());
    }

    #[test]
    fn the_same_window_always_gets_the_same_band() {
        let r = recorder(&[1000; 7], &[12, 276, 69, 15, 8, 8, 7]);
        assert_eq!(of(&r, &r, 1.0), of(&r, &r, 1.0));
    }

    #[test]
    fn appended_runs_keep_their_seconds_apart() {
        let mut a = recorder(&[10, 10, 10], &[1, 1, 1]);
        let b = recorder(&[10, 10], &[9, 9]);
        a.append(&b);
        assert_eq!(a.intervals().len(), 5);
        assert_eq!(a.len(), 50);
    }
}
