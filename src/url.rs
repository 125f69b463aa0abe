//! The public URL Twilio called: where it comes from, and the candidate forms to try.
//!
//! Path and query are never decoded or re-encoded (unless the optional extra forms are
//! asked for); user info never appears; the port is tried as received and with the
//! default port added or the port removed, as Twilio's SDKs do.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

use http::header::{HeaderName, HOST};
use http::{HeaderMap, Request};

use crate::error::{ConfigError, SignatureErrorKind};
use crate::headers::single;

/// Where the layer takes the public URL Twilio called from: one explicit choice.
///
/// Twilio signs the URL it requested. Behind a proxy, the server sees another scheme, host
/// or port, so the layer has to be told where the public one comes from. The path and query
/// always come from the request, byte for byte (under axum, from `OriginalUri`, so
/// `Router::nest` does not hide a prefix).
///
/// | source | what it trusts | use it |
/// |---|---|---|
/// | [`base_url`](Self::base_url) | your configuration only | in production: nothing a client sends changes the host checked |
/// | [`x_forwarded`](Self::x_forwarded) | `X-Forwarded-Proto/Host/Port/Prefix` written by your proxies | behind proxies you run that set them (nginx, most load balancers, ngrok) |
/// | [`forwarded`](Self::forwarded) | RFC 7239 `Forwarded` written by your proxies | behind proxies that set `Forwarded` |
/// | [`host_header`](Self::host_header) | the client's `Host` header | quick starts, and servers reached directly (the default, with `https`) |
///
/// ```
/// use tower_twilio_signature::{TwilioSignatureLayer, UrlSource};
///
/// let layer = TwilioSignatureLayer::new("auth token")?
///     .url_source(UrlSource::base_url("https://hooks.example.com")?);
/// # let _ = layer;
/// # Ok::<(), tower_twilio_signature::ConfigError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UrlSource {
    source: Source,
}

#[derive(Clone, PartialEq, Eq)]
enum Source {
    /// A fixed base URL from configuration.
    Fixed(BaseUrl),
    /// `Forwarded` (RFC 7239), the entry `hops` from the right.
    Forwarded { hops: usize },
    /// `X-Forwarded-Proto/Host/Port/Prefix`, the entry `hops` from the right.
    XForwarded { hops: usize },
    /// The `Host` header (or the URI's authority) with a configured scheme.
    Host { https: bool },
}

impl UrlSource {
    /// Scheme, host, port and a path prefix from `url`; the request's path and query are
    /// appended as received.
    ///
    /// `https://hooks.example.com/twilio` with a request for `/sms?x=1` gives
    /// `https://hooks.example.com/twilio/sms?x=1` (a trailing `/` on the base is dropped).
    /// Give the base only, not a webhook's whole URL: with
    /// `https://hooks.example.com/sms`, a request for `/sms` is checked against
    /// `https://hooks.example.com/sms/sms`.
    ///
    /// ```
    /// use tower_twilio_signature::UrlSource;
    ///
    /// assert!(UrlSource::base_url("https://hooks.example.com").is_ok());
    /// assert!(UrlSource::base_url("https://user:pw@hooks.example.com").is_err());
    /// ```
    ///
    /// # Errors
    /// [`ConfigError::InvalidBaseUrl`] for a scheme other than `http`/`https`, user info,
    /// a query, a fragment, or a malformed host or port.
    pub fn base_url(url: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            source: Source::Fixed(BaseUrl::parse(url)?),
        })
    }

    /// Scheme, host, port and path prefix from `X-Forwarded-Proto`, `X-Forwarded-Host`,
    /// `X-Forwarded-Port` and `X-Forwarded-Prefix`: in each, the entry `hops` from the right,
    /// so entries a client put in front of your proxies are never read. A header that is
    /// absent falls back to `https`, the `Host` header, the host's own port and no prefix.
    ///
    /// # Deployment caveat
    /// Use it only when exactly `hops` proxies you run append to these headers (or the
    /// nearest one overwrites them). A request that reaches the service without passing them
    /// can claim any host.
    ///
    /// ```
    /// use tower_twilio_signature::UrlSource;
    ///
    /// assert!(UrlSource::x_forwarded(1).is_ok());
    /// assert!(UrlSource::x_forwarded(0).is_err());
    /// ```
    ///
    /// # Errors
    /// [`ConfigError::ZeroHops`] if `hops` is 0.
    pub fn x_forwarded(hops: usize) -> Result<Self, ConfigError> {
        if hops == 0 {
            return Err(ConfigError::ZeroHops);
        }
        Ok(Self {
            source: Source::XForwarded { hops },
        })
    }

    /// Scheme and host from the RFC 7239 `Forwarded` header: its `proto` and `host` in the
    /// element `hops` from the right. Missing parts fall back to `https` and the `Host`
    /// header.
    ///
    /// # Deployment caveat
    /// As for [`x_forwarded`](Self::x_forwarded): only when exactly `hops` proxies you run
    /// append to `Forwarded`.
    ///
    /// ```
    /// use tower_twilio_signature::UrlSource;
    ///
    /// assert!(UrlSource::forwarded(2).is_ok());
    /// ```
    ///
    /// # Errors
    /// [`ConfigError::ZeroHops`] if `hops` is 0.
    pub fn forwarded(hops: usize) -> Result<Self, ConfigError> {
        if hops == 0 {
            return Err(ConfigError::ZeroHops);
        }
        Ok(Self {
            source: Source::Forwarded { hops },
        })
    }

    /// The host from the `Host` header (or the request URI's authority, as under HTTP/2),
    /// with the given scheme, `"https"` or `"http"`. The layer's default is
    /// `host_header("https")`.
    ///
    /// # Deployment caveat
    /// The client chooses the `Host` header. A signature still has to match, so a forger
    /// gains nothing, but a genuine request signed for another of your hosts is accepted.
    ///
    /// ```
    /// use tower_twilio_signature::UrlSource;
    ///
    /// assert!(UrlSource::host_header("http").is_ok());
    /// assert!(UrlSource::host_header("ftp").is_err());
    /// ```
    ///
    /// # Errors
    /// [`ConfigError::InvalidScheme`] for a scheme other than `http` or `https`.
    pub fn host_header(scheme: &str) -> Result<Self, ConfigError> {
        let https = if scheme.eq_ignore_ascii_case("https") {
            true
        } else if scheme.eq_ignore_ascii_case("http") {
            false
        } else {
            return Err(ConfigError::InvalidScheme);
        };
        Ok(Self {
            source: Source::Host { https },
        })
    }
}

