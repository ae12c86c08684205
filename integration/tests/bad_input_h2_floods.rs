//! HTTP/2 floods at the sidecar, from a front that misbehaves, with a raw
//! `h2` client or raw frames ([`h2hop_integration::raw_h2`]).
//!
//! - `rapid_reset_is_absorbed_with_bounded_memory`: 5,000 streams opened
//!   and reset at once; every app request they started is cancelled.
//! - `continuation_flood_ends_the_connection_with_bounded_memory`: a
//!   HEADERS followed by endless CONTINUATION frames; the sidecar ends the
//!   connection long before 160 MiB.
//! - `streams_over_the_limit_are_refused`: ten streams against
//!   SETTINGS_MAX_CONCURRENT_STREAMS 4; six are refused with
//!   REFUSED_STREAM and never reach the app.
//! - `stalled_stream_holds_no_more_than_its_window`: a 40 MiB response the
//!   client never reads holds no more than its window in the sidecar.
//!
//! Each test checks that the sidecar stays up, that other connections keep
//! working, that no flooding request reaches the app, and that this
//! process's resident memory (the sidecar runs in-process) stays bounded.
//! The figures are printed (`--nocapture`) so they can be quoted.
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
use h2hop_integration::procstat;
use h2hop_integration::raw_h2::fields::get;
use h2hop_integration::raw_h2::{
    Answer, CONTINUATION, DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS, REFUSED_STREAM, Raw,
    block, frame, literal,
};
use h2hop_integration::wait::eventually;
use http::{Method, Request, StatusCode};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio::time::{sleep, timeout};

/// One test at a time in this binary: RSS is per process.
static SERIAL: Mutex<()> = Mutex::const_new(());

const MIB: u64 = 1024 * 1024;

/// The growth a flood may cause before it counts as unbounded.
const RSS_BOUND: u64 = 64 * MIB;

/// This process's resident set size, from `/proc/self/status`.
fn rss() -> u64 {
    procstat::rss_kib(std::process::id()).unwrap() * 1024
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

/// A pair over h2c: the tests speak to [`Pair::sidecar`] directly.
async fn pair() -> Pair {
    Pair::builder().h2c().start().await.unwrap()
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
        // The app connections the cancelled dials opened close in their
        // own time; the figures below are read once they have (or after
        // 10 s, and then they show it).
        eventually(Duration::from_secs(10), || open() <= open_before).await;
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
        // sockets' buffers are full. Not synchronisation: nothing signals
        // "full", and measuring early could only show less growth, never
        // fail the bound below.
        sleep(Duration::from_millis(500)).await;
        let during = rss();
        works(&send, 100_000).await;
        works(&h2_client(pair.sidecar).await, 100_000).await;
        drop((stalled, send));
        driver.abort();
        let open = || pair.app.connections() - pair.app.connections_ended();
        let freed = || open() <= open_before && rss() <= before + 16 * MIB;
        eventually(Duration::from_secs(10), freed).await;
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
