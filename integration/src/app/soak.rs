//! The soak route of the test app, `/ws/soak?seed=S&bytes=N`, and the
//! seeded message scripts it shares with `integration/tests/soak.rs`.
//!
//! Both directions of one WebSocket carry a [`Script`]. The app sends the
//! script for `seed` while it keeps a [`Tally`] of every message the client
//! sends; when the client's Close arrives, the app answers it with
//! Close(1000, [`Tally::summary`]) of what it received. The test replays
//! the same scripts, so it knows what each end should have seen without
//! either end sending a digest in band.

use std::fmt::Write as _;
use std::sync::OnceLock;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use ring::digest::{Context, SHA256};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// Largest message a [`Script`] sends: 1 MiB.
pub const MAX_MESSAGE: usize = 1 << 20;

/// Largest `bytes` the route accepts, so that a stray request to the demo
/// app cannot ask for an endless stream.
pub const MAX_SCRIPT_BYTES: u64 = 1 << 30;

/// Seed of the pools every script cuts its messages from.
const POOL_SEED: u64 = 0x6832_686f_7020_706f;

/// Random bytes and random text that messages are cut from, at random
/// offsets. Drawing fresh random bytes for every message would cost more
/// than carrying them in a debug build; twice [`MAX_MESSAGE`] long, so that
/// even the largest message can start anywhere in the first half.
struct Pools {
    binary: Bytes,
    text: String,
}

fn pools() -> &'static Pools {
    static POOLS: OnceLock<Pools> = OnceLock::new();
    POOLS.get_or_init(|| {
        let mut rng = SmallRng::seed_from_u64(POOL_SEED);
        let mut binary = vec![0u8; 2 * MAX_MESSAGE];
        rng.fill_bytes(&mut binary);
        let mut text = String::with_capacity(2 * MAX_MESSAGE + 4);
        while text.len() < 2 * MAX_MESSAGE {
            // Mostly ASCII; one character in four is any scalar value (2 to
            // 4 UTF-8 bytes, mostly 4), which chunk boundaries on the way
            // (TLS records, DATA frames, reads) can split.
            let c = if rng.random_ratio(3, 4) {
                char::from(rng.random_range(b' '..=b'~'))
            } else {
                rng.random::<char>()
            };
            text.push(c);
        }
        Pools {
            binary: Bytes::from(binary),
            text,
        }
    })
}

/// A seeded sequence of Text and Binary messages whose payloads add up to
/// at least the byte budget. It opens with binary messages of the edge
/// sizes, 1 B and [`MAX_MESSAGE`]; after that each size is uniform below a
/// random power of two up to 2^20, so that small and large messages are
/// both common (mean about 50 KiB), and one message in four is text (its
/// size moved to a character boundary). The same seed gives the same
/// messages within one build (`SmallRng` may differ across platforms).
pub struct Script {
    rng: SmallRng,
    left: u64,
    count: u64,
}

impl Script {
    /// The script for `seed`, ending with the message that reaches `bytes`.
    pub fn new(seed: u64, bytes: u64) -> Script {
        Script {
            rng: SmallRng::seed_from_u64(seed),
            left: bytes,
            count: 0,
        }
    }

    /// The next message's length and whether it is text.
    fn next_shape(&mut self) -> (usize, bool) {
        match self.count {
            0 => (1, false),
            1 => (MAX_MESSAGE, false),
            _ => {
                let bits = self.rng.random_range(0..=MAX_MESSAGE.trailing_zeros());
                let len = self.rng.random_range(1..=1usize << bits);
                (len, self.rng.random_ratio(1, 4))
            }
        }
    }

    /// `len` bytes from a random offset of the binary pool (no copy).
    fn binary(&mut self, len: usize) -> Message {
        let pool = &pools().binary;
        let start = self.rng.random_range(0..=pool.len() - len);
        Message::Binary(pool.slice(start..start + len))
    }

    /// About `len` bytes of text from a random offset of the text pool:
    /// both ends move back to a character boundary, and a slice that comes
    /// out empty takes its first whole character instead.
    fn text(&mut self, len: usize) -> Message {
        let pool = &pools().text;
        let mut start = self.rng.random_range(0..=pool.len() - len);
        while !pool.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = start + len;
        while !pool.is_char_boundary(end) {
            end -= 1;
        }
        if end == start {
            end = pool[start..]
                .chars()
                .next()
                .map_or(start, |c| start + c.len_utf8());
        }
        Message::text(&pool[start..end])
    }
}

impl Iterator for Script {
    type Item = Message;

