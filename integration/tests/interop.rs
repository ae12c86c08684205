//! Interoperability with nghttpx (Debian `nghttp2-proxy`) as the other half
//! of the pair, over cleartext HTTP/2 on loopback:
//!
//! - nghttpx front → h2hop-sidecar → test app: nghttpx must turn the
//!   client's HTTP/1.1 Upgrade into an RFC 8441 extended CONNECT that the
//!   sidecar accepts, and its plain requests must be forwarded too;
//! - h2hop-front → nghttpx sidecar → test app: nghttpx's HTTP/2 frontend
//!   must take the front's extended CONNECT and log it as one.
//!
//! A missing nghttpx skips each test loudly (`!!! SKIPPED`), or fails it
//! with `H2HOP_REQUIRE_EXTERNAL=1`. Each test kills only the nghttpx it
//! started (by dropping its [`Nghttpx`]) and cancels its in-process halves.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;

use h2hop_integration::app::{Recorded, TestApp};
use h2hop_integration::client;
use h2hop_integration::harness::{loopback, within};
use h2hop_integration::interop::{EXTENDED_CONNECT_MARKS, Nghttpx, nghttpx_or_skip};
use http::{Method, StatusCode, Version};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_util::sync::{CancellationToken, DropGuard};

/// A binary message larger than one HTTP/2 DATA frame (16 KiB by default),
/// so the echo crosses the middle hop in several frames each way.
const LARGE: usize = 100 * 1024;

/// The in-process halves of one test; dropping it stops them.
struct InProcess {
    app: TestApp,
    shutdown: CancellationToken,
    _stop: DropGuard,
}

impl InProcess {
    async fn start() -> InProcess {
        let shutdown = CancellationToken::new();
        let app = TestApp::spawn(loopback().await.unwrap(), shutdown.child_token()).unwrap();
        InProcess {
            app,
            _stop: shutdown.clone().drop_guard(),
            shutdown,
        }
    }

    /// h2hop-sidecar over h2c in front of the app; returns its address.
    async fn sidecar(&self) -> SocketAddr {
        let listener = loopback().await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = h2hop_sidecar::Config::new(self.app.addr.to_string(), None);
        tokio::spawn(h2hop_sidecar::run(
            config,
            listener.into(),
            self.shutdown.child_token(),
        ));
        addr
    }

    /// h2hop-front over h2c to `sidecar`; returns where clients connect.
    async fn front(&self, sidecar: SocketAddr) -> SocketAddr {
        let listener = loopback().await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = h2hop_front::Config::new(sidecar.to_string(), None);
        tokio::spawn(h2hop_front::run(
            config,
            listener.into(),
            self.shutdown.child_token(),
        ));
        addr
    }

    /// The one request the app received for `path`.
    fn only_request_for(&self, path: &str) -> Recorded {
        let seen: Vec<Recorded> = self
            .app
            .requests()
            .into_iter()
            .filter(|request| request.uri.path() == path)
            .collect();
        assert_eq!(seen.len(), 1, "{seen:?}");
        seen.into_iter().next().unwrap()
    }
}

/// Opens a WebSocket to `addr` with a key of our own and echoes a text
/// message and a [`LARGE`] binary one; returns the stream and the key.
async fn connect_and_echo(addr: SocketAddr, path: &str) -> (WebSocketStream<TcpStream>, String) {
    let key = generate_key();
    let (mut ws, response) = client::ws_connect(addr, path, &[("Sec-WebSocket-Key", &key)])
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    let text = Message::text("hello through nghttpx");
    assert_eq!(
        client::echo_roundtrip(&mut ws, text.clone()).await.unwrap(),
        text
    );
    let binary: Vec<u8> = (0..=u8::MAX).cycle().take(LARGE).collect();
    let binary = Message::binary(binary);
    assert_eq!(
        client::echo_roundtrip(&mut ws, binary.clone())
            .await
            .unwrap(),
        binary
    );
    (ws, key)
}

