//! Fuzz targets for tower-twilio-signature. The target bodies live in `targets.rs`, which
//! the crate's own test suite also runs on random inputs for a short pass.
#[path = "targets.rs"]
pub mod targets;
