//! The Conversations REST API calls the service makes after it has answered a callback:
//! add a worker to a conversation, and tie a customer participant to its `customer_id`.
//!
//! Each call is tried a bounded number of times, with a growing pause in between, and only
//! when trying again can help: a network error, 429 or a 5xx. Every attempt is logged.

use std::fmt;
use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde_json::json;

use super::ConversationUpdate;

/// Where the Conversations API is, unless `TWILIO_API_BASE_URL` says otherwise.
pub(crate) const DEFAULT_BASE_URL: &str = "https://conversations.twilio.com";

/// How many times a call is tried, at most.
pub(crate) const DEFAULT_ATTEMPTS: u32 = 3;

/// The pause before the second try; it doubles before each later one.
pub(crate) const DEFAULT_BACKOFF: Duration = Duration::from_millis(500);

/// The longest one attempt may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A client of the Conversations API for one account.
#[derive(Clone)]
pub(crate) struct ConversationsApi {
    http: reqwest::Client,
    base_url: Url,
    account_sid: String,
    auth_token: String,
    attempts: u32,
    backoff: Duration,
}

impl fmt::Debug for ConversationsApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConversationsApi")
            .field("base_url", &self.base_url.as_str())
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"[redacted]")
            .field("attempts", &self.attempts)
            .field("backoff", &self.backoff)
            .finish()
    }
}

/// Why a call did not succeed, after the last attempt.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The API answered with this status (and body).
    Status(StatusCode, String),
    /// No answer: the connection failed or timed out.
    Transport(reqwest::Error),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(status, body) => write!(f, "HTTP {status}: {body}"),
            Self::Transport(err) => write!(f, "no answer: {err}"),
        }
    }
}

impl CallError {
    /// Whether another attempt may succeed.
    fn is_transient(&self) -> bool {
        match self {
            Self::Status(status, _) => {
                *status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
            }
            Self::Transport(_) => true,
        }
    }
}

impl ConversationsApi {
    /// A client for the account `account_sid`, authenticated with its Auth Token, calling
    /// the API at `base_url` (`https://conversations.twilio.com`, or a stand-in).
    pub(crate) fn new(
        base_url: Url,
        account_sid: &str,
        auth_token: &str,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        Ok(Self {
            http,
            base_url,
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.to_owned(),
            attempts: DEFAULT_ATTEMPTS,
            backoff: DEFAULT_BACKOFF,
        })
    }

    /// Tries each call up to `attempts` times (at least once), pausing `backoff` before the
    /// second try and twice as long before each later one.
    #[must_use]
    #[allow(dead_code)] // the binary keeps the defaults; the tests pause briefly
    pub(crate) fn with_retries(mut self, attempts: u32, backoff: Duration) -> Self {
        self.attempts = attempts.max(1);
        self.backoff = backoff;
        self
    }

    /// The API's base URL.
    pub(crate) fn base_url(&self) -> &str {
        self.base_url.as_str()
    }

    /// The account the calls are made for.
    pub(crate) fn account_sid(&self) -> &str {
        &self.account_sid
    }

    /// Makes the call `update` stands for, retrying transient failures.
    pub(crate) async fn send(&self, update: &ConversationUpdate) -> Result<(), CallError> {
        let url = self.url(update);
        let form = form(update);
        let mut pause = self.backoff;
        for attempt in 1..=self.attempts {
            let err = match self.attempt(&url, &form).await {
                Ok(status) => {
                    tracing::info!(call = %update, %status, attempt, "Conversations API call made");
                    return Ok(());
                }
                Err(err) => err,
            };
            if attempt == self.attempts || !err.is_transient() {
                tracing::error!(
                    call = %update,
                    attempt,
                    error = %err,
                    "Conversations API call failed; giving up"
                );
                return Err(err);
            }
            tracing::warn!(
                call = %update,
                attempt,
                error = %err,
                retry_in = ?pause,
                "Conversations API call failed; trying again"
            );
            tokio::time::sleep(pause).await;
            pause = pause.saturating_mul(2);
        }
        unreachable!("the last attempt returns")
    }

    async fn attempt(&self, url: &Url, form: &[(&str, String)]) -> Result<StatusCode, CallError> {
        let response = self
            .http
            .post(url.clone())
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .form(form)
            .send()
            .await
            .map_err(CallError::Transport)?;
        let status = response.status();
        if status.is_success() {
            return Ok(status);
        }
        // Twilio explains an error in a small JSON body; keep the log line short.
        let mut body = response.text().await.unwrap_or_default();
        if let Some((cut, _)) = body.char_indices().nth(300) {
            body.truncate(cut);
        }
        Err(CallError::Status(status, body))
    }

    /// `/v1/Conversations/{ConversationSid}/Participants[/{ParticipantSid}]` under the
    /// base URL, each SID escaped as a path segment.
    fn url(&self, update: &ConversationUpdate) -> Url {
        let mut url = self.base_url.clone();
        {
            let mut segments = url
                .path_segments_mut()
                .expect("the base URL is http or https");
            segments.pop_if_empty().extend(["v1", "Conversations"]);
            match update {
                ConversationUpdate::AddWorker {
                    conversation_sid, ..
                } => {
                    segments.extend([conversation_sid.as_str(), "Participants"]);
                }
                ConversationUpdate::TagCustomer {
                    conversation_sid,
                    participant_sid,
                    ..
                } => {
                    segments.extend([
                        conversation_sid.as_str(),
                        "Participants",
                        participant_sid.as_str(),
                    ]);
                }
            }
        }
        url
    }
}

/// The form body of the call: `Identity` of the worker to add, or the customer
/// participant's `Attributes` as Frontline reads them.
fn form(update: &ConversationUpdate) -> Vec<(&'static str, String)> {
    match update {
        ConversationUpdate::AddWorker { worker, .. } => vec![("Identity", worker.clone())],
        ConversationUpdate::TagCustomer {
            customer_id,
            display_name,
            avatar,
            ..
        } => {
            let attributes = json!({
                "customer_id": customer_id,
                "display_name": display_name,
                "avatar": avatar,
            });
            vec![("Attributes", attributes.to_string())]
        }
    }
}
