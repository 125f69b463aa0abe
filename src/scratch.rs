//! What each thread keeps between the requests it verifies: two buffers, so that no
//! request pays to allocate or clear one (the decoded form text and the signed parameter
//! string, each a fixed 2 KiB, enough for Twilio's webhooks; anything longer goes to the
//! heap), and the order that sorted the last few requests' parameters.

use std::cell::RefCell;

/// The size of each buffer.
pub(crate) const SIZE: usize = 2048;

thread_local! {
    static DECODED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static SIGNED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static ORDERS: RefCell<[Order; ORDER_SLOTS]> = const { RefCell::new([Order::NONE; ORDER_SLOTS]) };
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

/// The most parameters an [`Order`] holds.
pub(crate) const ORDER_MAX: usize = 64;

/// How many orders each thread keeps: one per number of parameters, modulo this.
const ORDER_SLOTS: usize = 4;

/// The order that sorted some request's parameters: the indexes of its `len` parameters,
/// in canonical order. Twilio sends a webhook's parameters in the same order every time, so
/// the next request with as many parameters is likely to be sorted by it too, which takes
/// one pass to check.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Order {
    pub(crate) len: u8,
    pub(crate) indexes: [u8; ORDER_MAX],
}

impl Order {
    const NONE: Self = Self {
        len: 0,
        indexes: [0; ORDER_MAX],
    };
}

/// Runs `f` with the order this thread keeps for `len` parameters (`len` at most
/// [`ORDER_MAX`]): the last one remembered for that slot, whatever its length.
pub(crate) fn with_order<R>(len: usize, f: impl FnOnce(&mut Order) -> R) -> R {
    ORDERS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut orders) => f(&mut orders[len % ORDER_SLOTS]),
        Err(_) => f(&mut { Order::NONE }),
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
