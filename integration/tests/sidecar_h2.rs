//! The sidecar on its own, spoken to over h2c by a raw `h2` client, as a
//! front that is not h2hop would: what the sidecar advertises in its
//! SETTINGS (RFC 8441 §3), the WebSocket it tunnels (RFC 8441 §5), what it
//! refuses (RFC 9220 §3, RFC 8441 §4; a CONNECT to a target not allowed)
//! and a plain request.
//!
//! The client never sends SETTINGS_ENABLE_CONNECT_PROTOCOL and builds every
//! WebSocket frame by hand, so nothing but the sidecar and the app decides
//! what comes back.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use bytes::Bytes;
use h2::client::SendRequest;
use h2::{RecvStream, SendStream};
use h2hop_integration::harness::{Pair, within};
use http::{Method, Request, Response, StatusCode, Version};
use tokio::net::TcpStream;

/// A WebSocket key sent on the HTTP/2 hop, where it means nothing
/// (RFC 8441 §5 (N11)); the RFC 6455 §1.3 example, so it is recognisable.
const H2_HOP_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The masking key of the hand-built client frame (RFC 6455 §5.3).
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Opens an h2c connection to the sidecar with h2's default client
/// settings (no ENABLE_CONNECT_PROTOCOL) and returns once the sidecar's
/// SETTINGS are in effect: the sidecar sends them before it can ACK our
/// PING, and h2 applies frames in order.
async fn connect(pair: &Pair) -> SendRequest<Bytes> {
    let tcp = TcpStream::connect(pair.sidecar).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let (send, mut connection) = h2::client::handshake(tcp).await.unwrap();
    let mut ping_pong = connection.ping_pong().expect("ping_pong is taken once");
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(error = %err, "test h2 connection ended with error");
        }
    });
    ping_pong.ping(h2::Ping::opaque()).await.unwrap();
    send
}

/// An extended CONNECT (RFC 8441 §4) for `uri` with `:protocol protocol`.
fn extended_connect(protocol: &str, uri: &str) -> Request<()> {
    let mut request = Request::builder()
        .method(Method::CONNECT)
        .uri(uri)
        .header("sec-websocket-version", "13")
        .body(())
        .unwrap();
    request
        .extensions_mut()
        .insert(h2::ext::Protocol::from(protocol));
    request
}

/// Sends `request` on a new stream and waits for the response head.
async fn exchange(
    send: &SendRequest<Bytes>,
    request: Request<()>,
    end_of_stream: bool,
) -> (Response<RecvStream>, SendStream<Bytes>) {
    let mut ready = send.clone().ready().await.unwrap();
    let (response, stream) = ready.send_request(request, end_of_stream).unwrap();
    (response.await.unwrap(), stream)
}

/// The next DATA chunk (`None` at END_STREAM), its window given back so
/// the sidecar can keep sending.
async fn next_chunk(recv: &mut RecvStream) -> Option<Bytes> {
    let chunk = recv.data().await?.unwrap();
    recv.flow_control().release_capacity(chunk.len()).unwrap();
    Some(chunk)
}

/// Reads until `len` bytes arrived; fails if the stream ends first.
async fn read_len(recv: &mut RecvStream, len: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < len {
        let chunk = next_chunk(recv)
            .await
            .unwrap_or_else(|| panic!("stream ended after {} of {len} bytes", got.len()));
        got.extend_from_slice(&chunk);
    }
    got
}

/// Reads the rest of the stream; a reset fails the test.
async fn read_to_end(recv: &mut RecvStream) -> Vec<u8> {
    let mut got = Vec::new();
    while let Some(chunk) = next_chunk(recv).await {
        got.extend_from_slice(&chunk);
    }
    got
}

