//! Stream a call's audio to a WebSocket (Twilio Media Streams), with only handshakes
//! Twilio signed getting upgraded.
//!
//! ```text
//! cargo run --example voice_stream                   # demo mode, nothing to set up
//! TWILIO_AUTH_TOKEN=… PUBLIC_BASE_URL=https://…  cargo run --example voice_stream
//! ```
//!
//! - `POST /voice`, the number's "A call comes in" webhook, answers TwiML that connects
//!   the call to `wss://<the same host>/stream`.
//! - `GET /stream` is the WebSocket Twilio then opens. Twilio signs the handshake with the
//!   `wss://` URL; a handshake without a valid signature gets 403 and is never upgraded.
//!   The example logs the stream's `connected`, `start` and `stop` messages and counts the
//!   `media` ones.
//!
//! Environment (as the `frontline` example): `TWILIO_AUTH_TOKEN` (unset: demo mode, with
//! a random token and a printed command that works), `PUBLIC_BASE_URL` or
//! `TRUST_FORWARDED_HOPS`, `BIND_ADDR` (`127.0.0.1:3000` by default), `RUST_LOG`.
//! A bad value stops it with one line on stderr and exit code 2.

#[path = "shared/runtime.rs"]
mod runtime;
#[path = "shared/settings.rs"]
pub(crate) mod settings;
#[path = "shared/twiml.rs"]
pub(crate) mod twiml;

use std::collections::BTreeMap;
use std::process::ExitCode;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tower_twilio_signature::{TwilioSignatureLayer, VerifiedWebhook};

use self::twiml::{escape, Twiml};

/// Where Twilio asks what to do with an incoming call.
pub(crate) const VOICE_PATH: &str = "/voice";
/// The WebSocket the call's audio is streamed to.
pub(crate) const STREAM_PATH: &str = "/stream";

/// The largest WebSocket message accepted; Twilio's are a few hundred bytes.
const MAX_MESSAGE: usize = 64 * 1024;

/// A message of a media stream, as the app saw it: the `event` (`connected`, `start`,
/// `media`, `mark`, `dtmf`, `stop`) and what identifies the stream and the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamEvent {
    pub(crate) event: String,
    pub(crate) stream_sid: Option<String>,
    pub(crate) call_sid: Option<String>,
    /// The `<Parameter>`s of the `<Stream>`, sent in the `start` message.
    pub(crate) custom_parameters: BTreeMap<String, String>,
}

/// Shared state: where each stream message is published, for whatever processes the
/// audio (a transcriber, a recorder, a test).
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    events: broadcast::Sender<StreamEvent>,
}

impl AppState {
    pub(crate) fn new() -> Self {
        Self {
            events: broadcast::Sender::new(1_024),
        }
    }

    /// The stream messages from now on.
    #[allow(dead_code)] // the binary only logs them
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<StreamEvent> {
        self.events.subscribe()
    }
}

/// A Media Streams message: the fields this example reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StreamMessage {
    event: String,
    stream_sid: Option<String>,
    protocol: Option<String>,
    start: Option<StartDetails>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartDetails {
    call_sid: Option<String>,
    #[serde(default)]
    tracks: Vec<String>,
    #[serde(default)]
    custom_parameters: BTreeMap<String, String>,
}

/// The service: both routes (and any other path) need a valid Twilio signature.
pub(crate) fn app(signature: TwilioSignatureLayer, state: AppState) -> Router {
    Router::new()
        .route(VOICE_PATH, post(incoming_call))
        .route(STREAM_PATH, get(media_stream))
        .layer(signature)
        .with_state(state)
}

