//! Checks that a webhook endpoint verifies Twilio signatures: sends it correctly and wrongly
//! signed requests (a form POST, a GET with a query, a JSON POST with `bodySHA256`) and
//! prints, for each, what it sent, what it expected and what it got.
//!
//! ```text
//! TWILIO_AUTH_TOKEN=… cargo run --example check_endpoint -- [--curl] [--send-to BASE] URL
//! ```
//!
//! `--send-to http://127.0.0.1:3000` signs for URL but sends each request to that address
//! with the same path and query (and URL's host in `Host`): a service can be checked before
//! the proxy, DNS or TLS in front of it exist.
//!
//! The URL is the one you gave Twilio; `user:password@` in it is sent as HTTP Basic
//! credentials and left out of the signed URL, as Twilio does. `http://` URLs are sent with
//! hyper; `https://` URLs (or any URL with `--curl`) through the system's `curl`.
//!
//! Exit code: 0 if every check passed, 1 if one failed, 2 for a usage error.

mod checks;

use std::process::ExitCode;

use crate::checks::{Target, Transport};

const USAGE: &str =
    "usage: TWILIO_AUTH_TOKEN=… cargo run --example check_endpoint -- [--curl] [--send-to BASE] URL";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut use_curl = false;
    let mut url = None;
    let mut send_to = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--curl" => use_curl = true,
            "--send-to" => match args.next() {
                Some(base) if send_to.is_none() => send_to = Some(base),
                _ => {
                    eprintln!("check_endpoint: --send-to takes one address\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ if url.is_none() && !arg.starts_with('-') => url = Some(arg),
            _ => {
                eprintln!("check_endpoint: unexpected argument {arg:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(url) = url else {
        eprintln!("check_endpoint: no URL given\n{USAGE}");
        return ExitCode::from(2);
    };
    let auth_token = match std::env::var("TWILIO_AUTH_TOKEN") {
        Ok(token) if !token.is_empty() => token,
        _ => {
            eprintln!("check_endpoint: set TWILIO_AUTH_TOKEN to the Auth Token the endpoint checks against\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let target = match Target::parse(&url).and_then(|t| match &send_to {
        Some(base) => t.with_send_to(base),
        None => Ok(t),
    }) {
        Ok(target) => target,
        Err(err) => {
            eprintln!("check_endpoint: {err}");
            return ExitCode::from(2);
        }
    };
    let transport = if use_curl || target.is_https() {
        Transport::Curl
    } else {
        Transport::Hyper
    };

    let client = match transport {
        Transport::Hyper => "hyper",
        Transport::Curl => "curl",
    };
    match &target.send_to {
        Some(base) => println!(
            "Checking {} (signed for it, sent to {base} with {client})",
            target.url
        ),
        None => println!("Checking {} (sent with {client})", target.url),
    }
    println!("{}", checks::RULE);
    let reports = checks::run(&target, &auth_token, transport).await;
    for report in &reports {
        println!("{report}");
    }
    let failed = reports.iter().filter(|r| !r.passed()).count();
    for hint in checks::hints(&reports) {
        println!("hint: {hint}");
    }
    if failed == 0 {
        println!("All {} checks as expected.", reports.len());
        ExitCode::SUCCESS
    } else {
        println!("{failed} of {} checks not as expected.", reports.len());
        ExitCode::FAILURE
    }
}
