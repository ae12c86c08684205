//! Early data end to end: a client that writes its upgrade request and
//! tunnel bytes in one write, before any 101 (RFC 6455 §4.1 (N46) says it
//! must not; S2 says a proxy must not rely on that).
//!
//! Accepted, those bytes cross once, after the app's 101. Refused, they
//! never become tunnel data: the front reads them as HTTP.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;

use h2hop_integration::app::RawOutcome;
use h2hop_integration::client::{self, RawUpgrade};
use h2hop_integration::harness::{Pair, within};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The RFC 6455 §1.3 key, and the accept it must produce.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A masked client Text frame "hi" (RFC 6455 §5.2, §5.3).
const WS_FRAME: [u8; 8] = [0x81, 0x82, 0x37, 0xfa, 0x21, 0x3d, b'h' ^ 0x37, b'i' ^ 0xfa];

/// What the client sends too early: a frame, then a counting pattern long
/// enough that a dropped, shifted or repeated piece shows.
fn early_bytes() -> Vec<u8> {
    let mut early = WS_FRAME.to_vec();
    early.extend((0..=255u8).cycle().take(3000));
    early
}

/// Writes a WebSocket upgrade for `path` and `early` in a single write, then
/// reads the response head.
async fn upgrade_with_early_bytes(addr: SocketAddr, path: &str, early: &[u8]) -> RawUpgrade {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut bytes = format!(
        "GET {path} HTTP/1.1\r\n\
         Host: {addr}\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\n\
         Sec-WebSocket-Version: 13\r\n\
         \r\n"
    )
    .into_bytes();
    bytes.extend_from_slice(early);
    stream.write_all(&bytes).await.unwrap();
    let (status, headers, leftover) = client::read_response_head(&mut stream).await.unwrap();
    RawUpgrade {
        stream,
        status,
        headers,
        leftover,
        key: KEY.to_owned(),
    }
}

/// RFC 6455 §4.1 (N46), RFC 9110 §7.8 (N36), S2: bytes written together
/// with the upgrade request reach the app once, after its 101: the client
/// gets the 101 and then the echo of exactly those bytes, nothing lost or
/// repeated, and the app counted exactly that many tunnel bytes.
#[tokio::test]
async fn early_bytes_behind_an_accepted_upgrade_are_tunnelled_once_after_the_101() {
    within(async {
        let pair = Pair::start().await.unwrap();
        let early = early_bytes();
        let mut raw = upgrade_with_early_bytes(pair.front, "/raw/echo", &early).await;
        assert_eq!(raw.status, 101);
        assert_eq!(raw.header("sec-websocket-accept"), Some(ACCEPT));

        // Half-close right away: the FIN follows the early bytes, so the app
        // reads all of them, then EOF ends its echo. A lost or repeated byte
        // shows as a wrong length rather than a hang.
        let mut got = std::mem::take(&mut raw.leftover);
        raw.stream.shutdown().await.unwrap();
        raw.stream.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), early.len(), "echo length differs");
        assert!(got == early, "echo differs from the early bytes");

        let bytes = u64::try_from(early.len()).unwrap();
        assert_eq!(pair.app.next_raw_outcome().await, RawOutcome::Eof { bytes });
        assert_eq!(pair.app.requests().len(), 1);
    })
    .await;
}

/// RFC 6455 §4.1 (N45, N46), S1, S2: when the app refuses the upgrade with
/// 403, bytes written together with the request are never tunnelled. The
/// client gets the app's 403; then the front reads the early bytes as the
/// next HTTP request and answers 400, or closes; the app saw one request
/// and no tunnel.
#[tokio::test]
async fn early_bytes_behind_a_refused_upgrade_are_never_tunnelled() {
    within(async {
        let pair = Pair::start().await.unwrap();
        let early = early_bytes();
        let mut raw = upgrade_with_early_bytes(pair.front, "/status/403", &early).await;
        assert_eq!(raw.status, 403);
        assert!(raw.header("sec-websocket-accept").is_none());
        let body = raw.read_body().await.unwrap();
        assert_eq!(String::from_utf8_lossy(&body), "app says 403");

        let mut after = std::mem::take(&mut raw.leftover);
        // A reset after the 400 (unread early bytes) is a close too.
        let _ = raw.stream.read_to_end(&mut after).await;
        assert!(
            after.is_empty() || after.starts_with(b"HTTP/1.1 400"),
            "early bytes were not treated as HTTP: {:?}",
            String::from_utf8_lossy(&after)
        );
        assert!(
            !after.windows(WS_FRAME.len()).any(|w| w == WS_FRAME),
            "early bytes came back"
        );

        let seen = pair.app.requests();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].uri.path(), "/status/403");
        assert!(pair.app.raw_outcomes().is_empty());
    })
    .await;
}
