//! The settings every example server reads from the environment: where to listen, the Auth
//! Token, and where the signature layer takes the public URL from. The signature layer is
//! built in one place, [`ServerSettings::signature_layer`].
//!
//! - `TWILIO_AUTH_TOKEN`: the Auth Token that signs the webhooks. Unset: demo mode, with a
//!   random token and the base URL `http://<BIND_ADDR>`.
//! - `PUBLIC_BASE_URL`: the public URL Twilio calls (`https://abc.ngrok.app`). Unset: the
//!   `Host` header with `https`.
//! - `TRUST_FORWARDED_HOPS`: instead of `PUBLIC_BASE_URL`, trust `X-Forwarded-*` set by
//!   this many proxies.
//! - `BIND_ADDR`: the listening address, `127.0.0.1:3000` by default.
//! - `WEBHOOK_AUTH=basic|digest` with `WEBHOOK_USERNAME` and `WEBHOOK_PASSWORD`: HTTP
//!   authentication the webhooks must also pass (put the credentials in the URL you give
//!   Twilio: `https://user:password@host/path`).
//! - `TWILIO_SIGNATURE_REPORT_ONLY=true`: a bad signature is logged and the request served,
//!   for putting the layer in front of a service that already takes traffic.

use std::fmt;
use std::net::SocketAddr;

use tower_twilio_signature::{sign, TwilioSignatureLayer, UrlSource};

/// The address a server listens on when `BIND_ADDR` is unset.
pub(crate) const DEFAULT_BIND_ADDR: &str = "127.0.0.1:3000";

/// The variables [`from_lookup`] reads.
pub(crate) const VARIABLES: [&str; 8] = [
    "BIND_ADDR",
    "TWILIO_AUTH_TOKEN",
    "PUBLIC_BASE_URL",
    "TRUST_FORWARDED_HOPS",
    "WEBHOOK_AUTH",
    "WEBHOOK_USERNAME",
    "WEBHOOK_PASSWORD",
    "TWILIO_SIGNATURE_REPORT_ONLY",
];

/// Where the layer takes the URL Twilio signed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UrlMode {
    /// `PUBLIC_BASE_URL`: a fixed base, the request's path and query appended.
    Fixed(String),
    /// `TRUST_FORWARDED_HOPS`: `X-Forwarded-*`, the entry this many hops from the right.
    XForwarded(usize),
    /// Neither set: the `Host` header, with `https`.
    HostHeader,
    /// No Auth Token: `http://<BIND_ADDR>`, for the demo.
    Demo,
}

/// Where to listen, the Auth Token and the URL source.
#[derive(Clone)]
pub(crate) struct ServerSettings {
    pub(crate) bind_addr: SocketAddr,
    pub(crate) auth_token: String,
    /// No `TWILIO_AUTH_TOKEN`: the token was made at startup.
    pub(crate) demo: bool,
    pub(crate) url_mode: UrlMode,
    /// `WEBHOOK_AUTH`: HTTP authentication the webhooks require.
    pub(crate) webhook_auth: Option<WebhookAuth>,
    /// `TWILIO_SIGNATURE_REPORT_ONLY=true`: bad signatures are logged, not refused.
    pub(crate) report_only: bool,
    /// Things worth saying at startup.
    pub(crate) warnings: Vec<String>,
}

/// `WEBHOOK_AUTH=basic|digest` with `WEBHOOK_USERNAME` and `WEBHOOK_PASSWORD`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct WebhookAuth {
    pub(crate) digest: bool,
    pub(crate) username: String,
    pub(crate) password: String,
}

impl fmt::Debug for WebhookAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookAuth")
            .field("digest", &self.digest)
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .finish()
    }
}

