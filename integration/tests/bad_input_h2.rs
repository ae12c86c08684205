//! Bad HTTP/2 input at the sidecar, from a front that misbehaves: malformed
//! field blocks written as raw frames (the `h2` client refuses to send
//! them), then floods from a raw `h2` client or raw frames: rapid reset,
//! more streams than SETTINGS_MAX_CONCURRENT_STREAMS, a CONTINUATION flood
//! and a stream that never reads.
//!
//! Each test checks that the sidecar stays up, that other connections keep
//! working, that no malformed request reaches the app, and for floods that
//! this process's resident memory (the sidecar runs in-process) stays
//! bounded. The figures are printed (`--nocapture`) so they can be quoted.
//!
//! Every test takes [`SERIAL`] so that one test's allocations do not show
//! up in another's RSS figures.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use h2::Reason;
use h2::client::SendRequest;
use h2hop_integration::harness::{Pair, within};
use h2hop_integration::raw_h2::{
    Answer, CONTINUATION, DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS, PROTOCOL_ERROR,
    REFUSED_STREAM, Raw, block, frame, literal,
};
use http::{Method, Request, StatusCode};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio::time::{Instant, sleep, timeout};

/// One test at a time in this binary: RSS is per process.
static SERIAL: Mutex<()> = Mutex::const_new(());

const MIB: u64 = 1024 * 1024;

/// The growth a flood may cause before it counts as unbounded.
const RSS_BOUND: u64 = 64 * MIB;

/// This process's resident set size, from `/proc/self/status`.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .expect("VmRSS in /proc/self/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|kib| kib.parse().ok())
        .expect("VmRSS in kB");
    kib * 1024
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

/// A pair over h2c: the tests speak to [`Pair::sidecar`] directly.
async fn pair() -> Pair {
    Pair::builder().h2c().start().await.unwrap()
}

// ----- raw frames -----

/// The pseudo-header fields of a well-formed `GET path`.
fn get(path: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "app.example"),
        (":path", path),
    ]
}

/// `get(path)` followed by `extra`.
fn get_with(
    path: &'static str,
    extra: &[(&'static str, &'static str)],
) -> Vec<(&'static str, &'static str)> {
    let mut fields = get(path);
    fields.extend_from_slice(extra);
    fields
}

/// An extended CONNECT for `websocket`, before `extra`.
fn extended(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut fields = vec![
        (":method", "CONNECT"),
        (":protocol", "websocket"),
        (":scheme", "http"),
        (":authority", "app.example"),
        (":path", "/ws"),
    ];
    fields.extend_from_slice(extra);
    fields
}

// ----- the h2 client -----

/// An h2c connection from the `h2` client, its driver spawned.
async fn h2_client(addr: SocketAddr) -> SendRequest<Bytes> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let (send, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    send.ready().await.unwrap()
}

fn plain_get(path: &str) -> Request<()> {
    Request::builder()
        .method(Method::GET)
        .uri(format!("http://app.example{path}"))
        .body(())
        .unwrap()
}

/// `GET /bytes/{len}` on `send`, body read to the end: the sidecar serves
/// this connection.
async fn works(send: &SendRequest<Bytes>, len: usize) {
    let mut ready = send.clone().ready().await.unwrap();
    let (response, _) = ready
        .send_request(plain_get(&format!("/bytes/{len}")), true)
        .unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut got = 0;
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        got += chunk.len();
        body.flow_control().release_capacity(chunk.len()).unwrap();
    }
    assert_eq!(got, len);
}

// ----- malformed field blocks -----

/// Sends `fields` as stream 1 of a fresh raw connection and returns the
/// sidecar's answer.
async fn answer_to(addr: SocketAddr, fields: &[(&str, &str)]) -> Answer {
    let mut raw = Raw::connect(addr).await.unwrap();
    raw.request(1, fields).await.unwrap();
    raw.answer(1).await
}

/// The raw encoder is sound: a well-formed GET written the same way gets
/// 200 and reaches the app, so the refusals below are the sidecar's.
#[tokio::test]
async fn raw_frames_well_formed_get_is_served() {
    let _serial = SERIAL.lock().await;
    within(async {
        let pair = pair().await;
        let answer = answer_to(pair.sidecar, &get_with("/echo", &[("x-fine", "yes")])).await;
        assert_eq!(answer, Answer::Status(200));
        let seen = pair.app.requests();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].headers["x-fine"], "yes");
        let answer = answer_to(pair.sidecar, &extended(&[("sec-websocket-version", "13")])).await;
        assert_eq!(answer, Answer::Status(200), "extended CONNECT control");
    })
    .await;
}

