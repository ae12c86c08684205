//! Any allow-listed Upgrade, any method: the method and the body reach the
//! app as the client sent them, nothing behind the body reaches the app
//! before its 101, the limits hold, h2hop's own fields cannot be forged,
//! and `--upgrade-as-get` gives Envoy's behaviour.
//!
//! The client is hand-written HTTP/1.1, so that no library repairs a
//! request. The test app answers any non-WebSocket Upgrade with a 101 that
//! names the same token, then writes `METHOD LENGTH\n` and the body it
//! received, then echoes raw bytes.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use h2hop_integration::client::{RawUpgrade, raw_request};
use h2hop_integration::harness::{Pair, within};
use http::{Method, Request, StatusCode};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// The custom protocol the tests allow beside WebSocket.
const PROTO: &str = "my-proto";

/// A pair over h2c that tunnels WebSocket and [`PROTO`].
async fn pair() -> Pair {
    Pair::builder()
        .h2c()
        .protocols(&["websocket", PROTO])
        .start()
        .await
        .unwrap()
}

/// `METHOD /x` with `Upgrade: {upgrade}`, `Connection: Upgrade`, the body
/// with its Content-Length, `extra` fields, then `early` bytes sent in the
/// same write, as a client that pipelines would.
fn upgrade_request(
    method: &str,
    upgrade: &str,
    body: &str,
    extra: &[(&str, &str)],
    early: &str,
) -> String {
    let mut request = format!(
        "{method} /x HTTP/1.1\r\nHost: example.com\r\nUpgrade: {upgrade}\r\nConnection: Upgrade\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in extra {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    request.push_str(early);
    request
}

/// Reads exactly `len` bytes of the tunnel: what came with the head first.
async fn tunnel_bytes(upgrade: &mut RawUpgrade, len: usize) -> Vec<u8> {
    let mut bytes = std::mem::take(&mut upgrade.leftover);
    while bytes.len() < len {
        let mut chunk = [0u8; 4096];
        let n = upgrade.stream.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "tunnel closed after {:?}",
            String::from_utf8_lossy(&bytes)
        );
        bytes.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(bytes.len(), len, "more bytes than expected: {bytes:?}");
    bytes
}

/// A `POST` upgrade with a body reaches the app as a `POST` with exactly
/// that body and its Content-Length; the tunnel opens on the app's 101 (the
/// client's 101 names the token); bytes pipelined behind the body come out
/// of the tunnel after the body; forged h2hop fields never arrive.
#[tokio::test]
async fn post_upgrade_keeps_its_method_and_exact_body() {
    within(async {
        let pair = pair().await;
        let request = upgrade_request(
            "POST",
            "My-Proto",
            "hello world",
            &[
                ("Content-Type", "text/plain"),
                ("h2hop-upgrade-method", "DELETE"),
                ("h2hop-upgrade-body-length", "3"),
            ],
            "EARLY",
        );
        let mut upgrade = raw_request(pair.front, &request).await.unwrap();
        assert_eq!(upgrade.status, 101);
        assert_eq!(upgrade.header("upgrade"), Some(PROTO));
        assert_eq!(upgrade.header("connection"), Some("Upgrade"));
        assert_eq!(upgrade.header("sec-websocket-accept"), None);

        let expected = b"POST 11\nhello worldEARLY";
        let got = tunnel_bytes(&mut upgrade, expected.len()).await;
        assert_eq!(got, expected, "{:?}", String::from_utf8_lossy(&got));
        upgrade.stream.write_all(b"later").await.unwrap();
        assert_eq!(tunnel_bytes(&mut upgrade, 5).await, b"later");

        let requests = pair.app.requests();
        let seen = requests.last().expect("the app saw the upgrade");
        assert_eq!(seen.method, Method::POST);
        assert_eq!(seen.uri, "/x");
        assert_eq!(seen.headers["upgrade"], PROTO);
        assert_eq!(seen.headers["connection"], "Upgrade");
        assert_eq!(seen.headers["content-length"], "11");
        assert_eq!(seen.headers["content-type"], "text/plain");
        assert_eq!(seen.headers["host"], "example.com");
        for name in seen.headers.keys() {
            assert!(
                !name.as_str().starts_with("h2hop-"),
                "{name} reached the app"
            );
        }
        assert!(!seen.headers.contains_key("sec-websocket-key"));
    })
    .await;
}

/// Other methods too, and a `GET` upgrade without a body.
#[tokio::test]
async fn any_method_crosses_the_hop() {
    within(async {
        let pair = pair().await;
        for (method, body) in [("PUT", "x"), ("PATCH", ""), ("GET", "")] {
            let request = upgrade_request(method, PROTO, body, &[], "");
            let mut upgrade = raw_request(pair.front, &request).await.unwrap();
            assert_eq!(upgrade.status, 101, "{method}");
            let expected = format!("{method} {}\n{body}", body.len());
            let got = tunnel_bytes(&mut upgrade, expected.len()).await;
            assert_eq!(got, expected.as_bytes(), "{method}");
            let seen = pair.app.requests().pop().unwrap();
            assert_eq!(seen.method.as_str(), method);
        }
    })
    .await;
}

/// The app's 101 is the gate: a hand-written app reads the head and body,
/// waits, and only then answers. Nothing the client pipelined behind the
/// body may have reached it before that 101.
#[tokio::test]
async fn bytes_behind_the_body_wait_for_the_apps_101() {
    within(async {
        let app = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let app_addr = app.local_addr().unwrap();
        let pair = Pair::builder()
            .h2c()
            .protocols(&["websocket", PROTO])
            .app_at(app_addr)
            .start()
            .await
            .unwrap();
        let gate = tokio::spawn(gated_app(app));
        let request = upgrade_request("POST", PROTO, "body!", &[], "EARLY");
        let mut upgrade = raw_request(pair.front, &request).await.unwrap();
        assert_eq!(upgrade.status, 101);
        assert_eq!(tunnel_bytes(&mut upgrade, 5).await, b"EARLY");
        let (body, before_101) = gate.await.unwrap();
        assert_eq!(body, b"body!");
        assert!(
            before_101.is_empty(),
            "the app got {:?} before its 101",
            String::from_utf8_lossy(&before_101)
        );
    })
    .await;
}

/// Reads one request (head and Content-Length body), then for 300 ms
/// whatever else arrives, answers 101, and echoes what follows. Returns the
/// body and the bytes that arrived before the 101.
async fn gated_app(listener: TcpListener) -> (Vec<u8>, Vec<u8>) {
    let (mut stream, _) = listener.accept().await.unwrap();
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "request head cut short");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .map(|value| value.trim().parse().unwrap())
        .expect("the upgrade carries a Content-Length");
    while buf.len() < head_end + length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "body cut short");
        buf.extend_from_slice(&chunk[..n]);
    }
    let mut rest = buf.split_off(head_end);
    let mut before_101 = rest.split_off(length);
    let body = rest;
    let mut chunk = [0u8; 4096];
    if let Ok(read) =
        tokio::time::timeout(Duration::from_millis(300), stream.read(&mut chunk)).await
    {
        before_101.extend_from_slice(&chunk[..read.unwrap()]);
    }
    stream
        .write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: my-proto\r\nConnection: Upgrade\r\n\r\n",
        )
        .await
        .unwrap();
    let mut early = [0u8; 5];
    stream.read_exact(&mut early).await.unwrap();
    stream.write_all(&early).await.unwrap();
    (body, before_101)
}

