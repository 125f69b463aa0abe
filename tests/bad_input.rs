//! Hostile and malformed requests: each gets its expected status and reason, and none
//! ever reaches the inner service.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use tower::{service_fn, Layer, ServiceExt};
use tower_twilio_signature::{
    sign, sign_body, sign_url, sign_with, Algorithm, SignatureError, SignatureErrorKind as K,
    TwilioSignatureLayer, UrlSource, VerifiedBody, Verifier,
};

const TOKEN: &str = "hostile-token";
const BASE: &str = "https://hooks.example.com";
const LIMIT: usize = 64 * 1024;

#[derive(Clone, Copy, Debug)]
enum Mode {
    Fixed,
    Host,
    XForwarded,
    Forwarded,
    Basic,
    Shared,
    Digest,
    Accounts,
}

/// The per-account lookup of [`Mode::Accounts`].
fn account_token(sid: &str) -> Option<String> {
    match sid {
        "ACgood" => Some("account-token".into()),
        "ACpadded" => Some("account-token\n".into()),
        _ => None,
    }
}

fn layer(mode: Mode) -> TwilioSignatureLayer {
    let verifier = Verifier::new(TOKEN).unwrap();
    let verifier = match mode {
        Mode::Shared => verifier.with_shared_key("KS1", "shared-secret").unwrap(),
        Mode::Accounts => verifier.with_account_tokens(account_token),
        _ => verifier,
    };
    let base = TwilioSignatureLayer::from_verifier(verifier).body_limit(LIMIT);
    match mode {
        Mode::Fixed => base.url_source(UrlSource::base_url(BASE).unwrap()),
        Mode::Host => base.url_source(UrlSource::host_header("https").unwrap()),
        Mode::XForwarded => base.url_source(UrlSource::x_forwarded(1).unwrap()),
        Mode::Forwarded => base.url_source(UrlSource::forwarded(1).unwrap()),
        Mode::Basic => base
            .url_source(UrlSource::base_url(BASE).unwrap())
            .basic_auth("twilio", "s3cret")
            .unwrap(),
        Mode::Shared | Mode::Accounts => base.url_source(UrlSource::base_url(BASE).unwrap()),
        Mode::Digest => base
            .url_source(UrlSource::base_url(BASE).unwrap())
            .digest_auth("twilio", "s3cret")
            .unwrap(),
    }
}

/// A body that yields `chunks`, then fails if `fail` is set.
fn stream_body(chunks: Vec<Bytes>, fail: bool) -> Body {
    let mut items: Vec<Result<Bytes, std::io::Error>> = chunks.into_iter().map(Ok).collect();
    if fail {
        items.push(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "client went away",
        )));
    }
    Body::from_stream(futures_util::stream::iter(items))
}

fn form_sig(url: &str, params: &[(&str, &str)]) -> String {
    sign(TOKEN, url, params)
}

fn form_post(target: &str) -> http::request::Builder {
    Request::post(target).header("content-type", "application/x-www-form-urlencoded")
}

struct Case {
    name: &'static str,
    mode: Mode,
    request: Request<Body>,
    status: StatusCode,
    kind: K,
}

fn case(name: &'static str, mode: Mode, request: Request<Body>, kind: K) -> Case {
    let status = SignatureError::new(kind).status();
    Case {
        name,
        mode,
        request,
        status,
        kind,
    }
}