    fn next(&mut self) -> Option<Message> {
        if self.left == 0 {
            return None;
        }
        let (len, text) = self.next_shape();
        let message = if text {
            self.text(len)
        } else {
            self.binary(len)
        };
        self.left = self.left.saturating_sub(message.len() as u64);
        self.count += 1;
        Some(message)
    }
}

/// What one direction of a soak tunnel carried: a SHA-256 over every data
/// message, each hashed as its kind (`T` or `B`), its length (8 bytes, big
/// endian) and its payload, so that a merged, split or retyped message
/// changes the digest as surely as a lost, reordered or altered byte; and
/// the payload bytes and messages counted. The SHA-256 is ring's, in
/// assembly even in a debug build, where a Rust one is ten times slower and
/// would take most of the soak test's time.
#[derive(Clone)]
pub struct Tally {
    hash: Context,
    bytes: u64,
    messages: u64,
}

impl Default for Tally {
    fn default() -> Tally {
        Tally {
            hash: Context::new(&SHA256),
            bytes: 0,
            messages: 0,
        }
    }
}

impl Tally {
    /// Adds a Text or Binary message; control messages are not counted.
    pub fn add(&mut self, message: &Message) {
        let (kind, payload): (u8, &[u8]) = match message {
            Message::Text(text) => (b'T', text.as_bytes()),
            Message::Binary(bytes) => (b'B', bytes),
            _ => return,
        };
        self.hash.update(&[kind]);
        self.hash.update(&(payload.len() as u64).to_be_bytes());
        self.hash.update(payload);
        self.bytes += payload.len() as u64;
        self.messages += 1;
    }

    /// Payload bytes added so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Messages added so far.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// `DIGEST BYTES MESSAGES`, the digest in lower-case hex: at most
    /// 64 + 2 × 21 = 106 bytes, so it fits the 123 bytes a Close reason may
    /// take (RFC 6455 §5.5: a control payload is at most 125 bytes, two of
    /// them the code).
    pub fn summary(&self) -> String {
        let mut summary = String::with_capacity(106);
        for byte in self.hash.clone().finish().as_ref() {
            // Writing to a String cannot fail.
            let _ = write!(summary, "{byte:02x}");
        }
        let _ = write!(summary, " {} {}", self.bytes, self.messages);
        summary
    }
}

/// `/ws/soak`: sends [`Script::new`]`(seed, bytes)` while tallying what the
/// client sends, until the client's Close; then answers that Close with
/// code 1000 and the [`Tally::summary`] of what arrived, and shuts down.
/// The client must not close before it has every message of the script:
/// after a Close nothing more may be sent (RFC 6455 §5.5.1).
pub(super) async fn ws_soak(io: TokioIo<Upgraded>, seed: u64, bytes: u64) {
    let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
    let (mut sink, mut stream) = ws.split();
    let send = async {
        for message in Script::new(seed, bytes) {
            sink.send(message).await?;
        }
        Ok::<(), WsError>(())
    };
    let receive = async {
        let mut tally = Tally::default();
        while let Some(message) = stream.next().await {
            match message? {
                Message::Close(_) => return Ok(Some(tally)),
                message => tally.add(&message),
            }
        }
        Ok(None)
    };
    let tally = match tokio::try_join!(send, receive) {
        Ok(((), Some(tally))) => tally,
        Ok(((), None)) => {
            tracing::debug!("app soak tunnel ended without a close");
            return;
        }
        Err(err) => {
            tracing::debug!(error = %err, "app soak tunnel ended with error");
            return;
        }
    };
    let Ok(ws) = sink.reunite(stream) else {
        return;
    };
    answer_close(ws.into_inner(), tally).await;
}

