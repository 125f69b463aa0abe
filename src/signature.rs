//! Twilio's signing algorithm, with no HTTP types: the string to sign, the MAC, and a
//! [`Verifier`] for requests your own code has already taken apart.
//!
//! The string to sign is the full URL Twilio requested followed, for a form body, by every
//! parameter: keys in byte order and, for a repeated key, its distinct values in byte order,
//! each appended as key then value with no delimiter. A JSON (or any other) body is covered
//! instead by `bodySHA256` in the query: the lowercase hex SHA-256 of the body.

use std::borrow::{Borrow, Cow};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{ConfigError, SignatureError, SignatureErrorKind};
use crate::form;
use crate::keys::{Algorithm, KeySet, MatchedKey, PreparedMac, Selected};
use crate::scratch;
use crate::url::{parse_full_url, Candidates};
use crate::verified::VerifiedWebhook;

/// The `X-Twilio-Signature` Twilio would send for `url` and form `params`, signed with an
/// account Auth Token (HMAC-SHA1).
///
/// For tests and tools that play Twilio's part. `params` are `(key, value)` pairs, or
/// references to them, in any order.
///
/// ```
/// // The example from Twilio's documentation.
/// let params = [
///     ("CallSid", "CA1234567890ABCDE"),
///     ("Caller", "+12349013030"),
///     ("Digits", "1234"),
///     ("From", "+12349013030"),
///     ("To", "+18005551212"),
/// ];
/// let sig = tower_twilio_signature::sign("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", params);
/// assert_eq!(sig, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
/// ```
#[must_use]
pub fn sign<I, K, V>(auth_token: &str, url: &str, params: I) -> String
where
    I: IntoIterator,
    I::Item: Borrow<(K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    sign_with(Algorithm::HmacSha1, auth_token, url, params)
}

/// Like [`sign`], for a SharedKey secret with the algorithm its settings header names.
///
/// ```
/// use tower_twilio_signature::{sign_with, Algorithm};
///
/// let sig = sign_with(Algorithm::HmacSha256, "shared secret", "https://example.com/sms", [("Body", "hi")]);
/// assert_eq!(sig.len(), 44); // base64 of 32 bytes
/// ```
#[must_use]
pub fn sign_with<I, K, V>(algorithm: Algorithm, secret: &str, url: &str, params: I) -> String
where
    I: IntoIterator,
    I::Item: Borrow<(K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let owned: Vec<I::Item> = params.into_iter().collect();
    let mut mac = PreparedMac::new(algorithm, secret.as_bytes()).start();
    mac.update(url.as_bytes());
    mac.update(Params::from_items(&owned).signed_tail(&mut [], &mut Vec::new()));
    let mut out = [0u8; 32];
    let n = mac.finish(&mut out);
    STANDARD.encode(&out[..n])
}

/// The lowercase hex SHA-256 of a body, as Twilio puts it in `bodySHA256`.
///
/// ```
/// let body = br#"{"CallSid":"CA1234567890ABCDE","Caller":"+12349013030"}"#;
/// assert_eq!(
///     tower_twilio_signature::body_sha256(body),
///     "5ccde7145dfb8f56479710896586cb9d5911809d83afbe34627818790db0aec9",
/// );
/// ```
#[must_use]
pub fn body_sha256(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// `url` with `bodySHA256=<hash of body>` appended to its query, the URL Twilio calls
/// (and signs) for a JSON body.
///
/// ```
/// use tower_twilio_signature::{sign, url_with_body_sha256};
///
/// let body = br#"{"hello":"world"}"#;
/// let url = url_with_body_sha256("https://example.com/events?tenant=acme", body);
/// assert!(url.starts_with("https://example.com/events?tenant=acme&bodySHA256="));
/// let header = sign("token", &url, [] as [(&str, &str); 0]); // the URL alone is signed
/// # let _ = header;
/// ```
#[must_use]
pub fn url_with_body_sha256(url: &str, body: &[u8]) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}bodySHA256={}", body_sha256(body))
}