/// RFC 9113 §6.5.2: the sidecar advertises SETTINGS_MAX_FRAME_SIZE 64 KiB
/// (`relay::MAX_FRAME_SIZE`), and a DATA frame above the 16 KiB default
/// reaches the app whole instead of ending the connection with
/// FRAME_SIZE_ERROR (§4.2).
#[tokio::test]
async fn data_frames_above_16_kib_are_accepted() {
    const MAX_FRAME_SIZE: u16 = 0x5;
    // Above the 16 KiB default, within the 65,535-byte initial connection
    // window.
    const BODY: usize = 60_000;
    let _serial = SERIAL.lock().await;
    within(async {
        let pair = pair().await;
        let mut raw = Raw::connect(pair.sidecar).await.unwrap();
        assert_eq!(raw.settings.get(&MAX_FRAME_SIZE), Some(&(64 * 1024)));
        let length = BODY.to_string();
        let mut fields = get("/echo");
        fields[0] = (":method", "POST");
        fields.push(("content-length", &length));
        raw.send(&frame(HEADERS, END_HEADERS, 1, &block(&fields)))
            .await
            .unwrap();
        raw.send(&frame(DATA, END_STREAM, 1, &[b'x'; BODY]))
            .await
            .unwrap();
        assert_eq!(raw.answer(1).await, Answer::Status(200));
        let mut echoed = 0;
        loop {
            let frame = raw.next_frame().await.expect("the echoed body");
            assert_ne!(frame.kind, GOAWAY, "{:?}", frame.payload);
            if frame.kind == DATA && frame.stream == 1 {
                echoed += frame.payload.len();
                if frame.flags & END_STREAM != 0 {
                    break;
                }
            }
        }
        assert_eq!(echoed, BODY);
    })
    .await;
}

/// A refusal the sidecar may give a malformed request: the stream reset
/// with PROTOCOL_ERROR (RFC 9113 §8.1.1), the connection closed with an
/// error (stricter, allowed), or a 400 of its own.
fn refused(answer: &Answer) -> bool {
    matches!(
        answer,
        Answer::Reset(PROTOCOL_ERROR) | Answer::GoAway(1..) | Answer::Status(400)
    )
}

/// Sends each case on its own connection; every one is refused, the
/// sidecar still serves a well-formed GET afterwards and the app saw only
/// that GET.
async fn each_refused(cases: &[(&str, Vec<(&'static str, &'static str)>)]) {
    let pair = pair().await;
    let mut report = Vec::new();
    for (what, fields) in cases {
        let answer = answer_to(pair.sidecar, fields).await;
        eprintln!("{what}: {answer:?}");
        report.push((*what, answer));
    }
    let accepted: Vec<_> = report
        .iter()
        .filter(|(_, answer)| !refused(answer))
        .collect();
    let seen = pair.app.requests();
    assert!(
        accepted.is_empty(),
        "not refused: {accepted:?}; the app saw {seen:?}"
    );
    assert!(seen.is_empty(), "reached the app: {seen:?}");
    assert_eq!(
        answer_to(pair.sidecar, &get("/echo")).await,
        Answer::Status(200)
    );
}

