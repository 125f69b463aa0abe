//! The servers and the memory client that `bench/load` drives: the Frontline app with and
//! without `TwilioSignatureLayer`, on two loopback ports, and a client that holds many
//! signed bodies near the body limit in flight at once against a fresh server.
//!
//! ```text
//! load_target serve DIR              # both servers; writes the signed requests to DIR
//! load_target inproc ROUNDS          # both apps called in-process, timed
//! load_target serve-mem LIMIT        # one server with the layer, body limit LIMIT bytes
//! load_target flood ADDR PID LIMIT CONNS form|hash
//! ```
//!
//! `serve` prints `with http://127.0.0.1:P` and `without http://127.0.0.1:Q`, then one
//! line per request it wrote: `request NAME PATH`, with `DIR/NAME.body` and `DIR/NAME.sig`
//! holding the form body and the `X-Twilio-Signature` for the server with the layer.
//!
//! The app without the layer is the Frontline app's own routes (`app::callbacks`) with the
//! same body timeout and trace layer (`app::outer_layers`) that `app::app` puts around
//! them; only the signature layer is left out. The handlers take a `VerifiedWebhook`, so
//! that app inserts one, made once at startup, into every request.
//!
//! `inproc` calls both apps directly (`oneshot` on the router, the response body read) in
//! rounds of 500 requests to each, back to back, and prints `inproc NAME with_ns=N
//! without_ns=N difference_ns=N`: the fastest batch's time per request of each, and the
//! median over the rounds of the difference within a round (steadier than the difference
//! of the fastest when the machine is shared). It is the layer's cost in the app with warm
//! caches and no network, a reference for the servers' figures.
//!
//! `flood` opens CONNS connections to ADDR, sends each a signed body of exactly LIMIT bytes
//! but its last byte, waits until every connection got that far and the server read all of
//! it (nothing left queued in the kernel, per `/proc/net/tcp`), sends the last bytes, reads
//! every answer and prints the server's (PID) memory: `VmRSS` before, while the bodies are
//! held, and after, and `VmHWM` after.
//! `form` bodies are form posts to `/callbacks/conversations`; `hash` bodies are
//! `application/octet-stream` with `bodySHA256` in the URL (the handler then answers 415:
//! the layer let it through).
// The counters the Frontline binary prints at shutdown are not used here.
#[allow(dead_code)]
#[path = "../../../../examples/frontline/app/mod.rs"]
mod app;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Barrier;
use tower::ServiceExt;
use tower_twilio_signature::{sign, sign_body, TwilioSignatureLayer, UrlSource, Verifier};
use tower_twilio_signature_bench::{proc_status_kib, Fixture};

use crate::app::{sample_customers, AppConfig, AppState, REQUEST_BODY_TIMEOUT};

/// A made-up Auth Token.
const TOKEN: &str = "5c3e1b7a9d2f4e6a8b0c1d3e5f7a9b2c";

const USAGE: &str = "usage: load_target serve DIR | inproc ROUNDS | serve-mem LIMIT | \
                     flood ADDR PID LIMIT CONNS form|hash";

fn config() -> AppConfig {
    AppConfig {
        sms_number: Some("+12025550100".to_owned()),
        whatsapp_number: Some("whatsapp:+12025550101".to_owned()),
        request_body_timeout: REQUEST_BODY_TIMEOUT,
        customers: sample_customers(),
        default_worker: None,
        conversations_api: None,
    }
}

/// Form parameters, in order.
type Form = Vec<(String, String)>;

/// The signed requests the load generator sends: a name, a path and the form.
fn requests() -> Vec<(&'static str, &'static str, Form)> {
    let owned = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let crm = owned(&[
        ("Location", "GetCustomerDetailsByCustomerId"),
        ("CustomerId", "3"),
        ("Worker", "bob@example.com"),
    ]);
    // The SMS webhook fixture's parameters, as a Conversations post-event webhook.
    let mut sms = Fixture::sms().form;
    sms.push(("EventType".to_owned(), "onMessageAdded".to_owned()));
    vec![
        ("crm", "/callbacks/crm", crm),
        ("sms", "/callbacks/conversations", sms),
    ]
}

