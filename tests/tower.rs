//! The layer around plain Tower services: URL sources, body modes, keys, Basic auth,
//! statuses and body limits, checked against an inner service that echoes what it got.

mod common;

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use tower::{service_fn, Layer, Service, ServiceBuilder, ServiceExt};
use tower_twilio_signature::{
    sign, sign_body, sign_url, sign_with, url_with_body_sha256, Algorithm, MatchedKey,
    SignatureErrorKind, TwilioSignatureLayer, UrlSource, VerifiedBody, VerifiedWebhook, Verifier,
};

use common::{
    basic, call, form_body, form_post, form_post_with_sig, sig, Calls, MustNotPoll, Outcome,
    Tracked, FORGED, FORM, IDEMPOTENCY, OTHER_TOKEN, PUBLIC_HOST, SETTINGS, SIGNATURE, SMS, TOKEN,
    TOKEN_2, VERIFIED_URL,
};

/// An inner service that counts its calls, echoes the body it received, and reports the
/// [`VerifiedWebhook`] it saw in a header and in the response's extensions.
fn echo(
    calls: &Calls,
) -> impl Service<
    Request<VerifiedBody>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Send,
> + Clone
       + Send
       + Sync
       + 'static {
    let calls = calls.clone();
    service_fn(move |req: Request<VerifiedBody>| {
        let calls = calls.clone();
        async move {
            calls.hit();
            let (parts, body) = req.into_parts();
            let bytes = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(never) => match never {},
            };
            let mut res = Response::new(Body::from(bytes));
            if let Some(verified) = parts.extensions.get::<VerifiedWebhook>() {
                res.headers_mut()
                    .insert(&VERIFIED_URL, verified.url().parse().unwrap());
                res.extensions_mut().insert(verified.clone());
            }
            Ok::<_, Infallible>(res)
        }
    })
}

/// Runs one request through `layer` around [`echo`]; returns the outcome and the call count.
async fn run(layer: &TwilioSignatureLayer, req: Request<Body>) -> (Outcome, usize) {
    let calls = Calls::default();
    let out = call(layer.layer(echo(&calls)), req).await;
    (out, calls.get())
}

/// Asserts a request got through with the body intact and the expected URL.
fn assert_passed(name: &str, out: &Outcome, calls: usize, url: &str, body: &str) {
    assert_eq!(
        out.status,
        StatusCode::OK,
        "{name}: status ({:?})",
        out.kind
    );
    assert_eq!(out.kind, None, "{name}: no SignatureError on success");
    assert_eq!(calls, 1, "{name}: inner service called once");
    assert_eq!(out.url(), Some(url), "{name}: verified URL");
    assert_eq!(out.text(), body, "{name}: inner service saw the exact body");
}

/// Asserts a request was refused with `kind` without reaching the inner service.
fn assert_refused(name: &str, out: &Outcome, calls: usize, kind: SignatureErrorKind) {
    let status = match kind {
        SignatureErrorKind::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        SignatureErrorKind::BodyRead => StatusCode::BAD_REQUEST,
        SignatureErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        _ => StatusCode::FORBIDDEN,
    };
    assert_eq!(out.kind, Some(kind), "{name}: error kind");
    assert_eq!(out.status, status, "{name}: status");
    assert_eq!(calls, 0, "{name}: inner service must not run");
    assert!(out.verified.is_none(), "{name}: nothing verified");
    assert!(out.body.is_empty(), "{name}: default rejection has no body");
}

// ---------------------------------------------------------------------------------------
// URL sources
// ---------------------------------------------------------------------------------------

struct UrlCase {
    name: &'static str,
    uri: &'static str,
    headers: &'static [(&'static str, &'static str)],
    /// The URL the signature is computed over.
    signed: &'static str,
    /// `None`: passes and verifies as `signed`.
    expect: Option<SignatureErrorKind>,
}

async fn run_url_cases(layer: TwilioSignatureLayer, cases: &[UrlCase]) {
    let params = [("Body", "hi there"), ("From", "+15005550006")];
    let body = form_body(&params);
    for case in cases {
        let mut builder = Request::post(case.uri).header(CONTENT_TYPE, FORM);
        for (name, value) in case.headers {
            builder = builder.header(*name, *value);
        }
        let req = builder
            .header(&SIGNATURE, sig(case.signed, &params))
            .body(Body::from(body.clone()))
            .unwrap();
        let (out, calls) = run(&layer, req).await;
        match case.expect {
            None => assert_passed(case.name, &out, calls, case.signed, &body),
            Some(kind) => assert_refused(case.name, &out, calls, kind),
        }
    }
}

const H: &[(&str, &str)] = &[("host", PUBLIC_HOST)];

#[tokio::test]
async fn fixed_base_url_with_prefix() {
    use SignatureErrorKind::*;
    let layer = TwilioSignatureLayer::new(TOKEN)
        .unwrap()
        .url_source(UrlSource::base_url("https://hooks.example.com/prefix").unwrap());
    run_url_cases(
        layer,
        &[
            UrlCase {
                name: "path and query appended to the base",
                uri: "/sms?x=1&y=two",
                headers: H,
                signed: "https://hooks.example.com/prefix/sms?x=1&y=two",
                expect: None,
            },
            UrlCase {
                name: "signature without the prefix",
                uri: "/sms?x=1&y=two",
                headers: H,
                signed: "https://hooks.example.com/sms?x=1&y=two",
                expect: Some(Mismatch),
            },
            UrlCase {
                name: "signature over http",
                uri: "/sms",
                headers: H,
                signed: "http://hooks.example.com/prefix/sms",
                expect: Some(Mismatch),
            },
            UrlCase {
                name: "no Host header needed",
                uri: "/sms",
                headers: &[],
                signed: "https://hooks.example.com/prefix/sms",
                expect: None,
            },
            UrlCase {
                name: "Host header ignored",
                uri: "/sms",
                headers: &[("host", "evil.example")],
                signed: "https://hooks.example.com/prefix/sms",
                expect: None,
            },
            UrlCase {
                name: "signature for the Host header's host",
                uri: "/sms",
                headers: &[("host", "evil.example")],
                signed: "https://evil.example/prefix/sms",
                expect: Some(Mismatch),
            },
            UrlCase {
                name: "forwarded headers ignored",
                uri: "/sms",
                headers: &[
                    ("host", PUBLIC_HOST),
                    ("x-forwarded-host", "evil.example"),
                    ("forwarded", "host=evil.example"),
                ],
                signed: "https://evil.example/prefix/sms",
                expect: Some(Mismatch),
            },
            UrlCase {
                name: "absolute-form URI: authority ignored",
                uri: "http://other.example/sms?x=1",
                headers: H,
                signed: "https://hooks.example.com/prefix/sms?x=1",
                expect: None,
            },
            UrlCase {
                name: "absolute-form URI: its own URL is not accepted",
                uri: "http://other.example/sms?x=1",
                headers: H,
                signed: "http://other.example/sms?x=1",
                expect: Some(Mismatch),
            },
            UrlCase {
                name: "signed with :443, base without port",
                uri: "/sms",
                headers: H,
                signed: "https://hooks.example.com:443/prefix/sms",
                expect: None,
            },
            UrlCase {
                name: "signed with another port",
                uri: "/sms",
                headers: H,
                signed: "https://hooks.example.com:8443/prefix/sms",
                expect: Some(Mismatch),
            },
            UrlCase {
                name: "query kept byte for byte",
                uri: "/sms?b=2&a=%20x+y",
                headers: H,
                signed: "https://hooks.example.com/prefix/sms?b=2&a=%20x+y",
                expect: None,
            },
            UrlCase {
                name: "query reordered",
                uri: "/sms?b=2&a=%20x+y",
                headers: H,
                signed: "https://hooks.example.com/prefix/sms?a=%20x+y&b=2",
                expect: Some(Mismatch),
            },
            UrlCase {
                name: "query re-encoded",
                uri: "/sms?b=2&a=%20x+y",
                headers: H,
                signed: "https://hooks.example.com/prefix/sms?b=2&a=%20x%20y",
                expect: Some(Mismatch),
            },
            UrlCase {
                name: "percent-encoded path kept",
                uri: "/s%6Ds",
                headers: H,
                signed: "https://hooks.example.com/prefix/s%6Ds",
                expect: None,
            },
            UrlCase {
                name: "percent-encoded path not decoded",
                uri: "/s%6Ds",
                headers: H,
                signed: "https://hooks.example.com/prefix/sms",
                expect: Some(Mismatch),
            },
            UrlCase {
                name: "trailing slash is part of the path",
                uri: "/sms/",
                headers: H,
                signed: "https://hooks.example.com/prefix/sms",
                expect: Some(Mismatch),
            },
        ],
    )
    .await;
}

