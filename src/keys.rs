//! Secrets, SharedKey ids, algorithms and the `X-Twilio-Webhooks-Signature-Settings` header.
//!
//! Keyed HMAC state is prepared once, when a key is added, and cloned per request.

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

use crate::error::{ConfigError, SignatureErrorKind};

/// The MAC algorithm of a signature.
///
/// Account Auth Tokens always sign with HMAC-SHA1. A SharedKey webhook names its
/// algorithm in `X-Twilio-Webhooks-Signature-Settings`.
///
/// ```
/// use tower_twilio_signature::Algorithm;
///
/// assert_eq!(Algorithm::HmacSha256.as_str(), "HMAC_SHA256");
/// assert_eq!("HMAC_SHA1".parse::<Algorithm>(), Ok(Algorithm::HmacSha1));
/// assert!("HMAC_MD5".parse::<Algorithm>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// HMAC-SHA1: Auth Tokens, and SharedKeys that ask for it.
    HmacSha1,
    /// HMAC-SHA256: SharedKeys only.
    HmacSha256,
}

impl Algorithm {
    /// The name Twilio uses in the settings header.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::HmacSha1 => "HMAC_SHA1",
            Self::HmacSha256 => "HMAC_SHA256",
        }
    }

    /// Length of the raw MAC in bytes.
    pub(crate) const fn mac_len(self) -> usize {
        match self {
            Self::HmacSha1 => 20,
            Self::HmacSha256 => 32,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Algorithm {
    type Err = UnsupportedAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "HMAC_SHA1" => Ok(Self::HmacSha1),
            "HMAC_SHA256" => Ok(Self::HmacSha256),
            _ => Err(UnsupportedAlgorithm(())),
        }
    }
}

/// The error of parsing an [`Algorithm`] other than `HMAC_SHA1` or `HMAC_SHA256`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedAlgorithm(());

impl fmt::Display for UnsupportedAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unsupported algorithm: expected HMAC_SHA1 or HMAC_SHA256")
    }
}

impl std::error::Error for UnsupportedAlgorithm {}

/// Which configured key verified a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MatchedKey {
    /// An Auth Token, by the order it was added: 0 is the one given to `new`,
    /// 1 the first `with_auth_token`, and so on.
    AuthToken(usize),
    /// The SharedKey with this id.
    SharedKey(Arc<str>),
    /// The Auth Token the per-account lookup gave for this `AccountSid`
    /// (see [`Verifier::with_account_tokens`](crate::Verifier::with_account_tokens)).
    Account(Arc<str>),
}

/// Keyed MAC state prepared once per secret.
#[derive(Clone)]
pub(crate) enum PreparedMac {
    Sha1(Hmac<Sha1>),
    Sha256(Hmac<Sha256>),
}

impl PreparedMac {
    pub(crate) fn new(algorithm: Algorithm, secret: &[u8]) -> Self {
        match algorithm {
            Algorithm::HmacSha1 => {
                Self::Sha1(Hmac::new_from_slice(secret).expect("HMAC takes keys of any length"))
            }
            Algorithm::HmacSha256 => {
                Self::Sha256(Hmac::new_from_slice(secret).expect("HMAC takes keys of any length"))
            }
        }
    }

    pub(crate) const fn algorithm(&self) -> Algorithm {
        match self {
            Self::Sha1(_) => Algorithm::HmacSha1,
            Self::Sha256(_) => Algorithm::HmacSha256,
        }
    }

    /// A fresh MAC computation from the prepared key state.
    pub(crate) fn start(&self) -> Running {
        match self {
            Self::Sha1(m) => Running::Sha1(m.clone()),
            Self::Sha256(m) => Running::Sha256(m.clone()),
        }
    }
}

/// A MAC computation in progress.
pub(crate) enum Running {
    Sha1(Hmac<Sha1>),
    Sha256(Hmac<Sha256>),
}

