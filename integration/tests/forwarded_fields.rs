//! Client address and request identity, end to end through front, sidecar
//! and app: what the app receives in `X-Forwarded-For`,
//! `X-Forwarded-Proto`, `Forwarded`, `X-Request-Id`, `traceparent` and
//! `tracestate`, for plain requests and tunnels, from HTTP/1.1 and
//! HTTP/2-over-TLS clients, trusted and not; and the access lines of both
//! binaries, which carry the same `request_id` and `trace_id` and the
//! client address the front settled on.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use h2hop_front::ForwardedFields;
use h2hop_integration::app::Recorded;
use h2hop_integration::client::{
    body_bytes, close_handshake, full, http1_connect, request, ws_connect,
};
use h2hop_integration::h2_client::{extended_connect, h2_connect};
use h2hop_integration::harness::{Pair, within};
use h2hop_integration::logs::Captured;
use http::{HeaderMap, Method, Request, StatusCode};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// A plain GET through the front's HTTP/1.1 listener with `fields`; the
/// response's fields and what the app received.
async fn get(pair: &Pair, fields: &[(&str, &str)]) -> (HeaderMap, Recorded) {
    let mut send = http1_connect(pair.front).await.unwrap();
    let mut get = request(Method::GET, pair.front, "/fields", full("")).unwrap();
    for (name, value) in fields {
        let name = http::header::HeaderName::from_bytes(name.as_bytes()).unwrap();
        get.headers_mut().append(name, value.parse().unwrap());
    }
    let response = send.send_request(get).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(body_bytes(response).await.unwrap(), "hello from app");
    (headers, last_request(pair))
}

/// The last request the app received.
fn last_request(pair: &Pair) -> Recorded {
    pair.app.requests().pop().expect("the app got a request")
}

/// Every value of `name` the app received, in order.
fn values<'a>(seen: &'a Recorded, name: &str) -> Vec<&'a str> {
    let all = seen.headers.get_all(name).iter();
    all.map(|value| value.to_str().unwrap()).collect()
}

/// The app's one `X-Request-Id`, checked to be a fresh version 4 UUID.
fn fresh_uuid(seen: &Recorded) -> String {
    let ids = values(seen, "x-request-id");
    assert_eq!(ids.len(), 1, "{ids:?}");
    let id = ids[0];
    let groups: Vec<usize> = id.split('-').map(str::len).collect();
    assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
    assert_eq!(&id[14..15], "4", "{id}");
    id.to_owned()
}

/// Each field a client might forge to pass for someone else.
const SPOOFED: [(&str, &str); 5] = [
    ("x-forwarded-for", "6.6.6.6"),
    ("x-forwarded-proto", "https"),
    ("x-forwarded-host", "bank.example"),
    ("forwarded", "for=6.6.6.6;proto=https"),
    ("x-request-id", "chosen-by-the-client"),
];

/// From a peer nobody trusts (the default), the forged fields are gone:
/// the app sees the real address, `http`, and a fresh UUID, which both
/// access lines carry; the front's names the client.
#[tokio::test]
async fn an_untrusted_clients_fields_are_replaced() {
    let (log, _guard) = Captured::install();
    within(async {
        let pair = Pair::builder().h2c().start().await.unwrap();
        let (response, seen) = get(&pair, &SPOOFED).await;
        assert_eq!(values(&seen, "x-forwarded-for"), ["127.0.0.1"]);
        assert_eq!(values(&seen, "x-forwarded-proto"), ["http"]);
        assert!(values(&seen, "x-forwarded-host").is_empty());
        assert!(values(&seen, "forwarded").is_empty());
        let id = fresh_uuid(&seen);
        assert!(!response.contains_key("x-request-id"), "no echo by default");

        let id_field = format!("request_id=\"{id}\"");
        let front_route = format!("route=\"{}\"", pair.sidecar);
        let front = log
            .wait_for(&["h2hop::access", &id_field, &front_route])
            .await;
        assert!(front.contains(" client=127.0.0.1 "), "{front}");
        assert!(front.contains(" trace_id=- "), "{front}");
        let sidecar = log
            .wait_for(&["h2hop::access", &id_field, "route=\"-\""])
            .await;
        assert!(sidecar.contains(" client=- "), "{sidecar}");
    })
    .await;
}

