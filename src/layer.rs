//! The layer, its builder and the service it wraps around yours.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, Version};
use http_body::Body;
use subtle::ConstantTimeEq;
use tower_layer::Layer;
use tower_service::Service;

use crate::body::VerifiedBody;
use crate::error::{
    finish_rejection, ConfigError, DefaultRejection, RejectionResponse, SignatureError,
    SignatureErrorKind,
};
use crate::future::ResponseFuture;
use crate::keys::KeyChoice;
use crate::scratch;
use crate::signature::{body_hash_param, conclude, Params, SignatureBytes, Verifier};
use crate::url::{parts_from_request, BaseUrl, Candidates, UrlSource};
use crate::verified::VerifiedWebhook;

/// The default body limit: 1 MiB, below axum's own 2 MiB default.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

static SIGNATURE: HeaderName = HeaderName::from_static("x-twilio-signature");
static SETTINGS: HeaderName = HeaderName::from_static("x-twilio-webhooks-signature-settings");
static IDEMPOTENCY: HeaderName = HeaderName::from_static("i-twilio-idempotency-token");

/// Shared, immutable per-layer configuration.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) verifier: Verifier,
    pub(crate) url_source: UrlSource,
    pub(crate) body_limit: usize,
    pub(crate) basic_auth: Option<BasicAuth>,
}

#[derive(Clone)]
pub(crate) struct BasicAuth {
    credentials: Vec<u8>,
    pub(crate) challenge: HeaderValue,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("keys", &self.verifier.keys)
            .field("url_source", &self.url_source)
            .field("body_limit", &self.body_limit)
            .field("extra_url_forms", &self.verifier.extra_url_forms)
            .field(
                "basic_auth",
                &self.basic_auth.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// A Tower [`Layer`] that lets only requests signed by Twilio reach the inner service.
///
/// It checks `X-Twilio-Signature` before reading the body, buffers the body up to a limit,
/// rebuilds the public URL Twilio called, verifies the signature in constant time, and
/// either calls the inner service with the same bytes (and a [`VerifiedWebhook`]
/// extension) or answers with a rejection (403 by default) without calling it.
///
/// Every builder method that can be misused returns a [`ConfigError`] at once, so a bad
/// configuration fails at startup, not on the first webhook.
///
/// ```
/// use axum::{routing::post, Router};
/// use tower_twilio_signature::TwilioSignatureLayer;
///
/// let layer = TwilioSignatureLayer::new("your auth token")?
///     .public_base_url("https://hooks.example.com")?;
/// let app: Router = Router::new()
///     .route("/sms", post(|| async { "<Response/>" }))
///     .layer(layer);
/// # Ok::<(), tower_twilio_signature::ConfigError>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct TwilioSignatureLayer<R = DefaultRejection> {
    config: Arc<Config>,
    rejection: R,
}

impl<R> fmt::Debug for TwilioSignatureLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioSignatureLayer")
            .field("config", &self.config)
            .field("rejection", &std::any::type_name::<R>())
            .finish()
    }
}

impl TwilioSignatureLayer {
    /// A layer that accepts webhooks signed with this account Auth Token.
    ///
    /// The public URL comes from the `Host` header with `https` until you choose
    /// otherwise; behind a proxy, prefer [`public_base_url`](Self::public_base_url).
    ///
    /// # Errors
    /// [`ConfigError::EmptySecret`] if the token is empty.
    pub fn new(auth_token: &str) -> Result<Self, ConfigError> {
        Ok(Self::from_verifier(Verifier::new(auth_token)?))
    }

    /// A layer for SharedKey webhooks only, with no Auth Token.
    ///
    /// # Errors
    /// As [`with_shared_key`](Self::with_shared_key).
    pub fn from_shared_key(key_id: &str, secret: &str) -> Result<Self, ConfigError> {
        Ok(Self::from_verifier(Verifier::from_shared_key(
            key_id, secret,
        )?))
    }

