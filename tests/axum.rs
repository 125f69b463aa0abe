//! The layer in every Axum wiring: routers, method routers, handlers, nesting, the whole
//! router from outside, extractors behind it, streamed bodies, WebSocket handshakes and
//! custom rejections.

mod common;

use std::collections::HashMap;
use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, RawForm, State};
use axum::handler::Handler;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, WWW_AUTHENTICATE};
use axum::http::{Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post, MethodRouter, Route};
use axum::{Extension, Form, Json, Router};
use futures_util::stream;
use http_body_util::BodyExt;
use serde::Deserialize;
use tower::util::BoxCloneService;
use tower::{service_fn, Layer, ServiceBuilder};
use tower_http::limit::RequestBodyLimitLayer;
use tower_twilio_signature::{
    sign_body, sign_url, Algorithm, DefaultRejection, MatchedKey, ResponseFuture, SignatureError,
    SignatureErrorKind, TwilioSignature, TwilioSignatureLayer, UrlSource, VerifiedBody,
    VerifiedWebhook, Verifier,
};

use common::{
    basic, call, form_body, form_post, form_post_with_sig, sig, Calls, MustNotPoll, FORGED, FORM,
    IDEMPOTENCY, PUBLIC_HOST, SIGNATURE, SMS, TOKEN,
};

const BASE: &str = "https://hooks.example.com";

fn layer() -> TwilioSignatureLayer {
    layer_with(Verifier::new(TOKEN).unwrap())
}

fn layer_with(verifier: Verifier) -> TwilioSignatureLayer {
    TwilioSignatureLayer::from_verifier(verifier).url_source(UrlSource::base_url(BASE).unwrap())
}

fn url(path: &str) -> String {
    format!("{BASE}{path}")
}

/// A POST route whose handler counts calls, takes the [`VerifiedWebhook`], and echoes the
/// body it received, handing the webhook back in the response's extensions.
fn echo(calls: &Calls) -> MethodRouter {
    let calls = calls.clone();
    post(move |verified: VerifiedWebhook, body: Bytes| async move {
        calls.hit();
        (Extension(verified), body)
    })
}

type BoxSvc = BoxCloneService<Request<Body>, Response<Body>, Infallible>;

struct Wiring {
    name: &'static str,
    /// The path a client requests, and Twilio signs.
    path: &'static str,
    /// The path the innermost router sees, when a nest strips a prefix.
    stripped: Option<&'static str>,
    svc: BoxSvc,
}

#[derive(Clone)]
struct AppState {
    calls: Calls,
}

async fn stateful(
    State(state): State<AppState>,
    verified: VerifiedWebhook,
    body: Bytes,
) -> impl IntoResponse {
    state.calls.hit();
    (Extension(verified), body)
}

