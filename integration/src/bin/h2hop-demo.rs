//! `h2hop-demo`: the whole chain on loopback with built-in defaults.
//!
//! Starts the test app (a WebSocket echo and a page that uses it), an
//! h2hop-sidecar and an h2hop-front joined by mutual TLS with a PKI made
//! fresh in memory, prints where to point a browser, and runs until Ctrl-C.
//! With `--self-test` it drives a WebSocket client and a plain request
//! through the chain instead, and exits 0 only if both came back right.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use clap::Parser as _;
use h2hop::telemetry::LogArgs;
use h2hop_integration::client;
use h2hop_integration::harness::{Pair, PairBuilder};
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
    #[arg(long)]
    self_test: bool,
    /// Logging.
    #[command(flatten)]
    log: LogArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Held to the end of main: dropping it flushes the last log lines.
    let _log = h2hop::telemetry::init(&args.log).context("cannot start logging")?;
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
        let outcome = tokio::time::timeout(Duration::from_secs(20), self_test(&pair)).await;
        return match outcome {
            Ok(Ok(())) => report(
                "self-test passed: WebSocket echoes and a plain request crossed the HTTP/2 hop",
            ),
            Ok(Err(err)) => Err(err.context("self-test failed")),
            Err(_) => bail!("self-test timed out"),
        };
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

/// Five WebSocket echoes and one page load through the front.
async fn self_test(pair: &Pair) -> anyhow::Result<()> {
    let (mut ws, response) = client::ws_connect(pair.front, "/ws", &[]).await?;
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
    ws.close(None).await?;

    let mut http = client::http1_connect(pair.front).await?;
    let request = client::request(Method::GET, pair.front, "/", client::full(""))?;
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
