//! `h2hop-echo`: the integration test app on its own, as the app behind a
//! sidecar in the Docker and Kubernetes examples.
//!
//! A plain HTTP/1.1 server (the [`h2hop_integration::app`] module): `GET /`
//! is the demo page, a WebSocket on `/ws` (or any other path) echoes every
//! message, and other plain requests get short answers (`/echo` returns the
//! request body). It keeps no record of requests, and runs until SIGTERM or
//! Ctrl-C. It is a demo and test app, not a production server.

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Parser as _;
use h2hop::telemetry::LogArgs;
use h2hop_integration::app::TestApp;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves the h2hop test app (a WebSocket echo and a demo page) over
/// HTTP/1.1.
#[derive(Debug, clap::Parser)]
#[command(name = "h2hop-echo", version)]
struct Args {
    /// Where the app accepts HTTP/1.1 connections (a sidecar's `--app`).
    #[arg(long, env = "H2HOP_ECHO_LISTEN", default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// Logging.
    #[command(flatten)]
    log: LogArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Held to the end of main: dropping it flushes the last log lines.
    let _log = h2hop::telemetry::init(&args.log).context("cannot start logging")?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let shutdown = CancellationToken::new();
    let app = TestApp::spawn_unrecorded(listener, shutdown.clone())?;
    tracing::info!(listen = %app.addr, "h2hop-echo ready");
    // Returns once SIGTERM or Ctrl-C cancelled the token; the app's
    // connections then finish their current exchange.
    h2hop::signals::on_signal(shutdown).await;
    Ok(())
}
