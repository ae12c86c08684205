//! The sidecar toward an app that speaks h2c (`--app-protocol h2c`),
//! spoken to over h2c by a raw `h2` client as a front would: bodies and
//! trailers streamed both ways (RFC 9113 §8.1), resets carried both ways,
//! `grpc-timeout` honoured (gRPC over HTTP/2, "Timeout"), extended CONNECT
//! end to end when the app enables it (RFC 8441 §3-§5) and 501 when not.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use h2::{Reason, RecvStream, SendStream};
use h2hop_integration::h2c_app::{H2cApp, H2cAppOptions};
use h2hop_integration::harness::{Pair, within};
use h2hop_sidecar::AppProtocol;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version};
use tokio::net::TcpStream;

/// How long a test waits for the app to see something.
const SEEN_WITHIN: Duration = Duration::from_secs(5);

/// A sidecar (h2c from fronts) toward `app`, with `--app-protocol h2c`.
async fn pair_toward(app: &H2cApp) -> Pair {
    Pair::builder()
        .h2c()
        .app_at(app.addr)
        .sidecar_config(|config| config.app.protocol = AppProtocol::H2c)
        .start()
        .await
        .unwrap()
}

/// An h2c connection to the sidecar, its SETTINGS in effect.
async fn connect(pair: &Pair) -> SendRequest<Bytes> {
    let tcp = TcpStream::connect(pair.sidecar).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let (send, mut connection) = h2::client::handshake(tcp).await.unwrap();
    let mut ping_pong = connection.ping_pong().expect("ping_pong is taken once");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    ping_pong.ping(h2::Ping::opaque()).await.unwrap();
    send
}

fn request(method: Method, path: &str) -> Request<()> {
    Request::builder()
        .method(method)
        .uri(format!("http://app.test{path}"))
        .version(Version::HTTP_2)
        .body(())
        .unwrap()
}

/// Opens a stream for `request`; the response head is left to the caller.
async fn open(
    send: &SendRequest<Bytes>,
    request: Request<()>,
    end_of_stream: bool,
) -> (h2::client::ResponseFuture, SendStream<Bytes>) {
    let mut ready = send.clone().ready().await.unwrap();
    ready.send_request(request, end_of_stream).unwrap()
}

/// Reads the rest of the stream, giving each chunk's window back.
async fn read_to_end(recv: &mut RecvStream) -> Vec<u8> {
    let mut got = Vec::new();
    while let Some(chunk) = recv.data().await {
        let chunk = chunk.unwrap();
        recv.flow_control().release_capacity(chunk.len()).unwrap();
        got.extend_from_slice(&chunk);
    }
    got
}

/// A body of `len` bytes that is not one byte repeated.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// (a) A 4 MiB POST streams to the app and back (far past every window:
/// nothing is buffered whole), and the app's trailers reach the client.
#[tokio::test]
async fn a_large_body_streams_both_ways_and_response_trailers_arrive() {
    within(async {
        let app = H2cApp::spawn(H2cAppOptions::default()).await.unwrap();
        let pair = pair_toward(&app).await;
        let client = connect(&pair).await;
        let (response, mut upload) = open(&client, request(Method::POST, "/echo"), false).await;
        let body = Bytes::from(pattern(4 * 1024 * 1024));
        let sent = body.clone();
        let uploading = tokio::spawn(async move {
            let mut moved = 0;
            h2hop::relay::send_data(&mut upload, sent, &mut moved)
                .await
                .unwrap();
            upload.send_data(Bytes::new(), true).unwrap();
        });
        let response = response.await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut recv = response.into_body();
        let echoed = read_to_end(&mut recv).await;
        uploading.await.unwrap();
        assert_eq!(echoed.len(), body.len());
        assert!(echoed == body, "the echo differs from what was sent");
        let trailers = recv.trailers().await.unwrap().expect("trailers");
        assert_eq!(trailers["x-echo-bytes"], body.len().to_string().as_str());
        assert_eq!(trailers["grpc-status"], "0");
    })
    .await;
}

