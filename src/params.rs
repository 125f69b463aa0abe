//! Form parameters: an `application/x-www-form-urlencoded` body taken apart, and the part of
//! the signed string the parameters make.
//!
//! A body is read exactly as `form_urlencoded::parse` (the decoder behind axum's `Form`)
//! reads it: `&` separates pairs and empty pairs are skipped, the first `=` separates a name
//! from its value, `+` is a space, and `percent-encoding` decodes the escapes. One difference:
//! text that is not UTF-8 once decoded is refused instead of replaced, so no parameter reaches
//! the handler other than it was signed.

use std::ops::Range;

use percent_encoding::percent_decode;

use crate::error::SignatureErrorKind;

/// The most form parameters a request may carry. Twilio sends a few dozen; the cap keeps
/// the work a hostile body can cause proportional to what Twilio sends.
pub(crate) const MAX_PARAMS: usize = 10_000;

/// The decoded pairs of a form body, in body order.
#[derive(Debug, Default)]
pub(crate) struct Form {
    /// Every decoded name and value, one after the other.
    text: String,
    pairs: Vec<(Range<usize>, Range<usize>)>,
}

impl Form {
    /// Decodes a form body.
    ///
    /// # Errors
    /// [`SignatureErrorKind::MalformedBody`] if a name or value is not UTF-8 once decoded,
    /// or if the body has more than [`MAX_PARAMS`] pairs.
    pub(crate) fn parse(body: &[u8]) -> Result<Self, SignatureErrorKind> {
        // Decoding never lengthens text, and a body has at most one pair more than it has
        // `&`: both are sized once.
        let mut text = Vec::with_capacity(body.len());
        let separators = body.iter().filter(|&&b| b == b'&').count();
        let mut pairs = Vec::with_capacity(separators.min(MAX_PARAMS) + 1);
        for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
            if pairs.len() == MAX_PARAMS {
                return Err(SignatureErrorKind::MalformedBody);
            }
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(eq) => (&pair[..eq], &pair[eq + 1..]),
                None => (pair, &[][..]),
            };
            let name = decode_into(&mut text, name)?;
            let value = decode_into(&mut text, value)?;
            pairs.push((name, value));
        }
        // Each piece was checked on its own; so is their concatenation.
        let text = String::from_utf8(text).map_err(|_| SignatureErrorKind::MalformedBody)?;
        Ok(Self { text, pairs })
    }

    /// The pairs, in body order.
    pub(crate) fn pairs(&self) -> impl Iterator<Item = (&str, &str)> + Clone + '_ {
        self.pairs
            .iter()
            .map(|(name, value)| (&self.text[name.clone()], &self.text[value.clone()]))
    }
}

/// Appends the decoded form of a name or value to `out` and returns where it stands.
fn decode_into(out: &mut Vec<u8>, raw: &[u8]) -> Result<Range<usize>, SignatureErrorKind> {
    let start = out.len();
    // `+` is not a hex digit, so no escape spans one: decode between them.
    for (i, piece) in raw.split(|&b| b == b'+').enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend(percent_decode(piece));
    }
    std::str::from_utf8(&out[start..]).map_err(|_| SignatureErrorKind::MalformedBody)?;
    Ok(start..out.len())
}

/// What the parameters add to the signed string: each name followed by its value, sorted
/// by name then value in byte order, a pair repeated with the same value counted once.
pub(crate) fn signed_tail<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<u8> {
    let mut sorted: Vec<(&[u8], &[u8])> = pairs
        .into_iter()
        .map(|(name, value)| (name.as_bytes(), value.as_bytes()))
        .collect();
    sorted.sort_unstable();
    sorted.dedup();
    let len = sorted.iter().map(|(n, v)| n.len() + v.len()).sum();
    let mut tail = Vec::with_capacity(len);
    for (name, value) in sorted {
        tail.extend_from_slice(name);
        tail.extend_from_slice(value);
    }
    tail
}

#[cfg(test)]
mod tests {
    use super::*;

    type Owned = (String, String);

    fn parse(bytes: &[u8]) -> Result<Vec<Owned>, SignatureErrorKind> {
        Ok(Form::parse(bytes)?
            .pairs()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
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
        assert_eq!(signed_tail(pairs), b"B2a1a2b1");
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
        assert_eq!(signed_tail(pairs.iter().copied()), reference_tail(&pairs));
    }
}