#[allow(clippy::too_many_lines)]
fn cases() -> Vec<Case> {
    let url = format!("{BASE}/sms");
    let good = form_sig(&url, &[("Body", "hi")]);
    let post = |sig: &str, body: &'static str| {
        form_post("/sms")
            .header("x-twilio-signature", sig)
            .body(Body::from(body))
            .unwrap()
    };
    let with_header = |name: &str, value: HeaderValue| {
        let mut r = post(&good, "Body=hi");
        r.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value,
        );
        r
    };
    let json = br#"{"EventType":"onMessageAdded"}"#;
    let (json_url, json_sig) = sign_body(TOKEN, &format!("{BASE}/events"), json);
    let json_target = json_url.strip_prefix(BASE).unwrap().to_owned();
    let many_params = "a&".repeat(10_001);
    let evil_url = "https://evil.example/sms";
    let evil_sig = form_sig(evil_url, &[("Body", "hi")]);
    let ws = |method: &str, sig: &str| {
        Request::builder()
            .method(method)
            .uri("/media")
            .header("host", "hooks.example.com")
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("x-twilio-signature", sig)
    };
    let ws_sig = sign_url(TOKEN, "wss://hooks.example.com/media");
    let basic = |auth: Option<&str>| {
        let mut b = form_post("/sms").header("x-twilio-signature", &good);
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        b.body(Body::from("Body=hi")).unwrap()
    };

    let digest = |auth: &[&str]| {
        let mut r = form_post("/sms")
            .header("x-twilio-signature", &good)
            .body(Body::from("Body=hi"))
            .unwrap();
        for a in auth {
            r.headers_mut()
                .append("authorization", HeaderValue::from_str(a).unwrap());
        }
        r
    };
    // Right password, for a nonce this layer never made.
    let foreign_nonce = digest_answer("12345-00", "s3cret");
    let account_post = |token: &str, sid: &str| {
        let params = [("AccountSid", sid), ("Body", "hi")];
        form_post("/sms")
            .header("x-twilio-signature", sign(token, &url, params))
            .body(Body::from(format!("AccountSid={sid}&Body=hi")))
            .unwrap()
    };

    vec![
        // The signature header.
        case(
            "no signature header",
            Mode::Fixed,
            form_post("/sms").body(Body::from("Body=hi")).unwrap(),
            K::MissingHeader,
        ),
        case(
            "empty signature header",
            Mode::Fixed,
            post("", "Body=hi"),
            K::MissingHeader,
        ),
        case(
            "signature header twice",
            Mode::Fixed,
            with_header("x-twilio-signature", HeaderValue::from_str(&good).unwrap()),
            K::MalformedHeader,
        ),
        case(
            "over-long signature",
            Mode::Fixed,
            post(&"A".repeat(4000), "Body=hi"),
            K::MalformedHeader,
        ),
        case(
            "non-ASCII signature",
            Mode::Fixed,
            {
                let mut r = post(&good, "Body=hi");
                r.headers_mut().insert(
                    "x-twilio-signature",
                    HeaderValue::from_bytes("3KI2uRuYyAdhZIJXcpU0izDUzW\u{e9}".as_bytes()).unwrap(),
                );
                r
            },
            K::MalformedHeader,
        ),
        case(
            "signature padded with spaces",
            Mode::Fixed,
            post(&format!(" {good}"), "Body=hi"),
            K::MalformedHeader,
        ),
        case(
            "signature in the URL-safe alphabet",
            Mode::Fixed,
            post(
                &good.replace('+', "-").replace('/', "_").replace('=', ""),
                "Body=hi",
            ),
            K::MalformedHeader,
        ),
        case(
            "signature of another body",
            Mode::Fixed,
            post(&good, "Body=bye"),
            K::Mismatch,
        ),
        case(
            "well-formed SHA-256 length signature for an Auth Token",
            Mode::Fixed,
            post(
                &sign_with(Algorithm::HmacSha256, TOKEN, &url, [("Body", "hi")]),
                "Body=hi",
            ),
            K::Mismatch,
        ),
        // The settings header.
        case(
            "unknown SharedKey id",
            Mode::Shared,
            with_header(
                "x-twilio-webhooks-signature-settings",
                HeaderValue::from_static("key=KS2,algorithm=HMAC_SHA256"),
            ),
            K::UnknownKeyId,
        ),
        case(
            "unsupported algorithm",
            Mode::Shared,
            with_header(
                "x-twilio-webhooks-signature-settings",
                HeaderValue::from_static("key=KS1,algorithm=HMAC_MD5"),
            ),
            K::UnsupportedAlgorithm,
        ),
        case(
            "settings header without parts",
            Mode::Shared,
            with_header(
                "x-twilio-webhooks-signature-settings",
                HeaderValue::from_static("garbage"),
            ),
            K::MalformedHeader,
        ),
        case(
            "settings key repeated",
            Mode::Shared,
            with_header(
                "x-twilio-webhooks-signature-settings",
                HeaderValue::from_static("key=KS1,key=KS1,algorithm=HMAC_SHA1"),
            ),
            K::MalformedHeader,
        ),
        case(
            "settings header not UTF-8",
            Mode::Shared,
            with_header(
                "x-twilio-webhooks-signature-settings",
                HeaderValue::from_bytes(b"key=\xffKS1,algorithm=HMAC_SHA1").unwrap(),
            ),
            K::MalformedHeader,
        ),
        case(
            "settings header twice",
            Mode::Shared,
            {
                let mut r = with_header(
                    "x-twilio-webhooks-signature-settings",
                    HeaderValue::from_static("key=KS1,algorithm=HMAC_SHA1"),
                );
                r.headers_mut().append(
                    "x-twilio-webhooks-signature-settings",
                    HeaderValue::from_static("key=KS1,algorithm=HMAC_SHA256"),
                );
                r
            },
            K::MalformedHeader,
        ),
        case(
            "settings header with no SharedKey configured",
            Mode::Fixed,
            with_header(
                "x-twilio-webhooks-signature-settings",
                HeaderValue::from_static("key=KS1,algorithm=HMAC_SHA1"),
            ),
            K::UnknownKeyId,
        ),
        // Content types.
        case(
            "JSON body without bodySHA256",
            Mode::Fixed,
            Request::post("/sms")
                .header("content-type", "application/json")
                .header("x-twilio-signature", sign_url(TOKEN, &url))
                .body(Body::from(&json[..]))
                .unwrap(),
            K::UnsignedBody,
        ),
        case(
            "text body without content type",
            Mode::Fixed,
            Request::post("/sms")
                .header("x-twilio-signature", sign_url(TOKEN, &url))
                .body(Body::from("Body=hi"))
                .unwrap(),
            K::UnsignedBody,
        ),
        case(
            "two content types",
            Mode::Fixed,
            {
                let mut r = post(&good, "Body=hi");
                r.headers_mut()
                    .append("content-type", HeaderValue::from_static("application/json"));
                r
            },
            K::MalformedBody,
        ),
        case(
            "look-alike form content type",
            Mode::Fixed,
            Request::post("/sms")
                .header("content-type", "application/x-www-form-urlencoded-evil")
                .header("x-twilio-signature", sign_url(TOKEN, &url))
                .body(Body::from("Body=hi"))
                .unwrap(),
            K::UnsignedBody,
        ),
        case(
            "multipart body",
            Mode::Fixed,
            Request::post("/sms")
                .header("content-type", "multipart/form-data; boundary=x")
                .header("x-twilio-signature", sign_url(TOKEN, &url))
                .body(Body::from("--x\r\n\r\nhi\r\n--x--"))
                .unwrap(),
            K::UnsignedBody,
        ),
        case(
            "form signed without its parameters",
            Mode::Fixed,
            post(&sign_url(TOKEN, &url), "Body=hi"),
            K::Mismatch,
        ),
        case(
            "streamed unsigned JSON body",
            Mode::Fixed,
            Request::post("/sms")
                .header("content-type", "application/json")
                .header("x-twilio-signature", sign_url(TOKEN, &url))
                .body(stream_body(vec![Bytes::from_static(b"{}")], false))
                .unwrap(),
            K::UnsignedBody,
        ),
        // Sizes and broken bodies.
        case(
            "Content-Length over the limit",
            Mode::Fixed,
            form_post("/sms")
                .header("x-twilio-signature", &good)
                .header("content-length", (LIMIT + 1).to_string())
                .body(stream_body(vec![], true))
                .unwrap(),
            K::BodyTooLarge,
        ),
        case(
            "streamed body over the limit",
            Mode::Fixed,
            form_post("/sms")
                .header("x-twilio-signature", &good)
                .body(stream_body(vec![Bytes::from(vec![b'a'; LIMIT + 1])], false))
                .unwrap(),
            K::BodyTooLarge,
        ),
        case(
            "many small chunks over the limit",
            Mode::Fixed,
            form_post("/sms")
                .header("x-twilio-signature", &good)
                .body(stream_body(
                    vec![Bytes::from_static(b"aaaaaaaaaaaaaaaa"); LIMIT / 16 + 1],
                    false,
                ))
                .unwrap(),
            K::BodyTooLarge,
        ),
        case(
            "malformed Content-Length",
            Mode::Fixed,
            form_post("/sms")
                .header("x-twilio-signature", &good)
                .header("content-length", "12abc")
                .body(Body::from("Body=hi"))
                .unwrap(),
            K::BodyRead,
        ),
        case(
            "two Content-Length headers",
            Mode::Fixed,
            {
                let mut r = post(&good, "Body=hi");
                r.headers_mut()
                    .append("content-length", HeaderValue::from_static("7"));
                r.headers_mut()
                    .append("content-length", HeaderValue::from_static("9"));
                r
            },
            K::BodyRead,
        ),
        case(
            "truncated body",
            Mode::Fixed,
            form_post("/sms")
                .header("x-twilio-signature", &good)
                .body(stream_body(vec![Bytes::from_static(b"Body=h")], true))
                .unwrap(),
            K::BodyRead,
        ),
        // Form content.
        case(
            "invalid percent-escape kept literally, signature for the escape decoded",
            Mode::Fixed,
            post(&form_sig(&url, &[("Body", "\u{0}")]), "Body=%ZZ"),
            K::Mismatch,
        ),
        case(
            "percent-decoded form not UTF-8",
            Mode::Fixed,
            post(&good, "Body=%FF%FE"),
            K::MalformedBody,
        ),
        case(
            "raw non-UTF-8 byte in form",
            Mode::Fixed,
            form_post("/sms")
                .header("x-twilio-signature", &good)
                .body(Body::from(&b"Body=\xff"[..]))
                .unwrap(),
            K::MalformedBody,
        ),
        case(
            "overlong UTF-8 encoding in form",
            Mode::Fixed,
            post(&good, "Body=%C0%AF"),
            K::MalformedBody,
        ),
        case(
            "huge parameter count",
            Mode::Fixed,
            form_post("/sms")
                .header("x-twilio-signature", &good)
                .body(Body::from(many_params.clone()))
                .unwrap(),
            K::MalformedBody,
        ),
        // bodySHA256.
        case(
            "bodySHA256 twice",
            Mode::Fixed,
            {
                let target = format!(
                    "{json_target}&bodySHA256={}",
                    tower_twilio_signature::body_sha256(json)
                );
                Request::post(target)
                    .header("content-type", "application/json")
                    .header("x-twilio-signature", &json_sig)
                    .body(Body::from(&json[..]))
                    .unwrap()
            },
            K::AmbiguousBodyHash,
        ),
        case(
            "conflicting bodySHA256 via an escaped name",
            Mode::Fixed,
            {
                let target = format!("{json_target}&body%53HA256=00");
                Request::post(target)
                    .header("content-type", "application/json")
                    .header("x-twilio-signature", &json_sig)
                    .body(Body::from(&json[..]))
                    .unwrap()
            },
            K::AmbiguousBodyHash,
        ),
        case(
            "bodySHA256 of another body",
            Mode::Fixed,
            Request::post(json_target.clone())
                .header("content-type", "application/json")
                .header("x-twilio-signature", &json_sig)
                .body(Body::from(&b"{}"[..]))
                .unwrap(),
            K::BodyHashMismatch,
        ),
        case(
            "bodySHA256 in uppercase",
            Mode::Fixed,
            {
                let upper = json_url.to_uppercase().replace(
                    "HTTPS://HOOKS.EXAMPLE.COM/EVENTS?BODYSHA256=",
                    "https://hooks.example.com/events?bodySHA256=",
                );
                let sig = sign_url(TOKEN, &upper);
                Request::post(upper.strip_prefix(BASE).unwrap())
                    .header("content-type", "application/json")
                    .header("x-twilio-signature", sig)
                    .body(Body::from(&json[..]))
                    .unwrap()
            },
            K::BodyHashMismatch,
        ),
        case(
            "empty bodySHA256",
            Mode::Fixed,
            {
                let u = format!("{BASE}/events?bodySHA256=");
                let sig = sign_url(TOKEN, &u);
                Request::post("/events?bodySHA256=")
                    .header("content-type", "application/json")
                    .header("x-twilio-signature", sig)
                    .body(Body::from(&json[..]))
                    .unwrap()
            },
            K::BodyHashMismatch,
        ),
        case(
            "form body swapped under a JSON signature",
            Mode::Fixed,
            Request::post(json_target.clone())
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-twilio-signature", &json_sig)
                .body(Body::from("Body=hi"))
                .unwrap(),
            K::BodyHashMismatch,
        ),
        // Host and proxy headers.
        case(
            "absolute-form target for another host, fixed mode",
            Mode::Fixed,
            form_post("https://evil.example/sms")
                .header("x-twilio-signature", &evil_sig)
                .body(Body::from("Body=hi"))
                .unwrap(),
            K::Mismatch,
        ),
        case(
            "Host spoofed, fixed mode",
            Mode::Fixed,
            form_post("/sms")
                .header("host", "evil.example")
                .header("x-twilio-signature", &evil_sig)
                .body(Body::from("Body=hi"))
                .unwrap(),
            K::Mismatch,
        ),
        case(
            "X-Forwarded-Host spoofed, fixed mode",
            Mode::Fixed,
            form_post("/sms")
                .header("x-forwarded-host", "evil.example")
                .header("x-twilio-signature", &evil_sig)
                .body(Body::from("Body=hi"))
                .unwrap(),
            K::Mismatch,
        ),
        case(
            "X-Forwarded-Host spoofed, Host mode",
            Mode::Host,
            form_post("/sms")
                .header("host", "hooks.example.com")
                .header("x-forwarded-host", "evil.example")
                .header("x-twilio-signature", &evil_sig)
                .body(Body::from("Body=hi"))
                .unwrap(),
            K::Mismatch,
        ),
        case(
            "Forwarded spoofed, X-Forwarded mode",
            Mode::XForwarded,
            form_post("/sms")
                .header("host", "hooks.example.com")
                .header("forwarded", "host=evil.example;proto=https")
                .header("x-twilio-signature", &evil_sig)
                .body(Body::from("Body=hi"))
                .unwrap(),
            K::Mismatch,
        ),
        case(
            "X-Forwarded-Host spoofed, Forwarded mode",
            Mode::Forwarded,
            form_post("/sms")
                .header("host", "hooks.example.com")
                .header("x-forwarded-host", "evil.example")
                .header("x-twilio-signature", &evil_sig)
                .body(Body::from("Body=hi"))
                .unwrap(),
            K::Mismatch,
        ),
        case(
            "client entry beyond the trusted hop",
            Mode::XForwarded,
            form_post("/sms")
                .header("host", "internal")
                .header("x-forwarded-host", "evil.example, hooks.example.com")
                .header("x-twilio-signature", &evil_sig)
                .body(Body::from("Body=hi"))
                .unwrap(),
            K::Mismatch,
        ),
        case(
            "Forwarded element beyond the trusted hop",
            Mode::Forwarded,
            form_post("/sms")
                .header("host", "internal")
                .header("forwarded", "host=evil.example, host=hooks.example.com")
                .header("x-twilio-signature", &evil_sig)
                .body(Body::from("Body=hi"))
                .unwrap(),
            K::Mismatch,
        ),
        case(
            "no Host, Host mode",
            Mode::Host,
            post(&good, "Body=hi"),
            K::NoUrl,
        ),
        case(
            "Host with user info",
            Mode::Host,
            form_post("/sms")
                .header("host", "user:pw@hooks.example.com")
                .header("x-twilio-signature", &good)
                .body(Body::from("Body=hi"))
                .unwrap(),
            K::NoUrl,
        ),
        case(
            "two Host headers",
            Mode::Host,
            {
                let mut r = form_post("/sms")
                    .header("host", "hooks.example.com")
                    .header("x-twilio-signature", &good)
                    .body(Body::from("Body=hi"))
                    .unwrap();
                r.headers_mut()
                    .append("host", HeaderValue::from_static("evil.example"));
                r
            },
            K::NoUrl,
        ),
        case(
            "Host with a bad port",
            Mode::Host,
            form_post("/sms")
                .header("host", "hooks.example.com:99999")
                .header("x-twilio-signature", &good)
                .body(Body::from("Body=hi"))
                .unwrap(),
            K::NoUrl,
        ),
        case(
            "X-Forwarded-Proto not http(s)",
            Mode::XForwarded,
            form_post("/sms")
                .header("host", "hooks.example.com")
                .header("x-forwarded-proto", "javascript")
                .header("x-twilio-signature", &good)
                .body(Body::from("Body=hi"))
                .unwrap(),
            K::NoUrl,
        ),
        case(
            "X-Forwarded-Host not text",
            Mode::XForwarded,
            form_post("/sms")
                .header("host", "hooks.example.com")
                .header(
                    "x-forwarded-host",
                    HeaderValue::from_bytes(b"ho\xffst").unwrap(),
                )
                .header("x-twilio-signature", &good)
                .body(Body::from("Body=hi"))
                .unwrap(),
            K::NoUrl,
        ),
        case(
            "X-Forwarded-Port with a sign",
            Mode::XForwarded,
            form_post("/sms")
                .header("host", "hooks.example.com")
                .header("x-forwarded-port", "+443")
                .header("x-twilio-signature", &good)
                .body(Body::from("Body=hi"))
                .unwrap(),
            K::NoUrl,
        ),
        case(
            "asterisk-form target",
            Mode::Fixed,
            Request::options("*")
                .header("x-twilio-signature", &good)
                .body(Body::empty())
                .unwrap(),
            K::NoUrl,
        ),
        case(
            "stricter than sdk: authority-form target, signed for the root URL",
            Mode::Host,
            Request::connect("hooks.example.com:443")
                .header("host", "hooks.example.com")
                .header("x-twilio-signature", sign_url(TOKEN, &format!("{BASE}/")))
                .body(Body::empty())
                .unwrap(),
            K::NoUrl,
        ),
        case(
            "stricter than sdk: HTTP/2 CONNECT without a path, signed for the root URL",
            Mode::Host,
            Request::connect("hooks.example.com:443")
                .version(http::Version::HTTP_2)
                .header("x-twilio-signature", sign_url(TOKEN, &format!("{BASE}/")))
                .body(Body::empty())
                .unwrap(),
            K::NoUrl,
        ),
        // WebSocket handshakes.
        case(
            "POST with Upgrade: websocket and a form",
            Mode::Host,
            ws("POST", &ws_sig)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from("Body=hi"))
                .unwrap(),
            K::Mismatch,
        ),
        case(
            "handshake with a body length",
            Mode::Host,
            ws("GET", &ws_sig)
                .header("content-length", "5")
                .body(Body::from("hello"))
                .unwrap(),
            K::UnsignedBody,
        ),
        case(
            "stricter than sdk: handshake whose query is not UTF-8 once decoded",
            Mode::Host,
            Request::builder()
                .method("GET")
                .uri("/media?Caller=%FF")
                .header("host", "hooks.example.com")
                .header("connection", "Upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-version", "13")
                .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
                .header(
                    "x-twilio-signature",
                    sign(
                        TOKEN,
                        "wss://hooks.example.com/media",
                        [("Caller", "\u{FFFD}")],
                    ),
                )
                .body(Body::empty())
                .unwrap(),
            K::MalformedBody,
        ),
        case(
            "handshake with a chunked body",
            Mode::Host,
            ws("GET", &ws_sig)
                .header("transfer-encoding", "chunked")
                .body(Body::empty())
                .unwrap(),
            K::UnsignedBody,
        ),
        case(
            "handshake signed as https instead of wss",
            Mode::Host,
            ws("GET", &sign_url(TOKEN, "https://hooks.example.com/media"))
                .body(Body::empty())
                .unwrap(),
            K::Mismatch,
        ),
        // Basic authentication.
        case(
            "Basic auth missing",
            Mode::Basic,
            basic(None),
            K::Unauthorized,
        ),
        case(
            "Basic auth wrong password",
            Mode::Basic,
            basic(Some("Basic dHdpbGlvOndyb25n")),
            K::Unauthorized,
        ),
        case(
            "Basic auth not base64",
            Mode::Basic,
            basic(Some("Basic !!!")),
            K::Unauthorized,
        ),
        case(
            "Bearer instead of Basic",
            Mode::Basic,
            basic(Some("Bearer dHdpbGlvOnMzY3JldA==")),
            K::Unauthorized,
        ),
        case(
            "Basic auth with a prefix of the password",
            Mode::Basic,
            basic(Some("Basic dHdpbGlvOnMzY3Jl")),
            K::Unauthorized,
        ),
        case(
            "Basic auth sent twice",
            Mode::Basic,
            {
                let mut r = basic(Some("Basic dHdpbGlvOnMzY3JldA=="));
                r.headers_mut().append(
                    "authorization",
                    HeaderValue::from_static("Basic dHdpbGlvOnMzY3JldA=="),
                );
                r
            },
            K::Unauthorized,
        ),
        // Digest authentication.
        case("Digest missing", Mode::Digest, digest(&[]), K::Unauthorized),
        case(
            "Basic sent to Digest",
            Mode::Digest,
            digest(&["Basic dHdpbGlvOnMzY3JldA=="]),
            K::Unauthorized,
        ),
        case(
            "Digest with nothing after it",
            Mode::Digest,
            digest(&["Digest"]),
            K::Unauthorized,
        ),
        case(
            "Digest with an unterminated quote",
            Mode::Digest,
            digest(&["Digest username=\"twilio, realm=Twilio"]),
            K::Unauthorized,
        ),
        case(
            "Digest with a parameter twice",
            Mode::Digest,
            digest(&[&format!("{foreign_nonce}, Nonce=\"1\"")]),
            K::Unauthorized,
        ),
        case(
            "Digest with a forged nonce and a guessed password",
            Mode::Digest,
            digest(&[&digest_answer("12345-00", "guess")]),
            K::Unauthorized,
        ),
        case(
            "Digest sent twice",
            Mode::Digest,
            digest(&[&foreign_nonce, &foreign_nonce]),
            K::Unauthorized,
        ),
        case(
            "Digest with a huge parameter list",
            Mode::Digest,
            digest(&[&format!("Digest {}", "a=b,".repeat(2000))]),
            K::Unauthorized,
        ),
        case(
            "Digest with the right password for a nonce not made here",
            Mode::Digest,
            digest(&[&foreign_nonce]),
            K::StaleNonce,
        ),
        // Per-account Auth Tokens.
        case(
            "unknown account",
            Mode::Accounts,
            account_post("account-token", "ACother"),
            K::UnknownAccount,
        ),
        case(
            "known account, another token",
            Mode::Accounts,
            account_post("someone-elses-token", "ACgood"),
            K::Mismatch,
        ),
        case(
            "account whose looked-up token ends in a newline",
            Mode::Accounts,
            account_post("account-token\n", "ACpadded"),
            K::UnknownAccount,
        ),
        case(
            "account-signed request naming no account",
            Mode::Accounts,
            form_post("/sms")
                .header(
                    "x-twilio-signature",
                    sign("account-token", &url, [("Body", "hi")]),
                )
                .body(Body::from("Body=hi"))
                .unwrap(),
            K::Mismatch,
        ),
    ]
}

