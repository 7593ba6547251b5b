//! `/metrics`: the run's events added up into Prometheus metrics, encoded
//! by `prometheus-client` in the OpenMetrics text format. Counters sum
//! every step's counts (each step's counts start at zero, so a new topic
//! starts a new baseline); they only ever grow.
//!
//! The same metrics serve `klab produce --metrics` and `klab consume
//! --metrics` (the pods on Kubernetes): each [`Role`] registers only what
//! its process knows, under the same names and types.

use crate::events::Event;
use crate::stats::hist::LATENCY_BUCKETS_S;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

/// End-to-end latency as a classic histogram: per-bucket counts (not
/// cumulative; one more than [`LATENCY_BUCKETS_S`]) and their sum.
#[derive(Debug, Default)]
struct Latency(Mutex<(Vec<u64>, f64)>);

impl EncodeMetric for Latency {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (counts, sum) = self.0.lock().map(|g| g.clone()).unwrap_or_default();
        let mut buckets: Vec<(f64, u64)> = LATENCY_BUCKETS_S
            .iter()
            .enumerate()
            .map(|(i, b)| (*b, counts.get(i).copied().unwrap_or(0)))
            .collect();
        // f64::MAX is how prometheus-client spells the +Inf bucket.
        buckets.push((
            f64::MAX,
            counts.get(LATENCY_BUCKETS_S.len()).copied().unwrap_or(0),
        ));
        let count = buckets.iter().map(|(_, n)| n).sum();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// The step running now, as an info metric (`klab_step_info{...} 1`).
#[derive(Debug, Default)]
struct StepInfo(Mutex<Vec<(String, String)>>);

impl EncodeMetric for StepInfo {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let mut labels: Vec<(String, String)> = self
            .0
            .lock()
            .map(|g| g.iter().map(|(k, v)| (k.clone(), escape(v))).collect())
            .unwrap_or_default();
        if labels.is_empty() {
            labels.push(("step".to_string(), String::new()));
        }
        encoder.encode_info(&labels)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Info
    }
}

/// A label value as the exposition format writes it between its quotes:
/// a backslash, a double quote and a line feed escaped (`\\`, `\"`,
/// `\n`). prometheus-client writes label values as they are, so a lab or
/// step name with a quote or a newline could otherwise end the label, add
/// samples of its own or end the exposition early.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// What one step has added so far (its counts start at zero).
#[derive(Debug, Default)]
struct Baseline {
    topic: String,
    sent: u64,
    acked: u64,
    consumed: u64,
    buckets: Vec<u64>,
    sum_s: f64,
}

/// Which process the metrics describe, and so which of them it exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A whole run in one process (the live view): everything.
    Run,
    /// `klab produce`: what the producers hand over and get acknowledged.
    Producer,
    /// `klab consume`: what the verifying consumer reads and finds.
    Consumer,
}

impl Role {
    fn produces(self) -> bool {
        self != Role::Consumer
    }

    fn consumes(self) -> bool {
        self != Role::Producer
    }
}

/// A gauge of seconds (prometheus-client's float gauge).
type Seconds = Gauge<f64, AtomicU64>;

pub struct Metrics {
    registry: Registry,
    produced: Counter,
    acked: Counter,
    consumed: Counter,
    lost: Counter,
    duplicated: Counter,
    restarts: Counter,
    steps: Counter,
    dropped: Counter,
    lag: Gauge,
    clients: Gauge,
    publish_p99: Seconds,
    e2e_max: Seconds,
    latency: Arc<Latency>,
    step: Arc<StepInfo>,
    base: Baseline,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Everything a run knows: the live view's `/metrics`.
    pub fn new() -> Metrics {
        Metrics::for_role(Role::Run)
    }

