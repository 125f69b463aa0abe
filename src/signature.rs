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
use crate::keys::{Algorithm, KeySet, MatchedKey, PreparedMac, Selected};
use crate::url::{parse_full_url, Candidates};
use crate::verified::VerifiedWebhook;

/// A form parameter, decoded.
pub(crate) type Pair<'a> = (Cow<'a, str>, Cow<'a, str>);

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
    let mut pairs = borrow_pairs(&owned);
    canonicalize(&mut pairs);
    let mut mac = PreparedMac::new(algorithm, secret.as_bytes()).start();
    mac.update(url.as_bytes());
    for (k, v) in &pairs {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
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

/// Borrows caller-supplied pairs (owned tuples or references to them) as canonical pairs.
fn borrow_pairs<'a, T, K, V>(items: &'a [T]) -> Vec<Pair<'a>>
where
    T: Borrow<(K, V)>,
    K: AsRef<str> + 'a,
    V: AsRef<str> + 'a,
{
    items
        .iter()
        .map(|item| {
            let (k, v) = item.borrow();
            (Cow::Borrowed(k.as_ref()), Cow::Borrowed(v.as_ref()))
        })
        .collect()
}

/// Sorts pairs by key then value (byte order) and drops repeated identical pairs.
pub(crate) fn canonicalize(pairs: &mut Vec<Pair<'_>>) {
    pairs.sort_unstable_by(|a, b| {
        a.0.as_bytes()
            .cmp(b.0.as_bytes())
            .then_with(|| a.1.as_bytes().cmp(b.1.as_bytes()))
    });
    pairs.dedup();
}

/// Decodes an `application/x-www-form-urlencoded` body into canonical pairs, exactly as
/// `form_urlencoded` (and so axum's `Form`) decodes it. Text that is not UTF-8 once
/// percent-decoded is refused, so no parameter is silently altered.
pub(crate) fn parse_form(bytes: &[u8]) -> Result<Vec<Pair<'_>>, SignatureErrorKind> {
    let mut pairs = Vec::new();
    let mut lossy = false;
    for (k, v) in form_urlencoded::parse(bytes) {
        if pairs.len() == MAX_PARAMS {
            return Err(SignatureErrorKind::MalformedBody);
        }
        lossy |= k.contains('\u{FFFD}') || v.contains('\u{FFFD}');
        pairs.push((k, v));
    }
    // A replacement character may be genuine; only then look closer.
    if lossy && !strict_utf8(bytes) {
        return Err(SignatureErrorKind::MalformedBody);
    }
    canonicalize(&mut pairs);
    Ok(pairs)
}

/// Whether every name and value of a form decodes to UTF-8 without replacement.
fn strict_utf8(bytes: &[u8]) -> bool {
    bytes.split(|&b| b == b'&').all(|segment| {
        segment
            .split(|&b| b == b'=')
            .all(|part| percent_encoding::percent_decode(part).decode_utf8().is_ok())
    })
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
    params: &[Pair<'_>],
    signature: &SignatureBytes,
) -> Option<(usize, MatchedKey)> {
    let query_pairs = match candidates.query_params() {
        Some(q) if candidates.iter().any(|(_, c)| c.query_params) => {
            let mut pairs: Vec<Pair<'_>> = form_urlencoded::parse(q.as_bytes()).collect();
            canonicalize(&mut pairs);
            pairs
        }
        _ => Vec::new(),
    };
    let mut mac_out = [0u8; 32];
    for (mac, which) in keys.each() {
        if mac.algorithm().mac_len() != signature.len {
            continue;
        }
        for (index, (url, candidate)) in candidates.iter().enumerate() {
            let mut running = mac.start();
            running.update(url.as_bytes());
            let tail = if candidate.query_params {
                &query_pairs
            } else {
                params
            };
            for (k, v) in tail {
                running.update(k.as_bytes());
                running.update(v.as_bytes());
            }
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
/// Unlike the SDKs, a URL with user info or a fragment is refused
/// ([`SignatureErrorKind::NoUrl`]): Twilio never signs either.
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
        let mut pairs = borrow_pairs(&owned);
        canonicalize(&mut pairs);
        self.verify_parts(url, &pairs, None, signature, settings)
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
        self.verify_parts(url, &[], Some(body), signature, settings)
    }

    fn verify_parts(
        &self,
        url: &str,
        params: &[Pair<'_>],
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
        let candidates = Candidates::build(&parts, self.extra_url_forms);
        let (index, key) = find_match(&keys, &candidates, params, &signature)
            .ok_or(SignatureErrorKind::Mismatch)?;
        if let Some((hash, body)) = body_hash {
            if !body_hash_matches(&hash, body) {
                return Err(SignatureErrorKind::BodyHashMismatch.into());
            }
        }
        let url = candidates.iter().nth(index).map(|(u, _)| u.to_owned());
        Ok(VerifiedWebhook::new(
            url.unwrap_or_default(),
            key,
            keys.algorithm_of_match(),
            None,
        ))
    }
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
