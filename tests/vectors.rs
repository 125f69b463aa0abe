//! Signature vectors signed and judged by Twilio's own SDKs (twilio-node and twilio-python):
//! every one must get the SDK's verdict, through the framework-free `Verifier` and through
//! the layer on a real request, with the public URL from a fixed base URL and from `Host`.

use std::convert::Infallible;

use axum::body::Body;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde::Deserialize;
use tower::{service_fn, Layer, ServiceExt};
use tower_twilio_signature::{
    sign_url, SignatureError, SignatureErrorKind, TwilioSignatureLayer, UrlSource, VerifiedBody,
    Verifier,
};

#[derive(Debug, Deserialize)]
struct Vector {
    id: u32,
    about: String,
    token: String,
    url: String,
    form: Option<Vec<(String, String)>>,
    body: Option<String>,
    #[serde(default)]
    settings: Option<String>,
    signature: String,
    valid: bool,
}

const SHARED_KEY_ID: &str = "webhooks_sharedkey_0123456789abcdef";

fn load(file: &str) -> Vec<Vector> {
    let path = format!("{}/tests/vectors/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let vectors: Vec<Vector> = serde_json::from_str(&text).unwrap();
    assert!(!vectors.is_empty(), "{file} has no vectors");
    vectors
}

fn verifier(v: &Vector) -> Verifier {
    if v.settings.is_some() {
        Verifier::from_shared_key(SHARED_KEY_ID, &v.token).unwrap()
    } else {
        Verifier::new(&v.token).unwrap()
    }
}

fn verify_core(v: &Vector) -> Result<(), SignatureError> {
    let verifier = verifier(v);
    let settings = v.settings.as_deref();
    match (&v.form, &v.body) {
        (Some(form), None) => verifier
            .verify_form(
                &v.url,
                form.iter().map(|(k, v)| (k, v)),
                &v.signature,
                settings,
            )
            .map(drop),
        (None, Some(body)) => verifier
            .verify_body(&v.url, body.as_bytes(), &v.signature, settings)
            .map(drop),
        _ => panic!("vector {} has neither form nor body", v.id),
    }
}

fn check_file_through_verifier(file: &str) {
    for v in load(file) {
        let got = verify_core(&v);
        assert_eq!(
            got.is_ok(),
            v.valid,
            "vector {} ({}): {got:?}",
            v.id,
            v.about
        );
    }
}

#[test]
fn auth_token_vectors_through_verifier() {
    check_file_through_verifier("auth-token.json");
}

#[test]
fn shared_key_vectors_through_verifier() {
    check_file_through_verifier("shared-key.json");
}

/// Splits a vector URL into scheme, authority and path-and-query.
fn split(url: &str) -> (&str, &str, &str) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, pq) = rest.split_at(end);
    (scheme, authority, if pq.is_empty() { "/" } else { pq })
}

#[derive(Clone, Copy, Debug)]
enum Source {
    Fixed,
    Host,
}

/// Builds the request Twilio would send for a vector.
fn request(v: &Vector) -> Request<Body> {
    let (scheme, authority, pq) = split(&v.url);
    let websocket = scheme.starts_with("ws");
    let method = if websocket { "GET" } else { "POST" };
    let mut req = Request::builder()
        .method(method)
        .uri(pq)
        .header("host", authority)
        .header("x-twilio-signature", &v.signature);
    if let Some(settings) = &v.settings {
        req = req.header("x-twilio-webhooks-signature-settings", settings);
    }
    if websocket {
        return req
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .body(Body::empty())
            .unwrap();
    }
    match (&v.form, &v.body) {
        (Some(form), None) => {
            let encoded = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish();
            req.header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(encoded))
                .unwrap()
        }
        (None, Some(body)) => req
            .header("content-type", "application/json")
            .body(Body::from(body.clone()))
            .unwrap(),
        _ => unreachable!(),
    }
}

fn layer(v: &Vector, source: Source) -> TwilioSignatureLayer {
    let layer = TwilioSignatureLayer::from_verifier(verifier(v));
    let (scheme, authority, _) = split(&v.url);
    let http_scheme = match scheme {
        "wss" => "https",
        "ws" => "http",
        s => s,
    };
    match source {
        Source::Fixed => {
            layer.url_source(UrlSource::base_url(&format!("{http_scheme}://{authority}")).unwrap())
        }
        Source::Host => layer.url_source(UrlSource::host_header(http_scheme).unwrap()),
    }
}

/// Runs a vector through the layer around an echo service; returns the status, the
/// rejection kind, and the body the inner service saw.
async fn through_layer(
    v: &Vector,
    source: Source,
) -> (StatusCode, Option<SignatureErrorKind>, Option<bytes::Bytes>) {
    let svc = layer(v, source).layer(service_fn(|req: Request<VerifiedBody>| async move {
        let body = req.into_body().collect().await.unwrap().to_bytes();
        Ok::<_, Infallible>(Response::new(Body::from(body)))
    }));
    let res = svc.oneshot(request(v)).await.unwrap();
    let status = res.status();
    let kind = res
        .extensions()
        .get::<SignatureError>()
        .map(SignatureError::kind);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, kind, (status == StatusCode::OK).then_some(body))
}

