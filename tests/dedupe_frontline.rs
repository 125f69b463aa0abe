//! The Frontline example with the dedupe layer wired in as its binary does: a routing
//! callback that Twilio delivers twice adds the worker once.
#![cfg(feature = "dedupe")]

#[allow(dead_code)]
#[path = "../examples/frontline/app/mod.rs"]
mod app;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;
use tower_twilio_signature::dedupe::DedupeLayer;
use tower_twilio_signature::{sign, TwilioSignatureLayer, UrlSource};

use crate::app::{sample_customers, AppConfig, AppState, ConversationUpdate, REQUEST_BODY_TIMEOUT};

const TOKEN: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const BASE: &str = "https://frontline.example.com";
const ROUTING: &[(&str, &str)] = &[
    ("ConversationSid", "CH00000000000000000000000000000001"),
    ("MessagingBinding.Address", "+12025550111"),
];

fn routing_callback(token: Option<&str>) -> Request<Body> {
    let signature = sign(
        TOKEN,
        &format!("{BASE}/callbacks/routing"),
        ROUTING.iter().copied(),
    );
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(ROUTING)
        .finish();
    let mut request = Request::post("/callbacks/routing")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature);
    if let Some(token) = token {
        request = request.header("i-twilio-idempotency-token", token);
    }
    request.body(Body::from(body)).unwrap()
}

#[tokio::test]
async fn a_routing_callback_delivered_twice_adds_the_worker_once() {
    let config = AppConfig {
        sms_number: None,
        whatsapp_number: None,
        request_body_timeout: REQUEST_BODY_TIMEOUT,
        customers: sample_customers(),
        default_worker: None,
        conversations_api: None,
    };
    let state = AppState::new(&config);
    let signature = TwilioSignatureLayer::new(TOKEN)
        .unwrap()
        .url_source(UrlSource::base_url(BASE).unwrap());
    let router = app::app_with(signature, DedupeLayer::new(), state.clone(), &config);

    let mut bodies = Vec::new();
    for replayed in [false, true] {
        let response = router
            .clone()
            .oneshot(routing_callback(Some("RE-routing-1")))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers().contains_key("idempotent-replayed"),
            replayed
        );
        assert_eq!(response.headers()["content-type"], "application/json");
        bodies.push(
            axum::body::to_bytes(response.into_body(), 4096)
                .await
                .unwrap(),
        );
    }
    assert_eq!(bodies[0], bodies[1]);
    assert_eq!(state.callbacks_handled(), 1);
    assert_eq!(state.updates().len(), 1);
    assert!(matches!(
        &state.updates()[0],
        ConversationUpdate::AddWorker { conversation_sid, .. }
            if conversation_sid == "CH00000000000000000000000000000001"
    ));

    // Without the token, each delivery is handled: the layer cannot tell them apart.
    for _ in 0..2 {
        let response = router
            .clone()
            .oneshot(routing_callback(None))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(state.callbacks_handled(), 3);
    assert_eq!(state.updates_recorded(), 3);
}
