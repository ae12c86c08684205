//! One client must never hurt another. The front carries every client's
//! streams on one shared HTTP/2 connection to the sidecar, so whatever a
//! client makes the front do on that connection must not make the sidecar
//! tear it down. While an attacker runs
//!
//! - bursts of 10, 100 and 1,000 streams (GETs and RFC 8441 extended
//!   CONNECTs, held open by the app) that it ends all at once, by
//!   RST_STREAM or by dropping its connections, on the front's TLS
//!   listener (HTTP/2);
//! - bursts of as many HTTP/1.1 connections, each sending a request or an
//!   upgrade, dropped all at once, on the plain listener;
//! - a rapid-reset flood on each listener (HTTP/2: 100 HEADERS, a PING
//!   round trip so that the front has taken them, 100 RST_STREAM, over
//!   and over; HTTP/1.1: connections that send a request and reset at
//!   once),
//!
//! a bystander WebSocket tunnel and bystander plain requests, both through
//! the plain listener, keep working during and after, and the front keeps
//! its one connection to the sidecar (a sidecar that ended it with GOAWAY
//! would make the front open a second one). Figures are printed
//! (`--nocapture`).
//!
//! The front's per-connection stream limit (SETTINGS_MAX_CONCURRENT_STREAMS,
//! RFC 9113 §5.1.2) caps an HTTP/2 burst per connection: a burst larger
//! than the limit is spread over as many connections as it takes.
//!
//! Every test takes [`SERIAL`]: each floods a 2-core machine.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use h2hop_integration::bystander::{Bystander, Report};
use h2hop_integration::harness::{Pair, within};
use h2hop_integration::raw_h2::{
    CANCEL, END_HEADERS, END_STREAM, HEADERS, REFUSED_STREAM, RST_STREAM, Raw, block, frame,
    rst_stream, tls_h2,
};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio::time::{Instant, sleep};

/// One test at a time in this binary.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// Stream counts of the bursts.
const BURSTS: [usize; 3] = [10, 100, 1000];

/// Waits between the moment the front has taken a burst and its end: the
/// streams are then at different steps on their way to the sidecar.
const END_AFTER: [Duration; 2] = [Duration::ZERO, Duration::from_millis(20)];

/// How long each rapid-reset flood runs.
const FLOOD_FOR: Duration = Duration::from_secs(5);

/// SETTINGS_MAX_CONCURRENT_STREAMS (RFC 9113 §6.5.2).
const MAX_CONCURRENT_STREAMS: u16 = 0x3;

/// What an attacking stream asks for: both are held by the app (`/slow`
/// is answered only at shutdown), so every stream is still open when the
/// attacker ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Get,
    ExtendedConnect,
}

const KINDS: [Kind; 2] = [Kind::Get, Kind::ExtendedConnect];

/// How an attacker ends its HTTP/2 burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// RST_STREAM(CANCEL) on every stream, connections kept.
    Reset,
    /// The connections dropped, no RST_STREAM.
    Drop,
}

/// The pair under attack: mutual TLS toward the sidecar, as deployed, a
/// TLS listener for clients, and a count of the front's connections to
/// the sidecar. The sidecar takes 4,000 streams per connection, so that a
/// burst of 1,000 and the bystanders fit on one: the front opens another
/// connection only when the sidecar has ended the first (or when it is
/// full), and a second one would hide what this test is about.
async fn pair() -> Pair {
    Pair::builder()
        .client_tls()
        .count_upstream_connections()
        .max_streams(4000)
        .start()
        .await
        .unwrap()
}

/// A bystander tunnel and bystander requests on the plain listener.
struct Bystanders {
    tunnel: Bystander,
    requests: Bystander,
}

impl Bystanders {
    async fn start(pair: &Pair) -> Bystanders {
        Bystanders {
            tunnel: Bystander::tunnel(pair.front).await.unwrap(),
            requests: Bystander::requests(pair.front).await.unwrap(),
        }
    }

    /// "cut" once either has stopped on a failure, else "up".
    fn state(&self) -> &'static str {
        if self.tunnel.is_cut() || self.requests.is_cut() {
            "cut"
        } else {
            "up"
        }
    }

    /// Lets a teardown caused by the last attack show, stops both, prints
    /// their reports and fails unless both ran unharmed on one upstream
    /// connection.
    async fn check(self, pair: &Pair, attack: &str) {
        // Not a wait for an event: the bystanders keep running for a
        // second after the attack, the "after" they must survive, so that
        // a teardown the attack set off late still cuts them.
        sleep(Duration::from_secs(1)).await;
        let reports: [Report; 2] = [self.tunnel.stop().await, self.requests.stop().await];
        let upstream = pair.upstream_connections();
        eprintln!("{attack}: bystander {}", reports[0]);
        eprintln!("{attack}: bystander {}", reports[1]);
        eprintln!("{attack}: connections from the front to the sidecar: {upstream}");
        for report in &reports {
            assert!(report.failure.is_none(), "{attack}: the bystander {report}");
            assert!(report.round_trips > 0, "{attack}: the bystander {report}");
        }
        assert_eq!(
            upstream, 1,
            "{attack}: the sidecar ended the shared connection"
        );
    }
}