fn wirings(calls: &Calls) -> Vec<Wiring> {
    let handler = {
        let calls = calls.clone();
        move |verified: VerifiedWebhook, body: Bytes| async move {
            calls.hit();
            (Extension(verified), body)
        }
    };
    let inner_service = {
        let calls = calls.clone();
        service_fn(move |req: Request<VerifiedBody>| {
            let calls = calls.clone();
            async move {
                calls.hit();
                let (parts, body) = req.into_parts();
                let bytes = body.collect().await.unwrap().to_bytes();
                let mut res = Response::new(Body::from(bytes));
                if let Some(v) = parts.extensions.get::<VerifiedWebhook>() {
                    res.extensions_mut().insert(v.clone());
                }
                Ok::<_, Infallible>(res)
            }
        })
    };
    let sms = || Router::new().route("/sms", echo(calls));
    vec![
        Wiring {
            name: "Router::layer",
            path: "/sms",
            stripped: None,
            svc: BoxCloneService::new(sms().layer(layer())),
        },
        Wiring {
            name: "Router::route_layer",
            path: "/sms",
            stripped: None,
            svc: BoxCloneService::new(sms().route_layer(layer())),
        },
        Wiring {
            name: "MethodRouter::layer",
            path: "/sms",
            stripped: None,
            svc: BoxCloneService::new(Router::new().route("/sms", echo(calls).layer(layer()))),
        },
        Wiring {
            name: "MethodRouter::route_layer",
            path: "/sms",
            stripped: None,
            svc: BoxCloneService::new(
                Router::new().route("/sms", echo(calls).route_layer(layer())),
            ),
        },
        Wiring {
            name: "Handler::layer",
            path: "/sms",
            stripped: None,
            svc: BoxCloneService::new(
                Router::new().route("/sms", post(handler.clone().layer(layer()))),
            ),
        },
        Wiring {
            name: "ServiceBuilder in Router::layer",
            path: "/sms",
            stripped: None,
            svc: BoxCloneService::new(
                sms().layer(
                    ServiceBuilder::new()
                        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                            StatusCode::REQUEST_TIMEOUT,
                            std::time::Duration::from_secs(5),
                        ))
                        .layer(layer()),
                ),
            ),
        },
        Wiring {
            name: "Router::layer with state",
            path: "/sms",
            stripped: None,
            svc: BoxCloneService::new(
                Router::new()
                    .route("/sms", post(stateful))
                    .layer(layer())
                    .with_state(AppState {
                        calls: calls.clone(),
                    }),
            ),
        },
        Wiring {
            name: "route_service with a service_fn",
            path: "/sms",
            stripped: None,
            svc: BoxCloneService::new(
                Router::new().route_service("/sms", layer().layer(inner_service.clone())),
            ),
        },
        Wiring {
            name: "layer around the whole Router",
            path: "/sms",
            stripped: None,
            svc: BoxCloneService::new(layer().layer(sms())),
        },
        Wiring {
            name: "layer around a service_fn",
            path: "/sms",
            stripped: None,
            svc: BoxCloneService::new(layer().layer(inner_service.clone())),
        },
        Wiring {
            name: "nest, Router::layer inside",
            path: "/twilio/sms",
            stripped: Some("/sms"),
            svc: BoxCloneService::new(Router::new().nest("/twilio", sms().layer(layer()))),
        },
        Wiring {
            name: "nest, Router::route_layer inside",
            path: "/twilio/sms",
            stripped: Some("/sms"),
            svc: BoxCloneService::new(Router::new().nest("/twilio", sms().route_layer(layer()))),
        },
        Wiring {
            name: "nest, MethodRouter::route_layer inside",
            path: "/twilio/sms",
            stripped: Some("/sms"),
            svc: BoxCloneService::new(Router::new().nest(
                "/twilio",
                Router::new().route("/sms", echo(calls).route_layer(layer())),
            )),
        },
        Wiring {
            name: "two levels of nest",
            path: "/api/twilio/sms",
            stripped: Some("/sms"),
            svc: BoxCloneService::new(
                Router::new().nest("/api", Router::new().nest("/twilio", sms().layer(layer()))),
            ),
        },
        Wiring {
            name: "nest_service with the layer around a Router",
            path: "/twilio/sms",
            stripped: Some("/sms"),
            svc: BoxCloneService::new(Router::new().nest_service("/twilio", layer().layer(sms()))),
        },
        Wiring {
            name: "Router::layer on the router that nests",
            path: "/twilio/sms",
            stripped: Some("/sms"),
            svc: BoxCloneService::new(Router::new().nest("/twilio", sms()).layer(layer())),
        },
        Wiring {
            name: "layer around a Router that nests",
            path: "/twilio/sms",
            stripped: Some("/sms"),
            svc: BoxCloneService::new(layer().layer(Router::new().nest("/twilio", sms()))),
        },
    ]
}

#[tokio::test]
async fn every_wiring_verifies_and_refuses() {
    let calls = Calls::default();
    let body = form_body(SMS);
    for w in wirings(&calls) {
        let name = w.name;
        let before = calls.get();

        let ok = call(w.svc.clone(), form_post(w.path, &url(w.path), SMS)).await;
        assert_eq!(ok.status, StatusCode::OK, "{name}: signed ({:?})", ok.kind);
        assert_eq!(ok.kind, None, "{name}: no SignatureError on success");
        assert_eq!(ok.text(), body, "{name}: handler saw the exact body");
        assert_eq!(
            ok.url(),
            Some(url(w.path).as_str()),
            "{name}: VerifiedWebhook reached the handler"
        );
        assert_eq!(calls.get(), before + 1, "{name}: handler ran once");

        let forged = call(w.svc.clone(), form_post_with_sig(w.path, FORGED, &body)).await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN, "{name}: forged");
        assert_eq!(forged.kind, Some(SignatureErrorKind::Mismatch), "{name}");
        assert!(forged.body.is_empty(), "{name}: default rejection is empty");

        let mut unsigned = form_post(w.path, &url(w.path), SMS);
        unsigned.headers_mut().remove(&SIGNATURE);
        let unsigned = call(w.svc.clone(), unsigned).await;
        assert_eq!(unsigned.status, StatusCode::FORBIDDEN, "{name}: unsigned");
        assert_eq!(
            unsigned.kind,
            Some(SignatureErrorKind::MissingHeader),
            "{name}"
        );

        let tampered = form_post_with_sig(
            w.path,
            &sig(&url(w.path), SMS),
            &body.replace("Hello", "Hijacked"),
        );
        let tampered = call(w.svc.clone(), tampered).await;
        assert_eq!(tampered.status, StatusCode::FORBIDDEN, "{name}: tampered");
        assert_eq!(tampered.kind, Some(SignatureErrorKind::Mismatch), "{name}");

        if let Some(stripped) = w.stripped {
            let inner_url = form_post(w.path, &url(stripped), SMS);
            let inner_url = call(w.svc.clone(), inner_url).await;
            assert_eq!(
                inner_url.status,
                StatusCode::FORBIDDEN,
                "{name}: signature over the path the nested router sees"
            );
            assert_eq!(inner_url.kind, Some(SignatureErrorKind::Mismatch), "{name}");
        }
        assert_eq!(
            calls.get(),
            before + 1,
            "{name}: refusals never ran the handler"
        );
    }
}

