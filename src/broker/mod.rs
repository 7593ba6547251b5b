pub mod admin;
pub mod apply;
pub mod dynamic;
pub mod external;
pub mod kafka_home;
pub mod knobs;
pub mod local;
pub mod render;