/// The field block of an attacking stream `kind`.
fn headers(kind: Kind, stream: u32) -> Vec<u8> {
    let (fields, flags) = match kind {
        Kind::Get => (
            vec![
                (":method", "GET"),
                (":scheme", "https"),
                (":authority", "localhost"),
                (":path", "/slow"),
            ],
            END_HEADERS | END_STREAM,
        ),
        Kind::ExtendedConnect => (
            vec![
                (":method", "CONNECT"),
                (":protocol", "websocket"),
                (":scheme", "https"),
                (":authority", "localhost"),
                (":path", "/slow"),
                ("sec-websocket-version", "13"),
            ],
            END_HEADERS,
        ),
    };
    frame(HEADERS, flags, stream, &block(&fields))
}

type TlsRaw = Raw<tokio_rustls::client::TlsStream<TcpStream>>;

async fn h2_connect(pair: &Pair) -> TlsRaw {
    let tls = tls_h2(pair.front_tls.unwrap(), pair.pki.ca_der())
        .await
        .unwrap();
    Raw::handshake(tls).await.unwrap()
}

/// What one HTTP/2 burst took.
struct Burst {
    connections: usize,
    limit: u32,
    refused: usize,
}

/// Opens `n` streams of `kind` on the front's TLS listener, as many per
/// connection as its stream limit allows; waits until the front has read
/// them all (its PING ACK), then `after`, then ends them all by `end`.
async fn h2_burst(pair: &Pair, n: usize, kind: Kind, end: End, after: Duration) -> Burst {
    let mut open: Vec<(TlsRaw, Vec<u32>)> = Vec::new();
    let (mut left, mut limit) = (n, u32::MAX);
    while left > 0 {
        let mut raw = h2_connect(pair).await;
        limit = raw
            .settings
            .get(&MAX_CONCURRENT_STREAMS)
            .copied()
            .unwrap_or(u32::MAX);
        let count = left.min(limit as usize);
        let ids: Vec<u32> = (0..count as u32).map(|i| 1 + 2 * i).collect();
        let burst: Vec<u8> = ids.iter().flat_map(|id| headers(kind, *id)).collect();
        raw.send(&burst).await.unwrap();
        open.push((raw, ids));
        left -= count;
    }
    let mut refused = 0;
    for (raw, _) in &mut open {
        let before_ack = raw
            .until_ping_ack(7)
            .await
            .expect("the front took the burst");
        refused += before_ack
            .iter()
            .filter(|f| f.kind == RST_STREAM && f.error_code(0) == REFUSED_STREAM)
            .count();
    }
    // The streams' age when they end is what the burst varies (see
    // END_AFTER), not a wait for the front.
    sleep(after).await;
    let connections = open.len();
    if end == End::Reset {
        for (raw, ids) in &mut open {
            let resets: Vec<u8> = ids.iter().flat_map(|id| rst_stream(*id, CANCEL)).collect();
            raw.send(&resets).await.unwrap();
        }
        // The resets are read before the connections go (PING is ordered).
        for (raw, _) in &mut open {
            raw.until_ping_ack(8).await;
        }
    }
    drop(open);
    Burst {
        connections,
        limit,
        refused,
    }
}

/// Every burst size, both kinds, both waits, on the TLS listener, ended
/// by `end`.
async fn h2_bursts(end: End) {
    let pair = pair().await;
    let bystanders = Bystanders::start(&pair).await;
    let mut tried = 0;
    for n in BURSTS {
        for kind in KINDS {
            for after in END_AFTER {
                let burst = h2_burst(&pair, n, kind, end, after).await;
                tried += 1;
                eprintln!(
                    "h2 burst: {n} {kind:?} streams on {} connection(s) (limit {} per connection), {} refused, ended by {end:?} {} ms after the front took them; connections to the sidecar so far: {}, bystanders {}",
                    burst.connections,
                    burst.limit,
                    burst.refused,
                    after.as_millis(),
                    pair.upstream_connections(),
                    bystanders.state(),
                );
            }
        }
    }
    let attack = format!("{tried} HTTP/2 bursts ended by {end:?}");
    bystanders.check(&pair, &attack).await;
}

/// Bursts of 10, 100 and 1,000 streams on the TLS (HTTP/2) listener,
/// each ended by RST_STREAM on every stream.
#[tokio::test]
async fn h2_bursts_ended_by_reset_leave_other_clients_alone() {
    let _serial = SERIAL.lock().await;
    within(h2_bursts(End::Reset)).await;
}

/// Bursts of 10, 100 and 1,000 streams on the TLS (HTTP/2) listener,
/// each ended by dropping the connections.
#[tokio::test]
async fn h2_bursts_ended_by_dropping_the_connection_leave_other_clients_alone() {
    let _serial = SERIAL.lock().await;
    within(h2_bursts(End::Drop)).await;
}

