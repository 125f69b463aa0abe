//! What the layer decides about a request: before its body is read (credentials, headers,
//! size, public URL, how the body is authenticated), and once it is in (the signature).

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Extensions, Method, Request, Response, StatusCode, Version};
use http_body::Body;

use crate::auth::HttpAuth;
use crate::error::{finish_rejection, RejectionResponse, SignatureError, SignatureErrorKind};
use crate::headers::single;
use crate::keys::KeyChoice;
use crate::params::{query_value, signed_tail, single_value, Form};
use crate::signature::{body_hash_param, SignatureBytes};
use crate::url::{parts_from_request, Candidates, UrlSource};
use crate::verified::VerifiedWebhook;
use crate::verifier::{Verifier, ACCOUNT_SID};

/// The default body limit: 1 MiB, below axum's own 2 MiB default.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

static SIGNATURE: HeaderName = HeaderName::from_static("x-twilio-signature");
static SETTINGS: HeaderName = HeaderName::from_static("x-twilio-webhooks-signature-settings");
static IDEMPOTENCY: HeaderName = HeaderName::from_static("i-twilio-idempotency-token");

/// Everything a layer is configured with.
#[derive(Clone)]
pub(crate) struct Config {
    verifier: Verifier,
    url_source: UrlSource,
    body_limit: usize,
    http_auth: Option<HttpAuth>,
    report_only: bool,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("verifier", &self.verifier)
            .field("url_source", &self.url_source)
            .field("body_limit", &self.body_limit)
            .field("http_auth", &self.http_auth)
            .field("report_only", &self.report_only)
            .finish()
    }
}

/// How the body is authenticated.
#[derive(Debug)]
enum BodyMode {
    /// Form parameters are part of the signed string.
    Form,
    /// `bodySHA256` in the query: its decoded value.
    Hash(String),
    /// Nothing covers the body: it must be empty.
    Empty,
}

/// Everything decided about a request before its body is read.
#[derive(Debug)]
pub(crate) struct Pending {
    /// What the signature is checked against once the body is in; in report-only mode, why
    /// it already failed.
    signed: Result<Signed, Unsigned>,
    websocket: bool,
    idempotency: Option<HeaderValue>,
}

/// A request whose signature can be checked once its body is in.
#[derive(Debug)]
struct Signed {
    signature: SignatureBytes,
    keys: KeyChoice,
    candidates: Candidates,
    mode: BodyMode,
    /// `AccountSid` from the query, when a per-account lookup is set: the account of a
    /// request without form parameters.
    account: Option<String>,
}

/// Report-only mode: a request that failed before its body and is let through anyway.
#[derive(Debug)]
struct Unsigned {
    error: SignatureError,
    /// The candidate URLs, for the logs.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    tried: Vec<String>,
}

impl Pending {
    /// Whether the request is a WebSocket handshake, which has no body to wait for.
    pub(crate) fn is_websocket(&self) -> bool {
        self.websocket
    }

    /// The candidate URLs, for the logs.
    #[cfg(feature = "tracing")]
    fn tried(&self) -> Vec<&str> {
        match &self.signed {
            Ok(signed) => signed.candidates.iter().map(|(url, _)| url).collect(),
            Err(unsigned) => unsigned.tried.iter().map(String::as_str).collect(),
        }
    }
}

/// What reaches the inner service: proof of the signature, or, in report-only mode, why the
/// request would have been refused.
#[derive(Debug)]
pub(crate) enum Passed {
    Verified(VerifiedWebhook),
    Reported(SignatureError),
}

impl Passed {
    /// Puts the proof or the error into the request's extensions.
    pub(crate) fn insert_into(self, extensions: &mut Extensions) {
        match self {
            Self::Verified(verified) => {
                extensions.insert(verified);
            }
            Self::Reported(error) => {
                extensions.insert(error);
            }
        }
    }
}

impl Config {
    pub(crate) fn new(verifier: Verifier) -> Self {
        Self {
            verifier,
            url_source: UrlSource::default(),
            body_limit: DEFAULT_BODY_LIMIT,
            http_auth: None,
            report_only: false,
        }
    }

    pub(crate) fn set_url_source(&mut self, source: UrlSource) {
        self.url_source = source;
    }

    pub(crate) fn set_body_limit(&mut self, bytes: usize) {
        self.body_limit = bytes;
    }

    pub(crate) fn set_http_auth(&mut self, auth: HttpAuth) {
        self.http_auth = Some(auth);
    }

