//! Command-line flags (each also an environment variable) → a validated
//! [`Config`], before any socket is bound. Called by `main`.

use std::net::SocketAddr;
use std::path::PathBuf;

use h2hop::accept::KeepaliveArgs;
use h2hop::host_port::HostPort;
use h2hop::networks::Networks;
use h2hop::telemetry::LogArgs;
use h2hop::tls::TlsError;
use h2hop::tls::edge::MinTlsVersion;
use h2hop::tls::reload;
use h2hop::upgrade::{ProtocolError, Protocols};
use rustls::pki_types::ServerName;

use crate::client_fields::{ClientFields, ForwardedFields};
use crate::cluster_policy::{PolicyError, check_retry};
use crate::config::{Config, defaults};
use crate::config_file::ConfigError;
use crate::edge_tls_config::{self, EdgeTlsError, EdgeTlsFlags};
use crate::preface::PlainH2c;
use crate::proxy_header::{ProxyMode, ProxyProtocol};
use crate::upstream::{
    FLAG_NAMES, HealthCheck, HealthCheckError, RetryOn, RetryPolicy, UpstreamConfig, UpstreamTls,
};

/// h2hop-front: accepts HTTP/1.1 clients and carries their WebSockets as
/// RFC 8441 extended CONNECT streams, and their plain requests as ordinary
/// streams, over one multiplexed HTTP/2 connection to an h2hop-sidecar.
#[derive(Debug, clap::Parser)]
#[command(name = "h2hop-front", version)]
pub struct Args {
    /// Address to accept cleartext clients on: HTTP/1.1, and HTTP/2 with
    /// prior knowledge unless --plain-h2c off.
    #[arg(long, env = "H2HOP_FRONT_LISTEN", default_value = defaults::LISTEN)]
    pub listen: SocketAddr,
    /// Address to accept TLS clients on: HTTP/2 (with RFC 8441 WebSockets)
    /// or HTTP/1.1, as ALPN chooses. Needs --tls-cert and --tls-key.
    #[arg(long, env = "H2HOP_FRONT_TLS_LISTEN", requires_all = ["tls_cert", "tls_key"])]
    pub tls_listen: Option<SocketAddr>,
    /// The certificate chain (PEM) shown to TLS clients: the default one,
    /// for clients without SNI or asking for a name no `[[certificate]]`
    /// of --config lists.
    #[arg(long, env = "H2HOP_FRONT_TLS_CERT", requires = "tls_listen")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "H2HOP_FRONT_TLS_KEY", requires = "tls_listen")]
    pub tls_key: Option<PathBuf>,
    /// A DER OCSP response stapled to --tls-cert's handshakes (RFC 6066
    /// §8); re-read on SIGHUP. Default: none.
    #[arg(long, env = "H2HOP_FRONT_TLS_OCSP", requires = "tls_listen")]
    pub tls_ocsp: Option<PathBuf>,
    /// The lowest TLS version TLS clients may use: 1.2 or 1.3. Default:
    /// 1.2.
    #[arg(
        long,
        env = "H2HOP_FRONT_TLS_MIN_VERSION",
        requires = "tls_listen",
        value_name = "1.2|1.3"
    )]
    pub tls_min_version: Option<MinTlsVersion>,
    /// The cipher suites offered to TLS clients, comma-separated, by rustls
    /// or IANA name (TLS13_AES_128_GCM_SHA256,
    /// TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, ...). Default: rustls'
    /// safe defaults.
    #[arg(
        long,
        env = "H2HOP_FRONT_TLS_CIPHERS",
        requires = "tls_listen",
        value_delimiter = ',',
        value_name = "LIST"
    )]
    pub tls_ciphers: Option<Vec<String>>,
    /// Do not advertise SETTINGS_ENABLE_CONNECT_PROTOCOL to HTTP/2 clients:
    /// browsers then open their WebSockets on a separate HTTP/1.1 connection.
    #[arg(long, env = "H2HOP_FRONT_NO_CLIENT_EXTENDED_CONNECT")]
    pub no_client_extended_connect: bool,
    /// Whether the plain listener (--listen) also serves cleartext HTTP/2
    /// with prior knowledge (h2c, as mesh gRPC clients speak), told from
    /// HTTP/1.1 by the HTTP/2 connection preface. `off`: HTTP/1.1 only.
    /// An `Upgrade: h2c` request is refused either way.
    #[arg(long, env = "H2HOP_FRONT_PLAIN_H2C", value_enum, default_value_t = PlainH2c::On)]
    pub plain_h2c: PlainH2c,
    /// A TOML file of sidecar clusters and the routes to them (see the
    /// README); replaces --sidecar and its TLS flags.
    #[arg(long, env = "H2HOP_FRONT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Also reload --config when its content changes, checked this often;
    /// 0s (the default) reloads only on SIGHUP. TLS files are reloaded on
    /// SIGHUP only.
    #[arg(
        long,
        env = "H2HOP_FRONT_CONFIG_WATCH_INTERVAL",
        default_value = "0s",
        requires = "config"
    )]
    pub config_watch_interval: humantime::Duration,
    /// Validate the flags and --config, print a summary, and exit.
    #[arg(long)]
    pub check_config: bool,
    /// The sidecar's address, host:port.
    #[arg(long, env = "H2HOP_FRONT_SIDECAR", default_value = defaults::SIDECAR)]
    pub sidecar: HostPort,
    /// Name the sidecar's certificate must carry (default: the host of --sidecar).
    #[arg(long, env = "H2HOP_FRONT_SIDECAR_NAME")]
    pub sidecar_name: Option<String>,
    /// Speak cleartext HTTP/2 (h2c, prior knowledge) to the sidecar instead of
    /// mutual TLS. Only for meshes that encrypt elsewhere.
    #[arg(long, env = "H2HOP_FRONT_H2C")]
    pub h2c: bool,
    /// CA certificate (PEM) the sidecar's certificate must chain to.
    #[arg(long, env = "H2HOP_FRONT_CA", required_unless_present_any = ["h2c", "config"])]
    pub ca: Option<PathBuf>,
    /// The front's client certificate chain (PEM), shown to the sidecar.
    #[arg(long, env = "H2HOP_FRONT_CERT", required_unless_present_any = ["h2c", "config"])]
    pub cert: Option<PathBuf>,
    /// The private key (PEM) of --cert.
    #[arg(long, env = "H2HOP_FRONT_KEY", required_unless_present_any = ["h2c", "config"])]
    pub key: Option<PathBuf>,
    /// Bound on TCP connect to the sidecar (and on the SETTINGS round trip).
    #[arg(long, env = "H2HOP_FRONT_CONNECT_TIMEOUT", default_value_t = defaults::CONNECT_TIMEOUT.into())]
    pub connect_timeout: humantime::Duration,
    /// Bound on the TLS handshake with the sidecar.
    #[arg(long, env = "H2HOP_FRONT_TLS_TIMEOUT", default_value_t = defaults::TLS_TIMEOUT.into())]
    pub tls_timeout: humantime::Duration,
    /// How often each connection to the sidecar sends a PING.
    #[arg(long, env = "H2HOP_FRONT_KEEPALIVE_INTERVAL", default_value_t = defaults::KEEPALIVE_INTERVAL.into())]
    pub keepalive_interval: humantime::Duration,
    /// A PING unanswered this long closes the connection to the sidecar and
    /// ends its tunnels (a sidecar gone without a FIN).
    #[arg(long, env = "H2HOP_FRONT_KEEPALIVE_TIMEOUT", default_value_t = defaults::KEEPALIVE_TIMEOUT.into())]
    pub keepalive_timeout: humantime::Duration,
    /// Turns on active health checks of --sidecar: a GET of this path
    /// (with `user-agent: h2hop-health-check`) through the sidecar to the
    /// app; a 2xx within --health-check-timeout passes. A --config cluster
    /// sets its own `health_check` instead. Default: off.
    #[arg(long, env = "H2HOP_FRONT_HEALTH_CHECK_PATH", conflicts_with = "config")]
    pub health_check_path: Option<String>,
    /// The pause between the end of one health check and the next.
    #[arg(long, env = "H2HOP_FRONT_HEALTH_CHECK_INTERVAL", default_value_t = defaults::HEALTH_CHECK_INTERVAL.into(), requires = "health_check_path")]
    pub health_check_interval: humantime::Duration,
    /// Bound on one health check, up to the response head.
    #[arg(long, env = "H2HOP_FRONT_HEALTH_CHECK_TIMEOUT", default_value_t = defaults::HEALTH_CHECK_TIMEOUT.into(), requires = "health_check_path")]
    pub health_check_timeout: humantime::Duration,
    /// Passes in a row that bring an unhealthy sidecar back.
    #[arg(long, env = "H2HOP_FRONT_HEALTH_CHECK_HEALTHY_THRESHOLD", default_value_t = defaults::HEALTH_CHECK_HEALTHY_THRESHOLD, requires = "health_check_path")]
    pub health_check_healthy_threshold: u32,
    /// Failures in a row that take a sidecar out: it gets no new streams
    /// (503 when no other is left) until it passes again.
    #[arg(long, env = "H2HOP_FRONT_HEALTH_CHECK_UNHEALTHY_THRESHOLD", default_value_t = defaults::HEALTH_CHECK_UNHEALTHY_THRESHOLD, requires = "health_check_path")]
    pub health_check_unhealthy_threshold: u32,
    /// Bound on the wait for the sidecar's response head to a plain request.
    #[arg(long, env = "H2HOP_FRONT_RESPONSE_TIMEOUT", default_value_t = defaults::RESPONSE_TIMEOUT.into())]
    pub response_timeout: humantime::Duration,
    /// Tries of a plain request after the first, on a failure --retry-on
    /// lists; 0 (the default) turns retries off. Only a request without a
    /// body, or with a Content-Length of at most --retry-max-body, is
    /// retried.
    #[arg(long, env = "H2HOP_FRONT_RETRIES", default_value_t = 0)]
    pub retries: u32,
    /// What is retried: connect-failure, refused-stream, reset,
    /// per-try-timeout, or a status such as 503 (comma-separated).
    #[arg(
        long,
        env = "H2HOP_FRONT_RETRY_ON",
        value_delimiter = ',',
        default_value = "connect-failure,refused-stream,reset,503"
    )]
    pub retry_on: Vec<RetryOn>,
    /// Bound on each try's wait for the response head (default: only
    /// --response-timeout, which bounds all tries together).
    #[arg(long, env = "H2HOP_FRONT_RETRY_PER_TRY_TIMEOUT")]
    pub retry_per_try_timeout: Option<humantime::Duration>,
    /// Retries in flight at most, in percent of the requests in flight.
    #[arg(long, env = "H2HOP_FRONT_RETRY_BUDGET_PERCENT", default_value_t = 20)]
    pub retry_budget_percent: u8,
    /// Retries in flight allowed whatever --retry-budget-percent gives.
    #[arg(long, env = "H2HOP_FRONT_RETRY_MIN_CONCURRENT", default_value_t = 3)]
    pub retry_min_concurrent: u32,
    /// Largest request body (bytes, from its Content-Length) kept to be
    /// sent again; a larger one streams up once and is not retried.
    #[arg(long, env = "H2HOP_FRONT_RETRY_MAX_BODY", default_value_t = 64 * 1024)]
    pub retry_max_body: u64,
    /// Bound on the wait for the sidecar's answer to an upgrade (and for
    /// the upgrade's body from the client).
    #[arg(long, env = "H2HOP_FRONT_UPGRADE_TIMEOUT", default_value_t = defaults::UPGRADE_TIMEOUT.into())]
    pub upgrade_timeout: humantime::Duration,
    /// A tunnel with no byte moving either way for this long is closed. No
    /// request timeout ever applies to a tunnel.
    #[arg(long, env = "H2HOP_FRONT_TUNNEL_IDLE_TIMEOUT", default_value_t = defaults::TUNNEL_IDLE_TIMEOUT.into())]
    pub tunnel_idle_timeout: humantime::Duration,
    /// Bound on reading a client's request head; also on a cleartext
    /// client's first bytes, which tell h2c from HTTP/1.1.
    #[arg(long, env = "H2HOP_FRONT_HEADER_TIMEOUT", default_value_t = defaults::HEADER_TIMEOUT.into())]
    pub header_timeout: humantime::Duration,
    /// A client connection with no request or tunnel in flight for this
    /// long is closed; HTTP/2 gets GOAWAY first. (HTTP/1.1 also closes a
    /// connection whose next request head takes --header-timeout.)
    #[arg(long, env = "H2HOP_FRONT_CLIENT_IDLE_TIMEOUT", default_value_t = defaults::CLIENT_IDLE_TIMEOUT.into())]
    pub client_idle_timeout: humantime::Duration,
    /// Once a tunnel's far side has ended and the client was told
    /// (END_STREAM on HTTP/2, FIN on HTTP/1.1), the client must end its
    /// half within this much quiet, or the tunnel is reset and its HTTP/2
    /// stream freed (as HAProxy's `timeout client-fin`).
    #[arg(long, env = "H2HOP_FRONT_CLIENT_FIN_TIMEOUT", default_value_t = defaults::CLIENT_FIN_TIMEOUT.into())]
    pub client_fin_timeout: humantime::Duration,
    /// Streams one HTTP/2 client connection may have open at once
    /// (SETTINGS_MAX_CONCURRENT_STREAMS); more are refused (REFUSED_STREAM).
    #[arg(long, env = "H2HOP_FRONT_CLIENT_MAX_STREAMS", default_value_t = defaults::CLIENT_MAX_STREAMS, value_parser = clap::value_parser!(u32).range(1..))]
    pub client_max_streams: u32,
    /// Client connections one IP address may have served at once
    /// (upgraded ones count as tunnels instead); past it a new connection
    /// from that address is refused like one past --max-connections.
    #[arg(long, env = "H2HOP_FRONT_MAX_CONNECTIONS_PER_CLIENT", default_value_t = defaults::MAX_CONNECTIONS_PER_CLIENT, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_client: u32,
    /// Upgrade protocol to tunnel (repeatable, or comma-separated); others
    /// are forwarded as plain HTTP without their Upgrade. h2c and h2 are
    /// refused.
    #[arg(
        long = "upgrade-protocol",
        env = "H2HOP_FRONT_UPGRADE_PROTOCOLS",
        value_delimiter = ',',
        default_value = "websocket"
    )]
    pub upgrade_protocols: Vec<String>,
    /// Largest upgrade request body in bytes; it must have a Content-Length
    /// (chunked: 400) and larger ones get 413.
    #[arg(long, env = "H2HOP_FRONT_UPGRADE_BODY_LIMIT", default_value_t = h2hop::upgrade::DEFAULT_BODY_LIMIT)]
    pub upgrade_body_limit: u64,
    /// On SIGTERM or SIGINT: how long open requests and tunnels may go on
    /// after the listener closes, before they are cut.
    #[arg(long, env = "H2HOP_FRONT_DRAIN_TIMEOUT", default_value_t = defaults::DRAIN_TIMEOUT.into())]
    pub drain_timeout: humantime::Duration,
    /// Client HTTP connections served at once (upgraded ones count as
    /// tunnels instead); past it a new connection gets 503 and is closed.
    #[arg(long, env = "H2HOP_FRONT_MAX_CONNECTIONS", default_value_t = defaults::MAX_CONNECTIONS, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Tunnels open at once; past it an upgrade gets 503.
    #[arg(long, env = "H2HOP_FRONT_MAX_TUNNELS", default_value_t = defaults::MAX_TUNNELS, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_tunnels: u32,
    /// Largest request head in bytes (at least 8192); past it, 431.
    #[arg(long, env = "H2HOP_FRONT_MAX_HEADER_SIZE", default_value_t = defaults::MAX_HEADER_SIZE, value_parser = clap::value_parser!(u32).range(8192..))]
    pub max_header_size: u32,
    /// Address of the admin listener (`/metrics`, `/healthz`, `/readyz`);
    /// off unless set.
    #[arg(long, env = "H2HOP_FRONT_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
    /// Error answers carry their whole cause chain (sidecar addresses, TLS
    /// and OS failures) instead of a fixed text per 5xx status. For
    /// development: the log always has the chain, under the request id the
    /// answer names.
    #[arg(long, env = "H2HOP_FRONT_ERROR_DETAILS")]
    pub error_details: bool,
    /// Source networks (10.0.0.0/8, fd00::/8, or addresses; comma-separated
    /// or repeated) of proxies in front of this one. From a peer in them,
    /// incoming X-Forwarded-*, Forwarded and X-Request-Id are kept and
    /// extended, and the client is the rightmost X-Forwarded-For address
    /// not in them; from any other peer those fields are removed and the
    /// client is the peer. Default: none, trust nobody.
    #[arg(long, env = "H2HOP_FRONT_TRUSTED_PROXIES")]
    pub trusted_proxies: Vec<Networks>,
    /// Client address fields to write: X-Forwarded-For and
    /// X-Forwarded-Proto, RFC 7239 Forwarded, or both.
    #[arg(
        long,
        env = "H2HOP_FRONT_FORWARDED_FIELDS",
        value_enum,
        default_value = "x-forwarded"
    )]
    pub forwarded_fields: ForwardedFields,
    /// Put each request's X-Request-Id on its response too.
    #[arg(long, env = "H2HOP_FRONT_REQUEST_ID_ECHO")]
    pub request_id_echo: bool,
    /// Start a W3C trace (a traceparent with a new trace id and the front's
    /// own span id, sampled) for a request that comes without a valid one.
    /// Off by default: a started trace tells the app's tracer to record.
    #[arg(long, env = "H2HOP_FRONT_START_TRACE")]
    pub start_trace: bool,
    /// PROXY protocol (v1 or v2) on the plain and the TLS listener, from
    /// the peers in --proxy-protocol-from: `off` reads nothing before TLS
    /// or HTTP; `optional` lets a listed peer send a header; `required`
    /// refuses a listed peer's connection without one (within
    /// --header-timeout). A header's source address is the client's for
    /// limits, logs and X-Forwarded-For.
    #[arg(long, env = "H2HOP_FRONT_PROXY_PROTOCOL", value_enum, default_value_t = ProxyMode::Off)]
    pub proxy_protocol: ProxyMode,
    /// Peers (load balancers) whose PROXY header is believed: addresses or
    /// networks, comma-separated or repeated (`10.0.0.0/8,::1`). Any other
    /// peer that sends a PROXY header is refused. Needs --proxy-protocol
    /// optional or required.
    #[arg(long, env = "H2HOP_FRONT_PROXY_PROTOCOL_FROM")]
    pub proxy_protocol_from: Vec<Networks>,
    /// Worker threads (default: one per CPU), each with its own event loop
    /// and its own listening socket on the same port (SO_REUSEPORT).
    #[arg(long, env = "H2HOP_FRONT_WORKERS", value_parser = clap::value_parser!(u16).range(1..))]
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
    /// The client-facing TLS listener's settings are refused.
    #[error(transparent)]
    EdgeTls(#[from] EdgeTlsError),
    /// No name to check the sidecar's certificate against.
    #[error("invalid sidecar name {0:?}")]
    SidecarName(String),
    /// The --config file is unusable.
    #[error("--config {}", path.display())]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: ConfigError,
    },
    /// The `--health-check-*` flags are unusable.
    #[error("--health-check-path and its flags")]
    HealthCheck(#[from] HealthCheckError),
    /// A --retry* flag is out of its range.
    #[error("--retry flags")]
    Retry(#[source] PolicyError),
    /// The Upgrade allow-list is unusable.
    #[error("--upgrade-protocol")]
    Protocols(#[from] ProtocolError),
    /// PROXY protocol asked for without the peers it is taken from, or
    /// peers listed with it off.
    #[error(
        "--proxy-protocol optional or required needs --proxy-protocol-from, and --proxy-protocol-from needs one of them"
    )]
    ProxyProtocol,
    /// A TLS flag is missing (clap enforces this; kept for library callers).
    #[error("--{0} is required unless --h2c is set")]
    Missing(&'static str),
}

impl Args {
    /// The `--retry*` flags as the default cluster's retry policy.
    fn retry_policy(&self) -> Result<RetryPolicy, ArgsError> {
        let policy = RetryPolicy {
            retries: self.retries,
            on: self.retry_on.clone(),
            per_try_timeout: self.retry_per_try_timeout.map(Into::into),
            budget_percent: self.retry_budget_percent,
            min_retries_concurrent: self.retry_min_concurrent,
            max_body: self.retry_max_body,
        };
        check_retry(&policy).map_err(ArgsError::Retry)?;
        Ok(policy)
    }

    /// Validates the flags and loads the TLS files.
    pub fn config(&self) -> Result<Config, ArgsError> {
        let tls = if self.h2c || self.config.is_some() {
            None
        } else {
            Some(self.tls()?)
        };
        let mut config = Config::new(self.sidecar.to_string(), tls);
        config.upstream = UpstreamConfig {
            connect_timeout: self.connect_timeout.into(),
            tls_timeout: self.tls_timeout.into(),
            keepalive_interval: self.keepalive_interval.into(),
            keepalive_timeout: self.keepalive_timeout.into(),
            health_check: self.health_check()?,
            retry: self.retry_policy()?,
            ..config.upstream
        };
        let mut certificates = Vec::new();
        if let Some(path) = &self.config {
            certificates =
                config
                    .use_config_file(path)
                    .map_err(|source| ArgsError::ConfigFile {
                        path: path.clone(),
                        source,
                    })?;
        }
        config.config_watch_interval = Some(self.config_watch_interval.into())
            .filter(|every: &std::time::Duration| !every.is_zero());
        config.response_timeout = self.response_timeout.into();
        config.upgrade_timeout = self.upgrade_timeout.into();
        config.tunnel_idle_timeout = self.tunnel_idle_timeout.into();
        config.tcp_keepalive = self.keepalive.settings();
        config.header_timeout = self.header_timeout.into();
        config.client_idle_timeout = self.client_idle_timeout.into();
        config.client_fin_timeout = self.client_fin_timeout.into();
        config.client_max_streams = self.client_max_streams;
        config.max_connections_per_client = self.max_connections_per_client as usize;
        config.protocols = Protocols::new(&self.upgrade_protocols)?;
        config.upgrade_body_limit = self.upgrade_body_limit;
        config.drain_timeout = self.drain_timeout.into();
        config.max_connections = self.max_connections as usize;
        config.max_tunnels = self.max_tunnels as usize;
        config.max_header_size = self.max_header_size as usize;
        config.client_extended_connect = !self.no_client_extended_connect;
        config.plain_h2c = self.plain_h2c;
        config.error_details = self.error_details;
        config.client_fields = self.client_fields();
        config.proxy_protocol = self.proxy_protocol()?;
        config.client_tls_flags = self.edge_tls();
        config.client_tls = edge_tls_config::client_tls(&config.client_tls_flags, certificates)?;
        Ok(config)
    }

    /// The `--health-check-*` flags, if `--health-check-path` turns them on.
    fn health_check(&self) -> Result<Option<HealthCheck>, ArgsError> {
        let Some(path) = &self.health_check_path else {
            return Ok(None);
        };
        let check = HealthCheck {
            interval: self.health_check_interval.into(),
            timeout: self.health_check_timeout.into(),
            healthy_threshold: self.health_check_healthy_threshold,
            unhealthy_threshold: self.health_check_unhealthy_threshold,
            ..HealthCheck::new(path)?
        };
        Ok(Some(check.validate(&FLAG_NAMES)?))
    }

    /// The flags of the client-facing TLS listener.
    fn edge_tls(&self) -> EdgeTlsFlags {
        EdgeTlsFlags {
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
            ocsp: self.tls_ocsp.clone(),
            min_version: self.tls_min_version,
            ciphers: self.tls_ciphers.clone(),
        }
    }

    /// The client address and identity settings.
    fn client_fields(&self) -> ClientFields {
        let mut trusted_proxies = Networks::none();
        for networks in &self.trusted_proxies {
            trusted_proxies.extend(networks.clone());
        }
        ClientFields {
            trusted_proxies,
            write: self.forwarded_fields,
            request_id_echo: self.request_id_echo,
            start_trace: self.start_trace,
        }
    }

    /// `--proxy-protocol` with its peers; either without the other is an
    /// error rather than a setting that silently does nothing.
    fn proxy_protocol(&self) -> Result<ProxyProtocol, ArgsError> {
        let mut from = Networks::none();
        for networks in &self.proxy_protocol_from {
            from.extend(networks.clone());
        }
        if (self.proxy_protocol == ProxyMode::Off) != from.is_empty() {
            return Err(ArgsError::ProxyProtocol);
        }
        Ok(ProxyProtocol {
            mode: self.proxy_protocol,
            from,
        })
    }

    /// The TLS files toward the sidecar, loaded now and again on each
    /// reload (SIGHUP).
    fn tls(&self) -> Result<UpstreamTls, ArgsError> {
        let ca = self.ca.as_deref().ok_or(ArgsError::Missing("ca"))?;
        let cert = self.cert.as_deref().ok_or(ArgsError::Missing("cert"))?;
        let key = self.key.as_deref().ok_or(ArgsError::Missing("key"))?;
        let config = reload::hop_client_config_files("sidecar connections", ca, cert, key)?;
        let name = match &self.sidecar_name {
            Some(name) => name.clone(),
            None => self.sidecar.host().to_owned(),
        };
        let server_name =
            ServerName::try_from(name.clone()).map_err(|_| ArgsError::SidecarName(name))?;
        Ok(UpstreamTls {
            config,
            server_name,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use clap::Parser as _;

    /// The flags' defaults are [`Config::default`]: a command line that
    /// sets nothing but `--h2c` gives exactly it, field for field.
    #[test]
    fn bare_command_line_gives_the_default_config() {
        let parsed = Args::try_parse_from(["h2hop-front", "--h2c"])
            .unwrap()
            .config()
            .unwrap();
        assert_eq!(format!("{parsed:#?}"), format!("{:#?}", Config::default()));
    }

    /// The --retry* flags make the default cluster's policy; a condition
    /// or a value out of range is refused with the flag's name.
    #[test]
    fn retry_flags_make_the_policy() {
        let args = [
            "h2hop-front",
            "--h2c",
            "--retries",
            "2",
            "--retry-on",
            "reset,502",
            "--retry-per-try-timeout",
            "250ms",
            "--retry-max-body",
            "100",
        ];
        let config = Args::try_parse_from(args).unwrap().config().unwrap();
        let policy = config.upstream.retry;
        assert_eq!(policy.retries, 2);
        assert_eq!(
            policy.on,
            vec![
                RetryOn::Reset,
                RetryOn::Status(http::StatusCode::BAD_GATEWAY)
            ]
        );
        assert_eq!(policy.per_try_timeout, Some(Duration::from_millis(250)));
        assert_eq!(policy.max_body, 100);
        let bad = Args::try_parse_from(["h2hop-front", "--h2c", "--retry-on", "5xx"]).unwrap_err();
        assert!(bad.to_string().contains("5xx"), "{bad}");
        let over = Args::try_parse_from(["h2hop-front", "--h2c", "--retries", "11"])
            .unwrap()
            .config()
            .unwrap_err();
        let chain = h2hop::telemetry::chain(&over);
        assert!(chain.contains("retry.retries"), "{chain}");
    }

    /// An address without a port is refused when the flags are read (and
    /// so by `--check-config`), not met as a 502 per request.
    #[test]
    fn an_address_without_a_port_is_refused_at_start_up() {
        for flag in ["--sidecar"] {
            for value in ["127.0.0.1", "localhost", "[::1]"] {
                let err = Args::try_parse_from(["h2hop-front", "--h2c", flag, value]).unwrap_err();
                assert!(
                    err.to_string().contains("has no port"),
                    "{flag} {value}: {err}"
                );
            }
        }
    }

    /// `--health-check-path` turns checks of --sidecar on, the other
    /// flags tune them; alone they are refused, as is a zero threshold.
    #[test]
    fn health_check_flags_set_the_sidecar_check() {
        let config = |flags: &[&str]| {
            let mut line = vec!["h2hop-front", "--h2c"];
            line.extend_from_slice(flags);
            Args::try_parse_from(line).map(|args| args.config())
        };
        let plain = config(&[]).unwrap().unwrap();
        assert!(plain.upstream.health_check.is_none());
        let on = config(&[
            "--health-check-path",
            "/healthz",
            "--health-check-interval",
            "2s",
            "--health-check-unhealthy-threshold",
            "4",
        ])
        .unwrap()
        .unwrap();
        let check = on.upstream.health_check.unwrap();
        assert_eq!(check.path.as_str(), "/healthz");
        assert_eq!(check.interval, Duration::from_secs(2));
        assert_eq!(check.timeout, defaults::HEALTH_CHECK_TIMEOUT);
        assert_eq!(check.unhealthy_threshold, 4);
        assert!(config(&["--health-check-interval", "2s"]).is_err());
        let zero = config(&[
            "--health-check-path",
            "/h",
            "--health-check-healthy-threshold",
            "0",
        ]);
        let err = zero.unwrap().unwrap_err();
        assert!(
            h2hop::telemetry::chain(&err)
                .contains("--health-check-healthy-threshold must be at least 1"),
            "{err}"
        );
        let relative = config(&["--health-check-path", "healthz"])
            .unwrap()
            .unwrap_err();
        assert!(matches!(
            relative,
            ArgsError::HealthCheck(HealthCheckError::Path(_))
        ));
    }

    #[test]
    fn tls_files_are_required_unless_h2c() {
        assert!(Args::try_parse_from(["h2hop-front"]).is_err());
        let args =
            Args::try_parse_from(["h2hop-front", "--h2c", "--connect-timeout", "250ms"]).unwrap();
        let config = args.config().unwrap();
        assert!(config.upstream.tls.is_none());
        assert_eq!(config.upstream.connect_timeout, Duration::from_millis(250));
        assert_eq!(config.protocols, Protocols::default());
    }

    /// Every TLS file set is reloaded, once each: a `--config` cluster's
    /// endpoints share theirs, an h2c cluster has none, and the client
    /// listener's certificate counts too.
    #[test]
    fn reloader_covers_each_tls_file_set_once() {
        let dir = tempfile::tempdir().unwrap();
        let pki = h2hop_certs::DevPki::generate(&["localhost".to_owned()]).unwrap();
        pki.write_to(dir.path(), false).unwrap();
        let config_file = dir.path().join("front.toml");
        let clusters = r#"
            [[cluster]]
            name = "chat"
            endpoints = ["localhost:1", "localhost:2"]
            ca = "ca.pem"
            cert = "front.pem"
            key = "front-key.pem"

            [[cluster]]
            name = "web"
            endpoints = ["localhost:3"]
            h2c = true

            [[route]]
            cluster = "chat"
        "#;
        std::fs::write(&config_file, clusters).unwrap();
        let file = |name: &str| dir.path().join(name).display().to_string();
        let args = Args::try_parse_from([
            "h2hop-front".to_owned(),
            "--config".to_owned(),
            file("front.toml"),
            "--tls-listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--tls-cert".to_owned(),
            file("sidecar.pem"),
            "--tls-key".to_owned(),
            file("sidecar-key.pem"),
        ])
        .unwrap();
        let config = args.config().unwrap();
        let reloader = config.reloader();
        assert_eq!(reloader.len(), 2, "cluster chat and the client listener");
        let report = reloader.reload();
        assert_eq!((report.reloaded, report.failed), (2, 0));
        let h2c = Args::try_parse_from(["h2hop-front", "--h2c"]).unwrap();
        assert!(h2c.config().unwrap().reloader().is_empty());
    }

    /// Off by default; a duration turns the watcher on, and needs --config.
    #[test]
    fn config_watch_interval_is_off_unless_set() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("front.toml");
        let text = "[[cluster]]\nname = \"w\"\nendpoints = [\"w:1\"]\nh2c = true\n\n[[route]]\ncluster = \"w\"\n";
        std::fs::write(&path, text).unwrap();
        let path = path.display().to_string();
        let args = Args::try_parse_from(["h2hop-front", "--config", &path]).unwrap();
        let config = args.config().unwrap();
        assert_eq!(config.config_watch_interval, None);
        assert_eq!(config.config_file.as_deref(), Some(Path::new(&path)));
        let watched = [
            "h2hop-front",
            "--config",
            &path,
            "--config-watch-interval",
            "2s",
        ];
        let config = Args::try_parse_from(watched).unwrap().config().unwrap();
        assert_eq!(config.config_watch_interval, Some(Duration::from_secs(2)));
        let without_file = ["h2hop-front", "--h2c", "--config-watch-interval", "2s"];
        assert!(Args::try_parse_from(without_file).is_err());
    }

    #[test]
    fn tcp_keepalive_flags_reach_the_config() {
        let args = Args::try_parse_from(["h2hop-front", "--h2c"]).unwrap();
        let default = args.config().unwrap().tcp_keepalive;
        assert_eq!(default, Some(h2hop::accept::Keepalive::DEFAULT));
        let args =
            Args::try_parse_from(["h2hop-front", "--h2c", "--tcp-keepalive-idle", "0s"]).unwrap();
        assert_eq!(args.config().unwrap().tcp_keepalive, None);
    }

    /// h2c on the plain listener is on by default; `off` turns it off, and
    /// a value that is neither is refused.
    #[test]
    fn plain_h2c_is_on_unless_turned_off() {
        let args = Args::try_parse_from(["h2hop-front", "--h2c"]).unwrap();
        assert_eq!(args.config().unwrap().plain_h2c, PlainH2c::On);
        let args = Args::try_parse_from(["h2hop-front", "--h2c", "--plain-h2c", "off"]).unwrap();
        assert_eq!(args.config().unwrap().plain_h2c, PlainH2c::Off);
        assert!(Args::try_parse_from(["h2hop-front", "--h2c", "--plain-h2c", "no"]).is_err());
    }

    /// Off by default; the flag, or its environment variable, turns it on.
    #[test]
    fn error_details_are_off_unless_asked_for() {
        let args = Args::try_parse_from(["h2hop-front", "--h2c"]).unwrap();
        assert!(!args.config().unwrap().error_details);
        let args = Args::try_parse_from(["h2hop-front", "--h2c", "--error-details"]).unwrap();
        assert!(args.config().unwrap().error_details);
        let command = <Args as clap::CommandFactory>::command();
        let flag = command
            .get_arguments()
            .find(|arg| arg.get_id() == "error_details");
        let env = flag.and_then(|flag| flag.get_env());
        assert_eq!(env, Some(std::ffi::OsStr::new("H2HOP_FRONT_ERROR_DETAILS")));
    }

    /// The client-facing bounds: documented defaults, and each flag
    /// reaches the configuration.
    #[test]
    fn client_bounds_have_defaults_and_flags() {
        let config = Args::try_parse_from(["h2hop-front", "--h2c"])
            .unwrap()
            .config()
            .unwrap();
        assert_eq!(config.client_idle_timeout, Duration::from_secs(60));
        assert_eq!(config.client_fin_timeout, Duration::from_secs(1));
        assert_eq!(config.client_max_streams, 256);
        assert_eq!(config.max_connections_per_client, 1000);
        let args = Args::try_parse_from([
            "h2hop-front",
            "--h2c",
            "--client-idle-timeout",
            "3s",
            "--client-fin-timeout",
            "250ms",
            "--client-max-streams",
            "7",
            "--max-connections-per-client",
            "9",
        ])
        .unwrap();
        let config = args.config().unwrap();
        assert_eq!(config.client_idle_timeout, Duration::from_secs(3));
        assert_eq!(config.client_fin_timeout, Duration::from_millis(250));
        assert_eq!(config.client_max_streams, 7);
        assert_eq!(config.max_connections_per_client, 9);
        assert!(
            Args::try_parse_from(["h2hop-front", "--h2c", "--client-max-streams", "0"]).is_err()
        );
    }

    /// Trust nobody, X-Forwarded-*, no echo, no started traces by default;
    /// each flag reaches the configuration, networks from every
    /// `--trusted-proxies`.
    #[test]
    fn client_fields_have_defaults_and_flags() {
        let args = Args::try_parse_from(["h2hop-front", "--h2c"]).unwrap();
        assert_eq!(
            args.config().unwrap().client_fields,
            ClientFields::default()
        );
        let default = ClientFields::default();
        assert!(default.trusted_proxies.is_empty());
        assert_eq!(default.write, ForwardedFields::XForwarded);
        assert!(!default.request_id_echo && !default.start_trace);
        let args = Args::try_parse_from([
            "h2hop-front",
            "--h2c",
            "--trusted-proxies",
            "10.0.0.0/8,::1",
            "--trusted-proxies",
            "192.0.2.7",
            "--forwarded-fields",
            "both",
            "--request-id-echo",
            "--start-trace",
        ])
        .unwrap();
        let fields = args.config().unwrap().client_fields;
        assert_eq!(
            fields.trusted_proxies.to_string(),
            "10.0.0.0/8,::1/128,192.0.2.7/32"
        );
        assert_eq!(fields.write, ForwardedFields::Both);
        assert!(fields.request_id_echo && fields.start_trace);
        assert!(
            Args::try_parse_from(["h2hop-front", "--h2c", "--trusted-proxies", "nope"]).is_err()
        );
    }

    /// Off by default; a mode needs its peers and peers need a mode.
    #[test]
    fn proxy_protocol_flags_reach_the_config() {
        let config = Args::try_parse_from(["h2hop-front", "--h2c"])
            .unwrap()
            .config()
            .unwrap();
        assert_eq!(config.proxy_protocol, ProxyProtocol::default());
        assert_eq!(config.proxy_protocol.mode, ProxyMode::Off);
        let args = Args::try_parse_from([
            "h2hop-front",
            "--h2c",
            "--proxy-protocol",
            "required",
            "--proxy-protocol-from",
            "10.0.0.0/8, ::1",
            "--proxy-protocol-from",
            "192.0.2.7",
        ])
        .unwrap();
        let proxy = args.config().unwrap().proxy_protocol;
        assert_eq!(proxy.mode, ProxyMode::Required);
        assert_eq!(proxy.from.to_string(), "10.0.0.0/8,::1/128,192.0.2.7/32");
        for lonely in [
            &["--proxy-protocol", "optional"][..],
            &["--proxy-protocol-from", "10.0.0.0/8"],
        ] {
            let args = Args::try_parse_from([&["h2hop-front", "--h2c"][..], lonely].concat());
            let err = args.unwrap().config().unwrap_err();
            assert!(matches!(err, ArgsError::ProxyProtocol), "{lonely:?}: {err}");
        }
        let junk = [
            "h2hop-front",
            "--h2c",
            "--proxy-protocol-from",
            "lb.example",
        ];
        assert!(Args::try_parse_from(junk).is_err());
    }

    #[test]
    fn upgrade_protocols_are_validated() {
        let args = Args::try_parse_from([
            "h2hop-front",
            "--h2c",
            "--upgrade-protocol",
            "websocket,my-proto",
            "--upgrade-protocol",
            "other",
        ])
        .unwrap();
        let protocols = args.config().unwrap().protocols;
        assert_eq!(
            protocols.iter().collect::<Vec<_>>(),
            ["websocket", "my-proto", "other"]
        );
        let args =
            Args::try_parse_from(["h2hop-front", "--h2c", "--upgrade-protocol", "h2c"]).unwrap();
        let err = args.config().unwrap_err();
        assert!(matches!(
            err,
            ArgsError::Protocols(ProtocolError::Forbidden(_))
        ));
    }
}
