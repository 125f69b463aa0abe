//! Taking an `application/x-www-form-urlencoded` body apart, exactly as `form_urlencoded`
//! (and so axum's `Form`) does: `&` separates pairs, the first `=` a name from its value,
//! `+` is a space, `%` and two hex digits a byte, any other `%` itself; empty pairs are
//! skipped. Unlike `form_urlencoded`, text that is not UTF-8 once decoded is refused
//! rather than replaced, so no parameter is silently altered.
//!
//! The body is read 64 bytes at a time, with vector compares, into bitmaps of its `&`,
//! `=`, `+` and `%` bytes; pair bounds come from the bitmaps, and only names and values
//! holding `+` or `%` are decoded (eight bytes at a time between escapes). Everything else
//! is borrowed.

use std::ops::Range;

use wide::u8x16;

use crate::error::SignatureErrorKind;
use crate::signature::Entry;

/// The most form parameters a request may carry. Twilio sends a few dozen; the cap keeps
/// the memory a hostile body can cost close to the body itself.
pub(crate) const MAX_PARAMS: usize = 10_000;

/// The pairs of a form body in body order, every name and value valid UTF-8.
///
/// Decoded text goes to `stack` when the body fits in it (decoding never lengthens text),
/// else to `heap`, which is sized only if something needs decoding.
pub(crate) fn parse<'a>(
    bytes: &'a [u8],
    stack: &'a mut [u8],
    heap: &'a mut Vec<u8>,
) -> Result<Vec<Entry<'a>>, SignatureErrorKind> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut parts = Parts {
        bytes,
        heap: None,
        free: &mut [],
    };
    if bytes.len() <= stack.len() {
        parts.free = stack;
    } else {
        parts.heap = Some(heap);
    }
    let mut any = u8x16::splat(0);
    let mut pairs = Vec::new();
    if bytes.len() <= SMALL_BLOCKS * 64 {
        // Classified whole first, so that the bitmaps count the pairs.
        let mut small = [Block::default(); SMALL_BLOCKS];
        let blocks = &mut small[..bytes.len().div_ceil(64)];
        for (block, chunk) in blocks.iter_mut().zip(bytes.chunks(64)) {
            *block = Block::of(chunk, &mut any);
        }
        let amps: usize = blocks.iter().map(|b| b.amp.count_ones() as usize).sum();
        pairs.reserve_exact(amps + 1);
        read_pairs(blocks.iter().copied(), &mut parts, &mut pairs)?;
    } else {
        // As many pairs as there are `&` and one, counted first.
        let amps = bytes.iter().filter(|&&b| b == b'&').count();
        pairs.reserve_exact((amps + 1).min(MAX_PARAMS));
        let blocks = bytes.chunks(64).map(|chunk| Block::of(chunk, &mut any));
        read_pairs(blocks, &mut parts, &mut pairs)?;
    }
    // ASCII is UTF-8, and so is any slice of UTF-8 between ASCII delimiters. Otherwise each
    // name and value must be (decoded ones were checked as they were decoded).
    if any.move_mask() != 0
        && std::str::from_utf8(bytes).is_err()
        && pairs
            .iter()
            .any(|e| std::str::from_utf8(e.name).is_err() || std::str::from_utf8(e.value).is_err())
    {
        return Err(SignatureErrorKind::MalformedBody);
    }
    Ok(pairs)
}

/// Bodies of at most this many 64-byte blocks are classified whole before their pairs
/// are read.
const SMALL_BLOCKS: usize = 32;

