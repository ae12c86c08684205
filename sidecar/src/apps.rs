//! The apps behind the sidecar, and which one a stream goes to.
//!
//! Input: a stream's `:authority` and path. Output: the [`App`] to serve
//! it, with its name, or none (the stream gets 404). Without `--config`
//! there is one app, `--app`, and every stream goes to it. With
//! `--config` each app is named, and a stream goes to:
//!
//! 1. the app that lists its `:authority` in `authorities`. Names compare
//!    ignoring ASCII case. An entry with a port (`api.internal:8443`)
//!    matches that port only; an entry without one (`api.internal`)
//!    matches the host with any port or none. When both kinds match, the
//!    entry with the port wins. A trailing dot on the host is ignored;
//! 2. else the app with the longest `path_prefix` that matches the path at
//!    a segment boundary: `/api` matches `/api`, `/api/` and `/api/x`,
//!    never `/apix`. Paths compare byte for byte, case-sensitive, not
//!    percent-decoded (RFC 3986 §6.2.2.1: only scheme and host are
//!    case-insensitive); the query is not part of the path. The prefix
//!    `/` takes every path;
//! 3. else none.
//!
//! Built once by [`crate::listener`]; [`crate::dispatch`] asks it per
//! stream.

use std::sync::Arc;

use crate::app::{App, AppConfig};

/// One named app from the `--config` file.
#[derive(Debug, Clone)]
pub struct NamedApp {
    /// The name access lines and errors give it.
    pub name: Arc<str>,
    /// How to reach it.
    pub config: AppConfig,
    /// Which streams go to it.
    pub route: AppRoute,
}

/// Which streams an app takes: by `:authority`, by path prefix, or both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppRoute {
    /// Exact `:authority` matches.
    pub authorities: Vec<AuthorityMatch>,
    /// A path prefix, matched at a segment boundary; stored without a
    /// trailing `/` (except the root, `/`).
    pub path_prefix: Option<String>,
}

/// One entry of an app's `authorities`: a host, with or without a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorityMatch {
    /// Lower case; an IPv6 address without its brackets.
    pub host: String,
    /// `None`: any port, or none.
    pub port: Option<u16>,
}

/// Why an `authorities` entry or a `path_prefix` is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppRouteError {
    /// Not `host` or `host:port`.
    #[error(
        "authority {0:?} is not host or host:port (letters, digits, '-', '_', '.'; an IPv6 address in brackets)"
    )]
    Authority(String),
    /// Does not start with `/`, or has `?`, `#` or white space in it.
    #[error("path_prefix {0:?} must start with '/' and have no '?', '#' or white space")]
    PathPrefix(String),
}

impl AuthorityMatch {
    /// Whether `host` and `port`, split off a stream's `:authority`, match.
    fn matches(&self, host: &str, port: Option<u16>) -> bool {
        self.host.eq_ignore_ascii_case(host) && (self.port.is_none() || self.port == port)
    }
}

impl std::str::FromStr for AuthorityMatch {
    type Err = AppRouteError;

    /// `host`, `host:port`, `[v6]` or `[v6]:port`; stored lower case.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || AppRouteError::Authority(text.to_owned());
        let (host, port) = split_authority(text).ok_or_else(bad)?;
        let is_ipv6 = host.parse::<std::net::Ipv6Addr>().is_ok();
        let name_byte = |b: u8| b.is_ascii_alphanumeric() || b"-_.".contains(&b);
        let is_name = !host.is_empty() && host.bytes().all(name_byte);
        if !(is_ipv6 || is_name) || text.ends_with(':') {
            return Err(bad());
        }
        Ok(Self {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl std::fmt::Display for AuthorityMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = &self.host;
        match (host.contains(':'), self.port) {
            (true, Some(port)) => write!(f, "[{host}]:{port}"),
            (true, None) => write!(f, "[{host}]"),
            (false, Some(port)) => write!(f, "{host}:{port}"),
            (false, None) => f.write_str(host),
        }
    }
}

/// An authority's host (without IPv6 brackets and userinfo) and port;
/// `None` when the port is not a number or the brackets do not close.
fn split_authority(authority: &str) -> Option<(&str, Option<u16>)> {
    // RFC 9113 §8.3.1: `:authority` has no userinfo; dropped if present.
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, rest)| rest);
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, rest) = bracketed.split_once(']')?;
        match rest {
            "" => (host, None),
            rest => (host, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, Some(port)),
            _ => (authority, None),
        }
    };
    let port = match port {
        // RFC 3986 §3.2.3: an empty port is the same as none.
        None | Some("") => None,
        Some(port) => Some(port.parse().ok()?),
    };
    // `api.test.` is the absolute form of `api.test` (RFC 1034 §3.1).
    let host = host.strip_suffix('.').unwrap_or(host);
    Some((host, port))
}

