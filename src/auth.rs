//! HTTP authentication on the webhook URL, checked before the signature: Twilio sends the
//! credentials written in the webhook URL once a first request is answered with 401.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::{self, HeaderMap, HeaderValue};
use subtle::ConstantTimeEq;

use crate::error::{ConfigError, SignatureErrorKind};

/// HTTP Basic credentials the request must carry.
#[derive(Clone)]
pub(crate) struct BasicAuth {
    /// `user:password`, as the decoded header carries it.
    credentials: Vec<u8>,
    challenge: HeaderValue,
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
            credentials: format!("{username}:{password}").into_bytes(),
            challenge: HeaderValue::from_static("Basic realm=\"Twilio\""),
        })
    }

    /// The `WWW-Authenticate` value a 401 carries.
    pub(crate) fn challenge(&self) -> &HeaderValue {
        &self.challenge
    }

    /// Whether the request carries exactly one `Authorization` header with these
    /// credentials (compared in constant time).
    pub(crate) fn check(&self, headers: &HeaderMap) -> Result<(), SignatureErrorKind> {
        let err = SignatureErrorKind::Unauthorized;
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(err);
        };
        let value = value.to_str().map_err(|_| err)?;
        let (scheme, encoded) = value.split_once(' ').ok_or(err)?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(err);
        }
        let decoded = STANDARD.decode(encoded.trim()).map_err(|_| err)?;
        if bool::from(decoded.ct_eq(&self.credentials)) {
            Ok(())
        } else {
            Err(err)
        }
    }
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

    #[test]
    fn basic_credentials() {
        let auth = BasicAuth::new("user", "pa:ss").unwrap();
        let good = format!("Basic {}", STANDARD.encode("user:pa:ss"));
        assert_eq!(auth.check(&headers(&[&good])), Ok(()));
        assert_eq!(
            auth.check(&headers(&[&good.replace("Basic", "bAsIc")])),
            Ok(())
        );
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
                auth.check(&headers(&bad)),
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
}