impl Running {
    #[inline]
    pub(crate) fn update(&mut self, data: &[u8]) {
        match self {
            Self::Sha1(m) => m.update(data),
            Self::Sha256(m) => m.update(data),
        }
    }

    /// Writes the MAC into `out` and returns its length.
    pub(crate) fn finish(self, out: &mut [u8; 32]) -> usize {
        match self {
            Self::Sha1(m) => {
                out[..20].copy_from_slice(&m.finalize().into_bytes());
                20
            }
            Self::Sha256(m) => {
                out.copy_from_slice(&m.finalize().into_bytes());
                32
            }
        }
    }
}

pub(crate) struct SharedKey {
    id: Arc<str>,
    sha1: PreparedMac,
    sha256: PreparedMac,
}

/// The secrets a layer or verifier holds. `Debug` shows how many, never what.
#[derive(Clone, Default)]
pub(crate) struct KeySet {
    auth_tokens: Vec<PreparedMac>,
    shared: Vec<Arc<SharedKey>>,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field(
                "auth_tokens",
                &format_args!("{} [redacted]", self.auth_tokens.len()),
            )
            .field(
                "shared_keys",
                &self.shared.iter().map(|k| &*k.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The keys chosen for one request from its settings header, owned so that it can wait
/// for the body.
#[derive(Clone)]
pub(crate) enum KeyChoice {
    AuthTokens,
    Shared(Arc<SharedKey>, Algorithm),
}

impl fmt::Debug for KeyChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AuthTokens => f.write_str("AuthTokens"),
            Self::Shared(k, a) => write!(f, "Shared({}, {a})", k.id),
        }
    }
}

impl KeyChoice {
    /// Whether the request names no SharedKey, so account Auth Tokens apply.
    pub(crate) fn is_auth_tokens(&self) -> bool {
        matches!(self, Self::AuthTokens)
    }

    /// The keys to try.
    pub(crate) fn keys<'a>(&'a self, set: &'a KeySet) -> Selected<'a> {
        match self {
            Self::AuthTokens => Selected::AuthTokens(&set.auth_tokens),
            Self::Shared(key, Algorithm::HmacSha1) => Selected::Shared(&key.id, &key.sha1),
            Self::Shared(key, Algorithm::HmacSha256) => Selected::Shared(&key.id, &key.sha256),
        }
    }
}

/// The keys to try for one request.
pub(crate) enum Selected<'a> {
    AuthTokens(&'a [PreparedMac]),
    Shared(&'a Arc<str>, &'a PreparedMac),
}

impl<'a> Selected<'a> {
    /// Each candidate key with what to report if it matches.
    pub(crate) fn each(&self) -> impl Iterator<Item = (&'a PreparedMac, MatchedKeyRef<'a>)> + '_ {
        let (tokens, shared): (&'a [PreparedMac], Option<(&'a Arc<str>, &'a PreparedMac)>) =
            match *self {
                Selected::AuthTokens(t) => (t, None),
                Selected::Shared(id, mac) => (&[], Some((id, mac))),
            };
        tokens
            .iter()
            .enumerate()
            .map(|(i, m)| (m, MatchedKeyRef::AuthToken(i)))
            .chain(shared.map(|(id, m)| (m, MatchedKeyRef::Shared(id))))
    }
}

impl Selected<'_> {
    /// The algorithm a match with these keys used.
    pub(crate) fn algorithm(&self) -> Algorithm {
        match self {
            Selected::AuthTokens(_) => Algorithm::HmacSha1,
            Selected::Shared(_, mac) => mac.algorithm(),
        }
    }
}

/// A borrowed [`MatchedKey`], turned into an owned one only on success.
#[derive(Clone, Copy)]
pub(crate) enum MatchedKeyRef<'a> {
    AuthToken(usize),
    Shared(&'a Arc<str>),
}

