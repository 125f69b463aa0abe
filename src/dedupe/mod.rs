//! Retries answered once (feature `dedupe`).
//!
//! Twilio delivers a webhook at least once: when an answer is slow or fails, it sends the
//! request again, and every delivery of one event carries the same
//! `I-Twilio-Idempotency-Token` header. [`DedupeLayer`] runs the handler for the first
//! delivery and answers the others with what it answered:
//!
//! - **First delivery:** claims the token in the store, runs the inner service, and
//!   stores its answer for a TTL ([`DedupeLayer::with_ttl`], one hour by default): the
//!   status, the headers in [`DEFAULT_STORED_HEADERS`] (`Content-Type` and the others
//!   that say what the body is; add more with [`DedupeLayer::with_stored_header`]) and
//!   the body, read up to [`DedupeLayer::with_body_limit`] (64 KiB by default). A server
//!   error (5xx), `408` or `429` is not stored: the claim is released and Twilio's retry
//!   runs the handler for real. Neither is a larger body: it goes to Twilio as it
//!   streams, the claim is released, and a retry runs the handler again. So is an error
//!   of the inner service, or a request dropped before its answer. An answer that is
//!   stored is sent once its body has been read and stored.
//! - **A delivery while the first still runs:** waits for its answer, at most
//!   [`DedupeLayer::with_wait`] (5 s by default), then replays it; if the first is still
//!   running, answers `409 Conflict` (Twilio tries again later); if the first failed,
//!   claims the token and runs the handler itself.
//! - **A later delivery:** gets the stored answer, with `Idempotent-Replayed: true`,
//!   without calling the inner service.
//!
//! A request without a [`VerifiedWebhook`](crate::VerifiedWebhook) extension, or whose
//! webhook has no token, goes straight to the inner service.
//!
//! # Put it inside the signature layer
//!
//! The layer reads the token from the `VerifiedWebhook` that
//! [`TwilioSignatureLayer`](crate::TwilioSignatureLayer) adds, so it must sit *inside*
//! that layer: with axum, `.layer(DedupeLayer::new())` *before*
//! `.layer(TwilioSignatureLayer::new(..))`; with `ServiceBuilder`, after it. Only requests
//! that passed the signature check can claim a token or read an answer.
//!
//! Twilio does not sign the token, so answers are keyed by the token, the URL the request
//! was signed for *and* its signature. Every delivery of one event carries the same URL
//! and parameters, so the same signature, and Twilio's retries share the key. A captured
//! request sent again with another event's token is a new event: it cannot read that
//! event's answer, nor, by arriving first, claim the token so that the genuine delivery
//! gets the captured request's answer and its handler never runs. The same token sent to
//! another URL (a fallback URL) is handled there.
//!
//! # Stores
//!
//! - [`MemoryStore`], the default: in this process, bounded in answers and bytes. Right
//!   for one instance.
//! - `RedisStore` (feature `redis`): shared by every replica, so a retry that reaches
//!   another instance is still answered once.
//! - Any [`Store`] of your own.
//!
//! When the store fails, the layer runs the handler as if it were not there (and logs
//! with the `tracing` feature), or answers 503 with [`StoreFailure::Closed`].
//!
//! # Example
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::sync::Arc;
//! use axum::{body::Body, http::{Request, StatusCode}, routing::post, Router};
//! use tower::ServiceExt;
//! use tower_twilio_signature::{dedupe::DedupeLayer, sign, TwilioSignatureLayer, UrlSource};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let runs = Arc::new(AtomicUsize::new(0));
//! let handler = {
//!     let runs = Arc::clone(&runs);
//!     move || async move {
//!         runs.fetch_add(1, Ordering::SeqCst);
//!         "<Response/>"
//!     }
//! };
//! let app = Router::new()
//!     .route("/sms", post(handler))
//!     .layer(DedupeLayer::new()) // inside: added first
//!     .layer(
//!         TwilioSignatureLayer::new("auth token")?
//!             .url_source(UrlSource::base_url("https://hooks.example.com")?),
//!     );
//!
//! let delivery = || {
//!     Request::post("/sms")
//!         .header("content-type", "application/x-www-form-urlencoded")
//!         .header("x-twilio-signature", sign("auth token", "https://hooks.example.com/sms", [("Body", "hi")]))
//!         .header("i-twilio-idempotency-token", "RE0123456789abcdef")
//!         .body(Body::from("Body=hi"))
//!         .unwrap()
//! };
//! let first = app.clone().oneshot(delivery()).await?;
//! assert_eq!(first.status(), StatusCode::OK);
//! assert!(first.headers().get("idempotent-replayed").is_none());
//!
//! let retry = app.oneshot(delivery()).await?;
//! assert_eq!(retry.status(), StatusCode::OK);
//! assert_eq!(retry.headers()["idempotent-replayed"], "true");
//! assert_eq!(retry.headers()["content-type"], "text/plain; charset=utf-8");
//! assert_eq!(axum::body::to_bytes(retry.into_body(), 1024).await?, "<Response/>");
//! assert_eq!(runs.load(Ordering::SeqCst), 1);
//! # Ok(()) }
//! ```

mod body;
mod clock;
mod config;
mod future;
mod layer;
mod memory;
#[cfg(feature = "redis")]
mod redis_store;
mod store;

pub use self::body::DedupeBody;
pub use self::config::StoreFailure;
pub use self::future::ResponseFuture;
pub use self::layer::{
    Dedupe, DedupeLayer, DEFAULT_BODY_LIMIT, DEFAULT_CLAIM_TTL, DEFAULT_STORED_HEADERS,
    DEFAULT_TTL, DEFAULT_WAIT,
};
pub use self::memory::{MemoryStore, DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES};
#[cfg(feature = "redis")]
pub use self::redis_store::{
    RedisStore, DEFAULT_KEY_PREFIX, DEFAULT_POLL_INTERVAL, DEFAULT_REDIS_TIMEOUT,
};
pub use self::store::{Claim, ClaimId, Store, StoreError, StoreFuture, StoredResponse, Waited};
