//! Bad HTTP/1.1 input for the front, for `tests/bad_input_h1_*.rs`: each
//! case is written byte by byte on a connection of its own, so that no
//! client library can refuse or repair it, and the answer is read by hand.
//!
//! The front must answer a case with the expected 4xx (or close) within
//! [`CASE_LIMIT`], and nothing malformed may reach the app
//! (`pair.app.requests()`). [`run_refusals`] collects every mismatch before
//! a test fails, so one run names all the cases that are wrong. The case
//! tables, one per family of bad input, are in [`cases`].

pub mod cases;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::client::{self, RawUpgrade};
use crate::harness::Pair;

/// How long one case may take to be answered or closed: far below the
/// front's 10 s header timeout, so a front waiting for more bytes is a hang.
pub const CASE_LIMIT: Duration = Duration::from_secs(5);

/// The front's `max_header_size` in these tests (`--max-header-size`).
pub const MAX_HEAD: usize = 8192;

/// What a case must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A response with this status.
    Status(u16),
    /// A response with this status, then the connection closes
    /// (RFC 9112 §6.3 (N49): a framing error leaves nothing to resync on).
    StatusThenClose(u16),
    /// The connection closes (or resets) without a response.
    Closed,
}

/// One hand-written request and what it must get.
pub struct Case {
    /// What the case is, for failure messages.
    pub name: &'static str,
    /// The request, as written on the wire.
    pub bytes: Vec<u8>,
    /// What it must get.
    pub expect: Expect,
}

/// A [`Case`] named `name`: `bytes` must get `expect`.
pub fn case(name: &'static str, bytes: impl Into<Vec<u8>>, expect: Expect) -> Case {
    Case {
        name,
        bytes: bytes.into(),
        expect,
    }
}

/// The pair under test: mutual TLS on the hop, a small head limit.
#[allow(
    clippy::unwrap_used,
    reason = "test support: a pair that does not start fails the test"
)]
pub async fn pair() -> Pair {
    Pair::builder()
        .front_config(|config| config.max_header_size = MAX_HEAD)
        .start()
        .await
        .unwrap()
}

/// Writes `request` on a fresh connection and reads the answer's head;
/// `None` when the front closes or resets without one. A front that
/// neither answers nor closes within [`CASE_LIMIT`] fails the case by name.
#[allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test support: a case that cannot be sent or goes unanswered fails the test by name"
)]
pub async fn send(front: SocketAddr, name: &str, request: &[u8]) -> Option<RawUpgrade> {
    let mut stream = TcpStream::connect(front).await.unwrap();
    stream.set_nodelay(true).unwrap();
    // The front may close before reading everything; the answer decides.
    let _ = stream.write_all(request).await;
    let head = tokio::time::timeout(CASE_LIMIT, client::read_response_head(&mut stream))
        .await
        .unwrap_or_else(|_| panic!("{name}: neither answered nor closed within {CASE_LIMIT:?}"));
    match head {
        Ok((status, headers, leftover)) => Some(RawUpgrade {
            stream,
            status,
            headers,
            leftover,
            key: String::new(),
        }),
        Err(err) => {
            let closed = err.to_string().contains("connection closed")
                || err.downcast_ref::<std::io::Error>().is_some();
            assert!(closed, "{name}: unreadable answer: {err:#}");
            None
        }
    }
}

/// The answer's body as text, bounded (for failure messages and checks).
#[allow(
    clippy::panic,
    reason = "test support: a body that never ends fails the test by name"
)]
pub async fn body_text(name: &str, raw: &mut RawUpgrade) -> String {
    let body = tokio::time::timeout(CASE_LIMIT, raw.read_body())
        .await
        .unwrap_or_else(|_| panic!("{name}: body not finished within {CASE_LIMIT:?}"));
    body.map_or_else(
        |err| format!("<body error: {err:#}>"),
        |body| String::from_utf8_lossy(&body).into_owned(),
    )
}

/// Whether the front closes the connection after the answer (bytes after
/// the body, or an open connection, are a failure).
pub async fn closes(raw: &mut RawUpgrade) -> bool {
    let mut rest = std::mem::take(&mut raw.leftover);
    match tokio::time::timeout(CASE_LIMIT, raw.stream.read_to_end(&mut rest)).await {
        Ok(Ok(_)) => rest.is_empty(),
        // A reset after the answer is a close too.
        Ok(Err(_)) => true,
        Err(_) => false,
    }
}

/// Runs each case on its own connection, one after the other, and returns
/// every mismatch by name. No case may make the app's record grow.
pub async fn run_refusals(pair: &Pair, cases: &[Case]) -> Vec<String> {
    let mut wrong = Vec::new();
    let mut seen = pair.app.requests().len();
    for case in cases {
        let answer = send(pair.front, case.name, &case.bytes).await;
        let (matched, got) = match answer {
            None => (
                case.expect == Expect::Closed,
                "closed without an answer".to_owned(),
            ),
            Some(mut raw) => {
                let status = raw.status;
                let body = body_text(case.name, &mut raw).await;
                // Only framing errors must close: a keep-alive connection
                // would hold this check for the whole CASE_LIMIT.
                let closed = match case.expect {
                    Expect::StatusThenClose(_) => closes(&mut raw).await,
                    _ => false,
                };
                let matched = match case.expect {
                    Expect::Status(code) => status == code,
                    Expect::StatusThenClose(code) => status == code && closed,
                    Expect::Closed => false,
                };
                (
                    matched,
                    format!("{status} {body:?} (then closed: {closed})"),
                )
            }
        };
        if !matched {
            wrong.push(format!(
                "{}: expected {:?}, got {got}",
                case.name, case.expect
            ));
        }
        let requests = pair.app.requests();
        if requests.len() != seen {
            wrong.push(format!(
                "{}: reached the app: {:?}",
                case.name,
                &requests[seen..]
            ));
            seen = requests.len();
        }
    }
    wrong
}

/// A good request at the end: the front still serves, and it is the only
/// request the app saw since `before` (nothing refused arrived late).
#[allow(
    clippy::expect_used,
    reason = "test support: a good request left unanswered fails the test"
)]
pub async fn assert_serves_and_nothing_else_arrived(pair: &Pair, before: usize) {
    let head = "GET /still-serving HTTP/1.1\r\nHost: app.test\r\n\r\n";
    let mut raw = send(pair.front, "good request", head.as_bytes())
        .await
        .expect("the front answers a good request");
    assert_eq!(raw.status, 200);
    assert_eq!(body_text("good request", &mut raw).await, "hello from app");
    let requests = pair.app.requests();
    let paths: Vec<&str> = requests[before..].iter().map(|r| r.uri.path()).collect();
    assert_eq!(paths, ["/still-serving"], "{:?}", &requests[before..]);
}
