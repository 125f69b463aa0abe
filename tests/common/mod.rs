//! Helpers shared by the integration tests: playing Twilio's part, bodies that record how
//! they are read, and a uniform view of a response.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http::header::{HeaderName, CONTENT_TYPE, HOST};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::{Frame, SizeHint};
use tower::{Service, ServiceExt};
use tower_twilio_signature::{sign, SignatureError, SignatureErrorKind, VerifiedWebhook};

/// The account Auth Token the tests sign with.
pub(crate) const TOKEN: &str = "test-auth-token-5f1c9a";
/// A second token, for rotation.
pub(crate) const TOKEN_2: &str = "secondary-token-88d2e4";
/// A token the layer does not hold.
pub(crate) const OTHER_TOKEN: &str = "someone-elses-token-0b7";
/// The host Twilio calls.
pub(crate) const PUBLIC_HOST: &str = "hooks.example.com";
/// `Content-Type` of a Twilio form webhook.
pub(crate) const FORM: &str = "application/x-www-form-urlencoded";

pub(crate) static SIGNATURE: HeaderName = HeaderName::from_static("x-twilio-signature");
pub(crate) static SETTINGS: HeaderName =
    HeaderName::from_static("x-twilio-webhooks-signature-settings");
pub(crate) static IDEMPOTENCY: HeaderName = HeaderName::from_static("i-twilio-idempotency-token");
/// Response header the test services set to the URL that verified.
pub(crate) static VERIFIED_URL: HeaderName = HeaderName::from_static("x-verified-url");

/// The parameters of a typical SMS webhook.
pub(crate) const SMS: &[(&str, &str)] = &[
    ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
    ("Body", "Hello, world & friends = 100%"),
    ("From", "+15005550006"),
    ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
    ("To", "+15005550001"),
];