impl Default for UrlSource {
    /// The `Host` header with `https`.
    fn default() -> Self {
        Self {
            source: Source::Host { https: true },
        }
    }
}

impl fmt::Debug for UrlSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Source::Fixed(b) => write!(f, "BaseUrl({b})"),
            Source::Forwarded { hops } => write!(f, "Forwarded {{ hops: {hops} }}"),
            Source::XForwarded { hops } => write!(f, "XForwarded {{ hops: {hops} }}"),
            Source::Host { https } => {
                let scheme = if *https { "https" } else { "http" };
                write!(f, "HostHeader {{ scheme: {scheme} }}")
            }
        }
    }
}

/// A validated base URL: scheme, host, optional port, path prefix without a trailing `/`.
#[derive(Clone, PartialEq, Eq)]
struct BaseUrl {
    https: bool,
    host: String,
    port: Option<String>,
    prefix: String,
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.host)?;
        if let Some(p) = &self.port {
            write!(f, ":{p}")?;
        }
        f.write_str(&self.prefix)
    }
}

impl BaseUrl {
    pub(crate) fn parse(url: &str) -> Result<Self, ConfigError> {
        let (https, rest) = if let Some(r) = strip_prefix_ignore_case(url, "https://") {
            (true, r)
        } else if let Some(r) = strip_prefix_ignore_case(url, "http://") {
            (false, r)
        } else {
            return Err(ConfigError::InvalidBaseUrl(
                "the scheme must be http:// or https://",
            ));
        };
        if url.contains('#') {
            return Err(ConfigError::InvalidBaseUrl("a fragment is not allowed"));
        }
        if url.contains('?') {
            return Err(ConfigError::InvalidBaseUrl(
                "a query is not allowed: the request's own query is appended",
            ));
        }
        let end = rest.find('/').unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if authority.contains('@') {
            return Err(ConfigError::InvalidBaseUrl(
                "user info is not allowed: Twilio drops it before signing",
            ));
        }
        let (host, port) = split_authority(authority)
            .ok_or(ConfigError::InvalidBaseUrl("the host or port is malformed"))?;
        if path.bytes().any(|b| !is_path_byte(b)) {
            return Err(ConfigError::InvalidBaseUrl(
                "the path has characters a request path cannot carry",
            ));
        }
        Ok(Self {
            https,
            host: host.to_ascii_lowercase(),
            port: port.map(str::to_owned),
            prefix: path.trim_end_matches('/').to_owned(),
        })
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Bytes allowed in a path: visible ASCII except `?` and `#`.
fn is_path_byte(b: u8) -> bool {
    b.is_ascii_graphic() && b != b'?' && b != b'#'
}

/// Splits `host[:port]` (IPv6 hosts in brackets). `None` if malformed or if it carries user info.
fn split_authority(a: &str) -> Option<(&str, Option<&str>)> {
    if !a.starts_with('[') {
        // One pass: host bytes up to the first `:` (an `@` is not one), then a port of
        // digits only (nor is an `@` one of those).
        let (host, port) = match a.bytes().position(|b| !HOST_BYTE[usize::from(b)]) {
            None => (a, None),
            Some(i) if a.as_bytes()[i] == b':' => (&a[..i], Some(&a[i + 1..])),
            Some(_) => return None,
        };
        return (!host.is_empty() && port.is_none_or(valid_port)).then_some((host, port));
    }
    // `[v6]` or `[v6]:port`; an `@` can stand in neither.
    let end = a.find(']')?;
    let (host, rest) = a.split_at(end + 1);
    let port = match rest {
        "" => None,
        _ => Some(rest.strip_prefix(':')?),
    };
    let host_ok = host.len() > 2
        && host[1..host.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
    (host_ok && port.is_none_or(valid_port)).then_some((host, port))
}

/// One to five digits, at most 65535.
fn valid_port(p: &str) -> bool {
    (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok()
}

/// Bytes a registered host name may hold: letters, digits, and `-._~!$&'()*+;=%`.
static HOST_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let punctuation = b"-._~!$&'()*+;=%";
    let mut i = 0;
    while i < punctuation.len() {
        table[punctuation[i] as usize] = true;
        i += 1;
    }
    table
};

/// The pieces of one public URL, borrowed from configuration and the request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UrlParts<'a> {
    pub(crate) https: bool,
    /// A WebSocket handshake: the scheme is `wss`/`ws`.
    pub(crate) websocket: bool,
    pub(crate) host: &'a str,
    pub(crate) port: Option<&'a str>,
    pub(crate) prefix: &'a str,
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
}

/// A range of the candidates' buffer. Offsets as `u32` keep the candidates, which a
/// request's future carries while its body arrives, small; a URL never comes near 4 GiB.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn new(range: Range<usize>) -> Self {
        let offset = |at: usize| u32::try_from(at).expect("URLs are shorter than 4 GiB");
        Self {
            start: offset(range.start),
            end: offset(range.end),
        }
    }

    fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// One URL to try; `query_params` means the query's pairs are appended as parameters
/// (WebSocket form).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Candidate {
    span: Span,
    pub(crate) query_params: bool,
}

/// The most candidates a request has: eight WebSocket forms (query dropped or kept, with
/// and without a trailing slash, each port form), or for a plain request two port forms,
/// two more for a stripped prefix root and four extra forms.
const MAX_CANDIDATES: usize = 8;

/// All URLs to try for one request, built once in one buffer.
#[derive(Debug, Default)]
pub(crate) struct Candidates {
    buf: String,
    items: [Candidate; MAX_CANDIDATES],
    len: usize,
    /// The raw query, when some candidate appends its pairs as parameters.
    query: Option<Span>,
}

impl Candidates {
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Candidate)> + '_ {
        self.items[..self.len]
            .iter()
            .map(|c| (&self.buf[c.span.range()], c))
    }

    /// The query whose pairs WebSocket candidates append as parameters.
    pub(crate) fn query_params(&self) -> Option<&str> {
        self.query.map(|span| &self.buf[span.range()])
    }

    fn push(&mut self, parts: &UrlParts<'_>, port: PortChoice<'_>, slash: bool, query: bool) {
        let start = self.buf.len();
        let buf = &mut self.buf;
        buf.push_str(match (parts.https, parts.websocket) {
            (true, false) => "https://",
            (false, false) => "http://",
            (true, true) => "wss://",
            (false, true) => "ws://",
        });
        buf.push_str(parts.host);
        match port {
            PortChoice::None => {}
            PortChoice::Some(p) => {
                buf.push(':');
                buf.push_str(p);
            }
        }
        buf.push_str(parts.prefix);
        buf.push_str(parts.path);
        if slash {
            buf.push('/');
        }
        if query {
            if let Some(q) = parts.query {
                buf.push('?');
                buf.push_str(q);
            }
        }
        let end = self.buf.len();
        let url = &self.buf[start..end];
        if self.len == MAX_CANDIDATES || self.iter().any(|(tried, _)| tried == url) {
            debug_assert!(self.len < MAX_CANDIDATES, "more candidates than counted");
            self.buf.truncate(start);
            return;
        }
        self.items[self.len] = Candidate {
            span: Span::new(start..end),
            query_params: !query && parts.query.is_some(),
        };
        self.len += 1;
    }

    /// The URLs to try for a plain request: as received, then with the default port added
    /// (no port received) or the port removed (a port received).
    /// For a WebSocket handshake: the URL without its query (its pairs appended as
    /// parameters), then with the query kept, each also with a trailing `/`, each port form.
    pub(crate) fn build(parts: &UrlParts<'_>) -> Self {
        let mut c = Self {
            buf: String::with_capacity(4 * (parts.len() + 8)),
            items: [Candidate::default(); MAX_CANDIDATES],
            len: 0,
            query: None,
        };
        let ports = port_choices(parts);
        if parts.websocket {
            let slash_ok = !parts.path.ends_with('/');
            for query_kept in [false, true] {
                if query_kept && parts.query.is_none() {
                    continue;
                }
                for port in ports {
                    c.push(parts, port, false, query_kept);
                    if slash_ok {
                        c.push(parts, port, true, query_kept);
                    }
                }
            }
            if let Some(q) = parts.query {
                let start = c.buf.len();
                c.buf.push_str(q);
                c.query = Some(Span::new(start..c.buf.len()));
            }
        } else {
            for port in ports {
                c.push(parts, port, false, true);
            }
            // A proxy that strips a path prefix sends `/` for the prefix itself, whether
            // Twilio called `/prefix` or `/prefix/`: try the form without the slash too.
            if !parts.prefix.is_empty() && parts.path == "/" {
                let bare = UrlParts { path: "", ..*parts };
                for port in ports {
                    c.push(&bare, port, false, true);
                }
            }
        }
        c
    }

    /// The forms twilio-node 6 also tries, for a plain request: the WHATWG-serialized URL,
    /// and its query re-encoded the way Node's legacy `querystring` module does, each with
    /// both port forms, less those already among these candidates (`None` if that leaves
    /// none). Built from the first candidate, only once the others have failed.
    pub(crate) fn extra_forms(&self) -> Option<Self> {
        let (first, candidate) = self.iter().next()?;
        if candidate.query_params || first.starts_with("ws") {
            return None;
        }
        let parts = parse_full_url(first).ok()?;
        let path = whatwg_encode(parts.path, false);
        let query = parts.query.map(|q| whatwg_encode(q, true));
        let legacy = parts.query.and_then(legacy_querystring);
        let host = parts.host.to_ascii_lowercase();
        let ports = port_choices(&parts);
        let mut extra = Self::default();
        for q in [query.as_deref(), legacy.as_deref()] {
            let form = UrlParts {
                host: &host,
                path: &path,
                query: q,
                ..parts
            };
            for port in ports {
                extra.push(&form, port, false, true);
            }
        }
        // Forms that came out the same as one already tried are not tried again.
        let mut kept = 0;
        for i in 0..extra.len {
            let url = &extra.buf[extra.items[i].span.range()];
            if !self.iter().any(|(tried, _)| tried == url) {
                extra.items[kept] = extra.items[i];
                kept += 1;
            }
        }
        extra.len = kept;
        (kept > 0).then_some(extra)
    }
}