/// Form parameters as received; [`Params::signed_tail`] puts them in canonical order (by
/// key then value, byte order, repeated identical pairs once). Names and values are
/// borrowed from the caller's pairs or from the body; those that needed decoding, from one
/// buffer. A request costs a constant number of allocations whatever its parameters.
#[derive(Debug, Default)]
pub(crate) struct Params<'a> {
    entries: Vec<Entry<'a>>,
}

/// A name and its value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry<'a> {
    pub(crate) name: &'a [u8],
    pub(crate) value: &'a [u8],
}

impl<'a> Entry<'a> {
    #[inline]
    pub(crate) fn new(name: &'a [u8], value: &'a [u8]) -> Self {
        Self { name, value }
    }

    /// Byte order of names, then of values.
    #[inline]
    fn order(&self, other: &Self) -> std::cmp::Ordering {
        (self.name, self.value).cmp(&(other.name, other.value))
    }
}

/// A name's first eight bytes, big-endian and zero-padded: ordering by it never
/// contradicts byte order, so most comparisons end with one integer comparison.
#[inline]
fn sort_prefix(name: &[u8]) -> u64 {
    // Assembled in registers: bytes stored one way and loaded another stall the CPU.
    let n = name.len();
    match name.first_chunk::<8>() {
        Some(eight) => u64::from_be_bytes(*eight),
        None if n >= 4 => {
            let head = u32::from_be_bytes(name[..4].try_into().expect("four bytes"));
            let tail = u32::from_be_bytes(name[n - 4..].try_into().expect("four bytes"));
            u64::from(head) << 32 | u64::from(tail) << (8 * (8 - n))
        }
        None if n > 0 => {
            let byte = |i: usize| u64::from(name[i]) << (56 - 8 * i);
            byte(0) | byte(n / 2) | byte(n - 1)
        }
        None => 0,
    }
}

/// Copies `src` into `dst` of the same length. Names and values are mostly a few bytes
/// long, where a call to `memcpy` costs more than the copy: up to 32 bytes are moved as
/// two overlapping fixed-size pieces.
#[inline(always)]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    let dst = &mut dst[..n];
    match n {
        0 => {}
        1..=3 => {
            dst[0] = src[0];
            dst[n / 2] = src[n / 2];
            dst[n - 1] = src[n - 1];
        }
        4..=7 => {
            dst[..4].copy_from_slice(&src[..4]);
            dst[n - 4..].copy_from_slice(&src[n - 4..]);
        }
        8..=15 => {
            dst[..8].copy_from_slice(&src[..8]);
            dst[n - 8..].copy_from_slice(&src[n - 8..]);
        }
        16..=32 => {
            dst[..16].copy_from_slice(&src[..16]);
            dst[n - 16..].copy_from_slice(&src[n - 16..]);
        }
        _ => dst.copy_from_slice(src),
    }
}

