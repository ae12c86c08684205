//! WebSocket tunnels end to end: client → front → HTTP/2 extended CONNECT → sidecar → app.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use h2hop_integration::client;
use h2hop_integration::harness::Pair;
use tokio_tungstenite::tungstenite::Message;

const LIMIT: Duration = Duration::from_secs(20);

async fn within<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(LIMIT, future)
        .await
        .expect("test timed out")
}

#[tokio::test]
async fn text_and_binary_messages_echo_through_the_pair() {
    within(async {
        let pair = Pair::start().await.unwrap();
        let (mut ws, response) = client::ws_connect(pair.front, "/ws?room=1", &[])
            .await
            .unwrap();
        assert_eq!(response.status(), 101);
        ws.send(Message::text("hello")).await.unwrap();
        assert_eq!(
            client::next_message(&mut ws).await.unwrap(),
            Message::text("hello")
        );
        ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
        assert_eq!(
            client::next_message(&mut ws).await.unwrap(),
            Message::binary(vec![1u8, 2, 3])
        );
        ws.close(None).await.unwrap();
        while ws.next().await.is_some() {}
    })
    .await;
}
