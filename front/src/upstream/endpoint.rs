//! One sidecar address: its HTTP/2 connections ([`Session`]s), the dial
//! that opens another (TCP, TLS with ALPN `h2` unless h2c, then
//! [`session::handshake`]), and the backoff after failed dials. Called by
//! [`crate::upstream::cluster`].

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use h2hop::metrics::Metrics;
use h2hop::tls;
use http::Request;
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tracing::warn;

use crate::error::{Error, UpstreamStep};
use crate::upstream::session::{self, Session, StreamSlot, timed_out};
use crate::upstream::{OpenStream, UpstreamConfig};

/// First wait before dialling a sidecar again after a failed connect; each
/// further failure doubles it, up to [`BACKOFF_CAP`].
pub const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// Longest wait between dials to a failing sidecar.
pub const BACKOFF_CAP: Duration = Duration::from_secs(5);

/// One sidecar: its HTTP/2 connections, shared by all client
/// connections of a worker. Streams go to the first connection with a
/// free place; another connection opens when all are full.
pub struct Endpoint {
    config: UpstreamConfig,
    /// Each worker's connections (see [`h2hop::runtime`]): a connection's
    /// task runs on the worker that dialled it, and a stream from another
    /// worker would wake it across threads, twice per request. With two
    /// workers sharing them, the front spent 49.8 CPU-µs per plain GET
    /// against 28.0 with one worker.
    sessions: Box<[Mutex<Vec<Session>>]>,
    /// Streams open on all of this sidecar's connections.
    active: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
    backoff: std::sync::Mutex<Backoff>,
    /// Whether active health checks let it take new streams (always, when
    /// it has none).
    healthy: AtomicBool,
}

/// Dial failures in a row, and when the next dial may go out.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
    next_dial: Option<tokio::time::Instant>,
    /// The last failure, in words, for the requests turned away meanwhile.
    last: String,
}

impl Endpoint {
    /// An endpoint that connects on first use.
    pub fn new(config: UpstreamConfig, metrics: Arc<Metrics>) -> Self {
        Self {
            config,
            sessions: (0..h2hop::runtime::most_workers())
                .map(|_| Mutex::new(Vec::new()))
                .collect(),
            active: Arc::new(AtomicUsize::new(0)),
            metrics,
            backoff: std::sync::Mutex::new(Backoff::default()),
            healthy: AtomicBool::new(true),
        }
    }

    /// The sidecar's address, for logs.
    pub fn addr(&self) -> &str {
        &self.config.addr
    }

    /// The settings it was made with (a reload compares them).
    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    /// Whether this sidecar has a live connection, dialling one if none:
    /// the front's readiness.
    pub async fn ready(&self) -> Result<(), Error> {
        let mut sessions = self.sessions().lock().await;
        sessions.retain(|session| !session.is_closed());
        if !sessions.is_empty() {
            return Ok(());
        }
        sessions.push(self.dial().await?);
        Ok(())
    }

    /// The connections of the worker running this task.
    fn sessions(&self) -> &Mutex<Vec<Session>> {
        let worker = h2hop::runtime::current_worker() % self.sessions.len();
        &self.sessions[worker]
    }

