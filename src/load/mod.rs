//! The load: producers, the verifying consumer, the record format and
//! what they hand over.

pub mod client_log;
pub mod clock;
pub mod consumer;
pub mod group;
pub mod keys;
pub mod lag;
pub mod outcome;
pub mod payload;
pub mod producer;
pub mod schedule;
pub mod tally;
pub mod topic_handle;

/// Checks one librdkafka client setting (`--producer-set`, a lab's
/// `[workload.producer]`, ...) the way the client will take it, its name
/// and its value, without creating a client or connecting: a typo is
/// refused before any broker starts. `Err` is librdkafka's own words.
pub fn check_client_setting(key: &str, value: &str) -> Result<(), String> {
    let mut c = rdkafka::ClientConfig::new();
    c.set(key, value);
    match c.create_native_config() {
        Ok(_) => Ok(()),
        Err(rdkafka::error::KafkaError::ClientConfig(_, msg, _, _)) => Err(msg),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn client_settings_are_checked_by_librdkafka_itself() {
        assert_eq!(super::check_client_setting("linger.ms", "5"), Ok(()));
        let e = super::check_client_setting("lingr.ms", "5").unwrap_err();
        assert!(e.contains("No such configuration property"), "{e}");
        let e = super::check_client_setting("linger.ms", "soon").unwrap_err();
        assert!(e.contains("Invalid value"), "{e}");
    }
}
