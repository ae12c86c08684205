//! HAProxy in front of h2hop-front, as a load balancer would be: with
//! `option forwardfor` it appends the client's address to
//! `X-Forwarded-For`, and the front, trusting HAProxy's address alone,
//! settles on that client; a client that skips HAProxy cannot forge the
//! field. HAProxy connects from 127.0.0.2 so that it and the client differ
//! on loopback.
//!
//! Needs `haproxy`: without it the test says `!!! SKIPPED` and passes,
//! unless `H2HOP_REQUIRE_EXTERNAL=1`, which makes it fail.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;

use h2hop_integration::client::{body_bytes, full, http1_connect, request};
use h2hop_integration::haproxy::{Haproxy, haproxy_or_skip};
use h2hop_integration::harness::{Pair, within};
use h2hop_integration::logs::Captured;
use http::{Method, StatusCode};

/// HAProxy in `mode http` on a free loopback port, relaying to `front`
/// from 127.0.0.2 and appending `X-Forwarded-For`.
async fn haproxy_before(program: &Path, front: SocketAddr) -> Haproxy {
    let config = |addr: SocketAddr| {
        format!(
            "global\n    maxconn 100\n\
             defaults\n    mode http\n    timeout connect 5s\n    timeout client 10s\n    timeout server 10s\n\
             frontend clients\n    bind {addr}\n    option forwardfor\n    default_backend h2hop\n\
             backend h2hop\n    server front {front} source 127.0.0.2\n"
        )
    };
    Haproxy::start(program, "forwarded-haproxy", config)
        .await
        .unwrap()
}

/// What the app received for a GET to `to` with a forged
/// `X-Forwarded-For` and `X-Request-Id`: its `X-Forwarded-For` and
/// `X-Request-Id`.
async fn forged_get(pair: &Pair, to: SocketAddr) -> (String, String) {
    let mut send = http1_connect(to).await.unwrap();
    let mut get = request(Method::GET, to, "/via", full("")).unwrap();
    let headers = get.headers_mut();
    headers.insert("x-forwarded-for", "6.6.6.6".parse().unwrap());
    headers.insert("x-request-id", "lb-7".parse().unwrap());
    let response = send.send_request(get).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    body_bytes(response).await.unwrap();
    let seen = pair.app.requests().pop().unwrap();
    let field = |name: &str| {
        let values = seen.headers.get_all(name).iter();
        let values: Vec<&str> = values.map(|value| value.to_str().unwrap()).collect();
        values.join(" | ")
    };
    (field("x-forwarded-for"), field("x-request-id"))
}

/// Through HAProxy (trusted): its `X-Forwarded-For` is extended and the
/// client is the address HAProxy saw, 127.0.0.1, past the forged entry's
/// reach; the request id passes. Straight to the front (untrusted): the
/// forged fields are gone.
#[tokio::test]
async fn behind_haproxy_the_client_is_the_address_haproxy_saw() {
    let Some(program) =
        haproxy_or_skip("behind_haproxy_the_client_is_the_address_haproxy_saw").unwrap()
    else {
        return;
    };
    let (log, _guard) = Captured::install();
    within(async {
        let pair = Pair::builder()
            .h2c()
            .front_config(|config| {
                config.client_fields.trusted_proxies = "127.0.0.2".parse().unwrap();
            })
            .start()
            .await
            .unwrap();
        let haproxy = haproxy_before(&program, pair.front).await;

        let (xff, id) = forged_get(&pair, haproxy.addr).await;
        // HAProxy adds its own line after the client's; the front joins
        // them and appends HAProxy's address.
        assert_eq!(xff, "6.6.6.6, 127.0.0.1, 127.0.0.2");
        assert_eq!(id, "lb-7");
        let line = log
            .wait_for(&["h2hop::access", "request_id=\"lb-7\"", "peer=127.0.0.2:"])
            .await;
        assert!(line.contains(" client=127.0.0.1 "), "{line}");

        let (xff, id) = forged_get(&pair, pair.front).await;
        assert_eq!(xff, "127.0.0.1");
        assert_ne!(id, "lb-7");
    })
    .await;
}
