//! HTTP Digest authentication (RFC 7616) on the webhook: the challenge, every way a response
//! can be wrong, stale nonces, and a real client (`curl --digest`) over TCP.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::routing::post;
use axum::Router;
use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response, StatusCode};
use md5::Md5;
use sha2::{Digest, Sha256};
use tower::{service_fn, Layer, ServiceExt};
use tower_twilio_signature::{
    sign, DigestAlgorithm, DigestSettings, SignatureErrorKind as K, TwilioSignatureLayer,
    UrlSource, VerifiedBody, VerifiedWebhook,
};

use common::{form_body, Calls, Outcome, FORM, SIGNATURE, TOKEN};

const BASE: &str = "https://hooks.example.com";
const USER: &str = "twilio";
const PASS: &str = "digest pass:word";
const PARAMS: &[(&str, &str)] = &[("Body", "hi"), ("From", "+15005550006")];

fn digest_layer(algorithms: &[DigestAlgorithm], lifetime: Duration) -> TwilioSignatureLayer {
    TwilioSignatureLayer::new(TOKEN)
        .unwrap()
        .url_source(UrlSource::base_url(BASE).unwrap())
        .digest_auth_with_settings(
            USER,
            PASS,
            DigestSettings::default()
                .algorithms(algorithms)
                .nonce_lifetime(lifetime),
        )
        .unwrap()
}

fn both() -> TwilioSignatureLayer {
    TwilioSignatureLayer::new(TOKEN)
        .unwrap()
        .url_source(UrlSource::base_url(BASE).unwrap())
        .digest_auth(USER, PASS)
        .unwrap()
}

/// Sends `req` through `layer` around a service that counts its calls and returns 200.
async fn send(layer: &TwilioSignatureLayer, req: Request<Body>) -> (Outcome, usize) {
    let calls = Calls::default();
    let seen = calls.clone();
    let svc = layer.layer(service_fn(move |req: Request<VerifiedBody>| {
        seen.hit();
        let verified = req.extensions().get::<VerifiedWebhook>().cloned();
        async move {
            let mut res = Response::new(Body::empty());
            if let Some(v) = verified {
                res.extensions_mut().insert(v);
            }
            Ok::<_, Infallible>(res)
        }
    }));
    let out = Outcome::of(svc.oneshot(req).await.unwrap()).await;
    (out, calls.get())
}

