//! Command-line flags (each also an environment variable) → a validated
//! [`Config`], before any socket is bound. Called by `main`.

use std::net::SocketAddr;
use std::path::PathBuf;

use h2hop::accept::KeepaliveArgs;
use h2hop::host_port::HostPort;
use h2hop::telemetry::LogArgs;
use h2hop::tls::TlsError;
use h2hop::tls::identity::AllowedSans;
use h2hop::tls::reload::{self, Reloadable};
use h2hop::upgrade::{ProtocolError, Protocols};

use crate::app::AppProtocol;
use crate::config::{Config, UpgradePolicy, defaults};
use crate::config_file::{self, ConfigError};
use crate::tcp_allow::{TcpAllowList, TcpAllowed};

/// h2hop-sidecar: accepts HTTP/2 from h2hop-front (mutual TLS by default),
/// turns each RFC 8441 extended CONNECT stream back into an HTTP/1.1
/// WebSocket upgrade toward the local app, and each ordinary stream into an
/// HTTP/1.1 request.
#[derive(Debug, clap::Parser)]
#[command(name = "h2hop-sidecar", version)]
pub struct Args {
    /// Address to accept fronts' HTTP/2 connections on.
    #[arg(long, env = "H2HOP_SIDECAR_LISTEN", default_value = defaults::LISTEN)]
    pub listen: SocketAddr,
    /// The app's address, host:port (HTTP/1.1).
    #[arg(long, env = "H2HOP_SIDECAR_APP", default_value = defaults::APP)]
    pub app: HostPort,
    /// A TOML file naming several apps, each chosen by `:authority` or
    /// path prefix; streams no app takes get 404. Replaces --app and
    /// --app-protocol (each app has its own address and protocol).
    #[arg(long, env = "H2HOP_SIDECAR_CONFIG", conflicts_with_all = ["app", "app_protocol"])]
    pub config: Option<PathBuf>,
    /// A TCP target, host:port, that fronts may reach with CONNECT
    /// (repeatable, or comma-separated); matched exactly, the host
    /// ignoring case. Any other CONNECT gets 403. `[[tcp]]` in --config
    /// adds targets, optionally for some fronts only.
    #[arg(
        long = "tcp-allow",
        value_name = "HOST:PORT",
        env = "H2HOP_SIDECAR_TCP_ALLOW",
        value_delimiter = ','
    )]
    pub tcp_allow: Vec<HostPort>,
    /// Validate the flags and --config, print the apps, and exit.
    #[arg(long)]
    pub check_config: bool,
    /// Accept cleartext HTTP/2 (h2c, prior knowledge) instead of mutual TLS.
    /// Only for meshes that encrypt elsewhere.
    #[arg(long, env = "H2HOP_SIDECAR_H2C")]
    pub h2c: bool,
    /// The sidecar's certificate chain (PEM).
    #[arg(long, env = "H2HOP_SIDECAR_CERT", required_unless_present = "h2c")]
    pub cert: Option<PathBuf>,
    /// The private key (PEM) of --cert.
    #[arg(long, env = "H2HOP_SIDECAR_KEY", required_unless_present = "h2c")]
    pub key: Option<PathBuf>,
    /// CA certificate (PEM) that fronts' client certificates must chain to.
    #[arg(long, env = "H2HOP_SIDECAR_CLIENT_CA", required_unless_present = "h2c")]
    pub client_ca: Option<PathBuf>,
    /// A SAN the front's client certificate must carry: a URI such as
    /// `spiffe://trust-domain/front` (has `://`, compared exactly) or a DNS
    /// name (compared ignoring case). Repeatable, or comma-separated; a
    /// front with none of them is refused in the TLS handshake. Unset: any
    /// certificate from --client-ca.
    #[arg(
        long = "allow-front-san",
        value_name = "SAN",
        env = "H2HOP_SIDECAR_ALLOW_FRONT_SANS",
        value_delimiter = ',',
        conflicts_with = "h2c"
    )]
    pub allow_front_sans: Vec<String>,
    /// SETTINGS_MAX_CONCURRENT_STREAMS per front connection: the most
    /// tunnels and requests one front connection may have open.
    #[arg(long, env = "H2HOP_SIDECAR_MAX_STREAMS", default_value_t = defaults::MAX_STREAMS)]
    pub max_streams: u32,
    /// Bound on TCP connect to the app.
    #[arg(long, env = "H2HOP_SIDECAR_CONNECT_TIMEOUT", default_value_t = defaults::CONNECT_TIMEOUT.into())]
    pub connect_timeout: humantime::Duration,
    /// Bound on the wait for the app's response head to a plain request.
    #[arg(long, env = "H2HOP_SIDECAR_RESPONSE_TIMEOUT", default_value_t = defaults::RESPONSE_TIMEOUT.into())]
    pub response_timeout: humantime::Duration,
    /// Bound on the wait for the app's answer to an upgrade (and for the
    /// upgrade body from the front).
    #[arg(long, env = "H2HOP_SIDECAR_UPGRADE_TIMEOUT", default_value_t = defaults::UPGRADE_TIMEOUT.into())]
    pub upgrade_timeout: humantime::Duration,
    /// A tunnel with no byte moving either way for this long is closed. No
    /// request timeout ever applies to a tunnel.
    #[arg(long, env = "H2HOP_SIDECAR_TUNNEL_IDLE_TIMEOUT", default_value_t = defaults::TUNNEL_IDLE_TIMEOUT.into())]
    pub tunnel_idle_timeout: humantime::Duration,
    /// Bound on a front's TLS and HTTP/2 handshakes.
    #[arg(long, env = "H2HOP_SIDECAR_HANDSHAKE_TIMEOUT", default_value_t = defaults::HANDSHAKE_TIMEOUT.into())]
    pub handshake_timeout: humantime::Duration,
    /// `:protocol` to tunnel (repeatable, or comma-separated); others get
    /// 501. h2c and h2 are refused.
    #[arg(
        long = "upgrade-protocol",
        env = "H2HOP_SIDECAR_UPGRADE_PROTOCOLS",
        value_delimiter = ',',
        default_value = "websocket"
    )]
    pub upgrade_protocols: Vec<String>,
    /// Largest upgrade body a front may carry, in bytes (larger: 413).
    #[arg(long, env = "H2HOP_SIDECAR_UPGRADE_BODY_LIMIT", default_value_t = h2hop::upgrade::DEFAULT_BODY_LIMIT)]
    pub upgrade_body_limit: u64,
    /// Envoy's behaviour: send every upgrade to the app as GET without a
    /// body, dropping the method and body the front carried.
    #[arg(long, env = "H2HOP_SIDECAR_UPGRADE_AS_GET")]
    pub upgrade_as_get: bool,
    /// On SIGTERM or SIGINT: how long open streams and tunnels may go on
    /// after GOAWAY, before they are cut.
    #[arg(long, env = "H2HOP_SIDECAR_DRAIN_TIMEOUT", default_value_t = defaults::DRAIN_TIMEOUT.into())]
    pub drain_timeout: humantime::Duration,
    /// Tunnels open at once; past it an extended CONNECT gets 503.
    #[arg(long, env = "H2HOP_SIDECAR_MAX_TUNNELS", default_value_t = defaults::MAX_TUNNELS, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_tunnels: u32,
    /// App dials (tunnels being set up) one front connection may have
    /// pending at once; past it, 503. A reset stream cancels its dial.
    #[arg(long, env = "H2HOP_SIDECAR_MAX_PENDING_DIALS", default_value_t = defaults::MAX_PENDING_DIALS, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pending_dials: u32,
    /// Address of the admin listener (`/metrics`, `/healthz`, `/readyz`);
    /// off unless set.
    #[arg(long, env = "H2HOP_SIDECAR_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
    /// Error answers carry their whole cause chain (app address, OS
    /// failures) instead of a fixed text per 5xx status; the front relays
    /// them to its client. For development: the log always has the chain,
    /// under the request id the answer names.
    #[arg(long, env = "H2HOP_SIDECAR_ERROR_DETAILS")]
    pub error_details: bool,
    /// Start each connection to the app with a PROXY protocol v2 header
    /// naming the client (the rightmost X-Forwarded-For entry the front
    /// wrote; LOCAL without one). Plain requests then get a connection
    /// each instead of the keep-alive pool. Off by default.
    #[arg(long, env = "H2HOP_SIDECAR_APP_PROXY_PROTOCOL")]
    pub app_proxy_protocol: bool,
    /// What the app speaks: `http1` (a keep-alive pool, WebSocket
    /// Upgrades for tunnels) or `h2c` (HTTP/2 with prior knowledge, for
    /// gRPC apps; tunnels as RFC 8441 extended CONNECT when the app
    /// enables it, else 501). Not with `--app-proxy-protocol`.
    #[arg(long, env = "H2HOP_SIDECAR_APP_PROTOCOL", value_enum, default_value_t = AppProtocol::Http1)]
    pub app_protocol: AppProtocol,
    /// Worker threads (default: one per CPU), each with its own event loop
    /// and its own listening socket on the same port (SO_REUSEPORT).
    #[arg(long, env = "H2HOP_SIDECAR_WORKERS", value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: Option<u16>,
    /// TCP keep-alive on accepted connections.
    #[command(flatten)]
    pub keepalive: KeepaliveArgs,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
}

