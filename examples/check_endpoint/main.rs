//! Checks that a webhook endpoint verifies Twilio signatures: sends it correctly and wrongly
//! signed requests (a form POST, a GET with a query, a JSON POST with `bodySHA256`) and
//! prints, for each, what it sent, what it expected and what it got.
//!
//! ```text
//! TWILIO_AUTH_TOKEN=… cargo run --example check_endpoint -- [--curl] URL
//! ```
//!
//! The URL is the one you gave Twilio; `user:password@` in it is sent as HTTP Basic
//! credentials and left out of the signed URL, as Twilio does. `http://` URLs are sent with
//! hyper; `https://` URLs (or any URL with `--curl`) through the system's `curl`.
//!
//! Exit code: 0 if every check passed, 1 if one failed, 2 for a usage error.

mod checks;

use std::process::ExitCode;

use crate::checks::{Target, Transport};

const USAGE: &str = "usage: TWILIO_AUTH_TOKEN=… cargo run --example check_endpoint -- [--curl] URL";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut use_curl = false;
    let mut url = None;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--curl" => use_curl = true,
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
    let target = match Target::parse(&url) {
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
    println!("Checking {} (sent with {client})", target.url);
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
