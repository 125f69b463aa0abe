//! HTTP authentication on the webhook URL, checked before the signature: Twilio sends the
//! credentials written in the webhook URL once a first request is answered with 401.
//!
//! Basic compares the decoded `user:password`. Digest (RFC 7616, `qop=auth`) recomputes the
//! response from the password and compares it; its nonces carry their own proof, an
//! HMAC-SHA256 of their timestamp under a key made when the layer is built (or given, to be
//! shared by replicas), so no nonce is stored.

use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::header::{self, HeaderMap, HeaderValue};
use md5::Md5;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{ConfigError, SignatureErrorKind};
use crate::headers::single;

/// The realm both schemes announce.
const REALM: &str = "Twilio";

/// How far ahead of this replica's clock a nonce may be dated (by another replica's), in
/// seconds.
const MAX_CLOCK_SKEW: u64 = 60;

/// How long a Digest nonce is accepted by default: 5 minutes.
const DEFAULT_NONCE_LIFETIME: Duration = Duration::from_secs(300);

/// The shortest nonce key accepted.
const MIN_NONCE_KEY: usize = 32;

/// The most auth-params a Digest header may carry; RFC 7616 defines eleven.
const MAX_PARAMS: usize = 20;

/// The HTTP authentication a webhook URL requires: Basic or Digest, never both.
#[derive(Clone, Debug)]
pub(crate) enum HttpAuth {
    Basic(BasicAuth),
    Digest(DigestAuth),
}

impl HttpAuth {
    /// Whether the request carries valid credentials. `method` and `target` (path and query
    /// as received) are what Digest's response covers; `now` is in seconds since the epoch.
    pub(crate) fn check(
        &self,
        headers: &HeaderMap,
        method: &str,
        target: &str,
        now: u64,
    ) -> Result<(), SignatureErrorKind> {
        let value = single_authorization(headers)?;
        match self {
            Self::Basic(basic) => basic.check(value),
            Self::Digest(digest) => digest.check(value, method, target, now),
        }
    }

    /// The `WWW-Authenticate` values of a 401; `stale` for a Digest nonce that is no longer
    /// accepted although the credentials were right.
    pub(crate) fn challenges(&self, stale: bool, now: u64) -> Vec<HeaderValue> {
        match self {
            Self::Basic(_) => vec![HeaderValue::from_static("Basic realm=\"Twilio\"")],
            Self::Digest(digest) => digest.challenges(stale, now),
        }
    }
}

/// The one `Authorization` header, as text; none, several, or one that is not visible
/// ASCII is a refusal.
fn single_authorization(headers: &HeaderMap) -> Result<&str, SignatureErrorKind> {
    let err = SignatureErrorKind::Unauthorized;
    let value = single(headers, &header::AUTHORIZATION, err)?.ok_or(err)?;
    value.to_str().map_err(|_| err)
}

/// Splits `Scheme rest` and checks the scheme, in any case.
fn strip_scheme<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (name, rest) = value.split_once(' ')?;
    name.eq_ignore_ascii_case(scheme)
        .then(|| rest.trim_start_matches(' '))
}

/// HTTP Basic credentials the request must carry.
#[derive(Clone)]
pub(crate) struct BasicAuth {
    /// The SHA-256 digest of `user:password`, as the decoded header carries it.
    credentials: [u8; 32],
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BasicAuth([redacted])")
    }
}

impl BasicAuth {
    pub(crate) fn new(username: &str, password: &str) -> Result<Self, ConfigError> {
        if username.is_empty() || username.contains(':') {
            return Err(ConfigError::InvalidBasicAuth);
        }
        Ok(Self {
            credentials: Sha256::digest(format!("{username}:{password}")).into(),
        })
    }

    /// Whether the header carries these credentials. Their SHA-256 digests are compared in
    /// constant time: two digests have the same length whatever was sent, so the time does
    /// not tell the length of the credentials either.
    fn check(&self, value: &str) -> Result<(), SignatureErrorKind> {
        let err = SignatureErrorKind::Unauthorized;
        let encoded = strip_scheme(value, "basic").ok_or(err)?;
        let decoded = STANDARD.decode(encoded.trim()).map_err(|_| err)?;
        let sent: [u8; 32] = Sha256::digest(decoded).into();
        if bool::from(sent.ct_eq(&self.credentials)) {
            Ok(())
        } else {
            Err(err)
        }
    }
}

