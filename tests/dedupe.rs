//! The dedupe layer with the in-memory store, through the real layers: the signature
//! layer outside, the dedupe layer inside, requests signed as Twilio signs them.
#![cfg(feature = "dedupe")]

mod dedupe_support;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::handler::Handler;
use axum::http::{Request, Response, StatusCode};
use axum::routing::{post, Route};
use axum::Router;
use bytes::Bytes;
use tokio::time::Instant;
use tower::{service_fn, ServiceBuilder, ServiceExt};
use tower_twilio_signature::dedupe::{
    Claim, ClaimId, Dedupe, DedupeBody, DedupeLayer, MemoryStore, ResponseFuture, Store,
    StoreError, StoreFailure, StoreFuture, StoredResponse, Waited,
};
use tower_twilio_signature::{TwilioSignatureLayer, UrlSource, VerifiedBody, VerifiedWebhook};

use crate::dedupe_support::{app_with, body_of, deliver, delivery, send, Runs, BASE, TOKEN};

fn memory_app() -> (axum::Router, Runs) {
    app_with(MemoryStore::new(), |layer| layer)
}

#[tokio::test]
async fn a_retry_gets_the_stored_answer_and_the_handler_runs_once() {
    let (app, runs) = memory_app();
    let first = deliver(&app, "/ok", "RE1").await;
    assert_eq!(first.status, StatusCode::OK);
    assert!(!first.replayed());
    assert_eq!(first.body, "<Response><Message>run 1</Message></Response>");
    assert_eq!(first.headers["set-cookie"], "run=1");

    for _ in 0..3 {
        let retry = deliver(&app, "/ok", "RE1").await;
        assert_eq!(retry.status, StatusCode::OK);
        assert!(retry.replayed());
        assert_eq!(retry.body, first.body);
        assert_eq!(retry.headers["content-type"], "text/xml");
        assert_eq!(
            retry.headers["content-length"],
            first.body.len().to_string()
        );
        // Not one of the headers that are kept.
        assert!(retry.headers.get("set-cookie").is_none());
    }
    assert_eq!(runs.get(), 1);
}

#[tokio::test]
async fn other_statuses_are_replayed_as_they_were() {
    let (app, runs) = memory_app();
    let first = deliver(&app, "/created", "RE1").await;
    let retry = deliver(&app, "/created", "RE1").await;
    assert_eq!(
        (first.status, retry.status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert_eq!(
        (first.body.as_str(), retry.body.as_str()),
        ("run 1", "run 1")
    );
    assert!(retry.replayed());
    assert_eq!(runs.get(), 1);
}

#[tokio::test]
async fn each_token_and_each_url_is_its_own_event() {
    let (app, runs) = memory_app();
    assert_eq!(deliver(&app, "/ok", "RE1").await.body, body_run(1));
    assert_eq!(deliver(&app, "/ok", "RE2").await.body, body_run(2));
    // The same token at another URL: a fallback URL, say.
    assert_eq!(deliver(&app, "/created", "RE1").await.body, "run 3");
    assert_eq!(deliver(&app, "/ok", "RE1").await.body, body_run(1));
    assert_eq!(runs.get(), 3);
}

fn body_run(run: usize) -> String {
    format!("<Response><Message>run {run}</Message></Response>")
}

#[tokio::test]
async fn without_a_token_every_delivery_runs() {
    let (app, _runs) = memory_app();
    for run in 1..=3 {
        let reply = send(&app, delivery("/ok", &[], None)).await;
        assert_eq!(reply.body, body_run(run));
        assert!(!reply.replayed());
    }
    // An empty token is no token.
    let reply = send(&app, delivery("/ok", &[], Some(""))).await;
    assert_eq!(reply.body, body_run(4));
}

#[tokio::test]
async fn without_the_signature_layer_requests_pass_straight_through() {
    // The dedupe layer alone never sees a `VerifiedWebhook`, so it keeps nothing.
    let runs = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route(
            "/ok",
            post({
                let runs = Arc::clone(&runs);
                move || async move { runs.fetch_add(1, Ordering::SeqCst).to_string() }
            }),
        )
        .layer(DedupeLayer::new());
    for expected in ["0", "1"] {
        let reply = send(&app, delivery("/ok", &[], Some("RE1"))).await;
        assert_eq!(reply.body, expected);
        assert!(!reply.replayed());
    }
}

#[tokio::test]
async fn a_forged_delivery_neither_claims_nor_reads_an_answer() {
    let (app, runs) = memory_app();
    let forged = |token: &str| {
        let mut request = delivery("/ok", &[], Some(token));
        request.headers_mut().insert(
            "x-twilio-signature",
            "bm90IGEgcmVhbCBzaWduYXR1cmU=".parse().unwrap(),
        );
        request
    };
    // A forgery does not hold the token: the genuine delivery runs.
    assert_eq!(
        send(&app, forged("RE1")).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(deliver(&app, "/ok", "RE1").await.body, body_run(1));
    // And it does not get the stored answer.
    let reply = send(&app, forged("RE1")).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.body.is_empty());
    assert_eq!(runs.get(), 1);
}

#[tokio::test]
async fn a_genuine_request_sent_with_another_events_token_is_its_own_event() {
    // Twilio does not sign the token: whoever holds a captured request (B) can send it
    // with the token of another event (A). Both are genuinely signed, differently.
    let (app, runs) = memory_app();
    let a = || delivery("/ok", &[("Body", "event A")], Some("T1"));
    let b = || delivery("/ok", &[("Body", "event B")], Some("T1"));
    let first = send(&app, a()).await;
    assert!(!first.replayed());
    assert_eq!(first.body, body_run(1));

    // B does not read A's answer: its handler runs.
    let resent = send(&app, b()).await;
    assert_eq!(resent.status, StatusCode::OK);
    assert!(!resent.replayed());
    assert_eq!(resent.body, body_run(2));

    // Twilio's real retry of A is still replayed, with A's answer.
    let retry = send(&app, a()).await;
    assert_eq!((retry.replayed(), retry.body), (true, body_run(1)));
    assert_eq!(runs.get(), 2);

    // Sent first, B does not pre-empt a token: the genuine delivery still runs.
    let (app, runs) = memory_app();
    let early = send(&app, delivery("/ok", &[("Body", "event B")], Some("T2"))).await;
    assert_eq!(early.body, body_run(1));
    let genuine = send(&app, delivery("/ok", &[("Body", "event A")], Some("T2"))).await;
    assert_eq!((genuine.replayed(), genuine.body), (false, body_run(2)));
    assert_eq!(runs.get(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_run_the_handler_once() {
    let (app, runs) = memory_app();
    let tasks: Vec<_> = (0..24)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                send(&app, delivery("/slow", &[("ms", "200")], Some("RE1"))).await
            })
        })
        .collect();
    let mut replayed = 0;
    for task in tasks {
        let reply = task.await.unwrap();
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body, body_run(1));
        replayed += usize::from(reply.replayed());
    }
    assert_eq!(runs.get(), 1);
    assert_eq!(replayed, 23);
}

