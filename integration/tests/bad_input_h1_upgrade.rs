//! Bad or unusual HTTP/1.1 upgrade handshakes at the front: broken
//! WebSocket handshakes, a WebSocket handshake over HTTP/1.0, and
//! `Upgrade: h2c`.
//!
//! - `bad_websocket_handshakes_are_refused_at_the_front`: no Host, no key
//!   or a bad one, two keys, no version, a body, or another method than
//!   GET get 400; another version gets 426 naming version 13.
//! - `http10_websocket_handshake_is_served_as_plain_get`: `Upgrade` in
//!   HTTP/1.0 is ignored: no 101, and the app sees neither `Upgrade` nor
//!   `Connection`.
//! - `h2c_upgrade_never_reaches_the_app`: `Upgrade: h2c` is never honoured
//!   and never reaches the app, alone, over HTTP/1.0, with a body, or next
//!   to `websocket`.
//!
//! The handshakes are written byte by byte
//! ([`h2hop_integration::bad_input_h1`]); none refused reaches the app.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use h2hop_integration::bad_input_h1::cases::{handshake, handshake_cases};
use h2hop_integration::bad_input_h1::{
    assert_serves_and_nothing_else_arrived, body_text, pair, run_refusals, send,
};
use h2hop_integration::client;
use h2hop_integration::harness::within;
use tokio::io::AsyncWriteExt as _;

/// RFC 6455 §4.1, §4.2.1, §4.4 (N38-N41, N47): the [`handshake_cases`] are
/// refused by the front (400, or 426 naming version 13) and reach nobody.
#[tokio::test]
async fn bad_websocket_handshakes_are_refused_at_the_front() {
    within(async {
        let pair = pair().await;
        let before = pair.app.requests().len();
        let wrong = run_refusals(&pair, &handshake_cases()).await;
        assert!(wrong.is_empty(), "{wrong:#?}");

        // RFC 6455 §4.4 (N41), RFC 9110 §7.8 (N32): the 426 says what we speak.
        let request = handshake("GET", "1.1", &[("Sec-WebSocket-Version", "12")]);
        let raw = send(pair.front, "version 12", &request).await.unwrap();
        assert_eq!(raw.status, 426);
        assert_eq!(raw.header("sec-websocket-version"), Some("13"));
        assert_eq!(raw.header_all("upgrade"), ["websocket"]);
        assert_serves_and_nothing_else_arrived(&pair, before).await;
    })
    .await;
}

/// RFC 9110 §7.8 (N34): `Upgrade` in an HTTP/1.0 request is ignored. The
/// handshake is served as a plain GET: no 101, and the app sees neither
/// `Upgrade` nor `Connection`.
#[tokio::test]
async fn http10_websocket_handshake_is_served_as_plain_get() {
    within(async {
        let pair = pair().await;
        let request = handshake("GET", "1.0", &[]);
        let mut raw = send(pair.front, "HTTP/1.0 upgrade", &request)
            .await
            .unwrap();
        assert_eq!(raw.status, 200);
        assert!(raw.header("upgrade").is_none(), "{:?}", raw.headers);
        assert!(raw.header("sec-websocket-accept").is_none());
        assert_eq!(
            body_text("HTTP/1.0 upgrade", &mut raw).await,
            "hello from app"
        );
        let requests = pair.app.requests();
        assert_eq!(requests.len(), 1);
        for name in ["upgrade", "connection"] {
            assert!(
                !requests[0].headers.contains_key(name),
                "{name} reached the app: {:?}",
                requests[0].headers
            );
        }
    })
    .await;
}

/// S3, RFC 9113 §3.1 (h2c upgrade removed), RFC 9110 §7.8: `Upgrade: h2c`
/// is never honoured and never reaches the app with its `Upgrade` or
/// `HTTP2-Settings`, whatever comes with it: alone (plain 200, the
/// connection keeps speaking HTTP/1.1), over HTTP/1.0, with a body, or
/// offered next to `websocket` (the WebSocket is tunnelled and the app's
/// handshake names `websocket` alone).
#[tokio::test]
async fn h2c_upgrade_never_reaches_the_app() {
    within(async {
        let pair = pair().await;
        let h2c = "Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n\
                   HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n";
        let plain = [
            (
                "h2c",
                format!("GET /h2c HTTP/1.1\r\nHost: app.test\r\n{h2c}\r\n"),
                "",
            ),
            (
                "h2c over HTTP/1.0",
                format!("GET /h2c-10 HTTP/1.0\r\nHost: app.test\r\n{h2c}\r\n"),
                "",
            ),
            (
                "h2c with a body",
                format!(
                    "POST /echo HTTP/1.1\r\nHost: app.test\r\n{h2c}\
                     Content-Length: 5\r\n\r\nhello"
                ),
                "hello",
            ),
        ];
        for (name, request, echoed) in &plain {
            let mut raw = send(pair.front, name, request.as_bytes()).await.unwrap();
            assert_eq!(raw.status, 200, "{name}");
            assert!(raw.header("upgrade").is_none(), "{name}: {:?}", raw.headers);
            let body = body_text(name, &mut raw).await;
            if echoed.is_empty() {
                assert_eq!(body, "hello from app", "{name}");
            } else {
                assert_eq!(body, *echoed, "{name}");
            }
            if *name == "h2c" {
                // Still HTTP/1.1 on the same connection, not an HTTP/2 preface.
                let again = "GET /again HTTP/1.1\r\nHost: app.test\r\n\r\n";
                raw.stream.write_all(again.as_bytes()).await.unwrap();
                let (status, _, _) = client::read_response_head(&mut raw.stream).await.unwrap();
                assert_eq!(status, 200, "{name}: second request");
            }
        }

        let offered = handshake(
            "GET",
            "1.1",
            &[
                ("Upgrade", "h2c, websocket"),
                ("Connection", "Upgrade, HTTP2-Settings"),
                ("HTTP2-Settings", "AAMAAABkAAQAoAAAAAIAAAAA"),
            ],
        );
        let raw = send(pair.front, "h2c, websocket", &offered).await.unwrap();
        assert_eq!(raw.status, 101, "h2c, websocket");
        assert_eq!(raw.header_all("upgrade"), ["websocket"]);

        let requests = pair.app.requests();
        assert_eq!(requests.len(), 5, "{requests:?}");
        for seen in &requests {
            assert!(!seen.headers.contains_key("http2-settings"), "{seen:?}");
            let upgrades: Vec<_> = seen.headers.get_all("upgrade").iter().collect();
            assert!(
                upgrades.is_empty() || upgrades == ["websocket"],
                "{} {}: {upgrades:?}",
                seen.method,
                seen.uri
            );
        }
    })
    .await;
}
