//! `klab produce` and `klab consume`: the two halves of a run as separate
//! processes (the producer and consumer pods on Kubernetes). Each prints its
//! outcome as one JSON line on stdout; `klab` combines them with the same
//! code that assembles a local run.

use super::Outcome;
use crate::broker::admin::Admin;
use crate::cancel::Cancel;
use crate::cli::{ConsumeArgs, ProduceArgs};
use crate::load::clock::Clock;
use crate::load::consumer::{self, ConsumerHandle, ConsumerSpec};
use crate::load::outcome::{ConsumerOutcome, ProducerOutcome};
use crate::load::payload::Secret;
use crate::load::producer::{self, ProducerSpec};
use crate::stats::progress::ProducerProgress;
use crate::stats::report::{check_writable, write_json};
use crate::usage;
use anyhow::Result;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Producer and consumer in separate processes must share the secret.
fn shared_secret() -> Result<Secret> {
    match std::env::var_os("KLAB_SECRET") {
        Some(s) if !s.is_empty() => Ok(Secret::new(s.into_encoded_bytes())),
        _ => Err(usage!(
            "KLAB_SECRET is not set: a producer and a consumer in separate processes must share the HMAC secret (on Kubernetes it comes from the Secret klab-hmac)"
        )),
    }
}

fn emit<T: serde::Serialize>(value: &T, file: Option<&std::path::Path>) -> Result<()> {
    if let Some(f) = file {
        write_json(f, value)?;
    }
    crate::outln!("{}", serde_json::to_string(value)?);
    Ok(())
}

pub fn produce(a: &ProduceArgs) -> Result<Outcome> {
    let workload = a.workload.workload()?;
    let Some(topic) = workload.topic.clone() else {
        return Err(usage!("--topic is required for klab produce"));
    };
    if let Some(j) = &a.json {
        check_writable(j).map_err(|e| usage!("--json {}: {e}", j.display()))?;
    }
    let secret = shared_secret()?;
    let admin = Admin::connect(&a.bootstrap)?;
    let deadline = Instant::now() + a.wait_topic;
    loop {
        if matches!(admin.topic_partitions(&topic), Ok(Some(n)) if n as i32 >= workload.partitions)
        {
            break;
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "topic {topic} with {} partitions did not appear within {:?}",
                workload.partitions,
                a.wait_topic
            );
        }
        if crate::cancel::interrupted() {
            return Ok(Outcome::Interrupted);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let n = workload.producers.max(1) as usize;
    let specs: Vec<ProducerSpec> = (0..n)
        .map(|j| {
            ProducerSpec::new(
                &a.bootstrap,
                &topic,
                crate::step::share_of(&workload, j, n),
                secret.clone(),
            )
        })
        .collect();
    let clock = Clock::new();
    let progress: Vec<Mutex<ProducerProgress>> = (0..n)
        .map(|_| Mutex::new(ProducerProgress::default()))
        .collect();
    let report = producer::run_all(&specs, &clock, &Cancel::new(), &progress)?;
    let outcome = ProducerOutcome::from_report(&report, &clock);
    emit(&outcome, a.json.as_deref())?;
    Ok(if outcome.stopped.is_some() {
        Outcome::Incomplete
    } else {
        Outcome::Done
    })
}

pub fn consume(a: &ConsumeArgs) -> Result<Outcome> {
    crate::model::check_topic_name(&a.topic).map_err(|e| usage!("--topic: {e}"))?;
    if let Some(j) = &a.json {
        check_writable(j).map_err(|e| usage!("--json {}: {e}", j.display()))?;
    }
    let secret = shared_secret()?;
    if let Some(p) = a.create_partitions {
        let admin = Admin::connect(&a.bootstrap)?;
        if admin.topic_partitions(&a.topic)?.is_none() {
            admin.create_topic(&a.topic, p)?;
        }
    }
    let mut spec = ConsumerSpec::new(&a.bootstrap, &a.topic, secret);
    spec.producers = a.producers as usize;
    spec.deadline = Some(Instant::now() + a.timeout);
    let clock = Clock::new();
    let report = consumer::run(&spec, &clock, &Cancel::new(), &ConsumerHandle::default())?;
    let outcome = ConsumerOutcome::from_report(&report, &clock);
    emit(&outcome, a.json.as_deref())?;
    if a.delete_topic {
        // After the outcome is out: a failed cleanup does not lose it.
        match Admin::connect(&a.bootstrap).and_then(|admin| admin.delete_topic(&a.topic)) {
            Ok(()) => tracing::info!("deleted topic {}", a.topic),
            Err(e) => tracing::warn!("could not delete topic {}: {e:#}", a.topic),
        }
    }
    Ok(if outcome.finished {
        Outcome::Done
    } else {
        Outcome::Incomplete
    })
}
