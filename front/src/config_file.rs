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
//! ```
//!
//! At least one cluster and one route are required. Unknown keys are
//! errors, so a typo does not silently fall back to a default. Matching and
//! rewriting rules are those of [`crate::routes`], header rules those of
//! [`crate::header_rules`], weights those of [`crate::weighted`]. Exactly
//! one of `cluster` and `clusters` is required. Errors say which cluster
//! (by name) or route (by number, from 1, in file order) is wrong; errors
//! inside the TOML carry its line and column. Only [`ConfigError::Read`]
//! names the file itself: the caller knows which file it asked for.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use h2hop::host_port::{HostPort, HostPortError};
use h2hop::tls::TlsError;
use h2hop::tls::reload;
use rustls::pki_types::ServerName;
use serde::Deserialize;

use crate::config::Routing;
use crate::edge_tls_config::{CertificateEntry, RawCertificate};
use crate::header_rules::{HeaderRuleError, HeaderRules, RawAddField, RawHeaderRules};
use crate::routes::{HostMatch, Route, RouteError, RouteTable};
use crate::upstream::{UpstreamConfig, UpstreamTls};
use crate::weighted::{ClusterChoice, RawWeighted, WeightError};

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
}

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
    /// No `[[route]]` table.
    #[error("no [[route]] is defined")]
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
    crate::config::defaults::ENDPOINT_MAX_CONNECTIONS
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
    if raw.route.is_empty() {
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
        Some(name) if is_route_name(&name) => name,
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

/// A route name: letters, digits, `-`, `_` and `.`, at least one; it goes
/// into field values through `%ROUTE%`.
fn is_route_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
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
fn cluster_of(raw: RawCluster, base_dir: &Path) -> Result<ClusterConfig, ConfigError> {
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
    })
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
mod tests {
    use std::fs;

    use h2hop_certs::DevPki;
    use tempfile::TempDir;

    use super::*;

    /// A directory with `certs/{ca,front,front-key}.pem` for "sidecar.internal".
    fn pki_dir() -> TempDir {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::generate(&["sidecar.internal".to_owned()]).unwrap();
        pki.write_to(&dir.path().join("certs"), false).unwrap();
        dir
    }

    const FULL: &str = r#"
        [[cluster]]
        name = "chat"
        endpoints = ["10.0.0.5:8443", "10.0.0.6:8443"]
        ca = "certs/ca.pem"
        cert = "certs/front.pem"
        key = "certs/front-key.pem"
        server_name = "sidecar.internal"
        max_connections = 8

        [[cluster]]
        name = "web"
        endpoints = ["[fd00::7]:8080"]
        h2c = true

        [[route]]
        host = "*.Example.com"
        path_prefix = "/chat/"
        cluster = "chat"
        prefix_rewrite = "/"
        host_rewrite = "chat.internal"

        [[route]]
        cluster = "web"
    "#;

    /// A minimal valid file with `extra` appended.
    fn h2c_with(extra: &str) -> String {
        format!(
            "[[cluster]]\nname = \"web\"\nendpoints = [\"web:80\"]\nh2c = true\n\n{extra}\n\
             [[route]]\ncluster = \"web\"\n"
        )
    }

    fn parse_err(text: &str) -> ConfigError {
        parse(text, Path::new("/nonexistent")).unwrap_err()
    }