    /// Whether it may take new streams, as its active health checks last
    /// decided ([`crate::upstream::health`]); true without checks.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    pub(super) fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Release);
    }

    /// Streams open on this sidecar.
    pub fn active_streams(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// How long until the next dial may go out, if a failure holds it back.
    pub fn backing_off(&self) -> Option<Duration> {
        let backoff = self.backoff.lock().unwrap_or_else(PoisonError::into_inner);
        let next = backoff.next_dial?;
        let now = tokio::time::Instant::now();
        (next > now).then(|| next - now)
    }

    /// Dials a new connection, unless a recent failure holds dials back,
    /// and records the outcome for the backoff. The one dial path of both
    /// [`Endpoint::ready`] and [`Endpoint::open_stream`].
    async fn dial(&self) -> Result<Session, Error> {
        if let Some(wait) = self.backing_off() {
            let backoff = self.backoff.lock().unwrap_or_else(PoisonError::into_inner);
            return Err(Error::BackingOff {
                addr: self.config.addr.clone(),
                last: backoff.last.clone(),
                failures: backoff.failures,
                wait,
            });
        }
        match Box::pin(self.connect()).await {
            Ok(session) => {
                self.dial_succeeded();
                Ok(session)
            }
            Err(err) => {
                self.dial_failed(&err);
                Err(err)
            }
        }
    }

    fn dial_succeeded(&self) {
        *self.backoff.lock().unwrap_or_else(PoisonError::into_inner) = Backoff::default();
    }

    /// Capped exponential backoff: 100 ms, 200 ms, 400 ms, ... 5 s.
    fn dial_failed(&self, err: &Error) {
        let mut backoff = self.backoff.lock().unwrap_or_else(PoisonError::into_inner);
        backoff.last = h2hop::telemetry::chain(err);
        backoff.failures = backoff.failures.saturating_add(1);
        let doublings = backoff.failures.saturating_sub(1).min(16);
        let wait = BACKOFF_BASE.saturating_mul(1 << doublings).min(BACKOFF_CAP);
        backoff.next_dial = Some(tokio::time::Instant::now() + wait);
        warn!(sidecar = %self.config.addr, failures = backoff.failures, retry_in = ?wait, "sidecar unreachable; backing off");
    }

    /// A live connection with a free stream place, opening one if needed.
    /// Requests that arrive while a connection is being opened wait for it
    /// instead of opening their own.
    async fn reserve(&self) -> Result<(Session, StreamSlot), Error> {
        let mut sessions = self.sessions().lock().await;
        sessions.retain(|session| !session.is_closed());
        for session in sessions.iter() {
            if let Some(slot) = session.reserve(&self.active, &self.metrics) {
                return Ok((session.clone(), slot));
            }
        }
        if sessions.len() >= self.config.max_connections {
            return Err(Error::UpstreamFull {
                addr: self.config.addr.clone(),
            });
        }
        let session = self.dial().await?;
        let slot = session
            .reserve(&self.active, &self.metrics)
            .ok_or_else(|| Error::UpstreamFull {
                addr: self.config.addr.clone(),
            })?;
        sessions.push(session.clone());
        Ok((session, slot))
    }

    /// Opens a stream for `request` (with `end_of_stream` if it has no
    /// body). A connection found closed is replaced once. A request with
    /// `:protocol` goes only to a peer that enabled extended CONNECT
    /// (RFC 8441 §3 (N4)).
    pub async fn open_stream(
        &self,
        request: Request<()>,
        end_of_stream: bool,
    ) -> Result<OpenStream, Error> {
        let tunnel = request.extensions().get::<h2::ext::Protocol>().is_some();
        let mut retried = false;
        loop {
            let (session, slot) = self.reserve().await?;
            if tunnel && !session.extended_connect {
                return Err(Error::NoExtendedConnect {
                    addr: self.config.addr.clone(),
                });
            }
            match session.send.clone().ready().await {
                Ok(mut send) => {
                    let (response, stream) =
                        send.send_request(request, end_of_stream)
                            .map_err(|source| Error::UpstreamH2 {
                                addr: self.config.addr.clone(),
                                source,
                            })?;
                    return Ok((response, stream, slot));
                }
                Err(source) if retried => {
                    return Err(Error::UpstreamH2 {
                        addr: self.config.addr.clone(),
                        source,
                    });
                }
                Err(_) => {
                    session.retire();
                    retried = true;
                }
            }
        }
    }

    /// Dials, secures and handshakes a new connection. Callers box it: its
    /// state (the TLS handshake's above all) is kilobytes, and every
    /// request's future would otherwise be sized for it and copied whole.
    async fn connect(&self) -> Result<Session, Error> {
        let addr = &self.config.addr;
        let bound = self.config.connect_timeout;
        let tcp = timeout(bound, TcpStream::connect(addr.as_str()))
            .await
            .map_err(|_| timed_out(&self.config, UpstreamStep::Connect, bound))?
            .map_err(|source| Error::ConnectUpstream {
                addr: addr.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &self.config.tls else {
            return session::handshake(tcp, &self.config, &self.metrics).await;
        };
        let connector = TlsConnector::from(tls.config.current());
        let tls_bound = self.config.tls_timeout;
        let stream = timeout(tls_bound, connector.connect(tls.server_name.clone(), tcp))
            .await
            .map_err(|_| timed_out(&self.config, UpstreamStep::TlsHandshake, tls_bound))?
            .map_err(|err| Error::UpstreamTls {
                addr: addr.clone(),
                reason: tls::describe_failure(&err),
            })?;
        tls::require_h2_alpn(stream.get_ref().1.alpn_protocol()).map_err(|err| {
            Error::UpstreamTls {
                addr: addr.clone(),
                reason: err.to_string(),
            }
        })?;
        session::handshake(stream, &self.config, &self.metrics).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::tests::{closed_port, config, get, metrics};

    /// A failed dial holds the next one back for 100 ms, then 200 ms, ...:
    /// requests meanwhile fail at once, naming the last failure.
    #[tokio::test]
    async fn failed_dials_back_off_exponentially() {
        let upstream = Endpoint::new(config(closed_port().await), metrics());
        let first = upstream.open_stream(get(), true).await.err().unwrap();
        assert!(matches!(first, Error::ConnectUpstream { .. }), "{first}");
        let held = upstream.open_stream(get(), true).await.err().unwrap();
        let Error::BackingOff {
            failures,
            wait,
            last,
            ..
        } = held
        else {
            panic!("{held}");
        };
        assert_eq!(failures, 1);
        assert!(wait <= BACKOFF_BASE);
        assert!(last.contains("cannot connect to sidecar"), "{last}");
        tokio::time::sleep(BACKOFF_BASE).await;
        let second = upstream.open_stream(get(), true).await.err().unwrap();
        assert!(matches!(second, Error::ConnectUpstream { .. }), "{second}");
        let wait = upstream.backing_off().unwrap();
        assert!(wait > BACKOFF_BASE && wait <= BACKOFF_BASE * 2, "{wait:?}");
    }
}
