//! Classify stage: is this client request (an HTTP/1.1 TunnelRequest, or an
//! HTTP/2 extended CONNECT, RFC 8441 §4) a tunnel h2hop opens, a plain
//! request, or something to refuse before anything goes upstream?
//!
//! Input: the request head from the listener, the Upgrade allow-list and
//! the body limit. Output: a [`Class`] that picks [`crate::tunnel`] or
//! [`crate::forward`], or a [`Rejection`] answered here.

use h2hop::translate::hop_by_hop;
use h2hop::upgrade::{Protocols, WEBSOCKET};
use h2hop::websocket;
use http::header::{CONNECTION, CONTENT_LENGTH, HOST, HeaderValue, TRANSFER_ENCODING, UPGRADE};
use http::uri::{Authority, Scheme};
use http::{Method, Request, StatusCode, Version};

/// What the front does with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Class {
    /// An upgrade to an allowed protocol: tunnel it.
    Tunnel(TunnelRequest),
    /// Anything else: forwarded as an ordinary request (an `Upgrade` to a
    /// protocol h2hop does not tunnel is dropped as hop-by-hop, which
    /// RFC 9110 §7.8 allows: the server "can ignore" it).
    Plain,
    /// Refused at the front.
    Reject(Rejection),
}

/// An upgrade the front tunnels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelRequest {
    /// The allowed token, lower case: sent as `:protocol`, and named by the
    /// client's 101.
    pub protocol: String,
    /// A WebSocket's `Sec-WebSocket-Key`, for the 101's accept (HTTP/1.1
    /// only: over HTTP/2 there is none, RFC 8441 §5).
    pub key: Option<HeaderValue>,
    /// The client sent an RFC 8441 extended CONNECT over HTTP/2: it gets
    /// `200`, not `101`, and its stream is the tunnel.
    pub over_h2: bool,
    /// The request body's `Content-Length`; 0 without a body.
    pub body_length: u64,
}

/// A request the front answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Malformed: missing or repeated Host (RFC 9112 §3.2 (N51)), a
    /// WebSocket handshake that breaks RFC 6455 §4.1 (N47), or an upgrade
    /// h2hop cannot carry; the reason says which.
    BadRequest(&'static str),
    /// A WebSocket version other than 13 (RFC 6455 §4.4 (N41)).
    UnsupportedVersion,
    /// An upgrade body over the configured limit.
    TooLarge,
    /// An HTTP/2 extended CONNECT for a protocol not tunnelled
    /// (RFC 9220 §3 (N16)).
    UnsupportedProtocol,
}

impl Rejection {
    /// The status of the answer.
    pub fn status(self) -> StatusCode {
        match self {
            Rejection::BadRequest(_) => StatusCode::BAD_REQUEST,
            Rejection::UnsupportedVersion => StatusCode::UPGRADE_REQUIRED,
            Rejection::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::UnsupportedProtocol => StatusCode::NOT_IMPLEMENTED,
        }
    }

    /// The reason, for the body and the log.
    pub fn reason(self) -> &'static str {
        match self {
            Rejection::BadRequest(reason) => reason,
            Rejection::UnsupportedVersion => {
                "unsupported Sec-WebSocket-Version; this server speaks 13"
            }
            Rejection::TooLarge => "upgrade request body is over the limit",
            Rejection::UnsupportedProtocol => "this :protocol is not tunnelled here",
        }
    }
}

