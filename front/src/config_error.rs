//! Why a `--config` file cannot be used: [`ConfigError`], naming the
//! cluster (by name), route (by number, from 1) or `[[tcp]]` entry (by
//! number and name) that is wrong. Made by
//! [`crate::config_file`], which re-exports it.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use h2hop::host_port::HostPortError;
use h2hop::tcp_connect::UnknownForm;
use h2hop::tls::TlsError;

use crate::cluster_policy::PolicyError;
use crate::header_rules::HeaderRuleError;
use crate::routes::RouteError;
use crate::upstream::HealthCheckError;
use crate::weighted::WeightError;

/// Why a configuration file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: io::Error,
    },
    /// Not TOML, or not this shape: syntax, unknown key, wrong type, or a
    /// missing required key. The source names line and column.
    #[error("invalid configuration file")]
    Syntax(#[source] toml::de::Error),
    /// No `[[cluster]]` table.
    #[error("no [[cluster]] is defined")]
    NoCluster,
    /// No `[[route]]` table, and no `[[tcp]]` either.
    #[error("no [[route]] (or [[tcp]]) is defined")]
    NoRoute,
    /// Two clusters share a name.
    #[error("cluster {name:?} is defined twice")]
    DuplicateCluster {
        /// The repeated name.
        name: String,
    },
    /// A cluster has an empty `endpoints` list.
    #[error("cluster {cluster:?} has no endpoints")]
    NoEndpoints {
        /// The cluster's name.
        cluster: String,
    },
    /// An endpoint is not `host:port`.
    #[error("cluster {cluster:?}: bad endpoint")]
    Endpoint {
        /// The cluster's name.
        cluster: String,
        /// What is wrong with the endpoint, which it quotes.
        #[source]
        source: HostPortError,
    },
    /// A TLS key is set on an h2c cluster.
    #[error("cluster {cluster:?}: {key} is not allowed with h2c = true")]
    TlsWithH2c {
        /// The cluster's name.
        cluster: String,
        /// The key that should not be there.
        key: &'static str,
    },
    /// A TLS file is missing on a TLS cluster.
    #[error("cluster {cluster:?}: {key} is required unless h2c = true")]
    MissingTls {
        /// The cluster's name.
        cluster: String,
        /// The missing key.
        key: &'static str,
    },
    /// The TLS files could not be loaded or do not make a configuration.
    #[error("cluster {cluster:?}: TLS set-up failed")]
    Tls {
        /// The cluster's name.
        cluster: String,
        /// What failed, with the file's path.
        #[source]
        source: TlsError,
    },
    /// No name to check the sidecars' certificates against.
    #[error("cluster {cluster:?}: invalid server name {name:?}")]
    ServerName {
        /// The cluster's name.
        cluster: String,
        /// The name, given or taken from the first endpoint.
        name: String,
    },
    /// `max_connections = 0`.
    #[error("cluster {cluster:?}: max_connections must be at least 1")]
    MaxConnections {
        /// The cluster's name.
        cluster: String,
    },
    /// A cluster's `health_check` table cannot be used.
    #[error("cluster {cluster:?}: health_check")]
    HealthCheck {
        /// The cluster's name.
        cluster: String,
        /// What is wrong, naming the key.
        #[source]
        source: HealthCheckError,
    },
    /// A cluster's `outlier_detection` or `retry` table is unusable.
    #[error("cluster {cluster:?}")]
    Policy {
        /// The cluster's name.
        cluster: String,
        /// What is wrong, naming the key.
        #[source]
        source: PolicyError,
    },
    /// A route names a cluster that is not defined.
    #[error("route {route}: unknown cluster {name:?}")]
    UnknownCluster {
        /// The route's number, from 1, in file order.
        route: usize,
        /// The name it gives.
        name: String,
    },
    /// A route's host pattern, path prefix or rewrites are invalid.
    #[error("route {route}")]
    Route {
        /// The route's number, from 1, in file order.
        route: usize,
        /// What is wrong.
        #[source]
        source: RouteError,
    },
    /// A route has both `cluster` and `clusters`.
    #[error("route {route}: set either cluster or clusters, not both")]
    BothClusterKeys {
        /// The route's number, from 1, in file order.
        route: usize,
    },
    /// A route has neither `cluster` nor `clusters`.
    #[error("route {route}: cluster or clusters is required")]
    NoClusterKey {
        /// The route's number, from 1, in file order.
        route: usize,
    },
    /// A route's `clusters` weights cannot be used.
    #[error("route {route}: clusters")]
    Weights {
        /// The route's number, from 1, in file order.
        route: usize,
        /// What is wrong.
        #[source]
        source: WeightError,
    },
    /// A route's header rules cannot be used.
    #[error("route {route}")]
    Headers {
        /// The route's number, from 1, in file order.
        route: usize,
        /// What is wrong, naming the key and field.
        #[source]
        source: HeaderRuleError,
    },
    /// A route's `name` is empty or has other than letters, digits, `-`,
    /// `_` and `.`.
    #[error("route {route}: invalid name {name:?}: use letters, digits, '-', '_' and '.'")]
    RouteName {
        /// The route's number, from 1, in file order.
        route: usize,
        /// The name as written.
        name: String,
    },
    /// Two routes share a name (given, or the default `route-N`).
    #[error("route {route}: name {name:?} is already taken")]
    DuplicateRoute {
        /// The later route's number, from 1, in file order.
        route: usize,
        /// The repeated name.
        name: String,
    },
    /// A `[[tcp]]` entry cannot be used.
    #[error("tcp {tcp} ({name:?})")]
    Tcp {
        /// The entry's number, from 1, in file order.
        tcp: usize,
        /// Its name, given or the default `tcp-N`.
        name: String,
        /// What is wrong, naming the key.
        #[source]
        source: TcpEntryError,
    },
}

/// What is wrong with one `[[tcp]]` entry; [`ConfigError::Tcp`] names
/// the entry.
#[derive(Debug, thiserror::Error)]
pub enum TcpEntryError {
    /// `name` is empty or has other than letters, digits, `-`, `_`, `.`.
    #[error("invalid name: use letters, digits, '-', '_' and '.'")]
    Name,
    /// Another entry has the same name (given, or the default `tcp-N`).
    #[error("the name is already taken")]
    DuplicateName,
    /// `listen` is not a socket address.
    #[error("listen {0:?} is not an address:port")]
    Listen(String, #[source] std::net::AddrParseError),
    /// Another entry listens on the same address.
    #[error("listen {0} is already used by another [[tcp]]")]
    DuplicateListen(SocketAddr),
    /// `cluster` names no `[[cluster]]`.
    #[error("unknown cluster {0:?}")]
    UnknownCluster(String),
    /// `target` is not `host:port`.
    #[error("bad target")]
    Target(#[source] HostPortError),
    /// `form` is neither `connect` nor `connect-tcp`.
    #[error("bad form")]
    Form(#[source] UnknownForm),
    /// `idle_timeout` is not a duration, or is zero.
    #[error("idle_timeout {0:?} is not a duration above zero (\"30s\", \"10m\")")]
    IdleTimeout(String),
}