/// A hash algorithm for HTTP Digest authentication.
///
/// ```
/// use tower_twilio_signature::DigestAlgorithm;
///
/// assert_eq!(DigestAlgorithm::Sha256.as_str(), "SHA-256");
/// assert_eq!(DigestAlgorithm::Md5.as_str(), "MD5");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DigestAlgorithm {
    /// SHA-256, offered first.
    Sha256,
    /// MD5: what RFC 2617 clients speak, and the default when a client names none.
    Md5,
}

impl DigestAlgorithm {
    /// The name in `algorithm=`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sha256 => "SHA-256",
            Self::Md5 => "MD5",
        }
    }

    /// The lowercase hex hash of `parts` joined with `:`.
    fn hash(self, parts: &[&str]) -> String {
        match self {
            Self::Sha256 => hex_hash::<Sha256>(parts),
            Self::Md5 => hex_hash::<Md5>(parts),
        }
    }
}

/// How HTTP Digest authentication behaves, beyond the credentials: for
/// [`TwilioSignatureLayer::digest_auth_with_settings`](crate::TwilioSignatureLayer::digest_auth_with_settings).
///
/// The default offers SHA-256 then MD5, accepts a nonce for 5 minutes, and makes a random
/// nonce key when the layer is built.
///
/// ```
/// use std::time::Duration;
/// use tower_twilio_signature::{DigestAlgorithm, DigestSettings, TwilioSignatureLayer};
///
/// // Every replica is given the same key (from your secret store), so a nonce one of them
/// // made is good on all of them.
/// let nonce_key = [7u8; 32];
/// let settings = DigestSettings::default()
///     .algorithms(&[DigestAlgorithm::Sha256])
///     .nonce_lifetime(Duration::from_secs(120))
///     .nonce_key(&nonce_key);
/// let layer = TwilioSignatureLayer::new("auth token")?
///     .digest_auth_with_settings("twilio", "long random password", settings)?;
/// # let _ = layer;
/// # Ok::<(), tower_twilio_signature::ConfigError>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct DigestSettings {
    algorithms: Vec<DigestAlgorithm>,
    nonce_lifetime: Duration,
    nonce_key: Option<Vec<u8>>,
}

impl Default for DigestSettings {
    fn default() -> Self {
        Self {
            algorithms: vec![DigestAlgorithm::Sha256, DigestAlgorithm::Md5],
            nonce_lifetime: DEFAULT_NONCE_LIFETIME,
            nonce_key: None,
        }
    }
}

impl fmt::Debug for DigestSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestSettings")
            .field("algorithms", &self.algorithms)
            .field("nonce_lifetime", &self.nonce_lifetime)
            .field(
                "nonce_key",
                &self.nonce_key.as_ref().map_or("random", |_| "[redacted]"),
            )
            .finish()
    }
}

impl DigestSettings {
    /// The algorithms offered, in this order; a response in another one is refused. At
    /// least one. curl, for one, answers the first challenge.
    pub fn algorithms(mut self, algorithms: &[DigestAlgorithm]) -> Self {
        self.algorithms = algorithms.to_vec();
        self
    }

    /// How long a nonce is accepted, in whole seconds (at least one).
    pub fn nonce_lifetime(mut self, lifetime: Duration) -> Self {
        self.nonce_lifetime = lifetime;
        self
    }

    /// The key that makes and proves nonces (at least 32 bytes), instead of a random one:
    /// give every replica the same one and a nonce one of them made is good on all. Keep it
    /// as secret as the password; with it, anyone can make nonces (though not answer them).
    pub fn nonce_key(mut self, key: &[u8]) -> Self {
        self.nonce_key = Some(key.to_vec());
        self
    }
}

fn hex_hash<D: Digest>(parts: &[&str]) -> String {
    let mut hasher = D::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update(b":");
        }
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// The `response` of RFC 7616 with `qop=auth`: `H(HA1:nonce:nc:cnonce:qop:H(method:uri))`,
/// where `ha1` is `H(username:realm:password)` in hex.
#[allow(clippy::too_many_arguments)]
fn digest_response(
    algorithm: DigestAlgorithm,
    ha1: &str,
    nonce: &str,
    nc: &str,
    cnonce: &str,
    qop: &str,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = algorithm.hash(&[method, uri]);
    algorithm.hash(&[ha1, nonce, nc, cnonce, qop, &ha2])
}

