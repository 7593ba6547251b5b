//! A real broker, a real producer and a real consumer: what klab measures
//! and counts must be right.

mod common;

use common::*;
use klab::load::payload::{Encoder, Secret};
use klab::model::{BrokerConfig, Workload};
use klab::step::{StepOptions, measure};
use klab::units::MemSize;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::time::{Duration, Instant};

fn secret() -> Secret {
    Secret::new(b"integration-test-secret".to_vec())
}

fn workload() -> Workload {
    Workload {
        rate: None,
        messages: Some(120_000),
        duration: None,
        warmup: Duration::from_millis(500),
        message_bytes: 1024,
        partitions: 3,
        ..Workload::default()
    }
}

#[test]
fn acks_all_loses_nothing_over_100k_records() {
    let mut b = shared_broker();
    let m = measure(&mut *b, &workload(), &secret(), &StepOptions::default()).unwrap();
    let r = &m.result;
    assert!(r.complete, "{:?}", r.reason);
    assert!(r.acked >= 120_000, "{}", r.acked);
    assert_eq!(r.consumed, r.acked);
    assert_eq!(
        (r.lost, r.duplicated, r.corrupt, r.foreign, r.failed),
        (0, 0, 0, 0, 0)
    );
    assert_eq!(r.e2e_latency_ms.count + r.warmup_records, r.consumed);
    assert!(r.throughput.msgs_per_s > 0.0);
    assert!(r.e2e_latency_ms.p50 > 0.0 && r.e2e_latency_ms.p50 <= r.e2e_latency_ms.p99);
    assert!(r.e2e_latency_ms.p99 <= r.e2e_latency_ms.max);
    assert_eq!(
        r.environment.kafka_version.as_deref(),
        Some(b.kafka().version.as_str())
    );
    // Both sides of the load spent CPU in the window, and the host at
    // least as much as the client.
    let cpu = r.cpu.as_ref().expect("CPU over the window");
    assert!(
        cpu.client_s > 0.0 && cpu.broker_s.unwrap_or(0.0) > 0.0,
        "{cpu:?}"
    );
    assert!(cpu.host_busy_s + 0.5 >= cpu.client_s, "{cpu:?}");
    assert!(
        cpu.window_s > 0.0 && cpu.host_total_s >= cpu.host_busy_s,
        "{cpu:?}"
    );
}

/// Writes records straight to the topic with a plain rdkafka producer.
fn inject(bootstrap: &str, topic: &str, values: &[Vec<u8>]) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    for v in values {
        p.send(BaseRecord::<(), _>::to(topic).partition(0).payload(v))
            .unwrap();
    }
    p.flush(Duration::from_secs(30)).unwrap();
}

#[test]
fn tampered_and_foreign_records_are_counted() {
    let mut b = shared_broker();
    let topic = "tampered";
    b.admin().unwrap().create_topic(topic, 2).unwrap();
    // One record in klab's format with one byte flipped, and two records
    // that are not klab's at all, written while the step runs (a step on a
    // topic that already exists reads only what comes after its start).
    let mut enc = Encoder::new(&secret(), 99, 256);
    let mut bad = enc.record(0, 1, 0).to_vec();
    bad[10] ^= 0xff;
    let events = klab::events::subscribe(64);
    let bootstrap = b.bootstrap();
    let injector = std::thread::spawn(move || {
        let seen = events.wait_for(
            Duration::from_secs(60),
            |e| matches!(e, klab::events::Event::Measuring { topic: t, .. } if t == topic),
        );
        assert!(seen.is_some(), "no measured window on {topic}");
        inject(&bootstrap, topic, &[bad, b"hello".to_vec(), vec![0u8; 300]]);
    });

    let w = Workload {
        rate: Some(5000.0),
        messages: None,
        duration: Some(Duration::from_secs(2)),
        topic: Some(topic.into()),
        partitions: 2,
        ..workload()
    };
    let m = measure(&mut *b, &w, &secret(), &StepOptions::default()).unwrap();
    injector.join().unwrap();
    let r = &m.result;
    assert!(r.complete, "{:?}", r.reason);
    assert_eq!(r.corrupt, 1);
    assert_eq!(r.foreign, 2);
    assert_eq!(r.lost, 0);
    assert_eq!(r.consumed, r.acked);
}