/// An `Authorization: Digest` answer for `nonce` to `POST /sms` (SHA-256).
fn digest_answer(nonce: &str, password: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = |text: String| hex::encode(Sha256::digest(text.as_bytes()));
    let ha1 = h(format!("twilio:Twilio:{password}"));
    let ha2 = h("POST:/sms".to_owned());
    let response = h(format!("{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}"));
    format!(
        "Digest username=\"twilio\", realm=\"Twilio\", nonce=\"{nonce}\", uri=\"/sms\", \
         algorithm=SHA-256, qop=auth, nc=00000001, cnonce=\"c0ffee\", response=\"{response}\""
    )
}

#[tokio::test]
async fn hostile_requests_are_refused_and_never_reach_the_service() {
    let cases = cases();
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    let calls = Arc::new(AtomicUsize::new(0));
    for c in cases {
        let counter = Arc::clone(&calls);
        let svc = layer(c.mode).layer(service_fn(move |_req: Request<VerifiedBody>| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Infallible>(Response::new(Body::empty())) }
        }));
        let res = svc.oneshot(c.request).await.unwrap();
        let kind = res
            .extensions()
            .get::<SignatureError>()
            .map(SignatureError::kind);
        assert_eq!(res.status(), c.status, "{}: {kind:?}", c.name);
        assert_eq!(kind, Some(c.kind), "{}", c.name);
        let challenges: Vec<&str> = res
            .headers()
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        match (c.status, c.mode) {
            (StatusCode::UNAUTHORIZED, Mode::Basic) => {
                assert_eq!(challenges, ["Basic realm=\"Twilio\""], "{}", c.name);
            }
            (StatusCode::UNAUTHORIZED, Mode::Digest) => {
                assert_eq!(challenges.len(), 2, "{}", c.name);
                for challenge in &challenges {
                    assert!(
                        challenge.starts_with("Digest realm=\"Twilio\""),
                        "{}",
                        c.name
                    );
                    let stale = challenge.ends_with("stale=true");
                    assert_eq!(stale, c.kind == K::StaleNonce, "{}: {challenge}", c.name);
                }
            }
            _ => assert!(challenges.is_empty(), "{}: {challenges:?}", c.name),
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            0,
            "{} reached the service",
            c.name
        );
    }
}

