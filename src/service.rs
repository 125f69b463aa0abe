//! The service [`TwilioSignatureLayer`](crate::TwilioSignatureLayer) wraps around yours.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use crate::body::VerifiedBody;
use crate::error::{DefaultRejection, RejectionResponse};
use crate::future::ResponseFuture;
use crate::request::Config;

/// The service [`TwilioSignatureLayer`](crate::TwilioSignatureLayer) wraps around yours.
///
/// Its inner service receives `Request<`[`VerifiedBody`]`>`. Every refusal is a response,
/// so its error type is the inner service's.
#[derive(Clone)]
#[must_use]
pub struct TwilioSignature<S, R = DefaultRejection> {
    inner: S,
    config: Arc<Config>,
    rejection: R,
}

impl<S: fmt::Debug, R> fmt::Debug for TwilioSignature<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioSignature")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .field("rejection", &std::any::type_name::<R>())
            .finish()
    }
}

impl<S, R> TwilioSignature<S, R> {
    pub(crate) fn new(inner: S, config: Arc<Config>, rejection: R) -> Self {
        Self {
            inner,
            config,
            rejection,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for TwilioSignature<S, R>
where
    S: Service<Request<VerifiedBody>, Response = Response<ResBody>> + Clone,
    ReqBody: Body,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    R: RejectionResponse<ResBody> + Clone,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let pending = match self.config.before_body(&req) {
            Ok(pending) => pending,
            Err(err) => {
                let response = self.config.reject(&mut self.rejection, err, None);
                return ResponseFuture::done(response);
            }
        };
        // Keep the service that was polled ready; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if pending.is_websocket() {
            // A handshake has no body to buffer (under HTTP/2 the body is the stream).
            return match self.config.after_body(&pending, &Bytes::new()) {
                Ok(verified) => {
                    let (mut parts, _body) = req.into_parts();
                    parts.extensions.insert(verified);
                    ResponseFuture::calling(
                        inner.call(Request::from_parts(parts, VerifiedBody::empty())),
                    )
                }
                Err(err) => {
                    let response = self.config.reject(&mut self.rejection, err, Some(&pending));
                    ResponseFuture::done(response)
                }
            };
        }
        ResponseFuture::buffering(
            req,
            pending,
            inner,
            Arc::clone(&self.config),
            self.rejection.clone(),
        )
    }
}
