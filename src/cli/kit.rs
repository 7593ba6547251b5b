//! The instructor's kit on the command line: `klab doctor`, `klab class`,
//! and the student's name a run's bundle carries.

use super::{KafkaArgs, LabsDirArgs, parse_results};
use clap::Args;
use std::path::PathBuf;

/// `klab doctor`: is this machine ready for a class?
#[derive(Args, Debug)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub dir: LabsDirArgs,
    /// Where the class's runs will write their folders (free disk is
    /// checked there).
    #[arg(long, value_name = "DIR", default_value = "results", value_parser = parse_results)]
    pub results: PathBuf,
    /// The checks as JSON: on stdout (`--json`) or into FILE (`--json=FILE`).
    #[arg(long, value_name = "FILE", num_args = 0..=1, require_equals = true, default_missing_value = "-")]
    pub json: Option<PathBuf>,
}

/// `klab class DIR`: a folder of handed-in bundles as a class table.
#[derive(Args, Debug)]
pub struct ClassArgs {
    /// The folder the students hand their `bundle.json` files in to (every
    /// `*.json` under it is read, any name, any subfolder).
    pub dir: PathBuf,
    /// The class table as JSON: on stdout instead of the text (`--json`),
    /// or also into FILE (`--json=FILE`).
    #[arg(long, value_name = "FILE", num_args = 0..=1, require_equals = true, default_missing_value = "-")]
    pub json: Option<PathBuf>,
    /// Also write the class table as one self-contained HTML page to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

/// Who hands in a run's `bundle.json` (`klab lab run`, `lab check`, `demo`).
#[derive(Args, Debug, Clone, Default)]
pub struct HandInArgs {
    /// The name the class table shows for this run's bundle.json
    /// (default: user@host).
    #[arg(long, value_name = "NAME", env = "KLAB_STUDENT", value_parser = parse_student)]
    pub student: Option<String>,
}

/// `--student NAME` (or `KLAB_STUDENT`): 1 to 64 characters, no control
/// characters, trimmed.
fn parse_student(s: &str) -> Result<String, String> {
    crate::lab::bundle::check_student(s)
}
