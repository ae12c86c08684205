//! `h2hop-front`: HTTP/1.1 clients in, multiplexed HTTP/2 to the sidecar out
//! (one connection, and more only when the sidecar's stream limit is reached).
//!
//! The path of a request, stage by stage:
//! 1. [`listener`]: accept on the plain and TLS listeners, one task per
//!    connection under the connection limits ([`client_limits`]);
//! 2. [`client_http`]: HTTP/1.1 with upgrades, or HTTP/2 with RFC 8441, each
//!    within its connection's bounds (idle timeout, streams, early resets);
//! 3. [`dispatch`]: each request [`classify`]d (allowed upgrade, plain
//!    request, or a 400/413/426 answered here) and routed ([`routes`]);
//! 4. [`upgrade`]: extended CONNECT (RFC 8441) with the upgrade's method and
//!    body, the rebuilt 101, then the relay;
//!    or [`forward`]: an ordinary HTTP/2 stream, bodies streamed both ways;
//! 5. [`upstream`]: the HTTP/2 connections, TLS with ALPN `h2` or h2c.
//!
//! [`context`] holds what the request stages share; it calls none of them.
//!
//! [`run`] takes an already-bound listener and a cancellation token; only
//! `main` binds, reads signals and picks the exit code.

pub mod args;
pub mod classify;
pub mod client_http;
pub mod client_limits;
pub mod config_file;
pub mod context;
pub mod dispatch;
mod error;
pub mod forward;
pub mod listener;
pub mod routes;
pub mod upgrade;
pub mod upstream;

use std::sync::Arc;
use std::time::Duration;

pub use error::Error;
use h2hop::metrics::Metrics;
use h2hop::tls::reload::{Reloadable, Reloader};
use h2hop::upgrade::Protocols;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
pub use upstream::{UpstreamConfig, UpstreamTls};

/// Everything the front needs, validated before any socket is bound.
#[derive(Debug, Clone)]
pub struct Config {
    /// How to reach the sidecar of the flags-only case: one cluster that
    /// takes every request. Unused when [`Config::routing`] is set.
    pub upstream: UpstreamConfig,
    /// From `--config`: the clusters and the routes to them.
    pub routing: Option<Routing>,
    /// Bound on the wait for the sidecar's response head to a plain request.
    pub response_timeout: Duration,
    /// Bound on the wait for the sidecar's answer to an upgrade.
    pub upgrade_timeout: Duration,
    /// A tunnel with no byte moving either way for this long is closed.
    pub tunnel_idle_timeout: Duration,
    /// TCP keep-alive on accepted connections; `None` turns it off.
    pub tcp_keepalive: Option<h2hop::accept::Keepalive>,
    /// Bound on reading a client's request head (slowloris); also the
    /// bound on a new connection's first request (on HTTP/2, that covers
    /// the preface and SETTINGS).
    pub header_timeout: Duration,
    /// A client connection with no request or tunnel in flight for this
    /// long is closed (HTTP/2: GOAWAY first).
    pub client_idle_timeout: Duration,
    /// Once a tunnel's sidecar side has ended and the client was told
    /// (END_STREAM, or FIN), the client must end its half within this
    /// much quiet, or the tunnel is reset and its stream freed.
    pub client_fin_timeout: Duration,
    /// Streams one HTTP/2 client connection may have open at once
    /// (SETTINGS_MAX_CONCURRENT_STREAMS); past it, REFUSED_STREAM.
    pub client_max_streams: u32,
    /// Client connections one IP address may have served at once (an
    /// upgraded one counts as a tunnel instead); past it, like
    /// [`Config::max_connections`].
    pub max_connections_per_client: usize,
    /// Upgrade tokens tunnelled; others are forwarded without `Upgrade`.
    pub protocols: Protocols,
    /// Largest upgrade request body, in bytes (larger: 413).
    pub upgrade_body_limit: u64,
    /// On shutdown, how long open requests and tunnels may go on.
    pub drain_timeout: Duration,
    /// Client HTTP connections served at once (an upgraded one counts as
    /// a tunnel instead); past it, 503 and close.
    pub max_connections: usize,
    /// Tunnels open at once; past it, 503.
    pub max_tunnels: usize,
    /// Largest request head, in bytes (at least 8192); past it, 431.
    pub max_header_size: usize,
    /// TLS toward clients (certificate, ALPN `h2` and `http/1.1`), served
    /// on [`Listeners::tls`]; each handshake takes
    /// its current value (see [`Config::reloader`]).
    pub client_tls: Option<Reloadable<rustls::ServerConfig>>,
    /// Advertise SETTINGS_ENABLE_CONNECT_PROTOCOL to HTTP/2 clients, so
    /// that they open WebSockets (and other tunnels) with RFC 8441.
    pub client_extended_connect: bool,
    /// Error answers carry their whole cause chain (sidecar addresses, TLS
    /// and OS failures) instead of a fixed text per 5xx status; for
    /// development.
    pub error_details: bool,
    /// The process's metrics, served on the admin listener.
    pub metrics: Arc<Metrics>,
}