/// Classifies a request by its head: `protocols` are the Upgrade tokens
/// tunnelled, `body_limit` bounds an upgrade's body.
pub fn classify<B>(request: &Request<B>, protocols: &Protocols, body_limit: u64) -> Class {
    let headers = request.headers();
    let hosts = headers.get_all(HOST).iter().count();
    if hosts > 1 {
        return Class::Reject(Rejection::BadRequest("repeated Host field"));
    }
    // RFC 9112 §3.2 (N51): HTTP/1.1 requires Host; HTTP/1.0 may go without
    // if the target is in absolute form, and HTTP/2 with `:authority`.
    let authority_instead = matches!(request.version(), Version::HTTP_10 | Version::HTTP_2)
        && request.uri().authority().is_some();
    if hosts == 0 && !authority_instead {
        return Class::Reject(Rejection::BadRequest("missing Host field"));
    }
    if let Err(rejection) = check_scheme(request) {
        return Class::Reject(rejection);
    }
    if request.version() == Version::HTTP_2 {
        if let Err(rejection) = check_host_is_authority(request) {
            return Class::Reject(rejection);
        }
        return classify_h2(request, protocols);
    }
    // RFC 9110 §7.8 (N34): Upgrade in an HTTP/1.0 request is ignored.
    if request.version() < Version::HTTP_11 {
        return Class::Plain;
    }
    let offered = hop_by_hop::tokens(headers, &UPGRADE);
    let Some(protocol) = protocols.first_offered(offered) else {
        return Class::Plain;
    };
    // RFC 9110 §7.8: a sender of Upgrade must list it in Connection.
    if !hop_by_hop::has_token(headers, &CONNECTION, "upgrade") {
        return Class::Reject(Rejection::BadRequest("Upgrade without Connection: upgrade"));
    }
    let checked = if protocol == WEBSOCKET {
        check_websocket(request).map(|key| (Some(key), 0))
    } else {
        check_other(request, body_limit).map(|length| (None, length))
    };
    match checked {
        Ok((key, body_length)) => Class::Tunnel(TunnelRequest {
            protocol: protocol.to_owned(),
            key,
            body_length,
            over_h2: false,
        }),
        Err(rejection) => Class::Reject(rejection),
    }
}

/// The scheme a request names (HTTP/2's `:scheme`, RFC 9113 §8.3.1, or an
/// absolute-form target's, RFC 9112 §3.2.2) must be its connection's, which
/// the listener notes in the request's extensions for a TLS connection
/// (none is `http`): the scheme goes on to the app, which must never be
/// told that a cleartext request came over TLS, or a TLS one in the clear.
/// A request that names none takes the connection's.
fn check_scheme<B>(request: &Request<B>) -> Result<(), Rejection> {
    let claimed = request.uri().scheme();
    let connection = request
        .extensions()
        .get::<Scheme>()
        .unwrap_or(&Scheme::HTTP);
    match claimed {
        Some(claimed) if claimed != connection => Err(Rejection::BadRequest(
            "the request's scheme is not its connection's",
        )),
        _ => Ok(()),
    }
}

/// RFC 9113 §8.3.1: a server should treat as malformed an HTTP/2 request
/// whose Host field "identifies an entity that differs from the entity in
/// the `:authority`". Compared as RFC 3986 §6.2.2.1 and §6.2.3 normalise:
/// the host in any case, a missing port as the scheme's default.
fn check_host_is_authority<B>(request: &Request<B>) -> Result<(), Rejection> {
    let (Some(authority), Some(host)) = (request.uri().authority(), request.headers().get(HOST))
    else {
        return Ok(());
    };
    let default_port = match request.uri().scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    };
    let host = host
        .to_str()
        .ok()
        .and_then(|host| host.parse::<Authority>().ok());
    let same = host.is_some_and(|host| {
        host.host().eq_ignore_ascii_case(authority.host())
            && port_or_default(&host, default_port)
                .is_some_and(|port| port_or_default(authority, default_port) == Some(port))
    });
    if same {
        Ok(())
    } else {
        Err(Rejection::BadRequest("Host field differs from :authority"))
    }
}

/// The port of `authority`, `default` when it has none or an empty one
/// (RFC 3986 §6.2.3); `None` when the port is not a number.
fn port_or_default(authority: &Authority, default: Option<u16>) -> Option<Option<u16>> {
    let text = authority.as_str();
    let without_userinfo = text.rsplit_once('@').map_or(text, |(_, rest)| rest);
    let port = without_userinfo.get(authority.host().len()..)?;
    match port.strip_prefix(':').unwrap_or(port) {
        "" => Some(default),
        digits => digits.parse().ok().map(Some),
    }
}

