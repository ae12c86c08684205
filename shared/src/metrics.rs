//! The Prometheus metrics both binaries keep, served by [`crate::admin`].
//!
//! One [`Metrics`] per process, shared by `Arc`. Label values are a few
//! fixed words (or the configured Upgrade tokens, or TCP tunnel targets), so every series is known
//! up front and a hot-path update is one lookup and one atomic add.

use std::sync::atomic::AtomicI64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

mod labels;

use labels::{
    ClusterLabel, CulpritLabel, DirectionLabel, EndpointLabels, HealthCheckLabels, LimitLabel,
    ProtocolLabel, ReloadLabel, RetryLabels, STATUS_CLASSES, StatusLabel, TargetLabel,
    TcpBytesLabels, TcpLabels, TunnelLabels,
};

/// How a tunnel ended, or why it never opened.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum TunnelResult {
    /// Both directions closed normally.
    Clean,
    /// A reset or error on either side.
    Reset,
    /// Closed by the tunnel idle timeout.
    Idle,
    /// Closed because the near side left its half open past the fin
    /// timeout after the far side ended.
    FinTimeout,
    /// The peer answered the upgrade with something other than a switch.
    Refused,
    /// The tunnel could not be set up (unreachable, timeout, bad answer).
    Failed,
    /// A TCP tunnel's target is not on the sidecar's allow-list.
    Denied,
}

impl From<crate::relay::Close> for TunnelResult {
    fn from(close: crate::relay::Close) -> Self {
        use crate::relay::Close;
        match close {
            Close::Clean => TunnelResult::Clean,
            Close::Idle => TunnelResult::Idle,
            Close::FinTimeout => TunnelResult::FinTimeout,
            Close::TcpReset | Close::StreamReset => TunnelResult::Reset,
        }
    }
}

/// A limit that refused work, for the `limit_reached` counter.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum LimitKind {
    /// Client connections served at once (`--max-connections`).
    ClientConnections,
    /// Client connections from one address (`--max-connections-per-client`).
    ClientAddress,
    /// A client's HTTP/2 connection reached its stream limit: h2 refuses
    /// further streams (REFUSED_STREAM) without telling, so this counts
    /// connections that reached it.
    ClientStreams,
}

/// Who a failure is blamed on.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Culprit {
    /// A malformed or refused request, or a limit the client hit.
    Client,
    /// The other h2hop hop: counted as `sidecar` at the front and as
    /// `front` at the sidecar.
    Peer,
    /// The app behind the sidecar.
    App,
    /// A bound ran out.
    Timeout,
}

/// How a reload went, for the `config_reloads` and `tls_reloads` counters.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum ReloadResult {
    /// The new configuration (or certificates) is in use.
    Ok,
    /// A file was unusable; what was in use stays.
    Failed,
}

/// How one active health check went, for the `health_checks` counter.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum HealthCheckResult {
    /// A 2xx answer arrived within the check's timeout.
    Pass,
    /// Anything else: another status, an error, or no answer in time.
    Fail,
}

/// What became of a retry the front considered, for the `retries` counter.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum RetryResult {
    /// The retry went out.
    Sent,
    /// The cluster's retry budget had no place: the failure was answered.
    BudgetExhausted,
    /// The request body could not be replayed: it went out once.
    NotReplayable,
}

/// Bytes' direction: toward the app, or toward the client.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Direction {
    /// Client → app.
    Up,
    /// App → client.
    Down,
}

/// A process's metrics.
pub struct Metrics {
    registry: Registry,
    tunnels_active: Family<ProtocolLabel, Gauge>,
    tunnels: Family<TunnelLabels, Counter>,
    handshake_seconds: Histogram,
    tunnel_bytes: Family<DirectionLabel, Counter>,
    tcp_active: Family<TargetLabel, Gauge>,
    tcp_tunnels: Family<TcpLabels, Counter>,
    tcp_connect_seconds: Histogram,
    tcp_bytes: Family<TcpBytesLabels, Counter>,
    requests: Family<StatusLabel, Counter>,
    /// `requests`' counter of each status class, taken from the family on
    /// first use: the family's lookup hashes the label and takes its lock
    /// for every request (callgrind: 360 → 90 instructions per request).
    /// A series still appears only
    /// once it is counted.
    requests_by_class: [OnceLock<Counter>; STATUS_CLASSES.len()],
    request_seconds: Histogram,
    errors: Family<CulpritLabel, Counter>,
    limits_reached: Family<LimitLabel, Counter>,
    config_reloads: Family<ReloadLabel, Counter>,
    tls_reloads: Family<ReloadLabel, Counter>,
    /// 1 from the start of the shutdown drain until exit.
    draining: Gauge,
    upstream_healthy: Family<EndpointLabels, Gauge>,
    health_checks: Family<HealthCheckLabels, Counter>,
    retries: Family<RetryLabels, Counter>,
    outlier_ejections: Family<ClusterLabel, Counter>,
    connections: Gauge<i64, AtomicI64>,
    streams: Gauge<i64, AtomicI64>,
    /// The `culprit` label of [`Culprit::Peer`]: `sidecar` or `front`.
    peer: &'static str,
}