/// The port forms of a URL: as received, then with the default port added (none received)
/// or the port removed (one received).
fn port_choices<'a>(parts: &UrlParts<'a>) -> [PortChoice<'a>; 2] {
    [
        parts.port.map_or(PortChoice::None, PortChoice::Some),
        match parts.port {
            Some(_) => PortChoice::None,
            None => PortChoice::Some(if parts.https { "443" } else { "80" }),
        },
    ]
}

#[derive(Clone, Copy)]
enum PortChoice<'a> {
    None,
    Some(&'a str),
}

impl UrlParts<'_> {
    fn len(&self) -> usize {
        8 + self.host.len()
            + self.port.map_or(0, |p| p.len() + 1)
            + self.prefix.len()
            + self.path.len()
            + self.query.map_or(0, |q| q.len() + 1)
    }
}

/// Percent-encodes the bytes the WHATWG URL serializer escapes in a path or a special query.
fn whatwg_encode(s: &str, query: bool) -> Cow<'_, str> {
    let escape = |b: u8| {
        b <= 0x20
            || b >= 0x7f
            || matches!(b, b'"' | b'#' | b'<' | b'>')
            || (query && b == b'\'')
            || (!query && matches!(b, b'?' | b'`' | b'{' | b'}'))
    };
    if !s.bytes().any(escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for b in s.bytes() {
        if escape(b) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            // Only ASCII is left unescaped.
            out.push(char::from(b));
        }
    }
    Cow::Owned(out)
}

/// Node's `querystring.stringify(querystring.parse(q))`: pairs decoded, grouped by key in
/// order of first appearance, re-encoded with `encodeURIComponent`'s set. `None` for a query
/// of more than [`LEGACY_MAX_PAIRS`] pairs: the form is for webhook URLs configured with a
/// few query parameters, and a client must not be able to make it costly.
/// The most query pairs re-encoded the legacy way.
const LEGACY_MAX_PAIRS: usize = 100;

fn legacy_querystring(q: &str) -> Option<String> {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'!')
        .remove(b'~')
        .remove(b'*')
        .remove(b'\'')
        .remove(b'(')
        .remove(b')');
    // Each pair with the rank of its key's first appearance; a stable sort by rank then
    // groups the keys and keeps each key's values in order.
    let mut ranks: HashMap<Cow<'_, str>, usize> = HashMap::new();
    let mut pairs = Vec::new();
    for (k, v) in form_urlencoded::parse(q.as_bytes()) {
        if pairs.len() == LEGACY_MAX_PAIRS {
            return None;
        }
        let next = ranks.len();
        let rank = *ranks.entry(k.clone()).or_insert(next);
        pairs.push((rank, k, v));
    }
    pairs.sort_by_key(|&(rank, _, _)| rank);
    let mut out = String::with_capacity(q.len());
    for (_, k, v) in &pairs {
        if !out.is_empty() {
            out.push('&');
        }
        out.extend(percent_encoding::utf8_percent_encode(k, KEEP));
        out.push('=');
        out.extend(percent_encoding::utf8_percent_encode(v, KEEP));
    }
    Some(out)
}

