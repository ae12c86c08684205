//! Routing: a request's host and path → the [`Route`] that picks its
//! cluster, and that route's rewrites applied to the request head. A
//! route's cluster choice (one, or several by weight) is
//! [`crate::weighted`]'s, its field rules [`crate::header_rules`]'.
//!
//! Input: the request's authority (Host header or URI authority, port
//! allowed) and path. Output: the first matching [`Route`] of a
//! [`RouteTable`], whose [`Route::rewrite`] then edits the head before it is
//! forwarded. Built by [`crate::config_file`] from `--config`, or by
//! [`RouteTable::single`] when there is only the `--sidecar` flag.
//!
//! Matching rules:
//! - hosts compare ASCII-case-insensitively, without port, userinfo or IPv6
//!   brackets (see [`host_of`]); `*.example.com` matches `a.example.com` and
//!   `a.b.example.com` but not `example.com`;
//! - a path prefix is a plain, case-sensitive string prefix of the path
//!   (as Envoy's `prefix`): `/chat` matches `/chat`, `/chat/x` and
//!   `/chatty`. The query is never looked at. `/` matches every request,
//!   even a path of `*` (`OPTIONS *`) or none (CONNECT);
//! - routes are tried in order, and the first match wins.
//!
//! A prefix rewrite is plain replacement of the matched prefix, bytes as
//! they came (no percent-decoding, no slash folding): prefix `/chat` with
//! rewrite `/` turns `/chat/x` into `//x`. To strip a directory, match
//! `/chat/` and rewrite it to `/` (`/chat/x` → `/x`), with a second route
//! for `/chat` itself if needed.

use std::net::Ipv6Addr;
use std::str::FromStr;

use http::header::{HOST, HeaderValue};
use http::request::Parts;
use http::uri::{Authority, PathAndQuery, Uri};

use crate::header_rules::HeaderRules;
use crate::upstream::UpstreamConfig;
use crate::weighted::ClusterChoice;

/// How a route matches the request's host (the authority without port,
/// compared ASCII-case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// Every host, and requests without one.
    Any,
    /// This host only.
    Exact(String),
    /// Hosts ending with this suffix, which starts with `.`, and having at
    /// least one character before it: `*.example.com` is `.example.com`.
    Suffix(String),
}

/// One routing rule: which requests, which cluster, which rewrites and
/// header rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The route's name: for `%ROUTE%`; `route-N` (N from 1, in order)
    /// unless given.
    pub name: String,
    /// Which hosts the route takes.
    pub host: HostMatch,
    /// Which paths the route takes: starts with `/`; `/` matches everything.
    pub path_prefix: String,
    /// The cluster (index into the cluster list), or clusters by weight.
    pub cluster: ClusterChoice,
    /// Replaces the matched [`Route::path_prefix`] of the path.
    pub prefix_rewrite: Option<String>,
    /// Replaces the request's host (URI authority and Host header).
    pub host_rewrite: Option<String>,
    /// Fields added to and removed from the request and the response.
    pub headers: HeaderRules,
}

/// Clusters of sidecars and the routes that pick one per request: what a
/// `--config` file (or the flags' one sidecar) amounts to.
#[derive(Debug, Clone)]
pub struct Routing {
    /// Each cluster's name and sidecars, in configuration order; routes
    /// refer to them by index.
    pub clusters: Vec<(String, Vec<UpstreamConfig>)>,
    /// Routes in order; the first match wins, none gives 404.
    pub routes: RouteTable,
}

/// Routes in the order they are tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTable {
    routes: Vec<Route>,
}

