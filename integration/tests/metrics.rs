//! The admin listener of both proxies: `/healthz`, `/readyz` (which turns
//! to 503 when the app or the sidecar is gone) and `/metrics`, whose
//! values move as traffic passes.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use h2hop_integration::client::{
    body_bytes, full, http1_connect, raw_request, request, ws_connect,
};
use h2hop_integration::harness::{Pair, within};
use h2hop_integration::wait::eventually_async;
use http::Method;
use tokio_tungstenite::tungstenite::Message;

/// Status and body of `GET path` on an admin listener.
async fn admin(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut client = http1_connect(addr).await.unwrap();
    let response = client
        .send_request(request(Method::GET, addr, path, full("")).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = body_bytes(response).await.unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// The value of one series in a Prometheus text exposition (0 if absent).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .map_or(0.0, |value| value.parse().unwrap())
}

#[tokio::test]
async fn metrics_move_with_traffic_and_readiness_follows_the_app() {
    within(async {
        let pair = Pair::builder().h2c().admin().start().await.unwrap();
        let (front, sidecar) = (pair.front_admin.unwrap(), pair.sidecar_admin.unwrap());
        for addr in [front, sidecar] {
            assert_eq!(admin(addr, "/healthz").await.0, 200);
            assert_eq!(admin(addr, "/readyz").await.0, 200);
        }

        // Traffic: one WebSocket (open, then closed), one 200, one 404 from
        // the app, one upgrade the app refuses, one request the front refuses.
        let (mut ws, _) = ws_connect(pair.front, "/ws", &[]).await.unwrap();
        ws.send(Message::text("0123456789")).await.unwrap();
        ws.next().await.unwrap().unwrap();
        let (_, during) = admin(front, "/metrics").await;
        assert_eq!(value(&during, "h2hop_tunnels_active{protocol=\"websocket\"}"), 1.0);
        assert_eq!(value(&during, "h2hop_http2_connections"), 1.0);
        assert_eq!(value(&during, "h2hop_http2_streams"), 1.0);
        ws.close(None).await.unwrap();
        while ws.next().await.is_some() {}
        drop(ws);
        assert_eq!(raw_request(pair.front, "GET / HTTP/1.1\r\nHost: h\r\n\r\n").await.unwrap().status, 200);
        assert_eq!(raw_request(pair.front, "GET /status/404 HTTP/1.1\r\nHost: h\r\n\r\n").await.unwrap().status, 404);
        assert_eq!(raw_request(pair.front, "GET / HTTP/1.1\r\n\r\n").await.unwrap().status, 400);
        let refused = "GET /status/403 HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        assert_eq!(raw_request(pair.front, refused).await.unwrap().status, 403);

        // The tunnel's end is counted once both relays are done.
        let counted = eventually_async(Duration::from_secs(2), || async {
            let text = admin(front, "/metrics").await.1;
            let clean = value(&text, "h2hop_tunnels_total{protocol=\"websocket\",result=\"clean\"}");
            (clean == 1.0).then_some(text)
        });
        let Some(text) = counted.await else {
            panic!("the tunnel's end was never counted:\n{}", admin(front, "/metrics").await.1);
        };
        for (series, expected) in [
            ("h2hop_tunnels_active{protocol=\"websocket\"}", 0.0),
            ("h2hop_tunnels_total{protocol=\"websocket\",result=\"clean\"}", 1.0),
            ("h2hop_tunnels_total{protocol=\"websocket\",result=\"refused\"}", 1.0),
            ("h2hop_requests_total{status=\"2xx\"}", 1.0),
            ("h2hop_requests_total{status=\"4xx\"}", 1.0),
            ("h2hop_errors_total{culprit=\"client\"}", 1.0),
            ("h2hop_tunnel_handshake_seconds_count", 1.0),
            ("h2hop_http2_streams", 0.0),
        ] {
            assert_eq!(value(&text, series), expected, "{series}\n{text}");
        }
        // A 10-byte message went up (masked frame: 16 bytes) and came back.
        assert!(value(&text, "h2hop_tunnel_bytes_total{direction=\"up\"}") >= 16.0, "{text}");
        assert!(value(&text, "h2hop_tunnel_bytes_total{direction=\"down\"}") >= 12.0, "{text}");

        let (_, text) = admin(sidecar, "/metrics").await;
        assert_eq!(value(&text, "h2hop_requests_total{status=\"2xx\"}"), 1.0, "{text}");
        assert_eq!(value(&text, "h2hop_http2_connections"), 1.0, "{text}");
        assert!(value(&text, "h2hop_tunnels_total{protocol=\"websocket\",result=\"clean\"}") >= 1.0, "{text}");
    })
    .await;
}

/// `/readyz` is 503 at the sidecar when the app is down, and at the front
/// when no sidecar can be reached.
#[tokio::test]
async fn readiness_fails_without_the_app_or_a_sidecar() {
    within(async {
        let pair = Pair::builder()
            .h2c()
            .admin()
            .app_down()
            .start()
            .await
            .unwrap();
        let (status, body) = admin(pair.sidecar_admin.unwrap(), "/readyz").await;
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("app"), "{body}");
        // The front reaches the sidecar: ready, though the app is not.
        assert_eq!(admin(pair.front_admin.unwrap(), "/readyz").await.0, 200);

        let pair = Pair::builder()
            .h2c()
            .admin()
            .sidecar(h2hop_integration::harness::SidecarKind::Down)
            .start()
            .await
            .unwrap();
        let (status, body) = admin(pair.front_admin.unwrap(), "/readyz").await;
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("cannot connect to sidecar"), "{body}");
    })
    .await;
}
