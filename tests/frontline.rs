//! The Frontline example and the endpoint checker, run against a real server on a loopback
//! port: every callback with signed requests, refusals that leave the state alone, the
//! error answers, pagination and search, the configuration from the environment, and
//! `check_endpoint`'s checks.
#![cfg(feature = "axum")]

#[path = "../examples/frontline/app/mod.rs"]
mod app;
#[path = "../examples/check_endpoint/checks.rs"]
mod checks;
// `from_env` reads the process environment, which these tests leave alone.
#[allow(dead_code)]
#[path = "../examples/frontline/config.rs"]
mod config;

mod common;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower_twilio_signature::{sign, sign_body, TwilioSignatureLayer, UrlSource};

use crate::app::{
    sample_customers, AppConfig, AppState, ConversationUpdate, KEPT_UPDATES, REQUEST_BODY_TIMEOUT,
};
use crate::checks::{Expect, Target, Transport};
use crate::common::{basic, Logs};

const TOKEN: &str = "12345678901234567890123456789012";
const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const OTHER_TOKEN: &str = "abcdefabcdefabcdefabcdefabcdefab";
const SMS: &str = "+12025550100";
const WHATSAPP: &str = "whatsapp:+12025550101";

fn default_config() -> AppConfig {
    AppConfig {
        sms_number: Some(SMS.to_owned()),
        whatsapp_number: Some(WHATSAPP.to_owned()),
        request_body_timeout: REQUEST_BODY_TIMEOUT,
        customers: sample_customers(),
        default_worker: None,
        conversations_api: None,
    }
}

/// How a test request is signed.
#[derive(Clone, Copy, Debug)]
enum Sig {
    /// Correctly, for the URL and parameters sent.
    Valid,
    /// Not at all.
    Missing,
    /// With another Auth Token.
    OtherToken,
    /// For another URL.
    OtherUrl,
    /// For the parameters sent, less the last one.
    Tampered,
}

/// Form parameters, in order.
type Form<'a> = &'a [(&'a str, &'a str)];

const WRONG_SIGS: [Sig; 4] = [Sig::Missing, Sig::OtherToken, Sig::OtherUrl, Sig::Tampered];

struct Server {
    addr: SocketAddr,
    state: AppState,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Server {
    /// The app with a fixed base URL `http://<addr>`, as in demo mode.
    async fn start() -> Self {
        Self::start_with(default_config()).await
    }

    async fn start_with(config: AppConfig) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let layer = TwilioSignatureLayer::new(TOKEN)
            .unwrap()
            .url_source(UrlSource::base_url(&format!("http://{addr}")).unwrap());
        Self::serve(listener, layer, config).await
    }

    async fn serve(listener: TcpListener, layer: TwilioSignatureLayer, config: AppConfig) -> Self {
        let addr = listener.local_addr().unwrap();
        let state = AppState::new(&config);
        let router = app::app(layer, state.clone(), &config);
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self {
            addr,
            state,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn send(&self, request: Request<Full<Bytes>>) -> (StatusCode, Value) {
        let response = self.client.request(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&body)))
        };
        (status, json)
    }

    /// A form POST to `path`, signed as `sig` says.
    async fn post(&self, path: &str, params: &[(&str, &str)], sig: Sig) -> (StatusCode, Value) {
        self.request(Method::POST, path, params, sig).await
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, &str)],
        sig: Sig,
    ) -> (StatusCode, Value) {
        let url = self.url(path);
        let signature = match sig {
            Sig::Valid => Some(sign(TOKEN, &url, params.iter().copied())),
            Sig::Missing => None,
            Sig::OtherToken => Some(sign(OTHER_TOKEN, &url, params.iter().copied())),
            Sig::OtherUrl => Some(sign(
                TOKEN,
                "https://example.com/callbacks/crm",
                params.iter().copied(),
            )),
            Sig::Tampered => Some(sign(
                TOKEN,
                &url,
                params[..params.len() - 1].iter().copied(),
            )),
        };
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        let mut request = Request::builder()
            .method(method)
            .uri(&url)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(signature) = signature {
            request = request.header("x-twilio-signature", signature);
        }
        self.send(request.body(Full::new(Bytes::from(body))).unwrap())
            .await
    }

    /// Asserts `params` to `path` gets `status` with `{"error": …}` mentioning `word`.
    async fn assert_error(
        &self,
        path: &str,
        params: &[(&str, &str)],
        status: StatusCode,
        word: &str,
    ) {
        let (got, body) = self.post(path, params, Sig::Valid).await;
        assert_eq!(got, status, "{path} {params:?}: {body}");
        let message = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error text: {body}"));
        assert!(
            message.contains(word),
            "{message:?} should mention {word:?}"
        );
    }
}

fn ids(list: &Value) -> Vec<String> {
    list["objects"]["customers"]
        .as_array()
        .unwrap_or_else(|| panic!("no customers list: {list}"))
        .iter()
        .map(|c| c["customer_id"].as_str().unwrap().to_owned())
        .collect()
}

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

async fn list_page(
    server: &Server,
    page_size: &str,
    anchor: Option<&str>,
    query: Option<&str>,
) -> Value {
    let mut params = vec![
        ("Location", "GetCustomersList"),
        ("Worker", "alice@example.com"),
        ("PageSize", page_size),
    ];
    params.extend(anchor.map(|a| ("Anchor", a)));
    params.extend(query.map(|q| ("Query", q)));
    let (status, body) = server.post("/callbacks/crm", &params, Sig::Valid).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["searchable"], json!(true));
    body
}

/// Every page of the list, following the anchors, until an empty page.
async fn walk(server: &Server, page_size: usize, query: Option<&str>) -> Vec<Vec<String>> {
    let size = page_size.to_string();
    let mut pages = Vec::new();
    let mut anchor: Option<String> = None;
    loop {
        let page = ids(&list_page(server, &size, anchor.as_deref(), query).await);
        assert!(page.len() <= page_size, "page over size: {page:?}");
        if page.is_empty() {
            return pages;
        }
        anchor = page.last().cloned();
        pages.push(page);
        assert!(pages.len() <= sample_customers().len(), "the anchors loop");
    }
}

