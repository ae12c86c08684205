//! Upstream stage: the multiplexed HTTP/2 connections to the sidecar.
//!
//! [`Upstream::open_stream`] puts every request on the first live
//! connection with a free place under the peer's MAX_CONCURRENT_STREAMS,
//! opening one (TCP, then TLS with ALPN `h2` unless h2c, then the HTTP/2
//! handshake and a PING round trip) when none has room or all broke.
//! Called by [`crate::tunnel`] and [`crate::forward`].

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use h2::SendStream;
use h2::client::{ResponseFuture, SendRequest};
use h2hop::h2_settings::{CONNECTION_WINDOW, MAX_FRAME_SIZE, REMEMBERED_RESETS, STREAM_WINDOW};
use h2hop::metrics::Metrics;
use h2hop::tls;
use h2hop::tls::reload::Reloadable;
use http::Request;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, oneshot};
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tracing::{Instrument as _, debug, info, warn};

use crate::error::{Error, UpstreamStep};

/// How the front reaches its sidecar.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// The sidecar's `host:port`.
    pub addr: String,
    /// TLS toward the sidecar, or `None` for h2c with prior knowledge.
    pub tls: Option<UpstreamTls>,
    /// Bound on TCP connect, and again on the SETTINGS round trip.
    pub connect_timeout: Duration,
    /// Bound on the TLS handshake.
    pub tls_timeout: Duration,
    /// How often an idle-or-not connection sends a PING.
    pub keepalive_interval: Duration,
    /// A PING unanswered this long closes the connection and fails its
    /// streams: a sidecar that vanished without a FIN is found this way.
    pub keepalive_timeout: Duration,
    /// Most HTTP/2 connections to this sidecar.
    pub max_connections: usize,
}

/// TLS settings toward the sidecar.
#[derive(Debug, Clone)]
pub struct UpstreamTls {
    /// Client configuration: roots, our certificate, ALPN `h2`. Each new
    /// connection takes its current value: a reload changes the next
    /// connection, and those open (with their tunnels) stay as they are.
    pub config: Reloadable<rustls::ClientConfig>,
    /// The name the sidecar's certificate must carry.
    pub server_name: ServerName<'static>,
}

/// First wait before dialling a sidecar again after a failed connect; each
/// further failure doubles it, up to [`BACKOFF_CAP`].
pub const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// Longest wait between dials to a failing sidecar.
pub const BACKOFF_CAP: Duration = Duration::from_secs(5);

/// One HTTP/2 connection's request handle and what its peer allows.
#[derive(Clone)]
pub struct Session {
    /// Opens streams on the connection.
    pub send: SendRequest<Bytes>,
    /// The peer's SETTINGS carried ENABLE_CONNECT_PROTOCOL = 1 (RFC 8441 §3).
    pub extended_connect: bool,
    closed: Arc<AtomicBool>,
    active: Arc<AtomicUsize>,
}

impl Session {
    /// Marks the connection unusable, so the next request opens a new one.
    pub fn retire(&self) {
        self.closed.store(true, Ordering::Release);
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Takes one of the peer's MAX_CONCURRENT_STREAMS, if one is free:
    /// h2 would otherwise queue the stream silently until another ends.
    fn reserve(&self, endpoint: &Arc<AtomicUsize>, metrics: &Arc<Metrics>) -> Option<StreamSlot> {
        let limit = self.send.current_max_send_streams();
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| {
                endpoint.fetch_add(1, Ordering::AcqRel);
                metrics.streams(1);
                StreamSlot {
                    session: self.active.clone(),
                    endpoint: endpoint.clone(),
                    metrics: metrics.clone(),
                }
            })
    }
}

/// One stream's place on its connection; dropping it frees the place. The
/// holder keeps it as long as the stream lives (the tunnel's relay, or the
/// response body).
#[derive(Debug)]
pub struct StreamSlot {
    session: Arc<AtomicUsize>,
    endpoint: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.session.fetch_sub(1, Ordering::AcqRel);
        self.endpoint.fetch_sub(1, Ordering::AcqRel);
        self.metrics.streams(-1);
    }
}

