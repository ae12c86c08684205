//! The test app that sits behind the sidecar: a plain HTTP/1.1 server (hyper
//! http1 with upgrades) that speaks WebSocket, raw upgraded byte streams and
//! ordinary requests.
//!
//! Input: TCP connections on a listener the caller bound. Output: responses
//! chosen by path (see [`TestApp`]) plus a record of what reached the app, so
//! the end-to-end tests in `integration/tests/` and the demo binary can assert
//! on the far side of the front → sidecar chain.
//!
//! This module owns the listener, the connections and the records;
//! `routes` picks a response for each request head, and `tunnel` runs
//! what follows a 101 on the upgraded connection; [`soak`] is the tunnel of
//! the soak route, with the message scripts the soak test replays.

mod routes;
pub mod soak;
#[cfg(test)]
mod tests;
mod tunnel;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use http::{HeaderMap, Method, Uri, Version};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// What `/raw/reply-reset` writes right before its reset: 24 KiB counting
/// modulo 251 (a prime), so a lost or shifted chunk cannot go unnoticed.
pub static LAST_WORDS: [u8; 24 * 1024] = {
    let mut words = [0u8; 24 * 1024];
    let mut i = 0;
    while i < words.len() {
        words[i] = (i % 251) as u8;
        i += 1;
    }
    words
};

/// A running test app; see the module docs. Routes, for requests carrying
/// `Upgrade: websocket` and `Connection: upgrade`:
/// `/status/NNN` (that status, no upgrade), `/bad-accept` (wrong accept),
/// `/wrong-token` (`Upgrade: foo`), `/raw/echo`, `/raw/reset`,
/// `/raw/reply-reset` ([`LAST_WORDS`], then a reset), `/raw/hold`
/// (raw bytes after the 101), `/ws/server-close?code=&reason=`,
/// `/ws/hop-fields` (WebSocket echo whose 101 also carries hop-by-hop
/// fields), `/ws/soak?seed=&bytes=` (sends a seeded [`soak::Script`],
/// answers the client's Close with a [`soak::Tally`] of what it received)
/// and any other path (WebSocket echo). An Upgrade to any other
/// token, any method: the body is read, the 101 names the same token, and
/// the upgraded stream starts with `METHOD LENGTH\n` and that body, then
/// echoes raw bytes (`/status/NNN` answers that status). Plain requests:
/// `GET /` (demo page), `GET /ws-cycle?n=N` (a page cycling N WebSockets),
/// `/echo`, `/bytes/N`, `/status/NNN`, `GET /hop-fields` (hop-by-hop
/// response fields), `/health` (any method: the status set by
/// [`TestApp::set_health`], 200 at first), anything else `hello from
/// app`. A request
/// (plain or upgrade) for `/slow` gets its answer only at shutdown, one for
/// `/delay/MS` after MS milliseconds.
pub struct TestApp {
    /// The address the app listens on.
    pub addr: SocketAddr,
    state: Arc<State>,
}

/// The head of one request as the app received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Request method.
    pub method: Method,
    /// Request target as sent on the wire (origin form for HTTP/1.1).
    pub uri: Uri,
    /// HTTP version of the request line.
    pub version: Version,
    /// All request headers, in received order per name.
    pub headers: HeaderMap,
}

/// How a raw tunnel on `/raw/echo` or `/raw/hold` ended, seen from the app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawOutcome {
    /// The peer half-closed cleanly after sending `bytes` bytes.
    Eof {
        /// Bytes read from the peer before EOF.
        bytes: u64,
    },
    /// The peer reset the connection (TCP RST).
    Reset,
    /// Any other I/O error, as text.
    OtherError(String),
}

/// State shared by every connection task and the [`TestApp`] handle.
struct State {
    record: bool,
    requests: Mutex<Vec<Recorded>>,
    outcomes: Mutex<Outcomes>,
    outcome_added: Notify,
    connections: AtomicUsize,
    ended: AtomicUsize,
    /// The status `/health` answers.
    health: AtomicU16,
}

/// Raw outcomes in completion order, plus how many `next_raw_outcome` took.
#[derive(Default)]
struct Outcomes {
    list: Vec<RawOutcome>,
    taken: usize,
}

/// What each request handler needs.
#[derive(Clone)]
struct Ctx {
    state: Arc<State>,
    shutdown: CancellationToken,
}