/// A route that cannot be used, or a rewrite that made an invalid request.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// A host pattern is not `*`, `*.suffix` nor a host name or IP address.
    #[error("invalid host pattern {pattern:?}: {reason}")]
    HostPattern {
        /// The pattern as written.
        pattern: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A path prefix does not start with `/`.
    #[error("path prefix {prefix:?} does not start with '/'")]
    PathPrefix {
        /// The prefix as written.
        prefix: String,
    },
    /// A prefix rewrite is not a path.
    #[error("invalid prefix rewrite {rewrite:?}: {reason}")]
    PrefixRewrite {
        /// The rewrite as written.
        rewrite: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A host rewrite is not `host` or `host:port`.
    #[error("invalid host rewrite {host:?}: {reason}")]
    HostRewrite {
        /// The rewrite as written.
        host: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The rewritten request target is not a valid URI.
    #[error("rewritten request target {target:?} is invalid")]
    Uri {
        /// The path and query after the rewrite.
        target: String,
        /// Why `http` refused it.
        #[source]
        source: http::Error,
    },
}

/// The host of an authority: without userinfo, port and IPv6 brackets.
/// `"[::1]:80"` → `"::1"`, `"Example.com:8080"` → `"Example.com"`; a bare
/// IPv6 address (several colons, no brackets) is kept whole.
pub fn host_of(authority: &str) -> &str {
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_user, host)| host);
    if let Some(bracketed) = host.strip_prefix('[') {
        return bracketed.split_once(']').map_or(host, |(ip, _port)| ip);
    }
    match host.rsplit_once(':') {
        Some((name, _port)) if !name.contains(':') => name,
        _ => host,
    }
}

impl FromStr for HostMatch {
    type Err = RouteError;

    /// `*` is [`HostMatch::Any`], `*.example.com` a suffix, anything else
    /// (a host name, an IPv4 address, an IPv6 address with or without
    /// brackets) exact. Patterns are stored lower case. `*` is allowed only
    /// as a whole first label, and a pattern has no port.
    fn from_str(pattern: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| RouteError::HostPattern {
            pattern: pattern.to_owned(),
            reason,
        };
        let lower = pattern.to_ascii_lowercase();
        if lower == "*" {
            return Ok(HostMatch::Any);
        }
        if let Some(suffix) = lower.strip_prefix("*.") {
            check_host_name(suffix).map_err(invalid)?;
            return Ok(HostMatch::Suffix(format!(".{suffix}")));
        }
        let unbracketed = lower
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
            .unwrap_or(&lower);
        if unbracketed.parse::<Ipv6Addr>().is_ok() {
            return Ok(HostMatch::Exact(unbracketed.to_owned()));
        }
        check_host_name(&lower).map_err(invalid)?;
        Ok(HostMatch::Exact(lower))
    }
}

/// Checks a host name or IPv4 address in a pattern; the error is why not.
fn check_host_name(name: &str) -> Result<(), &'static str> {
    if name.contains('*') {
        return Err("'*' is allowed only as a whole first label, as in \"*.example.com\"");
    }
    if name.contains(':') {
        return Err("a host pattern has no port");
    }
    if name.split('.').any(str::is_empty) {
        return Err("empty label");
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if !name.bytes().all(|b| b == b'.' || allowed(b)) {
        return Err("only letters, digits, '-', '_' and '.' are allowed");
    }
    Ok(())
}

impl HostMatch {
    /// Whether `host` (already without port, see [`host_of`]) matches.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.as_bytes();
        match self {
            HostMatch::Any => true,
            HostMatch::Exact(exact) => host.eq_ignore_ascii_case(exact.as_bytes()),
            HostMatch::Suffix(suffix) => {
                let suffix = suffix.as_bytes();
                host.len() > suffix.len()
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
        }
    }
}

impl RouteTable {
    /// A table trying `routes` in order.
    pub fn new(routes: Vec<Route>) -> Self {
        Self { routes }
    }

    /// One catch-all route to `cluster`, without rewrites (the flags-only
    /// case, where `cluster` is 0).
    pub fn single(cluster: usize) -> Self {
        Self::new(vec![Route {
            name: "route-1".to_owned(),
            host: HostMatch::Any,
            path_prefix: "/".to_owned(),
            cluster: ClusterChoice::One(cluster),
            prefix_rewrite: None,
            host_rewrite: None,
            headers: HeaderRules::default(),
        }])
    }

    /// The routes, in the order they are tried.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The first route, in order, whose host and path prefix match. `host`
    /// may carry a port (`example.com:8080`, `[::1]:80`); anything from a
    /// `?` on in `path` is ignored.
    pub fn find(&self, host: &str, path: &str) -> Option<&Route> {
        let host = host_of(host);
        let path = path.split_once('?').map_or(path, |(path, _query)| path);
        self.routes
            .iter()
            .find(|route| route.host.matches(host) && route.matches_path(path))
    }
}

impl Route {
    /// Whether the path prefix matches `path` (without query).
    fn matches_path(&self, path: &str) -> bool {
        self.path_prefix == "/" || path.starts_with(&self.path_prefix)
    }