/// From a trusted peer (127.0.0.1, and a private network behind it), the
/// fields are kept and extended, the request id kept, and the client is
/// the rightmost address not trusted.
#[tokio::test]
async fn a_trusted_proxys_fields_are_kept_and_extended() {
    let (log, _guard) = Captured::install();
    within(async {
        let pair = Pair::builder()
            .h2c()
            .front_config(|config| {
                config.client_fields.trusted_proxies = "127.0.0.1, 10.0.0.0/8".parse().unwrap();
            })
            .start()
            .await
            .unwrap();
        let fields = [
            ("x-forwarded-for", "6.6.6.6, 203.0.113.9"),
            ("x-forwarded-for", "10.1.2.3"),
            ("x-forwarded-proto", "https"),
            ("x-request-id", "edge-42"),
        ];
        let (_, seen) = get(&pair, &fields).await;
        assert_eq!(
            values(&seen, "x-forwarded-for"),
            ["6.6.6.6, 203.0.113.9, 10.1.2.3, 127.0.0.1"]
        );
        assert_eq!(values(&seen, "x-forwarded-proto"), ["https"]);
        assert_eq!(values(&seen, "x-request-id"), ["edge-42"]);

        let front = log
            .wait_for(&[
                "h2hop::access",
                "request_id=\"edge-42\"",
                "client=203.0.113.9",
            ])
            .await;
        assert!(
            front.contains(&format!("route=\"{}\"", pair.sidecar)),
            "{front}"
        );
        log.wait_for(&["h2hop::access", "request_id=\"edge-42\"", "route=\"-\""])
            .await;
    })
    .await;
}

/// An HTTP/2 client over TLS: `https` in `X-Forwarded-Proto`, for a plain
/// request and for an RFC 8441 WebSocket alike; the tunnel's upgrade
/// request at the app carries the same fields as a plain request.
#[tokio::test]
async fn an_http2_tls_client_is_https_for_requests_and_tunnels() {
    within(async {
        let pair = Pair::builder().h2c().client_tls().start().await.unwrap();
        let send = h2_connect(&pair).await.unwrap();

        let mut ready = send.clone().ready().await.unwrap();
        let mut get = Request::get("https://localhost/fields").body(()).unwrap();
        get.headers_mut()
            .insert("x-forwarded-for", "6.6.6.6".parse().unwrap());
        let (response, _) = ready.send_request(get, true).unwrap();
        assert_eq!(response.await.unwrap().status(), StatusCode::OK);
        let seen = last_request(&pair);
        assert_eq!(values(&seen, "x-forwarded-for"), ["127.0.0.1"]);
        assert_eq!(values(&seen, "x-forwarded-proto"), ["https"]);
        fresh_uuid(&seen);

        let mut ready = send.ready().await.unwrap();
        let mut connect = extended_connect("websocket", "/ws").unwrap();
        connect
            .headers_mut()
            .insert("traceparent", TRACEPARENT.parse().unwrap());
        connect
            .headers_mut()
            .insert("x-forwarded-for", "6.6.6.6".parse().unwrap());
        let (response, _stream) = ready.send_request(connect, false).unwrap();
        assert_eq!(response.await.unwrap().status(), StatusCode::OK);
        let seen = last_request(&pair);
        assert_eq!(values(&seen, "upgrade"), ["websocket"]);
        assert_eq!(values(&seen, "x-forwarded-for"), ["127.0.0.1"]);
        assert_eq!(values(&seen, "x-forwarded-proto"), ["https"]);
        assert_eq!(values(&seen, "traceparent"), [TRACEPARENT]);
        fresh_uuid(&seen);
    })
    .await;
}

/// `--forwarded-fields forwarded`: RFC 7239 `Forwarded` with `for`,
/// `host` and `proto`, and no `X-Forwarded-For`; `both` writes each.
#[tokio::test]
async fn forwarded_mode_writes_rfc_7239() {
    within(async {
        let pair = Pair::builder()
            .h2c()
            .front_config(|config| config.client_fields.write = ForwardedFields::Forwarded)
            .start()
            .await
            .unwrap();
        let (_, seen) = get(&pair, &SPOOFED).await;
        let expected = format!("for=127.0.0.1;host=\"{}\";proto=http", pair.front);
        assert_eq!(values(&seen, "forwarded"), [expected.as_str()]);
        assert!(values(&seen, "x-forwarded-for").is_empty());
        assert!(values(&seen, "x-forwarded-proto").is_empty());

        let both = Pair::builder()
            .h2c()
            .front_config(|config| config.client_fields.write = ForwardedFields::Both)
            .start()
            .await
            .unwrap();
        let (_, seen) = get(&both, &SPOOFED).await;
        let expected = format!("for=127.0.0.1;host=\"{}\";proto=http", both.front);
        assert_eq!(values(&seen, "forwarded"), [expected.as_str()]);
        assert_eq!(values(&seen, "x-forwarded-for"), ["127.0.0.1"]);
        assert_eq!(values(&seen, "x-forwarded-proto"), ["http"]);
    })
    .await;
}