#[test]
fn a_step_on_a_used_topic_counts_only_its_own_records() {
    // Two loads on one named topic: the second must not stop at the
    // first's end-of-run markers (as when a JIT warm-up shared the
    // measured step's topic: 2,008 of 6,000 records read, "lost 0").
    let mut b = shared_broker();
    let first = Workload {
        rate: Some(5000.0),
        messages: Some(6000),
        warmup: Duration::ZERO,
        topic: Some("used-twice".into()),
        ..workload()
    };
    let second = Workload {
        messages: Some(2000),
        ..first.clone()
    };
    let mut counts = Vec::new();
    for w in [&first, &second] {
        let m = measure(&mut *b, w, &secret(), &StepOptions::default()).unwrap();
        let r = m.result;
        assert!(r.complete, "{:?}", r.reason);
        assert_eq!((r.lost, r.duplicated, r.foreign), (0, 0, 0));
        counts.push((r.acked, r.consumed));
    }
    assert_eq!(counts, [(6000, 6000), (2000, 2000)]);
}

#[test]
fn a_stalled_broker_shows_in_the_tail_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = start_broker(dir.path(), BrokerConfig::default());
    let pid = b.pid().unwrap() as i32;
    let w = Workload {
        rate: Some(2000.0),
        messages: None,
        duration: Some(Duration::from_secs(8)),
        warmup: Duration::from_secs(1),
        ..workload()
    };
    let events = klab::events::subscribe(64);
    let bootstrap = b.bootstrap();
    let stopper = std::thread::spawn(move || {
        // A stall of 2 s as soon as the measured window starts.
        wait_measuring(&events, &bootstrap, Duration::from_secs(60));
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        std::thread::sleep(Duration::from_secs(2)); // how long the stall lasts
        unsafe { libc::kill(pid, libc::SIGCONT) };
    });
    let m = measure(&mut b, &w, &secret(), &StepOptions::default()).unwrap();
    stopper.join().unwrap();
    let r = &m.result;
    assert!(r.complete, "{:?}", r.reason);
    assert_eq!((r.lost, r.duplicated, r.corrupt), (0, 0, 0));
    assert_eq!(r.consumed, r.acked);
    // The records due during the stall waited for it: open loop shows it.
    assert!(r.e2e_latency_ms.max >= 1900.0, "{:?}", r.e2e_latency_ms);
    assert!(
        r.publish_latency_ms.max >= 1900.0,
        "{:?}",
        r.publish_latency_ms
    );
    // About a quarter of the measured records were due during the stall.
    assert!(r.e2e_latency_ms.p90 >= 500.0, "{:?}", r.e2e_latency_ms);
}

#[test]
fn a_killed_broker_ends_the_run_incomplete_and_leaves_no_jvm() {
    let dir = tempfile::tempdir().unwrap();
    let needle = dir.path().to_string_lossy().to_string();
    let mut b = start_broker(dir.path(), BrokerConfig::default());
    let pid = b.pid().unwrap() as i32;
    let w = Workload {
        rate: Some(2000.0),
        messages: None,
        duration: Some(Duration::from_secs(60)),
        warmup: Duration::from_secs(1),
        ..workload()
    };
    let events = klab::events::subscribe(64);
    let bootstrap = b.bootstrap();
    let killer = std::thread::spawn(move || {
        wait_measuring(&events, &bootstrap, Duration::from_secs(60));
        // Until the consumer has read two seconds of measured records (the
        // 2,000 warm-up records and 4,000 more): on a busy machine it may
        // lag the producers by seconds, and a result needs records read.
        let seen = events.wait_for(Duration::from_secs(60), |e| {
            matches!(e, klab::events::Event::Second { bootstrap: b, measuring: true, consumed, .. } if *b == bootstrap && *consumed >= 6_000)
        });
        assert!(
            seen.is_some(),
            "the consumer read no measured record in 60 s"
        );
        unsafe { libc::kill(pid, libc::SIGKILL) };
        Instant::now()
    });
    let m = measure(&mut b, &w, &secret(), &StepOptions::default()).unwrap();
    let killed_at = killer.join().unwrap();
    assert!(
        killed_at.elapsed() < Duration::from_secs(30),
        "took {:?}",
        killed_at.elapsed()
    );
    let r = &m.result;
    assert!(!r.complete);
    let reason = r.reason.as_deref().unwrap_or("");
    assert!(reason.contains("killed by signal 9"), "{reason}");
    assert!(r.acked > 0, "what was measured before the kill is kept");
    assert!(r.e2e_latency_ms.count > 0);
    b.stop().unwrap();
    assert!(jvms_mentioning(&needle).is_empty());
}