/// `:protocol` only with CONNECT (RFC 8441 §4 (N6)); an extended CONNECT
/// needs `:scheme` and `:path` (RFC 8441 §4 (N7)); a `:protocol` that is
/// not a token, carries CR/LF or NUL never becomes an `Upgrade` value (S4).
#[tokio::test]
async fn malformed_protocol_pseudo_header_never_reaches_the_app() {
    let _serial = SERIAL.lock().await;
    within(async {
        let no_path: Vec<_> = extended(&[])
            .into_iter()
            .filter(|f| f.0 != ":path")
            .collect();
        let no_scheme: Vec<_> = extended(&[])
            .into_iter()
            .filter(|f| f.0 != ":scheme")
            .collect();
        let with_protocol = |value| {
            extended(&[])
                .into_iter()
                .map(|f| {
                    if f.0 == ":protocol" {
                        (":protocol", value)
                    } else {
                        f
                    }
                })
                .collect::<Vec<_>>()
        };
        each_refused(&[
            (
                "N6 :protocol on GET",
                vec![
                    (":method", "GET"),
                    (":protocol", "websocket"),
                    (":scheme", "http"),
                    (":authority", "app.example"),
                    (":path", "/ws"),
                ],
            ),
            (
                "N6 :protocol on POST",
                vec![
                    (":method", "POST"),
                    (":protocol", "websocket"),
                    (":scheme", "http"),
                    (":authority", "app.example"),
                    (":path", "/ws"),
                ],
            ),
            ("N7 extended CONNECT without :path", no_path),
            ("N7 extended CONNECT without :scheme", no_scheme),
            ("N7 extended CONNECT with empty :path", with_path("")),
            (
                "N6 duplicate :protocol",
                vec![
                    (":method", "CONNECT"),
                    (":protocol", "websocket"),
                    (":protocol", "websocket"),
                    (":scheme", "http"),
                    (":authority", "a"),
                    (":path", "/ws"),
                ],
            ),
            (
                "S4 :protocol not a token (space)",
                with_protocol("web socket"),
            ),
            (
                "S4 :protocol with CR LF",
                with_protocol("websocket\r\nx-injected: 1"),
            ),
            (
                "S4 :protocol with bare LF",
                with_protocol("websocket\nx-injected: 1"),
            ),
            ("S4 :protocol with NUL", with_protocol("websocket\0")),
            ("S4 :protocol list", with_protocol("websocket, h2c")),
            ("S4 empty :protocol", with_protocol("")),
        ])
        .await;
    })
    .await;
}

/// An extended CONNECT whose `:path` is `path`.
fn with_path(path: &'static str) -> Vec<(&'static str, &'static str)> {
    extended(&[])
        .into_iter()
        .map(|f| if f.0 == ":path" { (":path", path) } else { f })
        .collect()
}

/// Connection-specific fields make a message malformed, also on an
/// extended CONNECT, and are never forwarded (RFC 9113 §8.2.2 (N17, N18,
/// N20)); neither is an Upgrade smuggled beside them (S3).
#[tokio::test]
async fn connection_specific_fields_never_reach_the_app() {
    let _serial = SERIAL.lock().await;
    within(async {
        each_refused(&[
            (
                "N17 connection",
                get_with("/echo", &[("connection", "keep-alive")]),
            ),
            (
                "N17 connection: upgrade + upgrade: h2c (S3)",
                get_with("/echo", &[("connection", "upgrade"), ("upgrade", "h2c")]),
            ),
            (
                "N17 upgrade",
                get_with("/echo", &[("upgrade", "websocket")]),
            ),
            (
                "N17 keep-alive",
                get_with("/echo", &[("keep-alive", "timeout=5")]),
            ),
            (
                "N17 proxy-connection",
                get_with("/echo", &[("proxy-connection", "keep-alive")]),
            ),
            (
                "N17 transfer-encoding",
                get_with("/echo", &[("transfer-encoding", "chunked")]),
            ),
            ("N18 te: gzip", get_with("/echo", &[("te", "gzip")])),
            (
                "N17 connection on extended CONNECT",
                extended(&[("connection", "upgrade")]),
            ),
            (
                "N17 upgrade on extended CONNECT",
                extended(&[("upgrade", "websocket")]),
            ),
        ])
        .await;
    })
    .await;
}

