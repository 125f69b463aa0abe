//! Twilio's signing algorithm, with no HTTP types: the string to sign, the MAC, and a
//! [`Verifier`] for requests your own code has already taken apart.
//!
//! The string to sign is the full URL Twilio requested followed, for a form body, by every
//! parameter: keys in byte order and, for a repeated key, its distinct values in byte order,
//! each appended as key then value with no delimiter. A JSON (or any other) body is covered
//! instead by `bodySHA256` in the query: the lowercase hex SHA-256 of the body.

use std::borrow::{Borrow, Cow};
use std::ops::Range;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{ConfigError, SignatureError, SignatureErrorKind};
use crate::keys::{Algorithm, KeySet, MatchedKey, PreparedMac, Running, Selected};
use crate::url::{parse_full_url, Candidates};
use crate::verified::VerifiedWebhook;

/// The most form parameters a request may carry. Twilio sends a few dozen; the cap keeps
/// the memory a hostile body can cost close to the body itself.
pub(crate) const MAX_PARAMS: usize = 10_000;

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
    Params::from_items(&owned).feed(&mut mac);
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

/// Form parameters in canonical order: by key then value (byte order), repeated identical
/// pairs dropped. Names and values are borrowed from the caller's pairs or from the body;
/// those that needed decoding, from one scratch buffer. A request costs a constant number
/// of allocations whatever its parameters, and nothing is copied to be hashed.
#[derive(Debug, Default)]
pub(crate) struct Params<'a> {
    /// The pairs as received.
    pairs: Vec<(&'a str, &'a str)>,
    /// Indices into `pairs`, in canonical order.
    order: Vec<u64>,
}

/// The most low bits of a sort key that hold the pair's index.
const INDEX_BITS: u32 = 16;

/// A pair's sort key: the key's first bytes, big-endian and zero-padded, above its index
/// in the low `bits` bits. Ordering by it never contradicts byte order, so most
/// comparisons end here, and it sorts as a plain integer.
#[inline]
fn sort_key(key: &str, index: usize, bits: u32) -> u64 {
    let key = key.as_bytes();
    let head = match key.first_chunk::<8>() {
        Some(eight) => u64::from_be_bytes(*eight),
        None => key
            .iter()
            .enumerate()
            .fold(0, |acc, (i, &b)| acc | u64::from(b) << (56 - 8 * i)),
    };
    head >> bits << bits | index as u64
}

