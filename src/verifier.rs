//! The keys and the URL forms to try, and the verification both the layer and framework-free
//! code go through.

use std::borrow::Borrow;
use std::sync::Arc;

use crate::error::{ConfigError, SignatureError, SignatureErrorKind};
use crate::keys::{Algorithm, KeyChoice, KeySet, MatchedKey, PreparedMac};
use crate::params::{pair_bytes, query_value, signed_tail, single_value, Form};
use crate::signature::{body_hash_matches, body_hash_param, find_match, match_key, SignatureBytes};
use crate::url::{parse_full_url, Candidates};
use crate::verified::VerifiedWebhook;

/// The keys that sign genuine webhooks, and how to verify a request with them.
///
/// Build one and hand it to
/// [`TwilioSignatureLayer::from_verifier`](crate::TwilioSignatureLayer::from_verifier), or
/// use it on requests your own code has already taken apart: a URL and either the form
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
    keys: KeySet,
    account_tokens: Option<Arc<dyn AccountTokens>>,
    extra_url_forms: bool,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = f.debug_struct("Verifier");
        out.field("keys", &self.keys);
        if self.account_tokens.is_some() {
            out.field("account_tokens", &"<lookup>");
        }
        out.field("extra_url_forms", &self.extra_url_forms).finish()
    }
}

/// Looks up the Auth Token of a Twilio account by its `AccountSid`, for one webhook URL that
/// serves many accounts (subaccounts, or an ISV's customers). Set it with
/// [`Verifier::with_account_tokens`].
///
/// Any `Fn(&str) -> Option<String> + Send + Sync` is one. The lookup runs once per request
/// that no static key verified, while the request is being decided: keep it fast and
/// non-blocking (a map in memory that you refresh elsewhere, not a database query).
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::{Arc, RwLock};
///
/// use tower_twilio_signature::{sign, MatchedKey, TwilioSignatureLayer, Verifier};
///
/// // Refreshed elsewhere, for example when a customer connects their account.
/// let tokens: Arc<RwLock<HashMap<String, String>>> = Arc::default();
/// tokens.write().unwrap().insert("AC111".into(), "token of AC111".into());
///
/// let shared = Arc::clone(&tokens);
/// let verifier = Verifier::from_account_tokens(move |account_sid: &str| {
///     shared.read().ok()?.get(account_sid).cloned()
/// });
///
/// let url = "https://hooks.example.com/sms";
/// let params = [("AccountSid", "AC111"), ("Body", "hi")];
/// let header = sign("token of AC111", url, params);
/// let verified = verifier.verify_form(url, params, &header, None).unwrap();
/// assert_eq!(verified.key(), &MatchedKey::Account("AC111".into()));
///
/// // An account added later is known at once.
/// tokens.write().unwrap().insert("AC222".into(), "token of AC222".into());
/// let params = [("AccountSid", "AC222"), ("Body", "hi")];
/// let header = sign("token of AC222", url, params);
/// assert!(verifier.verify_form(url, params, &header, None).is_ok());
///
/// let layer = TwilioSignatureLayer::from_verifier(verifier);
/// # let _ = layer;
/// ```
pub trait AccountTokens: Send + Sync {
    /// The Auth Token of `account_sid`, or `None` for an account you do not serve. A token
    /// that is empty or has whitespace at either end is treated as `None` (and logged with
    /// the `tracing` feature).
    fn auth_token(&self, account_sid: &str) -> Option<String>;
}

impl<F> AccountTokens for F
where
    F: Fn(&str) -> Option<String> + Send + Sync,
{
    fn auth_token(&self, account_sid: &str) -> Option<String> {
        self(account_sid)
    }
}

/// What produced a signature.
#[derive(Debug)]
pub(crate) struct Matched {
    pub(crate) url: String,
    pub(crate) key: MatchedKey,
    pub(crate) algorithm: Algorithm,
}

