//! A mistake in a lab or fix file, located by file, line and column, and
//! the context every part of a lab file's reading builds one with (the
//! file's own fields in `file`, `[expect]` in `expect`, `[capacity]` in
//! `capacity`).

use crate::error::line_col;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// A mistake in a lab file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabFileError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for LabFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, ":{l}:{c}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for LabFileError {}

pub(super) struct Ctx<'a> {
    pub(super) path: &'a Path,
    pub(super) text: &'a str,
}

impl Ctx<'_> {
    pub(super) fn err_at(
        &self,
        span: Option<std::ops::Range<usize>>,
        message: String,
    ) -> LabFileError {
        let (line, column) = match span {
            Some(s) => {
                let (l, c) = line_col(self.text, s.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        LabFileError {
            file: self.path.to_path_buf(),
            line,
            column,
            message,
        }
    }

    pub(super) fn err<T>(&self, v: &Spanned<T>, message: String) -> LabFileError {
        self.err_at(Some(v.span()), message)
    }

    /// The integer at `v` if it lies in `lo..=hi`, else an error naming
    /// `field` and the allowed range.
    pub(super) fn in_range(
        &self,
        v: &Spanned<i64>,
        field: &str,
        lo: u64,
        hi: u64,
    ) -> Result<u64, LabFileError> {
        let n = *v.get_ref();
        match u64::try_from(n) {
            Ok(u) if (lo..=hi).contains(&u) => Ok(u),
            _ => Err(self.err(
                v,
                format!("{field}: {n} is out of range; expected {lo}..={hi}"),
            )),
        }
    }
}
