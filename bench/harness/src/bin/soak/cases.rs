//! The requests the soak driver sends, each with what the answer must be.

use std::sync::LazyLock;

use serde_json::Value;
use tower_twilio_signature::{sign, sign_url, url_with_body_sha256};

use crate::app::{sample_customers, Customer};
use crate::{DEFAULT_WORKER, SMS_NUMBER, TOKEN, WHATSAPP_NUMBER};

/// The sample customer book the server holds too.
fn book() -> &'static [Customer] {
    static BOOK: LazyLock<Vec<Customer>> = LazyLock::new(sample_customers);
    &BOOK
}

/// Another Auth Token, for wrong signatures.
const OTHER_TOKEN: &str = "ffeeddccbbaa99887766554433221100";

/// SplitMix64: small, fast, and reproducible from a seed.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent` / 100.
    pub(crate) fn percent(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(n);
        out
    }

    /// Text mixing ASCII, characters that need percent-encoding, and multi-byte ones.
    pub(crate) fn text(&mut self, max_chars: usize) -> String {
        const PIECES: &[&str] = &[
            "a",
            "b",
            "Z",
            "0",
            "9",
            " ",
            "+",
            "&",
            "=",
            "%",
            "%20",
            "/",
            "?",
            "#",
            ".",
            "-",
            "_",
            "~",
            "*",
            "'",
            "\"",
            "é",
            "ü",
            "漢",
            "字",
            "🙂",
            "\u{1F1EB}\u{1F1F7}",
            "\t",
            "\n",
        ];
        let n = self.range(0, max_chars);
        (0..n).map(|_| *self.pick(PIECES)).collect()
    }

    /// A body length up to `limit`: mostly small, sometimes near or at the limit.
    pub(crate) fn body_len(&mut self, limit: usize) -> usize {
        match self.below(100) {
            0..=49 => self.range(0, 1024.min(limit)),
            50..=79 => self.range(0, (16 * 1024).min(limit)),
            80..=94 => self.range(0, limit),
            _ => limit,
        }
    }
}

