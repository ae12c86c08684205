//! One HTTP/2 connection to a sidecar: the handshake that makes it usable
//! ([`handshake`]: SETTINGS, then a PING round trip), the task that drives
//! it and keeps it alive with PINGs, and the stream places it has under the
//! peer's MAX_CONCURRENT_STREAMS ([`Session`], [`StreamSlot`]). Called by
//! [`crate::upstream::endpoint`] once a connection is dialled.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use h2hop::metrics::Metrics;
use h2hop::tls;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tokio::time::timeout;
use tracing::{Instrument as _, debug, info, warn};

use crate::error::{Error, UpstreamStep};
use crate::upstream::UpstreamConfig;

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

    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Takes one of the peer's MAX_CONCURRENT_STREAMS, if one is free:
    /// h2 would otherwise queue the stream silently until another ends.
    pub(super) fn reserve(
        &self,
        endpoint: &Arc<AtomicUsize>,
        metrics: &Arc<Metrics>,
    ) -> Option<StreamSlot> {
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

/// The HTTP/2 handshake, then one PING round trip: the peer sends its
/// SETTINGS before it can ACK our PING, and h2 applies SETTINGS in
/// order, so after the pong the extended CONNECT flag is final
/// (RFC 8441 §3 (N4)).
pub(super) async fn handshake<T>(
    io: T,
    config: &UpstreamConfig,
    metrics: &Arc<Metrics>,
) -> Result<Session, Error>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let addr = config.addr.clone();
    let h2_error = |source| Error::UpstreamH2 {
        addr: addr.clone(),
        source,
    };
    let (send, mut connection) = h2hop::h2_settings::shared_client()
        .handshake::<_, Bytes>(io)
        .await
        .map_err(h2_error)?;
    metrics.connections(1);
    let counted = metrics.clone();
    let mut ping_pong = connection.ping_pong();
    let closed = Arc::new(AtomicBool::new(false));
    let done = closed.clone();
    // The connection task's own error, for the first round trip below:
    // the PING itself only ever sees "broken pipe".
    let (failed, failure) = oneshot::channel::<String>();
    // The PING handle goes to the connection task once the first round
    // trip is done, for the keep-alive.
    let (hand_over, handed) = oneshot::channel::<h2::PingPong>();
    let (every, within) = (config.keepalive_interval, config.keepalive_timeout);
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
    let bound = config.connect_timeout;
    if let Some(ping_pong) = ping_pong.as_mut() {
        let pong = timeout(bound, ping_pong.ping(h2::Ping::opaque()))
            .await
            .map_err(|_| timed_out(config, UpstreamStep::Settings, bound))?;
        if let Err(err) = pong {
            // The task ends right after the connection failed; a closed
            // channel means it ended cleanly and the PING error stands.
            let reason = timeout(bound, failure).await.ok().and_then(Result::ok);
            return Err(refused(config, err, reason));
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

/// A connection error seen on the first round trip: with TLS 1.3 a
/// refused client certificate shows up here, not in the handshake.
/// `reason` is the connection task's description of the failure, when
/// it had one.
pub(super) fn refused(config: &UpstreamConfig, err: h2::Error, reason: Option<String>) -> Error {
    let addr = config.addr.clone();
    match (&config.tls, err.get_io()) {
        (Some(_), Some(_)) => Error::UpstreamTls {
            addr,
            reason: reason.unwrap_or_else(|| tls::describe_failure(&err)),
        },
        _ => Error::UpstreamH2 { addr, source: err },
    }
}

/// `step` toward the sidecar of `config` ran past `after`.
pub(super) fn timed_out(config: &UpstreamConfig, step: UpstreamStep, after: Duration) -> Error {
    Error::UpstreamTimeout {
        step,
        addr: config.addr.clone(),
        after,
    }
}
