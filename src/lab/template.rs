//! What a lab's own fix changes, setting by setting: the lines of its
//! `my-fix.toml` template, and the hints `klab lab check` gives for the
//! settings a student's fix leaves as the lab broke them. Both come from the
//! lab's `[fix]`, so a lab about partitions and consumers suggests those,
//! not broker keys.

use crate::lab::Lab;
use crate::lab::fix::Fix;

/// Where a setting goes in a fix file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    /// A top-level key (`heap`, `acks`, `partitions`, ...).
    Top,
    Properties,
    Producer,
    Consumer,
}

impl Section {
    fn header(self) -> Option<&'static str> {
        match self {
            Section::Top => None,
            Section::Properties => Some("[properties]"),
            Section::Producer => Some("[producer]"),
            Section::Consumer => Some("[consumer]"),
        }
    }
}

/// One setting the lab's fix changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    pub section: Section,
    pub key: String,
    /// What the lab runs with (None: Kafka's, librdkafka's or klab's
    /// default).
    pub broken: Option<String>,
    /// Which lab set it, when known.
    pub set_by: Option<String>,
    /// What the lab's own fix sets (the answer; not in the template).
    pub fixed: String,
}

impl Setting {
    /// How the key is written in a fix file.
    fn toml_key(&self) -> String {
        match self.section {
            Section::Top => self.key.clone(),
            _ => format!("\"{}\"", self.key),
        }
    }

    /// `num.io.threads (now 1, set by 03-one-io-thread)`.
    fn now(&self) -> String {
        let now = match &self.broken {
            Some(v) => format!("now {v}"),
            None => "now the default".to_string(),
        };
        match &self.set_by {
            Some(l) => format!("{now}, set by {l}"),
            None => now,
        }
    }
}

/// Every setting the lab's `[fix]` changes, in file order (top-level
/// keys, then properties, producer, consumer).
pub fn settings(lab: &Lab) -> Vec<Setting> {
    let f = &lab.fix;
    let w = &lab.workload;
    let origin = |k: &str| lab.origin.get(k).cloned();
    let mut out = Vec::new();
    let mut top = |key: &str, broken: Option<String>, fixed: Option<String>| {
        if let Some(fixed) = fixed {
            out.push(Setting {
                section: Section::Top,
                key: key.into(),
                broken,
                set_by: origin(key),
                fixed,
            });
        }
    };
    top(
        "heap",
        lab.broker.heap.map(|h| h.to_string()),
        f.broker.heap.map(|h| format!("\"{h}\"")),
    );
    top(
        "acks",
        w.acks.map(|a| a.to_string()),
        f.acks.map(|a| format!("\"{a}\"")),
    );
    top(
        "min_insync_replicas",
        w.min_insync_replicas.map(|n| n.to_string()),
        f.min_insync_replicas.map(|n| n.to_string()),
    );
    top(
        "partitions",
        w.partitions.map(|n| n.to_string()),
        f.partitions.map(|n| n.to_string()),
    );
    top(
        "consumers",
        w.consumers.map(|n| n.to_string()),
        f.consumers.map(|n| n.to_string()),
    );
    for (section, fixed, broken, prefix) in [
        (
            Section::Properties,
            &f.broker.properties,
            &lab.broker.properties,
            "",
        ),
        (Section::Producer, &f.producer, &w.producer, "producer."),
        (Section::Consumer, &f.consumer, &w.consumer, "consumer."),
    ] {
        for (k, v) in fixed {
            out.push(Setting {
                section,
                key: k.clone(),
                broken: broken.get(k).cloned(),
                set_by: origin(&format!("{prefix}{k}")),
                fixed: v.clone(),
            });
        }
    }
    out
}

