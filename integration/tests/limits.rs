//! Limits: past each one the answer is 503 (431 for an oversized head) at
//! once, never a queue or a hang; what is already open keeps flowing, and a
//! place given back is usable again.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use h2hop_integration::client::{
    body_bytes, full, http1_connect, raw_request, raw_upgrade, request, ws_connect,
};
use h2hop_integration::harness::{Pair, within};
use h2hop_integration::wait::{eventually, eventually_async};
use http::{Method, StatusCode};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

async fn echo(ws: &mut WebSocketStream<TcpStream>, text: &str) {
    ws.send(Message::text(text)).await.unwrap();
    let back = ws.next().await.expect("an echo").unwrap();
    assert_eq!(back, Message::text(text));
}

/// The front's tunnel limit: the third upgrade gets 503 while two tunnels
/// are open and keep echoing; once one closes, a new one opens.
#[tokio::test]
async fn front_tunnel_limit_answers_503() {
    within(async {
        let pair = Pair::builder()
            .h2c()
            .front_config(|config| config.max_tunnels = 2)
            .start()
            .await
            .unwrap();
        let (mut first, _) = ws_connect(pair.front, "/ws", &[]).await.unwrap();
        let (mut second, _) = ws_connect(pair.front, "/ws", &[]).await.unwrap();
        let refused = raw_upgrade(pair.front, "/ws", "Upgrade", &[])
            .await
            .unwrap();
        assert_eq!(refused.status, 503);
        echo(&mut first, "one").await;
        echo(&mut second, "two").await;
        first.close(None).await.unwrap();
        while first.next().await.is_some() {}
        // A WebSocket client closes its TCP side when dropped.
        drop(first);
        // The place comes back once the tunnel has ended on the front.
        let reopened = eventually_async(Duration::from_secs(5), || async {
            let attempt = raw_upgrade(pair.front, "/ws", "Upgrade", &[]).await;
            (attempt.unwrap().status == 101).then_some(())
        });
        assert!(reopened.await.is_some(), "no tunnel after one closed");
    })
    .await;
}

/// The front's connection limit: a third client connection gets a 503 and
/// is closed, the two served ones keep working.
#[tokio::test]
async fn front_connection_limit_answers_503_and_closes() {
    within(async {
        let pair = Pair::builder()
            .h2c()
            .front_config(|config| config.max_connections = 2)
            .start()
            .await
            .unwrap();
        let mut clients = Vec::new();
        for _ in 0..2 {
            let mut client = http1_connect(pair.front).await.unwrap();
            let get = request(Method::GET, pair.front, "/", full("")).unwrap();
            let response = client.send_request(get).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            body_bytes(response).await.unwrap();
            clients.push(client);
        }
        let mut third = raw_request(pair.front, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(third.status, 503);
        assert!(
            third
                .read_body()
                .await
                .unwrap()
                .starts_with(b"h2hop-front:")
        );
        let mut rest = Vec::new();
        third.stream.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "the refused connection is closed");
        for client in &mut clients {
            let get = request(Method::GET, pair.front, "/echo", full("x")).unwrap();
            let response = client.send_request(get).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        }
    })
    .await;
}

/// A request head over the front's limit gets 431.
#[tokio::test]
async fn oversized_request_head_gets_431() {
    within(async {
        let pair = Pair::builder()
            .h2c()
            .front_config(|config| config.max_header_size = 8192)
            .start()
            .await
            .unwrap();
        let big = "a".repeat(10_000);
        let head = format!("GET / HTTP/1.1\r\nHost: h\r\nX-Big: {big}\r\n\r\n");
        let answer = raw_request(pair.front, &head).await.unwrap();
        assert_eq!(answer.status, 431);
        let small = raw_request(pair.front, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(small.status, 200);
    })
    .await;
}

/// The sidecar's tunnel limit: its 503 reaches the client; the open
/// tunnel keeps echoing.
#[tokio::test]
async fn sidecar_tunnel_limit_answers_503() {
    within(async {
        let pair = Pair::builder()
            .h2c()
            .sidecar_config(|config| config.max_tunnels = 1)
            .start()
            .await
            .unwrap();
        let (mut open, _) = ws_connect(pair.front, "/ws", &[]).await.unwrap();
        let refused = raw_upgrade(pair.front, "/ws", "Upgrade", &[])
            .await
            .unwrap();
        assert_eq!(refused.status, 503);
        echo(&mut open, "still open").await;
    })
    .await;
}

/// One pending app dial per front connection: while an upgrade waits for
/// an app that does not answer, the next gets 503; when its client gives
/// up, the stream reset cancels the dial and the place comes back.
#[tokio::test]
async fn pending_dials_are_limited_and_a_reset_gives_the_place_back() {
    within(async {
        let pair = Pair::builder()
            .h2c()
            .sidecar_config(|config| config.max_pending_dials = 1)
            .start()
            .await
            .unwrap();
        // `/slow` upgrades are answered only when the app shuts down.
        let waiting = tokio::spawn(raw_upgrade(pair.front, "/slow", "Upgrade", &[]));
        // Once the app saw it, the slow upgrade holds the one dial place.
        let seen = eventually(Duration::from_secs(5), || {
            pair.app.requests().iter().any(|seen| seen.uri == "/slow")
        });
        assert!(seen.await, "the app never saw the slow upgrade");
        let refused = raw_upgrade(pair.front, "/ws", "Upgrade", &[])
            .await
            .unwrap();
        assert_eq!(refused.status, 503);
        assert!(!waiting.is_finished());
        waiting.abort();
        let reopened = eventually_async(Duration::from_secs(5), || async {
            let attempt = raw_upgrade(pair.front, "/ws", "Upgrade", &[]).await;
            (attempt.unwrap().status == 101).then_some(())
        });
        assert!(
            reopened.await.is_some(),
            "the abandoned dial never gave its place back"
        );
    })
    .await;
}