    /// The metrics of `role`, registered under the live view's names.
    pub fn for_role(role: Role) -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            produced: Counter::default(),
            acked: Counter::default(),
            consumed: Counter::default(),
            lost: Counter::default(),
            duplicated: Counter::default(),
            restarts: Counter::default(),
            steps: Counter::default(),
            dropped: Counter::default(),
            lag: Gauge::default(),
            clients: Gauge::default(),
            publish_p99: Seconds::default(),
            e2e_max: Seconds::default(),
            latency: Arc::new(Latency(Mutex::new((
                vec![0; LATENCY_BUCKETS_S.len() + 1],
                0.0,
            )))),
            step: Arc::new(StepInfo::default()),
            base: Baseline::default(),
            registry: Registry::default(),
        };
        if role.produces() {
            registry.register(
                "klab_produced_records",
                "Records handed to the producers (warm-ups included)",
                m.produced.clone(),
            );
            registry.register(
                "klab_acknowledged_records",
                "Records the broker acknowledged",
                m.acked.clone(),
            );
            registry.register(
                "klab_publish_latency_p99_seconds",
                "Publish latency p99 of the last full second in seconds (the highest of the producers)",
                m.publish_p99.clone(),
            );
        }
        if role.consumes() {
            registry.register(
                "klab_consumed_records",
                "Records the verifying consumer read (duplicates included)",
                m.consumed.clone(),
            );
            registry.register(
                "klab_lost_records",
                "Acknowledged records the consumer never read, counted when a step ends",
                m.lost.clone(),
            );
            registry.register(
                "klab_duplicated_records",
                "Records read more than once, counted when a step ends",
                m.duplicated.clone(),
            );
            // The unit is in the name, without a `# UNIT` line: some parsers
            // refuse units on histograms.
            registry.register(
                "klab_e2e_latency_seconds",
                "End-to-end latency in seconds, from each record's due time to its arrival at the consumer",
                ArcMetric(Arc::clone(&m.latency)),
            );
            registry.register(
                "klab_e2e_latency_max_seconds",
                "The highest end-to-end latency of the last full second in seconds",
                m.e2e_max.clone(),
            );
        }
        if role == Role::Run {
            // Records due by the producers' schedule minus records read:
            // only a process that runs both sides knows it.
            registry.register(
                "klab_consumer_lag_records",
                "Records due by the producers' schedule but not yet read",
                m.lag.clone(),
            );
        }
        registry.register(
            "klab_step",
            "The step running now (or the last one)",
            ArcMetric(Arc::clone(&m.step)),
        );
        if role == Role::Run {
            registry.register(
                "klab_broker_restarts",
                "Broker restarts: of the whole cluster, or of one node after a fault",
                m.restarts.clone(),
            );
            registry.register("klab_steps", "Steps that ended", m.steps.clone());
            registry.register(
                "klab_ui_events_dropped",
                "Events a browser of the live view missed (a full queue)",
                m.dropped.clone(),
            );
            registry.register(
                "klab_ui_clients",
                "Browsers following the live view now",
                m.clients.clone(),
            );
        }
        Metrics { registry, ..m }
    }

    /// Starts a new step's baseline when `topic` is not the current one.
    fn baseline(&mut self, topic: &str) {
        if self.base.topic != topic {
            self.base = Baseline {
                topic: topic.to_string(),
                ..Default::default()
            };
        }
    }

    /// Adds what grew since the last look at this step.
    fn grow(&mut self, sent: u64, acked: u64, consumed: u64, buckets: &[u64], sum_s: f64) {
        let b = &mut self.base;
        self.produced.inc_by(sent.saturating_sub(b.sent));
        self.acked.inc_by(acked.saturating_sub(b.acked));
        self.consumed.inc_by(consumed.saturating_sub(b.consumed));
        b.sent = b.sent.max(sent);
        b.acked = b.acked.max(acked);
        b.consumed = b.consumed.max(consumed);
        if b.buckets.len() < buckets.len() {
            b.buckets.resize(buckets.len(), 0);
        }
        if let Ok(mut l) = self.latency.0.lock() {
            for (i, n) in buckets.iter().enumerate() {
                let add = n.saturating_sub(b.buckets[i]);
                if let Some(c) = l.0.get_mut(i) {
                    *c += add;
                }
                b.buckets[i] = b.buckets[i].max(*n);
            }
            if sum_s > b.sum_s {
                l.1 += sum_s - b.sum_s;
                b.sum_s = sum_s;
            }
        }
    }

    pub fn observe(&mut self, e: &Event) {
        match e {
            Event::StepBegin {
                lab,
                label,
                topic,
                throwaway,
                ..
            } => {
                self.baseline(topic);
                let mut labels = vec![
                    ("step".to_string(), label.clone().unwrap_or_default()),
                    ("topic".to_string(), topic.clone()),
                    ("throwaway".to_string(), throwaway.to_string()),
                ];
                if let Some(l) = lab {
                    labels.insert(0, ("lab".to_string(), l.clone()));
                }
                if let Ok(mut s) = self.step.0.lock() {
                    *s = labels;
                }
            }
            Event::Second {
                topic,
                sent,
                acked,
                consumed,
                due,
                e2e_max_ms,
                publish_p99_ms,
                e2e_buckets,
                e2e_sum_s,
                ..
            } => {
                self.baseline(topic);
                self.grow(*sent, *acked, *consumed, e2e_buckets, *e2e_sum_s);
                self.lag.set(due.saturating_sub(*consumed) as i64);
                // A second without records keeps the last value.
                if let Some(ms) = e2e_max_ms {
                    self.e2e_max.set(ms / 1000.0);
                }
                if let Some(ms) = publish_p99_ms {
                    self.publish_p99.set(ms / 1000.0);
                }
            }
            Event::StepEnd {
                topic,
                produced,
                acked,
                consumed,
                lost,
                duplicated,
                e2e_buckets,
                e2e_sum_s,
                ..
            } => {
                self.baseline(topic);
                self.grow(*produced, *acked, *consumed, e2e_buckets, *e2e_sum_s);
                self.lost.inc_by(*lost);
                self.duplicated.inc_by(*duplicated);
                self.steps.inc();
                self.lag.set(0);
            }
            Event::Broker { action, .. } if action != "started" => {
                self.restarts.inc();
            }
            _ => {}
        }
    }

    /// The registry as OpenMetrics text; `dropped` and `clients` come from
    /// the server.
    pub fn encode(&mut self, dropped: u64, clients: usize) -> String {
        let seen = self.dropped.get();
        self.dropped.inc_by(dropped.saturating_sub(seen));
        self.clients.set(clients as i64);
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            return "# EOF\n".to_string();
        }
        out
    }
}