impl<'a> Params<'a> {
    /// The pairs the caller supplied (owned tuples or references to them), in any order.
    pub(crate) fn from_items<T, K, V>(items: &'a [T]) -> Self
    where
        T: Borrow<(K, V)>,
        K: AsRef<str> + 'a,
        V: AsRef<str> + 'a,
    {
        let mut entries = Vec::with_capacity(items.len());
        for item in items {
            let (k, v) = item.borrow();
            entries.push(Entry::new(k.as_ref().as_bytes(), v.as_ref().as_bytes()));
        }
        Self { entries }
    }

    /// The pairs of an `application/x-www-form-urlencoded` body (see
    /// [`form::parse`]); decoded text goes to `stack` or `heap`.
    pub(crate) fn from_form(
        bytes: &'a [u8],
        stack: &'a mut [u8],
        heap: &'a mut Vec<u8>,
    ) -> Result<Self, SignatureErrorKind> {
        form::parse(bytes, stack, heap).map(|entries| Self { entries })
    }

    /// What the parameters add to the signed string: each name then its value, names then
    /// values in byte order, repeated identical pairs once. Written once so that every
    /// candidate URL reuses it: into `stack` when it fits, else into `heap`.
    pub(crate) fn signed_tail<'b>(&self, stack: &'b mut [u8], heap: &'b mut Vec<u8>) -> &'b [u8] {
        let entries = &self.entries[..];
        if entries.len() < 2 {
            return write_tail(entries.iter(), stack, heap);
        }
        if entries.len() > SMALL {
            let mut sorted = entries.to_vec();
            sorted.sort_unstable_by(Entry::order);
            sorted.dedup_by(|a, b| a.order(b).is_eq());
            return write_tail(sorted.iter(), stack, heap);
        }
        // A few dozen pairs: sort integers on the stack. Each holds the name's first seven
        // bytes above the pair's index, so most comparisons end there; runs sharing those
        // bytes are then ordered by name and value. The sort is skipped when the order
        // that sorted the thread's last request of as many pairs sorts these too.
        let key = |i: usize| sort_prefix(entries[i].name) & !0xff | i as u64;
        let at = |k: &u64| &entries[(k & 0xff) as usize];
        let same_prefix = |a: &u64, b: &u64| a >> 8 == b >> 8;
        let mut keys = [0u64; SMALL];
        let keys = &mut keys[..entries.len()];
        let unique = scratch::with_order(keys.len(), |order| {
            // The order that sorted the last request of this size, if it sorts this one:
            // every name's first bytes then come strictly after the previous name's.
            if usize::from(order.len) == keys.len() {
                for (slot, &i) in keys.iter_mut().zip(&order.indexes) {
                    *slot = key(usize::from(i));
                }
                if keys.windows(2).all(|w| w[0] >> 8 < w[1] >> 8) {
                    return keys.len();
                }
            }
            for (i, slot) in keys.iter_mut().enumerate() {
                *slot = key(i);
            }
            keys.sort_unstable();
            if !keys.windows(2).any(|w| same_prefix(&w[0], &w[1])) {
                order.len = keys.len() as u8;
                for (slot, k) in order.indexes.iter_mut().zip(keys.iter()) {
                    *slot = *k as u8;
                }
                return keys.len();
            }
            for run in keys.chunk_by_mut(same_prefix) {
                run.sort_unstable_by(|a, b| at(a).order(at(b)));
            }
            let mut kept = keys.to_vec();
            kept.dedup_by(|a, b| at(a).order(at(b)).is_eq());
            keys[..kept.len()].copy_from_slice(&kept);
            kept.len()
        });
        write_tail(keys[..unique].iter().map(at), stack, heap)
    }
}

/// The most pairs sorted by integer keys on the stack.
const SMALL: usize = scratch::ORDER_MAX;

/// Writes each entry's name then value, into `stack` if they fit, else into `heap`.
fn write_tail<'a, 'e: 'a, 'b>(
    entries: impl Iterator<Item = &'a Entry<'e>> + Clone,
    stack: &'b mut [u8],
    heap: &'b mut Vec<u8>,
) -> &'b [u8] {
    let total = entries.clone().map(|e| e.name.len() + e.value.len()).sum();
    let out = if total <= stack.len() {
        &mut stack[..total]
    } else {
        heap.clear();
        heap.resize(total, 0);
        &mut heap[..]
    };
    let mut rest = &mut *out;
    for e in entries {
        for piece in [e.name, e.value] {
            let (dst, after) = std::mem::take(&mut rest).split_at_mut(piece.len());
            copy_short(dst, piece);
            rest = after;
        }
    }
    out
}

/// The decoded `bodySHA256` of a query: `None` if absent, an error if given more than once.
pub(crate) fn body_hash_param(
    query: Option<&str>,
) -> Result<Option<Cow<'_, str>>, SignatureErrorKind> {
    let Some(query) = query else { return Ok(None) };
    if !query.contains("SHA256") && !query.contains('%') {
        return Ok(None);
    }
    let mut found = None;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if k == "bodySHA256" && found.replace(v).is_some() {
            return Err(SignatureErrorKind::AmbiguousBodyHash);
        }
    }
    Ok(found)
}

