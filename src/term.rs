//! Writing to stdout and stderr without dying of a closed pipe.
//!
//! `println!` panics when the reader has gone (`klab knobs | head -2`).
//! klab's own output goes through [`outln!`] and [`errln!`] instead: a write
//! to a closed stream is dropped, and the command goes on to its normal end
//! (a measurement still saves its results), then exits with its usual code.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);

fn write(closed: &AtomicBool, w: &mut dyn Write, args: std::fmt::Arguments<'_>) {
    if closed.load(Ordering::Relaxed) {
        return;
    }
    if w.write_fmt(args).and_then(|()| w.flush()).is_err() {
        // A closed pipe (EPIPE) or a full disk: nothing more goes there.
        closed.store(true, Ordering::Relaxed);
    }
}

/// Writes to stdout; after a failed write (a closed pipe), nothing more.
pub fn out(args: std::fmt::Arguments<'_>) {
    write(&STDOUT_CLOSED, &mut std::io::stdout().lock(), args);
}

/// Writes to stderr; after a failed write, nothing more.
pub fn err(args: std::fmt::Arguments<'_>) {
    write(&STDERR_CLOSED, &mut std::io::stderr().lock(), args);
}

/// `println!` that survives a closed stdout.
#[macro_export]
macro_rules! outln {
    () => { $crate::term::out(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::term::out(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` that survives a closed stdout.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::term::out(format_args!($($arg)*)) };
}

/// `eprintln!` that survives a closed stderr.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => { $crate::term::err(format_args!("{}\n", format_args!($($arg)*))) };
}
