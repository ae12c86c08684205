//! The defaults of the front's flags, each used by both the flag and
//! [`crate::Config::default`].

use std::time::Duration;

/// `--listen`: HTTP/1.1 clients.
pub const LISTEN: &str = "127.0.0.1:8080";
/// `--sidecar`.
pub const SIDECAR: &str = "127.0.0.1:8443";
/// `--connect-timeout`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// `--tls-timeout`.
pub const TLS_TIMEOUT: Duration = Duration::from_secs(5);
/// `--keepalive-interval`.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// `--keepalive-timeout`.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// `--response-timeout`.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// `--upgrade-timeout`.
pub const UPGRADE_TIMEOUT: Duration = Duration::from_secs(30);
/// `--tunnel-idle-timeout`.
pub const TUNNEL_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// `--header-timeout`.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// `--client-idle-timeout`.
pub const CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// `--client-fin-timeout`.
pub const CLIENT_FIN_TIMEOUT: Duration = Duration::from_secs(1);
/// `--client-max-streams`.
pub const CLIENT_MAX_STREAMS: u32 = 256;
/// `--max-connections-per-client`.
pub const MAX_CONNECTIONS_PER_CLIENT: u32 = 1000;
/// `--drain-timeout`.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);
/// `--max-connections`.
pub const MAX_CONNECTIONS: u32 = 50_000;
/// `--max-tunnels`.
pub const MAX_TUNNELS: u32 = 50_000;
/// `--max-header-size`.
pub const MAX_HEADER_SIZE: u32 = 64 * 1024;
/// A config file cluster's `max_connections`, and the flags' sidecar's:
/// HTTP/2 connections to one endpoint. With the sidecar's default of
/// 1,000 streams each, room for 64,000 tunnels.
pub const ENDPOINT_MAX_CONNECTIONS: usize = 64;
/// `--health-check-interval`, and a `health_check` table's `interval`.
pub const HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// `--health-check-timeout`, and a `health_check` table's `timeout`.
pub const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// `--health-check-healthy-threshold`: passes in a row that bring an
/// endpoint back.
pub const HEALTH_CHECK_HEALTHY_THRESHOLD: u32 = 2;
/// `--health-check-unhealthy-threshold`: failures in a row that take an
/// endpoint out.
pub const HEALTH_CHECK_UNHEALTHY_THRESHOLD: u32 = 3;
