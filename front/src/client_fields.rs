//! Client address and request identity fields, settled once per request.
//!
//! Input: a client's request head and the address of the peer that sent it
//! (the connection's source, or the PROXY protocol's). Output: the head
//! with its `X-Forwarded-*` / `Forwarded`, `X-Request-Id`, `traceparent`
//! and `tracestate` fields as the front sends them on, and the [`Settled`]
//! client address, request id and trace id. Called by [`crate::dispatch`]
//! for every request, tunnels and plain ones, before routing.
//!
//! Trust is explicit ([`ClientFields::trusted_proxies`]). From a trusted
//! peer the incoming fields are kept and extended, and the client is found
//! by walking `X-Forwarded-For` (or, without it, `Forwarded`'s `for=`) from
//! right to left past trusted addresses, as nginx's `real_ip_recursive` and
//! Envoy's trusted CIDRs do. From any other peer every incoming
//! `X-Forwarded-*` and `Forwarded` field, and any `X-Request-Id`, is
//! removed, and the client is the peer.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use h2hop::networks::Networks;
use h2hop::request_identity::{
    self, REQUEST_ID, RequestIdentity, TRACEPARENT, TRACESTATE, TraceId, TraceParent,
    address_value, never_indexed,
};
use http::header::{FORWARDED, HeaderName, HeaderValue};
use http::{HeaderMap, Request};

/// `X-Forwarded-For`.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Which client address fields the front writes (`--forwarded-fields`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ForwardedFields {
    /// `X-Forwarded-For` and `X-Forwarded-Proto`, as most apps read.
    #[default]
    XForwarded,
    /// RFC 7239 `Forwarded` alone.
    Forwarded,
    /// `X-Forwarded-For`, `X-Forwarded-Proto` and `Forwarded`.
    Both,
}

impl ForwardedFields {
    fn x_forwarded(self) -> bool {
        matches!(self, Self::XForwarded | Self::Both)
    }

    fn forwarded(self) -> bool {
        matches!(self, Self::Forwarded | Self::Both)
    }
}

/// How the front settles client address and identity fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientFields {
    /// Peers whose forwarded fields and request id are kept and extended
    /// (`--trusted-proxies`); empty, the default, trusts nobody.
    pub trusted_proxies: Networks,
    /// The fields written (`--forwarded-fields`).
    pub write: ForwardedFields,
    /// Put the request id on the response too (`--request-id-echo`).
    pub request_id_echo: bool,
    /// Start a trace when a request comes without a valid `traceparent`
    /// (`--start-trace`).
    pub start_trace: bool,
}

/// What the front settled on for one request; [`crate::dispatch`] keeps it
/// for the access line, the response, and per-route substitutions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settled {
    /// The client's address: the peer's, or from a trusted peer's fields.
    pub(crate) client: IpAddr,
    /// The `X-Request-Id` sent on.
    pub(crate) request_id: HeaderValue,
    /// The trace id of the `traceparent` sent on, if any.
    pub(crate) trace_id: Option<TraceId>,
    /// Whether the sidecar must be told [`Settled::client`] in h2hop's own
    /// field: it is not the rightmost `X-Forwarded-For` entry (a client
    /// behind trusted proxies, or no `X-Forwarded-For` written). Otherwise
    /// the sidecar reads it there, and the field's cost (about 1,500
    /// instructions a request with HPACK, callgrind) is saved.
    pub(crate) carry_client: bool,
}

impl Settled {
    /// The access line's part of it.
    pub(crate) fn identity(&self) -> RequestIdentity {
        RequestIdentity {
            client: Some(self.client),
            request_id: self.request_id.to_str().ok().map(Box::from),
            trace_id: self.trace_id,
        }
    }
}

