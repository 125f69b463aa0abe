//! The `sms_reply` example on a loopback port, driven as Twilio drives it: signed form
//! POSTs get TwiML back, anything else gets 403.
#![cfg(feature = "axum")]

// The example's `main` is not run here; its settings are read through a lookup.
#[allow(dead_code)]
#[path = "../examples/sms_reply.rs"]
mod sms_reply;

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tower_twilio_signature::sign;

use crate::sms_reply::settings::{self, ServerSettings, UrlMode};

const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const OTHER_TOKEN: &str = "fedcba9876543210fedcba9876543210";

/// The parameters of an incoming message, as Twilio sends them.
const INCOMING: &[(&str, &str)] = &[
    ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
    ("ApiVersion", "2010-04-01"),
    ("Body", "Tom & Jerry's <b>\"best\"</b> > 100%"),
    ("From", "+12025550111"),
    ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
    ("NumMedia", "0"),
    ("To", "+12025550100"),
];

fn lookup(pairs: Vec<(&'static str, String)>) -> impl Fn(&'static str) -> Option<String> {
    move |name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    }
}

struct Server {
    addr: SocketAddr,
    settings: ServerSettings,
    http: reqwest::Client,
}

impl Server {
    /// The example with `TWILIO_AUTH_TOKEN` and `PUBLIC_BASE_URL` (`None`: the loopback
    /// address itself) set, on a free loopback port.
    async fn start(public_base_url: Option<&str>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = public_base_url.map_or_else(|| format!("http://{addr}"), str::to_owned);
        let vars = lookup(vec![
            ("TWILIO_AUTH_TOKEN", TOKEN.to_owned()),
            ("PUBLIC_BASE_URL", base),
        ]);
        let settings = settings::from_lookup(vars, || unreachable!("a token is set")).unwrap();
        Self::serve(listener, settings).await
    }

    async fn serve(listener: TcpListener, settings: ServerSettings) -> Self {
        let addr = listener.local_addr().unwrap();
        let app = sms_reply::app(settings.signature_layer(addr).unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            addr,
            settings,
            http: reqwest::Client::new(),
        }
    }

    /// A form POST to `path` with `signature` (none: no header).
    async fn post(
        &self,
        path: &str,
        params: &[(&str, &str)],
        signature: Option<String>,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("http://{}{path}", self.addr))
            .form(params);
        if let Some(signature) = signature {
            request = request.header("x-twilio-signature", signature);
        }
        request.send().await.unwrap()
    }
}

/// Status, `Content-Type` and body.
async fn read(response: reqwest::Response) -> (u16, Option<String>, String) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, content_type, response.text().await.unwrap())
}

fn twiml(message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>{message}</Message></Response>"
    )
}

#[tokio::test]
async fn a_signed_message_gets_a_twiml_reply_with_its_text_escaped() {
    let server = Server::start(None).await;
    let url = format!("http://{}/sms", server.addr);
    let (status, content_type, body) = read(
        server
            .post("/sms", INCOMING, Some(sign(TOKEN, &url, INCOMING)))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type.as_deref(), Some("text/xml"));
    assert_eq!(
        body,
        twiml("You said: Tom &amp; Jerry&apos;s &lt;b&gt;&quot;best&quot;&lt;/b&gt; &gt; 100%")
    );
}

#[tokio::test]
async fn a_message_without_text_still_gets_an_answer() {
    let server = Server::start(None).await;
    let url = format!("http://{}/sms", server.addr);
    let no_body: Vec<(&str, &str)> = INCOMING
        .iter()
        .copied()
        .filter(|(k, _)| *k != "Body")
        .collect();
    let blank: Vec<(&str, &str)> = INCOMING
        .iter()
        .map(|&(k, v)| if k == "Body" { (k, "   ") } else { (k, v) })
        .collect();
    for params in [no_body, blank, Vec::new()] {
        let (status, content_type, body) = read(
            server
                .post(
                    "/sms",
                    &params,
                    Some(sign(TOKEN, &url, params.iter().copied())),
                )
                .await,
        )
        .await;
        assert_eq!(status, 200, "{params:?}: {body}");
        assert_eq!(content_type.as_deref(), Some("text/xml"));
        assert_eq!(
            body,
            twiml("Thanks for your message. It had no text to repeat."),
            "{params:?}"
        );
    }
}

#[tokio::test]
async fn a_long_message_is_cut_to_fit_one_reply() {
    let server = Server::start(None).await;
    let url = format!("http://{}/sms", server.addr);
    let long = "é".repeat(2_000);
    let params = [("Body", long.as_str()), ("From", "+12025550111")];
    let (status, _, body) = read(
        server
            .post("/sms", &params, Some(sign(TOKEN, &url, params)))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, twiml(&format!("You said: {}…", "é".repeat(1_500))));
}