pub(crate) fn form_body(pairs: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

pub(crate) fn sign_form(token: &str, url: &str, pairs: &[(String, String)]) -> String {
    sign(
        token,
        url,
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    )
}

/// What a Frontline answer must hold besides its status.
#[derive(Debug, Clone)]
pub(crate) enum Check {
    /// `objects.customer` is this customer.
    Customer(&'static Customer),
    /// `objects.customers` lists exactly these ids.
    List(Vec<&'static str>),
    /// `{"proxy_address": …}`.
    Proxy(&'static str),
    /// `{"error": …}` mentioning this word.
    Error(&'static str),
    /// Template categories, one filled in with this customer's name.
    Templates(&'static str),
    /// The routing answer for this conversation and customer.
    Routing(String, &'static Customer),
    /// The routing answer for this conversation from an address in no customer's
    /// channels: the default worker.
    NewCustomer(String),
    /// A conversation named after this customer.
    FriendlyName(&'static str),
    /// The participant answer for this customer.
    Participant(&'static Customer),
    /// `{}`.
    Empty,
}

impl Check {
    pub(crate) fn verify(&self, v: &Value) -> Result<(), String> {
        let ok = match self {
            Self::Customer(c) => {
                v["objects"]["customer"]["customer_id"] == c.customer_id
                    && v["objects"]["customer"]["display_name"] == c.display_name
                    && v["objects"]["customer"]["channels"]
                        .as_array()
                        .is_some_and(|a| a.len() == c.channels.len())
            }
            Self::List(ids) => v["objects"]["customers"].as_array().is_some_and(|list| {
                list.iter()
                    .map(|c| c["customer_id"].as_str().unwrap_or_default())
                    .eq(ids.iter().copied())
            }),
            Self::Proxy(address) => v["proxy_address"] == *address,
            Self::Error(word) => v["error"].as_str().is_some_and(|e| e.contains(word)),
            Self::Templates(name) => v.as_array().is_some_and(|categories| {
                categories
                    .first()
                    .is_some_and(|c| c["display_name"] == "Openers")
                    && categories
                        .iter()
                        .flat_map(|c| c["templates"].as_array().into_iter().flatten())
                        .any(|t| t["content"].as_str().is_some_and(|s| s.contains(name)))
            }),
            Self::Routing(sid, c) => {
                v["conversation_sid"] == sid.as_str()
                    && v["customer_id"] == c.customer_id
                    && v["worker"] == c.worker
            }
            Self::NewCustomer(sid) => {
                v["conversation_sid"] == sid.as_str()
                    && v["customer_id"].is_null()
                    && v["worker"] == DEFAULT_WORKER
            }
            Self::FriendlyName(name) => v["friendly_name"] == *name,
            Self::Participant(c) => {
                v["customer_id"] == c.customer_id && v["display_name"] == c.display_name
            }
            Self::Empty => v.as_object().is_some_and(serde_json::Map::is_empty),
        };
        if ok {
            Ok(())
        } else {
            Err(format!("answer {v} fails the check {self:?}"))
        }
    }
}

/// A signed Frontline callback and its expected answer.
#[derive(Debug)]
pub(crate) struct FrontlineCase {
    pub(crate) path: &'static str,
    pub(crate) params: Vec<(String, String)>,
    pub(crate) status: u16,
    pub(crate) check: Check,
    /// Whether the app records a Conversations update for it.
    pub(crate) records: bool,
}

fn sid(rng: &mut Rng, prefix: &str) -> String {
    format!("{prefix}{:016x}{:016x}", rng.next_u64(), rng.next_u64())
}

fn worker(rng: &mut Rng) -> String {
    format!(
        "{}+{}@example.com",
        rng.pick(&["alice", "bob", "zoë", "李"]),
        rng.below(1000)
    )
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub(crate) fn frontline(rng: &mut Rng) -> FrontlineCase {
    let customer: &'static Customer = rng.pick(book());
    let id = customer.customer_id.as_str();
    let name = customer.display_name.as_str();
    let worker = worker(rng);
    let w = worker.as_str();
    let address = rng.pick(&customer.channels).value.as_str();
    let case = |path, params: &[(&str, &str)], status, check| FrontlineCase {
        path,
        params: owned(params),
        status,
        check,
        records: false,
    };
    let crm = "/callbacks/crm";
    let details = "GetCustomerDetailsByCustomerId";
    let list = "GetCustomersList";
    let mut case = match rng.below(17) {
        0 => case(
            crm,
            &[("Location", details), ("CustomerId", id), ("Worker", w)],
            200,
            Check::Customer(customer),
        ),
        1 => case(
            crm,
            &[("Location", details), ("CustomerId", "999"), ("Worker", w)],
            404,
            Check::Error("CustomerId"),
        ),
        2 => {
            let size = rng.range(1, 10);
            let ids = book()
                .iter()
                .take(size)
                .map(|c| c.customer_id.as_str())
                .collect();
            case(
                crm,
                &[
                    ("Location", list),
                    ("Worker", w),
                    ("PageSize", &size.to_string()),
                ],
                200,
                Check::List(ids),
            )
        }
        3 => {
            let query = if rng.percent(50) {
                name.to_uppercase()
            } else {
                name.to_lowercase()
            };
            case(
                crm,
                &[
                    ("Location", list),
                    ("Worker", w),
                    ("PageSize", "10"),
                    ("Query", &query),
                ],
                200,
                Check::List(vec![id]),
            )
        }
        4 => case(
            crm,
            &[
                ("Location", list),
                ("Worker", w),
                ("PageSize", *rng.pick(&["0", "-1", "x"])),
            ],
            400,
            Check::Error("PageSize"),
        ),
        5 => case(
            crm,
            &[("Location", "GetSomethingElse"), ("Worker", w)],
            422,
            Check::Error("Location"),
        ),
        6 => case(
            crm,
            &[("Location", details), ("CustomerId", id)],
            400,
            Check::Error("Worker"),
        ),
        7..=9 => {
            let (channel, status, check) = match rng.below(3) {
                0 => ("sms", 200, Check::Proxy(SMS_NUMBER)),
                1 => ("whatsapp", 200, Check::Proxy(WHATSAPP_NUMBER)),
                _ => ("chat", 404, Check::Error("chat")),
            };
            case(
                "/callbacks/outgoing-conversation",
                &[
                    ("Location", "GetProxyAddress"),
                    ("Worker", w),
                    ("CustomerId", id),
                    ("ChannelType", channel),
                    ("ChannelValue", address),
                ],
                status,
                check,
            )
        }
        10 => case(
            "/callbacks/templates",
            &[
                ("Location", "GetTemplatesByCustomerId"),
                ("CustomerId", id),
                ("Worker", w),
                ("ConversationSid", &sid(rng, "CH")),
            ],
            200,
            Check::Templates(name),
        ),
        11 => {
            let conversation = sid(rng, "CH");
            FrontlineCase {
                records: true,
                ..case(
                    "/callbacks/routing",
                    &[
                        ("ConversationSid", &conversation),
                        ("MessagingBinding.Address", address),
                    ],
                    200,
                    Check::Routing(conversation.clone(), customer),
                )
            }
        }
        12 => {
            let conversation = sid(rng, "CH");
            FrontlineCase {
                records: true,
                ..case(
                    "/callbacks/routing",
                    &[
                        ("ConversationSid", &conversation),
                        ("MessagingBinding.Address", "+12025550999"),
                    ],
                    200,
                    Check::NewCustomer(conversation.clone()),
                )
            }
        }
        13 => case(
            "/callbacks/conversations",
            &[
                ("EventType", "onConversationAdd"),
                ("MessagingBinding.Address", address),
            ],
            200,
            Check::FriendlyName(name),
        ),
        14 => FrontlineCase {
            records: true,
            ..case(
                "/callbacks/conversations",
                &[
                    ("EventType", "onParticipantAdded"),
                    ("ConversationSid", &sid(rng, "CH")),
                    ("ParticipantSid", &sid(rng, "MB")),
                    ("MessagingBinding.Address", address),
                ],
                200,
                Check::Participant(customer),
            )
        },
        15 => case(
            "/callbacks/conversations",
            &[
                ("EventType", "onParticipantAdded"),
                ("ConversationSid", &sid(rng, "CH")),
                ("ParticipantSid", &sid(rng, "MB")),
                ("Identity", w),
            ],
            200,
            Check::Empty,
        ),
        _ => case(
            "/callbacks/conversations",
            &[
                ("EventType", "onMessageAdded"),
                ("ConversationSid", &sid(rng, "CH")),
                ("Body", &rng.text(200)),
                ("Author", w),
            ],
            200,
            Check::Empty,
        ),
    };
    // Parameters the handlers ignore, as Twilio sends many.
    for i in 0..rng.below(4) {
        case.params.push((format!("Extra{i}"), rng.text(40)));
    }
    if rng.percent(50) {
        case.params.push(("AccountSid".to_owned(), sid(rng, "AC")));
    }
    case
}

/// A request to the digest route: the target (path and query), content type, body and
/// signature.
#[derive(Debug)]
pub(crate) struct DigestCase {
    pub(crate) target: String,
    pub(crate) content_type: &'static str,
    pub(crate) body: Vec<u8>,
    pub(crate) signature: String,
}

fn digest_target(rng: &mut Rng) -> String {
    match rng.below(3) {
        0 => crate::DIGEST_PATH.to_owned(),
        1 => format!("{}?run={}", crate::DIGEST_PATH, rng.below(1000)),
        _ => format!("{}?tenant=a%20b&x=%E6%BC%A2&empty=", crate::DIGEST_PATH),
    }
}

/// A random form of at most `limit` bytes, signed; sometimes exactly `limit` bytes.
pub(crate) fn digest_form(rng: &mut Rng, base: &str, limit: usize) -> DigestCase {
    let target = digest_target(rng);
    let mut pairs: Vec<(String, String)> = (0..rng.range(0, 20))
        .map(|_| (rng.text(12), rng.text(60)))
        .collect();
    if rng.percent(10) {
        pairs.push(("Blob".to_owned(), rng.text(2000)));
    }
    while form_body(&pairs).len() > limit {
        pairs.pop();
    }
    if rng.percent(5) {
        // Pad to exactly the limit: the largest body the layer accepts.
        let used = form_body(&pairs).len() + usize::from(!pairs.is_empty()) + "Pad=".len();
        if used <= limit {
            pairs.push(("Pad".to_owned(), "p".repeat(limit - used)));
            debug_assert_eq!(form_body(&pairs).len(), limit);
        }
    }
    let signature = sign_form(TOKEN, &format!("{base}{target}"), &pairs);
    DigestCase {
        target,
        content_type: "application/x-www-form-urlencoded",
        body: form_body(&pairs).into_bytes(),
        signature,
    }
}

/// Random bytes of at most `limit`, signed through `bodySHA256`.
pub(crate) fn digest_hash(rng: &mut Rng, base: &str, limit: usize) -> DigestCase {
    let len = rng.body_len(limit);
    let body = rng.bytes(len);
    let target = url_with_body_sha256(&digest_target(rng), &body);
    let signature = sign_url(TOKEN, &format!("{base}{target}"));
    DigestCase {
        target,
        content_type: match rng.below(3) {
            0 => "application/json",
            1 => "application/octet-stream",
            _ => "text/plain; charset=utf-8",
        },
        body,
        signature,
    }
}

/// A request whose signature is wrong or missing: method, target, content type, body,
/// signature header, and what is wrong.
#[derive(Debug)]
pub(crate) struct BadCase {
    pub(crate) method: &'static str,
    pub(crate) target: String,
    pub(crate) content_type: &'static str,
    pub(crate) body: Vec<u8>,
    pub(crate) signature: Option<String>,
    pub(crate) what: &'static str,
}

pub(crate) fn bad_signature(rng: &mut Rng, base: &str, limit: usize) -> BadCase {
    let form = frontline(rng);
    let url = format!("{base}{}", form.path);
    let form_case = |what, signature: Option<String>, params: &[(String, String)]| BadCase {
        method: "POST",
        target: form.path.to_owned(),
        content_type: "application/x-www-form-urlencoded",
        body: form_body(params).into_bytes(),
        signature,
        what,
    };
    match rng.below(11) {
        0 => form_case("no signature", None, &form.params),
        1 => form_case(
            "another token",
            Some(sign_form(OTHER_TOKEN, &url, &form.params)),
            &form.params,
        ),
        2 => form_case(
            "another URL",
            Some(sign_form(
                TOKEN,
                &format!("https://hooks.example.com{}", form.path),
                &form.params,
            )),
            &form.params,
        ),
        3 => {
            let signature = sign_form(TOKEN, &url, &form.params);
            let mut params = form.params.clone();
            let i = rng.below(params.len());
            params[i].1.push('x');
            form_case("a value changed", Some(signature), &params)
        }
        4 => {
            let signature = sign_form(TOKEN, &url, &form.params);
            let mut params = form.params.clone();
            params.push(("Injected".to_owned(), "1".to_owned()));
            form_case("a parameter added", Some(signature), &params)
        }
        5 => {
            let garbage = rng
                .pick(&["", "!!!", "AAAA", "bm90IGEgc2lnbmF0dXJl", "=====", "é"])
                .to_string();
            form_case("a malformed header", Some(garbage), &form.params)
        }
        6 => {
            let mut case = digest_hash(rng, base, limit);
            match case.body.first_mut() {
                Some(byte) => *byte ^= 0x01,
                None => case.body.push(b'x'),
            }
            BadCase {
                method: "POST",
                target: case.target,
                content_type: case.content_type,
                body: case.body,
                signature: Some(case.signature),
                what: "a body changed after hashing",
            }
        }
        7 => {
            // A JSON body with no `bodySHA256`: nothing signs it.
            let body = br#"{"EventType":"onMessageAdded"}"#.to_vec();
            BadCase {
                method: "POST",
                target: form.path.to_owned(),
                content_type: "application/json",
                body,
                signature: Some(sign_form(TOKEN, &url, &[])),
                what: "an unsigned JSON body",
            }
        }
        8 => {
            let mut case = digest_form(rng, base, limit);
            case.signature = sign_form(OTHER_TOKEN, &format!("{base}{}", case.target), &[]);
            BadCase {
                method: "POST",
                target: case.target,
                content_type: case.content_type,
                body: case.body,
                signature: Some(case.signature),
                what: "a digest form, another token",
            }
        }
        9 => BadCase {
            method: "POST",
            target: "/callbacks/no-such-path".to_owned(),
            content_type: "application/x-www-form-urlencoded",
            body: form_body(&form.params).into_bytes(),
            signature: None,
            what: "an unknown path, unsigned",
        },
        _ => BadCase {
            method: "GET",
            target: form.path.to_owned(),
            content_type: "application/x-www-form-urlencoded",
            body: Vec::new(),
            signature: None,
            what: "a GET, unsigned",
        },
    }
}
