//! Report-only mode: requests that fail the signature reach the service with the error;
//! limits and HTTP authentication still refuse.

mod common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use tower::{service_fn, Layer, ServiceExt};
use tower_twilio_signature::{
    sign, SignatureError, SignatureErrorKind as K, TwilioSignatureLayer, UrlSource, VerifiedBody,
    VerifiedWebhook,
};

use common::{basic, form_body, Calls, Logs, FORGED, FORM, SIGNATURE, TOKEN};

const BASE: &str = "https://hooks.example.com";
const PARAMS: &[(&str, &str)] = &[("Body", "hi"), ("From", "+15005550006")];

fn reporting() -> TwilioSignatureLayer {
    TwilioSignatureLayer::new(TOKEN)
        .unwrap()
        .url_source(UrlSource::base_url(BASE).unwrap())
        .body_limit(1024)
        .report_only(true)
}

/// What the inner service saw.
#[derive(Debug, Default, Clone)]
struct Seen {
    body: Bytes,
    verified: Option<VerifiedWebhook>,
    error: Option<K>,
}

async fn send(
    layer: &TwilioSignatureLayer,
    req: Request<Body>,
) -> (StatusCode, Option<K>, Option<Seen>) {
    let calls = Calls::default();
    let seen: Arc<Mutex<Option<Seen>>> = Arc::default();
    let (counter, record) = (calls.clone(), Arc::clone(&seen));
    let svc = layer.layer(service_fn(move |req: Request<VerifiedBody>| {
        counter.hit();
        let record = Arc::clone(&record);
        async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            *record.lock().unwrap() = Some(Seen {
                body,
                verified: parts.extensions.get::<VerifiedWebhook>().cloned(),
                error: parts
                    .extensions
                    .get::<SignatureError>()
                    .map(SignatureError::kind),
            });
            Ok::<_, Infallible>(Response::new(Body::empty()))
        }
    }));
    let res = svc.oneshot(req).await.unwrap();
    let kind = res
        .extensions()
        .get::<SignatureError>()
        .map(SignatureError::kind);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(calls.get(), usize::from(seen.is_some()));
    (res.status(), kind, seen)
}

fn post(signature: Option<&str>, content_type: &str, body: impl Into<Body>) -> Request<Body> {
    let mut req = Request::post("/sms").header(CONTENT_TYPE, content_type);
    if let Some(s) = signature {
        req = req.header(&SIGNATURE, s);
    }
    req.body(body.into()).unwrap()
}

fn good_sig() -> String {
    sign(TOKEN, &format!("{BASE}/sms"), PARAMS)
}

#[tokio::test]
async fn signature_failures_pass_with_the_error() {
    let layer = reporting();
    let form = form_body(PARAMS);
    let cases: Vec<(&str, Request<Body>, K, &[u8])> = vec![
        (
            "no signature",
            post(None, FORM, form.clone()),
            K::MissingHeader,
            form.as_bytes(),
        ),
        (
            "forged signature",
            post(Some(FORGED), FORM, form.clone()),
            K::Mismatch,
            form.as_bytes(),
        ),
        (
            "malformed signature",
            post(Some("abc"), FORM, form.clone()),
            K::MalformedHeader,
            form.as_bytes(),
        ),
        (
            "another body",
            post(Some(&good_sig()), FORM, "Body=bye"),
            K::Mismatch,
            b"Body=bye",
        ),
        (
            "a JSON body nothing signs",
            post(Some(&good_sig()), "application/json", "{\"a\":1}"),
            K::UnsignedBody,
            b"{\"a\":1}",
        ),
        (
            "a form that is not UTF-8",
            post(Some(&good_sig()), FORM, &b"Body=%FF"[..]),
            K::MalformedBody,
            b"Body=%FF",
        ),
    ];
    for (name, req, kind, body) in cases {
        let (status, rejected, seen) = send(&layer, req).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        assert_eq!(rejected, None, "{name}");
        let seen = seen.unwrap_or_else(|| panic!("{name}: service not called"));
        assert_eq!(seen.error, Some(kind), "{name}");
        assert!(seen.verified.is_none(), "{name}");
        assert_eq!(&seen.body[..], body, "{name}: the body is handed on");
    }
    // A genuine request is verified as usual.
    let (status, _, seen) = send(&layer, post(Some(&good_sig()), FORM, form.clone())).await;
    assert_eq!(status, StatusCode::OK);
    let seen = seen.unwrap();
    assert_eq!(seen.error, None);
    assert_eq!(
        seen.verified.unwrap().url(),
        "https://hooks.example.com/sms"
    );
    assert_eq!(seen.body, form);
}