impl ClientFields {
    /// Rewrites `request`'s fields as described in the module comment and
    /// says what was settled; `peer` sent the request.
    pub(crate) fn settle<B>(&self, peer: SocketAddr, request: &mut Request<B>) -> Settled {
        let peer = peer.ip().to_canonical();
        let trusted = self.trusted_proxies.contains(peer);
        let scheme = scheme_of(request);
        // The authority the client asked for (RFC 9112 §3.2.2), before any
        // route rewrites it; copied only for `Forwarded`, which names it.
        let host = self.write.forwarded().then(|| {
            request
                .uri()
                .authority()
                .map(|authority| authority.as_str().to_owned())
                .or_else(|| {
                    let host = request.headers().get(http::header::HOST)?;
                    host.to_str().ok().map(str::to_owned)
                })
        });
        let host = host.flatten();
        let headers = request.headers_mut();
        let present = Present::scan(headers);
        let client = if trusted {
            walk_trusted(headers, peer, &self.trusted_proxies)
        } else {
            if present.forwarded {
                remove_forwarded(headers);
            }
            peer
        };
        if self.write.x_forwarded() {
            if trusted {
                append_list(headers, X_FORWARDED_FOR, address_value(peer));
            } else {
                // Every X-Forwarded-* is gone: nothing to append to.
                headers.insert(X_FORWARDED_FOR, address_value(peer));
            }
            if !(trusted && headers.contains_key(X_FORWARDED_PROTO)) {
                headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(scheme));
            }
        }
        if self.write.forwarded() {
            let element = forwarded_element(peer, scheme, host.as_deref());
            if let Ok(element) = HeaderValue::from_str(&element) {
                append_list(headers, FORWARDED, element);
            }
        }
        let request_id = if present.request_id {
            settle_request_id(headers, trusted)
        } else {
            fresh_request_id(headers)
        };
        let trace_id = if present.trace {
            self.settle_trace(headers)
        } else {
            self.start_trace(headers)
        };
        Settled {
            client,
            request_id,
            trace_id,
            carry_client: client != peer || !self.write.x_forwarded(),
        }
    }

    /// Keeps one valid `traceparent` with its `tracestate`; drops an
    /// invalid one with its `tracestate` (W3C Trace Context §3.3.2: no
    /// `tracestate` without a `traceparent`); starts one if asked.
    fn settle_trace(&self, headers: &mut HeaderMap) -> Option<TraceId> {
        if let Some(parent) = TraceParent::of(headers) {
            // Unique to the request: kept out of the hop's HPACK table.
            if let Some(value) = headers.get_mut(TRACEPARENT) {
                value.set_sensitive(true);
            }
            return Some(parent.trace_id);
        }
        headers.remove(TRACEPARENT);
        headers.remove(TRACESTATE);
        self.start_trace(headers)
    }

    /// Starts a trace if asked, for a request that has none.
    fn start_trace(&self, headers: &mut HeaderMap) -> Option<TraceId> {
        if !self.start_trace {
            return None;
        }
        let started = TraceParent::start();
        headers.insert(TRACEPARENT, started.to_header_value());
        Some(started.trace_id)
    }
}

/// Which of the fields [`ClientFields::settle`] reads or replaces a
/// request came with, found in one pass over its field names: most
/// requests have none, and each lookup by name hashes the name (callgrind:
/// the lookups this spares were about 600 instructions a plain GET).
#[derive(Debug, Default)]
struct Present {
    /// `Forwarded` or some `X-Forwarded-*`.
    forwarded: bool,
    /// `X-Request-Id`.
    request_id: bool,
    /// `traceparent` or `tracestate`.
    trace: bool,
}

impl Present {
    fn scan(headers: &HeaderMap) -> Self {
        let mut present = Self::default();
        for name in headers.keys() {
            if *name == FORWARDED || name.as_str().starts_with("x-forwarded-") {
                present.forwarded = true;
            } else if *name == REQUEST_ID {
                present.request_id = true;
            } else if *name == TRACEPARENT || *name == TRACESTATE {
                present.trace = true;
            }
        }
        present
    }
}

/// `http` or `https`, as the client connected.
fn scheme_of<B>(request: &Request<B>) -> &'static str {
    let scheme = request
        .uri()
        .scheme()
        .or_else(|| request.extensions().get::<http::uri::Scheme>());
    match scheme {
        Some(scheme) if *scheme == http::uri::Scheme::HTTPS => "https",
        _ => "http",
    }
}

/// Removes every field an untrusted peer could forge: `Forwarded` and each
/// `X-Forwarded-*`.
fn remove_forwarded(headers: &mut HeaderMap) {
    let forged: Vec<HeaderName> = headers
        .keys()
        .filter(|name| *name == FORWARDED || name.as_str().starts_with("x-forwarded-"))
        .cloned()
        .collect();
    for name in forged {
        headers.remove(name);
    }
}

