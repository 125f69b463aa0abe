//! The checks `check_endpoint` runs: correctly and wrongly signed requests, sent the way
//! Twilio sends webhooks, each with the answer it expects.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tower_twilio_signature::{body_sha256, sign, sign_url, url_with_body_sha256};

/// How to read the answers, printed before the checks.
pub(crate) const RULE: &str = "Rule: a request with a valid signature passes when the answer is \
anything but 401 or 403 (the signature check let it through; the handler may still refuse the \
made-up parameters, with 400, 405, 415 or 422). A request with a wrong or missing signature \
passes only when the answer is exactly 403.";

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The form parameters of the seed example.
const PARAMS: [(&str, &str); 5] = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+12349013030"),
    ("Digits", "1234"),
    ("From", "+12349013030"),
    ("To", "+18005551212"),
];

/// The JSON body of the seed example.
const JSON_BODY: &str = r#"{"CallSid":"CA1234567890ABCDE","Caller":"+12349013030"}"#;

/// The URL a wrong signature is computed for.
const WRONG_URL: &str = "http://invalid.com";

/// The endpoint under test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// The URL without user info: what Twilio signs, and what is requested unless
    /// `send_to` says otherwise.
    pub(crate) url: String,
    /// `user:password` from the URL, sent as HTTP Basic credentials.
    pub(crate) basic_auth: Option<(String, String)>,
    /// Where requests go instead, `scheme://host[:port]`: the same path and query are
    /// requested there, with the public URL's host in `Host`.
    pub(crate) send_to: Option<String>,
}

impl Target {
    /// Reads `http(s)://[user:password@]host[:port][/path][?query]`. User info becomes Basic
    /// credentials and is left out of the signed URL, as Twilio does. A URL with no path
    /// gets `/`, which is what an HTTP client requests; a fragment is dropped.
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        let url = url.split('#').next().unwrap_or_default();
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("{url:?} is not an absolute http:// or https:// URL"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(format!(
                "{url:?}: only http:// and https:// URLs can be checked"
            ));
        }
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path_and_query) = rest.split_at(end);
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((userinfo, host)) => (Some(userinfo), host),
            None => (None, authority),
        };
        if host.is_empty() {
            return Err(format!("{url:?} has no host"));
        }
        let basic_auth = userinfo.map(|userinfo| {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(user), decode(password))
        });
        let path_and_query = if path_and_query.starts_with('/') {
            path_and_query.to_owned()
        } else {
            format!("/{path_and_query}")
        };
        let url = format!("{scheme}://{host}{path_and_query}");
        url.parse::<http::Uri>()
            .map_err(|e| format!("{url:?} is not a valid URL: {e}"))?;
        Ok(Self {
            url,
            basic_auth,
            send_to: None,
        })
    }

    /// Sends the requests to `base` (`http(s)://host[:port]`, no path) instead of the
    /// public URL's host, for an endpoint whose public address (a proxy, DNS, TLS) does not
    /// exist yet.
    pub(crate) fn with_send_to(mut self, base: &str) -> Result<Self, String> {
        let parsed = Self::parse(base)?;
        let (scheme, rest) = parsed
            .url
            .split_once("://")
            .expect("parse keeps the scheme");
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if path != "/" || parsed.basic_auth.is_some() {
            return Err(format!(
                "--send-to {base:?}: give only a scheme, host and port, such as http://127.0.0.1:3000"
            ));
        }
        self.send_to = Some(format!("{scheme}://{authority}"));
        Ok(self)
    }

    /// Whether requests go to an `https://` address.
    pub(crate) fn is_https(&self) -> bool {
        self.send_to
            .as_deref()
            .unwrap_or(&self.url)
            .starts_with("https://")
    }

    /// Where to send a request signed for `signed_url` (a URL under the public one), and
    /// the `Host` to send with it when that is another address.
    pub(crate) fn destination(&self, signed_url: &str) -> (String, Option<String>) {
        let Some(base) = &self.send_to else {
            return (signed_url.to_owned(), None);
        };
        let rest = signed_url.split_once("://").map_or(signed_url, |(_, r)| r);
        let (host, path_and_query) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        (format!("{base}{path_and_query}"), Some(host.to_owned()))
    }
}

/// What a check expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// Valid signature: anything but 401 or 403.
    Accepted,
    /// Wrong or missing signature: exactly 403.
    Rejected,
}

impl Expect {
    /// Whether `status` is what this expectation allows.
    pub(crate) fn allows(self, status: StatusCode) -> bool {
        match self {
            Self::Accepted => status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
            Self::Rejected => status == StatusCode::FORBIDDEN,
        }
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Accepted => "not 401/403",
            Self::Rejected => "403",
        })
    }
}

/// One request to send.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    /// A short name, such as `POST form, valid signature`.
    pub(crate) name: &'static str,
    /// What is sent, in words.
    pub(crate) sent: String,
    pub(crate) method: Method,
    pub(crate) url: String,
    pub(crate) content_type: Option<&'static str>,
    pub(crate) signature: Option<String>,
    pub(crate) body: Bytes,
    pub(crate) expect: Expect,
}