/// The request head of an HTTP/1.1 attacker: a GET, or a WebSocket
/// upgrade (RFC 6455 §4.1), both for `/slow`.
fn h1_head(kind: Kind) -> &'static [u8] {
    match kind {
        Kind::Get => b"GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n",
        Kind::ExtendedConnect => {
            b"GET /slow HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        }
    }
}

/// `n` connections to the plain listener each send `kind`'s head; after
/// `after`, all are reset (RST, zero linger) at once.
async fn h1_burst(pair: &Pair, n: usize, kind: Kind, after: Duration) {
    let mut open = Vec::with_capacity(n);
    for _ in 0..n {
        let tcp = TcpStream::connect(pair.front).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        open.push(tcp);
    }
    for tcp in &mut open {
        tcp.write_all(h1_head(kind)).await.unwrap();
    }
    // How far the requests got when the resets come is what the burst
    // varies, not a wait for the front.
    sleep(after).await;
    for tcp in open {
        tcp.set_zero_linger().unwrap();
    }
}

/// Bursts of 10, 100 and 1,000 HTTP/1.1 connections on the plain
/// listener, each sending a GET or an upgrade, reset all at once.
#[tokio::test]
async fn h1_bursts_leave_other_clients_alone() {
    let _serial = SERIAL.lock().await;
    raise_open_file_limit();
    within(async {
        let pair = pair().await;
        let bystanders = Bystanders::start(&pair).await;
        let mut tried = 0;
        for n in BURSTS {
            for kind in KINDS {
                for after in [Duration::from_millis(5), Duration::from_millis(50)] {
                    h1_burst(&pair, n, kind, after).await;
                    tried += 1;
                    eprintln!(
                        "h1 burst: {n} connections sending {kind:?}, reset after {} ms; connections to the sidecar so far: {}, bystanders {}",
                        after.as_millis(),
                        pair.upstream_connections(),
                        bystanders.state(),
                    );
                }
            }
        }
        let attack = format!("{tried} HTTP/1.1 bursts");
        bystanders.check(&pair, &attack).await;
    })
    .await;
}

/// Rapid reset past any limit on streams not yet accepted: on one TLS
/// connection at a time, 100 HEADERS (GETs and extended CONNECTs in
/// turn), a PING round trip (the front has taken them and is opening
/// their streams to the sidecar), 100 RST_STREAM, for 5 s; a connection
/// the front closes is replaced.
#[tokio::test]
async fn h2_rapid_reset_flood_leaves_other_clients_alone() {
    let _serial = SERIAL.lock().await;
    within(async {
        let pair = pair().await;
        let bystanders = Bystanders::start(&pair).await;
        let deadline = Instant::now() + FLOOD_FOR;
        let (mut streams, mut connections, mut closed) = (0, 0, 0);
        while Instant::now() < deadline {
            let mut raw = h2_connect(&pair).await;
            connections += 1;
            let mut next = 1u32;
            while Instant::now() < deadline {
                let kind = KINDS[(next as usize / 200) % 2];
                let ids: Vec<u32> = (0..100).map(|i| next + 2 * i).collect();
                next += 200;
                let burst: Vec<u8> = ids.iter().flat_map(|id| headers(kind, *id)).collect();
                let resets: Vec<u8> = ids.iter().flat_map(|id| rst_stream(*id, CANCEL)).collect();
                if raw.send(&burst).await.is_err() || raw.until_ping_ack(u64::from(next)).await.is_none() {
                    closed += 1;
                    break;
                }
                if raw.send(&resets).await.is_err() {
                    closed += 1;
                    break;
                }
                streams += 100;
            }
        }
        let attack = format!(
            "HTTP/2 rapid reset for {FLOOD_FOR:?}: {streams} streams reset on {connections} connection(s), {closed} closed by the front"
        );
        bystanders.check(&pair, &attack).await;
    })
    .await;
}

/// Rapid reset on the plain listener: for 5 s, batches of 100
/// connections that each send a GET or an upgrade and reset at once.
#[tokio::test]
async fn h1_rapid_reset_flood_leaves_other_clients_alone() {
    let _serial = SERIAL.lock().await;
    raise_open_file_limit();
    within(async {
        let pair = pair().await;
        let bystanders = Bystanders::start(&pair).await;
        let deadline = Instant::now() + FLOOD_FOR;
        let mut connections = 0;
        while Instant::now() < deadline {
            let kind = KINDS[(connections / 100) % 2];
            h1_burst(&pair, 100, kind, Duration::ZERO).await;
            connections += 100;
        }
        let attack =
            format!("HTTP/1.1 rapid reset for {FLOOD_FOR:?}: {connections} connections reset");
        bystanders.check(&pair, &attack).await;
    })
    .await;
}

/// A burst of 1,000 connections holds about 4,000 descriptors in this
/// process (client, front, sidecar and app sides): lift the soft limit
/// to the hard one.
fn raise_open_file_limit() {
    let (_, hard) = rlimit::Resource::NOFILE.get().unwrap();
    rlimit::Resource::NOFILE.set(hard, hard).unwrap();
}