/// An HTTP/2 request: an extended CONNECT (RFC 8441 §4) is a tunnel when
/// its `:protocol` is allowed (501 otherwise); a WebSocket one must carry
/// `Sec-WebSocket-Version: 13` (RFC 8441 §5). Anything else is plain.
fn classify_h2<B>(request: &Request<B>, protocols: &Protocols) -> Class {
    let Some(offered) = request.extensions().get::<hyper::ext::Protocol>() else {
        return Class::Plain;
    };
    let Some(protocol) = protocols.find(offered.as_str()) else {
        return Class::Reject(Rejection::UnsupportedProtocol);
    };
    if protocol == WEBSOCKET {
        let mut versions = request.headers().get_all("sec-websocket-version").iter();
        match (versions.next(), versions.next()) {
            (None, _) => {
                return Class::Reject(Rejection::BadRequest("missing Sec-WebSocket-Version"));
            }
            (Some(version), None) if version == websocket::VERSION => {}
            _ => return Class::Reject(Rejection::UnsupportedVersion),
        }
    }
    Class::Tunnel(TunnelRequest {
        protocol: protocol.to_owned(),
        key: None,
        body_length: 0,
        over_h2: true,
    })
}

/// RFC 6455 §4.1 / §4.2.1: the client handshake's requirements (N38-N41, N47).
fn check_websocket<B>(request: &Request<B>) -> Result<HeaderValue, Rejection> {
    let headers = request.headers();
    if request.method() != Method::GET {
        return Err(Rejection::BadRequest("WebSocket handshake must use GET"));
    }
    // RFC 6455 §4.1: the handshake is a GET without content (S6).
    let has_body = headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .is_some_and(|length| length != "0");
    if has_body {
        return Err(Rejection::BadRequest(
            "WebSocket handshake must not carry a body",
        ));
    }
    let mut versions = headers.get_all("sec-websocket-version").iter();
    match (versions.next(), versions.next()) {
        (None, _) => return Err(Rejection::BadRequest("missing Sec-WebSocket-Version")),
        (Some(version), None) if version == websocket::VERSION => {}
        _ => return Err(Rejection::UnsupportedVersion),
    }
    let mut keys = headers.get_all("sec-websocket-key").iter();
    match (keys.next(), keys.next()) {
        (Some(key), None) if websocket::is_valid_key(key.as_bytes()) => Ok(key.clone()),
        _ => Err(Rejection::BadRequest("invalid Sec-WebSocket-Key")),
    }
}

