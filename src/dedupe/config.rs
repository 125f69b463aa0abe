//! What the layer, its services and their futures share: the configuration, and what to
//! do when the store fails.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;

use super::store::Store;

/// What the layer does when its store fails (unreachable, too slow, or unreadable).
///
/// ```
/// use tower_twilio_signature::dedupe::{DedupeLayer, StoreFailure};
///
/// let layer = DedupeLayer::new().with_store_failure(StoreFailure::Closed);
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StoreFailure {
    /// Run the handler as if the layer were not there, and log the error (with the
    /// `tracing` feature): a retry may then run it again. The default.
    #[default]
    Open,
    /// Answer `503 Service Unavailable` without running the handler; Twilio retries later.
    Closed,
}

/// The configuration shared by the layer, its services and their futures.
#[derive(Clone)]
pub(super) struct Config {
    pub(super) store: Arc<dyn Store>,
    pub(super) store_name: &'static str,
    pub(super) ttl: Duration,
    pub(super) claim_ttl: Duration,
    pub(super) wait: Duration,
    pub(super) body_limit: usize,
    pub(super) stored_headers: Vec<HeaderName>,
    pub(super) on_failure: StoreFailure,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("store", &self.store_name)
            .field("ttl", &self.ttl)
            .field("claim_ttl", &self.claim_ttl)
            .field("wait", &self.wait)
            .field("body_limit", &self.body_limit)
            .field("stored_headers", &self.stored_headers)
            .field("on_failure", &self.on_failure)
            .finish()
    }
}
