//! Floods at the front's client-facing HTTP/2 (the TLS listener, ALPN
//! `h2`), written as raw frames: rapid reset (HEADERS + RST_STREAM, for
//! GETs and for RFC 8441 extended CONNECTs), a CONTINUATION flood, HPACK
//! bombs, and SETTINGS and PING floods from a client that never reads.
//!
//! For each: the front (the built binary, a child process: see
//! `h2hop_integration::front_process`) keeps its resident memory within
//! a bound, its peak sampled every 10 ms; a bystander WebSocket through
//! its plain listener echoes throughout; and the offending connection
//! ends with the GOAWAY code the case warrants, or, where RFC 9113 leaves
//! it to the server, stays usable. Figures are printed (`--nocapture`).
//!
//! Every test takes [`SERIAL`]: each floods a 2-core machine.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use h2hop_integration::binaries;
use h2hop_integration::front_process::{TlsRaw, UnderAttack, under_attack};
use h2hop_integration::harness::within;
use h2hop_integration::raw_h2::{
    ACK, Answer, CANCEL, CONTINUATION, END_HEADERS, END_STREAM, ENHANCE_YOUR_CALM, Frame, GOAWAY,
    HEADERS, PING, SETTINGS, block, frame, indexed, literal, literal_indexed, ping, rst_stream,
    settings,
};
use h2hop_integration::wait::eventually;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::Mutex;
use tokio::time::timeout;

/// One test at a time in this binary.
static SERIAL: Mutex<()> = Mutex::const_new(());

const MIB: u64 = 1024 * 1024;

/// The growth of the front's memory that counts as unbounded: each flood
/// below would push far more through a front that buffered it.
const RSS_BOUND: u64 = 32 * MIB;

/// Frames of a SETTINGS or PING flood. Their ACKs (18 MB for SETTINGS,
/// 34 MB for PING) are far more than the kernel holds between the front
/// and a client with a 16 KiB receive buffer (about the front's send
/// buffer, at most 4 MiB by default): a front that kept reading without
/// getting its ACKs out would have to keep the rest in memory.
const FLOOD_FRAMES: usize = 2_000_000;

/// SETTINGS_ENABLE_PUSH (RFC 9113 §6.5.2): 0 is what a client sends.
const ENABLE_PUSH: u16 = 0x2;

/// The front binary of `bin` under attack.
async fn front(bin: &Path) -> UnderAttack {
    under_attack(bin).await.unwrap()
}

/// The fields of a request to the front: a GET, or an extended CONNECT
/// for `websocket` (RFC 8441 §4), both for `/slow`, which the app holds.
fn request(connect: bool) -> Vec<(&'static str, &'static str)> {
    let mut fields = vec![
        (":method", if connect { "CONNECT" } else { "GET" }),
        (":scheme", "https"),
        (":authority", "localhost"),
        (":path", "/slow"),
    ];
    if connect {
        fields.insert(1, (":protocol", "websocket"));
        fields.push(("sec-websocket-version", "13"));
    }
    fields
}

fn headers(connect: bool, stream: u32) -> Vec<u8> {
    let flags = if connect {
        END_HEADERS
    } else {
        END_HEADERS | END_STREAM
    };
    frame(HEADERS, flags, stream, &block(&request(connect)))
}

/// Writes `bytes` on a fresh connection while reading its answer: the
/// GOAWAY (or the end) within 5 s, or `None` if it stays open.
async fn flood_and_ending(raw: TlsRaw, bytes: Vec<u8>) -> Option<Answer> {
    let (mut reader, mut writer) = raw.into_split();
    let writing = tokio::spawn(async move {
        // Fails once the front has closed: that is the point.
        let _ = writer.write_all(&bytes).await;
        writer
    });
    let ending = reader.ending(Duration::from_secs(5)).await;
    writing.abort();
    ending
}

