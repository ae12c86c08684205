//! Graceful shutdown of both proxies, as SIGTERM starts it: the listeners
//! close, a plain request in flight still gets its whole answer (through
//! the sidecar's GOAWAY), tunnels keep flowing for the drain period and are
//! then closed, and the binaries exit 0.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use h2hop_integration::binaries;
use h2hop_integration::client::{body_bytes, full, http1_connect, request, ws_connect};
use h2hop_integration::harness::{Pair, within};
use h2hop_integration::process::{Process, Signal};
use h2hop_integration::scrape;
use h2hop_integration::wait::{eventually, eventually_async};
use http::{Method, StatusCode};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// A plain request the app answers only after 600 ms is in flight when
/// shutdown begins: it still gets its whole answer, new connections are
/// refused, and both proxies finish draining right after it.
#[tokio::test]
async fn plain_request_in_flight_is_answered_during_shutdown() {
    within(async {
        let mut pair = Pair::builder().h2c().start().await.unwrap();
        let mut client = http1_connect(pair.front).await.unwrap();
        let slow = request(Method::GET, pair.front, "/delay/600", full("")).unwrap();
        let in_flight = tokio::spawn(async move {
            let response = client.send_request(slow).await.unwrap();
            let status = response.status();
            (status, body_bytes(response).await.unwrap())
        });
        // Shutdown begins once the request has reached the app.
        let arrived = eventually(Duration::from_secs(5), || {
            pair.app
                .requests()
                .iter()
                .any(|seen| seen.uri == "/delay/600")
        });
        assert!(arrived.await, "the request never reached the app");
        let started = tokio::time::Instant::now();
        let stopped = pair.shut_down_proxies().await;
        // Each proxy's run returned only once the request was answered: the
        // app answers 600 ms after it saw the request, just before this.
        for (proxy, at) in [("front", stopped.front), ("sidecar", stopped.sidecar)] {
            let after = at - started;
            assert!(
                after >= Duration::from_millis(350),
                "the {proxy} stopped after {after:?}, before the answer"
            );
        }
        let (status, body) = in_flight.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], b"hello from app");
        assert!(
            TcpStream::connect(pair.front).await.is_err(),
            "the front still accepts after shutdown"
        );
    })
    .await;
}

/// A WebSocket open when shutdown begins keeps echoing during the drain
/// period, and is closed when the period ends.
#[tokio::test]
async fn tunnels_flow_during_the_drain_then_close() {
    within(async {
        let mut pair = Pair::builder()
            .h2c()
            .drain_timeout(Duration::from_millis(1500))
            .start()
            .await
            .unwrap();
        let (mut ws, _) = ws_connect(pair.front, "/ws", &[]).await.unwrap();
        let front = pair.front;
        let started = tokio::time::Instant::now();
        let drained = tokio::spawn(async move { pair.shut_down_proxies().await });
        // The drain has begun once the front's listener is closed.
        let closed = eventually_async(Duration::from_secs(5), || async {
            TcpStream::connect(front).await.is_err().then_some(())
        });
        assert!(closed.await.is_some(), "the front still accepts");
        ws.send(Message::text("still here")).await.unwrap();
        let echo = ws.next().await.expect("an echo").unwrap();
        assert_eq!(echo, Message::text("still here"));
        // The drain period ends: the tunnel is closed under the client.
        match ws.next().await {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => {}
            Some(Ok(other)) => panic!("unexpected {other:?}"),
        }
        let closed_after = started.elapsed();
        assert!(
            closed_after >= Duration::from_millis(1400),
            "closed after {closed_after:?}, before the drain period ended"
        );
        // Both proxies held the tunnel for the whole drain period.
        let stopped = drained.await.unwrap();
        for (proxy, at) in [("front", stopped.front), ("sidecar", stopped.sidecar)] {
            let after = at - started;
            assert!(
                after >= Duration::from_millis(1400),
                "the {proxy} stopped after {after:?}, before its drain period ended"
            );
        }
    })
    .await;
}

/// While the drain holds a tunnel open, both admin listeners still
/// answer: `h2hop_draining` turns from 0 to 1 with the tunnel still
/// counted, `/readyz` turns to 503 and `/healthz` stays 200; once the
/// drain has ended the admin listeners close too.
#[tokio::test]
async fn admin_serves_during_the_drain_and_shows_it() {
    within(async {
        let mut pair = Pair::builder()
            .h2c()
            .admin()
            .drain_timeout(Duration::from_secs(3))
            .start()
            .await
            .unwrap();
        let admins = [pair.front_admin.unwrap(), pair.sidecar_admin.unwrap()];
        let (mut ws, _) = ws_connect(pair.front, "/ws", &[]).await.unwrap();
        for addr in admins {
            let (status, text) = scrape::get(addr, "/metrics").await.unwrap();
            assert_eq!(status, 200);
            assert_eq!(scrape::value(&text, "h2hop_draining"), Some(0.0), "{text}");
        }
        let started = tokio::time::Instant::now();
        let drained = tokio::spawn(async move { pair.shut_down_proxies().await });
        for addr in admins {
            let text = scrape::wait_for_value(addr, "h2hop_draining", 1.0)
                .await
                .unwrap();
            let active = "h2hop_tunnels_active{protocol=\"websocket\"}";
            assert_eq!(scrape::value(&text, active), Some(1.0), "{text}");
            let (status, body) = scrape::get(addr, "/readyz").await.unwrap();
            assert_eq!(status, 503, "{body}");
            assert!(body.contains("draining"), "{body}");
            assert_eq!(scrape::get(addr, "/healthz").await.unwrap().0, 200);
        }
        // All of that happened within the drain period, tunnel still up.
        assert!(started.elapsed() < Duration::from_secs(3));
        ws.send(Message::text("still here")).await.unwrap();
        let echo = ws.next().await.expect("an echo").unwrap();
        assert_eq!(echo, Message::text("still here"));
        drained.await.unwrap();
        for addr in admins {
            let closed = eventually_async(Duration::from_secs(5), || async {
                TcpStream::connect(addr).await.is_err().then_some(())
            });
            assert!(
                closed.await.is_some(),
                "{addr} still accepts after the drain"
            );
        }
    })
    .await;
}

/// The binaries themselves: SIGTERM with nothing open exits 0 at once.
#[tokio::test]
async fn binaries_exit_zero_on_sigterm() {
    let dir = binaries::dir();
    for (binary, args) in [
        (
            "h2hop-sidecar",
            ["--h2c", "--listen", "127.0.0.1:0", "--app", "127.0.0.1:9"],
        ),
        (
            "h2hop-front",
            [
                "--h2c",
                "--listen",
                "127.0.0.1:0",
                "--sidecar",
                "127.0.0.1:9",
            ],
        ),
    ] {
        // Ready: the listener is bound and signals are watched.
        let mut child = Process::start(&dir.join(binary), &args).await.unwrap();
        child.signal(Signal::Term).unwrap();
        let status = child.wait(Duration::from_secs(10)).await.unwrap();
        assert_eq!(status.code(), Some(0), "{binary} exited with {status}");
    }
}