/// Field names and values that HTTP/2 forbids (RFC 9113 §8.2.1 (N21,
/// N22)) and pseudo-header misuse (RFC 9113 §8.3 (N23)).
#[tokio::test]
async fn malformed_field_names_and_values_never_reach_the_app() {
    let _serial = SERIAL.lock().await;
    within(async {
        each_refused(&[
            (
                "N21 upper-case name",
                get_with("/echo", &[("X-Upper", "1")]),
            ),
            ("N21 space in name", get_with("/echo", &[("x bad", "1")])),
            ("N21 colon in name", get_with("/echo", &[("x:bad", "1")])),
            ("N21 empty name", get_with("/echo", &[("", "1")])),
            (
                "N22 CR LF in value",
                get_with("/echo", &[("x-evil", "a\r\nx-injected: 1")]),
            ),
            (
                "N22 bare LF in value",
                get_with("/echo", &[("x-evil", "a\nx-injected: 1")]),
            ),
            ("N22 NUL in value", get_with("/echo", &[("x-evil", "a\0b")])),
            ("N22 CR LF in :path", get("/echo\r\nx-injected: 1")),
            (
                "N22 CR LF in :authority",
                vec![
                    (":method", "GET"),
                    (":scheme", "http"),
                    (":authority", "a\r\nx-injected: 1"),
                    (":path", "/echo"),
                ],
            ),
            (
                "N23 unknown pseudo-header",
                vec![
                    (":method", "GET"),
                    (":foo", "bar"),
                    (":scheme", "http"),
                    (":authority", "a"),
                    (":path", "/echo"),
                ],
            ),
            (
                "N23 pseudo-header after a field",
                vec![
                    (":method", "GET"),
                    (":scheme", "http"),
                    (":path", "/echo"),
                    ("x-first", "1"),
                    (":authority", "a"),
                ],
            ),
            (
                "N23 duplicate :path",
                get_with("/echo", &[(":path", "/other")]),
            ),
            (
                "N23 :status in a request",
                vec![
                    (":status", "200"),
                    (":method", "GET"),
                    (":scheme", "http"),
                    (":authority", "a"),
                    (":path", "/echo"),
                ],
            ),
            (
                "N23 missing :method",
                vec![(":scheme", "http"), (":authority", "a"), (":path", "/echo")],
            ),
        ])
        .await;
    })
    .await;
}

/// A field value with leading or trailing whitespace is malformed too
/// (RFC 9113 §8.2.1 (N22)); kept apart because `h2` does not check it, so
/// this one tests what the sidecar adds.
#[tokio::test]
async fn field_value_with_surrounding_whitespace_never_reaches_the_app() {
    let _serial = SERIAL.lock().await;
    within(async {
        each_refused(&[
            ("N22 leading space", get_with("/echo", &[("x-ws", " a")])),
            ("N22 trailing tab", get_with("/echo", &[("x-ws", "a\t")])),
        ])
        .await;
    })
    .await;
}

// ----- floods -----

/// Rapid reset (CVE-2023-44487, S5): 5,000 streams opened and at once
/// reset with CANCEL, in batches of 100 synchronised by PING. Each is a
/// `GET /slow` the app would hold until shutdown, so a reset that did not
/// cancel the app request would leave an app connection behind. The
/// sidecar may end a flooding connection (h2 answers GOAWAY
/// ENHANCE_YOUR_CALM); the test then reconnects. Afterwards: memory
/// growth bounded, no app connection left open, a bystander connection
/// opened before the flood and a new one both served.
#[tokio::test]
async fn rapid_reset_is_absorbed_with_bounded_memory() {
    let _serial = SERIAL.lock().await;
    within(async {
        let pair = pair().await;
        let bystander = h2_client(pair.sidecar).await;
        works(&bystander, 1000).await;
        let open = || pair.app.connections() - pair.app.connections_ended();
        // The bystander's request left one app connection in the pool.
        let (open_before, seen_before) = (open(), pair.app.requests().len());
        let before = rss();
        let (mut reset, mut connections) = (0, 0);
        while reset < 5000 {
            connections += 1;
            assert!(connections <= 500, "a new connection per 10 resets or worse");
            reset += flood_resets(pair.sidecar, 5000 - reset).await;
        }
        let settled = Instant::now() + Duration::from_secs(10);
        while open() > open_before && Instant::now() < settled {
            sleep(Duration::from_millis(50)).await;
        }
        let after = rss();
        eprintln!(
            "rapid reset: {reset} streams on {connections} connections; {} of them reached the app; app connections open before {open_before}, after {}; RSS before {:.1} MiB, after {:.1} MiB, growth {:.1} MiB",
            pair.app.requests().len() - seen_before,
            open(),
            mib(before),
            mib(after),
            mib(after.saturating_sub(before)),
        );
        // The pooled connection may have been closed meanwhile; none of
        // the reset streams' may stay.
        assert!(
            open() <= open_before,
            "app requests of reset streams were not cancelled"
        );
        assert!(after.saturating_sub(before) < RSS_BOUND);
        works(&bystander, 1000).await;
        works(&h2_client(pair.sidecar).await, 1000).await;
    })
    .await;
}

