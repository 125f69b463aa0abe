//! Fuzz target bodies, shared by the libFuzzer binaries and the test suite's short pass.
//!
//! Each takes raw fuzzer bytes, turns them into structured input with `arbitrary`, runs the
//! public API, and panics only when a property is broken.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use sha1::Sha1;
use tower::{service_fn, Layer, ServiceExt};
use tower_twilio_signature::{
    sign, ConfigError, SignatureError, SignatureErrorKind, TwilioSignatureLayer, UrlSource,
    VerifiedBody, VerifiedWebhook, Verifier,
};

const TOKEN: &str = "fuzz-token";
const BASE: &str = "https://hooks.example.com";

/// Drives a future that never waits (every body here is in memory) to completion.
fn run<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// What the inner service saw, if it ran.
struct Outcome {
    status: StatusCode,
    kind: Option<SignatureErrorKind>,
    seen: Option<(Bytes, VerifiedWebhook)>,
}

fn send(layer: &TwilioSignatureLayer, req: Request<Full<Bytes>>) -> Outcome {
    let svc = layer.layer(service_fn(|req: Request<VerifiedBody>| async move {
        let verified = req.extensions().get::<VerifiedWebhook>().cloned();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let mut res = Response::new(Full::new(body));
        res.extensions_mut()
            .insert(verified.expect("verified request without VerifiedWebhook"));
        Ok::<_, Infallible>(res)
    }));
    let res = run(svc.oneshot(req)).unwrap();
    let status = res.status();
    let kind = res
        .extensions()
        .get::<SignatureError>()
        .map(SignatureError::kind);
    let verified = res.extensions().get::<VerifiedWebhook>().cloned();
    let body = run(res.into_body().collect()).unwrap().to_bytes();
    let seen = verified.map(|v| (body, v));
    // A response is either the service's (200, no error) or a rejection (error, its status).
    match (&seen, kind) {
        (Some(_), None) => assert_eq!(status, StatusCode::OK),
        (None, Some(k)) => assert_eq!(status, SignatureError::new(k).status()),
        _ => panic!(
            "status {status} with kind {kind:?} and service seen: {}",
            seen.is_some()
        ),
    }
    Outcome { status, kind, seen }
}