/// `--upgrade-as-get`: Envoy's behaviour. The app sees `GET` without a
/// body whatever the client sent, and the carried body does not leak into
/// the tunnel either.
#[tokio::test]
async fn upgrade_as_get_sends_get_without_the_body() {
    within(async {
        let pair = Pair::builder()
            .h2c()
            .protocols(&["websocket", PROTO])
            .upgrade_as_get()
            .start()
            .await
            .unwrap();
        let request = upgrade_request("POST", PROTO, "hello", &[], "EARLY");
        let mut upgrade = raw_request(pair.front, &request).await.unwrap();
        assert_eq!(upgrade.status, 101);
        let expected = b"GET 0\nEARLY";
        let got = tunnel_bytes(&mut upgrade, expected.len()).await;
        assert_eq!(got, expected, "{:?}", String::from_utf8_lossy(&got));
        let seen = pair.app.requests().pop().unwrap();
        assert_eq!(seen.method, Method::GET);
        assert!(!seen.headers.contains_key("content-length"));
    })
    .await;
}

/// Over the body limit is 413 and a chunked upgrade body is 400, both at
/// the front: the app never sees them.
#[tokio::test]
async fn oversized_and_chunked_upgrade_bodies_are_refused() {
    within(async {
        let pair = Pair::builder()
            .h2c()
            .protocols(&["websocket", PROTO])
            .upgrade_body_limit(10)
            .start()
            .await
            .unwrap();
        let at_limit = upgrade_request("POST", PROTO, "0123456789", &[], "");
        assert_eq!(raw_request(pair.front, &at_limit).await.unwrap().status, 101);
        let over = upgrade_request("POST", PROTO, "0123456789a", &[], "");
        assert_eq!(raw_request(pair.front, &over).await.unwrap().status, 413);
        let chunked = format!(
            "POST /x HTTP/1.1\r\nHost: h\r\nUpgrade: {PROTO}\r\nConnection: Upgrade\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        );
        assert_eq!(raw_request(pair.front, &chunked).await.unwrap().status, 400);
        assert_eq!(pair.app.requests().len(), 1, "only the upgrade at the limit");
    })
    .await;
}

/// A token the front does not allow is forwarded as plain HTTP without its
/// Upgrade (RFC 9110 §7.8); one the front allows and the sidecar does not
/// gets the sidecar's 501 (RFC 9220 §3).
#[tokio::test]
async fn tokens_not_allowed_are_plain_at_the_front_and_501_at_the_sidecar() {
    within(async {
        let pair = Pair::builder()
            .h2c()
            .protocols(&["websocket", PROTO])
            .sidecar_protocols(&["websocket"])
            .start()
            .await
            .unwrap();
        let other = upgrade_request("POST", "other-proto", "abc", &[], "");
        let mut answer = raw_request(pair.front, &other).await.unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.read_body().await.unwrap(), b"hello from app");
        let seen = pair.app.requests().pop().unwrap();
        assert_eq!(seen.method, Method::POST);
        assert!(!seen.headers.contains_key("upgrade"));

        let refused = upgrade_request("GET", PROTO, "", &[], "");
        let answer = raw_request(pair.front, &refused).await.unwrap();
        assert_eq!(answer.status, 501);
        assert_eq!(
            pair.app.requests().len(),
            1,
            "the 501 never reached the app"
        );
    })
    .await;
}