/// The same requests, correctly made, do pass: the matrix above fails for its reasons.
#[tokio::test]
async fn the_controls_pass() {
    let url = format!("{BASE}/sms");
    let good = form_sig(&url, &[("Body", "hi")]);
    let json = br#"{"EventType":"onMessageAdded"}"#;
    let (json_url, json_sig) = sign_body(TOKEN, &format!("{BASE}/events"), json);
    let controls: Vec<(Mode, Request<Body>)> = vec![
        (
            Mode::Fixed,
            form_post("/sms")
                .header("x-twilio-signature", &good)
                .body(Body::from("Body=hi"))
                .unwrap(),
        ),
        (
            Mode::Fixed,
            Request::post(json_url.strip_prefix(BASE).unwrap())
                .header("content-type", "application/json")
                .header("x-twilio-signature", json_sig)
                .body(Body::from(&json[..]))
                .unwrap(),
        ),
        (
            Mode::Host,
            form_post("/sms")
                .header("host", "hooks.example.com")
                .header("x-twilio-signature", &good)
                .body(Body::from("Body=hi"))
                .unwrap(),
        ),
        (
            Mode::XForwarded,
            form_post("/sms")
                .header("host", "internal")
                .header("x-forwarded-host", "evil.example, hooks.example.com")
                .header("x-twilio-signature", &good)
                .body(Body::from("Body=hi"))
                .unwrap(),
        ),
        (
            Mode::Forwarded,
            form_post("/sms")
                .header("host", "internal")
                .header("forwarded", "host=evil.example, host=hooks.example.com")
                .header("x-twilio-signature", &good)
                .body(Body::from("Body=hi"))
                .unwrap(),
        ),
        (
            Mode::Basic,
            form_post("/sms")
                .header("authorization", "Basic dHdpbGlvOnMzY3JldA==")
                .header("x-twilio-signature", &good)
                .body(Body::from("Body=hi"))
                .unwrap(),
        ),
        (
            Mode::Accounts,
            form_post("/sms")
                .header(
                    "x-twilio-signature",
                    sign(
                        "account-token",
                        &url,
                        [("AccountSid", "ACgood"), ("Body", "hi")],
                    ),
                )
                .body(Body::from("AccountSid=ACgood&Body=hi"))
                .unwrap(),
        ),
        (
            Mode::Accounts,
            form_post("/sms")
                .header("x-twilio-signature", &good)
                .body(Body::from("Body=hi"))
                .unwrap(),
        ),
        (
            Mode::Shared,
            form_post("/sms")
                .header(
                    "x-twilio-webhooks-signature-settings",
                    "key=KS1,algorithm=HMAC_SHA256",
                )
                .header(
                    "x-twilio-signature",
                    sign_with(
                        Algorithm::HmacSha256,
                        "shared-secret",
                        &url,
                        [("Body", "hi")],
                    ),
                )
                .body(Body::from("Body=hi"))
                .unwrap(),
        ),
        (
            Mode::Host,
            Request::get("/media")
                .header("host", "hooks.example.com")
                .header("upgrade", "websocket")
                .header("connection", "upgrade")
                .header(
                    "x-twilio-signature",
                    sign_url(TOKEN, "wss://hooks.example.com/media"),
                )
                .body(Body::empty())
                .unwrap(),
        ),
        (
            Mode::Fixed,
            form_post("/sms")
                .header("x-twilio-signature", &good)
                .body(stream_body(
                    vec![Bytes::from_static(b"Bo"), Bytes::from_static(b"dy=hi")],
                    false,
                ))
                .unwrap(),
        ),
    ];
    for (i, (mode, req)) in controls.into_iter().enumerate() {
        let svc = layer(mode).layer(service_fn(|_req: Request<VerifiedBody>| async {
            Ok::<_, Infallible>(Response::new(Body::empty()))
        }));
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "control {i} ({mode:?}): {:?}",
            res.extensions().get::<SignatureError>()
        );
    }
}

