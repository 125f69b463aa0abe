//! The dedupe layer with the Redis store, against a real `redis-server` each test starts
//! on a free loopback port (and kills when it ends). Without `redis-server` these tests
//! fail: `scripts/test` installs it.
#![cfg(feature = "redis")]

mod dedupe_support;

use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::Router;
use tokio::time::Instant;
use tower_twilio_signature::dedupe::{
    Claim, ClaimId, DedupeLayer, RedisStore, Store, StoreFailure, StoredResponse, Waited,
};
use tower_twilio_signature::sign_url;

use crate::dedupe_support::{
    app_with, body_of, deliver, delivery, free_port, send, RedisServer, Runs, BASE, TOKEN,
};

fn body_run(run: usize) -> String {
    format!("<Response><Message>run {run}</Message></Response>")
}

/// One replica: its own connection to the shared Redis, its own handler count.
fn replica(
    server: &RedisServer,
    configure: impl FnOnce(DedupeLayer) -> DedupeLayer,
) -> (Router, Runs) {
    let store = RedisStore::open(&server.url())
        .unwrap()
        .with_key_prefix("test:")
        .with_timeout(Duration::from_millis(300));
    app_with(store, configure)
}

/// The keys the layer left in Redis.
fn keys(server: &RedisServer) -> String {
    server.command("KEYS test:*")
}