/// The front's upstream: HTTP/2 connections to the sidecar, shared by all
/// client connections. Streams go to the first connection with a free
/// place; another connection opens when all are full.
pub struct Upstream {
    config: UpstreamConfig,
    sessions: Mutex<Vec<Session>>,
    /// Streams open on all of this sidecar's connections.
    active: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
    backoff: std::sync::Mutex<Backoff>,
}

/// Dial failures in a row, and when the next dial may go out.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
    next_dial: Option<tokio::time::Instant>,
    /// The last failure, in words, for the requests turned away meanwhile.
    last: String,
}

/// What [`Upstream::open_stream`] hands back: the response to wait for, the
/// stream's send half, and its place on the connection.
pub type OpenStream = (ResponseFuture, SendStream<Bytes>, StreamSlot);

impl Upstream {
    /// An upstream that connects on first use.
    pub fn new(config: UpstreamConfig, metrics: Arc<Metrics>) -> Self {
        Self {
            config,
            sessions: Mutex::new(Vec::new()),
            active: Arc::new(AtomicUsize::new(0)),
            metrics,
            backoff: std::sync::Mutex::new(Backoff::default()),
        }
    }

    /// The sidecar's address, for logs.
    pub fn addr(&self) -> &str {
        &self.config.addr
    }

    /// Whether this sidecar has a live connection, dialling one if none:
    /// the front's readiness.
    pub async fn ready(&self) -> Result<(), Error> {
        let mut sessions = self.sessions.lock().await;
        sessions.retain(|session| !session.is_closed());
        if !sessions.is_empty() {
            return Ok(());
        }
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
                sessions.push(session);
                Ok(())
            }
            Err(err) => {
                self.dial_failed(&err);
                Err(err)
            }
        }
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
        let mut sessions = self.sessions.lock().await;
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
        if let Some(wait) = self.backing_off() {
            let backoff = self.backoff.lock().unwrap_or_else(PoisonError::into_inner);
            return Err(Error::BackingOff {
                addr: self.config.addr.clone(),
                last: backoff.last.clone(),
                failures: backoff.failures,
                wait,
            });
        }
        let session = match Box::pin(self.connect()).await {
            Ok(session) => {
                self.dial_succeeded();
                session
            }
            Err(err) => {
                self.dial_failed(&err);
                return Err(err);
            }
        };
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
            .map_err(|_| self.timed_out(UpstreamStep::Connect, bound))?
            .map_err(|source| Error::ConnectUpstream {
                addr: addr.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &self.config.tls else {
            return self.handshake(tcp).await;
        };
        let connector = TlsConnector::from(tls.config.current());
        let tls_bound = self.config.tls_timeout;
        let stream = timeout(tls_bound, connector.connect(tls.server_name.clone(), tcp))
            .await
            .map_err(|_| self.timed_out(UpstreamStep::TlsHandshake, tls_bound))?
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
        self.handshake(stream).await
    }

    /// The HTTP/2 handshake, then one PING round trip: the peer sends its
    /// SETTINGS before it can ACK our PING, and h2 applies SETTINGS in
    /// order, so after the pong the extended CONNECT flag is final
    /// (RFC 8441 §3 (N4)).
    async fn handshake<T>(&self, io: T) -> Result<Session, Error>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let addr = self.config.addr.clone();
        let h2_error = |source| Error::UpstreamH2 {
            addr: addr.clone(),
            source,
        };
        let (send, mut connection) = h2::client::Builder::new()
            .enable_push(false)
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_frame_size(MAX_FRAME_SIZE)
            // Clients reset their streams at will, and each such reset
            // resets a stream here. Frames the sidecar had in flight for
            // them are dropped quietly while remembered; h2's limit on
            // resets of its own counts over the connection's whole life,
            // and would one day end this shared connection for every
            // client (GOAWAY ENHANCE_YOUR_CALM): the sidecar is trusted.
            .max_concurrent_reset_streams(REMEMBERED_RESETS)
            .max_local_error_reset_streams(None)
            .handshake::<_, Bytes>(io)
            .await
            .map_err(h2_error)?;
        self.metrics.connections(1);
        let counted = self.metrics.clone();
        let mut ping_pong = connection.ping_pong();
        let closed = Arc::new(AtomicBool::new(false));
        let done = closed.clone();
        // The connection task's own error, for the first round trip below:
        // the PING itself only ever sees "broken pipe".
        let (failed, failure) = oneshot::channel::<String>();
        // The PING handle goes to the connection task once the first round
        // trip is done, for the keep-alive.
        let (hand_over, handed) = oneshot::channel::<h2::PingPong>();
        let (every, within) = (
            self.config.keepalive_interval,
            self.config.keepalive_timeout,
        );
        let span = tracing::info_span!("upstream", sidecar = %addr);
        tokio::spawn(
            async move {
                tokio::select! {
                    result = &mut connection => match result {
                        Ok(()) => debug!("connection closed"),
                        Err(err) => {
                            let reason = tls::describe_failure(&err);
                            warn!(error = %reason, "connection failed");
                            let _ = failed.send(reason);
                        }
                    },
                    // Dropping the connection fails every stream on it, so
                    // their tunnels end instead of hanging.
                    () = keepalive(handed, every, within) => {
                        warn!(after = ?within, "sidecar did not answer PING; connection closed");
                    }
                }
                done.store(true, Ordering::Release);
                counted.connections(-1);
            }
            .instrument(span),
        );
        let bound = self.config.connect_timeout;
        if let Some(ping_pong) = ping_pong.as_mut() {
            let pong = timeout(bound, ping_pong.ping(h2::Ping::opaque()))
                .await
                .map_err(|_| self.timed_out(UpstreamStep::Settings, bound))?;
            if let Err(err) = pong {
                // The task ends right after the connection failed; a closed
                // channel means it ended cleanly and the PING error stands.
                let reason = timeout(bound, failure).await.ok().and_then(Result::ok);
                return Err(self.refused(err, reason));
            }
        }
        if let Some(ping_pong) = ping_pong {
            let _ = hand_over.send(ping_pong);
        }
        let extended_connect = send.is_extended_connect_protocol_enabled();
        info!(sidecar = %addr, extended_connect, "upstream connected");
        Ok(Session {
            send,
            extended_connect,
            closed,
            active: Arc::new(AtomicUsize::new(0)),
        })
    }
}