    /// A layer with the Auth Token from the `TWILIO_AUTH_TOKEN` environment variable.
    ///
    /// # Errors
    /// [`ConfigError::MissingEnv`] if it is unset or not Unicode,
    /// [`ConfigError::EmptySecret`] if it is empty.
    pub fn from_env() -> Result<Self, ConfigError> {
        let token = std::env::var("TWILIO_AUTH_TOKEN")
            .map_err(|_| ConfigError::MissingEnv("TWILIO_AUTH_TOKEN"))?;
        Self::new(&token)
    }

    fn from_verifier(verifier: Verifier) -> Self {
        Self {
            config: Arc::new(Config {
                verifier,
                url_source: UrlSource::Host { https: true },
                body_limit: DEFAULT_BODY_LIMIT,
                basic_auth: None,
            }),
            rejection: DefaultRejection,
        }
    }
}

impl<R> TwilioSignatureLayer<R> {
    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Also accepts webhooks signed with this Auth Token. While you rotate tokens in the
    /// Twilio console, add the secondary token here, then drop the old one once promoted.
    ///
    /// # Errors
    /// [`ConfigError::EmptySecret`] if the token is empty.
    pub fn with_auth_token(mut self, auth_token: &str) -> Result<Self, ConfigError> {
        self.config_mut().verifier.keys.add_auth_token(auth_token)?;
        Ok(self)
    }

    /// Accepts webhooks whose `X-Twilio-Webhooks-Signature-Settings` header names
    /// `key_id`, verified with `secret` and the algorithm the header names (`HMAC_SHA1` or
    /// `HMAC_SHA256`). A request that names an unknown key id is refused.
    ///
    /// # Errors
    /// [`ConfigError::InvalidKeyId`], [`ConfigError::DuplicateKeyId`] or
    /// [`ConfigError::EmptySecret`].
    pub fn with_shared_key(mut self, key_id: &str, secret: &str) -> Result<Self, ConfigError> {
        self.config_mut()
            .verifier
            .keys
            .add_shared_key(key_id, secret)?;
        Ok(self)
    }

    /// Takes the scheme, host, port and a path prefix from `url`, then appends the
    /// request's path and query as received. The safest source, and the one to use in
    /// production: nothing the client sends can change the host that is checked.
    ///
    /// `https://hooks.example.com/twilio` with a request for `/sms?x=1` gives
    /// `https://hooks.example.com/twilio/sms?x=1` (a trailing `/` on the base is dropped).
    ///
    /// # Errors
    /// [`ConfigError::InvalidBaseUrl`] for a scheme other than `http`/`https`, user info,
    /// a query, a fragment, or a malformed host or port.
    pub fn public_base_url(mut self, url: &str) -> Result<Self, ConfigError> {
        self.config_mut().url_source = UrlSource::Fixed(BaseUrl::parse(url)?);
        Ok(self)
    }

    /// Takes `proto` and `host` from the RFC 7239 `Forwarded` header: the element `hops`
    /// from the right, so entries a client put in front of your proxies are never read.
    /// Missing parts fall back to `https` and the `Host` header.
    ///
    /// # Deployment caveat
    /// Use it only when exactly `hops` proxies you run append to `Forwarded` (or the
    /// nearest one overwrites it). A request that reaches the service without passing them
    /// can claim any host.
    ///
    /// # Errors
    /// [`ConfigError::ZeroHops`] if `hops` is 0.
    pub fn trust_forwarded(mut self, hops: usize) -> Result<Self, ConfigError> {
        if hops == 0 {
            return Err(ConfigError::ZeroHops);
        }
        self.config_mut().url_source = UrlSource::Forwarded {
            hops,
            default_https: true,
        };
        Ok(self)
    }

