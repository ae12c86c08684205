//! Failures end to end: refused and malformed upgrades, a broken app
//! handshake, and each piece of the chain being down or unable to tunnel.
//! The client always gets an HTTP answer from the proxy at fault (which
//! names it), whose cause is in that proxy's log under the request id the
//! answer gives, and no refused upgrade ever becomes a tunnel.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use h2hop_integration::client::{self, RawUpgrade};
use h2hop_integration::harness::{Pair, SidecarKind, within};
use h2hop_integration::logs::Captured;
use h2hop_integration::wait::eventually;
use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A masked client Text frame "hi" (RFC 6455 §5.2, §5.3): what a client
/// that wrongly assumed a tunnel would write next.
const WS_FRAME: [u8; 8] = [0x81, 0x82, 0x37, 0xfa, 0x21, 0x3d, b'h' ^ 0x37, b'i' ^ 0xfa];

/// The body of `raw`'s response as text.
async fn body_text(raw: &mut RawUpgrade) -> String {
    String::from_utf8(raw.read_body().await.unwrap()).unwrap()
}

/// A 502 `body` from `who` says "bad gateway" and a request id, nothing of
/// the cause; the log line of that id has `cause`.
async fn assert_bad_gateway_logged(logs: &Captured, body: &str, who: &str, cause: &str) {
    let fixed = format!("{who}: bad gateway (request id ");
    assert!(body.starts_with(&fixed), "{body}");
    assert!(!body.contains(cause), "{body}");
    logs.wait_for_request(body, &["status=502", cause]).await;
}

/// S1, RFC 6455 §4.1 (N45, N46): after a non-101 the connection still speaks
/// HTTP. WebSocket frame bytes written now are parsed as a request line:
/// the front answers 400 or closes, and never echoes them as tunnel data.
async fn assert_not_tunnelled(raw: &mut RawUpgrade) {
    assert!(raw.leftover.is_empty(), "bytes after the body");
    // Writing may fail if the front already closed; that is also fine.
    let _ = raw.stream.write_all(&WS_FRAME).await;
    let mut answer = Vec::new();
    // A reset after the 400 is a close too.
    let _ = raw.stream.read_to_end(&mut answer).await;
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 400"),
        "frame bytes were not treated as HTTP: {:?}",
        String::from_utf8_lossy(&answer)
    );
}