/// The time to live, in milliseconds, of the key of a delivery of `path` with `token` and
/// no parameters: the token, the URL and the signature, as Twilio sent them.
fn pttl(server: &RedisServer, path: &str, token: &str) -> i64 {
    let url = format!("{BASE}{path}");
    let signature = sign_url(TOKEN, &url);
    server
        .command(&format!(r#"PTTL "test:{token}\n{url}\n{signature}""#))
        .trim_start_matches(':')
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_retry_on_another_replica_is_replayed() {
    let server = RedisServer::start();
    let (one, runs_one) = replica(&server, |layer| layer);
    let (two, runs_two) = replica(&server, |layer| layer);

    let first = deliver(&one, "/ok", "RE1").await;
    assert_eq!((first.status, first.replayed()), (StatusCode::OK, false));
    let retry = deliver(&two, "/ok", "RE1").await;
    assert_eq!(retry.status, StatusCode::OK);
    assert!(retry.replayed());
    assert_eq!(retry.body, first.body);
    assert_eq!(retry.headers["content-type"], "text/xml");
    assert!(retry.headers.get("set-cookie").is_none());
    assert_eq!((runs_one.get(), runs_two.get()), (1, 0));

    // Another event runs wherever it lands.
    assert_eq!(deliver(&two, "/ok", "RE2").await.body, body_run(1));
    assert_eq!((runs_one.get(), runs_two.get()), (1, 1));
    assert!(keys(&server).contains("RE1"), "{}", keys(&server));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_on_two_replicas_run_the_handler_once() {
    let server = RedisServer::start();
    let (one, runs_one) = replica(&server, |layer| layer);
    let (two, runs_two) = replica(&server, |layer| layer);
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let app = if i % 2 == 0 { one.clone() } else { two.clone() };
            tokio::spawn(async move {
                send(&app, delivery("/slow", &[("ms", "300")], Some("RE1"))).await
            })
        })
        .collect();
    let mut replayed = 0;
    let mut bodies = Vec::new();
    for task in tasks {
        let reply = task.await.unwrap();
        assert_eq!(reply.status, StatusCode::OK);
        replayed += usize::from(reply.replayed());
        bodies.push(reply.body);
    }
    assert_eq!(runs_one.get() + runs_two.get(), 1);
    assert_eq!(replayed, 23);
    assert!(bodies.iter().all(|b| *b == body_run(1)), "{bodies:?}");
}

#[tokio::test]
async fn a_waiting_delivery_gets_409_when_the_first_runs_too_long() {
    let server = RedisServer::start();
    let (one, runs_one) = replica(&server, |layer| layer);
    let (two, runs_two) = replica(&server, |layer| layer.with_wait(Duration::from_millis(150)));
    let first = tokio::spawn({
        let one = one.clone();
        async move { send(&one, delivery("/slow", &[("ms", "1500")], Some("RE1"))).await }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let started = Instant::now();
    let busy = send(&two, delivery("/slow", &[("ms", "1500")], Some("RE1"))).await;
    assert_eq!(busy.status, StatusCode::CONFLICT);
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(first.await.unwrap().body, body_run(1));
    let later = send(&two, delivery("/slow", &[("ms", "1500")], Some("RE1"))).await;
    assert!(later.replayed());
    assert_eq!((runs_one.get(), runs_two.get()), (1, 0));
}

#[tokio::test]
async fn a_server_error_is_not_stored() {
    let server = RedisServer::start();
    let (one, runs_one) = replica(&server, |layer| layer);
    let (two, runs_two) = replica(&server, |layer| layer);
    let first = deliver(&one, "/flaky", "RE1").await;
    assert_eq!(first.status, StatusCode::INTERNAL_SERVER_ERROR);
    // The claim is gone: nothing under the key.
    assert!(!keys(&server).contains("RE1"), "{}", keys(&server));
    let retry = deliver(&one, "/flaky", "RE1").await;
    assert_eq!((retry.status, retry.replayed()), (StatusCode::OK, false));
    let third = deliver(&two, "/flaky", "RE1").await;
    assert!(third.replayed());
    assert_eq!(third.body, retry.body);
    assert_eq!((runs_one.get(), runs_two.get()), (2, 0));
}

#[tokio::test]
async fn answers_expire_after_their_ttl() {
    let server = RedisServer::start();
    let (app, runs) = replica(&server, |layer| layer.with_ttl(Duration::from_millis(1000)));
    deliver(&app, "/ok", "RE1").await;
    assert!(deliver(&app, "/ok", "RE1").await.replayed());
    let ttl = pttl(&server, "/ok", "RE1");
    assert!((1..=1000).contains(&ttl), "PTTL {ttl}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let after = deliver(&app, "/ok", "RE1").await;
    assert_eq!((after.replayed(), after.body), (false, body_run(2)));
    assert_eq!(runs.get(), 2);
}

#[tokio::test]
async fn the_longest_durations_do_not_overflow() {
    let server = RedisServer::start();
    let (app, runs) = replica(&server, |layer| {
        layer
            .with_wait(Duration::MAX)
            .with_claim_ttl(Duration::MAX)
            .with_ttl(Duration::MAX)
    });
    let first = deliver(&app, "/ok", "RE1").await;
    assert_eq!((first.status, first.replayed()), (StatusCode::OK, false));
    let retry = deliver(&app, "/ok", "RE1").await;
    assert_eq!((retry.replayed(), retry.body), (true, first.body));
    assert_eq!(runs.get(), 1);
    // Kept for decades rather than refused by Redis.
    let ttl = pttl(&server, "/ok", "RE1");
    assert!(ttl > 10 * 365 * 24 * 60 * 60 * 1000, "PTTL {ttl}");

    // The store called directly, as a store of one's own may be.
    let store = RedisStore::open(&server.url())
        .unwrap()
        .with_poll_interval(Duration::MAX);
    let id = ClaimId::random();
    assert!(matches!(
        store.claim("k", id, Duration::MAX).await.unwrap(),
        Claim::Won
    ));
    let answer = StoredResponse::new(StatusCode::OK, HeaderMap::new(), "kept".into());
    store
        .complete("k", id, answer, Duration::MAX)
        .await
        .unwrap();
    assert!(matches!(
        store.wait("k", Duration::MAX).await.unwrap(),
        Waited::Answered(r) if r.body() == "kept"
    ));
    // Still claimed: the wait ends at its own limit, the poll interval past it.
    let held = ClaimId::random();
    store.claim("held", held, Duration::MAX).await.unwrap();
    assert!(matches!(
        store
            .wait("held", Duration::from_millis(100))
            .await
            .unwrap(),
        Waited::Pending
    ));
}

#[tokio::test]
async fn an_answer_over_the_size_limit_is_not_stored() {
    let server = RedisServer::start();
    let (app, runs) = replica(&server, |layer| layer.with_body_limit(1_000));
    for path in ["/big", "/stream"] {
        let before = runs.get();
        for run in 1..=2 {
            let reply = send(&app, delivery(path, &[("len", "1500")], Some("RE1"))).await;
            assert_eq!(reply.body, body_of(before + run, 1500), "{path}");
            assert!(!reply.replayed());
        }
        assert!(!keys(&server).contains("RE1"), "{}", keys(&server));
        let first = send(&app, delivery(path, &[("len", "999")], Some("RE2"))).await;
        let retry = send(&app, delivery(path, &[("len", "999")], Some("RE2"))).await;
        assert_eq!((retry.replayed(), retry.body), (true, first.body));
        assert_eq!(runs.get(), before + 3);
        server.command("FLUSHALL");
    }
}

#[tokio::test]
async fn redis_stopped_mid_test_fails_open_without_hanging() {
    let mut server = RedisServer::start();
    let (app, runs) = replica(&server, |layer| layer);
    let (closed, closed_runs) = replica(&server, |layer| {
        layer.with_store_failure(StoreFailure::Closed)
    });
    deliver(&app, "/ok", "RE1").await;
    assert!(deliver(&app, "/ok", "RE1").await.replayed());
    assert_eq!(deliver(&closed, "/ok", "RE2").await.body, body_run(1));

    server.stop();
    for (token, run) in [("RE1", 2), ("RE3", 3), ("RE3", 4)] {
        let started = Instant::now();
        let reply = deliver(&app, "/ok", token).await;
        assert_eq!((reply.status, reply.replayed()), (StatusCode::OK, false));
        assert_eq!(reply.body, body_run(run));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    assert_eq!(runs.get(), 4);

    let started = Instant::now();
    let refused = deliver(&closed, "/ok", "RE4").await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(closed_runs.get(), 1);
}

#[tokio::test]
async fn redis_down_from_the_start_fails_open() {
    // Nothing listens there: the store is built all the same, and connects on first use.
    let store = RedisStore::open(&format!("redis://127.0.0.1:{}/", free_port()))
        .unwrap()
        .with_timeout(Duration::from_millis(200));
    let (app, runs) = app_with(store, |layer| layer);
    let started = Instant::now();
    for run in 1..=2 {
        assert_eq!(deliver(&app, "/ok", "RE1").await.body, body_run(run));
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(runs.get(), 2);
}

#[tokio::test]
async fn a_server_that_never_answers_is_cut_off_by_the_timeout() {
    // A listener that accepts and never replies: every call times out.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let store = RedisStore::open(&format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .with_timeout(Duration::from_millis(200));
    let (app, runs) = app_with(store, |layer| layer);
    let started = Instant::now();
    assert_eq!(deliver(&app, "/ok", "RE1").await.body, body_run(1));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert_eq!(runs.get(), 1);
    held.abort();
}
