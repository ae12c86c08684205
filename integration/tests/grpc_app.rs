//! The gRPC test app and client on their own, client → app over h2c, so
//! that a failure of `tests/grpc_pair.rs` is the pair's, not theirs.
//!
//! - `unary_direct`, `status_and_message_direct`, `server_stream_direct`,
//!   `client_stream_direct`, `bidi_interleaved_direct`,
//!   `deadline_mid_stream_direct`: the cases of
//!   [`h2hop_integration::grpc::cases`].

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use h2hop_integration::grpc::app::GrpcApp;
use h2hop_integration::grpc::cases;
use h2hop_integration::grpc::client::GrpcClient;
use h2hop_integration::harness::{loopback, within};
use tokio_util::sync::CancellationToken;

/// The app, a client connected to it, and the token that stops the app
/// (cancelled on drop).
async fn direct() -> (GrpcApp, GrpcClient, tokio_util::sync::DropGuard) {
    let shutdown = CancellationToken::new();
    let app = GrpcApp::spawn(loopback().await.unwrap(), shutdown.clone()).unwrap();
    let client = GrpcClient::h2c(app.addr).await.unwrap();
    (app, client, shutdown.drop_guard())
}

#[tokio::test]
async fn unary_direct() {
    within(async {
        let (app, mut client, _stop) = direct().await;
        cases::unary(&mut client, &app).await;
    })
    .await;
}

#[tokio::test]
async fn status_and_message_direct() {
    within(async {
        let (_app, mut client, _stop) = direct().await;
        cases::status_and_message(&mut client).await;
    })
    .await;
}

#[tokio::test]
async fn server_stream_direct() {
    within(async {
        let (app, mut client, _stop) = direct().await;
        cases::server_stream(&mut client, &app).await;
    })
    .await;
}

#[tokio::test]
async fn client_stream_direct() {
    within(async {
        let (app, mut client, _stop) = direct().await;
        cases::client_stream(&mut client, &app).await;
    })
    .await;
}

#[tokio::test]
async fn bidi_interleaved_direct() {
    within(async {
        let (app, mut client, _stop) = direct().await;
        cases::bidi_interleaved(&mut client, &app).await;
    })
    .await;
}

#[tokio::test]
async fn deadline_mid_stream_direct() {
    within(async {
        let (app, mut client, _stop) = direct().await;
        cases::deadline_mid_stream(&mut client, &app).await;
    })
    .await;
}

#[tokio::test]
async fn cancel_mid_stream_direct() {
    within(async {
        let (app, mut client, _stop) = direct().await;
        cases::cancel_mid_stream(&mut client, &app).await;
    })
    .await;
}