/// A signed form POST to `path`, with these `Authorization` values.
fn request(path: &str, authorization: &[&str]) -> Request<Body> {
    let mut req = Request::post(path)
        .header(CONTENT_TYPE, FORM)
        .header(&SIGNATURE, sign(TOKEN, &format!("{BASE}{path}"), PARAMS))
        .body(Body::from(form_body(PARAMS)))
        .unwrap();
    for value in authorization {
        req.headers_mut()
            .append(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
    }
    req
}

fn challenges(out: &Outcome) -> Vec<String> {
    out.headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// The value of `name="…"` or `name=…` in a challenge.
fn param(challenge: &str, name: &str) -> Option<String> {
    let start = challenge.find(&format!("{name}="))? + name.len() + 1;
    let rest = &challenge[start..];
    Some(match rest.strip_prefix('"') {
        Some(quoted) => quoted[..quoted.find('"')?].to_owned(),
        None => rest.split([',', ' ']).next()?.to_owned(),
    })
}

/// A fresh nonce from the layer's challenge.
async fn nonce(layer: &TwilioSignatureLayer) -> String {
    let (out, _) = send(layer, request("/sms", &[])).await;
    assert_eq!(out.status, StatusCode::UNAUTHORIZED);
    param(&challenges(&out)[0], "nonce").unwrap()
}

fn hex_hash(algorithm: &str, text: &str) -> String {
    match algorithm {
        "MD5" => hex::encode(Md5::digest(text.as_bytes())),
        "SHA-256" => hex::encode(Sha256::digest(text.as_bytes())),
        other => panic!("no hash {other}"),
    }
}

/// What a client answers, field by field, so each can be spoiled.
#[derive(Clone)]
struct Answer {
    username: String,
    realm: String,
    password: String,
    nonce: String,
    uri: String,
    method: String,
    algorithm: Option<String>,
    qop: Option<String>,
    nc: Option<String>,
    cnonce: Option<String>,
}

impl Answer {
    fn new(nonce: &str, algorithm: &str) -> Self {
        Self {
            username: USER.into(),
            realm: "Twilio".into(),
            password: PASS.into(),
            nonce: nonce.into(),
            uri: "/sms".into(),
            method: "POST".into(),
            algorithm: Some(algorithm.into()),
            qop: Some("auth".into()),
            nc: Some("00000001".into()),
            cnonce: Some("0a4f113b".into()),
        }
    }

    fn header(&self) -> String {
        // Unknown names are hashed with MD5: the server must refuse them anyway.
        let alg = match self.algorithm.as_deref() {
            Some("SHA-256") => "SHA-256",
            _ => "MD5",
        };
        let h = |text: &str| hex_hash(alg, text);
        let ha1 = h(&format!(
            "{}:{}:{}",
            self.username, self.realm, self.password
        ));
        let ha2 = h(&format!("{}:{}", self.method, self.uri));
        let response = h(&format!(
            "{ha1}:{}:{}:{}:{}:{ha2}",
            self.nonce,
            self.nc.as_deref().unwrap_or(""),
            self.cnonce.as_deref().unwrap_or(""),
            self.qop.as_deref().unwrap_or("")
        ));
        let mut value = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{response}\"",
            self.username, self.realm, self.nonce, self.uri
        );
        if let Some(a) = &self.algorithm {
            value += &format!(", algorithm={a}");
        }
        if let Some(q) = &self.qop {
            value += &format!(", qop={q}");
        }
        if let Some(nc) = &self.nc {
            value += &format!(", nc={nc}");
        }
        if let Some(c) = &self.cnonce {
            value += &format!(", cnonce=\"{c}\"");
        }
        value
    }
}

#[tokio::test]
async fn challenge_offers_sha256_then_md5() {
    let layer = both();
    let (out, calls) = send(&layer, request("/sms", &[])).await;
    assert_eq!(out.status, StatusCode::UNAUTHORIZED);
    assert_eq!(out.kind, Some(K::Unauthorized));
    assert_eq!(calls, 0);
    let all = challenges(&out);
    assert_eq!(all.len(), 2, "{all:?}");
    for (challenge, algorithm) in all.iter().zip(["SHA-256", "MD5"]) {
        assert!(challenge.starts_with("Digest "), "{challenge}");
        assert_eq!(param(challenge, "realm").as_deref(), Some("Twilio"));
        assert_eq!(param(challenge, "qop").as_deref(), Some("auth"));
        assert_eq!(param(challenge, "algorithm").as_deref(), Some(algorithm));
        assert_eq!(param(challenge, "stale"), None);
    }
    // One nonce for both, and a new one for each challenge.
    assert_eq!(param(&all[0], "nonce"), param(&all[1], "nonce"));
    let later = nonce(&layer).await;
    assert!(!later.is_empty());
    // Only what is configured is offered.
    let (out, _) = send(
        &digest_layer(&[DigestAlgorithm::Md5], Duration::from_secs(60)),
        request("/sms", &[]),
    )
    .await;
    let all = challenges(&out);
    assert_eq!(all.len(), 1);
    assert_eq!(param(&all[0], "algorithm").as_deref(), Some("MD5"));
}

#[tokio::test]
async fn valid_credentials_reach_the_signature_check() {
    let layer = both();
    for algorithm in ["SHA-256", "MD5"] {
        let nonce = nonce(&layer).await;
        let answer = Answer::new(&nonce, algorithm);
        let (out, calls) = send(&layer, request("/sms", &[&answer.header()])).await;
        assert_eq!(out.status, StatusCode::OK, "{algorithm}: {:?}", out.kind);
        assert_eq!(calls, 1);
        assert_eq!(out.url(), Some("https://hooks.example.com/sms"));
        // The nonce lives on: the same answer again passes (stateless nonces).
        let (out, _) = send(&layer, request("/sms", &[&answer.header()])).await;
        assert_eq!(out.status, StatusCode::OK);
        // Right credentials, wrong signature: the signature still decides.
        let mut req = request("/sms", &[&answer.header()]);
        req.headers_mut()
            .insert(&SIGNATURE, HeaderValue::from_static(common::FORGED));
        let (out, calls) = send(&layer, req).await;
        assert_eq!(out.status, StatusCode::FORBIDDEN, "{algorithm}");
        assert_eq!(out.kind, Some(K::Mismatch));
        assert_eq!(calls, 0);
        assert_eq!(challenges(&out), Vec::<String>::new());
    }
    // No algorithm named: MD5, as RFC 7616 says.
    let nonce = nonce(&layer).await;
    let mut answer = Answer::new(&nonce, "MD5");
    answer.algorithm = None;
    let (out, _) = send(&layer, request("/sms", &[&answer.header()])).await;
    assert_eq!(out.status, StatusCode::OK);
}

#[tokio::test]
async fn wrong_credentials_are_refused() {
    let layer = both();
    let nonce = nonce(&layer).await;
    let good = Answer::new(&nonce, "SHA-256");
    let spoil = |f: &dyn Fn(&mut Answer)| {
        let mut a = good.clone();
        f(&mut a);
        a.header()
    };
    let good_header = good.header();
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("no header", vec![]),
        ("Basic instead", vec![common::basic(USER, PASS)]),
        ("scheme only", vec!["Digest".into()]),
        ("empty list", vec!["Digest ".into()]),
        ("not a list", vec!["Digest abc".into()]),
        (
            "unterminated quote",
            vec![good_header.replacen("uri=\"/sms\"", "uri=\"/sms", 1)],
        ),
        (
            "duplicate parameter",
            vec![format!("{good_header}, realm=\"Twilio\"")],
        ),
        (
            "duplicate parameter in another case",
            vec![format!("{good_header}, URI=\"/sms\"")],
        ),
        (
            "repeated header",
            vec![good_header.clone(), good_header.clone()],
        ),
        ("wrong realm", vec![spoil(&|a| a.realm = "twilio".into())]),
        ("wrong uri", vec![spoil(&|a| a.uri = "/other".into())]),
        (
            "uri with a query the request lacks",
            vec![spoil(&|a| a.uri = "/sms".into()).replace("/sms\"", "/sms?x=1\"")],
        ),
        ("wrong method", vec![spoil(&|a| a.method = "GET".into())]),
        (
            "wrong password",
            vec![spoil(&|a| a.password = "guess".into())],
        ),
        ("wrong user", vec![spoil(&|a| a.username = "admin".into())]),
        ("no qop", vec![spoil(&|a| a.qop = None)]),
        (
            "qop auth-int",
            vec![spoil(&|a| a.qop = Some("auth-int".into()))],
        ),
        ("no nc", vec![spoil(&|a| a.nc = None)]),
        ("short nc", vec![spoil(&|a| a.nc = Some("1".into()))]),
        ("no cnonce", vec![spoil(&|a| a.cnonce = None)]),
        (
            "session algorithm",
            vec![spoil(&|a| a.algorithm = Some("MD5-sess".into()))],
        ),
        (
            "unknown algorithm",
            vec![spoil(&|a| a.algorithm = Some("SHA-512-256".into()))],
        ),
        (
            "response of another nonce",
            vec![good_header.replace(&format!("nonce=\"{nonce}\""), "nonce=\"1-00\"")],
        ),
        (
            "forged nonce, wrong password",
            vec![spoil(&|a| {
                a.nonce = "99999999999-00".into();
                a.password = "guess".into();
            })],
        ),
        ("userhash", vec![format!("{good_header}, userhash=true")]),
    ];
    for (name, headers) in cases {
        let refs: Vec<&str> = headers.iter().map(String::as_str).collect();
        let (out, calls) = send(&layer, request("/sms", &refs)).await;
        assert_eq!(out.status, StatusCode::UNAUTHORIZED, "{name}");
        assert_eq!(out.kind, Some(K::Unauthorized), "{name}");
        assert_eq!(calls, 0, "{name}");
        let all = challenges(&out);
        assert_eq!(all.len(), 2, "{name}");
        assert!(all.iter().all(|c| param(c, "stale").is_none()), "{name}");
    }
    // The control: the unspoiled answer passes.
    let (out, _) = send(&layer, request("/sms", &[&good_header])).await;
    assert_eq!(out.status, StatusCode::OK);
}

