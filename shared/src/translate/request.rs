//! Request heads across the hop: [`h1_to_h2`] at the front, [`h2_to_h1`] at
//! the sidecar.
//!
//! The front calls [`h1_to_h2`] with a classified HTTP/1.1 request and sends
//! the result on an upstream HTTP/2 connection; the sidecar calls
//! [`h2_to_h1`] on each accepted stream and sends the result to the app.

use http::header::{
    CONNECTION, CONTENT_LENGTH, HOST, HeaderName, HeaderValue, SEC_WEBSOCKET_ACCEPT,
    SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, TE, UPGRADE,
};
use http::request::Parts;
use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http::{HeaderMap, Method, Request, Version};

use super::TranslateError;
use super::hop_by_hop::{self, HopByHop};
use crate::request_identity::{CLIENT_FIELD, ClientAddress, address_value};
use crate::{upgrade, websocket};

/// Fields of the RFC 6455 handshake that stay on their own HTTP/1.1 leg
/// (RFC 8441 §5 (N11)): each leg computes its own key and accept.
const HANDSHAKE_ONLY: [HeaderName; 2] = [SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_ACCEPT];

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

/// How the sidecar asks the app for a tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppUpgrade<'a> {
    /// The `Upgrade` token, from `:protocol`.
    pub protocol: &'a str,
    /// The method the app sees: the front's carried one, or `GET`.
    pub method: Method,
    /// Length of the body sent with the request.
    pub body_length: u64,
    /// For WebSocket, the sidecar's own fresh `Sec-WebSocket-Key`.
    pub key: Option<&'a str>,
}

/// Builds the HTTP/1.1 request head the app receives for an HTTP/2 stream:
/// an ordinary request for `None`, an Upgrade for `Some`.
///
/// `Host` comes from `:authority` (RFC 9113 §8.3.1 (N24)), or from the
/// stream's one `host` field when there is no `:authority`, and the target is in
/// origin form; `h2hop-…` fields never reach the app. An upgrade carries
/// `Upgrade: TOKEN` and `Connection: Upgrade` (RFC 9110 §7.8 (N31)), its
/// method and a `Content-Length` for its body; a WebSocket also the given
/// fresh key (RFC 6455 §4.1 (N38-N40)) and version 13, and any key or
/// accept from the peer is dropped (RFC 8441 §5 (N11)).
pub fn h2_to_h1(
    parts: &Parts,
    upgrade: Option<&AppUpgrade<'_>>,
) -> Result<Request<()>, TranslateError> {
    let mut headers = HeaderMap::with_capacity(parts.headers.len() + 5);
    headers.insert(HOST, app_host(parts)?);
    let method = match upgrade {
        Some(upgrade) => upgrade_fields(upgrade, &mut headers)?,
        None => parts.method.clone(),
    };
    let client = copy_stream_fields(parts, upgrade, &mut headers)?;
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = origin_target(parts);
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = headers;
    // The front's settled client, which the app never sees as a field:
    // kept beside the request for a PROXY header toward the app.
    if let Some(client) = client.and_then(|value| value.to_str().ok()?.parse().ok()) {
        request.extensions_mut().insert(ClientAddress(client));
    }
    Ok(request)
}

/// The app's `Host`: the stream's `:authority`, or its one valid `host`
/// field when it has none; never with userinfo.
fn app_host(parts: &Parts) -> Result<HeaderValue, TranslateError> {
    // RFC 9113 §8.3.1: an intermediary converting an HTTP/1.1 request may
    // keep `Host` instead of sending `:authority` (nghttpx and HAProxy do).
    // Host is looked up only without `:authority`, the rare case.
    let (host, what) = match parts.uri.authority() {
        Some(authority) => (
            HeaderValue::from_str(authority.as_str())
                .map_err(|_| TranslateError::Invalid { what: ":authority" })?,
            ":authority",
        ),
        None => match parts.headers.get(HOST) {
            // The front checks a client's Host the same way (`client_authority`).
            Some(host)
                if parts.headers.get_all(HOST).iter().count() == 1
                    && Authority::try_from(host.as_bytes()).is_ok() =>
            {
                (host.clone(), "host")
            }
            Some(_) => return Err(TranslateError::Invalid { what: "host" }),
            None => return Err(TranslateError::MissingH2Authority),
        },
    };
    // RFC 9113 §8.3.1: no userinfo in an http(s) `:authority`, and none fits
    // in Host (RFC 9110 §7.2); the front refuses it too.
    if host.as_bytes().contains(&b'@') {
        return Err(TranslateError::Invalid { what });
    }
    Ok(host)
}

