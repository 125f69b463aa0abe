//! The response future: claim or wait, run the inner service, read and store its answer.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower_service::Service;

use super::body::DedupeBody;
use super::clock;
use super::config::{Config, StoreFailure};
use super::store::{Claim, ClaimId, Store, StoreError, StoreFuture, StoredResponse, Waited};

/// The header on a replayed answer.
pub(super) const REPLAYED: &str = "idempotent-replayed";

pin_project! {
    /// The response future of [`Dedupe`](super::Dedupe).
    pub struct ResponseFuture<S, ReqBody, ResBody>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
        ResBody: Body,
    {
        #[pin]
        state: State<S, ReqBody, ResBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody, ResBody>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
        ResBody: Body,
    {
        // No token, or the store failed open: the inner service's future as it is.
        Passthrough { #[pin] future: S::Future },
        // Asking the store: claiming the key, or waiting for the delivery that holds it.
        Deciding { step: Step, pending: Option<Pending<S, ReqBody>> },
        // The first delivery, running.
        Calling { #[pin] future: S::Future, lease: Option<Lease> },
        // Reading its body to store it.
        Reading {
            head: Option<http::response::Parts>,
            body: Option<Pin<Box<ResBody>>>,
            read: BytesMut,
            trailers: Option<HeaderMap>,
            lease: Option<Lease>,
        },
        // Storing the answer or releasing the claim (`during` says which), then answering.
        Finishing {
            store: StoreFuture<()>,
            during: &'static str,
            response: Option<Response<DedupeBody<ResBody>>>,
        },
        // An answer made without the inner service.
        Done { response: Option<Response<DedupeBody<ResBody>>> },
    }
}

enum Step {
    Claim(StoreFuture<Claim>),
    Wait(StoreFuture<Waited>),
}

/// What a delivery carries until it runs the handler or gets its answer.
struct Pending<S, ReqBody> {
    service: S,
    request: Request<ReqBody>,
    key: Arc<str>,
    claim: ClaimId,
    deadline: Instant,
    config: Arc<Config>,
}

/// A claim held by the running delivery. Dropped while still armed (the request was
/// cancelled, or the inner service failed), it releases the claim.
struct Lease {
    store: Arc<dyn Store>,
    key: Arc<str>,
    claim: ClaimId,
    config: Arc<Config>,
    armed: bool,
}

impl Lease {
    fn release(mut self) -> StoreFuture<()> {
        self.armed = false;
        self.store.release(&self.key, self.claim)
    }

    fn complete(mut self, response: StoredResponse) -> StoreFuture<()> {
        self.armed = false;
        self.store
            .complete(&self.key, self.claim, response, self.config.ttl)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.armed {
            let release = self.store.release(&self.key, self.claim);
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                drop(runtime.spawn(release));
            }
        }
    }
}

impl<S, ReqBody, ResBody> ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body,
{
    pub(super) const fn passthrough(future: S::Future) -> Self {
        Self {
            state: State::Passthrough { future },
        }
    }

    pub(super) fn deciding(
        service: S,
        request: Request<ReqBody>,
        key: Arc<str>,
        config: Arc<Config>,
    ) -> Self {
        let claim = ClaimId::random();
        let step = Step::Claim(config.store.claim(&key, claim, config.claim_ttl));
        Self {
            state: State::Deciding {
                step,
                pending: Some(Pending {
                    service,
                    request,
                    key,
                    claim,
                    deadline: clock::after(Instant::now(), config.wait),
                    config,
                }),
            },
        }
    }
}

/// What the store's answer leads to.
enum Next {
    Run,
    Claim,
    Wait,
    Replay(StoredResponse),
    Failed(StoreError, &'static str),
}

/// Whether an answer with `status` is stored: not a server error, and not one that asks
/// to be tried again later.
fn storable(status: StatusCode) -> bool {
    !status.is_server_error()
        && status != StatusCode::REQUEST_TIMEOUT
        && status != StatusCode::TOO_MANY_REQUESTS
}

fn empty<B: Body>(status: StatusCode) -> Response<DedupeBody<B>> {
    let mut response = Response::new(DedupeBody::default());
    *response.status_mut() = status;
    response
}

fn replay<B: Body>(stored: StoredResponse) -> Response<DedupeBody<B>> {
    let (status, headers, body) = stored.into_parts();
    let mut response = Response::new(DedupeBody::held(body, None));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

#[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
fn log_store_error(error: &StoreError, during: &str) {
    #[cfg(feature = "tracing")]
    tracing::warn!(%error, during, "dedupe store failed");
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body<Data = Bytes>,
{
    type Output = Result<Response<DedupeBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Passthrough { future } => {
                    return future
                        .poll(cx)
                        .map(|result| result.map(|r| r.map(DedupeBody::inner)));
                }
                StateProj::Deciding { step, pending } => {
                    let next = match step {
                        Step::Claim(future) => match ready!(future.as_mut().poll(cx)) {
                            Ok(Claim::Won) => Next::Run,
                            Ok(Claim::Pending) => Next::Wait,
                            Ok(Claim::Answered(stored)) => Next::Replay(stored),
                            Err(error) => Next::Failed(error, "claim"),
                        },
                        Step::Wait(future) => match ready!(future.as_mut().poll(cx)) {
                            Ok(Waited::Answered(stored)) => Next::Replay(stored),
                            Ok(Waited::Pending) => Next::Wait,
                            Ok(Waited::Released) => Next::Claim,
                            Err(error) => Next::Failed(error, "wait"),
                        },
                    };
                    let p = pending
                        .as_mut()
                        .expect("ResponseFuture polled after completion");
                    match next {
                        Next::Claim => {
                            *step = Step::Claim(p.config.store.claim(
                                &p.key,
                                p.claim,
                                p.config.claim_ttl,
                            ));
                        }
                        Next::Wait => {
                            let now = Instant::now();
                            if now >= p.deadline {
                                #[cfg(feature = "tracing")]
                                tracing::debug!("dedupe: first delivery still running, 409");
                                state.set(State::Done {
                                    response: Some(empty(StatusCode::CONFLICT)),
                                });
                            } else {
                                *step = Step::Wait(p.config.store.wait(&p.key, p.deadline - now));
                            }
                        }
                        Next::Replay(stored) => {
                            #[cfg(feature = "tracing")]
                            tracing::debug!(status = %stored.status(), "dedupe: replayed");
                            state.set(State::Done {
                                response: Some(replay(stored)),
                            });
                        }
                        Next::Run => {
                            let Pending {
                                mut service,
                                request,
                                key,
                                claim,
                                config,
                                ..
                            } = pending.take().expect("checked above");
                            let lease = Lease {
                                store: Arc::clone(&config.store),
                                key,
                                claim,
                                config,
                                armed: true,
                            };
                            let future = service.call(request);
                            state.set(State::Calling {
                                future,
                                lease: Some(lease),
                            });
                        }
                        Next::Failed(error, during) => {
                            log_store_error(&error, during);
                            let Pending {
                                mut service,
                                request,
                                config,
                                ..
                            } = pending.take().expect("checked above");
                            match config.on_failure {
                                StoreFailure::Open => state.set(State::Passthrough {
                                    future: service.call(request),
                                }),
                                StoreFailure::Closed => state.set(State::Done {
                                    response: Some(empty(StatusCode::SERVICE_UNAVAILABLE)),
                                }),
                            }
                        }
                    }
                }
                StateProj::Calling { future, lease } => {
                    // An error drops the lease, which releases the claim.
                    let response = ready!(future.poll(cx))?;
                    let lease = lease
                        .take()
                        .expect("ResponseFuture polled after completion");
                    let limit = lease.config.body_limit as u64;
                    if !storable(response.status()) || response.body().size_hint().lower() > limit {
                        state.set(State::Finishing {
                            store: lease.release(),
                            during: "release",
                            response: Some(response.map(DedupeBody::inner)),
                        });
                        continue;
                    }
                    let (head, body) = response.into_parts();
                    state.set(State::Reading {
                        head: Some(head),
                        body: Some(Box::pin(body)),
                        read: BytesMut::new(),
                        trailers: None,
                        lease: Some(lease),
                    });
                }
                StateProj::Reading {
                    head,
                    body,
                    read,
                    trailers,
                    lease,
                } => {
                    let inner = body
                        .as_mut()
                        .expect("ResponseFuture polled after completion");
                    let frame = ready!(inner.as_mut().poll_frame(cx));
                    let finished = match frame {
                        Some(Ok(frame)) => match frame.into_data() {
                            Ok(data) => {
                                read.extend_from_slice(&data);
                                let lease_ref = lease.as_ref().expect("held while reading");
                                if read.len() > lease_ref.config.body_limit {
                                    #[cfg(feature = "tracing")]
                                    tracing::debug!("dedupe: answer too large to store");
                                    let body = DedupeBody::rest(
                                        read.split().freeze(),
                                        body.take().expect("checked above"),
                                    );
                                    let lease = lease.take().expect("checked above");
                                    Some((lease.release(), "release", body))
                                } else {
                                    None
                                }
                            }
                            Err(frame) => {
                                if let Ok(more) = frame.into_trailers() {
                                    trailers.get_or_insert_with(HeaderMap::new).extend(more);
                                }
                                None
                            }
                        },
                        Some(Err(error)) => {
                            let body = DedupeBody::failed(read.split().freeze(), error);
                            let lease = lease.take().expect("held while reading");
                            Some((lease.release(), "release", body))
                        }
                        None => {
                            let lease = lease.take().expect("held while reading");
                            let head = head.as_ref().expect("held while reading");
                            let data: Bytes = read.split().freeze();
                            let mut headers = HeaderMap::new();
                            for name in &lease.config.stored_headers {
                                for value in head.headers.get_all(name) {
                                    headers.append(name.clone(), value.clone());
                                }
                            }
                            let stored = StoredResponse::new(head.status, headers, data.clone());
                            let body = DedupeBody::held(data, trailers.take());
                            Some((lease.complete(stored), "complete", body))
                        }
                    };
                    if let Some((store, during, body)) = finished {
                        let head = head.take().expect("held while reading");
                        state.set(State::Finishing {
                            store,
                            during,
                            response: Some(Response::from_parts(head, body)),
                        });
                    }
                }
                StateProj::Finishing {
                    store,
                    during,
                    response,
                } => {
                    if let Err(error) = ready!(store.as_mut().poll(cx)) {
                        log_store_error(&error, during);
                    }
                    return Poll::Ready(Ok(response
                        .take()
                        .expect("ResponseFuture polled after completion")));
                }
                StateProj::Done { response } => {
                    return Poll::Ready(Ok(response
                        .take()
                        .expect("ResponseFuture polled after completion")));
                }
            }
        }
    }
}

impl<S, ReqBody, ResBody> fmt::Debug for ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Passthrough { .. } => "passthrough",
            State::Deciding { .. } => "deciding",
            State::Calling { .. } => "calling",
            State::Reading { .. } => "reading",
            State::Finishing { .. } => "finishing",
            State::Done { .. } => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
