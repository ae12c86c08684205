//! gRPC end to end with a real gRPC stack (tonic client and app): client →
//! front → sidecar (`--app-protocol h2c`) → app, the client on the front's
//! TLS listener (HTTP/2 by ALPN `h2`) or on its plain listener (h2c with
//! prior knowledge), the hop in mutual TLS.
//!
//! Each case of [`h2hop_integration::grpc::cases`], over both client
//! listeners (`_over_tls`, `_over_h2c`):
//! - `unary_*`: a message echoed; the app got `te: trailers`;
//! - `status_and_message_*`: `grpc-status` and `grpc-message` (trailers
//!   only answer) arrive intact;
//! - `server_stream_*`: five messages, then status 0;
//! - `client_stream_*`: ten messages summed;
//! - `bidi_interleaved_*`: each echo read before the next message is sent;
//! - `cancel_mid_stream_*`: the client gives up after two messages (no
//!   deadline): its reset crosses front and sidecar, and the app sees the
//!   call cancelled;
//! - `deadline_mid_stream_*`: the client's deadline (300 ms, sent as
//!   `grpc-timeout`) passes mid-stream: DEADLINE_EXCEEDED at the client,
//!   and the app sees the call cancelled (the client and the sidecar,
//!   which keeps `grpc-timeout` too, each reset the stream).

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use h2hop_integration::grpc::app::GrpcApp;
use h2hop_integration::grpc::cases;
use h2hop_integration::grpc::client::GrpcClient;
use h2hop_integration::harness::{Pair, loopback, within};
use h2hop_sidecar::AppProtocol;
use tokio_util::sync::{CancellationToken, DropGuard};

/// Which front listener the client uses.
#[derive(Debug, Clone, Copy)]
enum Listener {
    /// TLS, ALPN `h2`.
    Tls,
    /// Plain, h2c with prior knowledge.
    H2c,
}

/// What one test holds: the pair, the gRPC app behind it, a client on
/// `listener`, and the guard that stops the app.
struct Through {
    _pair: Pair,
    app: GrpcApp,
    client: GrpcClient,
    _stop: DropGuard,
}

async fn through(listener: Listener) -> Through {
    let shutdown = CancellationToken::new();
    let app = GrpcApp::spawn(loopback().await.unwrap(), shutdown.clone()).unwrap();
    let pair = Pair::builder()
        .client_tls()
        .app_at(app.addr)
        .sidecar_config(|config| config.app.protocol = AppProtocol::H2c)
        .start()
        .await
        .unwrap();
    let client = match listener {
        Listener::Tls => GrpcClient::tls(&pair).await.unwrap(),
        Listener::H2c => GrpcClient::h2c(pair.front).await.unwrap(),
    };
    Through {
        _pair: pair,
        app,
        client,
        _stop: shutdown.drop_guard(),
    }
}

async fn unary(listener: Listener) {
    let mut t = through(listener).await;
    cases::unary(&mut t.client, &t.app).await;
}

async fn status_and_message(listener: Listener) {
    let mut t = through(listener).await;
    cases::status_and_message(&mut t.client).await;
}

async fn server_stream(listener: Listener) {
    let mut t = through(listener).await;
    cases::server_stream(&mut t.client, &t.app).await;
}

async fn client_stream(listener: Listener) {
    let mut t = through(listener).await;
    cases::client_stream(&mut t.client, &t.app).await;
}

async fn bidi_interleaved(listener: Listener) {
    let mut t = through(listener).await;
    cases::bidi_interleaved(&mut t.client, &t.app).await;
}

async fn cancel_mid_stream(listener: Listener) {
    let mut t = through(listener).await;
    cases::cancel_mid_stream(&mut t.client, &t.app).await;
}

async fn deadline_mid_stream(listener: Listener) {
    let mut t = through(listener).await;
    cases::deadline_mid_stream(&mut t.client, &t.app).await;
}

#[tokio::test]
async fn unary_over_tls() {
    within(unary(Listener::Tls)).await;
}

#[tokio::test]
async fn unary_over_h2c() {
    within(unary(Listener::H2c)).await;
}

#[tokio::test]
async fn status_and_message_over_tls() {
    within(status_and_message(Listener::Tls)).await;
}

#[tokio::test]
async fn status_and_message_over_h2c() {
    within(status_and_message(Listener::H2c)).await;
}

#[tokio::test]
async fn server_stream_over_tls() {
    within(server_stream(Listener::Tls)).await;
}

#[tokio::test]
async fn server_stream_over_h2c() {
    within(server_stream(Listener::H2c)).await;
}

#[tokio::test]
async fn client_stream_over_tls() {
    within(client_stream(Listener::Tls)).await;
}

#[tokio::test]
async fn client_stream_over_h2c() {
    within(client_stream(Listener::H2c)).await;
}

#[tokio::test]
async fn bidi_interleaved_over_tls() {
    within(bidi_interleaved(Listener::Tls)).await;
}

#[tokio::test]
async fn bidi_interleaved_over_h2c() {
    within(bidi_interleaved(Listener::H2c)).await;
}

#[tokio::test]
async fn deadline_mid_stream_over_tls() {
    within(deadline_mid_stream(Listener::Tls)).await;
}

#[tokio::test]
async fn deadline_mid_stream_over_h2c() {
    within(deadline_mid_stream(Listener::H2c)).await;
}

#[tokio::test]
async fn cancel_mid_stream_over_tls() {
    within(cancel_mid_stream(Listener::Tls)).await;
}

#[tokio::test]
async fn cancel_mid_stream_over_h2c() {
    within(cancel_mid_stream(Listener::H2c)).await;
}
