//! Settings from the environment, checked before anything starts.

use std::fmt;
use std::net::SocketAddr;

use tower_twilio_signature::{sign, TwilioSignatureLayer, UrlSource};

const DEFAULT_BIND_ADDR: &str = "127.0.0.1:3000";
const DEMO_SMS_NUMBER: &str = "+12025550100";
const DEMO_WHATSAPP_NUMBER: &str = "+12025550101";

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

/// The whole configuration.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) bind_addr: SocketAddr,
    pub(crate) auth_token: String,
    /// No `TWILIO_AUTH_TOKEN`: the token was made at startup.
    pub(crate) demo: bool,
    pub(crate) url_mode: UrlMode,
    pub(crate) sms_number: Option<String>,
    pub(crate) whatsapp_number: Option<String>,
    /// `WEBHOOK_AUTH`: HTTP authentication the callbacks require.
    pub(crate) webhook_auth: Option<WebhookAuth>,
    /// `TWILIO_SIGNATURE_REPORT_ONLY=true`: bad signatures are logged, not refused.
    pub(crate) report_only: bool,
    /// Things worth saying at startup.
    pub(crate) warnings: Vec<String>,
}

/// `WEBHOOK_AUTH=basic|digest` with `WEBHOOK_USERNAME` and `WEBHOOK_PASSWORD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WebhookAuth {
    pub(crate) digest: bool,
    pub(crate) username: String,
    pub(crate) password: String,
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