    /// Checks what [`Route::rewrite`] would otherwise find only on the
    /// first request: the path prefix starts with `/`, the prefix rewrite
    /// is a path (starts with `/`, no `?` or `#`), and the host rewrite is
    /// `host` or `host:port`.
    pub fn check(&self) -> Result<(), RouteError> {
        if !self.path_prefix.starts_with('/') {
            return Err(RouteError::PathPrefix {
                prefix: self.path_prefix.clone(),
            });
        }
        if let Some(rewrite) = &self.prefix_rewrite {
            check_prefix_rewrite(rewrite).map_err(|reason| RouteError::PrefixRewrite {
                rewrite: rewrite.clone(),
                reason,
            })?;
        }
        if let Some(host) = &self.host_rewrite {
            host_value(host)?;
        }
        Ok(())
    }

    /// Applies the rewrites to a request head; on error the head is left
    /// unchanged.
    ///
    /// The prefix rewrite replaces the matched [`Route::path_prefix`] of
    /// the path and keeps the query; a path the prefix does not start
    /// (`*`, or none, under the `/` catch-all) is left alone. The host
    /// rewrite replaces the whole authority (port and userinfo included)
    /// in the URI if it has one (HTTP/2, absolute-form), and the Host
    /// header if present; with neither (origin-form without Host) Host is
    /// inserted. An HTTP/2 request without Host gets none: there the
    /// authority is `:authority` (RFC 9113 §8.3.1).
    pub fn rewrite(&self, parts: &mut Parts) -> Result<(), RouteError> {
        let host = self.host_rewrite.as_deref().map(host_value).transpose()?;
        let path = self.prefix_rewrite.as_deref().and_then(|rewrite| {
            let rest = parts.uri.path().strip_prefix(self.path_prefix.as_str())?;
            Some(format!("{rewrite}{rest}"))
        });
        let has_authority = parts.uri.authority().is_some();
        let authority = host.as_ref().filter(|_| has_authority).map(|(a, _)| a);
        // Everything that can fail is done before `parts` is touched.
        let uri = match (path, authority) {
            (None, None) => None,
            (path, authority) => Some(rebuild_uri(&parts.uri, path, authority)?),
        };
        if let Some(uri) = uri {
            parts.uri = uri;
        }
        if let Some((_, value)) = host
            && (parts.headers.contains_key(HOST) || !has_authority)
        {
            parts.headers.insert(HOST, value);
        }
        Ok(())
    }
}

/// Why `rewrite` cannot replace a path prefix, if it cannot.
fn check_prefix_rewrite(rewrite: &str) -> Result<(), &'static str> {
    if !rewrite.starts_with('/') {
        return Err("does not start with '/'");
    }
    if rewrite.contains(['?', '#']) {
        return Err("'?' and '#' are not allowed");
    }
    PathAndQuery::from_str(rewrite).map_err(|_| "not a valid path")?;
    Ok(())
}

/// A host rewrite as URI authority and Host header value; userinfo is
/// refused, since a Host header has none (RFC 9110 §7.2).
fn host_value(host: &str) -> Result<(Authority, HeaderValue), RouteError> {
    let invalid = |reason| RouteError::HostRewrite {
        host: host.to_owned(),
        reason,
    };
    if host.is_empty() {
        return Err(invalid("empty"));
    }
    if host.contains('@') {
        return Err(invalid("userinfo is not allowed"));
    }
    let authority = Authority::from_str(host).map_err(|_| invalid("not host or host:port"))?;
    let value = HeaderValue::from_str(host).map_err(|_| invalid("not a header value"))?;
    Ok((authority, value))
}

/// `uri` with its path (`path`, plus the old query) and authority replaced
/// where given.
fn rebuild_uri(
    uri: &Uri,
    path: Option<String>,
    authority: Option<&Authority>,
) -> Result<Uri, RouteError> {
    let target = match (path, uri.query()) {
        (Some(path), Some(query)) => Some(format!("{path}?{query}")),
        (Some(path), None) => Some(path),
        (None, _) => uri.path_and_query().map(|pq| pq.as_str().to_owned()),
    };
    let mut builder = Uri::builder();
    if let Some(scheme) = uri.scheme() {
        builder = builder.scheme(scheme.clone());
    }
    if let Some(authority) = authority.or(uri.authority()) {
        builder = builder.authority(authority.clone());
    }
    if let Some(target) = &target {
        builder = builder.path_and_query(target.as_str());
    }
    builder.build().map_err(|source| RouteError::Uri {
        target: target.unwrap_or_default(),
        source,
    })
}