#[test]
fn effective_config_reads_back_heap_and_io_threads() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = BrokerConfig {
        heap: Some(MemSize::mib(256)),
        ..Default::default()
    };
    cfg.properties.insert("num.io.threads".into(), "3".into());
    let mut b = start_broker(dir.path(), cfg);
    let eff = b.effective().clone();
    assert_eq!(eff["heap"].value.as_deref(), Some("256m"));
    assert_eq!(eff["num.io.threads"].value.as_deref(), Some("3"));
    assert_eq!(eff["num.io.threads"].source, "StaticBroker");

    // A live change in several steps (8 → 1 needs 3 → 1; 3 → 8 needs 3 → 6 → 8).
    let change = [("num.io.threads".to_string(), "8".to_string())].into();
    b.set_dynamic(&change).unwrap();
    assert_eq!(b.effective()["num.io.threads"].value.as_deref(), Some("8"));
    assert_eq!(b.effective()["num.io.threads"].source, "DynamicBroker");
    let change = [
        ("num.io.threads".to_string(), "1".to_string()),
        ("log.flush.interval.messages".to_string(), "1".to_string()),
    ]
    .into();
    b.set_dynamic(&change).unwrap();
    assert_eq!(b.effective()["num.io.threads"].value.as_deref(), Some("1"));
    assert_eq!(
        b.effective()["log.flush.interval.messages"]
            .value
            .as_deref(),
        Some("1")
    );

    // The result records what was asked and what the broker has.
    let w = Workload {
        rate: Some(1000.0),
        messages: Some(1000),
        ..workload()
    };
    let m = measure(&mut b, &w, &secret(), &StepOptions::default()).unwrap();
    assert_eq!(
        m.result.broker.effective["num.io.threads"].value.as_deref(),
        Some("1")
    );
    assert_eq!(
        m.result.broker.effective["heap"].value.as_deref(),
        Some("256m")
    );

    // And a restart with another heap is read back too.
    b.restart(&BrokerConfig {
        heap: Some(MemSize::mib(384)),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(b.effective()["heap"].value.as_deref(), Some("384m"));
    assert_eq!(b.effective()["num.io.threads"].value.as_deref(), Some("8"));
}

/// A broker with a tiny send buffer takes writes far faster than it serves
/// reads: the consumer falls behind. The step must still end, soon after
/// the producers, marked incomplete with the reason, and count nothing as
/// lost (the records are on the broker, just not read yet).
#[test]
fn a_consumer_that_falls_behind_ends_the_step_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = BrokerConfig::default();
    cfg.properties
        .insert("socket.send.buffer.bytes".into(), "8192".into());
    let mut b = start_broker(dir.path(), cfg);
    let w = Workload {
        rate: Some(20_000.0),
        messages: None,
        duration: Some(Duration::from_secs(3)),
        warmup: Duration::from_millis(500),
        message_bytes: 1024,
        partitions: 3,
        ..Workload::default()
    };
    let t0 = Instant::now();
    let m = measure(
        &mut b,
        &w,
        &secret(),
        &StepOptions {
            catch_up: Some(Duration::from_secs(2)),
            ..StepOptions::default()
        },
    )
    .unwrap();
    let r = &m.result;
    assert!(!r.complete, "the consumer kept up: {r:?}");
    let reason = r.reason.clone().unwrap_or_default();
    assert!(reason.contains("the consumer fell behind"), "{reason}");
    assert!(r.consumed < r.acked, "{} of {}", r.consumed, r.acked);
    assert_eq!((r.lost, r.duplicated, r.corrupt), (0, 0, 0));
    // Bounded: without the limit the backlog would take minutes to read.
    assert!(t0.elapsed() < Duration::from_secs(40), "{:?}", t0.elapsed());
}