/// Locks a mutex even if a panicking test thread poisoned it: the data is
/// append-only records, so a half-finished update cannot break an invariant.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TestApp {
    /// Binds nothing itself: serves on the given listener (bound by the
    /// caller on 127.0.0.1:0) until the token is cancelled; one task per
    /// connection.
    pub fn spawn(listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<TestApp> {
        Self::start(listener, shutdown, true)
    }

    /// As [`TestApp::spawn`], but keeps no record of requests, so that a
    /// long benchmark run does not grow a list of millions of heads.
    pub fn spawn_unrecorded(
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<TestApp> {
        Self::start(listener, shutdown, false)
    }

    fn start(
        listener: TcpListener,
        shutdown: CancellationToken,
        record: bool,
    ) -> anyhow::Result<TestApp> {
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            record,
            requests: Mutex::new(Vec::new()),
            outcomes: Mutex::new(Outcomes::default()),
            outcome_added: Notify::new(),
            connections: AtomicUsize::new(0),
            ended: AtomicUsize::new(0),
            health: AtomicU16::new(200),
        });
        let ctx = Ctx {
            state: state.clone(),
            shutdown,
        };
        tokio::spawn(accept_loop(listener, ctx));
        Ok(TestApp { addr, state })
    }

    /// Every request head the app received, in order (method, uri, version,
    /// headers): tests assert on what reached the app.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.state.requests).clone()
    }

    /// How each raw tunnel on `/raw/echo` and `/raw/hold` ended from the
    /// app's point of view, in completion order. `/raw/reset` records nothing.
    pub fn raw_outcomes(&self) -> Vec<RawOutcome> {
        lock(&self.state.outcomes).list.clone()
    }

    /// Waits for the next raw outcome not yet returned by this method (the
    /// first call returns the first outcome ever recorded, and so on).
    pub async fn next_raw_outcome(&self) -> RawOutcome {
        loop {
            // Register interest before checking, so an outcome recorded in
            // between still wakes us.
            let notified = self.state.outcome_added.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut outcomes = lock(&self.state.outcomes);
                if let Some(outcome) = outcomes.list.get(outcomes.taken).cloned() {
                    outcomes.taken += 1;
                    return outcome;
                }
            }
            notified.await;
        }
    }

    /// Sets the status `/health` answers from now on (200 at first).
    pub fn set_health(&self, status: http::StatusCode) {
        self.state.health.store(status.as_u16(), Ordering::SeqCst);
    }

    /// Number of TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Number of HTTP/1.1 connections that ended: closed by either side,
    /// or handed over to a tunnel after a 101.
    pub fn connections_ended(&self) -> usize {
        self.state.ended.load(Ordering::SeqCst)
    }
}

impl State {
    /// Records how a raw tunnel ended and wakes [`TestApp::next_raw_outcome`].
    fn record_outcome(&self, outcome: RawOutcome) {
        lock(&self.outcomes).list.push(outcome);
        self.outcome_added.notify_waiters();
    }
}

/// Accepts connections until shutdown, spawning one task per connection.
async fn accept_loop(listener: TcpListener, ctx: Ctx) {
    loop {
        let accepted = tokio::select! {
            () = ctx.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => {
                ctx.state.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve_connection(stream, ctx.clone()));
            }
            Err(err) => {
                // Usually fd exhaustion: back off instead of spinning.
                tracing::warn!(error = %err, "app accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Serves one keep-alive HTTP/1.1 connection; upgrades continue in their own
/// tasks once hyper hands the socket over.
async fn serve_connection(stream: TcpStream, ctx: Ctx) {
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(error = %err, "app set_nodelay failed");
    }
    let svc_ctx = ctx.clone();
    let service = service_fn(move |req| {
        // `/slow` is answered only at shutdown: the request a client gives
        // up on, for tests that the proxies let go of it.
        let slow = req.uri().path() == "/slow";
        // `/delay/MS`: answered after MS milliseconds (at most a minute).
        let delay = req
            .uri()
            .path()
            .strip_prefix("/delay/")
            .and_then(|ms| ms.parse::<u64>().ok())
            .map(|ms| Duration::from_millis(ms.min(60_000)));
        let ctx = svc_ctx.clone();
        routes::record(&req, &ctx);
        async move {
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            let response = match routes::other_upgrade(req.headers()) {
                Some(token) => routes::other_protocol(req, &ctx, token).await,
                None => routes::route(req, &ctx),
            };
            if slow {
                ctx.shutdown.cancelled().await;
            }
            Ok::<_, Infallible>(response)
        }
    });
    // `with_upgrades` is required, or `hyper::upgrade::on` never resolves.
    let conn = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = ctx.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.as_mut().await
        }
    };
    ctx.state.ended.fetch_add(1, Ordering::SeqCst);
    if let Err(err) = result {
        tracing::debug!(error = %err, "app connection ended with error");
    }
}