#[tokio::test]
async fn an_algorithm_not_offered_is_refused() {
    let layer = digest_layer(&[DigestAlgorithm::Sha256], Duration::from_secs(60));
    let nonce = nonce(&layer).await;
    let mut md5 = Answer::new(&nonce, "MD5");
    let (out, _) = send(&layer, request("/sms", &[&md5.header()])).await;
    assert_eq!(out.kind, Some(K::Unauthorized));
    md5.algorithm = None;
    let (out, _) = send(&layer, request("/sms", &[&md5.header()])).await;
    assert_eq!(out.kind, Some(K::Unauthorized));
    let (out, _) = send(
        &layer,
        request("/sms", &[&Answer::new(&nonce, "SHA-256").header()]),
    )
    .await;
    assert_eq!(out.status, StatusCode::OK);
}

#[tokio::test]
async fn expired_nonce_is_stale_and_the_fresh_one_works() {
    let layer = digest_layer(
        &[DigestAlgorithm::Sha256, DigestAlgorithm::Md5],
        Duration::from_secs(1),
    );
    let nonce = nonce(&layer).await;
    let answer = Answer::new(&nonce, "MD5");
    let (out, _) = send(&layer, request("/sms", &[&answer.header()])).await;
    assert_eq!(out.status, StatusCode::OK, "fresh nonce");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (out, calls) = send(&layer, request("/sms", &[&answer.header()])).await;
    assert_eq!(out.status, StatusCode::UNAUTHORIZED);
    assert_eq!(out.kind, Some(K::StaleNonce));
    assert_eq!(calls, 0);
    let all = challenges(&out);
    assert_eq!(all.len(), 2);
    assert!(all
        .iter()
        .all(|c| param(c, "stale").as_deref() == Some("true")));
    // An expired nonce with a wrong password is not stale: the client must ask for a password.
    let mut wrong = answer.clone();
    wrong.password = "guess".into();
    let (out, _) = send(&layer, request("/sms", &[&wrong.header()])).await;
    assert_eq!(out.kind, Some(K::Unauthorized));
    // The nonce of the stale challenge works.
    let fresh = param(&all[0], "nonce").unwrap();
    assert_ne!(fresh, nonce);
    let (out, _) = send(
        &layer,
        request("/sms", &[&Answer::new(&fresh, "SHA-256").header()]),
    )
    .await;
    assert_eq!(out.status, StatusCode::OK);
}

