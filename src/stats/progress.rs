//! Progress on stderr: bars and spinners (indicatif) on a terminal, plain
//! lines when stderr goes to a file or a pipe (`| tee`, CI logs), nothing
//! with `--quiet` (then the lines go to the log at info level).

use crate::model::Workload;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};
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
    /// Records due by now (open loop: by the schedule; at max: sent).
    pub due: u64,
    /// Publish latency p99 (ms) of the last full second, when records were
    /// acknowledged in it.
    pub publish_p99_ms: Option<f64>,
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Progress {
    /// Nothing on stderr (`--quiet`); progress lines go to the log.
    #[default]
    Quiet,
    /// Plain lines: stderr is not a terminal.
    Lines,
    /// Bars and spinners on a terminal.
    Bars,
}

impl Progress {
    /// Bars on a terminal, lines elsewhere, nothing when `quiet`.
    pub fn detect(quiet: bool) -> Progress {
        if quiet {
            Progress::Quiet
        } else if std::io::stderr().is_terminal() {
            Progress::Bars
        } else {
            Progress::Lines
        }
    }

    /// A progress line: on stderr unless quiet, else in the log.
    pub fn say(self, msg: &str) {
        match self {
            Progress::Quiet => tracing::info!("{msg}"),
            _ => crate::errln!("{msg}"),
        }
    }
}

/// How often a step prints a line without a terminal.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// A step's progress: a bar on a terminal; without one, a line when the
/// measured window starts and one every few seconds.
pub struct StepBar {
    mode: Progress,
    title: String,
    bar: Option<ProgressBar>,
    message_bytes: usize,
    /// Without a terminal: when the last line was printed, and whether the
    /// window had started then.
    last_line: std::cell::Cell<Option<(Instant, bool)>>,
}

impl StepBar {
    pub fn new(mode: Progress, title: &str, w: &Workload) -> StepBar {
        let bar = (mode == Progress::Bars).then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{prefix:>12.bold} [{bar:30}] {pos}/{len} sent  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(title.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        StepBar {
            mode,
            title: title.to_string(),
            bar,
            message_bytes: w.message_bytes,
            last_line: std::cell::Cell::new(None),
        }
    }

    fn message(&self, p: &ProducerProgress, consumed: u64) -> String {
        let secs = p.elapsed.as_secs_f64().max(1e-3);
        let phase = if p.measuring { "measuring" } else { "warm-up" };
        format!(
            "{phase}, {} acked, {} verified, {:.0} rec/s, {:.1} MB/s",
            p.acked,
            consumed,
            p.acked as f64 / secs,
            p.acked as f64 * self.message_bytes as f64 / secs / 1e6
        )
    }

    pub fn update(&self, p: &ProducerProgress, consumed: u64) {
        match (&self.bar, self.mode) {
            (Some(bar), _) => {
                if let Some(t) = p.total {
                    bar.set_length(t);
                } else {
                    bar.set_length(p.sent.max(1));
                }
                bar.set_position(p.sent);
                bar.set_message(self.message(p, consumed));
            }
            (None, Progress::Lines) => {
                let due = match self.last_line.get() {
                    None => true,
                    Some((at, measuring)) => measuring != p.measuring || at.elapsed() >= LINE_EVERY,
                };
                if due {
                    self.last_line.set(Some((Instant::now(), p.measuring)));
                    crate::errln!("  {}: {}", self.title, self.message(p, consumed));
                }
            }
            _ => {}
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Runs `work` under a spinner (a line without a terminal), for waits such
/// as a broker start; the spinner is cleared when it returns.
pub fn with_spinner<T>(mode: Progress, msg: &str, work: impl FnOnce() -> T) -> T {
    match mode {
        Progress::Quiet => return work(),
        Progress::Lines => {
            crate::errln!("{msg} ...");
            return work();
        }
        Progress::Bars => {}
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
