//! Request heads across the hop: [`h1_to_h2`] and [`forward_h1_to_h2`] at
//! the front, [`h2_to_h1`] at the sidecar (written in
//! [`super::app_request`], and named here too).
//!
//! The front calls [`h1_to_h2`] (a tunnel) or [`forward_h1_to_h2`] (a plain
//! request) with a classified HTTP/1.1 request and sends the result on an
//! upstream HTTP/2 connection; the sidecar calls [`h2_to_h1`] on each
//! accepted stream and sends the result to the app.

use http::header::{CONTENT_LENGTH, HOST, HeaderName, HeaderValue, TE};
use http::request::Parts;
use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http::{HeaderMap, Method, Request, Version};

pub use super::app_request::{AppUpgrade, h2_to_h1};
use super::hop_by_hop::{self, HopByHop};
use super::{HANDSHAKE_ONLY, TranslateError};
use crate::request_identity::{CLIENT_FIELD, ClientAddress, address_value};
use crate::upgrade;

/// What an HTTP/2 stream carries: an RFC 8441 tunnel for an Upgrade
/// protocol, or an ordinary request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind<'a> {
    /// Extended CONNECT with this `:protocol` token (RFC 8441 §4).
    Tunnel(&'a str),
    /// An ordinary request, method kept.
    Forward,
}

/// Builds the HTTP/2 request head for a client's HTTP/1.1 request.
///
/// A tunnel becomes `CONNECT` with `:protocol` (RFC 8441 §4, §5 (N6, N9)); a
/// forward keeps its method. `:authority` comes from an absolute-form target
/// or else `Host` (RFC 9112 §3.2.2), `:path` keeps the query, and `:scheme`
/// is the client's. Hop-by-hop fields, `Host` and the WebSocket key are
/// removed (RFC 9113 §8.2.2 (N10, N17, N19)); `TE: trailers` is kept on a
/// forward because HTTP/2 allows exactly that (N18). Fields named `h2hop-…`
/// are the front's own and never come from a client.
///
/// A tunnel whose method is not `GET`, or that has a body, carries them in
/// [`upgrade::METHOD_FIELD`] and [`upgrade::BODY_LENGTH_FIELD`]; the caller
/// sends the body as the stream's first DATA.
pub fn h1_to_h2(
    parts: &Parts,
    scheme: Scheme,
    kind: Kind<'_>,
) -> Result<Request<()>, TranslateError> {
    let uri = h2_target(parts, scheme)?;
    let trailers = hop_by_hop::wants_trailers(&parts.headers);
    let tunnel = matches!(kind, Kind::Tunnel(_));
    let hop = HopByHop::of(&parts.headers);
    let mut headers = HeaderMap::with_capacity(parts.headers.len() + 3);
    for (name, value) in &parts.headers {
        // CONNECT carries no content (RFC 9110 §9.3.6 (N37)): a tunnel's
        // `Content-Length` is replaced below.
        let left_out = hop.contains(name)
            || upgrade::is_reserved(name)
            || name == HOST
            || (tunnel && (HANDSHAKE_ONLY.contains(name) || name == CONTENT_LENGTH));
        if !left_out {
            headers.append(name.clone(), value.clone());
        }
    }
    let method = match kind {
        Kind::Tunnel(_) => {
            // The upgrade's own body length travels in a field of ours. It
            // is the client's, whatever `Connection` names: hyper framed the
            // body by it.
            if let Some(length) = parts.headers.get(CONTENT_LENGTH)
                && length != "0"
            {
                headers.insert(upgrade::BODY_LENGTH_FIELD, length.clone());
            }
            // A client's own extended CONNECT (HTTP/2) is a GET upgrade.
            if parts.method != Method::GET && parts.method != Method::CONNECT {
                let method = HeaderValue::from_str(parts.method.as_str())
                    .map_err(|_| TranslateError::Invalid { what: "method" })?;
                headers.insert(upgrade::METHOD_FIELD, method);
            }
            Method::CONNECT
        }
        Kind::Forward => {
            if trailers {
                headers.insert(TE, HeaderValue::from_static("trailers"));
            }
            parts.method.clone()
        }
    };

    // The client the front settled on, for the sidecar's PROXY header
    // (after the loop above dropped any client's own `h2hop-…` field).
    if let Some(ClientAddress(client)) = parts.extensions.get() {
        headers.insert(CLIENT_FIELD, address_value(*client));
    }
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_2;
    *request.headers_mut() = headers;
    if let Kind::Tunnel(protocol) = kind {
        request
            .extensions_mut()
            .insert(h2::ext::Protocol::from(protocol));
    }
    Ok(request)
}

