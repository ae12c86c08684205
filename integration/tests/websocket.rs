//! WebSocket tunnels end to end: client → front → HTTP/2 extended CONNECT → sidecar → app.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;

use futures_util::{SinkExt as _, StreamExt as _};
use h2hop_integration::client;
use h2hop_integration::harness::{Pair, within};
use http::Method;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

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

/// Echo of one message on a fresh `/ws` connection through `pair`.
async fn echo_once(pair: &Pair, message: Message) -> Message {
    let (mut ws, _) = client::ws_connect(pair.front, "/ws", &[]).await.unwrap();
    client::echo_roundtrip(&mut ws, message).await.unwrap()
}

/// `len` bytes that differ from position to position (period 251, a prime,
/// so it never lines up with frame or window sizes).
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// RFC 8441 §5: a message much larger than one HTTP/2 DATA frame (16 KiB)
/// and the 1 MiB stream window crosses the tunnel intact.
#[tokio::test]
async fn one_mib_binary_message_echoes_intact() {
    within(async {
        let pair = Pair::start().await.unwrap();
        let big = pattern(1024 * 1024);
        let echoed = echo_once(&pair, Message::binary(big.clone())).await;
        assert!(echoed == Message::binary(big), "1 MiB echo differs");
    })
    .await;
}

/// RFC 6455 §5.4: a Text message sent as three fragments (two of them split
/// inside a UTF-8 sequence) reaches the app as one message, so the echo is
/// the whole text.
#[tokio::test]
async fn fragmented_text_message_echoes_as_one_message() {
    within(async {
        let pair = Pair::start().await.unwrap();
        let (mut ws, _) = client::ws_connect(pair.front, "/ws", &[]).await.unwrap();
        let text = "fragmenté ✓ message";
        let bytes = text.as_bytes();
        // Byte 9 falls inside "é", byte 13 inside "✓".
        let (first, rest) = bytes.split_at(9);
        let (middle, last) = rest.split_at(4);
        let frames = [
            Frame::message(first.to_vec(), OpCode::Data(Data::Text), false),
            Frame::message(middle.to_vec(), OpCode::Data(Data::Continue), false),
            Frame::message(last.to_vec(), OpCode::Data(Data::Continue), true),
        ];
        for frame in frames {
            ws.send(Message::Frame(frame)).await.unwrap();
        }
        assert_eq!(
            client::next_message(&mut ws).await.unwrap(),
            Message::text(text)
        );
    })
    .await;
}

/// RFC 6455 §5.5.2, §5.5.3: a Ping crosses the tunnel and the app's Pong
/// comes back with the same application data.
#[tokio::test]
async fn client_ping_gets_pong_with_same_payload() {
    within(async {
        let pair = Pair::start().await.unwrap();
        let (mut ws, _) = client::ws_connect(pair.front, "/ws", &[]).await.unwrap();
        ws.send(Message::Ping(b"are you there?".to_vec().into()))
            .await
            .unwrap();
        // The app sends nothing else, so the very next frame is the answer.
        let answer = ws.next().await.expect("stream ended before the pong");
        assert_eq!(
            answer.unwrap(),
            Message::Pong(b"are you there?".to_vec().into())
        );
    })
    .await;
}

/// RFC 6455 §5.5.1: the client's Close(4000, "client done") reaches the
/// app, whose Close reply echoes code and reason back through the tunnel.
#[tokio::test]
async fn client_close_code_and_reason_come_back_from_app() {
    within(async {
        let pair = Pair::start().await.unwrap();
        let (mut ws, _) = client::ws_connect(pair.front, "/ws", &[]).await.unwrap();
        let frame = client::close_handshake(&mut ws, 4000, "client done")
            .await
            .unwrap()
            .expect("the app's close frame carried no code");
        assert_eq!(
            (u16::from(frame.code), frame.reason.as_str()),
            (4000, "client done")
        );
    })
    .await;
}

/// RFC 6455 §5.5.1: a Close the app starts reaches the client with the
/// app's code and reason.
#[tokio::test]
async fn server_close_code_and_reason_reach_client() {
    within(async {
        let pair = Pair::start().await.unwrap();
        let (mut ws, _) =
            client::ws_connect(pair.front, "/ws/server-close?code=4001&reason=bye", &[])
                .await
                .unwrap();
        let frame = client::wait_close(&mut ws)
            .await
            .unwrap()
            .expect("the app's close frame carried no code");
        assert_eq!(
            (u16::from(frame.code), frame.reason.as_str()),
            (4001, "bye")
        );
    })
    .await;
}

