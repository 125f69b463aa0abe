//! Per-account Auth Tokens: one URL serving many accounts, each webhook verified with the
//! token of the `AccountSid` it names, beside the static keys.

mod common;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, RwLock};

use axum::body::Body;
use http::header::CONTENT_TYPE;
use http::{Request, Response, StatusCode};
use tower::{service_fn, Layer, ServiceExt};
use tower_twilio_signature::{
    sign, sign_body, sign_url, sign_with, Algorithm, MatchedKey, SignatureError,
    SignatureErrorKind as K, TwilioSignatureLayer, UrlSource, VerifiedBody, VerifiedWebhook,
    Verifier,
};

use common::{form_body, Calls, Outcome, FORM, SETTINGS, SIGNATURE, TOKEN};

const BASE: &str = "https://hooks.example.com";
const AC1: &str = "AC11111111111111111111111111111111";
const AC2: &str = "AC22222222222222222222222222222222";
const AC1_TOKEN: &str = "token-of-account-one";
const AC2_TOKEN: &str = "token-of-account-two";

type Tokens = Arc<RwLock<HashMap<String, String>>>;

fn tokens() -> Tokens {
    let map = HashMap::from([
        (AC1.to_owned(), AC1_TOKEN.to_owned()),
        (AC2.to_owned(), AC2_TOKEN.to_owned()),
        ("ACspaces".to_owned(), " padded-token ".to_owned()),
        ("ACnewline".to_owned(), "token\n".to_owned()),
        ("ACempty".to_owned(), String::new()),
    ]);
    Arc::new(RwLock::new(map))
}

fn lookup(tokens: &Tokens) -> impl Fn(&str) -> Option<String> + Send + Sync + 'static {
    let tokens = Arc::clone(tokens);
    move |sid: &str| tokens.read().ok()?.get(sid).cloned()
}

fn layer(verifier: Verifier) -> TwilioSignatureLayer {
    TwilioSignatureLayer::from_verifier(verifier).url_source(UrlSource::base_url(BASE).unwrap())
}

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

fn form_post(token: &str, params: &[(&str, &str)]) -> Request<Body> {
    Request::post("/sms")
        .header(CONTENT_TYPE, FORM)
        .header(&SIGNATURE, sign(token, &format!("{BASE}/sms"), params))
        .body(Body::from(form_body(params)))
        .unwrap()
}

fn key(out: &Outcome) -> Option<MatchedKey> {
    out.verified.as_ref().map(|v| v.key().clone())
}

#[tokio::test]
async fn form_webhooks_of_each_account() {
    let tokens = tokens();
    let only_accounts = layer(Verifier::from_account_tokens(lookup(&tokens)));
    let both = layer(
        Verifier::new(TOKEN)
            .unwrap()
            .with_account_tokens(lookup(&tokens)),
    );
    struct Case {
        name: &'static str,
        token: &'static str,
        params: Vec<(&'static str, &'static str)>,
        accounts_only: Result<MatchedKey, K>,
        with_static: Result<MatchedKey, K>,
    }
    let account = |sid: &str| Ok(MatchedKey::Account(sid.into()));
    let cases = vec![
        Case {
            name: "account one",
            token: AC1_TOKEN,
            params: vec![("AccountSid", AC1), ("Body", "hi")],
            accounts_only: account(AC1),
            with_static: account(AC1),
        },
        Case {
            name: "account two",
            token: AC2_TOKEN,
            params: vec![("AccountSid", AC2), ("Body", "hi")],
            accounts_only: account(AC2),
            with_static: account(AC2),
        },
        Case {
            name: "account named twice with the same value",
            token: AC2_TOKEN,
            params: vec![("AccountSid", AC2), ("AccountSid", AC2)],
            accounts_only: account(AC2),
            with_static: account(AC2),
        },
        Case {
            name: "static token, unknown account",
            token: TOKEN,
            params: vec![("AccountSid", "ACunknown"), ("Body", "hi")],
            accounts_only: Err(K::UnknownAccount),
            with_static: Ok(MatchedKey::AuthToken(0)),
        },
        Case {
            name: "static token, known account: static keys come first",
            token: TOKEN,
            params: vec![("AccountSid", AC1)],
            accounts_only: Err(K::Mismatch),
            with_static: Ok(MatchedKey::AuthToken(0)),
        },
        Case {
            name: "signed with another account's token",
            token: AC2_TOKEN,
            params: vec![("AccountSid", AC1), ("Body", "hi")],
            accounts_only: Err(K::Mismatch),
            with_static: Err(K::Mismatch),
        },
        Case {
            name: "unknown account",
            token: AC1_TOKEN,
            params: vec![("AccountSid", "AC99999999999999999999999999999999")],
            accounts_only: Err(K::UnknownAccount),
            with_static: Err(K::UnknownAccount),
        },
        Case {
            name: "no AccountSid",
            token: AC1_TOKEN,
            params: vec![("Body", "hi")],
            accounts_only: Err(K::Mismatch),
            with_static: Err(K::Mismatch),
        },
        Case {
            name: "two accounts named",
            token: AC1_TOKEN,
            params: vec![("AccountSid", AC1), ("AccountSid", AC2)],
            accounts_only: Err(K::Mismatch),
            with_static: Err(K::Mismatch),
        },
        Case {
            name: "AccountSid in another case",
            token: AC1_TOKEN,
            params: vec![("accountsid", AC1)],
            accounts_only: Err(K::Mismatch),
            with_static: Err(K::Mismatch),
        },
        Case {
            name: "token with spaces around it",
            token: " padded-token ",
            params: vec![("AccountSid", "ACspaces")],
            accounts_only: Err(K::UnknownAccount),
            with_static: Err(K::UnknownAccount),
        },
        Case {
            name: "token with a newline",
            token: "token\n",
            params: vec![("AccountSid", "ACnewline")],
            accounts_only: Err(K::UnknownAccount),
            with_static: Err(K::UnknownAccount),
        },
        Case {
            name: "empty token",
            token: "x",
            params: vec![("AccountSid", "ACempty")],
            accounts_only: Err(K::UnknownAccount),
            with_static: Err(K::UnknownAccount),
        },
    ];
    for case in cases {
        for (which, layer, want) in [
            ("accounts only", &only_accounts, &case.accounts_only),
            ("with a static token", &both, &case.with_static),
        ] {
            let (out, calls) = send(layer, form_post(case.token, &case.params)).await;
            match want {
                Ok(want) => {
                    assert_eq!(
                        out.status,
                        StatusCode::OK,
                        "{} ({which}): {:?}",
                        case.name,
                        out.kind
                    );
                    assert_eq!(key(&out).as_ref(), Some(want), "{} ({which})", case.name);
                    assert_eq!(calls, 1);
                }
                Err(kind) => {
                    assert_eq!(out.status, StatusCode::FORBIDDEN, "{} ({which})", case.name);
                    assert_eq!(out.kind, Some(*kind), "{} ({which})", case.name);
                    assert_eq!(calls, 0, "{} ({which})", case.name);
                }
            }
        }
    }
}