/// The target in origin form: the stream's path and query, `/` when empty.
fn origin_target(parts: &Parts) -> Uri {
    let target: Uri = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"))
        .into();
    // An empty path (a `:path` that was only a `#fragment`, or none on a
    // stream without `:authority`, both of which h2 lets through) would be
    // written as nothing, `GET  HTTP/1.1`; an empty path is sent as "/"
    // (RFC 9112 §3.2.1).
    if target.path().is_empty() {
        Uri::from_static("/")
    } else {
        target
    }
}

/// The upgrade's own handshake fields into `headers`; returns the method
/// the app sees.
fn upgrade_fields(
    upgrade: &AppUpgrade<'_>,
    headers: &mut HeaderMap,
) -> Result<Method, TranslateError> {
    let token = HeaderValue::from_str(upgrade.protocol)
        .ok()
        .filter(|_| upgrade::is_token(upgrade.protocol))
        .ok_or(TranslateError::Invalid { what: ":protocol" })?;
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(UPGRADE, token);
    if let Some(key) = upgrade.key {
        let key =
            HeaderValue::from_str(key).map_err(|_| TranslateError::Invalid { what: "key" })?;
        headers.insert(SEC_WEBSOCKET_KEY, key);
        headers.insert(
            SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static(websocket::VERSION),
        );
    }
    if upgrade.body_length > 0 || !matches!(upgrade.method, Method::GET | Method::HEAD) {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(upgrade.body_length));
    }
    Ok(upgrade.method.clone())
}

/// The stream's own fields into `headers`, but hop-by-hop ones (which h2
/// refuses on a stream anyway), `h2hop-…` ones, Host, and for an upgrade
/// whatever [`upgrade_fields`] set from this leg's own handshake. Returns
/// the first [`CLIENT_FIELD`], found on the way: a lookup of its own cost
/// about 140 instructions per request (callgrind).
fn copy_stream_fields<'a>(
    parts: &'a Parts,
    upgrade: Option<&AppUpgrade<'_>>,
    headers: &mut HeaderMap,
) -> Result<Option<&'a HeaderValue>, TranslateError> {
    let hop = HopByHop::of(&parts.headers);
    let own_handshake = |name: &HeaderName| {
        HANDSHAKE_ONLY.contains(name)
            || name == CONTENT_LENGTH
            || (name == SEC_WEBSOCKET_VERSION && upgrade.is_some_and(|up| up.key.is_some()))
    };
    let mut client = None;
    for (name, value) in &parts.headers {
        if upgrade::is_reserved(name) {
            if name == CLIENT_FIELD {
                client.get_or_insert(value);
            }
            continue;
        }
        if hop.contains(name) || name == HOST || (upgrade.is_some() && own_handshake(name)) {
            continue;
        }
        // RFC 9113 §8.2.1 (N22): a value with leading or trailing SP or HTAB
        // makes the request malformed; the h2 crate leaves this check to us,
        // and a malformed request is never forwarded (§8.1.1).
        if has_surrounding_whitespace(value.as_bytes()) {
            return Err(TranslateError::Invalid {
                what: "field value",
            });
        }
        headers.append(name.clone(), value.clone());
    }
    Ok(client)
}