/// Reads the pairs of a body, given its blocks in order, into `pairs`.
#[inline(always)]
fn read_pairs<'a>(
    blocks: impl Iterator<Item = Block>,
    parts: &mut Parts<'a>,
    pairs: &mut Vec<Entry<'a>>,
) -> Result<(), SignatureErrorKind> {
    // The pair being read: where it starts, its first `=`, and whether its name and its
    // value hold anything to decode.
    let mut start = 0;
    let mut eq = None;
    let mut escaped = [false; 2];
    for (index, block) in blocks.enumerate() {
        let base = index * 64;
        let mut amps = block.amp;
        // The bits of this block not read yet: from the current pair's start on.
        let mut unread = u64::MAX;
        loop {
            // The next `&` (none: zero), and the pair's bits in this block before it.
            let amp = amps & amps.wrapping_neg();
            let pair = amp.wrapping_sub(1) & unread;
            match eq {
                None => {
                    let eqs = block.eq & pair;
                    let first = eqs & eqs.wrapping_neg();
                    // Before the first `=` (the whole pair without one), and after it.
                    let name = first.wrapping_sub(1) & pair;
                    let value = pair & !(first | first.wrapping_sub(1));
                    escaped[0] |= block.esc & name != 0;
                    escaped[1] |= block.esc & value != 0;
                    if first != 0 {
                        eq = Some(base + first.trailing_zeros() as usize);
                    }
                }
                Some(_) => escaped[1] |= block.esc & pair != 0,
            }
            if amp == 0 {
                break;
            }
            let end = base + amp.trailing_zeros() as usize;
            parts.push(pairs, start..end, eq, escaped)?;
            start = end + 1;
            eq = None;
            escaped = [false; 2];
            unread = !(amp | amp.wrapping_sub(1));
            amps ^= amp;
        }
    }
    parts.push(pairs, start..parts.bytes.len(), eq, escaped)
}

/// Bitmaps of one 64-byte block: bit `i` stands for byte `i`.
#[derive(Clone, Copy, Default)]
struct Block {
    amp: u64,
    eq: u64,
    /// `+` or `%`.
    esc: u64,
}

impl Block {
    /// The bitmaps of up to 64 bytes (missing bytes are none of those looked for); the
    /// bytes are also ORed into `any`, whose high bits then tell whether some byte is
    /// outside ASCII.
    #[inline(always)]
    fn of(chunk: &[u8], any: &mut u8x16) -> Self {
        match chunk.try_into() {
            Ok(block) => Self::classify(block, any),
            Err(_) => {
                let mut padded = [0u8; 64];
                padded[..chunk.len()].copy_from_slice(chunk);
                Self::classify(&padded, any)
            }
        }
    }

    #[inline(always)]
    fn classify(block: &[u8; 64], any: &mut u8x16) -> Self {
        let [amp, eq, plus, percent] = [b'&', b'=', b'+', b'%'].map(u8x16::splat);
        let mut out = Self::default();
        for (i, chunk) in block.chunks_exact(16).enumerate() {
            let v = u8x16::new(chunk.try_into().expect("16 bytes"));
            let mask = |m: u8x16| u64::from(m.move_mask() as u16) << (16 * i);
            out.amp |= mask(v.cmp_eq(amp));
            out.eq |= mask(v.cmp_eq(eq));
            out.esc |= mask(v.cmp_eq(plus) | v.cmp_eq(percent));
            *any |= v;
        }
        out
    }
}

/// The high bit of each byte of `word` that equals `b`.
#[inline]
fn equal(word: u64, b: u8) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let x = word ^ (u64::from(b) * 0x0101_0101_0101_0101);
    // A byte's high bit ends up set exactly when the byte is zero; no carry crosses bytes.
    !(((x & LOW7) + LOW7) | x) & !LOW7
}