/// [`h1_to_h2`] for a [`Kind::Forward`], taking the head: the client's field
/// map moves over and only what must not cross is taken out of it, instead
/// of every field being copied into a new map (callgrind, front plain GET:
/// 3.2k → 1.7k instructions inclusive). Removing `Host` moves the map's last field into its place; the
/// order of differently named fields carries no meaning (RFC 9110 §5.3),
/// and that of same-named ones is kept.
pub fn forward_h1_to_h2(mut parts: Parts, scheme: Scheme) -> Result<Request<()>, TranslateError> {
    let uri = h2_target(&parts, scheme)?;
    let mut headers = std::mem::take(&mut parts.headers);
    // One pass over the names; a client's hop-by-hop or `h2hop-…` field is
    // rare, so `TE` and `Connection` are only read, and the names to take
    // out gathered, when there is one.
    let mut trailers = false;
    if headers
        .keys()
        .any(|name| hop_by_hop::is_always_hop_by_hop(name) || upgrade::is_reserved(name))
    {
        trailers = hop_by_hop::wants_trailers(&headers);
        let hop = HopByHop::of(&headers);
        let left_out: Vec<HeaderName> = headers
            .keys()
            .filter(|name| hop.contains(name) || upgrade::is_reserved(name))
            .cloned()
            .collect();
        for name in &left_out {
            headers.remove(name);
        }
    }
    headers.remove(HOST);
    if trailers {
        headers.insert(TE, HeaderValue::from_static("trailers"));
    }
    if let Some(ClientAddress(client)) = parts.extensions.get() {
        headers.insert(CLIENT_FIELD, address_value(*client));
    }
    let mut request = Request::new(());
    *request.method_mut() = parts.method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_2;
    *request.headers_mut() = headers;
    Ok(request)
}

/// The HTTP/2 target of a client's request: its scheme, the client's
/// authority, and the path with its query.
fn h2_target(parts: &Parts, scheme: Scheme) -> Result<Uri, TranslateError> {
    let authority = client_authority(parts)?;
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    // RFC 9112 §3.2.4: the asterisk form is for OPTIONS only.
    if path.as_str() == "*" && parts.method != Method::OPTIONS {
        return Err(TranslateError::Invalid { what: "target" });
    }
    Uri::builder()
        .scheme(scheme)
        .authority(authority)
        .path_and_query(path)
        .build()
        .map_err(|_| TranslateError::Invalid { what: "target" })
}

