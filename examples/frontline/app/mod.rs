//! The Frontline integration service: routes, state and errors, with no environment access,
//! so a test can build it with any configuration.

mod conversations_api;
mod customers;
mod handlers;
mod templates;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{FromRequest, Request};
use axum::handler::Handler;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, Route};
use axum::{Form, Json, Router};
use serde_json::json;
use tokio::sync::watch;
use tower::layer::util::Identity;
use tower::{Layer, Service};
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tower_twilio_signature::TwilioSignatureLayer;
use tracing::Level;

// For the configuration and the other programs that serve this app; not each uses all.
#[allow(unused_imports)]
pub(crate) use self::conversations_api::{ConversationsApi, DEFAULT_BASE_URL};
#[allow(unused_imports)]
pub(crate) use self::customers::{parse_book, sample as sample_customers, Customer};

/// How long a client may take to send a request body.
pub(crate) const REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the service needs besides the signature layer.
#[derive(Debug, Clone)]
pub(crate) struct AppConfig {
    /// The number outgoing SMS conversations are sent from; `None` disables the channel.
    pub(crate) sms_number: Option<String>,
    /// The WhatsApp sender, `whatsapp:+1…`; `None` disables the channel.
    pub(crate) whatsapp_number: Option<String>,
    /// The limit on receiving a request body.
    pub(crate) request_body_timeout: Duration,
    /// The customer book.
    pub(crate) customers: Vec<Customer>,
    /// The worker a conversation from an address that is in no customer's channels is
    /// routed to; `None` leaves such conversations unrouted.
    pub(crate) default_worker: Option<String>,
    /// The Conversations API client; `None` records the calls instead of making them.
    pub(crate) conversations_api: Option<ConversationsApi>,
}

/// A Conversations API call the service makes after answering a callback (or, without
/// an account SID, records).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConversationUpdate {
    /// Add this worker to the conversation (custom routing).
    AddWorker {
        conversation_sid: String,
        worker: String,
    },
    /// Set `customer_id`, `display_name` and `avatar` in the customer participant's
    /// attributes, so the Frontline app shows who it is.
    TagCustomer {
        conversation_sid: String,
        participant_sid: String,
        customer_id: String,
        display_name: String,
        avatar: Option<String>,
    },
}

impl fmt::Display for ConversationUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AddWorker {
                conversation_sid,
                worker,
            } => write!(f, "add worker {worker} to {conversation_sid}"),
            Self::TagCustomer {
                conversation_sid,
                participant_sid,
                customer_id,
                ..
            } => write!(
                f,
                "tie participant {participant_sid} of {conversation_sid} to customer {customer_id}"
            ),
        }
    }
}

/// How many of the latest Conversations updates the app keeps: a service that runs for
/// months must not grow with every callback.
pub(crate) const KEPT_UPDATES: usize = 1_000;

/// Shared state: the customer book, the proxy numbers, the Conversations API client and
/// what the callbacks did.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    customers: Vec<Customer>,
    sms_number: Option<String>,
    whatsapp_number: Option<String>,
    default_worker: Option<String>,
    api: Option<ConversationsApi>,
    callbacks_handled: AtomicU64,
    updates: Mutex<Updates>,
    /// API calls made, and those that failed after their last attempt.
    api_calls_made: AtomicU64,
    api_calls_failed: AtomicU64,
    /// How many API calls are under way.
    api_calls_pending: watch::Sender<usize>,
}

/// The latest [`KEPT_UPDATES`] Conversations updates, and how many were recorded in all.
#[derive(Debug, Default)]
struct Updates {
    latest: VecDeque<ConversationUpdate>,
    recorded: u64,
}