impl std::fmt::Debug for Metrics {
    /// The peer name only: the series are what [`Metrics::encode`] is for,
    /// and their hash maps would print them in no fixed order (a config's
    /// `Debug`, compared in tests, holds its metrics).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// The metrics of one binary; `peer` names the other hop in the
    /// `culprit` label (`sidecar` at the front); `connections_help` and `streams_help`
    /// say what its connection and stream gauges count (upstream at the
    /// front, from fronts at the sidecar).
    pub fn new(peer: &'static str, connections_help: &str, streams_help: &str) -> Arc<Self> {
        let mut registry = Registry::with_prefix("h2hop");
        let tunnels_active = Family::<ProtocolLabel, Gauge>::default();
        registry.register(
            "tunnels_active",
            "Tunnels open now, by Upgrade protocol",
            tunnels_active.clone(),
        );
        let tunnels = Family::<TunnelLabels, Counter>::default();
        registry.register(
            "tunnels",
            "Tunnels ended or refused, by protocol and result",
            tunnels.clone(),
        );
        // 100 µs to about 26 s.
        let handshake_seconds = Histogram::new(exponential_buckets(0.0001, 4.0, 10));
        registry.register(
            "tunnel_handshake_seconds",
            "Time from the upgrade request to the tunnel open",
            handshake_seconds.clone(),
        );
        let tunnel_bytes = Family::<DirectionLabel, Counter>::default();
        registry.register(
            "tunnel_bytes",
            "Bytes relayed by ended tunnels, by direction",
            tunnel_bytes.clone(),
        );
        let tcp_active = Family::<TargetLabel, Gauge>::default();
        registry.register(
            "tcp_tunnels_active",
            "TCP tunnels open now, by target",
            tcp_active.clone(),
        );
        let tcp_tunnels = Family::<TcpLabels, Counter>::default();
        registry.register(
            "tcp_tunnels",
            "TCP tunnels ended, denied or failed, by target and result",
            tcp_tunnels.clone(),
        );
        let tcp_connect_seconds = Histogram::new(exponential_buckets(0.0001, 4.0, 10));
        registry.register(
            "tcp_connect_seconds",
            "Time from a TCP tunnel's request to its open",
            tcp_connect_seconds.clone(),
        );
        let tcp_bytes = Family::<TcpBytesLabels, Counter>::default();
        registry.register(
            "tcp_tunnel_bytes",
            "Bytes relayed by ended TCP tunnels, by target and direction (up: toward the target)",
            tcp_bytes.clone(),
        );
        let requests = Family::<StatusLabel, Counter>::default();
        registry.register(
            "requests",
            "Plain requests answered, by status class",
            requests.clone(),
        );
        let request_seconds = Histogram::new(exponential_buckets(0.0001, 4.0, 10));
        registry.register(
            "request_duration_seconds",
            "Time from a plain request to its response head",
            request_seconds.clone(),
        );
        let errors = Family::<CulpritLabel, Counter>::default();
        registry.register(
            "errors",
            "Failed requests and tunnels, by culprit",
            errors.clone(),
        );
        let limits_reached = Family::<LimitLabel, Counter>::default();
        registry.register(
            "limit_reached",
            "Connections refused by a limit, or that reached one, by limit",
            limits_reached.clone(),
        );
        let config_reloads = Family::<ReloadLabel, Counter>::default();
        registry.register(
            "config_reloads",
            "Configuration file reloads, by result",
            config_reloads.clone(),
        );
        let tls_reloads = Family::<ReloadLabel, Counter>::default();
        registry.register(
            "tls_reloads",
            "File-backed TLS configurations a SIGHUP built again, by result",
            tls_reloads.clone(),
        );
        // Both series from the start, at 0: an alert on `increase()` sees
        // the first failure only if the series existed before it.
        for result in [ReloadResult::Ok, ReloadResult::Failed] {
            tls_reloads.get_or_create(&ReloadLabel { result }).inc_by(0);
        }
        let draining = Gauge::default();
        registry.register(
            "draining",
            "1 while shutdown drains open connections and tunnels, else 0",
            draining.clone(),
        );
        let upstream_healthy = Family::<EndpointLabels, Gauge>::default();
        registry.register(
            "upstream_healthy",
            "Whether active health checks let an endpoint take new streams (1) or not (0), by cluster and endpoint",
            upstream_healthy.clone(),
        );
        let health_checks = Family::<HealthCheckLabels, Counter>::default();
        registry.register(
            "health_checks",
            "Active health checks, by cluster, endpoint and result",
            health_checks.clone(),
        );
        let retries = Family::<RetryLabels, Counter>::default();
        registry.register(
            "retries",
            "Retries of plain requests to a cluster: sent, or not sent and why",
            retries.clone(),
        );
        let outlier_ejections = Family::<ClusterLabel, Counter>::default();
        registry.register(
            "outlier_ejections",
            "Sidecars ejected after failures in a row, by cluster",
            outlier_ejections.clone(),
        );
        let connections = Gauge::default();
        registry.register("http2_connections", connections_help, connections.clone());
        let streams = Gauge::default();
        registry.register("http2_streams", streams_help, streams.clone());
        Arc::new(Self {
            registry,
            tunnels_active,
            tunnels,
            handshake_seconds,
            tunnel_bytes,
            tcp_active,
            tcp_tunnels,
            tcp_connect_seconds,
            tcp_bytes,
            requests,
            requests_by_class: Default::default(),
            request_seconds,
            errors,
            limits_reached,
            config_reloads,
            tls_reloads,
            draining,
            upstream_healthy,
            health_checks,
            retries,
            outlier_ejections,
            connections,
            streams,
            peer,
        })
    }