/// Whether `expected` (from the query) is the lowercase hex SHA-256 of `body`.
pub(crate) fn body_hash_matches(expected: &str, body: &[u8]) -> bool {
    let mut hex_buf = [0u8; 64];
    hex::encode_to_slice(Sha256::digest(body), &mut hex_buf).expect("64 hex digits");
    expected.len() == 64 && bool::from(hex_buf.ct_eq(expected.as_bytes()))
}

/// The value of each character of the standard base64 alphabet, and 0x80 for any other
/// byte.
const BASE64: [u8; 256] = {
    let mut table = [0x80; 256];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut i = 0;
    while i < alphabet.len() {
        table[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// A decoded signature header.
#[derive(Clone, Copy)]
pub(crate) struct SignatureBytes {
    buf: [u8; 32],
    len: usize,
}

impl std::fmt::Debug for SignatureBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignatureBytes(..)")
    }
}

impl SignatureBytes {
    /// Decodes a base64 (standard, padded, canonical) MAC of 20 or 32 bytes.
    /// Whitespace is not trimmed, as the SDKs do not trim it.
    pub(crate) fn decode(header: &[u8]) -> Result<Self, SignatureErrorKind> {
        if header.is_empty() {
            return Err(SignatureErrorKind::MissingHeader);
        }
        let malformed = SignatureErrorKind::MalformedHeader;
        // 20 or 32 bytes are 28 or 44 characters: whole groups of four for all but the
        // last two bytes, then three characters and one `=`.
        let len = match header.len() {
            28 => 20,
            44 => 32,
            _ => return Err(malformed),
        };
        let (groups, last) = header.split_at(header.len() - 4);
        let mut buf = [0u8; 32];
        // Any byte outside the alphabet sets the high bit of `bad`.
        let mut bad = 0u8;
        let sextet = |c: u8, bad: &mut u8| {
            let v = BASE64[usize::from(c)];
            *bad |= v;
            u32::from(v)
        };
        for (out, group) in buf.chunks_exact_mut(3).zip(groups.chunks_exact(4)) {
            let n = group.iter().fold(0, |n, &c| n << 6 | sextet(c, &mut bad));
            out.copy_from_slice(&n.to_be_bytes()[1..]);
        }
        let n = last[..3]
            .iter()
            .fold(0, |n, &c| n << 6 | sextet(c, &mut bad));
        // Canonical: the two bits past the last byte are zero.
        if bad & 0x80 != 0 || last[3] != b'=' || n & 0b11 != 0 {
            return Err(malformed);
        }
        buf[len - 2..len].copy_from_slice(&((n >> 2) as u16).to_be_bytes());
        Ok(Self { buf, len })
    }

    fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Tries every selected key over every candidate URL; the first match wins.
///
/// `params` follow URLs that keep their query; WebSocket candidates that drop their query
/// are followed by the query's own pairs instead.
pub(crate) fn find_match(
    keys: &Selected<'_>,
    candidates: &Candidates,
    params: &Params<'_>,
    signature: &SignatureBytes,
) -> Option<(usize, MatchedKey)> {
    let query_pairs: Vec<(Cow<'_, str>, Cow<'_, str>)> = match candidates.query_params() {
        Some(q) if candidates.iter().any(|(_, c)| c.query_params) => {
            form_urlencoded::parse(q.as_bytes()).collect()
        }
        _ => Vec::new(),
    };
    let query_params = Params::from_items(&query_pairs);
    scratch::with(scratch::Buffer::Signed, |stack| {
        let mut heap = Vec::new();
        let tail = params.signed_tail(stack, &mut heap);
        let mut query_heap = Vec::new();
        let query_tail = query_params.signed_tail(&mut [], &mut query_heap);
        try_each(keys, candidates, signature, tail, query_tail)
    })
}

/// Tries every selected key over every candidate URL, each followed by its parameters.
fn try_each(
    keys: &Selected<'_>,
    candidates: &Candidates,
    signature: &SignatureBytes,
    tail: &[u8],
    query_tail: &[u8],
) -> Option<(usize, MatchedKey)> {
    let mut mac_out = [0u8; 32];
    for (mac, which) in keys.each() {
        if mac.algorithm().mac_len() != signature.len {
            continue;
        }
        for (index, (url, candidate)) in candidates.iter().enumerate() {
            let mut running = mac.start();
            running.update(url.as_bytes());
            running.update(if candidate.query_params {
                query_tail
            } else {
                tail
            });
            let n = running.finish(&mut mac_out);
            if bool::from(mac_out[..n].ct_eq(signature.as_slice())) {
                return Some((index, which.to_owned()));
            }
        }
    }
    None
}

/// Verifies requests your own code has taken apart: a URL and either the form
/// parameters or the raw body.
///
/// The URL is the one Twilio requested, as your code reconstructed it; it is tried as
/// given and with the default port added or the port removed, as Twilio's SDKs do.
/// The scheme is matched in any case and signed in lowercase, as Twilio writes it; host,
/// path and query are used byte for byte. Unlike the SDKs, a URL with user info or a
/// fragment is refused ([`SignatureErrorKind::NoUrl`]): Twilio never signs either.
///
/// ```
/// use tower_twilio_signature::{sign, Verifier};
///
/// let verifier = Verifier::new("12345")?;
/// let url = "https://mycompany.com/myapp";
/// let params = [("Digits", "1234"), ("From", "+12349013030")];
/// let header = sign("12345", url, params);
///
/// assert!(verifier.verify_form(url, params, &header, None).is_ok());
/// assert!(verifier.verify_form(url, [("Digits", "9999")], &header, None).is_err());
/// # Ok::<(), tower_twilio_signature::ConfigError>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct Verifier {
    pub(crate) keys: KeySet,
    pub(crate) extra_url_forms: bool,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &self.keys)
            .field("extra_url_forms", &self.extra_url_forms)
            .finish()
    }
}

