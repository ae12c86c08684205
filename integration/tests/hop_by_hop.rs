//! Hop-by-hop fields across both HTTP/1.1 legs and the HTTP/2 hop: the 101
//! is rebuilt whatever the client's `Connection` or the app's 101 said (the
//! Kong bug), fields named in `Connection` and the always-hop-by-hop ones
//! never reach the app from the client nor the client from the app, and an
//! `Upgrade: h2c` is never honoured.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use h2hop_integration::app::Recorded;
use h2hop_integration::client::{self, RawUpgrade};
use h2hop_integration::harness::{Pair, within};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

/// The names of the fields the app received, for failure messages.
fn names(recorded: &Recorded) -> Vec<&str> {
    recorded.headers.keys().map(|name| name.as_str()).collect()
}

/// The client's request must not have left any of `names` at the app.
fn assert_absent(recorded: &Recorded, gone: &[&str]) {
    for name in gone {
        assert!(
            !recorded.headers.contains_key(*name),
            "{name} reached the app: {:?}",
            names(recorded)
        );
    }
}

/// S7, the Kong bug; RFC 9110 §7.6.1 (N29), §7.8 (N31, N32); RFC 6455 §4.1
/// (N39), §4.2.2 (N42): whatever else the client's `Connection` lists, and
/// in any case, the client gets a 101 rebuilt with `Upgrade: websocket`,
/// `Connection: Upgrade` and its own accept, the WebSocket works, and a
/// field the client named in `Connection` (`X-Foo`) never reaches the app.
#[tokio::test]
async fn upgrade_survives_any_connection_value_and_named_fields_stay_behind() {
    within(async {
        let pair = Pair::start().await.unwrap();
        let cases: [(&str, &[(&str, &str)]); 4] = [
            ("keep-alive, Upgrade", &[]),
            ("Upgrade, keep-alive", &[]),
            ("UpGrade", &[]),
            ("keep-alive, Upgrade, X-Foo", &[("X-Foo", "secret")]),
        ];
        for (connection, extra) in cases {
            let raw = client::raw_upgrade(pair.front, "/ws", connection, extra)
                .await
                .unwrap();
            assert_eq!(raw.status, 101, "Connection: {connection}");
            assert_eq!(raw.header_all("upgrade"), ["websocket"], "{connection}");
            assert_eq!(raw.header_all("connection"), ["Upgrade"], "{connection}");
            assert_eq!(
                raw.header("sec-websocket-accept"),
                Some(client::accept_for(&raw.key).as_str()),
                "{connection}"
            );
            assert!(raw.leftover.is_empty(), "{connection}: bytes after the 101");

            let mut ws = WebSocketStream::from_raw_socket(raw.stream, Role::Client, None).await;
            let echoed = client::echo_roundtrip(&mut ws, Message::text(connection))
                .await
                .unwrap();
            assert_eq!(echoed, Message::text(connection));
        }
        let seen = pair.app.requests();
        assert_eq!(seen.len(), cases.len());
        for recorded in &seen {
            assert_absent(recorded, &["x-foo", "keep-alive"]);
            // The sidecar's own handshake: exactly the fields an upgrade needs.
            assert_eq!(recorded.headers.get_all("connection").iter().count(), 1);
            assert_eq!(recorded.headers["upgrade"], "websocket");
        }
    })
    .await;
}

/// RFC 9110 §7.6.1 (N29, N30), RFC 9113 §8.2.2 (N17, N19): a plain request's
/// `Connection`-named field and the always-hop-by-hop fields (`Keep-Alive`,
/// `Proxy-Connection`, `TE`, `Upgrade`) stop at the front; end-to-end fields
/// arrive; the front honours the client's `Connection: close`.
#[tokio::test]
async fn plain_request_loses_hop_by_hop_fields_and_keeps_end_to_end_ones() {
    within(async {
        let pair = Pair::start().await.unwrap();
        let head = format!(
            "GET /hop HTTP/1.1\r\n\
             Host: {}\r\n\
             Connection: close, X-Hop\r\n\
             X-Hop: 1\r\n\
             Keep-Alive: timeout=5\r\n\
             Proxy-Connection: keep-alive\r\n\
             TE: trailers\r\n\
             Upgrade: foo/1\r\n\
             X-E2E: kept\r\n\
             \r\n",
            pair.front
        );
        let mut raw = client::raw_request(pair.front, &head).await.unwrap();
        assert_eq!(raw.status, 200);
        assert_eq!(raw.read_body().await.unwrap(), b"hello from app");
        // Connection: close was for the client's hop: the front closes.
        let mut rest = Vec::new();
        raw.stream.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "bytes after the response: {rest:?}");

        let seen = pair.app.requests();
        assert_eq!(seen.len(), 1);
        let recorded = &seen[0];
        assert_absent(
            recorded,
            &[
                "x-hop",
                "keep-alive",
                "proxy-connection",
                "te",
                "transfer-encoding",
                "upgrade",
            ],
        );
        // Whatever Connection the sidecar's own hop uses, it does not carry
        // the client's tokens.
        for value in recorded.headers.get_all("connection") {
            let value = value.to_str().unwrap().to_ascii_lowercase();
            assert!(!value.contains("x-hop"), "connection: {value}");
            assert!(!value.contains("close"), "connection: {value}");
        }
        assert_eq!(recorded.headers["x-e2e"], "kept");
    })
    .await;
}

