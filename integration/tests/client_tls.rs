//! The front's client-facing TLS listener: HTTP/1.1 WebSockets (`wss://`)
//! and, when ALPN picks `h2`, HTTP/2 with RFC 8441 extended CONNECT from
//! the client (as browsers bootstrap WebSockets on an HTTP/2 connection),
//! plus plain HTTP/2 requests; and the switch that stops advertising
//! SETTINGS_ENABLE_CONNECT_PROTOCOL.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use h2::RecvStream;
use h2::client::SendRequest;
use h2hop_integration::h2_client::{extended_connect, h2_connect, tls_connect};
use h2hop_integration::harness::{Pair, within};
use http::{Method, Request, StatusCode};
use tokio_tungstenite::tungstenite::Message;

/// The masking key of the hand-built client frame (RFC 6455 §5.3).
const MASK: [u8; 4] = [0x11, 0x22, 0x33, 0x44];

async fn pair() -> Pair {
    Pair::builder().h2c().client_tls().start().await.unwrap()
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

async fn read_len(recv: &mut RecvStream, len: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < len {
        let chunk = recv.data().await.expect("stream ended early").unwrap();
        recv.flow_control().release_capacity(chunk.len()).unwrap();
        got.extend_from_slice(&chunk);
    }
    got
}

/// `wss://` over HTTP/1.1 (ALPN `http/1.1`): a WebSocket echo.
#[tokio::test]
async fn websocket_over_tls_and_http11() {
    within(async {
        let pair = pair().await;
        let tls = tls_connect(&pair, &[b"http/1.1"]).await.unwrap();
        let (mut ws, response) = tokio_tungstenite::client_async("wss://localhost/ws", tls)
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        ws.send(Message::text("over tls")).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("over tls"));
        let seen = pair.app.requests().pop().unwrap();
        assert_eq!(seen.headers["upgrade"], "websocket");
    })
    .await;
}

/// RFC 8441 from the client: the front advertises the setting, answers an
/// extended CONNECT with 200 (no accept, RFC 8441 §5), and the stream
/// carries WebSocket frames to the app and back. The app got an ordinary
/// HTTP/1.1 GET upgrade with a key of the sidecar's.
#[tokio::test]
async fn websocket_over_http2_extended_connect() {
    within(async {
        let pair = pair().await;
        let send = h2_connect(&pair).await.unwrap();
        assert!(send.is_extended_connect_protocol_enabled());
        let mut ready = send.ready().await.unwrap();
        let (response, mut stream) = ready
            .send_request(extended_connect("websocket", "/ws").unwrap(), false)
            .unwrap();
        let response = response.await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(!response.headers().contains_key("sec-websocket-accept"));
        let mut recv = response.into_body();
        stream
            .send_data(Bytes::from(masked_text(b"hello h2")), false)
            .unwrap();
        // The app's echo: an unmasked Text frame.
        let echo = read_len(&mut recv, 2 + 8).await;
        assert_eq!(echo, [&[0x81, 8][..], b"hello h2"].concat());
        let seen = pair.app.requests().pop().unwrap();
        assert_eq!(seen.method, Method::GET);
        assert_eq!(seen.headers["upgrade"], "websocket");
        assert_eq!(seen.headers["origin"], "https://localhost");
        assert!(seen.headers.contains_key("sec-websocket-key"));
    })
    .await;
}

/// Plain HTTP/2 requests from a client, and 501 for an extended CONNECT
/// to a protocol the front does not tunnel (RFC 9220 §3).
#[tokio::test]
async fn plain_http2_requests_and_unknown_protocols() {
    within(async {
        let pair = pair().await;
        let send = h2_connect(&pair).await.unwrap();
        let mut ready = send.ready().await.unwrap();
        let get = Request::get("https://localhost/hello").body(()).unwrap();
        let (response, _) = ready.send_request(get, true).unwrap();
        let response = response.await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = response.into_body();
        let mut text = Vec::new();
        while let Some(chunk) = body.data().await {
            text.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(text, b"hello from app");
        let seen = pair.app.requests().pop().unwrap();
        assert_eq!(seen.headers["host"], "localhost");

        let mut ready = ready.ready().await.unwrap();
        let (response, _) = ready
            .send_request(extended_connect("other-proto", "/ws").unwrap(), false)
            .unwrap();
        assert_eq!(
            response.await.unwrap().status(),
            StatusCode::NOT_IMPLEMENTED
        );
    })
    .await;
}

/// With the switch off, HTTP/2 clients are not told they may use
/// extended CONNECT (browsers then use HTTP/1.1 for WebSockets).
#[tokio::test]
async fn the_advertisement_can_be_turned_off() {
    within(async {
        let pair = Pair::builder()
            .h2c()
            .client_tls()
            .front_config(|config| config.client_extended_connect = false)
            .start()
            .await
            .unwrap();
        let send = h2_connect(&pair).await.unwrap();
        assert!(!send.is_extended_connect_protocol_enabled());
    })
    .await;
}

/// The status of an HTTP/2 request to the front, sent without a body.
async fn h2_status(send: &SendRequest<Bytes>, request: Request<()>) -> StatusCode {
    let mut ready = send.clone().ready().await.unwrap();
    let (response, _) = ready.send_request(request, true).unwrap();
    response.await.unwrap().status()
}

/// RFC 9113 §8.3.1: a Host field naming another entity than `:authority`
/// is malformed, and a request over TLS claiming `:scheme http` is refused
/// (the app must not be told it came in the clear): 400 from the front,
/// for a plain request and an extended CONNECT alike. The same host in
/// another case, with its default port, still passes.
#[tokio::test]
async fn http2_foreign_host_or_cleartext_scheme_gets_400() {
    within(async {
        let pair = pair().await;
        let send = h2_connect(&pair).await.unwrap();
        let foreign_host = Request::get("https://localhost/hello")
            .header("host", "other.example")
            .body(())
            .unwrap();
        let cleartext = Request::get("http://localhost/hello").body(()).unwrap();
        let mut connect = extended_connect("websocket", "/ws").unwrap();
        connect
            .headers_mut()
            .insert("host", http::HeaderValue::from_static("other.example"));
        let mut cleartext_connect = extended_connect("websocket", "/ws").unwrap();
        *cleartext_connect.uri_mut() = "http://localhost/ws".parse().unwrap();
        for (name, request) in [
            ("foreign Host", foreign_host),
            (":scheme http", cleartext),
            ("CONNECT with a foreign Host", connect),
            ("CONNECT with :scheme http", cleartext_connect),
        ] {
            assert_eq!(
                h2_status(&send, request).await,
                StatusCode::BAD_REQUEST,
                "{name}"
            );
        }
        assert!(pair.app.requests().is_empty());
        let same_host = Request::get("https://localhost/hello")
            .header("host", "LOCALHOST:443")
            .body(())
            .unwrap();
        assert_eq!(h2_status(&send, same_host).await, StatusCode::OK);
    })
    .await;
}
