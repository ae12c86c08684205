//! Reaching the app: where it is and how long each step may take
//! ([`AppConfig`]), a TCP connection to it with its failures as the
//! sidecar's errors ([`dial`]), and an HTTP/1.1 connection for the pool
//! ([`open_http1`]). Used by [`crate::app`]: for tunnels, and handed to the
//! keep-alive pool of plain requests.

use std::error::Error as StdError;
use std::io;
use std::time::Duration;

use http_body::Body;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tracing::debug;

use crate::error::{AppStep, Error};

/// The protocol the app speaks on its plain connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AppProtocol {
    /// HTTP/1.1: a keep-alive pool for requests, an Upgrade for tunnels.
    #[default]
    Http1,
    /// Cleartext HTTP/2 with prior knowledge (RFC 9113 §3.3): streams on
    /// a small pool of connections, extended CONNECT (RFC 8441) for
    /// tunnels when the app enables it.
    H2c,
}

/// How the sidecar reaches its app.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// The app's `host:port`.
    pub addr: String,
    /// What the app speaks (`--app-protocol`).
    pub protocol: AppProtocol,
    /// Bound on TCP connect to the app.
    pub connect_timeout: Duration,
    /// Bound on the wait for the app's response head to a plain request.
    pub response_timeout: Duration,
    /// Bound on the wait for the app's answer to an upgrade (and for the
    /// upgrade body from the front).
    pub upgrade_timeout: Duration,
    /// Each connection to the app starts with a PROXY protocol v2 header
    /// naming the request's client (`--app-proxy-protocol`); plain
    /// requests then get a connection each instead of the pool. Not used
    /// with [`AppProtocol::H2c`], whose connections carry every client's
    /// streams (the flags refuse the pair).
    pub proxy_protocol: bool,
}

/// [`connect`], its failures as errors, for tunnels and plain requests
/// alike: a connect that timed out is [`Error::AppTimeout`] (504: no timely
/// answer from upstream, RFC 9110 §15.6.5), one the app refused or the
/// network failed [`Error::ConnectApp`] (502, RFC 9110 §15.6.3).
pub(crate) async fn dial(config: &AppConfig) -> Result<TcpStream, Error> {
    connect(config).await.map_err(|failure| match failure {
        None => Error::AppTimeout {
            step: AppStep::Connect,
            addr: config.addr.clone(),
            after: config.connect_timeout,
        },
        Some(source) => Error::ConnectApp {
            addr: config.addr.clone(),
            source,
        },
    })
}

/// TCP to the app within the connect timeout, with TCP_NODELAY;
/// `Err(None)` when the timeout ran out.
pub(crate) async fn connect(config: &AppConfig) -> Result<TcpStream, Option<io::Error>> {
    let connecting = TcpStream::connect(config.addr.as_str());
    let stream = timeout(config.connect_timeout, connecting)
        .await
        .map_err(|_| None)?
        .map_err(Some)?;
    // Small requests and answers go out at once instead of waiting for ACKs.
    if let Err(err) = stream.set_nodelay(true) {
        debug!(error = %err, "cannot set TCP_NODELAY toward the app");
    }
    Ok(stream)
}

/// An HTTP/1.1 failure on a connection to the app, as the sidecar's error.
pub(crate) fn app_http(config: &AppConfig, source: impl StdError + Send + Sync + 'static) -> Error {
    Error::AppHttp {
        addr: config.addr.clone(),
        source: Box::new(source),
    }
}

/// A new keep-alive connection to the app; its hyper task runs until the
/// app closes it or the pool drops its sender.
pub(crate) async fn open_http1<B>(config: &AppConfig) -> Result<SendRequest<B>, Error>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let stream = dial(config).await?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|err| app_http(config, err))?;
    // No `with_upgrades`: a plain request carries no Upgrade (N30), and a
    // 101 to one ends the connection.
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            debug!(error = %err, "app connection ended with an error");
        }
    });
    Ok(sender)
}