/// Each layer (each replica, each restart) makes its own nonce key. A nonce from another
/// one, answered with the right password, is stale: the client retries with a nonce of ours.
#[tokio::test]
async fn a_nonce_from_another_replica_is_stale() {
    let replica_a = both();
    let replica_b = both();
    let from_a = nonce(&replica_a).await;
    let answer = Answer::new(&from_a, "SHA-256");
    let (out, _) = send(&replica_a, request("/sms", &[&answer.header()])).await;
    assert_eq!(out.status, StatusCode::OK);
    let (out, calls) = send(&replica_b, request("/sms", &[&answer.header()])).await;
    assert_eq!(out.kind, Some(K::StaleNonce));
    assert_eq!(calls, 0);
    let retry = param(&challenges(&out)[0], "nonce").unwrap();
    let (out, _) = send(
        &replica_b,
        request("/sms", &[&Answer::new(&retry, "SHA-256").header()]),
    )
    .await;
    assert_eq!(out.status, StatusCode::OK);
    // A clone of a layer shares its key.
    let clone = replica_a.clone();
    let (out, _) = send(&clone, request("/sms", &[&answer.header()])).await;
    assert_eq!(out.status, StatusCode::OK);
}

#[tokio::test]
async fn basic_and_digest_replace_each_other() {
    let layer = TwilioSignatureLayer::new(TOKEN)
        .unwrap()
        .url_source(UrlSource::base_url(BASE).unwrap());
    let digest = layer
        .clone()
        .basic_auth(USER, PASS)
        .unwrap()
        .digest_auth(USER, PASS)
        .unwrap();
    let (out, _) = send(&digest, request("/sms", &[&common::basic(USER, PASS)])).await;
    assert_eq!(out.kind, Some(K::Unauthorized));
    assert!(challenges(&out).iter().all(|c| c.starts_with("Digest ")));
    let basic = layer
        .digest_auth(USER, PASS)
        .unwrap()
        .basic_auth(USER, PASS)
        .unwrap();
    let (out, _) = send(&basic, request("/sms", &[&common::basic(USER, PASS)])).await;
    assert_eq!(out.status, StatusCode::OK);
    let (out, _) = send(&basic, request("/sms", &[])).await;
    assert_eq!(challenges(&out), vec!["Basic realm=\"Twilio\"".to_owned()]);
}

