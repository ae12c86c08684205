//! Per-route header rules end to end (front → sidecar → app): request
//! fields added, overwritten, appended and removed as the app sees them,
//! response fields added and removed as the client sees them, with the
//! `%CLIENT_ADDRESS%`, `%REQUEST_ID%`, `%ROUTE%` and `%%` substitutions;
//! for an HTTP/1.1 client, an HTTP/2 (TLS) client, a WebSocket tunnel over
//! HTTP/1.1 (the app's upgrade request, the client's 101) and over HTTP/2
//! (the client's 200), a tunnel the app refuses, and not on the front's own
//! error answers.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use bytes::Bytes;
use h2hop_integration::app::Recorded;
use h2hop_integration::client::{echo_roundtrip, raw_request, raw_upgrade, ws_connect};
use h2hop_integration::h2_client::extended_connect;
use h2hop_integration::harness::within;
use h2hop_integration::routed::Routed;
use http::{HeaderMap, Method, Request, StatusCode};
use tokio_tungstenite::tungstenite::Message;

/// Route `edge` to app A, with every kind of rule; `/down` goes to a
/// cluster where nothing listens, with the same response rules.
const RULES: &str = r#"
[[cluster]]
name = "a"
endpoints = ["{A}"]
h2c = true

[[cluster]]
name = "down"
endpoints = ["{DOWN}"]
h2c = true

[[route]]
name = "down-route"
path_prefix = "/down"
cluster = "down"
response_headers_to_add = [{ name = "x-served-by", value = "%ROUTE%" }]

[[route]]
name = "edge"
cluster = "a"
request_headers_to_add = [
  { name = "x-env", value = "prod" },
  { name = "x-tag", value = "front", append = true },
  { name = "x-who", value = "%CLIENT_ADDRESS%|%REQUEST_ID%|%ROUTE%|100%%" },
]
request_headers_to_remove = ["x-debug"]
response_headers_to_add = [
  { name = "x-served-by", value = "%ROUTE%" },
  { name = "x-echo-id", value = "id=%REQUEST_ID%" },
]
response_headers_to_remove = ["x-e2e"]
"#;

/// The pair with route `edge`; the front trusts loopback peers, so the
/// client's `X-Request-Id` is kept (an untrusted one is replaced, see
/// `missing_request_id_is_generated_and_substituted`).
async fn start() -> anyhow::Result<Routed> {
    Routed::start_with(RULES, |config| {
        config.client_fields.trusted_proxies = "127.0.0.0/8".parse().unwrap();
    })
    .await
}

/// The fields a client sends in every test: one to overwrite (twice, so
/// that overwrite is seen to replace every line), one to append to, one
/// to remove, one to keep, and the request id.
const CLIENT_FIELDS: [(&str, &str); 6] = [
    ("x-env", "dev"),
    ("x-env", "test"),
    ("x-tag", "client"),
    ("x-debug", "1"),
    ("x-keep", "kept"),
    ("x-request-id", "rid-7"),
];

/// Every value of `name` in `headers`, in order.
fn all<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(name)
        .iter()
        .map(|value| value.to_str().unwrap())
        .collect()
}

/// What every request through route `edge` must look like at the app.
fn assert_request_rules(seen: &Recorded) {
    let headers = &seen.headers;
    assert_eq!(all(headers, "x-env"), ["prod"], "{headers:?}");
    assert_eq!(all(headers, "x-tag"), ["client", "front"], "{headers:?}");
    assert!(!headers.contains_key("x-debug"), "{headers:?}");
    assert_eq!(all(headers, "x-keep"), ["kept"], "{headers:?}");
    assert_eq!(
        all(headers, "x-who"),
        ["127.0.0.1|rid-7|edge|100%"],
        "{headers:?}"
    );
}

/// What every response from route `edge`'s cluster must look like at the
/// client (the app's `/hop-fields` and `/ws/hop-fields` send `x-e2e`).
fn assert_response_rules(headers: &HeaderMap) {
    assert_eq!(all(headers, "x-served-by"), ["edge"], "{headers:?}");
    assert_eq!(all(headers, "x-echo-id"), ["id=rid-7"], "{headers:?}");
    assert!(!headers.contains_key("x-e2e"), "{headers:?}");
}