/// Kafka 4.1 can hang in its shutdown hook when SIGTERM comes within
/// ~300 ms of a shrink of `num.io.threads` (a removed request handler takes
/// a live one's shutdown request). klab waits for the removed threads
/// before it stops the broker; without that, most of these stops ended in
/// SIGKILL after the grace period.
#[test]
fn stopping_right_after_shrinking_io_threads_is_clean() {
    use klab::broker::node::Stopped;
    let dir = tempfile::tempdir().unwrap();
    let mut b = start_broker(dir.path(), BrokerConfig::default());
    for io in ["4", "2", "1"] {
        let change = [("num.io.threads".to_string(), io.to_string())].into();
        b.set_dynamic(&change).unwrap();
        assert_eq!(b.effective()["num.io.threads"].value.as_deref(), Some(io));
        let started = Instant::now();
        assert_eq!(
            b.stop().unwrap(),
            Stopped::Clean,
            "stop after num.io.threads → {io} (took {:?}; see {})",
            started.elapsed(),
            b.log_path().display()
        );
        assert!(b.pid().is_none());
        // Same storage again: the dynamic value lives in the metadata log.
        b.restart(&BrokerConfig::default()).unwrap();
    }
    assert_eq!(b.stop().unwrap(), Stopped::Clean);
}

/// The consumer side as a lab sees it: consumers that each take 2 ms per
/// record share the partitions. Two of them (at most 1,000 records/s
/// together) fall behind an offered 1,500/s and the lag grows second by
/// second; four of them (2,000/s) keep it small. Nothing is lost either way.
#[test]
fn slow_consumers_share_the_partitions_and_their_lag_is_counted() {
    let mut b = shared_broker();
    let run = |b: &mut klab::broker::local::LocalBroker, consumers: u32| {
        let w = Workload {
            rate: Some(1_500.0),
            messages: None,
            duration: Some(Duration::from_secs(4)),
            warmup: Duration::from_millis(500),
            message_bytes: 256,
            partitions: 4,
            consumers,
            processing: Duration::from_millis(2),
            ..Workload::default()
        };
        let m = measure(b, &w, &secret(), &StepOptions::default()).unwrap();
        let r = m.result;
        assert!(r.complete, "{consumers} consumers: {:?}", r.reason);
        assert_eq!((r.lost, r.duplicated, r.corrupt), (0, 0, 0));
        assert_eq!(r.consumed, r.acked, "{consumers} consumers");
        assert_eq!(r.workload.consumers, consumers);
        assert!(
            !r.consumer_lag.is_empty(),
            "{consumers} consumers: no lag series"
        );
        r
    };
    let slow = run(&mut b, 2);
    // 500 records/s more due than read: over the 4 s window the lag climbs.
    let lag = &slow.consumer_lag;
    let max = *lag.iter().max().unwrap();
    assert!(max >= 1_200, "two consumers' lag {lag:?}");
    assert!(lag[0] < lag[3], "two consumers' lag does not grow: {lag:?}");
    // Read 2 ms apart per consumer: at most 1,000 records/s were read.
    assert!(slow.read_rate < 1_150.0, "read {}/s", slow.read_rate);
    let enough = run(&mut b, 4);
    let max4 = *enough.consumer_lag.iter().max().unwrap();
    assert!(
        max4 * 3 < max,
        "four consumers' lag {:?} vs two consumers' {lag:?}",
        enough.consumer_lag
    );
}

