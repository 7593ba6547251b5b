//! What the commands share (below `cmd/`, so that no command imports
//! another): how a command ended ([`Outcome`]), the live view's start, a
//! lab session opened from the command line and how a run of labs ends
//! ([`session`]), and a capacity lab's run and report ([`capacity`]).

pub mod capacity;
pub mod machine;
pub mod session;

use anyhow::Result;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything ran and completed (`lab check`: the fix passed). Exit 0.
    Done,
    /// A step did not complete; the results are written. Exit 1.
    Incomplete,
    /// A judging command (lab run, lab check, demo, a capacity lab,
    /// tune-bench's goals) found a verdict not as expected, or one it
    /// could not judge; the results are written. Exit 1.
    NotAsExpected,
    /// Ctrl-C or SIGTERM; what was measured so far is written. Exit 130.
    Interrupted,
}

impl Outcome {
    /// Done when `complete`, else Interrupted after Ctrl-C, else Incomplete.
    pub fn of(complete: bool) -> Outcome {
        if complete {
            Outcome::Done
        } else if crate::cancel::interrupted() {
            Outcome::Interrupted
        } else {
            Outcome::Incomplete
        }
    }
}

/// An error that came from Ctrl-C (however wrapped, or raised while the
/// signal was pending) is an [`Outcome::Interrupted`]; any other stays an error.
pub fn interrupted_or(e: anyhow::Error) -> Result<Outcome> {
    if crate::error::is_interrupted(&e) || crate::cancel::interrupted() {
        Ok(Outcome::Interrupted)
    } else {
        Err(e)
    }
}

/// Starts the live view when `--ui` asks for it: call it before any broker
/// starts (a port in use is a usage error) and keep it while the run runs.
/// Unless `--ui-exit`, dropping it leaves the page up for `ui::linger`.
pub fn start_ui(a: &crate::cli::UiArgs) -> Result<Option<crate::ui::Ui>> {
    a.ui.map(|addr| crate::ui::live(addr, "--ui", !a.ui_exit))
        .transpose()
}

impl Outcome {
    /// Its exit code: 0 done, 1 incomplete or not as expected, 130 interrupted.
    pub fn code(self) -> u8 {
        match self {
            Outcome::Done => 0,
            Outcome::Incomplete | Outcome::NotAsExpected => 1,
            Outcome::Interrupted => 130,
        }
    }
}