    pub(crate) fn set_report_only(&mut self, report_only: bool) {
        self.report_only = report_only;
    }

    pub(crate) fn body_limit(&self) -> usize {
        self.body_limit
    }

    /// The checks that need no body: credentials, headers, size, URL, body mode. In
    /// report-only mode a request that would be refused for its signature (403) is still
    /// held to the credentials and the size limit, and then let through.
    pub(crate) fn before_body<B: Body>(&self, req: &Request<B>) -> Result<Pending, SignatureError> {
        // A target with no path (`CONNECT host:443`) names no webhook URL: like `*`, it is
        // not an absolute path, and no URL is built from it.
        let target = original_uri(req)
            .path_and_query()
            .map_or("", |p| p.as_str());
        if let Some(auth) = &self.http_auth {
            auth.check(req.headers(), req.method().as_str(), target, unix_now())?;
        }
        match self.signature_checks(req, target) {
            Err(error) if self.report_only && error.status() == StatusCode::FORBIDDEN => {
                if declared_length(req)?.is_some_and(|n| n > self.body_limit as u64) {
                    return Err(SignatureErrorKind::BodyTooLarge.into());
                }
                let tried = parts_from_request(&self.url_source, req, target)
                    .map(|parts| {
                        let candidates = Candidates::build(&parts);
                        candidates.iter().map(|(url, _)| url.to_owned()).collect()
                    })
                    .unwrap_or_default();
                Ok(Pending {
                    signed: Err(Unsigned { error, tried }),
                    websocket: is_websocket(req),
                    idempotency: None,
                })
            }
            other => other,
        }
    }

    /// The checks of [`before_body`](Self::before_body) after the credentials.
    fn signature_checks<B: Body>(
        &self,
        req: &Request<B>,
        path_and_query: &str,
    ) -> Result<Pending, SignatureError> {
        let headers = req.headers();
        let signature = match single(headers, &SIGNATURE, SignatureErrorKind::MalformedHeader)? {
            Some(value) => SignatureBytes::decode(value.as_bytes())?,
            None => return Err(SignatureErrorKind::MissingHeader.into()),
        };
        let settings = single(headers, &SETTINGS, SignatureErrorKind::MalformedHeader)?
            .map(|v| v.to_str().map_err(|_| SignatureErrorKind::MalformedHeader))
            .transpose()?;
        let keys = self.verifier.choose_keys(settings)?;

        let websocket = is_websocket(req);
        let declared = declared_length(req)?;
        if declared.is_some_and(|n| n > self.body_limit as u64) {
            return Err(SignatureErrorKind::BodyTooLarge.into());
        }

        let mut parts = parts_from_request(&self.url_source, req, path_and_query)?;
        parts.websocket = websocket;
        let candidates = Candidates::build(&parts);

        let mode = if websocket {
            if declared.is_some_and(|n| n > 0) || headers.contains_key(header::TRANSFER_ENCODING) {
                return Err(SignatureErrorKind::UnsignedBody.into());
            }
            BodyMode::Empty
        } else if let Some(hash) = body_hash_param(parts.query)? {
            BodyMode::Hash(hash.into_owned())
        } else if is_form(headers)? {
            BodyMode::Form
        } else {
            if declared.is_some_and(|n| n > 0) {
                return Err(SignatureErrorKind::UnsignedBody.into());
            }
            BodyMode::Empty
        };
        let account = match self.verifier.looks_up_accounts() {
            true => query_value(parts.query, ACCOUNT_SID),
            false => None,
        };
        Ok(Pending {
            signed: Ok(Signed {
                signature,
                keys,
                candidates,
                mode,
                account,
            }),
            websocket,
            idempotency: headers.get(&IDEMPOTENCY).cloned(),
        })
    }

    /// Verifies the request once its body is in. In report-only mode a request that fails
    /// for its signature passes, with the error.
    pub(crate) fn after_body(
        &self,
        pending: &Pending,
        body: &Bytes,
    ) -> Result<Passed, SignatureError> {
        let verdict = match &pending.signed {
            Ok(signed) => self.verify(signed, pending, body),
            Err(unsigned) => Err(unsigned.error.clone()),
        };
        match verdict {
            Ok(verified) => Ok(Passed::Verified(verified)),
            Err(error) if self.report_only && error.status() == StatusCode::FORBIDDEN => {
                #[cfg(feature = "tracing")]
                tracing::warn!(
                    reason = %error,
                    kind = ?error.kind(),
                    candidates = ?pending.tried(),
                    "Twilio webhook would have been rejected (report-only mode: let through)"
                );
                Ok(Passed::Reported(error))
            }
            Err(error) => Err(error),
        }
    }

