//! The builder, the layer and the service: the settings, and the choice made in `call`.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{
    CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_ENCODING, CONTENT_LANGUAGE, CONTENT_TYPE, LOCATION,
};
use http::{HeaderName, Request, Response};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use super::clock::LONGEST;
use super::config::{Config, StoreFailure};
use super::future::ResponseFuture;
use super::memory::MemoryStore;
use super::store::Store;
use crate::VerifiedWebhook;

/// How long an answer is replayed by default: one hour, well past Twilio's retries.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60 * 60);
/// How long a first delivery holds its claim by default before another may run.
pub const DEFAULT_CLAIM_TTL: Duration = Duration::from_secs(60);
/// How long a concurrent delivery waits for the first by default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5);
/// The largest body stored by default (64 KiB).
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// The response headers stored with an answer by default: those that say what the body
/// is (`Content-Type`, `Content-Encoding`, `Content-Language`, `Content-Disposition`),
/// `Cache-Control` and `Location`. Others (`Set-Cookie`, `Date`, hop-by-hop headers,
/// `Content-Length`, which follows the body) are left out.
pub const DEFAULT_STORED_HEADERS: [HeaderName; 6] = [
    CONTENT_TYPE,
    CONTENT_ENCODING,
    CONTENT_LANGUAGE,
    CONTENT_DISPOSITION,
    CACHE_CONTROL,
    LOCATION,
];

/// A [`Layer`] that runs each webhook once and replays its answer to Twilio's retries.
/// Put it *inside* [`TwilioSignatureLayer`](crate::TwilioSignatureLayer); see the
/// [module docs](super).
///
/// ```
/// use std::time::Duration;
/// use tower_twilio_signature::dedupe::DedupeLayer;
///
/// let layer = DedupeLayer::new() // answers kept in memory
///     .with_ttl(Duration::from_secs(600))
///     .with_wait(Duration::from_secs(3))
///     .with_body_limit(16 * 1024);
/// # let _ = layer;
/// ```
#[derive(Clone)]
#[must_use]
pub struct DedupeLayer {
    config: Arc<Config>,
}

impl Default for DedupeLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl DedupeLayer {
    /// A layer over a new [`MemoryStore`] with its default bounds. Clones of the layer
    /// share it.
    pub fn new() -> Self {
        Self {
            config: Arc::new(Config {
                store: Arc::new(MemoryStore::new()),
                store_name: std::any::type_name::<MemoryStore>(),
                ttl: DEFAULT_TTL,
                claim_ttl: DEFAULT_CLAIM_TTL,
                wait: DEFAULT_WAIT,
                body_limit: DEFAULT_BODY_LIMIT,
                stored_headers: DEFAULT_STORED_HEADERS.to_vec(),
                on_failure: StoreFailure::Open,
            }),
        }
    }

    /// Keeps claims and answers in `store` instead (a bounded [`MemoryStore`] of your
    /// own, `RedisStore` for replicas, or an `Arc<dyn Store>`).
    pub fn with_store<St: Store>(mut self, store: St) -> Self {
        let config = Arc::make_mut(&mut self.config);
        config.store = Arc::new(store);
        config.store_name = std::any::type_name::<St>();
        self
    }

