//! Cleartext HTTP/2 with prior knowledge toward the app (RFC 9113 §3.3):
//! a small pool of connections ([`H2cPool`]) that plain streams and
//! extended CONNECTs share, used by [`crate::app::App::open_h2c`]; the
//! request head the app gets ([`app_request`]) and the wait for its
//! answer ([`response_head`]), used by [`crate::forward_h2c`] and
//! [`crate::tunnel_h2c`].
//!
//! Each connection is ready only after its handshake and one PING round
//! trip: the app sends its SETTINGS before it can ACK our PING, and h2
//! applies frames in order, so after the pong the app's
//! SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 §3) and
//! SETTINGS_MAX_CONCURRENT_STREAMS are known. A stream takes a place on a
//! connection below the app's MAX_CONCURRENT_STREAMS; when every
//! connection is full, another opens, up to [`MAX_CONNECTIONS`]. A closed
//! connection is dropped from the pool; a PING every
//! [`KEEPALIVE_INTERVAL`] that goes unanswered for [`KEEPALIVE_TIMEOUT`]
//! closes a connection to an app that stopped answering.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use h2::SendStream;
use h2::client::{ResponseFuture, SendRequest};
use h2::{Reason, RecvStream};
use http::header::HOST;
use http::{HeaderMap, Request, Version};
use tokio::sync::{Mutex, oneshot};
use tokio::time::timeout;
use tracing::{debug, info, warn};

use super::dial::{AppConfig, dial};
use crate::error::{AppStep, Error};

/// Most connections the pool keeps to one app.
pub const MAX_CONNECTIONS: usize = 4;
/// Time between keep-alive PINGs on an app connection.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// A keep-alive PING unanswered for this long closes the connection.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections to one app that speaks h2c.
#[derive(Default)]
pub struct H2cPool {
    connections: Mutex<Vec<Connection>>,
}

/// One HTTP/2 connection to the app.
#[derive(Clone)]
struct Connection {
    send: SendRequest<Bytes>,
    /// The app's SETTINGS carried ENABLE_CONNECT_PROTOCOL = 1.
    extended_connect: bool,
    closed: Arc<AtomicBool>,
    active: Arc<AtomicUsize>,
}

/// A stream opened on the app: its response, its send half, and its place
/// on the connection, which the holder keeps for the stream's life.
pub struct OpenedStream {
    /// The app's response head, then its body.
    pub response: ResponseFuture,
    /// The request body (or tunnel bytes) toward the app.
    pub send: SendStream<Bytes>,
    /// The stream's place under the app's MAX_CONCURRENT_STREAMS.
    pub place: StreamPlace,
}

/// One stream's place on an app connection; dropping it frees the place.
#[derive(Debug)]
pub struct StreamPlace {
    active: Arc<AtomicUsize>,
}

impl Drop for StreamPlace {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Connection {
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Takes a place below the app's MAX_CONCURRENT_STREAMS, if one is
    /// free: h2 would otherwise queue the stream until another ends.
    fn reserve(&self) -> Option<StreamPlace> {
        let limit = self.send.current_max_send_streams();
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| StreamPlace {
                active: self.active.clone(),
            })
    }
}

impl H2cPool {
    /// Opens a stream for `request` (`end_of_stream` when it has no body).
    /// A request with `:protocol` goes only to a connection whose app
    /// enabled extended CONNECT (RFC 8441 §3); without it, the answer is
    /// [`Error::NoExtendedConnect`]. A connection found closed is replaced
    /// once.
    pub async fn open_stream(
        &self,
        config: &AppConfig,
        request: Request<()>,
        end_of_stream: bool,
    ) -> Result<OpenedStream, Error> {
        let tunnel = request.extensions().get::<h2::ext::Protocol>().is_some();
        let mut retried = false;
        loop {
            let (connection, place) = self.reserve(config).await?;
            if tunnel && !connection.extended_connect {
                return Err(Error::NoExtendedConnect);
            }
            match connection.send.clone().ready().await {
                Ok(mut send) => {
                    let (response, send) = send
                        .send_request(request, end_of_stream)
                        .map_err(|source| app_h2(config, source))?;
                    return Ok(OpenedStream {
                        response,
                        send,
                        place,
                    });
                }
                Err(source) if retried => return Err(app_h2(config, source)),
                Err(_) => {
                    connection.closed.store(true, Ordering::Release);
                    retried = true;
                }
            }
        }
    }

    /// Connections open now (closed ones are dropped here first).
    #[cfg(test)]
    pub async fn live_connections(&self) -> usize {
        let mut connections = self.connections.lock().await;
        connections.retain(|connection| !connection.is_closed());
        connections.len()
    }

    /// A live connection with a free place, opening one if every one is
    /// full. Streams that arrive while a connection opens wait for it.
    async fn reserve(&self, config: &AppConfig) -> Result<(Connection, StreamPlace), Error> {
        let mut connections = self.connections.lock().await;
        connections.retain(|connection| !connection.is_closed());
        for connection in connections.iter() {
            if let Some(place) = connection.reserve() {
                return Ok((connection.clone(), place));
            }
        }
        if connections.len() >= MAX_CONNECTIONS {
            return Err(Error::Overloaded {
                what: "app HTTP/2 connections",
                max: MAX_CONNECTIONS,
            });
        }
        let connection = handshake(config).await?;
        let place = connection.reserve().ok_or(Error::Overloaded {
            what: "app HTTP/2 streams",
            max: 0,
        })?;
        connections.push(connection.clone());
        Ok((connection, place))
    }
}

