//! The access log: one line per plain request and per tunnel, on each
//! binary, when it ends, with route, authority, path, protocol, status,
//! duration, bytes each way and how it ended; as text and as JSON.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use futures_util::SinkExt as _;
use h2hop_integration::client::{body_bytes, full, http1_connect, request, ws_connect};
use h2hop_integration::harness::{Pair, within};
use h2hop_integration::logs::Captured;
use http::Method;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// The access lines captured so far that contain every one of `needles`.
fn access_lines(log: &Captured, needles: &[&str]) -> Vec<String> {
    let mut all = vec!["h2hop::access"];
    all.extend_from_slice(needles);
    log.lines_with(&all)
}

/// A plain request logs once on the front (with its route, the cluster)
/// and once on the sidecar, each with the status and the exact bytes.
#[tokio::test]
async fn plain_requests_log_one_line_on_each_side() {
    let (log, _guard) = Captured::install();
    within(async {
        let pair = Pair::builder().h2c().start().await.unwrap();
        let mut send = http1_connect(pair.front).await.unwrap();
        let post = request(Method::POST, pair.front, "/echo?q=1", full("0123456789")).unwrap();
        let response = send.send_request(post).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(body_bytes(response).await.unwrap(), "0123456789");

        let needles = [
            "kind=\"request\"",
            "path=\"/echo\"",
            "status=200",
            "bytes_up=10",
            "bytes_down=10",
            "close=\"done\"",
        ];
        // Without --config the one cluster is named after the sidecar.
        let route = format!("route=\"{}\"", pair.sidecar);
        let front = log
            .wait_for(&[&needles[..], &[route.as_str()]].concat())
            .await;
        assert!(front.contains("protocol=\"-\""), "{front}");
        // In milliseconds, to the microsecond: at most three decimals.
        let duration = front
            .split_whitespace()
            .find_map(|field| field.strip_prefix("duration_ms="))
            .unwrap_or_else(|| panic!("no duration_ms in {front}"));
        let decimals = duration.split_once('.').map_or(0, |(_, d)| d.len());
        assert!(duration.parse::<f64>().is_ok() && decimals <= 3, "{front}");
        assert!(
            front.contains(&format!("authority=\"{}\"", pair.front)),
            "{front}"
        );
        log.wait_for(&[&needles[..], &["route=\"-\""]].concat())
            .await;
        assert_eq!(
            access_lines(&log, &["kind=\"request\""]).len(),
            2,
            "{}",
            log.text()
        );
    })
    .await;
}

/// Each line names the peer: the client's address at the front, the
/// front's (its connection to the sidecar) at the sidecar.
#[tokio::test]
async fn lines_name_the_peer() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (log, _guard) = Captured::install();
    within(async {
        let pair = Pair::builder().h2c().start().await.unwrap();
        let mut client = tokio::net::TcpStream::connect(pair.front).await.unwrap();
        let client_addr = client.local_addr().unwrap();
        client
            .write_all(b"GET /echo HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");

        let peer = format!("peer={client_addr} ");
        log.wait_for(&["h2hop::access", "kind=\"request\"", &peer])
            .await;
        let sidecar = log
            .wait_for(&["h2hop::access", "kind=\"request\"", "route=\"-\""])
            .await;
        assert!(sidecar.contains(" peer=127.0.0.1:"), "{sidecar}");
        assert!(!sidecar.contains(&peer), "{sidecar}");
    })
    .await;
}

/// A WebSocket logs when it closes: 101 on the front, 200 on the sidecar,
/// the protocol, and the bytes that crossed each way.
#[tokio::test]
async fn a_tunnel_logs_when_it_ends() {
    let (log, _guard) = Captured::install();
    within(async {
        let pair = Pair::builder().h2c().start().await.unwrap();
        let (mut ws, _) = ws_connect(pair.front, "/ws", &[]).await.unwrap();
        ws.send(Message::text("hello")).await.unwrap();
        let echoed = h2hop_integration::client::next_message(&mut ws)
            .await
            .unwrap();
        assert_eq!(echoed, Message::text("hello"));
        assert!(
            access_lines(&log, &["kind=\"tunnel\""]).is_empty(),
            "a tunnel logs only when it ends"
        );
        h2hop_integration::client::close_handshake(&mut ws, 1000, "bye")
            .await
            .unwrap();
        drop(ws);

        let front = log
            .wait_for(&["h2hop::access", "kind=\"tunnel\"", "status=101"])
            .await;
        for field in ["protocol=\"websocket\"", "path=\"/ws\"", "close=\"done\""] {
            assert!(front.contains(field), "{field} missing: {front}");
        }
        let sidecar = log
            .wait_for(&["h2hop::access", "kind=\"tunnel\"", "status=200"])
            .await;
        assert!(sidecar.contains("protocol=\"websocket\""), "{sidecar}");
        // A masked 5-byte text frame is 11 bytes, its echo 7.
        for line in [&front, &sidecar] {
            let up = number(line, "bytes_up=");
            let down = number(line, "bytes_down=");
            assert!(up >= 11 && down >= 7, "{line}");
        }
        assert_eq!(number(&front, "bytes_up="), number(&sidecar, "bytes_up="));
        assert_eq!(
            number(&front, "bytes_down="),
            number(&sidecar, "bytes_down=")
        );
    })
    .await;
}

/// An upgrade the app refuses logs as a tunnel with the app's status.
#[tokio::test]
async fn a_refused_upgrade_logs_the_status() {
    let (log, _guard) = Captured::install();
    within(async {
        let pair = Pair::builder().h2c().start().await.unwrap();
        assert!(ws_connect(pair.front, "/status/403", &[]).await.is_err());
        let route = format!("route=\"{}\"", pair.sidecar);
        let needles = ["h2hop::access", "kind=\"tunnel\"", "status=403", &route];
        let front = log.wait_for(&needles).await;
        assert!(front.contains("path=\"/status/403\""), "{front}");
    })
    .await;
}

/// `--log-format json`: the access line is an object whose fields can be
/// read by name.
#[tokio::test]
async fn json_access_lines_carry_their_fields() {
    let (log, _guard) = Captured::install_json();
    within(async {
        let pair = Pair::builder().h2c().start().await.unwrap();
        let mut send = http1_connect(pair.front).await.unwrap();
        let get = request(Method::GET, pair.front, "/bytes/1000", full("")).unwrap();
        let response = send.send_request(get).await.unwrap();
        assert_eq!(body_bytes(response).await.unwrap().len(), 1000);

        let route = format!("\"route\":\"{}\"", pair.sidecar);
        let line = log.wait_for(&["h2hop::access", &route]).await;
        let object: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(object["target"], "h2hop::access");
        let fields = &object["fields"];
        assert_eq!(fields["kind"], "request");
        assert_eq!(fields["path"], "/bytes/1000");
        assert_eq!(fields["status"], 200);
        assert_eq!(fields["bytes_up"], 0);
        assert_eq!(fields["bytes_down"], 1000);
        assert_eq!(fields["close"], "done");
        assert!(fields["duration_ms"].as_f64().unwrap() >= 0.0, "{line}");
    })
    .await;
}

/// The number after `key` in a text log line.
fn number(line: &str, key: &str) -> u64 {
    let start = line
        .find(key)
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        + key.len();
    let digits: String = line[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap()
}