/// `params` as an `application/x-www-form-urlencoded` body.
pub(crate) fn form_body(params: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

/// The signature Twilio sends for `url` and `params` with [`TOKEN`].
pub(crate) fn sig(url: &str, params: &[(&str, &str)]) -> String {
    sign(TOKEN, url, params.iter().copied())
}

/// A signature of the right shape that matches nothing.
pub(crate) const FORGED: &str = "bm90IGEgcmVhbCBzaWduYXR1cmU=";

/// A form POST to `uri` with `Host: hooks.example.com`, signed for `signed_url`.
pub(crate) fn form_post(uri: &str, signed_url: &str, params: &[(&str, &str)]) -> Request<Body> {
    Request::post(uri)
        .header(HOST, PUBLIC_HOST)
        .header(CONTENT_TYPE, FORM)
        .header(&SIGNATURE, sig(signed_url, params))
        .body(Body::from(form_body(params)))
        .unwrap()
}

/// Like [`form_post`] with the given signature header value.
pub(crate) fn form_post_with_sig(uri: &str, signature: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header(HOST, PUBLIC_HOST)
        .header(CONTENT_TYPE, FORM)
        .header(&SIGNATURE, signature)
        .body(Body::from(body.to_owned()))
        .unwrap()
}

/// The kind of the [`SignatureError`] a response carries, if any.
pub(crate) fn kind<B>(res: &Response<B>) -> Option<SignatureErrorKind> {
    res.extensions()
        .get::<SignatureError>()
        .map(SignatureError::kind)
}

/// Counts calls that reach a handler or inner service.
#[derive(Clone, Debug, Default)]
pub(crate) struct Calls(Arc<AtomicUsize>);

impl Calls {
    pub(crate) fn hit(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// What a test needs to know about a response.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) status: StatusCode,
    pub(crate) kind: Option<SignatureErrorKind>,
    pub(crate) verified: Option<VerifiedWebhook>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Outcome {
    pub(crate) async fn of(res: Response<Body>) -> Self {
        let (parts, body) = res.into_parts();
        Self {
            status: parts.status,
            kind: parts
                .extensions
                .get::<SignatureError>()
                .map(SignatureError::kind),
            verified: parts.extensions.get::<VerifiedWebhook>().cloned(),
            headers: parts.headers,
            body: axum::body::to_bytes(body, usize::MAX).await.unwrap(),
        }
    }

    /// The URL that verified, as the service reported it.
    pub(crate) fn url(&self) -> Option<&str> {
        self.verified.as_ref().map(VerifiedWebhook::url)
    }

    pub(crate) fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

/// Sends one request through `svc` and collects the outcome.
pub(crate) async fn call<S>(svc: S, req: Request<Body>) -> Outcome
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    Outcome::of(svc.oneshot(req).await.unwrap()).await
}

/// A body that serves the given frames in order and counts how often it is polled.
/// Its size is unknown, as for a chunked request.
#[derive(Debug)]
pub(crate) struct Tracked {
    frames: VecDeque<Result<Bytes, std::io::Error>>,
    polls: Arc<AtomicUsize>,
}

impl Tracked {
    pub(crate) fn new<I>(chunks: I) -> (Self, Arc<AtomicUsize>)
    where
        I: IntoIterator<Item = Result<Bytes, std::io::Error>>,
    {
        let polls = Arc::new(AtomicUsize::new(0));
        (
            Self {
                frames: chunks.into_iter().collect(),
                polls: Arc::clone(&polls),
            },
            polls,
        )
    }
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        this.polls.fetch_add(1, Ordering::SeqCst);
        Poll::Ready(this.frames.pop_front().map(|f| f.map(Frame::data)))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// A body that must never be read.
#[derive(Debug, Default)]
pub(crate) struct MustNotPoll {
    /// The exact size it reports, if any.
    pub(crate) exact: Option<u64>,
}

impl http_body::Body for MustNotPoll {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        panic!("the body was polled although the request had to be refused unread");
    }

    fn size_hint(&self) -> SizeHint {
        self.exact
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}

/// A `Basic` `Authorization` header value.
pub(crate) fn basic(user: &str, pass: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

/// The log lines written on this thread while it is in scope (a current-thread test
/// runtime runs the servers and the tasks they spawn here too).
///
/// One global subscriber writes each line to the buffer of the thread that logged it: a
/// subscriber per thread (`set_default`) can miss lines when another thread registers a
/// log statement at the same time.
pub(crate) struct Logs {
    buffer: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

std::thread_local! {
    static THREAD_LOGS: std::cell::RefCell<Option<std::sync::Arc<std::sync::Mutex<Vec<u8>>>>> =
        const { std::cell::RefCell::new(None) };
}

impl Logs {
    pub(crate) fn capture() -> Self {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            let subscriber = tracing_subscriber::fmt()
                .with_writer(|| LogWriter)
                .with_ansi(false)
                .with_max_level(tracing::Level::INFO)
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in the tests");
        });
        let buffer = std::sync::Arc::default();
        THREAD_LOGS.with(|logs| *logs.borrow_mut() = Some(std::sync::Arc::clone(&buffer)));
        Self { buffer }
    }

    /// Everything logged so far.
    #[allow(dead_code)] // not every test file reads the whole text
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.buffer.lock().unwrap().clone()).unwrap()
    }

    /// The lines that contain every one of `words`.
    pub(crate) fn lines_with(&self, words: &[&str]) -> Vec<String> {
        let text = String::from_utf8(self.buffer.lock().unwrap().clone()).unwrap();
        text.lines()
            .filter(|line| words.iter().all(|w| line.contains(w)))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Logs {
    fn drop(&mut self) {
        THREAD_LOGS.with(|logs| logs.borrow_mut().take());
    }
}

/// Where the global test subscriber writes: the current thread's [`Logs`], if any.
pub(crate) struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        THREAD_LOGS.with(|logs| {
            if let Some(buffer) = logs.borrow().as_ref() {
                buffer.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
