//! Settings from the environment, checked before anything starts.

use std::net::SocketAddr;
use std::path::Path;

use reqwest::Url;

use crate::app::{parse_book, sample_customers, ConversationsApi, Customer, DEFAULT_BASE_URL};

#[path = "../shared/settings.rs"]
pub(crate) mod server;

use self::server::{bad, check_unicode, random_token, BadValue, ServerSettings, SignedPost};

const DEMO_SMS_NUMBER: &str = "+12025550100";
const DEMO_WHATSAPP_NUMBER: &str = "+12025550101";
/// The identity the demo routes conversations from unknown addresses to.
pub(crate) const DEMO_DEFAULT_WORKER: &str = "demo.worker@example.com";

/// The variables read besides the server's.
const FRONTLINE_VARIABLES: [&str; 6] = [
    "TWILIO_SMS_NUMBER",
    "TWILIO_WHATSAPP_NUMBER",
    "FRONTLINE_DEFAULT_WORKER",
    "FRONTLINE_CUSTOMERS_FILE",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_API_BASE_URL",
];

/// The whole configuration.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Where to listen, the Auth Token and the URL source.
    pub(crate) server: ServerSettings,
    pub(crate) sms_number: Option<String>,
    pub(crate) whatsapp_number: Option<String>,
    /// The worker for conversations from addresses in no customer's channels.
    pub(crate) default_worker: Option<String>,
    pub(crate) customers: Vec<Customer>,
    /// Where the customer book came from, for the startup line.
    pub(crate) customers_source: String,
    /// Set with `TWILIO_ACCOUNT_SID`: the Conversations API calls are made, not recorded.
    pub(crate) conversations_api: Option<ConversationsApi>,
    /// Things worth saying at startup.
    pub(crate) warnings: Vec<String>,
}

/// Reads the settings through `var` (`None` for an unset variable); `make_token` makes the
/// demo token when `TWILIO_AUTH_TOKEN` is unset.
pub(crate) fn from_lookup(
    var: impl Fn(&'static str) -> Option<String>,
    make_token: impl FnOnce() -> String,
) -> Result<Settings, BadValue> {
    let mut server = server::from_lookup(&var, make_token)?;
    let mut warnings = std::mem::take(&mut server.warnings);

    let (customers, customers_source) = match var("FRONTLINE_CUSTOMERS_FILE") {
        None => (sample_customers(), "the built-in sample".to_owned()),
        Some(path) => (customers_from_file(&path)?, path),
    };

    let default_worker = match var("FRONTLINE_DEFAULT_WORKER") {
        Some(worker) if worker.trim().is_empty() => {
            return Err(bad(
                "FRONTLINE_DEFAULT_WORKER",
                "is set but empty; set it to the identity of a Frontline user",
            ))
        }
        Some(worker) => Some(worker.trim().to_owned()),
        None if server.demo => Some(DEMO_DEFAULT_WORKER.to_owned()),
        None => {
            warnings.push(
                "FRONTLINE_DEFAULT_WORKER is not set: conversations from addresses that are \
                 not in the customer book are answered but routed to no one."
                    .to_owned(),
            );
            None
        }
    };

    let conversations_api = match var("TWILIO_ACCOUNT_SID") {
        None => {
            if var("TWILIO_API_BASE_URL").is_some() {
                warnings.push(
                    "TWILIO_API_BASE_URL is ignored without TWILIO_ACCOUNT_SID: the \
                     Conversations API calls are recorded, not made"
                        .to_owned(),
                );
            }
            None
        }
        Some(_) if server.demo => {
            return Err(bad(
                "TWILIO_ACCOUNT_SID",
                "needs TWILIO_AUTH_TOKEN, the Auth Token of the same account",
            ))
        }
        Some(sid) => Some(conversations_api(
            &sid,
            var("TWILIO_API_BASE_URL").as_deref(),
            &server.auth_token,
        )?),
    };

    Ok(Settings {
        sms_number: number(&var, "TWILIO_SMS_NUMBER", DEMO_SMS_NUMBER, "")?,
        whatsapp_number: number(
            &var,
            "TWILIO_WHATSAPP_NUMBER",
            DEMO_WHATSAPP_NUMBER,
            "whatsapp:",
        )?,
        server,
        default_worker,
        customers,
        customers_source,
        conversations_api,
        warnings,
    })
}

/// Reads the settings from the process environment.
pub(crate) fn from_env() -> Result<Settings, BadValue> {
    check_unicode(&server::VARIABLES)?;
    check_unicode(&FRONTLINE_VARIABLES)?;
    from_lookup(|name| std::env::var(name).ok(), random_token)
}

/// The customer book in the JSON file at `path`.
pub(crate) fn customers_from_file(path: &str) -> Result<Vec<Customer>, BadValue> {
    let variable = "FRONTLINE_CUSTOMERS_FILE";
    let text = std::fs::read_to_string(Path::new(path))
        .map_err(|e| bad(variable, format!("cannot read {path}: {e}")))?;
    let book = parse_book(&text).map_err(|e| bad(variable, format!("{path}: {e}")))?;
    if book.is_empty() {
        return Err(bad(variable, format!("{path} holds no customer")));
    }
    Ok(book)
}

/// The API client for the account `sid`.
fn conversations_api(
    sid: &str,
    base_url: Option<&str>,
    auth_token: &str,
) -> Result<ConversationsApi, BadValue> {
    let sid = sid.trim();
    let valid_sid =
        sid.len() == 34 && sid.starts_with("AC") && sid[2..].bytes().all(|b| b.is_ascii_hexdigit());
    if !valid_sid {
        return Err(bad(
            "TWILIO_ACCOUNT_SID",
            format!("{sid:?} is not an Account SID (AC followed by 32 hexadecimal digits)"),
        ));
    }
    let variable = "TWILIO_API_BASE_URL";
    let text = base_url.unwrap_or(DEFAULT_BASE_URL);
    let url = Url::parse(text).map_err(|e| bad(variable, format!("{text:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(bad(
            variable,
            format!("{text:?} is not an http or https URL without user info, query or fragment"),
        ));
    }
    ConversationsApi::new(url, sid, auth_token)
        .map_err(|e| bad(variable, format!("cannot make an HTTP client: {e}")))
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

impl Settings {
    /// A signed `GetCustomersList` callback to the demo.
    pub(crate) fn demo_request(&self, bound: SocketAddr) -> SignedPost {
        self.server.signed_post(
            bound,
            "/callbacks/crm",
            &[
                ("Location", "GetCustomersList"),
                ("Worker", "demo@example.com"),
                ("PageSize", "3"),
            ],
        )
    }

    /// What to print in demo mode: the token, a `check_endpoint` command and a signed
    /// `curl` line that work against this server.
    pub(crate) fn demo_instructions(&self, bound: SocketAddr) -> String {
        self.server
            .demo_instructions("Frontline", &self.demo_request(bound))
    }

    /// Where the Conversations API calls go, for the startup line.
    pub(crate) fn describe_api(&self) -> String {
        match &self.conversations_api {
            Some(api) => format!(
                "made through {} for account {}",
                api.base_url(),
                api.account_sid()
            ),
            None => "recorded and logged, not made (TWILIO_ACCOUNT_SID is not set)".to_owned(),
        }
    }
}