fn form(params: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

/// The requests to send to `target`, signed with `auth_token`: a form POST, a GET with a
/// query and a JSON POST with `bodySHA256`, each correctly and wrongly signed.
pub(crate) fn probes(target: &Target, auth_token: &str) -> Vec<Probe> {
    let url = &target.url;
    let form_body = Bytes::from(form(&PARAMS));
    let mut tampered = PARAMS;
    tampered[2].1 = "9999";
    let tampered_body = Bytes::from(form(&tampered));

    let separator = if url.contains('?') { '&' } else { '?' };
    let get_url = format!("{url}{separator}{}", form(&PARAMS));

    let json_url = url_with_body_sha256(url, JSON_BODY.as_bytes());
    let other_json = r#"{"CallSid":"CA1234567890ABCDE","Caller":"+15005550006"}"#;

    let form_probe = |name, sent: &str, signature: Option<String>, body: &Bytes, expect| Probe {
        name,
        sent: format!("POST {url}, {} form params, {sent}", PARAMS.len()),
        method: Method::POST,
        url: url.clone(),
        content_type: Some("application/x-www-form-urlencoded"),
        signature,
        body: body.clone(),
        expect,
    };
    let get_probe = |name, sent: &str, signature: String, expect| Probe {
        name,
        sent: format!("GET {get_url}, {sent}"),
        method: Method::GET,
        url: get_url.clone(),
        content_type: None,
        signature: Some(signature),
        body: Bytes::new(),
        expect,
    };
    let json_probe = |name, sent: &str, signature: String, body: &'static str, expect| Probe {
        name,
        sent: format!("POST {json_url}, JSON body ({} bytes), {sent}", body.len()),
        method: Method::POST,
        url: json_url.clone(),
        content_type: Some("application/json"),
        signature: Some(signature),
        body: Bytes::from_static(body.as_bytes()),
        expect,
    };

    vec![
        form_probe(
            "POST form, valid signature",
            "signed for this URL",
            Some(sign(auth_token, url, PARAMS)),
            &form_body,
            Expect::Accepted,
        ),
        form_probe(
            "POST form, signature for another URL",
            &format!("signed for {WRONG_URL}"),
            Some(sign(auth_token, WRONG_URL, PARAMS)),
            &form_body,
            Expect::Rejected,
        ),
        form_probe(
            "POST form, parameter changed after signing",
            "signed for this URL, then Digits changed",
            Some(sign(auth_token, url, PARAMS)),
            &tampered_body,
            Expect::Rejected,
        ),
        form_probe(
            "POST form, no signature",
            "no X-Twilio-Signature header",
            None,
            &form_body,
            Expect::Rejected,
        ),
        get_probe(
            "GET with query, valid signature",
            "signed for this URL",
            sign_url(auth_token, &get_url),
            Expect::Accepted,
        ),
        get_probe(
            "GET with query, signature for another URL",
            &format!("signed for {WRONG_URL}"),
            sign_url(auth_token, WRONG_URL),
            Expect::Rejected,
        ),
        json_probe(
            "POST JSON, valid signature",
            "bodySHA256 of the body, URL signed",
            sign_url(auth_token, &json_url),
            JSON_BODY,
            Expect::Accepted,
        ),
        json_probe(
            "POST JSON, signature for another URL",
            &format!("bodySHA256 of the body, signed for {WRONG_URL}"),
            sign_url(auth_token, WRONG_URL),
            JSON_BODY,
            Expect::Rejected,
        ),
        json_probe(
            "POST JSON, body changed after hashing",
            &format!(
                "URL signed, body's SHA-256 is {}…",
                &body_sha256(other_json.as_bytes())[..12]
            ),
            sign_url(auth_token, &json_url),
            other_json,
            Expect::Rejected,
        ),
    ]
}

/// How requests are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// Hyper's client: `http://` only, no TLS compiled in.
    Hyper,
    /// The system's `curl` program: `http://` and `https://`.
    Curl,
}

/// The answer to a probe.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub(crate) probe: Probe,
    /// The status, or why there is none.
    pub(crate) got: Result<StatusCode, String>,
}

impl Report {
    /// Whether the answer is the one expected.
    pub(crate) fn passed(&self) -> bool {
        self.got
            .as_ref()
            .is_ok_and(|&status| self.probe.expect.allows(status))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.passed() { "ok  " } else { "FAIL" };
        write!(
            f,
            "{verdict} {:<43} sent: {} | expected: {} | got: ",
            self.probe.name, self.probe.sent, self.probe.expect
        )?;
        match &self.got {
            Ok(status) => write!(f, "{status}"),
            Err(err) => write!(f, "no answer ({err})"),
        }
    }
}

/// Sends every probe for `target` in turn and collects the answers.
pub(crate) async fn run(target: &Target, auth_token: &str, transport: Transport) -> Vec<Report> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut reports = Vec::new();
    for probe in probes(target, auth_token) {
        let got = match transport {
            Transport::Hyper => send_hyper(&client, target, &probe).await,
            Transport::Curl => send_curl(target, &probe).await,
        };
        reports.push(Report { probe, got });
    }
    reports
}

