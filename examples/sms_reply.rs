//! Reply to incoming SMS: the first Twilio webhook most people write, answering only the
//! messages Twilio signed.
//!
//! ```text
//! cargo run --example sms_reply                      # demo mode, nothing to set up
//! TWILIO_AUTH_TOKEN=… PUBLIC_BASE_URL=https://…  cargo run --example sms_reply
//! ```
//!
//! `POST /sms` answers TwiML: `<Response><Message>You said: …</Message></Response>`.
//! Enter the URL it prints at startup as your number's "A message comes in" webhook.
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

use std::process::ExitCode;

use axum::routing::post;
use axum::{Form, Router};
use serde::Deserialize;
use tokio::net::TcpListener;
use tower_twilio_signature::TwilioSignatureLayer;

use self::twiml::{escape, Twiml};

/// Where Twilio sends incoming messages.
pub(crate) const SMS_PATH: &str = "/sms";

/// The longest text echoed back: a reply stays under the 1,600 characters of one message.
const MAX_ECHO: usize = 1_500;

/// The parameters of an incoming message this example reads. Twilio sends more (`To`,
/// `MessageSid`, `NumMedia`, …); the form extractor ignores the others, and a missing
/// one is `None`.
#[derive(Debug, Deserialize)]
pub(crate) struct IncomingMessage {
    #[serde(rename = "From")]
    pub(crate) from: Option<String>,
    #[serde(rename = "Body")]
    pub(crate) body: Option<String>,
}

/// The service: every request must carry a valid Twilio signature.
pub(crate) fn app(signature: TwilioSignatureLayer) -> Router {
    Router::new()
        .route(SMS_PATH, post(incoming_message))
        .layer(signature)
}

async fn incoming_message(Form(message): Form<IncomingMessage>) -> Twiml {
    tracing::info!(from = message.from.as_deref(), "message received");
    Twiml::response(&format!("<Message>{}</Message>", escape(&reply(&message))))
}

/// The reply's text: the message's text echoed back, or a line saying it had none (a
/// picture alone, or a webhook without `Body`).
pub(crate) fn reply(message: &IncomingMessage) -> String {
    match message.body.as_deref().map(str::trim) {
        Some(text) if !text.is_empty() => {
            let echo: String = text.chars().take(MAX_ECHO).collect();
            let more = if echo.len() < text.len() { "…" } else { "" };
            format!("You said: {echo}{more}")
        }
        _ => "Thanks for your message. It had no text to repeat.".to_owned(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match settings::from_env() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("sms_reply: {err}");
            return ExitCode::from(2);
        }
    };
    runtime::init_logging();

    let listener = match TcpListener::bind(settings.bind_addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("sms_reply: cannot listen on {}: {err}", settings.bind_addr);
            return ExitCode::FAILURE;
        }
    };
    let bound = listener.local_addr().unwrap_or(settings.bind_addr);
    let layer = match settings.signature_layer(bound) {
        Ok(layer) => layer,
        Err(err) => {
            eprintln!("sms_reply: {err}");
            return ExitCode::from(2);
        }
    };

    for warning in &settings.warnings {
        eprintln!("sms_reply: warning: {warning}");
    }
    println!(
        "sms_reply: listening on http://{bound}; signed URL from: {}",
        settings.describe_url_mode(bound)
    );
    println!(
        "\nIn the Twilio console, under your phone number's Messaging configuration, set\n\
         \"A message comes in\" to Webhook, HTTP POST, with this URL:\n\n    {}\n",
        settings.console_url(bound, SMS_PATH)
    );
    if settings.demo {
        let request = settings.signed_post(
            bound,
            SMS_PATH,
            &[
                ("AccountSid", "AC00000000000000000000000000000000"),
                ("Body", "Hello from the demo"),
                ("From", "+12025550111"),
                ("MessageSid", "SM00000000000000000000000000000000"),
                ("To", "+12025550100"),
            ],
        );
        println!("{}", settings.demo_instructions("SMS webhooks", &request));
    }

    if let Err(err) = axum::serve(listener, app(layer))
        .with_graceful_shutdown(runtime::shutdown_signal())
        .await
    {
        eprintln!("sms_reply: server error: {err}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