    /// Counts one refusal by `limit` (or one connection reaching it).
    pub fn limit_reached(&self, limit: LimitKind) {
        self.limits_reached
            .get_or_create(&LimitLabel { limit })
            .inc();
    }

    /// Counts one configuration reload by how it went.
    pub fn config_reloaded(&self, result: ReloadResult) {
        self.config_reloads
            .get_or_create(&ReloadLabel { result })
            .inc();
    }

    /// Counts `configurations` file-backed TLS configurations that one
    /// certificate reload built again (`Ok`) or not (`Failed`).
    pub fn tls_reloaded(&self, result: ReloadResult, configurations: usize) {
        let count = u64::try_from(configurations).unwrap_or(u64::MAX);
        self.tls_reloads
            .get_or_create(&ReloadLabel { result })
            .inc_by(count);
    }

    /// Shutdown began: the drain runs until the process exits.
    pub fn drain_begun(&self) {
        self.draining.set(1);
    }

    /// Sets whether `endpoint` of `cluster` takes new streams, as its
    /// active health checks last decided.
    pub fn endpoint_health(&self, cluster: &str, endpoint: &str, healthy: bool) {
        let labels = EndpointLabels {
            cluster: cluster.to_owned(),
            endpoint: endpoint.to_owned(),
        };
        self.upstream_healthy
            .get_or_create(&labels)
            .set(i64::from(healthy));
    }

    /// Drops the health series of `endpoint` of `cluster`: its checks
    /// stopped (the cluster was removed or replaced).
    pub fn endpoint_health_gone(&self, cluster: &str, endpoint: &str) {
        let labels = EndpointLabels {
            cluster: cluster.to_owned(),
            endpoint: endpoint.to_owned(),
        };
        self.upstream_healthy.remove(&labels);
    }

    /// Counts one active health check of `endpoint` of `cluster`.
    pub fn health_checked(&self, cluster: &str, endpoint: &str, result: HealthCheckResult) {
        let labels = HealthCheckLabels {
            cluster: cluster.to_owned(),
            endpoint: endpoint.to_owned(),
            result,
        };
        self.health_checks.get_or_create(&labels).inc();
    }

    /// Counts one retry of a request to `cluster` by what became of it.
    pub fn retried(&self, cluster: &str, result: RetryResult) {
        self.retries
            .get_or_create(&RetryLabels {
                cluster: cluster.to_owned(),
                result,
            })
            .inc();
    }

