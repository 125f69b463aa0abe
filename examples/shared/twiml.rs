//! TwiML answers: XML with `Content-Type: text/xml`.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// A TwiML document, answered as `text/xml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Twiml(pub(crate) String);

impl Twiml {
    /// `<Response>` around `verbs` (already XML), after the XML declaration.
    pub(crate) fn response(verbs: &str) -> Self {
        Self(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>{verbs}</Response>"
        ))
    }
}

impl IntoResponse for Twiml {
    fn into_response(self) -> Response {
        ([(header::CONTENT_TYPE, "text/xml")], self.0).into_response()
    }
}

/// `text` with the five XML special characters escaped, for element text and attribute
/// values alike. Control characters that XML 1.0 does not allow are left out.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if u32::from(c) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}
