//! Showing a tuning run: the trace table, the plot of the search, and the
//! recommended settings as a lab file snippet and a StatefulSet patch.

use super::TuneReport;
use crate::model::BrokerConfig;
use crate::stats::plot::{self, Bar, Kind};
use crate::stats::table::{align_numbers, fmt_ms, fmt_rate, new_table};
use comfy_table::{CellAlignment, ColumnConstraint, Width};

/// The trace as a table (for stdout; `stats::table::file_text` for tune.txt).
pub fn table(r: &TuneReport) -> comfy_table::Table {
    if r.start_capacity.is_some() {
        return capacity_table(r);
    }
    let mut t = new_table(&[
        "#",
        "change (against the best so far)",
        "records/s",
        "e2e p99 ms",
        "score",
        "kept",
        "why",
    ]);
    for (i, s) in r.start_repeats.iter().enumerate() {
        t.add_row(vec![
            if i == 0 {
                "start".into()
            } else {
                "start'".into()
            },
            "(the lab's degraded settings)".to_string(),
            fmt_rate(s.throughput.msgs_per_s),
            fmt_ms(s.e2e_latency_ms.p99),
            format!("{:.0}", r.objective_score(s)),
            String::new(),
            if i == 0 {
                format!("noise ±{:.0}%", r.noise * 100.0)
            } else {
                String::new()
            },
        ]);
    }
    for tr in &r.trials {
        let (tp, p99) = match &tr.result {
            Some(x) => (
                fmt_rate(x.throughput.msgs_per_s),
                fmt_ms(x.e2e_latency_ms.p99),
            ),
            None => ("-".into(), "-".into()),
        };
        t.add_row(vec![
            tr.n.to_string(),
            tr.change.clone(),
            tp,
            p99,
            format!("{:.0}", tr.score),
            if tr.accepted {
                "yes".into()
            } else {
                "no".into()
            },
            tr.reason.clone(),
        ]);
    }
    align_numbers(&mut t);
    // The two text columns read left to right and wrap, so a repair trial
    // that changes every knob does not make the table hundreds of columns
    // wide.
    wrap_text_columns(&mut t);
    t
}

/// The change and the why columns read left to right and wrap.
fn wrap_text_columns(t: &mut comfy_table::Table) {
    for (i, width) in [(1, 64), (6, 56)] {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Left);
            c.set_constraint(ColumnConstraint::UpperBoundary(Width::Fixed(width)));
        }
    }
}

/// The capacity objective's trace: each trial's capacity at the SLO (or
/// the rate it failed at), its probes, the e2e p99 at its answer.
fn capacity_table(r: &TuneReport) -> comfy_table::Table {
    use crate::capacity::{Capacity, Stop};
    let mut t = new_table(&[
        "#",
        "change (against the best so far)",
        "capacity records/s",
        "probes",
        "e2e p99 ms at it",
        "kept",
        "why",
    ]);
    let figure = |c: &Capacity| match (c.capacity_records_per_s, c.stop) {
        (_, Stop::BelowChallenge) => format!(
            "< {}",
            fmt_rate(c.failed_at_records_per_s.unwrap_or_default())
        ),
        (Some(x), _) => fmt_rate(x),
        (None, _) => "-".into(),
    };
    let p99 = |x: Option<&crate::model::StepResult>, c: &Capacity| match x {
        Some(x) if c.capacity_records_per_s.is_some() => fmt_ms(x.e2e_latency_ms.p99),
        _ => "-".into(),
    };
    if let Some(c) = &r.start_capacity {
        t.add_row(vec![
            "start".into(),
            "(the lab's settings)".into(),
            figure(c),
            c.probes.len().to_string(),
            p99(r.start_repeats.first(), c),
            String::new(),
            format!(
                "{}; resolution ±{:.0}%",
                crate::capacity::report::stop_text(c.stop),
                r.noise * 100.0
            ),
        ]);
    }
    for tr in &r.trials {
        let (cap, probes, at) = match &tr.capacity {
            Some(c) => (
                figure(c),
                c.probes.len().to_string(),
                p99(tr.result.as_ref(), c),
            ),
            None => ("-".into(), "0".into(), "-".into()),
        };
        t.add_row(vec![
            tr.n.to_string(),
            tr.change.clone(),
            cap,
            probes,
            at,
            if tr.accepted { "yes" } else { "no" }.into(),
            tr.reason.clone(),
        ]);
    }
    align_numbers(&mut t);
    wrap_text_columns(&mut t);
    t
}

impl TuneReport {
    fn objective_score(&self, r: &crate::model::StepResult) -> f64 {
        super::Objective::score_at(self.slo_p99_ms).score(r)
    }
}

pub fn plot(r: &TuneReport, title: &str) -> String {
    let mut bars = vec![Bar {
        label: "start".into(),
        kind: Kind::Degraded,
        value: r.start.throughput.msgs_per_s,
        latency: Some(r.start.e2e_latency_ms.p99),
    }];
    for tr in &r.trials {
        bars.push(Bar {
            label: if tr.score > 0.0 {
                format!("#{}", tr.n)
            } else {
                format!("#{} ✗", tr.n)
            },
            kind: if tr.score <= 0.0 {
                Kind::Failed
            } else if tr.accepted {
                Kind::Accepted
            } else {
                Kind::Rejected
            },
            value: tr
                .result
                .as_ref()
                .map(|x| x.throughput.msgs_per_s)
                .unwrap_or(0.0),
            latency: tr.result.as_ref().map(|x| x.e2e_latency_ms.p99),
        });
    }
    plot::bars_and_latency(title, "records/s acknowledged", "e2e p99 ms", &bars)
}

