//! Property tests: the crate against a plain reference of Twilio's algorithm, and
//! sign-then-verify through the layer, where any single change to a signed request
//! must be refused.

use std::collections::BTreeSet;
use std::convert::Infallible;

use axum::body::Body;
use http::{Request, Response, StatusCode};
use proptest::prelude::*;
use tower::{service_fn, Layer, ServiceExt};
use tower_twilio_signature::{
    body_sha256, sign, url_with_body_sha256, SignatureError, TwilioSignatureLayer, UrlSource,
    VerifiedBody, Verifier,
};

/// The algorithm as Twilio's documentation states it, written as plainly as possible (shared
/// with the fuzz targets).
#[allow(dead_code, unreachable_pub, missing_docs)]
#[path = "fuzz_targets/mod.rs"]
mod targets;
use targets::reference_sign;

/// Text with the characters that matter to form encoding and sorting.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9]{0,8}",
        "[ +%&=?#/a-z]{0,8}",
        "\\PC{0,6}",
        Just(String::new()),
        Just("ü日😀".to_owned()),
    ]
}

fn params() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((text(), text()), 0..8)
        .prop_flat_map(|pairs| {
            // Sometimes repeat a key with another value, as Twilio does for MediaUrl.
            let n = pairs.len();
            (Just(pairs), prop::option::of((0..n.max(1), text())))
        })
        .prop_map(|(mut pairs, repeat)| {
            if let (Some((i, v)), false) = (repeat, pairs.is_empty()) {
                let key = pairs[i % pairs.len()].0.clone();
                pairs.push((key, v));
            }
            pairs
        })
}

/// A path of URI-safe characters and percent-escapes, as a request target carries it.
fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            "[a-zA-Z0-9._~-]{1,6}",
            Just("%20".to_owned()),
            Just("%C3%BC".to_owned())
        ],
        0..4,
    )
    .prop_map(|segs| format!("/{}", segs.join("/")))
}

fn query() -> impl Strategy<Value = Option<String>> {
    prop::option::of(
        prop::collection::vec(("[a-zA-Z0-9]{1,5}", "[a-zA-Z0-9%+']{0,6}"), 1..4).prop_map(
            |pairs| {
                pairs
                    .into_iter()
                    .map(|(k, v)| format!("{k}={}", v.replace('%', "%25")))
                    .collect::<Vec<_>>()
                    .join("&")
            },
        ),
    )
}

#[derive(Debug, Clone)]
struct Webhook {
    token: String,
    https: bool,
    host: String,
    port: Option<u16>,
    path: String,
    query: Option<String>,
    params: Vec<(String, String)>,
}

impl Webhook {
    fn base(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        match self.port {
            Some(p) => format!("{scheme}://{}:{p}", self.host),
            None => format!("{scheme}://{}", self.host),
        }
    }

    fn target(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }

    fn url(&self) -> String {
        format!("{}{}", self.base(), self.target())
    }

    fn form(&self) -> String {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.params)
            .finish()
    }
}

fn webhook() -> impl Strategy<Value = Webhook> {
    (
        // An Auth Token: printable ASCII, without whitespace at either end.
        "[!-~]([ -~]{0,38}[!-~])?",
        any::<bool>(),
        "[a-z]{1,8}(\\.[a-z]{2,4}){1,2}",
        prop::option::of(prop_oneof![Just(443u16), Just(80), 1024u16..65535]),
        path(),
        query(),
        params(),
    )
        .prop_map(|(token, https, host, port, path, query, params)| Webhook {
            token,
            https,
            host,
            port,
            path,
            query,
            params,
        })
}

/// Sends a form webhook through the layer; `Ok(())` if the inner service ran.
fn send(
    layer_base: &str,
    token: &str,
    target: &str,
    form: String,
    signature: &str,
) -> Result<(), SignatureError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let svc = TwilioSignatureLayer::new(token)
            .unwrap()
            .url_source(UrlSource::base_url(layer_base).unwrap())
            .layer(service_fn(|_req: Request<VerifiedBody>| async {
                Ok::<_, Infallible>(Response::new(Body::empty()))
            }));
        let req = Request::post(target)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", signature)
            .body(Body::from(form))
            .unwrap();
        let res = svc.oneshot(req).await.unwrap();
        match res.extensions().get::<SignatureError>() {
            None => {
                assert_eq!(res.status(), StatusCode::OK);
                Ok(())
            }
            Some(e) => {
                assert_eq!(res.status(), e.status());
                Err(e.clone())
            }
        }
    })
}

