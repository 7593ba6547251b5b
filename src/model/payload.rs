//! The kinds of record body a workload can send.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What fills a record's body in front of klab's header and tag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Payload {
    /// The same printable filler in every record of one producer: the
    /// cheapest to sign, but compressed batches of it shrink to almost
    /// nothing, so it says little about compression.
    #[default]
    Fixed,
    /// A different JSON-like event log line in every record (repeated keys,
    /// varying values), which compresses as such logs do: see
    /// `load::payload::json_body`.
    Json,
}

impl Payload {
    pub fn as_str(self) -> &'static str {
        match self {
            Payload::Fixed => "fixed",
            Payload::Json => "json",
        }
    }
}

impl std::str::FromStr for Payload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "fixed" => Ok(Payload::Fixed),
            "json" => Ok(Payload::Json),
            other => Err(format!("'{other}' is not a payload; allowed: fixed, json")),
        }
    }
}

impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