/// The Digest control: the layer's own nonce, answered with the right password, passes.
#[tokio::test]
async fn the_digest_control_passes() {
    let url = format!("{BASE}/sms");
    let good = form_sig(&url, &[("Body", "hi")]);
    let svc = layer(Mode::Digest).layer(service_fn(|_req: Request<VerifiedBody>| async {
        Ok::<_, Infallible>(Response::new(Body::empty()))
    }));
    let request = |auth: Option<&str>| {
        let mut b = form_post("/sms").header("x-twilio-signature", &good);
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        b.body(Body::from("Body=hi")).unwrap()
    };
    let res = svc.clone().oneshot(request(None)).await.unwrap();
    let challenge = res.headers()["www-authenticate"].to_str().unwrap();
    let start = challenge.find("nonce=\"").unwrap() + 7;
    let nonce = &challenge[start..][..challenge[start..].find('"').unwrap()];
    let res = svc
        .clone()
        .oneshot(request(Some(&digest_answer(nonce, "s3cret"))))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = svc
        .oneshot(request(Some(&digest_answer(nonce, "s3cre"))))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

/// Report-only mode on the same matrix: what was refused with 403 now reaches the service,
/// carrying the same kind; every other refusal (401, 413, 400) stands.
#[tokio::test]
async fn report_only_lets_through_exactly_the_403s() {
    let mut passed = 0;
    for c in cases() {
        let seen = Arc::new(std::sync::Mutex::new(None));
        let record = Arc::clone(&seen);
        let svc =
            layer(c.mode)
                .report_only(true)
                .layer(service_fn(move |req: Request<VerifiedBody>| {
                    *record.lock().unwrap() = Some(
                        req.extensions()
                            .get::<SignatureError>()
                            .map(SignatureError::kind),
                    );
                    async { Ok::<_, Infallible>(Response::new(Body::empty())) }
                }));
        let res = svc.oneshot(c.request).await.unwrap();
        let seen = *seen.lock().unwrap();
        if c.status == StatusCode::FORBIDDEN {
            assert_eq!(res.status(), StatusCode::OK, "{}", c.name);
            assert_eq!(seen, Some(Some(c.kind)), "{}", c.name);
            passed += 1;
        } else {
            assert_eq!(res.status(), c.status, "{}", c.name);
            assert_eq!(
                res.extensions()
                    .get::<SignatureError>()
                    .map(SignatureError::kind),
                Some(c.kind),
                "{}",
                c.name
            );
            assert_eq!(seen, None, "{} reached the service", c.name);
        }
    }
    assert!(passed >= 30, "only {passed} cases were 403s");
}