#[tokio::test]
async fn fixed_base_url_variants() {
    use SignatureErrorKind::*;
    let with_port = TwilioSignatureLayer::new(TOKEN)
        .unwrap()
        .url_source(UrlSource::base_url("http://localhost:3000").unwrap());
    run_url_cases(
        with_port,
        &[
            UrlCase {
                name: "http base with port",
                uri: "/sms",
                headers: H,
                signed: "http://localhost:3000/sms",
                expect: None,
            },
            UrlCase {
                name: "http base with port: signed without port",
                uri: "/sms",
                headers: H,
                signed: "http://localhost/sms",
                expect: None,
            },
            UrlCase {
                name: "http base with port: signed over https",
                uri: "/sms",
                headers: H,
                signed: "https://localhost:3000/sms",
                expect: Some(Mismatch),
            },
            UrlCase {
                name: "http base with port: signed with :80",
                uri: "/sms",
                headers: H,
                signed: "http://localhost:80/sms",
                expect: Some(Mismatch),
            },
        ],
    )
    .await;

    let trailing = TwilioSignatureLayer::new(TOKEN)
        .unwrap()
        .url_source(UrlSource::base_url("https://hooks.example.com/prefix/").unwrap());
    run_url_cases(
        trailing,
        &[
            UrlCase {
                name: "trailing slash on the base is dropped",
                uri: "/sms",
                headers: H,
                signed: "https://hooks.example.com/prefix/sms",
                expect: None,
            },
            UrlCase {
                name: "trailing slash on the base: no double slash",
                uri: "/sms",
                headers: H,
                signed: "https://hooks.example.com/prefix//sms",
                expect: Some(Mismatch),
            },
        ],
    )
    .await;

    let default_443 = TwilioSignatureLayer::new(TOKEN)
        .unwrap()
        .url_source(UrlSource::base_url("https://hooks.example.com:443").unwrap());
    run_url_cases(
        default_443,
        &[
            UrlCase {
                name: "base with :443, signed without port",
                uri: "/sms",
                headers: H,
                signed: "https://hooks.example.com/sms",
                expect: None,
            },
            UrlCase {
                name: "base with :443, signed with it",
                uri: "/sms",
                headers: H,
                signed: "https://hooks.example.com:443/sms",
                expect: None,
            },
        ],
    )
    .await;
}

#[tokio::test]
async fn host_header_https() {
    use SignatureErrorKind::*;
    let layer = TwilioSignatureLayer::new(TOKEN).unwrap();
    run_url_cases(
        layer,
        &[
            UrlCase {
                name: "Host with https",
                uri: "/sms?x=1",
                headers: &[("host", "api.example.com")],
                signed: "https://api.example.com/sms?x=1",
                expect: None,
            },
            UrlCase {
                name: "Host signed over http",
                uri: "/sms",
                headers: &[("host", "api.example.com")],
                signed: "http://api.example.com/sms",
                expect: Some(Mismatch),
            },
            UrlCase {
                name: "received :443, signed without port",
                uri: "/sms",
                headers: &[("host", "api.example.com:443")],
                signed: "https://api.example.com/sms",
                expect: None,
            },
            UrlCase {
                name: "received without port, signed with :443",
                uri: "/sms",
                headers: &[("host", "api.example.com")],
                signed: "https://api.example.com:443/sms",
                expect: None,
            },
            UrlCase {
                name: "received :8443, signed with it",
                uri: "/sms",
                headers: &[("host", "api.example.com:8443")],
                signed: "https://api.example.com:8443/sms",
                expect: None,
            },
            UrlCase {
                name: "received :8443, signed without port",
                uri: "/sms",
                headers: &[("host", "api.example.com:8443")],
                signed: "https://api.example.com/sms",
                expect: None,
            },
            UrlCase {
                name: "received :8443, signed with :443",
                uri: "/sms",
                headers: &[("host", "api.example.com:8443")],
                signed: "https://api.example.com:443/sms",
                expect: Some(Mismatch),
            },
            UrlCase {
                name: "received without port, signed with :80",
                uri: "/sms",
                headers: &[("host", "api.example.com")],
                signed: "https://api.example.com:80/sms",
                expect: Some(Mismatch),
            },
            UrlCase {
                name: "IPv6 host with port",
                uri: "/sms",
                headers: &[("host", "[2001:db8::1]:8443")],
                signed: "https://[2001:db8::1]:8443/sms",
                expect: None,
            },
            UrlCase {
                name: "no Host and no authority",
                uri: "/sms",
                headers: &[],
                signed: "https:///sms",
                expect: Some(NoUrl),
            },
            UrlCase {
                name: "two Host headers",
                uri: "/sms",
                headers: &[("host", "api.example.com"), ("host", "evil.example")],
                signed: "https://api.example.com/sms",
                expect: Some(NoUrl),
            },
            UrlCase {
                name: "Host with user info",
                uri: "/sms",
                headers: &[("host", "user@api.example.com")],
                signed: "https://api.example.com/sms",
                expect: Some(NoUrl),
            },
            UrlCase {
                name: "absolute-form URI: its authority is used",
                uri: "http://other.example/sms",
                headers: &[("host", "api.example.com")],
                signed: "https://other.example/sms",
                expect: None,
            },
            UrlCase {
                name: "absolute-form URI: Host header not used",
                uri: "http://other.example/sms",
                headers: &[("host", "api.example.com")],
                signed: "https://api.example.com/sms",
                expect: Some(Mismatch),
            },
            UrlCase {
                name: "absolute-form URI without Host header",
                uri: "http://other.example:8080/sms?x=1",
                headers: &[],
                signed: "https://other.example:8080/sms?x=1",
                expect: None,
            },
            UrlCase {
                name: "forwarded headers ignored in Host mode",
                uri: "/sms",
                headers: &[
                    ("host", "api.example.com"),
                    ("x-forwarded-host", "evil.example"),
                ],
                signed: "https://evil.example/sms",
                expect: Some(Mismatch),
            },
        ],
    )
    .await;
}

#[tokio::test]
async fn host_header_http() {
    use SignatureErrorKind::*;
    let layer = TwilioSignatureLayer::new(TOKEN)
        .unwrap()
        .url_source(UrlSource::host_header("http").unwrap());
    run_url_cases(
        layer,
        &[
            UrlCase {
                name: "Host with http",
                uri: "/sms",
                headers: &[("host", "api.example.com")],
                signed: "http://api.example.com/sms",
                expect: None,
            },
            UrlCase {
                name: "http Host signed over https",
                uri: "/sms",
                headers: &[("host", "api.example.com")],
                signed: "https://api.example.com/sms",
                expect: Some(Mismatch),
            },
            UrlCase {
                name: "received :80, signed without port",
                uri: "/sms",
                headers: &[("host", "api.example.com:80")],
                signed: "http://api.example.com/sms",
                expect: None,
            },
            UrlCase {
                name: "received without port, signed with :80",
                uri: "/sms",
                headers: &[("host", "api.example.com")],
                signed: "http://api.example.com:80/sms",
                expect: None,
            },
            UrlCase {
                name: "received without port, signed with :443",
                uri: "/sms",
                headers: &[("host", "api.example.com")],
                signed: "http://api.example.com:443/sms",
                expect: Some(Mismatch),
            },
            UrlCase {
                name: "absolute-form https URI: configured scheme used",
                uri: "https://other.example/sms",
                headers: &[("host", "api.example.com")],
                signed: "http://other.example/sms",
                expect: None,
            },
        ],
    )
    .await;
}