    /// Counts one sidecar of `cluster` ejected.
    pub fn outlier_ejected(&self, cluster: &str) {
        self.outlier_ejections
            .get_or_create(&ClusterLabel {
                cluster: cluster.to_owned(),
            })
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// A tunnel for `protocol` opened after `handshake`; the returned guard
    /// counts it as active until [`OpenTunnel::ended`] or drop.
    pub fn tunnel_opened(self: &Arc<Self>, protocol: &str, handshake: Duration) -> OpenTunnel {
        self.handshake_seconds.observe(handshake.as_secs_f64());
        let label = ProtocolLabel {
            protocol: protocol.to_owned(),
        };
        self.tunnels_active.get_or_create(&label).inc();
        OpenTunnel {
            metrics: self.clone(),
            protocol: label.protocol,
            result: TunnelResult::Reset,
        }
    }

    /// A tunnel that never opened.
    pub fn tunnel_not_opened(&self, protocol: &str, result: TunnelResult) {
        self.count_tunnel(protocol, result);
    }

    fn count_tunnel(&self, protocol: &str, result: TunnelResult) {
        let labels = TunnelLabels {
            protocol: protocol.to_owned(),
            result,
        };
        self.tunnels.get_or_create(&labels).inc();
    }

    /// A TCP tunnel to `target` opened after `connect`; the returned guard
    /// counts it as active until [`OpenTcpTunnel::ended`] or drop.
    pub fn tcp_opened(self: &Arc<Self>, target: &str, connect: Duration) -> OpenTcpTunnel {
        self.tcp_connect_seconds.observe(connect.as_secs_f64());
        let label = TargetLabel {
            target: target.to_owned(),
        };
        self.tcp_active.get_or_create(&label).inc();
        OpenTcpTunnel {
            metrics: self.clone(),
            target: label.target,
            result: TunnelResult::Reset,
        }
    }

    /// A TCP tunnel to `target` that never opened: [`TunnelResult::Denied`]
    /// by the allow-list, [`TunnelResult::Refused`] by the far side, or
    /// [`TunnelResult::Failed`].
    pub fn tcp_not_opened(&self, target: &str, result: TunnelResult) {
        self.count_tcp(target, result);
    }

    fn count_tcp(&self, target: &str, result: TunnelResult) {
        let labels = TcpLabels {
            target: target.to_owned(),
            result,
        };
        self.tcp_tunnels.get_or_create(&labels).inc();
    }

    /// A plain request answered with `status` after `elapsed`.
    pub fn request_answered(&self, status: http::StatusCode, elapsed: Duration) {
        let class = match status.as_u16() {
            100..=199 => 0,
            200..=299 => 1,
            300..=399 => 2,
            400..=499 => 3,
            _ => 4,
        };
        self.requests_by_class[class]
            .get_or_init(|| {
                let label = StatusLabel {
                    status: STATUS_CLASSES[class],
                };
                self.requests.get_or_create(&label).clone()
            })
            .inc();
        self.request_seconds.observe(elapsed.as_secs_f64());
    }

    /// A failure blamed on `culprit`.
    pub fn error(&self, culprit: Culprit) {
        let culprit = match culprit {
            Culprit::Client => "client",
            Culprit::Peer => self.peer,
            Culprit::App => "app",
            Culprit::Timeout => "timeout",
        };
        self.errors.get_or_create(&CulpritLabel { culprit }).inc();
    }

    /// An HTTP/2 connection opened (`+1`) or closed (`-1`).
    pub fn connections(&self, change: i64) {
        self.connections.inc_by(change);
    }

    /// An HTTP/2 stream opened (`+1`) or closed (`-1`).
    pub fn streams(&self, change: i64) {
        self.streams.inc_by(change);
    }
}

/// An open tunnel, as the metrics count it.
#[derive(Debug)]
pub struct OpenTunnel {
    metrics: Arc<Metrics>,
    protocol: String,
    result: TunnelResult,
}

impl OpenTunnel {
    /// The tunnel ended with `result` after moving these bytes.
    pub fn ended(mut self, result: TunnelResult, up: u64, down: u64) {
        let bytes = &self.metrics.tunnel_bytes;
        bytes
            .get_or_create(&DirectionLabel {
                direction: Direction::Up,
            })
            .inc_by(up);
        bytes
            .get_or_create(&DirectionLabel {
                direction: Direction::Down,
            })
            .inc_by(down);
        self.result = result;
    }
}

impl Drop for OpenTunnel {
    fn drop(&mut self) {
        let label = ProtocolLabel {
            protocol: std::mem::take(&mut self.protocol),
        };
        self.metrics.tunnels_active.get_or_create(&label).dec();
        self.metrics.count_tunnel(&label.protocol, self.result);
    }
}

/// An open TCP tunnel, as the metrics count it.
#[derive(Debug)]
pub struct OpenTcpTunnel {
    metrics: Arc<Metrics>,
    target: String,
    result: TunnelResult,
}

impl OpenTcpTunnel {
    /// The tunnel ended with `result` after moving `up` bytes toward the
    /// target and `down` back.
    pub fn ended(mut self, result: TunnelResult, up: u64, down: u64) {
        for (direction, count) in [(Direction::Up, up), (Direction::Down, down)] {
            let labels = TcpBytesLabels {
                target: self.target.clone(),
                direction,
            };
            self.metrics.tcp_bytes.get_or_create(&labels).inc_by(count);
        }
        self.result = result;
    }
}

impl Drop for OpenTcpTunnel {
    fn drop(&mut self) {
        let label = TargetLabel {
            target: std::mem::take(&mut self.target),
        };
        self.metrics.tcp_active.get_or_create(&label).dec();
        self.metrics.count_tcp(&label.target, self.result);
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
