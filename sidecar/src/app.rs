//! App stage: HTTP/1.1 toward the local app.
//!
//! Tunnels each get a dedicated connection ([`App::dial`]) that is never
//! pooled, because a connection that saw an upgrade attempt cannot be
//! trusted for another request (S2). Plain requests share a keep-alive pool
//! ([`App::pool`]).

use std::io;
use std::time::Duration;

use bytes::Bytes;
use h2hop::access::Counted;
use h2hop::relay::H2Body;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tracing::debug;

use crate::Error;

/// How the sidecar reaches its app.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// The app's `host:port`.
    pub addr: String,
    /// Bound on TCP connect to the app.
    pub connect_timeout: Duration,
    /// Bound on the wait for the app's response head to a plain request.
    pub response_timeout: Duration,
    /// Bound on the wait for the app's answer to an upgrade (and for the
    /// upgrade body from the front).
    pub upgrade_timeout: Duration,
}

/// The app: dedicated connections for tunnels, a pool for plain requests.
pub struct App {
    config: AppConfig,
    pool: Client<HttpConnector, Counted<H2Body>>,
}

impl App {
    /// Sets up the pool; nothing connects yet.
    pub fn new(config: AppConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.connect_timeout));
        let pool = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            // Our Host field carries the stream's :authority; the URI's
            // authority only says where the app listens.
            .set_host(false)
            .build(connector);
        Self { config, pool }
    }

    /// The configuration.
    pub fn config(&self) -> &AppConfig {
        &self.config
    }

    /// Sends a plain request on the keep-alive pool and waits for the
    /// response head within the response timeout.
    pub async fn send(
        &self,
        request: Request<Counted<H2Body>>,
    ) -> Result<Response<Incoming>, Error> {
        let addr = &self.config.addr;
        let bound = self.config.response_timeout;
        match timeout(bound, self.pool.request(request)).await {
            Err(_) => Err(Error::AppTimeout {
                step: "response",
                addr: addr.clone(),
                after: bound,
            }),
            // Same wording as a tunnel's failed dial: the culprit is the
            // app's listener, not HTTP.
            Ok(Err(err)) if err.is_connect() => Err(Error::ConnectApp {
                addr: addr.clone(),
                source: io::Error::other(err),
            }),
            Ok(Err(err)) => Err(Error::AppHttp {
                addr: addr.clone(),
                source: Box::new(err),
            }),
            Ok(Ok(response)) => Ok(response),
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
        let handshake =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream));
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
        let addr = &self.config.addr;
        let bound = self.config.connect_timeout;
        let stream = timeout(bound, TcpStream::connect(addr.as_str()))
            .await
            .map_err(|_| Error::AppTimeout {
                step: "connect",
                addr: addr.clone(),
                after: bound,
            })?
            .map_err(|source| Error::ConnectApp {
                addr: addr.clone(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// Waits for `response` within `bound`.
    async fn await_response<T, E>(
        &self,
        response: impl Future<Output = Result<T, E>>,
        bound: Duration,
    ) -> Result<T, Error>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let addr = &self.config.addr;
        timeout(bound, response)
            .await
            .map_err(|_| Error::AppTimeout {
                step: "response",
                addr: addr.clone(),
                after: bound,
            })?
            .map_err(|source| Error::AppHttp {
                addr: addr.clone(),
                source: Box::new(source),
            })
    }
}
