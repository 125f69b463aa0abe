//! A Twilio Frontline integration service whose callbacks only answer requests signed
//! by Twilio.
//!
//! Frontline is open only to accounts that already used it before February 2023; to start
//! with Twilio webhooks, see the `sms_reply` and `voice_stream` examples.
//!
//! ```text
//! cargo run --example frontline                      # demo mode, nothing to set up
//! TWILIO_AUTH_TOKEN=… PUBLIC_BASE_URL=https://…  cargo run --example frontline
//! ```
//!
//! Environment:
//! - `TWILIO_AUTH_TOKEN`: the Auth Token that signs the callbacks. Unset: demo mode, with a
//!   random token and the base URL `http://<BIND_ADDR>`, and a ready-to-paste command
//!   that checks it.
//! - `PUBLIC_BASE_URL`: the public URL Twilio calls (`https://abc.ngrok.app`). Unset: the
//!   `Host` header with `https`.
//! - `TRUST_FORWARDED_HOPS`: instead of `PUBLIC_BASE_URL`, trust `X-Forwarded-*` set by
//!   this many proxies.
//! - `BIND_ADDR`: the listening address, `127.0.0.1:3000` by default.
//! - `TWILIO_SMS_NUMBER`, `TWILIO_WHATSAPP_NUMBER`: the senders of outgoing conversations
//!   (demo numbers by default; empty disables the channel).
//! - `WEBHOOK_AUTH`: `basic` or `digest` to require HTTP authentication on the callbacks, with
//!   `WEBHOOK_USERNAME` and `WEBHOOK_PASSWORD` (give Twilio `https://user:password@host/...`).
//! - `TWILIO_SIGNATURE_REPORT_ONLY`: `true` logs callbacks with a bad signature and serves them
//!   anyway, to try the layer out before it refuses anything.
//! - `FRONTLINE_CUSTOMERS_FILE`: a JSON customer book (the format of `customers.json`
//!   beside this file, the built-in sample used by default).
//! - `FRONTLINE_DEFAULT_WORKER`: the worker that conversations from addresses in no
//!   customer's channels are routed to (made up in demo mode).
//! - `TWILIO_ACCOUNT_SID`: make the Conversations API calls (add the worker, tie a customer
//!   participant to its `customer_id`) with this account and the Auth Token. Unset: the
//!   calls are recorded and logged. `TWILIO_API_BASE_URL` replaces
//!   `https://conversations.twilio.com`.
//! - `DEDUPE_REDIS_URL` (feature `redis`): keep the answers replayed to Twilio's retries
//!   in Redis (feature `dedupe`: in memory without it).
//! - `RUST_LOG`: log filter; by default `info`, and why each refused webhook was refused.
//!
//! A bad value stops it with one line on stderr and exit code 2.

mod app;
mod config;
mod retries;
#[path = "../shared/runtime.rs"]
mod runtime;

use std::process::ExitCode;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::app::{AppConfig, AppState, REQUEST_BODY_TIMEOUT};

/// The callback paths, and the console field each goes in.
const CONSOLE_FIELDS: [(&str, &str); 5] = [
    ("CRM Callback URL", "/callbacks/crm"),
    (
        "Outgoing Conversations Callback URL",
        "/callbacks/outgoing-conversation",
    ),
    ("Templates Callback URL", "/callbacks/templates"),
    ("Custom routing callback URL", "/callbacks/routing"),
    (
        "Conversations webhooks (Pre- and Post-Event URL)",
        "/callbacks/conversations",
    ),
];

/// How long a stop waits for Conversations API calls still under way.
const API_DRAIN_LIMIT: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match config::from_env() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("frontline: {err}");
            return ExitCode::from(2);
        }
    };
    let (retries, retries_mode) = match retries::layer() {
        Ok(layer) => layer,
        Err(err) => {
            eprintln!("frontline: {err}");
            return ExitCode::from(2);
        }
    };

    runtime::init_logging();

    let server = &settings.server;
    let listener = match TcpListener::bind(server.bind_addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("frontline: cannot listen on {}: {err}", server.bind_addr);
            return ExitCode::FAILURE;
        }
    };
    let bound = listener.local_addr().unwrap_or(server.bind_addr);
    let layer = match server.signature_layer(bound) {
        Ok(layer) => layer,
        Err(err) => {
            eprintln!("frontline: {err}");
            return ExitCode::from(2);
        }
    };

    for warning in &settings.warnings {
        eprintln!("frontline: warning: {warning}");
    }
    println!(
        "frontline: listening on http://{bound}; signed URL from: {}",
        server.describe_url_mode(bound)
    );
    println!("frontline: {retries_mode}");
    println!(
        "frontline: {} customers from {}; new customers' conversations go to {}; Conversations API calls are {}",
        settings.customers.len(),
        settings.customers_source,
        settings.default_worker.as_deref().unwrap_or("no one"),
        settings.describe_api(),
    );
    println!("\nEnter these URLs in the Frontline console and the Conversations service:\n");
    for (field, path) in CONSOLE_FIELDS {
        println!("    {field}: {}", server.console_url(bound, path));
    }
    if server.demo {
        println!("\n{}", settings.demo_instructions(bound));
    }

    let config = AppConfig {
        sms_number: settings.sms_number.clone(),
        whatsapp_number: settings.whatsapp_number.clone(),
        request_body_timeout: REQUEST_BODY_TIMEOUT,
        customers: settings.customers.clone(),
        default_worker: settings.default_worker.clone(),
        conversations_api: settings.conversations_api.clone(),
    };
    let state = AppState::new(&config);
    let app = app::app_with(layer, retries, state.clone(), &config);

    if let Err(err) = axum::serve(listener, app)
        .with_graceful_shutdown(runtime::shutdown_signal())
        .await
    {
        eprintln!("frontline: server error: {err}");
        return ExitCode::FAILURE;
    }
    if !state.api_calls_finished(API_DRAIN_LIMIT).await {
        eprintln!("frontline: warning: stopped with Conversations API calls still under way");
    }
    let (made, failed) = state.api_calls();
    println!(
        "frontline: stopped (callbacks handled: {}, Conversations updates: {}, API calls made: {made}, failed: {failed})",
        state.callbacks_handled(),
        state.updates_recorded(),
    );
    ExitCode::SUCCESS
}
