//! The soak driver: concurrent clients, the checks, the memory samples and the summary.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tokio::io::AsyncWriteExt;
use tower_twilio_signature::{body_sha256, sign_url, url_with_body_sha256};
use tower_twilio_signature_bench::proc_status_kib;

use crate::cases::{self, form_body, sign_form, Rng};
use crate::raw::{self, Framing};
use crate::TOKEN;

/// The longest a request may take before it counts as a failure.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the server gets to close a connection it will not read further.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
const FORM: &str = "application/x-www-form-urlencoded";
/// At most what one Conversations update the Frontline app records costs it: the enum in
/// its `VecDeque` (128 bytes, twice over for the spare capacity) and two to five short
/// strings.
const UPDATE_BYTES: u64 = 512;

/// The server's memory at one time, and how many updates it had recorded by then.
#[derive(Debug, Clone, Copy)]
struct Sample {
    t: f64,
    rss: u64,
    records: u64,
}

#[derive(Debug)]
pub(crate) struct Options {
    base: String,
    addr: SocketAddr,
    pid: u32,
    requests: u64,
    seconds: u64,
    clients: usize,
    seed: u64,
    body_limit: usize,
    /// Leave out the Frontline callbacks that make the app record an update.
    skip_recording: bool,
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Self, String> {
        let [url, pid, rest @ ..] = args else {
            return Err("drive needs URL and PID".to_owned());
        };
        let addr: SocketAddr = url
            .strip_prefix("http://")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("not an http://IP:PORT URL: {url}"))?;
        if !addr.ip().is_loopback() {
            return Err(format!("{addr} is not a loopback address"));
        }
        let mut options = Self {
            base: format!("http://{addr}"),
            addr,
            pid: pid.parse().map_err(|_| format!("bad PID {pid}"))?,
            requests: 500_000,
            seconds: 90,
            skip_recording: false,
            clients: 64,
            seed: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64),
            body_limit: crate::DEFAULT_BODY_LIMIT,
        };
        let mut rest = rest.iter();
        while let Some(flag) = rest.next() {
            if flag == "--skip-recording" {
                options.skip_recording = true;
                continue;
            }
            let value = rest.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let number = || -> Result<u64, String> {
                value
                    .parse()
                    .map_err(|_| format!("{flag}: not a number: {value}"))
            };
            match flag.as_str() {
                "--requests" => options.requests = number()?,
                "--seconds" => options.seconds = number()?,
                "--clients" => options.clients = number()? as usize,
                "--seed" => options.seed = number()?,
                "--body-limit" => options.body_limit = number()? as usize,
                _ => return Err(format!("unknown option {flag}")),
            }
        }
        if options.clients == 0 || options.body_limit < 1024 {
            return Err("--clients must be above 0 and --body-limit at least 1024".to_owned());
        }
        Ok(options)
    }
}

/// The kinds of request, with their share of the mix (percent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// A signed Frontline callback: the expected status and JSON.
    Frontline,
    /// A signed random form to the digest route: 200 and the SHA-256 of what was sent.
    DigestForm,
    /// Signed random bytes (`bodySHA256`) to the digest route: 200 and their SHA-256.
    DigestHash,
    /// A missing or wrong signature: 403 with an empty body.
    BadSignature,
    /// `Content-Length` over the limit, the body sent or not: 413 with an empty body
    /// before any of it is read, then the server closes the connection (end of stream or
    /// reset; it sends no `Connection: close` first).
    OversizedLength,
    /// A chunked body that runs past the limit: 413 with an empty body once the layer has
    /// read past the limit, then the server closes the connection, the rest unread.
    OversizedChunked,
    /// A body cut short by the client closing the connection: nothing to read; or
    /// shutting down its sending side: 400, then the server closes.
    Truncated,
}

const CLASSES: [(Class, usize, &str); 7] = [
    (Class::Frontline, 35, "frontline valid"),
    (Class::DigestForm, 10, "digest form"),
    (Class::DigestHash, 12, "digest bodySHA256"),
    (Class::BadSignature, 18, "bad signature"),
    (Class::OversizedLength, 8, "oversized length"),
    (Class::OversizedChunked, 7, "oversized chunked"),
    (Class::Truncated, 10, "truncated"),
];

