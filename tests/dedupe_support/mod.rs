//! Shared by the dedupe tests and benchmark: a Redis server of their own, and an app with
//! the signature layer outside the dedupe layer.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Form, Router};
use std::collections::HashMap;
use tower::ServiceExt;
use tower_twilio_signature::dedupe::{DedupeLayer, Store};
use tower_twilio_signature::{sign, TwilioSignatureLayer, UrlSource};

/// The Auth Token the tests sign with.
pub const TOKEN: &str = "dedupe-test-token-3b9f";
/// The public base URL Twilio calls.
pub const BASE: &str = "https://hooks.example.com";

/// A `redis-server` on a free loopback port, without persistence, killed when dropped.
/// Panics (so the test fails) when `redis-server` cannot be started.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
}

impl RedisServer {
    pub fn start() -> Self {
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(std::env::temp_dir())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|err| {
                    panic!("cannot start redis-server ({err}): install it (scripts/test does)")
                });
            let mut server = Self {
                child: Some(child),
                port,
            };
            if server.wait_ready(Duration::from_secs(5)) {
                return server;
            }
            last = format!("redis-server on port {port} did not answer PING");
            server.stop();
        }
        panic!("{last}");
    }

    pub const fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends one command in the inline protocol and returns the raw reply.
    pub fn command(&self, line: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        stream.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        let mut reply = vec![0; 64 * 1024];
        let n = stream.read(&mut reply).unwrap_or(0);
        let _ = stream.shutdown(Shutdown::Both);
        String::from_utf8_lossy(&reply[..n]).into_owned()
    }

    fn wait_ready(&mut self, within: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < within {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    return false;
                }
            }
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
                let mut buf = [0; 16];
                if stream.write_all(b"PING\r\n").is_ok() {
                    if let Ok(n) = stream.read(&mut buf) {
                        if buf[..n].starts_with(b"+PONG") {
                            return true;
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback port nothing listens on (at the moment it was asked).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// How many times the handlers of one app ran.
#[derive(Clone, Default)]
pub struct Runs(Arc<AtomicUsize>);

impl Runs {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    fn next(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// The answer of a run: TwiML naming the run, with a header that is stored and one that
/// is not.
fn twiml(run: usize) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/xml".to_owned()),
            (SET_COOKIE, format!("run={run}")),
        ],
        format!("<Response><Message>run {run}</Message></Response>"),
    )
}

async fn ok(State(runs): State<Runs>) -> impl IntoResponse {
    twiml(runs.next())
}

/// Sleeps `ms` milliseconds (a form parameter) before answering.
async fn slow(
    State(runs): State<Runs>,
    Form(form): Form<HashMap<String, String>>,
) -> impl IntoResponse {
    let run = runs.next();
    let ms = form.get("ms").and_then(|v| v.parse().ok()).unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    twiml(run)
}

/// Fails with 500 on the app's first run, then answers.
async fn flaky(State(runs): State<Runs>) -> axum::response::Response {
    let run = runs.next();
    if run == 1 {
        (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response()
    } else {
        twiml(run).into_response()
    }
}

/// Answers 201 Created: a status other than 200 that is stored and replayed as it was.
async fn created(State(runs): State<Runs>) -> impl IntoResponse {
    (StatusCode::CREATED, format!("run {}", runs.next()))
}

/// `len` bytes (a form parameter) in one piece with a known length.
async fn big(State(runs): State<Runs>, Form(form): Form<HashMap<String, String>>) -> String {
    let run = runs.next();
    let len = form.get("len").and_then(|v| v.parse().ok()).unwrap_or(0);
    body_of(run, len)
}

/// `len` bytes in chunks of 100, with no length known in advance.
async fn stream(State(runs): State<Runs>, Form(form): Form<HashMap<String, String>>) -> Body {
    let run = runs.next();
    let len = form.get("len").and_then(|v| v.parse().ok()).unwrap_or(0);
    let body = body_of(run, len).into_bytes();
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = body
        .chunks(100)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    Body::from_stream(futures_util::stream::iter(chunks))
}

/// `len` bytes starting with the run number.
pub fn body_of(run: usize, len: usize) -> String {
    let mut body = format!("run {run} ");
    while body.len() < len {
        body.push(char::from(b'a' + (body.len() % 26) as u8));
    }
    body.truncate(len.max(6));
    body
}

/// The test app: handlers that count their runs, `dedupe` inside the signature layer.
pub fn app(dedupe: DedupeLayer, runs: Runs) -> Router {
    Router::new()
        .route("/ok", post(ok))
        .route("/slow", post(slow))
        .route("/flaky", post(flaky))
        .route("/created", post(created))
        .route("/big", post(big))
        .route("/stream", post(stream))
        .with_state(runs)
        .layer(dedupe)
        .layer(
            TwilioSignatureLayer::new(TOKEN)
                .unwrap()
                .url_source(UrlSource::base_url(BASE).unwrap()),
        )
}

/// The app over `store`, configured by `configure`.
pub fn app_with<St: Store>(
    store: St,
    configure: impl FnOnce(DedupeLayer) -> DedupeLayer,
) -> (Router, Runs) {
    let runs = Runs::default();
    let layer = configure(DedupeLayer::new().with_store(store));
    (app(layer, runs.clone()), runs)
}

/// A delivery of a webhook to `path`, signed as Twilio signs it, with `token` as its
/// `I-Twilio-Idempotency-Token` when given.
pub fn delivery(path: &str, params: &[(&str, &str)], token: Option<&str>) -> Request<Body> {
    let url = format!("{BASE}{path}");
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let mut request = Request::post(path)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(
            "x-twilio-signature",
            sign(TOKEN, &url, params.iter().copied()),
        );
    if let Some(token) = token {
        request = request.header("i-twilio-idempotency-token", token);
    }
    request.body(Body::from(body)).unwrap()
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn replayed(&self) -> bool {
        match self.headers.get("idempotent-replayed") {
            None => false,
            Some(v) if v == "true" => true,
            Some(v) => panic!("Idempotent-Replayed: {v:?}"),
        }
    }
}

/// Sends `request` to `app` and reads the whole answer.
pub async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("the body reads");
    Reply {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

/// Sends a delivery of `path` with `token` and no parameters.
pub async fn deliver(app: &Router, path: &str, token: &str) -> Reply {
    send(app, delivery(path, &[], Some(token))).await
}