impl Verifier {
    /// A verifier for webhooks signed with an account Auth Token.
    ///
    /// # Errors
    /// [`ConfigError::EmptySecret`] if the token is empty.
    pub fn new(auth_token: &str) -> Result<Self, ConfigError> {
        let mut keys = KeySet::default();
        keys.add_auth_token(auth_token)?;
        Ok(Self {
            keys,
            extra_url_forms: false,
        })
    }

    /// A verifier for SharedKey webhooks only (no Auth Token).
    ///
    /// # Errors
    /// As [`with_shared_key`](Self::with_shared_key).
    pub fn from_shared_key(key_id: &str, secret: &str) -> Result<Self, ConfigError> {
        let mut keys = KeySet::default();
        keys.add_shared_key(key_id, secret)?;
        Ok(Self {
            keys,
            extra_url_forms: false,
        })
    }

    /// Also accepts this Auth Token: during rotation both the primary and the secondary
    /// token sign valid webhooks.
    ///
    /// # Errors
    /// [`ConfigError::EmptySecret`] if the token is empty.
    pub fn with_auth_token(mut self, auth_token: &str) -> Result<Self, ConfigError> {
        self.keys.add_auth_token(auth_token)?;
        Ok(self)
    }

    /// Accepts webhooks whose `X-Twilio-Webhooks-Signature-Settings` names `key_id`,
    /// verified with `secret` and the algorithm the header names.
    ///
    /// # Errors
    /// [`ConfigError::InvalidKeyId`], [`ConfigError::DuplicateKeyId`] or
    /// [`ConfigError::EmptySecret`].
    pub fn with_shared_key(mut self, key_id: &str, secret: &str) -> Result<Self, ConfigError> {
        self.keys.add_shared_key(key_id, secret)?;
        Ok(self)
    }