/// Any other protocol, with any method but CONNECT: a body must have a
/// `Content-Length` within `body_limit` (its length crosses the hop before
/// the body does); a chunked body is refused. Returns the body length.
fn check_other<B>(request: &Request<B>, body_limit: u64) -> Result<u64, Rejection> {
    if request.method() == Method::CONNECT {
        return Err(Rejection::BadRequest("CONNECT cannot carry an Upgrade"));
    }
    let headers = request.headers();
    if headers.contains_key(TRANSFER_ENCODING) {
        return Err(Rejection::BadRequest(
            "an upgrade request body must have a Content-Length, not Transfer-Encoding",
        ));
    }
    // hyper has already refused a Content-Length that is not one number.
    let length = match headers.get(CONTENT_LENGTH) {
        None => 0,
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|text| text.parse::<u64>().ok())
            .ok_or(Rejection::BadRequest("invalid Content-Length"))?,
    };
    if length > body_limit {
        return Err(Rejection::TooLarge);
    }
    Ok(length)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn request(method: &str, version: Version, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::builder()
            .method(method)
            .uri("/chat")
            .version(version);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    fn handshake(extra: &[(&str, &str)]) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("host", "example.com".to_owned()),
            ("upgrade", "websocket".to_owned()),
            ("connection", "Upgrade".to_owned()),
            ("sec-websocket-key", KEY.to_owned()),
            ("sec-websocket-version", "13".to_owned()),
        ];
        for (name, value) in extra {
            headers.retain(|(n, _)| n != name);
            let name: &'static str = Box::leak(name.to_string().into_boxed_str());
            headers.push((name, value.to_string()));
        }
        headers
    }

    fn classify_with(method: &str, extra: &[(&str, &str)]) -> Class {
        let headers = handshake(extra);
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        classify(
            &request(method, Version::HTTP_11, &pairs),
            &allowed(),
            LIMIT,
        )
    }

    const LIMIT: u64 = 100;

    fn allowed() -> Protocols {
        Protocols::new(["websocket", "my-proto"]).unwrap()
    }

    fn websocket_class() -> Class {
        Class::Tunnel(TunnelRequest {
            protocol: "websocket".into(),
            key: Some(HeaderValue::from_static(KEY)),
            body_length: 0,
            over_h2: false,
        })
    }

    /// RFC 6455 §4.1 (N38, N39): a valid handshake in any token case and order.
    #[test]
    fn valid_handshake_is_websocket() {
        for connection in [
            "Upgrade",
            "keep-alive, Upgrade",
            "UpGrade",
            "upgrade, keep-alive, X-Foo",
        ] {
            let class = classify_with(
                "GET",
                &[("connection", connection), ("upgrade", "WebSocket")],
            );
            assert_eq!(class, websocket_class(), "{connection}");
        }
    }

    /// RFC 6455 §4.2.1 (N47): malformed handshakes get 400.
    #[test]
    fn malformed_handshakes_are_bad_requests() {
        let cases: [(&str, &[(&str, &str)]); 5] = [
            ("POST", &[]),
            ("GET", &[("connection", "keep-alive")]),
            ("GET", &[("sec-websocket-key", "short")]),
            ("GET", &[("sec-websocket-version", "")]),
            ("GET", &[("content-length", "5")]),
        ];
        for (method, extra) in cases {
            let class = classify_with(method, extra);
            let status = match class {
                Class::Reject(rejection) => rejection.status(),
                other => panic!("{method} {extra:?} gave {other:?}"),
            };
            if extra == [("sec-websocket-version", "")] {
                assert_eq!(status, StatusCode::UPGRADE_REQUIRED);
            } else {
                assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {extra:?}");
            }
        }
    }

    /// RFC 6455 §4.4 (N41): another version gets 426.
    #[test]
    fn other_version_is_upgrade_required() {
        let class = classify_with("GET", &[("sec-websocket-version", "8")]);
        assert_eq!(class, Class::Reject(Rejection::UnsupportedVersion));
        assert_eq!(
            Rejection::UnsupportedVersion.status(),
            StatusCode::UPGRADE_REQUIRED
        );
    }

    /// RFC 9112 §3.2 (N51): missing or repeated Host is refused.
    #[test]
    fn missing_or_repeated_host_is_refused() {
        let none = request("GET", Version::HTTP_11, &[]);
        assert!(matches!(
            classify(&none, &allowed(), LIMIT),
            Class::Reject(Rejection::BadRequest(_))
        ));
        let two = request("GET", Version::HTTP_11, &[("host", "a"), ("host", "b")]);
        assert!(matches!(
            classify(&two, &allowed(), LIMIT),
            Class::Reject(Rejection::BadRequest(_))
        ));
    }

    /// RFC 9110 §7.8 (N34): an HTTP/1.0 Upgrade is ignored.
    #[test]
    fn http10_upgrade_is_plain() {
        let headers = handshake(&[]);
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        assert_eq!(
            classify(&request("GET", Version::HTTP_10, &pairs), &allowed(), LIMIT),
            Class::Plain
        );
    }

    /// S3: an `Upgrade: h2c` is not a tunnel; forwarding strips it.
    #[test]
    fn other_upgrade_tokens_are_plain() {
        let request = request(
            "GET",
            Version::HTTP_11,
            &[
                ("host", "h"),
                ("upgrade", "h2c"),
                ("connection", "TunnelRequest, HTTP2-Settings"),
            ],
        );
        assert_eq!(classify(&request, &allowed(), LIMIT), Class::Plain);
    }

    fn other(method: &str, extra: &[(&str, &str)]) -> Class {
        let mut headers = vec![
            ("host", "h"),
            ("upgrade", "My-Proto"),
            ("connection", "Upgrade"),
        ];
        headers.extend_from_slice(extra);
        classify(
            &request(method, Version::HTTP_11, &headers),
            &allowed(),
            LIMIT,
        )
    }

    /// An allowed token with any method and a Content-Length body.
    #[test]
    fn allowed_token_with_a_body_is_an_upgrade() {
        assert_eq!(
            other("POST", &[("content-length", "5")]),
            Class::Tunnel(TunnelRequest {
                protocol: "my-proto".into(),
                key: None,
                body_length: 5,
                over_h2: false,
            })
        );
        assert_eq!(
            other("GET", &[]),
            Class::Tunnel(TunnelRequest {
                protocol: "my-proto".into(),
                key: None,
                body_length: 0,
                over_h2: false,
            })
        );
    }

    /// A token not on the list is forwarded as plain HTTP; the first
    /// allowed token of the client's list wins.
    #[test]
    fn tokens_not_allowed_are_plain_and_the_first_allowed_one_wins() {
        let headers = [
            ("host", "h"),
            ("upgrade", "other, websocket"),
            ("connection", "Upgrade"),
        ];
        let class = classify(
            &request("GET", Version::HTTP_11, &headers),
            &Protocols::new(["my-proto"]).unwrap(),
            LIMIT,
        );
        assert_eq!(class, Class::Plain);
        let headers = [
            ("host", "h"),
            ("upgrade", "other, my-proto, websocket"),
            ("connection", "Upgrade"),
        ];
        let class = classify(
            &request("PUT", Version::HTTP_11, &headers),
            &allowed(),
            LIMIT,
        );
        assert!(
            matches!(class, Class::Tunnel(TunnelRequest { ref protocol, .. }) if protocol == "my-proto")
        );
    }

    /// Over the limit is 413; chunked, CONNECT and a missing Connection
    /// token are 400.
    #[test]
    fn upgrades_h2hop_cannot_carry_are_refused() {
        assert_eq!(
            other("POST", &[("content-length", "101")]),
            Class::Reject(Rejection::TooLarge)
        );
        assert_eq!(Rejection::TooLarge.status(), StatusCode::PAYLOAD_TOO_LARGE);
        for class in [
            other("POST", &[("transfer-encoding", "chunked")]),
            other("CONNECT", &[]),
        ] {
            assert!(
                matches!(class, Class::Reject(Rejection::BadRequest(_))),
                "{class:?}"
            );
        }
        let headers = [("host", "h"), ("upgrade", "my-proto")];
        let class = classify(
            &request("GET", Version::HTTP_11, &headers),
            &allowed(),
            LIMIT,
        );
        assert!(matches!(class, Class::Reject(Rejection::BadRequest(_))));
    }

    fn h2_connect(protocol: &'static str, version: Option<&str>) -> Request<()> {
        let mut builder = Request::builder()
            .method("CONNECT")
            .uri("https://example.com/chat")
            .version(Version::HTTP_2);
        if let Some(version) = version {
            builder = builder.header("sec-websocket-version", version);
        }
        let mut request = builder.body(()).unwrap();
        request
            .extensions_mut()
            .insert(hyper::ext::Protocol::from_static(protocol));
        request.extensions_mut().insert(Scheme::HTTPS);
        request
    }

    /// RFC 8441 from an HTTP/2 client: no Host needed, no key; version 13
    /// checked; a protocol not allowed is 501 (RFC 9220 §3).
    #[test]
    fn http2_extended_connect_is_an_upgrade_over_h2() {
        let class = classify(&h2_connect("websocket", Some("13")), &allowed(), LIMIT);
        assert_eq!(
            class,
            Class::Tunnel(TunnelRequest {
                protocol: "websocket".into(),
                key: None,
                body_length: 0,
                over_h2: true,
            })
        );
        assert_eq!(
            classify(&h2_connect("websocket", Some("8")), &allowed(), LIMIT),
            Class::Reject(Rejection::UnsupportedVersion)
        );
        assert_eq!(
            classify(&h2_connect("other", Some("13")), &allowed(), LIMIT),
            Class::Reject(Rejection::UnsupportedProtocol)
        );
        let mut plain = Request::builder()
            .uri("https://example.com/")
            .version(Version::HTTP_2)
            .body(())
            .unwrap();
        plain.extensions_mut().insert(Scheme::HTTPS);
        assert_eq!(classify(&plain, &allowed(), LIMIT), Class::Plain);
    }

    /// An HTTP/2 GET for `uri` with a Host field, on a TLS connection.
    fn h2_get(uri: &str, host: Option<&str>) -> Request<()> {
        let mut builder = Request::get(uri).version(Version::HTTP_2);
        if let Some(host) = host {
            builder = builder.header("host", host);
        }
        let mut request = builder.body(()).unwrap();
        request.extensions_mut().insert(Scheme::HTTPS);
        request
    }

    /// RFC 9113 §8.3.1: Host naming another entity than `:authority` is
    /// malformed; the same one, in another case or with the default port
    /// spelt out, is not.
    #[test]
    fn http2_host_must_name_the_authority() {
        let uri = "https://example.com/";
        for same in [
            None,
            Some("example.com"),
            Some("EXAMPLE.com:443"),
            Some("example.com:"),
        ] {
            let class = classify(&h2_get(uri, same), &allowed(), LIMIT);
            assert_eq!(class, Class::Plain, "{same:?}");
        }
        for other in ["other.example", "example.com:8443", "example.com:x", ""] {
            let class = classify(&h2_get(uri, Some(other)), &allowed(), LIMIT);
            assert_eq!(
                class,
                Class::Reject(Rejection::BadRequest("Host field differs from :authority")),
                "{other:?}"
            );
        }
        let explicit = classify(
            &h2_get("https://example.com:8443/", Some("Example.COM:8443")),
            &allowed(),
            LIMIT,
        );
        assert_eq!(explicit, Class::Plain);
        let ipv6 = h2_get("https://[::1]:8443/", Some("[::1]:8443"));
        assert_eq!(classify(&ipv6, &allowed(), LIMIT), Class::Plain);
        let ipv6 = h2_get("https://[::1]:8443/", Some("[::1]"));
        assert_ne!(classify(&ipv6, &allowed(), LIMIT), Class::Plain);
    }

    /// A request naming a scheme other than its connection's is refused:
    /// `:scheme http` over TLS, or an absolute-form `https://` target in
    /// the clear.
    #[test]
    fn the_scheme_claimed_must_be_the_connections() {
        let mismatch = Class::Reject(Rejection::BadRequest(
            "the request's scheme is not its connection's",
        ));
        let cleartext_claim = h2_get("http://example.com/", Some("example.com"));
        assert_eq!(classify(&cleartext_claim, &allowed(), LIMIT), mismatch);
        let mut h1 = Request::get("https://example.com/")
            .header("host", "example.com")
            .body(())
            .unwrap();
        // In the clear: no note.
        assert_eq!(classify(&h1, &allowed(), LIMIT), mismatch);
        h1.extensions_mut().insert(Scheme::HTTP);
        assert_eq!(classify(&h1, &allowed(), LIMIT), mismatch);
        h1.extensions_mut().insert(Scheme::HTTPS);
        assert_eq!(classify(&h1, &allowed(), LIMIT), Class::Plain);
        let mut connect = h2_connect("websocket", Some("13"));
        connect.extensions_mut().insert(Scheme::HTTP);
        assert_eq!(classify(&connect, &allowed(), LIMIT), mismatch);
    }
}
