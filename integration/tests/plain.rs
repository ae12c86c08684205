//! Plain HTTP/1.1 requests end to end: client → front → ordinary HTTP/2
//! stream → sidecar → app, bodies streamed both ways, never buffered whole.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use bytes::Bytes;
use h2hop_integration::client;
use h2hop_integration::harness::{Pair, within};
use http::{Method, StatusCode, header};
use http_body_util::BodyExt as _;
use tokio_tungstenite::tungstenite::Message;

/// `len` bytes of a pattern that a shifted or truncated copy cannot match.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Reads response frames until `want` data bytes have arrived; fails if the
/// body ends first.
async fn read_at_least(body: &mut hyper::body::Incoming, want: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < want {
        let frame = body
            .frame()
            .await
            .expect("body ended early")
            .expect("body failed");
        if let Ok(data) = frame.into_data() {
            got.extend_from_slice(&data);
        }
    }
    got
}

/// RFC 9110 §9: every method keeps its name across both hops and
/// the response comes back; bodies of methods that carry one are echoed.
#[tokio::test]
async fn every_method_reaches_the_app_with_its_name() {
    within(async {
        let pair = Pair::start().await.unwrap();
        let methods = [
            (Method::GET, ""),
            (Method::HEAD, ""),
            (Method::POST, "posted"),
            (Method::PUT, "put body"),
            (Method::DELETE, ""),
            (Method::PATCH, "patch body"),
            (Method::OPTIONS, ""),
        ];
        for (method, body) in &methods {
            let mut sender = client::http1_connect(pair.front).await.unwrap();
            let request =
                client::request(method.clone(), pair.front, "/echo", client::full(*body)).unwrap();
            let response = sender.send_request(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{method}");
            assert_eq!(
                response.headers()["x-app-method"],
                method.as_str(),
                "{method}"
            );
            let echoed = client::body_bytes(response).await.unwrap();
            // A HEAD response has no body whatever the app meant to send.
            let expected = if *method == Method::HEAD { "" } else { *body };
            assert_eq!(echoed, expected, "{method}");
        }
        let seen: Vec<Method> = pair.app.requests().into_iter().map(|r| r.method).collect();
        let sent: Vec<Method> = methods.iter().map(|(m, _)| m.clone()).collect();
        assert_eq!(seen, sent);
    })
    .await;
}

/// RFC 9112 §6.3, RFC 9113 §8.1.1: a 3 MiB Content-Length body arrives
/// whole and byte-exact, still framed by its length at the app.
#[tokio::test]
async fn content_length_body_arrives_intact() {
    within(async {
        let pair = Pair::start().await.unwrap();
        let body = pattern(3 * 1024 * 1024);
        let mut sender = client::http1_connect(pair.front).await.unwrap();
        let request = client::request(
            Method::POST,
            pair.front,
            "/echo",
            client::full(body.clone()),
        )
        .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let echoed = client::body_bytes(response).await.unwrap();
        assert_eq!(echoed.len(), body.len());
        assert!(echoed == body, "echoed body differs from the one sent");
        let seen = pair.app.requests();
        assert_eq!(seen.len(), 1);
        assert_eq!(
            seen[0].headers[header::CONTENT_LENGTH],
            body.len().to_string().as_str()
        );
    })
    .await;
}

/// RFC 9112 §7.1: a chunked body of several chunks arrives whole and in
/// order.
#[tokio::test]
async fn chunked_body_arrives_intact() {
    within(async {
        let pair = Pair::start().await.unwrap();
        let chunks: Vec<Bytes> = (0..8u8)
            .map(|i| Bytes::from(vec![b'a' + i; 10_000 + usize::from(i)]))
            .collect();
        let (tx, body) = client::channel_body(chunks.len());
        for chunk in &chunks {
            tx.send(chunk.clone()).await.unwrap();
        }
        drop(tx);
        let mut sender = client::http1_connect(pair.front).await.unwrap();
        let request = client::request(Method::POST, pair.front, "/echo", body).unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let echoed = client::body_bytes(response).await.unwrap();
        assert_eq!(echoed, chunks.concat());
        let seen = pair.app.requests();
        assert_eq!(seen.len(), 1);
        assert!(!seen[0].headers.contains_key(header::CONTENT_LENGTH));
    })
    .await;
}

/// Streaming both ways: the response head and the echo of the first chunk
/// come back while the rest of the request body is still unsent, so neither
/// the front nor the sidecar waits for a whole body.
#[tokio::test]
async fn bodies_stream_both_ways_without_buffering() {
    within(async {
        let pair = Pair::start().await.unwrap();
        let (tx, body) = client::channel_body(1);
        let mut sender = client::http1_connect(pair.front).await.unwrap();
        let request = client::request(Method::POST, pair.front, "/echo", body).unwrap();
        let response = sender.send_request(request);
        let first = Bytes::from_static(b"first chunk, the rest is not sent yet");
        tx.send(first.clone()).await.unwrap();
        let response = response.await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut incoming = response.into_body();
        let echoed = read_at_least(&mut incoming, first.len()).await;
        assert_eq!(echoed, first);

        let rest = [Bytes::from_static(b"second"), Bytes::from_static(b"third")];
        for chunk in &rest {
            tx.send(chunk.clone()).await.unwrap();
        }
        drop(tx);
        let tail = incoming.collect().await.unwrap().to_bytes();
        assert_eq!(tail, rest.concat());
    })
    .await;
}

/// An 8 MiB response, far above every HTTP/2 window (RFC 9113 §6.9),
/// arrives whole with its Content-Length.
#[tokio::test]
async fn large_response_arrives_intact() {
    within(async {
        let pair = Pair::start().await.unwrap();
        let len = 8 * 1024 * 1024;
        let mut sender = client::http1_connect(pair.front).await.unwrap();
        let request = client::request(
            Method::GET,
            pair.front,
            &format!("/bytes/{len}"),
            client::full(""),
        )
        .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_LENGTH],
            len.to_string().as_str()
        );
        let body = client::body_bytes(response).await.unwrap();
        let expected: Vec<u8> = (b'a'..=b'z').cycle().take(len).collect();
        assert_eq!(body.len(), len);
        assert!(body == expected, "response body differs from /bytes/{len}");
    })
    .await;
}

