//! The gRPC calls every path is tested with, each one checked at the
//! client and at the app: the same cases run client → app directly
//! (`tests/grpc_app.rs`) and through the pair (`tests/grpc_pair.rs`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test support: a failed check fails the test"
)]

use std::time::Duration;

use tonic::Code;

use super::app::{GrpcApp, Outcome};
use super::client::GrpcClient;
use super::{BIDI_STREAM, CLIENT_STREAM, EchoMessage, SERVER_STREAM, StreamRequest, UNARY};

/// How long the app may take to see a call end after the client did.
pub const END_SEEN_WITHIN: Duration = Duration::from_secs(5);

/// The client's deadline in [`deadline_mid_stream`].
pub const DEADLINE: Duration = Duration::from_millis(300);

/// Unary: the message comes back as sent; the app got an ordinary gRPC
/// request (`content-type: application/grpc`, `te: trailers`).
pub async fn unary(client: &mut GrpcClient, app: &GrpcApp) {
    let echoed = client.unary("hello grpc").await.unwrap();
    assert_eq!(echoed.text, "hello grpc");
    let call = app
        .ended(UNARY, END_SEEN_WITHIN)
        .await
        .expect("unary ended");
    assert_eq!(call.outcome, Outcome::Finished);
    assert_eq!(call.headers["content-type"], "application/grpc");
    assert_eq!(call.headers["te"], "trailers");
}

/// A failing call: `grpc-status` and `grpc-message` (percent-encoded on
/// the wire, with spaces, `%` and non-ASCII) arrive as the app sent them.
pub async fn status_and_message(client: &mut GrpcClient) {
    let message = "quota spent: 0% left, réessayez";
    let status = client.fail(Code::ResourceExhausted, message).await;
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(status.message(), message);
    let status = client.fail(Code::NotFound, "no such echo").await;
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(status.message(), "no such echo");
}

/// Server streaming: `count` messages in order, then status 0.
pub async fn server_stream(client: &mut GrpcClient, app: &GrpcApp) {
    let asked = StreamRequest {
        text: "tick".to_owned(),
        count: 5,
        delay_ms: 10,
    };
    let streamed = client.server_stream(asked, None).await;
    assert_eq!(streamed.status.code(), Code::Ok, "{:?}", streamed.status);
    let indexes: Vec<u32> = streamed.messages.iter().map(|m| m.index).collect();
    assert_eq!(indexes, [0, 1, 2, 3, 4]);
    assert!(streamed.messages.iter().all(|m| m.text == "tick"));
    let call = app.ended(SERVER_STREAM, END_SEEN_WITHIN).await.unwrap();
    assert_eq!(call.outcome, Outcome::Finished);
}

/// Client streaming: ten numbers, one message each, summed and counted.
pub async fn client_stream(client: &mut GrpcClient, app: &GrpcApp) {
    let sum = client.client_stream((1..=10).collect()).await.unwrap();
    assert_eq!((sum.total, sum.count), (55, 10));
    let call = app.ended(CLIENT_STREAM, END_SEEN_WITHIN).await.unwrap();
    assert_eq!(call.outcome, Outcome::Finished);
}

/// Bidirectional streaming, interleaved: each message's echo is read
/// before the next is sent, so neither side's stream is buffered whole;
/// closing the request stream ends the call with status 0.
pub async fn bidi_interleaved(client: &mut GrpcClient, app: &GrpcApp) {
    let (send, mut echoes) = client.bidi().await.unwrap();
    for index in 0..5 {
        let text = format!("ping {index}");
        let message = EchoMessage {
            text: text.clone(),
            index: 0,
        };
        if send.send(message).await.is_err() {
            let ended = echoes.message().await;
            panic!("the call ended before message {index}: {ended:?}");
        }
        let echo = echoes.message().await.unwrap().expect("an echo");
        assert_eq!((echo.text, echo.index), (text, index));
    }
    drop(send);
    assert_eq!(echoes.message().await.unwrap(), None);
    let call = app.ended(BIDI_STREAM, END_SEEN_WITHIN).await.unwrap();
    assert_eq!(call.outcome, Outcome::Finished);
}

/// A client that cancels mid-stream (no deadline, so no hop acts on
/// `grpc-timeout`): its reset reaches the app, which sees the call
/// cancelled long before the stream would have ended.
pub async fn cancel_mid_stream(client: &mut GrpcClient, app: &GrpcApp) {
    let asked = StreamRequest {
        text: "until cancelled".to_owned(),
        count: 500,
        delay_ms: 20,
    };
    let messages = client.server_stream_cancelled(asked, 2).await.unwrap();
    assert_eq!(messages.len(), 2);
    let call = app
        .ended(SERVER_STREAM, END_SEEN_WITHIN)
        .await
        .expect("the app saw the call end");
    assert_eq!(call.outcome, Outcome::Cancelled);
    assert!(!call.headers.contains_key("grpc-timeout"));
}

/// A deadline that passes mid-stream: the client ends the call with
/// DEADLINE_EXCEEDED after some of the messages, the app got the
/// deadline as `grpc-timeout`, and sees the call cancelled (a reset
/// reached it: the client's, or a hop's that keeps the deadline) long
/// before the stream would have ended.
pub async fn deadline_mid_stream(client: &mut GrpcClient, app: &GrpcApp) {
    let asked = StreamRequest {
        text: "slow".to_owned(),
        count: 500,
        delay_ms: 20,
    };
    let streamed = client.server_stream(asked, Some(DEADLINE)).await;
    assert_eq!(
        streamed.status.code(),
        Code::DeadlineExceeded,
        "{:?}",
        streamed.status
    );
    assert!(streamed.messages.len() < 500, "the stream was not cut");
    let call = app
        .ended(SERVER_STREAM, END_SEEN_WITHIN)
        .await
        .expect("the app saw the call end");
    assert_eq!(call.outcome, Outcome::Cancelled);
    let timeout = call.headers["grpc-timeout"].to_str().unwrap();
    assert!(
        timeout.ends_with('m') || timeout.ends_with('u'),
        "{timeout}"
    );
}