/// The tokens of every `Connection` field of `raw`, lower-cased.
fn connection_tokens(raw: &RawUpgrade) -> Vec<String> {
    raw.header_all("connection")
        .iter()
        .flat_map(|value| value.split(','))
        .map(|token| token.trim().to_ascii_lowercase())
        .collect()
}

/// S7, RFC 9110 §7.6.1 (N29, N30) on the way back: the app's 200 for
/// `GET /hop-fields` lists `X-Hop` and `Keep-Alive` in `Connection` and also
/// sends `Proxy-Connection` (the app's own tests show all of them leave the
/// app). None of them, and no token naming them, reaches the client; the
/// end-to-end `X-E2e` does, with the body.
#[tokio::test]
async fn plain_response_loses_hop_by_hop_fields_and_keeps_end_to_end_ones() {
    within(async {
        let pair = Pair::start().await.unwrap();
        let head = format!("GET /hop-fields HTTP/1.1\r\nHost: {}\r\n\r\n", pair.front);
        let mut raw = client::raw_request(pair.front, &head).await.unwrap();
        assert_eq!(raw.status, 200);
        for name in ["x-hop", "keep-alive", "proxy-connection"] {
            assert!(raw.header(name).is_none(), "{name}: {:?}", raw.headers);
        }
        let tokens = connection_tokens(&raw);
        for token in ["x-hop", "keep-alive"] {
            assert!(!tokens.iter().any(|t| t == token), "connection: {tokens:?}");
        }
        assert_eq!(raw.header_all("x-e2e"), ["kept"], "{:?}", raw.headers);
        assert_eq!(raw.read_body().await.unwrap(), b"hop");
    })
    .await;
}

/// S7 (the Kong bug), RFC 9110 §7.6.1 (N29, N30), §7.8 (N31, N32); RFC 6455
/// §4.2.2 (N42): the app's 101 on `/ws/hop-fields` says
/// `Connection: Upgrade, X-Hop` and carries `X-Hop` and `Keep-Alive`. The
/// client's 101 is rebuilt, not filtered: exactly `Upgrade: websocket`,
/// `Connection: Upgrade`, the accept for the client's own key, the
/// end-to-end `X-E2e`, no `X-Hop` or `Keep-Alive`; and the echo works.
#[tokio::test]
async fn switching_response_is_rebuilt_without_the_apps_hop_by_hop_fields() {
    within(async {
        let pair = Pair::start().await.unwrap();
        let raw = client::raw_upgrade(pair.front, "/ws/hop-fields", "Upgrade", &[])
            .await
            .unwrap();
        assert_eq!(raw.status, 101, "{:?}", raw.headers);
        assert_eq!(raw.header_all("upgrade"), ["websocket"]);
        assert_eq!(raw.header_all("connection"), ["Upgrade"]);
        assert_eq!(
            raw.header_all("sec-websocket-accept"),
            [client::accept_for(&raw.key)]
        );
        assert_eq!(raw.header_all("x-e2e"), ["kept"], "{:?}", raw.headers);
        for name in ["x-hop", "keep-alive", "proxy-connection"] {
            assert!(raw.header(name).is_none(), "{name}: {:?}", raw.headers);
        }
        assert!(raw.leftover.is_empty(), "bytes after the 101");

        let mut ws = WebSocketStream::from_raw_socket(raw.stream, Role::Client, None).await;
        let echoed = client::echo_roundtrip(&mut ws, Message::text("through"))
            .await
            .unwrap();
        assert_eq!(echoed, Message::text("through"));
        assert_eq!(pair.app.requests()[0].uri.path(), "/ws/hop-fields");
    })
    .await;
}

/// S3, RFC 9113 §3.1 (h2c upgrade removed) and RFC 9110 §7.8: an
/// `Upgrade: h2c` request is served as plain HTTP/1.1 (200, not 101), the
/// app sees neither `Upgrade` nor `HTTP2-Settings`, and the connection keeps
/// speaking HTTP/1.1.
#[tokio::test]
async fn h2c_upgrade_is_answered_as_plain_http() {
    within(async {
        let pair = Pair::start().await.unwrap();
        let head = format!(
            "GET /h2c HTTP/1.1\r\n\
             Host: {}\r\n\
             Upgrade: h2c\r\n\
             Connection: Upgrade, HTTP2-Settings\r\n\
             HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\
             \r\n",
            pair.front
        );
        let mut raw = client::raw_request(pair.front, &head).await.unwrap();
        assert_eq!(raw.status, 200);
        assert!(raw.header("upgrade").is_none(), "{:?}", raw.headers);
        assert_eq!(raw.read_body().await.unwrap(), b"hello from app");

        // Still HTTP/1.1 on the same connection, not an HTTP/2 preface.
        let again = format!("GET /again HTTP/1.1\r\nHost: {}\r\n\r\n", pair.front);
        raw.stream.write_all(again.as_bytes()).await.unwrap();
        let (status, _, _) = client::read_response_head(&mut raw.stream).await.unwrap();
        assert_eq!(status, 200);

        let seen = pair.app.requests();
        assert_eq!(seen.len(), 2);
        assert_absent(&seen[0], &["upgrade", "http2-settings", "connection"]);
        assert_eq!(seen[0].uri.path(), "/h2c");
    })
    .await;
}
