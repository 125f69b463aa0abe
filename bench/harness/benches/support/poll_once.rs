//! Shared by `benches/verify.rs` and `src/bin/instructions.rs`.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Runs a future that must finish at its first poll: the layer's, over a body that is
/// all there (as a server's usually is by the time the request is routed). One poll with a
/// waker that does nothing, so that the harness adds no executor bookkeeping (entering a
/// runtime, its clock reads) to what is measured; a future that waited would panic here
/// rather than be timed wrong.
pub(crate) fn poll_once<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the request did not finish at its first poll"),
    }
}
