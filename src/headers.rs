//! Headers a webhook may carry at most once. A repeated one is never resolved by taking the
//! first or the last value: the caller refuses the request.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::error::SignatureErrorKind;

/// The value of a header that may appear at most once: `None` if absent, `repeated` if it
/// appears more than once.
pub(crate) fn single<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
    repeated: SignatureErrorKind,
) -> Result<Option<&'a HeaderValue>, SignatureErrorKind> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(repeated);
    }
    Ok(first)
}
