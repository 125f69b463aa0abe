//! Runs one hot path a fixed number of times, for instruction counts under
//! `valgrind --tool=callgrind`: counts do not move with the machine's load, so two builds
//! compare exactly. `bench/instructions` runs it twice and prints instructions per call.
//!
//! ```text
//! cargo run --release -p tower-twilio-signature-bench --bin instructions -- verify|layer|layer-cold|harness-cold <calls>
//! ```
//!
//! `layer-cold` runs the layer as `layer` does, but before each request runs 80 KiB of
//! straight-line code and writes 64 KiB of data, more than a core's L1 caches hold, as a
//! server does between two requests (hyper, tokio, the handler, the kernel): each request
//! then starts with none of the layer's code or data in L1. `harness-cold` does the same
//! without the layer; the difference is what the layer costs a cold L1, in a form
//! callgrind's cache simulation counts the same every time.

use std::convert::Infallible;
use std::hint::black_box;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use serde::Deserialize;
use tower::{service_fn, Layer, ServiceExt};
use tower_twilio_signature::{TwilioSignatureLayer, UrlSource, VerifiedBody, Verifier};

#[path = "../../benches/support/poll_once.rs"]
mod poll_once;
use poll_once::poll_once;

#[derive(Deserialize)]
struct Fixture {
    token: String,
    url: String,
    form: Vec<(String, String)>,
    signature: String,
}

/// Repeats its input four times.
macro_rules! four {
    ($($t:tt)*) => { { $($t)* } { $($t)* } { $($t)* } { $($t)* } };
}

/// 4,096 copies of a few instructions that cannot be merged into a loop: about 80 KiB of
/// code, run once from start to end.
#[inline(never)]
fn evict_code(mut x: u64) -> u64 {
    four! { four! { four! { four! { four! { four! {
        x = black_box(x).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(7);
    } } } } } }
    x
}

/// Writes a byte in each 64-byte line of `buf`.
#[inline(never)]
fn evict_data(buf: &mut [u8]) {
    for line in buf.chunks_mut(64) {
        line[0] = line[0].wrapping_add(1);
    }
    black_box(buf);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_default();
    let calls: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/sms-webhook.json"
    );
    let f: Fixture = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    match what.as_str() {
        "verify" => {
            let verifier = Verifier::new(&f.token).unwrap();
            let pairs: Vec<(&str, &str)> = f
                .form
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            for _ in 0..calls {
                let ok = verifier.verify_form(
                    black_box(&f.url),
                    black_box(&pairs),
                    black_box(&f.signature),
                    None,
                );
                assert!(ok.is_ok());
            }
        }
        "layer" | "layer-cold" | "harness-cold" => {
            let cold = what != "layer";
            let bare = what == "harness-cold";
            let after_scheme = f.url.find("://").unwrap() + 3;
            let split = after_scheme + f.url[after_scheme..].find('/').unwrap();
            let (base, path) = f.url.split_at(split);
            let service = TwilioSignatureLayer::new(&f.token)
                .unwrap()
                .url_source(UrlSource::base_url(base).unwrap())
                .layer(service_fn(|_req: Request<VerifiedBody>| async {
                    Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
                }));
            let harness = service_fn(|_req: Request<Full<Bytes>>| async {
                Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
            });
            let mut junk = vec![0u8; 64 * 1024];
            let mut x = 1;
            let body = Bytes::from(
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&f.form)
                    .finish(),
            );
            for _ in 0..calls {
                if cold {
                    x = evict_code(x);
                    evict_data(&mut junk);
                }
                let req = Request::post(path)
                    .header("host", "internal:8080")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("content-length", body.len())
                    .header("x-twilio-signature", &f.signature)
                    .body(Full::new(body.clone()))
                    .unwrap();
                let res = if bare {
                    poll_once(harness.oneshot(req)).unwrap()
                } else {
                    poll_once(service.clone().oneshot(req)).unwrap()
                };
                assert_eq!(res.status(), StatusCode::OK);
            }
            black_box(x);
        }
        _ => {
            eprintln!("usage: instructions verify|layer|layer-cold|harness-cold <calls>");
            std::process::exit(2);
        }
    }
}