/// Splits a full URL string into parts, for the framework-free verifier.
/// User info and fragments are refused: Twilio never signs them.
pub(crate) fn parse_full_url(url: &str) -> Result<UrlParts<'_>, SignatureErrorKind> {
    let err = SignatureErrorKind::NoUrl;
    // No accepted scheme holds a `:`, so the scheme ends at the first one, which must
    // start `://`.
    let colon = url.bytes().position(|b| b == b':').ok_or(err)?;
    let scheme = &url[..colon];
    let rest = url[colon..].strip_prefix("://").ok_or(err)?;
    let (https, websocket) = [
        ("https", (true, false)),
        ("http", (false, false)),
        ("wss", (true, true)),
        ("ws", (false, true)),
    ]
    .into_iter()
    .find_map(|(name, kind)| scheme.eq_ignore_ascii_case(name).then_some(kind))
    .ok_or(err)?;
    if url.as_bytes().contains(&b'#') {
        return Err(err);
    }
    let end = rest
        .bytes()
        .position(|b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let (authority, path_query) = rest.split_at(end);
    let (host, port) = split_authority(authority).ok_or(err)?;
    let (path, query) = match path_query.bytes().position(|b| b == b'?') {
        Some(i) => (&path_query[..i], Some(&path_query[i + 1..])),
        None => (path_query, None),
    };
    Ok(UrlParts {
        https,
        websocket,
        host,
        port,
        prefix: "",
        path,
        query,
    })
}

/// Reads the public URL pieces of a request from the configured source.
/// `path_and_query` is the request target as received (or `OriginalUri`'s).
pub(crate) fn parts_from_request<'a, B>(
    source: &'a UrlSource,
    req: &'a Request<B>,
    path_and_query: &'a str,
) -> Result<UrlParts<'a>, SignatureErrorKind> {
    let err = SignatureErrorKind::NoUrl;
    if !path_and_query.starts_with('/') {
        return Err(err);
    }
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let headers = req.headers();
    let request_authority = || -> Result<&'a str, SignatureErrorKind> {
        match req.uri().authority() {
            Some(a) => Ok(a.as_str()),
            None => single_header(headers, &HOST).ok_or(err),
        }
    };
    let (https, host, port, prefix) = match &source.source {
        Source::Fixed(base) => (
            base.https,
            base.host.as_str(),
            base.port.as_deref(),
            base.prefix.as_str(),
        ),
        Source::Host { https } => {
            let (host, port) = split_authority(request_authority()?).ok_or(err)?;
            (*https, host, port, "")
        }
        Source::Forwarded { hops } => {
            let element = pick_hop(headers, &FORWARDED, *hops)?;
            let (proto, host) = match element {
                Some(e) => parse_forwarded_element(e)?,
                None => (None, None),
            };
            let https = proto_is_https(proto)?;
            let authority = match host {
                Some(h) => h,
                None => request_authority()?,
            };
            let (host, port) = split_authority(authority).ok_or(err)?;
            (https, host, port, "")
        }
        Source::XForwarded { hops } => {
            let https = proto_is_https(pick_hop(headers, &X_FORWARDED_PROTO, *hops)?)?;
            let authority = match pick_hop(headers, &X_FORWARDED_HOST, *hops)? {
                Some(h) => h,
                None => request_authority()?,
            };
            let (host, mut port) = split_authority(authority).ok_or(err)?;
            if let Some(p) = pick_hop(headers, &X_FORWARDED_PORT, *hops)? {
                if !valid_port(p) {
                    return Err(err);
                }
                port = Some(p);
            }
            let prefix = match pick_hop(headers, &X_FORWARDED_PREFIX, *hops)? {
                Some(p) => {
                    let p = p.trim_end_matches('/');
                    if !(p.is_empty() || p.starts_with('/')) || !p.bytes().all(is_path_byte) {
                        return Err(err);
                    }
                    p
                }
                None => "",
            };
            (https, host, port, prefix)
        }
    };
    Ok(UrlParts {
        https,
        websocket: false,
        host,
        port,
        prefix,
        path,
        query,
    })
}

static FORWARDED: HeaderName = http::header::FORWARDED;
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");

/// The value of a header that must appear at most once; `None` if absent, repeated or not text.
fn single_header<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    match single(headers, name, SignatureErrorKind::NoUrl) {
        Ok(Some(value)) => value.to_str().ok(),
        Ok(None) | Err(_) => None,
    }
}