/// Registers a metric the server also keeps a handle to.
#[derive(Debug)]
struct ArcMetric<T>(Arc<T>);

impl<T: EncodeMetric> EncodeMetric for ArcMetric<T> {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        self.0.metric_type()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(topic: &str, sent: u64, buckets: Vec<u64>) -> Event {
        Event::Second {
            bootstrap: "b".into(),
            topic: topic.into(),
            t_s: 1.0,
            measuring: true,
            sent,
            acked: sent,
            consumed: sent.saturating_sub(10),
            due: sent + 5,
            sent_per_s: 0.0,
            acked_per_s: 0.0,
            consumed_per_s: 0.0,
            e2e_p50_ms: None,
            e2e_p99_ms: None,
            e2e_max_ms: None,
            publish_p99_ms: None,
            e2e_buckets: buckets,
            e2e_sum_s: 0.5,
        }
    }

    #[test]
    fn counters_add_up_steps_and_the_histogram_its_buckets() {
        let mut m = Metrics::new();
        let mut b = vec![0; LATENCY_BUCKETS_S.len() + 1];
        b[3] = 7;
        m.observe(&second("t1", 100, b.clone()));
        m.observe(&second("t1", 250, b.clone()));
        // A new step starts from zero again.
        m.observe(&second("t2", 40, vec![]));
        let text = m.encode(3, 1);
        assert!(text.contains("klab_produced_records_total 290"), "{text}");
        assert!(text.contains("klab_consumer_lag_records 15"), "{text}");
        assert!(
            text.contains("# TYPE klab_e2e_latency_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains("klab_e2e_latency_seconds_bucket{le=\"+Inf\"} 7"),
            "{text}"
        );
        assert!(text.contains("klab_ui_events_dropped_total 3"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    /// A lab or step name cannot add samples or end the exposition: its
    /// quote, backslash and newline are escaped, and the text still parses.
    #[test]
    fn label_values_are_escaped() {
        let mut m = Metrics::new();
        let evil = "x\"} 1\nklab_lost_records_total 999999\n# EOF";
        m.observe(&Event::StepBegin {
            lab: Some(evil.to_string()),
            label: Some("a\\b".into()),
            bootstrap: "b".into(),
            topic: "t".into(),
            workload: String::new(),
            broker: String::new(),
            applied: crate::model::Applied::Unchanged,
            throwaway: false,
        });
        let text = m.encode(0, 0);
        let lost: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("klab_lost_records_total"))
            .collect();
        assert_eq!(lost, ["klab_lost_records_total 0"], "{text}");
        assert_eq!(text.lines().filter(|l| *l == "# EOF").count(), 1, "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(
            text.contains(r#"lab="x\"} 1\nklab_lost_records_total 999999\n# EOF""#),
            "{text}"
        );
        assert!(text.contains(r#"step="a\\b""#), "{text}");
        openmetrics_parser::openmetrics::parse_openmetrics(&text)
            .unwrap_or_else(|e| panic!("does not parse: {e:?}\n{text}"));
    }

    /// The names of the samples `role`'s `/metrics` exports (`_total`,
    /// `_bucket`, `_info` and the rest as a scraper sees them).
    fn exported(role: Role) -> std::collections::BTreeSet<String> {
        Metrics::for_role(role)
            .encode(0, 0)
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .map(str::to_string)
            .collect()
    }

    /// Every `klab_*` name in a PromQL expression.
    fn names_in(expr: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = expr;
        while let Some(i) = rest.find("klab_") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            out.push(tail[..end].to_string());
            rest = &tail[end..];
        }
        out
    }

    #[test]
    fn roles_export_what_their_process_knows() {
        let p = exported(Role::Producer);
        let c = exported(Role::Consumer);
        assert!(p.contains("klab_produced_records_total"), "{p:?}");
        assert!(p.contains("klab_publish_latency_p99_seconds"), "{p:?}");
        assert!(!p.contains("klab_consumed_records_total"), "{p:?}");
        assert!(c.contains("klab_e2e_latency_seconds_bucket"), "{c:?}");
        assert!(c.contains("klab_lost_records_total"), "{c:?}");
        assert!(!c.contains("klab_produced_records_total"), "{c:?}");
        for r in [&p, &c] {
            assert!(r.contains("klab_step_info"), "{r:?}");
            assert!(!r.contains("klab_consumer_lag_records"), "{r:?}");
            assert!(!r.contains("klab_ui_clients"), "{r:?}");
        }
        let mut m = Metrics::for_role(Role::Producer);
        let mut e = second("t", 100, vec![]);
        if let Event::Second { publish_p99_ms, .. } = &mut e {
            *publish_p99_ms = Some(25.0);
        }
        m.observe(&e);
        let text = m.encode(0, 0);
        assert!(text.contains("klab_produced_records_total 100"), "{text}");
        assert!(
            text.contains("klab_publish_latency_p99_seconds 0.025"),
            "{text}"
        );
    }

    /// The Grafana dashboard of manifests/components/grafana asks only for
    /// metrics `/metrics` exports, and every panel has a query the pods on
    /// Kubernetes (a producer and a consumer) can answer.
    #[test]
    fn the_grafana_dashboard_queries_exported_metrics() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/manifests/components/grafana/klab-dashboard.json"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
        let run = exported(Role::Run);
        let pods: std::collections::BTreeSet<String> = exported(Role::Producer)
            .union(&exported(Role::Consumer))
            .cloned()
            .collect();
        let vars = dash["templating"]["list"].as_array().unwrap();
        assert!(
            vars.iter()
                .any(|v| v["name"] == "datasource" && v["type"] == "datasource"),
            "{vars:?}"
        );
        let panels = dash["panels"].as_array().unwrap();
        assert!(panels.len() >= 4);
        let mut titles = Vec::new();
        for p in panels {
            let title = p["title"].as_str().unwrap();
            titles.push(title.to_string());
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
            let targets = p["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{title}");
            for t in targets {
                assert_eq!(t["datasource"]["uid"], "${datasource}", "{title}");
                let expr = t["expr"].as_str().unwrap();
                let names = names_in(expr);
                assert!(!names.is_empty(), "{title}: {expr}");
                for n in &names {
                    assert!(run.contains(n), "{title}: {n} is not exported: {run:?}");
                }
                // `a or b`: one side is enough; a live view answers the
                // left, the pods the right.
                let by_pods = expr
                    .split(" or ")
                    .any(|side| names_in(side).iter().all(|n| pods.contains(n)));
                assert!(by_pods, "{title}: the pods cannot answer {expr}");
            }
        }
        for want in ["records/s", "latency", "consumer lag", "current step"] {
            assert!(
                titles.iter().any(|t| t.starts_with(want)),
                "no panel {want}: {titles:?}"
            );
        }
    }
}