/// The app's response head within `bound`. A stream the app reset is
/// [`Error::AppReset`], answered with a reset.
pub async fn response_head(
    config: &AppConfig,
    response: h2::client::ResponseFuture,
    bound: Duration,
) -> Result<http::Response<RecvStream>, Error> {
    match timeout(bound, response).await {
        Err(_) => Err(Error::AppTimeout {
            step: AppStep::Response,
            addr: config.addr.clone(),
            after: bound,
        }),
        Ok(Ok(response)) => Ok(response),
        Ok(Err(err)) => Err(app_stream_error(config, err)),
    }
}

/// A stream error from the app as the sidecar's error: a reset the app
/// sent stays a reset; a stream above the last one the app's GOAWAY said
/// it processed was not processed (RFC 9113 §6.8), as if refused;
/// anything else is a failure of the connection.
fn app_stream_error(config: &AppConfig, err: h2::Error) -> Error {
    match err.reason() {
        Some(reason) if err.is_reset() && err.is_remote() => Error::AppReset(reason),
        Some(_) if err.is_go_away() && err.is_remote() => Error::AppReset(Reason::REFUSED_STREAM),
        _ => app_h2(config, err),
    }
}

/// The request head the app receives: method, `:scheme`, `:authority`,
/// `:path` (and `:protocol` for an extended CONNECT) and fields as the
/// front sent them, `h2hop-…` fields aside; HTTP/2's own rules on fields
/// (RFC 9113 §8.2.2) already held for the front's stream. A value with
/// surrounding blanks makes the request malformed (RFC 9113 §8.2.1) and is
/// never forwarded.
pub fn app_request(parts: &http::request::Parts) -> Result<Request<()>, Error> {
    let mut headers = HeaderMap::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        // `:authority` says it; a second `host` could only disagree.
        if h2hop::upgrade::is_reserved(name) || (name == HOST && parts.uri.authority().is_some()) {
            continue;
        }
        let blank = |byte: &u8| matches!(byte, b' ' | b'\t');
        let bytes = value.as_bytes();
        if bytes.first().is_some_and(blank) || bytes.last().is_some_and(blank) {
            return Err(Error::Translate(
                h2hop::translate::TranslateError::Invalid {
                    what: "field value",
                },
            ));
        }
        headers.append(name.clone(), value.clone());
    }
    let mut request = Request::new(());
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = Version::HTTP_2;
    *request.headers_mut() = headers;
    if let Some(protocol) = parts.extensions.get::<h2::ext::Protocol>() {
        request.extensions_mut().insert(protocol.clone());
    }
    Ok(request)
}

/// An HTTP/2 failure with the app, as the sidecar's error.
pub(crate) fn app_h2(config: &AppConfig, source: h2::Error) -> Error {
    Error::AppH2 {
        addr: config.addr.clone(),
        source,
    }
}

/// Dials the app, then the HTTP/2 handshake and one PING round trip,
/// all within the connect timeout.
async fn handshake(config: &AppConfig) -> Result<Connection, Error> {
    let stream = dial(config).await?;
    let bound = config.connect_timeout;
    let timed_out = || Error::AppTimeout {
        step: AppStep::Connect,
        addr: config.addr.clone(),
        after: bound,
    };
    let handshake = h2hop::h2_settings::shared_client().handshake::<_, Bytes>(stream);
    let (send, mut connection) = timeout(bound, handshake)
        .await
        .map_err(|_| timed_out())?
        .map_err(|source| app_h2(config, source))?;
    let mut ping_pong = connection.ping_pong();
    let closed = Arc::new(AtomicBool::new(false));
    let done = closed.clone();
    let (hand_over, handed) = oneshot::channel::<h2::PingPong>();
    let addr = config.addr.clone();
    tokio::spawn(async move {
        tokio::select! {
            result = &mut connection => match result {
                Ok(()) => debug!(app = %addr, "app connection closed"),
                Err(err) => debug!(app = %addr, error = %err, "app connection failed"),
            },
            // Dropping the connection fails every stream on it.
            () = keepalive(handed) => {
                warn!(app = %addr, after = ?KEEPALIVE_TIMEOUT, "app did not answer PING; connection closed");
            }
        }
        done.store(true, Ordering::Release);
    });
    if let Some(ping_pong) = ping_pong.as_mut() {
        timeout(bound, ping_pong.ping(h2::Ping::opaque()))
            .await
            .map_err(|_| timed_out())?
            .map_err(|source| app_h2(config, source))?;
    }
    if let Some(ping_pong) = ping_pong {
        let _ = hand_over.send(ping_pong);
    }
    let extended_connect = send.is_extended_connect_protocol_enabled();
    info!(app = %config.addr, extended_connect, "app connected (h2c)");
    Ok(Connection {
        send,
        extended_connect,
        closed,
        active: Arc::new(AtomicUsize::new(0)),
    })
}

/// Sends a PING every [`KEEPALIVE_INTERVAL`] once `handed` delivers the
/// handle; returns when one goes unanswered for [`KEEPALIVE_TIMEOUT`].
/// Pends forever without a handle or once the connection failed (its own
/// future reports that).
async fn keepalive(handed: oneshot::Receiver<h2::PingPong>) {
    let Ok(mut ping_pong) = handed.await else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(KEEPALIVE_INTERVAL).await;
        match timeout(KEEPALIVE_TIMEOUT, ping_pong.ping(h2::Ping::opaque())).await {
            Ok(Ok(_pong)) => {}
            Ok(Err(_)) => return std::future::pending().await,
            Err(_) => return,
        }
    }
}
