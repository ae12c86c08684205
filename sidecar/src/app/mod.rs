//! App stage: HTTP/1.1 toward the local app.
//!
//! Input: a plain request from [`crate::forward`], or an upgrade from
//! [`crate::tunnel`]; output: the app's response head, its body streaming.
//!
//! Tunnels each get a dedicated connection ([`App::upgrade`]) that is never
//! pooled, because a connection that saw an upgrade attempt cannot be
//! trusted for another request (S2). Plain requests ([`App::send`]) share a
//! keep-alive pool ([`pool`]), handed [`dial::open_http1`] to open new ones.

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
mod pool;

pub use dial::AppConfig;
use dial::{app_http, dial, open_http1};
use pool::{Pool, SendError};

use crate::error::{AppStep, Error};

/// The app: dedicated connections for tunnels, a pool for plain requests.
pub struct App {
    config: AppConfig,
    pool: Arc<Pool<Counted<H2Body>>>,
}

impl App {
    /// Sets up an empty pool; nothing connects yet.
    pub fn new(config: AppConfig) -> Self {
        Self {
            config,
            pool: Arc::new(Pool::default()),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &AppConfig {
        &self.config
    }

    /// Sends a plain request (origin-form target, `Host` set) on a pooled
    /// connection and waits for the response head within the response
    /// timeout, which also bounds getting a connection.
    pub async fn send(
        &self,
        request: Request<Counted<H2Body>>,
    ) -> Result<Response<Incoming>, Error> {
        let bound = self.config.response_timeout;
        let sent = self.pool.send(|| open_http1(&self.config), request);
        match timeout(bound, sent).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(SendError::Open(err))) => Err(err),
            Ok(Err(SendError::Http(err))) => Err(app_http(&self.config, err)),
            Err(_) => Err(Error::AppTimeout {
                step: AppStep::Response,
                addr: self.config.addr.clone(),
                after: bound,
            }),
        }
    }

    /// Sends an upgrade request with its body on a connection of its own
    /// and waits for the answer. The connection serves only this request:
    /// whatever the answer, it is never pooled (S2).
    pub async fn upgrade(
        &self,
        request: Request<()>,
        body: Bytes,
    ) -> Result<Response<Incoming>, Error> {
        let stream = self.dial().await?;
        let handshake = http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream));
        let bound = self.config.upgrade_timeout;
        let (mut sender, connection) = self.await_response(handshake, bound).await?;
        tokio::spawn(async move {
            if let Err(err) = connection.with_upgrades().await {
                debug!(error = %err, "app connection ended with an error");
            }
        });
        self.await_response(
            sender.send_request(request.map(|()| Full::new(body))),
            bound,
        )
        .await
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