/// The client behind a trusted `peer`: walking `X-Forwarded-For` (or,
/// without one, `Forwarded`'s `for=` nodes) from the right, the first
/// address not in `trusted`. The walk stops at a node that is not an
/// address (junk, an obfuscated or `unknown` node), settling on the last
/// trusted hop before it; when every address is trusted, the leftmost.
fn walk_trusted(headers: &HeaderMap, peer: IpAddr, trusted: &Networks) -> IpAddr {
    let nodes: Vec<Option<IpAddr>> = if headers.contains_key(X_FORWARDED_FOR) {
        list_items(headers, &X_FORWARDED_FOR)
            .map(node_addr)
            .collect()
    } else {
        list_items(headers, &FORWARDED)
            .filter_map(forwarded_for)
            .map(|node| node_addr(&node))
            .collect()
    };
    let mut client = peer;
    for node in nodes.into_iter().rev() {
        let Some(addr) = node else {
            break;
        };
        client = addr.to_canonical();
        if !trusted.contains(client) {
            break;
        }
    }
    client
}

/// Comma-separated items of every `name` line, trimmed. (Quoted commas in
/// `Forwarded` are not split around: a node or host never contains one
/// in a list worth reading.)
fn list_items<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// The `for=` value of one `Forwarded` element (RFC 7239 §4), unquoted.
fn forwarded_for(element: &str) -> Option<String> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// A list item or RFC 7239 §6 node as an address: `2001:db8::1`,
/// `192.0.2.1`, `192.0.2.1:80`, `[2001:db8::1]`, `[2001:db8::1]:80`;
/// `None` for `unknown`, an obfuscated identifier (`_hidden`), or junk.
fn node_addr(node: &str) -> Option<IpAddr> {
    if let Ok(addr) = node.parse::<IpAddr>() {
        return Some(addr);
    }
    if let Some(rest) = node.strip_prefix('[') {
        let (addr, _port) = rest.split_once(']')?;
        return addr.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6);
    }
    let addr = node.split_once(':').map_or(node, |(addr, _port)| addr);
    addr.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// Our `Forwarded` element (RFC 7239 §4, §5): `for=` the peer (an IPv6
/// address quoted and bracketed, §6), `host=` the client's authority
/// (quoted when it is not a token), `proto=` the client's scheme.
fn forwarded_element(peer: IpAddr, scheme: &str, host: Option<&str>) -> String {
    let mut element = String::with_capacity(64);
    match peer {
        IpAddr::V4(v4) => {
            let _ = write!(element, "for={v4}");
        }
        IpAddr::V6(v6) => {
            let _ = write!(element, "for=\"[{v6}]\"");
        }
    }
    if let Some(host) = host.filter(|host| host.bytes().all(is_quotable)) {
        if h2hop::upgrade::is_token(host) {
            let _ = write!(element, ";host={host}");
        } else {
            let _ = write!(element, ";host=\"{host}\"");
        }
    }
    let _ = write!(element, ";proto={scheme}");
    element
}

/// Whether `byte` may stand in a quoted-string as it is (RFC 9110 §5.6.4,
/// without the escapes, which a host never needs).
fn is_quotable(byte: u8) -> bool {
    byte.is_ascii_graphic() && byte != b'"' && byte != b'\\'
}

/// Appends `item` to the list field `name`, as one line: existing lines
/// joined with `, `, then the item (RFC 9110 §5.3).
fn append_list(headers: &mut HeaderMap, name: HeaderName, item: HeaderValue) {
    if !headers.contains_key(&name) {
        headers.insert(name, item);
        return;
    }
    let Ok(item) = item.to_str() else { return };
    let mut joined = String::new();
    for value in headers.get_all(&name) {
        if let Ok(value) = value.to_str() {
            joined.push_str(value);
            joined.push_str(", ");
        }
    }
    joined.push_str(item);
    if let Ok(value) = HeaderValue::from_str(&joined) {
        headers.insert(name, value);
    }
}

/// A fresh `X-Request-Id`, for a request that came without one.
fn fresh_request_id(headers: &mut HeaderMap) -> HeaderValue {
    let id = request_identity::new_request_id();
    headers.insert(REQUEST_ID, id.clone());
    id
}