fn webhook_auth(
    var: &impl Fn(&'static str) -> Option<String>,
) -> Result<Option<WebhookAuth>, BadValue> {
    let (username, password) = (var("WEBHOOK_USERNAME"), var("WEBHOOK_PASSWORD"));
    let digest = match var("WEBHOOK_AUTH").map(|v| v.trim().to_ascii_lowercase()) {
        None if username.is_none() && password.is_none() => return Ok(None),
        None => {
            return Err(bad(
                "WEBHOOK_AUTH",
                "must be basic or digest when WEBHOOK_USERNAME or WEBHOOK_PASSWORD is set",
            ))
        }
        Some(v) if v == "basic" => false,
        Some(v) if v == "digest" => true,
        Some(v) => return Err(bad("WEBHOOK_AUTH", format!("{v:?} is not basic or digest"))),
    };
    let username = username
        .filter(|u| !u.is_empty())
        .ok_or_else(|| bad("WEBHOOK_USERNAME", "must be set with WEBHOOK_AUTH"))?;
    let password = password
        .filter(|p| !p.is_empty())
        .ok_or_else(|| bad("WEBHOOK_PASSWORD", "must be set with WEBHOOK_AUTH"))?;
    Ok(Some(WebhookAuth {
        digest,
        username,
        password,
    }))
}

fn report_only(var: &impl Fn(&'static str) -> Option<String>) -> Result<bool, BadValue> {
    match var("TWILIO_SIGNATURE_REPORT_ONLY").map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v == "true" || v == "false" => Ok(v == "true"),
        Some(v) => Err(bad(
            "TWILIO_SIGNATURE_REPORT_ONLY",
            format!("{v:?} is not true or false"),
        )),
    }
}

impl fmt::Debug for ServerSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerSettings")
            .field("bind_addr", &self.bind_addr)
            .field("auth_token", &"[redacted]")
            .field("demo", &self.demo)
            .field("url_mode", &self.url_mode)
            .field("webhook_auth", &self.webhook_auth)
            .field("report_only", &self.report_only)
            .field("warnings", &self.warnings)
            .finish()
    }
}

/// A configuration mistake: one line, naming the variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadValue {
    pub(crate) variable: &'static str,
    pub(crate) message: String,
}

impl fmt::Display for BadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.variable, self.message)
    }
}

impl std::error::Error for BadValue {}

/// A [`BadValue`] for `variable`.
pub(crate) fn bad(variable: &'static str, message: impl Into<String>) -> BadValue {
    BadValue {
        variable,
        message: message.into(),
    }
}

/// Refuses a variable among `names` that is set but not Unicode (the lookups below would
/// take it for unset).
pub(crate) fn check_unicode(names: &[&'static str]) -> Result<(), BadValue> {
    for &name in names {
        if let Err(std::env::VarError::NotUnicode(_)) = std::env::var(name) {
            return Err(bad(name, "is not valid Unicode"));
        }
    }
    Ok(())
}

/// Reads the settings through `var` (`None` for an unset variable); `make_token` makes the
/// demo token when `TWILIO_AUTH_TOKEN` is unset.
pub(crate) fn from_lookup(
    var: impl Fn(&'static str) -> Option<String>,
    make_token: impl FnOnce() -> String,
) -> Result<ServerSettings, BadValue> {
    let bind_text = var("BIND_ADDR").unwrap_or_else(|| DEFAULT_BIND_ADDR.to_owned());
    let bind_addr: SocketAddr = bind_text.parse().map_err(|_| {
        bad(
            "BIND_ADDR",
            format!("{bind_text:?} is not an address and port such as {DEFAULT_BIND_ADDR} or [::1]:3000"),
        )
    })?;

    let (auth_token, demo) = match var("TWILIO_AUTH_TOKEN") {
        Some(token) if token.trim().is_empty() => {
            return Err(bad(
                "TWILIO_AUTH_TOKEN",
                "is set but empty; set it to your Auth Token, or unset it to run the demo",
            ))
        }
        Some(token) => (token, false),
        None => (make_token(), true),
    };

    let public_base_url = var("PUBLIC_BASE_URL");
    let hops = match var("TRUST_FORWARDED_HOPS") {
        None => None,
        Some(text) => match text.trim().parse::<usize>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                return Err(bad(
                    "TRUST_FORWARDED_HOPS",
                    format!("{text:?} is not a number of proxies (1 or more)"),
                ))
            }
        },
    };
    let mut warnings = Vec::new();
    let configured = match (public_base_url, hops) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "TRUST_FORWARDED_HOPS",
                "cannot be used with PUBLIC_BASE_URL; set one of the two",
            ))
        }
        (Some(url), None) => UrlMode::Fixed(url),
        (None, Some(hops)) => UrlMode::XForwarded(hops),
        (None, None) => UrlMode::HostHeader,
    };
    let webhook_auth = webhook_auth(&var)?;
    let report_only = report_only(&var)?;
    if report_only {
        warnings.push(
            "TWILIO_SIGNATURE_REPORT_ONLY=true: webhooks with a bad signature are logged and \
             served, not refused"
                .to_owned(),
        );
    }
    // Check the URL and authentication settings even when the demo ignores the URL's.
    let _checked = signature_layer(
        &auth_token,
        &configured,
        webhook_auth.as_ref(),
        false,
        bind_addr,
    )?;
    let url_mode = if demo {
        if configured != UrlMode::HostHeader {
            warnings.push(
                "PUBLIC_BASE_URL and TRUST_FORWARDED_HOPS are ignored in demo mode; \
                 set TWILIO_AUTH_TOKEN to use them"
                    .to_owned(),
            );
        }
        UrlMode::Demo
    } else {
        if configured == UrlMode::HostHeader {
            warnings.push(
                "PUBLIC_BASE_URL is not set: the URL Twilio signed is rebuilt from each request's \
                 Host header with https. Behind a proxy or a tunnel, set PUBLIC_BASE_URL to the \
                 public URL Twilio calls (or TRUST_FORWARDED_HOPS)."
                    .to_owned(),
            );
        }
        configured
    };

    Ok(ServerSettings {
        bind_addr,
        auth_token,
        demo,
        url_mode,
        webhook_auth,
        report_only,
        warnings,
    })
}