    /// The error and its sources, joined as anyhow's `{:#}` would.
    fn chain(err: &ConfigError) -> String {
        let mut text = err.to_string();
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            text = format!("{text}: {cause}");
            source = cause.source();
        }
        text
    }

    #[test]
    fn full_example_parses() {
        let dir = pki_dir();
        let config = parse(FULL, dir.path()).unwrap();
        let [chat, web] = &config.clusters[..] else {
            panic!("two clusters expected: {config:?}");
        };
        assert_eq!(chat.name, "chat");
        let endpoints: Vec<&str> = chat.endpoints.iter().map(HostPort::as_str).collect();
        assert_eq!(endpoints, ["10.0.0.5:8443", "10.0.0.6:8443"]);
        assert_eq!(chat.max_connections, 8);
        let tls = chat.tls.as_ref().unwrap();
        assert_eq!(tls.server_name.to_str(), "sidecar.internal");
        assert_eq!(tls.config.current().alpn_protocols, [b"h2".to_vec()]);
        assert!(tls.config.is_from_files());
        assert_eq!(web.name, "web");
        assert!(web.tls.is_none());
        assert_eq!(
            web.max_connections,
            crate::config::defaults::ENDPOINT_MAX_CONNECTIONS
        );
        let routes = config.routes.routes();
        assert_eq!(
            routes[0],
            Route {
                name: "route-1".to_owned(),
                host: HostMatch::Suffix(".example.com".to_owned()),
                path_prefix: "/chat/".to_owned(),
                cluster: ClusterChoice::One(0),
                prefix_rewrite: Some("/".to_owned()),
                host_rewrite: Some("chat.internal".to_owned()),
                headers: HeaderRules::default(),
            }
        );
        let catch_all = Route {
            name: "route-2".to_owned(),
            ..RouteTable::single(1).routes()[0].clone()
        };
        assert_eq!(routes[1], catch_all);
        assert_eq!(
            config
                .routes
                .find("a.example.com", "/chat/x")
                .unwrap()
                .cluster
                .pick(),
            0
        );
        assert_eq!(
            config
                .routes
                .find("example.com", "/chat/x")
                .unwrap()
                .cluster
                .pick(),
            1
        );
    }

    #[test]
    fn module_doc_example_parses() {
        // The example in this file's `//!` block, so the docs cannot rot.
        let example: String = include_str!("config_file.rs")
            .lines()
            .skip_while(|line| *line != "//! ```toml")
            .skip(1)
            .take_while(|line| *line != "//! ```")
            .map(|line| format!("{}\n", line.trim_start_matches("//!").trim_start()))
            .collect();
        let config = parse(&example, pki_dir().path()).unwrap();
        assert_eq!(config.clusters.len(), 2);
        assert_eq!(config.routes.routes().len(), 2);
    }

    #[test]
    fn load_reads_tls_files_relative_to_the_config_file() {
        let dir = pki_dir();
        let path = dir.path().join("front.toml");
        fs::write(&path, FULL).unwrap();
        let config = load(&path).unwrap();
        assert!(config.clusters[0].tls.is_some());
    }

    #[test]
    fn absolute_tls_paths_are_kept() {
        let dir = pki_dir();
        let certs = dir.path().join("certs");
        let text = FULL.replace("\"certs/", &format!("\"{}/", certs.display()));
        parse(&text, Path::new("/nonexistent")).unwrap();
    }

    #[test]
    fn server_name_defaults_to_the_first_endpoint_host() {
        let dir = pki_dir();
        let text = FULL
            .replace("server_name = \"sidecar.internal\"\n", "")
            .replace("10.0.0.5:8443", "sidecar.internal:8443");
        let config = parse(&text, dir.path()).unwrap();
        let tls = config.clusters[0].tls.as_ref().unwrap();
        assert_eq!(tls.server_name.to_str(), "sidecar.internal");
    }

    #[test]
    fn unreadable_file_names_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.toml");
        let err = load(&path).unwrap_err();
        assert!(matches!(&err, ConfigError::Read { path: p, .. } if *p == path));
        assert!(err.to_string().contains("missing.toml"), "{err}");
    }

    #[test]
    fn unknown_field_is_an_error_with_its_position() {
        let err = parse_err(&h2c_with("").replace("name = \"web\"", "nmae = \"web\""));
        assert!(matches!(err, ConfigError::Syntax(_)), "{err:?}");
        let text = chain(&err);
        assert!(text.contains("unknown field `nmae`"), "{text}");
        assert!(text.contains("line 2"), "{text}");
    }

    #[test]
    fn unknown_route_field_is_an_error() {
        let text = chain(&parse_err(
            &h2c_with("").replace("cluster = \"web\"\n", "cluster = \"web\"\nprefix = \"/\"\n"),
        ));
        assert!(text.contains("unknown field `prefix`"), "{text}");
    }

    #[test]
    fn no_cluster_is_an_error() {
        let err = parse_err("[[route]]\ncluster = \"web\"\n");
        assert!(matches!(err, ConfigError::NoCluster), "{err:?}");
    }

    #[test]
    fn no_route_is_an_error() {
        let text = "[[cluster]]\nname = \"web\"\nendpoints = [\"web:80\"]\nh2c = true\n";
        let err = parse_err(text);
        assert!(matches!(err, ConfigError::NoRoute), "{err:?}");
    }

    #[test]
    fn duplicate_cluster_name_is_an_error() {
        let err = parse_err(&h2c_with(
            "[[cluster]]\nname = \"web\"\nendpoints = [\"other:80\"]\nh2c = true\n",
        ));
        assert!(matches!(&err, ConfigError::DuplicateCluster { name } if name == "web"));
        assert_eq!(err.to_string(), "cluster \"web\" is defined twice");
    }

    #[test]
    fn route_naming_an_unknown_cluster_is_an_error() {
        let err = parse_err(&h2c_with("[[route]]\ncluster = \"chat\"\n"));
        assert_eq!(err.to_string(), "route 1: unknown cluster \"chat\"");
    }

    #[test]
    fn endpoint_without_port_is_an_error() {
        for endpoint in [
            "web", "web:", "web:http", "web:0", ":80", "::1:80", "[::1]", "[x]:80",
        ] {
            let err = parse_err(&h2c_with("").replace("web:80", endpoint));
            assert!(
                matches!(&err, ConfigError::Endpoint { source, .. } if source.to_string().contains(endpoint)),
                "{endpoint}: {err:?}"
            );
        }
        parse(&h2c_with("").replace("web:80", "[::1]:80"), Path::new("")).unwrap();
    }

    #[test]
    fn empty_endpoints_is_an_error() {
        let err = parse_err(&h2c_with("").replace("[\"web:80\"]", "[]"));
        assert!(matches!(err, ConfigError::NoEndpoints { .. }), "{err:?}");
    }

    #[test]
    fn zero_max_connections_is_an_error() {
        let err = parse_err(&h2c_with("").replace("h2c = true", "h2c = true\nmax_connections = 0"));
        assert!(matches!(err, ConfigError::MaxConnections { .. }), "{err:?}");
    }

    #[test]
    fn h2c_with_tls_files_is_an_error() {
        let err = parse_err(&h2c_with("").replace("h2c = true", "h2c = true\ncert = \"a.pem\""));
        assert_eq!(
            err.to_string(),
            "cluster \"web\": cert is not allowed with h2c = true"
        );
    }

    #[test]
    fn missing_tls_files_without_h2c_is_an_error() {
        let text = h2c_with("").replace("h2c = true", "ca = \"ca.pem\"\ncert = \"front.pem\"");
        let err = parse_err(&text);
        assert_eq!(
            err.to_string(),
            "cluster \"web\": key is required unless h2c = true"
        );
    }

    #[test]
    fn unreadable_tls_file_names_cluster_and_path() {
        let dir = pki_dir();
        let err = parse(&FULL.replace("certs/ca.pem", "certs/nope.pem"), dir.path()).unwrap_err();
        assert!(matches!(err, ConfigError::Tls { .. }), "{err:?}");
        let text = chain(&err);
        assert!(
            text.starts_with("cluster \"chat\": TLS set-up failed"),
            "{text}"
        );
        assert!(text.contains("certs/nope.pem"), "{text}");
    }

    #[test]
    fn invalid_server_name_is_an_error() {
        let dir = pki_dir();
        let text = FULL.replace("\"sidecar.internal\"", "\"bad name\"");
        let err = parse(&text, dir.path()).unwrap_err();
        assert!(matches!(err, ConfigError::ServerName { .. }), "{err:?}");
    }

    #[test]
    fn bad_host_pattern_is_an_error() {
        let err = parse_err(&h2c_with(
            "[[route]]\nhost = \"a.*.com\"\ncluster = \"web\"\n",
        ));
        assert!(
            matches!(err, ConfigError::Route { route: 1, .. }),
            "{err:?}"
        );
        let text = chain(&err);
        assert!(
            text.starts_with("route 1: invalid host pattern \"a.*.com\""),
            "{text}"
        );
    }

    #[test]
    fn path_prefix_without_slash_is_an_error() {
        let err = parse_err(&h2c_with("").replace(
            "cluster = \"web\"\n",
            "cluster = \"web\"\npath_prefix = \"chat\"\n",
        ));
        assert_eq!(
            chain(&err),
            "route 1: path prefix \"chat\" does not start with '/'"
        );
    }

    #[test]
    fn bad_rewrites_are_errors() {
        let err = parse_err(&h2c_with("").replace(
            "cluster = \"web\"\n",
            "cluster = \"web\"\nhost_rewrite = \"user@a\"\n",
        ));
        assert!(
            matches!(
                &err,
                ConfigError::Route {
                    source: RouteError::HostRewrite { .. },
                    ..
                }
            ),
            "{err:?}"
        );
        let err = parse_err(&h2c_with("").replace(
            "cluster = \"web\"\n",
            "cluster = \"web\"\nprefix_rewrite = \"v2\"\n",
        ));
        assert!(
            matches!(
                &err,
                ConfigError::Route {
                    source: RouteError::PrefixRewrite { .. },
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn routes_are_numbered_in_file_order() {
        let err = parse_err(&h2c_with(
            "[[route]]\ncluster = \"web\"\npath_prefix = \"x\"\n",
        ));
        assert!(
            matches!(err, ConfigError::Route { route: 1, .. }),
            "{err:?}"
        );
        let err = parse_err(&format!("{}[[route]]\ncluster = \"nope\"\n", h2c_with("")));
        assert!(
            matches!(err, ConfigError::UnknownCluster { route: 2, .. }),
            "{err:?}"
        );
    }
}

#[cfg(test)]
#[path = "config_file_route_tests.rs"]
mod route_tests;
