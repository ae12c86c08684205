//! Reaching the app: where it is and how long each step may take
//! ([`AppConfig`]), and a TCP connection to it with its failures as the
//! sidecar's errors. Used by [`crate::app`] for tunnels and by
//! [`crate::pool`] for the keep-alive connections of plain requests.

use std::error::Error as StdError;
use std::io;
use std::time::Duration;

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

/// [`connect`], its failures as errors, for tunnels and plain requests
/// alike: a connect that timed out is [`Error::AppTimeout`] (504: no timely
/// answer from upstream, RFC 9110 §15.6.5), one the app refused or the
/// network failed [`Error::ConnectApp`] (502, RFC 9110 §15.6.3).
pub(crate) async fn dial(config: &AppConfig) -> Result<TcpStream, Error> {
    connect(config).await.map_err(|failure| match failure {
        None => Error::AppTimeout {
            step: "connect",
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
