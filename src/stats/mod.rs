pub mod hist;
pub mod plot;
pub mod progress;
pub mod report;
pub mod table;