/// What the app must see of a WebSocket that crossed an RFC 8441 hop: a
/// fresh HTTP/1.1 GET Upgrade whose key is not the client's, because the
/// key means nothing on HTTP/2 (RFC 8441 §5) and is made anew after it.
fn assert_app_saw_a_fresh_upgrade(seen: &Recorded, query: &str, client_key: &str) {
    assert_eq!(seen.method, Method::GET, "{seen:?}");
    assert_eq!(seen.version, Version::HTTP_11, "{seen:?}");
    assert_eq!(seen.uri.query(), Some(query), "{seen:?}");
    assert_eq!(seen.headers["upgrade"], "websocket", "{seen:?}");
    assert_eq!(seen.headers["sec-websocket-version"], "13", "{seen:?}");
    let keys: Vec<_> = seen.headers.get_all("sec-websocket-key").iter().collect();
    assert_eq!(keys.len(), 1, "{seen:?}");
    assert_ne!(
        keys[0], client_key,
        "the client's key crossed the HTTP/2 hop"
    );
    assert_eq!(keys[0].len(), 24, "not a base64 16-byte nonce: {keys:?}");
}

/// nghttpx front → h2c → h2hop-sidecar → app. h2hop-sidecar speaks only
/// HTTP/2 and turns only an extended CONNECT with `:protocol websocket`
/// into an Upgrade (with a key of its own), so an app that sees a GET
/// Upgrade with a key other than the client's proves nghttpx sent an RFC
/// 8441 stream that the sidecar accepted.
#[tokio::test]
async fn nghttpx_front_sends_a_websocket_to_h2hop_sidecar_as_extended_connect() {
    let Some(program) = nghttpx_or_skip("nghttpx front → h2hop-sidecar websocket") else {
        return;
    };
    within(async {
        let halves = InProcess::start().await;
        let sidecar = halves.sidecar().await;
        let nghttpx = Nghttpx::front(&program, sidecar).await.unwrap();

        let (mut ws, key) = connect_and_echo(nghttpx.addr, "/interop/ws?from=nghttpx").await;
        let close = client::close_handshake(&mut ws, 1000, "done")
            .await
            .unwrap()
            .expect("the app's Close carries a code");
        assert_eq!(u16::from(close.code), 1000);

        let seen = halves.only_request_for("/interop/ws");
        assert_app_saw_a_fresh_upgrade(&seen, "from=nghttpx", &key);
        assert_eq!(seen.headers["host"], nghttpx.addr.to_string(), "{seen:?}");
        // nghttpx logs the status its backend sent: 200, the RFC 8441 §5
        // answer to an extended CONNECT, where an HTTP/1.1 hop gives 101.
        let line = nghttpx
            .access_log_line(&[
                "\"GET /interop/ws?from=nghttpx HTTP/1.1\" 200 ",
                "ws-version=13",
                &format!("backend={}:{}", sidecar.ip(), sidecar.port()),
            ])
            .await
            .unwrap();
        eprintln!("nghttpx front evidence: {line}");
    })
    .await;
}

/// nghttpx front → h2c → h2hop-sidecar → app, a plain GET: the path, query
/// and Host reach the app as an HTTP/1.1 GET and the body comes back.
#[tokio::test]
async fn nghttpx_front_forwards_a_plain_get_through_h2hop_sidecar() {
    let Some(program) = nghttpx_or_skip("nghttpx front → h2hop-sidecar plain GET") else {
        return;
    };
    within(async {
        let halves = InProcess::start().await;
        let sidecar = halves.sidecar().await;
        let nghttpx = Nghttpx::front(&program, sidecar).await.unwrap();

        let mut send = client::http1_connect(nghttpx.addr).await.unwrap();
        let request = client::request(
            Method::GET,
            nghttpx.addr,
            "/hello?x=1",
            client::full(Vec::new()),
        )
        .unwrap();
        let response = send.send_request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            client::body_bytes(response).await.unwrap(),
            "hello from app"
        );

        let seen = halves.only_request_for("/hello");
        assert_eq!(seen.method, Method::GET, "{seen:?}");
        assert_eq!(seen.version, Version::HTTP_11, "{seen:?}");
        assert_eq!(seen.uri.query(), Some("x=1"), "{seen:?}");
        assert_eq!(seen.headers["host"], nghttpx.addr.to_string(), "{seen:?}");
        assert!(seen.headers.get("upgrade").is_none(), "{seen:?}");
        nghttpx
            .access_log_line(&[
                "\"GET /hello?x=1 HTTP/1.1\" 200",
                &format!("backend={}:{}", sidecar.ip(), sidecar.port()),
            ])
            .await
            .unwrap();
    })
    .await;
}