/// The comma-separated entry `hops` from the right, over all lines of a header in order.
/// A list shorter than `hops` was written entirely by trusted proxies: its leftmost entry
/// is taken. `Ok(None)` if the header is absent; an error if it is not text or the entry
/// is empty.
fn pick_hop<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
    hops: usize,
) -> Result<Option<&'a str>, SignatureErrorKind> {
    let mut lines = headers.get_all(name).iter().peekable();
    if lines.peek().is_none() {
        return Ok(None);
    }
    let mut entries: Vec<&str> = Vec::new();
    for line in lines {
        let line = line.to_str().map_err(|_| SignatureErrorKind::NoUrl)?;
        entries.extend(split_list(line));
    }
    let idx = entries.len().saturating_sub(hops);
    match entries.get(idx).map(|e| e.trim_matches([' ', '\t'])) {
        Some(e) if !e.is_empty() => Ok(Some(e)),
        _ => Err(SignatureErrorKind::NoUrl),
    }
}

/// Splits a header list on commas outside quoted strings.
fn split_list(line: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    let bytes = line.as_bytes();
    let mut out = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if quoted && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            quoted = !quoted;
        } else if b == b',' && !quoted {
            out.push(&line[start..i]);
            start = i + 1;
        }
    }
    out.push(&line[start..]);
    out.into_iter()
}

/// `proto` and `host` of one `Forwarded` element (`for=…;proto=https;host=example.com`).
fn parse_forwarded_element(
    element: &str,
) -> Result<(Option<&str>, Option<&str>), SignatureErrorKind> {
    let err = SignatureErrorKind::NoUrl;
    let mut proto = None;
    let mut host = None;
    for pair in element.split(';') {
        let pair = pair.trim_matches([' ', '\t']);
        if pair.is_empty() {
            continue;
        }
        let (name, value) = pair.split_once('=').ok_or(err)?;
        let value = match value.strip_prefix('"') {
            Some(v) => {
                let v = v.strip_suffix('"').ok_or(err)?;
                if v.contains(['"', '\\']) {
                    return Err(err);
                }
                v
            }
            None => value,
        };
        let slot = if name.eq_ignore_ascii_case("proto") {
            &mut proto
        } else if name.eq_ignore_ascii_case("host") {
            &mut host
        } else {
            continue;
        };
        if slot.replace(value).is_some() {
            return Err(err);
        }
    }
    Ok((proto, host))
}

