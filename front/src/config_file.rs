//! The `--config FILE` TOML → validated clusters and a [`RouteTable`],
//! before any socket is bound, and again on each reload. Called when the flags name a file; without
//! one, the front has a single cluster and [`RouteTable::single`].
//!
//! A complete file:
//!
//! ```toml
//! [[cluster]]
//! name = "chat"                              # unique
//! endpoints = ["10.0.0.5:8443", "10.0.0.6:8443"]  # host:port, at least one
//! # Mutual TLS (the default) needs ca, cert and key; relative paths are
//! # read from the directory of this file.
//! ca = "certs/ca.pem"
//! cert = "certs/front.pem"
//! key = "certs/front-key.pem"
//! server_name = "sidecar.internal"           # default: host of the first endpoint
//! max_connections = 64                       # per endpoint, default 64, at least 1
//! # Active health checks (default: off): a GET of path through each
//! # sidecar to its app; a 2xx within timeout passes. Durations as "5s",
//! # "250ms". A changed health_check makes a new cluster on reload.
//! health_check = { path = "/healthz", interval = "5s", timeout = "1s", healthy_threshold = 2, unhealthy_threshold = 3, authority = "app" }
//! # Passive outlier ejection and retries: off unless present (see
//! # crate::cluster_policy for every key and its default).
//! outlier_detection = { consecutive_failures = 5, base_ejection_time = "30s" }
//! retry = { retries = 1, on = ["connect-failure", "refused-stream", "reset", "503"] }
//!
//! [[cluster]]
//! name = "web"
//! endpoints = ["[fd00::7]:8080"]
//! h2c = true                                 # cleartext: ca, cert, key, server_name not allowed
//!
//! [[route]]                                  # tried in order; the first match wins
//! name = "chat"                              # default "route-N" (N from 1); unique
//! host = "*.example.com"                     # default "*" (any); "*.suffix"; or an exact host
//! path_prefix = "/chat/"                     # default "/"; must start with '/'
//! cluster = "chat"                           # must name a cluster
//! prefix_rewrite = "/"                       # optional; must start with '/'
//! host_rewrite = "chat.internal"             # optional; host or host:port
//! # Header rules (default: none); removals apply before additions.
//! request_headers_to_add = [
//!   { name = "x-env", value = "prod" },      # append = false (default): overwrite
//!   { name = "x-via-route", value = "%ROUTE% for %CLIENT_ADDRESS%", append = true },
//! ]
//! request_headers_to_remove = ["x-debug"]
//! response_headers_to_add = [{ name = "x-request-id", value = "%REQUEST_ID%" }]
//! response_headers_to_remove = ["server"]
//!
//! [[route]]
//! clusters = [                               # instead of cluster: split by weight
//!   { name = "web", weight = 90 },
//!   { name = "chat", weight = 10 },
//! ]
//!
//! [[tcp]]                                    # a TCP service (crate::tcp_config)
//! name = "redis"                             # default "tcp-N" (N from 1); unique
//! listen = "127.0.0.1:6380"                  # required; unique
//! cluster = "chat"                           # must name a cluster
//! target = "10.0.0.9:6379"                   # host:port the sidecar connects to
//! form = "connect"                           # or "connect-tcp"; default "connect"
//! idle_timeout = "10m"                       # default: --tunnel-idle-timeout
//! ```
//!
//! At least one cluster is required, and one route unless the file has a
//! `[[tcp]]` (a front for TCP services alone answers HTTP with 404).
//! Unknown keys are errors, so a typo does not silently fall back to a default. Matching and
//! rewriting rules are those of [`crate::routes`], header rules those of
//! [`crate::header_rules`], weights those of [`crate::weighted`]. Exactly
//! one of `cluster` and `clusters` is required. Errors say which cluster
//! (by name), route (by number, from 1, in file order) or `[[tcp]]` (by
//! number and name) is wrong; errors
//! inside the TOML carry its line and column. Only [`ConfigError::Read`]
//! names the file itself: the caller knows which file it asked for.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use h2hop::host_port::HostPort;
use h2hop::tls::reload;
use rustls::pki_types::ServerName;
use serde::Deserialize;

