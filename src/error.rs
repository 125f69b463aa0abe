//! Request errors, configuration errors and the rejection responses built from them.

use std::error::Error as StdError;
use std::fmt;

use http::{header, HeaderValue, Response, StatusCode};

/// Why a request was refused.
///
/// Every rejection response produced by the layer carries one of these in its
/// extensions, custom rejections included, so an outer layer or a test can see why. In
/// [report-only mode](crate::TwilioSignatureLayer::report_only), a request that would have
/// been refused with 403 reaches the inner service with one in its own extensions.
///
/// ```
/// use tower_twilio_signature::{SignatureError, SignatureErrorKind};
/// use http::StatusCode;
///
/// let err = SignatureError::new(SignatureErrorKind::Mismatch);
/// assert_eq!(err.kind(), SignatureErrorKind::Mismatch);
/// assert_eq!(err.status(), StatusCode::FORBIDDEN);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureError {
    kind: SignatureErrorKind,
}

/// The kinds of [`SignatureError`].
///
/// New kinds may be added; match with a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignatureErrorKind {
    /// No `X-Twilio-Signature` header, or an empty one.
    MissingHeader,
    /// The signature header is repeated, not ASCII, or not a base64 MAC of the right length,
    /// or the `X-Twilio-Webhooks-Signature-Settings` header cannot be parsed.
    MalformedHeader,
    /// The settings header names a SharedKey id this layer does not hold, or the request
    /// has no settings header and only SharedKeys are configured.
    UnknownKeyId,
    /// The settings header names an algorithm other than `HMAC_SHA1` or `HMAC_SHA256`.
    UnsupportedAlgorithm,
    /// No key and no candidate URL produce the signature that was sent.
    Mismatch,
    /// The signature is valid for the URL, but `bodySHA256` does not match the body.
    BodyHashMismatch,
    /// The query carries `bodySHA256` more than once.
    AmbiguousBodyHash,
    /// A non-empty body that is neither a form nor covered by `bodySHA256`.
    UnsignedBody,
    /// The form body or the request cannot be read as the signature requires
    /// (percent-decoded text that is not UTF-8 in the form body or in the query of a
    /// WebSocket handshake, conflicting `Content-Type` headers).
    MalformedBody,
    /// The body is larger than the configured limit.
    BodyTooLarge,
    /// The body could not be read.
    BodyRead,
    /// No public URL could be built for the request (missing or malformed `Host`,
    /// untrusted or malformed forwarded headers, user info, a path that is not absolute).
    NoUrl,
    /// HTTP Basic or Digest authentication is configured and the request lacks valid
    /// credentials: none, more than one `Authorization` header, another scheme, a Digest
    /// header that cannot be parsed, the wrong user name, realm, `uri`, `qop` or password,
    /// or an algorithm that was not offered. Answered 401 with a challenge.
    Unauthorized,
    /// HTTP Digest authentication: the credentials are right, but the nonce is expired or was
    /// made by another instance of the layer (another replica, or before a restart).
    /// Answered 401 with a fresh challenge marked `stale=true`, so the client retries with
    /// the new nonce.
    StaleNonce,
    /// No configured key produced the signature, and the webhook's `AccountSid` is one the
    /// per-account lookup ([`Verifier::with_account_tokens`](crate::Verifier::with_account_tokens))
    /// does not know (or gave a token with whitespace at either end).
    UnknownAccount,
}

impl SignatureError {
    /// An error of the given kind.
    #[must_use]
    pub const fn new(kind: SignatureErrorKind) -> Self {
        Self { kind }
    }

    /// What went wrong.
    #[must_use]
    pub const fn kind(&self) -> SignatureErrorKind {
        self.kind
    }

    /// The status the default rejection answers with: 401 for missing or wrong Basic or
    /// Digest credentials (and a stale Digest nonce), 413 for a body over the limit, 400 for
    /// a body that could not be read, 403 otherwise.
    #[must_use]
    pub const fn status(&self) -> StatusCode {
        match self.kind {
            SignatureErrorKind::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            SignatureErrorKind::BodyRead => StatusCode::BAD_REQUEST,
            SignatureErrorKind::Unauthorized | SignatureErrorKind::StaleNonce => {
                StatusCode::UNAUTHORIZED
            }
            _ => StatusCode::FORBIDDEN,
        }
    }
}