/// RFC 8441 §5 (N12): `Sec-WebSocket-Protocol` passes both ways: the app
/// sees the client's offer as sent and the client gets the app's choice in
/// the 101 (N44: tungstenite fails the handshake if it was not offered).
/// RFC 9110 §7.6.1: end-to-end fields such as `Set-Cookie` also cross the
/// rebuilt 101 (S7).
#[tokio::test]
async fn subprotocol_offer_reaches_app_and_its_choice_and_cookie_reach_client() {
    within(async {
        let pair = Pair::start().await.unwrap();
        let offer = [("Sec-WebSocket-Protocol", "foo, echo")];
        let (mut ws, response) = client::ws_connect(pair.front, "/ws", &offer).await.unwrap();
        assert_eq!(response.headers()["sec-websocket-protocol"], "echo");
        assert_eq!(response.headers()["set-cookie"], "app-session=1");
        let requests = pair.app.requests();
        assert_eq!(requests.len(), 1);
        let offered: Vec<_> = requests[0]
            .headers
            .get_all("sec-websocket-protocol")
            .iter()
            .collect();
        assert_eq!(offered, ["foo, echo"]);
        // The negotiated tunnel works.
        assert_eq!(
            client::echo_roundtrip(&mut ws, Message::text("sub"))
                .await
                .unwrap(),
            Message::text("sub")
        );
    })
    .await;
}

/// RFC 8441 §5 (N9): the same echo works when the hop is cleartext HTTP/2
/// (h2c with prior knowledge) instead of mutual TLS.
#[tokio::test]
async fn text_and_binary_messages_echo_over_h2c() {
    within(async {
        let pair = Pair::builder().h2c().start().await.unwrap();
        let (mut ws, _) = client::ws_connect(pair.front, "/ws", &[]).await.unwrap();
        for message in [Message::text("over h2c"), Message::binary(pattern(70_000))] {
            let echoed = client::echo_roundtrip(&mut ws, message.clone())
                .await
                .unwrap();
            assert!(echoed == message, "h2c echo differs");
        }
    })
    .await;
}

/// RFC 8441 §4, §5 (N8, N11, N24, N38, N40, N41): the app's handshake is a
/// GET for the client's path and query unchanged, with Host equal to the
/// client's (carried as `:authority`), version 13 and a key of the
/// sidecar's own, while the client's 101 answers the client's key.
#[tokio::test]
async fn app_gets_path_query_and_host_as_sent_with_a_fresh_key() {
    within(async {
        let pair = Pair::start().await.unwrap();
        let host = "chat.example.test:8443";
        let up = client::raw_upgrade(
            pair.front,
            "/ws/chat?room=1&x=y",
            "Upgrade",
            &[("Host", host)],
        )
        .await
        .unwrap();
        assert_eq!(up.status, 101);
        assert_eq!(
            up.header("sec-websocket-accept"),
            Some(client::accept_for(&up.key).as_str())
        );
        let requests = pair.app.requests();
        assert_eq!(requests.len(), 1);
        let app = &requests[0];
        assert_eq!(app.method, "GET");
        assert_eq!(app.uri, "/ws/chat?room=1&x=y");
        assert_eq!(app.headers["host"], host);
        assert_eq!(app.headers["sec-websocket-version"], "13");
        let key = app.headers["sec-websocket-key"].to_str().unwrap();
        assert_ne!(key, up.key, "the client's key was forwarded");
        assert_eq!(key.len(), 24, "not base64 of 16 bytes: {key}");
    })
    .await;
}

/// How many WebSockets [`two_hundred_websockets_and_plain_gets_share_one_front`] opens.
const SOCKETS: usize = 200;
/// How many plain GETs it interleaves.
const GETS: usize = 20;

/// Opens one WebSocket, reports it open, echoes while the plain GETs run,
/// waits for them to finish, echoes once more and closes.
async fn chatty_socket(
    front: SocketAddr,
    id: usize,
    opened: mpsc::Sender<()>,
    mut gets_done: watch::Receiver<bool>,
) {
    let (mut ws, _) = client::ws_connect(front, &format!("/ws/{id}"), &[])
        .await
        .unwrap();
    let mut echo = async |round: usize| {
        let text = format!("socket {id} round {round}");
        let echoed = client::echo_roundtrip(&mut ws, Message::text(text.clone()))
            .await
            .unwrap();
        assert_eq!(echoed, Message::text(text));
    };
    echo(0).await;
    opened.send(()).await.unwrap();
    echo(1).await;
    echo(2).await;
    gets_done.wait_for(|done| *done).await.unwrap();
    echo(3).await;
    let frame = client::close_handshake(&mut ws, 1000, "").await.unwrap();
    assert_eq!(frame.map(|f| u16::from(f.code)), Some(1000));
}