use crate::cluster_policy::{RawOutlier, RawRetry};
pub use crate::config_error::ConfigError;
use crate::edge_tls_config::{CertificateEntry, RawCertificate};
use crate::header_rules::{HeaderRules, RawAddField, RawHeaderRules};
use crate::routes::{HostMatch, Route, RouteTable, Routing};
use crate::tcp_config::{self, RawTcp, TcpService};
use crate::upstream::{
    HealthCheck, OutlierConfig, RawHealthCheck, RetryPolicy, UpstreamConfig, UpstreamTls,
};
use crate::weighted::{ClusterChoice, RawWeighted};

/// A validated `--config` file.
#[derive(Debug, Clone)]
pub struct FileConfig {
    /// The clusters, in file order; [`Route::cluster`] indexes this list.
    pub clusters: Vec<ClusterConfig>,
    /// The routes, in file order.
    pub routes: RouteTable,
    /// The TLS listener's certificates by SNI name, in file order
    /// ([`crate::edge_tls_config`] checks them).
    pub certificates: Vec<CertificateEntry>,
    /// The TCP services, in file order ([`crate::tcp_config`]).
    pub tcp: Vec<TcpService>,
}

impl FileConfig {
    /// The file's clusters as sidecar settings: each endpoint gets its
    /// cluster's TLS and connection cap, and the timeouts of `flags`.
    pub fn into_routing(self, flags: &UpstreamConfig) -> Routing {
        let clusters = self
            .clusters
            .into_iter()
            .map(|cluster| {
                let endpoints = cluster
                    .endpoints
                    .into_iter()
                    .map(|addr| UpstreamConfig {
                        addr: addr.to_string(),
                        tls: cluster.tls.clone(),
                        max_connections: cluster.max_connections,
                        health_check: cluster.health_check.clone(),
                        outlier: cluster.outlier,
                        retry: cluster.retry.clone(),
                        ..flags.clone()
                    })
                    .collect();
                (cluster.name, endpoints)
            })
            .collect();
        Routing {
            clusters,
            routes: self.routes,
        }
    }
}

/// One group of interchangeable sidecars.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The name routes refer to it by.
    pub name: String,
    /// The sidecars, at least one.
    pub endpoints: Vec<HostPort>,
    /// TLS toward the sidecars; `None` for h2c.
    pub tls: Option<UpstreamTls>,
    /// Most HTTP/2 connections to each endpoint (at least 1).
    pub max_connections: usize,
    /// Active health checks of each endpoint; `None`: off.
    pub health_check: Option<HealthCheck>,
    /// Passive outlier ejection; `None` (the default) for none.
    pub outlier: Option<OutlierConfig>,
    /// Retries of plain requests; the default retries nothing.
    pub retry: RetryPolicy,
}

/// The file as written, before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    cluster: Vec<RawCluster>,
    #[serde(default)]
    route: Vec<RawRoute>,
    #[serde(default)]
    certificate: Vec<RawCertificate>,
    #[serde(default)]
    tcp: Vec<RawTcp>,
}

/// One `[[cluster]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    name: String,
    endpoints: Vec<String>,
    #[serde(default)]
    h2c: bool,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    server_name: Option<String>,
    #[serde(default = "default_max_connections")]
    max_connections: usize,
    health_check: Option<RawHealthCheck>,
    outlier_detection: Option<RawOutlier>,
    retry: Option<RawRetry>,
}

/// One `[[route]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    name: Option<String>,
    host: Option<String>,
    path_prefix: Option<String>,
    cluster: Option<String>,
    clusters: Option<Vec<RawWeighted>>,
    prefix_rewrite: Option<String>,
    host_rewrite: Option<String>,
    #[serde(default)]
    request_headers_to_add: Vec<RawAddField>,
    #[serde(default)]
    request_headers_to_remove: Vec<String>,
    #[serde(default)]
    response_headers_to_add: Vec<RawAddField>,
    #[serde(default)]
    response_headers_to_remove: Vec<String>,
}

fn default_max_connections() -> usize {
    crate::defaults::ENDPOINT_MAX_CONNECTIONS
}

/// Reads and validates the file at `path`; relative TLS paths in it are
/// read from the file's directory.
pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path.parent().unwrap_or(Path::new("")))
}

