//! Twilio's signing algorithm, with no HTTP types: the string to sign, the MAC, the
//! signature header, `bodySHA256`, and which key and candidate URL produce a signature.
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

use crate::error::SignatureErrorKind;
use crate::keys::{Algorithm, MatchedKey, PreparedMac, Selected};
use crate::params::{pair_bytes, signed_tail};

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
    let tail = signed_tail(pair_bytes(&owned));
    let mut mac = PreparedMac::new(algorithm, secret.as_bytes()).start();
    mac.update(url.as_bytes());
    mac.update(&tail);
    let mut out = [0u8; 32];
    let n = mac.finish(&mut out);
    STANDARD.encode(&out[..n])
}

/// The `X-Twilio-Signature` Twilio would send for a request with no form parameters: a
/// `GET`, a WebSocket handshake whose query is kept, or a URL that carries `bodySHA256`.
///
/// ```
/// use tower_twilio_signature::{sign, sign_url};
///
/// let url = "https://example.com/status?CallSid=CA123";
/// assert_eq!(sign_url("token", url), sign("token", url, [] as [(&str, &str); 0]));
/// ```
#[must_use]
pub fn sign_url(auth_token: &str, url: &str) -> String {
    sign(auth_token, url, [] as [(&str, &str); 0])
}

/// The URL and `X-Twilio-Signature` Twilio would send for a JSON (or any non-form) body:
/// `bodySHA256` is appended to `url`'s query, and that URL alone is signed.
///
/// ```
/// use tower_twilio_signature::{sign_body, Verifier};
///
/// let body = br#"{"event":"delivered"}"#;
/// let (url, header) = sign_body("token", "https://example.com/events", body);
/// assert!(url.starts_with("https://example.com/events?bodySHA256="));
/// assert!(Verifier::new("token")?.verify_body(&url, body, &header, None).is_ok());
/// # Ok::<(), tower_twilio_signature::ConfigError>(())
/// ```
#[must_use]
pub fn sign_body(auth_token: &str, url: &str, body: &[u8]) -> (String, String) {
    let url = url_with_body_sha256(url, body);
    let header = sign_url(auth_token, &url);
    (url, header)
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
/// use tower_twilio_signature::url_with_body_sha256;
///
/// let body = br#"{"hello":"world"}"#;
/// let url = url_with_body_sha256("https://example.com/events?tenant=acme", body);
/// assert!(url.starts_with("https://example.com/events?tenant=acme&bodySHA256="));
/// let header = tower_twilio_signature::sign_url("token", &url); // the URL alone is signed
/// # let _ = header;
/// ```
#[must_use]
pub fn url_with_body_sha256(url: &str, body: &[u8]) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}bodySHA256={}", body_sha256(body))
}

/// The decoded `bodySHA256` of a query: `None` if absent, an error if given more than once.
pub(crate) fn body_hash_param(
    query: Option<&str>,
) -> Result<Option<Cow<'_, str>>, SignatureErrorKind> {
    let Some(query) = query else { return Ok(None) };
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
    let actual = body_sha256(body);
    bool::from(actual.as_bytes().ct_eq(expected.as_bytes()))
}

/// A decoded `X-Twilio-Signature`: the raw MAC.
#[derive(Clone, Copy)]
pub(crate) struct SignatureBytes {
    buf: [u8; 33],
    len: usize,
}

/// Equal when the MACs are; compared in constant time, like every check of a MAC here.
impl PartialEq for SignatureBytes {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.as_slice().ct_eq(other.as_slice()))
    }
}

impl Eq for SignatureBytes {}

impl std::fmt::Debug for SignatureBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignatureBytes(..)")
    }
}

impl SignatureBytes {
    /// Decodes a base64 (standard alphabet, padded, canonical) MAC of 20 or 32 bytes.
    /// Whitespace is not trimmed, as the SDKs do not trim it.
    pub(crate) fn decode(header: &[u8]) -> Result<Self, SignatureErrorKind> {
        if header.is_empty() {
            return Err(SignatureErrorKind::MissingHeader);
        }
        let malformed = SignatureErrorKind::MalformedHeader;
        // 20 bytes are 28 characters, 32 bytes 44.
        let want = match header.len() {
            28 => 20,
            44 => 32,
            _ => return Err(malformed),
        };
        // The base64 crate wants room for its estimate (33 bytes for 44 characters).
        let mut buf = [0u8; 33];
        let len = STANDARD
            .decode_slice(header, &mut buf)
            .map_err(|_| malformed)?;
        if len != want {
            return Err(malformed);
        }
        Ok(Self { buf, len })
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Tries every selected key over every candidate, each a URL and the parameter part of the
/// string to sign after it; the first that produces `signature` wins. Returns its index and
/// the key.
pub(crate) fn find_match(
    keys: &Selected<'_>,
    candidates: &[(&str, &[u8])],
    signature: &SignatureBytes,
) -> Option<(usize, MatchedKey)> {
    keys.each().find_map(|(mac, which)| {
        match_key(mac, candidates, signature).map(|index| (index, which.to_owned()))
    })
}

/// The first candidate for which `mac` produces `signature`.
pub(crate) fn match_key(
    mac: &PreparedMac,
    candidates: &[(&str, &[u8])],
    signature: &SignatureBytes,
) -> Option<usize> {
    if mac.algorithm().mac_len() != signature.len {
        return None;
    }
    let mut out = [0u8; 32];
    candidates.iter().position(|(url, tail)| {
        let mut running = mac.start();
        running.update(url.as_bytes());
        running.update(tail);
        let n = running.finish(&mut out);
        bool::from(out[..n].ct_eq(signature.as_slice()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn body_hash_comparison() {
        let body = b"{}";
        let hash = body_sha256(body);
        assert!(body_hash_matches(&hash, body));
        assert!(!body_hash_matches(&hash.to_uppercase(), body));
        assert!(!body_hash_matches(&hash[..63], body));
        assert!(!body_hash_matches("", body));
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
        for len in [20usize, 32] {
            let raw: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37) ^ 0xa5).collect();
            let good = STANDARD.encode(&raw);
            assert_eq!(
                SignatureBytes::decode(good.as_bytes()).unwrap().as_slice(),
                raw
            );
            // Every one-character change: accepted exactly when it is still canonical
            // base64 of a MAC of the same length.
            for at in 0..good.len() {
                for b in 0..=255u8 {
                    let mut changed = good.clone().into_bytes();
                    changed[at] = b;
                    let want = STANDARD.decode(&changed).ok().filter(|d| d.len() == len);
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
        // Not canonical: bits past the last byte are set.
        assert!(SignatureBytes::decode(b"3KI2uRuYyAdhZIJXcpU0izDUzWJ=").is_err());
        assert!(SignatureBytes::decode(b"!!!!!!!!!!!!!!!!!!!!!!!!!!!=").is_err());
        // 19 bytes in 28 characters.
        assert!(SignatureBytes::decode(b"AAAAAAAAAAAAAAAAAAAAAAAAAA==").is_err());
    }
}
