//! The response future of [`TwilioSignature`](crate::TwilioSignature).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Buf;
use http::request::Parts;
use http::{Request, Response};
use http_body::Body;
use http_body_util::Limited;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::body::{Buffer, VerifiedBody};
use crate::error::{is_length_limit, RejectionResponse, SignatureErrorKind};
use crate::request::{Config, Pending};

pin_project! {
    /// Buffers and verifies the body, then runs the inner service, or resolves to the
    /// rejection without running it.
    pub struct ResponseFuture<S, B, R>
    where
        S: Service<Request<VerifiedBody>>,
    {
        #[pin]
        state: State<S, B, R>,
    }
}

/// What waits for the body: everything needed to verify it and call the inner service.
struct Job<S, R> {
    parts: Parts,
    pending: Pending,
    inner: S,
    config: Arc<Config>,
    rejection: R,
}

pin_project! {
    #[project = StateProj]
    enum State<S, B, R>
    where
        S: Service<Request<VerifiedBody>>,
    {
        Done { response: Option<S::Response> },
        Buffering {
            #[pin]
            body: Limited<B>,
            buffer: Buffer,
            job: Option<Job<S, R>>,
        },
        Calling {
            #[pin]
            future: S::Future,
        },
    }
}

impl<S, B, R> fmt::Debug for ResponseFuture<S, B, R>
where
    S: Service<Request<VerifiedBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Done { .. } => "Done",
            State::Buffering { .. } => "Buffering",
            State::Calling { .. } => "Calling",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<S, B, R> ResponseFuture<S, B, R>
where
    S: Service<Request<VerifiedBody>>,
{
    pub(crate) fn done(response: S::Response) -> Self {
        Self {
            state: State::Done {
                response: Some(response),
            },
        }
    }

    pub(crate) fn calling(future: S::Future) -> Self {
        Self {
            state: State::Calling { future },
        }
    }

    pub(crate) fn buffering(
        req: Request<B>,
        pending: Pending,
        inner: S,
        config: Arc<Config>,
        rejection: R,
    ) -> Self {
        let (parts, body) = req.into_parts();
        Self {
            state: State::Buffering {
                body: Limited::new(body, config.body_limit()),
                buffer: Buffer::default(),
                job: Some(Job {
                    parts,
                    pending,
                    inner,
                    config,
                    rejection,
                }),
            },
        }
    }
}

impl<S, B, R, ResBody> Future for ResponseFuture<S, B, R>
where
    S: Service<Request<VerifiedBody>, Response = Response<ResBody>>,
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    R: RejectionResponse<ResBody>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Done { response } => {
                    return Poll::Ready(Ok(response
                        .take()
                        .expect("ResponseFuture polled after completion")));
                }
                StateProj::Calling { future } => return future.poll(cx),
                StateProj::Buffering {
                    mut body,
                    buffer,
                    job,
                } => {
                    let outcome = match ready!(body.as_mut().poll_frame(cx)) {
                        Some(Ok(frame)) => {
                            if let Ok(mut data) = frame.into_data() {
                                buffer.push(data.copy_to_bytes(data.remaining()));
                            }
                            continue;
                        }
                        Some(Err(err)) => Err(if is_length_limit(&*err) {
                            SignatureErrorKind::BodyTooLarge.into()
                        } else {
                            SignatureErrorKind::BodyRead.into()
                        }),
                        None => Ok(std::mem::take(buffer).finish()),
                    };
                    let Job {
                        mut parts,
                        pending,
                        mut inner,
                        config,
                        mut rejection,
                    } = job.take().expect("ResponseFuture polled after completion");
                    let verified = outcome
                        .and_then(|bytes| config.after_body(&pending, &bytes).map(|v| (v, bytes)));
                    match verified {
                        Ok((verified, bytes)) => {
                            parts.extensions.insert(verified);
                            let req = Request::from_parts(parts, VerifiedBody::from_bytes(bytes));
                            let future = inner.call(req);
                            this.state.set(State::Calling { future });
                        }
                        Err(err) => {
                            let response = config.reject(&mut rejection, err, Some(&pending));
                            this.state.set(State::Done {
                                response: Some(response),
                            });
                        }
                    }
                }
            }
        }
    }
}