/// Checks a `path_prefix` and drops its trailing `/` (`/api/` is `/api`).
pub fn normalise_prefix(prefix: &str) -> Result<String, AppRouteError> {
    let bad = |c: char| c == '?' || c == '#' || c.is_whitespace();
    if !prefix.starts_with('/') || prefix.contains(bad) {
        return Err(AppRouteError::PathPrefix(prefix.to_owned()));
    }
    let trimmed = prefix.trim_end_matches('/');
    Ok(if trimmed.is_empty() { "/" } else { trimmed }.to_owned())
}

/// Whether `prefix` (as [`normalise_prefix`] left it) matches `path` at a
/// segment boundary.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    // The root takes every path, `*` (RFC 9110 §9.3.7) among them.
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The index of the route, in `routes`, that takes a stream for
/// `authority` and `path` (see the module docs), or `None`.
pub fn pick(routes: &[AppRoute], authority: &str, path: &str) -> Option<usize> {
    if let Some((host, port)) = split_authority(authority) {
        let by_authority = |with_port: bool| {
            routes.iter().position(|route| {
                let listed = route.authorities.iter();
                listed
                    .filter(|entry| entry.port.is_some() == with_port)
                    .any(|entry| entry.matches(host, port))
            })
        };
        if let Some(found) = by_authority(true).or_else(|| by_authority(false)) {
            return Some(found);
        }
    }
    let path = path.split_once('?').map_or(path, |(path, _query)| path);
    routes
        .iter()
        .enumerate()
        .filter_map(|(i, route)| Some((i, route.path_prefix.as_deref()?)))
        .filter(|(_, prefix)| prefix_matches(prefix, path))
        .max_by_key(|(_, prefix)| prefix.len())
        .map(|(i, _)| i)
}

/// The app, or apps, behind the sidecar, each with its own connections.
pub enum Apps {
    /// `--app`: every stream goes to it.
    One(App),
    /// `--config`: each stream goes to the app [`pick`] finds.
    Named {
        /// Names and apps, in file order.
        apps: Vec<(Arc<str>, App)>,
        /// Their routes, in the same order.
        routes: Vec<AppRoute>,
    },
}

/// The app a stream goes to.
pub struct Chosen<'a> {
    /// The app.
    pub app: &'a App,
    /// Its name; `None` for the one app of `--app`.
    pub name: Option<&'a Arc<str>>,
}

impl Apps {
    /// `named` when it has any, else `one` alone. Nothing connects yet.
    pub fn new(one: &AppConfig, named: &[NamedApp]) -> Self {
        if named.is_empty() {
            return Apps::One(App::new(one.clone()));
        }
        Apps::Named {
            apps: named
                .iter()
                .map(|app| (app.name.clone(), App::new(app.config.clone())))
                .collect(),
            routes: named.iter().map(|app| app.route.clone()).collect(),
        }
    }

    /// The app for a stream with `authority` and `path`, if any.
    pub fn choose(&self, authority: &str, path: &str) -> Option<Chosen<'_>> {
        match self {
            Apps::One(app) => Some(Chosen { app, name: None }),
            Apps::Named { apps, routes } => {
                let (name, app) = apps.get(pick(routes, authority, path)?)?;
                Some(Chosen {
                    app,
                    name: Some(name),
                })
            }
        }
    }
}

#[cfg(test)]
#[path = "apps_tests.rs"]
mod tests;
