//! Clients that stop reading pin their own stream's flow-control window,
//! never the window of the HTTP/2 connection that the front shares with
//! every other client toward the sidecar (RFC 9113 §5.2: flow control is
//! per stream and per connection; the hop's connection window is sized
//! above what all its streams can hold together).
//!
//! Each test parks many stalled streams on the one upstream connection,
//! then a bystander WebSocket must keep echoing and a bystander plain
//! request must complete, each within a bound.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use h2hop_integration::client::{
    body_bytes, full, http1_connect, read_response_head, request, ws_connect,
};
use h2hop_integration::harness::{Pair, within};
use http::{Method, StatusCode};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

/// More stalled streams than a 16 MiB connection window holds at 1 MiB each.
const STALLED: usize = 24;
/// Each stalled download: far more than the client's socket buffers take.
const BODY: usize = 10_000_000;
/// How long a bystander's echo or request may take while the others stall.
const BYSTANDER_BOUND: Duration = Duration::from_secs(5);

/// The bystander: a WebSocket that echoes a few messages and a plain GET
/// of 2 MB, each within [`BYSTANDER_BOUND`].
async fn bystander_keeps_working(front: SocketAddr) {
    let (mut ws, _) = ws_connect(front, "/ws", &[]).await.unwrap();
    for round in 0..5 {
        let text = format!("bystander {round}");
        let echo = async {
            ws.send(Message::text(text.clone())).await.unwrap();
            ws.next().await.expect("an echo").unwrap()
        };
        let back = tokio::time::timeout(BYSTANDER_BOUND, echo)
            .await
            .unwrap_or_else(|_| panic!("bystander echo {round} stalled"));
        assert_eq!(back, Message::text(text));
    }
    let get = async {
        let mut send = http1_connect(front).await.unwrap();
        let response = send
            .send_request(request(Method::GET, front, "/bytes/2000000", full("")).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        body_bytes(response).await.unwrap().len()
    };
    let got = tokio::time::timeout(BYSTANDER_BOUND, get)
        .await
        .expect("bystander plain GET stalled");
    assert_eq!(got, 2_000_000);
}

/// Lets the stalled streams fill every window they can before the
/// bystander starts: at loopback speed their bytes take well under this.
async fn let_windows_fill() {
    // No event marks "every window is full": it is the moment bytes stop
    // moving. A pause too short would only let the bystander pass
    // before the stall is complete; it cannot make the test fail.
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

/// Downloads whose clients read the response head and then nothing.
#[tokio::test]
async fn non_reading_downloads_do_not_stall_other_clients() {
    within(async {
        let pair = Pair::builder()
            .count_upstream_connections()
            .start()
            .await
            .unwrap();
        let mut stalled = Vec::new();
        for _ in 0..STALLED {
            let mut stream = TcpStream::connect(pair.front).await.unwrap();
            let head = format!("GET /bytes/{BODY} HTTP/1.1\r\nHost: app\r\n\r\n");
            stream.write_all(head.as_bytes()).await.unwrap();
            let (status, _, _) = read_response_head(&mut stream).await.unwrap();
            assert_eq!(status, 200);
            stalled.push(stream);
        }
        let_windows_fill().await;
        bystander_keeps_working(pair.front).await;
        assert_eq!(pair.upstream_connections(), 1, "all on one connection");
        drop(stalled);
    })
    .await;
}

/// WebSockets that send megabytes and never read the echo: the echo fills
/// the front's receive window, the app then stops reading, and the
/// sidecar's receive window fills too (both directions pinned).
#[tokio::test]
async fn non_reading_websockets_do_not_stall_other_clients() {
    within(async {
        let pair = Pair::builder()
            .count_upstream_connections()
            .start()
            .await
            .unwrap();
        let mut writers = JoinSet::new();
        for _ in 0..STALLED {
            let (mut ws, _) = ws_connect(pair.front, "/ws", &[]).await.unwrap();
            // Writes until back-pressure blocks it; aborted at the end.
            writers.spawn(async move {
                let chunk = vec![b'x'; 64 * 1024];
                loop {
                    if ws.send(Message::binary(chunk.clone())).await.is_err() {
                        return;
                    }
                }
            });
        }
        let_windows_fill().await;
        bystander_keeps_working(pair.front).await;
        assert_eq!(pair.upstream_connections(), 1, "all on one connection");
        writers.abort_all();
    })
    .await;
}