    /// Takes the public URL from `X-Forwarded-Proto`, `X-Forwarded-Host`,
    /// `X-Forwarded-Port` and `X-Forwarded-Prefix`: in each, the entry `hops` from the
    /// right. Missing headers fall back to `https`, the `Host` header, the host's own port
    /// and no prefix. This is what ngrok, most load balancers and nginx set.
    ///
    /// # Deployment caveat
    /// As for [`trust_forwarded`](Self::trust_forwarded): every header read here must be
    /// set, appended to or stripped by your proxies, or a client can choose its value.
    ///
    /// # Errors
    /// [`ConfigError::ZeroHops`] if `hops` is 0.
    pub fn trust_x_forwarded(mut self, hops: usize) -> Result<Self, ConfigError> {
        if hops == 0 {
            return Err(ConfigError::ZeroHops);
        }
        self.config_mut().url_source = UrlSource::XForwarded {
            hops,
            default_https: true,
        };
        Ok(self)
    }

    /// Takes the host from the `Host` header (or the request URI's authority, as under
    /// HTTP/2) with the given scheme. The default, with `https`.
    ///
    /// # Deployment caveat
    /// The client chooses the `Host` header. A signature still has to match, so a forger
    /// gains nothing, but a genuine request signed for another of your hosts is accepted.
    ///
    /// # Errors
    /// [`ConfigError::InvalidScheme`] for a scheme other than `http` or `https`.
    pub fn use_host_header(mut self, scheme: &str) -> Result<Self, ConfigError> {
        let https = if scheme.eq_ignore_ascii_case("https") {
            true
        } else if scheme.eq_ignore_ascii_case("http") {
            false
        } else {
            return Err(ConfigError::InvalidScheme);
        };
        self.config_mut().url_source = UrlSource::Host { https };
        Ok(self)
    }

    /// The largest body the layer buffers, in bytes (default [`DEFAULT_BODY_LIMIT`]).
    /// A larger `Content-Length` is refused with 413 before anything is read; a streamed
    /// body is cut off with 413 as soon as it passes the limit.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.config_mut().body_limit = bytes;
        self
    }

    /// Also tries the URL forms twilio-node 6 tries (see [`Verifier::with_extra_url_forms`]).
    pub fn with_extra_url_forms(mut self, enabled: bool) -> Self {
        self.config_mut().verifier.extra_url_forms = enabled;
        self
    }

    /// Requires HTTP Basic credentials before the signature is checked; a request without
    /// them gets 401 with `WWW-Authenticate: Basic realm="Twilio"`, which is how Twilio
    /// learns to send them. Put the credentials in the webhook URL you give Twilio
    /// (`https://user:pass@host/path`); Twilio drops them from the URL it signs.
    ///
    /// # Errors
    /// [`ConfigError::InvalidBasicAuth`] for an empty user name or one containing `:`.
    pub fn with_basic_auth(mut self, username: &str, password: &str) -> Result<Self, ConfigError> {
        if username.is_empty() || username.contains(':') {
            return Err(ConfigError::InvalidBasicAuth);
        }
        self.config_mut().basic_auth = Some(BasicAuth {
            credentials: format!("{username}:{password}").into_bytes(),
            challenge: HeaderValue::from_static("Basic realm=\"Twilio\""),
        });
        Ok(self)
    }

    /// Replaces the default rejection with your own, usually a closure
    /// `|err: &SignatureError| -> Response<B>`. The layer still adds the error to the
    /// response's extensions, and `WWW-Authenticate` to a 401 that lacks it.
    ///
    /// ```
    /// use axum::{body::Body, http::{Response, StatusCode}, routing::post, Router};
    /// use tower_twilio_signature::{SignatureError, TwilioSignatureLayer};
    ///
    /// let layer = TwilioSignatureLayer::new("token")?.with_rejection(|err: &SignatureError| {
    ///     Response::builder()
    ///         .status(err.status())
    ///         .body(Body::from("not from Twilio"))
    ///         .unwrap()
    /// });
    /// let app: Router = Router::new().route("/sms", post(|| async { "ok" })).layer(layer);
    /// # Ok::<(), tower_twilio_signature::ConfigError>(())
    /// ```
    pub fn with_rejection<R2>(self, rejection: R2) -> TwilioSignatureLayer<R2> {
        TwilioSignatureLayer {
            config: self.config,
            rejection,
        }
    }
}

