//! Responses on the way back. The app's answer to the sidecar's Upgrade
//! goes through `h2hop::translate::response::check_switch`, then
//! `switched_to_h2` (the stream's 200) or `relay`; the front's answer to the
//! client, from that 200 or from any HTTP/2 response a sidecar could send,
//! through `switched_to_h1` (the client's 101) or `relay`.
//!
//! Invariants: only a 101 that names the protocol asked, lists `upgrade`
//! in `Connection` and, for a WebSocket, carries the accept for the key
//! sent, opens a tunnel; the stream's 200 and every relayed response carry
//! no hop-by-hop field and nothing the sender's `Connection` names; the
//! client's 101 always carries exactly one `Upgrade: <protocol>` and one
//! `Connection: Upgrade`, the accept for the client's own key (and no other)
//! and no `Content-Length`; written as HTTP/1.1 each response to the client
//! reads back as itself; end-to-end fields all cross.

#![no_main]

use arbitrary::Arbitrary;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use h2hop::translate::response::{self, Refusal};
use h2hop::upgrade::{Protocols, WEBSOCKET};
use h2hop::websocket;
use h2hop_fuzz::{
    FieldInput, SAMPLE_KEY, assert_clean, assert_kept, assert_no_hop_by_hop,
    assert_response_reads_back, assert_switching_fields, connection_named, count, header_map,
    is_hop_by_hop, lists_token,
};
use http::header::{CONNECTION, HeaderName, HeaderValue, UPGRADE};
use http::response::Parts;
use http::{HeaderMap, Response, StatusCode, Version};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    /// Which allowed protocol the tunnel is for.
    protocol: u8,
    /// The client's `Sec-WebSocket-Key`, as classification passed it.
    client_key: [u8; 16],
    app: Head,
    /// Add the right `Sec-WebSocket-Accept` for the sidecar's key to the
    /// app's answer: the fuzzer cannot find a SHA-1 on its own.
    app_accepts: bool,
    /// A sidecar's answer to the front, whatever sent it.
    sidecar: Head,
}

#[derive(Arbitrary, Debug)]
struct Head {
    status: u16,
    fields: Vec<FieldInput>,
}

impl Head {
    fn parts(&self) -> Option<Parts> {
        let mut response = Response::new(());
        *response.status_mut() = StatusCode::from_u16(self.status).ok()?;
        *response.headers_mut() = header_map(&self.fields);
        Some(response.into_parts().0)
    }
}

/// The sidecar's key to the app (`websocket::fresh_key` in production: a
/// fixed one keeps the target deterministic).
const SIDECAR_KEY: &str = SAMPLE_KEY;

fuzz_target!(|input: Input| {
    let protocols = Protocols::new(["websocket", "my-proto", "x/1"]).expect("a valid allow-list");
    let allowed: Vec<&str> = protocols.iter().collect();
    let protocol = allowed[usize::from(input.protocol) % allowed.len()];
    let websocket = protocol == WEBSOCKET;
    // Classification's key: 16 bytes in base64, as `websocket::is_valid_key` wants.
    let client_key = websocket.then(|| STANDARD.encode(input.client_key));
    if let Some(mut app) = input.app.parts() {
        if input.app_accepts {
            let accept = websocket::accept_for(SIDECAR_KEY.as_bytes());
            let accept = HeaderValue::from_str(&accept).expect("base64 is a field value");
            app.headers.append("sec-websocket-accept", accept);
        }
        if let Some(ok) = sidecar(&app, protocol, websocket.then_some(SIDECAR_KEY)) {
            front(&ok, protocol, client_key.as_deref());
        }
    }
    if let Some(sidecar) = input.sidecar.parts() {
        front(&sidecar, protocol, client_key.as_deref());
    }
});