#[tokio::test]
async fn customer_details() {
    let server = Server::start().await;
    let (status, body) = server
        .post(
            "/callbacks/crm",
            &[
                ("Location", "GetCustomerDetailsByCustomerId"),
                ("CustomerId", "3"),
                ("Worker", "bob@example.com"),
            ],
            Sig::Valid,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let customer = &body["objects"]["customer"];
    assert_eq!(
        keys(customer),
        [
            "avatar",
            "channels",
            "customer_id",
            "details",
            "display_name",
            "links"
        ]
    );
    assert_eq!(customer["customer_id"], "3");
    assert_eq!(customer["display_name"], "Chloé Martin");
    assert_eq!(
        customer["channels"],
        json!([
            { "type": "sms", "value": "+12025550133" },
            { "type": "whatsapp", "value": "whatsapp:+12025550133" },
        ])
    );
    for link in customer["links"].as_array().unwrap() {
        assert_eq!(keys(link), ["display_name", "type", "value"]);
    }
    assert_eq!(customer["links"].as_array().unwrap().len(), 2);
    assert_eq!(keys(&customer["details"]), ["content", "title"]);
    assert!(customer["avatar"].as_str().unwrap().starts_with("https://"));
    assert_eq!(server.state.callbacks_handled(), 1);

    server
        .assert_error(
            "/callbacks/crm",
            &[
                ("Location", "GetCustomerDetailsByCustomerId"),
                ("CustomerId", "404"),
                ("Worker", "bob@example.com"),
            ],
            StatusCode::NOT_FOUND,
            "404",
        )
        .await;
}

#[test]
fn sample_book_covers_every_channel() {
    let book = sample_customers();
    assert!(book.len() >= 5);
    for kind in ["sms", "whatsapp", "chat"] {
        assert!(
            book.iter()
                .any(|c| c.channels.iter().any(|ch| ch.kind == kind)),
            "no {kind} channel"
        );
    }
    assert!(book
        .iter()
        .all(|c| c.details.as_ref().is_some_and(|d| !d.content.is_empty())));
    assert!(book.iter().any(|c| !c.links.is_empty()));
    assert!(book.iter().all(|c| c.avatar.is_some()));
}

#[tokio::test]
async fn customers_list_pages_follow_the_anchor() {
    let server = Server::start().await;
    let all: Vec<String> = sample_customers()
        .iter()
        .map(|c| c.customer_id.clone())
        .collect();

    let first = list_page(&server, "3", None, None).await;
    for entry in first["objects"]["customers"].as_array().unwrap() {
        assert_eq!(keys(entry), ["avatar", "customer_id", "display_name"]);
    }
    assert_eq!(ids(&first), all[..3]);

    let pages = walk(&server, 3, None).await;
    assert_eq!(pages.len(), all.len().div_ceil(3));
    assert_eq!(pages.concat(), all);

    // One page holds them all; an anchor past the end, or unknown, gives an empty page.
    assert_eq!(walk(&server, 100, None).await, std::slice::from_ref(&all));
    let last = all.last().unwrap();
    assert!(ids(&list_page(&server, "3", Some(last), None).await).is_empty());
    assert!(ids(&list_page(&server, "3", Some("no-such-id"), None).await).is_empty());
    // PageSize arrives as a string and is checked.
    for bad in ["0", "-1", "three", "1.5"] {
        server
            .assert_error(
                "/callbacks/crm",
                &[
                    ("Location", "GetCustomersList"),
                    ("Worker", "w"),
                    ("PageSize", bad),
                ],
                StatusCode::BAD_REQUEST,
                "PageSize",
            )
            .await;
    }
}

#[tokio::test]
async fn customers_list_search_ignores_case_and_pages() {
    let server = Server::start().await;
    assert_eq!(
        ids(&list_page(&server, "10", None, Some("ZHANG")).await),
        ["5"]
    );
    assert_eq!(
        ids(&list_page(&server, "10", None, Some("chloé")).await),
        ["3"]
    );
    assert_eq!(
        ids(&list_page(&server, "10", None, Some("CHLOÉ MARTIN")).await),
        ["3"]
    );
    assert!(ids(&list_page(&server, "10", None, Some("nobody")).await).is_empty());
    // "an" is in "Ana Souza" and "Emily Zhang" only; one per page.
    assert_eq!(walk(&server, 1, Some("an")).await, [vec!["1"], vec!["5"]]);
    assert_eq!(walk(&server, 5, Some("AN")).await, [vec!["1", "5"]]);
    // An empty Query is no filter.
    assert_eq!(
        ids(&list_page(&server, "2", None, Some("")).await),
        ["1", "2"]
    );
}

#[tokio::test]
async fn outgoing_conversation_proxy_addresses() {
    let server = Server::start().await;
    let proxy = |channel: &'static str| {
        [
            ("Location", "GetProxyAddress"),
            ("Worker", "alice@example.com"),
            ("CustomerId", "5"),
            ("ChannelType", channel),
            ("ChannelValue", "+12025550155"),
        ]
    };
    let path = "/callbacks/outgoing-conversation";
    let (status, body) = server.post(path, &proxy("sms"), Sig::Valid).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({ "proxy_address": SMS }))
    );
    let (status, body) = server.post(path, &proxy("whatsapp"), Sig::Valid).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({ "proxy_address": WHATSAPP }))
    );
    server
        .assert_error(path, &proxy("chat"), StatusCode::NOT_FOUND, "chat")
        .await;
    server
        .assert_error(path, &proxy("fax"), StatusCode::BAD_REQUEST, "ChannelType")
        .await;

    // A channel with no number configured.
    let server = Server::start_with(AppConfig {
        whatsapp_number: None,
        ..default_config()
    })
    .await;
    server
        .assert_error(path, &proxy("whatsapp"), StatusCode::NOT_FOUND, "whatsapp")
        .await;
    let (status, _) = server.post(path, &proxy("sms"), Sig::Valid).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn templates_are_filled_in() {
    let server = Server::start().await;
    let (status, body) = server
        .post(
            "/callbacks/templates",
            &[
                ("Location", "GetTemplatesByCustomerId"),
                ("CustomerId", "3"),
                ("Worker", "bob@example.com"),
                ("ConversationSid", "CH00000000000000000000000000000001"),
            ],
            Sig::Valid,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let categories = body.as_array().unwrap();
    assert_eq!(categories[0]["display_name"], "Openers");
    let templates: Vec<&Value> = categories
        .iter()
        .flat_map(|c| {
            assert_eq!(keys(c), ["display_name", "templates"]);
            c["templates"].as_array().unwrap()
        })
        .collect();
    assert!(templates.len() >= 3);
    let mut named = 0;
    for template in &templates {
        assert_eq!(keys(template), ["content", "whatsAppApproved"]);
        let content = template["content"].as_str().unwrap();
        assert!(
            !content.contains("{{"),
            "unfilled placeholder in {content:?}"
        );
        named += usize::from(content.contains("Chloé Martin"));
    }
    assert!(named >= 2);
    assert!(templates
        .iter()
        .any(|t| t["content"].as_str().unwrap().contains("bob@example.com")));
    assert!(templates
        .iter()
        .any(|t| t["whatsAppApproved"] == json!(true)));

    server
        .assert_error(
            "/callbacks/templates",
            &[
                ("Location", "GetTemplatesByCustomerId"),
                ("CustomerId", "99"),
                ("Worker", "w"),
            ],
            StatusCode::NOT_FOUND,
            "99",
        )
        .await;
}

#[tokio::test]
async fn routing_assigns_the_customers_worker() {
    let server = Server::start().await;
    let (status, body) = server
        .post(
            "/callbacks/routing",
            &[
                ("ConversationSid", "CH11111111111111111111111111111111"),
                ("MessagingBinding.Address", "whatsapp:+12025550155"),
                ("MessagingBinding.ProxyAddress", WHATSAPP),
            ],
            Sig::Valid,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({
            "conversation_sid": "CH11111111111111111111111111111111",
            "customer_id": "5",
            "worker": "alice@example.com",
        })
    );
    // Without a default worker, a new customer's conversation is answered, not routed.
    let (status, body) = server
        .post(
            "/callbacks/routing",
            &[
                ("ConversationSid", "CH2"),
                ("MessagingBinding.Address", "+19995550100"),
            ],
            Sig::Valid,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({ "conversation_sid": "CH2", "customer_id": null, "worker": null })
    );
    assert_eq!(
        server.state.updates(),
        [ConversationUpdate::AddWorker {
            conversation_sid: "CH11111111111111111111111111111111".to_owned(),
            worker: "alice@example.com".to_owned(),
        }]
    );
}

#[tokio::test]
async fn routing_sends_new_customers_to_the_default_worker() {
    let server = Server::start_with(AppConfig {
        default_worker: Some("frontdesk@example.com".to_owned()),
        ..default_config()
    })
    .await;
    let route = |sid: &'static str, address: &'static str| {
        [
            ("ConversationSid", sid),
            ("MessagingBinding.Address", address),
        ]
    };
    // A number, a WhatsApp address and a chat identity that no customer has.
    let (status, body) = server
        .post(
            "/callbacks/routing",
            &route("CH5", "+19995550100"),
            Sig::Valid,
        )
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({ "conversation_sid": "CH5", "customer_id": null, "worker": "frontdesk@example.com" })
        )
    );
    for (sid, address) in [("CH6", "whatsapp:+12025550122"), ("CH7", "someone.new")] {
        let (status, _) = server
            .post("/callbacks/routing", &route(sid, address), Sig::Valid)
            .await;
        assert_eq!(status, StatusCode::OK, "{address}");
    }
    // A known customer still goes to their own worker.
    let (_, body) = server
        .post(
            "/callbacks/routing",
            &route("CH8", "+12025550166"),
            Sig::Valid,
        )
        .await;
    assert_eq!(body["worker"], "carol@example.com");
    assert_eq!(body["customer_id"], "6");
    let routed: Vec<(String, String)> = server
        .state
        .updates()
        .into_iter()
        .map(|u| match u {
            ConversationUpdate::AddWorker {
                conversation_sid,
                worker,
            } => (conversation_sid, worker),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    let expected = [
        ("CH5", "frontdesk@example.com"),
        ("CH6", "frontdesk@example.com"),
        ("CH7", "frontdesk@example.com"),
        ("CH8", "carol@example.com"),
    ];
    assert_eq!(routed, expected.map(|(c, w)| (c.to_owned(), w.to_owned())));
}

/// A service that runs for months keeps the latest updates only, and still counts them all.
#[test]
fn recorded_updates_are_capped() {
    let state = AppState::new(&default_config());
    let update = |i: usize| ConversationUpdate::AddWorker {
        conversation_sid: format!("CH{i}"),
        worker: "alice@example.com".to_owned(),
    };
    for i in 0..KEPT_UPDATES + 5 {
        state.record(update(i));
    }
    let kept = state.updates();
    assert_eq!(kept.len(), KEPT_UPDATES);
    assert_eq!(kept[0], update(5), "the oldest are dropped first");
    assert_eq!(kept[KEPT_UPDATES - 1], update(KEPT_UPDATES + 4));
    assert_eq!(state.updates_recorded(), (KEPT_UPDATES + 5) as u64);
}

#[tokio::test]
async fn conversations_webhooks() {
    let server = Server::start().await;
    let path = "/callbacks/conversations";
    let (status, body) = server
        .post(
            path,
            &[
                ("EventType", "onConversationAdd"),
                ("MessagingBinding.Address", "+12025550122"),
            ],
            Sig::Valid,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["friendly_name"], "Benjamin Carter");
    let attributes: Value = serde_json::from_str(body["attributes"].as_str().unwrap()).unwrap();
    assert_eq!(
        attributes["avatar"],
        "https://example.com/avatars/benjamin-carter.png"
    );

    // An unknown number is named after itself; no address (a chat) changes nothing.
    let (_, body) = server
        .post(
            path,
            &[
                ("EventType", "onConversationAdd"),
                ("MessagingBinding.Address", "+19995550100"),
            ],
            Sig::Valid,
        )
        .await;
    assert_eq!(body["friendly_name"], "+19995550100");
    let (status, body) = server
        .post(path, &[("EventType", "onConversationAdd")], Sig::Valid)
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));

    // A customer participant is tagged; a worker (with an Identity) is not.
    let (status, body) = server
        .post(
            path,
            &[
                ("EventType", "onParticipantAdded"),
                ("ConversationSid", "CH3"),
                ("ParticipantSid", "MB1"),
                ("MessagingBinding.Address", "+12025550144"),
            ],
            Sig::Valid,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["customer_id"], "4");
    let (status, _) = server
        .post(
            path,
            &[
                ("EventType", "onParticipantAdded"),
                ("ConversationSid", "CH3"),
                ("ParticipantSid", "MB2"),
                ("Identity", "bob@example.com"),
            ],
            Sig::Valid,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = server
        .post(
            path,
            &[("EventType", "onMessageAdded"), ("Body", "hi")],
            Sig::Valid,
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    assert_eq!(
        server.state.updates(),
        [ConversationUpdate::TagCustomer {
            conversation_sid: "CH3".to_owned(),
            participant_sid: "MB1".to_owned(),
            customer_id: "4".to_owned(),
            display_name: "Dmitri Volkov".to_owned(),
            avatar: Some("https://example.com/avatars/dmitri-volkov.png".to_owned()),
        }]
    );
}

#[tokio::test]
async fn unknown_location_is_422() {
    let server = Server::start().await;
    for path in [
        "/callbacks/crm",
        "/callbacks/outgoing-conversation",
        "/callbacks/templates",
    ] {
        server
            .assert_error(
                path,
                // No other parameter: the Location is checked first.
                &[("Location", "GetSomethingElse")],
                StatusCode::UNPROCESSABLE_ENTITY,
                "GetSomethingElse",
            )
            .await;
    }
}

#[tokio::test]
async fn missing_parameters_are_400_and_named() {
    let server = Server::start().await;
    let cases: &[(&str, Form<'_>, &str)] = &[
        ("/callbacks/crm", &[("Worker", "w")], "Location"),
        (
            "/callbacks/crm",
            &[("Location", "GetCustomersList"), ("PageSize", "3")],
            "Worker",
        ),
        (
            "/callbacks/crm",
            &[("Location", "GetCustomersList"), ("Worker", "w")],
            "PageSize",
        ),
        (
            "/callbacks/crm",
            &[
                ("Location", "GetCustomerDetailsByCustomerId"),
                ("Worker", "w"),
                ("CustomerId", ""),
            ],
            "CustomerId",
        ),
        (
            "/callbacks/outgoing-conversation",
            &[("Location", "GetProxyAddress"), ("Worker", "w")],
            "ChannelType",
        ),
        (
            "/callbacks/templates",
            &[("Location", "GetTemplatesByCustomerId"), ("Worker", "w")],
            "CustomerId",
        ),
        (
            "/callbacks/templates",
            &[
                ("Location", "GetTemplatesByCustomerId"),
                ("CustomerId", "1"),
            ],
            "Worker",
        ),
        (
            "/callbacks/routing",
            &[("MessagingBinding.Address", "+12025550111")],
            "ConversationSid",
        ),
        (
            "/callbacks/routing",
            &[("ConversationSid", "CH1")],
            "MessagingBinding.Address",
        ),
        (
            "/callbacks/conversations",
            &[("ConversationSid", "CH1")],
            "EventType",
        ),
        (
            "/callbacks/conversations",
            &[
                ("EventType", "onParticipantAdded"),
                ("ConversationSid", "CH1"),
            ],
            "ParticipantSid",
        ),
    ];
    for &(path, params, name) in cases {
        server
            .assert_error(path, params, StatusCode::BAD_REQUEST, name)
            .await;
    }
    assert!(server.state.updates().is_empty());
}

#[tokio::test]
async fn unsigned_and_wrongly_signed_requests_are_403_and_change_nothing() {
    let server = Server::start().await;
    // Each would succeed, and the last two would record updates, if signed.
    let requests: &[(Method, &str, Form<'_>)] = &[
        (
            Method::POST,
            "/callbacks/crm",
            &[
                ("Location", "GetCustomersList"),
                ("Worker", "w"),
                ("PageSize", "3"),
            ],
        ),
        (
            Method::POST,
            "/callbacks/outgoing-conversation",
            &[
                ("Location", "GetProxyAddress"),
                ("Worker", "w"),
                ("ChannelType", "sms"),
            ],
        ),
        (
            Method::POST,
            "/callbacks/templates",
            &[
                ("Location", "GetTemplatesByCustomerId"),
                ("Worker", "w"),
                ("CustomerId", "1"),
            ],
        ),
        (
            Method::POST,
            "/callbacks/conversations",
            &[
                ("EventType", "onParticipantAdded"),
                ("ConversationSid", "CH1"),
                ("ParticipantSid", "MB1"),
                ("MessagingBinding.Address", "+12025550111"),
            ],
        ),
        (
            Method::POST,
            "/callbacks/routing",
            &[
                ("ConversationSid", "CH1"),
                ("MessagingBinding.Address", "+12025550111"),
            ],
        ),
        // Unknown paths and other methods are behind the layer too.
        (Method::POST, "/nope", &[("Location", "GetCustomersList")]),
        (Method::GET, "/nope", &[("a", "b")]),
        (
            Method::GET,
            "/callbacks/crm",
            &[("Location", "GetCustomersList")],
        ),
        (
            Method::PUT,
            "/callbacks/routing",
            &[("ConversationSid", "CH1")],
        ),
        (Method::POST, "/healthz", &[("a", "b")]),
        (Method::DELETE, "/healthz", &[("a", "b")]),
    ];
    for (method, path, params) in requests {
        for sig in WRONG_SIGS {
            let (status, body) = server.request(method.clone(), path, params, sig).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path} {sig:?}");
            assert_eq!(body, Value::Null, "a refusal says nothing: {body}");
        }
    }
    assert_eq!(server.state.callbacks_handled(), 0);
    assert!(server.state.updates().is_empty());

    // The same requests, signed, get through (to a handler, or a 404/405 after the layer).
    for (method, path, params) in requests {
        let (status, body) = server
            .request(method.clone(), path, params, Sig::Valid)
            .await;
        assert_ne!(status, StatusCode::FORBIDDEN, "{method} {path}");
        let expected = match (method.as_str(), *path) {
            (_, "/nope") => StatusCode::NOT_FOUND,
            ("POST", p) if p != "/healthz" => StatusCode::OK,
            _ => StatusCode::METHOD_NOT_ALLOWED,
        };
        assert_eq!(status, expected, "{method} {path}: {body}");
        if status != StatusCode::OK {
            assert!(body["error"].is_string(), "{body}");
        }
    }
    assert_eq!(server.state.callbacks_handled(), 5);
    assert_eq!(server.state.updates().len(), 2);
}

#[tokio::test]
async fn healthz_needs_no_signature() {
    let server = Server::start().await;
    let request = Request::get(server.url("/healthz"))
        .body(Full::default())
        .unwrap();
    assert_eq!(
        server.send(request).await,
        (StatusCode::OK, json!({ "status": "ok" }))
    );
    let head = Request::head(server.url("/healthz"))
        .body(Full::default())
        .unwrap();
    assert_eq!(server.send(head).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_json_body_is_refused_after_the_signature_check() {
    let server = Server::start().await;
    let body = br#"{"Location":"GetCustomersList"}"#;
    let (url, signature) = sign_body(TOKEN, &server.url("/callbacks/crm"), body);
    let request = Request::post(&url)
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-twilio-signature", signature)
        .body(Full::new(Bytes::from_static(body)))
        .unwrap();
    let (status, body) = server.send(request).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(body["error"].is_string(), "{body}");
}

#[tokio::test]
async fn a_slow_body_is_cut_off() {
    let server = Server::start_with(AppConfig {
        request_body_timeout: Duration::from_millis(200),
        ..default_config()
    })
    .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /callbacks/crm HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         X-Twilio-Signature: {}\r\nContent-Length: 100\r\n\r\nLocation=Get",
        server.addr,
        sign(TOKEN, &server.url("/callbacks/crm"), [("Location", "GetCustomersList")]),
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 1024];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(read.is_ok(), "no answer while the body was pending");
    assert!(started.elapsed() >= Duration::from_millis(150));
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(server.state.callbacks_handled(), 0);
}

// ----- check_endpoint -----

#[tokio::test]
async fn check_endpoint_passes_against_the_app() {
    let server = Server::start().await;
    let target = Target::parse(&server.url("/callbacks/crm")).unwrap();
    let reports = checks::run(&target, TOKEN, Transport::Hyper).await;
    assert_eq!(reports.len(), 9);
    for report in &reports {
        assert!(report.passed(), "{report}");
    }
    for kind in ["POST form", "GET with query", "POST JSON"] {
        for expect in [Expect::Accepted, Expect::Rejected] {
            assert!(
                reports
                    .iter()
                    .any(|r| r.probe.name.starts_with(kind) && r.probe.expect == expect),
                "no {kind} check expecting {expect}"
            );
        }
    }
    // The valid ones got through the layer; the Frontline handler refused the made-up
    // parameters (400), the method (405) or the JSON body (415).
    let accepted: Vec<u16> = reports
        .iter()
        .filter(|r| r.probe.expect == Expect::Accepted)
        .map(|r| r.got.as_ref().unwrap().as_u16())
        .collect();
    assert_eq!(accepted, [400, 405, 415]);
    assert!(checks::hints(&reports).is_empty());
    let line = reports[0].to_string();
    assert!(line.starts_with("ok"), "{line}");
    assert!(
        line.contains("expected: not 401/403") && line.contains("got: 400"),
        "{line}"
    );
}

#[tokio::test]
async fn check_endpoint_reports_a_wrong_token() {
    let server = Server::start().await;
    let target = Target::parse(&server.url("/callbacks/crm")).unwrap();
    let reports = checks::run(&target, OTHER_TOKEN, Transport::Hyper).await;
    for report in &reports {
        let expect_pass = report.probe.expect == Expect::Rejected;
        assert_eq!(report.passed(), expect_pass, "{report}");
        assert_eq!(report.got, Ok(StatusCode::FORBIDDEN));
    }
    assert!(reports.iter().any(|r| r.to_string().starts_with("FAIL")));
    let hints = checks::hints(&reports);
    assert_eq!(hints.len(), 1);
    assert!(hints[0].contains("TWILIO_AUTH_TOKEN"));
}

#[tokio::test]
async fn check_endpoint_reports_an_unprotected_url() {
    // GET /healthz is outside the layer: a wrongly signed GET gets 200, not 403.
    let server = Server::start().await;
    let target = Target::parse(&server.url("/healthz")).unwrap();
    let reports = checks::run(&target, TOKEN, Transport::Hyper).await;
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.probe.name)
        .collect();
    assert!(
        failed.contains(&"GET with query, signature for another URL"),
        "{failed:?}"
    );
    assert!(checks::hints(&reports)
        .iter()
        .any(|h| h.contains("not protected")));
}

#[tokio::test]
async fn check_endpoint_reports_a_server_that_is_not_there() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let target = Target::parse(&format!("http://{addr}/callbacks/crm")).unwrap();
    let reports = checks::run(&target, TOKEN, Transport::Hyper).await;
    assert!(reports.iter().all(|r| !r.passed() && r.got.is_err()));
    assert!(
        reports[0].to_string().contains("no answer"),
        "{}",
        reports[0]
    );
}

#[tokio::test]
async fn check_endpoint_through_curl() {
    let curl = std::process::Command::new("curl").arg("--version").output();
    assert!(
        curl.is_ok(),
        "curl is needed for this test: install it (apt-get install curl)"
    );
    let server = Server::start().await;
    let target = Target::parse(&server.url("/callbacks/crm")).unwrap();
    let reports = checks::run(&target, TOKEN, Transport::Curl).await;
    for report in &reports {
        assert!(report.passed(), "{report}");
    }
    let reports = checks::run(&target, OTHER_TOKEN, Transport::Curl).await;
    assert_eq!(reports.iter().filter(|r| r.passed()).count(), 6);
}

#[test]
fn check_endpoint_targets() {
    let t = Target::parse("https://user:p%40ss@hooks.example.com:8443/sms?x=1#frag").unwrap();
    assert_eq!(t.url, "https://hooks.example.com:8443/sms?x=1");
    assert_eq!(t.basic_auth, Some(("user".to_owned(), "p@ss".to_owned())));
    assert!(t.is_https());
    let t = Target::parse("http://127.0.0.1:3000").unwrap();
    assert_eq!(t.url, "http://127.0.0.1:3000/");
    assert_eq!(t.basic_auth, None);
    assert!(!t.is_https());
    assert_eq!(Target::parse("http://h?q=1").unwrap().url, "http://h/?q=1");
    for bad in ["ftp://example.com/", "example.com/sms", "http:///sms"] {
        assert!(Target::parse(bad).is_err(), "{bad}");
    }
    assert!(checks::RULE.contains("exactly 403"));
}

#[tokio::test]
async fn check_endpoint_sends_basic_credentials_and_signs_without_them() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let layer = TwilioSignatureLayer::new(TOKEN)
        .unwrap()
        .url_source(UrlSource::base_url(&format!("http://{addr}")).unwrap())
        .basic_auth("twilio", "s3cret:!")
        .unwrap();
    let server = Server::serve(listener, layer, default_config()).await;
    let with = Target::parse(&format!("http://twilio:s3cret%3A%21@{addr}/callbacks/crm")).unwrap();
    for report in checks::run(&with, TOKEN, Transport::Hyper).await {
        assert!(report.passed(), "{report}");
    }
    let without = Target::parse(&server.url("/callbacks/crm")).unwrap();
    let reports = checks::run(&without, TOKEN, Transport::Hyper).await;
    assert!(reports
        .iter()
        .all(|r| r.got == Ok(StatusCode::UNAUTHORIZED)));
    assert!(checks::hints(&reports).iter().any(|h| h.contains("Basic")));
}