/// Opens and resets up to `count` streams on a new connection until the
/// sidecar ends it; returns how many were reset.
async fn flood_resets(addr: SocketAddr, count: usize) -> usize {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let (send, mut connection) = h2::client::handshake(tcp).await.unwrap();
    let mut ping_pong = connection.ping_pong().expect("ping_pong is taken once");
    let driver = tokio::spawn(async move {
        if let Err(err) = connection.await {
            eprintln!("rapid reset: the sidecar ended a connection: {err}");
        }
    });
    let mut reset = 0;
    'flood: while reset < count {
        for _ in 0..100.min(count - reset) {
            let Ok(mut ready) = send.clone().ready().await else {
                break 'flood;
            };
            let Ok((_response, mut stream)) = ready.send_request(plain_get("/slow"), true) else {
                break 'flood;
            };
            stream.send_reset(Reason::CANCEL);
            reset += 1;
        }
        if ping_pong.ping(h2::Ping::opaque()).await.is_err() {
            break;
        }
    }
    driver.abort();
    reset
}

/// A CONTINUATION flood (S5): one HEADERS without END_HEADERS, then up to
/// 10,000 CONTINUATION frames of 16 KiB, each a complete 16,000-byte
/// field. The sidecar must end the connection rather than buffer 160 MiB:
/// the writer is stopped by the closed socket long before it is done.
#[tokio::test]
async fn continuation_flood_ends_the_connection_with_bounded_memory() {
    let _serial = SERIAL.lock().await;
    within(async {
        let pair = pair().await;
        let bystander = h2_client(pair.sidecar).await;
        works(&bystander, 1000).await;
        let seen_before = pair.app.requests().len();
        let before = rss();
        let raw = Raw::connect(pair.sidecar).await.unwrap();
        let (mut reader, mut writer) = raw.into_split();
        let frames = tokio::spawn(async move {
            let first = block(&get("/flood"));
            let head = frame(HEADERS, END_STREAM, 1, &first);
            if writer.write_all(&head).await.is_err() {
                return 0;
            }
            let mut junk = Vec::new();
            literal(&mut junk, b"x-junk", &[b'a'; 16_000]);
            let continuation = frame(CONTINUATION, 0, 1, &junk);
            for sent in 0..10_000 {
                if writer.write_all(&continuation).await.is_err() {
                    return sent;
                }
            }
            10_000
        });
        // Read until GOAWAY or the end of the connection.
        let ended = reader.ending(Duration::from_secs(20)).await;
        drop(reader);
        let sent = timeout(Duration::from_secs(5), frames)
            .await
            .expect("the writer stops once the connection is closed")
            .unwrap();
        let after = rss();
        eprintln!(
            "CONTINUATION flood: sidecar answered {ended:?} after {sent} of 10000 frames ({:.1} MiB sent); RSS before {:.1} MiB, after {:.1} MiB, growth {:.1} MiB",
            mib(sent as u64 * 16_384),
            mib(before),
            mib(after),
            mib(after.saturating_sub(before)),
        );
        assert!(ended.is_some(), "the sidecar neither sent GOAWAY nor closed");
        assert!(sent < 10_000, "the sidecar took all 160 MiB");
        assert!(after.saturating_sub(before) < RSS_BOUND);
        assert_eq!(pair.app.requests().len(), seen_before, "the flood reached the app");
        works(&bystander, 1000).await;
        works(&h2_client(pair.sidecar).await, 1000).await;
    })
    .await;
}

