//! Heap allocations per verified request, counted by a global allocator that this test
//! binary alone installs: a small constant, whatever the number of parameters.
#![allow(unsafe_code)] // a global allocator implements an unsafe trait

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use serde::Deserialize;
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_twilio_signature::{sign, TwilioSignatureLayer, UrlSource, VerifiedBody, Verifier};

/// Most allocations one `Verifier::verify_form` of the fixture may make: the caller's
/// pairs collected, the sorted pairs, the signed parameter string, the candidate URLs, the
/// candidates paired with their parameter strings, and the verified URL.
const VERIFY_MAX: usize = 6;
/// Most allocations one request through the layer may make, from the call to the
/// response (the inner service allocates nothing itself): the candidate URLs, the decoded
/// text, the pairs, the sorted pairs, the signed parameter string, the candidates paired
/// with their parameter strings, the verified URL, and the request extensions that carry
/// the result (map, table, entry).
const LAYER_MAX: usize = 10;

/// Counts the allocations of the current thread (allocations, reallocations and zeroed
/// allocations; frees are not counted).
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn bump() {
    // `try_with`: the slot is gone while the thread's locals are torn down.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The allocations `f` makes on this thread, and its result.
fn count<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let before = ALLOCATIONS.with(Cell::get);
    let out = f();
    (ALLOCATIONS.with(Cell::get) - before, out)
}

#[derive(Deserialize)]
struct Fixture {
    token: String,
    url: String,
    form: Vec<(String, String)>,
    signature: String,
}

fn fixture() -> Fixture {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/sms-webhook.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The fixture's first `n` parameters, re-signed.
fn first_params(f: &Fixture, n: usize) -> (Vec<(String, String)>, String) {
    let form = f.form[..n].to_vec();
    let signature = sign(&f.token, &f.url, &form);
    (form, signature)
}

/// The fixture with `extra` more parameters, re-signed.
fn with_extra_params(f: &Fixture, extra: usize) -> (Vec<(String, String)>, String) {
    let mut form = f.form.clone();
    form.extend((0..extra).map(|i| {
        (
            format!("MediaUrl{i}"),
            format!("https://media.example.test/{i}?x=a+b%21"),
        )
    }));
    let signature = sign(&f.token, &f.url, &form);
    (form, signature)
}

fn verify_allocations(
    verifier: &Verifier,
    url: &str,
    form: &[(String, String)],
    sig: &str,
) -> usize {
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (n, result) = count(|| verifier.verify_form(url, &pairs, sig, None));
    assert!(result.is_ok(), "{result:?}");
    n
}

#[test]
fn verify_form_allocates_a_constant() {
    let f = fixture();
    let verifier = Verifier::new(&f.token).unwrap();
    verify_allocations(&verifier, &f.url, &f.form, &f.signature); // warm-up
    let fixture_count = verify_allocations(&verifier, &f.url, &f.form, &f.signature);
    let (form, sig) = first_params(&f, 10);
    let fewer_count = verify_allocations(&verifier, &f.url, &form, &sig);
    let (form, sig) = with_extra_params(&f, 12);
    let more_count = verify_allocations(&verifier, &f.url, &form, &sig);
    let (form, sig) = with_extra_params(&f, 200);
    let larger_count = verify_allocations(&verifier, &f.url, &form, &sig);
    let (form, sig) = with_extra_params(&f, 2000);
    let largest_count = verify_allocations(&verifier, &f.url, &form, &sig);
    println!(
        "verify_form: {fewer_count} allocations (10 parameters), {fixture_count} (20), \
         {more_count} (32), {larger_count} (220), {largest_count} (2020)"
    );
    assert!(fixture_count <= VERIFY_MAX, "{fixture_count} allocations");
    assert_eq!(
        [fewer_count, more_count],
        [fixture_count; 2],
        "allocations grow with parameters (10 and 32 against 20)"
    );
    assert_eq!(larger_count, fixture_count, "220 parameters against 20");
    assert_eq!(
        larger_count, largest_count,
        "allocations grow with parameters"
    );
}

fn layer_allocations(f: &Fixture, form: &[(String, String)], sig: &str) -> usize {
    let (base, path) = f.url.split_at(f.url.find("/sms").unwrap());
    let body = Bytes::from(
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish(),
    );
    let mut service = TwilioSignatureLayer::new(&f.token)
        .unwrap()
        .url_source(UrlSource::base_url(base).unwrap())
        .layer(service_fn(|_req: Request<VerifiedBody>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        }));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let request = || {
        Request::post(path)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("content-length", body.len())
            .header("x-twilio-signature", sig)
            .body(Full::new(body.clone()))
            .unwrap()
    };
    let mut run = || {
        let req = request();
        rt.block_on(async {
            let svc = ServiceExt::<Request<Full<Bytes>>>::ready(&mut service)
                .await
                .unwrap();
            let (n, response) = count(|| svc.call(req));
            let (m, response) = count(|| futures_util::FutureExt::now_or_never(response));
            let response = response.expect("ready at once").unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            n + m
        })
    };
    run(); // warm-up
    run()
}

#[test]
fn layer_allocates_a_constant() {
    let f = fixture();
    let fixture_count = layer_allocations(&f, &f.form, &f.signature);
    let (form, sig) = first_params(&f, 10);
    let fewer_count = layer_allocations(&f, &form, &sig);
    let (form, sig) = with_extra_params(&f, 12);
    let more_count = layer_allocations(&f, &form, &sig);
    let (form, sig) = with_extra_params(&f, 200);
    let larger_count = layer_allocations(&f, &form, &sig);
    let (form, sig) = with_extra_params(&f, 2000);
    let largest_count = layer_allocations(&f, &form, &sig);
    println!(
        "layer: {fewer_count} allocations (10 parameters), {fixture_count} (20), \
         {more_count} (32), {larger_count} (220), {largest_count} (2020)"
    );
    assert!(fixture_count <= LAYER_MAX, "{fixture_count} allocations");
    assert_eq!(
        [fewer_count, more_count],
        [fixture_count; 2],
        "allocations grow with parameters (10 and 32 against 20)"
    );
    assert_eq!(larger_count, fixture_count, "220 parameters against 20");
    assert_eq!(
        larger_count, largest_count,
        "allocations grow with parameters"
    );
}
