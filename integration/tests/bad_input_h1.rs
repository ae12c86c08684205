//! Bad HTTP/1.1 input at the front: malformed request
//! lines, bad field names and values, Host and framing conflicts, invalid
//! chunking, oversized heads, broken WebSocket handshakes and `Upgrade: h2c`.
//!
//! Each case is written byte by byte on a connection of its own, so that no
//! client library can refuse or repair it. The front must answer it with
//! the expected 4xx (or close) within [`CASE_LIMIT`], nothing malformed may
//! reach the app (`pair.app.requests()`), and a WebSocket open meanwhile
//! keeps echoing. The tables collect every mismatch before failing, so one
//! run names all the cases that are wrong.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use h2hop_integration::app::Recorded;
use h2hop_integration::client::{self, RawUpgrade};
use h2hop_integration::harness::{Pair, within};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// How long one case may take to be answered or closed: far below the
/// front's 10 s header timeout, so a front waiting for more bytes is a hang.
const CASE_LIMIT: Duration = Duration::from_secs(5);

/// The front's `max_header_size` in these tests (`--max-header-size`).
const MAX_HEAD: usize = 8192;

/// RFC 6455 §1.3 sample key: a valid 16-byte nonce.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// What a case must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A response with this status.
    Status(u16),
    /// A response with this status, then the connection closes
    /// (RFC 9112 §6.3 (N49): a framing error leaves nothing to resync on).
    StatusThenClose(u16),
    /// The connection closes (or resets) without a response.
    Closed,
}

/// One hand-written request and what it must get.
struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    expect: Expect,
}

fn case(name: &'static str, bytes: impl Into<Vec<u8>>, expect: Expect) -> Case {
    Case {
        name,
        bytes: bytes.into(),
        expect,
    }
}

/// The pair under test: mutual TLS on the hop, a small head limit.
async fn pair() -> Pair {
    Pair::builder()
        .front_config(|config| config.max_header_size = MAX_HEAD)
        .start()
        .await
        .unwrap()
}