/// A named set of sidecars of equal standing (a config file's cluster, or
/// the one `--sidecar`). Each stream goes to the sidecar with the fewest
/// open streams among those not backing off after a failed dial; a sidecar
/// that cannot be reached is skipped for the next.
pub struct Cluster {
    name: Arc<str>,
    endpoints: Vec<Upstream>,
}

impl Cluster {
    /// A cluster of `endpoints` (at least one); nothing connects yet.
    pub fn new(
        name: impl Into<Arc<str>>,
        endpoints: Vec<UpstreamConfig>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let endpoints = endpoints.into_iter();
        Self {
            name: name.into(),
            endpoints: endpoints
                .map(|config| Upstream::new(config, metrics.clone()))
                .collect(),
        }
    }

    /// The cluster's name, for logs and errors.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cluster's name, shared (for access log entries).
    pub fn shared_name(&self) -> Arc<str> {
        self.name.clone()
    }

    /// The sidecars, in configuration order.
    pub fn endpoints(&self) -> &[Upstream] {
        &self.endpoints
    }

    /// Opens a stream for `request` on the least loaded reachable sidecar
    /// (see [`Upstream::open_stream`]).
    pub async fn open_stream(
        &self,
        request: Request<()>,
        end_of_stream: bool,
    ) -> Result<OpenStream, Error> {
        if let [only] = self.endpoints.as_slice() {
            return only.open_stream(request, end_of_stream).await;
        }
        let mut candidates: Vec<&Upstream> = self
            .endpoints
            .iter()
            .filter(|endpoint| endpoint.backing_off().is_none())
            .collect();
        candidates.sort_by_key(|endpoint| endpoint.active_streams());
        let mut last_failure = None;
        for endpoint in candidates {
            match endpoint
                .open_stream(copy_head(&request), end_of_stream)
                .await
            {
                Ok(open) => return Ok(open),
                Err(err) if err.is_dial_failure() => {
                    debug!(sidecar = endpoint.addr(), error = %err, "trying the next sidecar");
                    last_failure = Some(err);
                }
                Err(err) => return Err(err),
            }
        }
        Err(last_failure.unwrap_or_else(|| Error::NoEndpoint {
            cluster: self.name.to_string(),
        }))
    }
}