/// The headers of a hand-read HTTP/1.1 response head, as a map.
fn header_map(headers: &[(String, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    map
}

fn h1_head(path: &str) -> String {
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: a.test\r\n");
    for (name, value) in CLIENT_FIELDS {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    head
}

/// HTTP/1.1 client: request rules at the app, response rules at the client.
#[tokio::test]
async fn http1_request_and_response_fields() {
    within(async {
        let routed = start().await.unwrap();
        let [app, _] = &routed.apps;
        let response = raw_request(routed.front, &h1_head("/hop-fields"))
            .await
            .unwrap();
        assert_eq!(response.status, 200);
        assert_response_rules(&header_map(&response.headers));
        let seen = app.requests().pop().unwrap();
        assert_eq!(seen.uri, "/hop-fields");
        assert_request_rules(&seen);
    })
    .await;
}

/// HTTP/2 client over TLS: the same rules, on an ordinary stream.
#[tokio::test]
async fn http2_request_and_response_fields() {
    within(async {
        let routed = start().await.unwrap();
        let [app, _] = &routed.apps;
        let send = routed.h2_connect().await.unwrap();
        let mut request = Request::get("https://localhost/hop-fields");
        for (name, value) in CLIENT_FIELDS {
            request = request.header(name, value);
        }
        let mut ready = send.ready().await.unwrap();
        let (response, _) = ready.send_request(request.body(()).unwrap(), true).unwrap();
        let response = response.await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_response_rules(response.headers());
        let seen = app.requests().pop().unwrap();
        assert_eq!(seen.uri.path(), "/hop-fields");
        assert_request_rules(&seen);
    })
    .await;
}

/// WebSocket over HTTP/1.1: the app's upgrade request carries the request
/// rules, the client's 101 the response rules, and the tunnel still works.
#[tokio::test]
async fn websocket_upgrade_and_101_fields() {
    within(async {
        let routed = start().await.unwrap();
        let [app, _] = &routed.apps;
        let mut extra = vec![("Host", "a.test")];
        extra.extend(CLIENT_FIELDS);
        let (mut ws, switched) = ws_connect(routed.front, "/ws/hop-fields", &extra)
            .await
            .unwrap();
        assert_eq!(switched.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_response_rules(switched.headers());
        let seen = app.requests().pop().unwrap();
        assert_eq!(seen.headers["upgrade"], "websocket");
        assert_request_rules(&seen);
        let echo = echo_roundtrip(&mut ws, Message::text("still a tunnel"))
            .await
            .unwrap();
        assert_eq!(echo, Message::text("still a tunnel"));
    })
    .await;
}

/// WebSocket over HTTP/2 (RFC 8441): the app's upgrade request carries the
/// request rules, the client's 200 the response rules.
#[tokio::test]
async fn extended_connect_and_200_fields() {
    within(async {
        let routed = start().await.unwrap();
        let [app, _] = &routed.apps;
        let send = routed.h2_connect().await.unwrap();
        let mut ready = send.ready().await.unwrap();
        assert!(ready.is_extended_connect_protocol_enabled());
        let mut request = extended_connect("websocket", "/ws/hop-fields").unwrap();
        for (name, value) in CLIENT_FIELDS {
            request.headers_mut().append(name, value.parse().unwrap());
        }
        let (response, mut stream) = ready.send_request(request, false).unwrap();
        let response = response.await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_response_rules(response.headers());
        let seen = app.requests().pop().unwrap();
        assert_eq!(seen.method, Method::GET);
        assert_eq!(seen.headers["upgrade"], "websocket");
        assert_request_rules(&seen);
        stream.send_data(Bytes::new(), true).unwrap();
    })
    .await;
}

/// A tunnel the app refuses: the relayed refusal is the cluster's answer,
/// so it gets the response rules too.
#[tokio::test]
async fn refused_tunnel_gets_response_fields() {
    within(async {
        let routed = start().await.unwrap();
        let refused = raw_upgrade(
            routed.front,
            "/status/403",
            "Upgrade",
            &[("X-Request-Id", "rid-7"), ("X-E2e", "from-client")],
        )
        .await
        .unwrap();
        assert_eq!(refused.status, 403);
        assert_eq!(refused.header_all("x-served-by"), ["edge"]);
        assert_eq!(refused.header_all("x-echo-id"), ["id=rid-7"]);
        let seen = routed.apps[0].requests().pop().unwrap();
        assert_eq!(seen.uri, "/status/403");
        assert_eq!(all(&seen.headers, "x-who"), ["127.0.0.1|rid-7|edge|100%"]);
    })
    .await;
}

/// The front's own answers (here a 502/503 for a cluster it cannot reach)
/// are not the cluster's: no response rule applies to them.
#[tokio::test]
async fn front_errors_get_no_response_fields() {
    within(async {
        let routed = start().await.unwrap();
        let response = raw_request(routed.front, &h1_head("/down/x"))
            .await
            .unwrap();
        assert!((500..600).contains(&response.status), "{}", response.status);
        assert!(
            response.header("x-served-by").is_none(),
            "{:?}",
            response.headers
        );
        // The same route's answer from a cluster would carry it: shown by
        // the other tests for route `edge`.
    })
    .await;
}

/// Without a request id (or with one from an untrusted client), the front
/// generates one, and `%REQUEST_ID%` is that id; appending to a field the
/// client did not send adds it.
#[tokio::test]
async fn missing_request_id_is_generated_and_substituted() {
    within(async {
        let routed = Routed::start(RULES).await.unwrap();
        let head = "GET /hop-fields HTTP/1.1\r\nHost: a.test\r\nX-Request-Id: rid-7\r\nConnection: close\r\n\r\n";
        let response = raw_request(routed.front, head).await.unwrap();
        assert_eq!(response.status, 200);
        let seen = routed.apps[0].requests().pop().unwrap();
        let id = all(&seen.headers, "x-request-id");
        assert_eq!(id.len(), 1, "{:?}", seen.headers);
        assert_ne!(id[0], "rid-7");
        assert_eq!(id[0].len(), 36, "a UUID: {}", id[0]);
        assert_eq!(response.header_all("x-echo-id"), [format!("id={}", id[0])]);
        assert_eq!(
            all(&seen.headers, "x-who"),
            [format!("127.0.0.1|{}|edge|100%", id[0])]
        );
        assert_eq!(all(&seen.headers, "x-tag"), ["front"]);
    })
    .await;
}