#[tokio::test]
async fn nest_with_absolute_form_targets() {
    let calls = Calls::default();
    let host_mode = Router::new().nest(
        "/twilio",
        Router::new()
            .route("/sms", echo(&calls))
            .layer(TwilioSignatureLayer::new(TOKEN).unwrap()),
    );
    let fixed = Router::new().nest(
        "/twilio",
        Router::new().route("/sms", echo(&calls)).layer(layer()),
    );
    let request = |signed: &str| {
        Request::post("http://other.example/twilio/sms?x=1")
            .header(HOST, PUBLIC_HOST)
            .header(CONTENT_TYPE, FORM)
            .header(&SIGNATURE, sig(signed, SMS))
            .body(Body::from(form_body(SMS)))
            .unwrap()
    };
    struct Case {
        name: &'static str,
        app: Router,
        signed: &'static str,
        passes: bool,
    }
    let cases = [
        Case {
            name: "Host mode: the target's authority and full path",
            app: host_mode.clone(),
            signed: "https://other.example/twilio/sms?x=1",
            passes: true,
        },
        Case {
            name: "Host mode: the Host header is not used",
            app: host_mode.clone(),
            signed: "https://hooks.example.com/twilio/sms?x=1",
            passes: false,
        },
        Case {
            name: "Host mode: the stripped path fails",
            app: host_mode,
            signed: "https://other.example/sms?x=1",
            passes: false,
        },
        Case {
            name: "fixed base: the full path on the base",
            app: fixed.clone(),
            signed: "https://hooks.example.com/twilio/sms?x=1",
            passes: true,
        },
        Case {
            name: "fixed base: the target's authority fails",
            app: fixed,
            signed: "https://other.example/twilio/sms?x=1",
            passes: false,
        },
    ];
    for case in cases {
        let out = call(case.app, request(case.signed)).await;
        if case.passes {
            assert_eq!(out.status, StatusCode::OK, "{}: {:?}", case.name, out.kind);
            assert_eq!(out.url(), Some(case.signed), "{}", case.name);
        } else {
            assert_eq!(out.status, StatusCode::FORBIDDEN, "{}", case.name);
            assert_eq!(
                out.kind,
                Some(SignatureErrorKind::Mismatch),
                "{}",
                case.name
            );
        }
    }
    assert_eq!(calls.get(), 2);
}

/// A request for `path` with `method`, signed over the fixed base, or not signed.
fn empty_request(method: &str, path: &str, signed: bool) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if signed {
        builder = builder.header(&SIGNATURE, sign_url(TOKEN, &url(path)));
    }
    builder.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn not_found_and_method_not_allowed() {
    use SignatureErrorKind::MissingHeader;
    struct Case {
        name: &'static str,
        app: Router,
        /// Unsigned `GET /nope`.
        unknown_path: (StatusCode, Option<SignatureErrorKind>),
        /// Unsigned `GET /sms` on a POST-only route.
        wrong_method: (StatusCode, Option<SignatureErrorKind>),
    }
    let calls = Calls::default();
    let handler = {
        let calls = calls.clone();
        move || async move {
            calls.hit();
            "ok"
        }
    };
    let forbidden = (StatusCode::FORBIDDEN, Some(MissingHeader));
    let not_found = (StatusCode::NOT_FOUND, None);
    let not_allowed = (StatusCode::METHOD_NOT_ALLOWED, None);
    let cases = [
        Case {
            name: "Router::layer wraps the fallback too",
            app: Router::new()
                .route("/sms", post(handler.clone()))
                .layer(layer()),
            unknown_path: forbidden,
            wrong_method: forbidden,
        },
        Case {
            name: "Router::route_layer keeps 404, not 405",
            app: Router::new()
                .route("/sms", post(handler.clone()))
                .route_layer(layer()),
            unknown_path: not_found,
            wrong_method: forbidden,
        },
        Case {
            name: "MethodRouter::layer wraps its 405 fallback",
            app: Router::new().route("/sms", post(handler.clone()).layer(layer())),
            unknown_path: not_found,
            wrong_method: forbidden,
        },
        Case {
            name: "MethodRouter::route_layer keeps 404 and 405",
            app: Router::new().route("/sms", post(handler.clone()).route_layer(layer())),
            unknown_path: not_found,
            wrong_method: not_allowed,
        },
        Case {
            name: "Handler::layer keeps 404 and 405",
            app: Router::new().route("/sms", post(handler.clone().layer(layer()))),
            unknown_path: not_found,
            wrong_method: not_allowed,
        },
    ];
    for case in cases {
        let name = case.name;
        let res = call(case.app.clone(), empty_request("GET", "/nope", false)).await;
        assert_eq!(
            (res.status, res.kind),
            case.unknown_path,
            "{name}: GET /nope"
        );
        let res = call(case.app.clone(), empty_request("GET", "/sms", false)).await;
        assert_eq!(
            (res.status, res.kind),
            case.wrong_method,
            "{name}: GET /sms"
        );
        // Signed, they get past the layer and reach axum's own answers.
        let res = call(case.app.clone(), empty_request("GET", "/nope", true)).await;
        assert_eq!(
            (res.status, res.kind),
            not_found,
            "{name}: signed GET /nope"
        );
        let res = call(case.app.clone(), empty_request("GET", "/sms", true)).await;
        assert_eq!(
            (res.status, res.kind),
            not_allowed,
            "{name}: signed GET /sms"
        );
        let res = call(case.app, empty_request("POST", "/sms", true)).await;
        assert_eq!(res.status, StatusCode::OK, "{name}: signed POST /sms");
    }
    assert_eq!(calls.get(), 5, "only the signed POSTs reached the handler");
}

