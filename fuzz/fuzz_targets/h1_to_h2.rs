//! Any bytes, read as an HTTP/1.1 request head the way hyper does, through
//! the front's classification and then `h2hop::translate::request::h1_to_h2`
//! as both a forward and a tunnel: the HTTP/2 request the front would send.
//!
//! Invariants: no hop-by-hop field survives (`Connection`, `Keep-Alive`,
//! `Proxy-Connection`, `TE` other than `trailers` on a forward,
//! `Transfer-Encoding`, `Upgrade`, the fields `Connection` names), nor
//! `Host`, nor a client's `h2hop-…` field; a tunnel carries no key, accept
//! or `Content-Length`, and its own fields say the client's method and the
//! body length the front will send; every name is a lower-case token and no
//! value has CR, LF, NUL or surrounding blanks (RFC 9113 §8.2.1); the
//! target keeps the path, takes the authority from the target or `Host`,
//! never with userinfo; end-to-end fields all cross.

#![no_main]

use h2hop::translate::TranslateError;
use h2hop::translate::request::{self, Kind};
use h2hop::upgrade::{BODY_LENGTH_FIELD, METHOD_FIELD, Protocols, WEBSOCKET};
use h2hop_front::classify::{self, Class};
use h2hop_front::client_scheme;
use h2hop_fuzz::{
    assert_clean, assert_kept, assert_no_hop_by_hop, connection_named, count,
    has_surrounding_blank, is_hop_by_hop, is_reserved, parse_h1_request,
};
use http::header::{CONTENT_LENGTH, HOST, HeaderName, TE};
use http::request::Parts;
use http::{Method, Request, Version};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(request) = parse_h1_request(data) else {
        return;
    };
    let protocols = Protocols::new(["websocket", "my-proto"]).expect("a valid allow-list");
    let class = classify::classify(&request, &protocols, u64::MAX);
    let (parts, ()) = request.into_parts();
    // What the front does, and what it would do had classification
    // answered otherwise: the translation holds its invariants either way.
    let (protocol, body_length) = match &class {
        Class::Tunnel(upgrade) => (upgrade.protocol.as_str(), Some(upgrade.body_length)),
        _ => (WEBSOCKET, None),
    };
    check(&parts, Kind::Forward, None);
    check(&parts, Kind::Tunnel(protocol), body_length);
});

/// Translates `parts` as `kind` and checks the result; `body_length` is
/// the classified upgrade's, when the front would send one.
fn check(parts: &Parts, kind: Kind<'_>, body_length: Option<u64>) {
    let scheme = client_scheme(parts);
    let translated = match request::h1_to_h2(parts, scheme.clone(), kind) {
        Ok(translated) => translated,
        Err(TranslateError::MissingAuthority) => {
            assert!(parts.uri.authority().is_none() && !parts.headers.contains_key(HOST));
            return;
        }
        Err(_) => return,
    };
    assert_eq!(translated.version(), Version::HTTP_2);
    check_target(parts, &translated, &scheme);
    let original = &parts.headers;
    let headers = translated.headers();
    assert_clean(headers);
    for (name, value) in headers {
        assert!(
            !has_surrounding_blank(value),
            "{name}: {value:?} is malformed on HTTP/2"
        );
    }
    let named = connection_named(original);
    let trailers = matches!(kind, Kind::Forward) && headers.contains_key(TE);
    // The front's own fields, and `TE: trailers`, are not the client's: a
    // client's `Connection` cannot name them away.
    let set_here: &[&str] = match kind {
        Kind::Forward if trailers => &["te"],
        Kind::Forward => &[],
        Kind::Tunnel(_) => &[METHOD_FIELD, BODY_LENGTH_FIELD],
    };
    assert_no_hop_by_hop(headers, &named, set_here);
    if trailers {
        assert_eq!(count(headers, TE), 1);
        assert_eq!(headers[TE], "trailers");
    }
    assert!(!headers.contains_key(HOST), "Host crossed the hop");
    let protocol = translated
        .extensions()
        .get::<h2::ext::Protocol>()
        .map(h2::ext::Protocol::as_str);
    let handshake = [
        "sec-websocket-key",
        "sec-websocket-accept",
        "content-length",
    ];
    match kind {
        Kind::Forward => {
            assert_eq!(translated.method(), parts.method);
            assert_eq!(protocol, None);
            assert!(!headers.keys().any(is_reserved), "h2hop field on a forward");
        }
        Kind::Tunnel(asked) => {
            assert_eq!(translated.method(), Method::CONNECT);
            assert_eq!(protocol, Some(asked));
            for name in handshake {
                assert!(!headers.contains_key(name), "{name} on a tunnel");
            }
            check_carried(parts, &translated, body_length);
        }
    }
    let tunnel = matches!(kind, Kind::Tunnel(_));
    assert_kept(original, headers, |name: &HeaderName| {
        is_hop_by_hop(name, &named)
            || name == HOST
            || is_reserved(name)
            || (tunnel && handshake.contains(&name.as_str()))
    });
}

/// `:scheme`, `:authority` and `:path` (RFC 9113 §8.3.1; RFC 9112 §3.2).
fn check_target(parts: &Parts, translated: &Request<()>, scheme: &http::uri::Scheme) {
    let uri = translated.uri();
    assert_eq!(uri.scheme(), Some(scheme));
    let authority = uri.authority().expect("an HTTP/2 request has :authority");
    assert!(!authority.as_str().contains('@'), "userinfo in {authority}");
    match parts.uri.authority() {
        Some(from_target) => assert_eq!(authority, from_target),
        None => assert_eq!(
            authority.as_str().as_bytes(),
            parts.headers[HOST].as_bytes()
        ),
    }
    let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    assert_eq!(uri.path_and_query().map(|path| path.as_str()), Some(path));
    if path == "*" {
        assert_eq!(parts.method, Method::OPTIONS);
    }
}

/// A tunnel's own fields: the method when it is not `GET`, the body length
/// the front sends as the stream's first DATA, and no other `h2hop-…` field.
fn check_carried(parts: &Parts, translated: &Request<()>, body_length: Option<u64>) {
    let headers = translated.headers();
    for name in headers.keys().filter(|name| is_reserved(name)) {
        assert!(
            name == METHOD_FIELD || name == BODY_LENGTH_FIELD,
            "client's {name} crossed"
        );
    }
    assert!(count(headers, METHOD_FIELD) <= 1 && count(headers, BODY_LENGTH_FIELD) <= 1);
    let carried_method = headers.get(METHOD_FIELD);
    if parts.method == Method::GET || parts.method == Method::CONNECT {
        assert!(carried_method.is_none());
    } else {
        assert_eq!(
            carried_method.map(|m| m.as_bytes()),
            Some(parts.method.as_str().as_bytes())
        );
    }
    // The sidecar takes this many bytes of the stream as the body; the
    // front sends as many as classification counted.
    let carried_length = headers.get(BODY_LENGTH_FIELD);
    assert!(carried_length.is_none_or(|length| length != "0"));
    if let Some(body_length) = body_length {
        let carried: u64 = carried_length
            .map(|length| length.to_str().expect("digits").parse().expect("a length"))
            .unwrap_or(0);
        assert_eq!(
            carried, body_length,
            "body length announced differs from the body sent"
        );
    } else if let Some(length) = carried_length {
        assert_eq!(Some(length), parts.headers.get(CONTENT_LENGTH));
    }
}
