//! How each tool of the bench is started: Kafka's perf tools with the JVM
//! flags of Kafka's own scripts, and klab's `produce` and `consume`, all
//! with the same record size, acks, linger.ms, batch.size and partitions.

use super::model::BenchOptions;
use std::path::PathBuf;
use std::process::Command;

/// JVM flags Kafka's own `kafka-*-perf-test.sh` scripts use
/// (KAFKA_HEAP_OPTS=-Xmx512M and KAFKA_JVM_PERFORMANCE_OPTS), plus an
/// English locale so the numbers they print parse the same everywhere.
const PEER_JVM_FLAGS: &[&str] = &[
    "-Xmx512M",
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15",
    "-Djava.awt.headless=true",
    "-Duser.language=en",
    "-Duser.country=US",
];

/// Everything needed to start a tool against the bench's broker.
pub struct Tools {
    pub opts: BenchOptions,
    pub bootstrap: String,
    pub java: PathBuf,
    pub classpath: String,
    pub log4j: PathBuf,
    /// The HMAC secret klab's producer and consumer share (hex).
    pub secret_hex: String,
}

impl Tools {
    fn java_tool(&self, class: &str) -> Command {
        let mut c = Command::new(&self.java);
        c.args(PEER_JVM_FLAGS)
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                self.log4j.display()
            ))
            .args(["-cp", &self.classpath])
            .arg(format!("org.apache.kafka.tools.{class}"));
        c
    }

    pub fn klab_cmd(&self) -> Command {
        let mut c = Command::new(&self.opts.klab_exe);
        c.env("KLAB_SECRET", &self.secret_hex)
            .env("RUST_LOG", "warn")
            .env_remove("KLAB_JSON");
        c
    }

    pub fn producer_props(&self) -> Vec<String> {
        vec![
            format!("bootstrap.servers={}", self.bootstrap),
            "acks=all".into(),
            format!("linger.ms={}", self.opts.linger_ms),
            format!("batch.size={}", self.opts.batch_size),
        ]
    }

    pub fn peer_producer_cmd(&self, topic: &str, records: u64) -> Command {
        let mut c = self.java_tool("ProducerPerformance");
        c.args(["--topic", topic, "--num-records", &records.to_string()])
            .args(["--record-size", &self.opts.record_bytes.to_string()])
            .args(["--throughput", "-1", "--producer-props"])
            .args(self.producer_props());
        c
    }

    pub fn klab_producer_cmd(&self, topic: &str, records: u64) -> Command {
        let mut c = self.klab_cmd();
        c.args(["produce", "--bootstrap", &self.bootstrap, "--topic", topic])
            .args(["--partitions", &self.opts.partitions.to_string()])
            .args([
                "--max",
                "--messages",
                &records.to_string(),
                "--warmup",
                "0s",
            ])
            .args(["--message-bytes", &self.opts.record_bytes.to_string()])
            .args(["--acks", "all", "--wait-topic", "60s"])
            // Keyless records where librdkafka puts them, as both peers
            // (rdkafka_performance and the Java client) do by default.
            .args(["--partitioner", "sticky"])
            .args([
                "--producer-set",
                &format!("linger.ms={}", self.opts.linger_ms),
            ])
            .args([
                "--producer-set",
                &format!("batch.size={}", self.opts.batch_size),
            ]);
        c
    }

    /// librdkafka's benchmark: one producer instance (one connection per
    /// broker, as klab's), `-c` records of `-s` bytes, acks and the batching
    /// settings as every producer of the bench.
    pub fn rdkafka_producer_cmd(&self, topic: &str, records: u64) -> Command {
        let mut c = Command::new(&self.opts.rdkafka_performance);
        c.args(["-P", "-t", topic, "-b", &self.bootstrap])
            .args(["-s", &self.opts.record_bytes.to_string()])
            .args(["-c", &records.to_string(), "-a", "all"])
            .args(["-X", &format!("linger.ms={}", self.opts.linger_ms)])
            .args(["-X", &format!("batch.size={}", self.opts.batch_size)]);
        c
    }

    pub fn peer_consumer_cmd(&self, topic: &str, records: u64) -> Command {
        let mut c = self.java_tool("ConsumerPerformance");
        c.args(["--bootstrap-server", &self.bootstrap, "--topic", topic])
            .args(["--messages", &records.to_string(), "--timeout", "30000"]);
        c
    }

    pub fn klab_consumer_cmd(&self, topic: &str) -> Command {
        let mut c = self.klab_cmd();
        c.args(["consume", "--bootstrap", &self.bootstrap, "--topic", topic])
            .args(["--producers", "1", "--timeout", "300s"]);
        c
    }

    pub fn peer_latency_cmd(&self, topic: &str) -> Command {
        let mut c = self.java_tool("EndToEndLatency");
        c.args([
            self.bootstrap.as_str(),
            topic,
            &self.opts.latency_messages_peer.to_string(),
            "all",
            &self.opts.record_bytes.to_string(),
        ]);
        c
    }
}

/// A command as a shell line, for reproducing a run by hand.
pub fn command_line(c: &Command) -> String {
    let mut parts = vec![c.get_program().to_string_lossy().to_string()];
    parts.extend(c.get_args().map(|a| {
        let s = a.to_string_lossy().to_string();
        if s.contains(' ') || s.contains('*') {
            format!("'{s}'")
        } else {
            s
        }
    }));
    parts.join(" ")
}