impl Config {
    /// A configuration with the documented defaults for everything but the
    /// sidecar address and its TLS settings.
    pub fn new(sidecar: String, tls: Option<UpstreamTls>) -> Self {
        Self {
            upstream: UpstreamConfig {
                addr: sidecar,
                tls,
                connect_timeout: Duration::from_secs(5),
                tls_timeout: Duration::from_secs(5),
                keepalive_interval: Duration::from_secs(10),
                keepalive_timeout: Duration::from_secs(5),
                max_connections: upstream::MAX_CONNECTIONS,
            },
            routing: None,
            response_timeout: Duration::from_secs(30),
            upgrade_timeout: Duration::from_secs(30),
            tunnel_idle_timeout: Duration::from_secs(3600),
            tcp_keepalive: Some(h2hop::accept::Keepalive::DEFAULT),
            header_timeout: Duration::from_secs(10),
            client_idle_timeout: Duration::from_secs(60),
            client_fin_timeout: Duration::from_secs(1),
            client_max_streams: 256,
            max_connections_per_client: 1000,
            protocols: Protocols::default(),
            upgrade_body_limit: h2hop::upgrade::DEFAULT_BODY_LIMIT,
            drain_timeout: Duration::from_secs(20),
            max_connections: 50_000,
            max_tunnels: 50_000,
            max_header_size: 64 * 1024,
            client_tls: None,
            client_extended_connect: true,
            error_details: false,
            metrics: Metrics::new(
                "sidecar",
                "HTTP/2 connections to sidecars open now",
                "HTTP/2 streams to sidecars open now",
            ),
        }
    }
}

impl Config {
    /// What SIGHUP reloads: every TLS configuration read from files (the
    /// flags' sidecar TLS, each `--config` cluster's, the client-facing
    /// certificate), each once.
    pub fn reloader(&self) -> Reloader {
        let mut reloader = Reloader::new();
        let clusters = self.routing.iter().flat_map(|routing| &routing.clusters);
        let endpoints = clusters.flat_map(|(_, endpoints)| endpoints);
        for upstream in std::iter::once(&self.upstream).chain(endpoints) {
            if let Some(tls) = &upstream.tls {
                reloader.add(&tls.config);
            }
        }
        if let Some(tls) = &self.client_tls {
            reloader.add(tls);
        }
        reloader
    }
}

/// Clusters of sidecars and the routes that pick one per request.
#[derive(Debug, Clone)]
pub struct Routing {
    /// Each cluster's name and sidecars, in configuration order; routes
    /// refer to them by index.
    pub clusters: Vec<(String, Vec<UpstreamConfig>)>,
    /// Routes in order; the first match wins, none gives 404.
    pub routes: routes::RouteTable,
}

impl Routing {
    /// A `--config` file's clusters as sidecar settings: each endpoint gets
    /// its cluster's TLS and connection cap, and the timeouts of `flags`.
    pub fn from_file(file: config_file::FileConfig, flags: &UpstreamConfig) -> Self {
        let clusters = file
            .clusters
            .into_iter()
            .map(|cluster| {
                let endpoints = cluster
                    .endpoints
                    .into_iter()
                    .map(|addr| UpstreamConfig {
                        addr,
                        tls: cluster.tls.clone(),
                        max_connections: cluster.max_connections,
                        ..flags.clone()
                    })
                    .collect();
                (cluster.name, endpoints)
            })
            .collect();
        Self {
            clusters,
            routes: file.routes,
        }
    }
}

/// Where the front accepts connections.
pub struct Listeners {
    /// HTTP/1.1 clients.
    pub plain: TcpListener,
    /// TLS clients (HTTP/2 or HTTP/1.1 by ALPN), with [`Config::client_tls`].
    pub tls: Option<TcpListener>,
    /// The admin endpoints: `/metrics`, `/healthz`, and `/readyz` (a
    /// usable connection to some sidecar).
    pub admin: Option<TcpListener>,
}

impl From<TcpListener> for Listeners {
    /// HTTP/1.1 clients on `plain`, and nothing else.
    fn from(plain: TcpListener) -> Self {
        Self {
            plain,
            tls: None,
            admin: None,
        }
    }
}

/// Serves on every listener of `listeners` until `shutdown` is cancelled,
/// then drains (see [`Config::drain_timeout`]) and returns.
pub async fn run(config: Config, listeners: Listeners, shutdown: CancellationToken) {
    listener::serve(config, listeners, shutdown).await;
}