/// The sidecar's tunnel stage on the app's answer; the stream's `200`
/// when the tunnel opens.
fn sidecar(app: &Parts, protocol: &str, key: Option<&str>) -> Option<Parts> {
    let named = connection_named(&app.headers);
    match response::check_switch(app, protocol, key) {
        Ok(()) => {
            assert_eq!(app.status, StatusCode::SWITCHING_PROTOCOLS);
            let upgrade = app
                .headers
                .get(UPGRADE)
                .expect("a 101 that names the protocol");
            assert!(upgrade.as_bytes().eq_ignore_ascii_case(protocol.as_bytes()));
            assert!(lists_token(&app.headers, &CONNECTION, "upgrade"));
            if let Some(key) = key {
                let accept = websocket::accept_for(key.as_bytes());
                assert_eq!(app.headers["sec-websocket-accept"], accept.as_str());
            }
            let reply = response::switched_to_h2(app);
            assert_eq!(reply.status(), StatusCode::OK);
            let headers = reply.headers();
            assert_clean(headers);
            assert_no_hop_by_hop(headers, &named, &[]);
            let switch_only = [
                "sec-websocket-accept",
                "sec-websocket-key",
                "content-length",
            ];
            for name in switch_only {
                assert!(!headers.contains_key(name), "{name} on the stream's 200");
            }
            assert_kept(&app.headers, headers, |name: &HeaderName| {
                is_hop_by_hop(name, &named) || switch_only.contains(&name.as_str())
            });
            Some(reply.into_parts().0)
        }
        Err(Refusal::NotSwitching(status)) => {
            assert_eq!(status, app.status);
            assert_ne!(status, StatusCode::SWITCHING_PROTOCOLS);
            // A 2xx is the sidecar's 502 (tunnel.rs); the rest is relayed.
            if !status.is_success() {
                check_relay(app, &response::relay(app, Version::HTTP_2));
            }
            None
        }
        Err(refusal) => {
            assert_eq!(app.status, StatusCode::SWITCHING_PROTOCOLS, "{refusal}");
            None
        }
    }
}

/// The front's upgrade stage on the sidecar's answer: the client's 101 for
/// a 200 (an HTTP/1.1 client), else the answer relayed.
fn front(sidecar: &Parts, protocol: &str, client_key: Option<&str>) {
    if sidecar.status != StatusCode::OK {
        let relayed = response::relay(sidecar, Version::HTTP_11);
        check_relay(sidecar, &relayed);
        assert_response_reads_back(&relayed);
        return;
    }
    let switched = response::switched_to_h1(sidecar, protocol, client_key.map(str::as_bytes));
    assert_eq!(switched.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(switched.version(), Version::HTTP_11);
    let headers = switched.headers();
    assert_clean(headers);
    assert_switching_fields(headers, protocol);
    assert_eq!(headers[CONNECTION], "Upgrade");
    let accepts = headers
        .get_all("sec-websocket-accept")
        .iter()
        .collect::<Vec<_>>();
    match client_key {
        Some(key) => {
            let accept = websocket::accept_for(key.as_bytes());
            assert_eq!(
                accepts,
                [accept.as_str()],
                "the accept for the client's key"
            );
        }
        None => assert!(accepts.is_empty(), "an accept without a key"),
    }
    // RFC 9110 §8.6: no Content-Length on a 1xx.
    assert!(!headers.contains_key("content-length"));
    let named = connection_named(&sidecar.headers);
    assert_no_hop_by_hop(
        headers,
        &named,
        &["upgrade", "connection", "sec-websocket-accept"],
    );
    let rebuilt = [
        "upgrade",
        "connection",
        "sec-websocket-accept",
        "sec-websocket-key",
    ];
    assert_kept(&sidecar.headers, headers, |name: &HeaderName| {
        is_hop_by_hop(name, &named) || rebuilt.contains(&name.as_str()) || name == "content-length"
    });
    assert_response_reads_back(&switched);
}

/// A relayed response: same status, no hop-by-hop field, end-to-end kept.
fn check_relay(original: &Parts, relayed: &Response<()>) {
    assert_eq!(relayed.status(), original.status);
    let named = connection_named(&original.headers);
    let headers = relayed.headers();
    assert_clean(headers);
    assert_no_hop_by_hop(headers, &named, &[]);
    assert_kept(&original.headers, headers, |name: &HeaderName| {
        is_hop_by_hop(name, &named)
    });
    assert_eq!(
        headers.len(),
        count_kept(&original.headers, &named),
        "a relay adds nothing"
    );
}

fn count_kept(headers: &HeaderMap, named: &[HeaderName]) -> usize {
    headers
        .keys()
        .filter(|name| !is_hop_by_hop(name, named))
        .map(|name| count(headers, name))
        .sum()
}
