//! Flow-control abuse at the front's client-facing HTTP/2 (the TLS
//! listener, ALPN `h2`), as raw frames: WINDOW_UPDATEs of zero and past
//! 2^31−1, on the connection and on a stream, and streams that never read
//! while the app sends megabytes.
//!
//! As in `client_h2_abuse.rs`: the front is the built binary in a child
//! process, its peak resident memory must stay within a bound, a
//! bystander WebSocket through its plain listener echoes throughout, and
//! each case gets the error code RFC 9113 asks for. Figures are printed
//! (`--nocapture`).

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use h2hop_integration::binaries;
use h2hop_integration::front_process::{TlsRaw, UnderAttack, under_attack};
use h2hop_integration::harness::within;
use h2hop_integration::raw_h2::{
    Answer, DATA, END_STREAM, FLOW_CONTROL_ERROR, Frame, HEADERS, PROTOCOL_ERROR, window_update,
};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// One test at a time in this binary.
static SERIAL: Mutex<()> = Mutex::const_new(());

const MIB: u64 = 1024 * 1024;

/// The largest flow-control window (RFC 9113 §6.9.1).
const MAX_WINDOW: u32 = 0x7fff_ffff;

/// The window of a stream that never gets a WINDOW_UPDATE: the default
/// SETTINGS_INITIAL_WINDOW_SIZE (RFC 9113 §6.5.2), which the raw client
/// leaves as it is.
const INITIAL_WINDOW: usize = 65_535;

/// Connections per WINDOW_UPDATE case.
const CONNECTIONS: usize = 20;

/// The front binary of `bin` under attack.
async fn front(bin: &Path) -> UnderAttack {
    under_attack(bin).await.unwrap()
}

/// A GET for `path` to the front on `stream`.
async fn get(raw: &mut TlsRaw, stream: u32, path: &str) {
    let fields = [
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "localhost"),
        (":path", path),
    ];
    raw.request(stream, &fields).await.unwrap();
}

/// A fresh connection; when `on_stream`, a `GET /slow` (held by the app)
/// opens stream 1 first. Then a WINDOW_UPDATE of `increment` on stream 1
/// or on the connection (stream 0); returns how the front answered.
async fn bad_window_update(attack: &UnderAttack, on_stream: bool, increment: u32) -> Answer {
    let mut raw = attack.h2().await.unwrap();
    let stream = u32::from(on_stream);
    if on_stream {
        get(&mut raw, 1, "/slow").await;
    }
    raw.send(&window_update(stream, increment)).await.unwrap();
    raw.answer(stream.max(1)).await
}

/// Runs `case` on [`CONNECTIONS`] connections; every answer must be one
/// of `allowed`.
async fn each_answer(attack: &UnderAttack, what: &str, case: (bool, u32), allowed: &[Answer]) {
    let mut answers: HashMap<String, usize> = HashMap::new();
    for _ in 0..CONNECTIONS {
        let answer = bad_window_update(attack, case.0, case.1).await;
        assert!(allowed.contains(&answer), "{what}: {answer:?}");
        *answers.entry(format!("{answer:?}")).or_default() += 1;
    }
    eprintln!("{what}, {CONNECTIONS} times: the front answered {answers:?}");
}

/// RFC 9113 §6.9: an increment of 0 is a PROTOCOL_ERROR, a connection
/// error on the connection's window and a stream error on a stream's
/// (which a server may also treat as a connection error, §5.4).
#[tokio::test]
async fn window_update_of_zero_is_a_protocol_error() {
    let _serial = SERIAL.lock().await;
    let bin = binaries::dir();
    within(async {
        let attack = front(&bin).await;
        let goaway = Answer::GoAway(PROTOCOL_ERROR);
        let reset = Answer::Reset(PROTOCOL_ERROR);
        each_answer(
            &attack,
            "WINDOW_UPDATE 0 on the connection",
            (false, 0),
            std::slice::from_ref(&goaway),
        )
        .await;
        each_answer(
            &attack,
            "WINDOW_UPDATE 0 on a stream",
            (true, 0),
            &[reset, goaway],
        )
        .await;
        attack
            .finish("zero WINDOW_UPDATEs", 32 * MIB)
            .await
            .unwrap();
    })
    .await;
}

