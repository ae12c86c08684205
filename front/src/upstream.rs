//! Upstream stage: the multiplexed HTTP/2 connection to the sidecar.
//!
//! [`Upstream::session`] hands every request a clone of the current
//! connection's `SendRequest`, opening one (TCP, then TLS with ALPN `h2`
//! unless h2c, then the HTTP/2 handshake) when there is none or it broke.
//! Called by [`crate::upgrade`] and [`crate::forward`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use h2::SendStream;
use h2::client::{ResponseFuture, SendRequest};
use h2hop::relay::{CONNECTION_WINDOW, STREAM_WINDOW};
use h2hop::tls;
use http::Request;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, oneshot};
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tracing::{Instrument as _, debug, info, warn};

use crate::Error;

/// How the front reaches its sidecar.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// The sidecar's `host:port`.
    pub addr: String,
    /// TLS toward the sidecar, or `None` for h2c with prior knowledge.
    pub tls: Option<UpstreamTls>,
    /// Bound on TCP connect, and again on the TLS handshake.
    pub connect_timeout: Duration,
}

/// TLS settings toward the sidecar.
#[derive(Debug, Clone)]
pub struct UpstreamTls {
    /// Client configuration: roots, our certificate, ALPN `h2`.
    pub config: Arc<rustls::ClientConfig>,
    /// The name the sidecar's certificate must carry.
    pub server_name: ServerName<'static>,
}

/// One HTTP/2 connection's request handle and what its peer allows.
#[derive(Clone)]
pub struct Session {
    /// Opens streams on the connection.
    pub send: SendRequest<Bytes>,
    /// The peer's SETTINGS carried ENABLE_CONNECT_PROTOCOL = 1 (RFC 8441 §3).
    pub extended_connect: bool,
    closed: Arc<AtomicBool>,
}

impl Session {
    /// Marks the connection unusable, so the next request opens a new one.
    pub fn retire(&self) {
        self.closed.store(true, Ordering::Release);
    }
}

/// The front's upstream: at most one live HTTP/2 connection, shared by all
/// client connections.
pub struct Upstream {
    config: UpstreamConfig,
    current: Mutex<Option<Session>>,
}

impl Upstream {
    /// An upstream that connects on first use.
    pub fn new(config: UpstreamConfig) -> Self {
        Self {
            config,
            current: Mutex::new(None),
        }
    }

    /// The sidecar's address, for logs.
    pub fn addr(&self) -> &str {
        &self.config.addr
    }

    /// The live connection, or a new one. Requests that arrive while a
    /// connection is being opened wait for it instead of opening their own.
    pub async fn session(&self) -> Result<Session, Error> {
        let mut current = self.current.lock().await;
        if let Some(session) = current.as_ref()
            && !session.closed.load(Ordering::Acquire)
        {
            return Ok(session.clone());
        }
        *current = None;
        let session = self.connect().await?;
        *current = Some(session.clone());
        Ok(session)
    }

    /// Opens a stream for `request` (with `end_of_stream` if it has no
    /// body). A connection found closed is replaced once. A request with
    /// `:protocol` goes only to a peer that enabled extended CONNECT
    /// (RFC 8441 §3 (N4)).
    pub async fn open_stream(
        &self,
        request: Request<()>,
        end_of_stream: bool,
    ) -> Result<(ResponseFuture, SendStream<Bytes>), Error> {
        let tunnel = request.extensions().get::<h2::ext::Protocol>().is_some();
        let mut retried = false;
        loop {
            let session = self.session().await?;
            if tunnel && !session.extended_connect {
                return Err(Error::NoExtendedConnect {
                    addr: self.config.addr.clone(),
                });
            }
            match session.send.clone().ready().await {
                Ok(mut send) => {
                    return send.send_request(request, end_of_stream).map_err(|source| {
                        Error::UpstreamH2 {
                            addr: self.config.addr.clone(),
                            source,
                        }
                    });
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

    async fn connect(&self) -> Result<Session, Error> {
        let addr = &self.config.addr;
        let bound = self.config.connect_timeout;
        let tcp = timeout(bound, TcpStream::connect(addr.as_str()))
            .await
            .map_err(|_| self.timed_out("connect", bound))?
            .map_err(|source| Error::ConnectUpstream {
                addr: addr.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &self.config.tls else {
            return self.handshake(tcp).await;
        };
        let connector = TlsConnector::from(tls.config.clone());
        let stream = timeout(bound, connector.connect(tls.server_name.clone(), tcp))
            .await
            .map_err(|_| self.timed_out("TLS handshake", bound))?
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
            .handshake::<_, Bytes>(io)
            .await
            .map_err(h2_error)?;
        let mut ping_pong = connection.ping_pong();
        let closed = Arc::new(AtomicBool::new(false));
        let done = closed.clone();
        // The connection task's own error, for the first round trip below:
        // the PING itself only ever sees "broken pipe".
        let (failed, failure) = oneshot::channel::<String>();
        let span = tracing::info_span!("upstream", sidecar = %addr);
        tokio::spawn(
            async move {
                match connection.await {
                    Ok(()) => debug!("connection closed"),
                    Err(err) => {
                        let reason = tls::describe_failure(&err);
                        warn!(error = %reason, "connection failed");
                        let _ = failed.send(reason);
                    }
                }
                done.store(true, Ordering::Release);
            }
            .instrument(span),
        );
        let bound = self.config.connect_timeout;
        if let Some(ping_pong) = ping_pong.as_mut() {
            let pong = timeout(bound, ping_pong.ping(h2::Ping::opaque()))
                .await
                .map_err(|_| self.timed_out("settings exchange", bound))?;
            if let Err(err) = pong {
                // The task ends right after the connection failed; a closed
                // channel means it ended cleanly and the PING error stands.
                let reason = timeout(bound, failure).await.ok().and_then(Result::ok);
                return Err(self.refused(err, reason));
            }
        }
        let extended_connect = send.is_extended_connect_protocol_enabled();
        info!(sidecar = %addr, extended_connect, "upstream connected");
        Ok(Session {
            send,
            extended_connect,
            closed,
        })
    }

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

    fn timed_out(&self, step: &'static str, after: Duration) -> Error {
        Error::UpstreamTimeout {
            step,
            addr: self.config.addr.clone(),
            after,
        }
    }
}