/// h2hop-front → h2c → nghttpx sidecar → app: text and binary echo, and
/// the client's Close code and reason come back from the app. nghttpx logs
/// the stream it received as `CONNECT ... HTTP/2` with a WebSocket version:
/// the front's RFC 8441 extended CONNECT.
#[tokio::test]
async fn h2hop_front_sends_a_websocket_to_nghttpx_as_extended_connect() {
    let Some(program) = nghttpx_or_skip("h2hop-front → nghttpx sidecar websocket") else {
        return;
    };
    within(async {
        let halves = InProcess::start().await;
        let nghttpx = Nghttpx::sidecar(&program, halves.app.addr).await.unwrap();
        let front = halves.front(nghttpx.addr).await;

        let (mut ws, key) = connect_and_echo(front, "/interop/ws?to=nghttpx").await;
        let close = client::close_handshake(&mut ws, 4001, "interop bye")
            .await
            .unwrap()
            .expect("the app's Close carries a code");
        assert_eq!(u16::from(close.code), 4001);
        assert_eq!(close.reason.as_str(), "interop bye");

        // nghttpx's `$path` of a CONNECT is its `:authority` (the Host the
        // client sent the front); the path shows in what the app saw.
        let authority = format!("\"CONNECT {front} HTTP/2\"");
        let mut marks = vec![authority.as_str()];
        marks.extend_from_slice(EXTENDED_CONNECT_MARKS);
        let line = nghttpx.access_log_line(&marks).await.unwrap();
        let seen = halves.only_request_for("/interop/ws");
        assert_app_saw_a_fresh_upgrade(&seen, "to=nghttpx", &key);
        assert_eq!(seen.headers["host"], front.to_string(), "{seen:?}");
        // nghttpx's Via names the version it received: HTTP/2.
        let via = seen.headers["via"].to_str().unwrap();
        assert!(via.contains("2 nghttpx"), "{seen:?}");
        eprintln!("nghttpx sidecar evidence: {line}");
    })
    .await;
}

/// h2hop-front → h2c → nghttpx sidecar → app, a plain GET: it crosses as
/// an HTTP/2 GET (nghttpx's log) and the app's body comes back.
#[tokio::test]
async fn h2hop_front_forwards_a_plain_get_through_nghttpx() {
    let Some(program) = nghttpx_or_skip("h2hop-front → nghttpx sidecar plain GET") else {
        return;
    };
    within(async {
        let halves = InProcess::start().await;
        let nghttpx = Nghttpx::sidecar(&program, halves.app.addr).await.unwrap();
        let front = halves.front(nghttpx.addr).await;

        let mut send = client::http1_connect(front).await.unwrap();
        let request =
            client::request(Method::GET, front, "/hello?x=2", client::full(Vec::new())).unwrap();
        let response = send.send_request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            client::body_bytes(response).await.unwrap(),
            "hello from app"
        );

        nghttpx
            .access_log_line(&["\"GET /hello?x=2 HTTP/2\" 200"])
            .await
            .unwrap();
        let seen = halves.only_request_for("/hello");
        assert_eq!(seen.uri.query(), Some("x=2"), "{seen:?}");
        assert_eq!(seen.headers["host"], front.to_string(), "{seen:?}");
    })
    .await;
}