/// The ways one signed request can be changed, each one the SDKs do not forgive.
#[derive(Debug, Clone)]
enum Change {
    Value(usize, String),
    Key(usize, String),
    AddPair(String, String),
    RemovePair(usize),
    Query(String),
    Path(String),
    Scheme,
    Host(String),
    Port(u16),
    Token(String),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (any::<usize>(), text()).prop_map(|(i, v)| Change::Value(i, v)),
        (any::<usize>(), text()).prop_map(|(i, k)| Change::Key(i, k)),
        (text(), text()).prop_map(|(k, v)| Change::AddPair(k, v)),
        any::<usize>().prop_map(Change::RemovePair),
        "[a-z]{1,4}=[0-9]{1,3}".prop_map(Change::Query),
        "/[a-z]{1,6}".prop_map(Change::Path),
        Just(Change::Scheme),
        "[a-z]{1,8}\\.test".prop_map(Change::Host),
        (1024u16..65535).prop_map(Change::Port),
        "[!-~]([ -~]{0,18}[!-~])?".prop_map(Change::Token),
    ]
}

/// Applies a change to what is sent (or verified), keeping what was signed. Returns
/// `None` when the change would not alter the string Twilio signs (and so proves nothing).
fn apply(w: &Webhook, c: &Change) -> Option<Webhook> {
    let mut m = w.clone();
    let canonical = |p: &[(String, String)]| p.iter().cloned().collect::<BTreeSet<_>>();
    let concat = |p: &[(String, String)]| {
        canonical(p)
            .into_iter()
            .map(|(k, v)| k + &v)
            .collect::<String>()
    };
    match c {
        Change::Value(i, v) if !m.params.is_empty() => {
            let i = i % m.params.len();
            m.params[i].1 = v.clone();
        }
        Change::Key(i, k) if !m.params.is_empty() => {
            let i = i % m.params.len();
            m.params[i].0 = k.clone();
        }
        Change::AddPair(k, v) => m.params.push((k.clone(), v.clone())),
        Change::RemovePair(i) if !m.params.is_empty() => {
            let i = i % m.params.len();
            m.params.remove(i);
        }
        Change::Query(q) => {
            m.query = Some(match &m.query {
                Some(old) => format!("{old}&{q}"),
                None => q.clone(),
            });
        }
        Change::Path(p) => m.path = format!("{}{p}", m.path.trim_end_matches('/')),
        Change::Scheme => m.https = !m.https,
        Change::Host(h) if *h != m.host => m.host = h.clone(),
        // Dropping the port is forgiven (Twilio drops it for voice over HTTPS), so only a
        // signed port replaced by another one must be refused.
        Change::Port(p) if m.port.is_some() && Some(*p) != m.port => m.port = Some(*p),
        Change::Token(t) if *t != m.token => m.token = t.clone(),
        _ => return None,
    }
    // A change the signed string cannot see (the same pairs, or the same concatenation of
    // keys and values, which the algorithm does not delimit) is no test of the verifier.
    let same_params = concat(&m.params) == concat(&w.params);
    let same_url = m.url() == w.url() && m.https == w.https;
    if same_params && same_url && m.token == w.token {
        return None;
    }
    if m.token != w.token
        && reference_sign(&m.token, &w.url(), &w.params)
            == reference_sign(&w.token, &w.url(), &w.params)
    {
        return None;
    }
    Some(m)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn sign_agrees_with_the_reference(w in webhook()) {
        let url = w.url();
        prop_assert_eq!(sign(&w.token, &url, &w.params), reference_sign(&w.token, &url, &w.params));
    }

    #[test]
    fn verifier_accepts_what_was_signed(w in webhook()) {
        let url = w.url();
        let header = reference_sign(&w.token, &url, &w.params);
        let verified = Verifier::new(&w.token).unwrap().verify_form(&url, &w.params, &header, None);
        prop_assert!(verified.is_ok(), "{:?}", verified);
    }

    #[test]
    fn layer_accepts_what_was_signed(w in webhook()) {
        let header = reference_sign(&w.token, &w.url(), &w.params);
        let got = send(&w.base(), &w.token, &w.target(), w.form(), &header);
        prop_assert!(got.is_ok(), "{:?} for {}", got, w.url());
    }

    #[test]
    fn layer_refuses_any_single_change(w in webhook(), c in change()) {
        let Some(m) = apply(&w, &c) else { return Ok(()) };
        // Signed as `w`, received (and verified) as `m`.
        let header = reference_sign(&w.token, &w.url(), &w.params);
        let got = send(&m.base(), &m.token, &m.target(), m.form(), &header);
        prop_assert!(got.is_err(), "{:?} accepted after {:?}", m, c);
    }

    #[test]
    fn json_body_any_byte_change_is_refused(
        token in "[!-~]([ -~]{0,18}[!-~])?",
        body in prop::collection::vec(any::<u8>(), 1..200),
        at in any::<usize>(),
        xor in 1u8..=255,
    ) {
        let v = Verifier::new(&token).unwrap();
        let url = url_with_body_sha256("https://example.com/events?x=1", &body);
        prop_assert!(url.ends_with(&body_sha256(&body)));
        let header = reference_sign(&token, &url, &[]);
        prop_assert!(v.verify_body(&url, &body, &header, None).is_ok());
        let mut changed = body.clone();
        let i = at % changed.len();
        changed[i] ^= xor;
        let err = v.verify_body(&url, &changed, &header, None).unwrap_err();
        prop_assert_eq!(err.kind(), tower_twilio_signature::SignatureErrorKind::BodyHashMismatch);
    }
}