/// Whether a forwarded `proto` is `https` (or `wss`); absent, it is.
fn proto_is_https(proto: Option<&str>) -> Result<bool, SignatureErrorKind> {
    match proto {
        None => Ok(true),
        Some(p) if p.eq_ignore_ascii_case("https") || p.eq_ignore_ascii_case("wss") => Ok(true),
        Some(p) if p.eq_ignore_ascii_case("http") || p.eq_ignore_ascii_case("ws") => Ok(false),
        Some(_) => Err(SignatureErrorKind::NoUrl),
    }
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // table-driven cases
mod tests {
    use super::*;

    fn urls(c: &Candidates) -> Vec<&str> {
        c.iter().map(|(u, _)| u).collect()
    }

    fn parts(url: &str) -> UrlParts<'_> {
        parse_full_url(url).unwrap()
    }

    #[test]
    fn port_candidates_as_the_sdks_try_them() {
        let cases = [
            (
                "https://a.com/x?q=1",
                vec!["https://a.com/x?q=1", "https://a.com:443/x?q=1"],
            ),
            (
                "http://a.com/x",
                vec!["http://a.com/x", "http://a.com:80/x"],
            ),
            (
                "https://a.com:443/x",
                vec!["https://a.com:443/x", "https://a.com/x"],
            ),
            (
                "https://a.com:8443/x",
                vec!["https://a.com:8443/x", "https://a.com/x"],
            ),
            (
                "http://[::1]:8080/x",
                vec!["http://[::1]:8080/x", "http://[::1]/x"],
            ),
        ];
        for (url, want) in cases {
            assert_eq!(urls(&Candidates::build(&parts(url))), want, "{url}");
        }
    }

    #[test]
    fn prefix_root_is_tried_with_and_without_its_slash() {
        let p = UrlParts {
            prefix: "/twilio",
            path: "/",
            query: Some("a=1"),
            ..parts("https://h.test/")
        };
        assert_eq!(
            urls(&Candidates::build(&p)),
            [
                "https://h.test/twilio/?a=1",
                "https://h.test:443/twilio/?a=1",
                "https://h.test/twilio?a=1",
                "https://h.test:443/twilio?a=1",
            ]
        );
        let p = UrlParts {
            prefix: "/twilio",
            path: "/sms",
            ..parts("https://h.test/")
        };
        assert_eq!(Candidates::build(&p).iter().count(), 2);
    }

    #[test]
    fn websocket_candidates() {
        let mut p = parts("https://a.com/media?x=1");
        p.websocket = true;
        let c = Candidates::build(&p);
        assert_eq!(
            urls(&c),
            [
                "wss://a.com/media",
                "wss://a.com/media/",
                "wss://a.com:443/media",
                "wss://a.com:443/media/",
                "wss://a.com/media?x=1",
                "wss://a.com/media/?x=1",
                "wss://a.com:443/media?x=1",
                "wss://a.com:443/media/?x=1",
            ]
        );
        let flags: Vec<bool> = c.iter().map(|(_, c)| c.query_params).collect();
        assert_eq!(flags, [true, true, true, true, false, false, false, false]);
        assert_eq!(c.query_params(), Some("x=1"));

        let mut p = parts("http://a.com/media/");
        p.websocket = true;
        assert_eq!(
            urls(&Candidates::build(&p)),
            ["ws://a.com/media/", "ws://a.com:80/media/"]
        );
    }

    #[test]
    fn extra_forms_come_from_the_first_candidate() {
        let p = parts("https://A.com/p{x}?name=O'Brien&q=a b+c");
        let main = Candidates::build(&p);
        assert_eq!(main.iter().count(), 2);
        let all = main.extra_forms().unwrap();
        let got = urls(&all);
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(
            got.contains(&"https://a.com/p%7Bx%7D?name=O%27Brien&q=a%20b+c"),
            "{got:?}"
        );
        assert!(
            got.contains(&"https://a.com/p%7Bx%7D?name=O'Brien&q=a%20b%20c"),
            "{got:?}"
        );
        let mut ws = parts("https://a.com/media?x=1");
        ws.websocket = true;
        assert!(Candidates::build(&ws).extra_forms().is_none());
        // Forms equal to the ordinary ones are not tried again.
        assert!(Candidates::build(&parts("https://a.com/p?a=1&b=2"))
            .extra_forms()
            .is_none());
        let regrouped = Candidates::build(&parts("https://a.com/p?a=1&b=2&a=3"));
        assert_eq!(
            urls(&regrouped.extra_forms().unwrap()),
            [
                "https://a.com/p?a=1&a=3&b=2",
                "https://a.com:443/p?a=1&a=3&b=2"
            ]
        );
    }

    #[test]
    fn legacy_querystring_groups_keys_in_order_of_first_appearance() {
        assert_eq!(
            legacy_querystring("b=2&a=1&b=3&c&a=x%20y").as_deref(),
            Some("b=2&b=3&a=1&a=x%20y&c=")
        );
        let many: String = (0..LEGACY_MAX_PAIRS).map(|i| format!("k{i}=&")).collect();
        assert!(legacy_querystring(&many).is_some());
        let over = format!("{many}extra=1");
        assert_eq!(legacy_querystring(&over), None);
    }

    #[test]
    fn full_url_parsing_refuses_what_twilio_never_signs() {
        for bad in [
            "https://user:pw@a.com/x",
            "https://a.com/x#frag",
            "ftp://a.com/x",
            "a.com/x",
            "https:///x",
            "https://a.com:99999/x",
            "https://a.com:/x",
            "https://a b.com/x",
            "https://a.com:+443/x",
            "https://a.com:44a/x",
            "https://@a.com/x",
            "https://a.com:1@b.com/x",
            "https://[::1]@a.com/x",
            "https://[]/x",
        ] {
            assert!(parse_full_url(bad).is_err(), "{bad}");
        }
        let p = parts("https://a.com?x=1");
        assert_eq!((p.path, p.query), ("", Some("x=1")));
    }

    #[test]
    fn base_url_rules() {
        let ok = [
            ("https://hooks.example.com", "https://hooks.example.com"),
            (
                "https://Hooks.Example.com/twilio/",
                "https://hooks.example.com/twilio",
            ),
            ("HTTP://h.test:8080/a/b", "http://h.test:8080/a/b"),
        ];
        for (input, want) in ok {
            assert_eq!(BaseUrl::parse(input).unwrap().to_string(), want, "{input}");
        }
        for bad in [
            "hooks.example.com",
            "ftp://h.test",
            "https://u:p@h.test",
            "https://h.test/?a=1",
            "https://h.test/#x",
            "https://h.test:abc",
            "https://",
            "https://h.test/a b",
        ] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad}");
        }
    }

    fn request(headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().uri("/sms?x=1");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    fn public(source: &UrlSource, headers: &[(&str, &str)]) -> Result<String, SignatureErrorKind> {
        let req = request(headers);
        let p = parts_from_request(source, &req, "/sms?x=1")?;
        Ok(urls(&Candidates::build(&p))[0].to_owned())
    }

    #[test]
    fn x_forwarded_takes_the_trusted_hop() {
        let one = UrlSource::x_forwarded(1).unwrap();
        let two = UrlSource::x_forwarded(2).unwrap();
        let cases: Vec<(
            &UrlSource,
            Vec<(&str, &str)>,
            Result<&str, SignatureErrorKind>,
        )> = vec![
            (
                &one,
                vec![("host", "internal:8080")],
                Ok("https://internal:8080/sms?x=1"),
            ),
            (
                &one,
                vec![
                    ("host", "internal"),
                    ("x-forwarded-proto", "http"),
                    ("x-forwarded-host", "evil.test, real.test"),
                ],
                Ok("http://real.test/sms?x=1"),
            ),
            (
                &two,
                vec![
                    ("host", "internal"),
                    ("x-forwarded-host", "evil.test, cdn.test, lb.test"),
                ],
                Ok("https://cdn.test/sms?x=1"),
            ),
            (
                &one,
                vec![
                    ("host", "i"),
                    ("x-forwarded-host", "evil.test"),
                    ("x-forwarded-host", "real.test"),
                ],
                Ok("https://real.test/sms?x=1"),
            ),
            (
                &one,
                vec![
                    ("host", "i"),
                    ("x-forwarded-host", "real.test"),
                    ("x-forwarded-port", "8443"),
                    ("x-forwarded-prefix", "/tw/"),
                ],
                Ok("https://real.test:8443/tw/sms?x=1"),
            ),
            (
                &one,
                vec![("host", "i"), ("x-forwarded-proto", "gopher")],
                Err(SignatureErrorKind::NoUrl),
            ),
            (
                &one,
                vec![("host", "i"), ("x-forwarded-port", "x")],
                Err(SignatureErrorKind::NoUrl),
            ),
            (
                &one,
                vec![("host", "i"), ("x-forwarded-host", "a.test, ")],
                Err(SignatureErrorKind::NoUrl),
            ),
            (
                &one,
                vec![("host", "i"), ("x-forwarded-host", "u@a.test")],
                Err(SignatureErrorKind::NoUrl),
            ),
            (
                &one,
                vec![("host", "i"), ("x-forwarded-prefix", "nope")],
                Err(SignatureErrorKind::NoUrl),
            ),
            (&one, vec![], Err(SignatureErrorKind::NoUrl)),
        ];
        for (source, headers, want) in cases {
            assert_eq!(
                public(source, &headers).as_deref(),
                want.as_deref(),
                "{headers:?}"
            );
        }
    }

    #[test]
    fn rfc7239_forwarded_takes_the_trusted_element() {
        let one = UrlSource::forwarded(1).unwrap();
        let cases: Vec<(Vec<(&str, &str)>, Result<&str, SignatureErrorKind>)> = vec![
            (
                vec![
                    ("host", "i"),
                    (
                        "forwarded",
                        "host=evil.test;proto=http, for=1.2.3.4;proto=https;host=real.test",
                    ),
                ],
                Ok("https://real.test/sms?x=1"),
            ),
            (
                vec![("host", "i:81"), ("forwarded", "for=1.2.3.4;proto=http")],
                Ok("http://i:81/sms?x=1"),
            ),
            (
                vec![
                    ("host", "i"),
                    ("forwarded", "host=\"real.test:8443\";proto=https"),
                ],
                Ok("https://real.test:8443/sms?x=1"),
            ),
            (
                vec![("host", "i"), ("forwarded", "for=\"[::1]\", host=a.test")],
                Ok("https://a.test/sms?x=1"),
            ),
            (
                vec![("host", "i"), ("forwarded", "host=a.test;host=b.test")],
                Err(SignatureErrorKind::NoUrl),
            ),
            (
                vec![("host", "i"), ("forwarded", "garbage")],
                Err(SignatureErrorKind::NoUrl),
            ),
            (
                vec![("host", "i"), ("forwarded", "proto=ftp")],
                Err(SignatureErrorKind::NoUrl),
            ),
        ];
        for (headers, want) in cases {
            assert_eq!(
                public(&one, &headers).as_deref(),
                want.as_deref(),
                "{headers:?}"
            );
        }
    }

    #[test]
    fn host_mode() {
        let https = UrlSource::default();
        assert_eq!(
            public(&https, &[("host", "h.test")]).unwrap(),
            "https://h.test/sms?x=1"
        );
        assert_eq!(public(&https, &[]), Err(SignatureErrorKind::NoUrl));
        assert_eq!(
            public(&https, &[("host", "a.test"), ("host", "b.test")]),
            Err(SignatureErrorKind::NoUrl)
        );
        assert_eq!(
            public(&https, &[("host", "u:p@h.test")]),
            Err(SignatureErrorKind::NoUrl)
        );
        // An absolute-form target's authority wins over Host, as HTTP says.
        let req = Request::builder()
            .uri("http://abs.test:81/sms")
            .header("host", "h.test")
            .body(())
            .unwrap();
        let p = parts_from_request(&https, &req, "/sms").unwrap();
        assert_eq!((p.host, p.port), ("abs.test", Some("81")));
        // A target that is not a path has no URL.
        assert_eq!(
            parts_from_request(&https, &req, "*").unwrap_err(),
            SignatureErrorKind::NoUrl
        );
    }
}