impl From<SignatureErrorKind> for SignatureError {
    fn from(kind: SignatureErrorKind) -> Self {
        Self::new(kind)
    }
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            SignatureErrorKind::MissingHeader => "missing X-Twilio-Signature header",
            SignatureErrorKind::MalformedHeader => "malformed Twilio signature or settings header",
            SignatureErrorKind::UnknownKeyId => "unknown SharedKey id",
            SignatureErrorKind::UnsupportedAlgorithm => "unsupported signature algorithm",
            SignatureErrorKind::Mismatch => "signature does not match",
            SignatureErrorKind::BodyHashMismatch => "bodySHA256 does not match the body",
            SignatureErrorKind::AmbiguousBodyHash => "bodySHA256 given more than once",
            SignatureErrorKind::UnsignedBody => "body not covered by the signature",
            SignatureErrorKind::MalformedBody => "malformed request body",
            SignatureErrorKind::BodyTooLarge => "request body too large",
            SignatureErrorKind::BodyRead => "request body could not be read",
            SignatureErrorKind::NoUrl => "no public URL could be built for the request",
            SignatureErrorKind::Unauthorized => "missing or invalid HTTP credentials",
            SignatureErrorKind::StaleNonce => "stale HTTP Digest nonce",
            SignatureErrorKind::UnknownAccount => "unknown AccountSid",
        })
    }
}

impl StdError for SignatureError {}

/// A configuration mistake, reported when the layer or verifier is built.
///
/// ```
/// use tower_twilio_signature::{ConfigError, TwilioSignatureLayer};
///
/// let err = TwilioSignatureLayer::new("").unwrap_err();
/// assert!(matches!(err, ConfigError::EmptySecret));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// An Auth Token or SharedKey secret is empty.
    EmptySecret,
    /// An Auth Token or SharedKey secret starts or ends with whitespace, usually a newline
    /// read along with it from a file or a secret store. Twilio's secrets have none, so every
    /// webhook would be refused.
    SecretWhitespace,
    /// A SharedKey id is empty or contains characters a settings header cannot carry.
    InvalidKeyId,
    /// The same SharedKey id was added twice.
    DuplicateKeyId,
    /// The public base URL cannot be used; the text says why.
    InvalidBaseUrl(&'static str),
    /// [`UrlSource::forwarded`](crate::UrlSource::forwarded) or
    /// [`UrlSource::x_forwarded`](crate::UrlSource::x_forwarded) was given zero hops.
    ZeroHops,
    /// A scheme other than `http` or `https`.
    InvalidScheme,
    /// An environment variable is unset or not Unicode.
    MissingEnv(&'static str),
    /// An environment variable holds a value that cannot be used; the error says why.
    InvalidEnv(&'static str, Box<Self>),
    /// Basic authentication credentials that cannot be used (empty user name, `:` in it).
    InvalidBasicAuth,
    /// Digest authentication settings that cannot be used; the text says which.
    InvalidDigestAuth(&'static str),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptySecret => f.write_str("an Auth Token or SharedKey secret is empty"),
            Self::SecretWhitespace => f.write_str(
                "an Auth Token or SharedKey secret starts or ends with whitespace \
                 (a newline read from a file?)",
            ),
            Self::InvalidKeyId => {
                f.write_str("a SharedKey id is empty or contains ',', '=' or whitespace")
            }
            Self::DuplicateKeyId => f.write_str("the same SharedKey id was added twice"),
            Self::InvalidBaseUrl(why) => write!(f, "invalid public base URL: {why}"),
            Self::ZeroHops => f.write_str("trusted proxy hops must be at least 1"),
            Self::InvalidScheme => f.write_str("the scheme must be http or https"),
            Self::MissingEnv(name) => write!(f, "environment variable {name} is not set"),
            Self::InvalidEnv(name, why) => write!(f, "environment variable {name}: {why}"),
            Self::InvalidBasicAuth => {
                f.write_str("Basic auth user name must be non-empty and contain no ':'")
            }
            Self::InvalidDigestAuth(what) => write!(f, "invalid Digest auth setting: {what}"),
        }
    }
}

impl StdError for ConfigError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::InvalidEnv(_, why) => Some(&**why),
            _ => None,
        }
    }
}

