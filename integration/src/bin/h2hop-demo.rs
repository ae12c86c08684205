//! `h2hop-demo`: the whole chain on loopback with built-in defaults.
//!
//! Starts the test app (a WebSocket echo and a page that uses it), an
//! h2hop-sidecar and an h2hop-front joined by mutual TLS with a PKI made
//! fresh in memory, prints where to point a browser, and runs until Ctrl-C.
//! With `--self-test` it drives a WebSocket client and a plain request
//! through the chain instead, and exits 0 only if both came back right.
//! With `--check ADDR` it starts nothing and drives the same client through
//! a front already running at ADDR (CI's check of the Docker compose demo).

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use clap::Parser as _;
use h2hop::telemetry::LogArgs;
use h2hop_integration::client;
use h2hop_integration::harness::PairBuilder;
use http::Method;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

/// Runs app, h2hop-sidecar and h2hop-front together on loopback, with mutual
/// TLS between front and sidecar.
#[derive(Debug, clap::Parser)]
#[command(name = "h2hop-demo", version)]
struct Args {
    /// Where the front accepts browsers and other HTTP/1.1 clients.
    #[arg(long, env = "H2HOP_DEMO_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Drive a WebSocket and a plain request through the chain, then exit:
    /// 0 if the echoes came back, 1 if not. Uses a free port, not --listen.
    #[arg(long, conflicts_with = "check")]
    self_test: bool,
    /// Start nothing: drive the self-test's WebSocket echoes and page load
    /// through a front already running at this address, then exit 0 if
    /// they came back, 1 if not.
    #[arg(long, value_name = "ADDR")]
    check: Option<SocketAddr>,
    /// Logging.
    #[command(flatten)]
    log: LogArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Held to the end of main: dropping it flushes the last log lines.
    let _log = h2hop::telemetry::init(&args.log).context("cannot start logging")?;
    if let Some(front) = args.check {
        return run_self_test(front, &format!("check of {front}")).await;
    }
    let listen = if args.self_test {
        "127.0.0.1:0".parse()?
    } else {
        args.listen
    };
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (pick another with --listen)"))?;
    let pair = PairBuilder::default().start_on(listener).await?;
    if args.self_test {
        return run_self_test(pair.front, "self-test").await;
    }
    report(&format!(
        "h2hop demo running. Open http://{front}/ in a browser.\n\
         \n  front    h2hop-front   {front}  (HTTP/1.1 from clients)\
         \n  sidecar  h2hop-sidecar {sidecar}  (HTTP/2, mutual TLS, RFC 8441 extended CONNECT)\
         \n  app      echo app      {app}  (HTTP/1.1: the page at /, a WebSocket echo at /ws)\
         \n\nPress Ctrl-C to stop.",
        front = pair.front,
        sidecar = pair.sidecar,
        app = pair.app.addr,
    ))?;
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    drop(pair);
    report("stopped")
}

/// [`self_test`] within 20 s, reported as `what`.
async fn run_self_test(front: SocketAddr, what: &str) -> anyhow::Result<()> {
    match tokio::time::timeout(Duration::from_secs(20), self_test(front)).await {
        Ok(Ok(())) => report(&format!(
            "{what} passed: WebSocket echoes and a plain request crossed the HTTP/2 hop"
        )),
        Ok(Err(err)) => Err(err.context(format!("{what} failed"))),
        Err(_) => bail!("{what} timed out"),
    }
}

/// Five WebSocket echoes and one page load through the front.
async fn self_test(front: SocketAddr) -> anyhow::Result<()> {
    let (mut ws, response) = client::ws_connect(front, "/ws", &[]).await?;
    ensure!(
        response.status() == 101,
        "upgrade answered {}",
        response.status()
    );
    for n in 1..=5 {
        let sent = format!("hello {n}");
        let echoed = client::echo_roundtrip(&mut ws, Message::text(sent.clone())).await?;
        ensure!(
            echoed == Message::text(sent.clone()),
            "sent {sent:?}, got {echoed:?}"
        );
    }
    // A full close handshake, so the tunnel ends cleanly both ways.
    let close = client::close_handshake(&mut ws, 1000, "done").await?;
    ensure!(
        close
            .as_ref()
            .is_some_and(|frame| u16::from(frame.code) == 1000),
        "the close handshake answered {close:?}"
    );

    let mut http = client::http1_connect(front).await?;
    let request = client::request(Method::GET, front, "/", client::full(""))?;
    let page = http.send_request(request).await?;
    ensure!(page.status() == 200, "page answered {}", page.status());
    let body = client::body_bytes(page).await?;
    ensure!(
        String::from_utf8_lossy(&body).contains("WebSocket"),
        "the page does not look like the demo page"
    );
    Ok(())
}

/// Writes a line for the person running the demo.
fn report(line: &str) -> anyhow::Result<()> {
    writeln!(std::io::stdout().lock(), "{line}").context("cannot write to stdout")
}