impl<S, R: Clone> Layer<S> for TwilioSignatureLayer<R> {
    type Service = TwilioSignature<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        TwilioSignature {
            inner,
            config: Arc::clone(&self.config),
            rejection: self.rejection.clone(),
        }
    }
}

/// The service [`TwilioSignatureLayer`] wraps around yours.
///
/// Its inner service receives `Request<`[`VerifiedBody`]`>`. Every refusal is a response,
/// so its error type is the inner service's.
#[derive(Clone)]
#[must_use]
pub struct TwilioSignature<S, R = DefaultRejection> {
    inner: S,
    config: Arc<Config>,
    rejection: R,
}

impl<S: fmt::Debug, R> fmt::Debug for TwilioSignature<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioSignature")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .field("rejection", &std::any::type_name::<R>())
            .finish()
    }
}

impl<S, R> TwilioSignature<S, R> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for TwilioSignature<S, R>
where
    S: Service<Request<VerifiedBody>, Response = Response<ResBody>> + Clone,
    ReqBody: Body,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    R: RejectionResponse<ResBody> + Clone,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let mut pending = match prepare(&self.config, &req) {
            Ok(p) => p,
            Err(err) => {
                return ResponseFuture::done(reject(&self.config, &mut self.rejection, err, None));
            }
        };
        // Keep the service that was polled ready; leave a fresh clone behind.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        if pending.websocket {
            // A handshake has no body to buffer (under HTTP/2 the body is the stream).
            return match finish(&self.config, &mut pending, &Bytes::new()) {
                Ok(verified) => {
                    let (mut parts, _body) = req.into_parts();
                    parts.extensions.insert(verified);
                    let mut inner = inner;
                    ResponseFuture::calling(
                        inner.call(Request::from_parts(parts, VerifiedBody::empty())),
                    )
                }
                Err(err) => ResponseFuture::done(reject(
                    &self.config,
                    &mut self.rejection,
                    err,
                    Some(&pending.candidates),
                )),
            };
        }
        ResponseFuture::buffering(
            req,
            pending,
            inner,
            Arc::clone(&self.config),
            self.rejection.clone(),
        )
    }
}

/// Builds a rejection response, logging why when tracing is on.
pub(crate) fn reject<B, R: RejectionResponse<B>>(
    config: &Config,
    rejection: &mut R,
    err: SignatureError,
    candidates: Option<&Candidates>,
) -> Response<B> {
    #[cfg(feature = "tracing")]
    {
        let tried: Vec<&str> = candidates
            .map(|c| c.iter().map(|(u, _)| u).collect())
            .unwrap_or_default();
        tracing::debug!(reason = %err, kind = ?err.kind(), candidates = ?tried, "Twilio webhook rejected");
    }
    #[cfg(not(feature = "tracing"))]
    let _ = candidates;
    let res = rejection.respond(&err);
    finish_rejection(res, err, config.basic_auth.as_ref().map(|b| &b.challenge))
}

/// How the body is authenticated.
#[derive(Debug)]
pub(crate) enum BodyMode {
    /// Form parameters are part of the signed string.
    Form,
    /// `bodySHA256` in the query: the decoded value from the query.
    Hash(String),
    /// Nothing covers the body: it must be empty.
    Empty,
}

/// Everything decided about a request before its body is read.
#[derive(Debug)]
pub(crate) struct Pending {
    signature: SignatureBytes,
    keys: KeyChoice,
    pub(crate) candidates: Candidates,
    mode: BodyMode,
    websocket: bool,
    idempotency: Option<HeaderValue>,
}

