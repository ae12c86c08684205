//! `h2hop-sidecar`: HTTP/2 from fronts in, HTTP/1.1 to the local app out.
//!
//! The path of a stream, stage by stage:
//! 1. [`listener`]: accept, TLS with a required client certificate (from the
//!    client CA, and carrying an allowed SAN when `--allow-front-san` is set;
//!    reloaded on SIGHUP) or h2c,
//!    HTTP/2 with SETTINGS_ENABLE_CONNECT_PROTOCOL, one task per stream;
//! 2. [`dispatch`]: tunnel, ordinary request, or an error answered here;
//! 3. [`tunnel`]: an Upgrade to the app with the front's method and body (a
//!    WebSocket with a fresh key), `200` on its 101, then the relay; or
//!    [`forward`]: the app's keep-alive pool; both answer through
//!    [`respond`];
//! 4. [`app`]: connections to the app (dedicated for tunnels, pooled for
//!    requests), each reached by `dial`.
//!
//! [`context`] holds what the stream stages share; it calls none of them.
//!
//! [`run`] takes an already-bound listener and a cancellation token; only
//! `main` binds, reads signals and picks the exit code.

pub mod app;
pub mod args;
pub mod context;
mod dial;
pub mod dispatch;
mod error;
pub mod forward;
pub mod listener;
mod pool;
pub mod respond;
pub mod tunnel;

use std::sync::Arc;
use std::time::Duration;

pub use app::AppConfig;
pub use error::Error;
use h2hop::metrics::Metrics;
use h2hop::tls::reload::{Reloadable, Reloader};
use h2hop::upgrade::Protocols;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Everything the sidecar needs, validated before any socket is bound.
#[derive(Debug, Clone)]
pub struct Config {
    /// How to reach the app.
    pub app: AppConfig,
    /// TLS for fronts (client certificate required), or `None` for h2c.
    /// Each handshake takes its current value, so a reload (see
    /// [`Config::reloader`]) changes new connections only.
    pub tls: Option<Reloadable<rustls::ServerConfig>>,
    /// SETTINGS_MAX_CONCURRENT_STREAMS per front connection.
    pub max_concurrent_streams: u32,
    /// Bound on a front's TLS and HTTP/2 handshakes.
    pub handshake_timeout: Duration,
    /// How upgrades reach the app.
    pub upgrades: UpgradePolicy,
    /// On shutdown, how long open streams and tunnels may go on.
    pub drain_timeout: Duration,
    /// A tunnel with no byte moving either way for this long is closed.
    pub tunnel_idle_timeout: Duration,
    /// TCP keep-alive on accepted connections; `None` turns it off.
    pub tcp_keepalive: Option<h2hop::accept::Keepalive>,
    /// Tunnels open at once; past it, 503.
    pub max_tunnels: usize,
    /// App dials one front connection may have pending at once; past it, 503.
    pub max_pending_dials: usize,
    /// Error answers carry their whole cause chain (app address, OS
    /// failures) instead of a fixed text per 5xx status; for development.
    pub error_details: bool,
    /// The process's metrics, served on the admin listener.
    pub metrics: Arc<Metrics>,
}

impl Config {
    /// What SIGHUP reloads: the TLS files, when TLS comes from files.
    pub fn reloader(&self) -> Reloader {
        let mut reloader = Reloader::new();
        if let Some(tls) = &self.tls {
            reloader.add(tls);
        }
        reloader
    }
}

/// Which upgrades the sidecar opens, and with what method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradePolicy {
    /// `:protocol` tokens tunnelled; others get 501 (RFC 9220 §3 (N16)).
    pub protocols: Protocols,
    /// Largest upgrade body a front may carry, in bytes (larger: 413).
    pub body_limit: u64,
    /// Envoy's behaviour: every upgrade reaches the app as `GET` without a
    /// body, whatever method and body the front carried (the body is read
    /// off the stream and dropped).
    pub as_get: bool,
}

impl Default for UpgradePolicy {
    /// WebSocket only, 64 KiB bodies, methods kept.
    fn default() -> Self {
        Self {
            protocols: Protocols::default(),
            body_limit: h2hop::upgrade::DEFAULT_BODY_LIMIT,
            as_get: false,
        }
    }
}

impl Config {
    /// A configuration with the documented defaults for everything but the
    /// app address and TLS (fixed: set [`Config::tls`] to a file-backed
    /// one to reload it).
    pub fn new(app: String, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        Self {
            app: AppConfig {
                addr: app,
                connect_timeout: Duration::from_secs(5),
                response_timeout: Duration::from_secs(30),
                upgrade_timeout: Duration::from_secs(30),
            },
            tls: tls.map(Reloadable::from),
            max_concurrent_streams: 1000,
            handshake_timeout: Duration::from_secs(10),
            upgrades: UpgradePolicy::default(),
            drain_timeout: Duration::from_secs(20),
            tunnel_idle_timeout: Duration::from_secs(3600),
            tcp_keepalive: Some(h2hop::accept::Keepalive::DEFAULT),
            max_tunnels: 50_000,
            max_pending_dials: 256,
            error_details: false,
            metrics: Metrics::new(
                "front",
                "HTTP/2 connections from fronts open now",
                "HTTP/2 streams from fronts open now",
            ),
        }
    }
}

/// Where the sidecar accepts connections.
pub struct Listeners {
    /// Fronts' HTTP/2 connections (mutual TLS, or h2c).
    pub hop: TcpListener,
    /// The admin endpoints: `/metrics`, `/healthz`, and `/readyz` (the app
    /// accepts a TCP connection).
    pub admin: Option<TcpListener>,
}

impl From<TcpListener> for Listeners {
    /// Fronts on `hop`, and no admin listener.
    fn from(hop: TcpListener) -> Self {
        Self { hop, admin: None }
    }
}

/// Serves on every listener of `listeners` until `shutdown` is cancelled,
/// then drains (see [`Config::drain_timeout`]) and returns.
pub async fn run(config: Config, listeners: Listeners, shutdown: CancellationToken) {
    listener::serve(config, listeners, shutdown).await;
}