/// Writes Close(1000, summary) straight onto the socket and shuts it down.
/// Not `WebSocketStream::close`: tungstenite has already queued an echo of
/// the client's Close (RFC 6455 §5.5.1 only says a reply "typically" echoes
/// the code) and would send that instead; it sends the echo on the next
/// read, write or flush, so a stream never touched again never sends it.
/// The frame is unmasked, as from a server (RFC 6455 §5.1).
async fn answer_close(mut io: TokioIo<Upgraded>, tally: Tally) {
    let reply = CloseFrame {
        code: CloseCode::Normal,
        reason: tally.summary().into(),
    };
    let mut wire = Vec::with_capacity(128);
    if let Err(err) = Frame::close(Some(reply)).format(&mut wire) {
        tracing::debug!(error = %err, "app soak close did not format");
        return;
    }
    let sent = async {
        io.write_all(&wire).await?;
        io.shutdown().await
    };
    if let Err(err) = sent.await {
        tracing::debug!(error = %err, "app soak close failed");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio::net::TcpListener;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_util::sync::CancellationToken;

    use super::{MAX_MESSAGE, MAX_SCRIPT_BYTES, Script, Tally};
    use crate::app::TestApp;
    use crate::client;

    const TIMEOUT: Duration = Duration::from_secs(10);

    #[test]
    fn script_is_seeded_opens_with_edge_sizes_and_reaches_its_budget() {
        let budget = 4_000_000;
        let messages: Vec<Message> = Script::new(7, budget).collect();
        assert_eq!(messages, Script::new(7, budget).collect::<Vec<_>>());
        assert_ne!(messages, Script::new(8, budget).collect::<Vec<_>>());
        let lens: Vec<usize> = messages.iter().map(Message::len).collect();
        assert_eq!(lens[..2], [1, MAX_MESSAGE]);
        assert!(lens.iter().all(|len| (1..=MAX_MESSAGE).contains(len)));
        let total: u64 = lens.iter().map(|len| *len as u64).sum();
        let last = lens.last().copied().unwrap_or(0) as u64;
        assert!(total >= budget && total - last < budget, "total {total}");
        assert!(messages.iter().any(Message::is_text));
        assert!(messages.iter().any(Message::is_binary));
    }

    #[test]
    fn tally_tells_apart_a_split_message_and_a_retyped_one() {
        let tally = |messages: &[Message]| {
            let mut tally = Tally::default();
            messages.iter().for_each(|message| tally.add(message));
            tally.summary()
        };
        let whole = tally(&[Message::binary(b"abcd".to_vec())]);
        let split = tally(&[
            Message::binary(b"ab".to_vec()),
            Message::binary(b"cd".to_vec()),
        ]);
        let text = tally(&[Message::text("abcd")]);
        assert!(whole.ends_with(" 4 1") && split.ends_with(" 4 2"));
        assert_ne!(whole[..64], split[..64]);
        assert_ne!(whole[..64], text[..64]);
    }

    #[test]
    fn largest_summary_fits_a_close_reason() {
        let tally = Tally {
            bytes: u64::MAX,
            messages: u64::MAX,
            ..Tally::default()
        };
        assert_eq!(tally.summary().len(), 106);
        assert!(tally.summary().len() <= 123);
    }

    /// The route sends its script, and answers the client's Close with 1000
    /// and the tally of what the client sent.
    #[tokio::test]
    async fn soak_route_sends_its_script_and_answers_close_with_tally() -> anyhow::Result<()> {
        tokio::time::timeout(TIMEOUT, async {
            let shutdown = CancellationToken::new();
            let _guard = shutdown.clone().drop_guard();
            let app = TestApp::spawn(TcpListener::bind("127.0.0.1:0").await?, shutdown)?;
            let (mut ws, _) =
                client::ws_connect(app.addr, "/ws/soak?seed=9&bytes=3000000", &[]).await?;
            let mut sent = Tally::default();
            for message in [Message::text("héllo ✓"), Message::binary(vec![0u8, 1, 2])] {
                sent.add(&message);
                ws.send(message).await?;
            }
            for wanted in Script::new(9, 3_000_000) {
                assert!(client::next_message(&mut ws).await? == wanted);
            }
            let frame = client::close_handshake(&mut ws, 1000, "done").await?;
            let frame = frame.ok_or_else(|| anyhow::anyhow!("close without a frame"))?;
            assert_eq!(
                (u16::from(frame.code), frame.reason.as_str()),
                (1000, sent.summary().as_str())
            );
            assert!(ws.next().await.is_none());
            Ok(())
        })
        .await?
    }

    #[tokio::test]
    async fn soak_route_refuses_a_bad_query() -> anyhow::Result<()> {
        tokio::time::timeout(TIMEOUT, async {
            let shutdown = CancellationToken::new();
            let _guard = shutdown.clone().drop_guard();
            let app = TestApp::spawn(TcpListener::bind("127.0.0.1:0").await?, shutdown)?;
            let too_many = format!("/ws/soak?seed=1&bytes={}", MAX_SCRIPT_BYTES + 1);
            for path in [
                "/ws/soak",
                "/ws/soak?seed=1",
                "/ws/soak?seed=x&bytes=1",
                &too_many,
            ] {
                let up = client::raw_upgrade(app.addr, path, "Upgrade", &[]).await?;
                assert_eq!(up.status, 400, "{path}");
            }
            Ok(())
        })
        .await?
    }
}