/// The checks that need no body: credentials, headers, size, URL, body mode.
pub(crate) fn prepare<B: Body>(
    config: &Config,
    req: &Request<B>,
) -> Result<Pending, SignatureError> {
    let headers = req.headers();
    if let Some(basic) = &config.basic_auth {
        check_basic(headers, &basic.credentials)?;
    }
    let found = HeaderScan::find(headers);
    let signature = match found.signature {
        [None, _] => return Err(SignatureErrorKind::MissingHeader.into()),
        [Some(value), None] => SignatureBytes::decode(value.as_bytes())?,
        [Some(_), Some(_)] => return Err(SignatureErrorKind::MalformedHeader.into()),
    };
    let settings = match found.settings {
        [None, _] => None,
        [Some(value), None] => Some(
            value
                .to_str()
                .map_err(|_| SignatureErrorKind::MalformedHeader)?,
        ),
        [Some(_), Some(_)] => return Err(SignatureErrorKind::MalformedHeader.into()),
    };
    let keys = config.verifier.keys.choose(settings)?;

    let websocket = is_websocket(req);
    let declared = declared_length(found.content_length, req)?;
    if declared.is_some_and(|n| n > config.body_limit as u64) {
        return Err(SignatureErrorKind::BodyTooLarge.into());
    }

    let uri = original_uri(req);
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut parts = parts_from_request(&config.url_source, req, path_and_query)?;
    parts.websocket = websocket;
    let candidates = Candidates::build(&parts, config.verifier.extra_url_forms);

    let mode = if websocket {
        if declared.is_some_and(|n| n > 0) || headers.contains_key(header::TRANSFER_ENCODING) {
            return Err(SignatureErrorKind::UnsignedBody.into());
        }
        BodyMode::Empty
    } else if let Some(hash) = body_hash_param(parts.query)? {
        BodyMode::Hash(hash.into_owned())
    } else if is_form(found.content_type)? {
        BodyMode::Form
    } else {
        if declared.is_some_and(|n| n > 0) {
            return Err(SignatureErrorKind::UnsignedBody.into());
        }
        BodyMode::Empty
    };
    Ok(Pending {
        signature,
        keys,
        candidates,
        mode,
        websocket,
        idempotency: found.idempotency.cloned(),
    })
}