/// The config as the broker image reads it (KLAB_BROKER_CONFIG).
pub fn broker_config_toml(cfg: &BrokerConfig) -> String {
    toml::to_string(cfg).unwrap_or_default()
}

/// The recommendation, ready to paste.
pub fn recommendation(r: &TuneReport) -> String {
    if r.recommended.is_empty() {
        return "The tuner kept the start settings: nothing it tried was better beyond the noise.\n".into();
    }
    let mut out = String::new();
    out.push_str(&format!(
        "Recommended (against the start): {}\n",
        r.recommended.join(" ")
    ));
    if r.start_capacity.is_some() {
        out.push_str(&format!(
            "capacity at e2e p99 ≤ {:.0} ms: {}/s → {}/s ({:.2}x), {} measured probes\n\n",
            r.slo_p99_ms,
            fmt_rate(r.start_score),
            fmt_rate(r.best_score),
            if r.start_score > 0.0 {
                r.best_score / r.start_score
            } else {
                0.0
            },
            r.measurements
        ));
    } else {
        out.push_str(&format!(
            "score {:.0} → {:.0} ({:.2}x); records/s {} → {}; e2e p99 {} → {} ms\n\n",
            r.start_score,
            r.best_score,
            if r.start_score > 0.0 {
                r.best_score / r.start_score
            } else {
                0.0
            },
            fmt_rate(r.start.throughput.msgs_per_s),
            fmt_rate(r.best.throughput.msgs_per_s),
            fmt_ms(r.start.e2e_latency_ms.p99),
            fmt_ms(r.best.e2e_latency_ms.p99),
        ));
    }
    let diff = r.start_config.broker.diff(&r.best_config.broker);
    let producer: Vec<(String, String)> = r
        .best_config
        .producer
        .iter()
        .filter(|(k, v)| r.start_config.producer.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.push_str("# As a lab file's fix (labs/NN-*/my-fix.toml or a lab's [fix]):\n");
    let (b, s) = (&r.best_config, &r.start_config);
    if let Some(h) = diff.heap {
        out.push_str(&format!("heap = \"{h}\"\n"));
    }
    if b.partitions != s.partitions
        && let Some(n) = b.partitions
    {
        out.push_str(&format!("partitions = {n}\n"));
    }
    if b.consumers != s.consumers
        && let Some(n) = b.consumers
    {
        out.push_str(&format!("consumers = {n}\n"));
    }
    if !diff.properties.is_empty() {
        out.push_str("[properties]\n");
        for (k, v) in &diff.properties {
            out.push_str(&format!("\"{k}\" = \"{v}\"\n"));
        }
    }
    if !producer.is_empty() {
        out.push_str("[producer]\n");
        for (k, v) in &producer {
            out.push_str(&format!("\"{k}\" = \"{v}\"\n"));
        }
    }
    let consumer: Vec<(&String, &String)> = b
        .consumer
        .iter()
        .filter(|(k, v)| s.consumer.get(*k) != Some(*v))
        .collect();
    if !consumer.is_empty() {
        out.push_str("[consumer]\n");
        for (k, v) in &consumer {
            out.push_str(&format!("\"{k}\" = \"{v}\"\n"));
        }
    }
    if !diff.is_empty() {
        let toml_text = broker_config_toml(&r.best_config.broker);
        out.push_str("\n# As a patch of the broker StatefulSet (kubectl -n klab patch statefulset kafka --patch-file tuned.yaml):\n");
        out.push_str("spec:\n  template:\n    spec:\n      containers:\n        - name: kafka\n          env:\n            - name: KLAB_BROKER_CONFIG\n              value: |\n");
        for line in toml_text.lines() {
            out.push_str(&format!("                {line}\n"));
        }
    }
    if !producer.is_empty() {
        out.push_str(&format!(
            "\n# Producer settings (client side): {}\n",
            producer
                .iter()
                .map(|(k, v)| format!("--producer-set {k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuner::space::{Candidate, Space};
    use crate::tuner::{TuneOptions, sim::Simulated, tune};

    #[test]
    fn recommendation_has_a_lab_snippet_and_a_patch() {
        let space = Space::default_space(false);
        let start = space.candidate(&Candidate::default(), &vec![0; space.knobs.len()]);
        let optimum = space.knobs.iter().map(|k| k.good).collect();
        let mut sim = Simulated::new(space.clone(), optimum, 1);
        let r = tune(&mut sim, &space, &start, &TuneOptions::default()).unwrap();
        let text = recommendation(&r);
        assert!(text.contains("heap = \"1g\""), "{text}");
        assert!(text.contains("\"num.io.threads\" = \"8\""), "{text}");
        assert!(text.contains("name: KLAB_BROKER_CONFIG"), "{text}");
        assert!(text.contains("--producer-set linger.ms=5"), "{text}");
        // The patch's TOML reads back as the best broker config.
        let block: String = text
            .split("value: |\n")
            .nth(1)
            .unwrap()
            .lines()
            .take_while(|l| l.starts_with("                "))
            .map(|l| format!("{}\n", &l[16..]))
            .collect();
        let back: BrokerConfig = toml::from_str(&block).unwrap();
        assert_eq!(back, r.best_config.broker);
        let t = table(&r);
        assert!(t.to_string().contains("start"));
        // The first trial repairs every knob at once; the table still fits
        // a wide terminal.
        let widest = t.lines().map(|l| l.chars().count()).max().unwrap_or(0);
        assert!(widest <= 200, "{widest} columns:\n{t}");
        assert!(plot(&r, "t").contains("<svg"));
    }
}