/// A plain request cannot smuggle h2hop's fields to the app either.
#[tokio::test]
async fn reserved_fields_are_removed_from_plain_requests() {
    within(async {
        let pair = pair().await;
        let request = "GET /echo HTTP/1.1\r\nHost: h\r\nh2hop-upgrade-method: POST\r\nH2hop-Anything: x\r\nContent-Length: 0\r\n\r\n";
        let mut answer = raw_request(pair.front, request).await.unwrap();
        assert_eq!(answer.status, 200);
        let _ = answer.read_body().await.unwrap();
        let seen = pair.app.requests().pop().unwrap();
        for name in seen.headers.keys() {
            assert!(!name.as_str().starts_with("h2hop-"), "{name} reached the app");
        }
    })
    .await;
}

/// Opens an h2c connection straight to the sidecar, as a front that is not
/// h2hop would.
async fn h2_client(sidecar: SocketAddr) -> h2::client::SendRequest<Bytes> {
    let tcp = TcpStream::connect(sidecar).await.unwrap();
    let (send, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    send.ready().await.unwrap()
}

/// An extended CONNECT for [`PROTO`] carrying `fields`.
fn extended_connect(fields: &[(&str, &str)]) -> Request<()> {
    let mut builder = Request::builder()
        .method(Method::CONNECT)
        .uri("http://app.example/x");
    for (name, value) in fields {
        builder = builder.header(*name, *value);
    }
    let mut request = builder.body(()).unwrap();
    request
        .extensions_mut()
        .insert(h2::ext::Protocol::from(PROTO));
    request
}

/// From a front that carries no method field (nghttpx, Envoy), an upgrade
/// becomes `GET`, with or without `--upgrade-as-get`; with it, even a
/// carried `POST` does.
#[tokio::test]
async fn extended_connect_without_the_method_field_is_get_in_either_mode() {
    within(async {
        for as_get in [false, true] {
            let mut builder = Pair::builder().h2c().protocols(&["websocket", PROTO]);
            if as_get {
                builder = builder.upgrade_as_get();
            }
            let pair = builder.start().await.unwrap();
            let mut client = h2_client(pair.sidecar).await;
            let (response, _send) = client.send_request(extended_connect(&[]), false).unwrap();
            assert_eq!(response.await.unwrap().status(), StatusCode::OK);
            assert_eq!(pair.app.requests().pop().unwrap().method, Method::GET);

            let carried = extended_connect(&[("h2hop-upgrade-method", "POST")]);
            let (response, _send) = client.send_request(carried, false).unwrap();
            assert_eq!(response.await.unwrap().status(), StatusCode::OK);
            let expected = if as_get { Method::GET } else { Method::POST };
            assert_eq!(
                pair.app.requests().pop().unwrap().method,
                expected,
                "as_get={as_get}"
            );
        }
    })
    .await;
}

/// A `:protocol` that is not an HTTP token never becomes an `Upgrade` value
/// (S4): 400, and the app sees nothing.
#[tokio::test]
async fn protocol_that_is_not_a_token_is_refused() {
    within(async {
        let pair = pair().await;
        let mut client = h2_client(pair.sidecar).await;
        let mut request = extended_connect(&[]);
        request
            .extensions_mut()
            .insert(h2::ext::Protocol::from("my proto"));
        let (response, _send) = client.send_request(request, false).unwrap();
        assert_eq!(response.await.unwrap().status(), StatusCode::BAD_REQUEST);
        assert!(pair.app.requests().is_empty());
    })
    .await;
}
