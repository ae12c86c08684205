//! An HTTP/2 request as the h2 crate hands it to the sidecar (pseudo-fields
//! checked as h2 checks them), an extended CONNECT with `:protocol` or an
//! ordinary request, through the sidecar's steps (`:protocol` a token and
//! allowed, `h2hop::upgrade::carried`, then
//! `h2hop::translate::request::h2_to_h1`): the HTTP/1.1 request the app gets.
//!
//! Invariants: a tunnel reaches the app as `Upgrade: <token>` and
//! `Connection: Upgrade`, exactly one each, with the carried method and a
//! `Content-Length` for its body; a WebSocket one with exactly one fresh,
//! valid `Sec-WebSocket-Key` and `Sec-WebSocket-Version: 13` and no accept;
//! a forward has no `Connection` or `Upgrade`; no other hop-by-hop field,
//! no field the peer's `Connection` names and no `h2hop-…` field survives;
//! one `Host` from `:authority` (or the one `host`), without userinfo; the
//! target is in origin form; written as HTTP/1.1 the head reads back as
//! exactly itself (no CR/LF/NUL anywhere, no surrounding blanks); end-to-end
//! fields all cross.

#![no_main]

use arbitrary::Arbitrary;
use h2hop::translate::request::{self, AppUpgrade};
use h2hop::upgrade::{self, Protocols, WEBSOCKET};
use h2hop::websocket;
use h2hop_fuzz::{
    FieldInput, TextInput, assert_clean, assert_kept, assert_no_hop_by_hop,
    assert_request_reads_back, connection_named, count, has_surrounding_blank, header_map,
    is_hop_by_hop, is_reserved,
};
use http::header::{CONNECTION, CONTENT_LENGTH, HOST, HeaderName, UPGRADE};
use http::request::Parts;
use http::uri::{self, Authority, PathAndQuery, Scheme};
use http::{Method, Request, Uri, Version};
use libfuzzer_sys::fuzz_target;

/// The HTTP/2 request, field by field.
#[derive(Arbitrary, Debug)]
struct Input {
    method: TextInput,
    scheme: Option<TextInput>,
    authority: Option<TextInput>,
    path: Option<TextInput>,
    protocol: Option<TextInput>,
    fields: Vec<FieldInput>,
    /// The sidecar's `--upgrade-as-get`.
    as_get: bool,
    body_limit: u16,
}

const METHODS: [&str; 7] = ["GET", "POST", "CONNECT", "HEAD", "PUT", "OPTIONS", "DELETE"];
const SCHEMES: [&str; 2] = ["http", "https"];
const AUTHORITIES: [&str; 6] = [
    "example.com",
    "app.example:8080",
    "[::1]:80",
    "user@example.com",
    "user:pw@example.com:81",
    "127.0.0.1",
];
const PATHS: [&str; 6] = ["/", "/chat?room=1", "*", "//x", "/a%20b?c=d", "?q"];
const PROTOCOLS: [&str; 6] = [
    "websocket",
    "WebSocket",
    "my-proto",
    "h2c",
    "x/1",
    "bad token",
];

fuzz_target!(|input: Input| {
    let Some(request) = h2_request(&input) else {
        return;
    };
    let (parts, ()) = request.into_parts();
    let protocols = Protocols::new(["websocket", "my-proto", "x/1"]).expect("a valid allow-list");
    match input
        .protocol
        .as_ref()
        .map(|protocol| protocol.text(&PROTOCOLS))
    {
        None if parts.method == Method::CONNECT => {} // a TCP tunnel, not a request
        None => {
            if let Ok(app) = request::h2_to_h1(&parts, None) {
                check(&parts, &app, None);
            }
        }
        // dispatch: a token (else 400) that is allowed (else 501).
        Some(offered) if !upgrade::is_token(offered) => {}
        Some(offered) => {
            let Some(protocol) = protocols.find(offered) else {
                return;
            };
            tunnel(&parts, protocol, &input);
        }
    }
});

/// The request h2 builds from these pseudo-fields, or `None` where h2
/// resets the stream as malformed (h2's `server::Peer::convert_poll_message`).
fn h2_request(input: &Input) -> Option<Request<()>> {
    let method = Method::from_bytes(input.method.text(&METHODS).as_bytes()).ok()?;
    let connect = method == Method::CONNECT;
    let extended = input.protocol.is_some();
    if extended && !connect {
        return None;
    }
    let mut parts = uri::Parts::default();
    if let Some(authority) = &input.authority {
        parts.authority = Some(Authority::try_from(authority.text(&AUTHORITIES)).ok()?);
    }
    match &input.scheme {
        Some(_) if connect && !extended => return None,
        Some(scheme) => {
            let scheme = Scheme::try_from(scheme.text(&SCHEMES)).ok()?;
            if parts.authority.is_some() {
                parts.scheme = Some(scheme);
            }
        }
        None if !connect || extended => return None,
        None => {}
    }
    match &input.path {
        Some(_) if connect && !extended => return None,
        Some(path) => {
            let path = path.text(&PATHS);
            if path.is_empty() {
                return None;
            }
            parts.path_and_query = Some(PathAndQuery::try_from(path).ok()?);
        }
        None if extended => return None,
        None => {}
    }
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = Uri::from_parts(parts).ok()?;
    *request.version_mut() = Version::HTTP_2;
    *request.headers_mut() = header_map(&input.fields);
    if let Some(protocol) = &input.protocol {
        let protocol = h2::ext::Protocol::from(protocol.text(&PROTOCOLS));
        request.extensions_mut().insert(protocol);
    }
    Some(request)
}