#[tokio::test]
async fn check_endpoint_signs_for_the_public_url_and_sends_elsewhere() {
    // The service expects the public URL; nothing listens at its host.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let layer = TwilioSignatureLayer::new(TOKEN)
        .unwrap()
        .url_source(UrlSource::base_url("https://hooks.example.com").unwrap());
    let _server = Server::serve(listener, layer, default_config()).await;
    let public = Target::parse("https://hooks.example.com/callbacks/crm").unwrap();
    let with_path = public
        .clone()
        .with_send_to(&format!("http://{addr}/callbacks"))
        .unwrap_err();
    assert!(
        with_path.contains("only a scheme, host and port"),
        "{with_path}"
    );
    assert!(public
        .clone()
        .with_send_to("http://u:p@127.0.0.1:1")
        .is_err());
    let target = public.with_send_to(&format!("http://{addr}")).unwrap();
    assert!(!target.is_https());
    assert_eq!(
        target.destination("https://hooks.example.com/callbacks/crm?x=1"),
        (
            format!("http://{addr}/callbacks/crm?x=1"),
            Some("hooks.example.com".to_owned())
        )
    );
    let reports = checks::run(&target, TOKEN, Transport::Hyper).await;
    assert_eq!(reports.len(), 9);
    for report in &reports {
        assert!(report.passed(), "{report}");
    }
    // Signed with another token, every probe is refused: the checks reached the service.
    let wrong = checks::run(&target, OTHER_TOKEN, Transport::Hyper).await;
    assert!(wrong.iter().all(|r| r.got == Ok(StatusCode::FORBIDDEN)));
}

