//! Bystanders: well-behaved clients that keep using the front while a test
//! attacks it from another connection, and report afterwards whether they
//! were ever cut off or stalled.
//!
//! Two kinds, both through the front's plain HTTP/1.1 listener: a
//! WebSocket tunnel that echoes a message every 20 ms, and plain requests
//! back to back on one keep-alive connection (each held 100 ms by the app,
//! so one is always in flight). Used by `tests/bystander.rs` and
//! `tests/client_h2_abuse.rs`.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use http::{Method, StatusCode};
use hyper::client::conn::http1::SendRequest;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::client::{
    ClientBody, body_bytes, echo_roundtrip, full, http1_connect, request, ws_connect,
};

/// Longer than this for one round trip counts as cut off: far above what
/// a busy 2-core machine needs, so it is a liveness bound, not a timing.
pub const ROUND_TRIP_LIMIT: Duration = Duration::from_secs(10);

/// The pause between two echoes of the tunnel.
const ECHO_EVERY: Duration = Duration::from_millis(20);

/// What a bystander saw while it ran.
#[derive(Debug, Clone)]
pub struct Report {
    /// "tunnel" or "requests".
    pub what: &'static str,
    /// Round trips that completed (echoes, or 200 responses read whole).
    pub round_trips: usize,
    /// The slowest of them.
    pub slowest: Duration,
    /// The first failure, after which the bystander stopped.
    pub failure: Option<String>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} round trips, slowest {} ms, {}",
            self.what,
            self.round_trips,
            self.slowest.as_millis(),
            self.failure.as_deref().unwrap_or("never cut")
        )
    }
}

/// A running bystander; [`Bystander::stop`] ends it and returns its
/// [`Report`].
pub struct Bystander {
    stop: CancellationToken,
    task: JoinHandle<Report>,
}

impl Bystander {
    /// A WebSocket to `/ws` through the front at `addr`, open (and one
    /// echo done) before this returns; then it echoes every 20 ms.
    pub async fn tunnel(addr: SocketAddr) -> anyhow::Result<Bystander> {
        let (mut ws, _) = ws_connect(addr, "/ws", &[]).await?;
        echo(&mut ws, 0).await?;
        let stop = CancellationToken::new();
        let until = stop.clone();
        let task = tokio::spawn(async move {
            let mut tally = Tally::new("tunnel");
            while !until.is_cancelled() && tally.round(echo(&mut ws, tally.done())).await {
                sleep(ECHO_EVERY).await;
            }
            tally.report
        });
        Ok(Bystander { stop, task })
    }

    /// `GET /delay/100` back to back on one keep-alive HTTP/1.1
    /// connection to the front at `addr`, the first answered before this
    /// returns; each must be a 200 read whole.
    pub async fn requests(addr: SocketAddr) -> anyhow::Result<Bystander> {
        let mut send = http1_connect(addr).await?;
        get_delayed(&mut send, addr).await?;
        let stop = CancellationToken::new();
        let until = stop.clone();
        let task = tokio::spawn(async move {
            let mut tally = Tally::new("requests");
            while !until.is_cancelled() && tally.round(get_delayed(&mut send, addr)).await {}
            tally.report
        });
        Ok(Bystander { stop, task })
    }

    /// Whether it has stopped on a failure already.
    pub fn is_cut(&self) -> bool {
        self.task.is_finished() && !self.stop.is_cancelled()
    }

    /// Stops it after the round trip in flight and returns what it saw.
    pub async fn stop(self) -> Report {
        self.stop.cancel();
        match self.task.await {
            Ok(report) => report,
            Err(err) => Report {
                what: "bystander",
                round_trips: 0,
                slowest: Duration::ZERO,
                failure: Some(format!("its task failed: {err}")),
            },
        }
    }
}

/// One echo of `echo {round}`.
async fn echo(ws: &mut WebSocketStream<TcpStream>, round: usize) -> anyhow::Result<()> {
    let text = format!("echo {round}");
    let echoed = echo_roundtrip(ws, Message::text(text.clone())).await?;
    anyhow::ensure!(echoed == Message::text(text), "wrong echo {echoed:?}");
    Ok(())
}

/// One `GET /delay/100`: a 200, its body read whole.
async fn get_delayed(send: &mut SendRequest<ClientBody>, addr: SocketAddr) -> anyhow::Result<()> {
    send.ready().await?;
    let response = send
        .send_request(request(Method::GET, addr, "/delay/100", full(""))?)
        .await?;
    let status = response.status();
    let body = body_bytes(response).await?;
    anyhow::ensure!(status == StatusCode::OK, "{status}: {body:?}");
    Ok(())
}

/// Counts a bystander's round trips.
struct Tally {
    report: Report,
}

impl Tally {
    fn new(what: &'static str) -> Self {
        let report = Report {
            what,
            round_trips: 0,
            slowest: Duration::ZERO,
            failure: None,
        };
        Self { report }
    }

    /// Round trips so far.
    fn done(&self) -> usize {
        self.report.round_trips
    }

    /// Records one round trip, failed past [`ROUND_TRIP_LIMIT`]; false
    /// after a failure (the bystander then stops).
    async fn round(&mut self, trip: impl Future<Output = anyhow::Result<()>>) -> bool {
        let started = Instant::now();
        let failure = match timeout(ROUND_TRIP_LIMIT, trip).await {
            Ok(Ok(())) => {
                self.report.round_trips += 1;
                self.report.slowest = self.report.slowest.max(started.elapsed());
                return true;
            }
            Err(_) => format!("stalled for {ROUND_TRIP_LIMIT:?}"),
            Ok(Err(err)) => format!("{err:#}"),
        };
        self.report.failure = Some(failure);
        false
    }
}
