//! Fuzz targets for tower-twilio-signature. The target bodies live with the crate's tests
//! (`tests/fuzz_targets/mod.rs`), whose short pass runs them on random inputs at every
//! test run; the package ships them, so its tests build without this crate.
#[path = "../../tests/fuzz_targets/mod.rs"]
pub mod targets;