/// Validates `text`, reading relative TLS paths from `base_dir` (the
/// config file's directory).
pub fn parse(text: &str, base_dir: &Path) -> Result<FileConfig, ConfigError> {
    let raw: RawFile = toml::from_str(text).map_err(ConfigError::Syntax)?;
    if raw.cluster.is_empty() {
        return Err(ConfigError::NoCluster);
    }
    // A front may serve TCP services alone: HTTP requests then get 404.
    if raw.route.is_empty() && raw.tcp.is_empty() {
        return Err(ConfigError::NoRoute);
    }
    let mut index = HashMap::new();
    for (i, cluster) in raw.cluster.iter().enumerate() {
        if index.insert(cluster.name.as_str(), i).is_some() {
            return Err(ConfigError::DuplicateCluster {
                name: cluster.name.clone(),
            });
        }
    }
    // Routes first: their errors are cheaper to find than loading TLS files.
    let routes = raw
        .route
        .into_iter()
        .enumerate()
        .map(|(i, route)| route_of(route, i + 1, &index))
        .collect::<Result<Vec<_>, _>>()?;
    let mut names = HashMap::new();
    for (i, route) in routes.iter().enumerate() {
        if names.insert(route.name.as_str(), i).is_some() {
            return Err(ConfigError::DuplicateRoute {
                route: i + 1,
                name: route.name.clone(),
            });
        }
    }
    let names: std::collections::HashSet<&str> = index.keys().copied().collect();
    let tcp = tcp_config::services(raw.tcp, &names)?;
    let clusters = raw
        .cluster
        .into_iter()
        .map(|cluster| cluster_of(cluster, base_dir))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(FileConfig {
        clusters,
        routes: RouteTable::new(routes),
        certificates: raw
            .certificate
            .into_iter()
            .map(|certificate| certificate.resolve(base_dir))
            .collect(),
        tcp,
    })
}

/// Validates route number `number`, resolving its cluster through `index`.
fn route_of(
    raw: RawRoute,
    number: usize,
    index: &HashMap<&str, usize>,
) -> Result<Route, ConfigError> {
    let invalid = |source| ConfigError::Route {
        route: number,
        source,
    };
    let name = match raw.name {
        Some(name) if crate::routes::is_route_name(&name) => name,
        Some(name) => {
            return Err(ConfigError::RouteName {
                route: number,
                name,
            });
        }
        None => format!("route-{number}"),
    };
    let cluster = cluster_choice(raw.cluster, raw.clusters, number, index)?;
    let host = match raw.host.as_deref() {
        Some(pattern) => pattern.parse().map_err(invalid)?,
        None => HostMatch::Any,
    };
    let headers = HeaderRules::parse(RawHeaderRules {
        request_add: raw.request_headers_to_add,
        request_remove: raw.request_headers_to_remove,
        response_add: raw.response_headers_to_add,
        response_remove: raw.response_headers_to_remove,
    })
    .map_err(|source| ConfigError::Headers {
        route: number,
        source,
    })?;
    let route = Route {
        name,
        host,
        path_prefix: raw.path_prefix.unwrap_or_else(|| "/".to_owned()),
        cluster,
        prefix_rewrite: raw.prefix_rewrite,
        host_rewrite: raw.host_rewrite,
        headers,
    };
    route.check().map_err(invalid)?;
    Ok(route)
}

/// Route number `number`'s `cluster` or `clusters`, resolved through
/// `index`: exactly one of the two must be given.
fn cluster_choice(
    cluster: Option<String>,
    clusters: Option<Vec<RawWeighted>>,
    number: usize,
    index: &HashMap<&str, usize>,
) -> Result<ClusterChoice, ConfigError> {
    let resolve = |name: &str| {
        index
            .get(name)
            .copied()
            .ok_or_else(|| ConfigError::UnknownCluster {
                route: number,
                name: name.to_owned(),
            })
    };
    match (cluster, clusters) {
        (Some(_), Some(_)) => Err(ConfigError::BothClusterKeys { route: number }),
        (None, None) => Err(ConfigError::NoClusterKey { route: number }),
        (Some(name), None) => Ok(ClusterChoice::One(resolve(&name)?)),
        (None, Some(weighted)) => {
            let entries = weighted
                .iter()
                .map(|entry| Ok((resolve(&entry.name)?, entry.weight)))
                .collect::<Result<Vec<_>, ConfigError>>()?;
            let names: Vec<&str> = weighted.iter().map(|entry| entry.name.as_str()).collect();
            ClusterChoice::weighted(entries, &names).map_err(|source| ConfigError::Weights {
                route: number,
                source,
            })
        }
    }
}