/// (b) Request trailers reach the app (RFC 9113 §8.1), with `te: trailers`
/// kept on the head (a gRPC server requires it).
#[tokio::test]
async fn request_trailers_and_te_reach_the_app() {
    within(async {
        let app = H2cApp::spawn(H2cAppOptions::default()).await.unwrap();
        let pair = pair_toward(&app).await;
        let client = connect(&pair).await;
        let mut head = request(Method::POST, "/echo");
        head.headers_mut()
            .insert("te", HeaderValue::from_static("trailers"));
        head.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/grpc"));
        let (response, mut upload) = open(&client, head, false).await;
        upload
            .send_data(Bytes::from_static(b"call"), false)
            .unwrap();
        let mut trailers = HeaderMap::new();
        trailers.insert("x-client-trailer", HeaderValue::from_static("yes"));
        upload.send_trailers(trailers).unwrap();
        let mut recv = response.await.unwrap().into_body();
        assert_eq!(read_to_end(&mut recv).await, b"call");
        let answer_trailers = recv.trailers().await.unwrap().expect("trailers");
        assert_eq!(answer_trailers["x-echo-bytes"], "4");
        let seen = app.seen();
        let (_, fields) = seen
            .requests
            .iter()
            .find(|(path, _)| path == "/echo")
            .expect("the request reached the app");
        assert_eq!(fields["te"], "trailers");
        assert_eq!(fields["content-type"], "application/grpc");
        assert!(
            seen.trailers
                .iter()
                .any(|(path, fields)| path == "/echo" && fields["x-client-trailer"] == "yes"),
            "{seen:?}"
        );
    })
    .await;
}

/// (c) A client's RST_STREAM(CANCEL) reaches the app as a reset.
#[tokio::test]
async fn a_client_reset_reaches_the_app() {
    within(async {
        let app = H2cApp::spawn(H2cAppOptions::default()).await.unwrap();
        let pair = pair_toward(&app).await;
        let client = connect(&pair).await;
        let (response, mut upload) = open(&client, request(Method::POST, "/echo"), false).await;
        upload
            .send_data(Bytes::from_static(b"part"), false)
            .unwrap();
        let response = response.await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            app.reset_on("/echo", Duration::from_millis(200)).await,
            None
        );
        upload.send_reset(Reason::CANCEL);
        let reason = app.reset_on("/echo", SEEN_WITHIN).await;
        assert_eq!(reason, Some(Reason::CANCEL));
    })
    .await;
}

/// (d) `grpc-timeout: 100m` toward an app that never answers: a
/// trailers-only `grpc-status: 4` well before the response timeout, and
/// the app's stream is reset.
#[tokio::test]
async fn grpc_timeout_answers_deadline_exceeded_and_resets_the_app() {
    within(async {
        let app = H2cApp::spawn(H2cAppOptions::default()).await.unwrap();
        let pair = pair_toward(&app).await;
        let client = connect(&pair).await;
        let mut head = request(Method::POST, "/hang");
        head.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/grpc"));
        head.headers_mut()
            .insert("grpc-timeout", HeaderValue::from_static("100m"));
        let (response, _upload) = open(&client, head, true).await;
        let response: Response<RecvStream> = tokio::time::timeout(SEEN_WITHIN, response)
            .await
            .expect("no answer before the response timeout")
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["grpc-status"], "4");
        assert_eq!(response.headers()["content-type"], "application/grpc");
        assert!(response.body().is_end_stream(), "trailers-only answer");
        let reason = app.reset_on("/hang", SEEN_WITHIN).await;
        assert_eq!(reason, Some(Reason::CANCEL));
    })
    .await;
}

/// An extended CONNECT for a WebSocket at `/chat`.
fn extended_connect() -> Request<()> {
    let mut request = request(Method::CONNECT, "/chat");
    request
        .headers_mut()
        .insert("sec-websocket-version", HeaderValue::from_static("13"));
    request
        .extensions_mut()
        .insert(h2::ext::Protocol::from("websocket"));
    request
}

