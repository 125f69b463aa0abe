//! The layer behind real servers on a loopback socket (`axum::serve` and hyper with
//! `TowerToHyperService`), driven over TCP by a real HTTP client.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use futures_util::stream;
use http::header::{CONTENT_TYPE, HOST};
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::{service_fn, Layer};
use tower_twilio_signature::{
    MatchedKey, TwilioSignatureLayer, UrlSource, VerifiedBody, VerifiedWebhook,
};

use common::{
    form_body, sig, Calls, FORGED, FORM, IDEMPOTENCY, SIGNATURE, SMS, TOKEN, VERIFIED_URL,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ClientBody = BoxBody<Bytes, BoxError>;

/// A client that opens a new connection per request, so a refusal that leaves a body
/// unread cannot affect the next request.
fn client() -> Client<HttpConnector, ClientBody> {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http()
}

fn full(body: impl Into<Bytes>) -> ClientBody {
    Full::new(body.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// A body of unknown length, sent chunked.
fn chunked(chunks: &[&'static str]) -> ClientBody {
    let frames: Vec<Result<Frame<Bytes>, BoxError>> = chunks
        .iter()
        .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes()))))
        .collect();
    StreamBody::new(stream::iter(frames)).boxed()
}

async fn send(
    addr: SocketAddr,
    path: &str,
    signature: Option<&str>,
    body: ClientBody,
) -> (StatusCode, http::HeaderMap, Bytes) {
    let mut builder = Request::post(format!("http://{addr}{path}")).header(CONTENT_TYPE, FORM);
    if let Some(s) = signature {
        builder = builder.header(&SIGNATURE, s);
    }
    builder = builder.header(&IDEMPOTENCY, "idem-over-tcp");
    let res = client().request(builder.body(body).unwrap()).await.unwrap();
    let (parts, body) = res.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

async fn serve_axum(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// An axum handler that echoes the body and reports the verified URL, key and
/// idempotency token in headers.
fn echo_app(calls: &Calls) -> axum::routing::MethodRouter {
    let calls = calls.clone();
    post(move |verified: VerifiedWebhook, body: Bytes| async move {
        calls.hit();
        (
            [
                (VERIFIED_URL.clone(), verified.url().to_owned()),
                (
                    http::HeaderName::from_static("x-key"),
                    format!("{:?}", verified.key()),
                ),
                (
                    IDEMPOTENCY.clone(),
                    verified.idempotency_token().unwrap_or_default().to_owned(),
                ),
            ],
            body,
        )
    })
}

#[tokio::test]
async fn axum_serve_with_the_host_header() {
    let calls = Calls::default();
    let app = Router::new().route("/sms", echo_app(&calls)).layer(
        TwilioSignatureLayer::new(TOKEN)
            .unwrap()
            .url_source(UrlSource::host_header("http").unwrap()),
    );
    let addr = serve_axum(app).await;
    // The client sends `Host: 127.0.0.1:<port>`.
    let signed = format!("http://{addr}/sms?From=%2B1");
    let body = form_body(SMS);

    let (status, headers, echoed) = send(
        addr,
        "/sms?From=%2B1",
        Some(&sig(&signed, SMS)),
        full(body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        echoed,
        body.as_bytes(),
        "handler got the bytes sent over TCP"
    );
    assert_eq!(headers[&VERIFIED_URL], signed.as_str());
    assert_eq!(
        headers["x-key"],
        format!("{:?}", MatchedKey::AuthToken(0)).as_str()
    );
    assert_eq!(headers[&IDEMPOTENCY], "idem-over-tcp");

    let (status, _, echoed) = send(addr, "/sms?From=%2B1", Some(FORGED), full(body.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "forged");
    assert!(echoed.is_empty());

    let (status, _, _) = send(addr, "/sms?From=%2B1", None, full(body.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "unsigned");

    let wrong_host = sig(
        &format!("http://localhost:{}/sms?From=%2B1", addr.port()),
        SMS,
    );
    let (status, _, _) = send(addr, "/sms?From=%2B1", Some(&wrong_host), full(body)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "signed for another host");

    assert_eq!(
        calls.get(),
        1,
        "only the genuine request reached the handler"
    );
}

#[tokio::test]
async fn axum_serve_nested_router_with_fixed_base() {
    let calls = Calls::default();
    let twilio = Router::new().route("/sms", echo_app(&calls)).layer(
        TwilioSignatureLayer::new(TOKEN)
            .unwrap()
            .url_source(UrlSource::base_url("https://hooks.example.com").unwrap()),
    );
    let addr = serve_axum(Router::new().nest("/twilio", twilio)).await;
    let body = form_body(SMS);

    let full_url = sig("https://hooks.example.com/twilio/sms", SMS);
    let (status, headers, echoed) =
        send(addr, "/twilio/sms", Some(&full_url), full(body.clone())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[&VERIFIED_URL],
        "https://hooks.example.com/twilio/sms"
    );
    assert_eq!(echoed, body.as_bytes());

    let stripped = sig("https://hooks.example.com/sms", SMS);
    let (status, _, _) = send(addr, "/twilio/sms", Some(&stripped), full(body)).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "signature over the stripped path"
    );
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn axum_serve_body_limits() {
    let calls = Calls::default();
    let app = Router::new().route("/sms", echo_app(&calls)).layer(
        TwilioSignatureLayer::new(TOKEN)
            .unwrap()
            .url_source(UrlSource::base_url("https://hooks.example.com").unwrap())
            .body_limit(64),
    );
    let addr = serve_axum(app).await;
    let params = [("Body", "hello world"), ("From", "+1")];
    let signature = sig("https://hooks.example.com/sms", &params);

    let (status, _, echoed) = send(
        addr,
        "/sms",
        Some(&signature),
        chunked(&["Body=hello", "+world", "&From=%2B1"]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "chunked within the limit");
    assert_eq!(echoed, "Body=hello+world&From=%2B1");

    let big = format!("Body={}", "x".repeat(200));
    let (status, _, _) = send(addr, "/sms", Some(&signature), full(big)).await;
    assert_eq!(
        status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "Content-Length over the limit"
    );

    let chunk = "Body=0123456789012345678901234567890123456789";
    let (status, _, _) = send(
        addr,
        "/sms",
        Some(&signature),
        chunked(&[chunk, chunk, chunk]),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "chunked over the limit"
    );

    assert_eq!(calls.get(), 1);
}

/// Serves `svc` with hyper's own HTTP/1 connection loop.
async fn serve_hyper<S>(svc: S) -> SocketAddr
where
    S: tower::Service<Request<Incoming>, Response = Response<Full<Bytes>>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let svc = TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// A plain `service_fn` that echoes the verified body, behind the layer, over hyper's
/// `Incoming` body.
fn hyper_echo(
    calls: &Calls,
    layer: &TwilioSignatureLayer,
) -> impl tower::Service<
    Request<Incoming>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
       + Send
       + 'static {
    let calls = calls.clone();
    layer.layer(service_fn(move |req: Request<VerifiedBody>| {
        let calls = calls.clone();
        async move {
            calls.hit();
            let (parts, body) = req.into_parts();
            let bytes = match body.collect().await {
                Ok(c) => c.to_bytes(),
                Err(never) => match never {},
            };
            let mut res = Response::new(Full::new(bytes));
            if let Some(v) = parts.extensions.get::<VerifiedWebhook>() {
                res.headers_mut()
                    .insert(&VERIFIED_URL, v.url().parse().unwrap());
            }
            Ok::<_, Infallible>(res)
        }
    }))
}

#[tokio::test]
async fn hyper_server_with_tower_to_hyper_service() {
    let calls = Calls::default();
    let layer = TwilioSignatureLayer::new(TOKEN)
        .unwrap()
        .url_source(UrlSource::base_url("https://hooks.example.com/base").unwrap())
        .body_limit(256);
    let addr = serve_hyper(hyper_echo(&calls, &layer)).await;
    let body = form_body(SMS);
    let signed = "https://hooks.example.com/base/sms?a=1";

    let (status, headers, echoed) = send(
        addr,
        "/sms?a=1",
        Some(&sig(signed, SMS)),
        full(body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[&VERIFIED_URL], signed);
    assert_eq!(echoed, body.as_bytes());

    let (status, _, _) = send(
        addr,
        "/sms?a=1",
        Some(&sig(signed, SMS)),
        chunked(&["AccountSid=x&", "Body=y"]),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "signed params, other body");

    let (status, _, echoed) = send(addr, "/sms?a=1", Some(FORGED), full(body)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "forged");
    assert!(echoed.is_empty());

    let big = "x".repeat(1000);
    let (status, _, _) = send(addr, "/sms?a=1", Some(FORGED), full(big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(calls.get(), 1);
}

/// Sends raw HTTP/1.1 bytes and returns the status line.
async fn raw_status_line(addr: SocketAddr, request: String) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    text.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn absolute_form_request_target_over_tcp() {
    let calls = Calls::default();
    let host_mode = TwilioSignatureLayer::new(TOKEN).unwrap();
    let addr = serve_hyper(hyper_echo(&calls, &host_mode)).await;
    let body = form_body(SMS);
    let request = |signed: &str| {
        format!(
            "POST http://other.example/sms HTTP/1.1\r\n\
             {HOST}: 127.0.0.1:{port}\r\n\
             {CONTENT_TYPE}: {FORM}\r\n\
             content-length: {len}\r\n\
             {SIGNATURE}: {signature}\r\n\
             connection: close\r\n\r\n{body}",
            port = addr.port(),
            len = body.len(),
            signature = sig(signed, SMS),
        )
    };
    assert_eq!(
        raw_status_line(addr, request("https://other.example/sms")).await,
        "HTTP/1.1 200 OK",
        "the request target's authority is the host in Host mode"
    );
    assert_eq!(
        raw_status_line(
            addr,
            request(&format!("https://127.0.0.1:{}/sms", addr.port()))
        )
        .await,
        "HTTP/1.1 403 Forbidden",
        "the Host header is not used when the target is absolute"
    );
    assert_eq!(calls.get(), 1);

    let fixed = TwilioSignatureLayer::new(TOKEN)
        .unwrap()
        .url_source(UrlSource::base_url("https://hooks.example.com").unwrap());
    let addr_fixed = serve_hyper(hyper_echo(&calls, &fixed)).await;
    let request_fixed = |signed: &str| {
        request(signed).replace(
            &format!(":{}\r\n", addr.port()),
            &format!(":{}\r\n", addr_fixed.port()),
        )
    };
    assert_eq!(
        raw_status_line(addr_fixed, request_fixed("https://hooks.example.com/sms")).await,
        "HTTP/1.1 200 OK",
        "fixed base: the target's authority is ignored"
    );
    assert_eq!(
        raw_status_line(addr_fixed, request_fixed("https://other.example/sms")).await,
        "HTTP/1.1 403 Forbidden",
        "fixed base: a signature over the target's authority fails"
    );
    assert_eq!(calls.get(), 2);
}

#[tokio::test]
async fn expect_continue_is_not_answered_for_a_refused_body() {
    let calls = Calls::default();
    let layer = TwilioSignatureLayer::new(TOKEN)
        .unwrap()
        .url_source(UrlSource::base_url("https://hooks.example.com").unwrap())
        .body_limit(64);
    let addr = serve_hyper(hyper_echo(&calls, &layer)).await;
    // Headers only: if the layer read the body, hyper would send 100 Continue and wait.
    let head = |length: usize, signature: &str| {
        format!(
            "POST /sms HTTP/1.1\r\n\
             host: 127.0.0.1\r\n\
             {CONTENT_TYPE}: {FORM}\r\n\
             content-length: {length}\r\n\
             expect: 100-continue\r\n\
             {signature}\
             connection: close\r\n\r\n"
        )
    };
    let signature = format!("{SIGNATURE}: {FORGED}\r\n");
    let cases = [
        (
            "Content-Length over the limit",
            head(1_000_000, &signature),
            "HTTP/1.1 413 Payload Too Large",
        ),
        ("no signature", head(10, ""), "HTTP/1.1 403 Forbidden"),
    ];
    for (name, request, expected) in cases {
        let status = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            raw_status_line(addr, request),
        )
        .await
        .unwrap_or_else(|_| panic!("{name}: the server waited for the body"));
        assert_eq!(status, expected, "{name}");
    }
    assert_eq!(calls.get(), 0);
}
