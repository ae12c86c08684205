//! The timeouts that end requests and tunnels: a slow app gets 504 within
//! the response or upgrade timeout, a tunnel is never ended by a request
//! timeout however long it lives, and a silent tunnel is closed after the
//! tunnel idle timeout.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use h2hop_integration::client::{raw_request, raw_upgrade, ws_connect};
use h2hop_integration::harness::{Pair, Timeouts, within};
use tokio_tungstenite::tungstenite::Message;

/// Short timeouts, so that the tests take about a second.
const SHORT: Timeouts = Timeouts {
    response: Duration::from_millis(300),
    upgrade: Duration::from_millis(300),
    tunnel_idle: Duration::from_millis(700),
};

async fn pair() -> Pair {
    Pair::builder().h2c().timeouts(SHORT).start().await.unwrap()
}

/// An app that never answers: 504 for a plain request and for an upgrade,
/// each within its own timeout.
#[tokio::test]
async fn a_silent_app_gets_504_for_requests_and_upgrades() {
    within(async {
        let pair = pair().await;
        let started = Instant::now();
        let plain = raw_request(pair.front, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(plain.status, 504);
        let upgrade = raw_upgrade(pair.front, "/slow", "Upgrade", &[])
            .await
            .unwrap();
        assert_eq!(upgrade.status, 504);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "two 300 ms timeouts took {:?}",
            started.elapsed()
        );
    })
    .await;
}

/// A tunnel that keeps talking lives far past the request timeouts and the
/// idle timeout; once it falls silent it is closed after the idle timeout.
#[tokio::test]
async fn tunnels_outlive_request_timeouts_and_close_when_idle() {
    within(async {
        let pair = pair().await;
        let (mut ws, _) = ws_connect(pair.front, "/ws", &[]).await.unwrap();
        // Four times the response timeout, twice the idle timeout.
        let mut last_echo = Instant::now();
        for round in 0..7 {
            let text = format!("ping {round}");
            ws.send(Message::text(text.clone())).await.unwrap();
            let echo = ws.next().await.expect("an echo").unwrap();
            assert_eq!(echo, Message::text(text));
            last_echo = Instant::now();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        match ws.next().await {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => {}
            Some(Ok(other)) => panic!("unexpected {other:?}"),
        }
        let silent_for = last_echo.elapsed();
        assert!(
            silent_for >= Duration::from_millis(600),
            "closed after only {silent_for:?} of silence"
        );
    })
    .await;
}
