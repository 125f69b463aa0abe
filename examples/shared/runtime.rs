//! What every example server does around its router: logging and a graceful stop.

use std::io::IsTerminal as _;

/// What is logged when `RUST_LOG` is not set: the server's own lines, and why each refused
/// webhook was refused, with the URLs the layer tried.
pub(crate) const DEFAULT_LOG_FILTER: &str = "info,tower_twilio_signature=debug";

/// Logs to standard error, filtered by `RUST_LOG` (else [`DEFAULT_LOG_FILTER`]), in colour
/// only when standard error is a terminal.
pub(crate) fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER)),
        )
        .init();
}

/// Resolves on Ctrl-C or SIGTERM; the server then finishes the requests in flight.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing the requests in flight");
}
