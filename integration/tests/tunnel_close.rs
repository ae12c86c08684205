//! Raw tunnels end to end, byte by byte: ordering, half-close, resets and
//! flow control across client → front → HTTP/2 stream → sidecar → app.
//!
//! Every test upgrades to one of the app's `/raw/*` routes with
//! `client::raw_upgrade` and then speaks plain TCP, so each FIN, RST and
//! byte is under the test's control.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::io::ErrorKind;
use std::sync::Arc;
use std::time::Duration;

use h2hop_integration::app::{LAST_WORDS, RawOutcome};
use h2hop_integration::client;
use h2hop_integration::harness::{Pair, within};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// How long a reset may take to cross the pair and still count as propagated.
const RESET_WITHIN: Duration = Duration::from_secs(5);

/// Upgrades to `path` through the front and returns the tunnel and the
/// bytes already read past the 101 (tunnel data, usually none).
async fn open_raw(pair: &Pair, path: &str) -> (TcpStream, Vec<u8>) {
    let up = client::raw_upgrade(pair.front, path, "Upgrade", &[])
        .await
        .unwrap();
    assert_eq!(up.status, 101, "upgrade to {path} was refused");
    (up.stream, up.leftover)
}

/// `len` pseudo-random bytes (xorshift64*), so a shifted, dropped or
/// repeated chunk cannot go unnoticed the way it can with a short pattern.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Index of the first differing byte, for failure messages on big buffers.
fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or_else(|| (a.len() != b.len()).then(|| a.len().min(b.len())))
}

/// Reads until `got` holds `len` bytes; fails on EOF or error before that.
async fn read_to_len(
    reader: &mut (impl tokio::io::AsyncRead + Unpin),
    got: &mut Vec<u8>,
    len: usize,
) {
    let mut buf = vec![0u8; 64 * 1024];
    while got.len() < len {
        let n = reader.read(&mut buf).await.unwrap();
        assert_ne!(n, 0, "tunnel ended after {} of {len} bytes", got.len());
        got.extend_from_slice(&buf[..n]);
    }
}

/// RFC 8441 §5: the tunnel carries the byte stream unchanged. 8 MiB of
/// noise, written in uneven chunks while the echo is read concurrently,
/// comes back complete and in order.
#[tokio::test]
async fn raw_tunnel_echoes_8_mib_of_noise_byte_for_byte_in_order() {
    within(async {
        let pair = Pair::start().await.unwrap();
        let (stream, mut got) = open_raw(&pair, "/raw/echo").await;
        let sent = noise(8441, 8 * 1024 * 1024);
        let (mut rd, mut wr) = stream.into_split();
        let write = async {
            // Uneven sizes put chunk edges everywhere relative to frames.
            let sizes = [1usize, 1000, 16_384, 16_385, 65_536, 131_071];
            let mut rest = sent.as_slice();
            for size in sizes.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (chunk, tail) = rest.split_at((*size).min(rest.len()));
                wr.write_all(chunk).await.unwrap();
                rest = tail;
            }
        };
        let read = read_to_len(&mut rd, &mut got, sent.len());
        tokio::join!(write, read);
        assert_eq!(
            first_difference(&got, &sent),
            None,
            "echo differs from what was sent"
        );
    })
    .await;
}

/// RFC 8441 §5 (N14): the client's FIN becomes END_STREAM and then the
/// app's EOF; the other direction stays open, so every byte still comes
/// back before the client sees EOF.
#[tokio::test]
async fn client_half_close_still_receives_all_echoed_bytes_then_eof() {
    within(async {
        let pair = Pair::start().await.unwrap();
        let (stream, mut got) = open_raw(&pair, "/raw/echo").await;
        let sent = noise(14, 300_000);
        let (mut rd, mut wr) = stream.into_split();
        wr.write_all(&sent).await.unwrap();
        // Half-close: FIN on our write side only; reading goes on.
        wr.shutdown().await.unwrap();
        rd.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), sent.len());
        assert_eq!(first_difference(&got, &sent), None, "echo differs");
        assert_eq!(
            pair.app.next_raw_outcome().await,
            RawOutcome::Eof {
                bytes: sent.len() as u64
            }
        );
    })
    .await;
}

/// RFC 8441 §5 (N14): the app's FIN (sent by `/raw/echo` once it saw ours)
/// becomes END_STREAM and then a FIN to the client: with every echo already
/// read, the client's next read returns 0, an orderly end, not an error.
#[tokio::test]
async fn app_half_close_reaches_client_as_clean_eof() {
    within(async {
        let pair = Pair::start().await.unwrap();
        let (mut stream, mut got) = open_raw(&pair, "/raw/echo").await;
        stream.write_all(b"ping before close").await.unwrap();
        read_to_len(&mut stream, &mut got, b"ping before close".len()).await;
        assert_eq!(got, b"ping before close");
        stream.shutdown().await.unwrap();
        let mut buf = [0u8; 64];
        let n = stream.read(&mut buf).await.unwrap();
        assert_eq!(n, 0, "expected EOF, got {:?}", &buf[..n]);
        assert_eq!(
            pair.app.next_raw_outcome().await,
            RawOutcome::Eof { bytes: 17 }
        );
    })
    .await;
}