/// HTTP Digest credentials the request must carry, and the key that makes and proves nonces.
#[derive(Clone)]
pub(crate) struct DigestAuth {
    /// The SHA-256 digest of the user name, compared with the sent name's as Basic
    /// credentials are.
    username: [u8; 32],
    /// `H(username:realm:password)` in hex, per offered algorithm, in the order offered.
    ha1: Vec<(DigestAlgorithm, String)>,
    nonce_key: Hmac<Sha256>,
    lifetime: u64,
}

impl fmt::Debug for DigestAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let algorithms: Vec<&str> = self.ha1.iter().map(|(a, _)| a.as_str()).collect();
        f.debug_struct("DigestAuth")
            .field("credentials", &"[redacted]")
            .field("algorithms", &algorithms)
            .field("nonce_lifetime_secs", &self.lifetime)
            .finish()
    }
}

impl DigestAuth {
    /// Credentials checked as `settings` say, under their nonce key or a random one made now.
    pub(crate) fn new(
        username: &str,
        password: &str,
        settings: DigestSettings,
    ) -> Result<Self, ConfigError> {
        // A user name goes into a quoted string and into `user:realm:password`: keep it
        // printable and free of the characters that would need care there.
        if username.is_empty()
            || username
                .chars()
                .any(|c| c.is_control() || matches!(c, ':' | '"' | '\\'))
        {
            return Err(ConfigError::InvalidDigestAuth("user name"));
        }
        if settings.algorithms.is_empty() {
            return Err(ConfigError::InvalidDigestAuth("no algorithm"));
        }
        if settings.nonce_lifetime.as_secs() == 0 {
            return Err(ConfigError::InvalidDigestAuth("nonce lifetime under 1 s"));
        }
        let key = match settings.nonce_key {
            Some(key) if key.len() < MIN_NONCE_KEY => {
                return Err(ConfigError::InvalidDigestAuth(
                    "nonce key shorter than 32 bytes",
                ))
            }
            Some(key) => key,
            None => {
                let mut key = vec![0u8; MIN_NONCE_KEY];
                getrandom::fill(&mut key)
                    .map_err(|_| ConfigError::InvalidDigestAuth("no system random source"))?;
                key
            }
        };
        let mut ha1 = Vec::new();
        for &algorithm in &settings.algorithms {
            if ha1.iter().all(|(a, _)| *a != algorithm) {
                ha1.push((algorithm, algorithm.hash(&[username, REALM, password])));
            }
        }
        Ok(Self {
            username: Sha256::digest(username).into(),
            ha1,
            nonce_key: Hmac::new_from_slice(&key).expect("HMAC takes keys of any length"),
            lifetime: settings.nonce_lifetime.as_secs(),
        })
    }

    /// A nonce for time `now`: the time in decimal, `-`, and the hex HMAC of that text.
    fn nonce(&self, now: u64) -> String {
        let stamp = now.to_string();
        format!("{stamp}-{}", self.nonce_mac(&stamp))
    }