/// More streams than SETTINGS_MAX_CONCURRENT_STREAMS (RFC 9113 §5.1.2):
/// with a limit of 4, ten GETs written at once as raw frames; the first
/// four are served, the other six reset with REFUSED_STREAM and never
/// reach the app; the connection then serves a new stream.
#[tokio::test]
async fn streams_over_the_limit_are_refused() {
    let _serial = SERIAL.lock().await;
    within(async {
        let pair = Pair::builder().h2c().max_streams(4).start().await.unwrap();
        let mut raw = Raw::connect(pair.sidecar).await.unwrap();
        assert_eq!(
            raw.settings.get(&0x3),
            Some(&4),
            "SETTINGS_MAX_CONCURRENT_STREAMS"
        );
        let mut burst = Vec::new();
        for stream in (1..20).step_by(2) {
            let fields = block(&get("/delay/300"));
            burst.extend(frame(HEADERS, END_HEADERS | END_STREAM, stream, &fields));
        }
        raw.send(&burst).await.unwrap();
        // Answers, and the served streams' ends (END_STREAM on DATA), which
        // may come in the same read as the last answers.
        let mut answers = HashMap::new();
        let mut ended = 0;
        while answers.len() < 10 || ended < 4 {
            let frame = raw.next_frame().await.expect("the connection stays open");
            assert_ne!(frame.kind, GOAWAY, "the connection was closed");
            if frame.kind == DATA && frame.flags & END_STREAM != 0 {
                ended += 1;
            }
            if let Some(answer) = frame.answer_for(frame.stream)
                && frame.stream != 0
            {
                answers.entry(frame.stream).or_insert(answer);
            }
        }
        let mut streams: Vec<_> = answers.into_iter().collect();
        streams.sort_by_key(|(stream, _)| *stream);
        eprintln!("10 streams against a limit of 4: {streams:?}");
        let served = streams
            .iter()
            .filter(|(_, a)| *a == Answer::Status(200))
            .count();
        let refused = streams
            .iter()
            .filter(|(_, a)| *a == Answer::Reset(REFUSED_STREAM))
            .count();
        assert_eq!((served, refused), (4, 6), "{streams:?}");
        assert_eq!(pair.app.requests().len(), 4);
        // The served streams have ended: one more fits.
        raw.request(21, &get("/echo")).await.unwrap();
        assert_eq!(raw.answer(21).await, Answer::Status(200));
    })
    .await;
}

/// A stream that never reads (flow-control stall): a 40 MiB response the
/// client never takes. The stream window (256 KiB, this client's) bounds
/// what the sidecar holds, so memory grows by the app's own 40 MiB body
/// and not twice that; meanwhile another stream on the same connection
/// and another connection are served; dropping the connection frees the
/// app's connection and body.
#[tokio::test]
async fn stalled_stream_holds_no_more_than_its_window() {
    let _serial = SERIAL.lock().await;
    within(async {
        const BODY: u64 = 40 * MIB;
        let pair = pair().await;
        let tcp = TcpStream::connect(pair.sidecar).await.unwrap();
        let (send, connection) = h2::client::Builder::new()
            .initial_window_size(256 * 1024)
            .initial_connection_window_size(8 * 1024 * 1024)
            .handshake::<_, Bytes>(tcp)
            .await
            .unwrap();
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut send = send.ready().await.unwrap();
        works(&send, 1000).await;
        let open_before = pair.app.connections() - pair.app.connections_ended();
        let before = rss();
        let (response, _) = send
            .send_request(plain_get(&format!("/bytes/{BODY}")), true)
            .unwrap();
        let stalled = response.await.unwrap();
        assert_eq!(stalled.status(), StatusCode::OK);
        // Measured once the pipe has filled: the window is spent and the
        // sockets' buffers are full.
        sleep(Duration::from_millis(500)).await;
        let during = rss();
        works(&send, 100_000).await;
        works(&h2_client(pair.sidecar).await, 100_000).await;
        drop((stalled, send));
        driver.abort();
        let freed = Instant::now() + Duration::from_secs(10);
        let open = || pair.app.connections() - pair.app.connections_ended();
        while (open() > open_before || rss() > before + 16 * MIB) && Instant::now() < freed {
            sleep(Duration::from_millis(50)).await;
        }
        let after = rss();
        eprintln!(
            "stalled 40 MiB stream: RSS before {:.1} MiB, during {:.1} MiB (growth {:.1} MiB), after dropping the connection {:.1} MiB; app connections open {}",
            mib(before),
            mib(during),
            mib(during.saturating_sub(before)),
            mib(after),
            open(),
        );
        assert!(
            during.saturating_sub(before) < BODY + 16 * MIB,
            "the sidecar buffered the stalled body"
        );
        assert!(open() <= open_before, "the app connection was not released");
        assert!(after < before + 16 * MIB, "memory not given back");
    })
    .await;
}