/// Rapid reset (CVE-2023-44487): 500 HEADERS each followed at once by its
/// RST_STREAM(CANCEL), in one write, on connection after connection until
/// 5,000 streams. The streams are reset before the front has taken them,
/// which RFC 9113 does not limit; a server may treat it as excessive load
/// (§10.5: ENHANCE_YOUR_CALM). Every connection must end so.
async fn rapid_reset(bin: &Path, connect: bool) {
    let attack = front(bin).await;
    let (mut streams, mut endings) = (0, Vec::new());
    while streams < 5000 {
        let pairs: Vec<u8> = (0..500u32)
            .flat_map(|i| [headers(connect, 1 + 2 * i), rst_stream(1 + 2 * i, CANCEL)].concat())
            .collect();
        endings.push(flood_and_ending(attack.h2().await.unwrap(), pairs).await);
        streams += 500;
    }
    let what = if connect { "extended CONNECT" } else { "GET" };
    let attack_name = format!(
        "rapid reset of {streams} {what} streams on {} connections",
        endings.len()
    );
    eprintln!("{attack_name}: the front answered {endings:?}");
    attack.finish(&attack_name, RSS_BOUND).await.unwrap();
    for ending in endings {
        assert_eq!(ending, Some(Answer::GoAway(ENHANCE_YOUR_CALM)));
    }
}

#[tokio::test]
async fn rapid_reset_of_gets_ends_with_enhance_your_calm() {
    let _serial = SERIAL.lock().await;
    let bin = binaries::dir();
    within(rapid_reset(&bin, false)).await;
}

#[tokio::test]
async fn rapid_reset_of_extended_connects_ends_with_enhance_your_calm() {
    let _serial = SERIAL.lock().await;
    let bin = binaries::dir();
    within(rapid_reset(&bin, true)).await;
}

/// A CONTINUATION flood: a HEADERS without END_HEADERS, then up to 10,000
/// CONTINUATION frames of 16 KiB, each a complete 16,000-byte field, on
/// five connections in turn. The front must not buffer the 160 MiB: a
/// field block past SETTINGS_MAX_HEADER_LIST_SIZE may be refused, and an
/// endless one is excessive load (RFC 9113 §10.5.1, §10.5:
/// ENHANCE_YOUR_CALM), the connection closed long before the writer is
/// done.
#[tokio::test]
async fn continuation_flood_ends_with_enhance_your_calm() {
    let _serial = SERIAL.lock().await;
    let bin = binaries::dir();
    within(async {
        let attack = front(&bin).await;
        let mut junk = Vec::new();
        literal(&mut junk, b"x-junk", &[b'a'; 16_000]);
        let continuation = frame(CONTINUATION, 0, 1, &junk);
        let mut endings = Vec::new();
        for _ in 0..5 {
            let (mut reader, mut writer) = attack.h2().await.unwrap().into_split();
            let first = frame(HEADERS, END_STREAM, 1, &block(&request(false)));
            let continuation = continuation.clone();
            let frames = tokio::spawn(async move {
                writer.write_all(&first).await.unwrap();
                for sent in 0..10_000 {
                    if writer.write_all(&continuation).await.is_err() {
                        return sent;
                    }
                }
                10_000
            });
            let ending = reader.ending(Duration::from_secs(10)).await;
            drop(reader);
            let sent = timeout(Duration::from_secs(5), frames)
                .await
                .expect("the writer stops once the front has closed")
                .unwrap();
            endings.push((ending, sent));
        }
        eprintln!("CONTINUATION flood: (answer, frames written before the close) {endings:?}");
        attack
            .finish("CONTINUATION flood on 5 connections", RSS_BOUND)
            .await
            .unwrap();
        for (ending, sent) in endings {
            assert_eq!(ending, Some(Answer::GoAway(ENHANCE_YOUR_CALM)));
            assert!(sent < 10_000, "the front took all 160 MiB");
        }
    })
    .await;
}

/// The HPACK bomb's dynamic-table entry: 6 + 4,000 + 32 = 4,038 bytes of
/// the 4,096 a decoder holds by default (RFC 7541 §4.1, §6.5.2), then
/// named by one byte per reference.
fn bomb(stream: u32, references: usize, first: bool) -> Vec<u8> {
    let mut fields = block(&request(false));
    if first {
        literal_indexed(&mut fields, b"x-bomb", &[b'b'; 4000]);
    }
    for _ in 0..references {
        indexed(&mut fields, 62);
    }
    frame(HEADERS, END_HEADERS | END_STREAM, stream, &fields)
}

