//! Runs one hot path a fixed number of times, for instruction counts under
//! `valgrind --tool=callgrind`: counts do not move with the machine's load, so two builds
//! compare exactly. `bench/instructions` runs it twice and prints instructions per call.
//!
//! ```text
//! cargo run --release --example instructions -- verify|layer <calls>
//! ```

use std::convert::Infallible;
use std::hint::black_box;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use serde::Deserialize;
use tower::{service_fn, Layer, ServiceExt};
use tower_twilio_signature::{TwilioSignatureLayer, VerifiedBody, Verifier};

#[derive(Deserialize)]
struct Fixture {
    token: String,
    url: String,
    form: Vec<(String, String)>,
    signature: String,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_default();
    let calls: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/sms-webhook.json"
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
        "layer" => {
            let after_scheme = f.url.find("://").unwrap() + 3;
            let split = after_scheme + f.url[after_scheme..].find('/').unwrap();
            let (base, path) = f.url.split_at(split);
            let service = TwilioSignatureLayer::new(&f.token)
                .unwrap()
                .public_base_url(base)
                .unwrap()
                .layer(service_fn(|_req: Request<VerifiedBody>| async {
                    Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
                }));
            let body = Bytes::from(
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&f.form)
                    .finish(),
            );
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            for _ in 0..calls {
                let req = Request::post(path)
                    .header("host", "internal:8080")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("content-length", body.len())
                    .header("x-twilio-signature", &f.signature)
                    .body(Full::new(body.clone()))
                    .unwrap();
                let res = rt.block_on(service.clone().oneshot(req)).unwrap();
                assert_eq!(res.status(), StatusCode::OK);
            }
        }
        _ => {
            eprintln!("usage: instructions verify|layer <calls>");
            std::process::exit(2);
        }
    }
}