impl MatchedKeyRef<'_> {
    pub(crate) fn to_owned(self) -> MatchedKey {
        match self {
            Self::AuthToken(i) => MatchedKey::AuthToken(i),
            Self::Shared(id) => MatchedKey::SharedKey(Arc::clone(id)),
        }
    }
}

impl KeySet {
    pub(crate) fn add_auth_token(&mut self, token: &str) -> Result<(), ConfigError> {
        check_secret(token)?;
        self.auth_tokens
            .push(PreparedMac::new(Algorithm::HmacSha1, token.as_bytes()));
        Ok(())
    }

    pub(crate) fn add_shared_key(&mut self, id: &str, secret: &str) -> Result<(), ConfigError> {
        if id.is_empty()
            || id
                .bytes()
                .any(|b| b == b',' || b == b'=' || b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(ConfigError::InvalidKeyId);
        }
        check_secret(secret)?;
        if self.shared.iter().any(|k| &*k.id == id) {
            return Err(ConfigError::DuplicateKeyId);
        }
        self.shared.push(Arc::new(SharedKey {
            id: id.into(),
            sha1: PreparedMac::new(Algorithm::HmacSha1, secret.as_bytes()),
            sha256: PreparedMac::new(Algorithm::HmacSha256, secret.as_bytes()),
        }));
        Ok(())
    }

    /// Chooses the keys for a request from its settings header (absent: the Auth Tokens).
    pub(crate) fn choose(&self, settings: Option<&str>) -> Result<KeyChoice, SignatureErrorKind> {
        let Some(settings) = settings else {
            return if self.auth_tokens.is_empty() {
                // Only SharedKeys are configured, and the request names none.
                Err(SignatureErrorKind::UnknownKeyId)
            } else {
                Ok(KeyChoice::AuthTokens)
            };
        };
        let (id, algorithm) = parse_settings(settings)?;
        let key = self
            .shared
            .iter()
            .find(|k| &*k.id == id)
            .ok_or(SignatureErrorKind::UnknownKeyId)?;
        Ok(KeyChoice::Shared(Arc::clone(key), algorithm))
    }
}

/// A secret must be non-empty and carry no whitespace at either end.
fn check_secret(secret: &str) -> Result<(), ConfigError> {
    if secret.is_empty() {
        return Err(ConfigError::EmptySecret);
    }
    if secret.trim() != secret {
        return Err(ConfigError::SecretWhitespace);
    }
    Ok(())
}

/// Parses `key=<id>,algorithm=<alg>`: parts in any order, spaces around them allowed,
/// part names in any case, unknown parts ignored. A missing or repeated `key` or
/// `algorithm` is malformed; an algorithm other than the two Twilio uses is unsupported.
fn parse_settings(value: &str) -> Result<(&str, Algorithm), SignatureErrorKind> {
    let mut key = None;
    let mut algorithm = None;
    for part in value.split(',') {
        let part = part.trim_matches([' ', '\t']);
        if part.is_empty() {
            continue;
        }
        let (name, val) = part
            .split_once('=')
            .ok_or(SignatureErrorKind::MalformedHeader)?;
        let name = name.trim_matches([' ', '\t']);
        let val = val.trim_matches([' ', '\t']);
        let slot = if name.eq_ignore_ascii_case("key") {
            &mut key
        } else if name.eq_ignore_ascii_case("algorithm") {
            &mut algorithm
        } else {
            continue;
        };
        if slot.replace(val).is_some() || val.is_empty() {
            return Err(SignatureErrorKind::MalformedHeader);
        }
    }
    let (Some(key), Some(algorithm)) = (key, algorithm) else {
        return Err(SignatureErrorKind::MalformedHeader);
    };
    let algorithm = algorithm
        .parse()
        .map_err(|_| SignatureErrorKind::UnsupportedAlgorithm)?;
    Ok((key, algorithm))
}

#[cfg(test)]
mod tests {
    use super::*;
    use SignatureErrorKind::*;

