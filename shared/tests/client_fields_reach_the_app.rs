//! The sidecar passes the front's client address, request id and trace
//! context fields to the app unchanged: [`h2hop::translate::request::h2_to_h1`]
//! keeps `X-Forwarded-*`, `Forwarded`, `X-Request-Id`, `traceparent` and
//! `tracestate`, every value and every line of them, on a plain request
//! and on a tunnel's upgrade request alike.

// Test code fails loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use h2hop::translate::request::{AppUpgrade, h2_to_h1};
use http::{Method, Request};

/// The fields the front settles, as it sends them; `x-forwarded-for` twice
/// (two field lines), which must stay two.
const FIELDS: [(&str, &str); 8] = [
    ("x-forwarded-for", "203.0.113.7, 10.0.0.1"),
    ("x-forwarded-for", "127.0.0.1"),
    ("x-forwarded-proto", "https"),
    (
        "forwarded",
        "for=\"[2001:db8::1]\";proto=https, for=_hidden, for=unknown",
    ),
    ("x-request-id", "0f8fad5b-d9cb-469f-a165-70867728950e"),
    (
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ),
    ("tracestate", "congo=t61rcWkgMzE"),
    ("x-forwarded-host", "app.example"),
];

fn stream(method: &str, uri: &str) -> http::request::Parts {
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in FIELDS {
        builder = builder.header(name, value);
    }
    builder.body(()).unwrap().into_parts().0
}

fn assert_unchanged(headers: &http::HeaderMap) {
    for name in FIELDS.map(|(name, _)| name) {
        let sent: Vec<&str> = FIELDS
            .iter()
            .filter(|(field, _)| *field == name)
            .map(|(_, value)| *value)
            .collect();
        let received: Vec<&str> = headers
            .get_all(name)
            .iter()
            .map(|value| value.to_str().unwrap())
            .collect();
        assert_eq!(received, sent, "{name}");
    }
}

#[test]
fn a_plain_request_carries_them_unchanged() {
    let parts = stream("GET", "https://app.example/page");
    let request = h2_to_h1(&parts, None).unwrap();
    assert_unchanged(request.headers());
}

#[test]
fn a_tunnels_upgrade_request_carries_them_unchanged() {
    let parts = stream("CONNECT", "https://app.example/ws");
    let key = h2hop::websocket::fresh_key();
    let upgrade = AppUpgrade {
        protocol: "websocket",
        method: Method::GET,
        body_length: 0,
        key: Some(&key),
    };
    let request = h2_to_h1(&parts, Some(&upgrade)).unwrap();
    assert_eq!(request.headers()["upgrade"], "websocket");
    assert_unchanged(request.headers());
}