/// Validates one cluster and loads its TLS files.
fn cluster_of(mut raw: RawCluster, base_dir: &Path) -> Result<ClusterConfig, ConfigError> {
    let endpoints = raw
        .endpoints
        .iter()
        .map(|endpoint| endpoint.parse::<HostPort>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| ConfigError::Endpoint {
            cluster: raw.name.clone(),
            source,
        })?;
    let Some(first) = endpoints.first() else {
        return Err(ConfigError::NoEndpoints { cluster: raw.name });
    };
    if raw.max_connections == 0 {
        return Err(ConfigError::MaxConnections { cluster: raw.name });
    }
    let health_check = match raw.health_check.take() {
        Some(check) => Some(check.resolve().map_err(|source| ConfigError::HealthCheck {
            cluster: raw.name.clone(),
            source,
        })?),
        None => None,
    };
    let (outlier, retry) = policies(&raw)?;
    let tls = if raw.h2c {
        let present = [
            ("ca", raw.ca.is_some()),
            ("cert", raw.cert.is_some()),
            ("key", raw.key.is_some()),
            ("server_name", raw.server_name.is_some()),
        ];
        if let Some((key, _)) = present.iter().find(|(_, set)| *set) {
            return Err(ConfigError::TlsWithH2c {
                cluster: raw.name,
                key,
            });
        }
        None
    } else {
        let server_name = raw
            .server_name
            .clone()
            .unwrap_or_else(|| first.host().to_owned());
        Some(tls_of(&raw, server_name, base_dir)?)
    };
    Ok(ClusterConfig {
        name: raw.name,
        endpoints,
        tls,
        max_connections: raw.max_connections,
        health_check,
        outlier,
        retry,
    })
}

/// A cluster's outlier ejection and retry policy, off where not given.
fn policies(raw: &RawCluster) -> Result<(Option<OutlierConfig>, RetryPolicy), ConfigError> {
    let invalid = |source| ConfigError::Policy {
        cluster: raw.name.clone(),
        source,
    };
    let outlier = match raw.outlier_detection.clone() {
        Some(table) => Some(table.validate().map_err(invalid)?),
        None => None,
    };
    let retry = match raw.retry.clone() {
        Some(table) => table.validate().map_err(invalid)?,
        None => RetryPolicy::default(),
    };
    Ok((outlier, retry))
}

/// Loads a TLS cluster's files into an [`UpstreamTls`], as
/// [`crate::args::Args`] does for `--ca`, `--cert` and `--key`. A reload
/// (SIGHUP) reads these files again, and the whole file too
/// ([`crate::live_routing`]).
fn tls_of(raw: &RawCluster, name: String, base_dir: &Path) -> Result<UpstreamTls, ConfigError> {
    let required = |path: &Option<PathBuf>, key| {
        path.as_deref()
            .map(|path| base_dir.join(path))
            .ok_or_else(|| ConfigError::MissingTls {
                cluster: raw.name.clone(),
                key,
            })
    };
    let ca = required(&raw.ca, "ca")?;
    let cert = required(&raw.cert, "cert")?;
    let key = required(&raw.key, "key")?;
    let server_name = ServerName::try_from(name.clone()).map_err(|_| ConfigError::ServerName {
        cluster: raw.name.clone(),
        name,
    })?;
    let tls_failed = |source| ConfigError::Tls {
        cluster: raw.name.clone(),
        source,
    };
    let label = format!("cluster {}", raw.name);
    let config = reload::hop_client_config_files(&label, &ca, &cert, &key).map_err(tls_failed)?;
    Ok(UpstreamTls {
        config,
        server_name,
    })
}

#[cfg(test)]
#[path = "config_file_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "config_file_route_tests.rs"]
mod route_tests;
