//! The layer's time against `Verifier::verify_form` on the SMS fixture, measured
//! alternately in one process: the same two paths as the criterion benchmarks
//! `layer/valid_sms` and `verify/valid_sms`, but in short rounds taken in turn, so that a
//! change in the machine's speed (other tenants of a shared host) hits both sides of the
//! ratio alike rather than whichever benchmark ran during it.
//!
//! ```text
//! cargo run --release -p tower-twilio-signature-bench --bin layer_ratio -- [ROUNDS]
//! ```
//!
//! Each round times one batch of 64 `verify_form` calls, then 64 requests through the layer
//! (built before the batch, outside the timing, as criterion's `iter_batched` does), each
//! polled once on a no-op service. Prints the fastest and the median round of each side in
//! nanoseconds per call, the ratio of the fastest rounds and the median of the rounds' own
//! ratios.

use std::convert::Infallible;
use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tower::{service_fn, Layer, ServiceExt};
use tower_twilio_signature::{TwilioSignatureLayer, UrlSource, VerifiedBody, Verifier};
use tower_twilio_signature_bench::{poll_once, request, Fixture};

/// Calls per timed batch, on each side.
const BATCH: usize = 64;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("ROUNDS is a number"))
        .unwrap_or(20_000);
    let f = Fixture::sms();
    let verifier = Verifier::new(&f.token).expect("token");
    let pairs = f.pairs();
    let (base, path) = f.base_and_path();
    let service = TwilioSignatureLayer::new(&f.token)
        .expect("token")
        .url_source(UrlSource::base_url(base).expect("base URL"))
        .layer(service_fn(|_req: Request<VerifiedBody>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        }));
    let body = f.body();
    let valid = || request(path, &body, &f.signature);
    let run = |req| poll_once(service.clone().oneshot(req)).expect("infallible");
    assert_eq!(run(valid()).status(), StatusCode::OK);
    assert!(verifier
        .verify_form(&f.url, &pairs, &f.signature, None)
        .is_ok());

    let mut verify_ns = Vec::with_capacity(rounds);
    let mut layer_ns = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        for _ in 0..BATCH {
            let verified = verifier.verify_form(
                black_box(&f.url),
                black_box(&pairs),
                black_box(&f.signature),
                None,
            );
            black_box(verified.is_ok());
        }
        verify_ns.push(start.elapsed().as_nanos() as f64 / BATCH as f64);

        let requests: Vec<_> = (0..BATCH).map(|_| valid()).collect();
        let start = Instant::now();
        let responses: Vec<_> = requests.into_iter().map(run).collect();
        layer_ns.push(start.elapsed().as_nanos() as f64 / BATCH as f64);
        assert!(responses.iter().all(|r| r.status() == StatusCode::OK));
    }

    let mut ratios: Vec<f64> = layer_ns
        .iter()
        .zip(&verify_ns)
        .map(|(layer, verify)| layer / verify)
        .collect();
    let (verify_min, layer_min) = (
        verify_ns.iter().copied().fold(f64::INFINITY, f64::min),
        layer_ns.iter().copied().fold(f64::INFINITY, f64::min),
    );
    println!(
        "rounds {rounds} of {BATCH} calls each side\n\
         verify_form  fastest {verify_min:8.0} ns  median {:8.0} ns\n\
         layer        fastest {layer_min:8.0} ns  median {:8.0} ns\n\
         layer / verify: fastest rounds {:.2}, median of the rounds' ratios {:.2}",
        median(&mut verify_ns),
        median(&mut layer_ns),
        layer_min / verify_min,
        median(&mut ratios),
    );
}
