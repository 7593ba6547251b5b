pub mod hist;
pub mod progress;
pub mod report;
pub mod table;