impl<'a> Params<'a> {
    /// Canonical pairs from caller-supplied ones (owned tuples or references to them), in
    /// any order.
    pub(crate) fn from_items<T, K, V>(items: &'a [T]) -> Self
    where
        T: Borrow<(K, V)>,
        K: AsRef<str> + 'a,
        V: AsRef<str> + 'a,
    {
        let mut pairs = Vec::with_capacity(items.len());
        for item in items {
            let (k, v) = item.borrow();
            pairs.push((k.as_ref(), v.as_ref()));
        }
        Self::canonical(pairs)
    }

    /// Decodes an `application/x-www-form-urlencoded` body exactly as `form_urlencoded`
    /// (and so axum's `Form`) decodes it: `+` is a space, `%` and two hex digits a byte,
    /// any other `%` itself. Text that is not UTF-8 once decoded is refused, so no
    /// parameter is silently altered. Decoded names and values go to `scratch`.
    pub(crate) fn from_form(
        bytes: &'a [u8],
        scratch: &'a mut Vec<u8>,
    ) -> Result<Self, SignatureErrorKind> {
        if bytes.is_empty() {
            return Ok(Self::default());
        }
        // Counted in byte-wide lanes, which vectorize well.
        let segments = bytes
            .chunks(u8::MAX.into())
            .map(|chunk| {
                let amps = chunk.iter().fold(0u8, |n, &b| n + u8::from(b == b'&'));
                usize::from(amps)
            })
            .sum::<usize>()
            + 1;
        let mut form = FormParts {
            bytes,
            // Names and values with nothing to decode are slices of this, when the body
            // is UTF-8 as a whole (as it nearly always is).
            text: std::str::from_utf8(bytes).ok(),
            scratch: Some(scratch),
            free: &mut [],
        };
        let mut pairs = Vec::with_capacity(segments.min(MAX_PARAMS));
        let mut segment = |start: usize, eq: Option<usize>, end: usize, escaped: [bool; 2]| {
            if end == start {
                return Ok(());
            }
            if pairs.len() == MAX_PARAMS {
                return Err(SignatureErrorKind::MalformedBody);
            }
            let (key, value) = match eq {
                Some(eq) => (start..eq, eq + 1..end),
                None => (start..end, end..end),
            };
            pairs.push((form.part(key, escaped[0])?, form.part(value, escaped[1])?));
            Ok(())
        };
        // One pass: each segment's bounds, its first `=`, and whether its name or value
        // holds anything to decode.
        let mut start = 0;
        let mut eq = None;
        let mut escaped = [false; 2];
        for i in FormSpecials::new(bytes) {
            match bytes[i] {
                b'&' => {
                    segment(start, eq, i, escaped)?;
                    start = i + 1;
                    eq = None;
                    escaped = [false; 2];
                }
                b'=' => {
                    if eq.is_none() {
                        eq = Some(i);
                    }
                }
                _ => escaped[usize::from(eq.is_some())] = true,
            }
        }
        segment(start, eq, bytes.len(), escaped)?;
        Ok(Self::canonical(pairs))
    }

    /// Orders by key then value (byte order) and drops repeated identical pairs.
    fn canonical(pairs: Vec<(&'a str, &'a str)>) -> Self {
        let mut order: Vec<u64>;
        if pairs.len() <= 1 << INDEX_BITS {
            // As few index bits as the pairs need, to keep as many key bytes as possible.
            let bits = if pairs.len() <= 1 << 8 { 8 } else { INDEX_BITS };
            let mask = (1 << bits) - 1;
            let bytes = |i: u64| {
                let (k, v) = pairs[(i & mask) as usize];
                (k.as_bytes(), v.as_bytes())
            };
            // Integer keys first (cheap, and almost always decisive), then each run of
            // equal prefixes by key and value.
            order = pairs
                .iter()
                .enumerate()
                .map(|(i, (k, _))| sort_key(k, i, bits))
                .collect();
            order.sort_unstable();
            let same_prefix = |a: &u64, b: &u64| a >> bits == b >> bits;
            let mut ties = false;
            for run in order.chunk_by_mut(same_prefix) {
                if run.len() > 1 {
                    ties = true;
                    run.sort_unstable_by(|&a, &b| bytes(a).cmp(&bytes(b)));
                }
            }
            // Only pairs with the same prefix can be repeats.
            if ties {
                order.dedup_by(|a, b| same_prefix(a, b) && bytes(*a) == bytes(*b));
            }
            for i in &mut order {
                *i &= mask;
            }
        } else {
            let bytes = |i: u64| {
                let (k, v) = pairs[i as usize];
                (k.as_bytes(), v.as_bytes())
            };
            order = (0..pairs.len() as u64).collect();
            order.sort_unstable_by(|&a, &b| bytes(a).cmp(&bytes(b)));
            order.dedup_by(|a, b| bytes(*a) == bytes(*b));
        }
        Self { pairs, order }
    }

    /// The pairs in canonical order.
    fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.order.iter().map(|&i| self.pairs[i as usize])
    }

    /// Appends what the parameters add to the signed string: each key then its value.
    pub(crate) fn feed(&self, mac: &mut Running) {
        for (k, v) in self.iter() {
            mac.update(k.as_bytes());
            mac.update(v.as_bytes());
        }
    }

    /// The pairs in canonical order.
    #[cfg(test)]
    fn pairs(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.iter()
    }
}

/// The positions of `&`, `=`, `+` and `%` in a form body, found eight bytes at a time.
struct FormSpecials<'a> {
    bytes: &'a [u8],
    /// Where the next eight bytes start.
    next: usize,
    /// Where the bytes of `hits` start.
    base: usize,
    /// The high bit of each byte that is one of the four.
    hits: u64,
}

impl<'a> FormSpecials<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            next: 0,
            base: 0,
            hits: 0,
        }
    }

    /// The high bit of each byte of `word` equal to `b`.
    fn equal(word: u64, b: u8) -> u64 {
        const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
        let x = word ^ (u64::from(b) * 0x0101_0101_0101_0101);
        // A byte's high bit ends up set exactly when the byte is zero.
        !(((x & LOW7) + LOW7) | x) & !LOW7
    }
}

impl Iterator for FormSpecials<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        while self.hits == 0 {
            let rest = self.bytes.get(self.next..).filter(|r| !r.is_empty())?;
            let word = match rest.first_chunk::<8>() {
                Some(eight) => u64::from_le_bytes(*eight),
                // Zero bytes pad the tail: zero is none of the four.
                None => rest
                    .iter()
                    .enumerate()
                    .fold(0, |w, (i, &b)| w | u64::from(b) << (8 * i)),
            };
            self.hits = Self::equal(word, b'&')
                | Self::equal(word, b'=')
                | Self::equal(word, b'+')
                | Self::equal(word, b'%');
            self.base = self.next;
            self.next += 8;
        }
        let i = self.base + (self.hits.trailing_zeros() / 8) as usize;
        self.hits &= self.hits - 1;
        Some(i)
    }
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

