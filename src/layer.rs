//! The layer and its builder: configuration only.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use crate::auth::BasicAuth;
use crate::error::{ConfigError, DefaultRejection};
use crate::request::Config;
use crate::service::TwilioSignature;
use crate::url::UrlSource;
use crate::verifier::Verifier;

/// A Tower [`Layer`] that lets only requests signed by Twilio reach the inner service.
///
/// It checks `X-Twilio-Signature` before reading the body, buffers the body up to a limit,
/// rebuilds the public URL Twilio called, verifies the signature in constant time, and
/// either calls the inner service with the same bytes (and a
/// [`VerifiedWebhook`](crate::VerifiedWebhook) extension) or answers with a rejection (403
/// by default) without calling it.
///
/// The keys come from a [`Verifier`] ([`new`](Self::new) and [`from_env`](Self::from_env)
/// are shortcuts for one Auth Token). Builder methods set one setting each, replacing what
/// was set before; every one that can be misused fails when the layer is built, with a
/// [`ConfigError`], not on the first webhook.
///
/// ```
/// use axum::{routing::post, Router};
/// use tower_twilio_signature::{TwilioSignatureLayer, UrlSource};
///
/// let layer = TwilioSignatureLayer::new("your auth token")?
///     .url_source(UrlSource::base_url("https://hooks.example.com")?);
/// let app: Router = Router::new()
///     .route("/sms", post(|| async { "<Response/>" }))
///     .layer(layer);
/// # Ok::<(), tower_twilio_signature::ConfigError>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct TwilioSignatureLayer<R = DefaultRejection> {
    config: Arc<Config>,
    rejection: R,
}

impl<R> fmt::Debug for TwilioSignatureLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioSignatureLayer")
            .field("config", &self.config)
            .field("rejection", &std::any::type_name::<R>())
            .finish()
    }
}

impl TwilioSignatureLayer {
    /// A layer that accepts webhooks signed with this account Auth Token.
    ///
    /// The public URL comes from the `Host` header with `https` until you choose
    /// otherwise; behind a proxy, choose a [`url_source`](Self::url_source).
    ///
    /// # Errors
    /// As [`Verifier::new`].
    pub fn new(auth_token: &str) -> Result<Self, ConfigError> {
        Ok(Self::from_verifier(Verifier::new(auth_token)?))
    }

    /// A layer with the Auth Token from the `TWILIO_AUTH_TOKEN` environment variable.
    ///
    /// # Errors
    /// As [`Verifier::from_env`].
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self::from_verifier(Verifier::from_env()?))
    }

    /// A layer that accepts what `verifier` accepts: several Auth Tokens during a rotation,
    /// SharedKeys, the extra URL forms.
    ///
    /// ```
    /// use tower_twilio_signature::{TwilioSignatureLayer, Verifier};
    ///
    /// let verifier = Verifier::new("primary token")?
    ///     .with_auth_token("secondary token")?
    ///     .with_shared_key("KS123", "shared secret")?;
    /// let layer = TwilioSignatureLayer::from_verifier(verifier);
    /// # let _ = layer;
    /// # Ok::<(), tower_twilio_signature::ConfigError>(())
    /// ```
    pub fn from_verifier(verifier: Verifier) -> Self {
        Self {
            config: Arc::new(Config::new(verifier)),
            rejection: DefaultRejection,
        }
    }
}

impl From<Verifier> for TwilioSignatureLayer {
    fn from(verifier: Verifier) -> Self {
        Self::from_verifier(verifier)
    }
}

impl<R> TwilioSignatureLayer<R> {
    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Where the public URL Twilio called comes from (see [`UrlSource`]); by default the
    /// `Host` header with `https`.
    pub fn url_source(mut self, source: UrlSource) -> Self {
        self.config_mut().set_url_source(source);
        self
    }

    /// The largest body the layer buffers, in bytes (default
    /// [`DEFAULT_BODY_LIMIT`](crate::DEFAULT_BODY_LIMIT)). A larger `Content-Length` is
    /// refused with 413 before anything is read; a streamed body is cut off with 413 as soon
    /// as it passes the limit.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.config_mut().set_body_limit(bytes);
        self
    }

    /// Requires HTTP Basic credentials before the signature is checked; a request without
    /// them gets 401 with `WWW-Authenticate: Basic realm="Twilio"`, which is how Twilio
    /// learns to send them. Put the credentials in the webhook URL you give Twilio
    /// (`https://user:pass@host/path`); Twilio drops them from the URL it signs.
    ///
    /// # Errors
    /// [`ConfigError::InvalidBasicAuth`] for an empty user name or one containing `:`.
    pub fn basic_auth(mut self, username: &str, password: &str) -> Result<Self, ConfigError> {
        self.config_mut()
            .set_basic_auth(BasicAuth::new(username, password)?);
        Ok(self)
    }

    /// Replaces the default rejection with your own, usually a closure
    /// `|err: &SignatureError| -> Response<B>`. The layer still adds the error to the
    /// response's extensions, and `WWW-Authenticate` to a 401 that lacks it.
    ///
    /// ```
    /// use axum::{body::Body, http::{Response, StatusCode}, routing::post, Router};
    /// use tower_twilio_signature::{SignatureError, TwilioSignatureLayer};
    ///
    /// let layer = TwilioSignatureLayer::new("token")?.rejection(|err: &SignatureError| {
    ///     Response::builder()
    ///         .status(err.status())
    ///         .body(Body::from("not from Twilio"))
    ///         .unwrap()
    /// });
    /// let app: Router = Router::new().route("/sms", post(|| async { "ok" })).layer(layer);
    /// # Ok::<(), tower_twilio_signature::ConfigError>(())
    /// ```
    pub fn rejection<R2>(self, rejection: R2) -> TwilioSignatureLayer<R2> {
        TwilioSignatureLayer {
            config: self.config,
            rejection,
        }
    }
}

impl<S, R: Clone> Layer<S> for TwilioSignatureLayer<R> {
    type Service = TwilioSignature<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        TwilioSignature::new(inner, Arc::clone(&self.config), self.rejection.clone())
    }
}
