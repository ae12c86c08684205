//! Tests of the test app on its own, over loopback: each route answers as
//! [`super::TestApp`] documents, byte-exact where a proxy could hide a
//! difference.

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, StatusCode, Version};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_util::sync::CancellationToken;

use super::{RawOutcome, TestApp};
use crate::client::{self, RawUpgrade};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Starts an app on 127.0.0.1:0; dropping the guard stops it.
async fn start() -> anyhow::Result<(TestApp, tokio_util::sync::DropGuard)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let shutdown = CancellationToken::new();
    let app = TestApp::spawn(listener, shutdown.clone())?;
    Ok((app, shutdown.drop_guard()))
}

/// Runs a test body under the per-test timeout.
async fn within(test: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::time::timeout(TIMEOUT, test).await?
}

async fn upgrade(app: &TestApp, path: &str, extra: &[(&str, &str)]) -> anyhow::Result<RawUpgrade> {
    client::raw_upgrade(app.addr, path, "Upgrade", extra).await
}

#[tokio::test]
async fn websocket_echoes_text_and_binary() -> anyhow::Result<()> {
    within(async {
        let (app, _guard) = start().await?;
        let (mut ws, resp) = client::ws_connect(app.addr, "/chat?room=1", &[]).await?;
        assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(resp.headers()[header::SET_COOKIE], "app-session=1");
        let text = client::echo_roundtrip(&mut ws, Message::text("hi there")).await?;
        assert_eq!(text, Message::text("hi there"));
        let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        let binary = client::echo_roundtrip(&mut ws, Message::binary(big.clone())).await?;
        assert_eq!(binary, Message::binary(big));
        assert_eq!(app.requests()[0].uri, "/chat?room=1");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn websocket_selects_first_offered_supported_subprotocol() -> anyhow::Result<()> {
    within(async {
        let (app, _guard) = start().await?;
        let offer = [
            ("Sec-WebSocket-Protocol", "foo, echo"),
            ("Sec-WebSocket-Protocol", "chat.v2"),
        ];
        let (_ws, resp) = client::ws_connect(app.addr, "/ws", &offer).await?;
        assert_eq!(resp.headers()[header::SEC_WEBSOCKET_PROTOCOL], "echo");
        let none = upgrade(&app, "/ws", &[("Sec-WebSocket-Protocol", "foo, bar")]).await?;
        assert_eq!(none.status, 101);
        assert_eq!(none.header("sec-websocket-protocol"), None);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn websocket_handshake_returns_correct_accept() -> anyhow::Result<()> {
    within(async {
        let (app, _guard) = start().await?;
        let up = upgrade(&app, "/ws", &[]).await?;
        assert_eq!(up.status, 101);
        assert_eq!(
            up.header("sec-websocket-accept"),
            Some(client::accept_for(&up.key).as_str())
        );
        assert_eq!(up.header("upgrade"), Some("websocket"));
        assert!(up.leftover.is_empty());
        Ok(())
    })
    .await
}

#[tokio::test]
async fn websocket_close_echoes_code_and_reason() -> anyhow::Result<()> {
    within(async {
        let (app, _guard) = start().await?;
        let (mut ws, _) = client::ws_connect(app.addr, "/ws", &[]).await?;
        let frame = client::close_handshake(&mut ws, 4000, "done here").await?;
        let frame = frame.ok_or_else(|| anyhow::anyhow!("close without a frame"))?;
        assert_eq!(
            (u16::from(frame.code), frame.reason.as_str()),
            (4000, "done here")
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn server_close_path_sends_requested_code() -> anyhow::Result<()> {
    within(async {
        let (app, _guard) = start().await?;
        let (mut ws, _) =
            client::ws_connect(app.addr, "/ws/server-close?code=4001&reason=bye", &[]).await?;
        let frame = client::wait_close(&mut ws).await?;
        let frame = frame.ok_or_else(|| anyhow::anyhow!("close without a frame"))?;
        assert_eq!(
            (u16::from(frame.code), frame.reason.as_str()),
            (4001, "bye")
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn upgrade_on_status_path_returns_that_status() -> anyhow::Result<()> {
    within(async {
        let (app, _guard) = start().await?;
        let mut forbidden = upgrade(&app, "/status/403", &[]).await?;
        assert_eq!(forbidden.status, 403);
        assert_eq!(forbidden.read_body().await?, b"app says 403");
        let mut required = upgrade(&app, "/status/426", &[]).await?;
        assert_eq!(required.status, 426);
        assert_eq!(required.header("sec-websocket-version"), Some("13"));
        assert_eq!(required.read_body().await?, b"app says 426");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn broken_handshake_paths_answer_as_documented() -> anyhow::Result<()> {
    within(async {
        let (app, _guard) = start().await?;
        let bad = upgrade(&app, "/bad-accept", &[]).await?;
        assert_eq!(bad.status, 101);
        assert_ne!(
            bad.header("sec-websocket-accept"),
            Some(client::accept_for(&bad.key).as_str())
        );
        let wrong = upgrade(&app, "/wrong-token", &[]).await?;
        assert_eq!((wrong.status, wrong.header("upgrade")), (101, Some("foo")));
        assert_eq!(
            wrong.header("sec-websocket-accept"),
            Some(client::accept_for(&wrong.key).as_str())
        );
        let old = upgrade(&app, "/ws", &[("Sec-WebSocket-Version", "8")]).await?;
        assert_eq!(old.status, 400);
        Ok(())
    })
    .await
}

/// S7 setup: the 101 of `/ws/hop-fields` reaches the wire with a
/// `Connection` that lists `X-Hop` beside `Upgrade`, plus `X-Hop`,
/// `Keep-Alive` and `X-E2e`, and the WebSocket behind it echoes like `/ws`.
#[tokio::test]
async fn ws_hop_fields_101_carries_hop_by_hop_fields_and_echoes() -> anyhow::Result<()> {
    within(async {
        let (app, _guard) = start().await?;
        let up = upgrade(&app, "/ws/hop-fields", &[]).await?;
        assert_eq!(up.status, 101);
        let expected = [
            ("upgrade", "websocket"),
            ("connection", "Upgrade, X-Hop"),
            ("x-hop", "secret"),
            ("keep-alive", "timeout=5"),
            ("x-e2e", "kept"),
        ];
        for (name, value) in expected {
            assert_eq!(up.header_all(name), [value], "{name}: {:?}", up.headers);
        }
        assert_eq!(
            up.header("sec-websocket-accept"),
            Some(client::accept_for(&up.key).as_str())
        );
        assert!(up.leftover.is_empty());
        let mut ws = WebSocketStream::from_raw_socket(up.stream, Role::Client, None).await;
        let echoed = client::echo_roundtrip(&mut ws, Message::text("hop")).await?;
        assert_eq!(echoed, Message::text("hop"));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn raw_echo_half_close_returns_all_bytes_then_eof() -> anyhow::Result<()> {
    within(async {
        let (app, _guard) = start().await?;
        let mut up = upgrade(&app, "/raw/echo", &[]).await?;
        assert_eq!(up.status, 101);
        let sent: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
        let (mut rd, mut wr) = up.stream.split();
        let write = async {
            wr.write_all(&sent).await?;
            wr.shutdown().await
        };
        let mut got = std::mem::take(&mut up.leftover);
        let (written, read) = tokio::join!(write, rd.read_to_end(&mut got));
        written?;
        read?;
        assert!(got == sent, "echoed bytes differ");
        assert_eq!(
            app.next_raw_outcome().await,
            RawOutcome::Eof { bytes: 1_000_000 }
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn raw_reset_gives_client_connection_reset() -> anyhow::Result<()> {
    within(async {
        let (app, _guard) = start().await?;
        let mut up = upgrade(&app, "/raw/reset", &[]).await?;
        up.stream.write_all(b"x").await?;
        let mut buf = [0u8; 16];
        let err = up
            .stream
            .read(&mut buf)
            .await
            .expect_err("read after RST must fail");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn raw_reply_reset_sends_its_reply_before_the_reset() -> anyhow::Result<()> {
    within(async {
        let (app, _guard) = start().await?;
        let mut up = upgrade(&app, "/raw/reply-reset", &[]).await?;
        up.stream.write_all(b"x").await?;
        let mut got = up.leftover;
        let mut buf = [0u8; 4096];
        let err = loop {
            match up.stream.read(&mut buf).await {
                Ok(0) => anyhow::bail!("clean EOF after {} bytes, not a reset", got.len()),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(err) => break err,
            }
        };
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
        assert!(got == super::LAST_WORDS, "got {} bytes", got.len());
        Ok(())
    })
    .await
}

#[tokio::test]
async fn raw_hold_records_reset_when_client_aborts() -> anyhow::Result<()> {
    within(async {
        let (app, _guard) = start().await?;
        let up = upgrade(&app, "/raw/hold", &[]).await?;
        up.stream.set_zero_linger()?;
        drop(up.stream);
        assert_eq!(app.next_raw_outcome().await, RawOutcome::Reset);
        assert_eq!(app.raw_outcomes(), vec![RawOutcome::Reset]);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn echo_streams_post_body_back() -> anyhow::Result<()> {
    within(async {
        let (app, _guard) = start().await?;
        let mut sender = client::http1_connect(app.addr).await?;
        let (tx, body) = client::channel_body(1);
        let req = client::request(Method::POST, app.addr, "/echo", body)?;
        let response = tokio::spawn(sender.send_request(req));
        tx.send(Bytes::from_static(b"first")).await?;
        let mut resp = response.await??;
        assert_eq!(resp.headers()["x-app-method"], "POST");
        // The first chunk comes back while the request body is still open.
        let frame = resp
            .body_mut()
            .frame()
            .await
            .ok_or_else(|| anyhow::anyhow!("no frame"))??;
        assert_eq!(frame.into_data().ok(), Some(Bytes::from_static(b"first")));
        tx.send(Bytes::from_static(b"second")).await?;
        drop(tx);
        assert_eq!(client::body_bytes(resp).await?, "second");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn keep_alive_serves_two_requests_on_one_connection() -> anyhow::Result<()> {
    within(async {
        let (app, _guard) = start().await?;
        let mut sender = client::http1_connect(app.addr).await?;
        for path in ["/bytes/30", "/anything"] {
            sender.ready().await?;
            let req = client::request(Method::GET, app.addr, path, client::full(""))?;
            let resp = sender.send_request(req).await?;
            assert_eq!(resp.status(), StatusCode::OK);
            let body = client::body_bytes(resp).await?;
            let want: &[u8] = if path == "/anything" {
                b"hello from app"
            } else {
                b"abcdefghijklmnopqrstuvwxyzabcd"
            };
            assert_eq!(body, want);
        }
        assert_eq!(app.connections(), 1);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn requests_records_heads_in_order() -> anyhow::Result<()> {
    within(async {
        let (app, _guard) = start().await?;
        let mut sender = client::http1_connect(app.addr).await?;
        let mut req = client::request(Method::PUT, app.addr, "/echo?x=1", client::full("data"))?;
        req.headers_mut()
            .insert("x-test", HeaderValue::from_static("yes"));
        client::body_bytes(sender.send_request(req).await?).await?;
        upgrade(&app, "/ws", &[("X-Other", "2")]).await?;
        let recorded = app.requests();
        assert_eq!(recorded.len(), 2);
        assert_eq!(
            (&recorded[0].method, recorded[0].version),
            (&Method::PUT, Version::HTTP_11)
        );
        assert_eq!(recorded[0].uri, "/echo?x=1");
        assert_eq!(recorded[0].headers["x-test"], "yes");
        assert_eq!(recorded[1].headers["x-other"], "2");
        assert_eq!(recorded[1].headers[header::HOST], app.addr.to_string());
        Ok(())
    })
    .await
}

#[tokio::test]
async fn root_serves_demo_page_and_status_route_works() -> anyhow::Result<()> {
    within(async {
        let (app, _guard) = start().await?;
        let mut sender = client::http1_connect(app.addr).await?;
        let resp = sender
            .send_request(client::request(
                Method::GET,
                app.addr,
                "/",
                client::full(""),
            )?)
            .await?;
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        let page = client::body_bytes(resp).await?;
        assert!(String::from_utf8_lossy(&page).contains("new WebSocket("));
        sender.ready().await?;
        let resp = sender
            .send_request(client::request(
                Method::GET,
                app.addr,
                "/status/404",
                client::full(""),
            )?)
            .await?;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(client::body_bytes(resp).await?, "app says 404");
        Ok(())
    })
    .await
}

/// N29/N30 setup: hyper's server lets every hop-by-hop field of
/// `GET /hop-fields` onto the wire as the route wrote it (read back from a
/// bare socket, so no client library drops one), and since no `close` is
/// among them the same connection answers the next request.
#[tokio::test]
async fn hop_fields_route_sends_hop_by_hop_fields_and_keeps_alive() -> anyhow::Result<()> {
    within(async {
        let (app, _guard) = start().await?;
        let mut stream = TcpStream::connect(app.addr).await?;
        let request = format!("GET /hop-fields HTTP/1.1\r\nHost: {}\r\n\r\n", app.addr);
        stream.write_all(request.as_bytes()).await?;
        let (status, headers, leftover) = client::read_response_head(&mut stream).await?;
        let mut raw = RawUpgrade {
            stream,
            status,
            headers,
            leftover,
            key: String::new(),
        };
        assert_eq!(raw.status, 200);
        let expected = [
            ("connection", "X-Hop, Keep-Alive"),
            ("x-hop", "secret"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("x-e2e", "kept"),
        ];
        for (name, value) in expected {
            assert_eq!(raw.header_all(name), [value], "{name}: {:?}", raw.headers);
        }
        assert_eq!(raw.read_body().await?, b"hop");

        raw.stream.write_all(request.as_bytes()).await?;
        let (status, _, _) = client::read_response_head(&mut raw.stream).await?;
        assert_eq!(status, 200);
        assert_eq!(app.connections(), 1);
        Ok(())
    })
    .await
}