/// Each request of [`requests`]: its name, path, form body, and `X-Twilio-Signature` for
/// the server at `base`.
fn signed_requests(base: &str) -> Vec<(&'static str, &'static str, String, String)> {
    requests()
        .into_iter()
        .map(|(name, path, pairs)| {
            let url = format!("{base}{path}");
            let signature = sign(
                TOKEN,
                &url,
                pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            );
            (name, path, form_body(&pairs), signature)
        })
        .collect()
}

fn form_body(pairs: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["serve", dir] => serve(PathBuf::from(dir)).await,
        ["inproc", rounds] => match rounds.parse() {
            Ok(rounds) if rounds > 0 => inproc(rounds).await,
            _ => Err(USAGE.to_owned()),
        },
        ["serve-mem", limit] => match limit.parse() {
            Ok(limit) => serve_mem(limit).await,
            Err(_) => Err(USAGE.to_owned()),
        },
        ["flood", addr, pid, limit, conns, mode] => {
            match (addr.parse(), pid.parse(), limit.parse(), conns.parse()) {
                (Ok(addr), Ok(pid), Ok(limit), Ok(conns))
                    if limit >= 64 && conns > 0 && matches!(*mode, "form" | "hash") =>
                {
                    flood(addr, pid, limit, conns, *mode == "hash").await
                }
                _ => Err(USAGE.to_owned()),
            }
        }
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("load_target: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn bind() -> Result<(TcpListener, SocketAddr), String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    Ok((listener, addr))
}

/// The Frontline app with the layer, checking signatures for URLs under `base`, and the
/// same app without it.
fn apps(base: &str) -> Result<(axum::Router, axum::Router), String> {
    let config = config();
    let layer = TwilioSignatureLayer::new(TOKEN)
        .and_then(|l| UrlSource::base_url(base).map(|s| l.url_source(s)))
        .map_err(|e| e.to_string())?;

    let with = app::app(layer, AppState::new(&config), &config);

    // A `VerifiedWebhook` as the layer would hand it to the handlers.
    let (_, path, pairs) = &requests()[0];
    let url = format!("{base}{path}");
    let pairs_ref = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let signature = sign(TOKEN, &url, pairs_ref.clone());
    let webhook = Verifier::new(TOKEN)
        .map_err(|e| e.to_string())?
        .verify_form(&url, pairs_ref, &signature, None)
        .map_err(|e| format!("cannot make a VerifiedWebhook: {e:?}"))?;
    // The same routes and outer layers, with the signature layer's extension but not the
    // layer itself.
    let without = app::outer_layers(
        app::callbacks(AppState::new(&config)).layer(axum::Extension(webhook)),
        &config,
    );
    Ok((with, without))
}

/// Both servers, until killed.
async fn serve(dir: PathBuf) -> Result<(), String> {
    let (with_listener, with_addr) = bind().await?;
    let (without_listener, without_addr) = bind().await?;
    let base = format!("http://{with_addr}");
    let (with, without) = apps(&base)?;

    println!("with http://{with_addr}");
    println!("without http://{without_addr}");
    for (name, path, body, signature) in signed_requests(&base) {
        std::fs::write(dir.join(format!("{name}.body")), body)
            .and_then(|()| std::fs::write(dir.join(format!("{name}.sig")), signature))
            .map_err(|e| format!("cannot write to {}: {e}", dir.display()))?;
        println!("request {name} {path}");
    }
    println!("ready");

    let with = tokio::spawn(async move { axum::serve(with_listener, with).await });
    let without = tokio::spawn(async move { axum::serve(without_listener, without).await });
    let (a, b) = tokio::join!(with, without);
    for result in [a, b] {
        result
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Both apps called in-process (no sockets, no HTTP parsing): for each request, the time
/// per request through each, the fastest of `rounds` rounds of 500 requests, and the median
/// over the rounds of the difference of its two back-to-back batches.
async fn inproc(rounds: usize) -> Result<(), String> {
    const BATCH: u32 = 500;
    let base = "http://127.0.0.1:8080";
    let (with, without) = apps(base)?;
    for (name, path, body, signature) in signed_requests(base) {
        let body = bytes::Bytes::from(body);
        let request = || {
            axum::http::Request::post(path)
                .header("host", "127.0.0.1:8080")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("content-length", body.len())
                .header("x-twilio-signature", signature.as_str())
                .body(axum::body::Body::from(body.clone()))
                .map_err(|e| e.to_string())
        };
        let mut fastest = [Duration::MAX; 2];
        let mut differences = Vec::with_capacity(rounds);
        for round in 0..rounds {
            let mut times = [Duration::ZERO; 2];
            for side in [round % 2, 1 - round % 2] {
                let router = if side == 0 { &with } else { &without };
                let start = Instant::now();
                for _ in 0..BATCH {
                    let res = router
                        .clone()
                        .oneshot(request()?)
                        .await
                        .map_err(|e| e.to_string())?;
                    if res.status() != axum::http::StatusCode::OK {
                        return Err(format!("{name}: {}", res.status()));
                    }
                    res.into_body().collect().await.map_err(|e| e.to_string())?;
                }
                times[side] = start.elapsed() / BATCH;
                fastest[side] = fastest[side].min(times[side]);
            }
            differences.push(times[0].as_nanos() as i128 - times[1].as_nanos() as i128);
        }
        differences.sort_unstable();
        println!(
            "inproc {name} with_ns={} without_ns={} difference_ns={}",
            fastest[0].as_nanos(),
            fastest[1].as_nanos(),
            differences[differences.len() / 2]
        );
    }
    Ok(())
}

/// The app with the layer and this body limit, until killed.
async fn serve_mem(limit: usize) -> Result<(), String> {
    let config = config();
    let (listener, addr) = bind().await?;
    let layer = TwilioSignatureLayer::new(TOKEN)
        .and_then(|l| UrlSource::base_url(&format!("http://{addr}")).map(|s| l.url_source(s)))
        .map_err(|e| e.to_string())?
        .body_limit(limit);
    let router = app::app(layer, AppState::new(&config), &config);
    println!("with http://{addr}");
    println!("ready");
    axum::serve(listener, router)
        .await
        .map_err(|e| e.to_string())
}

/// A signed request of exactly `limit` body bytes: the head and the body.
fn big_request(addr: SocketAddr, limit: usize, hash: bool) -> (Vec<u8>, Vec<u8>) {
    let base = format!("http://{addr}");
    let path = "/callbacks/conversations";
    let (url, content_type, body, signature) = if hash {
        let body: Vec<u8> = (0..limit).map(|i| (i % 251) as u8).collect();
        let (url, signature) = sign_body(TOKEN, &format!("{base}{path}"), &body);
        (url, "application/octet-stream", body, signature)
    } else {
        let prefix = "EventType=onMessageAdded&Body=";
        let text = "x".repeat(limit - prefix.len());
        let url = format!("{base}{path}");
        let signature = sign(
            TOKEN,
            &url,
            [("EventType", "onMessageAdded"), ("Body", text.as_str())],
        );
        let body = format!("{prefix}{text}").into_bytes();
        (url, "application/x-www-form-urlencoded", body, signature)
    };
    assert_eq!(body.len(), limit);
    let target = url.strip_prefix(&base).unwrap_or(&url);
    let head = format!(
        "POST {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nX-Twilio-Signature: {signature}\r\n\r\n",
        body.len()
    );
    (head.into_bytes(), body)
}

/// The bytes sent to or from `port` on 127.0.0.1 that the kernel still queues: not yet
/// read by the receiver, or not yet acknowledged.
fn queued_bytes(port: u16) -> u64 {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return 0;
    };
    let port = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, remote, queues) = (fields.get(1)?, fields.get(2)?, fields.get(4)?);
            if !local.ends_with(&port) && !remote.ends_with(&port) {
                return None;
            }
            let (tx, rx) = queues.split_once(':')?;
            Some(u64::from_str_radix(tx, 16).ok()? + u64::from_str_radix(rx, 16).ok()?)
        })
        .sum()
}