    /// Also tries the URL forms twilio-node 6 tries besides the URL as received: the
    /// WHATWG-serialized URL (lowercase host, some characters percent-encoded) and the
    /// query re-encoded as Node's legacy `querystring` module does. Off by default; useful
    /// only where a back end signed such a form.
    pub fn with_extra_url_forms(mut self, enabled: bool) -> Self {
        self.extra_url_forms = enabled;
        self
    }

    /// Verifies a form (or GET) request: `params` are the decoded body parameters in any
    /// order (none for a GET). `settings` is the `X-Twilio-Webhooks-Signature-Settings`
    /// value, if the request had one.
    ///
    /// # Errors
    /// A [`SignatureError`] saying why the request is not genuine.
    pub fn verify_form<I, K, V>(
        &self,
        url: &str,
        params: I,
        signature: &str,
        settings: Option<&str>,
    ) -> Result<VerifiedWebhook, SignatureError>
    where
        I: IntoIterator,
        I::Item: Borrow<(K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let owned: Vec<I::Item> = params.into_iter().collect();
        self.verify_parts(url, &Params::from_items(&owned), None, signature, settings)
    }

    /// Verifies a request whose body is covered by `bodySHA256` in the URL's query
    /// (JSON webhooks). An empty body needs no hash.
    ///
    /// # Errors
    /// A [`SignatureError`]: [`SignatureErrorKind::UnsignedBody`] if a non-empty body
    /// comes without `bodySHA256`, [`SignatureErrorKind::BodyHashMismatch`] if the hash
    /// does not match, and the URL signature errors as for [`verify_form`](Self::verify_form).
    pub fn verify_body(
        &self,
        url: &str,
        body: &[u8],
        signature: &str,
        settings: Option<&str>,
    ) -> Result<VerifiedWebhook, SignatureError> {
        self.verify_parts(url, &Params::default(), Some(body), signature, settings)
    }

    fn verify_parts(
        &self,
        url: &str,
        params: &Params<'_>,
        body: Option<&[u8]>,
        signature: &str,
        settings: Option<&str>,
    ) -> Result<VerifiedWebhook, SignatureError> {
        let signature = SignatureBytes::decode(signature.as_bytes())?;
        let choice = self.keys.choose(settings)?;
        let keys = choice.keys(&self.keys);
        let parts = parse_full_url(url)?;
        let body_hash = match body {
            Some(body) => match body_hash_param(parts.query)? {
                Some(hash) => Some((hash, body)),
                None if body.is_empty() => None,
                None => return Err(SignatureErrorKind::UnsignedBody.into()),
            },
            None => None,
        };
        let mut candidates = Candidates::build(&parts, self.extra_url_forms);
        let body_hash = body_hash.as_ref().map(|(hash, body)| (&**hash, *body));
        conclude(&keys, &mut candidates, params, &signature, body_hash, None)
    }
}

/// The last step for the verifier and the layer alike: a key and a candidate URL must
/// produce the signature, then a `bodySHA256` (if the body is covered by one) must match.
pub(crate) fn conclude(
    keys: &Selected<'_>,
    candidates: &mut Candidates,
    params: &Params<'_>,
    signature: &SignatureBytes,
    body_hash: Option<(&str, &[u8])>,
    idempotency_token: Option<http::HeaderValue>,
) -> Result<VerifiedWebhook, SignatureError> {
    let (index, key) =
        find_match(keys, candidates, params, signature).ok_or(SignatureErrorKind::Mismatch)?;
    if let Some((expected, body)) = body_hash {
        if !body_hash_matches(expected, body) {
            return Err(SignatureErrorKind::BodyHashMismatch.into());
        }
    }
    Ok(VerifiedWebhook::new(
        candidates.take_url(index),
        key,
        keys.algorithm_of_match(),
        idempotency_token,
    ))
}

