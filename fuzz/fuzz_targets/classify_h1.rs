//! Any bytes, read as an HTTP/1.1 request head the way hyper does, through
//! the front's handshake classification (`h2hop_front::classify::classify`).
//!
//! Invariants: classification never panics and is deterministic; an
//! upgrade is only ever an HTTP/1.1 request with one Host, an allowed token
//! (the client's first allowed one, in the allow-list's spelling) and
//! `Connection: upgrade`; a WebSocket upgrade is a bodiless GET with one
//! valid key and one `Sec-WebSocket-Version: 13`; any other upgrade is not
//! CONNECT, not chunked and within the body limit; an allowed upgrade offer
//! is never silently made plain; each rejection matches its cause.

#![no_main]

use h2hop::upgrade::{Protocols, WEBSOCKET};
use h2hop::websocket;
use h2hop_front::classify::{self, Class, Rejection, TunnelRequest};
use h2hop_fuzz::{count, digits, lists_token, parse_h1_request};
use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING, UPGRADE};
use http::uri::Scheme;
use http::{Method, Request, StatusCode, Version};
use libfuzzer_sys::fuzz_target;

/// Small, so the fuzzer reaches the 413.
const BODY_LIMIT: u64 = 100;

fuzz_target!(|data: &[u8]| {
    let Some(request) = parse_h1_request(data) else {
        return;
    };
    let protocols = Protocols::new(["websocket", "my-proto", "x/1"]).expect("a valid allow-list");
    let class = classify::classify(&request, &protocols, BODY_LIMIT);
    assert_eq!(
        class,
        classify::classify(&request, &protocols, BODY_LIMIT),
        "not deterministic"
    );
    let offered = first_allowed_offer(&request, &protocols);
    match class {
        Class::Tunnel(upgrade) => check_upgrade(&request, &protocols, &upgrade, offered),
        Class::Plain => {
            // An HTTP/1.1 request with one Host that offers an allowed
            // token is a tunnel or refused, never quietly forwarded.
            let counts =
                request.version() == Version::HTTP_11 && count(request.headers(), HOST) == 1;
            assert!(
                !(counts && offered.is_some()),
                "allowed upgrade {offered:?} classified plain"
            );
        }
        Class::Reject(rejection) => check_rejection(&request, rejection, offered),
    }
});

/// The allowed spelling of the first allowed token in the client's
/// `Upgrade` list. A value with bytes outside visible ASCII is no token
/// list at all (RFC 9110 §7.8), so it offers nothing.
fn first_allowed_offer<'a>(request: &Request<()>, protocols: &'a Protocols) -> Option<&'a str> {
    request
        .headers()
        .get_all(UPGRADE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|token| protocols.find(token.trim_matches([' ', '\t'])))
}

fn check_upgrade(
    request: &Request<()>,
    protocols: &Protocols,
    upgrade: &TunnelRequest,
    offered: Option<&str>,
) {
    let headers = request.headers();
    assert_eq!(
        request.version(),
        Version::HTTP_11,
        "upgrade on {:?}",
        request.version()
    );
    assert!(!upgrade.over_h2);
    assert_eq!(count(headers, HOST), 1, "upgrade without exactly one Host");
    assert_eq!(
        protocols.find(&upgrade.protocol),
        Some(upgrade.protocol.as_str())
    );
    assert_eq!(
        offered,
        Some(upgrade.protocol.as_str()),
        "not the first allowed offer"
    );
    let name = upgrade.protocol.split('/').next().unwrap_or_default();
    assert!(!name.eq_ignore_ascii_case("h2c") && !name.eq_ignore_ascii_case("h2"));
    assert!(
        lists_token(headers, &CONNECTION, "upgrade"),
        "no Connection: upgrade"
    );
    assert!(upgrade.body_length <= BODY_LIMIT);
    if upgrade.protocol == WEBSOCKET {
        assert_eq!(request.method(), Method::GET);
        assert!(!headers.contains_key(TRANSFER_ENCODING));
        assert!(
            headers
                .get(CONTENT_LENGTH)
                .is_none_or(|length| length == "0")
        );
        assert_eq!(upgrade.body_length, 0);
        assert_eq!(count(headers, "sec-websocket-version"), 1);
        assert_eq!(headers["sec-websocket-version"], websocket::VERSION);
        assert_eq!(count(headers, "sec-websocket-key"), 1);
        let key = upgrade.key.as_ref().expect("a WebSocket upgrade has a key");
        assert_eq!(key, &headers["sec-websocket-key"]);
        assert!(websocket::is_valid_key(key.as_bytes()));
        assert_eq!(key.len(), 24, "a 16-byte nonce in base64 is 24 characters");
    } else {
        assert!(upgrade.key.is_none());
        assert_ne!(request.method(), Method::CONNECT);
        assert!(!headers.contains_key(TRANSFER_ENCODING));
        let length = headers
            .get(CONTENT_LENGTH)
            .map(|value| digits(value.as_bytes()));
        assert_eq!(length.unwrap_or(Some(0)), Some(upgrade.body_length));
    }
}

fn check_rejection(request: &Request<()>, rejection: Rejection, offered: Option<&str>) {
    let status = rejection.status();
    assert!(
        status.is_client_error() || status == StatusCode::NOT_IMPLEMENTED,
        "rejection with {status}"
    );
    assert!(!rejection.reason().is_empty());
    let headers = request.headers();
    match rejection {
        Rejection::BadRequest(_) => {}
        Rejection::UnsupportedVersion => {
            assert_eq!(offered, Some(WEBSOCKET));
            let versions: Vec<_> = headers.get_all("sec-websocket-version").iter().collect();
            assert!(versions.len() != 1 || versions[0] != websocket::VERSION);
        }
        Rejection::TooLarge => {
            let length = headers
                .get(CONTENT_LENGTH)
                .and_then(|value| digits(value.as_bytes()));
            assert!(length.is_some_and(|length| length > BODY_LIMIT));
        }
        // Only HTTP/2 carries :protocol.
        Rejection::UnsupportedProtocol => panic!("501 for an HTTP/1.1 request"),
    }
    if request.version() != Version::HTTP_11 || count(headers, HOST) != 1 {
        return;
    }
    // One Host on HTTP/1.1: only an upgrade offer can be refused, or an
    // absolute-form target naming a scheme other than its connection's
    // (these requests carry no TLS note, so their connection is cleartext).
    let foreign_scheme = request
        .uri()
        .scheme()
        .is_some_and(|scheme| *scheme != Scheme::HTTP);
    assert!(
        offered.is_some() || foreign_scheme,
        "{rejection:?} without an allowed offer"
    );
}