/// RFC 9113 §5.1.2, RFC 8441 §5: 200 tunnels are 200 streams on the front's
/// one HTTP/2 connection (the sidecar allows 1000); with all of them
/// open, plain GETs on other client connections are multiplexed alongside
/// and every echo and every response is right. The app sees exactly one
/// upgrade per WebSocket and one request per GET.
#[tokio::test]
async fn two_hundred_websockets_and_plain_gets_share_one_front() {
    within(async {
        let pair = Pair::builder()
            .count_upstream_connections()
            .start()
            .await
            .unwrap();
        let (opened_tx, mut opened_rx) = mpsc::channel(SOCKETS);
        let (done_tx, done_rx) = watch::channel(false);
        let mut sockets = JoinSet::new();
        for id in 0..SOCKETS {
            sockets.spawn(chatty_socket(
                pair.front,
                id,
                opened_tx.clone(),
                done_rx.clone(),
            ));
        }
        drop(opened_tx);
        let mut open = 0;
        while open < SOCKETS {
            tokio::select! {
                Some(()) = opened_rx.recv() => open += 1,
                // No socket ends before `done_tx` says so, unless it failed:
                // show its panic rather than wait for the timeout.
                Some(ended) = sockets.join_next() => {
                    ended.unwrap();
                    panic!("a WebSocket closed before the GETs ran");
                }
            }
        }
        let mut gets = JoinSet::new();
        for i in 0..GETS {
            let front = pair.front;
            gets.spawn(async move {
                let len = 1000 + i;
                let mut sender = client::http1_connect(front).await.unwrap();
                let path = format!("/bytes/{len}");
                let request = client::request(Method::GET, front, &path, client::full("")).unwrap();
                let response = sender.send_request(request).await.unwrap();
                assert_eq!(response.status(), 200, "GET {path}");
                let body = client::body_bytes(response).await.unwrap();
                let want: Vec<u8> = (b'a'..=b'z').cycle().take(len).collect();
                assert_eq!(body, want, "GET {path}");
            });
        }
        while let Some(result) = gets.join_next().await {
            result.unwrap();
        }
        done_tx.send(true).unwrap();
        while let Some(result) = sockets.join_next().await {
            result.unwrap();
        }

        let requests = pair.app.requests();
        let upgrades = requests
            .iter()
            .filter(|r| r.headers.get("upgrade").is_some_and(|u| u == "websocket"))
            .count();
        assert_eq!(upgrades, SOCKETS);
        let plain = requests
            .iter()
            .filter(|r| r.uri.path().starts_with("/bytes/"))
            .count();
        assert_eq!((plain, requests.len()), (GETS, SOCKETS + GETS));
        // All of it multiplexed on one HTTP/2 connection to the sidecar.
        assert_eq!(pair.upstream_connections(), 1);
    })
    .await;
}

/// S5: streams beyond the sidecar's
/// MAX_CONCURRENT_STREAMS never queue silently; the front opens another
/// HTTP/2 connection, and a closed tunnel frees its place for the next.
#[tokio::test]
async fn tunnels_beyond_the_stream_limit_open_another_connection() {
    within(async {
        let pair = Pair::builder()
            .max_streams(3)
            .count_upstream_connections()
            .start()
            .await
            .unwrap();
        let mut open = Vec::new();
        for n in 0..7 {
            let (mut ws, _) = client::ws_connect(pair.front, "/ws", &[]).await.unwrap();
            let text = format!("tunnel {n}");
            let echoed = client::echo_roundtrip(&mut ws, Message::text(text.clone())).await;
            assert_eq!(echoed.unwrap(), Message::text(text));
            open.push(ws);
        }
        // Seven tunnels at three streams per connection: three connections.
        assert_eq!(pair.upstream_connections(), 3);
        for mut ws in open.drain(..) {
            client::close_handshake(&mut ws, 1000, "done")
                .await
                .unwrap();
        }
        // Closed tunnels give their places back: no fourth connection.
        for _ in 0..3 {
            let (mut ws, _) = client::ws_connect(pair.front, "/ws", &[]).await.unwrap();
            let echoed = client::echo_roundtrip(&mut ws, Message::text("again")).await;
            assert_eq!(echoed.unwrap(), Message::text("again"));
            open.push(ws);
        }
        assert_eq!(pair.upstream_connections(), 3);
    })
    .await;
}