#[tokio::test]
async fn x_forwarded_one_hop() {
    use SignatureErrorKind::*;
    let layer = TwilioSignatureLayer::new(TOKEN)
        .unwrap()
        .url_source(UrlSource::x_forwarded(1).unwrap());
    run_url_cases(
        layer,
        &[
            UrlCase {
                name: "proto and host",
                uri: "/sms",
                headers: &[
                    ("host", "backend.internal:8080"),
                    ("x-forwarded-proto", "http"),
                    ("x-forwarded-host", "public.example"),
                ],
                signed: "http://public.example/sms",
                expect: None,
            },
            UrlCase {
                name: "spoofed host before the trusted hop: real host",
                uri: "/sms",
                headers: &[
                    ("host", "backend.internal"),
                    ("x-forwarded-host", "evil.example, real.example"),
                ],
                signed: "https://real.example/sms",
                expect: None,
            },
            UrlCase {
                name: "spoofed host before the trusted hop: spoofed host",
                uri: "/sms",
                headers: &[
                    ("host", "backend.internal"),
                    ("x-forwarded-host", "evil.example, real.example"),
                ],
                signed: "https://evil.example/sms",
                expect: Some(Mismatch),
            },
            UrlCase {
                name: "two header lines: the last one's entry",
                uri: "/sms",
                headers: &[
                    ("host", "backend.internal"),
                    ("x-forwarded-host", "evil.example"),
                    ("x-forwarded-host", "real.example"),
                ],
                signed: "https://real.example/sms",
                expect: None,
            },
            UrlCase {
                name: "two header lines: the first line is not trusted",
                uri: "/sms",
                headers: &[
                    ("host", "backend.internal"),
                    ("x-forwarded-host", "evil.example"),
                    ("x-forwarded-host", "real.example"),
                ],
                signed: "https://evil.example/sms",
                expect: Some(Mismatch),
            },
            UrlCase {
                name: "spoofed proto before the trusted hop",
                uri: "/sms",
                headers: &[
                    ("host", "backend.internal"),
                    ("x-forwarded-host", "real.example"),
                    ("x-forwarded-proto", "http, https"),
                ],
                signed: "http://real.example/sms",
                expect: Some(Mismatch),
            },
            UrlCase {
                name: "no forwarded headers: https and Host",
                uri: "/sms",
                headers: &[("host", "backend.internal:8080")],
                signed: "https://backend.internal:8080/sms",
                expect: None,
            },
            UrlCase {
                name: "only proto: Host header",
                uri: "/sms",
                headers: &[("host", "backend.internal"), ("x-forwarded-proto", "http")],
                signed: "http://backend.internal/sms",
                expect: None,
            },
            UrlCase {
                name: "no forwarded headers and no Host",
                uri: "/sms",
                headers: &[],
                signed: "https://backend.internal/sms",
                expect: Some(NoUrl),
            },
            UrlCase {
                name: "forwarded port",
                uri: "/sms",
                headers: &[
                    ("host", "backend.internal"),
                    ("x-forwarded-host", "public.example"),
                    ("x-forwarded-port", "8443"),
                ],
                signed: "https://public.example:8443/sms",
                expect: None,
            },
            UrlCase {
                name: "forwarded port 443, signed without port",
                uri: "/sms",
                headers: &[
                    ("host", "backend.internal"),
                    ("x-forwarded-host", "public.example"),
                    ("x-forwarded-port", "443"),
                ],
                signed: "https://public.example/sms",
                expect: None,
            },
            UrlCase {
                name: "forwarded port with a sign",
                uri: "/sms",
                headers: &[
                    ("host", "backend.internal"),
                    ("x-forwarded-host", "public.example"),
                    ("x-forwarded-port", "+443"),
                ],
                signed: "https://public.example/sms",
                expect: Some(NoUrl),
            },
            UrlCase {
                name: "forwarded host with its port",
                uri: "/sms",
                headers: &[
                    ("host", "backend.internal"),
                    ("x-forwarded-host", "public.example:8443"),
                ],
                signed: "https://public.example:8443/sms",
                expect: None,
            },
            UrlCase {
                name: "forwarded prefix",
                uri: "/sms?x=1",
                headers: &[
                    ("host", "backend.internal"),
                    ("x-forwarded-host", "public.example"),
                    ("x-forwarded-prefix", "/api/"),
                ],
                signed: "https://public.example/api/sms?x=1",
                expect: None,
            },
            UrlCase {
                name: "forwarded prefix left out of the signature",
                uri: "/sms?x=1",
                headers: &[
                    ("host", "backend.internal"),
                    ("x-forwarded-host", "public.example"),
                    ("x-forwarded-prefix", "/api"),
                ],
                signed: "https://public.example/sms?x=1",
                expect: Some(Mismatch),
            },
            UrlCase {
                name: "backend Host signed while a forwarded host is trusted",
                uri: "/sms",
                headers: &[
                    ("host", "backend.internal"),
                    ("x-forwarded-host", "public.example"),
                ],
                signed: "https://backend.internal/sms",
                expect: Some(Mismatch),
            },
            UrlCase {
                name: "empty trusted entry",
                uri: "/sms",
                headers: &[
                    ("host", "backend.internal"),
                    ("x-forwarded-host", "real.example, "),
                ],
                signed: "https://real.example/sms",
                expect: Some(NoUrl),
            },
            UrlCase {
                name: "unknown proto",
                uri: "/sms",
                headers: &[("host", "backend.internal"), ("x-forwarded-proto", "ftp")],
                signed: "ftp://backend.internal/sms",
                expect: Some(NoUrl),
            },
            UrlCase {
                name: "malformed port",
                uri: "/sms",
                headers: &[("host", "backend.internal"), ("x-forwarded-port", "99999")],
                signed: "https://backend.internal:99999/sms",
                expect: Some(NoUrl),
            },
        ],
    )
    .await;
}

#[tokio::test]
async fn x_forwarded_two_hops() {
    use SignatureErrorKind::*;
    let layer = TwilioSignatureLayer::new(TOKEN)
        .unwrap()
        .url_source(UrlSource::x_forwarded(2).unwrap());
    let spoofed: &[(&str, &str)] = &[
        ("host", "backend.internal"),
        (
            "x-forwarded-host",
            "evil.example, real.example, lb.internal",
        ),
    ];
    run_url_cases(
        layer,
        &[
            UrlCase {
                name: "second entry from the right",
                uri: "/sms",
                headers: spoofed,
                signed: "https://real.example/sms",
                expect: None,
            },
            UrlCase {
                name: "entry beyond the trusted hops",
                uri: "/sms",
                headers: spoofed,
                signed: "https://evil.example/sms",
                expect: Some(Mismatch),
            },
            UrlCase {
                name: "nearest proxy's own entry",
                uri: "/sms",
                headers: spoofed,
                signed: "https://lb.internal/sms",
                expect: Some(Mismatch),
            },
            UrlCase {
                name: "list shorter than the hops: leftmost entry",
                uri: "/sms",
                headers: &[
                    ("host", "backend.internal"),
                    ("x-forwarded-host", "real.example"),
                ],
                signed: "https://real.example/sms",
                expect: None,
            },
            UrlCase {
                name: "entries spread over lines",
                uri: "/sms",
                headers: &[
                    ("host", "backend.internal"),
                    ("x-forwarded-host", "evil.example, real.example"),
                    ("x-forwarded-host", "lb.internal"),
                ],
                signed: "https://real.example/sms",
                expect: None,
            },
        ],
    )
    .await;
}

