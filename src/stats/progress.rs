//! Progress bars (indicatif) on stderr; invisible when stderr is not a
//! terminal or when the caller asks for quiet.

use crate::model::Workload;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::Duration;

/// A producer's progress, as the progress bar shows it (the producer
/// fills it in a few times a second).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProducerProgress {
    pub sent: u64,
    pub acked: u64,
    pub elapsed: Duration,
    /// Expected total when known (rate mode, or a message count).
    pub total: Option<u64>,
    pub measuring: bool,
}

pub struct StepBar {
    bar: Option<ProgressBar>,
    message_bytes: usize,
}

impl StepBar {
    pub fn new(show: bool, title: &str, w: &Workload) -> StepBar {
        if !show {
            return StepBar {
                bar: None,
                message_bytes: w.message_bytes,
            };
        }
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        let style =
            ProgressStyle::with_template("{prefix:>12.bold} [{bar:30}] {pos}/{len} sent  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(title.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        StepBar {
            bar: Some(bar),
            message_bytes: w.message_bytes,
        }
    }

    pub fn update(&self, p: &ProducerProgress, consumed: u64) {
        let Some(bar) = &self.bar else { return };
        if let Some(t) = p.total {
            bar.set_length(t);
        } else {
            bar.set_length(p.sent.max(1));
        }
        bar.set_position(p.sent);
        let secs = p.elapsed.as_secs_f64().max(1e-3);
        let phase = if p.measuring { "measuring" } else { "warm-up" };
        bar.set_message(format!(
            "{phase}, {} acked, {} verified, {:.0} rec/s, {:.1} MB/s",
            p.acked,
            consumed,
            p.acked as f64 / secs,
            p.acked as f64 * self.message_bytes as f64 / secs / 1e6
        ));
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Runs `work` under a spinner (when `show`), for waits such as a broker
/// start; the spinner is cleared when it returns.
pub fn with_spinner<T>(show: bool, msg: &str, work: impl FnOnce() -> T) -> T {
    if !show {
        return work();
    }
    let sp = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    sp.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    sp.set_message(msg.to_string());
    sp.enable_steady_tick(Duration::from_millis(120));
    let out = work();
    sp.finish_and_clear();
    out
}