#[tokio::test]
async fn accounts_added_later_are_known_at_once() {
    let tokens = tokens();
    let layer = layer(Verifier::from_account_tokens(lookup(&tokens)));
    let params = [("AccountSid", "AC33333333333333333333333333333333")];
    let (out, _) = send(&layer, form_post("token-three", &params)).await;
    assert_eq!(out.kind, Some(K::UnknownAccount));
    tokens
        .write()
        .unwrap()
        .insert(params[0].1.to_owned(), "token-three".to_owned());
    let (out, _) = send(&layer, form_post("token-three", &params)).await;
    assert_eq!(out.status, StatusCode::OK);
    tokens.write().unwrap().remove(params[0].1);
    let (out, _) = send(&layer, form_post("token-three", &params)).await;
    assert_eq!(out.kind, Some(K::UnknownAccount));
}

#[tokio::test]
async fn json_and_get_webhooks_name_the_account_in_the_query() {
    let tokens = tokens();
    let layer = layer(Verifier::from_account_tokens(lookup(&tokens)));
    let body = br#"{"EventType":"onMessageAdded"}"#;
    let (url, signature) = sign_body(AC1_TOKEN, &format!("{BASE}/events?AccountSid={AC1}"), body);
    let json = |signature: &str, url: &str| {
        Request::post(url.strip_prefix(BASE).unwrap())
            .header(CONTENT_TYPE, "application/json")
            .header(&SIGNATURE, signature)
            .body(Body::from(&body[..]))
            .unwrap()
    };
    let (out, _) = send(&layer, json(&signature, &url)).await;
    assert_eq!(
        key(&out),
        Some(MatchedKey::Account(AC1.into())),
        "{:?}",
        out.kind
    );
    // The account in a JSON body is not what is looked up.
    let (url, signature) = sign_body(AC1_TOKEN, &format!("{BASE}/events"), body);
    let (out, _) = send(&layer, json(&signature, &url)).await;
    assert_eq!(out.kind, Some(K::Mismatch));

    let get = |url: &str, token: &str| {
        Request::get(url.strip_prefix(BASE).unwrap())
            .header(&SIGNATURE, sign_url(token, url))
            .body(Body::empty())
            .unwrap()
    };
    let url = format!("{BASE}/voice?AccountSid={AC2}&CallSid=CA1");
    let (out, _) = send(&layer, get(&url, AC2_TOKEN)).await;
    assert_eq!(key(&out), Some(MatchedKey::Account(AC2.into())));
    let (out, _) = send(&layer, get(&url, AC1_TOKEN)).await;
    assert_eq!(out.kind, Some(K::Mismatch));
    let url = format!("{BASE}/voice?AccountSid=ACnope");
    let (out, _) = send(&layer, get(&url, AC2_TOKEN)).await;
    assert_eq!(out.kind, Some(K::UnknownAccount));
    // A form body names the account in the body, not in the query.
    let params = [("Body", "hi")];
    let url = format!("{BASE}/sms?AccountSid={AC1}");
    let req = Request::post(url.strip_prefix(BASE).unwrap())
        .header(CONTENT_TYPE, FORM)
        .header(&SIGNATURE, sign(AC1_TOKEN, &url, params))
        .body(Body::from(form_body(&params)))
        .unwrap();
    let (out, _) = send(&layer, req).await;
    assert_eq!(out.kind, Some(K::Mismatch));
    // A form post without parameters names it in the query, as a GET does.
    let req = Request::post(url.strip_prefix(BASE).unwrap())
        .header(CONTENT_TYPE, FORM)
        .header(&SIGNATURE, sign_url(AC1_TOKEN, &url))
        .body(Body::empty())
        .unwrap();
    let (out, _) = send(&layer, req).await;
    assert_eq!(key(&out), Some(MatchedKey::Account(AC1.into())));
}

