//! Bounds on each client connection, so that no client can hold the
//! front's places for long: the fin timeout on tunnels whose client never
//! ends its half (Firefox's HTTP/2 WebSockets), the first-request and idle
//! timeouts on both protocols, and the connection limit per client address.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::future::poll_fn;
use std::time::Duration;

use bytes::Bytes;
use h2::Reason;
use h2hop_integration::client::{raw_request, read_response_head};
use h2hop_integration::h2_client::{extended_connect, h2_connect, tls_connect};
use h2hop_integration::harness::{Pair, unaccepting_listener, within};
use h2hop_integration::wait::eventually_async;
use http::{Request, StatusCode};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A masked client Close frame with status 1000 (RFC 6455 §5.5.1, §5.3).
fn masked_close() -> Bytes {
    let mask = [0x11, 0x22, 0x33, 0x44];
    let code = 1000u16.to_be_bytes();
    let mut frame = vec![0x88, 0x80 | 2];
    frame.extend_from_slice(&mask);
    frame.extend(code.iter().zip(mask).map(|(byte, key)| byte ^ key));
    Bytes::from(frame)
}

/// Like Firefox: each WebSocket is closed at the WebSocket level, the app
/// answers and ends its side (END_STREAM reaches the client), and the
/// client never ends its half. The front resets each such stream after the
/// fin timeout (RST_STREAM with NO_ERROR or CANCEL), so eight of them in
/// turn fit under a limit of three.
#[tokio::test]
async fn half_open_client_streams_are_reset_after_the_fin_timeout() {
    within(async {
        let pair = Pair::builder()
            .h2c()
            .client_tls()
            .front_config(|config| {
                config.client_fin_timeout = Duration::from_millis(300);
                config.client_max_streams = 3;
            })
            .start()
            .await
            .unwrap();
        let send = h2_connect(&pair).await.unwrap();
        for round in 0..8 {
            let mut ready = send.clone().ready().await.unwrap();
            let (response, mut stream) = ready
                .send_request(extended_connect("websocket", "/ws").unwrap(), false)
                .unwrap();
            let response = response
                .await
                .unwrap_or_else(|err| panic!("WebSocket {round} refused: {err}"));
            assert_eq!(response.status(), StatusCode::OK);
            stream.send_data(masked_close(), false).unwrap();
            let mut body = response.into_body();
            while let Some(chunk) = body.data().await {
                let chunk = chunk.unwrap();
                body.flow_control().release_capacity(chunk.len()).unwrap();
            }
            // The app's side has ended; ours stays open, as Firefox's does.
            let reset =
                tokio::time::timeout(Duration::from_secs(5), poll_fn(|cx| stream.poll_reset(cx)))
                    .await
                    .unwrap_or_else(|_| panic!("WebSocket {round}: no reset after the fin timeout"))
                    .unwrap();
            assert!(
                matches!(reset, Reason::CANCEL | Reason::NO_ERROR),
                "WebSocket {round}: reset with {reset:?}"
            );
        }
    })
    .await;
}

/// A TLS client that chose `h2` and never sends its preface is closed
/// after the header timeout.
#[tokio::test]
async fn a_silent_http2_connection_is_closed_after_the_header_timeout() {
    within(async {
        let pair = Pair::builder()
            .h2c()
            .client_tls()
            .front_config(|config| config.header_timeout = Duration::from_millis(500))
            .start()
            .await
            .unwrap();
        let mut tls = tls_connect(&pair, &[b"h2"]).await.unwrap();
        let mut sink = Vec::new();
        // The front's SETTINGS may come first; then the end.
        let read = tokio::time::timeout(Duration::from_secs(4), tls.read_to_end(&mut sink)).await;
        assert!(read.is_ok(), "a silent HTTP/2 connection was kept open");
    })
    .await;
}

/// An HTTP/2 connection whose last stream ended gets GOAWAY and is closed
/// after the idle timeout; while a stream is open, it is not idle.
#[tokio::test]
async fn an_idle_http2_connection_is_closed_after_the_idle_timeout() {
    within(async {
        let pair = Pair::builder()
            .h2c()
            .client_tls()
            .front_config(|config| config.client_idle_timeout = Duration::from_millis(700))
            .start()
            .await
            .unwrap();
        let tls = tls_connect(&pair, &[b"h2"]).await.unwrap();
        let (send, connection) = h2::client::handshake(tls).await.unwrap();
        let connection = tokio::spawn(connection);
        // A tunnel open longer than the idle timeout keeps it open.
        let mut ready = send.clone().ready().await.unwrap();
        let (response, mut stream) = ready
            .send_request(extended_connect("websocket", "/ws").unwrap(), false)
            .unwrap();
        assert_eq!(response.await.unwrap().status(), StatusCode::OK);
        // Outliving the 700 ms idle timeout with the tunnel open is what is
        // under test, not a wait for an event.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!connection.is_finished(), "closed with a tunnel open");
        stream.send_reset(Reason::CANCEL);
        let ended = tokio::time::timeout(Duration::from_secs(4), connection).await;
        let result = ended
            .expect("an idle HTTP/2 connection was kept open")
            .unwrap();
        assert!(result.is_ok(), "closed by GOAWAY(NO_ERROR): {result:?}");
    })
    .await;
}

