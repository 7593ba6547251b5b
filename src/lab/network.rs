//! A lab file's `[network]` table: each key read by `model::network`, and
//! every mistake located at its value.

use super::located::{Ctx, LabFileError};
use crate::model::Network;
use crate::model::network::NetValue;
use std::collections::BTreeMap;
use toml::Spanned;

/// `[network]` as written.
pub type RawNetwork = BTreeMap<String, Spanned<toml::Value>>;

/// Reads `[network]`: every key known, every value allowed, and the whole
/// consistent (jitter within latency, zones complete).
pub(super) fn parse_network(cx: &Ctx<'_>, raw: &RawNetwork) -> Result<Network, LabFileError> {
    let mut net = Network::default();
    for (key, v) in raw {
        let value = match v.get_ref() {
            toml::Value::String(s) => NetValue::Text(s),
            toml::Value::Array(items) => {
                let mut names = Vec::new();
                for item in items {
                    match item.as_str() {
                        Some(s) => names.push(s.to_string()),
                        None => {
                            return Err(cx.err(
                                v,
                                format!("network.{key}: a list of zone names in quotes, e.g. [\"a\", \"b\", \"c\"]"),
                            ));
                        }
                    }
                }
                NetValue::List(names)
            }
            other => {
                return Err(cx.err(
                    v,
                    format!(
                        "network.{key}: {other} needs quotes and a unit, e.g. {key} = \"10ms\" (see labs/README.md)"
                    ),
                ));
            }
        };
        net.set(key, value)
            .map_err(|e| cx.err(v, format!("network.{e}")))?;
    }
    if let Err(e) = net.validate() {
        // Point at the field the message names, else at the table's first.
        let field = e.split(':').next().unwrap_or_default();
        let at = raw.get(field).or_else(|| raw.values().next());
        let message = format!("network.{e}");
        return Err(match at {
            Some(v) => cx.err(v, message),
            None => cx.err_at(None, message),
        });
    }
    Ok(net)
}