/// HPACK bombs: a field block of about 4 KiB on the wire that decodes
/// to 100 copies of a 4 KiB field (400 KiB), on 20 connections in turn.
/// The front advertises a 64 KiB SETTINGS_MAX_HEADER_LIST_SIZE; a list
/// this far past it is excessive load (RFC 9113 §10.5.1, §10.5), and each
/// connection must end with ENHANCE_YOUR_CALM.
#[tokio::test]
async fn hpack_bomb_far_past_the_limit_ends_with_enhance_your_calm() {
    let _serial = SERIAL.lock().await;
    let bin = binaries::dir();
    within(async {
        let attack = front(&bin).await;
        let mut endings = Vec::new();
        for _ in 0..20 {
            let raw = attack.h2().await.unwrap();
            endings.push(flood_and_ending(raw, bomb(1, 100, true)).await);
        }
        eprintln!("HPACK bombs of 400 KiB: the front answered {endings:?}");
        attack
            .finish("HPACK bombs of 400 KiB on 20 connections", RSS_BOUND)
            .await
            .unwrap();
        for ending in endings {
            assert_eq!(ending, Some(Answer::GoAway(ENHANCE_YOUR_CALM)));
        }
    })
    .await;
}

/// HPACK bombs just past the limit: 2,000 streams on one connection, each
/// a few dozen bytes naming the 4 KiB entry 20 times (80 KiB decoded,
/// above the advertised 64 KiB). Each is refused with 431 (RFC 9113
/// §10.5.1) and never reaches the app, and the connection stays usable.
#[tokio::test]
async fn hpack_bombs_past_the_limit_are_answered_431() {
    let _serial = SERIAL.lock().await;
    let bin = binaries::dir();
    within(async {
        let attack = front(&bin).await;
        let seen = attack.front.pair.app.requests().len();
        let mut raw = attack.h2().await.unwrap();
        let (mut refused, mut other) = (0, Vec::new());
        let mut count = |frames: Vec<Frame>| {
            for frame in frames.iter().filter(|f| f.kind == HEADERS) {
                match frame.answer_for(frame.stream) {
                    Some(Answer::Status(431)) => refused += 1,
                    answer => other.push(answer),
                }
            }
        };
        for batch in 0..20u32 {
            let bombs: Vec<u8> = (0..100u32)
                .flat_map(|i| {
                    let stream = 1 + 2 * (batch * 100 + i);
                    bomb(stream, 20, stream == 1)
                })
                .collect();
            raw.send(&bombs).await.unwrap();
            let frames = raw.until_ping_ack(u64::from(batch)).await;
            count(frames.expect("the connection stays open"));
        }
        // The answers to the last batch may follow the last PING ACK.
        let mut late = Vec::new();
        while let Ok(Some(frame)) = raw.next_frame_within(Duration::from_secs(1)).await {
            late.push(frame);
        }
        count(late);
        let reached = attack.front.pair.app.requests().len() - seen;
        eprintln!(
            "HPACK bombs of 80 KiB: {refused} of 2000 answered 431, other answers {other:?}, {reached} reached the app"
        );
        attack
            .finish("2000 HPACK bombs of 80 KiB on one connection", RSS_BOUND)
            .await
            .unwrap();
        assert_eq!((refused, reached), (2000, 0), "{other:?}");
    })
    .await;
}

/// How a flood from a client that does not read ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// The front still answered a PING afterwards.
    Usable,
    /// GOAWAY with this code, or the end of the connection.
    Ended(Answer),
}