/// The value of each hex digit, and 0x10 for every other byte.
const HEX: [u8; 256] = {
    let mut table = [0x10; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// Decodes `raw` into `out` (at least as long) and returns the decoded length, and
/// whether any decoded byte is outside ASCII.
fn decode_into(raw: &[u8], out: &mut [u8]) -> (usize, bool) {
    let mut i = 0;
    let mut n = 0;
    let mut high = 0u64;
    while i < raw.len() {
        if let Some(word) = raw.get(i..i + 8) {
            // Eight bytes at once: `+` becomes a space; stop short of the first `%`.
            let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
            let percents = equal(word, b'%');
            let spaces = (equal(word, b'+') >> 7) * u64::from(b'+' ^ b' ');
            // `n <= i`, so the eight bytes fit; any past the `%` are overwritten later.
            out[n..n + 8].copy_from_slice(&(word ^ spaces).to_le_bytes());
            if percents == 0 {
                high |= word;
                i += 8;
                n += 8;
                continue;
            }
            let k = (percents.trailing_zeros() / 8) as usize;
            // The bytes before the `%`.
            high |= word & (percents - 1);
            i += k;
            n += k;
        }
        let (byte, used) = match raw[i] {
            b'+' => (b' ', 1),
            b'%' => match raw.get(i + 1..i + 3) {
                Some(&[hi, lo]) if HEX[usize::from(hi)] | HEX[usize::from(lo)] < 16 => {
                    (HEX[usize::from(hi)] << 4 | HEX[usize::from(lo)], 3)
                }
                _ => (b'%', 1),
            },
            b => (b, 1),
        };
        out[n] = byte;
        high |= u64::from(byte);
        n += 1;
        i += used;
    }
    (n, high & 0x8080_8080_8080_8080 != 0)
}

/// A form body being taken apart.
struct Parts<'a> {
    bytes: &'a [u8],
    /// Where decoded text goes when the stack buffer is too small, until first needed.
    heap: Option<&'a mut Vec<u8>>,
    /// The part of the decoding buffer not yet written.
    free: &'a mut [u8],
}

impl<'a> Parts<'a> {
    /// Adds the pair at `range` (its first `=` at `eq`) unless it is empty.
    #[inline(always)]
    fn push(
        &mut self,
        pairs: &mut Vec<Entry<'a>>,
        range: Range<usize>,
        eq: Option<usize>,
        escaped: [bool; 2],
    ) -> Result<(), SignatureErrorKind> {
        if range.is_empty() {
            return Ok(());
        }
        if pairs.len() == MAX_PARAMS {
            return Err(SignatureErrorKind::MalformedBody);
        }
        let (name, value) = match eq {
            Some(eq) => (range.start..eq, eq + 1..range.end),
            None => (range.start..range.end, range.end..range.end),
        };
        pairs.push(Entry::new(
            self.get(name, escaped[0])?,
            self.get(value, escaped[1])?,
        ));
        Ok(())
    }

    /// The name or value at `range`: borrowed as it is when nothing needs decoding, else
    /// decoded into the buffer (and refused unless it is UTF-8).
    #[inline(always)]
    fn get(&mut self, range: Range<usize>, escaped: bool) -> Result<&'a [u8], SignatureErrorKind> {
        if escaped {
            self.decode(range)
        } else {
            Ok(&self.bytes[range])
        }
    }

    #[inline(never)]
    fn decode(&mut self, range: Range<usize>) -> Result<&'a [u8], SignatureErrorKind> {
        if let Some(heap) = self.heap.take() {
            heap.clear();
            heap.resize(self.bytes.len(), 0);
            self.free = heap;
        }
        let (n, high) = decode_into(&self.bytes[range], self.free);
        let (done, rest) = std::mem::take(&mut self.free).split_at_mut(n);
        self.free = rest;
        // ASCII needs no check.
        if high && std::str::from_utf8(done).is_err() {
            return Err(SignatureErrorKind::MalformedBody);
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Owned = (String, String);

    /// What [`parse`] yields, owned, through a stack buffer of `stack` bytes.
    fn parse_with(bytes: &[u8], stack: usize) -> Result<Vec<Owned>, SignatureErrorKind> {
        let mut buf = vec![0u8; stack];
        let mut heap = Vec::new();
        let pairs = parse(bytes, &mut buf, &mut heap)?;
        Ok(pairs
            .into_iter()
            .map(|e| (e.name, e.value))
            .map(|(k, v)| {
                (
                    String::from_utf8(k.to_vec()).expect("checked UTF-8"),
                    String::from_utf8(v.to_vec()).expect("checked UTF-8"),
                )
            })
            .collect())
    }

    /// What `form_urlencoded::parse` yields, or `MalformedBody` if a name or value is not
    /// UTF-8 once percent-decoded.
    fn reference(bytes: &[u8]) -> Result<Vec<Owned>, SignatureErrorKind> {
        let strict = bytes.split(|&b| b == b'&').all(|segment| {
            let (name, value) = match segment.iter().position(|&b| b == b'=') {
                Some(eq) => (&segment[..eq], &segment[eq + 1..]),
                None => (segment, &[][..]),
            };
            [name, value].iter().all(|part| {
                let spaced: Vec<u8> = part
                    .iter()
                    .map(|&b| if b == b'+' { b' ' } else { b })
                    .collect();
                percent_encoding::percent_decode(&spaced)
                    .decode_utf8()
                    .is_ok()
            })
        });
        if !strict {
            return Err(SignatureErrorKind::MalformedBody);
        }
        Ok(form_urlencoded::parse(bytes)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect())
    }

    #[test]
    fn agrees_with_form_urlencoded() {
        let tokens: [&[u8]; 13] = [
            b"a", b"B", b"=", b"&", b"+", b"%", b"%4", b"1", b"%c3", b"%A9", b"\xc3", b"\xa9",
            b"%zz",
        ];
        let mut inputs: Vec<Vec<u8>> = vec![Vec::new()];
        let mut last = inputs.clone();
        for _ in 0..4 {
            last = last
                .iter()
                .flat_map(|prefix| {
                    tokens.iter().map(move |t| {
                        let mut s = prefix.clone();
                        s.extend_from_slice(t);
                        s
                    })
                })
                .collect();
            inputs.extend(last.iter().cloned());
        }
        // Long names and values, across block boundaries, with escapes at every offset.
        for shift in 0..70 {
            let pad = "x".repeat(shift);
            inputs.push(format!("{pad}=a+b%2Bc&{pad}%3D={pad}++%%41&=&&q").into_bytes());
            inputs.push(format!("k={pad}%C3%A9{pad}+%2").into_bytes());
        }
        inputs.push((0..=255u8).cycle().take(700).collect());
        // Bodies on both sides of the size classified whole.
        for n in [
            SMALL_BLOCKS * 64 - 1,
            SMALL_BLOCKS * 64,
            SMALL_BLOCKS * 64 + 1,
            9000,
        ] {
            let mut body = "To=%2B14155550100&Body=a+b%C3%A9&&x&=y&".repeat(n / 38 + 1);
            body.truncate(n);
            inputs.push(body.into_bytes());
        }
        for input in &inputs {
            let want = reference(input);
            for stack in [0, input.len(), 4096] {
                assert_eq!(
                    parse_with(input, stack),
                    want,
                    "{:?} (stack {stack})",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn refuses_text_that_is_not_utf8() {
        for bad in [&b"a=%FF"[..], b"%C3=x", b"a=\xff", b"a=1&b=\xc3"] {
            assert_eq!(
                parse_with(bad, 64).unwrap_err(),
                SignatureErrorKind::MalformedBody
            );
        }
        let ok = parse_with("a=%EF%BF%BD&b=\u{FFFD}".as_bytes(), 64).unwrap();
        assert_eq!(ok[0].1, "\u{FFFD}");
        assert_eq!(ok[1].1, "\u{FFFD}");
    }

    #[test]
    fn parameter_cap() {
        let ok = "a=1&".repeat(MAX_PARAMS);
        assert!(parse_with(ok.as_bytes(), 0).is_ok());
        let over = "a=1&".repeat(MAX_PARAMS + 1);
        assert_eq!(
            parse_with(over.as_bytes(), 0).unwrap_err(),
            SignatureErrorKind::MalformedBody
        );
        // Empty segments are not parameters.
        assert!(parse_with("&".repeat(MAX_PARAMS * 2).as_bytes(), 0)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn bitmaps_and_decoding() {
        let mut block = [b'x'; 64];
        block[0] = b'&';
        block[9] = b'=';
        block[40] = b'+';
        block[63] = b'%';
        let mut any = u8x16::splat(0);
        let b = Block::classify(&block, &mut any);
        assert_eq!((b.amp, b.eq, b.esc), (1, 1 << 9, 1 << 40 | 1 << 63));
        assert_eq!(any.move_mask(), 0);
        block[5] = 0xc3;
        Block::classify(&block, &mut any);
        assert_ne!(any.move_mask(), 0);
        let mut out = [0u8; 32];
        let (n, high) = decode_into(b"ab+cd%41efgh%4+%zz%", &mut out);
        assert_eq!((&out[..n], high), (&b"ab cdAefgh%4 %zz%"[..], false));
        assert!(decode_into(b"a%C3%A9", &mut out).1);
    }
}
