//! The `--config FILE` TOML → the named apps behind the sidecar
//! ([`NamedApp`]) and the TCP targets fronts may reach ([`TcpAllowed`]),
//! validated before any socket is bound ([`File`]). Called by
//! [`crate::args`] when `--config` is set; without it, `--app` is the one
//! app and takes every stream.
//!
//! A complete file:
//!
//! ```toml
//! [[app]]
//! name = "api"                     # unique; letters, digits, '-', '_', '.'
//! address = "127.0.0.1:9000"       # host:port
//! protocol = "h2c"                 # "http1" (default) or "h2c"
//! authorities = ["api.internal", "api.internal:8443"]
//!
//! [[app]]
//! name = "web"
//! address = "127.0.0.1:8000"
//! path_prefix = "/"                # matched at a segment boundary
//! response_timeout = "2m"          # optional, as --response-timeout
//!
//! [[tcp]]
//! target = "127.0.0.1:6379"        # host:port a front may CONNECT to
//! fronts = ["spiffe://td/front"]   # optional: only these front SANs
//! ```
//!
//! How a stream picks its app is in [`crate::apps`]. Each app needs
//! `authorities`, a `path_prefix`, or both. `connect_timeout`,
//! `response_timeout` and `upgrade_timeout` (humantime, such as `"5s"`)
//! override the flag of the same name for one app; the flags' values and
//! `--app-proxy-protocol` apply otherwise. Refused: no
//! `[[app]]`, unknown keys, two apps with one name, the same authority or
//! path prefix in two apps, a bad address, authority or prefix. Errors
//! name the app; errors inside the TOML carry its line and column.
//!
//! Each `[[tcp]]` adds one target to the allow-list of `--tcp-allow`
//! ([`crate::tcp_allow`]); with `fronts` (URI SANs such as SPIFFE IDs, or
//! DNS SANs), only fronts whose certificate carries one of them may reach
//! it, and never an h2c front. A file still needs an `[[app]]`; a bad
//! target or front name is refused, naming the target.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use h2hop::host_port::{HostPort, HostPortError};
use h2hop::tls::TlsError;
use h2hop::tls::identity::AllowedSans;
use serde::Deserialize;

use crate::app::{AppConfig, AppProtocol};
use crate::apps::{AppRoute, AppRouteError, AuthorityMatch, NamedApp, normalise_prefix};
use crate::tcp_allow::TcpAllowed;

/// What a valid file gives.
#[derive(Debug, Clone)]
pub struct File {
    /// The `[[app]]` tables, in file order.
    pub apps: Vec<NamedApp>,
    /// The `[[tcp]]` tables, in file order.
    pub tcp: Vec<TcpAllowed>,
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
    /// Not TOML, or not this shape; the source names line and column.
    #[error("invalid configuration file")]
    Syntax(#[source] toml::de::Error),
    /// No `[[app]]` table.
    #[error("no [[app]] is defined")]
    NoApp,
    /// An app's name is empty or has other characters than letters,
    /// digits, `-`, `_` and `.`.
    #[error("app {name:?}: invalid name: use letters, digits, '-', '_' and '.'")]
    Name {
        /// The name as written.
        name: String,
    },
    /// Two apps share a name.
    #[error("app {name:?} is defined twice")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// An address is not `host:port`.
    #[error("app {app:?}: bad address")]
    Address {
        /// The app's name.
        app: String,
        /// What is wrong, quoting the address.
        #[source]
        source: HostPortError,
    },
    /// A timeout is not a duration such as `"5s"`, or is zero.
    #[error("app {app:?}: {key} {value:?} is not a duration above zero, such as \"5s\"")]
    Timeout {
        /// The app's name.
        app: String,
        /// Which timeout.
        key: &'static str,
        /// The value as written.
        value: String,
    },
    /// An authority or path prefix cannot be used.
    #[error("app {app:?}")]
    Route {
        /// The app's name.
        app: String,
        /// What is wrong, quoting the value.
        #[source]
        source: AppRouteError,
    },
    /// An app has neither `authorities` nor `path_prefix`.
    #[error("app {app:?} matches nothing: give it authorities, a path_prefix, or both")]
    MatchesNothing {
        /// The app's name.
        app: String,
    },
    /// A `[[tcp]]` target is not `host:port`.
    #[error("[[tcp]] target {target:?}")]
    TcpTarget {
        /// The target as written.
        target: String,
        /// What is wrong.
        #[source]
        source: HostPortError,
    },
    /// A `[[tcp]]` `fronts` value is neither a URI nor a DNS name, or the
    /// list is empty (which would let no front in: leave it out instead).
    #[error("[[tcp]] target {target:?}: fronts")]
    TcpFronts {
        /// The target as written.
        target: String,
        /// What is wrong, quoting the value.
        #[source]
        source: TlsError,
    },
    /// A `[[tcp]]` with `fronts = []`.
    #[error(
        "[[tcp]] target {target:?}: fronts is empty, which no front matches: leave it out to allow every front"
    )]
    TcpNoFronts {
        /// The target as written.
        target: String,
    },
    /// Two apps claim the same authority or path prefix.
    #[error("app {app:?}: {what} {value:?} is already app {first:?}'s")]
    Claimed {
        /// The later app's name.
        app: String,
        /// `authority` or `path_prefix`.
        what: &'static str,
        /// The value both give (normalised).
        value: String,
        /// The earlier app's name.
        first: String,
    },
}

/// The file as written, before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    app: Vec<RawApp>,
    #[serde(default)]
    tcp: Vec<RawTcp>,
}