/// The algorithm as documented, as plainly as possible.
pub fn reference_sign(token: &str, url: &str, params: &[(String, String)]) -> String {
    let distinct: BTreeSet<(&[u8], &[u8])> = params
        .iter()
        .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
        .collect();
    let mut data = url.as_bytes().to_vec();
    for (k, v) in distinct {
        data.extend_from_slice(k);
        data.extend_from_slice(v);
    }
    let mut mac = Hmac::<Sha1>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(&data);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn fixed() -> TwilioSignatureLayer {
    fixed_with(Verifier::new(TOKEN).unwrap())
}

fn fixed_with(verifier: Verifier) -> TwilioSignatureLayer {
    TwilioSignatureLayer::from_verifier(verifier)
        .url_source(UrlSource::base_url(BASE).unwrap())
        .body_limit(64 * 1024)
}

fn form_request(target: &str, body: Bytes, signature: &str) -> Request<Full<Bytes>> {
    Request::post(target)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .body(Full::new(body))
        .unwrap()
}

/// Form canonicalization: any body, signed over the parameters `form_urlencoded` decodes,
/// passes when it decodes cleanly, and the service then sees those exact bytes.
pub fn form(data: &[u8]) {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(data)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let header = reference_sign(TOKEN, &format!("{BASE}/sms"), &pairs);
    let out = send(
        &fixed(),
        form_request("/sms", Bytes::copy_from_slice(data), &header),
    );
    let lossless = pairs
        .iter()
        .all(|(k, v)| !k.contains('\u{FFFD}') && !v.contains('\u{FFFD}'));
    if data.len() > 64 * 1024 {
        assert_eq!(out.kind, Some(SignatureErrorKind::BodyTooLarge));
    } else if pairs.len() > 10_000 {
        assert_eq!(out.kind, Some(SignatureErrorKind::MalformedBody));
    } else if lossless {
        let (body, _) = out
            .seen
            .expect("a cleanly decoded, correctly signed form was refused");
        assert_eq!(&body[..], data);
    } else {
        // Text that is not UTF-8 is refused; a genuine U+FFFD passes.
        assert!(
            matches!(out.kind, None | Some(SignatureErrorKind::MalformedBody)),
            "{:?}",
            out.kind
        );
    }
}

/// The settings header: whatever it says, a request signed with the Auth Token but
/// carrying it never passes (the header selects a SharedKey, whose secret differs).
pub fn settings(data: &[u8]) {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let verifier = Verifier::new(TOKEN)
        .unwrap()
        .with_shared_key("k1", "shared-secret")
        .unwrap();
    let layer = fixed_with(verifier);
    let header = sign(TOKEN, &format!("{BASE}/sms"), [("Body", "hi")]);
    let mut req = form_request("/sms", Bytes::from_static(b"Body=hi"), &header);
    req.headers_mut()
        .insert("x-twilio-webhooks-signature-settings", value);
    let out = send(&layer, req);
    assert_eq!(out.status, StatusCode::FORBIDDEN);
}

#[derive(Debug, Arbitrary)]
struct ProxyInput {
    mode: u8,
    hops: u8,
    headers: Vec<(u8, Vec<u8>)>,
}

/// Proxy headers: whatever the client sends, a request signed for the one public URL passes
/// only if the layer rebuilt exactly that URL (or its :443 twin).
pub fn forwarded(data: &[u8]) {
    let Ok(input) = ProxyInput::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let hops = usize::from(input.hops % 3) + 1;
    let source = match input.mode % 3 {
        0 => UrlSource::forwarded(hops),
        1 => UrlSource::x_forwarded(hops),
        _ => UrlSource::host_header("https"),
    };
    let layer = TwilioSignatureLayer::new(TOKEN)
        .unwrap()
        .url_source(source.unwrap());
    let names = [
        "host",
        "forwarded",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-prefix",
    ];
    let signed = format!("{BASE}/sms");
    let header = sign(TOKEN, &signed, [("Body", "hi")]);
    let mut req = form_request("/sms", Bytes::from_static(b"Body=hi"), &header);
    for (n, v) in input.headers.iter().take(12) {
        if let Ok(v) = HeaderValue::from_bytes(v) {
            req.headers_mut().append(
                HeaderName::from_static(names[usize::from(*n) % names.len()]),
                v,
            );
        }
    }
    let out = send(&layer, req);
    if let Some((_, verified)) = out.seen {
        assert!(
            verified.url() == signed || verified.url() == "https://hooks.example.com:443/sms",
            "accepted for {}",
            verified.url()
        );
    }
}

/// URL parsing in the verifier: any string, signed as Twilio writes it (scheme in
/// lowercase), either verifies or is refused as no usable URL; nothing else, and never a
/// panic.
pub fn url(data: &[u8]) {
    let Ok(url) = std::str::from_utf8(data) else {
        return;
    };
    let signed = match url.split_once("://") {
        Some((scheme, rest)) => format!("{}://{rest}", scheme.to_ascii_lowercase()),
        None => url.to_owned(),
    };
    let header = sign(TOKEN, &signed, [("a", "b")]);
    let verifier = Verifier::new(TOKEN)
        .unwrap()
        .extra_url_forms(data.first() == Some(&b'h'));
    match verifier.verify_form(url, [("a", "b")], &header, None) {
        Ok(v) => assert_eq!(v.url(), signed),
        Err(e) => assert_eq!(e.kind(), SignatureErrorKind::NoUrl, "{url:?}"),
    }
}

#[derive(Debug, Arbitrary)]
struct RawRequest {
    method: u8,
    target: String,
    headers: Vec<(u8, Vec<u8>)>,
    body: Vec<u8>,
    sign_it: bool,
}

/// The whole request path on arbitrary input: never a panic, only the expected statuses,
/// and whatever reaches the service is exactly what was sent.
pub fn request(data: &[u8]) {
    let Ok(raw) = RawRequest::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let methods = ["GET", "POST", "PUT", "CONNECT", "OPTIONS"];
    let names = [
        "x-twilio-signature",
        "x-twilio-webhooks-signature-settings",
        "content-type",
        "content-length",
        "host",
        "upgrade",
        "connection",
        "authorization",
        "x-forwarded-host",
        "forwarded",
        "i-twilio-idempotency-token",
        "transfer-encoding",
    ];
    let Ok(mut req) = Request::builder()
        .method(methods[usize::from(raw.method) % methods.len()])
        .uri(raw.target.as_str())
        .body(Full::new(Bytes::from(raw.body.clone())))
    else {
        return;
    };
    for (n, v) in raw.headers.iter().take(16) {
        if let Ok(v) = HeaderValue::from_bytes(v) {
            req.headers_mut().append(
                HeaderName::from_static(names[usize::from(*n) % names.len()]),
                v,
            );
        }
    }
    if raw.sign_it {
        let url = format!(
            "{BASE}{}",
            req.uri().path_and_query().map_or("/", |p| p.as_str())
        );
        let pairs: Vec<(String, String)> = form_urlencoded::parse(&raw.body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let header = HeaderValue::from_str(&reference_sign(TOKEN, &url, &pairs)).unwrap();
        req.headers_mut().insert("x-twilio-signature", header);
    }
    let verifier = Verifier::new(TOKEN)
        .unwrap()
        .with_shared_key("k1", "s")
        .unwrap()
        .extra_url_forms(raw.method & 0x80 != 0);
    let layer = fixed_with(verifier);
    let out = send(&layer, req);
    if let Some((body, _)) = out.seen {
        assert!(
            body.is_empty() || body[..] == raw.body[..],
            "service saw other bytes"
        );
    }
}

#[derive(Debug, Arbitrary)]
struct Signed {
    token: String,
    segments: Vec<String>,
    query: Option<Vec<(String, String)>>,
    params: Vec<(String, String)>,
}

/// `verify(sign(x))`: any parameters under any path and query, signed with the crate's own
/// helper, pass through the layer and the verifier, and the service sees the parameters.
pub fn roundtrip(data: &[u8]) {
    let Ok(s) = Signed::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    if s.token.is_empty() {
        return;
    }
    if s.token.trim() != s.token {
        assert_eq!(
            Verifier::new(&s.token).unwrap_err(),
            ConfigError::SecretWhitespace
        );
        return;
    }
    let enc = |t: &str| form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>();
    let mut target: String = s
        .segments
        .iter()
        .take(6)
        .map(|seg| format!("/{}", enc(seg)))
        .collect();
    if target.is_empty() {
        target.push('/');
    }
    if let Some(q) = &s.query {
        target.push('?');
        target.push_str(
            &form_urlencoded::Serializer::new(String::new())
                .extend_pairs(q.iter().take(6))
                .finish(),
        );
    }
    let url = format!("{BASE}{target}");
    let header = sign(&s.token, &url, &s.params);
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&s.params)
        .finish();

    let verifier = Verifier::new(&s.token).unwrap();
    assert!(
        verifier.verify_form(&url, &s.params, &header, None).is_ok(),
        "verifier refused {url}"
    );

    let layer = TwilioSignatureLayer::new(&s.token)
        .unwrap()
        .url_source(UrlSource::base_url(BASE).unwrap());
    let out = send(
        &layer,
        form_request(&target, Bytes::from(body.clone()), &header),
    );
    if let Some(SignatureErrorKind::MalformedBody) = out.kind {
        assert!(s.params.len() > 10_000);
        return;
    }
    let (seen, verified) = out
        .seen
        .unwrap_or_else(|| panic!("layer refused {url}: {:?}", out.kind));
    assert_eq!(seen, body.as_bytes());
    assert_eq!(verified.url(), url);
}

/// The crate's signature agrees with the plain reference on any input.
pub fn reference(data: &[u8]) {
    let Ok((token, url, params)) =
        <(String, String, Vec<(String, String)>)>::arbitrary(&mut Unstructured::new(data))
    else {
        return;
    };
    if token.is_empty() {
        return;
    }
    assert_eq!(
        sign(&token, &url, &params),
        reference_sign(&token, &url, &params)
    );
}

#[derive(Debug, Arbitrary)]
struct DigestInput {
    /// Send `raw` as the `Authorization` value instead of a well-formed answer.
    raw: Option<Vec<u8>>,
    sha256: bool,
    /// Sort keys for the parameters, and how each is written: bit 0 quotes a value that could
    /// be a token, bits 1 and 2 put whitespace around `=`, bit 3 adds an empty list element,
    /// bit 4 escapes characters that need no escape.
    layout: Vec<(u8, u8)>,
    cnonce: String,
    extra: Option<(String, String)>,
    /// 0 to 3: a correct answer; 4: wrong password; 5: a parameter twice; 6: one left out.
    flaw: u8,
    which: u8,
}

const DIGEST_PARAMS: [&str; 9] = [
    "username",
    "realm",
    "nonce",
    "uri",
    "algorithm",
    "qop",
    "nc",
    "cnonce",
    "response",
];

fn digest_hash(sha256: bool, text: &str) -> String {
    use sha2::Digest as _;
    if sha256 {
        hex::encode(sha2::Sha256::digest(text.as_bytes()))
    } else {
        hex::encode(md5::Md5::digest(text.as_bytes()))
    }
}

/// Writes one auth-param as a client might.
fn digest_param(name: &str, value: &str, style: u8) -> String {
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    let eq = match style & 0b110 {
        0b010 => " =",
        0b100 => "= ",
        0b110 => " = ",
        _ => "=",
    };
    let empty = if style & 0b1000 != 0 { " ," } else { "" };
    let written = if !value.is_empty() && value.chars().all(tchar) && style & 1 == 0 {
        value.to_owned()
    } else {
        let mut quoted = String::from("\"");
        for c in value.chars() {
            if c == '"' || c == '\\' || (style & 0b1_0000 != 0 && c.is_ascii_alphanumeric()) {
                quoted.push('\\');
            }
            quoted.push(c);
        }
        quoted + "\""
    };
    format!("{empty}{name}{eq}{written}")
}

/// HTTP Digest: any `Authorization` value is refused with 401 and never panics; an answer
/// written in any of the ways the grammar allows (order, quoting, escapes, whitespace, empty
/// elements, unknown parameters) passes exactly when it is correct and complete.
pub fn digest(data: &[u8]) {
    let Ok(input) = DigestInput::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let layer = fixed().digest_auth("twilio", "pass word").unwrap();
    let target = "/sms?a=1";
    let request = |auth: Option<HeaderValue>| {
        let header = sign(TOKEN, &format!("{BASE}{target}"), [("Body", "hi")]);
        let mut req = form_request(target, Bytes::from_static(b"Body=hi"), &header);
        if let Some(auth) = auth {
            req.headers_mut().insert("authorization", auth);
        }
        req
    };
    if let Some(raw) = input.raw {
        let Ok(value) = HeaderValue::from_bytes(&raw) else {
            return;
        };
        let out = send(&layer, request(Some(value)));
        assert_eq!(out.status, StatusCode::UNAUTHORIZED, "{:?}", out.kind);
        return;
    }
    // The layer's challenge gives the nonce.
    let svc = layer.layer(service_fn(|_req: Request<VerifiedBody>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    }));
    let challenge = run(svc.oneshot(request(None))).unwrap();
    let challenge = challenge.headers()["www-authenticate"].to_str().unwrap();
    let start = challenge.find("nonce=\"").unwrap() + 7;
    let nonce = &challenge[start..][..challenge[start..].find('"').unwrap()];

    let mut cnonce: String = input
        .cnonce
        .chars()
        .filter(|c| (' '..='~').contains(c))
        .collect();
    if cnonce.is_empty() {
        cnonce.push('c');
    }
    let flaw = input.flaw % 7;
    let password = if flaw == 4 { "pass wort" } else { "pass word" };
    let ha1 = digest_hash(input.sha256, &format!("twilio:Twilio:{password}"));
    let ha2 = digest_hash(input.sha256, &format!("POST:{target}"));
    let response = digest_hash(
        input.sha256,
        &format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}"),
    );
    let algorithm = if input.sha256 { "SHA-256" } else { "MD5" };
    let values = [
        "twilio", "Twilio", nonce, target, algorithm, "auth", "00000001", &cnonce, &response,
    ];
    let mut params: Vec<(String, String, (u8, u8))> = DIGEST_PARAMS
        .iter()
        .zip(values)
        .enumerate()
        .map(|(i, (n, v))| {
            let layout = input.layout.get(i).copied().unwrap_or((i as u8, 0));
            ((*n).to_owned(), v.to_owned(), layout)
        })
        .collect();
    if let Some((name, value)) = input.extra {
        let known = DIGEST_PARAMS.iter().any(|p| p.eq_ignore_ascii_case(&name));
        let clean = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c));
        let value: String = value.chars().filter(|c| (' '..='~').contains(c)).collect();
        if clean && !known && params.len() < 15 {
            params.push((name, value, (0, 1)));
        }
    }
    let which = usize::from(input.which) % DIGEST_PARAMS.len();
    match flaw {
        5 => {
            let (name, value, layout) = params[which].clone();
            params.push((name.to_uppercase(), value, layout));
        }
        6 => {
            // Without `algorithm`, MD5 is assumed: leave out another one then.
            let which = if which == 4 { 0 } else { which };
            params.remove(which);
        }
        _ => {}
    }
    params.sort_by_key(|(_, _, (order, _))| *order);
    let list: Vec<String> = params
        .iter()
        .map(|(n, v, (_, style))| digest_param(n, v, *style))
        .collect();
    let value = format!("Digest {}", list.join(","));
    let Ok(value) = HeaderValue::from_str(&value) else {
        return;
    };
    let out = send(&layer, request(Some(value.clone())));
    if flaw < 4 {
        assert_eq!(out.status, StatusCode::OK, "{value:?}: {:?}", out.kind);
    } else {
        assert_eq!(out.status, StatusCode::UNAUTHORIZED, "{value:?}");
        assert_eq!(
            out.kind,
            Some(SignatureErrorKind::Unauthorized),
            "{value:?}"
        );
    }
}