/// Builds the response for a refused request.
///
/// Implemented by [`DefaultRejection`] and by every `FnMut(&SignatureError) -> Response<B> + Clone`,
/// so a closure can be passed to
/// [`TwilioSignatureLayer::rejection`](crate::TwilioSignatureLayer::rejection).
/// Whatever it returns, the layer adds the [`SignatureError`] to the response's extensions.
pub trait RejectionResponse<B> {
    /// The response for `error`.
    fn respond(&mut self, error: &SignatureError) -> Response<B>;
}

impl<B, F> RejectionResponse<B> for F
where
    F: FnMut(&SignatureError) -> Response<B>,
{
    fn respond(&mut self, error: &SignatureError) -> Response<B> {
        self(error)
    }
}

/// The default rejection: [`SignatureError::status`] with an empty body, and
/// `WWW-Authenticate` on 401. It tells the caller nothing about why.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct DefaultRejection;

impl<B: Default> RejectionResponse<B> for DefaultRejection {
    fn respond(&mut self, error: &SignatureError) -> Response<B> {
        let mut res = Response::new(B::default());
        *res.status_mut() = error.status();
        res
    }
}

/// Adds what every rejection carries, whoever built it: the error, and the challenges of a
/// 401 (unless the response already has its own `WWW-Authenticate`).
pub(crate) fn finish_rejection<B>(
    mut res: Response<B>,
    error: SignatureError,
    challenges: Vec<HeaderValue>,
) -> Response<B> {
    if !res.headers().contains_key(header::WWW_AUTHENTICATE) {
        for challenge in challenges {
            res.headers_mut()
                .append(header::WWW_AUTHENTICATE, challenge);
        }
    }
    res.extensions_mut().insert(error);
    res
}

/// Whether a body read error is, somewhere in its chain, a length-limit error.
pub(crate) fn is_length_limit(err: &(dyn StdError + 'static)) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cur = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        use SignatureErrorKind::*;
        for kind in [
            MissingHeader,
            MalformedHeader,
            UnknownKeyId,
            UnsupportedAlgorithm,
            Mismatch,
            BodyHashMismatch,
            AmbiguousBodyHash,
            UnsignedBody,
            MalformedBody,
            NoUrl,
            UnknownAccount,
        ] {
            assert_eq!(
                SignatureError::new(kind).status(),
                StatusCode::FORBIDDEN,
                "{kind:?}"
            );
        }
        assert_eq!(
            SignatureError::new(BodyTooLarge).status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            SignatureError::new(BodyRead).status(),
            StatusCode::BAD_REQUEST
        );
        for kind in [Unauthorized, StaleNonce] {
            assert_eq!(
                SignatureError::new(kind).status(),
                StatusCode::UNAUTHORIZED,
                "{kind:?}"
            );
        }
    }

    #[derive(Debug)]
    struct Wrap(Box<dyn StdError + Send + Sync>);
    impl fmt::Display for Wrap {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("wrapped")
        }
    }
    impl StdError for Wrap {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&*self.0)
        }
    }

    #[tokio::test]
    async fn length_limit_found_through_wrappers() {
        use http_body_util::{BodyExt, Full, Limited};
        let inner = Limited::new(Full::new(bytes::Bytes::from_static(b"abc")), 1)
            .collect()
            .await
            .unwrap_err();
        assert!(is_length_limit(&*inner));
        let wrapped = Wrap(Box::new(Wrap(inner)));
        assert!(is_length_limit(&wrapped));
        let other = Wrap(Box::new(std::io::Error::other("reset")));
        assert!(!is_length_limit(&other));
    }
}