    fn nonce_mac(&self, stamp: &str) -> String {
        let mut mac = self.nonce_key.clone();
        mac.update(stamp.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether this key made `nonce`, and if so when.
    fn nonce_time(&self, nonce: &str) -> Option<u64> {
        let (stamp, mac) = nonce.split_once('-')?;
        if stamp.is_empty() || stamp.len() > 20 || !stamp.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let expected = self.nonce_mac(stamp);
        if !bool::from(expected.as_bytes().ct_eq(mac.as_bytes())) {
            return None;
        }
        stamp.parse().ok()
    }

    fn challenges(&self, stale: bool, now: u64) -> Vec<HeaderValue> {
        let nonce = self.nonce(now);
        let stale = if stale { ", stale=true" } else { "" };
        self.ha1
            .iter()
            .map(|(algorithm, _)| {
                let text = format!(
                    "Digest realm=\"{REALM}\", qop=\"auth\", algorithm={}, nonce=\"{nonce}\"{stale}",
                    algorithm.as_str()
                );
                HeaderValue::from_str(&text).expect("a challenge is visible ASCII")
            })
            .collect()
    }

    /// Checks an `Authorization: Digest …` value. A response that is right for a nonce this
    /// layer did not make, or made too long ago, is [`SignatureErrorKind::StaleNonce`]: the
    /// client knows the password and only needs a fresh nonce.
    fn check(
        &self,
        value: &str,
        method: &str,
        target: &str,
        now: u64,
    ) -> Result<(), SignatureErrorKind> {
        let err = SignatureErrorKind::Unauthorized;
        let params = parse_auth_params(strip_scheme(value, "digest").ok_or(err)?).ok_or(err)?;
        let get = |name: &str| {
            params
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let (Some(username), Some(realm), Some(nonce), Some(uri), Some(response)) = (
            get("username"),
            get("realm"),
            get("nonce"),
            get("uri"),
            get("response"),
        ) else {
            return Err(err);
        };
        let (Some(qop), Some(nc), Some(cnonce)) = (get("qop"), get("nc"), get("cnonce")) else {
            return Err(err);
        };
        let algorithm = match get("algorithm") {
            None => DigestAlgorithm::Md5,
            Some(a) if a.eq_ignore_ascii_case("MD5") => DigestAlgorithm::Md5,
            Some(a) if a.eq_ignore_ascii_case("SHA-256") => DigestAlgorithm::Sha256,
            Some(_) => return Err(err),
        };
        let ha1 = self
            .ha1
            .iter()
            .find(|(a, _)| *a == algorithm)
            .map(|(_, h)| h.as_str())
            .ok_or(err)?;
        let nc_ok = nc.len() == 8 && nc.bytes().all(|b| b.is_ascii_hexdigit());
        if realm != REALM
            || uri != target
            || qop != "auth"
            || !nc_ok
            || cnonce.is_empty()
            || get("userhash").is_some_and(|u| !u.eq_ignore_ascii_case("false"))
            || !bool::from(Sha256::digest(username).ct_eq(&self.username))
        {
            return Err(err);
        }
        let expected = digest_response(algorithm, ha1, nonce, nc, cnonce, qop, method, uri);
        let received = response.to_ascii_lowercase();
        if !bool::from(expected.as_bytes().ct_eq(received.as_bytes())) {
            return Err(err);
        }
        match self.nonce_time(nonce) {
            // A nonce is never dated ahead of the clock by more than the skew between
            // replicas: only the nonce key makes one, and it dates them with `now`.
            Some(made)
                if made <= now.saturating_add(MAX_CLOCK_SKEW)
                    && now.saturating_sub(made) < self.lifetime =>
            {
                Ok(())
            }
            _ => Err(SignatureErrorKind::StaleNonce),
        }
    }
}

/// Parses the auth-param list of an `Authorization` header (RFC 9110, section 11.2):
/// `name=value` pairs separated by commas, with optional whitespace around the commas and the
/// `=`, each value a token or a quoted string whose backslash escapes the next character.
/// Empty list elements are allowed. Returns `None` for anything else, for a name given twice
/// (in any case), or for more than [`MAX_PARAMS`] pairs.
fn parse_auth_params(input: &str) -> Option<Vec<(String, String)>> {
    let bytes = input.as_bytes();
    let mut at = 0;
    let mut params: Vec<(String, String)> = Vec::new();
    let skip_ows = |at: &mut usize| {
        while *at < bytes.len() && matches!(bytes[*at], b' ' | b'\t') {
            *at += 1;
        }
    };
    let token = |at: &mut usize| {
        let start = *at;
        while *at < bytes.len() && is_tchar(bytes[*at]) {
            *at += 1;
        }
        (*at > start).then(|| input[start..*at].to_owned())
    };
    loop {
        // Empty elements: `, ,` and leading or trailing commas.
        while at < bytes.len() && matches!(bytes[at], b' ' | b'\t' | b',') {
            at += 1;
        }
        if at == bytes.len() {
            return Some(params);
        }
        let name = token(&mut at)?;
        skip_ows(&mut at);
        if bytes.get(at) != Some(&b'=') {
            return None;
        }
        at += 1;
        skip_ows(&mut at);
        let value = if bytes.get(at) == Some(&b'"') {
            at += 1;
            let mut value = Vec::new();
            loop {
                match *bytes.get(at)? {
                    b'"' => break,
                    b'\\' => {
                        at += 1;
                        let escaped = *bytes.get(at)?;
                        if escaped != b'\t' && (escaped < b' ' || escaped == 0x7f) {
                            return None;
                        }
                        value.push(escaped);
                    }
                    b if b != b'\t' && (b < b' ' || b == 0x7f) => return None,
                    b => value.push(b),
                }
                at += 1;
            }
            at += 1;
            // Escapes are of single bytes, so the value is cut from valid UTF-8 only at
            // character boundaries; check anyway rather than assume.
            String::from_utf8(value).ok()?
        } else {
            token(&mut at)?
        };
        skip_ows(&mut at);
        if at < bytes.len() && bytes[at] != b',' {
            return None;
        }
        if params.len() == MAX_PARAMS || params.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
            return None;
        }
        params.push((name, value));
    }
}

/// A token character (RFC 9110, section 5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn check(auth: &HttpAuth, values: &[&str]) -> Result<(), SignatureErrorKind> {
        auth.check(&headers(values), "POST", "/sms", 1_000)
    }

