//! `klab ui RUN_DIR`: a finished run in the live view's page.

use super::Outcome;
use crate::cli::UiReplayArgs;
use crate::events::Event;
use anyhow::Result;
use std::time::Duration;

pub fn execute(a: &UiReplayArgs) -> Result<Outcome> {
    let events = crate::ui::replay::events_of(&a.run_dir)?;
    let steps = events
        .iter()
        .filter(|e| matches!(e.event, Event::StepEnd { .. }))
        .count();
    let ui = crate::ui::replay(a.addr, &a.run_dir, &events)?;
    crate::errln!(
        "replay of {} ({steps} steps): {} (also /metrics); Ctrl-C stops",
        a.run_dir.display(),
        ui.url()
    );
    while !crate::cancel::interrupted() {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(ui);
    Ok(Outcome::Done)
}
