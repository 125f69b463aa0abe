//! Slow and flooding clients: with tower-http's request-body timeout and a concurrency limit
//! outside the layer, a client that trickles its body cannot hold a buffer (or a slot) for
//! long, and no more bodies are buffered at once than the limit allows.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::routing::post;
use axum::{BoxError, Router};
use bytes::Bytes;
use http::{Request, StatusCode};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_twilio_signature::{
    sign, SignatureError, SignatureErrorKind, TwilioSignatureLayer, UrlSource,
};

const TOKEN: &str = "slow-token";

fn signed_request(body: Body) -> Request<Body> {
    let header = sign(TOKEN, "https://hooks.example.com/sms", [("Body", "hi")]);
    Request::post("/sms")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", header)
        .body(body)
        .unwrap()
}

/// A body that sends a first chunk, then nothing, forever.
fn trickle() -> Body {
    let first = futures_util::stream::iter([Ok::<_, Infallible>(Bytes::from_static(b"Body="))]);
    Body::from_stream(futures_util::StreamExt::chain(
        first,
        futures_util::stream::pending(),
    ))
}

fn twilio() -> TwilioSignatureLayer {
    TwilioSignatureLayer::new(TOKEN)
        .unwrap()
        .url_source(UrlSource::base_url("https://hooks.example.com").unwrap())
}

#[tokio::test(start_paused = true)]
async fn a_stalled_body_times_out_instead_of_holding_the_buffer() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let app = Router::new()
        .route(
            "/sms",
            post(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { "ok" }
            }),
        )
        .layer(twilio())
        // Outside the signature layer: it bounds how long the layer may wait for the body.
        .layer(RequestBodyTimeoutLayer::new(Duration::from_secs(5)));

    let started = tokio::time::Instant::now();
    let res = app
        .clone()
        .oneshot(signed_request(trickle()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        res.extensions()
            .get::<SignatureError>()
            .map(SignatureError::kind),
        Some(SignatureErrorKind::BodyRead)
    );
    assert!(started.elapsed() >= Duration::from_secs(5));
    assert!(started.elapsed() < Duration::from_secs(6));
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // A prompt client is unaffected.
    let res = app
        .oneshot(signed_request(Body::from("Body=hi")))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_concurrency_limit_caps_the_bodies_buffered_at_once() {
    // At most one request is inside the signature layer (so at most one body buffered);
    // others are shed with 503 while it is busy, and served once it is done.
    // The limits wrap the whole router, outside the signature layer.
    let app = Router::new()
        .route("/sms", post(|| async { "ok" }))
        .layer(twilio());
    let mut svc = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|_: BoxError| async {
            StatusCode::SERVICE_UNAVAILABLE
        }))
        .load_shed()
        .concurrency_limit(1)
        .layer(RequestBodyTimeoutLayer::new(Duration::from_secs(5)))
        .service(app);

    // The slow client takes the only slot.
    let slow = ServiceExt::<Request<Body>>::ready(&mut svc)
        .await
        .unwrap()
        .call(signed_request(trickle()));
    let slow = tokio::spawn(slow);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(!slow.is_finished());

    // A second client is shed while the slot is held.
    let shed = ServiceExt::<Request<Body>>::ready(&mut svc)
        .await
        .unwrap()
        .call(signed_request(Body::from("Body=hi")))
        .await
        .unwrap();
    assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);

    // The slow one is cut off by the body timeout, which frees the slot.
    let slow = slow.await.unwrap().unwrap();
    assert_eq!(slow.status(), StatusCode::BAD_REQUEST);
    let ok = ServiceExt::<Request<Body>>::ready(&mut svc)
        .await
        .unwrap()
        .call(signed_request(Body::from("Body=hi")))
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
}
