//! Times `Verifier::verify_form` on a webhook fixture, valid and with a wrong signature,
//! and prints one JSON line with nanoseconds per call: the crate's side of
//! `bench/compare`, which runs the same fixture through twilio-node and twilio-python.
//!
//! ```text
//! cargo run --release -p tower-twilio-signature-bench --bin compare_verify -- tests/fixtures/sms-webhook.json
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use tower_twilio_signature::Verifier;
use tower_twilio_signature_bench::Fixture;

/// A well-formed signature (base64 of 20 bytes) that matches no candidate URL.
const WRONG_SIGNATURE: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/// The fastest of several rounds, in nanoseconds per call, each round lasting about
/// `round` and the first discarded as warm-up.
fn ns_per_call(round: Duration, mut f: impl FnMut()) -> f64 {
    // Size a round from a short calibration run.
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < Duration::from_millis(50) {
        f();
        calls += 1;
    }
    let per_round = (calls as f64 * round.as_secs_f64() / start.elapsed().as_secs_f64()) as u64;
    let per_round = per_round.max(1);
    let mut best = f64::INFINITY;
    for i in 0..6 {
        let start = Instant::now();
        for _ in 0..per_round {
            f();
        }
        let ns = start.elapsed().as_nanos() as f64 / per_round as f64;
        if i > 0 {
            best = best.min(ns);
        }
    }
    best
}

fn main() {
    let f = match std::env::args().nth(1) {
        Some(path) => Fixture::load(&path),
        None => Fixture::sms(),
    };
    let verifier = Verifier::new(&f.token).expect("token");
    let pairs = f.pairs();
    assert!(
        verifier
            .verify_form(&f.url, &pairs, &f.signature, None)
            .is_ok(),
        "the fixture's signature does not verify"
    );
    assert!(verifier
        .verify_form(&f.url, &pairs, WRONG_SIGNATURE, None)
        .is_err());

    let round = Duration::from_millis(300);
    let valid = ns_per_call(round, || {
        black_box(verifier.verify_form(
            black_box(&f.url),
            black_box(&pairs),
            black_box(&f.signature),
            None,
        ))
        .ok();
    });
    let invalid = ns_per_call(round, || {
        black_box(verifier.verify_form(
            black_box(&f.url),
            black_box(&pairs),
            black_box(WRONG_SIGNATURE),
            None,
        ))
        .ok();
    });
    println!(
        "{{\"impl\":\"tower-twilio-signature {} (Verifier::verify_form)\",\"valid_ns\":{valid:.1},\"invalid_ns\":{invalid:.1}}}",
        library_version()
    );
}

/// The library's version, from its manifest (this program's own is not published).
fn library_version() -> &'static str {
    include_str!("../../../../Cargo.toml")
        .lines()
        .find_map(|line| line.strip_prefix("version = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or("(unknown version)")
}