/// (e) Toward an app that enabled extended CONNECT: the app gets the
/// extended CONNECT itself (RFC 8441 §4), its 200 opens the tunnel, bytes
/// echo, and each side's END_STREAM half-closes (RFC 8441 §5).
#[tokio::test]
async fn extended_connect_goes_through_to_an_app_that_enabled_it() {
    within(async {
        let options = H2cAppOptions {
            extended_connect: true,
        };
        let app = H2cApp::spawn(options).await.unwrap();
        let pair = pair_toward(&app).await;
        let client = connect(&pair).await;
        let (response, mut upload) = open(&client, extended_connect(), false).await;
        let response = response.await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut recv = response.into_body();
        upload
            .send_data(Bytes::from_static(b"ping"), false)
            .unwrap();
        let chunk = recv.data().await.unwrap().unwrap();
        recv.flow_control().release_capacity(chunk.len()).unwrap();
        assert_eq!(&chunk[..], b"ping");
        upload.send_data(Bytes::new(), true).unwrap();
        // The app ends its half once ours ended: a clean close, no reset.
        assert_eq!(read_to_end(&mut recv).await, b"");
        let seen = app.seen();
        assert_eq!(seen.protocols, ["websocket"]);
        assert!(seen.resets.is_empty(), "{seen:?}");
    })
    .await;
}

/// (f) Toward an app that did not enable it: 501, saying why, and the app
/// never sees a `:protocol` (RFC 8441 §3).
#[tokio::test]
async fn extended_connect_to_an_app_without_it_is_501_saying_why() {
    within(async {
        let app = H2cApp::spawn(H2cAppOptions::default()).await.unwrap();
        let pair = pair_toward(&app).await;
        let client = connect(&pair).await;
        let (response, _upload) = open(&client, extended_connect(), false).await;
        let response = response.await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_IMPLEMENTED);
        let body = read_to_end(&mut response.into_body()).await;
        let body = String::from_utf8(body).unwrap();
        assert!(body.contains("extended CONNECT"), "{body}");
        assert!(body.contains("SETTINGS_ENABLE_CONNECT_PROTOCOL"), "{body}");
        assert!(app.seen().protocols.is_empty());
    })
    .await;
}

/// (g) An app that is down: 502, as with HTTP/1.1.
#[tokio::test]
async fn an_app_that_is_down_is_502() {
    within(async {
        let pair = Pair::builder()
            .h2c()
            .app_down()
            .sidecar_config(|config| config.app.protocol = AppProtocol::H2c)
            .start()
            .await
            .unwrap();
        let client = connect(&pair).await;
        let (response, _upload) = open(&client, request(Method::GET, "/"), true).await;
        assert_eq!(response.await.unwrap().status(), StatusCode::BAD_GATEWAY);
    })
    .await;
}

/// An app's REFUSED_STREAM reaches the front as REFUSED_STREAM, which
/// says the request was not processed and may be retried (RFC 9113 §8.7).
#[tokio::test]
async fn an_apps_refused_stream_stays_refused_stream() {
    within(async {
        let app = H2cApp::spawn(H2cAppOptions::default()).await.unwrap();
        let pair = pair_toward(&app).await;
        let client = connect(&pair).await;
        let (response, _upload) = open(&client, request(Method::GET, "/refuse"), true).await;
        let err = response.await.unwrap_err();
        assert_eq!(err.reason(), Some(Reason::REFUSED_STREAM), "{err}");
    })
    .await;
}

/// A plain GET: the app's answer comes back, and one connection to the
/// app carries several streams.
#[tokio::test]
async fn a_plain_get_is_answered_by_the_app() {
    within(async {
        let app = H2cApp::spawn(H2cAppOptions::default()).await.unwrap();
        let pair = pair_toward(&app).await;
        let client = connect(&pair).await;
        for _ in 0..3 {
            let (response, _upload) = open(&client, request(Method::GET, "/"), true).await;
            let response = response.await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(read_to_end(&mut response.into_body()).await, b"hello");
        }
        assert_eq!(app.seen().requests.len(), 3);
    })
    .await;
}
