//! The tunnel's life itself rather than its traffic: [`IdleSet`] holds
//! many idle tunnels while the caller measures memory, [`handshakes`] opens
//! and closes tunnels as fast as it can, in either [`Closing`] pattern.
//! Called by the bench binary through [`super`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream;
use tokio::task::JoinSet;

use super::websocket::{SMALL, Ws, close, close_on_reply, connect, echo_once, small_config};
use super::{FAILURE_PAUSE, rate, timed};

/// Handshakes in flight while [`IdleSet::open`] opens its sockets.
const OPEN_IN_FLIGHT: usize = 64;
/// Echoes or closes in flight in [`IdleSet::echo_all`] and [`IdleSet::close`].
const IDLE_IN_FLIGHT: usize = 256;

/// Idle WebSockets held open while the caller measures the proxies' memory.
/// All of them are driven from the caller's task, a bounded number at a
/// time, so holding them costs no task per socket.
pub struct IdleSet {
    sockets: Vec<Ws>,
}

impl IdleSet {
    /// Opens `count` WebSockets to `{addr}/ws`, at most 64 handshakes at a
    /// time. Fails on the first socket that does not open, saying how many
    /// had opened (those are then dropped).
    pub async fn open(addr: SocketAddr, count: usize) -> anyhow::Result<IdleSet> {
        let mut opening = stream::iter(0..count)
            .map(|_| timed(connect(addr, small_config())))
            .buffer_unordered(OPEN_IN_FLIGHT);
        let mut sockets = Vec::with_capacity(count);
        while let Some(opened) = opening.next().await {
            let done = sockets.len();
            sockets.push(opened.with_context(|| format!("opened {done} of {count} websockets"))?);
        }
        Ok(IdleSet { sockets })
    }

    /// Number of sockets held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    /// Sends one 32-byte message on every socket (256 at a time) and returns
    /// how many came back correctly; a socket that fails stays in the set
    /// and is logged, not counted.
    pub async fn echo_all(&mut self) -> anyhow::Result<usize> {
        let payload = Bytes::from_static(SMALL);
        let mut echoes = stream::iter(self.sockets.iter_mut())
            .map(|ws| timed(echo_once(ws, payload.clone())))
            .buffer_unordered(IDLE_IN_FLIGHT);
        let mut correct = 0;
        while let Some(echoed) = echoes.next().await {
            match echoed {
                Ok(()) => correct += 1,
                Err(err) => tracing::debug!(error = %format!("{err:#}"), "idle echo failed"),
            }
        }
        Ok(correct)
    }

    /// Closes every socket cleanly (256 at a time); failures are logged.
    pub async fn close(self) {
        let mut closing = stream::iter(self.sockets)
            .map(|mut ws| async move { close(&mut ws).await })
            .buffer_unordered(IDLE_IN_FLIGHT);
        while let Some(closed) = closing.next().await {
            if let Err(err) = closed {
                tracing::debug!(error = %format!("{err:#}"), "idle close failed");
            }
        }
    }
}

/// How a [`handshakes`] cycle ends its WebSocket: both send a Close and
/// need the peer's Close frame; they differ in who closes TCP first, so in
/// where the TIME_WAIT and the FIN/ACK exchange land.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    /// Read on after the Close reply until TCP EOF (or a bare EOF in place
    /// of the reply): the server side, so the front proxy, closes TCP first
    /// (RFC 6455 §7.1.1) and keeps the TIME_WAIT. The `handshakes` workload.
    UntilEof,
    /// Stop at the peer's Close frame and drop the socket: the client
    /// closes TCP first and keeps the TIME_WAIT; the proxy sees the client's
    /// FIN. The `handshakes-close` workload.
    OnCloseFrame,
}

/// Result of [`handshakes`].
#[derive(Debug, Clone, PartialEq)]
pub struct Handshakes {
    /// Open, echo, close cycles that succeeded.
    pub completed: u64,
    /// Cycles that failed at any step.
    pub failures: u64,
    /// From the start until the last worker stopped.
    pub seconds: f64,
}

impl Handshakes {
    /// Completed cycles per second.
    pub fn per_s(&self) -> f64 {
        rate(self.completed as f64, self.seconds)
    }
}

/// `in_flight` workers, each in its own task repeating: open a WebSocket,
/// one 32-byte echo, close as `closing` says, until `duration` has passed.
/// A failed cycle is counted and the worker goes on.
pub async fn handshakes(
    addr: SocketAddr,
    in_flight: usize,
    duration: Duration,
    closing: Closing,
) -> anyhow::Result<Handshakes> {
    ensure!(in_flight > 0, "handshakes needs at least one worker");
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..in_flight {
        tasks.spawn(handshake_worker(addr, start + duration, closing));
    }
    let (mut completed, mut failures) = (0, 0);
    while let Some(joined) = tasks.join_next().await {
        let (worker_completed, worker_failures) = joined.context("handshake worker panicked")?;
        completed += worker_completed;
        failures += worker_failures;
    }
    Ok(Handshakes {
        completed,
        failures,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// One [`handshakes`] worker: (completed, failures).
async fn handshake_worker(addr: SocketAddr, deadline: Instant, closing: Closing) -> (u64, u64) {
    let (mut completed, mut failures) = (0, 0);
    while Instant::now() < deadline {
        let cycle = timed(async {
            let mut ws = connect(addr, small_config()).await?;
            echo_once(&mut ws, Bytes::from_static(SMALL)).await?;
            match closing {
                Closing::UntilEof => close(&mut ws).await,
                // Dropping `ws` at the end of this block closes TCP.
                Closing::OnCloseFrame => close_on_reply(&mut ws).await,
            }
        });
        match cycle.await {
            Ok(()) => completed += 1,
            Err(err) => {
                failures += 1;
                tracing::debug!(error = %format!("{err:#}"), "handshake cycle failed");
                tokio::time::sleep(FAILURE_PAUSE).await;
            }
        }
    }
    (completed, failures)
}
