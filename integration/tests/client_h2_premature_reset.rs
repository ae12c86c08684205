//! Rapid reset past h2's own limit, at the front's client-facing HTTP/2:
//! 100 HEADERS, a PING round trip (so the front has taken every stream and
//! started it toward the sidecar), then 100 RST_STREAM, over and over.
//! h2 counts only resets of streams not yet accepted, so it never trips;
//! each reset still cost the front a stream to the sidecar. The front must
//! end such a connection as excessive load (RFC 9113 §10.5) once 200
//! streams, and half of all, were reset before their answer, with bounded
//! memory, while a bystander tunnel echoes. Its GOAWAY says NO_ERROR:
//! hyper's HTTP/2 server closes a connection early only by a graceful
//! shutdown, and §10.5 leaves the code to the server (ENHANCE_YOUR_CALM is
//! a MAY); the connection is closed a second later all the same.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use h2hop_integration::binaries;
use h2hop_integration::front_process::under_attack;
use h2hop_integration::harness::within;
use h2hop_integration::raw_h2::{
    Answer, CANCEL, END_HEADERS, END_STREAM, ENHANCE_YOUR_CALM, GOAWAY, HEADERS, NO_ERROR, block,
    frame, rst_stream,
};

const MIB: u64 = 1024 * 1024;

/// Streams one connection may reset at most before the test gives up.
const MAX_STREAMS: u32 = 5000;

#[tokio::test]
async fn resets_after_the_front_took_the_streams_end_the_connection() {
    let bin = binaries::dir();
    within(async {
        let attack = under_attack(&bin).await.unwrap();
        let fields = [
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "localhost"),
            (":path", "/slow"),
        ];
        let mut raw = attack.h2().await.unwrap();
        let (mut reset, mut goaways, mut ended) = (0u32, Vec::new(), None);
        while reset < MAX_STREAMS && ended.is_none() {
            let ids: Vec<u32> = (0..100).map(|i| 1 + 2 * (reset + i)).collect();
            let burst: Vec<u8> = ids
                .iter()
                .flat_map(|id| frame(HEADERS, END_HEADERS | END_STREAM, *id, &block(&fields)))
                .collect();
            let resets: Vec<u8> = ids.iter().flat_map(|id| rst_stream(*id, CANCEL)).collect();
            if raw.send(&burst).await.is_err() {
                ended = Some(Answer::Closed);
                break;
            }
            match raw.until_ping_ack(u64::from(reset)).await {
                None => ended = Some(Answer::Closed),
                Some(frames) => goaways.extend(
                    frames
                        .iter()
                        .filter(|f| f.kind == GOAWAY)
                        .map(|f| (f.error_code(4), f.debug_data())),
                ),
            }
            if !goaways.is_empty() {
                ended = Some(Answer::GoAway(goaways[0].0));
            }
            if ended.is_none() && raw.send(&resets).await.is_err() {
                ended = Some(Answer::Closed);
            }
            reset += 100;
        }
        eprintln!(
            "rapid reset after the PING round trip: {reset} streams, then {ended:?}; GOAWAYs (code, debug data): {goaways:?}"
        );
        attack
            .finish("rapid reset after the PING round trip", 32 * MIB)
            .await
            .unwrap();
        // GOAWAY, or the close right behind it when that came first to the
        // reader (the GOAWAY is then lost with the reader's buffer).
        assert!(
            matches!(
                ended,
                Some(Answer::GoAway(NO_ERROR | ENHANCE_YOUR_CALM) | Answer::Closed)
            ),
            "{ended:?}"
        );
        assert!(reset <= 600, "cut off only after {reset} streams");
    })
    .await;
}