#[tokio::test]
async fn a_delivery_that_waits_too_long_gets_409_then_the_answer() {
    let (app, runs) = app_with(MemoryStore::new(), |layer| {
        layer.with_wait(Duration::from_millis(100))
    });
    let first = tokio::spawn({
        let app = app.clone();
        async move { send(&app, delivery("/slow", &[("ms", "1500")], Some("RE1"))).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let busy = send(&app, delivery("/slow", &[("ms", "1500")], Some("RE1"))).await;
    assert_eq!(busy.status, StatusCode::CONFLICT);
    assert!(!busy.replayed());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(100) && waited < Duration::from_secs(1),
        "waited {waited:?}"
    );
    let first = first.await.unwrap();
    assert_eq!(first.body, body_run(1));
    let later = send(&app, delivery("/slow", &[("ms", "1500")], Some("RE1"))).await;
    assert!(later.replayed());
    assert_eq!(later.body, body_run(1));
    assert_eq!(runs.get(), 1);
}

#[tokio::test]
async fn a_server_error_is_not_stored_and_the_retry_runs() {
    let (app, runs) = memory_app();
    let first = deliver(&app, "/flaky", "RE1").await;
    assert_eq!(first.status, StatusCode::INTERNAL_SERVER_ERROR);
    let retry = deliver(&app, "/flaky", "RE1").await;
    assert_eq!((retry.status, retry.replayed()), (StatusCode::OK, false));
    assert_eq!(retry.body, body_run(2));
    let third = deliver(&app, "/flaky", "RE1").await;
    assert_eq!((third.replayed(), third.body), (true, body_run(2)));
    assert_eq!(runs.get(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_delivery_runs_the_handler_when_the_first_fails() {
    // The first delivery fails after 300 ms; the one waiting for it then runs.
    let runs = Arc::new(AtomicUsize::new(0));
    let handler = {
        let runs = Arc::clone(&runs);
        move || async move {
            let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
            if run == 1 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                (StatusCode::SERVICE_UNAVAILABLE, format!("run {run}"))
            } else {
                (StatusCode::OK, format!("run {run}"))
            }
        }
    };
    let app = Router::new()
        .route("/ok", post(handler))
        .layer(DedupeLayer::new())
        .layer(
            TwilioSignatureLayer::new(TOKEN)
                .unwrap()
                .url_source(UrlSource::base_url(BASE).unwrap()),
        );
    let first = tokio::spawn({
        let app = app.clone();
        async move { deliver(&app, "/ok", "RE1").await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = deliver(&app, "/ok", "RE1").await;
    assert_eq!(
        (second.status, second.body.as_str()),
        (StatusCode::OK, "run 2")
    );
    assert!(!second.replayed());
    assert_eq!(first.await.unwrap().status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn answers_expire_after_their_ttl() {
    let (app, runs) = app_with(MemoryStore::new(), |layer| {
        layer.with_ttl(Duration::from_millis(500))
    });
    assert_eq!(deliver(&app, "/ok", "RE1").await.body, body_run(1));
    assert!(deliver(&app, "/ok", "RE1").await.replayed());
    tokio::time::sleep(Duration::from_millis(700)).await;
    let after = deliver(&app, "/ok", "RE1").await;
    assert_eq!((after.replayed(), after.body), (false, body_run(2)));
    assert_eq!(runs.get(), 2);
}

#[tokio::test]
async fn the_longest_durations_do_not_overflow() {
    let (app, runs) = app_with(MemoryStore::new(), |layer| {
        layer
            .with_wait(Duration::MAX)
            .with_claim_ttl(Duration::MAX)
            .with_ttl(Duration::MAX)
    });
    let slow = || delivery("/slow", &[("ms", "200")], Some("RE1"));
    let first = tokio::spawn({
        let app = app.clone();
        async move { send(&app, slow()).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Waits for the first, which still runs.
    let waited = send(&app, slow()).await;
    let first = first.await.unwrap();
    assert_eq!((first.status, first.replayed()), (StatusCode::OK, false));
    assert_eq!((waited.replayed(), &waited.body), (true, &first.body));
    let retry = send(&app, slow()).await;
    assert_eq!((retry.replayed(), retry.body), (true, first.body));
    assert_eq!(runs.get(), 1);
}

#[tokio::test]
async fn an_answer_over_the_size_limit_goes_through_whole_and_is_not_stored() {
    let (app, runs) = app_with(MemoryStore::new(), |layer| layer.with_body_limit(1_000));
    for path in ["/big", "/stream"] {
        let before = runs.get();
        for run in 1..=2 {
            let reply = send(&app, delivery(path, &[("len", "1001")], Some(path))).await;
            assert_eq!(reply.status, StatusCode::OK);
            assert_eq!(reply.body, body_of(before + run, 1001), "{path}");
            assert!(!reply.replayed(), "{path}");
        }
        // At the limit exactly, the answer is stored.
        let token = format!("{path}-at-limit");
        let first = send(&app, delivery(path, &[("len", "1000")], Some(&token))).await;
        let retry = send(&app, delivery(path, &[("len", "1000")], Some(&token))).await;
        assert_eq!(first.body, body_of(before + 3, 1000), "{path}");
        assert_eq!((retry.replayed(), retry.body), (true, first.body), "{path}");
        assert_eq!(runs.get(), before + 3, "{path}");
    }
}

#[tokio::test]
async fn the_memory_store_keeps_at_most_its_bounds() {
    // Two answers at most: the oldest goes first.
    let (app, runs) = app_with(MemoryStore::new().with_max_entries(2), |layer| layer);
    for token in ["RE1", "RE2", "RE3"] {
        deliver(&app, "/ok", token).await;
    }
    assert!(deliver(&app, "/ok", "RE3").await.replayed());
    assert!(deliver(&app, "/ok", "RE2").await.replayed());
    assert!(!deliver(&app, "/ok", "RE1").await.replayed());
    assert_eq!(runs.get(), 4);

    // Room for two 1,000-byte bodies but not three.
    let store = MemoryStore::new().with_max_bytes(2_500);
    let (app, runs) = app_with(store.clone(), |layer| layer);
    for token in ["RE1", "RE2", "RE3"] {
        send(&app, delivery("/big", &[("len", "1000")], Some(token))).await;
    }
    assert_eq!(store.len(), 2);
    assert!(store.bytes() <= 2_500, "{} bytes", store.bytes());
    let again = send(&app, delivery("/big", &[("len", "1000")], Some("RE1"))).await;
    assert!(!again.replayed());
    assert_eq!(runs.get(), 4);
}

#[tokio::test]
async fn a_cancelled_delivery_releases_its_claim() {
    let (app, runs) = memory_app();
    let cancelled = tokio::time::timeout(
        Duration::from_millis(100),
        send(&app, delivery("/slow", &[("ms", "5000")], Some("RE1"))),
    )
    .await;
    assert!(cancelled.is_err());
    let started = Instant::now();
    let retry = send(&app, delivery("/slow", &[("ms", "0")], Some("RE1"))).await;
    assert_eq!((retry.status, retry.replayed()), (StatusCode::OK, false));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(runs.get(), 2);
}

/// A store that always fails, as one does when its server is down.
#[derive(Clone, Default)]
struct Broken(Arc<AtomicUsize>);

impl Broken {
    fn fail<T: Send + 'static>(&self) -> StoreFuture<T> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Err(StoreError::new("connection refused")) })
    }
}

impl Store for Broken {
    fn claim(&self, _: &str, _: ClaimId, _: Duration) -> StoreFuture<Claim> {
        self.fail()
    }
    fn wait(&self, _: &str, _: Duration) -> StoreFuture<Waited> {
        self.fail()
    }
    fn complete(&self, _: &str, _: ClaimId, _: StoredResponse, _: Duration) -> StoreFuture<()> {
        self.fail()
    }
    fn release(&self, _: &str, _: ClaimId) -> StoreFuture<()> {
        self.fail()
    }
}

#[tokio::test]
async fn a_failing_store_fails_open_by_default_or_closed_when_asked() {
    let broken = Broken::default();
    let (app, runs) = app_with(broken.clone(), |layer| layer);
    for run in 1..=2 {
        let reply = deliver(&app, "/ok", "RE1").await;
        assert_eq!((reply.status, reply.body), (StatusCode::OK, body_run(run)));
    }
    assert_eq!(runs.get(), 2);
    assert_eq!(broken.0.load(Ordering::SeqCst), 2, "one claim per delivery");

    let (app, runs) = app_with(Broken::default(), |layer| {
        layer.with_store_failure(StoreFailure::Closed)
    });
    let reply = deliver(&app, "/ok", "RE1").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(runs.get(), 0);
}

#[tokio::test]
async fn a_shared_store_serves_several_layers() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (one, runs_one) = app_with(Arc::clone(&store), |layer| layer);
    let (two, runs_two) = app_with(store, |layer| layer);
    deliver(&one, "/ok", "RE1").await;
    let retry = deliver(&two, "/ok", "RE1").await;
    assert!(retry.replayed());
    assert_eq!((runs_one.get(), runs_two.get()), (1, 0));
}

#[tokio::test]
async fn plain_tower_services_work_inside_the_signature_layer() {
    let runs = Arc::new(AtomicUsize::new(0));
    let service = ServiceBuilder::new()
        .layer(
            TwilioSignatureLayer::new(TOKEN)
                .unwrap()
                .url_source(UrlSource::base_url(BASE).unwrap()),
        )
        .layer(DedupeLayer::new())
        .service(service_fn({
            let runs = Arc::clone(&runs);
            move |request: Request<VerifiedBody>| {
                let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
                let token = request
                    .extensions()
                    .get::<VerifiedWebhook>()
                    .and_then(|w| w.idempotency_token().map(str::to_owned));
                async move {
                    Ok::<_, Infallible>(Response::new(http_body_util::Full::new(Bytes::from(
                        format!("run {run} {token:?}"),
                    ))))
                }
            }
        }));
    for _ in 0..2 {
        let response = service
            .clone()
            .oneshot(delivery("/ok", &[], Some("RE1")))
            .await
            .unwrap();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap();
        assert_eq!(body.to_bytes(), "run 1 Some(\"RE1\")");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[test]
fn the_types_fit_axum() {
    fn assert_send<T: Send>() {}
    fn assert_sync<T: Sync>() {}
    fn assert_clone<T: Clone>() {}
    assert_send::<DedupeLayer>();
    assert_sync::<DedupeLayer>();
    assert_send::<Dedupe<Route>>();
    assert_sync::<Dedupe<Route>>();
    assert_clone::<Dedupe<Route>>();
    assert_send::<ResponseFuture<Route, Body, Body>>();
    assert_send::<DedupeBody<Body>>();

    // Every attach point: the router, a route, a handler.
    let _: Router = Router::new()
        .route("/a", post(|| async { "a" }).layer(DedupeLayer::new()))
        .route("/b", post((|| async { "b" }).layer(DedupeLayer::new())))
        .route_layer(DedupeLayer::new())
        .layer(DedupeLayer::new());
}

#[test]
fn debug_shows_the_settings() {
    let layer = DedupeLayer::new().with_wait(Duration::from_secs(2));
    let debug = format!("{layer:?}");
    assert!(debug.contains("MemoryStore"), "{debug}");
    assert!(debug.contains("wait: 2s"), "{debug}");
}