/// JSON records (each different, so a batch really compresses) are read
/// back whole and verified through each codec the producer may pick.
#[test]
fn json_records_arrive_whole_through_every_compression_codec() {
    let mut b = shared_broker();
    for codec in ["zstd", "lz4", "gzip", "snappy"] {
        let mut w = Workload {
            rate: Some(4_000.0),
            messages: None,
            duration: Some(Duration::from_secs(2)),
            warmup: Duration::from_millis(500),
            message_bytes: 1024,
            partitions: 3,
            payload: klab::model::Payload::Json,
            ..Workload::default()
        };
        w.producer.insert("compression.type".into(), codec.into());
        let m = measure(&mut *b, &w, &secret(), &StepOptions::default()).unwrap();
        let r = &m.result;
        assert!(r.complete, "{codec}: {:?}", r.reason);
        assert!(r.acked >= 8_000, "{codec}: {} acked", r.acked);
        assert_eq!(r.consumed, r.acked, "{codec}");
        assert_eq!((r.lost, r.corrupt, r.foreign), (0, 0, 0), "{codec}");
    }
}

/// Records the partition librdkafka delivered each keyed record to.
struct Placed(std::sync::Mutex<Vec<(Vec<u8>, i32)>>);

impl rdkafka::ClientContext for Placed {}

impl rdkafka::producer::ProducerContext for Placed {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &rdkafka::producer::DeliveryResult<'_>, _: ()) {
        use rdkafka::message::Message;
        if let Ok(m) = r {
            let key = m.key().unwrap_or_default().to_vec();
            self.0.lock().unwrap().push((key, m.partition()));
        }
    }
}

/// 6,000 records at 5,000/s over three partitions of `topic`, no warm-up:
/// where the records land is what the test looks at.
fn placed_load(topic: &str) -> Workload {
    Workload {
        rate: Some(5000.0),
        messages: Some(6000),
        warmup: Duration::ZERO,
        partitions: 3,
        topic: Some(topic.into()),
        ..workload()
    }
}

/// `w` measured with an idempotent producer, as Kafka's Java client is by
/// default: a retried request keeps its place, so any record out of order
/// is the load's fault (a cold broker once took a retry here, and a plain
/// producer then reorders records of a partition whatever their keys).
/// Every one of the 6,000 records is counted once.
fn measured_whole(
    b: &mut dyn klab::step::side::BrokerSide,
    w: &Workload,
) -> klab::model::StepResult {
    let mut w = w.clone();
    w.producer
        .insert("enable.idempotence".into(), "true".into());
    let m = measure(b, &w, &secret(), &StepOptions::default()).unwrap();
    let r = m.result;
    assert!(r.complete, "{:?}", r.reason);
    assert_eq!((r.acked, r.consumed), (6000, 6000));
    assert_eq!((r.lost, r.duplicated, r.reordered, r.failed), (0, 0, 0, 0));
    r
}

