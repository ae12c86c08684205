//! `h2hop-front`: HTTP/1.1 clients in, multiplexed HTTP/2 to the sidecar out
//! (one connection, and more only when the sidecar's stream limit is reached).
//!
//! The path of a request, stage by stage:
//! 1. [`listener`]: accept on the plain and TLS listeners, one task per
//!    connection under the connection limits ([`client_limits`]), the
//!    client's address settled by a PROXY header if any ([`proxy_header`]),
//!    a cleartext client's HTTP told by its first bytes ([`preface`]);
//! 2. [`client_http`]: HTTP/1.1 with upgrades, or HTTP/2 with RFC 8441, each
//!    within its connection's bounds (idle timeout, streams, early resets);
//! 3. [`dispatch`]: each request [`classify`]d (allowed upgrade, plain
//!    request, or a 400/413/426 answered here), its client address and
//!    identity fields settled ([`client_fields`]), and routed ([`routes`]);
//! 4. [`tunnel`]: extended CONNECT (RFC 8441) with the upgrade's method and
//!    body, the rebuilt 101, then the relay;
//!    or [`forward`]: an ordinary HTTP/2 stream, bodies streamed both ways;
//! 5. [`upstream`]: the HTTP/2 connections, TLS with ALPN `h2` or h2c.
//!
//! Beside them, TCP services ([`tcp_config`]): a `[[tcp]]` listener's
//! connection becomes a CONNECT stream (RFC 9113 §8.5) on the same
//! upstream connections, relayed byte for byte ([`tcp_tunnel`]).
//!
//! [`context`] holds what the request stages share; it calls none of them.
//! [`live_routing`] holds the clusters and routes in use, and swaps in new
//! ones when the `--config` file is reloaded (SIGHUP, or its watcher).
//!
//! [`run`] takes an already-bound listener and a cancellation token; only
//! `main` binds, reads signals and picks the exit code. [`run_workers`]
//! runs one set of accept loops per worker thread, each on listeners of
//! its own.

pub mod args;
pub mod classify;
pub(crate) mod client_fields;
pub(crate) mod client_http;
pub(crate) mod client_limits;
pub mod cluster_policy;
pub mod config;
pub mod config_error;
pub mod config_file;
pub(crate) mod context;
pub mod defaults;
pub(crate) mod dispatch;
pub mod edge_tls_config;
mod error;
pub(crate) mod forward;
pub mod header_rules;
pub(crate) mod listener;
pub mod live_routing;
pub mod preface;
pub mod proxy_header;
pub(crate) mod retry;
pub mod routes;
pub mod tcp_config;
pub(crate) mod tcp_tunnel;
pub(crate) mod tunnel;
pub(crate) mod upstream;
pub mod weighted;

pub use client_fields::{ClientFields, ForwardedFields};
pub use config::Config;
pub use context::client_scheme;
pub use error::{Error, UpstreamStep};
pub use listener::WorkerListeners;
pub use live_routing::{ReloadError, ReloadSummary, RoutingReload};
pub use preface::PlainH2c;
pub use proxy_header::{ProxyMode, ProxyProtocol};
pub use routes::Routing;
pub use tcp_config::TcpService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
pub use upstream::{
    HealthCheck, HealthCheckError, OutlierConfig, RetryOn, RetryPolicy, UpstreamConfig, UpstreamTls,
};

/// Where the front accepts connections.
pub struct Listeners {
    /// Cleartext clients: HTTP/1.1, or HTTP/2 with prior knowledge
    /// ([`Config::plain_h2c`]).
    pub plain: TcpListener,
    /// TLS clients (HTTP/2 or HTTP/1.1 by ALPN), with [`Config::client_tls`].
    pub tls: Option<TcpListener>,
    /// The admin endpoints: `/metrics`, `/healthz`, and `/readyz` (a
    /// usable connection to some sidecar; with health checks, a healthy
    /// sidecar in every cluster that has them).
    pub admin: Option<TcpListener>,
    /// One per TCP service, in [`Config::tcp`] order: listener `i`
    /// serves entry `i`.
    pub tcp: Vec<TcpListener>,
}

impl From<TcpListener> for Listeners {
    /// HTTP/1.1 clients on `plain`, and nothing else.
    fn from(plain: TcpListener) -> Self {
        Self {
            plain,
            tls: None,
            admin: None,
            tcp: Vec::new(),
        }
    }
}

/// Serves on every listener of `listeners` until `shutdown` is cancelled,
/// then drains (see [`Config::drain_timeout`]) and returns. One worker:
/// everything runs on the caller's runtime.
pub async fn run(config: Config, listeners: Listeners, shutdown: CancellationToken) {
    // No other worker to start, so nothing to fail.
    let _ = listener::serve(config, listeners, Vec::new(), shutdown).await;
}

/// [`run`] with a worker per item of `more` besides the caller's: each
/// accepts on its own listeners (plain, TLS when `listeners.tls` is set,
/// and one per TCP service; siblings from [`h2hop::accept::bind_each`]) on a thread and
/// current-thread runtime of its own (see [`h2hop::runtime`]). Drain
/// covers every worker's connections; the admin listener (worker 0's)
/// serves the whole process's metrics. Fails only when a worker thread
/// cannot be started.
pub async fn run_workers(
    config: Config,
    listeners: Listeners,
    more: Vec<WorkerListeners>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    listener::serve(config, listeners, more, shutdown).await
}