#[test]
fn digest_settings_are_checked_and_secrets_redacted() {
    let layer = TwilioSignatureLayer::new(TOKEN).unwrap();
    let md5 = || DigestSettings::default().algorithms(&[DigestAlgorithm::Md5]);
    for (user, settings) in [
        ("", md5()),
        ("a:b", md5()),
        ("a\"b", md5()),
        ("a\\b", md5()),
        ("ok", DigestSettings::default().algorithms(&[])),
        ("ok", md5().nonce_lifetime(Duration::from_millis(999))),
        ("ok", md5().nonce_key(&[9; 31])),
    ] {
        let described = format!("{user:?} {settings:?}");
        assert!(
            matches!(
                layer
                    .clone()
                    .digest_auth_with_settings(user, "pw", settings),
                Err(tower_twilio_signature::ConfigError::InvalidDigestAuth(_))
            ),
            "{described}"
        );
    }
    assert!(layer
        .clone()
        .digest_auth_with_settings("ok", "pw", md5().nonce_key(&[9; 32]))
        .is_ok());
    let debug = format!("{:?}", both());
    assert!(!debug.contains(PASS), "{debug}");
    assert!(debug.contains("DigestAuth"), "{debug}");
}

/// Under `Router::nest`, the `uri` a client signs is the full target, as in `OriginalUri`.
#[tokio::test]
async fn nested_routes_compare_the_original_target() {
    let layer = both();
    let app: Router = Router::new().nest(
        "/twilio",
        Router::new()
            .route("/sms", post(|| async { "ok" }))
            .route_layer(layer.clone()),
    );
    let path = "/twilio/sms?x=1";
    let nonce = nonce(&layer).await;
    let mut answer = Answer::new(&nonce, "SHA-256");
    answer.uri = path.into();
    let res = app
        .clone()
        .oneshot(request(path, &[&answer.header()]))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    answer.uri = "/sms?x=1".into();
    let res = app
        .oneshot(request(path, &[&answer.header()]))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

// A real client: curl.

/// Serves `/sms` on 127.0.0.1 behind a Digest layer; the handler answers with the body it
/// got and the algorithm of the `Authorization` it saw.
async fn serve(algorithms: &[DigestAlgorithm]) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let layer = TwilioSignatureLayer::new(TOKEN)
        .unwrap()
        .url_source(UrlSource::base_url(&format!("http://{addr}")).unwrap())
        .digest_auth_with_settings(USER, PASS, DigestSettings::default().algorithms(algorithms))
        .unwrap();
    let app: Router = Router::new()
        .route(
            "/sms",
            post(|headers: http::HeaderMap, body: String| async move {
                let auth = headers[AUTHORIZATION].to_str().unwrap().to_owned();
                let algorithm = param(&auth, "algorithm").unwrap_or_else(|| "none".into());
                format!("{algorithm}|{body}")
            }),
        )
        .layer(layer);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Runs `curl --digest` on a signed form POST and returns (status, body, verbose log).
async fn curl(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let url = format!("http://{addr}{path}");
    let signature = sign(TOKEN, &url, PARAMS);
    let output = tokio::process::Command::new("curl")
        .args(["--silent", "--show-error", "--verbose", "--max-time", "20"])
        .args(["--digest", "--user", &format!("{USER}:{PASS}")])
        .args(["--header", &format!("X-Twilio-Signature: {signature}")])
        .args(["--data", &form_body(PARAMS)])
        .args(["--write-out", "\n%{http_code}"])
        .arg(&url)
        .output()
        .await
        .expect("curl must be installed to run this test (apt-get install -y curl)");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "curl failed: {stderr}");
    let (body, status) = stdout.rsplit_once('\n').unwrap();
    (status.parse().unwrap(), body.to_owned(), stderr)
}

/// curl answers the first Digest challenge and ignores the others ("Ignoring duplicate
/// digest auth header" in its verbose log), so with both offered it uses SHA-256; each
/// algorithm is also tested alone, and with MD5 offered first.
#[tokio::test]
async fn curl_digest_md5_and_sha256() {
    let form = form_body(PARAMS);
    for offered in [
        &[DigestAlgorithm::Md5][..],
        &[DigestAlgorithm::Sha256][..],
        &[DigestAlgorithm::Sha256, DigestAlgorithm::Md5][..],
        &[DigestAlgorithm::Md5, DigestAlgorithm::Sha256][..],
    ] {
        let addr = serve(offered).await;
        let (status, body, log) = curl(addr, "/sms").await;
        assert_eq!(status, 200, "{offered:?}: {body}\n{log}");
        let (algorithm, echoed) = body.split_once('|').unwrap();
        assert_eq!(
            echoed, form,
            "{offered:?}: the handler got the body curl sent"
        );
        assert_eq!(algorithm, offered[0].as_str(), "{offered:?}");
        // curl first sent the request without credentials or body, got 401, then sent it
        // again with both.
        assert!(log.contains("Content-Length: 0"), "{log}");
        assert!(log.contains("HTTP/1.1 401"), "{log}");
        assert!(log.contains("Authorization: Digest"), "{log}");
        if offered.len() > 1 {
            assert!(
                log.contains("Ignoring duplicate digest auth header"),
                "{log}"
            );
        }
    }
}