/// The headers the layer reads, found in one pass over the request's headers rather than
/// a hashed lookup of each name: the first two values of each (a second one makes the
/// request malformed), and the first idempotency token.
struct HeaderScan<'a> {
    signature: [Option<&'a HeaderValue>; 2],
    settings: [Option<&'a HeaderValue>; 2],
    idempotency: Option<&'a HeaderValue>,
    content_type: [Option<&'a HeaderValue>; 2],
    content_length: [Option<&'a HeaderValue>; 2],
}

impl<'a> HeaderScan<'a> {
    fn find(headers: &'a http::HeaderMap) -> Self {
        let mut found = Self {
            signature: [None; 2],
            settings: [None; 2],
            idempotency: None,
            content_type: [None; 2],
            content_length: [None; 2],
        };
        let keep = |slots: &mut [Option<&'a HeaderValue>; 2], value| {
            let slot = if slots[0].is_none() { 0 } else { 1 };
            slots[slot] = slots[slot].or(Some(value));
        };
        for (name, value) in headers {
            if name == header::CONTENT_TYPE {
                keep(&mut found.content_type, value);
                continue;
            }
            if name == header::CONTENT_LENGTH {
                keep(&mut found.content_length, value);
                continue;
            }
            // The lengths tell Twilio's names apart from each other and from most others.
            let name = name.as_str();
            match name.len() {
                18 if name == SIGNATURE.as_str() => keep(&mut found.signature, value),
                36 if name == SETTINGS.as_str() => keep(&mut found.settings, value),
                26 if name == IDEMPOTENCY.as_str() => {
                    found.idempotency = found.idempotency.or(Some(value));
                }
                _ => {}
            }
        }
        found
    }
}

/// Verifies the request once its body is in.
pub(crate) fn finish(
    config: &Config,
    pending: &mut Pending,
    body: &Bytes,
) -> Result<VerifiedWebhook, SignatureError> {
    let keys = pending.keys.keys(&config.verifier.keys);
    scratch::with(scratch::Buffer::Decoded, |stack| {
        let mut heap = Vec::new();
        let params = match &pending.mode {
            BodyMode::Form => Params::from_form(body, stack, &mut heap)?,
            BodyMode::Hash(_) => Params::default(),
            BodyMode::Empty if body.is_empty() => Params::default(),
            BodyMode::Empty => return Err(SignatureErrorKind::UnsignedBody.into()),
        };
        let body_hash = match &pending.mode {
            BodyMode::Hash(expected) => Some((expected.as_str(), &body[..])),
            _ => None,
        };
        conclude(
            &keys,
            &mut pending.candidates,
            &params,
            &pending.signature,
            body_hash,
            pending.idempotency.take(),
        )
    })
}

fn check_basic(headers: &http::HeaderMap, expected: &[u8]) -> Result<(), SignatureErrorKind> {
    let err = SignatureErrorKind::Unauthorized;
    let value = headers.get(header::AUTHORIZATION).ok_or(err)?.as_bytes();
    let scheme_len = value.iter().position(|&b| b == b' ').ok_or(err)?;
    if !value[..scheme_len].eq_ignore_ascii_case(b"basic") {
        return Err(err);
    }
    let encoded = value[scheme_len..].trim_ascii();
    let decoded = STANDARD.decode(encoded).map_err(|_| err)?;
    if bool::from(decoded.ct_eq(expected)) {
        Ok(())
    } else {
        Err(err)
    }
}

/// The declared body length, from `Content-Length` (its first two values) or the body's
/// own exact size.
fn declared_length<B: Body>(
    content_length: [Option<&HeaderValue>; 2],
    req: &Request<B>,
) -> Result<Option<u64>, SignatureErrorKind> {
    let header = match content_length {
        [Some(v), None] => {
            // Digits only (no sign, no spaces), and no more than a u64 holds.
            let digits = v.as_bytes();
            if digits.is_empty() || digits.len() > 20 {
                return Err(SignatureErrorKind::BodyRead);
            }
            let mut n = 0u64;
            for &b in digits {
                if !b.is_ascii_digit() {
                    return Err(SignatureErrorKind::BodyRead);
                }
                n = n
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(b - b'0')))
                    .ok_or(SignatureErrorKind::BodyRead)?;
            }
            Some(n)
        }
        [Some(_), Some(_)] => return Err(SignatureErrorKind::BodyRead),
        [None, _] => None,
    };
    let hint = req.body().size_hint();
    Ok(header
        .or(hint.exact())
        .or(Some(hint.lower()).filter(|&n| n > 0)))
}

/// Whether `Content-Type` (its first two values) says the body is a form.
fn is_form(content_type: [Option<&HeaderValue>; 2]) -> Result<bool, SignatureErrorKind> {
    let value = match content_type {
        [Some(v), None] => v,
        [Some(_), Some(_)] => return Err(SignatureErrorKind::MalformedBody),
        [None, _] => return Ok(false),
    };
    // Twilio sends exactly this.
    if value.as_bytes() == b"application/x-www-form-urlencoded" {
        return Ok(true);
    }
    let essence = value
        .as_bytes()
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    Ok(essence.eq_ignore_ascii_case(b"application/x-www-form-urlencoded"))
}

fn is_websocket<B>(req: &Request<B>) -> bool {
    if req.method() == Method::CONNECT && req.version() == Version::HTTP_2 {
        return true;
    }
    req.method() == Method::GET
        && req
            .headers()
            .get_all(header::UPGRADE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
}

/// The URI as the client sent it: axum's `OriginalUri` when a router nested us.
fn original_uri<B>(req: &Request<B>) -> &http::Uri {
    #[cfg(feature = "axum")]
    if let Some(original) = req.extensions().get::<axum::extract::OriginalUri>() {
        return &original.0;
    }
    req.uri()
}