/// Keeps a trusted peer's one sane `X-Request-Id`; otherwise a fresh one.
fn settle_request_id(headers: &mut HeaderMap, trusted: bool) -> HeaderValue {
    let mut incoming = headers.get_all(REQUEST_ID).iter();
    let kept = match (incoming.next(), incoming.next()) {
        (Some(id), None) if trusted && request_identity::is_sane_request_id(id.as_bytes()) => {
            Some(id.clone())
        }
        _ => None,
    };
    // Unique to the request: kept out of the hop's HPACK table.
    let id = kept.map_or_else(request_identity::new_request_id, never_indexed);
    headers.insert(REQUEST_ID, id.clone());
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACEPARENT_EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn peer(text: &str) -> SocketAddr {
        SocketAddr::new(
            text.parse()
                .unwrap_or_else(|_| unreachable!("test address")),
            40000,
        )
    }

    fn head(fields: &[(&str, &str)]) -> Request<()> {
        let mut request = Request::new(());
        *request.uri_mut() = http::Uri::from_static("/path");
        let headers = request.headers_mut();
        headers.insert(http::header::HOST, HeaderValue::from_static("app.example"));
        for (name, value) in fields {
            let name = HeaderName::from_bytes(name.as_bytes());
            let value = HeaderValue::from_str(value);
            if let (Ok(name), Ok(value)) = (name, value) {
                headers.append(name, value);
            }
        }
        request
    }

    fn trusting(networks: &str) -> ClientFields {
        ClientFields {
            trusted_proxies: networks.parse().unwrap_or_default(),
            ..ClientFields::default()
        }
    }

    fn field<'a>(request: &'a Request<()>, name: &str) -> Vec<&'a str> {
        let values = request.headers().get_all(name).iter();
        values.map(|value| value.to_str().unwrap_or("?")).collect()
    }

    #[test]
    fn an_untrusted_peers_fields_are_replaced() {
        let mut request = head(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "for=6.6.6.6"),
            ("x-request-id", "chosen-by-the-client"),
        ]);
        let settled = ClientFields::default().settle(peer("198.51.100.4"), &mut request);
        assert_eq!(settled.client.to_string(), "198.51.100.4");
        assert_eq!(field(&request, "x-forwarded-for"), ["198.51.100.4"]);
        assert_eq!(field(&request, "x-forwarded-proto"), ["http"]);
        assert!(field(&request, "x-forwarded-host").is_empty());
        assert!(field(&request, "forwarded").is_empty());
        let id = field(&request, "x-request-id");
        assert_eq!(id.len(), 1);
        assert_ne!(id[0], "chosen-by-the-client");
        assert_eq!(settled.request_id, id[0]);
    }

    #[test]
    fn a_trusted_peers_fields_are_extended_and_walked() {
        let fields = trusting("10.0.0.0/8, 127.0.0.1");
        let mut request = head(&[
            ("x-forwarded-for", "203.0.113.9, 10.1.1.1"),
            ("x-forwarded-for", "10.2.2.2"),
            ("x-forwarded-proto", "https"),
            ("x-request-id", "edge-42"),
        ]);
        let settled = fields.settle(peer("127.0.0.1"), &mut request);
        assert_eq!(settled.client.to_string(), "203.0.113.9");
        assert_eq!(
            field(&request, "x-forwarded-for"),
            ["203.0.113.9, 10.1.1.1, 10.2.2.2, 127.0.0.1"]
        );
        assert_eq!(field(&request, "x-forwarded-proto"), ["https"]);
        assert_eq!(field(&request, "x-request-id"), ["edge-42"]);
    }

    #[test]
    fn the_walk_stops_at_the_first_untrusted_or_unreadable_node() {
        let fields = trusting("10.0.0.0/8");
        let settle = |xff: &str| {
            let mut request = head(&[("x-forwarded-for", xff)]);
            fields
                .settle(peer("10.9.9.9"), &mut request)
                .client
                .to_string()
        };
        // A spoofed left part is skipped over: the first untrusted from the
        // right is the client.
        assert_eq!(settle("1.1.1.1, 192.0.2.5, 10.0.0.2"), "192.0.2.5");
        // All trusted: the leftmost.
        assert_eq!(settle("10.0.0.3, 10.0.0.2"), "10.0.0.3");
        // Junk: the last trusted hop before it.
        assert_eq!(settle("192.0.2.5, junk, 10.0.0.2"), "10.0.0.2");
        assert_eq!(settle("[2001:db8::5]:443"), "2001:db8::5");
        assert_eq!(settle("2001:db8::6"), "2001:db8::6");
    }

    #[test]
    fn forwarded_mode_writes_rfc_7239_elements() {
        let fields = ClientFields {
            write: ForwardedFields::Forwarded,
            ..trusting("::1")
        };
        let mut request = head(&[("forwarded", "for=_hidden;proto=https, for=unknown")]);
        let settled = fields.settle(peer("::1"), &mut request);
        // The walk stops at `unknown`: the client is the trusted peer.
        assert_eq!(settled.client.to_string(), "::1");
        assert_eq!(
            field(&request, "forwarded"),
            ["for=_hidden;proto=https, for=unknown, for=\"[::1]\";host=app.example;proto=http"]
        );
        assert!(field(&request, "x-forwarded-for").is_empty());

        let mut request = request_with_host("app.example:8443");
        let both = ClientFields {
            write: ForwardedFields::Both,
            ..ClientFields::default()
        };
        both.settle(peer("192.0.2.1"), &mut request);
        assert_eq!(
            field(&request, "forwarded"),
            ["for=192.0.2.1;host=\"app.example:8443\";proto=http"]
        );
        assert_eq!(field(&request, "x-forwarded-for"), ["192.0.2.1"]);
    }

    fn request_with_host(host: &str) -> Request<()> {
        let mut request = head(&[]);
        if let Ok(host) = HeaderValue::from_str(host) {
            request.headers_mut().insert(http::header::HOST, host);
        }
        request
    }

    #[test]
    fn forwarded_for_nodes_are_walked_without_x_forwarded_for() {
        let fields = trusting("10.0.0.0/8");
        let mut request = head(&[(
            "forwarded",
            "for=\"[2001:db8::9]:1234\";proto=https, for=10.0.0.7",
        )]);
        let settled = fields.settle(peer("10.0.0.1"), &mut request);
        assert_eq!(settled.client.to_string(), "2001:db8::9");
    }

    #[test]
    fn https_is_written_for_a_tls_client() {
        let mut request = head(&[]);
        request.extensions_mut().insert(http::uri::Scheme::HTTPS);
        ClientFields::default().settle(peer("192.0.2.1"), &mut request);
        assert_eq!(field(&request, "x-forwarded-proto"), ["https"]);
    }

    #[test]
    fn trace_context_is_kept_dropped_or_started() {
        let kept = &[
            ("traceparent", TRACEPARENT_EXAMPLE),
            ("tracestate", "congo=t61rcWkgMzE"),
        ];
        let mut request = head(kept);
        let settled = ClientFields::default().settle(peer("192.0.2.1"), &mut request);
        assert_eq!(
            settled.trace_id.map(|id| id.to_string()).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(field(&request, "traceparent"), [TRACEPARENT_EXAMPLE]);
        assert_eq!(field(&request, "tracestate"), ["congo=t61rcWkgMzE"]);

        let invalid = &[("traceparent", "00-zz"), ("tracestate", "congo=1")];
        let mut request = head(invalid);
        let settled = ClientFields::default().settle(peer("192.0.2.1"), &mut request);
        assert_eq!(settled.trace_id, None);
        assert!(field(&request, "traceparent").is_empty());
        assert!(field(&request, "tracestate").is_empty());

        let starting = ClientFields {
            start_trace: true,
            ..ClientFields::default()
        };
        let mut request = head(invalid);
        let settled = starting.settle(peer("192.0.2.1"), &mut request);
        let sent = field(&request, "traceparent");
        assert_eq!(sent.len(), 1);
        let parsed = TraceParent::parse(sent[0].as_bytes());
        assert_eq!(parsed.map(|parent| parent.trace_id), settled.trace_id);
        assert!(settled.trace_id.is_some());
        assert!(field(&request, "tracestate").is_empty());
    }

    #[test]
    fn an_insane_or_doubled_trusted_request_id_is_replaced() {
        let fields = trusting("192.0.2.0/24");
        for ids in [&["has space"][..], &["a", "b"][..]] {
            let incoming: Vec<(&str, &str)> = ids.iter().map(|id| ("x-request-id", *id)).collect();
            let mut request = head(&incoming);
            let settled = fields.settle(peer("192.0.2.1"), &mut request);
            assert_eq!(settled.request_id.len(), 36, "{ids:?}");
            assert_eq!(field(&request, "x-request-id").len(), 1);
        }
    }
}