/// A route name: letters, digits, `-`, `_` and `.`, at least one; it goes
/// into field values through `%ROUTE%`.
pub(crate) fn is_route_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

#[cfg(test)]
mod tests {
    use http::Request;

    use super::*;

    fn route(host: &str, prefix: &str, cluster: usize) -> Route {
        Route {
            name: "test".to_owned(),
            host: host.parse().unwrap(),
            path_prefix: prefix.to_owned(),
            cluster: ClusterChoice::One(cluster),
            prefix_rewrite: None,
            host_rewrite: None,
            headers: HeaderRules::default(),
        }
    }

    fn cluster_for(table: &RouteTable, host: &str, path: &str) -> Option<usize> {
        table.find(host, path).map(|route| route.cluster.pick())
    }

    fn head(builder: http::request::Builder) -> Parts {
        builder.body(()).unwrap().into_parts().0
    }

    fn rewriting(prefix: &str, prefix_rewrite: Option<&str>, host_rewrite: Option<&str>) -> Route {
        Route {
            prefix_rewrite: prefix_rewrite.map(str::to_owned),
            host_rewrite: host_rewrite.map(str::to_owned),
            ..route("*", prefix, 0)
        }
    }

    fn rewritten_uri(route: &Route, uri: &str) -> String {
        let mut parts = head(Request::get(uri));
        route.rewrite(&mut parts).unwrap();
        parts.uri.to_string()
    }

    #[test]
    fn first_matching_route_wins() {
        let table = RouteTable::new(vec![
            route("*", "/chat", 1),
            route("*", "/chat/admin", 2),
            route("*", "/", 0),
        ]);
        assert_eq!(cluster_for(&table, "a.com", "/chat/admin"), Some(1));
        assert_eq!(cluster_for(&table, "a.com", "/other"), Some(0));
    }

    #[test]
    fn no_route_matches_gives_none() {
        let table = RouteTable::new(vec![route("a.com", "/", 0), route("*", "/api", 1)]);
        assert_eq!(cluster_for(&table, "b.com", "/web"), None);
    }

    #[test]
    fn host_patterns_parse_to_any_suffix_or_exact() {
        assert_eq!("*".parse::<HostMatch>().unwrap(), HostMatch::Any);
        assert_eq!(
            "*.Example.com".parse::<HostMatch>().unwrap(),
            HostMatch::Suffix(".example.com".to_owned())
        );
        assert_eq!(
            "API.example.com".parse::<HostMatch>().unwrap(),
            HostMatch::Exact("api.example.com".to_owned())
        );
        assert_eq!(
            "[::1]".parse::<HostMatch>().unwrap(),
            HostMatch::Exact("::1".to_owned())
        );
        assert_eq!(
            "10.0.0.1".parse::<HostMatch>().unwrap(),
            HostMatch::Exact("10.0.0.1".to_owned())
        );
    }

    #[test]
    fn bad_host_patterns_are_refused() {
        for pattern in [
            "a.*.com",
            "*example.com",
            "*.",
            "",
            "a.com:80",
            "a..com",
            "a b",
        ] {
            let err = pattern.parse::<HostMatch>().unwrap_err();
            assert!(
                matches!(&err, RouteError::HostPattern { pattern: p, .. } if p == pattern),
                "{pattern:?}: {err}"
            );
        }
    }

    #[test]
    fn suffix_matches_subdomains_but_not_the_bare_domain() {
        let suffix: HostMatch = "*.example.com".parse().unwrap();
        assert!(suffix.matches("a.example.com"));
        assert!(suffix.matches("a.b.example.com"));
        assert!(!suffix.matches("example.com"));
        assert!(!suffix.matches("badexample.com"));
        assert!(!suffix.matches(".example.com"));
    }

    #[test]
    fn exact_and_any_hosts() {
        let table = RouteTable::new(vec![
            route("api.example.com", "/", 1),
            route("*.example.com", "/", 2),
            route("*", "/", 3),
        ]);
        assert_eq!(cluster_for(&table, "api.example.com", "/"), Some(1));
        assert_eq!(cluster_for(&table, "www.example.com", "/"), Some(2));
        assert_eq!(cluster_for(&table, "example.com", "/"), Some(3));
        assert_eq!(cluster_for(&table, "", "/"), Some(3));
    }