/// The sidecar's tunnel stage up to the request it sends the app.
fn tunnel(parts: &Parts, protocol: &str, input: &Input) {
    let Ok(carried) = upgrade::carried(&parts.headers, u64::from(input.body_limit)) else {
        return; // 400 or 413
    };
    assert!(carried.method != Method::CONNECT);
    assert!(carried.body_length <= u64::from(input.body_limit));
    let (method, body_length) = if input.as_get {
        (Method::GET, 0)
    } else {
        (carried.method, carried.body_length)
    };
    let key = (protocol == WEBSOCKET).then(websocket::fresh_key);
    let asked = AppUpgrade {
        protocol,
        method,
        body_length,
        key: key.as_deref(),
    };
    if let Ok(app) = request::h2_to_h1(parts, Some(&asked)) {
        check(parts, &app, Some(&asked));
    }
}

/// The fields `h2_to_h1` sets itself on a tunnel: a peer's `Connection`
/// cannot name them away.
const SET_FOR_TUNNEL: [&str; 6] = [
    "host",
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "content-length",
];

fn check(parts: &Parts, app: &Request<()>, asked: Option<&AppUpgrade<'_>>) {
    assert_eq!(app.version(), Version::HTTP_11);
    // Origin form: the app's own address is the pool's business.
    assert!(app.uri().scheme().is_none() && app.uri().authority().is_none());
    let path = parts.uri.path_and_query().map_or("/", PathAndQuery::as_str);
    assert_eq!(
        app.uri().path_and_query().map(PathAndQuery::as_str),
        Some(path)
    );
    let headers = app.headers();
    assert_clean(headers);
    for (name, value) in headers {
        assert!(!has_surrounding_blank(value), "{name}: {value:?}");
    }
    assert_request_reads_back(app);
    check_host(parts, app);

    let original = &parts.headers;
    let named = connection_named(original);
    let set_here: &[&str] = if asked.is_some() {
        &SET_FOR_TUNNEL
    } else {
        &["host"]
    };
    assert_no_hop_by_hop(headers, &named, set_here);
    assert!(
        !headers.keys().any(is_reserved),
        "h2hop field reached the app"
    );
    match asked {
        None => {
            assert_eq!(app.method(), parts.method);
            assert!(!headers.contains_key(CONNECTION) && !headers.contains_key(UPGRADE));
        }
        Some(asked) => check_upgrade(app, asked),
    }
    assert_kept(original, headers, |name: &HeaderName| {
        is_hop_by_hop(name, &named)
            || name == HOST
            || is_reserved(name)
            || (asked.is_some()
                && (SET_FOR_TUNNEL.contains(&name.as_str()) || name == "sec-websocket-accept"))
    });
}

/// One `Host`, from `:authority` or else the stream's one `host` field,
/// a valid authority without userinfo (RFC 9110 §7.2, RFC 9113 §8.3.1).
fn check_host(parts: &Parts, app: &Request<()>) {
    let headers = app.headers();
    assert_eq!(count(headers, HOST), 1, "the app needs one Host");
    let host = &headers[HOST];
    match parts.uri.authority() {
        Some(authority) => assert_eq!(host.as_bytes(), authority.as_str().as_bytes()),
        None => assert_eq!(Some(host), parts.headers.get(HOST)),
    }
    assert!(
        !host.as_bytes().contains(&b'@'),
        "userinfo in Host: {host:?}"
    );
    assert!(
        Authority::try_from(host.as_bytes()).is_ok(),
        "Host {host:?}"
    );
}

/// RFC 9110 §7.8, RFC 6455 §4.1: the app's Upgrade request.
fn check_upgrade(app: &Request<()>, asked: &AppUpgrade<'_>) {
    let headers = app.headers();
    assert_eq!(app.method(), asked.method);
    assert_eq!(count(headers, UPGRADE), 1);
    assert_eq!(headers[UPGRADE].as_bytes(), asked.protocol.as_bytes());
    assert_eq!(count(headers, CONNECTION), 1);
    assert_eq!(headers[CONNECTION], "Upgrade");
    let length = headers.get_all(CONTENT_LENGTH).iter().collect::<Vec<_>>();
    if asked.body_length > 0 || !matches!(asked.method, Method::GET | Method::HEAD) {
        assert_eq!(length.len(), 1);
        assert_eq!(
            length[0].as_bytes(),
            asked.body_length.to_string().as_bytes()
        );
    } else {
        assert!(
            length.is_empty(),
            "Content-Length on a bodiless GET upgrade"
        );
    }
    assert!(!headers.contains_key("sec-websocket-accept"));
    match asked.key {
        Some(key) => {
            assert_eq!(count(headers, "sec-websocket-key"), 1);
            assert_eq!(headers["sec-websocket-key"].as_bytes(), key.as_bytes());
            assert!(websocket::is_valid_key(key.as_bytes()));
            assert_eq!(count(headers, "sec-websocket-version"), 1);
            assert_eq!(headers["sec-websocket-version"], websocket::VERSION);
        }
        None => assert!(!headers.contains_key("sec-websocket-key")),
    }
}
