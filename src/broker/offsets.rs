//! A topic's offsets as Kafka's own tool reads them (`GetOffsetShell` in the
//! kafka-tools jar), a count independent of klab's client library: what
//! `klab run --kafka-offsets` holds klab's counts against.

use crate::broker::kafka_home::KafkaHome;
use crate::model::KafkaOffsets;
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

/// The tool's main class.
const TOOL: &str = "org.apache.kafka.tools.GetOffsetShell";

/// The latest offset of each partition of `topic` (none when it does not
/// exist yet), from `GetOffsetShell --time latest`.
pub fn end_offsets(
    java: &Path,
    kafka: &KafkaHome,
    bootstrap: &str,
    topic: &str,
) -> Result<BTreeMap<i32, i64>> {
    kafka.check_tools()?;
    // --topic takes a regular expression: a topic name's only special
    // character is '.'.
    let pattern = topic.replace('.', "\\.");
    let out = Command::new(java)
        .args(["-Xmx128m", "-cp", &kafka.classpath(), TOOL])
        .args(["--bootstrap-server", bootstrap, "--time", "latest"])
        .args(["--topic", &pattern])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running Kafka's {TOOL}"))?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // What the tool says about a topic that does not exist (yet).
    if !out.status.success() && said.contains("Could not match any topic-partitions") {
        return Ok(BTreeMap::new());
    }
    if !out.status.success() {
        bail!(
            "Kafka's {TOOL} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    parse(&String::from_utf8_lossy(&out.stdout), topic)
}

/// `topic:partition:offset` lines (other topics' lines, if the pattern
/// matched any, are left out).
fn parse(text: &str, topic: &str) -> Result<BTreeMap<i32, i64>> {
    let mut out = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let mut f = line.rsplitn(3, ':');
        let (Some(offset), Some(partition), Some(name)) = (f.next(), f.next(), f.next()) else {
            bail!("{TOOL} printed a line klab cannot read: {line}");
        };
        if name != topic {
            continue;
        }
        match (partition.parse(), offset.parse()) {
            (Ok(p), Ok(o)) => {
                out.insert(p, o);
            }
            _ => bail!("{TOOL} printed a line klab cannot read: {line}"),
        }
    }
    Ok(out)
}

/// What the step wrote, by Kafka's offsets (`after` minus `before`, per
/// partition), against what klab counted: every acknowledged record and
/// every end-of-run marker (`markers`) should be there, once.
pub fn compare(
    before: &BTreeMap<i32, i64>,
    after: &BTreeMap<i32, i64>,
    acked: u64,
    markers: u64,
) -> KafkaOffsets {
    let records: u64 = after
        .iter()
        .map(|(p, end)| (end - before.get(p).copied().unwrap_or(0)).max(0) as u64)
        .sum();
    let expected = acked + markers;
    KafkaOffsets {
        tool: TOOL.to_string(),
        end_offsets: after.clone(),
        records,
        acked,
        markers,
        difference: records as i64 - expected as i64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tools_lines_are_read_and_compared() {
        let text = "klab.d-1:0:120\nklab.d-1:2:80\nklab.d-1:1:100\nklabxd-1:0:5\n";
        let after = parse(text, "klab.d-1").unwrap();
        assert_eq!(after, BTreeMap::from([(0, 120), (1, 100), (2, 80)]));
        assert!(parse("garbage\n", "t").is_err());
        let before = BTreeMap::from([(0, 20)]);
        let o = compare(&before, &after, 277, 3);
        assert_eq!((o.records, o.difference), (280, 0));
        let short = compare(&before, &after, 343, 3);
        assert_eq!(short.difference, -66);
    }
}