/// Writes [`FLOOD_FRAMES`] copies of `one` (a SETTINGS or a PING) without
/// reading, while the front's ACKs pile up unread; returns the ACKs the
/// front sent, whether the writer was done before the reading began (if
/// not, the front had stopped reading: back-pressure) and whether the
/// connection was still usable after.
async fn flood_unread(attack: &UnderAttack, one: Vec<u8>) -> (usize, bool, Outcome) {
    let mut raw = attack.h2_small_receive_buffer().await.unwrap();
    // A request in flight, held by the app: the connection is not idle, so
    // only the flood can end it.
    raw.send(&headers(false, 1)).await.unwrap();
    let (mut reader, mut writer) = raw.into_split();
    let kind = one[3];
    let chunk = one.repeat(1000);
    let writing = tokio::spawn(async move {
        for _ in 0..FLOOD_FRAMES / 1000 {
            if writer.write_all(&chunk).await.is_err() {
                return None;
            }
        }
        // A PING of our own, to learn whether the connection still works.
        writer
            .write_all(&ping(u64::MAX))
            .await
            .ok()
            .map(|()| writer)
    });
    // Nothing is read until the writer is blocked or done, so the ACKs can
    // only pile up at the front: give it 3 s for that.
    let written_unread = eventually(Duration::from_secs(3), || writing.is_finished()).await;
    let mut acks = 0;
    let outcome = loop {
        match reader.next_frame_within(Duration::from_secs(10)).await {
            Err(_) => panic!("the front went silent after {acks} ACKs"),
            Ok(None) => break Outcome::Ended(Answer::Closed),
            Ok(Some(f)) if f.kind == GOAWAY => {
                break Outcome::Ended(Answer::GoAway(f.error_code(4)));
            }
            Ok(Some(f))
                if f.kind == PING && f.flags & ACK != 0 && f.payload == u64::MAX.to_be_bytes() =>
            {
                break Outcome::Usable;
            }
            Ok(Some(f)) if f.kind == kind && f.flags & ACK != 0 => acks += 1,
            Ok(Some(_)) => {}
        }
    };
    let _ = timeout(Duration::from_secs(5), writing).await;
    (acks, written_unread, outcome)
}

/// RFC 9113 §10.5: a server MAY treat a SETTINGS or PING flood as
/// excessive load (ENHANCE_YOUR_CALM), or answer it, as long as what it
/// queues stays bounded (CVE-2019-9515, CVE-2019-9512). Either outcome
/// passes; the memory bound and the bystander decide.
fn answered_or_calmed(outcome: &Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Usable | Outcome::Ended(Answer::GoAway(ENHANCE_YOUR_CALM))
    )
}

/// A SETTINGS flood: 2,000,000 SETTINGS frames from a client that reads
/// none of the ACKs for 3 s.
#[tokio::test]
async fn settings_flood_from_a_client_that_never_reads_stays_bounded() {
    let _serial = SERIAL.lock().await;
    let bin = binaries::dir();
    within(async {
        let attack = front(&bin).await;
        let one = settings(&[(ENABLE_PUSH, 0)]);
        assert_eq!(one[3], SETTINGS);
        let (acks, written_unread, outcome) = flood_unread(&attack, one).await;
        eprintln!(
            "SETTINGS flood: all written unread: {written_unread}; {acks} ACKs, then {outcome:?}"
        );
        attack
            .finish("SETTINGS flood of 2000000 frames", RSS_BOUND)
            .await
            .unwrap();
        assert!(answered_or_calmed(&outcome), "{outcome:?}");
    })
    .await;
}

/// A PING flood: 2,000,000 PINGs from a client that reads none of the
/// ACKs for 3 s.
#[tokio::test]
async fn ping_flood_from_a_client_that_never_reads_stays_bounded() {
    let _serial = SERIAL.lock().await;
    let bin = binaries::dir();
    within(async {
        let attack = front(&bin).await;
        let (acks, written_unread, outcome) = flood_unread(&attack, ping(7)).await;
        eprintln!(
            "PING flood: all written unread: {written_unread}; {acks} ACKs, then {outcome:?}"
        );
        attack
            .finish("PING flood of 2000000 frames", RSS_BOUND)
            .await
            .unwrap();
        assert!(answered_or_calmed(&outcome), "{outcome:?}");
    })
    .await;
}