/// A plain GET through the front: status and body.
async fn get(addr: SocketAddr, path: &str) -> (StatusCode, String) {
    let mut sender = client::http1_connect(addr).await.unwrap();
    let request = client::request(Method::GET, addr, path, client::full("")).unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    let body = client::body_bytes(response).await.unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// RFC 6455 §4.1 (N45), RFC 9110 §7.8 (N32), S1: an app's 403, 404 or 426 to
/// the upgrade reaches the client as it is, with the app's body (a 426 also
/// with `Upgrade: websocket` and `Sec-WebSocket-Version: 13`); no 101, and
/// bytes the client sends afterwards are never tunnelled to the app.
#[tokio::test]
async fn app_refusal_of_the_upgrade_is_relayed_and_opens_no_tunnel() {
    within(async {
        for code in [403u16, 404, 426] {
            let pair = Pair::start().await.unwrap();
            let path = format!("/status/{code}");
            let mut raw = client::raw_upgrade(pair.front, &path, "Upgrade", &[])
                .await
                .unwrap();
            assert_eq!(raw.status, code);
            if code == 426 {
                assert_eq!(raw.header_all("upgrade"), ["websocket"]);
                assert_eq!(raw.header("sec-websocket-version"), Some("13"));
            }
            assert!(raw.header("sec-websocket-accept").is_none());
            assert_eq!(body_text(&mut raw).await, format!("app says {code}"));
            assert_not_tunnelled(&mut raw).await;

            let seen = pair.app.requests();
            assert_eq!(seen.len(), 1, "{code}: {seen:?}");
            assert_eq!(seen[0].uri.path(), path);
            assert!(pair.app.raw_outcomes().is_empty());
        }
    })
    .await;
}

/// RFC 6455 §4.2.1 (N38, N39, N47): a handshake with a bad key, a POST, or
/// no `Connection: upgrade` gets 400 from the front and reaches nobody.
#[tokio::test]
async fn malformed_handshake_is_refused_with_400_at_the_front() {
    within(async {
        let pair = Pair::start().await.unwrap();
        let bad_key = client::raw_upgrade(
            pair.front,
            "/ws",
            "Upgrade",
            &[("Sec-WebSocket-Key", "short")],
        )
        .await
        .unwrap();
        let no_connection = client::raw_upgrade(pair.front, "/ws", "", &[])
            .await
            .unwrap();
        let keep_alive_only = client::raw_upgrade(pair.front, "/ws", "keep-alive", &[])
            .await
            .unwrap();
        let post = client::raw_request(
            pair.front,
            &format!(
                "POST /ws HTTP/1.1\r\n\
                 Host: {}\r\n\
                 Upgrade: websocket\r\n\
                 Connection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                 Sec-WebSocket-Version: 13\r\n\
                 Content-Length: 0\r\n\
                 \r\n",
                pair.front
            ),
        )
        .await
        .unwrap();
        let cases = [
            ("bad key", bad_key),
            ("no Connection", no_connection),
            ("Connection: keep-alive", keep_alive_only),
            ("POST", post),
        ];
        for (name, mut raw) in cases {
            assert_eq!(raw.status, 400, "{name}");
            let body = body_text(&mut raw).await;
            assert!(body.starts_with("h2hop-front:"), "{name}: {body}");
        }
        assert!(pair.app.requests().is_empty());
    })
    .await;
}

/// RFC 6455 §4.4 (N41), RFC 9110 §7.8 (N32): version 8 gets 426 naming
/// version 13 and the protocol, from the front; the app sees nothing.
#[tokio::test]
async fn other_websocket_version_gets_426_naming_13() {
    within(async {
        let pair = Pair::start().await.unwrap();
        let raw = client::raw_upgrade(
            pair.front,
            "/ws",
            "Upgrade",
            &[("Sec-WebSocket-Version", "8")],
        )
        .await
        .unwrap();
        assert_eq!(raw.status, 426);
        assert_eq!(raw.header("sec-websocket-version"), Some("13"));
        assert_eq!(raw.header_all("upgrade"), ["websocket"]);
        assert!(pair.app.requests().is_empty());
    })
    .await;
}

/// With the app down, a WebSocket and a plain GET both get the sidecar's
/// 502 (the culprit decides the status); its log says the app could not be
/// reached.
#[tokio::test]
async fn app_down_gives_502_from_the_sidecar_naming_the_app_in_its_log() {
    let (logs, _guard) = Captured::install();
    within(async {
        let pair = Pair::builder().app_down().start().await.unwrap();
        let mut raw = client::raw_upgrade(pair.front, "/ws", "Upgrade", &[])
            .await
            .unwrap();
        assert_eq!(raw.status, 502);
        let body = body_text(&mut raw).await;
        assert_bad_gateway_logged(&logs, &body, "h2hop-sidecar", "cannot connect to app").await;

        // The pool reports its own connect failure: still the app, by address.
        let (status, body) = get(pair.front, "/").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_bad_gateway_logged(&logs, &body, "h2hop-sidecar", "app 127.0.0.1:").await;
    })
    .await;
}

/// With the sidecar down, a WebSocket and a plain GET both get the front's
/// 502; its log says the sidecar could not be reached.
#[tokio::test]
async fn sidecar_down_gives_502_naming_the_sidecar_in_the_log() {
    let (logs, _guard) = Captured::install();
    within(async {
        let pair = Pair::builder()
            .sidecar(SidecarKind::Down)
            .start()
            .await
            .unwrap();
        let mut raw = client::raw_upgrade(pair.front, "/ws", "Upgrade", &[])
            .await
            .unwrap();
        assert_eq!(raw.status, 502);
        let body = body_text(&mut raw).await;
        let cause = "cannot connect to sidecar";
        assert_bad_gateway_logged(&logs, &body, "h2hop-front", cause).await;

        let (status, body) = get(pair.front, "/").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_bad_gateway_logged(&logs, &body, "h2hop-front", cause).await;
    })
    .await;
}

/// RFC 8441 §3 (N4): a sidecar that never sent
/// SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 gets no `:protocol` at all; the
/// WebSocket client gets a 502 (the log says why), and plain requests
/// still work.
#[tokio::test]
async fn sidecar_without_extended_connect_gets_no_tunnel_but_plain_works() {
    let (logs, _guard) = Captured::install();
    within(async {
        let pair = Pair::builder()
            .h2c()
            .sidecar(SidecarKind::WithoutExtendedConnect)
            .start()
            .await
            .unwrap();
        let mut raw = client::raw_upgrade(pair.front, "/ws", "Upgrade", &[])
            .await
            .unwrap();
        assert_eq!(raw.status, 502);
        let body = body_text(&mut raw).await;
        let cause = "does not support extended CONNECT";
        assert_bad_gateway_logged(&logs, &body, "h2hop-front", cause).await;

        let (status, body) = get(pair.front, "/").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "plain");
        assert_eq!(pair.extended_connects_seen(), 0);
    })
    .await;
}