#[tokio::test]
async fn no_public_url_passes_with_the_error() {
    let layer = TwilioSignatureLayer::new(TOKEN)
        .unwrap()
        .url_source(UrlSource::host_header("https").unwrap())
        .report_only(true);
    let (status, _, seen) = send(&layer, post(Some(&good_sig()), FORM, form_body(PARAMS))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen.unwrap().error, Some(K::NoUrl));
}

#[tokio::test]
async fn limits_and_credentials_still_refuse() {
    let big = "x".repeat(2000);
    let cases: Vec<(&str, TwilioSignatureLayer, Request<Body>, K)> = vec![
        (
            "Content-Length over the limit, unsigned",
            reporting(),
            post(None, FORM, big.clone()),
            K::BodyTooLarge,
        ),
        (
            "Content-Length over the limit, signed",
            reporting(),
            post(Some(&good_sig()), FORM, big.clone()),
            K::BodyTooLarge,
        ),
        (
            "streamed over the limit",
            reporting(),
            post(
                None,
                FORM,
                Body::from_stream(futures_util::stream::iter(
                    (0..3).map(|_| Ok::<_, Infallible>(Bytes::from("y".repeat(600)))),
                )),
            ),
            K::BodyTooLarge,
        ),
        (
            "a body that fails",
            reporting(),
            post(
                Some(FORGED),
                FORM,
                Body::from_stream(futures_util::stream::iter([
                    Ok(Bytes::from_static(b"Body=")),
                    Err(std::io::Error::other("reset")),
                ])),
            ),
            K::BodyRead,
        ),
        (
            "a malformed Content-Length",
            reporting(),
            {
                let mut r = post(None, FORM, "Body=hi");
                r.headers_mut()
                    .insert(CONTENT_LENGTH, "7x".parse().unwrap());
                r
            },
            K::BodyRead,
        ),
        (
            "Basic credentials missing",
            reporting().basic_auth("twilio", "pw").unwrap(),
            post(Some(&good_sig()), FORM, form_body(PARAMS)),
            K::Unauthorized,
        ),
        (
            "Digest credentials missing",
            reporting().digest_auth("twilio", "pw").unwrap(),
            post(None, FORM, form_body(PARAMS)),
            K::Unauthorized,
        ),
    ];
    for (name, layer, req, kind) in cases {
        let (status, rejected, seen) = send(&layer, req).await;
        assert_eq!(rejected, Some(kind), "{name}");
        assert_eq!(status, SignatureError::new(kind).status(), "{name}");
        assert!(seen.is_none(), "{name}: reached the service");
    }
    // With the right Basic credentials, an unsigned request passes again.
    let layer = reporting().basic_auth("twilio", "pw").unwrap();
    let mut req = post(None, FORM, form_body(PARAMS));
    req.headers_mut()
        .insert("authorization", basic("twilio", "pw").parse().unwrap());
    let (status, _, seen) = send(&layer, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen.unwrap().error, Some(K::MissingHeader));
}

#[tokio::test]
async fn report_only_false_enforces() {
    let layer = reporting().report_only(false);
    let (status, rejected, seen) = send(&layer, post(Some(FORGED), FORM, form_body(PARAMS))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(rejected, Some(K::Mismatch));
    assert!(seen.is_none());
}

#[cfg(feature = "tracing")]
#[tokio::test(flavor = "current_thread")]
async fn what_would_be_refused_is_logged() {
    let captured = Logs::capture();
    // Only warnings: the layer's debug lines on genuine requests are not of interest here.
    let logs = || {
        captured
            .text()
            .lines()
            .filter(|l| l.contains("WARN"))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    };

    let layer = reporting();
    assert!(logs().contains("report-only"), "{}", logs());
    assert!(logs().contains("not enforcing"), "{}", logs());
    let before = logs().len();
    let (status, _, _) = send(&layer, post(Some(FORGED), FORM, form_body(PARAMS))).await;
    assert_eq!(status, StatusCode::OK);
    let line = logs()[before..].to_owned();
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("Mismatch"), "{line}");
    assert!(line.contains("https://hooks.example.com/sms"), "{line}");
    assert!(!line.contains(TOKEN), "{line}");
    // A genuine request logs nothing.
    let before = logs().len();
    send(&layer, post(Some(&good_sig()), FORM, form_body(PARAMS))).await;
    assert_eq!(logs().len(), before, "{}", &logs()[before..]);
    // Nor does building a layer that enforces.
    let _enforcing = layer.report_only(false);
    assert_eq!(logs().len(), before);
}
