//! The body the inner service receives: the exact bytes that were verified.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};

/// The request body handed to the inner service: the bytes the layer buffered and
/// verified, unchanged. Works with axum's `Form`, `Json`, `RawForm` and `Bytes`.
///
/// The type is a body, not a proof: anyone can build one (to call a handler in a test, for
/// instance). What proves a request was verified is the [`VerifiedWebhook`] the layer puts
/// into its extensions.
///
/// [`VerifiedWebhook`]: crate::VerifiedWebhook
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

/// Frames smaller than this are copied together rather than kept one by one.
const COALESCE: usize = 8 * 1024;

/// Collects frames, then joins them once, into a buffer of exactly the body's size.
///
/// Large frames (usually slices of the connection's own read buffer) are kept as they
/// arrive rather than copied into a growing buffer, whose doubling would hold up to twice
/// the body per request while it waits. Small frames are copied together, so a body sent in
/// tiny chunks costs no more than its size. A body that arrives in one frame is never copied,
/// and only a second frame allocates the rest of the state (the request's future, which
/// carries this while the body arrives, stays small).
#[derive(Debug, Default)]
pub(crate) struct Buffer {
    first: Option<Bytes>,
    more: Option<Box<Frames>>,
}

/// The frames of a body that came in more than one.
#[derive(Debug, Default)]
struct Frames {
    frames: Vec<Bytes>,
    tail: BytesMut,
    len: usize,
}

impl Buffer {
    pub(crate) fn push(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        // `first` holds the body until a second frame moves it into `more`.
        let more = match (&mut self.more, self.first.take()) {
            (Some(more), _) => more,
            (None, None) => {
                self.first = Some(data);
                return;
            }
            (more @ None, Some(first)) => {
                let mut frames = Box::<Frames>::default();
                frames.add(first);
                more.insert(frames)
            }
        };
        more.add(data);
    }

    pub(crate) fn finish(self) -> Bytes {
        match (self.first, self.more) {
            (_, Some(more)) => more.finish(),
            (Some(first), None) => first,
            (None, None) => Bytes::new(),
        }
    }
}

impl Frames {
    fn add(&mut self, data: Bytes) {
        self.len += data.len();
        if data.len() >= COALESCE {
            self.flush_tail();
            self.frames.push(data);
        } else {
            self.tail.extend_from_slice(&data);
            if self.tail.len() >= COALESCE {
                self.flush_tail();
            }
        }
    }

    fn flush_tail(&mut self) {
        if !self.tail.is_empty() {
            self.frames.push(self.tail.split().freeze());
        }
    }

    fn finish(mut self) -> Bytes {
        self.flush_tail();
        match self.frames.len() {
            0 => Bytes::new(),
            1 => self.frames.pop().expect("one frame"),
            _ => {
                let mut joined = BytesMut::with_capacity(self.len);
                for frame in &self.frames {
                    joined.extend_from_slice(frame);
                }
                joined.freeze()
            }
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
    fn tiny_frames_are_coalesced_and_large_ones_kept() {
        let mut b = Buffer::default();
        let mut want = Vec::new();
        for i in 0..100_000u32 {
            let byte = (i % 251) as u8;
            b.push(Bytes::copy_from_slice(&[byte]));
            want.push(byte);
        }
        let frames = |b: &Buffer| b.more.as_ref().map_or(0, |m| m.frames.len());
        assert!(
            frames(&b) <= 100_000 / COALESCE + 1,
            "{} frames",
            frames(&b)
        );
        let big = Bytes::from(vec![7u8; COALESCE * 2]);
        b.push(big.clone());
        let last = b.more.as_ref().and_then(|m| m.frames.last());
        assert_eq!(last.map(|f| f.as_ptr()), Some(big.as_ptr()));
        want.extend_from_slice(&big);
        b.push(Bytes::from_static(b"end"));
        want.extend_from_slice(b"end");
        assert_eq!(b.finish(), want);
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