/// A masked client Text frame (RFC 6455 §5.2, §5.3), short form length.
fn masked_text(payload: &[u8]) -> Vec<u8> {
    let len = u8::try_from(payload.len()).unwrap();
    assert!(len < 126, "short-form payload length only");
    let mut frame = vec![0x81, 0x80 | len];
    frame.extend_from_slice(&MASK);
    frame.extend(payload.iter().zip(MASK.iter().cycle()).map(|(b, m)| b ^ m));
    frame
}

/// RFC 8441 §3 (N1): the sidecar sends SETTINGS_ENABLE_CONNECT_PROTOCOL
/// = 1 to every client, including one that never sent the setting itself.
#[tokio::test]
async fn sidecar_enables_extended_connect_for_a_client_that_never_sent_the_setting() {
    within(async {
        let pair = Pair::builder().h2c().start().await.unwrap();
        let send = connect(&pair).await;
        assert!(send.is_extended_connect_protocol_enabled());
    })
    .await;
}

/// RFC 8441 §5 (N9, N11, N13, N14, N28): a WebSocket sent straight to the
/// sidecar gets 200 without an accept; a masked text frame written as DATA
/// comes back as the app's unmasked echo; END_STREAM from us ends the
/// stream cleanly from the sidecar's side too. The app got a GET Upgrade
/// for /ws with Host from `:authority` and a key of the sidecar's own, not
/// the one sent on the HTTP/2 hop.
#[tokio::test]
async fn websocket_over_h2_straight_to_the_sidecar_echoes_a_frame_and_ends_with_the_stream() {
    within(async {
        let pair = Pair::builder().h2c().start().await.unwrap();
        let send = connect(&pair).await;
        let mut request = extended_connect("websocket", "http://app.test/ws");
        request
            .headers_mut()
            .insert("sec-websocket-key", H2_HOP_KEY.parse().unwrap());
        let (response, mut stream) = exchange(&send, request, false).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().get("sec-websocket-accept").is_none());
        let mut recv = response.into_body();

        let payload = b"hello over h2";
        stream
            .send_data(Bytes::from(masked_text(payload)), false)
            .unwrap();
        let echo = read_len(&mut recv, 2 + payload.len()).await;
        let mut expected = vec![0x81, u8::try_from(payload.len()).unwrap()];
        expected.extend_from_slice(payload);
        assert_eq!(echo, expected, "echo is not the unmasked text frame");

        stream.send_data(Bytes::new(), true).unwrap();
        assert_eq!(read_to_end(&mut recv).await, b"", "bytes after the echo");
        assert!(recv.is_end_stream());

        let seen = pair.app.requests();
        assert_eq!(seen.len(), 1, "{seen:?}");
        let app = &seen[0];
        assert_eq!(app.method, Method::GET);
        assert_eq!(app.uri.path(), "/ws");
        assert_eq!(app.headers["host"], "app.test");
        assert_eq!(app.headers["upgrade"], "websocket");
        assert_eq!(app.headers["sec-websocket-version"], "13");
        let keys: Vec<_> = app.headers.get_all("sec-websocket-key").iter().collect();
        assert_eq!(keys.len(), 1, "{keys:?}");
        assert_ne!(keys[0], H2_HOP_KEY, "the HTTP/2 hop's key reached the app");
        assert_eq!(
            keys[0].len(),
            24,
            "not a base64 16-byte nonce: {:?}",
            keys[0]
        );
    })
    .await;
}

/// RFC 9220 §3 (N16), S3: `:protocol h2c` and `:protocol foo` get 501 from
/// the sidecar, which never even connects to the app.
#[tokio::test]
async fn unsupported_protocols_including_h2c_get_501_and_never_reach_the_app() {
    within(async {
        let pair = Pair::builder().h2c().start().await.unwrap();
        let send = connect(&pair).await;
        for protocol in ["h2c", "foo"] {
            let request = extended_connect(protocol, "http://app.test/ws");
            let (response, _stream) = exchange(&send, request, false).await;
            // Status first: a body that never ends must not hide it.
            assert_eq!(response.status(), StatusCode::NOT_IMPLEMENTED, "{protocol}");
            let body = read_to_end(&mut response.into_body()).await;
            let body = String::from_utf8_lossy(&body);
            assert!(body.contains(protocol), "{protocol}: {body}");
        }
        assert!(pair.app.requests().is_empty(), "{:?}", pair.app.requests());
        assert_eq!(pair.app.connections(), 0);
    })
    .await;
}