    #[test]
    fn hosts_compare_case_insensitively() {
        let table = RouteTable::new(vec![
            route("api.example.com", "/", 1),
            route("*.B.com", "/", 2),
        ]);
        assert_eq!(cluster_for(&table, "API.Example.COM", "/"), Some(1));
        assert_eq!(cluster_for(&table, "x.b.COM", "/"), Some(2));
        let upper = HostMatch::Exact("A.COM".to_owned());
        assert!(upper.matches("a.com"));
    }

    #[test]
    fn find_strips_port_and_ipv6_brackets() {
        let table = RouteTable::new(vec![route("a.com", "/", 1), route("::1", "/", 2)]);
        assert_eq!(cluster_for(&table, "a.com:8080", "/"), Some(1));
        assert_eq!(cluster_for(&table, "[::1]:80", "/"), Some(2));
        assert_eq!(cluster_for(&table, "[::1]", "/"), Some(2));
    }

    #[test]
    fn host_of_drops_userinfo_port_and_brackets() {
        assert_eq!(host_of("user@a.com:1"), "a.com");
        assert_eq!(host_of("a.com"), "a.com");
        assert_eq!(host_of("[::1]:443"), "::1");
        assert_eq!(host_of("::1"), "::1");
    }

    #[test]
    fn path_prefix_is_a_plain_case_sensitive_prefix() {
        let table = RouteTable::new(vec![route("*", "/chat", 1)]);
        assert_eq!(cluster_for(&table, "a", "/chat"), Some(1));
        assert_eq!(cluster_for(&table, "a", "/chat/x"), Some(1));
        assert_eq!(cluster_for(&table, "a", "/chatty"), Some(1));
        assert_eq!(cluster_for(&table, "a", "/Chat"), None);
        assert_eq!(cluster_for(&table, "a", "/"), None);
    }

    #[test]
    fn query_is_not_part_of_the_path() {
        let table = RouteTable::new(vec![route("*", "/a?b", 1), route("*", "/a", 2)]);
        assert_eq!(cluster_for(&table, "h", "/a?b=1"), Some(2));
    }

    #[test]
    fn single_route_catches_everything() {
        let table = RouteTable::single(0);
        assert_eq!(cluster_for(&table, "any.host:1", "/x?y"), Some(0));
        assert_eq!(cluster_for(&table, "", "*"), Some(0));
        assert_eq!(cluster_for(&table, "a.com:443", ""), Some(0));
    }

    #[test]
    fn prefix_rewrite_replaces_the_prefix() {
        let route = rewriting("/chat", Some("/v2/chat"), None);
        assert_eq!(rewritten_uri(&route, "/chat/x"), "/v2/chat/x");
        assert_eq!(rewritten_uri(&route, "/chat"), "/v2/chat");
    }

    #[test]
    fn prefix_rewrite_keeps_the_query() {
        let route = rewriting("/chat/", Some("/"), None);
        assert_eq!(rewritten_uri(&route, "/chat/x?a=1&b"), "/x?a=1&b");
    }

    #[test]
    fn prefix_rewrite_keeps_scheme_and_authority_of_absolute_form() {
        let route = rewriting("/chat/", Some("/"), None);
        assert_eq!(
            rewritten_uri(&route, "https://a.com:8443/chat/x?q"),
            "https://a.com:8443/x?q"
        );
    }

    #[test]
    fn prefix_rewrite_is_plain_replacement() {
        // Documented: no slash folding, "/chat" + "/" on "/chat/x" is "//x".
        let route = rewriting("/chat", Some("/"), None);
        assert_eq!(rewritten_uri(&route, "/chat/x"), "//x");
        assert_eq!(rewritten_uri(&route, "/chat"), "/");
        assert_eq!(rewritten_uri(&route, "/chatty"), "/ty");
        // Matching the directory gives the Envoy-like result.
        let route = rewriting("/chat/", Some("/"), None);
        assert_eq!(rewritten_uri(&route, "/chat/x"), "/x");
    }

    #[test]
    fn root_prefix_rewrite_prepends() {
        let route = rewriting("/", Some("/api/"), None);
        assert_eq!(rewritten_uri(&route, "/x?y"), "/api/x?y");
    }