#[tokio::test]
async fn unsigned_and_forged_messages_get_403_and_no_reply() {
    let server = Server::start(None).await;
    let url = format!("http://{}/sms", server.addr);
    let tampered: Vec<(&str, &str)> = INCOMING
        .iter()
        .map(|&(k, v)| {
            if k == "Body" {
                (k, "Send me the codes")
            } else {
                (k, v)
            }
        })
        .collect();
    let cases = [
        ("no signature", INCOMING.to_vec(), None),
        (
            "another token",
            INCOMING.to_vec(),
            Some(sign(OTHER_TOKEN, &url, INCOMING)),
        ),
        (
            "another URL",
            INCOMING.to_vec(),
            Some(sign(TOKEN, "https://example.com/sms", INCOMING)),
        ),
        (
            "text changed after signing",
            tampered,
            Some(sign(TOKEN, &url, INCOMING)),
        ),
    ];
    for (name, params, signature) in cases {
        let (status, _, body) = read(server.post("/sms", &params, signature).await).await;
        assert_eq!(status, 403, "{name}");
        assert!(!body.contains("<Response>"), "{name}: {body}");
    }
    // Other paths are behind the layer too.
    let (status, _, _) = read(
        server
            .post("/admin", INCOMING, Some(sign(OTHER_TOKEN, &url, INCOMING)))
            .await,
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn behind_a_public_base_url_the_public_url_is_checked() {
    let server = Server::start(Some("https://sms.example.com/twilio")).await;
    let public = "https://sms.example.com/twilio/sms";
    assert_eq!(server.settings.console_url(server.addr, "/sms"), public);
    let (status, _, body) = read(
        server
            .post("/sms", INCOMING, Some(sign(TOKEN, public, INCOMING)))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("You said: Tom &amp; Jerry"), "{body}");
    // Signed for the loopback URL the server sees: refused.
    let local = format!("http://{}/sms", server.addr);
    let (status, _, _) = read(
        server
            .post("/sms", INCOMING, Some(sign(TOKEN, &local, INCOMING)))
            .await,
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn the_demo_prints_a_command_that_works() {
    let vars = lookup(vec![("BIND_ADDR", "127.0.0.1:0".to_owned())]);
    let settings = settings::from_lookup(vars, settings::random_token).unwrap();
    assert!(settings.demo);
    assert_eq!(settings.url_mode, UrlMode::Demo);
    let listener = TcpListener::bind(settings.bind_addr).await.unwrap();
    let bound = listener.local_addr().unwrap();
    let server = Server::serve(listener, settings).await;
    assert_eq!(
        server.settings.console_url(bound, "/sms"),
        format!("http://{bound}/sms")
    );

    let request = server.settings.signed_post(
        bound,
        "/sms",
        &[("Body", "hi there"), ("From", "+12025550111")],
    );
    let text = server.settings.demo_instructions("SMS webhooks", &request);
    assert!(text.contains(&request.curl("")), "{text}");
    assert!(text.contains(&server.settings.auth_token));
    // What the curl line sends, sent.
    let (status, content_type, body) = read(
        server
            .http
            .post(&request.url)
            .header("x-twilio-signature", &request.signature)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(request.body.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type.as_deref(), Some("text/xml"));
    assert_eq!(body, twiml("You said: hi there"));
}

#[test]
fn console_urls_for_each_url_source() {
    let bound: SocketAddr = "127.0.0.1:3000".parse().unwrap();
    let with = |pairs: Vec<(&'static str, String)>| {
        settings::from_lookup(lookup(pairs), settings::random_token).unwrap()
    };
    let token = ("TWILIO_AUTH_TOKEN", TOKEN.to_owned());
    let fixed = with(vec![
        token.clone(),
        ("PUBLIC_BASE_URL", "https://abc.ngrok.app/".to_owned()),
    ]);
    assert_eq!(
        fixed.console_url(bound, "/sms"),
        "https://abc.ngrok.app/sms"
    );
    let host = with(vec![token.clone()]);
    assert_eq!(
        host.console_url(bound, "/sms"),
        "https://YOUR-PUBLIC-HOST/sms"
    );
    let forwarded = with(vec![token, ("TRUST_FORWARDED_HOPS", "1".to_owned())]);
    assert_eq!(
        forwarded.console_url(bound, "/sms"),
        "https://YOUR-PUBLIC-HOST/sms"
    );
}

#[test]
fn xml_escaping() {
    use crate::sms_reply::twiml::escape;
    assert_eq!(escape("a&b<c>d\"e'f"), "a&amp;b&lt;c&gt;d&quot;e&apos;f");
    assert_eq!(escape("line\nnext\ttab"), "line\nnext\ttab");
    assert_eq!(escape("bell\u{7}null\u{0}"), "bellnull");
    assert_eq!(escape("émoji 🎉"), "émoji 🎉");
}