/// RFC 6455 §4.1 (N43), RFC 9110 §7.8 (N33), S1: an app 101 with a wrong
/// `Sec-WebSocket-Accept` or the wrong `Upgrade` token opens no tunnel; the
/// client gets 502, never a 101.
#[tokio::test]
async fn app_101_with_wrong_accept_or_token_gives_502() {
    let (logs, _guard) = Captured::install();
    within(async {
        let pair = Pair::start().await.unwrap();
        for path in ["/bad-accept", "/wrong-token"] {
            let mut raw = client::raw_upgrade(pair.front, path, "Upgrade", &[])
                .await
                .unwrap();
            assert_eq!(raw.status, 502, "{path}");
            assert!(raw.header("sec-websocket-accept").is_none(), "{path}");
            let body = body_text(&mut raw).await;
            let cause = "upgrade answer refused";
            assert_bad_gateway_logged(&logs, &body, "h2hop-sidecar", cause).await;
            assert_not_tunnelled(&mut raw).await;
        }
        assert_eq!(pair.app.requests().len(), 2);
    })
    .await;
}

/// S5: a client that gives up on a request the app is still working on
/// (plain or upgrade) makes the front reset the stream, and the sidecar
/// lets go of the app connection at once instead of holding it until its
/// 30 s response timeout.
#[tokio::test]
async fn abandoned_requests_release_the_app_connection() {
    within(async {
        let pair = Pair::start().await.unwrap();
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let requests = [
            "GET /slow HTTP/1.1\r\nHost: app.test\r\n\r\n".to_owned(),
            format!(
                "GET /slow HTTP/1.1\r\nHost: app.test\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n\
                 Sec-WebSocket-Version: 13\r\n\r\n"
            ),
        ];
        for (n, request) in requests.iter().enumerate() {
            let mut client = TcpStream::connect(pair.front).await.unwrap();
            client.write_all(request.as_bytes()).await.unwrap();
            let arrived = eventually(Duration::from_secs(5), || {
                pair.app.requests().len() == n + 1
            });
            assert!(arrived.await, "request {n} never reached the app");
            assert_eq!(
                pair.app.connections_ended(),
                n,
                "the app connection ended early"
            );
            drop(client);
            let released = eventually(Duration::from_secs(5), || {
                pair.app.connections_ended() == n + 1
            });
            assert!(
                released.await,
                "request {n}: the app connection outlived the client"
            );
        }
    })
    .await;
}

/// RFC 9110 §9.3.6 (N13), S1: an app that answers the upgrade with 200
/// instead of 101 gets the client a 502, never a 101 to a tunnel the app
/// did not open.
#[tokio::test]
async fn app_answering_200_to_the_upgrade_gives_502_not_101() {
    within(async {
        let pair = Pair::start().await.unwrap();
        let raw = client::raw_upgrade(pair.front, "/status/200", "Upgrade", &[])
            .await
            .unwrap();
        assert_eq!(raw.status, 502);
        assert!(raw.header("upgrade").is_none());
        assert_eq!(pair.app.requests().len(), 1);
    })
    .await;
}