/// What to tell the user about a failed run, if a pattern explains it.
pub(crate) fn hints(reports: &[Report]) -> Vec<&'static str> {
    let mut hints = Vec::new();
    let failed_accepted: Vec<_> = reports
        .iter()
        .filter(|r| !r.passed() && r.probe.expect == Expect::Accepted)
        .collect();
    if failed_accepted
        .iter()
        .any(|r| matches!(r.got, Ok(StatusCode::UNAUTHORIZED)))
    {
        hints.push(
            "401: the endpoint wants HTTP Basic credentials; put them in the URL \
             (https://user:password@host/path).",
        );
    }
    if failed_accepted
        .iter()
        .any(|r| matches!(r.got, Ok(StatusCode::FORBIDDEN)))
    {
        hints.push(
            "A valid signature got 403: either TWILIO_AUTH_TOKEN differs from the server's, or \
             the server rebuilds another URL than the one given here (check its public base URL, \
             scheme, host, port and path).",
        );
    }
    if reports
        .iter()
        .any(|r| !r.passed() && r.probe.expect == Expect::Rejected && r.got.is_ok())
    {
        hints.push(
            "A wrong signature was not refused with 403: this URL is not protected by a \
             signature check.",
        );
    }
    hints
}

fn basic_auth_header(target: &Target) -> Option<String> {
    target.basic_auth.as_ref().map(|(user, password)| {
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {credentials}")
    })
}

async fn send_hyper(
    client: &Client<HttpConnector, Full<Bytes>>,
    target: &Target,
    probe: &Probe,
) -> Result<StatusCode, String> {
    if target.is_https() {
        return Err("https:// needs the curl transport".to_owned());
    }
    let (url, host) = target.destination(&probe.url);
    let mut request = Request::builder().method(probe.method.clone()).uri(&url);
    if let Some(host) = host {
        request = request.header(header::HOST, host);
    }
    if let Some(content_type) = probe.content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    if let Some(signature) = &probe.signature {
        request = request.header("x-twilio-signature", signature);
    }
    if let Some(credentials) = basic_auth_header(target) {
        request = request.header(header::AUTHORIZATION, credentials);
    }
    let request = request
        .body(Full::new(probe.body.clone()))
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(REQUEST_TIMEOUT, client.request(request)).await {
        Ok(Ok(response)) => Ok(response.status()),
        Ok(Err(err)) => Err(error_chain(&err)),
        Err(_) => Err(format!("timed out after {}s", REQUEST_TIMEOUT.as_secs())),
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A string in curl's config-file syntax.
fn curl_quote(s: &str) -> String {
    let mut quoted = String::with_capacity(s.len() + 2);
    quoted.push('"');
    for c in s.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// Sends through `curl`, with everything (credentials included) in a config read from
/// its standard input, so nothing shows on the command line.
async fn send_curl(target: &Target, probe: &Probe) -> Result<StatusCode, String> {
    use tokio::io::AsyncWriteExt as _;

    let body = std::str::from_utf8(&probe.body).map_err(|_| "the body is not text".to_owned())?;
    let (url, host) = target.destination(&probe.url);
    let mut config = vec![
        format!("url = {}", curl_quote(&url)),
        format!("request = {}", curl_quote(probe.method.as_str())),
        format!("max-time = {}", REQUEST_TIMEOUT.as_secs()),
        "path-as-is".to_owned(),
        "globoff".to_owned(),
        "silent".to_owned(),
        "show-error".to_owned(),
        format!("write-out = {}", curl_quote("\n%{http_code}")),
        // curl adds `Expect: 100-continue` to some POSTs; Twilio does not.
        format!("header = {}", curl_quote("Expect:")),
    ];
    if let Some(host) = host {
        config.push(format!("header = {}", curl_quote(&format!("Host: {host}"))));
    }
    if let Some(content_type) = probe.content_type {
        config.push(format!(
            "header = {}",
            curl_quote(&format!("Content-Type: {content_type}"))
        ));
    }
    if let Some(signature) = &probe.signature {
        config.push(format!(
            "header = {}",
            curl_quote(&format!("X-Twilio-Signature: {signature}"))
        ));
    }
    if let Some(credentials) = basic_auth_header(target) {
        config.push(format!(
            "header = {}",
            curl_quote(&format!("Authorization: {credentials}"))
        ));
    }
    if !probe.body.is_empty() {
        config.push(format!("data-binary = {}", curl_quote(body)));
    }
    let mut config = config.join("\n");
    config.push('\n');

    let mut child = tokio::process::Command::new("curl")
        .args(["--config", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run curl: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("curl has no standard input")?;
    stdin
        .write_all(config.as_bytes())
        .await
        .map_err(|e| format!("cannot talk to curl: {e}"))?;
    drop(stdin);
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| format!("curl failed: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let code = stdout.rsplit('\n').next().unwrap_or_default().trim();
    match code
        .parse::<u16>()
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
    {
        Some(status) if status.as_u16() != 0 && output.status.success() => Ok(status),
        _ => Err(format!(
            "curl: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
    }
}
