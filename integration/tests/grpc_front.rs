//! The front alone before a gRPC server: client (h2c, on the plain
//! listener) → front → the tonic app, the front speaking h2c to it as to
//! a sidecar. It shows the front's half of the gRPC path on its own:
//! trailers, interleaved streams and a client's reset all cross it. The
//! whole path, through the sidecar, is `tests/grpc_pair.rs`.
//!
//! - `unary_through_the_front`, `status_and_message_through_the_front`,
//!   `server_stream_through_the_front`, `client_stream_through_the_front`,
//!   `bidi_interleaved_through_the_front`, `cancel_mid_stream_through_the_front`,
//!   `deadline_mid_stream_through_the_front`: the cases of
//!   [`h2hop_integration::grpc::cases`].

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use h2hop_integration::grpc::app::GrpcApp;
use h2hop_integration::grpc::cases;
use h2hop_integration::grpc::client::GrpcClient;
use h2hop_integration::harness::{loopback, within};
use tokio_util::sync::{CancellationToken, DropGuard};

/// The app, a front before it, a client on the front's plain listener,
/// and the guard that stops both.
async fn front_before_app() -> (GrpcApp, GrpcClient, DropGuard) {
    let shutdown = CancellationToken::new();
    let app = GrpcApp::spawn(loopback().await.unwrap(), shutdown.clone()).unwrap();
    let config = h2hop_front::Config::new(app.addr.to_string(), None);
    let plain = loopback().await.unwrap();
    let front = plain.local_addr().unwrap();
    tokio::spawn(h2hop_front::run(config, plain.into(), shutdown.clone()));
    let client = GrpcClient::h2c(front).await.unwrap();
    (app, client, shutdown.drop_guard())
}

#[tokio::test]
async fn unary_through_the_front() {
    within(async {
        let (app, mut client, _stop) = front_before_app().await;
        cases::unary(&mut client, &app).await;
    })
    .await;
}

#[tokio::test]
async fn status_and_message_through_the_front() {
    within(async {
        let (_app, mut client, _stop) = front_before_app().await;
        cases::status_and_message(&mut client).await;
    })
    .await;
}

#[tokio::test]
async fn server_stream_through_the_front() {
    within(async {
        let (app, mut client, _stop) = front_before_app().await;
        cases::server_stream(&mut client, &app).await;
    })
    .await;
}

#[tokio::test]
async fn client_stream_through_the_front() {
    within(async {
        let (app, mut client, _stop) = front_before_app().await;
        cases::client_stream(&mut client, &app).await;
    })
    .await;
}

#[tokio::test]
async fn bidi_interleaved_through_the_front() {
    within(async {
        let (app, mut client, _stop) = front_before_app().await;
        cases::bidi_interleaved(&mut client, &app).await;
    })
    .await;
}

#[tokio::test]
async fn deadline_mid_stream_through_the_front() {
    within(async {
        let (app, mut client, _stop) = front_before_app().await;
        cases::deadline_mid_stream(&mut client, &app).await;
    })
    .await;
}

#[tokio::test]
async fn cancel_mid_stream_through_the_front() {
    within(async {
        let (app, mut client, _stop) = front_before_app().await;
        cases::cancel_mid_stream(&mut client, &app).await;
    })
    .await;
}
