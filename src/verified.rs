//! What a verified request carries to the inner service.

use http::HeaderValue;

use crate::keys::{Algorithm, MatchedKey};
use crate::signature::SignatureBytes;

/// Proof that a request was verified, inserted into its extensions before the inner
/// service runs.
///
/// Read it with `Extension<VerifiedWebhook>`, or, with the `axum` feature, as an extractor
/// of its own (which answers 500 if the layer is missing, so a wiring mistake is loud). In
/// [report-only mode](crate::TwilioSignatureLayer::report_only) a request that failed the
/// check carries a [`SignatureError`](crate::SignatureError) instead: take
/// `Option<VerifiedWebhook>` there.
///
/// ```
/// use tower_twilio_signature::{sign, MatchedKey, Verifier};
///
/// let url = "https://example.com/sms";
/// let header = sign("token", url, [("Body", "hi")]);
/// let verified = Verifier::new("token")?.verify_form(url, [("Body", "hi")], &header, None).unwrap();
/// assert_eq!(verified.url(), url);
/// assert_eq!(verified.key(), &MatchedKey::AuthToken(0));
/// assert_eq!(verified.idempotency_token(), None);
/// # Ok::<(), tower_twilio_signature::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedWebhook {
    url: String,
    key: MatchedKey,
    algorithm: Algorithm,
    /// Shares the request header's bytes rather than copying them.
    idempotency_token: Option<HeaderValue>,
    /// The `X-Twilio-Signature` that matched, decoded. Twilio signs every delivery of one
    /// event alike, so it tells a retry from another request given the same token.
    signature: SignatureBytes,
}

impl VerifiedWebhook {
    pub(crate) fn new(
        url: String,
        key: MatchedKey,
        algorithm: Algorithm,
        idempotency_token: Option<HeaderValue>,
        signature: SignatureBytes,
    ) -> Self {
        Self {
            url,
            key,
            algorithm,
            idempotency_token,
            signature,
        }
    }

    /// The URL whose signature matched, as Twilio signed it.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Which configured key matched.
    #[must_use]
    pub const fn key(&self) -> &MatchedKey {
        &self.key
    }

    /// The algorithm of the signature.
    #[must_use]
    pub const fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The `I-Twilio-Idempotency-Token` header, if the request had one. Twilio does not
    /// sign it: use it to drop retries of a request already handled, not as proof.
    #[must_use]
    pub fn idempotency_token(&self) -> Option<&str> {
        self.idempotency_token.as_ref()?.to_str().ok()
    }

    /// The signature that matched, as raw MAC bytes: part of the dedupe layer's key.
    #[cfg_attr(not(feature = "dedupe"), allow(dead_code))]
    pub(crate) fn signature(&self) -> &[u8] {
        self.signature.as_slice()
    }
}

#[cfg(feature = "axum")]
mod extract {
    use axum::extract::{FromRequestParts, OptionalFromRequestParts};
    use axum::http::request::Parts;
    use axum::http::StatusCode;

    use super::VerifiedWebhook;

    impl<S: Send + Sync> FromRequestParts<S> for VerifiedWebhook {
        type Rejection = (StatusCode, &'static str);

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Self, Self::Rejection> {
            parts.extensions.get::<Self>().cloned().ok_or((
                StatusCode::INTERNAL_SERVER_ERROR,
                "VerifiedWebhook missing: is TwilioSignatureLayer applied to this route?",
            ))
        }
    }

    impl<S: Send + Sync> OptionalFromRequestParts<S> for VerifiedWebhook {
        type Rejection = std::convert::Infallible;

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Option<Self>, Self::Rejection> {
            Ok(parts.extensions.get::<Self>().cloned())
        }
    }
}
