//! What the benchmarks and the measuring programs of `bench/` share: the webhook fixture,
//! the request the layer benchmarks send, a way to run the layer's future without an
//! executor, and a process's memory as Linux reports it.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde::Deserialize;

/// A webhook and the signature twilio-node computed for it, as in
/// `tests/fixtures/sms-webhook.json`.
#[derive(Debug, Deserialize)]
pub struct Fixture {
    /// The Auth Token it was signed with.
    pub token: String,
    /// The URL Twilio called.
    pub url: String,
    /// The form parameters, in the order Twilio sends them.
    pub form: Vec<(String, String)>,
    /// The `X-Twilio-Signature` header.
    pub signature: String,
}

impl Fixture {
    /// The typical inbound SMS webhook (20 parameters, 533 bytes of form body).
    #[must_use]
    pub fn sms() -> Self {
        Self::load(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/sms-webhook.json"
        ))
    }

    /// A fixture file of the same shape.
    ///
    /// # Panics
    /// If the file cannot be read or is not such a fixture.
    #[must_use]
    pub fn load(path: &str) -> Self {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The parameters as `Verifier::verify_form` takes them.
    #[must_use]
    pub fn pairs(&self) -> Vec<(&str, &str)> {
        self.form
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    /// The URL split where its path starts: the base URL a layer is configured with, and
    /// the path a request carries.
    #[must_use]
    pub fn base_and_path(&self) -> (&str, &str) {
        let after_scheme = self.url.find("://").map_or(0, |i| i + 3);
        let path_start = self.url[after_scheme..]
            .find('/')
            .map_or(self.url.len(), |i| after_scheme + i);
        self.url.split_at(path_start)
    }

    /// The form body, encoded as Twilio sends it.
    #[must_use]
    pub fn body(&self) -> Bytes {
        Bytes::from(
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&self.form)
                .finish(),
        )
    }
}

/// A webhook as it reaches a service behind a proxy: a POST of `body` to `path` on an
/// internal host, carrying `signature`.
///
/// # Panics
/// If `path` is not a valid request target.
#[must_use]
#[inline]
pub fn request(path: &str, body: &Bytes, signature: &str) -> Request<Full<Bytes>> {
    Request::post(path)
        .header("host", "internal:8080")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("content-length", body.len())
        .header("x-twilio-signature", signature)
        .body(Full::new(body.clone()))
        .expect("a valid request")
}

/// Runs a future that must finish at its first poll: the layer's, over a body that is
/// all there (as a server's usually is by the time the request is routed). One poll with a
/// waker that does nothing, so that the harness adds no executor bookkeeping (entering a
/// runtime, its clock reads) to what is measured; a future that waited would panic here
/// rather than be timed wrong.
///
/// # Panics
/// If the future is not ready at its first poll.
pub fn poll_once<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the request did not finish at its first poll"),
    }
}

/// A field of `/proc/PID/status` given in kB (`VmRSS`, `VmHWM`), as a number of KiB; `None`
/// if the process or the field is not there.
#[must_use]
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}
