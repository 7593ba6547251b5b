pub mod cpu;
pub mod hist;
pub mod noise;
pub mod plot;
pub mod progress;
pub mod report;
pub mod table;
pub mod windows;

/// `dst.f += src.f` for each count `f` named: two tallies of one kind
/// added up.
#[macro_export]
macro_rules! add_counts {
    ($dst:ident += $src:ident: $($f:ident),+ $(,)?) => {
        $($dst.$f += $src.$f;)+
    };
}

/// Adds counts index by index (per partition, per second), growing `into`
/// as needed.
pub fn add_each(into: &mut Vec<u64>, from: &[u64]) {
    if into.len() < from.len() {
        into.resize(from.len(), 0);
    }
    for (x, y) in into.iter_mut().zip(from) {
        *x += y;
    }
}

/// Median, min and max of repeated measurements (non-finite values are
/// left out).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Spread {
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }
}