// ---------------------------------------------------------------------------------------
// Extractors behind the layer
// ---------------------------------------------------------------------------------------

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
struct SmsWebhook {
    account_sid: String,
    body: String,
    from: String,
    message_sid: String,
    to: String,
}

fn send(
    app: &Router,
    path: &str,
    params: &[(&str, &str)],
) -> impl std::future::Future<Output = common::Outcome> {
    call(app.clone(), form_post(path, &url(path), params))
}

#[tokio::test]
async fn form_extractors() {
    let calls = Calls::default();
    let c = (calls.clone(), calls.clone(), calls.clone(), calls.clone());
    let app = Router::new()
        .route(
            "/typed",
            post(move |Form(sms): Form<SmsWebhook>| async move {
                c.0.hit();
                format!(
                    "{}|{}|{}|{}|{}",
                    sms.account_sid, sms.body, sms.from, sms.message_sid, sms.to
                )
            }),
        )
        .route(
            "/map",
            post(move |Form(map): Form<HashMap<String, String>>| async move {
                c.1.hit();
                let mut keys: Vec<_> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
                keys.sort();
                keys.join("\n")
            }),
        )
        .route(
            "/raw",
            post(move |RawForm(raw): RawForm| async move {
                c.2.hit();
                raw
            }),
        )
        .route(
            "/string",
            post(
                move |verified: Option<VerifiedWebhook>, text: String| async move {
                    c.3.hit();
                    format!(
                        "{}|{text}",
                        verified.map_or("none".into(), |v| v.url().to_owned())
                    )
                },
            ),
        )
        .layer(layer());

    let out = send(&app, "/typed", SMS).await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(
        out.text(),
        SMS.iter().map(|(_, v)| *v).collect::<Vec<_>>().join("|"),
        "Form<struct> parsed every field"
    );

    let out = send(&app, "/map", SMS).await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(
        out.text(),
        SMS.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("\n"),
        "Form<HashMap>"
    );

    let out = send(&app, "/raw", SMS).await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(out.text(), form_body(SMS), "RawForm got the exact bytes");

    let out = send(&app, "/string", SMS).await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(
        out.text(),
        format!("{}|{}", url("/string"), form_body(SMS)),
        "String and Option<VerifiedWebhook>"
    );
    assert_eq!(calls.get(), 4);

    // Forged requests reach none of them.
    for path in ["/typed", "/map", "/raw", "/string"] {
        let out = call(
            app.clone(),
            form_post_with_sig(path, FORGED, &form_body(SMS)),
        )
        .await;
        assert_eq!(out.status, StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(calls.get(), 4);
}

#[tokio::test]
async fn get_webhook_with_form_from_the_query() {
    let calls = Calls::default();
    let c = calls.clone();
    let app = Router::new()
        .route(
            "/status",
            get(move |Form(q): Form<HashMap<String, String>>| async move {
                c.hit();
                format!("{}|{}", q["CallSid"], q["CallStatus"])
            }),
        )
        .layer(layer());
    let path = "/status?CallSid=CA123&CallStatus=in-progress";
    let out = call(app.clone(), empty_request("GET", path, true)).await;
    assert_eq!(out.status, StatusCode::OK, "{:?}", out.kind);
    assert_eq!(out.text(), "CA123|in-progress");

    let req = Request::get("/status?CallSid=CA999&CallStatus=in-progress")
        .header(&SIGNATURE, sign_url(TOKEN, &url(path)))
        .body(Body::empty())
        .unwrap();
    let out = call(app, req).await;
    assert_eq!(out.status, StatusCode::FORBIDDEN, "query changed");
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn bytes_extractor_sees_the_exact_bytes() {
    let calls = Calls::default();
    let app = Router::new().route("/sms", echo(&calls)).layer(layer());
    // Spelled by hand so a re-encoding would show: lowercase escapes, `+`, repeated keys.
    let body = "To=%2b15005550001&Body=caf%c3%a9+%26+%3D&Body=second&From=%2B1";
    let params = [
        ("To", "+15005550001"),
        ("Body", "café & ="),
        ("Body", "second"),
        ("From", "+1"),
    ];
    let out = call(
        app,
        form_post_with_sig("/sms", &sig(&url("/sms"), &params), body),
    )
    .await;
    assert_eq!(out.status, StatusCode::OK, "{:?}", out.kind);
    assert_eq!(out.body, body.as_bytes());
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn json_extractor_with_body_sha256() {
    let calls = Calls::default();
    let c = calls.clone();
    let app = Router::new()
        .route(
            "/events",
            post(
                move |verified: VerifiedWebhook, Json(value): Json<serde_json::Value>| async move {
                    c.hit();
                    (Extension(verified), Json(value))
                },
            ),
        )
        .route("/raw", echo(&calls))
        .layer(layer());
    let body =
        r#"{"CallSid":"CA123","Events":[{"type":"ringing"},{"type":"answered"}],"Note":"é"}"#;
    let request = |path: &str, body: &'static str, signed_body: &str| {
        let (signed, signature) = sign_body(TOKEN, &url(path), signed_body.as_bytes());
        Request::post(signed.strip_prefix(BASE).unwrap())
            .header(CONTENT_TYPE, "application/json")
            .header(&SIGNATURE, signature)
            .body(Body::from(body))
            .unwrap()
    };

    let out = call(app.clone(), request("/events", body, body)).await;
    assert_eq!(out.status, StatusCode::OK, "{:?}", out.kind);
    let echoed: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(
        echoed,
        serde_json::from_str::<serde_json::Value>(body).unwrap()
    );
    assert!(out.url().unwrap().contains("bodySHA256="));

    let out = call(app.clone(), request("/raw", body, body)).await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(out.body, body.as_bytes(), "Bytes got the exact JSON");

    let tampered = r#"{"CallSid":"CA999","Events":[],"Note":"é"}"#;
    let out = call(app.clone(), request("/events", tampered, body)).await;
    assert_eq!(out.status, StatusCode::FORBIDDEN);
    assert_eq!(out.kind, Some(SignatureErrorKind::BodyHashMismatch));

    let unsigned = Request::post("/events")
        .header(CONTENT_TYPE, "application/json")
        .header(&SIGNATURE, sign_url(TOKEN, &url("/events")))
        .body(Body::from(body))
        .unwrap();
    let out = call(app, unsigned).await;
    assert_eq!(out.status, StatusCode::FORBIDDEN);
    assert_eq!(out.kind, Some(SignatureErrorKind::UnsignedBody));
    assert_eq!(calls.get(), 2);
}

#[tokio::test]
async fn verified_webhook_details_reach_the_handler() {
    let app = Router::new()
        .route(
            "/sms",
            post(
                |verified: VerifiedWebhook,
                 Extension(ext): Extension<VerifiedWebhook>,
                 optional: Option<VerifiedWebhook>| async move {
                    assert_eq!(Some(&verified), optional.as_ref());
                    assert_eq!(verified, ext);
                    format!(
                        "{}|{:?}|{:?}|{:?}",
                        verified.url(),
                        verified.key(),
                        verified.algorithm(),
                        verified.idempotency_token()
                    )
                },
            ),
        )
        .layer(layer_with(
            Verifier::new(TOKEN)
                .unwrap()
                .with_auth_token("rotated-token")
                .unwrap(),
        ));
    let mut req = form_post("/sms?x=1", &url("/sms?x=1"), SMS);
    req.headers_mut()
        .insert(&IDEMPOTENCY, "b1c2d3-retry".parse().unwrap());
    let out = call(app.clone(), req).await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(
        out.text(),
        format!(
            "{}|{:?}|{:?}|{:?}",
            url("/sms?x=1"),
            MatchedKey::AuthToken(0),
            Algorithm::HmacSha1,
            Some("b1c2d3-retry")
        )
    );
}

#[tokio::test]
async fn verified_webhook_extractor_without_the_layer() {
    let app: Router = Router::new()
        .route("/required", post(|_: VerifiedWebhook| async { "reached" }))
        .route(
            "/optional",
            post(|v: Option<VerifiedWebhook>| async move {
                if v.is_some() {
                    "some"
                } else {
                    "none"
                }
            }),
        );
    let out = call(app.clone(), form_post("/required", &url("/required"), SMS)).await;
    assert_eq!(out.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        out.text().contains("TwilioSignatureLayer"),
        "{}",
        out.text()
    );
    let out = call(app, form_post("/optional", &url("/optional"), SMS)).await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(out.text(), "none");
}

// ---------------------------------------------------------------------------------------
// Body sizes, streamed bodies, limits
// ---------------------------------------------------------------------------------------

fn stream_body(chunks: Vec<Result<&'static str, std::io::Error>>) -> Body {
    Body::from_stream(stream::iter(chunks))
}

fn streamed_request(path: &str, signature: &str, body: Body) -> Request<Body> {
    Request::post(path)
        .header(CONTENT_TYPE, FORM)
        .header(&SIGNATURE, signature)
        .body(body)
        .unwrap()
}

#[tokio::test]
async fn streamed_bodies() {
    let calls = Calls::default();
    let app = Router::new()
        .route("/sms", echo(&calls))
        .layer(layer().body_limit(32));
    let signature = sig(&url("/sms"), &[("Body", "hello world"), ("From", "+1")]);

    let ok = stream_body(vec![Ok("Body=hello"), Ok("+world"), Ok("&From=%2B1")]);
    let out = call(app.clone(), streamed_request("/sms", &signature, ok)).await;
    assert_eq!(out.status, StatusCode::OK, "streamed within the limit");
    assert_eq!(out.text(), "Body=hello+world&From=%2B1");

    let over = stream_body(vec![
        Ok("Body=0123456789"),
        Ok("0123456789"),
        Ok("0123456789"),
    ]);
    let out = call(app.clone(), streamed_request("/sms", &signature, over)).await;
    assert_eq!(
        out.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "streamed over the limit"
    );
    assert_eq!(out.kind, Some(SignatureErrorKind::BodyTooLarge));

    let broken = stream_body(vec![
        Ok("Body=hello"),
        Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "cut",
        )),
    ]);
    let out = call(app.clone(), streamed_request("/sms", &signature, broken)).await;
    assert_eq!(out.status, StatusCode::BAD_REQUEST, "stream fails mid-way");
    assert_eq!(out.kind, Some(SignatureErrorKind::BodyRead));

    let unread = Request::post("/sms")
        .header(CONTENT_TYPE, FORM)
        .header(CONTENT_LENGTH, "33")
        .header(&SIGNATURE, signature.as_str())
        .body(Body::new(MustNotPoll::default()))
        .unwrap();
    let out = call(app.clone(), unread).await;
    assert_eq!(
        out.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "Content-Length over"
    );
    assert_eq!(out.kind, Some(SignatureErrorKind::BodyTooLarge));

    let full = Request::post("/sms")
        .header(CONTENT_TYPE, FORM)
        .header(&SIGNATURE, signature.as_str())
        .body(Body::from("Body=".to_owned() + &"x".repeat(40)))
        .unwrap();
    let out = call(app, full).await;
    assert_eq!(
        out.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "sized body without Content-Length"
    );
    assert_eq!(out.kind, Some(SignatureErrorKind::BodyTooLarge));
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn outer_request_body_limit_layer() {
    let calls = Calls::default();
    let params = [("Body", "hi")];
    let signature = sig(&url("/sms"), &params);
    let inside_router = Router::new()
        .route("/sms", echo(&calls))
        .layer(layer())
        .layer(RequestBodyLimitLayer::new(16));
    let around = BoxCloneService::new(
        ServiceBuilder::new()
            .map_response(IntoResponse::into_response)
            .layer(RequestBodyLimitLayer::new(16))
            .service(layer().layer(Router::new().route("/sms", echo(&calls)))),
    );
    let apps: [(&str, BoxSvc); 2] = [
        ("Router::layer", BoxCloneService::new(inside_router)),
        ("around the layered Router", around),
    ];
    for (name, app) in apps {
        // Within both limits.
        let out = call(
            app.clone(),
            streamed_request("/sms", &signature, stream_body(vec![Ok("Body=hi")])),
        )
        .await;
        assert_eq!(out.status, StatusCode::OK, "{name}: small");

        // Streamed past the outer limit: its error reaches our layer, wrapped.
        let body = stream_body(vec![Ok("Body=0123456789"), Ok("0123456789")]);
        let out = call(app.clone(), streamed_request("/sms", &signature, body)).await;
        assert_eq!(
            out.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{name}: streamed"
        );
        assert_eq!(out.kind, Some(SignatureErrorKind::BodyTooLarge), "{name}");

        // A Content-Length over the outer limit: tower-http answers before our layer.
        let req = Request::post("/sms")
            .header(CONTENT_TYPE, FORM)
            .header(CONTENT_LENGTH, "100")
            .header(&SIGNATURE, signature.as_str())
            .body(Body::new(MustNotPoll::default()))
            .unwrap();
        let out = call(app, req).await;
        assert_eq!(
            out.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{name}: declared"
        );
        assert_eq!(out.kind, None, "{name}: refused by tower-http, not by us");
    }
    assert_eq!(calls.get(), 2);
}

#[tokio::test]
async fn default_body_limit_still_applies_to_extractors() {
    let body = form_body(SMS);
    assert!(body.len() > 64);
    for (name, app) in [
        (
            "DefaultBodyLimit outside",
            Router::new()
                .route("/sms", echo(&Calls::default()))
                .layer(layer())
                .layer(DefaultBodyLimit::max(64)),
        ),
        (
            "DefaultBodyLimit inside",
            Router::new()
                .route("/sms", echo(&Calls::default()))
                .layer(DefaultBodyLimit::max(64))
                .layer(layer()),
        ),
    ] {
        let out = call(app, form_post("/sms", &url("/sms"), SMS)).await;
        assert_eq!(
            out.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{name}: the Bytes extractor refuses"
        );
        assert_eq!(out.kind, None, "{name}: our layer accepted it");
    }

    // Disabling axum's limit leaves ours in place.
    let app = Router::new()
        .route("/sms", echo(&Calls::default()))
        .layer(layer().body_limit(64))
        .layer(DefaultBodyLimit::disable());
    let out = call(app, form_post("/sms", &url("/sms"), SMS)).await;
    assert_eq!(out.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(out.kind, Some(SignatureErrorKind::BodyTooLarge));
}

// ---------------------------------------------------------------------------------------
// WebSocket handshakes
// ---------------------------------------------------------------------------------------

const WS_QUERY: &[(&str, &str)] = &[("CallSid", "CA123"), ("From", "+15005550006")];
const WS_PATH: &str = "/ws?CallSid=CA123&From=%2B15005550006";

fn handshake(method: &str, signature: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(WS_PATH)
        .header(HOST, PUBLIC_HOST)
        .header("connection", "keep-alive, Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header(&SIGNATURE, signature)
}

#[tokio::test]
async fn websocket_handshakes() {
    use SignatureErrorKind::*;
    let calls = Calls::default();
    let handler = {
        let calls = calls.clone();
        move |verified: VerifiedWebhook| async move {
            calls.hit();
            Extension(verified)
        }
    };
    let app = Router::new()
        .route("/ws", get(handler.clone()).post(handler))
        .layer(TwilioSignatureLayer::new(TOKEN).unwrap());
    let none: &[(&str, &str)] = &[];
    struct Case {
        name: &'static str,
        signed: &'static str,
        params: &'static [(&'static str, &'static str)],
        expect: Option<SignatureErrorKind>,
    }
    let cases = [
        Case {
            name: "wss URL, query pairs as parameters",
            signed: "wss://hooks.example.com/ws",
            params: WS_QUERY,
            expect: None,
        },
        Case {
            name: "trailing slash variant",
            signed: "wss://hooks.example.com/ws/",
            params: WS_QUERY,
            expect: None,
        },
        Case {
            name: "query kept in the URL",
            signed: "wss://hooks.example.com/ws?CallSid=CA123&From=%2B15005550006",
            params: none,
            expect: None,
        },
        Case {
            name: "default port",
            signed: "wss://hooks.example.com:443/ws",
            params: WS_QUERY,
            expect: None,
        },
        Case {
            name: "https instead of wss",
            signed: "https://hooks.example.com/ws?CallSid=CA123&From=%2B15005550006",
            params: none,
            expect: Some(Mismatch),
        },
        Case {
            name: "query pairs left out",
            signed: "wss://hooks.example.com/ws",
            params: none,
            expect: Some(Mismatch),
        },
        Case {
            name: "other pairs",
            signed: "wss://hooks.example.com/ws",
            params: &[("CallSid", "CA999"), ("From", "+15005550006")],
            expect: Some(Mismatch),
        },
    ];
    for case in cases {
        let signature = sig(case.signed, case.params);
        let before = calls.get();
        let out = call(
            app.clone(),
            handshake("GET", &signature).body(Body::empty()).unwrap(),
        )
        .await;
        match case.expect {
            None => {
                assert_eq!(out.status, StatusCode::OK, "{}: {:?}", case.name, out.kind);
                assert_eq!(out.url(), Some(case.signed), "{}", case.name);
                assert_eq!(calls.get(), before + 1, "{}", case.name);
            }
            Some(kind) => {
                assert_eq!(out.status, StatusCode::FORBIDDEN, "{}", case.name);
                assert_eq!(out.kind, Some(kind), "{}", case.name);
                assert_eq!(calls.get(), before, "{}", case.name);
            }
        }
    }

    let good = sig("wss://hooks.example.com/ws", WS_QUERY);
    let before = calls.get();

    // A handshake that carries a body.
    let req = handshake("GET", &good)
        .header(CONTENT_LENGTH, "8")
        .body(Body::from("smuggled"))
        .unwrap();
    let out = call(app.clone(), req).await;
    assert_eq!(
        out.status,
        StatusCode::FORBIDDEN,
        "GET handshake with a body"
    );
    assert_eq!(out.kind, Some(UnsignedBody));

    // A POST dressed as a handshake is an ordinary request: its body must be signed.
    let req = handshake("POST", &good)
        .header(CONTENT_TYPE, "text/plain")
        .body(Body::from("smuggled"))
        .unwrap();
    let out = call(app.clone(), req).await;
    assert_eq!(
        out.status,
        StatusCode::FORBIDDEN,
        "POST with Upgrade: websocket"
    );
    assert_eq!(out.kind, Some(UnsignedBody));

    let req = handshake("POST", &good)
        .header(CONTENT_TYPE, FORM)
        .body(Body::from("Evil=1"))
        .unwrap();
    let out = call(app.clone(), req).await;
    assert_eq!(out.status, StatusCode::FORBIDDEN, "POST form signed as wss");
    assert_eq!(out.kind, Some(Mismatch));

    let req = handshake("POST", &good).body(Body::empty()).unwrap();
    let out = call(app, req).await;
    assert_eq!(
        out.status,
        StatusCode::FORBIDDEN,
        "empty POST signed as wss"
    );
    assert_eq!(out.kind, Some(Mismatch));
    assert_eq!(calls.get(), before, "none of them reached the handler");
}

#[tokio::test]
async fn websocket_handshake_over_http_base() {
    let app = Router::new()
        .route("/ws", get(|v: VerifiedWebhook| async move { Extension(v) }))
        .layer(
            TwilioSignatureLayer::new(TOKEN)
                .unwrap()
                .url_source(UrlSource::base_url("http://localhost:3000/voice").unwrap()),
        );
    let signed = "ws://localhost:3000/voice/ws";
    let out = call(
        app.clone(),
        handshake("GET", &sig(signed, WS_QUERY))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(out.status, StatusCode::OK, "{:?}", out.kind);
    assert_eq!(out.url(), Some(signed));
    let out = call(
        app,
        handshake("GET", &sig("wss://localhost:3000/voice/ws", WS_QUERY))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(out.status, StatusCode::FORBIDDEN);
}

// ---------------------------------------------------------------------------------------
// Rejections, Debug, types
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn custom_rejection() {
    let calls = Calls::default();
    let custom = layer()
        .basic_auth("twilio", "pw")
        .unwrap()
        .rejection(|err: &SignatureError| {
            let status = match err.kind() {
                SignatureErrorKind::Mismatch => StatusCode::IM_A_TEAPOT,
                _ => err.status(),
            };
            Response::builder()
                .status(status)
                .header(CONTENT_TYPE, "text/plain")
                .body(Body::from(format!("refused: {:?}", err.kind())))
                .unwrap()
        });
    let app = Router::new().route("/sms", echo(&calls)).layer(custom);
    let authorized = |mut req: Request<Body>| {
        req.headers_mut().insert(
            axum::http::header::AUTHORIZATION,
            basic("twilio", "pw").parse().unwrap(),
        );
        req
    };

    let out = call(
        app.clone(),
        authorized(form_post_with_sig("/sms", FORGED, &form_body(SMS))),
    )
    .await;
    assert_eq!(out.status, StatusCode::IM_A_TEAPOT);
    assert_eq!(out.text(), "refused: Mismatch");
    assert_eq!(out.headers[CONTENT_TYPE], "text/plain");
    assert_eq!(out.kind, Some(SignatureErrorKind::Mismatch));

    let out = call(app.clone(), form_post("/sms", &url("/sms"), SMS)).await;
    assert_eq!(out.status, StatusCode::UNAUTHORIZED);
    assert_eq!(out.text(), "refused: Unauthorized");
    assert_eq!(out.kind, Some(SignatureErrorKind::Unauthorized));
    assert_eq!(
        out.headers[WWW_AUTHENTICATE], "Basic realm=\"Twilio\"",
        "challenge added to a custom 401"
    );

    let out = call(app, authorized(form_post("/sms", &url("/sms"), SMS))).await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(out.kind, None);
    assert_eq!(calls.get(), 1);
}

#[test]
fn debug_reveals_no_secret() {
    let verifier = Verifier::new(TOKEN)
        .unwrap()
        .with_auth_token("second-secret-token")
        .unwrap()
        .with_shared_key("KS77", "shared-secret-value")
        .unwrap();
    let layer = TwilioSignatureLayer::from_verifier(verifier)
        .basic_auth("twilio", "basic-password")
        .unwrap()
        .url_source(UrlSource::base_url(BASE).unwrap());
    let debug = format!("{layer:?}");
    for secret in [
        TOKEN,
        "second-secret-token",
        "shared-secret-value",
        "basic-password",
    ] {
        assert!(!debug.contains(secret), "{secret} leaked in {debug}");
    }
    assert!(debug.contains("KS77"), "key ids are not secret: {debug}");
    let alternate = format!("{layer:#?}");
    assert!(!alternate.contains(TOKEN));

    let service = TwilioSignatureLayer::new(TOKEN)
        .unwrap()
        .layer(Router::<()>::new().route("/sms", post(|| async { "ok" })));
    let debug = format!("{service:?}");
    assert!(!debug.contains(TOKEN), "{debug}");
}

#[test]
fn debug_output() {
    let layer = TwilioSignatureLayer::new(TOKEN)
        .unwrap()
        .url_source(UrlSource::base_url("https://hooks.example.com/prefix").unwrap());
    assert_eq!(
        format!("{layer:?}"),
        "TwilioSignatureLayer { config: Config { verifier: Verifier { keys: Keys { \
         auth_tokens: 1 [redacted], shared_keys: [] }, extra_url_forms: false }, \
         url_source: BaseUrl(https://hooks.example.com/prefix), body_limit: 1048576, \
         basic_auth: None }, rejection: \"tower_twilio_signature::error::DefaultRejection\" }"
    );
}

fn assert_send<T: Send>() {}
fn assert_sync<T: Sync>() {}

#[test]
fn send_and_sync() {
    assert_send::<TwilioSignatureLayer>();
    assert_sync::<TwilioSignatureLayer>();
    assert_send::<TwilioSignature<Route>>();
    assert_sync::<TwilioSignature<Route>>();
    assert_send::<ResponseFuture<Route, Body, DefaultRejection>>();
    assert_send::<VerifiedWebhook>();
    assert_sync::<VerifiedWebhook>();
    assert_send::<VerifiedBody>();
    assert_send::<SignatureError>();
    assert_sync::<SignatureError>();
}

#[test]
fn router_builds_with_the_layer() -> Result<(), tower_twilio_signature::ConfigError> {
    let app: Router = Router::new()
        .route("/sms", post(|| async { "<Response/>" }))
        .layer(TwilioSignatureLayer::new(TOKEN)?);
    let _ = app;
    Ok(())
}
