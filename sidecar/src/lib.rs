//! `h2hop-sidecar`: HTTP/2 from fronts in, HTTP/1.1 or h2c to the local
//! app out.
//!
//! The path of a stream, stage by stage:
//! 1. [`listener`]: accept, TLS with a required client certificate (from the
//!    client CA, and carrying an allowed SAN when `--allow-front-san` is set;
//!    reloaded on SIGHUP) or h2c,
//!    HTTP/2 with SETTINGS_ENABLE_CONNECT_PROTOCOL, one task per stream;
//! 2. [`dispatch`]: tunnel, TCP tunnel, ordinary request, or an error
//!    answered here;
//! 3. [`tunnel`]: an Upgrade to the app with the front's method and body (a
//!    WebSocket with a fresh key), `200` on its 101, then the relay; or
//!    [`forward`]: the app's keep-alive pool; both answer through
//!    [`respond`];
//!    With `--app-protocol h2c`, [`tunnel_h2c`] (an extended CONNECT to
//!    the app, relayed stream to stream by [`stream_relay`]) and
//!    [`forward_h2c`] (a stream on the app's HTTP/2 pool) take their place;
//!    a CONNECT to a `host:port` goes to [`tcp_tunnel`] instead: a TCP
//!    connection to a target of the allow-list ([`tcp_allow`]), relayed;
//! 4. [`app`]: connections to the app (dedicated for tunnels, pooled for
//!    requests), each reached by `dial`; for h2c, a small HTTP/2 pool.
//!
//! [`apps`] holds the app, or the named apps of `--config`
//! ([`config_file`]), and picks one per stream by `:authority` or path.
//! [`context`] holds what the stream stages share; it calls none of them.
//!
//! [`run`] takes an already-bound listener and a cancellation token; only
//! `main` binds, reads signals and picks the exit code. [`run_workers`]
//! runs one such accept loop per worker thread, each on a listener of its
//! own.

pub(crate) mod app;
pub mod apps;
pub mod args;
pub mod config;
pub mod config_file;
pub(crate) mod context;
pub(crate) mod dispatch;
mod error;
pub(crate) mod forward;
pub(crate) mod forward_h2c;
pub(crate) mod listener;
pub(crate) mod respond;
pub(crate) mod stream_relay;
pub mod tcp_allow;
pub(crate) mod tcp_tunnel;
pub(crate) mod tunnel;
pub(crate) mod tunnel_h2c;

pub use app::{AppConfig, AppProtocol};
pub use config::{Config, UpgradePolicy};
pub use error::{AppStep, Error};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Where the sidecar accepts connections.
pub struct Listeners {
    /// Fronts' HTTP/2 connections (mutual TLS, or h2c).
    pub hop: TcpListener,
    /// The admin endpoints: `/metrics`, `/healthz`, and `/readyz` (every
    /// app accepts a TCP connection).
    pub admin: Option<TcpListener>,
}

impl From<TcpListener> for Listeners {
    /// Fronts on `hop`, and no admin listener.
    fn from(hop: TcpListener) -> Self {
        Self { hop, admin: None }
    }
}

/// Serves on every listener of `listeners` until `shutdown` is cancelled,
/// then drains (see [`Config::drain_timeout`]) and returns. One worker:
/// everything runs on the caller's runtime.
pub async fn run(config: Config, listeners: Listeners, shutdown: CancellationToken) {
    // No other worker to start, so nothing to fail.
    let _ = listener::serve(config, listeners, Vec::new(), shutdown).await;
}

/// [`run`] with a worker per listener of `more` besides the caller's:
/// each on a thread and current-thread runtime of its own, with its own
/// app pools (see [`h2hop::runtime`]). `more` are `listeners.hop`'s
/// siblings from [`h2hop::accept::bind_each`]. Drain covers every
/// worker's streams; the admin listener (worker 0's) serves the whole
/// process's metrics. Fails only when a worker thread cannot be started.
pub async fn run_workers(
    config: Config,
    listeners: Listeners,
    more: Vec<std::net::TcpListener>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    listener::serve(config, listeners, more, shutdown).await
}
