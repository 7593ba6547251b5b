//! The kinds of record body a workload can send.

use serde::{Deserialize, Serialize};

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

named_by_word!(Payload, "a payload", { Fixed => "fixed", Json => "json" });