    fn verify(
        &self,
        signed: &Signed,
        pending: &Pending,
        body: &Bytes,
    ) -> Result<VerifiedWebhook, SignatureError> {
        let form;
        let (tail, body_hash, account) = match &signed.mode {
            BodyMode::Form => {
                form = Form::parse(body)?;
                let account = match form.is_empty() {
                    true => signed.account.as_deref(),
                    false if self.verifier.looks_up_accounts() => {
                        single_value(form.pairs(), ACCOUNT_SID)
                    }
                    false => None,
                };
                (signed_tail(form.pairs()), None, account)
            }
            BodyMode::Hash(expected) => (
                Vec::new(),
                Some((expected.as_str(), &body[..])),
                signed.account.as_deref(),
            ),
            BodyMode::Empty if body.is_empty() => (Vec::new(), None, signed.account.as_deref()),
            BodyMode::Empty => return Err(SignatureErrorKind::UnsignedBody.into()),
        };
        let matched = self.verifier.check(
            &signed.keys,
            &signed.candidates,
            &tail,
            &signed.signature,
            body_hash,
            account,
        )?;
        Ok(VerifiedWebhook::new(
            matched.url,
            matched.key,
            matched.algorithm,
            pending.idempotency.clone(),
            signed.signature,
        ))
    }

    /// The response to a refused request, built by `rejection`, carrying the error (and a
    /// challenge on 401). Logs why when tracing is on.
    pub(crate) fn reject<B, R: RejectionResponse<B>>(
        &self,
        rejection: &mut R,
        err: SignatureError,
        pending: Option<&Pending>,
    ) -> Response<B> {
        #[cfg(feature = "tracing")]
        {
            let tried: Vec<&str> = pending.map(Pending::tried).unwrap_or_default();
            tracing::debug!(reason = %err, kind = ?err.kind(), candidates = ?tried, "Twilio webhook rejected");
        }
        #[cfg(not(feature = "tracing"))]
        let _ = pending;
        let challenges = match &self.http_auth {
            Some(auth) if err.status() == StatusCode::UNAUTHORIZED => {
                auth.challenges(err.kind() == SignatureErrorKind::StaleNonce, unix_now())
            }
            _ => Vec::new(),
        };
        let res = rejection.respond(&err);
        finish_rejection(res, err, challenges)
    }
}

/// The declared body length: `Content-Length` (digits only, given once), else the body's own
/// size hint.
fn declared_length<B: Body>(req: &Request<B>) -> Result<Option<u64>, SignatureErrorKind> {
    let err = SignatureErrorKind::BodyRead;
    let header = match single(req.headers(), &header::CONTENT_LENGTH, err)? {
        Some(value) => {
            let digits = value.to_str().map_err(|_| err)?;
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err);
            }
            Some(digits.parse::<u64>().map_err(|_| err)?)
        }
        None => None,
    };
    let hint = req.body().size_hint();
    Ok(header
        .or(hint.exact())
        .or(Some(hint.lower()).filter(|&n| n > 0)))
}

/// Whether `Content-Type` says the body is a form: `application/x-www-form-urlencoded` in any
/// case, with or without parameters such as `charset`.
fn is_form(headers: &HeaderMap) -> Result<bool, SignatureErrorKind> {
    let Some(value) = single(
        headers,
        &header::CONTENT_TYPE,
        SignatureErrorKind::MalformedBody,
    )?
    else {
        return Ok(false);
    };
    let essence = value
        .as_bytes()
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    Ok(essence.eq_ignore_ascii_case(b"application/x-www-form-urlencoded"))
}

/// A WebSocket handshake: HTTP/1.1 `GET` with `Upgrade: websocket`, or HTTP/2's extended
/// `CONNECT`.
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

/// Seconds since the Unix epoch, for Digest nonces.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The URI as the client sent it: axum's `OriginalUri` when a router nested us.
fn original_uri<B>(req: &Request<B>) -> &http::Uri {
    #[cfg(feature = "axum")]
    if let Some(original) = req.extensions().get::<axum::extract::OriginalUri>() {
        return &original.0;
    }
    req.uri()
}
