//! Criterion benchmarks of the hot path on a typical inbound SMS webhook
//! (`tests/fixtures/sms-webhook.json`): the framework-free [`Verifier`] and the whole layer
//! through `tower::ServiceExt::oneshot` on a no-op service, beside `verify/hmac_only`, the
//! HMAC of the same signed string alone, and `verify/valid_sms_new_order`, where the
//! parameters come in another order on every call: nothing is kept from one call to the
//! next, so it costs what `valid_sms` does.
//!
//! Run with `cargo bench --bench verify`.

use std::convert::Infallible;
use std::hint::black_box;

use bytes::Bytes;
use criterion::{BatchSize, Criterion};
use hmac::{Hmac, Mac};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use sha1::Sha1;
use tower::{service_fn, Layer, ServiceExt};
use tower_twilio_signature::{sign_body, TwilioSignatureLayer, UrlSource, VerifiedBody, Verifier};
use tower_twilio_signature_bench::{poll_once, request, Fixture};

/// Requests built ahead of each timed batch: few enough to stay in cache, as a request
/// fresh from the HTTP parser would be.
const LAYER_BATCH: u64 = 64;

/// A well-formed signature (base64 of 20 bytes) that matches no candidate.
const WRONG_SIGNATURE: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/// A JSON event body of about 4 KiB.
fn json_body() -> Vec<u8> {
    let mut body = String::from("{\"EventType\":\"onMessageAdded\",\"Messages\":[");
    let mut i = 0;
    while body.len() < 4000 {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            "{{\"Index\":{i},\"Author\":\"+14155550100\",\"Body\":\"Message number {i} of the conversation\"}}"
        ));
        i += 1;
    }
    body.push_str("]}");
    body.into_bytes()
}

fn bench_verify(c: &mut Criterion) {
    let f = Fixture::sms();
    let verifier = Verifier::new(&f.token).unwrap();
    let pairs = f.pairs();
    assert!(verifier
        .verify_form(&f.url, &pairs, &f.signature, None)
        .is_ok());
    assert!(verifier
        .verify_form(&f.url, &pairs, WRONG_SIGNATURE, None)
        .is_err());

    let body = json_body();
    let (json_url, json_sig) = sign_body(&f.token, &f.url, &body);
    assert!(verifier
        .verify_body(&json_url, &body, &json_sig, None)
        .is_ok());

    let mut g = c.benchmark_group("verify");
    // The floor: HMAC-SHA1 of the same signed string, already assembled, with the key
    // state prepared. Everything `valid_sms` takes beyond this is the crate's own work.
    let mut sorted = pairs.clone();
    sorted.sort_unstable();
    let signed: String = sorted.iter().fold(f.url.clone(), |mut s, (k, v)| {
        s.push_str(k);
        s.push_str(v);
        s
    });
    let prepared = Hmac::<Sha1>::new_from_slice(f.token.as_bytes()).unwrap();
    g.bench_function("hmac_only", |b| {
        b.iter(|| {
            let mut mac = prepared.clone();
            mac.update(black_box(signed.as_bytes()));
            mac.finalize().into_bytes()
        });
    });
    g.bench_function("valid_sms", |b| {
        b.iter(|| {
            verifier.verify_form(
                black_box(&f.url),
                black_box(&pairs),
                black_box(&f.signature),
                None,
            )
        });
    });
    // Each call with its parameters in another order than the last call's: the cost does
    // not depend on the order Twilio sends them in.
    let mut reversed = pairs.clone();
    reversed.reverse();
    let orders = [&pairs, &reversed];
    g.bench_function("valid_sms_new_order", |b| {
        let mut calls = 0usize;
        b.iter(|| {
            calls += 1;
            verifier.verify_form(
                black_box(&f.url),
                black_box(orders[calls % 2]),
                black_box(&f.signature),
                None,
            )
        });
    });
    g.bench_function("invalid_sms", |b| {
        b.iter(|| {
            verifier.verify_form(
                black_box(&f.url),
                black_box(&pairs),
                black_box(WRONG_SIGNATURE),
                None,
            )
        });
    });
    g.bench_function("json_4k", |b| {
        b.iter(|| {
            verifier.verify_body(
                black_box(&json_url),
                black_box(&body),
                black_box(&json_sig),
                None,
            )
        });
    });
    g.finish();

    // A GET whose query holds 60 KiB of distinct keys, with a wrong signature, so every
    // candidate is tried: with the extra URL forms off and on. The extra forms must cost a
    // small multiple of the ordinary ones, not grow with the square of the query.
    let query: String = (0..6000).map(|i| format!("k{i:05}=v&")).collect();
    let long_url = format!("{}?{}", f.url, query.trim_end_matches('&'));
    let extra = verifier.clone().extra_url_forms(true);
    // And 60 KiB in a few long values, which the extra forms do re-encode.
    let long_values: String = (0..10)
        .map(|i| format!("k{i}={}&", "v".repeat(6000)))
        .collect();
    let long_values_url = format!("{}?{}", f.url, long_values.trim_end_matches('&'));
    let mut g = c.benchmark_group("extra_forms");
    for (name, v, long_url) in [
        ("off_60k_query", &verifier, &long_url),
        ("on_60k_query", &extra, &long_url),
        ("off_60k_values", &verifier, &long_values_url),
        ("on_60k_values", &extra, &long_values_url),
    ] {
        assert!(v
            .verify_form(long_url, [] as [(&str, &str); 0], WRONG_SIGNATURE, None)
            .is_err());
        g.bench_function(name, |b| {
            b.iter(|| {
                v.verify_form(
                    black_box(long_url),
                    [] as [(&str, &str); 0],
                    black_box(WRONG_SIGNATURE),
                    None,
                )
            });
        });
    }
    g.finish();
}

fn bench_layer(c: &mut Criterion) {
    let f = Fixture::sms();
    let (base, path) = f.base_and_path();
    let layer = TwilioSignatureLayer::new(&f.token)
        .unwrap()
        .url_source(UrlSource::base_url(base).unwrap());
    let service = layer.layer(service_fn(|_req: Request<VerifiedBody>| async {
        Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
    }));
    let body = f.body();
    let signed = |signature: &str| request(path, &body, signature);
    let run = |req| poll_once(service.clone().oneshot(req)).unwrap();
    assert_eq!(run(signed(&f.signature)).status(), StatusCode::OK);
    assert_eq!(run(signed(WRONG_SIGNATURE)).status(), StatusCode::FORBIDDEN);

    let mut g = c.benchmark_group("layer");
    g.bench_function("valid_sms", |b| {
        b.iter_batched(
            || signed(&f.signature),
            &run,
            BatchSize::NumIterations(LAYER_BATCH),
        );
    });
    g.bench_function("rejected_sms", |b| {
        b.iter_batched(
            || signed(WRONG_SIGNATURE),
            &run,
            BatchSize::NumIterations(LAYER_BATCH),
        );
    });
    // The same request and harness with no layer: what `oneshot`, polling and dropping
    // the request cost by themselves.
    let bare = service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
    });
    let run_bare = |req| poll_once(bare.oneshot(req)).unwrap();
    g.bench_function("no_layer", |b| {
        b.iter_batched(
            || signed(&f.signature),
            &run_bare,
            BatchSize::NumIterations(LAYER_BATCH),
        );
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_verify(&mut c);
    bench_layer(&mut c);
    c.final_summary();
}