/// Reads the settings from the process environment.
#[allow(dead_code)] // the Frontline example reads more variables, with its own function
pub(crate) fn from_env() -> Result<ServerSettings, BadValue> {
    check_unicode(&VARIABLES)?;
    from_lookup(|name| std::env::var(name).ok(), random_token)
}

/// A token shaped like an Auth Token (32 hexadecimal digits) from the system's random
/// source.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the system random source is unavailable");
    hex::encode(bytes)
}

/// The one place the examples build their signature layer.
fn signature_layer(
    token: &str,
    mode: &UrlMode,
    auth: Option<&WebhookAuth>,
    report_only: bool,
    bound: SocketAddr,
) -> Result<TwilioSignatureLayer, BadValue> {
    let layer =
        TwilioSignatureLayer::new(token).map_err(|e| bad("TWILIO_AUTH_TOKEN", e.to_string()))?;
    let source =
        match mode {
            UrlMode::Fixed(url) => UrlSource::base_url(url)
                .map_err(|e| bad("PUBLIC_BASE_URL", format!("{url:?}: {e}")))?,
            UrlMode::XForwarded(hops) => UrlSource::x_forwarded(*hops)
                .map_err(|e| bad("TRUST_FORWARDED_HOPS", e.to_string()))?,
            UrlMode::HostHeader => UrlSource::default(),
            UrlMode::Demo => UrlSource::base_url(&format!("http://{bound}"))
                .map_err(|e| bad("BIND_ADDR", e.to_string()))?,
        };
    let layer = match auth {
        None => Ok(layer),
        Some(a) if a.digest => layer.digest_auth(&a.username, &a.password),
        Some(a) => layer.basic_auth(&a.username, &a.password),
    }
    .map_err(|e| bad("WEBHOOK_USERNAME", e.to_string()))?;
    Ok(layer.url_source(source).report_only(report_only))
}

impl ServerSettings {
    /// The signature layer, for a server listening on `bound` (which differs from
    /// `bind_addr` when its port is 0).
    pub(crate) fn signature_layer(
        &self,
        bound: SocketAddr,
    ) -> Result<TwilioSignatureLayer, BadValue> {
        signature_layer(
            &self.auth_token,
            &self.url_mode,
            self.webhook_auth.as_ref(),
            self.report_only,
            bound,
        )
    }

