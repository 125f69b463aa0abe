//! The `voice_stream` example on a loopback port, driven as Twilio drives it: the voice
//! webhook answers TwiML that points at the stream, and a real WebSocket client opens the
//! stream with a handshake signed for the `ws://`/`wss://` URL.
#![cfg(feature = "axum")]

// The example's `main` is not run here; its settings are read through a lookup.
mod common;
#[allow(dead_code)]
#[path = "../examples/voice_stream.rs"]
mod voice_stream;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::SinkExt;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tower_twilio_signature::sign;

use crate::common::Logs;
use crate::voice_stream::settings;
use crate::voice_stream::{stream_url, AppState, StreamEvent};

/// A WebSocket client connection, and the server's answer to its handshake.
type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type Handshake = tungstenite::handshake::client::Response;

const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const OTHER_TOKEN: &str = "fedcba9876543210fedcba9876543210";
const CALL_SID: &str = "CA0123456789abcdef0123456789abcdef";
const STREAM_SID: &str = "MZ0123456789abcdef0123456789abcdef";

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
    events: broadcast::Receiver<StreamEvent>,
}

impl Server {
    /// The example with `TWILIO_AUTH_TOKEN` and `PUBLIC_BASE_URL` (`None`: the loopback
    /// address itself, as in demo mode) set, on a free loopback port.
    async fn start(public_base_url: Option<&str>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = public_base_url.map_or_else(|| format!("http://{addr}"), str::to_owned);
        let vars = lookup(vec![
            ("TWILIO_AUTH_TOKEN", TOKEN.to_owned()),
            ("PUBLIC_BASE_URL", base),
        ]);
        let settings = settings::from_lookup(vars, || unreachable!("a token is set")).unwrap();
        let state = AppState::new();
        let events = state.subscribe();
        let app = voice_stream::app(settings.signature_layer(addr).unwrap(), state);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, events }
    }

    /// Opens `/stream{query}` with the handshake signed as `signature` says.
    async fn connect(
        &self,
        query: &str,
        signature: Option<String>,
    ) -> Result<(Client, Handshake), tungstenite::Error> {
        let mut request = format!("ws://{}/stream{query}", self.addr)
            .into_client_request()
            .unwrap();
        if let Some(signature) = signature {
            request
                .headers_mut()
                .insert("x-twilio-signature", signature.parse().unwrap());
        }
        tokio_tungstenite::connect_async(request).await
    }

    /// The next stream message the app saw.
    async fn next_event(&mut self) -> StreamEvent {
        tokio::time::timeout(Duration::from_secs(5), self.events.recv())
            .await
            .expect("the app saw no message")
            .unwrap()
    }

    /// Asserts the app saw no (further) message.
    fn assert_no_event(&mut self) {
        let next = self.events.try_recv();
        assert!(
            matches!(next, Err(broadcast::error::TryRecvError::Empty)),
            "{next:?}"
        );
    }

    /// A signed `POST /voice`, signed for `public` (the URL Twilio called).
    async fn voice(&self, public: &str, signature_token: &str) -> reqwest::Response {
        let params = [
            ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
            ("CallSid", CALL_SID),
            ("CallStatus", "ringing"),
            ("From", "+12025550111"),
            ("To", "+12025550100"),
        ];
        reqwest::Client::new()
            .post(format!("http://{}/voice", self.addr))
            .header("x-twilio-signature", sign(signature_token, public, params))
            .form(&params)
            .send()
            .await
            .unwrap()
    }
}