    #[test]
    fn basic_credentials() {
        let auth = HttpAuth::Basic(BasicAuth::new("user", "pa:ss").unwrap());
        let good = format!("Basic {}", STANDARD.encode("user:pa:ss"));
        assert_eq!(check(&auth, &[&good]), Ok(()));
        assert_eq!(check(&auth, &[&good.replace("Basic", "bAsIc")]), Ok(()));
        let wrong = format!("Basic {}", STANDARD.encode("user:pass"));
        for bad in [
            vec![],
            vec![wrong.as_str()],
            vec![good.as_str(), good.as_str()],
            vec![good.as_str(), wrong.as_str()],
            vec!["Basic"],
            vec!["Bearer abc"],
            vec!["Basic !!!"],
        ] {
            assert_eq!(
                check(&auth, &bad),
                Err(SignatureErrorKind::Unauthorized),
                "{bad:?}"
            );
        }
        assert_eq!(
            BasicAuth::new("", "x").unwrap_err(),
            ConfigError::InvalidBasicAuth
        );
        assert_eq!(
            BasicAuth::new("a:b", "x").unwrap_err(),
            ConfigError::InvalidBasicAuth
        );
        assert!(!format!("{auth:?}").contains("pa:ss"));
    }

    /// RFC 7616, section 3.9.1.
    #[test]
    fn rfc_7616_example() {
        let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        let realm = "http-auth@example.org";
        for (algorithm, want) in [
            (DigestAlgorithm::Md5, "8ca523f5e9506fed4657c9700eebdbec"),
            (
                DigestAlgorithm::Sha256,
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
        ] {
            let ha1 = algorithm.hash(&["Mufasa", realm, "Circle of Life"]);
            let got = digest_response(
                algorithm,
                &ha1,
                nonce,
                "00000001",
                cnonce,
                "auth",
                "GET",
                "/dir/index.html",
            );
            assert_eq!(got, want, "{algorithm:?}");
        }
    }

    #[test]
    fn auth_params() {
        let ok: &[(&str, &[(&str, &str)])] = &[
            ("", &[]),
            (" , ,", &[]),
            ("a=b", &[("a", "b")]),
            ("a = \"b c\" ,c=d", &[("a", "b c"), ("c", "d")]),
            (",a=\"\",", &[("a", "")]),
            (r#"a="x\"y\\z\q""#, &[("a", "x\"y\\zq")]),
            ("a=\"é,=\"", &[("a", "é,=")]),
            ("A=1,\tb=2", &[("A", "1"), ("b", "2")]),
        ];
        for (input, want) in ok {
            let got = parse_auth_params(input).unwrap_or_else(|| panic!("{input:?}"));
            let got: Vec<(&str, &str)> = got.iter().map(|(n, v)| (&**n, &**v)).collect();
            assert_eq!(&got, want, "{input:?}");
        }
        for bad in [
            "a",
            "a=",
            "=b",
            "a=b c",
            "a=\"b",
            "a=\"b\\",
            "a=\"b\"c",
            "a=b,a=c",
            "a=b,A=c",
            "a b=c",
            "a=\"\u{1}\"",
            "a=\"\\\u{1}\"",
            "a=b;c=d",
            "a=(b)",
        ] {
            assert_eq!(parse_auth_params(bad), None, "{bad:?}");
        }
        let many: String = (0..=MAX_PARAMS).map(|i| format!("p{i}=1,")).collect();
        assert_eq!(parse_auth_params(&many), None);
        let enough: String = (0..MAX_PARAMS).map(|i| format!("p{i}=1,")).collect();
        assert_eq!(parse_auth_params(&enough).unwrap().len(), MAX_PARAMS);
    }

    fn digest() -> DigestAuth {
        let settings = DigestSettings::default().nonce_lifetime(Duration::from_secs(60));
        DigestAuth::new("twilio", "pw", settings).unwrap()
    }

    #[test]
    fn shared_nonce_keys() {
        let key = [42u8; 32];
        let settings = DigestSettings::default().nonce_key(&key);
        let a = DigestAuth::new("twilio", "pw", settings.clone()).unwrap();
        let b = DigestAuth::new("twilio", "pw", settings.clone()).unwrap();
        assert_eq!(b.nonce_time(&a.nonce(77)), Some(77));
        let other = DigestSettings::default().nonce_key(&[43u8; 32]);
        let c = DigestAuth::new("twilio", "pw", other).unwrap();
        assert_eq!(c.nonce_time(&a.nonce(77)), None);
        let short = DigestSettings::default().nonce_key(&[1u8; 31]);
        assert!(matches!(
            DigestAuth::new("twilio", "pw", short),
            Err(ConfigError::InvalidDigestAuth(_))
        ));
        let debug = format!("{settings:?}");
        assert!(
            debug.contains("[redacted]") && !debug.contains("42"),
            "{debug}"
        );
    }

    fn answer(d: &DigestAuth, algorithm: DigestAlgorithm, nonce: &str, password: &str) -> String {
        let ha1 = algorithm.hash(&["twilio", REALM, password]);
        let response = digest_response(
            algorithm, &ha1, nonce, "00000001", "abc", "auth", "POST", "/sms",
        );
        let _ = d;
        format!(
            "Digest username=\"twilio\", realm=\"Twilio\", nonce=\"{nonce}\", uri=\"/sms\", \
             algorithm={}, qop=auth, nc=00000001, cnonce=\"abc\", response=\"{response}\"",
            algorithm.as_str()
        )
    }

    #[test]
    fn nonces() {
        let d = digest();
        let nonce = d.nonce(1_000);
        assert_eq!(d.nonce_time(&nonce), Some(1_000));
        assert_eq!(digest().nonce_time(&nonce), None, "another key");
        assert_eq!(d.nonce_time(&nonce.replace("1000-", "1001-")), None);
        assert_eq!(d.nonce_time("1000"), None);
        assert_eq!(d.nonce_time(&format!("+{nonce}")), None);
        for (now, want) in [
            (1_000, Ok(())),
            (1_059, Ok(())),
            (1_060, Err(SignatureErrorKind::StaleNonce)),
            // Dated ahead of this clock: by another replica's clock, or by the key's holder.
            (940, Ok(())),
            (939, Err(SignatureErrorKind::StaleNonce)),
            (0, Err(SignatureErrorKind::StaleNonce)),
        ] {
            let value = answer(&d, DigestAlgorithm::Sha256, &nonce, "pw");
            assert_eq!(d.check(&value, "POST", "/sms", now), want, "{now}");
        }
        let wrong = answer(&d, DigestAlgorithm::Md5, &nonce, "px");
        assert_eq!(
            d.check(&wrong, "POST", "/sms", 1_000),
            Err(SignatureErrorKind::Unauthorized)
        );
        let challenges = d.challenges(true, 5);
        assert_eq!(challenges.len(), 2);
        assert!(challenges[0]
            .to_str()
            .unwrap()
            .contains("algorithm=SHA-256"));
        assert!(challenges[1].to_str().unwrap().ends_with("stale=true"));
        assert!(!format!("{d:?}").contains("pw\""));
    }
}