#[tokio::test]
async fn rfc7239_forwarded() {
    use SignatureErrorKind::*;
    let one = TwilioSignatureLayer::new(TOKEN)
        .unwrap()
        .url_source(UrlSource::forwarded(1).unwrap());
    run_url_cases(
        one,
        &[
            UrlCase {
                name: "proto and host",
                uri: "/sms",
                headers: &[
                    ("host", "backend.internal"),
                    ("forwarded", "for=192.0.2.60;proto=http;host=public.example"),
                ],
                signed: "http://public.example/sms",
                expect: None,
            },
            UrlCase {
                name: "spoofed element before the trusted hop: real host",
                uri: "/sms",
                headers: &[
                    ("host", "backend.internal"),
                    (
                        "forwarded",
                        "host=evil.example;proto=http, for=192.0.2.60;host=real.example;proto=https",
                    ),
                ],
                signed: "https://real.example/sms",
                expect: None,
            },
            UrlCase {
                name: "spoofed element before the trusted hop: spoofed host",
                uri: "/sms",
                headers: &[
                    ("host", "backend.internal"),
                    (
                        "forwarded",
                        "host=evil.example;proto=http, for=192.0.2.60;host=real.example;proto=https",
                    ),
                ],
                signed: "http://evil.example/sms",
                expect: Some(Mismatch),
            },
            UrlCase {
                name: "two header lines",
                uri: "/sms",
                headers: &[
                    ("host", "backend.internal"),
                    ("forwarded", "host=evil.example"),
                    ("forwarded", "host=real.example"),
                ],
                signed: "https://real.example/sms",
                expect: None,
            },
            UrlCase {
                name: "quoted host with port",
                uri: "/sms",
                headers: &[
                    ("host", "backend.internal"),
                    ("forwarded", "for=\"[2001:db8::1]\";host=\"real.example:8443\""),
                ],
                signed: "https://real.example:8443/sms",
                expect: None,
            },
            UrlCase {
                name: "case-insensitive parameter names",
                uri: "/sms",
                headers: &[
                    ("host", "backend.internal"),
                    ("forwarded", "Proto=http;Host=real.example"),
                ],
                signed: "http://real.example/sms",
                expect: None,
            },
            UrlCase {
                name: "element without host: Host header",
                uri: "/sms",
                headers: &[
                    ("host", "backend.internal"),
                    ("forwarded", "for=192.0.2.60;proto=http"),
                ],
                signed: "http://backend.internal/sms",
                expect: None,
            },
            UrlCase {
                name: "no Forwarded header: https and Host",
                uri: "/sms",
                headers: &[("host", "backend.internal")],
                signed: "https://backend.internal/sms",
                expect: None,
            },
            UrlCase {
                name: "X-Forwarded-Host not read",
                uri: "/sms",
                headers: &[
                    ("host", "backend.internal"),
                    ("x-forwarded-host", "evil.example"),
                ],
                signed: "https://evil.example/sms",
                expect: Some(Mismatch),
            },
            UrlCase {
                name: "pair without value",
                uri: "/sms",
                headers: &[("host", "backend.internal"), ("forwarded", "host")],
                signed: "https://backend.internal/sms",
                expect: Some(NoUrl),
            },
            UrlCase {
                name: "host given twice in one element",
                uri: "/sms",
                headers: &[
                    ("host", "backend.internal"),
                    ("forwarded", "host=a.example;host=b.example"),
                ],
                signed: "https://b.example/sms",
                expect: Some(NoUrl),
            },
        ],
    )
    .await;

    let two = TwilioSignatureLayer::new(TOKEN)
        .unwrap()
        .url_source(UrlSource::forwarded(2).unwrap());
    let headers: &[(&str, &str)] = &[
        ("host", "backend.internal"),
        (
            "forwarded",
            "host=evil.example, host=real.example, host=lb.internal",
        ),
    ];
    run_url_cases(
        two,
        &[
            UrlCase {
                name: "two hops: second element from the right",
                uri: "/sms",
                headers,
                signed: "https://real.example/sms",
                expect: None,
            },
            UrlCase {
                name: "two hops: spoofed element",
                uri: "/sms",
                headers,
                signed: "https://evil.example/sms",
                expect: Some(Mismatch),
            },
        ],
    )
    .await;
}

#[tokio::test]
async fn extra_url_forms_are_opt_in() {
    // twilio-node re-serializes the URL; `'` in a query becomes %27.
    let params = [("Body", "hi")];
    let signed_for = |signed: &str| {
        Request::post("/sms?name='quoted'")
            .header(HOST, PUBLIC_HOST)
            .header(CONTENT_TYPE, FORM)
            .header(&SIGNATURE, sig(signed, &params))
            .body(Body::from(form_body(&params)))
            .unwrap()
    };
    let req = || signed_for("https://hooks.example.com/sms?name=%27quoted%27");
    let strict = TwilioSignatureLayer::new(TOKEN).unwrap();
    let (out, calls) = run(&strict, req()).await;
    assert_refused("extra forms off", &out, calls, SignatureErrorKind::Mismatch);

    let lenient =
        TwilioSignatureLayer::from_verifier(Verifier::new(TOKEN).unwrap().extra_url_forms(true));
    let (out, calls) = run(&lenient, req()).await;
    assert_eq!(out.status, StatusCode::OK, "extra forms on: {:?}", out.kind);
    assert_eq!(calls, 1);
    assert_eq!(
        out.url(),
        Some("https://hooks.example.com/sms?name=%27quoted%27")
    );

    // The URL as received still verifies, and is reported, with the extra forms on.
    let as_received = "https://hooks.example.com/sms?name='quoted'";
    let (out, calls) = run(&lenient, signed_for(as_received)).await;
    assert_passed(
        "extra forms on, URL as received",
        &out,
        calls,
        as_received,
        &form_body(&params),
    );

    // A forgery is refused whether or not the extra forms are tried.
    let forged = || {
        let mut req = req();
        req.headers_mut()
            .insert(&SIGNATURE, FORGED.parse().unwrap());
        req
    };
    for (name, layer) in [("extra forms off", &strict), ("extra forms on", &lenient)] {
        let (out, calls) = run(layer, forged()).await;
        assert_refused(name, &out, calls, SignatureErrorKind::Mismatch);
    }
}

// ---------------------------------------------------------------------------------------
// Plain services
// ---------------------------------------------------------------------------------------

fn fixed_layer() -> TwilioSignatureLayer {
    fixed_layer_with(Verifier::new(TOKEN).unwrap())
}

fn fixed_layer_with(verifier: Verifier) -> TwilioSignatureLayer {
    TwilioSignatureLayer::from_verifier(verifier)
        .url_source(UrlSource::base_url("https://hooks.example.com").unwrap())
}

#[tokio::test]
async fn service_fn_receives_the_exact_bytes_and_verified_webhook() {
    // Encoded by hand: `+` for space, %2B, upper- and lowercase escapes, a repeated key.
    let body = "Body=caf%C3%A9+%26+more%2b&From=%2B15005550006&Body=two&To=%2b1";
    let params = [
        ("Body", "café & more+"),
        ("From", "+15005550006"),
        ("Body", "two"),
        ("To", "+1"),
    ];
    let calls = Calls::default();
    let svc = fixed_layer().layer(echo(&calls));
    let req = Request::post("/sms?x=1")
        .header(
            CONTENT_TYPE,
            "Application/X-WWW-Form-Urlencoded; charset=utf-8",
        )
        .header(
            &SIGNATURE,
            sig("https://hooks.example.com/sms?x=1", &params),
        )
        .header(&IDEMPOTENCY, "idem-42")
        .body(Body::from(body))
        .unwrap();
    let out = call(svc, req).await;
    assert_eq!(out.status, StatusCode::OK, "{:?}", out.kind);
    assert_eq!(out.kind, None);
    assert_eq!(calls.get(), 1);
    assert_eq!(out.text(), body, "the inner service got the bytes as sent");
    let verified = out.verified.as_ref().expect("VerifiedWebhook extension");
    assert_eq!(verified.url(), "https://hooks.example.com/sms?x=1");
    assert_eq!(verified.key(), &MatchedKey::AuthToken(0));
    assert_eq!(verified.algorithm(), Algorithm::HmacSha1);
    assert_eq!(verified.idempotency_token(), Some("idem-42"));
    assert_eq!(
        out.headers[&VERIFIED_URL],
        "https://hooks.example.com/sms?x=1"
    );
}

#[tokio::test]
async fn no_idempotency_header_means_none() {
    let (out, _) = run(
        &fixed_layer(),
        form_post("/sms", "https://hooks.example.com/sms", SMS),
    )
    .await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(out.verified.unwrap().idempotency_token(), None);
}

#[tokio::test]
async fn service_builder_and_repeated_ready_call() {
    let calls = Calls::default();
    let mut svc = ServiceBuilder::new()
        .layer(fixed_layer())
        .service(echo(&calls));
    for round in 0..3 {
        let ok = ServiceExt::<Request<Body>>::ready(&mut svc)
            .await
            .unwrap()
            .call(form_post("/sms", "https://hooks.example.com/sms", SMS))
            .await
            .unwrap();
        assert_eq!(ok.status(), StatusCode::OK, "round {round}");
        let forged = ServiceExt::<Request<Body>>::ready(&mut svc)
            .await
            .unwrap()
            .call(form_post_with_sig("/sms", FORGED, &form_body(SMS)))
            .await
            .unwrap();
        assert_eq!(forged.status(), StatusCode::FORBIDDEN, "round {round}");
        assert_eq!(common::kind(&forged), Some(SignatureErrorKind::Mismatch));
    }
    assert_eq!(calls.get(), 3, "only the signed requests ran");
}