/// The settings a student's `fix` leaves as the lab has them (it does not
/// set them, or sets the lab's own value), each as a hint.
pub fn still_broken(lab: &Lab, fix: &Fix) -> Vec<String> {
    let theirs = |s: &Setting| -> Option<String> {
        match (s.section, s.key.as_str()) {
            (Section::Top, "heap") => fix.broker.heap.map(|h| h.to_string()),
            (Section::Top, "acks") => fix.acks.map(|a| a.to_string()),
            (Section::Top, "min_insync_replicas") => fix.min_insync_replicas.map(|n| n.to_string()),
            (Section::Top, "partitions") => fix.partitions.map(|n| n.to_string()),
            (Section::Top, "consumers") => fix.consumers.map(|n| n.to_string()),
            (Section::Properties, k) => fix.broker.properties.get(k).cloned(),
            (Section::Producer, k) => fix.producer.get(k).cloned(),
            (Section::Consumer, k) => fix.consumer.get(k).cloned(),
            _ => None,
        }
    };
    settings(lab)
        .into_iter()
        .filter(|s| match theirs(s) {
            None => true,
            Some(v) => Some(v) == s.broken,
        })
        .map(|s| {
            let what = match s.section {
                Section::Properties => format!(
                    "{} is {}; `klab knobs {}` says what it does and whether it changes live",
                    s.key,
                    s.now(),
                    s.key
                ),
                Section::Top if s.key == "heap" => format!(
                    "the heap is {}; compare gc.log of a step with the heap you want",
                    s.now()
                ),
                Section::Top => format!("{} is {}", s.key, s.now()),
                Section::Producer => format!("the producers' {} is {}", s.key, s.now()),
                Section::Consumer => format!("the consumers' {} is {}", s.key, s.now()),
            };
            format!("{what} (in your fix file: {})", placement(&s))
        })
        .collect()
}

/// `[properties] "num.io.threads" = ...`.
fn placement(s: &Setting) -> String {
    match s.section.header() {
        Some(h) => format!("{h} {} = ...", s.toml_key()),
        None => format!("{} = ...", s.toml_key()),
    }
}

/// The keys a fix for this lab sets, as the "nothing to check" message
/// names them: `partitions, consumers`.
pub fn keys(lab: &Lab) -> Vec<String> {
    settings(lab).iter().map(placement).collect()
}

/// The lab's `my-fix.toml` template: every setting its `[fix]` changes,
/// commented out, with what the lab runs with and which lab set it; never
/// the answer.
pub fn my_fix(lab: &Lab, track_key: &str) -> String {
    let mut out = format!(
        "# Your fix for lab {track_key} ({}), read by `klab lab check {track_key}`.\n\
         #\n\
         # The format is that of a lab's [fix] table (labs/README.md). The lines below\n\
         # name each setting this lab's fix changes, what the lab runs with now and the\n\
         # lab that set it. Uncomment them (and their table lines) and replace each ?\n\
         # with your value. While everything stays commented out this file is empty, and\n\
         # `klab lab check {track_key}` says there is nothing to check. Flags such as\n\
         # --heap, --broker-set KEY=VALUE and --producer-set KEY=VALUE are laid on top of\n\
         # this file. See README.md in this folder.\n",
        lab.title
    );
    let all = settings(lab);
    if all
        .iter()
        .any(|s| s.set_by.as_deref().is_some_and(|l| l != lab.id))
    {
        out.push_str(
            "#\n\
             # Labs accumulate: this lab carries the bad settings of the labs it extends,\n\
             # and your fix must repair all of them (`klab knobs KEY` shows Kafka's\n\
             # default and whether a key changes live).\n",
        );
    }
    let mut section = None;
    for s in all {
        if section != Some(s.section) {
            out.push('\n');
            if let Some(h) = s.section.header() {
                out.push_str(&format!("# {h}\n"));
            }
            section = Some(s.section);
        }
        // Strings where the file wants one.
        let blank = match (s.section, s.key.as_str()) {
            (Section::Top, "heap" | "acks") => "\"?\"",
            _ => "?",
        };
        let line = format!("# {} = {blank}", s.toml_key());
        out.push_str(&format!("{line:<48}# {}\n", s.now()));
    }
    out
}