/// The request's authority: the absolute-form target's, else the `Host`
/// field's (RFC 9112 §3.2.2).
fn client_authority(parts: &Parts) -> Result<Authority, TranslateError> {
    let authority = match parts.uri.authority() {
        // RFC 9112 §3.2.3: the authority form is for CONNECT only.
        Some(_) if parts.uri.scheme().is_none() && parts.method != Method::CONNECT => {
            return Err(TranslateError::Invalid { what: "target" });
        }
        Some(authority) => authority.clone(),
        None => {
            let host = parts
                .headers
                .get(HOST)
                .ok_or(TranslateError::MissingAuthority)?;
            Authority::try_from(host.as_bytes())
                .map_err(|_| TranslateError::Invalid { what: "host" })?
        }
    };
    // RFC 9110 §4.2.4 and §7.2: no userinfo in an http(s) authority or in
    // Host; RFC 9112 §3.2 answers an invalid Host with 400.
    if authority.as_str().contains('@') {
        return Err(TranslateError::Invalid { what: "host" });
    }
    Ok(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h1(method: &str, target: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = Request::builder().method(method).uri(target);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn protocol(request: &Request<()>) -> Option<&str> {
        request
            .extensions()
            .get::<h2::ext::Protocol>()
            .map(h2::ext::Protocol::as_str)
    }

    const HANDSHAKE: [(&str, &str); 7] = [
        ("host", "example.com:8080"),
        ("connection", "keep-alive, Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
        ("sec-websocket-protocol", "chat, superchat"),
        ("origin", "http://example.com"),
    ];

    /// RFC 8441 §4, §5 (N6, N9, N10, N11): the handshake becomes extended CONNECT.
    #[test]
    fn websocket_upgrade_becomes_extended_connect() {
        let parts = h1("GET", "/chat?room=1", &HANDSHAKE);
        let request = h1_to_h2(&parts, Scheme::HTTP, Kind::Tunnel("websocket")).unwrap();
        assert_eq!(request.method(), Method::CONNECT);
        assert_eq!(protocol(&request), Some("websocket"));
        assert_eq!(request.uri(), "http://example.com:8080/chat?room=1");
        let headers = request.headers();
        for gone in ["connection", "upgrade", "host", "sec-websocket-key"] {
            assert!(!headers.contains_key(gone), "{gone} must not cross the hop");
        }
        assert_eq!(headers["sec-websocket-version"], "13");
        assert_eq!(headers["sec-websocket-protocol"], "chat, superchat");
        assert_eq!(headers["origin"], "http://example.com");
    }

    /// RFC 9112 §3.2.2: an absolute-form target's authority wins over Host.
    #[test]
    fn absolute_form_target_gives_the_authority() {
        let parts = h1("GET", "http://a.example/x", &[("host", "b.example")]);
        let request = h1_to_h2(&parts, Scheme::HTTP, Kind::Forward).unwrap();
        assert_eq!(request.uri(), "http://a.example/x");
    }

    #[test]
    fn forward_keeps_method_and_trailers_request() {
        let parts = h1(
            "POST",
            "/submit",
            &[
                ("host", "h"),
                ("te", "trailers, deflate"),
                ("content-length", "3"),
            ],
        );
        let request = h1_to_h2(&parts, Scheme::HTTP, Kind::Forward).unwrap();
        assert_eq!(request.method(), Method::POST);
        assert_eq!(protocol(&request), None);
        // RFC 9113 §8.2.2 (N18): only "trailers" survives in TE.
        assert_eq!(request.headers()["te"], "trailers");
        assert_eq!(request.headers()["content-length"], "3");
    }

    /// The by-value forward gives what [`h1_to_h2`] gives, hop-by-hop,
    /// reserved and `Host` fields taken out, `TE: trailers` and the
    /// client's address put in.
    #[test]
    fn forward_by_value_matches_the_copying_translation() {
        let cases: [&[(&str, &str)]; 4] = [
            &[("host", "h"), ("accept", "*/*")],
            &[
                ("host", "h"),
                ("connection", "keep-alive, x-foo"),
                ("x-foo", "1"),
                ("keep-alive", "5"),
                ("te", "trailers"),
                ("x-bar", "a"),
                ("x-bar", "b"),
            ],
            &[
                ("h2hop-method", "POST"),
                ("host", "h"),
                ("content-length", "3"),
            ],
            &[
                ("transfer-encoding", "chunked"),
                ("host", "h"),
                ("upgrade", "x"),
            ],
        ];
        for fields in cases {
            let mut parts = h1("POST", "/p?q", fields);
            parts
                .extensions
                .insert(ClientAddress("192.0.2.7".parse().unwrap()));
            let copied = h1_to_h2(&parts, Scheme::HTTPS, Kind::Forward).unwrap();
            let moved = forward_h1_to_h2(parts, Scheme::HTTPS).unwrap();
            assert_eq!(moved.method(), copied.method(), "{fields:?}");
            assert_eq!(moved.uri(), copied.uri(), "{fields:?}");
            assert_eq!(moved.version(), Version::HTTP_2);
            assert_eq!(moved.headers(), copied.headers(), "{fields:?}");
            let bar: Vec<_> = moved.headers().get_all("x-bar").iter().collect();
            assert_eq!(
                bar,
                copied.headers().get_all("x-bar").iter().collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn missing_host_is_refused() {
        let parts = h1("GET", "/", &[]);
        let err = h1_to_h2(&parts, Scheme::HTTP, Kind::Forward).unwrap_err();
        assert_eq!(err, TranslateError::MissingAuthority);
    }

    /// A non-GET upgrade with a body: the method and length travel in
    /// h2hop's fields, any client-sent h2hop field is dropped.
    #[test]
    fn post_upgrade_carries_method_and_body_length() {
        let parts = h1(
            "POST",
            "/x",
            &[
                ("host", "h"),
                ("connection", "Upgrade"),
                ("upgrade", "my-proto"),
                ("content-length", "5"),
                ("content-type", "text/plain"),
                ("h2hop-upgrade-method", "DELETE"),
                ("h2hop-other", "forged"),
            ],
        );
        let request = h1_to_h2(&parts, Scheme::HTTP, Kind::Tunnel("my-proto")).unwrap();
        let headers = request.headers();
        assert_eq!(request.method(), Method::CONNECT);
        assert_eq!(protocol(&request), Some("my-proto"));
        assert_eq!(headers[upgrade::METHOD_FIELD], "POST");
        assert_eq!(headers[upgrade::BODY_LENGTH_FIELD], "5");
        assert_eq!(headers.get_all(upgrade::METHOD_FIELD).iter().count(), 1);
        assert!(!headers.contains_key("h2hop-other"));
        assert!(!headers.contains_key("content-length"));
        assert_eq!(headers["content-type"], "text/plain");

        let get = h1("GET", "/x", &[("host", "h"), ("content-length", "0")]);
        let request = h1_to_h2(&get, Scheme::HTTP, Kind::Tunnel("my-proto")).unwrap();
        assert!(!request.headers().contains_key(upgrade::METHOD_FIELD));
        assert!(!request.headers().contains_key(upgrade::BODY_LENGTH_FIELD));
    }

    /// A body length that `Connection` names still crosses: the front sends
    /// the body, so the sidecar must know where it ends (found by the
    /// `h1_to_h2` fuzz target).
    #[test]
    fn upgrade_body_length_crosses_even_when_connection_names_it() {
        let parts = h1(
            "POST",
            "/x",
            &[
                ("host", "h"),
                ("connection", "Upgrade, Content-Length"),
                ("upgrade", "my-proto"),
                ("content-length", "5"),
            ],
        );
        let request = h1_to_h2(&parts, Scheme::HTTP, Kind::Tunnel("my-proto")).unwrap();
        assert_eq!(request.headers()[upgrade::BODY_LENGTH_FIELD], "5");
        assert!(!request.headers().contains_key("content-length"));
    }
}