/// A form body being taken apart.
struct FormParts<'a> {
    bytes: &'a [u8],
    /// The body, if it is UTF-8 as a whole.
    text: Option<&'a str>,
    /// Where decoded text goes, until first needed.
    scratch: Option<&'a mut Vec<u8>>,
    /// The part of the scratch buffer not yet written.
    free: &'a mut [u8],
}

impl<'a> FormParts<'a> {
    /// The name or value at `range`: borrowed as it is when nothing needs decoding, else
    /// decoded into the scratch buffer.
    #[inline]
    fn part(&mut self, range: Range<usize>, escaped: bool) -> Result<&'a str, SignatureErrorKind> {
        match self.text {
            _ if escaped => self.decode(range),
            Some(text) => Ok(&text[range]),
            None => std::str::from_utf8(&self.bytes[range])
                .map_err(|_| SignatureErrorKind::MalformedBody),
        }
    }

    /// Decodes the name or value at `range` into the scratch buffer.
    fn decode(&mut self, range: Range<usize>) -> Result<&'a str, SignatureErrorKind> {
        let raw = &self.bytes[range];
        if let Some(scratch) = self.scratch.take() {
            // Decoding never lengthens text: one buffer the size of the body holds it all.
            scratch.clear();
            scratch.resize(self.bytes.len(), 0);
            self.free = scratch;
        }
        let out = &mut self.free[..raw.len()];
        let mut n = 0;
        let mut rest = raw;
        while let Some((&b, mut tail)) = rest.split_first() {
            let byte = match b {
                b'+' => b' ',
                b'%' => match tail {
                    [hi, lo, more @ ..] if HEX[usize::from(*hi)] | HEX[usize::from(*lo)] < 16 => {
                        tail = more;
                        HEX[usize::from(*hi)] << 4 | HEX[usize::from(*lo)]
                    }
                    _ => b'%',
                },
                b => b,
            };
            out[n] = byte;
            n += 1;
            rest = tail;
        }
        let (done, rest) = std::mem::take(&mut self.free).split_at_mut(n);
        self.free = rest;
        std::str::from_utf8(done).map_err(|_| SignatureErrorKind::MalformedBody)
    }
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
        // 20 or 32 bytes are 28 or 44 characters, padding included.
        if header.len() != 28 && header.len() != 44 {
            return Err(SignatureErrorKind::MalformedHeader);
        }
        let mut buf = [0u8; 33];
        let len = STANDARD
            .decode_slice(header, &mut buf)
            .map_err(|_| SignatureErrorKind::MalformedHeader)?;
        if len != 20 && len != 32 {
            return Err(SignatureErrorKind::MalformedHeader);
        }
        let mut out = [0u8; 32];
        out[..len].copy_from_slice(&buf[..len]);
        Ok(Self { buf: out, len })
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
    let mut mac_out = [0u8; 32];
    for (mac, which) in keys.each() {
        if mac.algorithm().mac_len() != signature.len {
            continue;
        }
        for (index, (url, candidate)) in candidates.iter().enumerate() {
            let mut running = mac.start();
            running.update(url.as_bytes());
            let tail = if candidate.query_params {
                &query_params
            } else {
                params
            };
            tail.feed(&mut running);
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
    idempotency_token: Option<&str>,
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

    type Pair<'a> = (Cow<'a, str>, Cow<'a, str>);

    fn owned_pairs(params: &Params<'_>) -> Vec<Pair<'static>> {
        params
            .pairs()
            .map(|(k, v)| (Cow::Owned(k.to_owned()), Cow::Owned(v.to_owned())))
            .collect()
    }

    /// The canonical pairs of a form body.
    fn parse_form(bytes: &[u8]) -> Result<Vec<Pair<'static>>, SignatureErrorKind> {
        let mut scratch = Vec::new();
        Params::from_form(bytes, &mut scratch).map(|p| owned_pairs(&p))
    }

    /// Puts pairs in canonical order, through [`Params`].
    fn canonicalize(pairs: &mut Vec<Pair<'_>>) {
        *pairs = owned_pairs(&Params::from_items(pairs));
    }

    #[test]
    fn canonical_order_and_dedup() {
        let mut pairs: Vec<Pair<'_>> = [("b", "1"), ("B", "2"), ("a", "2"), ("a", "1"), ("a", "2")]
            .into_iter()
            .map(|(k, v)| (Cow::Borrowed(k), Cow::Borrowed(v)))
            .collect();
        canonicalize(&mut pairs);
        let flat: Vec<_> = pairs.iter().map(|(k, v)| format!("{k}{v}")).collect();
        assert_eq!(flat, ["B2", "a1", "a2", "b1"]);
    }

    #[test]
    fn form_rejects_non_utf8_but_keeps_real_replacement_chars() {
        assert_eq!(
            parse_form(b"a=%FF").unwrap_err(),
            SignatureErrorKind::MalformedBody
        );
        assert_eq!(
            parse_form(b"%C3=x").unwrap_err(),
            SignatureErrorKind::MalformedBody
        );
        assert_eq!(
            parse_form(b"a=\xff").unwrap_err(),
            SignatureErrorKind::MalformedBody
        );
        let ok = parse_form("a=%EF%BF%BD&b=\u{FFFD}".as_bytes()).unwrap();
        assert_eq!(ok[0].1, "\u{FFFD}");
        assert_eq!(ok[1].1, "\u{FFFD}");
        let plus = parse_form(b"Body=a+b%2Bc&x").unwrap();
        assert_eq!(
            plus,
            [
                (Cow::from("Body"), Cow::from("a b+c")),
                (Cow::from("x"), Cow::from(""))
            ]
        );
    }

    #[test]
    fn form_parameter_cap() {
        let ok = "a=1&".repeat(MAX_PARAMS);
        assert!(parse_form(ok.as_bytes()).is_ok());
        let over = "a=1&".repeat(MAX_PARAMS + 1);
        assert_eq!(
            parse_form(over.as_bytes()).unwrap_err(),
            SignatureErrorKind::MalformedBody
        );
        // Empty segments are not parameters.
        assert!(parse_form("&".repeat(MAX_PARAMS * 2).as_bytes())
            .unwrap()
            .is_empty());
    }

    /// What `form_urlencoded::parse` yields, sorted and deduplicated, or `MalformedBody`
    /// if a name or value is not UTF-8 once percent-decoded.
    fn reference_form(bytes: &[u8]) -> Result<Vec<Pair<'static>>, SignatureErrorKind> {
        let mut pairs: Vec<Pair<'static>> = Vec::new();
        for (k, v) in form_urlencoded::parse(bytes) {
            pairs.push((Cow::Owned(k.into_owned()), Cow::Owned(v.into_owned())));
        }
        let strict = bytes.split(|&b| b == b'&').all(|segment| {
            segment
                .split(|&b| b == b'=')
                .all(|part| percent_encoding::percent_decode(part).decode_utf8().is_ok())
        });
        if !strict {
            return Err(SignatureErrorKind::MalformedBody);
        }
        pairs.sort();
        pairs.dedup();
        Ok(pairs)
    }

    #[test]
    fn form_decoding_agrees_with_form_urlencoded() {
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
        // Keys that share their first 8 bytes, or are prefixes of each other.
        inputs.push(
            b"MessagingSid=2&MessageSid=1&MessagingSid=1&Messagin=&MessagingSid=1&Messag=x"
                .to_vec(),
        );
        inputs.push(b"abcdefghij=1&abcdefgh=2&abcdefghi=3&abcdefgh%00=4&abcdefg=5".to_vec());
        inputs.push((0..=255u8).cycle().take(700).collect());
        for input in &inputs {
            let specials: Vec<usize> = FormSpecials::new(input).collect();
            let want: Vec<usize> = (0..input.len())
                .filter(|&i| b"&=+%".contains(&input[i]))
                .collect();
            assert_eq!(specials, want);
            assert_eq!(
                parse_form(input),
                reference_form(input),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn more_pairs_than_sort_keys_can_index() {
        let owned: Vec<(String, String)> = (0..(1usize << INDEX_BITS) + 10)
            .map(|i| (format!("key{}", i % 997), format!("{}", i % 13)))
            .collect();
        let mut want: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (&**k, &**v)).collect();
        want.sort_unstable();
        want.dedup();
        let got: Vec<(&str, &str)> = Params::from_items(&owned).pairs().collect();
        assert_eq!(got, want);
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
        // 28 characters that are not canonical base64 of 20 bytes.
        assert!(SignatureBytes::decode(b"3KI2uRuYyAdhZIJXcpU0izDUzWJ=").is_err());
        assert!(SignatureBytes::decode(b"!!!!!!!!!!!!!!!!!!!!!!!!!!!=").is_err());
    }
}