/// Flags that do not make a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    /// A TLS file could not be used.
    #[error("TLS set-up failed")]
    Tls(#[from] TlsError),
    /// An --allow-front-san value is neither a URI nor a DNS name.
    #[error("--allow-front-san")]
    AllowedSans(#[source] TlsError),
    /// A TLS flag is missing (clap enforces this; kept for library callers).
    #[error("--{0} is required unless --h2c is set")]
    Missing(&'static str),
    /// The Upgrade allow-list is unusable.
    #[error("--upgrade-protocol")]
    Protocols(#[from] ProtocolError),
    /// A value out of range.
    #[error("--max-streams must be at least 1")]
    MaxStreams,
    /// `--app-proxy-protocol` names one client per connection, and an
    /// h2c connection carries many clients' streams at once.
    #[error(
        "--app-proxy-protocol cannot be used with an h2c app: a PROXY header names one client per connection, and HTTP/2 connections to the app are shared by every client's streams"
    )]
    ProxyProtocolWithH2c,
    /// The --config file is unusable.
    #[error("--config {}", path.display())]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the app.
        #[source]
        source: ConfigError,
    },
}

impl Args {
    /// Validates the flags and loads the TLS files.
    pub fn config(&self) -> Result<Config, ArgsError> {
        if self.max_streams == 0 {
            return Err(ArgsError::MaxStreams);
        }
        let mut config = Config::new(self.app.to_string(), None);
        if !self.h2c {
            config.tls = Some(self.tls()?);
        }
        config.app.connect_timeout = self.connect_timeout.into();
        config.app.response_timeout = self.response_timeout.into();
        config.app.upgrade_timeout = self.upgrade_timeout.into();
        config.app.proxy_protocol = self.app_proxy_protocol;
        config.app.protocol = self.app_protocol;
        let mut tcp: Vec<TcpAllowed> = self
            .tcp_allow
            .iter()
            .map(|target| TcpAllowed {
                target: target.clone(),
                fronts: None,
            })
            .collect();
        if let Some(path) = &self.config {
            let file =
                config_file::load(path, &config.app).map_err(|source| ArgsError::ConfigFile {
                    path: path.clone(),
                    source,
                })?;
            config.apps = file.apps;
            tcp.extend(file.tcp);
        }
        config.tcp_allow = TcpAllowList::new(tcp);
        let h2c_app = config.app.protocol == AppProtocol::H2c
            || config
                .apps
                .iter()
                .any(|app| app.config.protocol == AppProtocol::H2c);
        if self.app_proxy_protocol && h2c_app {
            return Err(ArgsError::ProxyProtocolWithH2c);
        }
        config.tunnel_idle_timeout = self.tunnel_idle_timeout.into();
        config.tcp_keepalive = self.keepalive.settings();
        config.max_concurrent_streams = self.max_streams;
        config.handshake_timeout = self.handshake_timeout.into();
        config.drain_timeout = self.drain_timeout.into();
        config.max_tunnels = self.max_tunnels as usize;
        config.max_pending_dials = self.max_pending_dials as usize;
        config.error_details = self.error_details;
        config.upgrades = UpgradePolicy {
            protocols: Protocols::new(&self.upgrade_protocols)?,
            body_limit: self.upgrade_body_limit,
            as_get: self.upgrade_as_get,
        };
        Ok(config)
    }

    /// The TLS files, loaded now and again on each reload (SIGHUP).
    fn tls(&self) -> Result<Reloadable<rustls::ServerConfig>, ArgsError> {
        let cert = self.cert.as_deref().ok_or(ArgsError::Missing("cert"))?;
        let key = self.key.as_deref().ok_or(ArgsError::Missing("key"))?;
        let client_ca = self
            .client_ca
            .as_deref()
            .ok_or(ArgsError::Missing("client-ca"))?;
        let allowed = AllowedSans::new(&self.allow_front_sans).map_err(ArgsError::AllowedSans)?;
        Ok(reload::hop_server_config_files(
            "front connections",
            cert,
            key,
            client_ca,
            allowed,
        )?)
    }
}

#[cfg(test)]
#[path = "args_tests.rs"]
mod tests;