#[tokio::test]
async fn shared_key_webhooks_do_not_consult_the_accounts() {
    let tokens = tokens();
    let layer = layer(
        Verifier::from_shared_key("KS1", "shared-secret")
            .unwrap()
            .with_account_tokens(lookup(&tokens)),
    );
    let params = [("AccountSid", AC1)];
    let mut req = form_post(AC1_TOKEN, &params);
    req.headers_mut()
        .insert(&SETTINGS, "key=KS1,algorithm=HMAC_SHA1".parse().unwrap());
    let (out, _) = send(&layer, req).await;
    assert_eq!(out.kind, Some(K::Mismatch));
    let mut req = form_post(AC1_TOKEN, &params);
    req.headers_mut().insert(
        &SIGNATURE,
        sign_with(
            Algorithm::HmacSha256,
            "shared-secret",
            &format!("{BASE}/sms"),
            params,
        )
        .parse()
        .unwrap(),
    );
    req.headers_mut()
        .insert(&SETTINGS, "key=KS1,algorithm=HMAC_SHA256".parse().unwrap());
    let (out, _) = send(&layer, req).await;
    assert_eq!(key(&out), Some(MatchedKey::SharedKey("KS1".into())));
    // Without the settings header, the accounts are consulted even though no static Auth
    // Token is configured.
    let (out, _) = send(&layer, form_post(AC1_TOKEN, &params)).await;
    assert_eq!(key(&out), Some(MatchedKey::Account(AC1.into())));
}

#[test]
fn verifier_without_the_layer() {
    let tokens = tokens();
    let verifier = Verifier::from_account_tokens(lookup(&tokens));
    let url = format!("{BASE}/sms");
    let params = [("AccountSid", AC2), ("Body", "hi")];
    let header = sign(AC2_TOKEN, &url, params);
    let verified = verifier.verify_form(&url, params, &header, None).unwrap();
    assert_eq!(verified.key(), &MatchedKey::Account(AC2.into()));
    let err = verifier
        .verify_form(&url, [("AccountSid", "ACx")], &header, None)
        .unwrap_err();
    assert_eq!(err.kind(), K::UnknownAccount);
    assert_eq!(err.status(), StatusCode::FORBIDDEN);
    let body = b"{}";
    let (url, header) = sign_body(AC1_TOKEN, &format!("{BASE}/e?AccountSid={AC1}"), body);
    let verified = verifier.verify_body(&url, body, &header, None).unwrap();
    assert_eq!(verified.key(), &MatchedKey::Account(AC1.into()));
    // The same rule as the layer's: without form parameters (a GET) the query names the
    // account; with them, only the form does.
    let url = format!("{BASE}/voice?AccountSid={AC2}&CallSid=CA1");
    let none: [(&str, &str); 0] = [];
    let header = sign_url(AC2_TOKEN, &url);
    let verified = verifier.verify_form(&url, none, &header, None).unwrap();
    assert_eq!(verified.key(), &MatchedKey::Account(AC2.into()));
    let url = format!("{BASE}/sms?AccountSid={AC1}");
    let header = sign(AC1_TOKEN, &url, [("Body", "hi")]);
    let err = verifier
        .verify_form(&url, [("Body", "hi")], &header, None)
        .unwrap_err();
    assert_eq!(err.kind(), K::Mismatch);
    // Debug shows that a lookup is set, not what it holds.
    let debug = format!("{verifier:?}");
    assert!(debug.contains("account_tokens"), "{debug}");
    assert!(!debug.contains(AC1_TOKEN), "{debug}");
    // A verifier with only static keys has no lookup.
    let plain = Verifier::new(TOKEN).unwrap();
    assert!(!format!("{plain:?}").contains("account_tokens"));
    let _: &dyn std::error::Error = &SignatureError::new(K::UnknownAccount);
}