#[tokio::test]
async fn curl_with_a_wrong_password_gets_401() {
    let addr = serve(&[DigestAlgorithm::Sha256, DigestAlgorithm::Md5]).await;
    let url = format!("http://{addr}/sms");
    let output = tokio::process::Command::new("curl")
        .args(["--silent", "--max-time", "20", "--digest"])
        .args(["--user", &format!("{USER}:wrong")])
        .args([
            "--header",
            &format!("X-Twilio-Signature: {}", sign(TOKEN, &url, PARAMS)),
        ])
        .args(["--data", &form_body(PARAMS)])
        .args(["--output", "/dev/null", "--write-out", "%{http_code}"])
        .arg(&url)
        .output()
        .await
        .expect("curl must be installed to run this test (apt-get install -y curl)");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "401");
}

/// Serves `/sms` from two replicas behind a load balancer that alternates between them
/// with no affinity, as a round-robin balancer does with one client; returns the address and
/// the count of requests it has seen.
async fn serve_two_replicas(
    settings: DigestSettings,
) -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let replica = || {
        let layer = TwilioSignatureLayer::new(TOKEN)
            .unwrap()
            .url_source(UrlSource::base_url(&format!("http://{addr}")).unwrap())
            .digest_auth_with_settings(USER, PASS, settings.clone())
            .unwrap();
        Router::new()
            .route("/sms", post(|| async { "ok|" }))
            .layer(layer)
    };
    let (a, b) = (replica(), replica());
    let turn = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&turn);
    let balancer = Router::new().fallback_service(service_fn(move |req: Request<Body>| {
        let next = if seen.fetch_add(1, Ordering::SeqCst) % 2 == 0 {
            a.clone()
        } else {
            b.clone()
        };
        next.oneshot(req)
    }));
    tokio::spawn(async move { axum::serve(listener, balancer).await.unwrap() });
    (addr, turn)
}

/// Each replica with its own random key: curl's answer to one replica's challenge reaches
/// the other, which answers `stale=true` with its own nonce; curl retries, and that answer
/// reaches the first replica, and so on: curl retries on every stale answer until it reaches
/// its limit of follow-up requests (exit code 47, "too many redirects", after about 50), and
/// never gets through while the balancer alternates strictly.
#[tokio::test]
async fn curl_across_replicas_with_their_own_keys_never_gets_through() {
    let (addr, turn) = serve_two_replicas(DigestSettings::default()).await;
    let url = format!("http://{addr}/sms");
    let output = tokio::process::Command::new("curl")
        .args(["--silent", "--verbose", "--max-time", "20", "--digest"])
        .args(["--user", &format!("{USER}:{PASS}")])
        .args([
            "--header",
            &format!("X-Twilio-Signature: {}", sign(TOKEN, &url, PARAMS)),
        ])
        .args(["--data", &form_body(PARAMS)])
        .arg(&url)
        .output()
        .await
        .expect("curl must be installed to run this test (apt-get install -y curl)");
    let log = String::from_utf8_lossy(&output.stderr);
    // 47: too many redirects (follow-up requests).
    assert_eq!(output.status.code(), Some(47), "{log}");
    assert!(!log.contains("HTTP/1.1 200"), "{log}");
    assert!(log.contains("stale=true"), "{log}");
    let requests = turn.load(std::sync::atomic::Ordering::SeqCst);
    assert!((10..=100).contains(&requests), "{requests}");
}

/// The same two replicas given one nonce key: curl gets through on its first answer.
#[tokio::test]
async fn curl_across_replicas_sharing_a_nonce_key() {
    let key = [0x5a; 32];
    let (addr, turn) = serve_two_replicas(DigestSettings::default().nonce_key(&key)).await;
    let (status, body, log) = curl(addr, "/sms").await;
    assert_eq!(status, 200, "{log}");
    assert_eq!(body, "ok|");
    assert_eq!(turn.load(std::sync::atomic::Ordering::SeqCst), 2, "{log}");
    assert!(!log.contains("stale=true"), "{log}");
}