/// The messages Twilio sends on a stream, in order: `connected`, `start`, two `media`,
/// `stop`.
fn twilio_messages() -> Vec<String> {
    let media = |n: u32| {
        serde_json::json!({
            "event": "media",
            "sequenceNumber": (n + 2).to_string(),
            "media": { "track": "inbound", "chunk": n.to_string(), "timestamp": "5", "payload": "fn9+fn5+fn5+" },
            "streamSid": STREAM_SID,
        })
    };
    [
        serde_json::json!({ "event": "connected", "protocol": "Call", "version": "1.0.0" }),
        serde_json::json!({
            "event": "start",
            "sequenceNumber": "1",
            "start": {
                "accountSid": "AC0123456789abcdef0123456789abcdef",
                "streamSid": STREAM_SID,
                "callSid": CALL_SID,
                "tracks": ["inbound"],
                "mediaFormat": { "encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1 },
                "customParameters": { "caller": "+12025550111" },
            },
            "streamSid": STREAM_SID,
        }),
        media(1),
        media(2),
        serde_json::json!({
            "event": "stop",
            "sequenceNumber": "5",
            "stop": { "accountSid": "AC0123456789abcdef0123456789abcdef", "callSid": CALL_SID },
            "streamSid": STREAM_SID,
        }),
    ]
    .iter()
    .map(ToString::to_string)
    .collect()
}

/// Sends Twilio's messages on `ws` and checks the app saw each, in order.
async fn stream_a_call<S>(server: &mut Server, ws: &mut S)
where
    S: futures_util::Sink<Message, Error = tungstenite::Error> + Unpin,
{
    for text in twilio_messages() {
        ws.send(Message::text(text)).await.unwrap();
    }
    let connected = server.next_event().await;
    assert_eq!(connected.event, "connected");
    assert_eq!(connected.stream_sid, None);
    let start = server.next_event().await;
    assert_eq!(
        start,
        StreamEvent {
            event: "start".to_owned(),
            stream_sid: Some(STREAM_SID.to_owned()),
            call_sid: Some(CALL_SID.to_owned()),
            custom_parameters: BTreeMap::from([("caller".to_owned(), "+12025550111".to_owned())]),
        }
    );
    for expected in ["media", "media", "stop"] {
        let event = server.next_event().await;
        assert_eq!(event.event, expected);
        assert_eq!(event.stream_sid.as_deref(), Some(STREAM_SID));
    }
}

#[tokio::test]
async fn a_signed_handshake_is_upgraded_and_the_stream_is_read() {
    let logs = Logs::capture();
    let mut server = Server::start(None).await;
    let signed = format!("ws://{}/stream", server.addr);
    let no_params: [(&str, &str); 0] = [];
    let (mut ws, response) = server
        .connect("", Some(sign(TOKEN, &signed, no_params)))
        .await
        .expect("the signed handshake was refused");
    assert_eq!(response.status(), 101);
    stream_a_call(&mut server, &mut ws).await;
    assert_eq!(
        logs.lines_with(&["media stream handshake verified", &signed])
            .len(),
        1
    );
    assert_eq!(logs.lines_with(&["stream connected", "Call"]).len(), 1);
    assert_eq!(
        logs.lines_with(&["stream started", STREAM_SID, CALL_SID, "inbound"])
            .len(),
        1
    );
    assert_eq!(
        logs.lines_with(&["stream stopped", "media_messages=2"])
            .len(),
        1
    );

    // A frame that is not a Media Streams message is skipped; the stream goes on.
    ws.send(Message::text("not json")).await.unwrap();
    ws.send(Message::text(r#"{"event":"mark","streamSid":"MZ1"}"#))
        .await
        .unwrap();
    assert_eq!(server.next_event().await.event, "mark");
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn a_handshake_with_a_query_is_signed_with_its_pairs_as_parameters() {
    let mut server = Server::start(Some("https://voice.example.com")).await;
    let query = "?caller=%2B12025550111&lang=en";
    let pairs = [("caller", "+12025550111"), ("lang", "en")];
    // Twilio signs the wss URL without the query, its pairs appended as parameters.
    let signature = sign(TOKEN, "wss://voice.example.com/stream", pairs);
    let (mut ws, response) = server.connect(query, Some(signature)).await.unwrap();
    assert_eq!(response.status(), 101);
    stream_a_call(&mut server, &mut ws).await;
    ws.close(None).await.unwrap();

    // The URL with its query kept is accepted too.
    let no_params: [(&str, &str); 0] = [];
    let kept = sign(
        TOKEN,
        &format!("wss://voice.example.com/stream{query}"),
        no_params,
    );
    let (mut ws, response) = server.connect(query, Some(kept)).await.unwrap();
    assert_eq!(response.status(), 101);
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn a_forged_handshake_gets_403_and_no_upgrade() {
    let mut server = Server::start(Some("https://voice.example.com")).await;
    let pairs = [("caller", "+12025550111")];
    let query = "?caller=%2B12025550111";
    let cases = [
        ("no signature", None),
        (
            "another token",
            Some(sign(OTHER_TOKEN, "wss://voice.example.com/stream", pairs)),
        ),
        (
            "https instead of wss",
            Some(sign(
                TOKEN,
                &format!("https://voice.example.com/stream{query}"),
                [("a", "b"); 0],
            )),
        ),
        (
            "the query's pairs left out",
            Some(sign(
                TOKEN,
                "wss://voice.example.com/stream",
                [("a", "b"); 0],
            )),
        ),
        (
            "another host",
            Some(sign(TOKEN, "wss://evil.example.com/stream", pairs)),
        ),
    ];
    for (name, signature) in cases {
        match server.connect(query, signature).await {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 403, "{name}");
                assert!(
                    response.headers().get("upgrade").is_none(),
                    "{name}: {response:?}"
                );
            }
            Ok((_, response)) => panic!("{name}: upgraded ({})", response.status()),
            Err(other) => panic!("{name}: {other}"),
        }
    }
    server.assert_no_event();
}

#[tokio::test]
async fn the_voice_webhook_connects_the_call_to_the_stream() {
    // Demo-like: the server's own address. The TwiML names the ws:// URL beside /voice.
    let mut server = Server::start(None).await;
    let voice = format!("http://{}/voice", server.addr);
    let response = server.voice(&voice, TOKEN).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/xml");
    let body = response.text().await.unwrap();
    let stream = format!("ws://{}/stream", server.addr);
    assert_eq!(
        body,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Connect><Stream url=\"{stream}\"/></Connect></Response>"
        )
    );

    // Twilio then opens that URL, signing it: the two work together.
    let url = body
        .split("url=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    assert_eq!(url, stream);
    let no_params: [(&str, &str); 0] = [];
    let (mut ws, _) = server
        .connect("", Some(sign(TOKEN, url, no_params)))
        .await
        .unwrap();
    stream_a_call(&mut server, &mut ws).await;
    ws.close(None).await.unwrap();

    // Behind a public HTTPS URL, the stream is wss:// on the same host and prefix.
    let server = Server::start(Some("https://voice.example.com/twilio")).await;
    let response = server
        .voice("https://voice.example.com/twilio/voice", TOKEN)
        .await;
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(
        body.contains("<Stream url=\"wss://voice.example.com/twilio/stream\"/>"),
        "{body}"
    );

    // A forged voice webhook gets 403 and no TwiML.
    let response = server
        .voice("https://voice.example.com/twilio/voice", OTHER_TOKEN)
        .await;
    assert_eq!(response.status(), 403);
    assert!(response.text().await.unwrap().is_empty());
}

#[test]
fn stream_urls() {
    let cases = [
        (
            "https://voice.example.com/voice",
            Some("wss://voice.example.com/stream"),
        ),
        (
            "https://voice.example.com:443/voice",
            Some("wss://voice.example.com:443/stream"),
        ),
        (
            "http://127.0.0.1:3000/voice?x=1",
            Some("ws://127.0.0.1:3000/stream"),
        ),
        (
            "https://h.example.com/a/b/voice",
            Some("wss://h.example.com/a/b/stream"),
        ),
        ("https://h.example.com/other", None),
        ("ftp://h.example.com/voice", None),
    ];
    for (voice, stream) in cases {
        assert_eq!(stream_url(voice).as_deref(), stream, "{voice}");
    }
}
