//! The sidecar's configuration: [`Config`], with the defaults the binary
//! ships named in [`defaults`] (the flags in [`crate::args`] take theirs
//! from there too). Built by `args`, read by [`crate::listener`].

use std::sync::Arc;
use std::time::Duration;

use h2hop::accept::Keepalive;
use h2hop::metrics::Metrics;
use h2hop::tls::reload::{Reloadable, Reloader};
use h2hop::upgrade::Protocols;

use crate::app::{AppConfig, AppProtocol};
use crate::apps::NamedApp;
use crate::tcp_allow::TcpAllowList;

/// The defaults of the sidecar's flags, each used by both the flag and
/// [`Config::default`].
pub mod defaults {
    use std::time::Duration;

    /// `--listen`: fronts' HTTP/2 connections.
    pub const LISTEN: &str = "127.0.0.1:8443";
    /// `--app`.
    pub const APP: &str = "127.0.0.1:8000";
    /// `--max-streams`.
    pub const MAX_STREAMS: u32 = 1000;
    /// `--connect-timeout`.
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// `--response-timeout`.
    pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
    /// `--upgrade-timeout`.
    pub const UPGRADE_TIMEOUT: Duration = Duration::from_secs(30);
    /// `--tunnel-idle-timeout`.
    pub const TUNNEL_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
    /// `--handshake-timeout`.
    pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
    /// `--drain-timeout`.
    pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);
    /// `--max-tunnels`.
    pub const MAX_TUNNELS: u32 = 50_000;
    /// `--max-pending-dials`.
    pub const MAX_PENDING_DIALS: u32 = 256;
}

/// Everything the sidecar needs, validated before any socket is bound.
#[derive(Debug, Clone)]
pub struct Config {
    /// How to reach the app; with [`Config::apps`], only the settings
    /// every named app shares (its address is unused).
    pub app: AppConfig,
    /// The named apps of `--config`, each stream going to the one its
    /// `:authority` or path picks ([`crate::apps`]); empty: [`Config::app`]
    /// takes every stream.
    pub apps: Vec<NamedApp>,
    /// The targets a CONNECT may reach (`--tcp-allow`, `[[tcp]]`); empty:
    /// every CONNECT gets 403.
    pub tcp_allow: TcpAllowList,
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
    /// What `--check-config` prints: the apps, how each is reached and
    /// which streams it takes, one line each, then the TCP targets a
    /// CONNECT may reach and for which fronts, one line each.
    pub fn apps_summary(&self) -> String {
        let mut summary = self.apps_lines();
        for allowed in self.tcp_allow.entries() {
            let fronts = allowed.fronts.as_ref().map_or_else(
                || "any front".to_owned(),
                |fronts| format!("fronts {fronts}"),
            );
            summary.push_str(&format!("  tcp target {}: {fronts}\n", allowed.target));
        }
        summary
    }

    /// The apps' part of [`Config::apps_summary`].
    fn apps_lines(&self) -> String {
        let reached = |app: &AppConfig| {
            let protocol = match app.protocol {
                AppProtocol::Http1 => "http1",
                AppProtocol::H2c => "h2c",
            };
            format!("{} ({protocol})", app.addr)
        };
        if self.apps.is_empty() {
            return format!(
                "configuration OK: one app, {}, for every stream\n",
                reached(&self.app)
            );
        }
        let mut summary = format!("configuration OK: {} app(s)\n", self.apps.len());
        for app in &self.apps {
            let mut takes = Vec::new();
            if !app.route.authorities.is_empty() {
                let authorities: Vec<String> = app
                    .route
                    .authorities
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                takes.push(format!("authorities {}", authorities.join(", ")));
            }
            if let Some(prefix) = &app.route.path_prefix {
                takes.push(format!("path_prefix {prefix}"));
            }
            let line = format!(
                "  app {}: {}; {}\n",
                app.name,
                reached(&app.config),
                takes.join("; ")
            );
            summary.push_str(&line);
        }
        summary
    }

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

impl Default for Config {
    /// The defaults `h2hop-sidecar --h2c` runs with: h2c from fronts, the
    /// app at [`defaults::APP`] (the binary asks for TLS files or `--h2c`).
    fn default() -> Self {
        Self {
            app: AppConfig {
                addr: defaults::APP.to_owned(),
                connect_timeout: defaults::CONNECT_TIMEOUT,
                response_timeout: defaults::RESPONSE_TIMEOUT,
                upgrade_timeout: defaults::UPGRADE_TIMEOUT,
                proxy_protocol: false,
                protocol: AppProtocol::Http1,
            },
            apps: Vec::new(),
            tcp_allow: TcpAllowList::default(),
            tls: None,
            max_concurrent_streams: defaults::MAX_STREAMS,
            handshake_timeout: defaults::HANDSHAKE_TIMEOUT,
            upgrades: UpgradePolicy::default(),
            drain_timeout: defaults::DRAIN_TIMEOUT,
            tunnel_idle_timeout: defaults::TUNNEL_IDLE_TIMEOUT,
            tcp_keepalive: Some(Keepalive::DEFAULT),
            max_tunnels: defaults::MAX_TUNNELS as usize,
            max_pending_dials: defaults::MAX_PENDING_DIALS as usize,
            error_details: false,
            metrics: Metrics::new(
                "front",
                "HTTP/2 connections from fronts open now",
                "HTTP/2 streams from fronts open now",
            ),
        }
    }
}

impl Config {
    /// [`Config::default`] toward the app at `app`, with `tls` for fronts
    /// (fixed: set [`Config::tls`] to a file-backed one to reload it), or
    /// h2c when `None`.
    pub fn new(app: String, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let default = Self::default();
        Self {
            app: AppConfig {
                addr: app,
                ..default.app
            },
            tls: tls.map(Reloadable::from),
            ..default
        }
    }
}