/// An HTTP/1.1 keep-alive connection with nothing in flight is closed
/// after the idle timeout, even when the header timeout is longer.
#[tokio::test]
async fn an_idle_http1_connection_is_closed_after_the_idle_timeout() {
    within(async {
        let pair = Pair::builder()
            .h2c()
            .front_config(|config| {
                config.client_idle_timeout = Duration::from_millis(500);
                config.header_timeout = Duration::from_secs(30);
            })
            .start()
            .await
            .unwrap();
        let mut stream = TcpStream::connect(pair.front).await.unwrap();
        stream
            .write_all(b"GET /bytes/3 HTTP/1.1\r\nHost: app\r\n\r\n")
            .await
            .unwrap();
        let (status, _, _) = read_response_head(&mut stream).await.unwrap();
        assert_eq!(status, 200);
        let mut rest = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(4), stream.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "an idle keep-alive connection was kept open");
    })
    .await;
}

/// One address holds at most its share of connections: past it, a new
/// connection from it is refused with 503; a place given back is usable.
#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    within(async {
        let pair = Pair::builder()
            .h2c()
            .front_config(|config| config.max_connections_per_client = 2)
            .admin()
            .start()
            .await
            .unwrap();
        let first = TcpStream::connect(pair.front).await.unwrap();
        let _second = TcpStream::connect(pair.front).await.unwrap();
        // Accepted in order: wait until the front has both, by a refusal.
        let refused = raw_request(pair.front, "GET / HTTP/1.1\r\nHost: app\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(refused.status, 503);
        let metrics = "GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n";
        let mut scrape = raw_request(pair.front_admin.unwrap(), metrics)
            .await
            .unwrap();
        let text = String::from_utf8(scrape.read_body().await.unwrap()).unwrap();
        assert!(
            text.contains("h2hop_limit_reached_total{limit=\"client_address\"} 1"),
            "the refusal is counted: {text}"
        );
        drop(first);
        // The place comes back once the front has seen the connection end.
        let answered = eventually_async(Duration::from_secs(2), || async {
            let get = "GET /bytes/1 HTTP/1.1\r\nHost: app\r\n\r\n";
            let response = raw_request(pair.front, get).await.unwrap();
            (response.status == 200).then_some(())
        });
        assert!(
            answered.await.is_some(),
            "the place given back was not usable"
        );
    })
    .await;
}

/// Resetting streams once the front has accepted them gets past h2's
/// rapid-reset limit (which counts streams not yet accepted): 50 requests,
/// a PING round trip, then 50 resets, again and again. Once 200 streams,
/// and half of all, were reset before their answer, the front closes the
/// connection; another client is served all along.
#[tokio::test]
async fn a_client_that_resets_its_accepted_streams_is_cut_off() {
    within(async {
        // The app's address never accepts: every request waits on its dial.
        let (hanging_app, _held) = unaccepting_listener().await.unwrap();
        let pair = Pair::builder()
            .h2c()
            .client_tls()
            .app_at(hanging_app)
            .start()
            .await
            .unwrap();
        let tls = tls_connect(&pair, &[b"h2"]).await.unwrap();
        let (send, mut connection) = h2::client::handshake(tls).await.unwrap();
        let mut ping_pong = connection.ping_pong().unwrap();
        let connection = tokio::spawn(connection);
        let mut rounds = 0;
        while rounds < 20 {
            let mut streams = Vec::new();
            for _ in 0..50 {
                let Ok(mut ready) = send.clone().ready().await else {
                    break;
                };
                let request = Request::get("https://localhost/slow").body(()).unwrap();
                let Ok((response, stream)) = ready.send_request(request, true) else {
                    break;
                };
                streams.push((response, stream));
            }
            if streams.len() < 50 || ping_pong.ping(h2::Ping::opaque()).await.is_err() {
                break;
            }
            for (_, stream) in &mut streams {
                stream.send_reset(Reason::CANCEL);
            }
            rounds += 1;
        }
        let closed = tokio::time::timeout(Duration::from_secs(5), connection).await;
        assert!(
            closed.is_ok(),
            "still open after {rounds} rounds of 50 resets"
        );
        assert!(rounds <= 6, "cut off only after {rounds} rounds");
        // A well-behaved client is served meanwhile (the app stays away).
        let other = h2_connect(&pair).await.unwrap();
        let mut ready = other.ready().await.unwrap();
        let (response, _) = ready
            .send_request(Request::get("https://localhost/").body(()).unwrap(), true)
            .unwrap();
        let status = response.await.unwrap().status();
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    })
    .await;
}