async fn check_file_through_layer(file: &str) {
    for v in load(file) {
        for source in [Source::Fixed, Source::Host] {
            let (status, kind, echoed) = through_layer(&v, source).await;
            let name = format!("vector {} ({}) via {source:?}", v.id, v.about);
            if v.valid {
                assert_eq!(status, StatusCode::OK, "{name}: {kind:?}");
                assert_eq!(kind, None, "{name}");
                // The inner service saw exactly the bytes that were sent.
                let sent = request(&v).into_body().collect().await.unwrap().to_bytes();
                let expected = if v.url.starts_with("ws") {
                    bytes::Bytes::new()
                } else {
                    sent
                };
                assert_eq!(echoed.unwrap(), expected, "{name}");
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{name}");
                assert!(kind.is_some(), "{name}: rejection without SignatureError");
            }
        }
    }
}

#[tokio::test]
async fn auth_token_vectors_through_layer() {
    check_file_through_layer("auth-token.json").await;
}

#[tokio::test]
async fn shared_key_vectors_through_layer() {
    check_file_through_layer("shared-key.json").await;
}

#[tokio::test]
async fn the_kinds_of_the_invalid_vectors() {
    // Not only refused, but refused for the right reason.
    let expect = [
        (11, SignatureErrorKind::Mismatch),
        (28, SignatureErrorKind::MissingHeader),
        (30, SignatureErrorKind::MalformedHeader),
        (34, SignatureErrorKind::BodyHashMismatch),
        (35, SignatureErrorKind::BodyHashMismatch),
        (37, SignatureErrorKind::BodyHashMismatch),
    ];
    let vectors = load("auth-token.json");
    for (id, kind) in expect {
        let v = vectors.iter().find(|v| v.id == id).unwrap();
        assert_eq!(
            verify_core(v).unwrap_err().kind(),
            kind,
            "vector {id} via Verifier"
        );
        let (_, got, _) = through_layer(v, Source::Fixed).await;
        assert_eq!(got, Some(kind), "vector {id} via layer");
    }
    let shared = load("shared-key.json");
    let unsupported = shared.iter().find(|v| v.id == 10).unwrap();
    assert_eq!(
        verify_core(unsupported).unwrap_err().kind(),
        SignatureErrorKind::UnsupportedAlgorithm
    );
}

// Where this crate is deliberately stricter than the SDKs.

#[test]
fn stricter_than_sdk_user_info_in_url_is_refused() {
    let url = "https://user:pass@mycompany.com/myapp";
    let header = tower_twilio_signature::sign("12345", url, [("a", "b")]);
    let err = Verifier::new("12345")
        .unwrap()
        .verify_form(url, [("a", "b")], &header, None)
        .unwrap_err();
    assert_eq!(err.kind(), SignatureErrorKind::NoUrl);
}

#[test]
fn stricter_than_sdk_base_url_with_user_info_is_a_config_error() {
    let err = UrlSource::base_url("https://user:pass@hooks.example.com").unwrap_err();
    assert!(
        matches!(err, tower_twilio_signature::ConfigError::InvalidBaseUrl(_)),
        "{err}"
    );
}

#[test]
fn stricter_than_sdk_unsigned_body_is_refused() {
    // twilio-node's validateRequest ignores a body it is not given; the verifier checks it.
    let url = "https://example.com/myapp";
    let header = sign_url("12345", url);
    let err = Verifier::new("12345")
        .unwrap()
        .verify_body(url, br#"{"forged":true}"#, &header, None)
        .unwrap_err();
    assert_eq!(err.kind(), SignatureErrorKind::UnsignedBody);
}

#[tokio::test]
async fn stricter_than_sdk_unsigned_json_body_through_layer_is_refused() {
    let url = "https://example.com/myapp";
    let header = sign_url("12345", url);
    let svc = TwilioSignatureLayer::new("12345")
        .unwrap()
        .url_source(UrlSource::base_url("https://example.com").unwrap())
        .layer(service_fn(|_req: Request<VerifiedBody>| async {
            Ok::<_, Infallible>(Response::new(Body::empty()))
        }));
    // A streamed body: no Content-Length, so the body is read before it is refused.
    let stream = futures_util::stream::iter([Ok::<_, Infallible>(r#"{"forged":true}"#)]);
    let req = Request::post("/myapp")
        .header("content-type", "application/json")
        .header("x-twilio-signature", header)
        .body(Body::from_stream(stream))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.extensions()
            .get::<SignatureError>()
            .map(SignatureError::kind),
        Some(SignatureErrorKind::UnsignedBody)
    );
}

#[test]
fn stricter_than_sdk_malformed_signature_is_refused_before_any_mac() {
    let url = "https://example.com/myapp";
    let v = Verifier::new("12345").unwrap();
    for bad in [
        "not base64!",
        "YQ==",
        "3KI2uRuYyAdhZIJXcpU0izDUzWI",
        "3KI2uRuYyAdhZIJXcpU0izDUzWJ=",
    ] {
        let err = v.verify_form(url, [("a", "b")], bad, None).unwrap_err();
        assert_eq!(err.kind(), SignatureErrorKind::MalformedHeader, "{bad:?}");
    }
}