/// Many bodies near the limit in flight at once; prints the server's memory.
async fn flood(
    addr: SocketAddr,
    pid: u32,
    limit: usize,
    conns: usize,
    hash: bool,
) -> Result<(), String> {
    let (head, body) = big_request(addr, limit, hash);
    let (head, body) = (Arc::new(head), Arc::new(body));
    let expected = if hash { 415 } else { 200 };

    // One request first, so the baseline counts a warmed-up server.
    let status = one_request(addr, &head, &body, None).await?;
    if status != expected {
        return Err(format!("warm-up request got {status}, expected {expected}"));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_before = proc_status_kib(pid, "VmRSS").ok_or("cannot read the server's VmRSS")?;
    let hwm_before = proc_status_kib(pid, "VmHWM").ok_or("cannot read the server's VmHWM")?;

    // Reached twice: when every connection sent all but its last byte, then to send it.
    let held = Arc::new(Barrier::new(conns + 1));
    let started = Instant::now();
    let mut handles = Vec::with_capacity(conns);
    for _ in 0..conns {
        let (head, body, held) = (head.clone(), body.clone(), held.clone());
        handles.push(tokio::spawn(async move {
            one_request(addr, &head, &body, Some(&held)).await
        }));
    }
    // Every connection has sent all but its last byte; once the kernel holds none of it
    // (the server read it all), sample, then let the last bytes go.
    held.wait().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while queued_bytes(addr.port()) > 0 {
        if Instant::now() > deadline {
            return Err("the server did not read the bodies within 30 s".to_owned());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rss_held = proc_status_kib(pid, "VmRSS").unwrap_or(0);
    held.wait().await;
    let mut statuses = Vec::with_capacity(conns);
    for handle in handles {
        statuses.push(handle.await.map_err(|e| e.to_string())??);
    }
    let elapsed = started.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_after = proc_status_kib(pid, "VmRSS").unwrap_or(0);
    let hwm = proc_status_kib(pid, "VmHWM").ok_or("cannot read the server's VmHWM")?;
    let wrong = statuses.iter().filter(|&&s| s != expected).count();

    let mode = if hash { "hash" } else { "form" };
    let budget_kib = (limit * conns / 1024) as u64;
    println!(
        "memory mode={mode} limit={limit} conns={conns} expected_status={expected} \
         wrong_status={wrong} elapsed_ms={} rss_before_kib={rss_before} \
         hwm_before_kib={hwm_before} rss_held_kib={rss_held} hwm_kib={hwm} \
         rss_after_kib={rss_after} limit_x_conns_kib={budget_kib}",
        elapsed.as_millis()
    );
    if wrong > 0 {
        return Err(format!("{wrong} of {conns} answers were not {expected}"));
    }
    Ok(())
}

/// Sends one request, optionally holding its last byte until `held` is reached by all,
/// and returns the answer's status.
async fn one_request(
    addr: SocketAddr,
    head: &[u8],
    body: &[u8],
    held: Option<&Barrier>,
) -> Result<u16, String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (most, last) = body.split_at(body.len() - 1);
    stream.write_all(head).await.map_err(|e| e.to_string())?;
    stream.write_all(most).await.map_err(|e| e.to_string())?;
    if let Some(held) = held {
        held.wait().await;
        held.wait().await;
    }
    stream.write_all(last).await.map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before an answer".to_owned());
        }
        answer.extend_from_slice(&buf[..n]);
    }
    std::str::from_utf8(&answer)
        .ok()
        .and_then(|text| text.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| "malformed status line".to_owned())
}
