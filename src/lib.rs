//! Tower middleware that lets only genuine Twilio webhooks reach your service.
//!
//! Twilio signs every webhook with `X-Twilio-Signature`: an HMAC of the URL it called and
//! the form parameters it sent (or, for JSON bodies, of the URL carrying `bodySHA256`).
//! [`TwilioSignatureLayer`] checks that signature before your handler runs: it buffers the
//! body (up to a limit), rebuilds the public URL Twilio called, compares in constant time,
//! and answers 403 without calling the inner service when anything is off.
//!
//! ```
//! use axum::{body::Body, http::{Request, StatusCode}, routing::post, Form, Router};
//! use std::collections::HashMap;
//! use tower::ServiceExt;
//! use tower_twilio_signature::{sign, TwilioSignatureLayer, VerifiedWebhook};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let app = Router::new()
//!     .route("/sms", post(|_: VerifiedWebhook, Form(f): Form<HashMap<String, String>>| async move {
//!         format!("got {}", f["Body"])
//!     }))
//!     .layer(TwilioSignatureLayer::new("auth token")?.public_base_url("https://hooks.example.com")?);
//!
//! // What Twilio sends.
//! let header = sign("auth token", "https://hooks.example.com/sms", [("Body", "hello")]);
//! let request = |sig: &str| {
//!     Request::post("/sms")
//!         .header("content-type", "application/x-www-form-urlencoded")
//!         .header("x-twilio-signature", sig)
//!         .body(Body::from("Body=hello"))
//!         .unwrap()
//! };
//! let ok = app.clone().oneshot(request(&header)).await?;
//! assert_eq!(ok.status(), StatusCode::OK);
//!
//! // A forgery never reaches the handler.
//! let forged = app.oneshot(request("bm90IGEgcmVhbCBzaWduYXR1cmU=")).await?;
//! assert_eq!(forged.status(), StatusCode::FORBIDDEN);
//! # Ok(()) }
//! ```
//!
//! The README covers choosing the URL source behind proxies, SharedKeys and token
//! rotation, statuses, and the classic causes of a mismatch.
//!
//! # Features
//! - `axum` (default): `OriginalUri` support under `Router::nest`, and
//!   [`VerifiedWebhook`] as an extractor.
//! - `tracing`: logs why a request was refused and the URLs tried, at `debug`. Secrets are
//!   never logged.
//! - `dedupe`: [`dedupe::DedupeLayer`], which runs each webhook once and answers Twilio's
//!   retries with the stored answer; `redis` adds a Redis store shared by replicas.
#![deny(unsafe_code, unreachable_pub)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
#[cfg(feature = "dedupe")]
pub mod dedupe;
mod error;
mod form;
mod future;
mod keys;
mod layer;
mod scratch;
mod signature;
mod url;
mod verified;

pub use crate::body::VerifiedBody;
pub use crate::error::{
    ConfigError, DefaultRejection, RejectionResponse, SignatureError, SignatureErrorKind,
};
pub use crate::future::ResponseFuture;
pub use crate::keys::{Algorithm, MatchedKey, UnsupportedAlgorithm};
pub use crate::layer::{TwilioSignature, TwilioSignatureLayer, DEFAULT_BODY_LIMIT};
pub use crate::signature::{body_sha256, sign, sign_with, url_with_body_sha256, Verifier};
pub use crate::verified::VerifiedWebhook;

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