/// RFC 8441 §5 (N14), RFC 9113 §8.5 (N27): the app's TCP RST becomes
/// RST_STREAM at the sidecar and a TCP RST to the client at the front, so
/// the client's read fails with ConnectionReset rather than ending cleanly.
#[tokio::test]
async fn app_reset_reaches_client_as_connection_reset() {
    within(async {
        let pair = Pair::start().await.unwrap();
        let (mut stream, leftover) = open_raw(&pair, "/raw/reset").await;
        assert!(leftover.is_empty());
        // `/raw/reset` resets once it has read a byte.
        stream.write_all(b"x").await.unwrap();
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(RESET_WITHIN, stream.read(&mut buf))
            .await
            .expect("the reset did not reach the client");
        match read {
            Err(err) => assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}"),
            Ok(n) => panic!("read returned {n} bytes (0 = clean EOF) instead of a reset"),
        }
    })
    .await;
}

/// Nothing lost to a reset: what the app wrote right before its RST reaches
/// the client whole, then the reset does, as it would directly. The
/// sidecar reads both at once, so the RST_STREAM must wait for the DATA
/// already queued on the stream (an explicit reset in h2 drops the queue).
#[tokio::test]
async fn app_reply_right_before_its_reset_reaches_the_client() {
    within(async {
        let pair = Pair::start().await.unwrap();
        for round in 0..5 {
            let (mut stream, mut got) = open_raw(&pair, "/raw/reply-reset").await;
            stream.write_all(b"x").await.unwrap();
            let mut buf = [0u8; 4096];
            let err = loop {
                match tokio::time::timeout(RESET_WITHIN, stream.read(&mut buf))
                    .await
                    .expect("the reset did not reach the client")
                {
                    Ok(0) => panic!("round {round}: clean EOF, not a reset"),
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(err) => break err,
                }
            };
            assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
            assert_eq!(
                first_difference(&got, &LAST_WORDS),
                None,
                "round {round}: {} of {} bytes before the reset",
                got.len(),
                LAST_WORDS.len()
            );
        }
    })
    .await;
}

/// RFC 8441 §5 (N14), RFC 9113 §8.5 (N27): the client's TCP RST becomes
/// RST_STREAM(CANCEL) at the front and a TCP RST to the app at the sidecar.
#[tokio::test]
async fn client_reset_reaches_app_as_connection_reset() {
    within(async {
        let pair = Pair::start().await.unwrap();
        let (mut stream, _) = open_raw(&pair, "/raw/hold").await;
        stream.write_all(b"some bytes first").await.unwrap();
        // Zero linger: close() sends RST instead of FIN.
        stream.set_zero_linger().unwrap();
        drop(stream);
        let outcome = tokio::time::timeout(RESET_WITHIN, pair.app.next_raw_outcome())
            .await
            .expect("the app saw no end of the tunnel");
        assert_eq!(outcome, RawOutcome::Reset);
    })
    .await;
}

/// RFC 9113 §5.2 flow control on a tunnel: while the client does
/// not read, the pair stops reading from it once windows and socket buffers
/// are full, so a big write stalls instead of being buffered whole in the
/// front or sidecar; once the client reads, everything arrives intact.
#[tokio::test]
async fn unread_tunnel_stalls_the_writer_and_then_delivers_everything() {
    within(async {
        let pair = Pair::start().await.unwrap();
        let (stream, mut got) = open_raw(&pair, "/raw/echo").await;
        // Socket buffers along the chain hold some 20-26 MiB on loopback
        // (measured); 64 MiB is well beyond them, so a writer that gets
        // through means the front or sidecar buffers without bound.
        let total = 64 * 1024 * 1024;
        let sent = Arc::new(noise(5, total));
        let (mut rd, mut wr) = stream.into_split();
        let mut writer = tokio::spawn({
            let sent = sent.clone();
            async move {
                for chunk in sent.chunks(256 * 1024) {
                    wr.write_all(chunk).await.unwrap();
                }
                wr
            }
        });
        // Nobody reads the echo: the writer must not get through.
        let finished = tokio::time::timeout(Duration::from_secs(2), &mut writer).await;
        assert!(
            finished.is_err(),
            "the writer pushed all {total} bytes while nobody read the echo: \
             something buffers without bound"
        );
        read_to_len(&mut rd, &mut got, total).await;
        writer.await.unwrap();
        assert_eq!(first_difference(&got, &sent), None, "echo differs");
    })
    .await;
}