// ----- configuration from the environment -----

fn env(pairs: &[(&'static str, &str)]) -> impl Fn(&'static str) -> Option<String> {
    let pairs: Vec<(&'static str, String)> =
        pairs.iter().map(|&(k, v)| (k, v.to_owned())).collect();
    move |name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    }
}

fn load(pairs: &[(&'static str, &str)]) -> Result<config::Settings, config::server::BadValue> {
    config::from_lookup(env(pairs), config::server::random_token)
}

#[test]
fn config_without_a_token_is_the_demo() {
    let settings = load(&[]).unwrap();
    assert!(settings.server.demo);
    assert_eq!(settings.server.url_mode, config::server::UrlMode::Demo);
    assert_eq!(
        settings.server.bind_addr,
        "127.0.0.1:3000".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        settings.default_worker.as_deref(),
        Some(config::DEMO_DEFAULT_WORKER)
    );
    assert!(settings.conversations_api.is_none());
    assert_eq!(settings.server.auth_token.len(), 32);
    assert!(settings
        .server
        .auth_token
        .bytes()
        .all(|b| b.is_ascii_hexdigit()));
    assert_ne!(
        settings.server.auth_token,
        load(&[]).unwrap().server.auth_token,
        "not random"
    );
    assert_eq!(settings.sms_number.as_deref(), Some("+12025550100"));
    assert_eq!(
        settings.whatsapp_number.as_deref(),
        Some("whatsapp:+12025550101")
    );
    let bound: SocketAddr = "127.0.0.1:3000".parse().unwrap();
    assert!(settings
        .server
        .describe_url_mode(bound)
        .contains("http://127.0.0.1:3000"));
    let text = settings.demo_instructions(bound);
    assert!(text.contains("DEMO MODE"));
    assert!(text.contains(&format!(
        "TWILIO_AUTH_TOKEN={} cargo run --example check_endpoint -- http://127.0.0.1:3000/callbacks/crm",
        settings.server.auth_token
    )));
    let request = settings.demo_request(bound);
    assert!(text.contains(&format!(
        "curl -i -X POST '{}' -H 'X-Twilio-Signature: {}' --data '{}'",
        request.url, request.signature, request.body
    )));

    // Ignored, but still checked.
    let settings = load(&[("PUBLIC_BASE_URL", "https://hooks.example.com")]).unwrap();
    assert_eq!(settings.server.url_mode, config::server::UrlMode::Demo);
    assert!(settings.warnings[0].contains("ignored in demo mode"));
    assert!(load(&[("PUBLIC_BASE_URL", "https://hooks.example.com/?q=1")]).is_err());
}

#[tokio::test]
async fn the_demo_instructions_work_against_the_demo() {
    let settings = load(&[("BIND_ADDR", "127.0.0.1:0")]).unwrap();
    let listener = TcpListener::bind(settings.server.bind_addr).await.unwrap();
    let bound = listener.local_addr().unwrap();
    let layer = settings.server.signature_layer(bound).unwrap();
    let server = Server::serve(listener, layer, default_config()).await;

    let demo = settings.demo_request(bound);
    assert_eq!(demo.url, server.url("/callbacks/crm"));
    let request = Request::post(&demo.url)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("x-twilio-signature", &demo.signature)
        .body(Full::new(Bytes::from(demo.body.clone())))
        .unwrap();
    let (status, body) = server.send(request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&body), ["1", "2", "3"]);

    let target = Target::parse(&demo.url).unwrap();
    let reports = checks::run(&target, &settings.server.auth_token, Transport::Hyper).await;
    assert!(reports.iter().all(checks::Report::passed));
}

#[test]
fn config_with_a_token() {
    let settings = load(&[
        ("TWILIO_AUTH_TOKEN", TOKEN),
        ("PUBLIC_BASE_URL", "https://abc.ngrok.app"),
        ("BIND_ADDR", "0.0.0.0:8080"),
        ("TWILIO_SMS_NUMBER", "+15005550006"),
        ("TWILIO_WHATSAPP_NUMBER", "+15005550007"),
        ("FRONTLINE_DEFAULT_WORKER", " frontdesk@example.com "),
    ])
    .unwrap();
    assert!(!settings.server.demo);
    assert_eq!(
        settings.default_worker.as_deref(),
        Some("frontdesk@example.com")
    );
    assert!(settings.conversations_api.is_none());
    assert!(settings.describe_api().contains("recorded"));
    assert_eq!(settings.customers, sample_customers());
    assert_eq!(settings.server.auth_token, TOKEN);
    assert_eq!(
        settings.server.url_mode,
        config::server::UrlMode::Fixed("https://abc.ngrok.app".to_owned())
    );
    assert!(settings.warnings.is_empty());
    assert_eq!(settings.sms_number.as_deref(), Some("+15005550006"));
    assert_eq!(
        settings.whatsapp_number.as_deref(),
        Some("whatsapp:+15005550007")
    );

    let settings = load(&[("TWILIO_AUTH_TOKEN", TOKEN)]).unwrap();
    assert_eq!(
        settings.server.url_mode,
        config::server::UrlMode::HostHeader
    );
    assert!(
        settings.warnings[0].contains("Host header"),
        "{:?}",
        settings.warnings
    );
    assert_eq!(settings.default_worker, None);
    assert!(
        settings.warnings[1].contains("FRONTLINE_DEFAULT_WORKER"),
        "{:?}",
        settings.warnings
    );
    let settings = load(&[("TWILIO_AUTH_TOKEN", TOKEN), ("TRUST_FORWARDED_HOPS", "2")]).unwrap();
    assert_eq!(
        settings.server.url_mode,
        config::server::UrlMode::XForwarded(2)
    );

    // Empty disables a channel; an already prefixed WhatsApp number is kept.
    let settings = load(&[
        ("TWILIO_AUTH_TOKEN", TOKEN),
        ("TWILIO_SMS_NUMBER", ""),
        ("TWILIO_WHATSAPP_NUMBER", "whatsapp:+15005550007"),
    ])
    .unwrap();
    assert_eq!(settings.sms_number, None);
    assert_eq!(
        settings.whatsapp_number.as_deref(),
        Some("whatsapp:+15005550007")
    );
}

#[test]
fn config_bad_values_name_the_variable() {
    let cases: &[(&[(&'static str, &str)], &str)] = &[
        (&[("BIND_ADDR", "localhost")], "BIND_ADDR"),
        (&[("BIND_ADDR", "127.0.0.1")], "BIND_ADDR"),
        (
            &[
                ("TWILIO_AUTH_TOKEN", TOKEN),
                ("PUBLIC_BASE_URL", "ftp://example.com"),
            ],
            "PUBLIC_BASE_URL",
        ),
        (
            &[
                ("TWILIO_AUTH_TOKEN", TOKEN),
                ("PUBLIC_BASE_URL", "https://u:p@example.com"),
            ],
            "PUBLIC_BASE_URL",
        ),
        (
            &[
                ("TWILIO_AUTH_TOKEN", TOKEN),
                ("PUBLIC_BASE_URL", "not a url"),
            ],
            "PUBLIC_BASE_URL",
        ),
        (
            &[("TWILIO_AUTH_TOKEN", TOKEN), ("TRUST_FORWARDED_HOPS", "0")],
            "TRUST_FORWARDED_HOPS",
        ),
        (
            &[
                ("TWILIO_AUTH_TOKEN", TOKEN),
                ("TRUST_FORWARDED_HOPS", "two"),
            ],
            "TRUST_FORWARDED_HOPS",
        ),
        (
            &[
                ("TWILIO_AUTH_TOKEN", TOKEN),
                ("TRUST_FORWARDED_HOPS", "1"),
                ("PUBLIC_BASE_URL", "https://a.example"),
            ],
            "TRUST_FORWARDED_HOPS",
        ),
        (&[("TWILIO_AUTH_TOKEN", "")], "TWILIO_AUTH_TOKEN"),
        (
            &[("FRONTLINE_DEFAULT_WORKER", " ")],
            "FRONTLINE_DEFAULT_WORKER",
        ),
        (
            &[("FRONTLINE_CUSTOMERS_FILE", "/nonexistent/customers.json")],
            "FRONTLINE_CUSTOMERS_FILE",
        ),
        // The API needs the account's own Auth Token, not the demo's.
        (&[("TWILIO_ACCOUNT_SID", ACCOUNT_SID)], "TWILIO_ACCOUNT_SID"),
        (
            &[
                ("TWILIO_AUTH_TOKEN", TOKEN),
                ("TWILIO_ACCOUNT_SID", "AC123"),
            ],
            "TWILIO_ACCOUNT_SID",
        ),
        (
            &[
                ("TWILIO_AUTH_TOKEN", TOKEN),
                ("TWILIO_ACCOUNT_SID", "ACzz345678901234567890123456789012"),
            ],
            "TWILIO_ACCOUNT_SID",
        ),
        (
            &[
                ("TWILIO_AUTH_TOKEN", TOKEN),
                ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
                ("TWILIO_API_BASE_URL", "ftp://api.example.com"),
            ],
            "TWILIO_API_BASE_URL",
        ),
        (
            &[
                ("TWILIO_AUTH_TOKEN", TOKEN),
                ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
                ("TWILIO_API_BASE_URL", "https://u:p@api.example.com"),
            ],
            "TWILIO_API_BASE_URL",
        ),
        (
            &[
                ("TWILIO_AUTH_TOKEN", TOKEN),
                ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
                ("TWILIO_API_BASE_URL", "not a url"),
            ],
            "TWILIO_API_BASE_URL",
        ),
        (&[("TWILIO_SMS_NUMBER", "555-0100")], "TWILIO_SMS_NUMBER"),
        (
            &[("TWILIO_WHATSAPP_NUMBER", "whatsapp:")],
            "TWILIO_WHATSAPP_NUMBER",
        ),
        (&[("WEBHOOK_AUTH", "bearer")], "WEBHOOK_AUTH"),
        (&[("WEBHOOK_USERNAME", "twilio")], "WEBHOOK_AUTH"),
        (&[("WEBHOOK_PASSWORD", "pw")], "WEBHOOK_AUTH"),
        (&[("WEBHOOK_AUTH", "basic")], "WEBHOOK_USERNAME"),
        (
            &[("WEBHOOK_AUTH", "digest"), ("WEBHOOK_PASSWORD", "pw")],
            "WEBHOOK_USERNAME",
        ),
        (
            &[("WEBHOOK_AUTH", "digest"), ("WEBHOOK_USERNAME", "twilio")],
            "WEBHOOK_PASSWORD",
        ),
        (
            &[
                ("WEBHOOK_AUTH", "digest"),
                ("WEBHOOK_USERNAME", "twilio"),
                ("WEBHOOK_PASSWORD", ""),
            ],
            "WEBHOOK_PASSWORD",
        ),
        (
            &[
                ("WEBHOOK_AUTH", "basic"),
                ("WEBHOOK_USERNAME", "a:b"),
                ("WEBHOOK_PASSWORD", "pw"),
            ],
            "WEBHOOK_USERNAME",
        ),
        (
            &[
                ("WEBHOOK_AUTH", "digest"),
                ("WEBHOOK_USERNAME", "a\"b"),
                ("WEBHOOK_PASSWORD", "pw"),
            ],
            "WEBHOOK_USERNAME",
        ),
        (
            &[("TWILIO_SIGNATURE_REPORT_ONLY", "yes")],
            "TWILIO_SIGNATURE_REPORT_ONLY",
        ),
    ];
    for &(pairs, variable) in cases {
        let err = load(pairs).expect_err(variable);
        assert_eq!(err.variable, variable, "{pairs:?}");
        let line = err.to_string();
        assert!(line.starts_with(variable) && !line.contains('\n'), "{line}");
    }
}

#[tokio::test]
async fn config_trusting_forwarded_headers() {
    let settings = load(&[("TWILIO_AUTH_TOKEN", TOKEN), ("TRUST_FORWARDED_HOPS", "1")]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bound = listener.local_addr().unwrap();
    let server = Server::serve(
        listener,
        settings.server.signature_layer(bound).unwrap(),
        default_config(),
    )
    .await;
    let params = [
        ("Location", "GetCustomersList"),
        ("Worker", "w"),
        ("PageSize", "2"),
    ];
    let public = "https://frontline.example.com/callbacks/crm";
    let request = |forwarded: bool| {
        let mut request = Request::post(server.url("/callbacks/crm"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("x-twilio-signature", sign(TOKEN, public, params));
        if forwarded {
            request = request
                .header("x-forwarded-proto", "https")
                .header("x-forwarded-host", "frontline.example.com");
        }
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        request.body(Full::new(Bytes::from(body))).unwrap()
    };
    let (status, body) = server.send(request(true)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&body), ["1", "2"]);
    assert_eq!(server.send(request(false)).await.0, StatusCode::FORBIDDEN);
}

/// Runs `curl` with `args` and returns the HTTP status it got.
async fn curl_status(args: &[&str]) -> String {
    let output = tokio::process::Command::new("curl")
        .args(["--silent", "--max-time", "20", "--output", "/dev/null"])
        .args(["--write-out", "%{http_code}"])
        .args(args)
        .output()
        .await
        .expect("curl must be installed to run this test (apt-get install -y curl)");
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn demo_with_http_authentication() {
    for scheme in ["basic", "digest"] {
        let settings = load(&[
            ("BIND_ADDR", "127.0.0.1:0"),
            ("WEBHOOK_AUTH", scheme),
            ("WEBHOOK_USERNAME", "twilio"),
            ("WEBHOOK_PASSWORD", "it's secret"),
        ])
        .unwrap();
        assert!(settings.server.demo);
        let listener = TcpListener::bind(settings.server.bind_addr).await.unwrap();
        let bound = listener.local_addr().unwrap();
        let layer = settings.server.signature_layer(bound).unwrap();
        let _server = Server::serve(listener, layer, default_config()).await;

        let demo = settings.demo_request(bound);
        let text = settings.demo_instructions(bound);
        let login = format!("--{scheme} -u 'twilio:it'\\''s secret' ");
        assert!(
            text.contains(&format!(
                "curl -i {login}-X POST '{}' -H 'X-Twilio-Signature: {}' --data '{}'",
                demo.url, demo.signature, demo.body
            )),
            "{text}"
        );
        // What the printed line sends, and the same without credentials.
        let signature = format!("X-Twilio-Signature: {}", demo.signature);
        let signed = [
            "-X", "POST", &demo.url, "-H", &signature, "--data", &demo.body,
        ];
        let flag = format!("--{scheme}");
        let with_login: Vec<&str> = [&flag[..], "-u", "twilio:it's secret"]
            .into_iter()
            .chain(signed)
            .collect();
        assert_eq!(curl_status(&with_login).await, "200", "{scheme}");
        assert_eq!(curl_status(&signed).await, "401", "{scheme}");

        let checked_url = format!("http://twilio:it%27s%20secret@{}/callbacks/crm", bound);
        if scheme == "basic" {
            assert!(
                text.contains(&format!("check_endpoint -- {checked_url}")),
                "{text}"
            );
            let target = Target::parse(&checked_url).unwrap();
            let reports = checks::run(&target, &settings.server.auth_token, Transport::Hyper).await;
            assert!(reports.iter().all(checks::Report::passed));
        } else {
            assert!(
                text.contains("check_endpoint sends Basic credentials only"),
                "{text}"
            );
        }
    }
}

#[tokio::test]
async fn report_only_serves_bad_signatures() {
    let settings = load(&[
        ("BIND_ADDR", "127.0.0.1:0"),
        ("TWILIO_SIGNATURE_REPORT_ONLY", "true"),
    ])
    .unwrap();
    assert!(settings.server.report_only);
    assert!(settings
        .warnings
        .iter()
        .any(|w| w.contains("TWILIO_SIGNATURE_REPORT_ONLY")));
    let listener = TcpListener::bind(settings.server.bind_addr).await.unwrap();
    let bound = listener.local_addr().unwrap();
    let server = Server::serve(
        listener,
        settings.server.signature_layer(bound).unwrap(),
        default_config(),
    )
    .await;
    let demo = settings.demo_request(bound);
    let request = Request::post(&demo.url)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("x-twilio-signature", "bm90IGEgcmVhbCBzaWduYXR1cmU=")
        .body(Full::new(Bytes::from(demo.body.clone())))
        .unwrap();
    let (status, body) = server.send(request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&body), ["1", "2", "3"]);
    // Off unless asked for.
    assert!(!load(&[]).unwrap().server.report_only);
    assert!(
        !load(&[("TWILIO_SIGNATURE_REPORT_ONLY", "false")])
            .unwrap()
            .server
            .report_only
    );
}

/// A file in the system's temporary directory, removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str, contents: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("frontline-test-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const ONE_CUSTOMER: &str = r#"[{
    "customer_id": "crm-42",
    "display_name": "Zoe Quinn",
    "channels": [{ "type": "sms", "value": "+12025550199" }],
    "worker": "dana@example.com"
}]"#;

#[tokio::test]
async fn config_reads_the_customer_book_from_a_file() {
    let file = TempFile::new("book.json", ONE_CUSTOMER);
    let settings = load(&[("FRONTLINE_CUSTOMERS_FILE", file.path())]).unwrap();
    assert_eq!(settings.customers_source, file.path());
    assert_eq!(settings.customers.len(), 1);
    let customer = &settings.customers[0];
    assert_eq!(customer.customer_id, "crm-42");
    assert_eq!(customer.worker, "dana@example.com");
    assert!(customer.links.is_empty() && customer.avatar.is_none() && customer.details.is_none());

    // The service answers from that book; optional fields are left out, not null.
    let server = Server::start_with(AppConfig {
        customers: settings.customers.clone(),
        ..default_config()
    })
    .await;
    let (status, body) = server
        .post(
            "/callbacks/crm",
            &[
                ("Location", "GetCustomerDetailsByCustomerId"),
                ("CustomerId", "crm-42"),
                ("Worker", "dana@example.com"),
            ],
            Sig::Valid,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["objects"]["customer"],
        json!({
            "customer_id": "crm-42",
            "display_name": "Zoe Quinn",
            "channels": [{ "type": "sms", "value": "+12025550199" }],
            "links": [],
        })
    );
    assert_eq!(ids(&list_page(&server, "10", None, None).await), ["crm-42"]);
    let (_, body) = server
        .post(
            "/callbacks/routing",
            &[
                ("ConversationSid", "CH1"),
                ("MessagingBinding.Address", "+12025550199"),
            ],
            Sig::Valid,
        )
        .await;
    assert_eq!(body["worker"], "dana@example.com");
    // Ana Souza of the sample book is not in this one.
    let (status, _) = server
        .post(
            "/callbacks/templates",
            &[
                ("Location", "GetTemplatesByCustomerId"),
                ("CustomerId", "1"),
                ("Worker", "w"),
            ],
            Sig::Valid,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[test]
fn config_refuses_a_malformed_customer_book_in_one_line() {
    let cases = [
        ("not-json", "[{", "EOF"),
        ("object", r#"{"customers": []}"#, "expected a sequence"),
        ("empty", "[]", "no customer"),
        (
            "missing-worker",
            r#"[{"customer_id":"1","display_name":"A","channels":[]}]"#,
            "worker",
        ),
        (
            "unknown-field",
            r#"[{"customer_id":"1","display_name":"A","channels":[],"worker":"w","wroker":"x"}]"#,
            "wroker",
        ),
        (
            "duplicate-id",
            r#"[{"customer_id":"1","display_name":"A","channels":[],"worker":"w"},
                {"customer_id":"1","display_name":"B","channels":[],"worker":"w"}]"#,
            "used twice",
        ),
        (
            "blank-name",
            r#"[{"customer_id":"1","display_name":" ","channels":[],"worker":"w"}]"#,
            "display_name is empty",
        ),
        (
            "channel-type",
            r#"[{"customer_id":"1","display_name":"A","channels":[{"type":"fax","value":"1"}],"worker":"w"}]"#,
            "fax",
        ),
    ];
    for (name, json, word) in cases {
        let file = TempFile::new(&format!("{name}.json"), json);
        let err = load(&[("FRONTLINE_CUSTOMERS_FILE", file.path())]).expect_err(name);
        assert_eq!(err.variable, "FRONTLINE_CUSTOMERS_FILE", "{name}");
        let line = err.to_string();
        assert!(
            line.starts_with("FRONTLINE_CUSTOMERS_FILE: ") && !line.contains('\n'),
            "{name}: {line:?}"
        );
        assert!(line.contains(file.path()), "{name}: {line}");
        assert!(
            line.contains(word),
            "{name}: {line} should mention {word:?}"
        );
    }
}

#[test]
fn config_with_an_account_sid_makes_the_api_calls() {
    let settings = load(&[
        ("TWILIO_AUTH_TOKEN", TOKEN),
        ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
    ])
    .unwrap();
    let api = settings.conversations_api.as_ref().unwrap();
    assert_eq!(api.base_url(), "https://conversations.twilio.com/");
    assert_eq!(api.account_sid(), ACCOUNT_SID);
    let described = settings.describe_api();
    assert!(
        described.contains("https://conversations.twilio.com/") && described.contains(ACCOUNT_SID),
        "{described}"
    );
    assert!(
        !format!("{settings:?}").contains(TOKEN),
        "the Auth Token is printed"
    );

    let settings = load(&[
        ("TWILIO_AUTH_TOKEN", TOKEN),
        ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
        ("TWILIO_API_BASE_URL", "http://127.0.0.1:9/twilio"),
    ])
    .unwrap();
    assert_eq!(
        settings.conversations_api.unwrap().base_url(),
        "http://127.0.0.1:9/twilio"
    );

    // Without the SID, the base URL is unused, and said so.
    let settings = load(&[
        ("TWILIO_AUTH_TOKEN", TOKEN),
        ("TWILIO_API_BASE_URL", "http://127.0.0.1:9"),
    ])
    .unwrap();
    assert!(settings.conversations_api.is_none());
    assert!(settings
        .warnings
        .iter()
        .any(|w| w.contains("TWILIO_API_BASE_URL is ignored")));
}

/// The example binary that `cargo test` builds beside the test binaries.
fn example_binary(name: &str) -> Option<std::path::PathBuf> {
    let deps = std::env::current_exe().ok()?.parent()?.to_path_buf();
    let path = deps
        .parent()?
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    path.exists().then_some(path)
}

#[test]
fn the_binary_stops_on_a_malformed_customer_book() {
    let binary = example_binary("frontline").expect(
        "the frontline example is not built: `cargo test` builds it with the tests \
         (`cargo test --test frontline` alone does not)",
    );
    let file = TempFile::new("startup.json", r#"[{"customer_id": 1}]"#);
    let output = std::process::Command::new(binary)
        .env_clear()
        .env("FRONTLINE_CUSTOMERS_FILE", file.path())
        .env("BIND_ADDR", "127.0.0.1:0")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8(output.stderr.clone()).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(
        stderr.starts_with(&format!(
            "frontline: FRONTLINE_CUSTOMERS_FILE: {}: ",
            file.path()
        )),
        "{stderr:?}"
    );
    assert!(output.stdout.is_empty(), "it started: {output:?}");
}

#[test]
fn the_binary_logs_why_a_webhook_was_refused() {
    use std::io::{BufRead, BufReader, Read, Write};

    let binary = example_binary("frontline").expect(
        "the frontline example is not built: `cargo test` builds it with the tests \
         (`cargo test --test frontline` alone does not)",
    );
    let mut child = std::process::Command::new(binary)
        .env_clear()
        .env("BIND_ADDR", "127.0.0.1:0")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The demo prints where it listens on its first line.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let bound = first
        .split("listening on http://")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_owned();
    let mut stream = std::net::TcpStream::connect(&bound).unwrap();
    let body = "Location=GetCustomersList&Worker=w%40example.com&PageSize=3";
    write!(
        stream,
        "POST /callbacks/crm HTTP/1.1\r\nHost: {bound}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n\
         X-Twilio-Signature: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    child.kill().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    child.wait().unwrap();
    let line = stderr
        .lines()
        .find(|l| l.contains("Twilio webhook rejected"))
        .unwrap_or_else(|| panic!("no rejection logged: {stderr}"));
    assert!(line.contains("kind=Mismatch"), "{line}");
    assert!(
        line.contains(&format!("http://{bound}/callbacks/crm")),
        "{line}"
    );
    // Not a terminal: no colour codes.
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
}

// ----- the Conversations API, against a stand-in on a loopback port -----

/// One request the stand-in received.
#[derive(Debug, Clone)]
struct ApiRequest {
    method: Method,
    path: String,
    authorization: Option<String>,
    content_type: Option<String>,
    form: Vec<(String, String)>,
}

/// A stand-in for the Conversations API: it records each request, refuses wrong
/// credentials with 401 as Twilio does, and otherwise answers the next scripted status
/// (201 once the script is used up). With a gate, it holds each answer until the test
/// opens it.
struct StandIn {
    base_url: String,
    received: tokio::sync::mpsc::UnboundedReceiver<ApiRequest>,
    gate: Arc<tokio::sync::Semaphore>,
}

impl StandIn {
    async fn start(script: &[u16], gated: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, received) = tokio::sync::mpsc::unbounded_channel();
        let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
        let gate = Arc::new(tokio::sync::Semaphore::new(if gated {
            0
        } else {
            tokio::sync::Semaphore::MAX_PERMITS
        }));
        let expected_auth = basic(ACCOUNT_SID, TOKEN);
        let handler = {
            let gate = Arc::clone(&gate);
            move |request: axum::extract::Request| async move {
                let (parts, body) = request.into_parts();
                let header = |name: header::HeaderName| {
                    parts
                        .headers
                        .get(name)
                        .map(|v| v.to_str().unwrap().to_owned())
                };
                let bytes = axum::body::to_bytes(body, 64 * 1024).await.unwrap();
                let received = ApiRequest {
                    method: parts.method.clone(),
                    path: parts.uri.path().to_owned(),
                    authorization: header(header::AUTHORIZATION),
                    content_type: header(header::CONTENT_TYPE),
                    form: form_urlencoded::parse(&bytes).into_owned().collect(),
                };
                let authorized = received.authorization.as_deref() == Some(&*expected_auth);
                tx.send(received).unwrap();
                gate.acquire().await.unwrap().forget();
                if !authorized {
                    return (StatusCode::UNAUTHORIZED, r#"{"code":20003}"#);
                }
                let status = script.lock().unwrap().pop_front().unwrap_or(201);
                (StatusCode::from_u16(status).unwrap(), r#"{"sid":"MB0"}"#)
            }
        };
        let router = axum::Router::new().fallback(handler);
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self {
            base_url: format!("http://{addr}"),
            received,
            gate,
        }
    }

    /// The next request, waiting for it a few seconds at most.
    async fn next(&mut self) -> ApiRequest {
        tokio::time::timeout(Duration::from_secs(5), self.received.recv())
            .await
            .expect("no API call arrived")
            .unwrap()
    }

    /// Asserts no further request arrives within a short while.
    async fn assert_quiet(&mut self) {
        let more = tokio::time::timeout(Duration::from_millis(300), self.received.recv()).await;
        assert!(more.is_err(), "one more API call: {more:?}");
    }

    fn open(&self) {
        self.gate.add_permits(100);
    }

    /// The app, with its API calls going to this stand-in as `account_sid`.
    async fn app(&self, account_sid: &str, attempts: u32) -> Server {
        let base = reqwest::Url::parse(&self.base_url).unwrap();
        let api = app::ConversationsApi::new(base, account_sid, TOKEN)
            .unwrap()
            .with_retries(attempts, Duration::from_millis(20));
        Server::start_with(AppConfig {
            conversations_api: Some(api),
            default_worker: Some("frontdesk@example.com".to_owned()),
            ..default_config()
        })
        .await
    }
}

fn form_pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|&(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[tokio::test]
async fn routing_adds_the_worker_through_the_api_after_answering() {
    let mut api = StandIn::start(&[], true).await;
    let server = api.app(ACCOUNT_SID, 3).await;
    let params = [
        ("ConversationSid", "CH11111111111111111111111111111111"),
        ("MessagingBinding.Address", "+12025550133"),
    ];
    // The stand-in holds its answer: the callback is answered all the same.
    let (status, body) = tokio::time::timeout(
        Duration::from_secs(5),
        server.post("/callbacks/routing", &params, Sig::Valid),
    )
    .await
    .expect("the callback waited for the API call");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["worker"], "bob@example.com");

    let call = api.next().await;
    assert_eq!(call.method, Method::POST);
    assert_eq!(
        call.path,
        "/v1/Conversations/CH11111111111111111111111111111111/Participants"
    );
    assert_eq!(call.authorization, Some(basic(ACCOUNT_SID, TOKEN)));
    assert_eq!(
        call.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(call.form, form_pairs(&[("Identity", "bob@example.com")]));
    assert_eq!(
        server.state.api_calls(),
        (0, 0),
        "counted before the answer"
    );
    api.open();
    assert!(
        server
            .state
            .api_calls_finished(Duration::from_secs(5))
            .await
    );
    assert_eq!(server.state.api_calls(), (1, 0));

    // A new customer goes to the default worker, through the API too.
    let (status, _) = server
        .post(
            "/callbacks/routing",
            &[
                ("ConversationSid", "CH2"),
                ("MessagingBinding.Address", "+19995550100"),
            ],
            Sig::Valid,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let call = api.next().await;
    assert_eq!(call.path, "/v1/Conversations/CH2/Participants");
    assert_eq!(
        call.form,
        form_pairs(&[("Identity", "frontdesk@example.com")])
    );
    assert!(
        server
            .state
            .api_calls_finished(Duration::from_secs(5))
            .await
    );
    assert_eq!(server.state.api_calls(), (2, 0));
    api.assert_quiet().await;
}

#[tokio::test]
async fn a_customer_participant_is_tied_to_its_customer_id_through_the_api() {
    let mut api = StandIn::start(&[], false).await;
    let server = api.app(ACCOUNT_SID, 3).await;
    let (status, _) = server
        .post(
            "/callbacks/conversations",
            &[
                ("EventType", "onParticipantAdded"),
                ("ConversationSid", "CH3"),
                ("ParticipantSid", "MB7"),
                ("MessagingBinding.Address", "whatsapp:+12025550133"),
            ],
            Sig::Valid,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let call = api.next().await;
    assert_eq!(call.method, Method::POST);
    assert_eq!(call.path, "/v1/Conversations/CH3/Participants/MB7");
    assert_eq!(call.authorization, Some(basic(ACCOUNT_SID, TOKEN)));
    assert_eq!(call.form.len(), 1, "{:?}", call.form);
    assert_eq!(call.form[0].0, "Attributes");
    let attributes: Value = serde_json::from_str(&call.form[0].1).unwrap();
    assert_eq!(
        attributes,
        json!({
            "customer_id": "3",
            "display_name": "Chloé Martin",
            "avatar": "https://example.com/avatars/chloe-martin.png",
        })
    );

    // A worker joining, or an address in no customer's channels, calls nothing.
    for params in [
        [
            ("EventType", "onParticipantAdded"),
            ("ConversationSid", "CH3"),
            ("ParticipantSid", "MB8"),
            ("Identity", "bob@example.com"),
        ],
        [
            ("EventType", "onParticipantAdded"),
            ("ConversationSid", "CH3"),
            ("ParticipantSid", "MB9"),
            ("MessagingBinding.Address", "+19995550100"),
        ],
    ] {
        let (status, _) = server
            .post("/callbacks/conversations", &params, Sig::Valid)
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    api.assert_quiet().await;
    assert_eq!(server.state.api_calls(), (1, 0));
}

#[tokio::test]
async fn an_api_failure_is_tried_again() {
    let logs = Logs::capture();
    let mut api = StandIn::start(&[500, 429], false).await;
    let server = api.app(ACCOUNT_SID, 3).await;
    let params = [
        ("ConversationSid", "CH4"),
        ("MessagingBinding.Address", "+12025550111"),
    ];
    let (status, _) = server.post("/callbacks/routing", &params, Sig::Valid).await;
    assert_eq!(status, StatusCode::OK);
    let calls = [api.next().await, api.next().await, api.next().await];
    for call in &calls {
        assert_eq!(call.path, "/v1/Conversations/CH4/Participants");
        assert_eq!(call.form, form_pairs(&[("Identity", "alice@example.com")]));
        assert_eq!(call.authorization, Some(basic(ACCOUNT_SID, TOKEN)));
    }
    assert!(
        server
            .state
            .api_calls_finished(Duration::from_secs(5))
            .await
    );
    assert_eq!(server.state.api_calls(), (1, 0));
    api.assert_quiet().await;
    let call = "add worker alice@example.com to CH4";
    assert_eq!(logs.lines_with(&[call, "trying again"]).len(), 2);
    let made = logs.lines_with(&[call, "Conversations API call made"]);
    assert_eq!(made.len(), 1);
    assert!(made[0].contains("attempt=3"), "{}", made[0]);
}

#[tokio::test]
async fn a_permanent_api_failure_is_logged_and_given_up() {
    let logs = Logs::capture();
    let mut api = StandIn::start(&[503, 503, 503, 503], false).await;
    let server = api.app(ACCOUNT_SID, 3).await;
    let (status, _) = server
        .post(
            "/callbacks/routing",
            &[
                ("ConversationSid", "CH5"),
                ("MessagingBinding.Address", "+12025550111"),
            ],
            Sig::Valid,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for _ in 0..3 {
        assert_eq!(api.next().await.path, "/v1/Conversations/CH5/Participants");
    }
    assert!(
        server
            .state
            .api_calls_finished(Duration::from_secs(5))
            .await
    );
    api.assert_quiet().await;
    assert_eq!(server.state.api_calls(), (0, 1));
    let given_up = logs.lines_with(&["CH5", "giving up"]);
    assert_eq!(given_up.len(), 1, "{given_up:?}");
    assert!(
        given_up[0].contains("ERROR") && given_up[0].contains("503"),
        "{}",
        given_up[0]
    );
    assert_eq!(logs.lines_with(&["CH5", "trying again"]).len(), 2);
}

#[tokio::test]
async fn a_refused_api_call_is_not_tried_again() {
    // Wrong credentials: Twilio's 401 will not change by asking again.
    let logs = Logs::capture();
    let mut api = StandIn::start(&[], false).await;
    let server = api.app("AC00000000000000000000000000000000", 3).await;
    let (status, _) = server
        .post(
            "/callbacks/routing",
            &[
                ("ConversationSid", "CH6"),
                ("MessagingBinding.Address", "+12025550111"),
            ],
            Sig::Valid,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let call = api.next().await;
    assert_eq!(
        call.authorization,
        Some(basic("AC00000000000000000000000000000000", TOKEN))
    );
    assert!(
        server
            .state
            .api_calls_finished(Duration::from_secs(5))
            .await
    );
    api.assert_quiet().await;
    assert_eq!(server.state.api_calls(), (0, 1));
    let given_up = logs.lines_with(&["CH6", "giving up"]);
    assert!(
        given_up.len() == 1 && given_up[0].contains("401") && given_up[0].contains("attempt=1"),
        "{given_up:?}"
    );
}

#[tokio::test]
async fn an_unreachable_api_is_tried_a_bounded_number_of_times() {
    let logs = Logs::capture();
    // A port nothing listens on: every attempt fails to connect.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = reqwest::Url::parse(&format!("http://{}", closed.local_addr().unwrap())).unwrap();
    drop(closed);
    let api = app::ConversationsApi::new(base, ACCOUNT_SID, TOKEN)
        .unwrap()
        .with_retries(3, Duration::from_millis(10));
    let server = Server::start_with(AppConfig {
        conversations_api: Some(api),
        ..default_config()
    })
    .await;
    let (status, _) = server
        .post(
            "/callbacks/routing",
            &[
                ("ConversationSid", "CH7"),
                ("MessagingBinding.Address", "+12025550111"),
            ],
            Sig::Valid,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        server
            .state
            .api_calls_finished(Duration::from_secs(10))
            .await
    );
    assert_eq!(server.state.api_calls(), (0, 1));
    assert_eq!(
        logs.lines_with(&["CH7", "trying again", "no answer"]).len(),
        2
    );
    let given_up = logs.lines_with(&["CH7", "giving up"]);
    assert!(
        given_up.len() == 1 && given_up[0].contains("attempt=3"),
        "{given_up:?}"
    );
}