/// Writes `request` on a fresh connection and reads the answer's head;
/// `None` when the front closes or resets without one. A front that
/// neither answers nor closes within [`CASE_LIMIT`] fails the case by name.
async fn send(front: SocketAddr, name: &str, request: &[u8]) -> Option<RawUpgrade> {
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
async fn body_text(name: &str, raw: &mut RawUpgrade) -> String {
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
async fn closes(raw: &mut RawUpgrade) -> bool {
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
async fn run_refusals(pair: &Pair, cases: &[Case]) -> Vec<String> {
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
async fn assert_serves_and_nothing_else_arrived(pair: &Pair, before: usize) {
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

/// RFC 9112 §3 (request line), §3.2 (target forms), §2.2: a request line
/// that is not `method SP target SP HTTP/1.x`, an unusable target or a
/// version hyper does not speak gets 400 and never reaches the app. The
/// HTTP/2 preface on the HTTP/1.1 listener is closed unanswered.
fn request_line_cases() -> Vec<Case> {
    let bad = Expect::Status(400);
    let line = |l: &str| format!("{l}\r\nHost: app.test\r\n\r\n").into_bytes();
    vec![
        case("two spaces", line("GET  /a HTTP/1.1"), bad),
        case("no version", line("GET /a"), bad),
        case("HTTP/1.2", line("GET /a HTTP/1.2"), bad),
        case("HTTP/2.0 request line", line("GET /a HTTP/2.0"), bad),
        case("lower-case version", line("GET /a http/1.1"), bad),
        case("token after version", line("GET /a HTTP/1.1 x"), bad),
        case("tabs as separators", line("GET\t/a\tHTTP/1.1"), bad),
        case("leading space", line(" GET /a HTTP/1.1"), bad),
        case("NUL in method", line("G\0T /a HTTP/1.1"), bad),
        case("non-token method", line("G(T /a HTTP/1.1"), bad),
        case("DEL in target", line("GET /a\x7f HTTP/1.1"), bad),
        case("NUL in target", line("GET /a\0b HTTP/1.1"), bad),
        case(
            "byte 0xff in target",
            [b"GET /a\xffb HTTP/1.1\r\nHost: app.test\r\n\r\n".as_slice()].concat(),
            bad,
        ),
        case(
            "broken absolute form",
            line("GET http://[::1/ HTTP/1.1"),
            bad,
        ),
        // RFC 9112 §3.2.3: authority form is for CONNECT only.
        case(
            "authority form on GET",
            line("GET app.test:80 HTTP/1.1"),
            bad,
        ),
        // RFC 9112 §3.2.4: asterisk form is for OPTIONS only.
        case("asterisk form on GET", line("GET * HTTP/1.1"), bad),
        case(
            "HTTP/2 preface",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            Expect::Closed,
        ),
    ]
}

/// RFC 9112 §3, §3.2: the [`request_line_cases`] get 400 (the preface a
/// close), reach nobody, and `OPTIONS *` is no 5xx.
#[tokio::test]
async fn malformed_request_lines_get_400_and_reach_nobody() {
    within(async {
        let pair = pair().await;
        let before = pair.app.requests().len();
        let mut wrong = run_refusals(&pair, &request_line_cases()).await;

        // RFC 9112 §3.2.4: `OPTIONS *` is legitimate; whatever the front
        // does with it, it is not a failure of the app or the sidecar.
        let head = "OPTIONS * HTTP/1.1\r\nHost: app.test\r\n\r\n";
        let mut raw = send(pair.front, "OPTIONS *", head.as_bytes())
            .await
            .expect("OPTIONS * is answered");
        let body = body_text("OPTIONS *", &mut raw).await;
        if raw.status >= 500 {
            wrong.push(format!("OPTIONS *: got {} {body:?}", raw.status));
        }
        let after = pair.app.requests();
        if let Some(options) = after[before..].iter().find(|r| r.method == "OPTIONS")
            && options.uri != "*"
        {
            wrong.push(format!("OPTIONS *: the app saw target {}", options.uri));
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
        assert_serves_and_nothing_else_arrived(&pair, pair.app.requests().len()).await;
    })
    .await;
}

/// RFC 9112 §5.1, §5.2, §2.2 (N50), §3.2 (N51), RFC 9110 §5.5 and S4:
/// whitespace before the colon, obs-fold, bare CR, NUL, DEL and non-token
/// bytes in names or values, a missing, repeated or invalid Host: 400, and
/// nothing reaches the app. A bare LF that smuggles a second Host line is a
/// repeated Host.
fn field_cases() -> Vec<Case> {
    let bad = Expect::Status(400);
    let fields = |f: &[u8]| [b"GET /a HTTP/1.1\r\n".as_slice(), f, b"\r\n"].concat();
    vec![
        case(
            "space before colon in Host",
            fields(b"Host : app.test\r\n"),
            bad,
        ),
        case(
            "space before colon",
            fields(b"Host: app.test\r\nX-A : b\r\n"),
            bad,
        ),
        case(
            "obs-fold with SP",
            fields(b"Host: app.test\r\nX-A: b\r\n c\r\n"),
            bad,
        ),
        case(
            "obs-fold with HTAB",
            fields(b"Host: app.test\r\nX-A: b\r\n\tc\r\n"),
            bad,
        ),
        case(
            "bare CR in a value",
            fields(b"Host: app.test\r\nX-A: b\rc\r\n"),
            bad,
        ),
        case(
            "bare CR ending a line",
            fields(b"Host: app.test\rX-A: b\r\n"),
            bad,
        ),
        case(
            "NUL in a value",
            fields(b"Host: app.test\r\nX-A: b\0c\r\n"),
            bad,
        ),
        case(
            "DEL in a value",
            fields(b"Host: app.test\r\nX-A: b\x7fc\r\n"),
            bad,
        ),
        case(
            "NUL in a name",
            fields(b"Host: app.test\r\nX\0A: b\r\n"),
            bad,
        ),
        case(
            "space in a name",
            fields(b"Host: app.test\r\nX A: b\r\n"),
            bad,
        ),
        case(
            "line without colon",
            fields(b"Host: app.test\r\nXA\r\n"),
            bad,
        ),
        case("empty name", fields(b"Host: app.test\r\n: b\r\n"), bad),
        case(
            "non-token name",
            fields(b"Host: app.test\r\nX(A): b\r\n"),
            bad,
        ),
        case(
            "byte 0xff in a name",
            fields(b"Host: app.test\r\nX\xffA: b\r\n"),
            bad,
        ),
        case(
            "bare LF smuggling a second Host",
            fields(b"Host: app.test\r\nX-A: b\nHost: evil.test\r\n"),
            bad,
        ),
        case("missing Host", fields(b"X-A: b\r\n"), bad),
        case(
            "repeated Host",
            fields(b"Host: app.test\r\nHost: evil.test\r\n"),
            bad,
        ),
        case(
            "repeated identical Host",
            fields(b"Host: app.test\r\nHost: app.test\r\n"),
            bad,
        ),
        case("Host list", fields(b"Host: app.test, evil.test\r\n"), bad),
        case("space in Host", fields(b"Host: app test\r\n"), bad),
        case("path in Host", fields(b"Host: app.test/x\r\n"), bad),
        case("empty Host", fields(b"Host:\r\n"), bad),
        // RFC 9110 §7.2: Host = uri-host [ ":" port ]; RFC 9112 §3.2: an
        // invalid Host value gets 400.
        case("userinfo in Host", fields(b"Host: u@app.test\r\n"), bad),
    ]
}

/// RFC 9112 §5.1, §5.2, §2.2 (N50), §3.2 (N51), S4: the [`field_cases`]
/// get 400 and reach nobody; bare LF line ends, where accepted, deliver
/// exactly the fields sent.
#[tokio::test]
async fn bad_field_names_and_values_get_400_and_reach_nobody() {
    within(async {
        let pair = pair().await;
        let wrong = run_refusals(&pair, &field_cases()).await;
        assert!(wrong.is_empty(), "{wrong:#?}");

        // RFC 9112 §2.2: a recipient may take a bare LF as a line end
        // (hyper does); then the app gets exactly the fields sent.
        let head = "GET /bare-lf HTTP/1.1\nHost: app.test\nX-A: b\n\n";
        let before = pair.app.requests().len();
        let raw = send(pair.front, "bare LF line ends", head.as_bytes()).await;
        let status = raw.as_ref().map(|raw| raw.status);
        assert!(
            matches!(status, Some(200 | 400)),
            "bare LF line ends: {status:?}"
        );
        if status == Some(200) {
            let requests = pair.app.requests();
            let seen = &requests[before];
            assert_eq!(seen.uri, "/bare-lf");
            assert_eq!(seen.headers["x-a"], "b");
            assert_eq!(seen.headers.len(), 2, "{:?}", seen.headers);
        }
        assert_serves_and_nothing_else_arrived(&pair, pair.app.requests().len()).await;
    })
    .await;
}

/// A request hidden behind the first one in the smuggling cases.
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n";

/// RFC 9112 §6.1, §6.3 (N49), RFC 9110 §8.6: Content-Length values that
/// disagree or are not one decimal number, a Transfer-Encoding whose final
/// coding is not chunked, and Transfer-Encoding in HTTP/1.0 get 400 and a
/// close; a request hidden behind them never reaches the app.
fn framing_cases() -> Vec<Case> {
    let bad = Expect::StatusThenClose(400);
    let post = |fields: &str, body: &str| {
        format!("POST /echo HTTP/1.1\r\nHost: app.test\r\n{fields}\r\n{body}").into_bytes()
    };
    let chunked = format!("5\r\nhello\r\n0\r\n\r\n{SMUGGLED}");
    let hello = format!("hello{SMUGGLED}");
    vec![
        case(
            "two Content-Length values",
            post("Content-Length: 5\r\nContent-Length: 6\r\n", &hello),
            bad,
        ),
        case(
            "Content-Length list",
            post("Content-Length: 5, 6\r\n", &hello),
            bad,
        ),
        case(
            "negative Content-Length",
            post("Content-Length: -1\r\n", &hello),
            bad,
        ),
        case(
            "signed Content-Length",
            post("Content-Length: +5\r\n", &hello),
            bad,
        ),
        case(
            "hex Content-Length",
            post("Content-Length: 0x5\r\n", &hello),
            bad,
        ),
        case(
            "Content-Length over u64",
            post("Content-Length: 99999999999999999999999\r\n", &hello),
            bad,
        ),
        case(
            "Transfer-Encoding: chunked, identity",
            post("Transfer-Encoding: chunked, identity\r\n", &chunked),
            bad,
        ),
        case(
            "Transfer-Encoding: identity",
            post("Transfer-Encoding: identity\r\n", &hello),
            bad,
        ),
        case(
            "Transfer-Encoding: gzip",
            post("Transfer-Encoding: gzip\r\n", &hello),
            bad,
        ),
        case(
            "chunked then identity on two lines",
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
                &chunked,
            ),
            bad,
        ),
        case(
            "Transfer-Encoding: xchunked",
            post("Transfer-Encoding: xchunked\r\n", &chunked),
            bad,
        ),
        case(
            "Transfer-Encoding in HTTP/1.0",
            format!(
                "POST /echo HTTP/1.0\r\nHost: app.test\r\n\
                 Transfer-Encoding: chunked\r\n\r\n{chunked}"
            ),
            bad,
        ),
    ]
}

/// RFC 9112 §6.1, §6.3 (N49): the [`framing_cases`] get 400 and a close,
/// and the request hidden behind each never reaches the app.
#[tokio::test]
async fn framing_conflicts_get_400_and_close() {
    within(async {
        let pair = pair().await;
        let before = pair.app.requests().len();
        let wrong = run_refusals(&pair, &framing_cases()).await;
        assert!(wrong.is_empty(), "{wrong:#?}");
        assert_serves_and_nothing_else_arrived(&pair, before).await;
    })
    .await;
}

/// The app's record of the request carrying `?case=NAME`.
fn recorded<'a>(requests: &'a [Recorded], name: &str) -> Option<&'a Recorded> {
    requests
        .iter()
        .find(|r| r.uri.query() == Some(&format!("case={name}")))
}

/// RFC 9112 §6.1, §6.3 (N48): with both Content-Length and
/// Transfer-Encoding: chunked (CL.TE, TE.CL), Transfer-Encoding wins; the
/// front may refuse with 400, or forward only the chunked body, without
/// the stale Content-Length, and close after answering. Either way the
/// request behind the body (or inside it) never reaches the app as a
/// request. Two equal Content-Length lines are one (RFC 9110 §8.6).
#[tokio::test]
async fn content_length_with_transfer_encoding_never_smuggles_a_request() {
    within(async {
        let pair = pair().await;
        let inner = format!("{:x}\r\n{SMUGGLED}\r\n0\r\n\r\n", SMUGGLED.len());
        let cases = [
            // CL covers "0\r\n\r\n": a CL-framing hop would read the rest.
            (
                "cl-te",
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                format!("0\r\n\r\n{SMUGGLED}"),
                "",
            ),
            (
                "cl-te-body",
                "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
                format!("5\r\nhello\r\n0\r\n\r\n{SMUGGLED}"),
                "hello",
            ),
            // CL covers "2a\r\n": a CL-framing hop would see the request.
            (
                "te-cl",
                "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
                inner,
                SMUGGLED,
            ),
        ];
        for (name, fields, body, decoded) in &cases {
            let request =
                format!("POST /echo?case={name} HTTP/1.1\r\nHost: app.test\r\n{fields}\r\n{body}");
            let mut raw = send(pair.front, name, request.as_bytes())
                .await
                .unwrap_or_else(|| panic!("{name}: closed without an answer"));
            if raw.status == 400 {
                assert!(closes(&mut raw).await, "{name}: open after 400");
                continue;
            }
            assert_eq!(raw.status, 200, "{name}");
            assert_eq!(body_text(name, &mut raw).await, *decoded, "{name}");
            assert!(closes(&mut raw).await, "{name}: kept alive after CL+TE");
            let requests = pair.app.requests();
            let seen = recorded(&requests, name).expect("forwarded");
            let length = seen.headers.get("content-length");
            assert!(
                length.is_none_or(|length| *length == decoded.len().to_string().as_str()),
                "{name}: stale Content-Length reached the app: {:?}",
                seen.headers
            );
        }

        let request = "POST /echo?case=cl-twice HTTP/1.1\r\nHost: app.test\r\n\
                       Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello";
        let mut raw = send(pair.front, "cl-twice", request.as_bytes())
            .await
            .unwrap();
        assert!(matches!(raw.status, 200 | 400), "cl-twice: {}", raw.status);
        if raw.status == 200 {
            assert_eq!(body_text("cl-twice", &mut raw).await, "hello");
            let requests = pair.app.requests();
            let seen = recorded(&requests, "cl-twice").expect("forwarded");
            let lengths: Vec<_> = seen.headers.get_all("content-length").iter().collect();
            assert_eq!(lengths, ["5"], "cl-twice");
        }

        let before = pair.app.requests().len();
        assert_serves_and_nothing_else_arrived(&pair, before).await;
        let smuggled: Vec<_> = pair
            .app
            .requests()
            .into_iter()
            .filter(|r| r.uri.path() == "/smuggled")
            .collect();
        assert!(smuggled.is_empty(), "smuggled: {smuggled:?}");
    })
    .await;
}

/// RFC 9112 §7.1: a chunk size that is not hex, overflows, is negative or
/// `0x`-prefixed, chunk data not followed by CRLF, and bare LF in the chunk
/// framing are the client's error: 400 (never a 2xx, never a 502 blaming
/// the sidecar), and the connection closes.
fn chunk_cases() -> Vec<Case> {
    let bad = Expect::StatusThenClose(400);
    let post = |body: &str| {
        format!(
            "POST /echo HTTP/1.1\r\nHost: app.test\r\n\
             Transfer-Encoding: chunked\r\n\r\n{body}"
        )
        .into_bytes()
    };
    vec![
        case("chunk size zz", post("zz\r\nhello\r\n0\r\n\r\n"), bad),
        case("negative chunk size", post("-5\r\nhello\r\n0\r\n\r\n"), bad),
        case("chunk size 0x5", post("0x5\r\nhello\r\n0\r\n\r\n"), bad),
        case(
            "chunk size over u64",
            post("fffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
            bad,
        ),
        case(
            "chunk data without CRLF",
            post("5\r\nhelloXX0\r\n\r\n"),
            bad,
        ),
        case(
            "chunk size larger than the data",
            post("9\r\nhello\r\n0\r\n\r\n"),
            bad,
        ),
        case("bare LF in chunk framing", post("5\nhello\n0\n\n"), bad),
    ]
}

/// RFC 9112 §7.1, N49: the [`chunk_cases`] get 400 and a close (or a close),
/// never a 2xx and never a 502 that blames the sidecar for the client's
/// bytes.
#[tokio::test]
async fn invalid_chunking_gets_400() {
    within(async {
        let pair = pair().await;
        let mut wrong = Vec::new();
        for case in chunk_cases() {
            let answer = send(pair.front, case.name, &case.bytes).await;
            let Some(mut raw) = answer else {
                // A close without an answer is acceptable here too.
                continue;
            };
            let status = raw.status;
            let body = body_text(case.name, &mut raw).await;
            let closed = closes(&mut raw).await;
            if case.expect != Expect::StatusThenClose(status) || !closed {
                wrong.push(format!(
                    "{}: expected {:?}, got {status} {body:?} (then closed: {closed})",
                    case.name, case.expect
                ));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
        // The head may cross the hop before the bad chunk is parsed (and
        // even reach the app a moment later): only the answer is checked
        // here, and that the front still serves.
        let head = "GET /still-serving HTTP/1.1\r\nHost: app.test\r\n\r\n";
        let raw = send(pair.front, "good request", head.as_bytes()).await;
        assert_eq!(raw.map(|raw| raw.status), Some(200));
    })
    .await;
}

/// A head over `--max-header-size`: one huge field, too many fields
/// (hyper's limit is 100), or a huge target: 431 and a close, and nothing
/// reaches the app.
fn oversized_cases() -> Vec<Case> {
    let too_large = Expect::StatusThenClose(431);
    let big = "a".repeat(MAX_HEAD + 2000);
    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    vec![
        case(
            "one field over the limit",
            format!("GET /a HTTP/1.1\r\nHost: app.test\r\nX-Big: {big}\r\n\r\n"),
            too_large,
        ),
        case(
            "150 fields",
            format!("GET /a HTTP/1.1\r\nHost: app.test\r\n{many}\r\n"),
            too_large,
        ),
        case(
            "target over the limit",
            format!("GET /{big} HTTP/1.1\r\nHost: app.test\r\n\r\n"),
            too_large,
        ),
    ]
}

/// RFC 6585 §5: the [`oversized_cases`] get 431 and reach nobody; a
/// normal request still goes through.
#[tokio::test]
async fn oversized_heads_get_431() {
    within(async {
        let pair = pair().await;
        let before = pair.app.requests().len();
        let wrong = run_refusals(&pair, &oversized_cases()).await;
        assert!(wrong.is_empty(), "{wrong:#?}");
        assert_serves_and_nothing_else_arrived(&pair, before).await;
    })
    .await;
}

/// A WebSocket handshake with `fields` replacing or adding to the valid
/// ones (an empty value drops the field), on `method` and `version`.
fn handshake(method: &str, version: &str, fields: &[(&str, &str)]) -> Vec<u8> {
    let mut all = vec![
        ("Host", "app.test"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", KEY),
        ("Sec-WebSocket-Version", "13"),
    ];
    for (name, value) in fields {
        if let Some(slot) = all.iter_mut().find(|(n, _)| n == name) {
            slot.1 = value;
        } else {
            all.push((name, value));
        }
    }
    let mut head = format!("{method} /ws HTTP/{version}\r\n");
    for (name, value) in all.iter().filter(|(_, value)| !value.is_empty()) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// RFC 6455 §4.1, §4.2.1 (N38, N39, N40, N47): a handshake without Host,
/// without a key, with a key that is not 16 bytes in base64, with two keys,
/// without a version, with a body, or on another method than GET: 400 from
/// the front. §4.4 (N41): another version (or two): 426. None reaches the
/// app.
fn handshake_cases() -> Vec<Case> {
    let bad = Expect::Status(400);
    let get = |fields: &[(&str, &str)]| handshake("GET", "1.1", fields);
    let mut two_keys = handshake("GET", "1.1", &[]);
    two_keys.truncate(two_keys.len() - 2);
    two_keys.extend_from_slice(b"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n\r\n");
    vec![
        case("no Host", get(&[("Host", "")]), bad),
        case("no key", get(&[("Sec-WebSocket-Key", "")]), bad),
        case("short key", get(&[("Sec-WebSocket-Key", "short")]), bad),
        // Base64 of 15 bytes, not 16 (RFC 6455 §4.1, item 7).
        case(
            "15-byte key",
            get(&[("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAA")]),
            bad,
        ),
        case("two keys", two_keys, bad),
        case("no version", get(&[("Sec-WebSocket-Version", "")]), bad),
        case(
            "version 12",
            get(&[("Sec-WebSocket-Version", "12")]),
            Expect::Status(426),
        ),
        case(
            "versions 13 and 8",
            get(&[("Sec-WebSocket-Version", "13, 8")]),
            Expect::Status(426),
        ),
        case(
            "POST",
            handshake("POST", "1.1", &[("Content-Length", "0")]),
            bad,
        ),
        case("CONNECT", handshake("CONNECT", "1.1", &[]), bad),
        case(
            "Content-Length body",
            [get(&[("Content-Length", "5")]), b"hello".to_vec()].concat(),
            bad,
        ),
        case(
            "chunked body",
            [
                get(&[("Transfer-Encoding", "chunked")]),
                b"5\r\nhello\r\n0\r\n\r\n".to_vec(),
            ]
            .concat(),
            bad,
        ),
    ]
}

/// RFC 6455 §4.1, §4.2.1, §4.4 (N38-N41, N47): the [`handshake_cases`] are
/// refused by the front (400, or 426 naming version 13) and reach nobody.
#[tokio::test]
async fn bad_websocket_handshakes_are_refused_at_the_front() {
    within(async {
        let pair = pair().await;
        let before = pair.app.requests().len();
        let wrong = run_refusals(&pair, &handshake_cases()).await;
        assert!(wrong.is_empty(), "{wrong:#?}");

        // RFC 6455 §4.4 (N41), RFC 9110 §7.8 (N32): the 426 says what we speak.
        let request = handshake("GET", "1.1", &[("Sec-WebSocket-Version", "12")]);
        let raw = send(pair.front, "version 12", &request).await.unwrap();
        assert_eq!(raw.status, 426);
        assert_eq!(raw.header("sec-websocket-version"), Some("13"));
        assert_eq!(raw.header_all("upgrade"), ["websocket"]);
        assert_serves_and_nothing_else_arrived(&pair, before).await;
    })
    .await;
}

/// RFC 9110 §7.8 (N34): `Upgrade` in an HTTP/1.0 request is ignored. The
/// handshake is served as a plain GET: no 101, and the app sees neither
/// `Upgrade` nor `Connection`.
#[tokio::test]
async fn http10_websocket_handshake_is_served_as_plain_get() {
    within(async {
        let pair = pair().await;
        let request = handshake("GET", "1.0", &[]);
        let mut raw = send(pair.front, "HTTP/1.0 upgrade", &request)
            .await
            .unwrap();
        assert_eq!(raw.status, 200);
        assert!(raw.header("upgrade").is_none(), "{:?}", raw.headers);
        assert!(raw.header("sec-websocket-accept").is_none());
        assert_eq!(
            body_text("HTTP/1.0 upgrade", &mut raw).await,
            "hello from app"
        );
        let requests = pair.app.requests();
        assert_eq!(requests.len(), 1);
        for name in ["upgrade", "connection"] {
            assert!(
                !requests[0].headers.contains_key(name),
                "{name} reached the app: {:?}",
                requests[0].headers
            );
        }
    })
    .await;
}

/// S3, RFC 9113 §3.1 (h2c upgrade removed), RFC 9110 §7.8: `Upgrade: h2c`
/// is never honoured and never reaches the app with its `Upgrade` or
/// `HTTP2-Settings`, whatever comes with it: alone (plain 200, the
/// connection keeps speaking HTTP/1.1), over HTTP/1.0, with a body, or
/// offered next to `websocket` (the WebSocket is tunnelled and the app's
/// handshake names `websocket` alone).
#[tokio::test]
async fn h2c_upgrade_never_reaches_the_app() {
    within(async {
        let pair = pair().await;
        let h2c = "Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n\
                   HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n";
        let plain = [
            (
                "h2c",
                format!("GET /h2c HTTP/1.1\r\nHost: app.test\r\n{h2c}\r\n"),
                "",
            ),
            (
                "h2c over HTTP/1.0",
                format!("GET /h2c-10 HTTP/1.0\r\nHost: app.test\r\n{h2c}\r\n"),
                "",
            ),
            (
                "h2c with a body",
                format!(
                    "POST /echo HTTP/1.1\r\nHost: app.test\r\n{h2c}\
                     Content-Length: 5\r\n\r\nhello"
                ),
                "hello",
            ),
        ];
        for (name, request, echoed) in &plain {
            let mut raw = send(pair.front, name, request.as_bytes()).await.unwrap();
            assert_eq!(raw.status, 200, "{name}");
            assert!(raw.header("upgrade").is_none(), "{name}: {:?}", raw.headers);
            let body = body_text(name, &mut raw).await;
            if echoed.is_empty() {
                assert_eq!(body, "hello from app", "{name}");
            } else {
                assert_eq!(body, *echoed, "{name}");
            }
            if *name == "h2c" {
                // Still HTTP/1.1 on the same connection, not an HTTP/2 preface.
                let again = "GET /again HTTP/1.1\r\nHost: app.test\r\n\r\n";
                raw.stream.write_all(again.as_bytes()).await.unwrap();
                let (status, _, _) = client::read_response_head(&mut raw.stream).await.unwrap();
                assert_eq!(status, 200, "{name}: second request");
            }
        }

        let offered = handshake(
            "GET",
            "1.1",
            &[
                ("Upgrade", "h2c, websocket"),
                ("Connection", "Upgrade, HTTP2-Settings"),
                ("HTTP2-Settings", "AAMAAABkAAQAoAAAAAIAAAAA"),
            ],
        );
        let raw = send(pair.front, "h2c, websocket", &offered).await.unwrap();
        assert_eq!(raw.status, 101, "h2c, websocket");
        assert_eq!(raw.header_all("upgrade"), ["websocket"]);

        let requests = pair.app.requests();
        assert_eq!(requests.len(), 5, "{requests:?}");
        for seen in &requests {
            assert!(!seen.headers.contains_key("http2-settings"), "{seen:?}");
            let upgrades: Vec<_> = seen.headers.get_all("upgrade").iter().collect();
            assert!(
                upgrades.is_empty() || upgrades == ["websocket"],
                "{} {}: {upgrades:?}",
                seen.method,
                seen.uri
            );
        }
    })
    .await;
}

/// Every bad input of this file at once, each on its own connection, while
/// a WebSocket echoes through the pair: none gets a 2xx or hangs, the
/// WebSocket still echoes afterwards, and the front serves a good request.
#[tokio::test]
async fn bad_input_does_not_disturb_an_open_tunnel() {
    within(async {
        let pair = pair().await;
        let (mut ws, _) = client::ws_connect(pair.front, "/ws", &[]).await.unwrap();
        let echoed = client::echo_roundtrip(&mut ws, Message::text("before"))
            .await
            .unwrap();
        assert_eq!(echoed, Message::text("before"));

        let cases: Vec<Case> = [
            request_line_cases(),
            field_cases(),
            framing_cases(),
            chunk_cases(),
            oversized_cases(),
            handshake_cases(),
        ]
        .into_iter()
        .flatten()
        .collect();
        let answers = futures_util::future::join_all(
            cases
                .iter()
                .map(|case| send(pair.front, case.name, &case.bytes)),
        )
        .await;
        // Checked last, so that a wrong answer does not hide whether the
        // tunnel survived.
        let answered_2xx: Vec<String> = cases
            .iter()
            .zip(answers)
            .filter_map(|(case, answer)| {
                let status = answer.map(|raw| raw.status)?;
                (200..300)
                    .contains(&status)
                    .then(|| format!("{}: {status}", case.name))
            })
            .collect();

        let echoed = client::echo_roundtrip(&mut ws, Message::text("after"))
            .await
            .unwrap();
        assert_eq!(echoed, Message::text("after"));
        let (status, body) = {
            let head = "GET /still-serving HTTP/1.1\r\nHost: app.test\r\n\r\n";
            let mut raw = send(pair.front, "good request", head.as_bytes())
                .await
                .unwrap();
            (raw.status, body_text("good request", &mut raw).await)
        };
        assert_eq!(status, 200);
        assert_eq!(body, "hello from app");
        client::close_handshake(&mut ws, 1000, "done")
            .await
            .unwrap();
        assert!(answered_2xx.is_empty(), "{answered_2xx:#?}");
    })
    .await;
}