/// RFC 9112 §9.3: one client connection carries several requests in turn.
#[tokio::test]
async fn keep_alive_connection_serves_several_requests() {
    within(async {
        let pair = Pair::start().await.unwrap();
        let mut sender = client::http1_connect(pair.front).await.unwrap();
        for i in 0..5 {
            sender.ready().await.unwrap();
            let body = format!("request {i}");
            let request = client::request(
                Method::POST,
                pair.front,
                "/echo",
                client::full(body.clone()),
            )
            .unwrap();
            let response = sender.send_request(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "request {i}");
            assert_eq!(client::body_bytes(response).await.unwrap(), body);
        }
        sender.ready().await.unwrap();
        let request = client::request(Method::GET, pair.front, "/", client::full("")).unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(pair.app.requests().len(), 6);
    })
    .await;
}

/// RFC 9110 §7.6.1 (N29): the app's status, body and end-to-end fields are
/// relayed unchanged.
#[tokio::test]
async fn app_status_and_end_to_end_headers_are_relayed() {
    within(async {
        let pair = Pair::start().await.unwrap();
        let mut sender = client::http1_connect(pair.front).await.unwrap();
        for code in [404u16, 201, 503] {
            sender.ready().await.unwrap();
            let request = client::request(
                Method::GET,
                pair.front,
                &format!("/status/{code}"),
                client::full(""),
            )
            .unwrap();
            let response = sender.send_request(request).await.unwrap();
            assert_eq!(response.status().as_u16(), code);
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                "text/plain; charset=utf-8"
            );
            let body = client::body_bytes(response).await.unwrap();
            assert_eq!(body, format!("app says {code}"));
        }
    })
    .await;
}

/// RFC 9112 §9.3 and S2: plain requests share the sidecar's keep-alive pool,
/// so ten sequential GETs from ten client connections reach the app on one
/// connection; each WebSocket tunnel dials a connection of its own that is
/// never pooled (three tunnels, three more connections), and the pooled one
/// still serves the next plain request.
#[tokio::test]
async fn sidecar_reuses_app_connections_for_plain_requests() {
    within(async {
        let pair = Pair::start().await.unwrap();
        let plain_get = |i: usize| async move {
            let mut sender = client::http1_connect(pair.front).await.unwrap();
            let path = format!("/plain/{i}");
            let request = client::request(Method::GET, pair.front, &path, client::full(""));
            let response = sender.send_request(request.unwrap()).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            // Read to the end, so the sidecar's app connection goes idle.
            let body = client::body_bytes(response).await.unwrap();
            assert_eq!(body, "hello from app", "{path}");
        };
        for i in 0..10 {
            plain_get(i).await;
            assert_eq!(pair.app.connections(), 1, "after plain GET {i}");
        }

        for i in 0..3 {
            let (mut ws, response) = client::ws_connect(pair.front, "/ws", &[]).await.unwrap();
            assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
            let text = format!("tunnel {i}");
            let echoed = client::echo_roundtrip(&mut ws, Message::text(text.clone()))
                .await
                .unwrap();
            assert_eq!(echoed, Message::text(text));
            client::close_handshake(&mut ws, 1000, "done")
                .await
                .unwrap();
            assert_eq!(pair.app.connections(), 2 + i, "after tunnel {i}");
        }

        plain_get(10).await;
        assert_eq!(pair.app.connections(), 4, "plain GET after the tunnels");
        assert_eq!(pair.app.requests().len(), 14);
    })
    .await;
}
