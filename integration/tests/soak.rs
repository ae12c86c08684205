//! Nothing lost: at least 10^9 bytes of seeded random WebSocket messages
//! (1 B to 1 MiB, text and binary) cross 50 concurrent tunnels of one mTLS
//! pair, both ways at once, and every byte is accounted for at the far end.
//!
//! Each tunnel talks to the app's `/ws/soak` route. Client → app: the app
//! hashes what arrives (SHA-256 over kind, length and payload of each
//! message) and answers the client's Close with code 1000 and a reason
//! holding that digest and the byte and message counts, which must equal
//! the client's tally of what it sent. App → client: the client hashes what
//! arrives and compares it with the replayed script the app sent. One lost,
//! reordered or altered byte changes a digest and fails the test.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use h2hop_integration::app::soak::{Script, Tally};
use h2hop_integration::client;
use h2hop_integration::harness::Pair;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// Concurrent tunnels through the one pair.
const TUNNELS: u64 = 50;

/// Payload budget of each direction of each tunnel: 50 × 2 × 10^7 = 10^9
/// bytes in all (each script ends with the message that reaches it).
const BYTES_EACH_WAY: u64 = 10_000_000;

/// Tunnel `i` sends script `SEED + 2i` and receives script `SEED + 2i + 1`,
/// so that no two streams carry the same messages.
const SEED: u64 = 0x50a6_0000;

/// The bound on the whole soak: several times what a debug build takes on
/// a busy 2-core machine, so that only a hang (a lost message leaves the
/// client waiting) runs into it.
const SOAK_LIMIT: Duration = Duration::from_secs(300);

/// Peak resident memory the test process may reach: about 10 MiB a
/// tunnel. Each WebSocket end may hold a 1 MiB message being read and one
/// being written, and each proxy its flow-control windows; measured, about
/// 25 MiB plus 5.5 MiB a tunnel. Far below a leak that keeps what went
/// through (10^9 bytes).
const PEAK_RSS_LIMIT: u64 = 512 * 1024 * 1024;

/// What one tunnel saw, for the checks in the test body.
struct Tunnel {
    /// What the client sent.
    sent: Tally,
    /// What the app's script holds, replayed here.
    expected: Tally,
    /// What reached the client.
    received: Tally,
    /// Index of the first received message that differs from the script.
    first_difference: Option<u64>,
    /// The app's answer to the client's Close.
    close: Option<CloseFrame>,
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gigabyte_of_messages_crosses_fifty_tunnels_intact() {
    let started = Instant::now();
    let tunnels = tokio::time::timeout(SOAK_LIMIT, soak())
        .await
        .expect("soak timed out: a tunnel is waiting for a message that never came");
    let elapsed = started.elapsed();
    let (mut bytes, mut messages) = (0, 0);
    for (index, tunnel) in tunnels.iter().enumerate() {
        let close = tunnel
            .close
            .as_ref()
            .unwrap_or_else(|| panic!("tunnel {index}: the app's Close carried no code"));
        assert_eq!(
            (u16::from(close.code), close.reason.as_str()),
            (1000, tunnel.sent.summary().as_str()),
            "tunnel {index}: the app's tally (digest bytes messages) of what the client sent"
        );
        assert_eq!(
            tunnel.received.summary(),
            tunnel.expected.summary(),
            "tunnel {index}: what reached the client (digest bytes messages); \
             first differing message: {:?}",
            tunnel.first_difference
        );
        assert_eq!(tunnel.first_difference, None, "tunnel {index}");
        bytes += tunnel.sent.bytes() + tunnel.received.bytes();
        messages += tunnel.sent.messages() + tunnel.received.messages();
    }
    assert!(
        bytes >= 1_000_000_000,
        "only {bytes} bytes crossed the pair"
    );
    let peak = peak_rss();
    eprintln!(
        "soak: {bytes} bytes in {messages} messages over {TUNNELS} tunnels in {:.1} s; \
         peak RSS {}",
        elapsed.as_secs_f64(),
        peak.map_or("unknown".to_owned(), |peak| format!("{} MiB", peak >> 20)),
    );
    if let Some(peak) = peak {
        assert!(
            peak < PEAK_RSS_LIMIT,
            "peak RSS {} MiB over the {} MiB bound",
            peak >> 20,
            PEAK_RSS_LIMIT >> 20
        );
    }
}

/// Runs every tunnel at once through one mTLS pair; results by index.
async fn soak() -> Vec<Tunnel> {
    let pair = Pair::start().await.unwrap();
    let mut running = JoinSet::new();
    for index in 0..TUNNELS {
        let front = pair.front;
        running.spawn(async move { (index, run_tunnel(front, index).await) });
    }
    let mut tunnels: Vec<Option<Tunnel>> = (0..TUNNELS).map(|_| None).collect();
    while let Some(joined) = running.join_next().await {
        let (index, result) = joined.expect("tunnel task panicked");
        let tunnel = result.unwrap_or_else(|err| panic!("tunnel {index}: {err:#}"));
        tunnels[index as usize] = Some(tunnel);
    }
    tunnels.into_iter().flatten().collect()
}

/// One tunnel: sends its script while it receives the app's, then closes
/// with 1000 and returns the app's Close.
async fn run_tunnel(front: SocketAddr, index: u64) -> anyhow::Result<Tunnel> {
    let (up_seed, down_seed) = (SEED + 2 * index, SEED + 2 * index + 1);
    let path = format!("/ws/soak?seed={down_seed}&bytes={BYTES_EACH_WAY}");
    let (ws, response) = client::ws_connect(front, &path, &[]).await?;
    anyhow::ensure!(response.status() == 101, "upgrade refused: {response:?}");
    let (mut sink, mut stream) = ws.split();
    let send = async {
        let mut sent = Tally::default();
        for message in Script::new(up_seed, BYTES_EACH_WAY) {
            sent.add(&message);
            sink.send(message).await?;
        }
        anyhow::Ok(sent)
    };
    let receive = async {
        let (mut expected, mut received) = (Tally::default(), Tally::default());
        let mut first_difference = None;
        for (n, wanted) in (0u64..).zip(Script::new(down_seed, BYTES_EACH_WAY)) {
            let message = loop {
                match stream.next().await {
                    Some(Ok(message)) if message.is_ping() || message.is_pong() => continue,
                    Some(Ok(Message::Close(frame))) => {
                        anyhow::bail!("app closed after {n} messages: {frame:?}")
                    }
                    Some(Ok(message)) => break message,
                    Some(Err(err)) => return Err(err.into()),
                    None => anyhow::bail!("tunnel ended after {n} messages"),
                }
            };
            if first_difference.is_none() && message != wanted {
                first_difference = Some(n);
            }
            received.add(&message);
            expected.add(&wanted);
        }
        anyhow::Ok((expected, received, first_difference))
    };
    let (sent, (expected, received, first_difference)) = tokio::try_join!(send, receive)?;
    let mut ws = sink.reunite(stream)?;
    let close = client::close_handshake(&mut ws, 1000, "done").await?;
    Ok(Tunnel {
        sent,
        expected,
        received,
        first_difference,
        close,
    })
}

/// The process's peak resident set (`VmHWM`), where Linux reports it.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
