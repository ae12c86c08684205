//! The front's configuration: [`Config`], with the defaults the binary
//! ships named in [`defaults`] (the flags in [`crate::args`] take theirs
//! from there too). Built by `args`, read by [`crate::listener`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use h2hop::accept::Keepalive;
use h2hop::metrics::Metrics;
use h2hop::tls::reload::{Reloadable, Reloader};
use h2hop::upgrade::Protocols;

use crate::client_fields::ClientFields;
use crate::config_file::{self, ConfigError};
use crate::edge_tls_config::{CertificateEntry, EdgeTlsFlags};
use crate::live_routing::RoutingReload;
use crate::preface::PlainH2c;
use crate::proxy_header::ProxyProtocol;
use crate::routes::Routing;
use crate::tcp_config::TcpService;
use crate::upstream::{RetryPolicy, UpstreamConfig, UpstreamTls};

pub use crate::defaults;

impl Default for UpstreamConfig {
    /// h2c to [`defaults::SIDECAR`], with the flags' defaults.
    fn default() -> Self {
        Self {
            addr: defaults::SIDECAR.to_owned(),
            tls: None,
            connect_timeout: defaults::CONNECT_TIMEOUT,
            tls_timeout: defaults::TLS_TIMEOUT,
            keepalive_interval: defaults::KEEPALIVE_INTERVAL,
            keepalive_timeout: defaults::KEEPALIVE_TIMEOUT,
            max_connections: defaults::ENDPOINT_MAX_CONNECTIONS,
            health_check: None,
            outlier: None,
            retry: RetryPolicy::default(),
        }
    }
}

/// Everything the front needs, validated before any socket is bound.
#[derive(Debug, Clone)]
pub struct Config {
    /// How to reach the sidecar of the flags-only case: one cluster that
    /// takes every request. Unused when [`Config::routing`] is set.
    pub upstream: UpstreamConfig,
    /// From `--config`: the clusters and the routes to them.
    pub routing: Option<Routing>,
    /// TCP services (`[[tcp]]` of the `--config` file): each is served on
    /// the listener of the same position in [`crate::Listeners::tcp`].
    /// Without a file, their cluster is the one named by
    /// [`UpstreamConfig::addr`].
    pub tcp: Vec<TcpService>,
    /// The `--config` file [`Config::routing`] was read from: a reload
    /// (SIGHUP, [`Config::routing_reload`]) reads it again.
    pub config_file: Option<PathBuf>,
    /// How often the front reads [`Config::config_file`] to reload it when
    /// its content changed; `None` (the default): only on request.
    pub config_watch_interval: Option<Duration>,
    /// Reloads the routing of the front that runs with this configuration
    /// ([`RoutingReload::reload`]); clones share it.
    pub routing_reload: RoutingReload,
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
    /// the preface and SETTINGS), and on a cleartext client's first bytes,
    /// which tell h2c from HTTP/1.1.
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
    /// The `--tls-*` flags [`Config::client_tls`] was built from: a
    /// reload of [`Config::config_file`] builds it again from them and the
    /// file's `[[certificate]]` tables.
    pub client_tls_flags: EdgeTlsFlags,
    /// Advertise SETTINGS_ENABLE_CONNECT_PROTOCOL to HTTP/2 clients, so
    /// that they open WebSockets (and other tunnels) with RFC 8441.
    pub client_extended_connect: bool,
    /// Serve a plain listener client that opens with the HTTP/2 preface
    /// HTTP/2 (h2c with prior knowledge, RFC 9113 §3.3); on by default.
    pub plain_h2c: PlainH2c,
    /// Error answers carry their whole cause chain (sidecar addresses, TLS
    /// and OS failures) instead of a fixed text per 5xx status; for
    /// development.
    pub error_details: bool,
    /// Client address (`X-Forwarded-*`, `Forwarded`), request id and trace
    /// context fields: whom to trust, what to write.
    pub client_fields: ClientFields,
    /// The PROXY protocol on both client listeners: off by default.
    pub proxy_protocol: ProxyProtocol,
    /// The process's metrics, served on the admin listener.
    pub metrics: Arc<Metrics>,
}

impl Default for Config {
    /// The defaults `h2hop-front --h2c` runs with: h2c to the sidecar at
    /// [`defaults::SIDECAR`] (the binary asks for TLS files or `--h2c`).
    fn default() -> Self {
        Self {
            upstream: UpstreamConfig::default(),
            routing: None,
            tcp: Vec::new(),
            config_file: None,
            config_watch_interval: None,
            routing_reload: RoutingReload::default(),
            response_timeout: defaults::RESPONSE_TIMEOUT,
            upgrade_timeout: defaults::UPGRADE_TIMEOUT,
            tunnel_idle_timeout: defaults::TUNNEL_IDLE_TIMEOUT,
            tcp_keepalive: Some(Keepalive::DEFAULT),
            header_timeout: defaults::HEADER_TIMEOUT,
            client_idle_timeout: defaults::CLIENT_IDLE_TIMEOUT,
            client_fin_timeout: defaults::CLIENT_FIN_TIMEOUT,
            client_max_streams: defaults::CLIENT_MAX_STREAMS,
            max_connections_per_client: defaults::MAX_CONNECTIONS_PER_CLIENT as usize,
            protocols: Protocols::default(),
            upgrade_body_limit: h2hop::upgrade::DEFAULT_BODY_LIMIT,
            drain_timeout: defaults::DRAIN_TIMEOUT,
            max_connections: defaults::MAX_CONNECTIONS as usize,
            max_tunnels: defaults::MAX_TUNNELS as usize,
            max_header_size: defaults::MAX_HEADER_SIZE as usize,
            client_tls: None,
            client_tls_flags: EdgeTlsFlags::default(),
            client_extended_connect: true,
            plain_h2c: PlainH2c::On,
            error_details: false,
            client_fields: ClientFields::default(),
            proxy_protocol: ProxyProtocol::default(),
            metrics: Metrics::new(
                "sidecar",
                "HTTP/2 connections to sidecars open now",
                "HTTP/2 streams to sidecars open now",
            ),
        }
    }
}

impl Config {
    /// [`Config::default`] toward the sidecar at `sidecar`, with `tls` (or
    /// h2c when `None`).
    pub fn new(sidecar: String, tls: Option<UpstreamTls>) -> Self {
        Self {
            upstream: UpstreamConfig {
                addr: sidecar,
                tls,
                ..UpstreamConfig::default()
            },
            ..Self::default()
        }
    }
}

impl Config {
    /// Reads the `--config` file at `path` into [`Config::routing`], its
    /// endpoints with the timeouts of [`Config::upstream`], and keeps the
    /// path for reloads; its `[[tcp]]` entries go to [`Config::tcp`].
    /// Returns the file's `[[certificate]]` tables, for the TLS listener.
    pub fn use_config_file(&mut self, path: &Path) -> Result<Vec<CertificateEntry>, ConfigError> {
        let mut file = config_file::load(path)?;
        let certificates = std::mem::take(&mut file.certificates);
        self.tcp = std::mem::take(&mut file.tcp);
        self.routing = Some(file.into_routing(&self.upstream));
        self.config_file = Some(path.to_path_buf());
        Ok(certificates)
    }

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