/// A plain consumer of the three partitions of `topic` from their start.
fn read_from_start(bootstrap: &str, topic: &str) -> rdkafka::consumer::BaseConsumer {
    let c: rdkafka::consumer::BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("{topic}-read-back"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    rdkafka::consumer::Consumer::assign(&c, &tpl).unwrap();
    c
}

/// Keyless records with the sticky partitioner go where librdkafka puts
/// them: one partition takes a run of consecutive records (twice
/// `linger.ms`, 10 ms by default) before the next, every partition gets
/// its share over a run, and the accounting holds (the end-of-run markers
/// learn from the delivery reports where the records went).
#[test]
fn sticky_records_fill_one_partition_at_a_time_and_are_all_counted() {
    use klab::load::payload::{Decoded, Decoder};
    use klab::model::Partitioner;
    use rdkafka::message::Message;
    let mut b = shared_broker();
    let topic = "sticky";
    let w = Workload {
        partitioner: Partitioner::Sticky,
        ..placed_load(topic)
    };
    let r = &measured_whole(&mut *b, &w);
    assert_eq!(r.workload.partitioner, Partitioner::Sticky);
    assert!(
        r.acked_per_partition.iter().all(|n| *n > 0),
        "every partition takes its turn: {:?}",
        r.acked_per_partition
    );

    // Read back: on each partition, how often the next record is the
    // producer's next one (round robin over three partitions: never).
    let c = read_from_start(&b.bootstrap(), topic);
    let mut dec = Decoder::new(&secret());
    let mut last: [Option<u64>; 3] = [None; 3];
    let (mut read, mut next_of_last) = (0u64, 0u64);
    let until = Instant::now() + Duration::from_secs(60);
    while read < 6000 && Instant::now() < until {
        let Some(m) = c.poll(Duration::from_millis(500)) else {
            continue;
        };
        let m = m.unwrap();
        let Decoded::Record(h) = dec.decode(m.payload()) else {
            continue;
        };
        let p = m.partition() as usize;
        if last[p].is_some_and(|s| h.seq == s + 1) {
            next_of_last += 1;
        }
        last[p] = Some(h.seq);
        read += 1;
    }
    assert_eq!(read, 6000);
    assert!(
        next_of_last * 10 >= read * 9,
        "{next_of_last} of {read} records follow their predecessor on its partition"
    );
}

/// Consumers as one group: under the classic protocol (range, eager) and
/// KIP-848's (`group.protocol=consumer`, the broker assigns), two members
/// share three partitions, the step waits until each holds one and all
/// are held, and every record is counted once. The result lists each
/// member's rebalance callbacks; Kafka's own group tool names the same
/// protocol and two members.
#[test]
fn a_group_of_two_consumers_shares_the_partitions_under_either_protocol() {
    use klab::model::GroupProtocol;
    let mut b = shared_broker();
    for protocol in [GroupProtocol::Classic, GroupProtocol::Consumer] {
        let w = Workload {
            rate: Some(2000.0),
            messages: Some(4000),
            warmup: Duration::ZERO,
            partitions: 3,
            consumers: 2,
            group: Some(protocol),
            ..workload()
        };
        let m = measure(&mut *b, &w, &secret(), &StepOptions::default()).unwrap();
        let r = &m.result;
        assert!(r.complete, "{protocol}: {:?}", r.reason);
        assert_eq!((r.acked, r.consumed), (4000, 4000), "{protocol}");
        assert_eq!((r.lost, r.duplicated, r.reordered), (0, 0, 0), "{protocol}");
        let mut held: Vec<std::collections::BTreeSet<i32>> = vec![Default::default(); 2];
        for e in &r.rebalances {
            let k = e.consumer as usize - 1;
            match e.what.as_str() {
                "assigned" => held[k].extend(e.partitions.iter().copied()),
                "revoked" => e.partitions.iter().for_each(|p| {
                    held[k].remove(p);
                }),
                other => panic!("{protocol}: {other} {:?}", e.error),
            }
            assert!(
                e.at_s <= 0.5,
                "{protocol}: the joins come before the load: {e:?}"
            );
        }
        assert!(
            held.iter().all(|h| !h.is_empty()),
            "{protocol}: {:?}",
            r.rebalances
        );
        let all: std::collections::BTreeSet<i32> = held.iter().flatten().copied().collect();
        assert_eq!(all.len(), 3, "{protocol}: {:?}", r.rebalances);
        assert!(held[0].is_disjoint(&held[1]), "{protocol}: {held:?}");
    }
}

/// Consumer events on the window's timeline, under the classic protocol:
/// a member that leaves gives its partition up at once and the other takes
/// it over at the next rebalance; a member that dies leaves its partition
/// unread until its session times out (6 s here), and the other reads
/// again what it had read after its last commit: duplicates, never a
/// loss. Each event's record says when the rebalance began and ended,
/// that one partition moved, and how long it went unread.
#[test]
fn a_consumer_that_leaves_or_dies_hands_its_partition_over_and_nothing_is_lost() {
    use klab::model::{FaultAction, FaultTarget, GroupProtocol};
    let mut b = shared_broker();
    for action in [FaultAction::Leave, FaultAction::Die] {
        let mut w = Workload {
            rate: Some(1000.0),
            messages: None,
            duration: Some(Duration::from_secs(12)),
            warmup: Duration::from_secs(1),
            partitions: 2,
            consumers: 2,
            group: Some(GroupProtocol::Classic),
            faults: vec![klab::model::FaultSpec {
                at: Duration::from_secs(2),
                action,
                broker: FaultTarget::Consumer(2),
                duration: None,
                restart_after: None,
                latency: None,
                bandwidth: None,
            }],
            ..workload()
        };
        w.consumer
            .insert("session.timeout.ms".into(), "6000".into());
        w.validate().unwrap();
        let m = measure(&mut *b, &w, &secret(), &StepOptions::default()).unwrap();
        let r = &m.result;
        let a = action.as_str();
        assert!(r.complete, "{a}: {:?}", r.reason);
        assert_eq!((r.lost, r.reordered), (0, 0), "{a}");
        let f = &r.faults[0];
        assert_eq!((f.consumer, &f.error), (Some(2), &None), "{a}");
        let g = f.rebalance.as_ref().expect("a consumer event's rebalance");
        let (began, ended) = (g.began_s.unwrap(), g.ended_s.unwrap());
        assert_eq!(g.partitions_moved, 1, "{a}: {g:?} {:?}", r.rebalances);
        let longest = g.paused.first().expect("the moved partition paused");
        match action {
            // The leaver's revocation comes with its close.
            FaultAction::Leave => {
                assert!((2.0..2.5).contains(&began), "{a}: {g:?}");
                assert!(longest.seconds < 5.0, "{a}: {g:?}");
            }
            // Nobody hears of a death until the session times out.
            _ => {
                assert!(began >= 2.0 + 5.0, "{a}: {g:?}");
                assert!(longest.seconds >= 5.0, "{a}: {g:?}");
                assert_eq!(
                    g.duplicates, r.duplicated,
                    "{a}: every duplicate is the death's"
                );
            }
        }
        assert!(ended >= began && ended < 12.0, "{a}: {g:?}");
    }
}

/// Keyed records land where Kafka's Java partitioner puts their keys: the
/// per-partition counts of a keyed run are what murmur2 predicts for the
/// producer's (seeded, so known) key sequence, nothing is lost or counted
/// out of order, and librdkafka's own Java-compatible partitioner
/// (`murmur2_random`) places each key where klab's murmur2 does.
#[test]
fn keyed_records_land_where_the_java_partitioner_puts_them() {
    use klab::load::keys::{KeyChooser, kafka_partition};
    use klab::model::KeyDist;
    let mut b = shared_broker();
    let topic = "keyed";
    let w = Workload {
        keys: Some(4),
        ..placed_load(topic)
    };
    let r = &measured_whole(&mut *b, &w);
    // The one producer's keys, drawn again from its seed.
    let mut keys = KeyChooser::new(4, KeyDist::Uniform, 3, 0);
    let mut want = vec![0u64; 3];
    for _ in 0..6000 {
        want[keys.next_key().1 as usize] += 1;
    }
    assert_eq!(r.acked_per_partition, want);
    assert!(
        want.iter().all(|n| *n != 2000),
        "round-robin would give 2000 each: {want:?}"
    );

    // Read back: every klab record carries its key, on that key's partition.
    let c = read_from_start(&b.bootstrap(), topic);
    let mut keyed = vec![0u64; 3];
    let until = Instant::now() + Duration::from_secs(60);
    while keyed.iter().sum::<u64>() < 6000 && Instant::now() < until {
        let Some(m) = c.poll(Duration::from_millis(500)) else {
            continue;
        };
        use rdkafka::message::Message;
        let m = m.unwrap();
        if let Some(k) = m.key() {
            assert_eq!(m.partition(), kafka_partition(k, 3), "key {k:?}");
            keyed[m.partition() as usize] += 1;
        }
    }
    assert_eq!(keyed, want, "keyed records read back per partition");

    // librdkafka's Java-compatible partitioner on the same topic.
    let p: rdkafka::producer::BaseProducer<Placed> = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("partitioner", "murmur2_random")
        .create_with_context(Placed(Default::default()))
        .unwrap();
    let sent: Vec<Vec<u8>> = (0..100).map(klab::model::key_bytes).collect();
    for k in &sent {
        p.send(
            BaseRecord::<[u8], _>::to(topic)
                .key(k.as_slice())
                .payload("x"),
        )
        .unwrap();
    }
    p.flush(Duration::from_secs(30)).unwrap();
    let placed = p.context().0.lock().unwrap().clone();
    assert_eq!(placed.len(), sent.len());
    for (k, part) in placed {
        assert_eq!(
            part,
            kafka_partition(&k, 3),
            "key {}",
            String::from_utf8_lossy(&k)
        );
    }
}