    #[test]
    fn root_prefix_rewrite_leaves_asterisk_and_authority_form_alone() {
        let route = rewriting("/", Some("/api/"), None);
        let mut options = head(Request::options("*"));
        route.rewrite(&mut options).unwrap();
        assert_eq!(options.uri, "*");
        let mut connect = head(Request::connect("a.com:443"));
        route.rewrite(&mut connect).unwrap();
        assert_eq!(connect.uri, "a.com:443");
    }

    #[test]
    fn host_rewrite_sets_host_header_of_origin_form() {
        let route = rewriting("/", None, Some("chat.internal"));
        let mut parts = head(Request::get("/x?y").header(HOST, "a.com:8080"));
        route.rewrite(&mut parts).unwrap();
        assert_eq!(parts.headers[HOST], "chat.internal");
        assert_eq!(parts.uri, "/x?y");
    }

    #[test]
    fn host_rewrite_inserts_host_when_there_is_none() {
        let route = rewriting("/", None, Some("chat.internal:81"));
        let mut parts = head(Request::get("/x"));
        route.rewrite(&mut parts).unwrap();
        assert_eq!(parts.headers[HOST], "chat.internal:81");
    }

    #[test]
    fn host_rewrite_sets_authority_of_absolute_form_and_h2() {
        let route = rewriting("/", None, Some("chat.internal"));
        let mut parts = head(Request::get("https://a.com:8443/x?y"));
        route.rewrite(&mut parts).unwrap();
        assert_eq!(parts.uri, "https://chat.internal/x?y");
        // HTTP/2 carries the authority in the URI only: no Host is added.
        assert!(!parts.headers.contains_key(HOST));
    }

    #[test]
    fn host_rewrite_sets_both_authority_and_host_when_both_are_present() {
        let route = rewriting("/", None, Some("chat.internal"));
        let mut parts = head(Request::get("http://a.com/x").header(HOST, "a.com"));
        route.rewrite(&mut parts).unwrap();
        assert_eq!(parts.uri, "http://chat.internal/x");
        assert_eq!(parts.headers[HOST], "chat.internal");
    }

    #[test]
    fn host_rewrite_replaces_the_authority_of_connect() {
        let route = rewriting("/", None, Some("chat.internal:443"));
        let mut parts = head(Request::connect("a.com:443").header(HOST, "a.com:443"));
        route.rewrite(&mut parts).unwrap();
        assert_eq!(parts.uri, "chat.internal:443");
        assert_eq!(parts.headers[HOST], "chat.internal:443");
    }

    #[test]
    fn both_rewrites_apply_together() {
        let route = rewriting("/chat/", Some("/"), Some("chat.internal"));
        let mut parts = head(Request::get("https://a.com/chat/room?id=1"));
        route.rewrite(&mut parts).unwrap();
        assert_eq!(parts.uri, "https://chat.internal/room?id=1");
    }

    #[test]
    fn invalid_host_rewrite_fails_and_leaves_the_head_alone() {
        let route = rewriting("/chat/", Some("/"), Some("bad host"));
        let mut parts = head(Request::get("/chat/x").header(HOST, "a.com"));
        let err = route.rewrite(&mut parts).unwrap_err();
        assert!(matches!(err, RouteError::HostRewrite { .. }), "{err}");
        assert_eq!(parts.uri, "/chat/x");
        assert_eq!(parts.headers[HOST], "a.com");
    }

    #[test]
    fn check_refuses_bad_prefixes_and_rewrites() {
        let err = route("*", "chat", 0).check().unwrap_err();
        assert!(matches!(err, RouteError::PathPrefix { .. }), "{err}");
        for rewrite in ["v2", "/a?b", "/a#b", "/a b"] {
            let err = rewriting("/", Some(rewrite), None).check().unwrap_err();
            assert!(matches!(err, RouteError::PrefixRewrite { .. }), "{err}");
        }
        for host in ["", "user@a.com", "a b", "a.com/x"] {
            let err = rewriting("/", None, Some(host)).check().unwrap_err();
            assert!(
                matches!(err, RouteError::HostRewrite { .. }),
                "{host:?}: {err}"
            );
        }
        rewriting("/chat/", Some("/"), Some("chat.internal:8080"))
            .check()
            .unwrap();
    }
}