#[tokio::test]
async fn service_builder_with_other_tower_layers() {
    let calls = Calls::default();
    let svc = ServiceBuilder::new()
        .timeout(Duration::from_secs(5))
        .concurrency_limit(4)
        .layer(fixed_layer())
        .service(echo(&calls));
    let ok = svc
        .clone()
        .oneshot(form_post("/sms", "https://hooks.example.com/sms", SMS))
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let forged = svc
        .oneshot(form_post_with_sig("/sms", FORGED, &form_body(SMS)))
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(common::kind(&forged), Some(SignatureErrorKind::Mismatch));
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn inner_service_errors_pass_through() {
    #[derive(Debug, PartialEq)]
    struct Boom;
    let svc = fixed_layer().layer(service_fn(|_req: Request<VerifiedBody>| async {
        Err::<Response<Body>, _>(Boom)
    }));
    let err = svc
        .clone()
        .oneshot(form_post("/sms", "https://hooks.example.com/sms", SMS))
        .await
        .unwrap_err();
    assert_eq!(err, Boom);
    // A refusal is a response, not an error.
    let res = svc
        .oneshot(form_post_with_sig("/sms", FORGED, ""))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

// ---------------------------------------------------------------------------------------
// Headers
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn signature_header_shapes() {
    use SignatureErrorKind::*;
    let body = form_body(SMS);
    let good = sig("https://hooks.example.com/sms", SMS);
    let sha256_len = sign_with(
        Algorithm::HmacSha256,
        TOKEN,
        "https://hooks.example.com/sms",
        SMS.iter().copied(),
    );
    struct Case {
        name: &'static str,
        values: Vec<String>,
        expect: SignatureErrorKind,
    }
    let cases = [
        Case {
            name: "missing",
            values: vec![],
            expect: MissingHeader,
        },
        Case {
            name: "empty",
            values: vec![String::new()],
            expect: MissingHeader,
        },
        Case {
            name: "repeated, both valid",
            values: vec![good.clone(), good.clone()],
            expect: MalformedHeader,
        },
        Case {
            name: "not base64",
            values: vec!["!!!!!!!!!!!!!!!!!!!!!!!!!!!=".into()],
            expect: MalformedHeader,
        },
        Case {
            name: "wrong length",
            values: vec!["c2hvcnQ=".into()],
            expect: MalformedHeader,
        },
        Case {
            name: "surrounding whitespace",
            values: vec![format!(" {good}")],
            expect: MalformedHeader,
        },
        Case {
            name: "HMAC-SHA256 of the Auth Token",
            values: vec![sha256_len],
            expect: Mismatch,
        },
        Case {
            name: "signed by another token",
            values: vec![sign(
                OTHER_TOKEN,
                "https://hooks.example.com/sms",
                SMS.iter().copied(),
            )],
            expect: Mismatch,
        },
    ];
    for case in cases {
        let mut builder = Request::post("/sms").header(CONTENT_TYPE, FORM);
        for v in &case.values {
            builder = builder.header(&SIGNATURE, v.as_str());
        }
        let req = builder.body(Body::from(body.clone())).unwrap();
        let (out, calls) = run(&fixed_layer(), req).await;
        assert_refused(case.name, &out, calls, case.expect);
    }
}

#[tokio::test]
async fn missing_signature_never_reads_the_body() {
    let calls = Calls::default();
    let svc = fixed_layer().layer(echo(&calls));
    let req = Request::post("/sms")
        .header(CONTENT_TYPE, FORM)
        .body(Body::new(MustNotPoll::default()))
        .unwrap();
    let out = call(svc, req).await;
    assert_refused(
        "missing header, unread body",
        &out,
        calls.get(),
        SignatureErrorKind::MissingHeader,
    );
}

// ---------------------------------------------------------------------------------------
// Body modes
// ---------------------------------------------------------------------------------------

fn json_request(uri: &str, signed_url: &str, body: &'static str) -> Request<Body> {
    Request::post(uri)
        .header(CONTENT_TYPE, "application/json")
        .header(&SIGNATURE, sign_url(TOKEN, signed_url))
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test]
async fn body_sha256_modes() {
    use SignatureErrorKind::*;
    const BODY: &str = r#"{"CallSid":"CA123","Status":"completed"}"#;
    const OTHER: &str = r#"{"CallSid":"CA123","Status":"failed"}"#;
    let base = "https://hooks.example.com/events?tenant=acme";
    let (signed, signature) = sign_body(TOKEN, base, BODY.as_bytes());
    let path = signed.strip_prefix("https://hooks.example.com").unwrap();
    let other_signed = url_with_body_sha256(base, OTHER.as_bytes());
    let other_path = other_signed
        .strip_prefix("https://hooks.example.com")
        .unwrap();

    // Matching hash.
    let (out, calls) = run(&fixed_layer(), json_request(path, &signed, BODY)).await;
    assert_passed("matching bodySHA256", &out, calls, &signed, BODY);

    // Body swapped: signature still good for the URL, hash wrong.
    let (out, calls) = run(&fixed_layer(), json_request(path, &signed, OTHER)).await;
    assert_refused("body swapped", &out, calls, BodyHashMismatch);

    // Hash in the URL changed without re-signing.
    let (out, calls) = run(&fixed_layer(), json_request(other_path, &signed, OTHER)).await;
    assert_refused("hash changed, old signature", &out, calls, Mismatch);

    // Hash taken from the query even without a JSON content type.
    let req = Request::post(path)
        .header(&SIGNATURE, &signature)
        .body(Body::from(BODY))
        .unwrap();
    let (out, calls) = run(&fixed_layer(), req).await;
    assert_passed(
        "bodySHA256 without content type",
        &out,
        calls,
        &signed,
        BODY,
    );

    // Twice in the query.
    let twice = format!(
        "{path}&bodySHA256={}",
        tower_twilio_signature::body_sha256(BODY.as_bytes())
    );
    let twice_url = format!("https://hooks.example.com{twice}");
    let (out, calls) = run(&fixed_layer(), json_request(&twice, &twice_url, BODY)).await;
    assert_refused("two bodySHA256", &out, calls, AmbiguousBodyHash);

    // JSON with no hash at all.
    let (out, calls) = run(
        &fixed_layer(),
        json_request(
            "/events?tenant=acme",
            "https://hooks.example.com/events?tenant=acme",
            BODY,
        ),
    )
    .await;
    assert_refused("JSON without bodySHA256", &out, calls, UnsignedBody);

    // A form body whose signature leaves out the form: bodySHA256 decides.
    let form = form_body(SMS);
    let (form_signed, form_sig) =
        sign_body(TOKEN, "https://hooks.example.com/sms", form.as_bytes());
    let req = Request::post(
        form_signed
            .strip_prefix("https://hooks.example.com")
            .unwrap(),
    )
    .header(CONTENT_TYPE, FORM)
    .header(&SIGNATURE, form_sig)
    .body(Body::from(form.clone()))
    .unwrap();
    let (out, calls) = run(&fixed_layer(), req).await;
    assert_passed(
        "form covered by bodySHA256",
        &out,
        calls,
        &form_signed,
        &form,
    );
}

#[tokio::test]
async fn empty_and_unsigned_bodies() {
    use SignatureErrorKind::*;
    let url = "https://hooks.example.com/status?CallSid=CA1";
    // GET with no body: the URL alone is signed.
    let req = Request::get("/status?CallSid=CA1")
        .header(&SIGNATURE, sign_url(TOKEN, url))
        .body(Body::empty())
        .unwrap();
    let (out, calls) = run(&fixed_layer(), req).await;
    assert_passed("GET without body", &out, calls, url, "");

    // A text body nobody signed, with and without Content-Length, and streamed.
    let with_length = Request::post("/status?CallSid=CA1")
        .header(CONTENT_TYPE, "text/plain")
        .header(&SIGNATURE, sign_url(TOKEN, url))
        .body(Body::from("smuggled"))
        .unwrap();
    let (out, calls) = run(&fixed_layer(), with_length).await;
    assert_refused("text body", &out, calls, UnsignedBody);

    let (tracked, _) = Tracked::new([Ok(Bytes::from_static(b"smuggled"))]);
    let streamed = Request::post("/status?CallSid=CA1")
        .header(CONTENT_TYPE, "text/plain")
        .header(&SIGNATURE, sign_url(TOKEN, url))
        .body(Body::new(tracked))
        .unwrap();
    let (out, calls) = run(&fixed_layer(), streamed).await;
    assert_refused("streamed text body", &out, calls, UnsignedBody);

    // A body sent with a signature over the URL only, labelled as a form, is a form.
    let form_unsigned = Request::post("/status?CallSid=CA1")
        .header(CONTENT_TYPE, FORM)
        .header(&SIGNATURE, sign_url(TOKEN, url))
        .body(Body::from("Extra=1"))
        .unwrap();
    let (out, calls) = run(&fixed_layer(), form_unsigned).await;
    assert_refused(
        "form params left out of the signature",
        &out,
        calls,
        Mismatch,
    );
}

#[tokio::test]
async fn malformed_forms() {
    use SignatureErrorKind::*;
    // Percent-decodes to bytes that are not UTF-8.
    let req = form_post_with_sig(
        "/sms",
        &sig("https://hooks.example.com/sms", &[("Body", "\u{FFFD}")]),
        "Body=%FF",
    );
    let (out, calls) = run(&fixed_layer(), req).await;
    assert_refused("non-UTF-8 form", &out, calls, MalformedBody);

    // Raw non-UTF-8 bytes.
    let req = Request::post("/sms")
        .header(CONTENT_TYPE, FORM)
        .header(&SIGNATURE, sign_url(TOKEN, "https://hooks.example.com/sms"))
        .body(Body::from(&b"Body=\xC3\x28"[..]))
        .unwrap();
    let (out, calls) = run(&fixed_layer(), req).await;
    assert_refused("raw invalid UTF-8", &out, calls, MalformedBody);

    // A genuine U+FFFD is fine.
    let params = [("Body", "\u{FFFD} ok")];
    let (out, calls) = run(
        &fixed_layer(),
        form_post("/sms", "https://hooks.example.com/sms", &params),
    )
    .await;
    assert_passed(
        "genuine replacement character",
        &out,
        calls,
        "https://hooks.example.com/sms",
        &form_body(&params),
    );

    // Two Content-Type headers.
    let req = Request::post("/sms")
        .header(CONTENT_TYPE, FORM)
        .header(CONTENT_TYPE, "application/json")
        .header(&SIGNATURE, sig("https://hooks.example.com/sms", SMS))
        .body(Body::from(form_body(SMS)))
        .unwrap();
    let (out, calls) = run(&fixed_layer(), req).await;
    assert_refused("two content types", &out, calls, MalformedBody);
}

// ---------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------

const KEY_ID: &str = "KS0123";
const KEY_SECRET: &str = "shared-key-secret-a7e1";

fn shared_request(settings: Option<&str>, signature: &str) -> Request<Body> {
    let mut builder = Request::post("/sms")
        .header(CONTENT_TYPE, FORM)
        .header(&SIGNATURE, signature);
    if let Some(s) = settings {
        builder = builder.header(&SETTINGS, s);
    }
    builder.body(Body::from(form_body(SMS))).unwrap()
}

#[tokio::test]
async fn shared_keys() {
    use SignatureErrorKind::*;
    let url = "https://hooks.example.com/sms";
    let sha256 = sign_with(Algorithm::HmacSha256, KEY_SECRET, url, SMS.iter().copied());
    let sha1 = sign_with(Algorithm::HmacSha1, KEY_SECRET, url, SMS.iter().copied());
    let token_sig = sig(url, SMS);
    let layer = fixed_layer_with(
        Verifier::new(TOKEN)
            .unwrap()
            .with_shared_key(KEY_ID, KEY_SECRET)
            .unwrap(),
    );
    let only_shared = fixed_layer_with(Verifier::from_shared_key(KEY_ID, KEY_SECRET).unwrap());

    struct Case<'a> {
        name: &'a str,
        layer: &'a TwilioSignatureLayer,
        settings: Option<&'a str>,
        signature: &'a str,
        expect: Result<(MatchedKey, Algorithm), SignatureErrorKind>,
    }
    let shared = || MatchedKey::SharedKey(KEY_ID.into());
    let cases = [
        Case {
            name: "HMAC_SHA256",
            layer: &layer,
            settings: Some("key=KS0123,algorithm=HMAC_SHA256"),
            signature: &sha256,
            expect: Ok((shared(), Algorithm::HmacSha256)),
        },
        Case {
            name: "HMAC_SHA1",
            layer: &layer,
            settings: Some("key=KS0123,algorithm=HMAC_SHA1"),
            signature: &sha1,
            expect: Ok((shared(), Algorithm::HmacSha1)),
        },
        Case {
            name: "parts reordered with spaces",
            layer: &layer,
            settings: Some(" algorithm=HMAC_SHA256 , key=KS0123 "),
            signature: &sha256,
            expect: Ok((shared(), Algorithm::HmacSha256)),
        },
        Case {
            name: "SharedKey-only layer",
            layer: &only_shared,
            settings: Some("key=KS0123,algorithm=HMAC_SHA256"),
            signature: &sha256,
            expect: Ok((shared(), Algorithm::HmacSha256)),
        },
        Case {
            name: "Auth Token still works without settings",
            layer: &layer,
            settings: None,
            signature: &token_sig,
            expect: Ok((MatchedKey::AuthToken(0), Algorithm::HmacSha1)),
        },
        Case {
            name: "SHA1 signature, settings say SHA256",
            layer: &layer,
            settings: Some("key=KS0123,algorithm=HMAC_SHA256"),
            signature: &sha1,
            expect: Err(Mismatch),
        },
        Case {
            name: "Auth Token signature named as the shared key",
            layer: &layer,
            settings: Some("key=KS0123,algorithm=HMAC_SHA1"),
            signature: &token_sig,
            expect: Err(Mismatch),
        },
        Case {
            name: "shared key signature without settings",
            layer: &layer,
            settings: None,
            signature: &sha1,
            expect: Err(Mismatch),
        },
        Case {
            name: "unknown key id",
            layer: &layer,
            settings: Some("key=KS9999,algorithm=HMAC_SHA256"),
            signature: &sha256,
            expect: Err(UnknownKeyId),
        },
        Case {
            name: "SharedKey-only layer, no settings",
            layer: &only_shared,
            settings: None,
            signature: &token_sig,
            expect: Err(UnknownKeyId),
        },
        Case {
            name: "unsupported algorithm",
            layer: &layer,
            settings: Some("key=KS0123,algorithm=HMAC_MD5"),
            signature: &sha256,
            expect: Err(UnsupportedAlgorithm),
        },
        Case {
            name: "settings without algorithm",
            layer: &layer,
            settings: Some("key=KS0123"),
            signature: &sha256,
            expect: Err(MalformedHeader),
        },
        Case {
            name: "settings not key=value",
            layer: &layer,
            settings: Some("HMAC_SHA256"),
            signature: &sha256,
            expect: Err(MalformedHeader),
        },
    ];
    for case in cases {
        let (out, calls) = run(case.layer, shared_request(case.settings, case.signature)).await;
        match case.expect {
            Ok((key, algorithm)) => {
                assert_passed(case.name, &out, calls, url, &form_body(SMS));
                let verified = out.verified.unwrap();
                assert_eq!(verified.key(), &key, "{}", case.name);
                assert_eq!(verified.algorithm(), algorithm, "{}", case.name);
            }
            Err(kind) => assert_refused(case.name, &out, calls, kind),
        }
    }

    // The settings header may not be repeated.
    let mut req = shared_request(Some("key=KS0123,algorithm=HMAC_SHA256"), &sha256);
    req.headers_mut().append(
        &SETTINGS,
        "key=KS0123,algorithm=HMAC_SHA256".parse().unwrap(),
    );
    let (out, calls) = run(&layer, req).await;
    assert_refused("repeated settings", &out, calls, MalformedHeader);
}

#[tokio::test]
async fn auth_token_rotation() {
    let layer = fixed_layer_with(
        Verifier::new(TOKEN)
            .unwrap()
            .with_auth_token(TOKEN_2)
            .unwrap(),
    );
    let url = "https://hooks.example.com/sms";
    for (name, token, expect) in [
        ("primary", TOKEN, Some(MatchedKey::AuthToken(0))),
        ("secondary", TOKEN_2, Some(MatchedKey::AuthToken(1))),
        ("unknown third", OTHER_TOKEN, None),
    ] {
        let req = form_post_with_sig(
            "/sms",
            &sign(token, url, SMS.iter().copied()),
            &form_body(SMS),
        );
        let (out, calls) = run(&layer, req).await;
        match expect {
            Some(key) => {
                assert_passed(name, &out, calls, url, &form_body(SMS));
                assert_eq!(out.verified.unwrap().key(), &key, "{name}");
            }
            None => assert_refused(name, &out, calls, SignatureErrorKind::Mismatch),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Basic auth
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn basic_auth() {
    let layer = fixed_layer().basic_auth("twilio", "s3cret-pass").unwrap();
    let url = "https://hooks.example.com/sms";
    struct Case {
        name: &'static str,
        authorization: Option<String>,
        signature: String,
        status: StatusCode,
        kind: Option<SignatureErrorKind>,
    }
    let good = sig(url, SMS);
    let cases = [
        Case {
            name: "no credentials",
            authorization: None,
            signature: good.clone(),
            status: StatusCode::UNAUTHORIZED,
            kind: Some(SignatureErrorKind::Unauthorized),
        },
        Case {
            name: "wrong password",
            authorization: Some(basic("twilio", "guess")),
            signature: good.clone(),
            status: StatusCode::UNAUTHORIZED,
            kind: Some(SignatureErrorKind::Unauthorized),
        },
        Case {
            name: "wrong scheme",
            authorization: Some(basic("twilio", "s3cret-pass").replace("Basic", "Bearer")),
            signature: good.clone(),
            status: StatusCode::UNAUTHORIZED,
            kind: Some(SignatureErrorKind::Unauthorized),
        },
        Case {
            name: "credentials but no signature",
            authorization: Some(basic("twilio", "s3cret-pass")),
            signature: String::new(),
            status: StatusCode::FORBIDDEN,
            kind: Some(SignatureErrorKind::MissingHeader),
        },
        Case {
            name: "credentials and bad signature",
            authorization: Some(basic("twilio", "s3cret-pass")),
            signature: FORGED.into(),
            status: StatusCode::FORBIDDEN,
            kind: Some(SignatureErrorKind::Mismatch),
        },
        Case {
            name: "credentials and valid signature",
            authorization: Some(basic("twilio", "s3cret-pass")),
            signature: good.clone(),
            status: StatusCode::OK,
            kind: None,
        },
        Case {
            name: "scheme in lowercase",
            authorization: Some(basic("twilio", "s3cret-pass").replace("Basic", "basic")),
            signature: good.clone(),
            status: StatusCode::OK,
            kind: None,
        },
    ];
    for case in cases {
        let mut builder = Request::post("/sms").header(CONTENT_TYPE, FORM);
        if let Some(a) = &case.authorization {
            builder = builder.header(AUTHORIZATION, a.as_str());
        }
        if !case.signature.is_empty() {
            builder = builder.header(&SIGNATURE, case.signature.as_str());
        }
        let (out, calls) = run(&layer, builder.body(Body::from(form_body(SMS))).unwrap()).await;
        assert_eq!(out.status, case.status, "{}", case.name);
        assert_eq!(out.kind, case.kind, "{}", case.name);
        assert_eq!(calls, usize::from(case.kind.is_none()), "{}", case.name);
        let challenge = out.headers.get(WWW_AUTHENTICATE);
        if case.status == StatusCode::UNAUTHORIZED {
            assert_eq!(
                challenge.map(|v| v.to_str().unwrap()),
                Some("Basic realm=\"Twilio\""),
                "{}",
                case.name
            );
        } else {
            assert_eq!(challenge, None, "{}", case.name);
        }
    }

    // Credentials sent twice are refused, even when both are right.
    let req = Request::post("/sms")
        .header(CONTENT_TYPE, FORM)
        .header(AUTHORIZATION, basic("twilio", "s3cret-pass"))
        .header(AUTHORIZATION, basic("twilio", "s3cret-pass"))
        .header(&SIGNATURE, good.as_str())
        .body(Body::from(form_body(SMS)))
        .unwrap();
    let (out, calls) = run(&layer, req).await;
    assert_refused(
        "repeated Authorization",
        &out,
        calls,
        SignatureErrorKind::Unauthorized,
    );
    assert_eq!(
        out.headers
            .get(WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap()),
        Some("Basic realm=\"Twilio\""),
        "repeated Authorization"
    );
}

#[tokio::test]
async fn basic_auth_is_checked_before_the_body_is_read() {
    let layer = fixed_layer().basic_auth("twilio", "pw").unwrap();
    let calls = Calls::default();
    let req = Request::post("/sms")
        .header(CONTENT_TYPE, FORM)
        .header(&SIGNATURE, FORGED)
        .body(Body::new(MustNotPoll::default()))
        .unwrap();
    let out = call(layer.layer(echo(&calls)), req).await;
    assert_eq!(out.status, StatusCode::UNAUTHORIZED);
    assert_eq!(out.kind, Some(SignatureErrorKind::Unauthorized));
    assert_eq!(calls.get(), 0);
}

// ---------------------------------------------------------------------------------------
// Body limits and statuses
// ---------------------------------------------------------------------------------------

fn limited(limit: usize) -> TwilioSignatureLayer {
    fixed_layer().body_limit(limit)
}

#[tokio::test]
async fn content_length_over_the_limit_is_refused_unread() {
    let calls = Calls::default();
    let svc = limited(64).layer(echo(&calls));
    let req = Request::post("/sms")
        .header(CONTENT_TYPE, FORM)
        .header(CONTENT_LENGTH, "65")
        .header(&SIGNATURE, FORGED)
        .body(Body::new(MustNotPoll::default()))
        .unwrap();
    let out = call(svc, req).await;
    assert_refused(
        "Content-Length over the limit",
        &out,
        calls.get(),
        SignatureErrorKind::BodyTooLarge,
    );
}

#[tokio::test]
async fn exact_size_hint_over_the_limit_is_refused_unread() {
    let calls = Calls::default();
    let svc = limited(64).layer(echo(&calls));
    let req = Request::post("/sms")
        .header(CONTENT_TYPE, FORM)
        .header(&SIGNATURE, FORGED)
        .body(Body::new(MustNotPoll { exact: Some(1000) }))
        .unwrap();
    let out = call(svc, req).await;
    assert_refused(
        "size hint over the limit",
        &out,
        calls.get(),
        SignatureErrorKind::BodyTooLarge,
    );
}

#[tokio::test]
async fn content_length_over_the_limit_with_tracked_body() {
    let (tracked, polls) = Tracked::new([Ok(Bytes::from(vec![b'a'; 100]))]);
    let req = Request::post("/sms")
        .header(CONTENT_TYPE, FORM)
        .header(CONTENT_LENGTH, "100")
        .header(&SIGNATURE, sign_url(TOKEN, "https://hooks.example.com/sms"))
        .body(Body::new(tracked))
        .unwrap();
    let (out, calls) = run(&limited(99), req).await;
    assert_refused(
        "Content-Length 100 > 99",
        &out,
        calls,
        SignatureErrorKind::BodyTooLarge,
    );
    assert_eq!(polls.load(Ordering::SeqCst), 0, "body never polled");
}

#[tokio::test]
async fn body_at_the_limit_passes() {
    let params = [("Body", "x".repeat(59))];
    let body = form_body(&[("Body", params[0].1.as_str())]);
    assert_eq!(body.len(), 64);
    let url = "https://hooks.example.com/sms";
    let signature = sign(TOKEN, url, params.iter().map(|(k, v)| (*k, v.as_str())));
    for with_length in [true, false] {
        let name = if with_length {
            "with Content-Length"
        } else {
            "chunked"
        };
        let (tracked, _) = Tracked::new([
            Ok(Bytes::copy_from_slice(&body.as_bytes()[..10])),
            Ok(Bytes::copy_from_slice(&body.as_bytes()[10..])),
        ]);
        let mut builder = Request::post("/sms")
            .header(CONTENT_TYPE, FORM)
            .header(&SIGNATURE, signature.as_str());
        if with_length {
            builder = builder.header(CONTENT_LENGTH, "64");
        }
        let (out, calls) = run(&limited(64), builder.body(Body::new(tracked)).unwrap()).await;
        assert_passed(name, &out, calls, url, &body);
    }
}

#[tokio::test]
async fn streamed_body_over_the_limit() {
    let chunks = (0..10).map(|_| Ok(Bytes::from(vec![b'a'; 20])));
    let (tracked, polls) = Tracked::new(chunks);
    let req = Request::post("/sms")
        .header(CONTENT_TYPE, FORM)
        .header(&SIGNATURE, sign_url(TOKEN, "https://hooks.example.com/sms"))
        .body(Body::new(tracked))
        .unwrap();
    let (out, calls) = run(&limited(64), req).await;
    assert_refused(
        "chunked over the limit",
        &out,
        calls,
        SignatureErrorKind::BodyTooLarge,
    );
    let polls = polls.load(Ordering::SeqCst);
    assert!(
        polls < 10,
        "reading stopped at the limit, polled {polls} times"
    );
}

#[tokio::test]
async fn streamed_body_that_fails() {
    let (tracked, _) = Tracked::new([
        Ok(Bytes::from_static(b"Body=hel")),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset",
        )),
        Ok(Bytes::from_static(b"lo")),
    ]);
    let req = Request::post("/sms")
        .header(CONTENT_TYPE, FORM)
        .header(
            &SIGNATURE,
            sig("https://hooks.example.com/sms", &[("Body", "hello")]),
        )
        .body(Body::new(tracked))
        .unwrap();
    let (out, calls) = run(&fixed_layer(), req).await;
    assert_refused("body error", &out, calls, SignatureErrorKind::BodyRead);
}

#[tokio::test]
async fn bad_content_length_headers() {
    for (name, values) in [
        ("two Content-Length headers", &["10", "10"][..]),
        ("not a number", &["ten"][..]),
        ("signed number", &["+10"][..]),
    ] {
        let mut builder = Request::post("/sms")
            .header(CONTENT_TYPE, FORM)
            .header(&SIGNATURE, FORGED);
        for v in values {
            builder = builder.header(CONTENT_LENGTH, *v);
        }
        let calls = Calls::default();
        let req = builder.body(Body::new(MustNotPoll::default())).unwrap();
        let out = call(fixed_layer().layer(echo(&calls)), req).await;
        assert_refused(name, &out, calls.get(), SignatureErrorKind::BodyRead);
    }
}

#[tokio::test]
async fn default_limit_is_one_mebibyte() {
    assert_eq!(tower_twilio_signature::DEFAULT_BODY_LIMIT, 1024 * 1024);
    let calls = Calls::default();
    let req = Request::post("/sms")
        .header(CONTENT_TYPE, FORM)
        .header(CONTENT_LENGTH, (1024 * 1024 + 1).to_string())
        .header(&SIGNATURE, FORGED)
        .body(Body::new(MustNotPoll::default()))
        .unwrap();
    let out = call(fixed_layer().layer(echo(&calls)), req).await;
    assert_refused(
        "1 MiB + 1",
        &out,
        calls.get(),
        SignatureErrorKind::BodyTooLarge,
    );
}

// ---------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------

#[test]
fn configuration_errors() {
    use tower_twilio_signature::ConfigError;
    assert_eq!(
        TwilioSignatureLayer::new("").unwrap_err(),
        ConfigError::EmptySecret
    );
    let layer = || TwilioSignatureLayer::new(TOKEN).unwrap();
    let verifier = || Verifier::new(TOKEN).unwrap();
    assert_eq!(UrlSource::forwarded(0).unwrap_err(), ConfigError::ZeroHops);
    assert_eq!(
        UrlSource::x_forwarded(0).unwrap_err(),
        ConfigError::ZeroHops
    );
    assert_eq!(
        UrlSource::host_header("ftp").unwrap_err(),
        ConfigError::InvalidScheme
    );
    for bad in [
        "hooks.example.com",
        "ftp://hooks.example.com",
        "https://hooks.example.com/?x=1",
        "https://hooks.example.com/#frag",
        "https://user:pw@hooks.example.com",
        "https://hooks.example.com:99999",
        "https://",
    ] {
        assert!(
            matches!(
                UrlSource::base_url(bad).unwrap_err(),
                ConfigError::InvalidBaseUrl(_)
            ),
            "{bad}"
        );
    }
    assert_eq!(
        verifier().with_shared_key("a,b", "s").unwrap_err(),
        ConfigError::InvalidKeyId
    );
    assert_eq!(
        verifier()
            .with_shared_key("k", "s")
            .unwrap()
            .with_shared_key("k", "t")
            .unwrap_err(),
        ConfigError::DuplicateKeyId
    );
    assert_eq!(
        layer().basic_auth("", "pw").unwrap_err(),
        ConfigError::InvalidBasicAuth
    );
    assert_eq!(
        layer().basic_auth("a:b", "pw").unwrap_err(),
        ConfigError::InvalidBasicAuth
    );
    assert_eq!(
        verifier().with_auth_token("").unwrap_err(),
        ConfigError::EmptySecret
    );
}

// ---------------------------------------------------------------------------------------
// WebSocket handshakes over HTTP/2, readiness
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn http2_extended_connect_is_a_websocket_handshake() {
    let (tracked, polls) = Tracked::new([Ok(Bytes::from_static(b"websocket frames"))]);
    let signed = "wss://hooks.example.com/ws";
    let req = Request::connect("https://hooks.example.com/ws?CallSid=CA123")
        .version(http::Version::HTTP_2)
        .header(&SIGNATURE, sign(TOKEN, signed, [("CallSid", "CA123")]))
        .body(Body::new(tracked))
        .unwrap();
    let (out, calls) = run(&TwilioSignatureLayer::new(TOKEN).unwrap(), req).await;
    assert_passed("HTTP/2 CONNECT", &out, calls, signed, "");
    assert_eq!(
        polls.load(Ordering::SeqCst),
        0,
        "the stream is not buffered"
    );

    // The same over HTTP/1.1 is no handshake.
    let req = Request::connect("https://hooks.example.com/ws?CallSid=CA123")
        .header(&SIGNATURE, sign(TOKEN, signed, [("CallSid", "CA123")]))
        .body(Body::empty())
        .unwrap();
    let (out, calls) = run(&TwilioSignatureLayer::new(TOKEN).unwrap(), req).await;
    assert_refused(
        "HTTP/1.1 CONNECT",
        &out,
        calls,
        SignatureErrorKind::Mismatch,
    );
}

#[tokio::test]
async fn websocket_handshake_with_chunked_body_is_refused() {
    let signed = "wss://hooks.example.com/ws";
    let req = Request::get("/ws?CallSid=CA123")
        .header(HOST, PUBLIC_HOST)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("transfer-encoding", "chunked")
        .header(&SIGNATURE, sign(TOKEN, signed, [("CallSid", "CA123")]))
        .body(Body::new(MustNotPoll::default()))
        .unwrap();
    let (out, calls) = run(&TwilioSignatureLayer::new(TOKEN).unwrap(), req).await;
    assert_refused(
        "handshake with Transfer-Encoding",
        &out,
        calls,
        SignatureErrorKind::UnsignedBody,
    );
}

#[tokio::test]
async fn concurrency_limit_inside_keeps_working() {
    let calls = Calls::default();
    let mut svc = ServiceBuilder::new()
        .layer(fixed_layer())
        .concurrency_limit(1)
        .service(echo(&calls));
    let rounds = async {
        for round in 0..4 {
            let req = if round % 2 == 0 {
                form_post("/sms", "https://hooks.example.com/sms", SMS)
            } else {
                form_post_with_sig("/sms", FORGED, &form_body(SMS))
            };
            let res = ServiceExt::<Request<Body>>::ready(&mut svc)
                .await
                .unwrap()
                .call(req)
                .await
                .unwrap();
            let expected = if round % 2 == 0 {
                StatusCode::OK
            } else {
                StatusCode::FORBIDDEN
            };
            assert_eq!(res.status(), expected, "round {round}");
        }
    };
    tokio::time::timeout(Duration::from_secs(5), rounds)
        .await
        .expect("a refused request must not keep the permit");
    assert_eq!(calls.get(), 2);
}

#[tokio::test]
async fn statuses_with_and_without_content_length() {
    use SignatureErrorKind::*;
    #[derive(Clone, Copy)]
    enum Shape {
        /// `Body::from`: an exact size, no header.
        Sized,
        /// The same with a `Content-Length` header.
        WithLength,
        /// A stream of unknown size.
        Streamed,
    }
    let small = form_body(&[("Body", "hi")]);
    let big = form_body(&[("Body", &"x".repeat(100))]);
    let cases = [
        (
            "forged, sized",
            Shape::Sized,
            small.clone(),
            false,
            Mismatch,
        ),
        (
            "forged, Content-Length",
            Shape::WithLength,
            small.clone(),
            false,
            Mismatch,
        ),
        ("forged, streamed", Shape::Streamed, small, false, Mismatch),
        (
            "too large, sized",
            Shape::Sized,
            big.clone(),
            false,
            BodyTooLarge,
        ),
        (
            "too large, Content-Length",
            Shape::WithLength,
            big.clone(),
            false,
            BodyTooLarge,
        ),
        (
            "too large, streamed",
            Shape::Streamed,
            big,
            false,
            BodyTooLarge,
        ),
        (
            "read error, Content-Length",
            Shape::WithLength,
            "Body=hi".into(),
            true,
            BodyRead,
        ),
        (
            "read error, streamed",
            Shape::Streamed,
            "Body=hi".into(),
            true,
            BodyRead,
        ),
    ];
    for (name, shape, body, fails, kind) in cases {
        let mut builder = Request::post("/sms")
            .header(CONTENT_TYPE, FORM)
            .header(&SIGNATURE, FORGED);
        if let Shape::WithLength = shape {
            builder = builder.header(CONTENT_LENGTH, body.len() + usize::from(fails) * 10);
        }
        let body = match shape {
            Shape::Sized => Body::from(body),
            Shape::WithLength | Shape::Streamed => {
                let mut chunks = vec![Ok(Bytes::from(body))];
                if fails {
                    chunks.push(Err(std::io::Error::other("connection reset")));
                }
                Body::new(Tracked::new(chunks).0)
            }
        };
        let (out, calls) = run(&limited(64), builder.body(body).unwrap()).await;
        assert_refused(name, &out, calls, kind);
    }
}