    /// How long an answer is replayed ([`DEFAULT_TTL`]). After that, a delivery with the
    /// same token runs the handler again. At most about thirty years: a longer span, such
    /// as `Duration::MAX`, is cut to that.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        Arc::make_mut(&mut self.config).ttl = ttl.min(LONGEST);
        self
    }

    /// How long a first delivery's claim lasts ([`DEFAULT_CLAIM_TTL`]): if the process
    /// handling it dies, a retry runs the handler after this long. Keep it above your
    /// slowest handler: a claim is not extended while the handler runs. At most about
    /// thirty years, as for [`with_ttl`](Self::with_ttl).
    pub fn with_claim_ttl(mut self, claim_ttl: Duration) -> Self {
        Arc::make_mut(&mut self.config).claim_ttl = claim_ttl.min(LONGEST);
        self
    }

    /// How long a delivery that finds the first still running waits for its answer
    /// ([`DEFAULT_WAIT`]) before answering `409 Conflict`. Keep it below Twilio's timeout
    /// for the webhook (15 s by default). At most about thirty years, as for
    /// [`with_ttl`](Self::with_ttl).
    pub fn with_wait(mut self, wait: Duration) -> Self {
        Arc::make_mut(&mut self.config).wait = wait.min(LONGEST);
        self
    }

    /// The largest body stored ([`DEFAULT_BODY_LIMIT`]). A larger answer goes to Twilio
    /// as it is, and is not stored: its claim is released, so a retry runs the handler
    /// again.
    pub fn with_body_limit(mut self, limit: usize) -> Self {
        Arc::make_mut(&mut self.config).body_limit = limit;
        self
    }

    /// Also stores and replays the response header `name` (beyond
    /// [`DEFAULT_STORED_HEADERS`]).
    pub fn with_stored_header(mut self, name: HeaderName) -> Self {
        let headers = &mut Arc::make_mut(&mut self.config).stored_headers;
        if !headers.contains(&name) {
            headers.push(name);
        }
        self
    }

    /// What to do when the store fails ([`StoreFailure::Open`] by default).
    pub fn with_store_failure(mut self, on_failure: StoreFailure) -> Self {
        Arc::make_mut(&mut self.config).on_failure = on_failure;
        self
    }
}

impl<S> Layer<S> for DedupeLayer {
    type Service = Dedupe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Dedupe {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

impl fmt::Debug for DedupeLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DedupeLayer")
            .field("config", &self.config)
            .finish()
    }
}

/// The service [`DedupeLayer`] makes: runs `S` once per webhook event.
///
/// A delivery with a token takes the inner service that was polled ready into its
/// future and calls it once the store has answered, so a delivery that waits for another
/// holds that service (and any permit it holds) while it waits: put concurrency limits
/// outside this layer.
///
/// ```
/// use tower::{service_fn, Layer};
/// use tower_twilio_signature::dedupe::DedupeLayer;
///
/// let service = DedupeLayer::new().layer(service_fn(|_: http::Request<String>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
/// }));
/// let _inner = service.get_ref();
/// ```
#[derive(Clone)]
#[must_use]
pub struct Dedupe<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> Dedupe<S> {
    /// The inner service.
    pub const fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, by value.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for Dedupe<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dedupe")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

/// The store key of a verified webhook: its token, the URL it was signed for and the
/// signature (base64, as Twilio sends it).
///
/// Twilio does not sign the token, so the token alone would let anyone holding one
/// captured request send it again with another event's token, and read that event's
/// answer or, arriving first, claim the token so that the genuine delivery gets their
/// answer and its handler never runs. Every delivery of one event carries the same URL
/// and parameters, hence the same signature, so retries still share a key; a request
/// given another event's token is an event of its own. The URL keeps a token Twilio
/// sends to another URL (a fallback URL) apart, and keeps keys readable.
fn key(webhook: &VerifiedWebhook) -> Option<Arc<str>> {
    let token = webhook.idempotency_token().filter(|t| !t.is_empty())?;
    let mut key = format!("{token}\n{}\n", webhook.url());
    STANDARD.encode_string(webhook.signature(), &mut key);
    Some(Arc::from(key))
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Dedupe<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: Body<Data = Bytes>,
{
    type Response = Response<super::DedupeBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let Some(key) = request.extensions().get::<VerifiedWebhook>().and_then(key) else {
            return ResponseFuture::passthrough(self.inner.call(request));
        };
        // The service polled ready goes into the future, which calls it once the store
        // has answered; a clone stays behind for the next request.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::deciding(ready, request, key, Arc::clone(&self.config))
    }
}
