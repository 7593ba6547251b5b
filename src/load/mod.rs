pub mod client_log;
pub mod clock;
pub mod consumer;
pub mod outcome;
pub mod payload;
pub mod producer;
pub mod tally;
pub mod topic_handle;