/// RFC 9110 §9.3.6 (N13), S1: any 2xx to a CONNECT
/// means the tunnel is open, so an app that answers its upgrade with 200
/// instead of 101 must not have that 200 relayed on the extended CONNECT
/// stream: the front (or any RFC 8441 client) would take it for an open
/// tunnel and send the client a 101.
#[tokio::test]
async fn app_answering_200_to_the_upgrade_is_not_relayed_as_an_open_tunnel() {
    within(async {
        let pair = Pair::builder().h2c().start().await.unwrap();
        let send = connect(&pair).await;
        let request = extended_connect("websocket", "http://app.test/status/200");
        let (response, _stream) = exchange(&send, request, false).await;
        assert!(
            !response.status().is_success(),
            "app's refusal relayed as {}: the peer sees an open tunnel",
            response.status()
        );
        let seen = pair.app.requests();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].uri.path(), "/status/200");
    })
    .await;
}

/// RFC 9113 §8.5 (N26): a plain CONNECT (`:authority` only) asks for a
/// TCP tunnel, and with no target allowed (`--tcp-allow`, `[[tcp]]`) it
/// gets 403: the sidecar opens no tunnel to that authority, not to a name,
/// and not to the app's own address either.
#[tokio::test]
async fn plain_connect_without_allowed_targets_gets_403_and_opens_no_tunnel() {
    within(async {
        let pair = Pair::builder().h2c().start().await.unwrap();
        let send = connect(&pair).await;
        for authority in ["app.test:443".to_owned(), pair.app.addr.to_string()] {
            let request = Request::builder()
                .method(Method::CONNECT)
                .uri(authority.as_str())
                .body(())
                .unwrap();
            let (response, _stream) = exchange(&send, request, false).await;
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{authority}");
        }
        assert!(pair.app.requests().is_empty(), "{:?}", pair.app.requests());
        assert_eq!(pair.app.connections(), 0, "a tunnel was dialled");
    })
    .await;
}

/// RFC 9113 §8.3.1 (N24): a plain GET with END_STREAM on its HEADERS is
/// forwarded as an HTTP/1.1 GET whose Host is the stream's `:authority`,
/// and the app's answer comes back.
#[tokio::test]
async fn plain_get_over_h2_is_forwarded_with_host_from_authority() {
    within(async {
        let pair = Pair::builder().h2c().start().await.unwrap();
        let send = connect(&pair).await;
        let request = Request::builder()
            .method(Method::GET)
            .uri("http://app.test/hello?x=1")
            .body(())
            .unwrap();
        let (response, _stream) = exchange(&send, request, true).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body = read_to_end(&mut response.into_body()).await;
        assert_eq!(body, b"hello from app");

        let seen = pair.app.requests();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].method, Method::GET);
        assert_eq!(seen[0].version, Version::HTTP_11);
        assert_eq!(seen[0].uri.path(), "/hello");
        assert_eq!(seen[0].uri.query(), Some("x=1"));
        assert_eq!(seen[0].headers["host"], "app.test");
        assert_eq!(seen[0].headers.get_all("host").iter().count(), 1);
    })
    .await;
}

/// S5: the sidecar advertises the SETTINGS_MAX_CONCURRENT_STREAMS it was
/// configured with (3 here, not the harness default of 1000).
#[tokio::test]
async fn sidecar_advertises_its_configured_max_concurrent_streams() {
    within(async {
        let pair = Pair::builder().h2c().max_streams(3).start().await.unwrap();
        let send = connect(&pair).await;
        assert_eq!(send.current_max_send_streams(), 3);
    })
    .await;
}
