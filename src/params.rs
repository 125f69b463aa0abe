//! Form parameters: an `application/x-www-form-urlencoded` body taken apart, and the part of
//! the signed string the parameters make.
//!
//! A body is read exactly as `form_urlencoded::parse` (the decoder behind axum's `Form`)
//! reads it: `&` separates pairs and empty pairs are skipped, the first `=` separates a name
//! from its value, `+` is a space, and `percent-encoding` decodes the escapes. One difference:
//! text that is not UTF-8 once decoded is refused instead of replaced, so no parameter reaches
//! the handler other than it was signed.

use std::borrow::Borrow;
use std::ops::Range;

use percent_encoding::percent_decode;

use crate::error::SignatureErrorKind;

/// The most form parameters a request may carry. Twilio sends a few dozen; the cap keeps
/// the work a hostile body can cause proportional to what Twilio sends.
pub(crate) const MAX_PARAMS: usize = 10_000;

/// The bytes the first pass over a body acts on. Most bytes are none of them, and one look
/// in this table passes them over (a `match` on every byte compiles to a jump per byte).
const DELIMITERS: [bool; 256] = {
    let mut table = [false; 256];
    table[b'&' as usize] = true;
    table[b'=' as usize] = true;
    table[b'+' as usize] = true;
    table[b'%' as usize] = true;
    table
};

/// The decoded pairs of a form body, in body order. A name or value with nothing to decode
/// is borrowed from the body; the others are decoded into one buffer.
#[derive(Debug)]
pub(crate) struct Form<'a> {
    body: &'a [u8],
    decoded: Vec<u8>,
    pairs: Vec<[Part; 2]>,
}

/// Where a name or value stands: a range of the body, or, for one holding a `+` or `%`, a
/// range of the decoded text.
#[derive(Debug, Clone)]
struct Part {
    range: Range<usize>,
    decoded: bool,
}

impl<'a> Form<'a> {
    /// Decodes a form body.
    ///
    /// # Errors
    /// [`SignatureErrorKind::MalformedBody`] if a name or value is not UTF-8 once decoded,
    /// or if the body has more than [`MAX_PARAMS`] pairs.
    pub(crate) fn parse(body: &'a [u8]) -> Result<Self, SignatureErrorKind> {
        // A body has at most one pair more than it has `&`: the list is sized once.
        let separators = memchr::memchr_iter(b'&', body).count();
        let mut pairs = Vec::with_capacity(separators.min(MAX_PARAMS) + 1);
        // First the pairs' bounds, in one pass: where the current pair starts, its first `=`,
        // and whether its name and its value hold a `+` or `%` to decode.
        let mut start = 0;
        let mut eq = None;
        let mut escaped = [false; 2];
        for (i, &byte) in body.iter().enumerate() {
            if !DELIMITERS[usize::from(byte)] {
                continue;
            }
            match byte {
                b'&' => {
                    push_pair(&mut pairs, start..i, eq, escaped)?;
                    (start, eq, escaped) = (i + 1, None, [false; 2]);
                }
                b'=' if eq.is_none() => eq = Some(i),
                b'=' => {}
                _ => escaped[usize::from(eq.is_some())] = true,
            }
        }
        push_pair(&mut pairs, start..body.len(), eq, escaped)?;

        // Then the names and values that need it are decoded, and all must be UTF-8. Slices
        // of a UTF-8 body between ASCII delimiters are UTF-8 themselves.
        let body_is_text = std::str::from_utf8(body).is_ok();
        let mut decoded = Vec::new();
        for part in pairs.iter_mut().flatten() {
            if part.decoded {
                part.range = decode_into(&mut decoded, &body[part.range.clone()], body.len())?;
            } else if !body_is_text {
                std::str::from_utf8(&body[part.range.clone()])
                    .map_err(|_| SignatureErrorKind::MalformedBody)?;
            }
        }
        Ok(Self {
            body,
            decoded,
            pairs,
        })
    }

    /// Whether the body has no pairs.
    pub(crate) fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The pairs, in body order; each name and value is UTF-8.
    pub(crate) fn pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        let get = |part: &Part| match part.decoded {
            false => &self.body[part.range.clone()],
            true => &self.decoded[part.range.clone()],
        };
        self.pairs
            .iter()
            .map(move |[name, value]| (get(name), get(value)))
    }
}