impl Verifier {
    /// A verifier for webhooks signed with an account Auth Token.
    ///
    /// # Errors
    /// [`ConfigError::EmptySecret`] if the token is empty,
    /// [`ConfigError::SecretWhitespace`] if it starts or ends with whitespace.
    pub fn new(auth_token: &str) -> Result<Self, ConfigError> {
        Self::empty().with_auth_token(auth_token)
    }

    /// A verifier for SharedKey webhooks only (no Auth Token).
    ///
    /// # Errors
    /// As [`with_shared_key`](Self::with_shared_key).
    pub fn from_shared_key(key_id: &str, secret: &str) -> Result<Self, ConfigError> {
        Self::empty().with_shared_key(key_id, secret)
    }

    /// A verifier with the Auth Token from the `TWILIO_AUTH_TOKEN` environment variable.
    ///
    /// # Errors
    /// [`ConfigError::MissingEnv`] if it is unset or not Unicode,
    /// [`ConfigError::InvalidEnv`] if it is empty or has whitespace at either end; both
    /// name the variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        const NAME: &str = "TWILIO_AUTH_TOKEN";
        let token = std::env::var(NAME).map_err(|_| ConfigError::MissingEnv(NAME))?;
        Self::new(&token).map_err(|e| ConfigError::InvalidEnv(NAME, Box::new(e)))
    }

    /// A verifier with per-account Auth Tokens only: see [`AccountTokens`].
    pub fn from_account_tokens(lookup: impl AccountTokens + 'static) -> Self {
        Self::empty().with_account_tokens(lookup)
    }

    fn empty() -> Self {
        Self {
            keys: KeySet::default(),
            account_tokens: None,
            extra_url_forms: false,
        }
    }

    /// Also accepts webhooks signed with the Auth Token of the account they name, as
    /// `lookup` gives it (replacing any lookup set before).
    ///
    /// The account is the `AccountSid` form parameter, or, for a request without form
    /// parameters (a GET, a body covered by `bodySHA256`), the `AccountSid` query
    /// parameter; it must have one value. The static keys are tried first; the lookup runs
    /// only when none of them matched and the request names no SharedKey. An `AccountSid`
    /// the lookup does not know is refused with [`SignatureErrorKind::UnknownAccount`]; a
    /// request that names no account, or whose account's token does not produce the
    /// signature, with [`SignatureErrorKind::Mismatch`]. A match reports
    /// [`MatchedKey::Account`]. See [`AccountTokens`] for an example.
    pub fn with_account_tokens(mut self, lookup: impl AccountTokens + 'static) -> Self {
        self.account_tokens = Some(Arc::new(lookup));
        self
    }

    /// Also accepts this Auth Token. While you rotate tokens in the Twilio console, add the
    /// secondary token here, then drop the old one once the new one is promoted.
    ///
    /// ```
    /// use tower_twilio_signature::{sign, MatchedKey, Verifier};
    ///
    /// let verifier = Verifier::new("primary")?.with_auth_token("secondary")?;
    /// let header = sign("secondary", "https://example.com/sms", [("Body", "hi")]);
    /// let verified = verifier.verify_form("https://example.com/sms", [("Body", "hi")], &header, None);
    /// assert_eq!(verified.unwrap().key(), &MatchedKey::AuthToken(1));
    /// # Ok::<(), tower_twilio_signature::ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_auth_token(mut self, auth_token: &str) -> Result<Self, ConfigError> {
        self.keys.add_auth_token(auth_token)?;
        Ok(self)
    }

    /// Accepts webhooks whose `X-Twilio-Webhooks-Signature-Settings` header names `key_id`,
    /// verified with `secret` and the algorithm the header names (`HMAC_SHA1` or
    /// `HMAC_SHA256`). A request that names an unknown key id is refused.
    ///
    /// ```
    /// use tower_twilio_signature::Verifier;
    ///
    /// let verifier = Verifier::new("auth token")?.with_shared_key("KS123", "shared secret")?;
    /// # let _ = verifier;
    /// # Ok::<(), tower_twilio_signature::ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// [`ConfigError::InvalidKeyId`], [`ConfigError::DuplicateKeyId`],
    /// [`ConfigError::EmptySecret`] or [`ConfigError::SecretWhitespace`].
    pub fn with_shared_key(mut self, key_id: &str, secret: &str) -> Result<Self, ConfigError> {
        self.keys.add_shared_key(key_id, secret)?;
        Ok(self)
    }

    /// Whether to also try the URL forms twilio-node 6 tries besides the URL as received:
    /// the WHATWG-serialized URL (lowercase host, some characters percent-encoded) and the
    /// query re-encoded as Node's legacy `querystring` module does. They are built and tried
    /// only once the ordinary candidates have failed. Off by default; useful only where a
    /// back end signed such a form.
    pub fn extra_url_forms(mut self, enabled: bool) -> Self {
        self.extra_url_forms = enabled;
        self
    }

    /// Whether a per-account lookup is set: only then does a request's account matter.
    pub(crate) fn looks_up_accounts(&self) -> bool {
        self.account_tokens.is_some()
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
        let pairs = pair_bytes(&owned);
        let tail = signed_tail(pairs.clone());
        let account = match owned.is_empty() {
            true => Account::FromQuery,
            false if self.looks_up_accounts() => Account::Given(single_value(pairs, ACCOUNT_SID)),
            false => Account::Given(None),
        };
        self.verify_parts(url, &tail, None, account, signature, settings)
    }

    /// Verifies a request whose body is covered by `bodySHA256` in the URL's query
    /// (JSON webhooks). An empty body needs no hash.
    ///
    /// ```
    /// use tower_twilio_signature::{sign_body, Verifier};
    ///
    /// let body = br#"{"CallSid":"CA123"}"#;
    /// let (url, header) = sign_body("token", "https://example.com/events", body);
    /// let verifier = Verifier::new("token")?;
    /// assert!(verifier.verify_body(&url, body, &header, None).is_ok());
    /// assert!(verifier.verify_body(&url, b"{}", &header, None).is_err());
    /// # Ok::<(), tower_twilio_signature::ConfigError>(())
    /// ```
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
        self.verify_parts(
            url,
            &[],
            Some(body),
            Account::FromQuery,
            signature,
            settings,
        )
    }

    fn verify_parts(
        &self,
        url: &str,
        tail: &[u8],
        body: Option<&[u8]>,
        account: Account<'_>,
        signature: &str,
        settings: Option<&str>,
    ) -> Result<VerifiedWebhook, SignatureError> {
        let signature = SignatureBytes::decode(signature.as_bytes())?;
        let keys = self.choose_keys(settings)?;
        let parts = parse_full_url(url)?;
        let from_query;
        let account = match account {
            Account::Given(account) => account,
            Account::FromQuery if self.looks_up_accounts() => {
                from_query = query_value(parts.query, ACCOUNT_SID);
                from_query.as_deref()
            }
            Account::FromQuery => None,
        };
        let body_hash = match body {
            Some(body) => match body_hash_param(parts.query)? {
                Some(hash) => Some((hash, body)),
                None if body.is_empty() => None,
                None => return Err(SignatureErrorKind::UnsignedBody.into()),
            },
            None => None,
        };
        let candidates = Candidates::build(&parts);
        let body_hash = body_hash.as_ref().map(|(hash, body)| (&**hash, *body));
        let matched = self.check(&keys, &candidates, tail, &signature, body_hash, account)?;
        Ok(VerifiedWebhook::new(
            matched.url,
            matched.key,
            matched.algorithm,
            None,
            signature,
        ))
    }

    /// The keys a request's settings header (if any) selects. With a per-account lookup,
    /// a request without one is checked even if no static Auth Token is configured.
    pub(crate) fn choose_keys(
        &self,
        settings: Option<&str>,
    ) -> Result<KeyChoice, SignatureErrorKind> {
        match (settings, &self.account_tokens) {
            (None, Some(_)) => Ok(KeyChoice::AuthTokens),
            _ => self.keys.choose(settings),
        }
    }

    /// The last step for the verifier and the layer alike: a key and a candidate URL,
    /// followed by `tail` (the parameters' part of the signed string), must produce the
    /// signature; then a `bodySHA256`, if the body is covered by one, must match. The static
    /// keys are tried first, then the Auth Token of `account`, if a lookup is set.
    pub(crate) fn check(
        &self,
        keys: &KeyChoice,
        candidates: &Candidates,
        tail: &[u8],
        signature: &SignatureBytes,
        body_hash: Option<(&str, &[u8])>,
        account: Option<&str>,
    ) -> Result<Matched, SignatureErrorKind> {
        let selected = keys.keys(&self.keys);
        // WebSocket candidates that drop the query are followed by its pairs instead.
        // They are decoded as a form body is, refusing text that is not UTF-8.
        let query_tail = candidates
            .query_params()
            .map(|query| Form::parse(query.as_bytes()).map(|form| signed_tail(form.pairs())))
            .transpose()?;
        // Runs `find` over the candidates, then, if enabled, over the extra URL forms.
        let attempt = |find: &Finder<'_>| {
            let over = |candidates: &Candidates| {
                let list: Vec<(&str, &[u8])> = candidates
                    .iter()
                    .map(|(url, c)| match (&query_tail, c.query_params) {
                        (Some(query_tail), true) => (url, &query_tail[..]),
                        _ => (url, tail),
                    })
                    .collect();
                let (index, key) = find(&list)?;
                Some((list[index].0.to_owned(), key))
            };
            over(candidates).or_else(|| {
                self.extra_url_forms
                    .then(|| candidates.extra_forms())
                    .flatten()
                    .and_then(|extra| over(&extra))
            })
        };
        let (url, key) = match attempt(&|list| find_match(&selected, list, signature)) {
            Some(found) => found,
            None => {
                let (mac, sid) = self.account_key(keys, account)?;
                attempt(&|list| {
                    match_key(&mac, list, signature)
                        .map(|index| (index, MatchedKey::Account(Arc::clone(&sid))))
                })
                .ok_or(SignatureErrorKind::Mismatch)?
            }
        };
        if let Some((expected, body)) = body_hash {
            if !body_hash_matches(expected, body) {
                return Err(SignatureErrorKind::BodyHashMismatch);
            }
        }
        Ok(Matched {
            url,
            key,
            algorithm: selected.algorithm(),
        })
    }

    /// The key of the account a request names, when no static key matched: `Mismatch` if
    /// there is no lookup, no account, or a SharedKey was named; `UnknownAccount` if the
    /// lookup has no usable token for it.
    fn account_key(
        &self,
        keys: &KeyChoice,
        account: Option<&str>,
    ) -> Result<(PreparedMac, Arc<str>), SignatureErrorKind> {
        let (Some(lookup), Some(sid), true) =
            (&self.account_tokens, account, keys.is_auth_tokens())
        else {
            return Err(SignatureErrorKind::Mismatch);
        };
        let token = lookup
            .auth_token(sid)
            .ok_or(SignatureErrorKind::UnknownAccount)?;
        if token.is_empty() || token.trim() != token {
            #[cfg(feature = "tracing")]
            tracing::warn!(
                account_sid = ?sid,
                "the Auth Token looked up for this account is empty or has whitespace at \
                 either end; the account is treated as unknown"
            );
            return Err(SignatureErrorKind::UnknownAccount);
        }
        Ok((
            PreparedMac::new(Algorithm::HmacSha1, token.as_bytes()),
            Arc::from(sid),
        ))
    }
}

/// Finds the first candidate (a URL and the parameters after it) a key signs, and the key.
type Finder<'a> = dyn Fn(&[(&str, &[u8])]) -> Option<(usize, MatchedKey)> + 'a;

/// The parameter that names the account a webhook is about.
pub(crate) const ACCOUNT_SID: &str = "AccountSid";

/// Where the account of a request verified without the layer comes from.
#[derive(Clone, Copy)]
enum Account<'a> {
    /// The form parameters' `AccountSid`, if they have one.
    Given(Option<&'a str>),
    /// The query's, for a request without form parameters.
    FromQuery,
}