/// Connects the call to the media stream on this server.
async fn incoming_call(webhook: VerifiedWebhook) -> Response {
    let Some(url) = stream_url(webhook.url()) else {
        tracing::error!(url = webhook.url(), "cannot derive the stream URL");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    tracing::info!(stream = %url, "call received: connecting it to the media stream");
    Twiml::response(&format!(
        "<Connect><Stream url=\"{}\"/></Connect>",
        escape(&url)
    ))
    .into_response()
}

/// The WebSocket URL of [`STREAM_PATH`] beside the URL Twilio called for
/// [`VOICE_PATH`] (`https://host/voice` gives `wss://host/stream`), so it is the public
/// host, whatever the URL source.
pub(crate) fn stream_url(voice_url: &str) -> Option<String> {
    let without_query = voice_url.split('?').next()?;
    let base = without_query.strip_suffix(VOICE_PATH)?;
    let (scheme, rest) = base.split_once("://")?;
    let ws_scheme = match scheme {
        "https" => "wss",
        "http" => "ws",
        _ => return None,
    };
    Some(format!("{ws_scheme}://{rest}{STREAM_PATH}"))
}

/// Runs only for a handshake the layer verified.
async fn media_stream(
    ws: WebSocketUpgrade,
    webhook: VerifiedWebhook,
    State(state): State<AppState>,
) -> Response {
    tracing::info!(url = webhook.url(), "media stream handshake verified");
    ws.max_message_size(MAX_MESSAGE)
        .on_upgrade(move |socket| receive(socket, state))
}

/// Reads the stream's messages until it closes.
async fn receive(mut socket: WebSocket, state: AppState) {
    let mut media = 0u64;
    while let Some(message) = socket.recv().await {
        let text = match message {
            Ok(Message::Text(text)) => text,
            Ok(Message::Close(_)) => break,
            Ok(_) => continue,
            Err(err) => {
                tracing::warn!(error = %err, "media stream broken");
                break;
            }
        };
        let message: StreamMessage = match serde_json::from_str(text.as_str()) {
            Ok(message) => message,
            Err(err) => {
                tracing::warn!(error = %err, "not a Media Streams message");
                continue;
            }
        };
        let start = message.start.as_ref();
        match message.event.as_str() {
            "connected" => {
                tracing::info!(protocol = message.protocol.as_deref(), "stream connected")
            }
            "start" => tracing::info!(
                stream_sid = message.stream_sid.as_deref(),
                call_sid = start.and_then(|s| s.call_sid.as_deref()),
                tracks = ?start.map(|s| &s.tracks),
                "stream started"
            ),
            "media" => media += 1,
            "stop" => tracing::info!(
                stream_sid = message.stream_sid.as_deref(),
                media_messages = media,
                "stream stopped"
            ),
            other => tracing::debug!(event = other, "stream message"),
        }
        // Nobody listening is fine: the binary only logs.
        let _ = state.events.send(StreamEvent {
            call_sid: start.and_then(|s| s.call_sid.clone()),
            custom_parameters: start
                .map(|s| s.custom_parameters.clone())
                .unwrap_or_default(),
            event: message.event,
            stream_sid: message.stream_sid,
        });
    }
    tracing::info!(media_messages = media, "media stream closed");
}

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match settings::from_env() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("voice_stream: {err}");
            return ExitCode::from(2);
        }
    };
    runtime::init_logging();

    let listener = match TcpListener::bind(settings.bind_addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!(
                "voice_stream: cannot listen on {}: {err}",
                settings.bind_addr
            );
            return ExitCode::FAILURE;
        }
    };
    let bound = listener.local_addr().unwrap_or(settings.bind_addr);
    let layer = match settings.signature_layer(bound) {
        Ok(layer) => layer,
        Err(err) => {
            eprintln!("voice_stream: {err}");
            return ExitCode::from(2);
        }
    };

    for warning in &settings.warnings {
        eprintln!("voice_stream: warning: {warning}");
    }
    println!(
        "voice_stream: listening on http://{bound}; signed URL from: {}",
        settings.describe_url_mode(bound)
    );
    let voice_url = settings.console_url(bound, VOICE_PATH);
    println!(
        "\nIn the Twilio console, under your phone number's Voice configuration, set\n\
         \"A call comes in\" to Webhook, HTTP POST, with this URL:\n\n    {voice_url}\n\n\
         Calls are then streamed to {} (the TwiML says so; nothing to enter).\n",
        stream_url(&voice_url).unwrap_or_else(|| format!("<that host>{STREAM_PATH}"))
    );
    if settings.demo {
        let request = settings.signed_post(
            bound,
            VOICE_PATH,
            &[
                ("AccountSid", "AC00000000000000000000000000000000"),
                ("CallSid", "CA00000000000000000000000000000000"),
                ("CallStatus", "ringing"),
                ("From", "+12025550111"),
                ("To", "+12025550100"),
            ],
        );
        println!("{}", settings.demo_instructions("voice webhooks", &request));
    }

    let state = AppState::new();
    if let Err(err) = axum::serve(listener, app(layer, state))
        .with_graceful_shutdown(runtime::shutdown_signal())
        .await
    {
        eprintln!("voice_stream: server error: {err}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