/// Adds the pair at `range` of the body, its first `=` at `eq`, unless it is empty.
fn push_pair(
    pairs: &mut Vec<[Part; 2]>,
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
        None => (range.clone(), range.end..range.end),
    };
    pairs.push([
        Part {
            range: name,
            decoded: escaped[0],
        },
        Part {
            range: value,
            decoded: escaped[1],
        },
    ]);
    Ok(())
}

/// Appends the decoded form of a name or value to `out` (sized for a body of `body_len`
/// bytes when first used: decoding never lengthens text) and returns where it stands.
fn decode_into(
    out: &mut Vec<u8>,
    raw: &[u8],
    body_len: usize,
) -> Result<Range<usize>, SignatureErrorKind> {
    if out.capacity() == 0 {
        out.reserve_exact(body_len);
    }
    let start = out.len();
    // `+` is not a hex digit, so no escape spans one: decode between them.
    for (i, piece) in raw.split(|&b| b == b'+').enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        if piece.contains(&b'%') {
            out.extend(percent_decode(piece));
        } else {
            out.extend_from_slice(piece);
        }
    }
    std::str::from_utf8(&out[start..]).map_err(|_| SignatureErrorKind::MalformedBody)?;
    Ok(start..out.len())
}

/// The names and values of pairs as the public API takes them (any `(K, V)` of strings,
/// owned or borrowed), as bytes.
pub(crate) fn pair_bytes<'a, T, K, V>(
    items: &'a [T],
) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone
where
    T: Borrow<(K, V)>,
    K: AsRef<str> + 'a,
    V: AsRef<str> + 'a,
{
    items.iter().map(|item| {
        let (k, v) = item.borrow();
        (k.as_ref().as_bytes(), v.as_ref().as_bytes())
    })
}

/// What the parameters add to the signed string: each name followed by its value, sorted
/// by name then value in byte order, a pair repeated with the same value counted once.
pub(crate) fn signed_tail<'a>(pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Vec<u8> {
    // Each pair behind its name's first eight bytes as an integer (zero-padded, big-endian),
    // which orders names as their bytes do: most comparisons end there.
    let mut sorted: Vec<(u64, &[u8], &[u8])> = pairs
        .into_iter()
        .map(|(name, value)| (prefix_key(name), name, value))
        .collect();
    sorted.sort_unstable();
    sorted.dedup();
    let len = sorted.iter().map(|(_, n, v)| n.len() + v.len()).sum();
    let mut tail = Vec::with_capacity(len);
    for (_, name, value) in sorted {
        tail.extend_from_slice(name);
        tail.extend_from_slice(value);
    }
    tail
}

/// The value of parameter `name`, if the pairs give it exactly one distinct value that is
/// UTF-8.
pub(crate) fn single_value<'a>(
    pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    name: &str,
) -> Option<&'a str> {
    let mut found = None;
    for (k, v) in pairs {
        if k == name.as_bytes() && found.replace(v).is_some_and(|old| old != v) {
            return None;
        }
    }
    std::str::from_utf8(found?).ok()
}

/// The value of parameter `name` in a query string, if it has exactly one distinct value
/// and the query decodes to UTF-8 as a form body must.
pub(crate) fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    let form = Form::parse(query?.as_bytes()).ok()?;
    single_value(form.pairs(), name).map(str::to_owned)
}

