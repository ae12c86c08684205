//! App stage: HTTP/1.1 or h2c toward the local app.
//!
//! Input: a plain request from [`crate::forward`], or an upgrade from
//! [`crate::tunnel`]; output: the app's response head, its body streaming.
//!
//! Tunnels each get a dedicated connection ([`App::upgrade`]) that is never
//! pooled, because a connection that saw an upgrade attempt cannot be
//! trusted for another request (S2). Plain requests ([`App::send`]) share a
//! keep-alive pool ([`pool`]), handed [`dial::open_http1`] to open new ones.
//!
//! An app that speaks h2c (`--app-protocol h2c`) gets HTTP/2 streams
//! instead, on a small pool of prior-knowledge connections ([`h2c`],
//! [`App::open_h2c`]), plain requests and extended CONNECTs alike.
//!
//! With `--app-proxy-protocol` each connection starts with a PROXY v2
//! header naming one client ([`proxy_header`]), so a connection may carry
//! only that client's requests: plain requests then get a connection each,
//! like tunnels, instead of the pool. Simpler than a pool keyed by client
//! address, and correct; the cost is a TCP connect per request, on the
//! loopback or local network the app is on.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use h2hop::access::Counted;
use h2hop::relay::H2Body;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tracing::debug;

mod dial;
mod h2c;
#[cfg(test)]
mod h2c_tests;
mod pool;
mod proxy_header;
mod upgrade_conn;

pub use dial::{AppConfig, AppProtocol};
use dial::{app_http, dial, open_http1};
use h2c::H2cPool;
pub use h2c::{OpenedStream, StreamPlace, app_request, response_head};
use pool::{Pool, SendError};
pub use upgrade_conn::UpgradeConn;

use crate::error::{AppStep, Error};

/// The app: dedicated connections for tunnels, a pool for plain requests.
pub struct App {
    config: AppConfig,
    pool: Arc<Pool<Counted<H2Body>>>,
    /// Connections to an app that speaks h2c (`--app-protocol h2c`).
    h2c: H2cPool,
}

impl App {
    /// Sets up an empty pool; nothing connects yet.
    pub fn new(config: AppConfig) -> Self {
        Self {
            config,
            pool: Arc::new(Pool::default()),
            h2c: H2cPool::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &AppConfig {
        &self.config
    }

    /// Opens an HTTP/2 stream on the app (`--app-protocol h2c`) for
    /// `request`, an absolute URI and HTTP/2 fields (with `:protocol` for
    /// an extended CONNECT), `end_of_stream` when it has no body. A
    /// connection that must open has the connect timeout; the whole wait
    /// (behind other streams' opens too) has the response timeout, or the
    /// upgrade timeout for an extended CONNECT, as the HTTP/1.1 pool does.
    pub async fn open_h2c(
        &self,
        request: Request<()>,
        end_of_stream: bool,
    ) -> Result<OpenedStream, Error> {
        let tunnel = request.extensions().get::<h2::ext::Protocol>().is_some();
        let bound = if tunnel {
            self.config.upgrade_timeout
        } else {
            self.config.response_timeout
        };
        let opening = self.h2c.open_stream(&self.config, request, end_of_stream);
        timeout(bound, opening)
            .await
            .map_err(|_| Error::AppTimeout {
                step: AppStep::Connect,
                addr: self.config.addr.clone(),
                after: bound,
            })?
    }

    /// Sends a plain request (origin-form target, `Host` set) on a pooled
    /// connection and waits for the response head within the response
    /// timeout, which also bounds getting a connection.
    pub async fn send(
        &self,
        request: Request<Counted<H2Body>>,
    ) -> Result<Response<Incoming>, Error> {
        let bound = self.config.response_timeout;
        let sent = if self.config.proxy_protocol {
            timeout(bound, self.send_alone(request)).await
        } else {
            let sent = self.pool.send(|| open_http1(&self.config), request);
            timeout(bound, sent).await.map(|sent| {
                sent.map_err(|err| match err {
                    SendError::Open(err) => err,
                    SendError::Http(err) => app_http(&self.config, err),
                })
            })
        };
        match sent {
            Ok(answer) => answer,
            Err(_) => Err(Error::AppTimeout {
                step: AppStep::Response,
                addr: self.config.addr.clone(),
                after: bound,
            }),
        }
    }

    /// Sends a plain request on a connection of its own that starts with
    /// a PROXY header for its client; the connection closes once the
    /// response has been read.
    async fn send_alone(
        &self,
        request: Request<Counted<H2Body>>,
    ) -> Result<Response<Incoming>, Error> {
        let client = proxy_header::client_of(&request);
        let stream = proxy_header::dial_with_header(&self.config, client).await?;
        let (mut sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|err| app_http(&self.config, err))?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                debug!(error = %err, "app connection ended with an error");
            }
        });
        sender
            .send_request(request)
            .await
            .map_err(|err| app_http(&self.config, err))
    }

    /// Sends an upgrade request with its body on a connection of its own
    /// and waits for the answer. The connection serves only this request:
    /// whatever the answer, it is never pooled (S2). It comes back beside
    /// the answer, to be taken over after a `101` or run to the end of a
    /// refusal ([`UpgradeConn`]).
    pub async fn upgrade(
        &self,
        request: Request<()>,
        body: Bytes,
    ) -> Result<(Response<Incoming>, UpgradeConn), Error> {
        let stream = if self.config.proxy_protocol {
            let client = proxy_header::client_of(&request);
            proxy_header::dial_with_header(&self.config, client).await?
        } else {
            self.dial().await?
        };
        let handshake = http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream));
        let bound = self.config.upgrade_timeout;
        let (mut sender, connection) = self.await_response(handshake, bound).await?;
        let mut conn = UpgradeConn::new(connection);
        let sent = sender.send_request(request.map(|()| Full::new(body)));
        let response = self.await_response(conn.driving(sent), bound).await?;
        Ok((response, conn))
    }

    /// A fresh connection for one tunnel attempt.
    async fn dial(&self) -> Result<TcpStream, Error> {
        dial(&self.config).await
    }

    /// Waits for `response` within `bound`.
    async fn await_response<T, E>(
        &self,
        response: impl Future<Output = Result<T, E>>,
        bound: Duration,
    ) -> Result<T, Error>
    where
        E: StdError + Send + Sync + 'static,
    {
        timeout(bound, response)
            .await
            .map_err(|_| Error::AppTimeout {
                step: AppStep::Response,
                addr: self.config.addr.clone(),
                after: bound,
            })?
            .map_err(|source| app_http(&self.config, source))
    }
}
