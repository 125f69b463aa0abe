//! A Twilio Frontline integration service whose callbacks only answer requests signed
//! by Twilio.
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
//! - `DEDUPE_REDIS_URL` (feature `redis`): keep the answers replayed to Twilio's retries
//!   in Redis (feature `dedupe`: in memory without it).
//! - `RUST_LOG`: log filter, `info` by default.
//!
//! A bad value stops it with one line on stderr and exit code 2.

mod app;
mod config;
mod retries;

use std::process::ExitCode;

use tokio::net::TcpListener;

use crate::app::{AppConfig, AppState, REQUEST_BODY_TIMEOUT};

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

    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let listener = match TcpListener::bind(settings.bind_addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("frontline: cannot listen on {}: {err}", settings.bind_addr);
            return ExitCode::FAILURE;
        }
    };
    let bound = listener.local_addr().unwrap_or(settings.bind_addr);
    let layer = match settings.signature_layer(bound) {
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
        settings.describe_url_mode(bound)
    );
    println!("frontline: {retries_mode}");
    if settings.demo {
        println!("\n{}", settings.demo_instructions(bound));
    }

    let config = AppConfig {
        sms_number: settings.sms_number.clone(),
        whatsapp_number: settings.whatsapp_number.clone(),
        request_body_timeout: REQUEST_BODY_TIMEOUT,
    };
    let state = AppState::new(&config);
    let app = app::app_with(layer, retries, state.clone(), &config);

    if let Err(err) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
    {
        eprintln!("frontline: server error: {err}");
        return ExitCode::FAILURE;
    }
    println!(
        "frontline: stopped (callbacks handled: {}, Conversations updates recorded: {})",
        state.callbacks_handled(),
        state.updates_recorded()
    );
    ExitCode::SUCCESS
}

/// Resolves on Ctrl-C or SIGTERM; the server then finishes the requests in flight.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing the requests in flight");
}