impl AppState {
    /// State for `config`, with nothing done yet.
    pub(crate) fn new(config: &AppConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                customers: config.customers.clone(),
                sms_number: config.sms_number.clone(),
                whatsapp_number: config.whatsapp_number.clone(),
                default_worker: config.default_worker.clone(),
                api: config.conversations_api.clone(),
                callbacks_handled: AtomicU64::new(0),
                updates: Mutex::new(Updates::default()),
                api_calls_made: AtomicU64::new(0),
                api_calls_failed: AtomicU64::new(0),
                api_calls_pending: watch::Sender::new(0),
            }),
        }
    }

    /// How many callbacks reached a handler (so got past the signature check).
    pub(crate) fn callbacks_handled(&self) -> u64 {
        self.inner.callbacks_handled.load(Ordering::Relaxed)
    }

    /// The latest Conversations updates asked for (at most [`KEPT_UPDATES`]), oldest
    /// first, whether recorded only or also sent to the API.
    #[allow(dead_code)] // read by the tests; the binary logs each update
    pub(crate) fn updates(&self) -> Vec<ConversationUpdate> {
        self.updates_lock().latest.iter().cloned().collect()
    }

    /// How many Conversations updates were asked for since the start, the ones no longer
    /// kept included.
    pub(crate) fn updates_recorded(&self) -> u64 {
        self.updates_lock().recorded
    }

    /// How many Conversations API calls succeeded, and how many failed after their last
    /// attempt.
    pub(crate) fn api_calls(&self) -> (u64, u64) {
        (
            self.inner.api_calls_made.load(Ordering::Relaxed),
            self.inner.api_calls_failed.load(Ordering::Relaxed),
        )
    }

    /// Waits until no API call is under way, or `limit` has passed; says whether none is.
    pub(crate) async fn api_calls_finished(&self, limit: Duration) -> bool {
        let mut pending = self.inner.api_calls_pending.subscribe();
        let none = tokio::time::timeout(limit, pending.wait_for(|&n| n == 0)).await;
        none.is_ok()
    }

    fn customers(&self) -> &[Customer] {
        &self.inner.customers
    }

    fn customer(&self, id: &str) -> Option<&Customer> {
        self.customers().iter().find(|c| c.customer_id == id)
    }

    fn customer_by_address(&self, address: &str) -> Option<&Customer> {
        self.customers().iter().find(|c| c.has_address(address))
    }

    fn default_worker(&self) -> Option<&str> {
        self.inner.default_worker.as_deref()
    }

    /// Records `update` and, with an API client, makes the call in a task of its own: the
    /// callback is answered without waiting for it.
    fn dispatch(&self, update: ConversationUpdate) {
        self.record(update.clone());
        let Some(api) = self.inner.api.clone() else {
            tracing::info!(call = %update, "Conversations API call recorded, not made (TWILIO_ACCOUNT_SID is not set)");
            return;
        };
        let state = self.clone();
        state.inner.api_calls_pending.send_modify(|n| *n += 1);
        tokio::spawn(async move {
            let counter = if api.send(&update).await.is_ok() {
                &state.inner.api_calls_made
            } else {
                &state.inner.api_calls_failed
            };
            counter.fetch_add(1, Ordering::Relaxed);
            state.inner.api_calls_pending.send_modify(|n| *n -= 1);
        });
    }

    fn count_callback(&self) {
        self.inner.callbacks_handled.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record(&self, update: ConversationUpdate) {
        let mut updates = self.updates_lock();
        if updates.latest.len() == KEPT_UPDATES {
            updates.latest.pop_front();
        }
        updates.latest.push_back(update);
        updates.recorded += 1;
    }

    fn updates_lock(&self) -> std::sync::MutexGuard<'_, Updates> {
        self.inner
            .updates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The service. Every request except `GET /healthz` (unknown paths and other methods
/// included) must carry a valid Twilio signature.
#[allow(dead_code)] // used by the tests and load_target; the binary adds the dedupe layer
pub(crate) fn app(signature: TwilioSignatureLayer, state: AppState, config: &AppConfig) -> Router {
    app_with(signature, Identity::new(), state, config)
}

/// As [`app`], with `verified` between the signature layer and the callbacks, where it
/// sees only verified requests (the dedupe layer that answers Twilio's retries once).
pub(crate) fn app_with<L>(
    signature: TwilioSignatureLayer,
    verified: L,
    state: AppState,
    config: &AppConfig,
) -> Router
where
    L: Layer<Route> + Clone + Send + Sync + 'static,
    L::Service: Service<Request> + Clone + Send + Sync + 'static,
    <L::Service as Service<Request>>::Response: IntoResponse + 'static,
    <L::Service as Service<Request>>::Error: Into<Infallible> + 'static,
    <L::Service as Service<Request>>::Future: Send + 'static,
{
    // `Router::layer` also wraps the fallbacks: an unsigned request to an unknown path
    // gets 403, not 404, and tells a prober nothing about which paths exist.
    let callbacks = callbacks(state).layer(verified).layer(signature.clone());

    // Added after the layer, so outside it; its other methods still go through it.
    let healthz = get(healthz).fallback(method_not_allowed.layer(signature));

    outer_layers(callbacks.route("/healthz", healthz), config)
}

/// The callback routes and fallbacks, before the signature layer that [`app`] puts around
/// them (the handlers read the `VerifiedWebhook` it adds).
pub(crate) fn callbacks(state: AppState) -> Router {
    Router::new()
        .route("/callbacks/crm", post(handlers::crm))
        .route(
            "/callbacks/outgoing-conversation",
            post(handlers::outgoing_conversation),
        )
        .route("/callbacks/templates", post(handlers::templates))
        .route("/callbacks/routing", post(handlers::routing))
        .route("/callbacks/conversations", post(handlers::conversations))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// Request tracing, and a body timeout outside the signature layer (which buffers the
/// body): a client that sends it too slowly is cut off.
pub(crate) fn outer_layers(router: Router, config: &AppConfig) -> Router {
    router
        .layer(RequestBodyTimeoutLayer::new(config.request_body_timeout))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no callback at {}", uri.path()),
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed: Frontline callbacks are POST requests",
    )
}

/// An error answer: the status and `{"error": "…"}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn missing(name: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, format!("missing parameter {name}"))
    }

    fn bad(name: &str, why: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            format!("invalid parameter {name}: {why}"),
        )
    }

    fn unknown_location(location: &str) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("unknown Location {location:?}"),
        )
    }

    fn not_found(message: String) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

/// The form parameters of a callback, in order; a body that is not a form is answered
/// with `{"error": …}` and the status Axum's `Form` gives it (415 for another content type).
#[derive(Debug)]
pub(crate) struct Params(Vec<(String, String)>);

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Form::<Vec<(String, String)>>::from_request(req, state).await {
            Ok(Form(pairs)) => Ok(Self(pairs)),
            Err(rejection) => Err(ApiError::new(rejection.status(), rejection.body_text())),
        }
    }
}

impl Params {
    /// The first non-empty value of `name`.
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// As [`get`](Self::get), or a 400 naming the parameter.
    fn require(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name).ok_or_else(|| ApiError::missing(name))
    }
}
