//! Buffers each thread keeps for the requests it verifies, so that no request pays to
//! allocate or clear one: the decoded form text and the signed parameter string. Each is
//! a fixed 2 KiB, enough for Twilio's webhooks; anything longer goes to the heap.

use std::cell::RefCell;

/// The size of each buffer.
pub(crate) const SIZE: usize = 2048;

thread_local! {
    static DECODED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static SIGNED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Which buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Buffer {
    /// Form names and values that needed decoding.
    Decoded,
    /// The parameter part of the signed string.
    Signed,
}

/// Runs `f` with this thread's `which` buffer ([`SIZE`] bytes, contents unspecified).
pub(crate) fn with<R>(which: Buffer, f: impl FnOnce(&mut [u8]) -> R) -> R {
    let key = match which {
        Buffer::Decoded => &DECODED,
        Buffer::Signed => &SIGNED,
    };
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() != SIZE {
                buf.resize(SIZE, 0);
            }
            f(&mut buf)
        }
        // Only if `f` itself asked for the same buffer: a fresh one then.
        Err(_) => f(&mut [0u8; SIZE]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reused_and_reentrant() {
        let first = with(Buffer::Signed, |b| {
            b[0] = 7;
            b.as_ptr() as usize
        });
        let (again, nested) = with(Buffer::Signed, |b| {
            let nested = with(Buffer::Signed, |inner| {
                assert_eq!(inner.len(), SIZE);
                inner.as_ptr() as usize
            });
            (b.as_ptr() as usize, nested)
        });
        assert_eq!(first, again);
        assert_ne!(again, nested);
    }
}