/// Whether a field value starts or ends with SP or HTAB.
fn has_surrounding_whitespace(value: &[u8]) -> bool {
    let blank = |byte: &u8| matches!(byte, b' ' | b'\t');
    value.first().is_some_and(blank) || value.last().is_some_and(blank)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9113 §8.2.1 (N22): a value with surrounding whitespace is refused.
    #[test]
    fn h2_to_h1_refuses_values_with_surrounding_whitespace() {
        for value in [" a", "a\t", "\ta b "] {
            let request = Request::builder()
                .uri("http://example.com/x")
                .header("x-test", value)
                .body(())
                .unwrap();
            let (parts, ()) = request.into_parts();
            assert!(
                matches!(
                    h2_to_h1(&parts, None),
                    Err(TranslateError::Invalid {
                        what: "field value"
                    })
                ),
                "{value:?}"
            );
        }
        let request = Request::builder()
            .uri("http://example.com/x")
            .header("x-test", "a b")
            .body(())
            .unwrap();
        assert!(h2_to_h1(&request.into_parts().0, None).is_ok());
    }

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

    fn h2(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
        h1(method, uri, headers)
    }

    /// RFC 8441 §5 (N11), RFC 6455 §4.1 (N38-N40): the sidecar's own handshake.
    #[test]
    fn extended_connect_becomes_get_upgrade_with_fresh_key() {
        let parts = h2(
            "CONNECT",
            "https://app.example/chat?room=1",
            &[
                ("sec-websocket-version", "13"),
                ("sec-websocket-key", "from-the-peer"),
                ("sec-websocket-protocol", "chat"),
                ("cookie", "a=b"),
            ],
        );
        let key = websocket::fresh_key();
        let upgrade = AppUpgrade {
            protocol: "websocket",
            method: Method::GET,
            body_length: 0,
            key: Some(&key),
        };
        let request = h2_to_h1(&parts, Some(&upgrade)).unwrap();
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.uri(), "/chat?room=1");
        assert_eq!(request.version(), Version::HTTP_11);
        let headers = request.headers();
        assert_eq!(headers["host"], "app.example");
        assert_eq!(headers["connection"], "Upgrade");
        assert_eq!(headers["upgrade"], "websocket");
        assert_eq!(headers["sec-websocket-key"], key.as_str());
        assert_eq!(headers.get_all("sec-websocket-key").iter().count(), 1);
        assert_eq!(headers["sec-websocket-version"], "13");
        assert_eq!(headers["sec-websocket-protocol"], "chat");
        assert_eq!(headers["cookie"], "a=b");
        assert!(!headers.contains_key("content-length"));
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

    /// The sidecar's side: the app sees the method, a Content-Length for
    /// the body, the token as Upgrade, and no h2hop field.
    #[test]
    fn carried_upgrade_reaches_the_app_with_method_and_length() {
        let parts = h2(
            "CONNECT",
            "https://app.example/x",
            &[
                (upgrade::METHOD_FIELD, "POST"),
                (upgrade::BODY_LENGTH_FIELD, "5"),
                ("content-type", "text/plain"),
            ],
        );
        let upgrade = AppUpgrade {
            protocol: "my-proto",
            method: Method::POST,
            body_length: 5,
            key: None,
        };
        let request = h2_to_h1(&parts, Some(&upgrade)).unwrap();
        let headers = request.headers();
        assert_eq!(request.method(), Method::POST);
        assert_eq!(headers["upgrade"], "my-proto");
        assert_eq!(headers["connection"], "Upgrade");
        assert_eq!(headers["content-length"], "5");
        assert_eq!(headers["content-type"], "text/plain");
        for gone in [
            upgrade::METHOD_FIELD,
            upgrade::BODY_LENGTH_FIELD,
            "sec-websocket-key",
            "sec-websocket-version",
        ] {
            assert!(!headers.contains_key(gone), "{gone}");
        }
        let bad = AppUpgrade {
            protocol: "bad\r\nx",
            ..upgrade
        };
        assert!(h2_to_h1(&parts, Some(&bad)).is_err());
    }

    /// RFC 9113 §8.3.1 (N24): `:authority` becomes the one Host.
    #[test]
    fn forward_to_app_takes_host_from_authority() {
        let parts = h2(
            "PUT",
            "http://svc.local:81/p",
            &[("host", "other"), ("te", "trailers")],
        );
        let request = h2_to_h1(&parts, None).unwrap();
        assert_eq!(request.method(), Method::PUT);
        assert_eq!(request.headers().get_all("host").iter().count(), 1);
        assert_eq!(request.headers()["host"], "svc.local:81");
        assert!(!request.headers().contains_key("te"));
    }

    #[test]
    fn stream_without_authority_or_host_is_refused() {
        let parts = h2("GET", "/p", &[]);
        let err = h2_to_h1(&parts, None).unwrap_err();
        assert_eq!(err, TranslateError::MissingH2Authority);
        let two = h2("GET", "/p", &[("host", "a"), ("host", "b")]);
        assert!(h2_to_h1(&two, None).is_err());
    }

    /// RFC 9113 §8.3.1: userinfo in `:authority` (or the `host` standing
    /// in for it) never becomes the app's Host (found by the `h2_to_h1` fuzz
    /// target).
    #[test]
    fn userinfo_never_reaches_the_app() {
        let parts = h2("GET", "http://user@example.com/p", &[]);
        let err = h2_to_h1(&parts, None).unwrap_err();
        assert_eq!(err, TranslateError::Invalid { what: ":authority" });
        let parts = h2("GET", "/p", &[("host", "user:pw@example.com")]);
        let err = h2_to_h1(&parts, None).unwrap_err();
        assert_eq!(err, TranslateError::Invalid { what: "host" });
    }

    /// A `host` standing in for `:authority` must be one: surrounding
    /// blanks (RFC 9113 §8.2.1) or a path are refused (found by the
    /// `h2_to_h1` fuzz target).
    #[test]
    fn host_standing_in_must_be_an_authority() {
        for host in [" svc.local", "svc.local/x", "a b"] {
            let parts = h2("GET", "/p", &[("host", host)]);
            let err = h2_to_h1(&parts, None).unwrap_err();
            assert_eq!(err, TranslateError::Invalid { what: "host" }, "{host:?}");
        }
    }

    /// A stream whose path is empty, without `:path` or `:authority` or
    /// with a `:path` that is only a fragment (h2 takes both), reaches the
    /// app as `/`, never with an empty request target (found by the
    /// `h2_to_h1` fuzz target).
    #[test]
    fn empty_path_targets_the_root() {
        let mut request = Request::new(());
        *request.uri_mut() = Uri::from_parts(http::uri::Parts::default()).unwrap();
        request
            .headers_mut()
            .insert(HOST, HeaderValue::from_static("svc.local"));
        let (parts, ()) = request.into_parts();
        assert_eq!(parts.uri.to_string(), "");
        let request = h2_to_h1(&parts, None).unwrap();
        assert_eq!(request.uri().to_string(), "/");

        let parts = h2("CONNECT", "https://app.example#chat", &[]);
        let upgrade = AppUpgrade {
            protocol: "my-proto",
            method: Method::GET,
            body_length: 0,
            key: None,
        };
        let request = h2_to_h1(&parts, Some(&upgrade)).unwrap();
        assert_eq!(request.uri().to_string(), "/");
    }

    /// RFC 9113 §8.3.1: a converting intermediary may send `host` instead
    /// of `:authority`, as nghttpx and HAProxy do for plain requests.
    #[test]
    fn host_field_stands_in_for_a_missing_authority() {
        let parts = h2("POST", "/p?q", &[("host", "svc.local:81")]);
        let request = h2_to_h1(&parts, None).unwrap();
        assert_eq!(request.headers().get_all("host").iter().count(), 1);
        assert_eq!(request.headers()["host"], "svc.local:81");
        assert_eq!(request.uri(), "/p?q");
    }
}
