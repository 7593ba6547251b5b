//! Where librdkafka's own log lines go. A client that loses its broker
//! (a fault killed it, a restart is rolling through) logs every failed
//! connection attempt as an error, several per second per client: during a
//! fault that is the expected state, and what it costs is measured (failed,
//! lost, the fault's window), so those lines go to debug. Everything else
//! keeps librdkafka's level.

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// Messages a client prints while a broker is away or still loading.
fn expected_while_a_broker_is_away(msg: &str) -> bool {
    const SIGNS: [&str; 7] = [
        "Connection refused",
        "Connect to ipv4",
        "Disconnected",
        "transport failure",
        "Coordinator load in progress",
        "all brokers are down",
        "Timed out",
    ];
    SIGNS.iter().any(|s| msg.contains(s))
}

/// One librdkafka log line into `tracing`.
pub fn log_line(level: RDKafkaLogLevel, fac: &str, msg: &str) {
    if expected_while_a_broker_is_away(msg) {
        tracing::debug!(target: "librdkafka", "{fac}: {msg}");
        return;
    }
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", "{fac}: {msg}"),
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", "{fac}: {msg}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", "{fac}: {msg}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", "{fac}: {msg}"),
    }
}

/// One client-wide error (librdkafka's error callback) into `tracing`.
pub fn error_line(error: &KafkaError, reason: &str) {
    let transport = matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::OperationTimedOut
        )
    );
    if transport || expected_while_a_broker_is_away(reason) {
        tracing::debug!(target: "librdkafka", "{error}: {reason}");
    } else {
        tracing::error!(target: "librdkafka", "{error}: {reason}");
    }
}

/// A client context with nothing but this routing (the consumer's).
pub struct QuietContext;

impl ClientContext for QuietContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_line(level, fac, log_message);
    }
    fn error(&self, error: KafkaError, reason: &str) {
        error_line(&error, reason);
    }
}

impl rdkafka::consumer::ConsumerContext for QuietContext {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connection_is_expected_and_a_bad_config_is_not() {
        assert!(expected_while_a_broker_is_away(
            "127.0.0.1:43155/1: Connect to ipv4#127.0.0.1:43155 failed: Connection refused"
        ));
        assert!(!expected_while_a_broker_is_away(
            "Configuration property \"foo\" not supported"
        ));
    }
}
