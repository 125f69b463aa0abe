//! Criterion benchmarks of what the dedupe layer adds to a verified request: the typical
//! inbound SMS webhook (`tests/fixtures/sms-webhook.json`) through the signature layer,
//! to a handler that answers a short TwiML reply, with and without the dedupe layer
//! inside, with the in-memory store and with Redis over loopback (a `redis-server` the
//! benchmark starts on a free port and stops at the end).
//!
//! Every request runs on a current-thread Tokio runtime (`block_on`), the same for all
//! cases, since the Redis store needs one. Requests are signed ahead of each timed
//! batch; `first` gives every request a new idempotency token (claim, run, store),
//! `replay` repeats one (the stored answer, the handler not called), `no_token` sends
//! none (the layer steps aside). Every answer's body is collected the same way.
//!
//! Run with `cargo bench --bench dedupe --features redis` (`redis-server` must be installed;
//! `scripts/test` installs it).

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use criterion::{BatchSize, Criterion};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::util::BoxCloneService;
use tower::{service_fn, ServiceBuilder, ServiceExt};
use tower_twilio_signature::dedupe::{DedupeBody, DedupeLayer, MemoryStore, RedisStore};
use tower_twilio_signature::{sign, TwilioSignatureLayer, UrlSource, VerifiedBody};
use tower_twilio_signature_bench::Fixture;

#[path = "../../../tests/dedupe_support/mod.rs"]
mod dedupe_support;
use dedupe_support::RedisServer;

/// Requests signed ahead of each timed batch of as many.
const BATCH: u64 = 64;

const TWIML: &str = "<Response><Message>Thanks, we got it.</Message></Response>";

type App = BoxCloneService<Request<Full<Bytes>>, Response<Full<Bytes>>, Infallible>;

async fn handler(_: Request<VerifiedBody>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(TWIML.as_bytes())));
    response
        .headers_mut()
        .insert("content-type", "text/xml".parse().unwrap());
    Ok(response)
}

fn signature_layer(f: &Fixture) -> TwilioSignatureLayer {
    let url = http::Uri::try_from(f.url.as_str()).unwrap();
    let base = format!(
        "{}://{}",
        url.scheme_str().unwrap(),
        url.authority().unwrap()
    );
    TwilioSignatureLayer::new(&f.token)
        .unwrap()
        .url_source(UrlSource::base_url(&base).unwrap())
}

fn without_dedupe(f: &Fixture) -> App {
    BoxCloneService::new(
        ServiceBuilder::new()
            .map_response(|response: Response<Full<Bytes>>| {
                response.map(|body| Full::new(collect_now(body)))
            })
            .layer(signature_layer(f))
            .service(service_fn(handler)),
    )
}

fn with_dedupe(f: &Fixture, dedupe: DedupeLayer) -> App {
    BoxCloneService::new(
        ServiceBuilder::new()
            .map_response(|response: Response<DedupeBody<Full<Bytes>>>| {
                response.map(|body| Full::new(collect_now(body)))
            })
            .layer(signature_layer(f))
            .layer(dedupe)
            .service(service_fn(handler)),
    )
}

/// The bytes of a body that is all there: the layer's answers are.
fn collect_now<B: http_body::Body<Data = Bytes> + Unpin>(body: B) -> Bytes
where
    B::Error: std::fmt::Debug,
{
    let mut collect = std::pin::pin!(body.collect());
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::future::Future::poll(collect.as_mut(), &mut cx) {
        std::task::Poll::Ready(collected) => collected.unwrap().to_bytes(),
        std::task::Poll::Pending => panic!("the answer's body was not all there"),
    }
}

/// A signed delivery of the fixture, with `token` as its idempotency token.
fn request(
    f: &Fixture,
    signature: &str,
    body: &Bytes,
    token: Option<String>,
) -> Request<Full<Bytes>> {
    let mut builder = Request::post(f.base_and_path().1)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature);
    if let Some(token) = token {
        builder = builder.header("i-twilio-idempotency-token", token);
    }
    builder.body(Full::new(body.clone())).unwrap()
}

fn bench(c: &mut Criterion) {
    let f = Fixture::sms();
    let signature = sign(&f.token, &f.url, f.pairs());
    let body = f.body();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut server = RedisServer::start();
    let redis = runtime.block_on(async {
        RedisStore::open(&server.url())
            .unwrap()
            .with_key_prefix("bench:")
    });

    let apps: Vec<(&str, App)> = vec![
        ("no_dedupe", without_dedupe(&f)),
        (
            "memory",
            with_dedupe(&f, DedupeLayer::new().with_store(MemoryStore::new())),
        ),
        (
            "redis",
            with_dedupe(&f, DedupeLayer::new().with_store(redis)),
        ),
    ];
    let tokens = AtomicU64::new(0);
    let fresh = || Some(format!("RE{:032x}", tokens.fetch_add(1, Ordering::Relaxed)));

    let mut group = c.benchmark_group("dedupe");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for (name, app) in &apps {
        let call = |request| {
            let response = runtime.block_on(app.clone().oneshot(request)).unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response
        };
        // Check that the case does what it says before timing it.
        let token = fresh();
        let first = call(request(&f, &signature, &body, token.clone()));
        let again = call(request(&f, &signature, &body, token.clone()));
        let replayed = again.headers().contains_key("idempotent-replayed");
        assert_eq!(replayed, *name != "no_dedupe", "{name}");
        assert!(!first.headers().contains_key("idempotent-replayed"));

        let cases: [(&str, &dyn Fn() -> Option<String>); 3] = [
            ("first", &fresh),
            ("replay", &|| token.clone()),
            ("no_token", &|| None),
        ];
        for (case, token) in cases {
            if *name == "no_dedupe" && case != "first" {
                continue;
            }
            let id = if *name == "no_dedupe" {
                (*name).to_owned()
            } else {
                format!("{name}/{case}")
            };
            group.bench_function(id, |b| {
                b.iter_batched(
                    || request(&f, &signature, &body, token()),
                    call,
                    BatchSize::NumIterations(BATCH),
                );
            });
        }
    }
    group.finish();
    drop(apps);
    server.stop();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