    #[test]
    fn settings_header() {
        let ok = [
            (
                "key=k1,algorithm=HMAC_SHA256",
                ("k1", Algorithm::HmacSha256),
            ),
            (" algorithm=HMAC_SHA1 , key=k1", ("k1", Algorithm::HmacSha1)),
            (
                "Key=k1,ALGORITHM=HMAC_SHA1,version=2",
                ("k1", Algorithm::HmacSha1),
            ),
            (
                "key = k1 ,\talgorithm= HMAC_SHA256,",
                ("k1", Algorithm::HmacSha256),
            ),
        ];
        for (input, want) in ok {
            assert_eq!(parse_settings(input), Ok(want), "{input:?}");
        }
        let bad = [
            ("", MalformedHeader),
            ("key=k1", MalformedHeader),
            ("algorithm=HMAC_SHA1", MalformedHeader),
            ("key=k1,key=k2,algorithm=HMAC_SHA1", MalformedHeader),
            ("key=,algorithm=HMAC_SHA1", MalformedHeader),
            ("key=k1,algorithm", MalformedHeader),
            (
                "key=k1,algorithm=HMAC_MD5",
                SignatureErrorKind::UnsupportedAlgorithm,
            ),
            (
                "key=k1,algorithm=hmac_sha1",
                SignatureErrorKind::UnsupportedAlgorithm,
            ),
        ];
        for (input, want) in bad {
            assert_eq!(parse_settings(input), Err(want), "{input:?}");
        }
    }

    #[test]
    fn selection() {
        let mut keys = KeySet::default();
        assert!(matches!(keys.choose(None), Err(UnknownKeyId)));
        keys.add_shared_key("k1", "secret").unwrap();
        assert!(matches!(keys.choose(None), Err(UnknownKeyId)));
        keys.add_auth_token("token").unwrap();
        let tokens = keys.choose(None).unwrap();
        assert!(matches!(tokens.keys(&keys), Selected::AuthTokens(t) if t.len() == 1));
        let shared = keys.choose(Some("key=k1,algorithm=HMAC_SHA256")).unwrap();
        match shared.keys(&keys) {
            Selected::Shared(id, mac) => {
                assert_eq!(&**id, "k1");
                assert_eq!(mac.algorithm(), Algorithm::HmacSha256);
            }
            Selected::AuthTokens(_) => panic!("k1 not selected"),
        }
        assert!(matches!(
            keys.choose(Some("key=k2,algorithm=HMAC_SHA256")),
            Err(UnknownKeyId)
        ));
        assert_eq!(
            keys.add_shared_key("k1", "x").unwrap_err(),
            ConfigError::DuplicateKeyId
        );
        assert_eq!(
            keys.add_shared_key("a,b", "x").unwrap_err(),
            ConfigError::InvalidKeyId
        );
        assert_eq!(
            keys.add_shared_key("k2", "").unwrap_err(),
            ConfigError::EmptySecret
        );
        assert_eq!(
            keys.add_auth_token("").unwrap_err(),
            ConfigError::EmptySecret
        );
        for stray in ["tok\n", " tok", "tok\r\n", "\ttok"] {
            assert_eq!(
                keys.add_auth_token(stray).unwrap_err(),
                ConfigError::SecretWhitespace,
                "{stray:?}"
            );
            assert_eq!(
                keys.add_shared_key("k9", stray).unwrap_err(),
                ConfigError::SecretWhitespace,
                "{stray:?}"
            );
        }
        assert!(keys.add_auth_token("to k").is_ok());
    }

    #[test]
    fn debug_redacts() {
        let mut keys = KeySet::default();
        keys.add_auth_token("supersecrettoken").unwrap();
        keys.add_shared_key("kid", "sharedsecretvalue").unwrap();
        let out = format!("{keys:?}");
        assert!(
            !out.contains("supersecret") && !out.contains("sharedsecret"),
            "{out}"
        );
        assert!(out.contains("kid"), "{out}");
    }
}
