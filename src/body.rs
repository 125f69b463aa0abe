//! The body the inner service receives: the exact bytes that were verified.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// The request body handed to the inner service: the bytes the layer buffered and
/// verified, unchanged. Works with axum's `Form`, `Json`, `RawForm` and `Bytes`.
///
/// ```
/// use http_body_util::BodyExt;
/// use tower_twilio_signature::VerifiedBody;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let body = VerifiedBody::from_bytes("Body=hi".into());
/// assert_eq!(body.collect().await.unwrap().to_bytes(), "Body=hi");
/// # }
/// ```
#[derive(Debug, Default, Clone)]
pub struct VerifiedBody {
    data: Option<Bytes>,
}

impl VerifiedBody {
    /// A body of these bytes.
    #[must_use]
    pub fn from_bytes(data: Bytes) -> Self {
        Self {
            data: (!data.is_empty()).then_some(data),
        }
    }

    /// An empty body.
    #[must_use]
    pub fn empty() -> Self {
        Self { data: None }
    }
}

impl Body for VerifiedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.get_mut().data.take().map(|d| Ok(Frame::data(d))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

/// Collects frames into one buffer, without copying when the body arrives in one piece.
#[derive(Debug, Default)]
pub(crate) struct Buffer {
    first: Option<Bytes>,
    rest: Option<bytes::BytesMut>,
}

impl Buffer {
    pub(crate) fn push(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        match (&mut self.first, &mut self.rest) {
            (None, _) => self.first = Some(data),
            (Some(first), None) => {
                let mut joined = bytes::BytesMut::with_capacity(first.len() + data.len());
                joined.extend_from_slice(first);
                joined.extend_from_slice(&data);
                self.rest = Some(joined);
            }
            (Some(_), Some(rest)) => rest.extend_from_slice(&data),
        }
    }

    pub(crate) fn finish(self) -> Bytes {
        match (self.first, self.rest) {
            (_, Some(rest)) => rest.freeze(),
            (Some(first), None) => first,
            (None, None) => Bytes::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_joins_frames() {
        let mut b = Buffer::default();
        assert_eq!(Buffer::default().finish(), "");
        b.push(Bytes::from_static(b"ab"));
        b.push(Bytes::new());
        b.push(Bytes::from_static(b"cd"));
        b.push(Bytes::from_static(b"e"));
        assert_eq!(b.finish(), "abcde");
        let mut one = Buffer::default();
        let src = Bytes::from_static(b"xyz");
        one.push(src.clone());
        assert_eq!(one.finish().as_ptr(), src.as_ptr());
    }

    #[test]
    fn size_hint_is_exact() {
        let b = VerifiedBody::from_bytes(Bytes::from_static(b"abc"));
        assert_eq!(b.size_hint().exact(), Some(3));
        assert!(!b.is_end_stream());
        assert!(VerifiedBody::empty().is_end_stream());
        assert!(VerifiedBody::from_bytes(Bytes::new()).is_end_stream());
    }
}