/// An HTTP/1.1 WebSocket: the app's upgrade request carries the settled
/// fields and the client's trace context; both tunnel lines carry the
/// same request id and trace id.
#[tokio::test]
async fn a_websocket_upgrade_carries_the_same_fields() {
    let (log, _guard) = Captured::install();
    within(async {
        let pair = Pair::builder().h2c().start().await.unwrap();
        let mut fields = SPOOFED.to_vec();
        fields.push(("traceparent", TRACEPARENT));
        fields.push(("tracestate", "congo=t61rcWkgMzE"));
        let (mut ws, _) = ws_connect(pair.front, "/ws", &fields).await.unwrap();
        let seen = last_request(&pair);
        assert_eq!(values(&seen, "upgrade"), ["websocket"]);
        assert_eq!(values(&seen, "x-forwarded-for"), ["127.0.0.1"]);
        assert_eq!(values(&seen, "x-forwarded-proto"), ["http"]);
        assert!(values(&seen, "forwarded").is_empty());
        assert_eq!(values(&seen, "traceparent"), [TRACEPARENT]);
        assert_eq!(values(&seen, "tracestate"), ["congo=t61rcWkgMzE"]);
        let id = fresh_uuid(&seen);
        close_handshake(&mut ws, 1000, "bye").await.unwrap();
        drop(ws);

        let id_field = format!("request_id=\"{id}\"");
        let trace_field = format!("trace_id={TRACE_ID}");
        let needles = ["h2hop::access", "kind=\"tunnel\"", &id_field, &trace_field];
        let front = log
            .wait_for(&[&needles[..], &["status=101"]].concat())
            .await;
        assert!(front.contains(" client=127.0.0.1 "), "{front}");
        log.wait_for(&[&needles[..], &["status=200"]].concat())
            .await;
    })
    .await;
}

/// `--request-id-echo`: the response carries the id the app received.
#[tokio::test]
async fn the_request_id_is_echoed_when_asked() {
    within(async {
        let pair = Pair::builder()
            .h2c()
            .front_config(|config| config.client_fields.request_id_echo = true)
            .start()
            .await
            .unwrap();
        let (response, seen) = get(&pair, &[]).await;
        let id = fresh_uuid(&seen);
        assert_eq!(response["x-request-id"], id.as_str());
    })
    .await;
}

/// A valid `traceparent` goes to the app as it came, with its
/// `tracestate`; an invalid one is dropped with its `tracestate`; with
/// `--start-trace` a request without one gets a new trace, whose id the
/// front's and the sidecar's lines carry.
#[tokio::test]
async fn trace_context_is_propagated_dropped_or_started() {
    let (log, _guard) = Captured::install();
    within(async {
        let pair = Pair::builder().h2c().start().await.unwrap();
        let kept = [("traceparent", TRACEPARENT), ("tracestate", "a=1,b=2")];
        let (_, seen) = get(&pair, &kept).await;
        assert_eq!(values(&seen, "traceparent"), [TRACEPARENT]);
        assert_eq!(values(&seen, "tracestate"), ["a=1,b=2"]);

        let invalid = [
            (
                "traceparent",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            ),
            ("tracestate", "a=1"),
        ];
        let (_, seen) = get(&pair, &invalid).await;
        assert!(values(&seen, "traceparent").is_empty());
        assert!(values(&seen, "tracestate").is_empty());
        let (_, seen) = get(&pair, &[]).await;
        assert!(
            values(&seen, "traceparent").is_empty(),
            "not started by default"
        );

        let starting = Pair::builder()
            .h2c()
            .front_config(|config| config.client_fields.start_trace = true)
            .start()
            .await
            .unwrap();
        let (_, seen) = get(&starting, &[]).await;
        let started = values(&seen, "traceparent");
        assert_eq!(started.len(), 1);
        let parts: Vec<&str> = started[0].split('-').collect();
        assert_eq!(parts.len(), 4, "{started:?}");
        assert_eq!((parts[0], parts[3]), ("00", "01"), "{started:?}");
        let trace_id = parts[1];
        assert_eq!(trace_id.len(), 32);
        assert_ne!(trace_id, "0".repeat(32));
        assert_ne!(parts[2], "0".repeat(16));

        let trace_field = format!("trace_id={trace_id}");
        let id_field = format!("request_id=\"{}\"", fresh_uuid(&seen));
        let front_route = format!("route=\"{}\"", starting.sidecar);
        let both = ["h2hop::access", trace_field.as_str(), id_field.as_str()];
        log.wait_for(&[&both[..], &[front_route.as_str()]].concat())
            .await;
        log.wait_for(&[&both[..], &["route=\"-\""]].concat()).await;
    })
    .await;
}

/// `--log-format json`: `client`, `request_id` and `trace_id` are fields
/// of their own.
#[tokio::test]
async fn json_access_lines_carry_client_request_id_and_trace_id() {
    let (log, _guard) = Captured::install_json();
    within(async {
        let pair = Pair::builder().h2c().start().await.unwrap();
        let fields = [("traceparent", TRACEPARENT)];
        let (_, seen) = get(&pair, &fields).await;
        let id = fresh_uuid(&seen);
        let route = format!("\"route\":\"{}\"", pair.sidecar);
        let line = log.wait_for(&["h2hop::access", &route]).await;
        let object: serde_json::Value = serde_json::from_str(&line).unwrap();
        let fields = &object["fields"];
        assert_eq!(fields["client"], "127.0.0.1", "{line}");
        assert_eq!(fields["request_id"], id.as_str(), "{line}");
        assert_eq!(fields["trace_id"], TRACE_ID, "{line}");
    })
    .await;
}