/// A request head again, for another attempt (`http::Request` is not
/// `Clone`): method, target, version, fields and `:protocol`.
fn copy_head(request: &Request<()>) -> Request<()> {
    let mut copy = Request::new(());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    if let Some(protocol) = request.extensions().get::<h2::ext::Protocol>() {
        copy.extensions_mut().insert(protocol.clone());
    }
    copy
}

/// Sends a PING every `every` once `handed` delivers the handle; returns
/// when one goes unanswered for `within`. Pends forever without a handle,
/// or when the connection failed (its own task reports that).
async fn keepalive(handed: oneshot::Receiver<h2::PingPong>, every: Duration, within: Duration) {
    let Ok(mut ping_pong) = handed.await else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(every).await;
        match timeout(within, ping_pong.ping(h2::Ping::opaque())).await {
            Ok(Ok(_pong)) => {}
            Ok(Err(_)) => return std::future::pending().await,
            Err(_) => return,
        }
    }
}

impl Upstream {
    /// A connection error seen on the first round trip: with TLS 1.3 a
    /// refused client certificate shows up here, not in the handshake.
    /// `reason` is the connection task's description of the failure, when
    /// it had one.
    fn refused(&self, err: h2::Error, reason: Option<String>) -> Error {
        let addr = self.config.addr.clone();
        match (&self.config.tls, err.get_io()) {
            (Some(_), Some(_)) => Error::UpstreamTls {
                addr,
                reason: reason.unwrap_or_else(|| tls::describe_failure(&err)),
            },
            _ => Error::UpstreamH2 { addr, source: err },
        }
    }

    fn timed_out(&self, step: UpstreamStep, after: Duration) -> Error {
        Error::UpstreamTimeout {
            step,
            addr: self.config.addr.clone(),
            after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn closed_port() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        addr.to_string()
    }

    fn config(addr: String) -> UpstreamConfig {
        UpstreamConfig {
            addr,
            connect_timeout: Duration::from_secs(1),
            tls_timeout: Duration::from_secs(1),
            ..UpstreamConfig::default()
        }
    }

    fn metrics() -> Arc<Metrics> {
        Metrics::new("sidecar", "connections", "streams")
    }

    fn get() -> Request<()> {
        Request::get("http://app/").body(()).unwrap()
    }

    /// A failed dial holds the next one back for 100 ms, then 200 ms, ...:
    /// requests meanwhile fail at once, naming the last failure.
    #[tokio::test]
    async fn failed_dials_back_off_exponentially() {
        let upstream = Upstream::new(config(closed_port().await), metrics());
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

    /// A cluster skips a sidecar it cannot reach, and one that is backing
    /// off, and says so when none is left.
    #[tokio::test]
    async fn a_cluster_with_no_reachable_sidecar_says_so() {
        let endpoints = vec![config(closed_port().await), config(closed_port().await)];
        let cluster = Cluster::new("c", endpoints, metrics());
        let first = cluster.open_stream(get(), true).await.err().unwrap();
        assert!(matches!(first, Error::ConnectUpstream { .. }), "{first}");
        assert!(
            cluster
                .endpoints()
                .iter()
                .all(|e| e.backing_off().is_some())
        );
        let none = cluster.open_stream(get(), true).await.err().unwrap();
        assert!(matches!(none, Error::NoEndpoint { .. }), "{none}");
        assert_eq!(none.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    }
}
