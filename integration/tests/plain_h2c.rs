//! Cleartext HTTP/2 with prior knowledge (h2c, RFC 9113 §3.3) on the
//! front's plain listener, told from HTTP/1.1 by the connection preface
//! (RFC 9113 §3.4), as mesh gRPC clients connect.
//!
//! - `h2c_get_is_answered_on_the_plain_listener`: a GET over h2c reaches
//!   the app with `X-Forwarded-Proto: http`; `:scheme https` is refused.
//! - `h2c_websocket_over_extended_connect`: RFC 8441 on the plain listener.
//! - `a_preface_sent_one_byte_at_a_time_still_gets_http2`: a slow client.
//! - `http1_clients_are_unaffected`: HTTP/1.1 next to h2c, keep-alive and
//!   an Upgrade: h2c still refused.
//! - `with_plain_h2c_off_the_preface_is_closed`: `--plain-h2c off` gives
//!   the preface what HTTP/1.1 gives it (a close), and the h2 client fails.
//! - `h2c_after_a_proxy_header`: a PROXY header first, then the preface:
//!   h2c served, the header's client named to the app.
//! - `nghttpx_speaks_h2c_to_the_plain_listener`: another implementation's
//!   h2c client, nghttpx with an HTTP/2 backend as a mesh proxy sets one up
//!   (skipped loudly without nghttpx, unless `H2HOP_REQUIRE_EXTERNAL=1`).

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use h2::RecvStream;
use h2::client::SendRequest;
use h2hop_front::{PlainH2c, ProxyMode, ProxyProtocol};
use h2hop_integration::bad_input_h1::{Expect, MAX_HEAD, case, run_refusals};
use h2hop_integration::client;
use h2hop_integration::h2_client::{extended_connect, h2_handshake, h2c_connect};
use h2hop_integration::harness::{Pair, within};
use h2hop_integration::interop::{Nghttpx, nghttpx_or_skip};
use http::{Method, Request, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// The masking key of the hand-built client frame (RFC 6455 §5.3).
const MASK: [u8; 4] = [0x11, 0x22, 0x33, 0x44];

async fn pair() -> Pair {
    Pair::builder().h2c().start().await.unwrap()
}

/// A GET of `uri` over `send`, and its status and body.
async fn get(send: &SendRequest<Bytes>, uri: &str) -> (StatusCode, Vec<u8>) {
    let mut ready = send.clone().ready().await.unwrap();
    let request = Request::get(uri).body(()).unwrap();
    let (response, _) = ready.send_request(request, true).unwrap();
    let response = response.await.unwrap();
    let status = response.status();
    let mut body = response.into_body();
    let mut text = Vec::new();
    while let Some(chunk) = body.data().await {
        text.extend_from_slice(&chunk.unwrap());
    }
    (status, text)
}

/// A GET over h2c is answered by the app, which is told the client came
/// in the clear; a request claiming `https` on this connection is refused.
#[tokio::test]
async fn h2c_get_is_answered_on_the_plain_listener() {
    within(async {
        let pair = pair().await;
        let send = h2c_connect(pair.front).await.unwrap();
        let (status, body) = get(&send, "http://localhost/hello").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, b"hello from app");
        let seen = pair.app.requests().pop().unwrap();
        assert_eq!(seen.uri.path(), "/hello");
        assert_eq!(seen.headers["x-forwarded-proto"], "http");
        let (status, _) = get(&send, "https://localhost/hello").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    })
    .await;
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

/// RFC 8441 on h2c: the front advertises extended CONNECT on the plain
/// listener too, and a WebSocket opened with it echoes through the pair.
#[tokio::test]
async fn h2c_websocket_over_extended_connect() {
    within(async {
        let pair = pair().await;
        let send = h2c_connect(pair.front).await.unwrap();
        assert!(send.is_extended_connect_protocol_enabled());
        let mut ready = send.ready().await.unwrap();
        let mut connect = extended_connect("websocket", "/ws").unwrap();
        *connect.uri_mut() = "http://localhost/ws".parse().unwrap();
        let (response, mut stream) = ready.send_request(connect, false).unwrap();
        let response = response.await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut recv = response.into_body();
        stream
            .send_data(Bytes::from(masked_text(b"hello h2c")), false)
            .unwrap();
        let echo = read_len(&mut recv, 2 + 9).await;
        assert_eq!(echo, [&[0x81, 9][..], b"hello h2c"].concat());
        let seen = pair.app.requests().pop().unwrap();
        assert_eq!(seen.headers["upgrade"], "websocket");
    })
    .await;
}

/// A connection whose first `slow` bytes are written one at a time, a
/// pause after each, as a client on a poor link sends the preface.
struct Dribble {
    io: TcpStream,
    slow: usize,
    pause: Option<Pin<Box<Sleep>>>,
}

impl AsyncRead for Dribble {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Dribble {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.slow == 0 || buf.is_empty() {
            return Pin::new(&mut this.io).poll_write(cx, buf);
        }
        if let Some(pause) = this.pause.as_mut() {
            ready!(pause.as_mut().poll(cx));
            this.pause = None;
        }
        let written = ready!(Pin::new(&mut this.io).poll_write(cx, &buf[..1]))?;
        this.slow -= written;
        this.pause = Some(Box::pin(tokio::time::sleep(Duration::from_millis(20))));
        Poll::Ready(Ok(written))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The preface in 24 writes 20 ms apart (each its own TCP segment, with
/// no delay): the front waits for all of it and serves HTTP/2.
#[tokio::test]
async fn a_preface_sent_one_byte_at_a_time_still_gets_http2() {
    within(async {
        let pair = pair().await;
        let tcp = TcpStream::connect(pair.front).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let slow = Dribble {
            io: tcp,
            slow: 24,
            pause: None,
        };
        let send = h2_handshake(slow).await.unwrap();
        let (status, body) = get(&send, "http://localhost/dribbled").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, b"hello from app");
    })
    .await;
}

/// HTTP/1.1 on the same listener as h2c: keep-alive requests answered,
/// and a head that starts like the preface then differs is HTTP/1.1,
/// refused as such. (`Upgrade: h2c` stays refused:
/// `bad_input_h1_upgrade::h2c_upgrade_never_reaches_the_app` runs with h2c
/// on, the default.)
#[tokio::test]
async fn http1_clients_are_unaffected() {
    within(async {
        let pair = pair().await;
        let _h2c = h2c_connect(pair.front).await.unwrap();
        let mut http1 = client::http1_connect(pair.front).await.unwrap();
        for _ in 0..2 {
            let request = client::request(Method::GET, pair.front, "/plain", client::full(""));
            let response = http1.send_request(request.unwrap()).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let body = client::body_bytes(response).await.unwrap();
            assert_eq!(body, "hello from app");
        }
        let before = pair.app.requests().len();
        let cases = [case(
            "preface start, then other bytes",
            "PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n",
            Expect::Status(400),
        )];
        let wrong = run_refusals(&pair, &cases).await;
        assert!(wrong.is_empty(), "{wrong:#?}");
        assert_eq!(pair.app.requests().len(), before);
    })
    .await;
}

/// `--plain-h2c off`: the preface gets what HTTP/1.1 gives it, a close
/// without an answer, and an h2c client cannot connect.
#[tokio::test]
async fn with_plain_h2c_off_the_preface_is_closed() {
    within(async {
        let pair = Pair::builder()
            .h2c()
            .front_config(|config| {
                config.max_header_size = MAX_HEAD;
                config.plain_h2c = PlainH2c::Off;
            })
            .start()
            .await
            .unwrap();
        let cases = [case(
            "HTTP/2 preface",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            Expect::Closed,
        )];
        let wrong = run_refusals(&pair, &cases).await;
        assert!(wrong.is_empty(), "{wrong:#?}");
        let refused = tokio::time::timeout(Duration::from_secs(5), h2c_connect(pair.front)).await;
        assert!(matches!(refused, Ok(Err(_))), "h2c served with it off");
        assert!(pair.app.requests().is_empty());
    })
    .await;
}

/// A balancer's PROXY v1 header, then h2c: the preface is looked for
/// after the header, and the header's source is the client the app is
/// told of.
#[tokio::test]
async fn h2c_after_a_proxy_header() {
    within(async {
        let pair = Pair::builder()
            .h2c()
            .front_config(|config| {
                config.proxy_protocol = ProxyProtocol {
                    mode: ProxyMode::Required,
                    from: "127.0.0.1".parse().unwrap(),
                };
            })
            .start()
            .await
            .unwrap();
        let mut tcp = TcpStream::connect(pair.front).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let header = b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 80\r\n";
        tokio::io::AsyncWriteExt::write_all(&mut tcp, header)
            .await
            .unwrap();
        let send = h2_handshake(tcp).await.unwrap();
        let (status, body) = get(&send, "http://localhost/behind-a-balancer").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, b"hello from app");
        let seen = pair.app.requests().pop().unwrap();
        assert_eq!(seen.headers["x-forwarded-for"], "192.0.2.7");
    })
    .await;
}

/// nghttpx, HTTP/1.1 in and cleartext HTTP/2 with prior knowledge out (as
/// a mesh proxy reaches a service), pointed at the front's plain
/// listener: a GET crosses nghttpx, the front and the sidecar to the app,
/// and nghttpx logs the front as its backend.
#[tokio::test]
async fn nghttpx_speaks_h2c_to_the_plain_listener() {
    let Some(program) = nghttpx_or_skip("nghttpx → h2c → h2hop-front plain listener") else {
        return;
    };
    within(async {
        let pair = pair().await;
        let nghttpx = Nghttpx::front(&program, pair.front).await.unwrap();
        let mut send = client::http1_connect(nghttpx.addr).await.unwrap();
        let request = client::request(Method::GET, nghttpx.addr, "/via-nghttpx", client::full(""));
        let response = send.send_request(request.unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            client::body_bytes(response).await.unwrap(),
            "hello from app"
        );
        let seen = pair.app.requests().pop().unwrap();
        assert_eq!(seen.uri.path(), "/via-nghttpx");
        assert_eq!(seen.headers["x-forwarded-proto"], "http");
        let backend = format!("backend={}:{}", pair.front.ip(), pair.front.port());
        nghttpx
            .access_log_line(&["\"GET /via-nghttpx HTTP/1.1\" 200", &backend])
            .await
            .unwrap();
    })
    .await;
}
