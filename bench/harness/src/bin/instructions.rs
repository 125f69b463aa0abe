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
use tower::{service_fn, Layer, ServiceExt};
use tower_twilio_signature::{TwilioSignatureLayer, UrlSource, VerifiedBody, Verifier};
use tower_twilio_signature_bench::{poll_once, request, Fixture};

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
    let f = Fixture::sms();
    match what.as_str() {
        "verify" => {
            let verifier = Verifier::new(&f.token).unwrap();
            let pairs = f.pairs();
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
            let (base, path) = f.base_and_path();
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
            let body = f.body();
            for _ in 0..calls {
                if cold {
                    x = evict_code(x);
                    evict_data(&mut junk);
                }
                let req = request(path, &body, &f.signature);
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