/// RFC 9113 §6.9.1: a window pushed past 2^31−1 ends the connection with
/// FLOW_CONTROL_ERROR for the connection's window, and resets the stream
/// with FLOW_CONTROL_ERROR for a stream's; the connection then still
/// serves another stream.
#[tokio::test]
async fn window_update_past_the_maximum_is_a_flow_control_error() {
    let _serial = SERIAL.lock().await;
    let bin = binaries::dir();
    within(async {
        let attack = front(&bin).await;
        each_answer(
            &attack,
            "WINDOW_UPDATE past 2^31-1 on the connection",
            (false, MAX_WINDOW),
            &[Answer::GoAway(FLOW_CONTROL_ERROR)],
        )
        .await;
        each_answer(
            &attack,
            "WINDOW_UPDATE past 2^31-1 on a stream",
            (true, MAX_WINDOW),
            &[Answer::Reset(FLOW_CONTROL_ERROR)],
        )
        .await;
        let mut raw = attack.h2().await.unwrap();
        get(&mut raw, 1, "/slow").await;
        raw.send(&window_update(1, MAX_WINDOW)).await.unwrap();
        assert_eq!(raw.answer(1).await, Answer::Reset(FLOW_CONTROL_ERROR));
        get(&mut raw, 3, "/hello").await;
        assert_eq!(
            raw.answer(3).await,
            Answer::Status(200),
            "the connection survives"
        );
        attack
            .finish("WINDOW_UPDATEs past 2^31-1", 32 * MIB)
            .await
            .unwrap();
    })
    .await;
}

/// The next frame of `raw`, within [`STALLED_SILENCE`].
async fn next_frame(raw: &mut TlsRaw) -> Option<Frame> {
    raw.next_frame_within(STALLED_SILENCE)
        .await
        .expect("the front sends a frame within STALLED_SILENCE")
}

/// How long the stalled-streams case waits for the front's next frame. In
/// a debug build on two cores, with the app and sidecar in the test's
/// process, the front was seen silent for up to 4.9 s while it took in
/// the eight stalled bodies (the bystander's slowest round trip in the
/// same runs), past the raw client's usual 5 s.
const STALLED_SILENCE: Duration = Duration::from_secs(20);

/// Streams that never read: eight `GET /bytes/16 MiB` on one connection
/// whose window is opened to 1 GiB while the streams keep the initial
/// 65,535 bytes. The front sends each exactly its window (RFC 9113
/// §6.9.1: never more) and holds no more of the 128 MiB than what is in
/// flight behind each stalled stream (its window toward the sidecar, 1
/// MiB, and the HTTP/2 send buffer: 4 MiB each is allowed, about 2.5
/// was measured); a ninth stream on the same connection is served whole
/// meanwhile.
#[tokio::test]
async fn streams_that_never_read_hold_only_their_windows() {
    const STALLED: u32 = 8;
    const BODY: u64 = 16 * MIB;
    let _serial = SERIAL.lock().await;
    let bin = binaries::dir();
    within(async {
        let attack = front(&bin).await;
        let mut raw = attack.h2().await.unwrap();
        raw.send(&window_update(0, 1 << 30)).await.unwrap();
        for i in 0..STALLED {
            get(&mut raw, 1 + 2 * i, &format!("/bytes/{BODY}")).await;
        }
        // Read until every stalled stream has had its window's worth.
        let mut received: HashMap<u32, usize> = HashMap::new();
        let full = |received: &HashMap<u32, usize>| {
            received.len() == STALLED as usize
                && received.values().all(|got| *got >= INITIAL_WINDOW)
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while !full(&received) && Instant::now() < deadline {
            let frame = next_frame(&mut raw)
                .await
                .expect("the connection stays open");
            if frame.kind == DATA {
                *received.entry(frame.stream).or_default() += frame.payload.len();
            }
        }
        // The front's buffers fill behind the spent windows meanwhile.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let ninth = 1 + 2 * STALLED;
        get(&mut raw, ninth, "/bytes/1000").await;
        let (mut ninth_body, mut ninth_ended) = (0, false);
        while !ninth_ended {
            let frame = next_frame(&mut raw)
                .await
                .expect("the ninth stream is served");
            match frame.kind {
                DATA => *received.entry(frame.stream).or_default() += frame.payload.len(),
                HEADERS if frame.stream == ninth => {
                    assert_eq!(frame.answer_for(ninth), Some(Answer::Status(200)));
                }
                _ => {}
            }
            if frame.kind == DATA && frame.stream == ninth {
                ninth_body += frame.payload.len();
                ninth_ended = frame.flags & END_STREAM != 0;
            }
        }
        eprintln!("{STALLED} stalled streams: DATA bytes received per stream {received:?}");
        let attack_name = format!("{STALLED} streams of 16 MiB that never read");
        let bound = u64::from(STALLED) * 4 * MIB + 16 * MIB;
        attack.finish(&attack_name, bound).await.unwrap();
        assert_eq!(ninth_body, 1000);
        for stream in (0..STALLED).map(|i| 1 + 2 * i) {
            assert_eq!(
                received.get(&stream),
                Some(&INITIAL_WINDOW),
                "stream {stream}"
            );
        }
    })
    .await;
}