/// A name's first eight bytes, zero-padded, as a big-endian integer.
fn prefix_key(name: &[u8]) -> u64 {
    let mut eight = [0u8; 8];
    match name.first_chunk::<8>() {
        Some(first) => eight = *first,
        None => eight[..name.len()].copy_from_slice(name),
    }
    u64::from_be_bytes(eight)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Owned = (String, String);

    fn parse(bytes: &[u8]) -> Result<Vec<Owned>, SignatureErrorKind> {
        Ok(Form::parse(bytes)?
            .pairs()
            .map(|(k, v)| {
                let text = |b: &[u8]| String::from_utf8(b.to_vec()).expect("checked UTF-8");
                (text(k), text(v))
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
                percent_decode(&spaced).decode_utf8().is_ok()
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
        for shift in 0..70 {
            let pad = "x".repeat(shift);
            inputs.push(format!("{pad}=a+b%2Bc&{pad}%3D={pad}++%%41&=&&q%2+B").into_bytes());
            inputs.push(format!("k={pad}%C3%A9{pad}+%2").into_bytes());
        }
        inputs.push((0..=255u8).cycle().take(700).collect());
        let mut long = "To=%2B14155550100&Body=a+b%C3%A9&&x&=y&".repeat(250);
        long.truncate(9000);
        inputs.push(long.into_bytes());
        for input in &inputs {
            assert_eq!(
                parse(input),
                reference(input),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn refuses_text_that_is_not_utf8() {
        for bad in [
            &b"a=%FF"[..],
            b"%C3=x",
            b"a=\xff",
            b"a=1&b=\xc3",
            b"a=%C3+%A9",
        ] {
            assert_eq!(parse(bad).unwrap_err(), SignatureErrorKind::MalformedBody);
        }
        // U+FFFD sent by the client is text like any other.
        let ok = parse("a=%EF%BF%BD&b=\u{FFFD}".as_bytes()).unwrap();
        assert_eq!(ok[0].1, "\u{FFFD}");
        assert_eq!(ok[1].1, "\u{FFFD}");
    }

    #[test]
    fn parameter_cap() {
        let ok = "a=1&".repeat(MAX_PARAMS);
        assert!(parse(ok.as_bytes()).is_ok());
        let over = "a=1&".repeat(MAX_PARAMS + 1);
        assert_eq!(
            parse(over.as_bytes()).unwrap_err(),
            SignatureErrorKind::MalformedBody
        );
        // Empty segments are not parameters.
        assert!(parse("&".repeat(MAX_PARAMS * 2).as_bytes())
            .unwrap()
            .is_empty());
    }

    /// The plain statement of the rule, for comparison.
    fn reference_tail(pairs: &[(&str, &str)]) -> Vec<u8> {
        let distinct: std::collections::BTreeSet<(&[u8], &[u8])> = pairs
            .iter()
            .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
            .collect();
        distinct
            .into_iter()
            .flat_map(|(k, v)| [k, v].concat())
            .collect()
    }

    #[test]
    fn canonical_order_and_dedup() {
        let pairs = [("b", "1"), ("B", "2"), ("a", "2"), ("a", "1"), ("a", "2")];
        let bytes =
            |pairs: &[(&'static str, &'static str)]| -> Vec<(&'static [u8], &'static [u8])> {
                pairs
                    .iter()
                    .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
                    .collect()
            };
        assert_eq!(signed_tail(bytes(&pairs)), b"B2a1a2b1");
        let names = [
            "MessagingSid",
            "MessageSid",
            "Messag",
            "abc\0",
            "abc",
            "",
            "é",
            "z",
        ];
        let pairs: Vec<(&str, &str)> = (0..200)
            .map(|i| (names[i * 7 % names.len()], ["1", "", "10", "2"][i % 4]))
            .collect();
        assert_eq!(signed_tail(bytes(&pairs)), reference_tail(&pairs));
    }

    #[test]
    fn single_values() {
        let bytes =
            |pairs: &[(&'static str, &'static str)]| -> Vec<(&'static [u8], &'static [u8])> {
                pairs
                    .iter()
                    .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
                    .collect()
            };
        let pairs = bytes(&[("AccountSid", "AC1"), ("Body", "x"), ("AccountSid", "AC1")]);
        assert_eq!(single_value(pairs.clone(), "AccountSid"), Some("AC1"));
        assert_eq!(single_value(pairs, "To"), None);
        let two = bytes(&[("AccountSid", "AC1"), ("AccountSid", "AC2")]);
        assert_eq!(single_value(two, "AccountSid"), None);
        assert_eq!(
            query_value(Some("a=1&AccountSid=AC%31&b"), "AccountSid").as_deref(),
            Some("AC1")
        );
        assert_eq!(
            query_value(Some("AccountSid=1&AccountSid=2"), "AccountSid"),
            None
        );
        assert_eq!(query_value(None, "AccountSid"), None);
    }
}