/// One `[[tcp]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTcp {
    target: String,
    fronts: Option<Vec<String>>,
}

/// One `[[app]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    name: String,
    address: String,
    #[serde(default)]
    protocol: RawProtocol,
    #[serde(default)]
    authorities: Vec<String>,
    path_prefix: Option<String>,
    connect_timeout: Option<String>,
    response_timeout: Option<String>,
    upgrade_timeout: Option<String>,
}

/// `protocol` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawProtocol {
    #[default]
    Http1,
    H2c,
}

impl From<RawProtocol> for AppProtocol {
    fn from(raw: RawProtocol) -> Self {
        match raw {
            RawProtocol::Http1 => AppProtocol::Http1,
            RawProtocol::H2c => AppProtocol::H2c,
        }
    }
}

/// Reads and validates the file at `path`; each app gets the timeouts and
/// settings of `flags` with its own address and protocol.
pub fn load(path: &Path, flags: &AppConfig) -> Result<File, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, flags)
}

/// Validates `text`, as [`load`] does.
pub fn parse(text: &str, flags: &AppConfig) -> Result<File, ConfigError> {
    let raw: RawFile = toml::from_str(text).map_err(ConfigError::Syntax)?;
    if raw.app.is_empty() {
        return Err(ConfigError::NoApp);
    }
    let apps = raw
        .app
        .into_iter()
        .map(|app| app_of(app, flags))
        .collect::<Result<Vec<_>, _>>()?;
    check_unclaimed(&apps)?;
    let tcp = raw
        .tcp
        .into_iter()
        .map(tcp_of)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(File { apps, tcp })
}

/// Validates one `[[tcp]]`.
fn tcp_of(raw: RawTcp) -> Result<TcpAllowed, ConfigError> {
    let target = raw
        .target
        .parse::<HostPort>()
        .map_err(|source| ConfigError::TcpTarget {
            target: raw.target.clone(),
            source,
        })?;
    let fronts = match raw.fronts {
        None => None,
        Some(fronts) if fronts.is_empty() => {
            return Err(ConfigError::TcpNoFronts { target: raw.target });
        }
        Some(fronts) => {
            Some(
                AllowedSans::new(&fronts).map_err(|source| ConfigError::TcpFronts {
                    target: raw.target.clone(),
                    source,
                })?,
            )
        }
    };
    Ok(TcpAllowed { target, fronts })
}

/// Validates one app.
fn app_of(raw: RawApp, flags: &AppConfig) -> Result<NamedApp, ConfigError> {
    let valid_name = |b: u8| b.is_ascii_alphanumeric() || b"-_.".contains(&b);
    if raw.name.is_empty() || !raw.name.bytes().all(valid_name) {
        return Err(ConfigError::Name { name: raw.name });
    }
    let address = raw
        .address
        .parse::<HostPort>()
        .map_err(|source| ConfigError::Address {
            app: raw.name.clone(),
            source,
        })?;
    let invalid = |source| ConfigError::Route {
        app: raw.name.clone(),
        source,
    };
    let authorities = raw
        .authorities
        .iter()
        .map(|authority| authority.parse::<AuthorityMatch>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    let path_prefix = match raw.path_prefix.as_deref() {
        Some(prefix) => Some(normalise_prefix(prefix).map_err(invalid)?),
        None => None,
    };
    if authorities.is_empty() && path_prefix.is_none() {
        return Err(ConfigError::MatchesNothing { app: raw.name });
    }
    let timeout = |key, value: &Option<String>, flag| match value {
        None => Ok(flag),
        Some(value) => match humantime::parse_duration(value) {
            Ok(duration) if !duration.is_zero() => Ok(duration),
            _ => Err(ConfigError::Timeout {
                app: raw.name.clone(),
                key,
                value: value.clone(),
            }),
        },
    };
    let config = AppConfig {
        addr: address.to_string(),
        protocol: raw.protocol.into(),
        connect_timeout: timeout(
            "connect_timeout",
            &raw.connect_timeout,
            flags.connect_timeout,
        )?,
        response_timeout: timeout(
            "response_timeout",
            &raw.response_timeout,
            flags.response_timeout,
        )?,
        upgrade_timeout: timeout(
            "upgrade_timeout",
            &raw.upgrade_timeout,
            flags.upgrade_timeout,
        )?,
        ..flags.clone()
    };
    Ok(NamedApp {
        name: Arc::from(raw.name),
        config,
        route: AppRoute {
            authorities,
            path_prefix,
        },
    })
}

/// Refuses two apps with one name, and an authority or a path prefix that
/// two apps give: which app takes it would depend on file order.
fn check_unclaimed(apps: &[NamedApp]) -> Result<(), ConfigError> {
    let mut names = HashSet::new();
    let mut claimed: HashMap<(&str, String), &str> = HashMap::new();
    for app in apps {
        let name = &*app.name;
        if !names.insert(name) {
            return Err(ConfigError::DuplicateName { name: name.into() });
        }
        let authorities = app.route.authorities.iter();
        let keys = authorities
            .map(|authority| ("authority", authority.to_string()))
            .chain(
                app.route
                    .path_prefix
                    .iter()
                    .map(|p| ("path_prefix", p.clone())),
            );
        for key in keys {
            // The same value twice in one app is harmless.
            if let Some(first) = claimed.get(&key)
                && *first != name
            {
                return Err(ConfigError::Claimed {
                    app: name.into(),
                    what: key.0,
                    value: key.1,
                    first: (*first).into(),
                });
            }
            claimed.insert(key, name);
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "config_file_tests.rs"]
mod tests;