#[derive(Debug, Default)]
struct Counts {
    sent: AtomicU64,
    passed: AtomicU64,
    failed: AtomicU64,
}

struct Ctx {
    options: Options,
    client: Client<HttpConnector, Full<Bytes>>,
    counts: [Counts; CLASSES.len()],
    failures: Mutex<Vec<String>>,
    /// Frontline callbacks answered: `callbacks_handled` the server must report.
    handled: AtomicU64,
    /// Conversations updates the app must have recorded.
    records: AtomicU64,
    server_errors: AtomicU64,
    /// How the raw requests ended, by kind: what the server did, counted.
    outcomes: Mutex<BTreeMap<String, u64>>,
}

impl Ctx {
    fn outcome(&self, what: String) {
        *self
            .outcomes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(what)
            .or_default() += 1;
    }

    fn fail(&self, class: usize, message: &str) {
        self.counts[class].failed.fetch_add(1, Ordering::Relaxed);
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if failures.len() < 30 {
            failures.push(format!("{}: {message}", CLASSES[class].2));
        }
    }

    /// Sends through the pooled client; the status and the whole body.
    async fn send(&self, request: Request<Full<Bytes>>) -> Result<(u16, Bytes), String> {
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| format!("request failed: {e:?}"))?;
        let status = response.status().as_u16();
        if status >= 500 {
            self.server_errors.fetch_add(1, Ordering::Relaxed);
        }
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok((status, body))
    }

    fn post(
        &self,
        target: &str,
        content_type: &str,
        signature: Option<&str>,
        body: Vec<u8>,
    ) -> Request<Full<Bytes>> {
        self.request(Method::POST, target, content_type, signature, body)
    }

    fn request(
        &self,
        method: Method,
        target: &str,
        content_type: &str,
        signature: Option<&str>,
        body: Vec<u8>,
    ) -> Request<Full<Bytes>> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{target}", self.options.base))
            .header(header::CONTENT_TYPE, content_type);
        if let Some(signature) = signature {
            request = request.header("x-twilio-signature", signature);
        }
        request
            .body(Full::new(Bytes::from(body)))
            .expect("a valid request")
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub(crate) async fn run(options: Options) -> Result<bool, String> {
    let pid = options.pid;
    let rss_start =
        proc_status_kib(pid, "VmRSS").ok_or_else(|| format!("no process {pid} to sample"))?;
    println!(
        "soak: {} requests at most, {} s at most, {} clients, body limit {} bytes, seed {}{}",
        options.requests,
        options.seconds,
        options.clients,
        options.body_limit,
        options.seed,
        if options.skip_recording {
            ", no callbacks that record updates"
        } else {
            ""
        }
    );
    let clients = options.clients;
    let ctx = Arc::new(Ctx {
        client: Client::builder(TokioExecutor::new()).build_http(),
        options,
        counts: Default::default(),
        failures: Mutex::new(Vec::new()),
        handled: AtomicU64::new(0),
        records: AtomicU64::new(0),
        server_errors: AtomicU64::new(0),
        outcomes: Mutex::default(),
    });

    let started = Instant::now();
    let issued = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let sampler = {
        let (samples, done, ctx) = (samples.clone(), done.clone(), ctx.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            let mut last_report = Instant::now();
            loop {
                tick.tick().await;
                let Some(rss) = proc_status_kib(pid, "VmRSS") else {
                    return;
                };
                let t = started.elapsed().as_secs_f64();
                let records = ctx.records.load(Ordering::Relaxed);
                samples
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(Sample { t, rss, records });
                if last_report.elapsed() >= Duration::from_secs(10) {
                    last_report = Instant::now();
                    let n = done.load(Ordering::Relaxed);
                    eprintln!(
                        "soak: {t:5.1} s  {n:7} requests  {:7.0} req/s  server RSS {:.1} MiB",
                        n as f64 / t,
                        mib(rss)
                    );
                }
            }
        })
    };

    let deadline = started + Duration::from_secs(ctx.options.seconds);
    let mut workers = Vec::with_capacity(clients);
    for worker in 0..clients {
        let (ctx, issued, done) = (ctx.clone(), issued.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            let mut rng = Rng::new(ctx.options.seed ^ (worker as u64).wrapping_mul(0x9E37_79B9));
            while issued.fetch_add(1, Ordering::Relaxed) < ctx.options.requests
                && Instant::now() < deadline
            {
                let mut roll = rng.below(100);
                let class = CLASSES
                    .iter()
                    .position(|&(_, share, _)| {
                        let hit = roll < share;
                        roll = roll.saturating_sub(share);
                        hit
                    })
                    .unwrap_or(0);
                ctx.counts[class].sent.fetch_add(1, Ordering::Relaxed);
                let outcome =
                    tokio::time::timeout(REQUEST_TIMEOUT, one(&ctx, CLASSES[class].0, &mut rng))
                        .await
                        .unwrap_or_else(|_| Err("timed out".to_owned()));
                match outcome {
                    Ok(()) => {
                        ctx.counts[class].passed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(message) => ctx.fail(class, &message),
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for worker in workers {
        worker.await.map_err(|e| format!("a client stopped: {e}"))?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let total = done.load(Ordering::Relaxed);
    // Let the server settle, then the last samples.
    tokio::time::sleep(Duration::from_secs(2)).await;
    sampler.abort();
    let rss_end = proc_status_kib(pid, "VmRSS").unwrap_or(0);
    let hwm = proc_status_kib(pid, "VmHWM").unwrap_or(0);

    // The server still answers.
    let health = health_check(&ctx).await;

    let samples = samples
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let run_samples: Vec<&Sample> = samples.iter().filter(|s| s.t <= elapsed).collect();
    let peak = samples.iter().map(|s| s.rss).max().unwrap_or(0).max(hwm);
    let half = |first: bool| {
        run_samples
            .iter()
            .filter(|s| (s.t < elapsed / 2.0) == first)
            .map(|s| s.rss)
            .max()
            .unwrap_or(0)
    };
    let (first_half_peak, second_half_peak) = (half(true), half(false));
    let records_at = |t: f64| {
        run_samples
            .iter()
            .rfind(|s| s.t <= t)
            .map_or(0, |s| s.records)
    };
    let records_end = ctx.records.load(Ordering::Relaxed);
    let records_second_half = records_end - records_at(elapsed / 2.0);

    // The summary.
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{:<20} {:>8} {:>8} {:>8}",
        "class", "sent", "passed", "failed"
    );
    let mut failed_total = 0;
    for (i, (_, _, name)) in CLASSES.iter().enumerate() {
        let c = &ctx.counts[i];
        let failed = c.failed.load(Ordering::Relaxed);
        failed_total += failed;
        let _ = writeln!(
            out,
            "{name:<20} {:>8} {:>8} {failed:>8}",
            c.sent.load(Ordering::Relaxed),
            c.passed.load(Ordering::Relaxed),
        );
    }
    let _ = writeln!(
        out,
        "{:<20} {total:>8} {:>8} {failed_total:>8}",
        "total",
        total - failed_total
    );
    let server_errors = ctx.server_errors.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "\nelapsed {elapsed:.1} s, {:.0} requests/s, 5xx answers: {server_errors}",
        total as f64 / elapsed
    );
    let _ = writeln!(
        out,
        "server RSS: start {:.1} MiB, peak {:.1} MiB (VmHWM {:.1} MiB), end {:.1} MiB; \
         peak in the first half of the run {:.1} MiB, in the second half {:.1} MiB",
        mib(rss_start),
        mib(peak),
        mib(hwm),
        mib(rss_end),
        mib(first_half_peak),
        mib(second_half_peak)
    );
    let mut timeline = String::new();
    for tenth in 1..=10 {
        let t = elapsed * f64::from(tenth) / 10.0;
        let rss = run_samples.iter().rfind(|s| s.t <= t).map_or(0, |s| s.rss);
        let _ = write!(timeline, " {:.1}", mib(rss));
    }
    let _ = writeln!(out, "server RSS (MiB) at each tenth of the run:{timeline}");
    // Stable: the second half of the run needs no more memory than the first, give or take
    // one body limit per client (which requests are in flight at the peak varies), plus
    // what the Conversations updates the app recorded in the second half take, up to the
    // number it keeps.
    let in_flight_kib = (ctx.options.body_limit * clients / 1024) as u64;
    let kept_second_half = records_second_half.min(crate::app::KEPT_UPDATES as u64);
    let updates_kib = kept_second_half * UPDATE_BYTES / 1024;
    let allowed = first_half_peak + in_flight_kib + updates_kib;
    let stable = second_half_peak <= allowed;
    let _ = writeln!(
        out,
        "memory stable: second-half peak {:.1} MiB <= first-half peak {:.1} + limit x clients \
         {:.1} + {kept_second_half} updates kept of {records_second_half} recorded in the \
         second half x {UPDATE_BYTES} B \
         {:.1} = {:.1} MiB: {}",
        mib(second_half_peak),
        mib(first_half_peak),
        mib(in_flight_kib),
        mib(updates_kib),
        mib(allowed),
        if stable { "yes" } else { "NO" }
    );
    let _ = writeln!(
        out,
        "server answers after the run: {}",
        match &health {
            Ok(()) => "yes".to_owned(),
            Err(e) => format!("NO: {e}"),
        }
    );
    if total < ctx.options.requests {
        let _ = writeln!(
            out,
            "note: stopped by the time limit after {total} of {} requests",
            ctx.options.requests
        );
    }
    let _ = writeln!(out, "\nhow the raw requests ended:");
    for (what, n) in ctx
        .outcomes
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
    {
        let _ = writeln!(out, "  {n:>7}  {what}");
    }
    let failures = ctx.failures.lock().unwrap_or_else(PoisonError::into_inner);
    if !failures.is_empty() {
        let _ = writeln!(out, "\nfirst failures:");
        for failure in failures.iter() {
            let _ = writeln!(out, "  {failure}");
        }
    }
    // For bench/soak, which compares them with what the server reports at shutdown.
    let _ = writeln!(
        out,
        "expect callbacks_handled={} updates={}",
        ctx.handled.load(Ordering::Relaxed),
        ctx.records.load(Ordering::Relaxed)
    );
    print!("{out}");
    Ok(failed_total == 0 && server_errors == 0 && stable && health.is_ok())
}

async fn health_check(ctx: &Ctx) -> Result<(), String> {
    let (status, _) = ctx
        .send(ctx.request(Method::GET, "/healthz", FORM, None, Vec::new()))
        .await?;
    if status != 200 {
        return Err(format!("GET /healthz: {status}"));
    }
    let mut rng = Rng::new(7);
    let case = cases::digest_hash(&mut rng, &ctx.options.base, ctx.options.body_limit);
    digest(ctx, case).await
}

async fn one(ctx: &Ctx, class: Class, rng: &mut Rng) -> Result<(), String> {
    let base = ctx.options.base.as_str();
    let limit = ctx.options.body_limit;
    match class {
        Class::Frontline => frontline(ctx, rng).await,
        Class::DigestForm => digest(ctx, cases::digest_form(rng, base, limit)).await,
        Class::DigestHash => digest(ctx, cases::digest_hash(rng, base, limit)).await,
        Class::BadSignature => bad_signature(ctx, rng).await,
        Class::OversizedLength => oversized(ctx, rng, false).await,
        Class::OversizedChunked => oversized(ctx, rng, true).await,
        Class::Truncated => truncated(ctx, rng).await,
    }
}

async fn frontline(ctx: &Ctx, rng: &mut Rng) -> Result<(), String> {
    let case = loop {
        let case = cases::frontline(rng);
        if !(ctx.options.skip_recording && case.records) {
            break case;
        }
    };
    let signature = sign_form(
        TOKEN,
        &format!("{}{}", ctx.options.base, case.path),
        &case.params,
    );
    let body = form_body(&case.params).into_bytes();
    let (status, answer) = ctx
        .send(ctx.post(case.path, FORM, Some(&signature), body))
        .await?;
    ctx.handled.fetch_add(1, Ordering::Relaxed);
    if status != case.status {
        return Err(format!(
            "{} {:?}: status {status}, expected {}: {}",
            case.path,
            case.params,
            case.status,
            String::from_utf8_lossy(&answer)
        ));
    }
    let json: serde_json::Value = serde_json::from_slice(&answer)
        .map_err(|_| format!("not JSON: {}", String::from_utf8_lossy(&answer)))?;
    case.check.verify(&json)?;
    if case.records {
        ctx.records.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

async fn digest(ctx: &Ctx, case: cases::DigestCase) -> Result<(), String> {
    let expected = body_sha256(&case.body);
    let len = case.body.len();
    let (status, answer) = ctx
        .send(ctx.post(
            &case.target,
            case.content_type,
            Some(&case.signature),
            case.body,
        ))
        .await?;
    if status != 200 {
        return Err(format!("{} ({len} bytes): status {status}", case.target));
    }
    if answer != expected.as_bytes() {
        return Err(format!(
            "{} ({len} bytes): the handler hashed {}, expected {expected}",
            case.target,
            String::from_utf8_lossy(&answer)
        ));
    }
    Ok(())
}

async fn bad_signature(ctx: &Ctx, rng: &mut Rng) -> Result<(), String> {
    let case = cases::bad_signature(rng, &ctx.options.base, ctx.options.body_limit);
    let method = if case.method == "GET" {
        Method::GET
    } else {
        Method::POST
    };
    let (status, answer) = ctx
        .send(ctx.request(
            method,
            &case.target,
            case.content_type,
            case.signature.as_deref(),
            case.body,
        ))
        .await?;
    if status != 403 || !answer.is_empty() {
        return Err(format!(
            "{} ({}): status {status}, {} body bytes, expected 403 and none",
            case.what,
            case.target,
            answer.len()
        ));
    }
    Ok(())
}

/// A signed request whose body is `size` bytes: target, content type, body, signature.
fn sized_request(
    rng: &mut Rng,
    base: &str,
    size: usize,
) -> (String, &'static str, Vec<u8>, String) {
    if rng.percent(50) {
        let body = rng.bytes(size);
        let target = url_with_body_sha256(crate::DIGEST_PATH, &body);
        let signature = sign_url(TOKEN, &format!("{base}{target}"));
        (target, "application/octet-stream", body, signature)
    } else {
        let path = *rng.pick(&["/callbacks/conversations", crate::DIGEST_PATH]);
        let prefix = "EventType=onMessageAdded&Body=";
        let text = "b".repeat(size.saturating_sub(prefix.len()));
        let params = [
            ("EventType".to_owned(), "onMessageAdded".to_owned()),
            ("Body".to_owned(), text),
        ];
        let signature = sign_form(TOKEN, &format!("{base}{path}"), &params);
        (
            path.to_owned(),
            FORM,
            form_body(&params).into_bytes(),
            signature,
        )
    }
}

/// Splits `body` into chunks of random sizes.
fn random_chunks(rng: &mut Rng, body: &[u8]) -> Vec<Vec<u8>> {
    let mut chunks = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let n = rng.range(1, 32 * 1024).min(rest.len());
        chunks.push(raw::chunk(&rest[..n]));
        rest = &rest[n..];
    }
    chunks
}

/// A body over the limit. With `Content-Length` the layer answers 413 before reading any
/// of it; chunked, once it has read past the limit. Either way the server then closes the
/// connection: the rest of the body is never read.
async fn oversized(ctx: &Ctx, rng: &mut Rng, chunked: bool) -> Result<(), String> {
    let limit = ctx.options.body_limit;
    let size = limit + rng.range(1, limit);
    let (target, content_type, body, signature) = sized_request(rng, &ctx.options.base, size);
    let send_body = chunked || rng.percent(50);
    let framing = if chunked {
        Framing::Chunked
    } else {
        Framing::Length(body.len())
    };
    let mut parts = vec![raw::head(
        ctx.options.addr,
        &target,
        content_type,
        &signature,
        framing,
    )];
    if chunked {
        parts.extend(random_chunks(rng, &body));
        parts.push(raw::LAST_CHUNK.to_vec());
    } else if send_body {
        parts.push(body);
    }
    let stream = raw::connect(ctx.options.addr).await?;
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move { raw::write_parts(&mut writer, &parts).await });
    let answer = raw::read_answer(&mut reader).await;
    let closed = raw::expect_closed(&mut reader, CLOSE_TIMEOUT).await;
    writing.abort();
    let kind = match (chunked, send_body) {
        (true, _) => "oversized chunked",
        (false, true) => "oversized Content-Length, body sent",
        (false, false) => "oversized Content-Length, body not sent",
    };
    let what = format!("{target} ({size} bytes, {kind})");
    if let (Ok(Some(answer)), Ok(how)) = (&answer, &closed) {
        ctx.outcome(format!(
            "{kind}: {}{}, then {}",
            answer.status,
            if answer.close {
                " with Connection: close"
            } else {
                ""
            },
            match how {
                raw::Closed::Eof => "end of stream",
                raw::Closed::Reset => "a reset",
            }
        ));
    }
    match answer? {
        None => Err(format!("{what}: the connection closed with no answer")),
        Some(answer) if answer.status >= 500 => {
            ctx.server_errors.fetch_add(1, Ordering::Relaxed);
            Err(format!("{what}: status {}", answer.status))
        }
        Some(answer) if answer.status != 413 || !answer.body.is_empty() => Err(format!(
            "{what}: status {}, {} body bytes, expected 413 and none",
            answer.status,
            answer.body.len()
        )),
        Some(_) => closed.map(|_| ()).map_err(|e| format!("{what}: {e}")),
    }
}

/// A correctly signed request whose body stops short: the client closes the connection
/// after part of it, with a FIN or a reset (nothing comes back: the server must shrug it
/// off), or shuts down only its sending side and reads: 400 (the body could not be read),
/// then the server closes.
async fn truncated(ctx: &Ctx, rng: &mut Rng) -> Result<(), String> {
    let limit = ctx.options.body_limit;
    let size = rng.range(1, limit);
    let (target, content_type, body, signature) = sized_request(rng, &ctx.options.base, size);
    let cut = rng.below(body.len());
    let chunked = rng.percent(30);
    let framing = if chunked {
        Framing::Chunked
    } else {
        Framing::Length(body.len())
    };
    let mut parts = vec![raw::head(
        ctx.options.addr,
        &target,
        content_type,
        &signature,
        framing,
    )];
    if chunked {
        parts.extend(random_chunks(rng, &body[..cut]));
        // Half of a chunk: its size line promises more than follows.
        parts.push(format!("{:x}\r\nabc", 100).into_bytes());
    } else {
        parts.push(body[..cut].to_vec());
    }
    let framing = if chunked { "chunked" } else { "Content-Length" };
    let mut stream = raw::connect(ctx.options.addr).await?;
    for part in &parts {
        stream
            .write_all(part)
            .await
            .map_err(|e| format!("{target}: the server stopped reading a short body: {e}"))?;
    }
    match rng.below(3) {
        0 => {
            drop(stream);
            ctx.outcome(format!("truncated {framing}, closed (FIN): not read"));
        }
        1 => {
            stream
                .set_zero_linger()
                .map_err(|e| format!("SO_LINGER: {e}"))?;
            drop(stream);
            ctx.outcome(format!("truncated {framing}, reset: not read"));
        }
        _ => {
            stream
                .shutdown()
                .await
                .map_err(|e| format!("shutdown: {e}"))?;
            let answer = raw::read_answer(&mut stream)
                .await?
                .ok_or_else(|| format!("{target}: half-closed mid-body, no answer"))?;
            let closed = raw::expect_closed(&mut stream, CLOSE_TIMEOUT).await;
            if answer.status >= 500 {
                ctx.server_errors.fetch_add(1, Ordering::Relaxed);
            }
            if answer.status != 400 || !answer.body.is_empty() {
                return Err(format!(
                    "{target}: half-closed mid-body: status {}, {} body bytes, expected 400 and none",
                    answer.status,
                    answer.body.len()
                ));
            }
            let closed = closed.map_err(|e| format!("{target}: half-closed mid-body: {e}"))?;
            ctx.outcome(format!(
                "truncated {framing}, half-closed: 400, then {}",
                match closed {
                    raw::Closed::Eof => "end of stream",
                    raw::Closed::Reset => "a reset",
                }
            ));
        }
    }
    Ok(())
}
