//! Soak test of `TwilioSignatureLayer` on the Frontline example, over loopback.
//!
//! ```text
//! soak serve [BODY_LIMIT]        # the Frontline app plus a digest route, on 127.0.0.1
//! soak drive URL PID [--requests N] [--seconds S] [--clients C] [--seed X] [--body-limit B]
//!                    [--skip-recording]
//! ```
//!
//! `serve` starts the Frontline app (built by its `app` module) with one extra route,
//! `POST /soak/digest`, behind the same layer, which answers the SHA-256 hex of the body
//! its handler received. It prints `listening http://127.0.0.1:P`, logs warnings and errors
//! to stderr, and on SIGTERM stops gracefully and prints
//! `stopped callbacks_handled=N updates=M`.
//!
//! `drive` sends the server at URL (process PID) a mix of requests from C concurrent
//! clients (64), until N requests (500,000) are sent or S seconds (90) have passed, checks
//! every answer, samples the server's memory, and prints a summary. The body limit B
//! (65,536 bytes) must be the server's. `--skip-recording` leaves out the callbacks that
//! make the app record a Conversations update (it keeps the latest 1,000 in memory).
//! `bench/soak` runs both.
//! Exit code 0 when every check passed.

// The app's accessors the Frontline binary does not use either.
#[allow(dead_code)]
#[path = "../../../../../examples/frontline/app/mod.rs"]
mod app;
mod cases;
mod drive;
mod raw;

use std::convert::Infallible;
use std::process::ExitCode;

use axum::routing::post;
use bytes::Bytes;
use tokio::net::TcpListener;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_twilio_signature::{body_sha256, TwilioSignatureLayer, UrlSource, VerifiedWebhook};

use crate::app::{sample_customers, AppConfig, AppState, REQUEST_BODY_TIMEOUT};

/// A made-up Auth Token, shared by the server and the driver.
pub(crate) const TOKEN: &str = "0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a";
/// The extra route: answers the SHA-256 hex of the body it received.
pub(crate) const DIGEST_PATH: &str = "/soak/digest";
/// The proxy numbers the app is configured with.
pub(crate) const SMS_NUMBER: &str = "+12025550100";
pub(crate) const WHATSAPP_NUMBER: &str = "whatsapp:+12025550101";
/// The worker conversations from unknown addresses are routed to.
pub(crate) const DEFAULT_WORKER: &str = "frontdesk@example.com";
/// The body limit unless one is given: small, so oversized bodies are cheap to send.
pub(crate) const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

const USAGE: &str = "usage: soak serve [BODY_LIMIT] | soak drive URL PID [--requests N] \
                     [--seconds S] [--clients C] [--seed X] [--body-limit B] [--skip-recording]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("soak: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args.first().map(String::as_str) {
        Some("serve") => match args.get(1).map(|s| s.parse()).transpose() {
            Ok(limit) if args.len() <= 2 => {
                runtime.block_on(serve(limit.unwrap_or(DEFAULT_BODY_LIMIT)))
            }
            _ => Err(USAGE.to_owned()),
        },
        Some("drive") => match drive::Options::parse(&args[1..]) {
            Ok(options) => runtime.block_on(drive::run(options)),
            Err(err) => Err(format!("{err}\n{USAGE}")),
        },
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("soak: {err}");
            ExitCode::from(2)
        }
    }
}

async fn serve(limit: usize) -> Result<bool, String> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .init();
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let layer = TwilioSignatureLayer::new(TOKEN)
        .and_then(|l| UrlSource::base_url(&format!("http://{addr}")).map(|s| l.url_source(s)))
        .map_err(|e| e.to_string())?
        .body_limit(limit);
    let config = AppConfig {
        sms_number: Some(SMS_NUMBER.to_owned()),
        whatsapp_number: Some(WHATSAPP_NUMBER.to_owned()),
        request_body_timeout: REQUEST_BODY_TIMEOUT,
        customers: sample_customers(),
        default_worker: Some(DEFAULT_WORKER.to_owned()),
        // The Conversations updates are recorded, and counted, not sent.
        conversations_api: None,
    };
    let state = AppState::new(&config);
    let router = app::app(layer.clone(), state.clone(), &config).route(
        DIGEST_PATH,
        post(digest)
            .layer::<_, Infallible>(layer)
            .layer(RequestBodyTimeoutLayer::new(REQUEST_BODY_TIMEOUT)),
    );
    println!("listening http://{addr}");
    axum::serve(listener, router)
        .with_graceful_shutdown(terminated())
        .await
        .map_err(|e| format!("server error: {e}"))?;
    println!(
        "stopped callbacks_handled={} updates={}",
        state.callbacks_handled(),
        state.updates_recorded()
    );
    Ok(true)
}

/// The SHA-256 hex of the body the layer handed over.
async fn digest(_: VerifiedWebhook, body: Bytes) -> String {
    body_sha256(&body)
}

async fn terminated() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut signal) => {
            signal.recv().await;
        }
        Err(_) => std::future::pending::<()>().await,
    }
}