impl Selected<'_> {
    pub(crate) fn algorithm_of_match(&self) -> Algorithm {
        match self {
            Selected::AuthTokens(_) => Algorithm::HmacSha1,
            Selected::Shared(_, mac) => mac.algorithm(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parameter part of the signed string, through [`Params::signed_tail`] with a
    /// stack buffer of `stack` bytes.
    fn tail(params: &Params<'_>, stack: usize) -> Vec<u8> {
        let (mut buf, mut heap) = (vec![0u8; stack], Vec::new());
        params.signed_tail(&mut buf, &mut heap).to_vec()
    }

    /// The same, the plain way: sort, drop repeats, concatenate.
    fn reference_tail<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
        let mut sorted: Vec<(&[u8], &[u8])> = pairs
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
            .collect();
        sorted.sort_unstable();
        sorted.dedup();
        sorted
            .iter()
            .flat_map(|(k, v)| [*k, *v])
            .flatten()
            .copied()
            .collect()
    }

    #[test]
    fn canonical_order_and_dedup() {
        let pairs = [("b", "1"), ("B", "2"), ("a", "2"), ("a", "1"), ("a", "2")];
        assert_eq!(tail(&Params::from_items(&pairs), 64), b"B2a1a2b1");
    }

    #[test]
    fn tails_agree_with_the_plain_algorithm() {
        let mut cases: Vec<Vec<(String, String)>> = vec![Vec::new()];
        // Names that share their first bytes, are prefixes of each other, or end in NUL.
        let names = [
            "MessagingSid",
            "MessageSid",
            "Messagin",
            "Messag",
            "abcdefgh",
            "abcdefgh\0",
            "abcdefg",
            "abcdefghi",
            "To",
            "",
            "a",
        ];
        for n in [1, 2, 5, 20, 63, 64, 65, 300, 70_000] {
            cases.push(
                (0..n)
                    .map(|i: usize| {
                        let name = names[i * 7 % names.len()];
                        (format!("{name}{}", i % 3), format!("{}", i * 31 % 5))
                    })
                    .collect(),
            );
        }
        for pairs in &cases {
            let params = Params::from_items(pairs);
            let want = reference_tail(pairs);
            assert_eq!(tail(&params, 4096), want, "{} pairs", pairs.len());
            assert_eq!(tail(&params, 0), want, "{} pairs, heap", pairs.len());
        }
    }

    #[test]
    fn a_remembered_order_is_used_only_when_it_sorts() {
        // Requests of one size in a row: the same order again (the remembered order
        // applies), other orders, other names, names sharing their first bytes, repeats,
        // and sizes that share a slot. Each must come out as the plain algorithm has it.
        let names = |words: &[&str]| -> Vec<(String, String)> {
            words
                .iter()
                .enumerate()
                .map(|(i, w)| (w.to_string(), format!("{}", i % 3)))
                .collect()
        };
        let fixture = names(&[
            "ToCountry",
            "ToState",
            "SmsMessageSid",
            "NumMedia",
            "ToCity",
            "FromZip",
        ]);
        let mut reversed = fixture.clone();
        reversed.reverse();
        let mut rotated = fixture.clone();
        rotated.rotate_left(2);
        let other = names(&["b", "a", "d", "c", "f", "e"]);
        // The fixture's order sorts these names by their first seven bytes, but puts
        // MessagingB before MessagingA.
        let shared = names(&[
            "Tango",
            "Zulu",
            "MessagingB",
            "Bravo",
            "MessagingA",
            "Alpha",
        ]);
        let repeated = names(&["b", "a", "b", "a", "a", "a"]);
        let two = names(&["b", "a"]);
        let sequence = [
            &fixture, &fixture, &reversed, &reversed, &fixture, &rotated, &other, &fixture,
            &shared, &shared, &repeated, &repeated, &fixture, &two, &fixture, &two,
        ];
        for pairs in sequence {
            let params = Params::from_items(pairs);
            assert_eq!(tail(&params, 4096), reference_tail(pairs), "{pairs:?}");
        }
        // An order remembered for one size is never applied to another.
        for n in [8usize, 4, 12, 8, 4, 64, 60, 64] {
            let pairs: Vec<(String, String)> = (0..n)
                .map(|i| (format!("k{:02}", (i * 7) % n), i.to_string()))
                .collect();
            let params = Params::from_items(&pairs);
            assert_eq!(tail(&params, 4096), reference_tail(&pairs), "{n} pairs");
        }
    }

    #[test]
    fn form_bodies_in_canonical_order() {
        let inputs: [&[u8]; 5] = [
            b"Body=a+b%2Bc&x",
            b"MessagingSid=2&MessageSid=1&MessagingSid=1&Messagin=&MessagingSid=1&Messag=x",
            b"abcdefghij=1&abcdefgh=2&abcdefghi=3&abcdefgh%00=4&abcdefg=5&abcdefgh=2",
            b"b=%41&b=A&a=&a&%61=",
            b"",
        ];
        for input in inputs {
            let pairs: Vec<(String, String)> = form_urlencoded::parse(input)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let (mut stack, mut heap) = ([0u8; 64], Vec::new());
            let params = Params::from_form(input, &mut stack, &mut heap).unwrap();
            assert_eq!(
                tail(&params, 64),
                reference_tail(&pairs),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn body_hash_param_rules() {
        assert_eq!(body_hash_param(None), Ok(None));
        assert_eq!(body_hash_param(Some("a=1")), Ok(None));
        assert_eq!(
            body_hash_param(Some("a=1&bodySHA256=ab"))
                .unwrap()
                .as_deref(),
            Some("ab")
        );
        assert_eq!(
            body_hash_param(Some("body%53HA256=ab")).unwrap().as_deref(),
            Some("ab")
        );
        assert_eq!(
            body_hash_param(Some("bodySHA256=ab&bodySHA256=ab")),
            Err(SignatureErrorKind::AmbiguousBodyHash)
        );
        assert_eq!(body_hash_param(Some("bodysha256=ab")), Ok(None));
    }

    #[test]
    fn signature_decoding() {
        assert_eq!(
            SignatureBytes::decode(b"").unwrap_err(),
            SignatureErrorKind::MissingHeader
        );
        let good = sign("t", "https://x/", [("a", "b")]);
        assert!(SignatureBytes::decode(good.as_bytes()).is_ok());
        let spaced = format!(" {good} ");
        assert_eq!(
            SignatureBytes::decode(spaced.as_bytes()).unwrap_err(),
            SignatureErrorKind::MalformedHeader
        );
        // Agrees with the base64 crate on every one-character change of valid headers.
        for len in [20usize, 32] {
            let raw: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37) ^ 0xa5).collect();
            let good = STANDARD.encode(&raw);
            let ours = SignatureBytes::decode(good.as_bytes()).unwrap();
            assert_eq!(ours.as_slice(), raw);
            for at in 0..good.len() {
                for b in 0..=255u8 {
                    let mut changed = good.clone().into_bytes();
                    changed[at] = b;
                    let want = STANDARD
                        .decode(&changed)
                        .ok()
                        .filter(|d| d.len() == 20 || d.len() == 32);
                    let got = SignatureBytes::decode(&changed).ok();
                    assert_eq!(
                        got.as_ref().map(SignatureBytes::as_slice),
                        want.as_deref(),
                        "{:?}",
                        String::from_utf8_lossy(&changed)
                    );
                }
            }
        }
        // 28 characters that are not canonical base64 of 20 bytes.
        assert!(SignatureBytes::decode(b"3KI2uRuYyAdhZIJXcpU0izDUzWJ=").is_err());
        assert!(SignatureBytes::decode(b"!!!!!!!!!!!!!!!!!!!!!!!!!!!=").is_err());
    }
}