    /// The URL mode, for the startup line.
    pub(crate) fn describe_url_mode(&self, bound: SocketAddr) -> String {
        match &self.url_mode {
            UrlMode::Fixed(url) => format!("fixed public base URL {url} (PUBLIC_BASE_URL)"),
            UrlMode::XForwarded(hops) => format!(
                "X-Forwarded-Proto/Host/Port/Prefix, {hops} trusted proxy hop{} (TRUST_FORWARDED_HOPS)",
                if *hops == 1 { "" } else { "s" }
            ),
            UrlMode::HostHeader => "Host header with https (PUBLIC_BASE_URL not set)".to_owned(),
            UrlMode::Demo => format!("demo, fixed base URL http://{bound}"),
        }
    }

    /// The URL to enter in the Twilio console for `path`. Only a fixed base URL (or the
    /// demo's) says which host Twilio calls; otherwise the host is a placeholder.
    pub(crate) fn console_url(&self, bound: SocketAddr, path: &str) -> String {
        match &self.url_mode {
            UrlMode::Fixed(base) => format!("{}{path}", base.trim_end_matches('/')),
            UrlMode::Demo => format!("http://{bound}{path}"),
            UrlMode::XForwarded(_) | UrlMode::HostHeader => {
                format!("https://YOUR-PUBLIC-HOST{path}")
            }
        }
    }

    /// A form POST to `path` on this server, signed with its token, as the pieces of a
    /// `curl` line.
    pub(crate) fn signed_post(
        &self,
        bound: SocketAddr,
        path: &str,
        params: &[(&str, &str)],
    ) -> SignedPost {
        let url = format!("http://{bound}{path}");
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        SignedPost {
            signature: sign(&self.auth_token, &url, params.iter().copied()),
            url,
            body,
        }
    }

    /// What to print in demo mode: the token, a `check_endpoint` command and `request`
    /// as a signed `curl` line, all of which work against this server. `serves` names
    /// what a real token is for ("SMS webhooks").
    pub(crate) fn demo_instructions(&self, serves: &str, request: &SignedPost) -> String {
        let token = &self.auth_token;
        let (mut url, mut login, mut note) = (request.url.clone(), String::new(), "");
        if let Some(a) = &self.webhook_auth {
            let credentials = format!("{}:{}", a.username, a.password);
            login = format!(
                "--{} -u '{}' ",
                if a.digest { "digest" } else { "basic" },
                credentials.replace('\'', "'\\''")
            );
            if a.digest {
                note = "\n(check_endpoint sends Basic credentials only: with WEBHOOK_AUTH=digest it gets 401.)\n";
            } else {
                let encode = |s: &str| {
                    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
                        .to_string()
                };
                url = url.replacen(
                    "://",
                    &format!("://{}:{}@", encode(&a.username), encode(&a.password)),
                    1,
                );
            }
        }
        format!(
            "DEMO MODE: TWILIO_AUTH_TOKEN is not set, so this run made up an Auth Token:\n\
             \n    {token}\n\n\
             Real Twilio requests will get 403. Set TWILIO_AUTH_TOKEN (and PUBLIC_BASE_URL) \
             to serve {serves}.\n\
             Check the signature layer from another terminal:\n\
             \n    TWILIO_AUTH_TOKEN={token} cargo run --example check_endpoint -- {url}\n\n\
             or send one signed request:\n\
             \n    {curl}\n{note}",
            curl = request.curl(&login),
        )
    }
}

/// A signed form POST: what a demo's `curl` line sends.
#[derive(Debug, Clone)]
pub(crate) struct SignedPost {
    pub(crate) url: String,
    pub(crate) body: String,
    pub(crate) signature: String,
}

impl SignedPost {
    /// The request as a `curl` command line, with `login` (curl's credential options, or
    /// nothing) after `curl -i`.
    pub(crate) fn curl(&self, login: &str) -> String {
        format!(
            "curl -i {login}-X POST '{}' -H 'X-Twilio-Signature: {}' --data '{}'",
            self.url, self.signature, self.body
        )
    }
}
