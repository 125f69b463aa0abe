//! The response body of the layer: the inner service's, or bytes it already holds.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// The body of a response from [`Dedupe`](super::Dedupe): the inner service's body as
    /// it streams, or bytes the layer holds (a replayed answer, an answer it read to store,
    /// or what it read of a body before finding it too large to store, followed by the
    /// rest).
    ///
    /// Implements [`http_body::Body`] with the inner body's error type; under axum it is
    /// a `Response` body like any other. `Default` is an empty body, as rejections built
    /// by an outer layer need.
    ///
    /// ```
    /// use http_body::Body as _;
    /// use tower_twilio_signature::dedupe::DedupeBody;
    ///
    /// let body = DedupeBody::<axum::body::Body>::default();
    /// assert!(body.is_end_stream());
    /// ```
    pub struct DedupeBody<B>
    where
        B: Body,
    {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B>
    where
        B: Body,
    {
        Inner { #[pin] body: B },
        Held { data: Option<Bytes>, trailers: Option<HeaderMap> },
        Rest { data: Option<Bytes>, rest: Pin<Box<B>> },
        Failed { data: Option<Bytes>, error: Option<<B as Body>::Error> },
    }
}

impl<B: Body> DedupeBody<B> {
    /// The inner body, streamed as it comes.
    pub(crate) const fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    /// Bytes held, then the trailers if any.
    pub(crate) fn held(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        Self {
            kind: Kind::Held {
                data: (!data.is_empty()).then_some(data),
                trailers,
            },
        }
    }

    /// What was read of `rest` so far, then `rest`.
    pub(crate) fn rest(data: Bytes, rest: Pin<Box<B>>) -> Self {
        Self {
            kind: Kind::Rest {
                data: (!data.is_empty()).then_some(data),
                rest,
            },
        }
    }

    /// What was read before `error`, then `error`.
    pub(crate) fn failed(data: Bytes, error: B::Error) -> Self {
        Self {
            kind: Kind::Failed {
                data: (!data.is_empty()).then_some(data),
                error: Some(error),
            },
        }
    }
}

impl<B: Body> Default for DedupeBody<B> {
    fn default() -> Self {
        Self::held(Bytes::new(), None)
    }
}

impl<B> Body for DedupeBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Held { data, trailers } => Poll::Ready(
                data.take()
                    .map(Frame::data)
                    .or_else(|| trailers.take().map(Frame::trailers))
                    .map(Ok),
            ),
            KindProj::Rest { data, rest } => match data.take() {
                Some(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
                None => rest.as_mut().poll_frame(cx),
            },
            KindProj::Failed { data, error } => Poll::Ready(match data.take() {
                Some(data) => Some(Ok(Frame::data(data))),
                None => error.take().map(Err),
            }),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Held { data, trailers } => data.is_none() && trailers.is_none(),
            Kind::Rest { data, rest } => data.is_none() && rest.is_end_stream(),
            Kind::Failed { data, error } => data.is_none() && error.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        let held = |data: &Option<Bytes>| data.as_ref().map_or(0, |d| d.len() as u64);
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Held { data, .. } => SizeHint::with_exact(held(data)),
            Kind::Rest { data, rest } => {
                let inner = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower() + held(data));
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper + held(data));
                }
                hint
            }
            Kind::Failed { data, .. } => {
                let mut hint = SizeHint::new();
                hint.set_lower(held(data));
                hint
            }
        }
    }
}

impl<B: Body> fmt::Debug for DedupeBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Inner { .. } => "inner",
            Kind::Held { .. } => "held",
            Kind::Rest { .. } => "rest",
            Kind::Failed { .. } => "failed",
        };
        f.debug_struct("DedupeBody").field("kind", &kind).finish()
    }
}
