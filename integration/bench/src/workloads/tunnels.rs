//! Traffic over tunnels that are already open: [`throughput`] (one tunnel,
//! big messages pipelined) and [`latency`] (small ping-pong on one or many
//! tunnels). Called by the bench binary through [`super`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::websocket::{SMALL, Ws, check_echo, close, connect, echo_once, small_config};
use super::{IO_TIMEOUT, MAX_SAMPLES, micros, nearest_rank, rate, timed};

/// Pipelining depth of [`throughput`]: messages sent but not yet echoed.
pub const WINDOW: usize = 16;

/// Size of one [`throughput`] message.
pub(super) const BIG_LEN: usize = 64 * 1024;

/// Result of [`throughput`].
#[derive(Debug, Clone, PartialEq)]
pub struct Throughput {
    /// Bytes echoed back, which is also what was sent (each way).
    pub bytes_each_way: u64,
    /// From the first send to the last echo, drain included.
    pub seconds: f64,
}

impl Throughput {
    /// Megabytes (10^6 bytes) per second, each way.
    pub fn mb_per_s(&self) -> f64 {
        rate(self.bytes_each_way as f64 / 1e6, self.seconds)
    }
}

/// One WebSocket to `{addr}/ws` carrying 64 KiB binary messages, [`WINDOW`]
/// of them in flight, for `duration`; then sending stops, the outstanding
/// echoes are drained and the socket is closed cleanly. Every echo must be
/// binary and exactly 64 KiB long.
pub async fn throughput(addr: SocketAddr, duration: Duration) -> anyhow::Result<Throughput> {
    // The default 128 KiB read buffer suits 64 KiB messages.
    let ws = timed(connect(addr, WebSocketConfig::default())).await?;
    let (mut sink, mut stream) = ws.split();
    let window = Semaphore::new(WINDOW);
    let (sent_tx, sent_rx) = oneshot::channel();
    let start = Instant::now();
    // Both halves run in this one task: no lock is contended, and the
    // reader returns window permits as soon as echoes arrive.
    let transfer = async {
        tokio::try_join!(
            send_pipelined(&mut sink, &window, start + duration, sent_tx),
            read_echoes(&mut stream, &window, sent_rx),
        )
    };
    let ((), echoes) = tokio::time::timeout(duration + IO_TIMEOUT, transfer)
        .await
        .context("throughput transfer timed out")??;
    let seconds = start.elapsed().as_secs_f64();
    let mut ws = sink.reunite(stream)?;
    close(&mut ws)
        .await
        .context("closing the throughput websocket")?;
    Ok(Throughput {
        bytes_each_way: echoes * BIG_LEN as u64,
        seconds,
    })
}

/// Writer half of [`throughput`]: sends while fewer than [`WINDOW`] messages
/// are unechoed (one permit each, returned by [`read_echoes`]) until
/// `deadline`, then tells the reader how many it sent.
async fn send_pipelined(
    sink: &mut SplitSink<Ws, Message>,
    window: &Semaphore,
    deadline: Instant,
    sent_tx: oneshot::Sender<u64>,
) -> anyhow::Result<()> {
    let payload = Bytes::from(vec![0xa5; BIG_LEN]);
    let mut sent = 0u64;
    // `timeout_at` returns a ready permit even past the deadline, hence
    // the explicit check as well.
    while Instant::now() < deadline {
        let Ok(permit) = tokio::time::timeout_at(deadline.into(), window.acquire()).await else {
            break;
        };
        permit?.forget();
        sink.send(Message::Binary(payload.clone())).await?;
        sent += 1;
    }
    // The reader is gone only if it failed, and then `try_join!` reports it.
    sent_tx.send(sent).ok();
    Ok(())
}

/// Reader half of [`throughput`]: counts and checks echoes, returning one
/// window permit per echo, until as many have come back as were sent.
async fn read_echoes(
    stream: &mut SplitStream<Ws>,
    window: &Semaphore,
    mut sent_rx: oneshot::Receiver<u64>,
) -> anyhow::Result<u64> {
    let mut received = 0u64;
    let mut sent = None;
    while sent.is_none_or(|sent| received < sent) {
        tokio::select! {
            total = &mut sent_rx, if sent.is_none() => sent = Some(total?),
            item = stream.next() => {
                if check_echo(item, BIG_LEN).with_context(|| format!("echo {received}"))? {
                    received += 1;
                    window.add_permits(1);
                }
            }
        }
    }
    Ok(received)
}

/// Result of [`latency`]: round trips in µs over all tunnels.
#[derive(Debug, Clone, PartialEq)]
pub struct Latency {
    /// Median round trip.
    pub p50_us: f64,
    /// 99th percentile round trip.
    pub p99_us: f64,
    /// 99.9th percentile round trip.
    pub p999_us: f64,
    /// Round trips completed, over all tunnels.
    pub round_trips: u64,
    /// From the first send to the last echo.
    pub seconds: f64,
}

impl Latency {
    /// Round trips per second, over all tunnels.
    pub fn round_trips_per_s(&self) -> f64 {
        rate(self.round_trips as f64, self.seconds)
    }
}

/// `tunnels` WebSockets, opened before the clock starts, each doing 32-byte
/// binary ping-pong (send, await the echo, record the round trip) in its
/// own task until `duration` has passed. Any error on any tunnel fails the
/// workload.
pub async fn latency(
    addr: SocketAddr,
    tunnels: usize,
    duration: Duration,
) -> anyhow::Result<Latency> {
    ensure!(tunnels > 0, "latency needs at least one tunnel");
    let opening = (0..tunnels).map(|_| timed(connect(addr, small_config())));
    let sockets = futures_util::future::try_join_all(opening).await?;
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for ws in sockets {
        tasks.spawn(ping_pong(ws, start + duration, MAX_SAMPLES / tunnels));
    }
    let mut samples = Vec::new();
    let mut round_trips = 0;
    while let Some(joined) = tasks.join_next().await {
        let (mut tunnel_samples, count) = joined.context("latency tunnel panicked")??;
        samples.append(&mut tunnel_samples);
        round_trips += count;
    }
    let seconds = start.elapsed().as_secs_f64();
    samples.sort_unstable();
    let at = |per_mille| {
        nearest_rank(&samples, per_mille)
            .map(f64::from)
            .context("no round trip completed")
    };
    Ok(Latency {
        p50_us: at(500)?,
        p99_us: at(990)?,
        p999_us: at(999)?,
        round_trips,
        seconds,
    })
}

/// One [`latency`] tunnel: ping-pong until `deadline`, keeping at most `cap`
/// samples (µs) but counting every round trip; then a clean close.
async fn ping_pong(mut ws: Ws, deadline: Instant, cap: usize) -> anyhow::Result<(Vec<u32>, u64)> {
    let payload = Bytes::from_static(SMALL);
    let mut samples = Vec::new();
    let mut round_trips = 0u64;
    while Instant::now() < deadline {
        let sent_at = Instant::now();
        timed(echo_once(&mut ws, payload.clone())).await?;
        let micros = micros(sent_at.elapsed());
        if samples.len() < cap {
            samples.push(micros);
        }
        round_trips += 1;
    }
    close(&mut ws).await?;
    Ok((samples, round_trips))
}