/// Adds the HTTP authentication and report-only settings to a layer.
fn protect(
    layer: TwilioSignatureLayer,
    auth: Option<&WebhookAuth>,
    report_only: bool,
) -> Result<TwilioSignatureLayer, BadValue> {
    let layer = match auth {
        None => Ok(layer),
        Some(a) if a.digest => layer.digest_auth(&a.username, &a.password),
        Some(a) => layer.basic_auth(&a.username, &a.password),
    };
    Ok(layer
        .map_err(|e| bad("WEBHOOK_USERNAME", e.to_string()))?
        .report_only(report_only))
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

fn bad(variable: &'static str, message: impl Into<String>) -> BadValue {
    BadValue {
        variable,
        message: message.into(),
    }
}

/// Reads the settings through `var` (`None` for an unset variable); `make_token` makes the
/// demo token when `TWILIO_AUTH_TOKEN` is unset.
pub(crate) fn from_lookup(
    var: impl Fn(&'static str) -> Option<String>,
    make_token: impl FnOnce() -> String,
) -> Result<Settings, BadValue> {
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
    let auth = webhook_auth(&var)?;
    let report_only =
        match var("TWILIO_SIGNATURE_REPORT_ONLY").map(|v| v.trim().to_ascii_lowercase()) {
            None => false,
            Some(v) if v == "true" || v == "false" => v == "true",
            Some(v) => {
                return Err(bad(
                    "TWILIO_SIGNATURE_REPORT_ONLY",
                    format!("{v:?} is not true or false"),
                ))
            }
        };
    if report_only {
        warnings.push("TWILIO_SIGNATURE_REPORT_ONLY=true: callbacks with a bad signature are logged and served, not refused".to_owned());
    }
    // Check the URL settings even when the demo ignores them.
    let _checked = protect(
        layer_for(&auth_token, &configured, bind_addr)?,
        auth.as_ref(),
        false,
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

    Ok(Settings {
        bind_addr,
        auth_token,
        demo,
        url_mode,
        sms_number: number(&var, "TWILIO_SMS_NUMBER", DEMO_SMS_NUMBER, "")?,
        whatsapp_number: number(
            &var,
            "TWILIO_WHATSAPP_NUMBER",
            DEMO_WHATSAPP_NUMBER,
            "whatsapp:",
        )?,
        webhook_auth: auth,
        report_only,
        warnings,
    })
}

/// Reads the settings from the process environment.
pub(crate) fn from_env() -> Result<Settings, BadValue> {
    for name in [
        "BIND_ADDR",
        "TWILIO_AUTH_TOKEN",
        "PUBLIC_BASE_URL",
        "TRUST_FORWARDED_HOPS",
        "TWILIO_SMS_NUMBER",
        "TWILIO_WHATSAPP_NUMBER",
        "WEBHOOK_AUTH",
        "WEBHOOK_USERNAME",
        "WEBHOOK_PASSWORD",
        "TWILIO_SIGNATURE_REPORT_ONLY",
    ] {
        if let Err(std::env::VarError::NotUnicode(_)) = std::env::var(name) {
            return Err(bad(name, "is not valid Unicode"));
        }
    }
    from_lookup(|name| std::env::var(name).ok(), random_token)
}

/// A token shaped like an Auth Token (32 hexadecimal digits) from the system's random
/// source.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the system random source is unavailable");
    hex::encode(bytes)
}

/// A phone number setting: unset gives the demo number, empty disables the channel.
fn number(
    var: &impl Fn(&'static str) -> Option<String>,
    variable: &'static str,
    default: &str,
    prefix: &str,
) -> Result<Option<String>, BadValue> {
    let value = match var(variable) {
        None => default.to_owned(),
        Some(v) if v.trim().is_empty() => return Ok(None),
        Some(v) => v.trim().to_owned(),
    };
    let digits = value.strip_prefix(prefix).unwrap_or(&value);
    let valid = digits.len() > 2
        && digits.len() <= 16
        && digits.starts_with('+')
        && digits[1..].bytes().all(|b| b.is_ascii_digit());
    if !valid {
        return Err(bad(
            variable,
            format!("{value:?} is not a phone number in E.164 form such as {default}"),
        ));
    }
    Ok(Some(format!("{prefix}{digits}")))
}

fn layer_for(
    token: &str,
    mode: &UrlMode,
    bound: SocketAddr,
) -> Result<TwilioSignatureLayer, BadValue> {
    let layer =
        TwilioSignatureLayer::new(token).map_err(|e| bad("TWILIO_AUTH_TOKEN", e.to_string()))?;
    Ok(layer.url_source(url_source(mode, bound)?))
}

fn url_source(mode: &UrlMode, bound: SocketAddr) -> Result<UrlSource, BadValue> {
    match mode {
        UrlMode::Fixed(url) => {
            UrlSource::base_url(url).map_err(|e| bad("PUBLIC_BASE_URL", format!("{url:?}: {e}")))
        }
        UrlMode::XForwarded(hops) => {
            UrlSource::x_forwarded(*hops).map_err(|e| bad("TRUST_FORWARDED_HOPS", e.to_string()))
        }
        UrlMode::HostHeader => {
            UrlSource::host_header("https").map_err(|e| bad("PUBLIC_BASE_URL", e.to_string()))
        }
        UrlMode::Demo => UrlSource::base_url(&format!("http://{bound}"))
            .map_err(|e| bad("BIND_ADDR", e.to_string())),
    }
}

impl Settings {
    /// The signature layer, for a server listening on `bound` (which differs from
    /// `bind_addr` when its port is 0).
    pub(crate) fn signature_layer(
        &self,
        bound: SocketAddr,
    ) -> Result<TwilioSignatureLayer, BadValue> {
        let layer = layer_for(&self.auth_token, &self.url_mode, bound)?;
        protect(layer, self.webhook_auth.as_ref(), self.report_only)
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

    /// A signed request to the demo, as the pieces of a `curl` line.
    pub(crate) fn demo_request(&self, bound: SocketAddr) -> DemoRequest {
        let url = format!("http://{bound}/callbacks/crm");
        let params = [
            ("Location", "GetCustomersList"),
            ("Worker", "demo@example.com"),
            ("PageSize", "3"),
        ];
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        DemoRequest {
            signature: sign(&self.auth_token, &url, params),
            url,
            body,
        }
    }

    /// What to print in demo mode: the token, a `check_endpoint` command and a signed
    /// `curl` line that work against this server.
    pub(crate) fn demo_instructions(&self, bound: SocketAddr) -> String {
        let request = self.demo_request(bound);
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
             to serve Frontline.\n\
             Check the signature layer from another terminal:\n\
             \n    TWILIO_AUTH_TOKEN={token} cargo run --example check_endpoint -- {url}\n\n\
             or send one signed callback:\n\
             \n    curl -i {login}-X POST '{plain}' -H 'X-Twilio-Signature: {signature}' --data '{body}'\n{note}",
            plain = request.url,
            signature = request.signature,
            body = request.body,
        )
    }
}

/// A signed form POST: what the demo's `curl` line sends.
#[derive(Debug, Clone)]
pub(crate) struct DemoRequest {
    pub(crate) url: String,
    pub(crate) body: String,
    pub(crate) signature: String,
}
