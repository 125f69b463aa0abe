#![doc = include_str!("../README.md")]
#![deny(unsafe_code, unreachable_pub)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod auth;
mod body;
#[cfg(feature = "dedupe")]
#[cfg_attr(docsrs, doc(cfg(feature = "dedupe")))]
pub mod dedupe;
mod error;
mod future;
mod headers;
mod keys;
mod layer;
mod params;
mod request;
mod service;
mod signature;
mod url;
mod verified;
mod verifier;

pub use crate::auth::{DigestAlgorithm, DigestSettings};
pub use crate::body::VerifiedBody;
pub use crate::error::{
    ConfigError, DefaultRejection, RejectionResponse, SignatureError, SignatureErrorKind,
};
pub use crate::future::ResponseFuture;
pub use crate::keys::{Algorithm, MatchedKey, UnsupportedAlgorithm};
pub use crate::layer::TwilioSignatureLayer;
pub use crate::request::DEFAULT_BODY_LIMIT;
pub use crate::service::TwilioSignature;
pub use crate::signature::{
    body_sha256, sign, sign_body, sign_url, sign_with, url_with_body_sha256,
};
pub use crate::url::UrlSource;
pub use crate::verified::VerifiedWebhook;
pub use crate::verifier::{AccountTokens, Verifier};
