//! The request head the app receives: [`h2_to_h1`], which the sidecar
//! calls on each accepted HTTP/2 stream before sending the result to the
//! app over HTTP/1.1. [`super::request`] names it too, beside the front's
//! direction.

use http::header::{
    CONNECTION, CONTENT_LENGTH, HOST, HeaderName, HeaderValue, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::request::Parts;
use http::uri::{Authority, PathAndQuery, Uri};
use http::{HeaderMap, Method, Request, Version};

use super::hop_by_hop::HopByHop;
use super::{HANDSHAKE_ONLY, TranslateError};
use crate::request_identity::{CLIENT_FIELD, ClientAddress};
use crate::{upgrade, websocket};

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

    fn h2(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
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
