//! A real load balancer before the front: HAProxy in `mode tcp` with
//! `send-proxy-v2`, the front requiring a PROXY header from it. A client
//! bound to 127.0.0.2 connects to HAProxy on 127.0.0.1, and the front
//! (which sees only HAProxy's 127.0.0.1) must log the client as 127.0.0.2,
//! for a plain request on the plain listener, a WebSocket, and a request
//! on the TLS listener (HAProxy passing TLS through untouched). The last
//! test shows the fields the app then receives, for a plain request and a
//! WebSocket (run it with `--nocapture` to see them).
//!
//! Needs the `haproxy` program (Debian `haproxy`): without it each test
//! says so loudly and passes, unless `H2HOP_REQUIRE_EXTERNAL=1`.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::{SinkExt as _, StreamExt as _};
use h2hop_front::{Config, ProxyMode, ProxyProtocol};
use h2hop_integration::haproxy::{self, Haproxy};
use h2hop_integration::harness::{Pair, within};
use h2hop_integration::logs::Captured;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;

const GET: &[u8] = b"GET /echo HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n";

/// HAProxy relaying TCP to `target` with a PROXY v2 header.
async fn haproxy_before(program: &Path, target: SocketAddr) -> Haproxy {
    let config = |addr: SocketAddr| {
        format!(
            "global\n    maxconn 100\n\
             defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\
             frontend lb\n    bind {addr}\n    default_backend h2hop\n\
             backend h2hop\n    server front {target} send-proxy-v2\n"
        )
    };
    Haproxy::start(program, "proxy-protocol-haproxy", config)
        .await
        .unwrap()
}

/// Where haproxy is installed, or `None` when the test is to be skipped.
fn haproxy_or_skip(test: &str) -> Option<PathBuf> {
    haproxy::haproxy_or_skip(test).unwrap()
}

fn required_from_haproxy(config: &mut Config) {
    config.proxy_protocol = ProxyProtocol {
        mode: ProxyMode::Required,
        from: "127.0.0.1".parse().unwrap(),
    };
}

/// A TCP connection to `addr` from 127.0.0.2, an address only the PROXY
/// header can tell the front.
async fn connect_from_127_0_0_2(addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

async fn front_line_for(log: &Captured, client: SocketAddr, kind: &str) -> String {
    let peer = format!(" peer={client} ");
    let kind = format!("kind=\"{kind}\"");
    log.wait_for(&["h2hop::access", &kind, "route=\"127.0.0.1", &peer])
        .await
}

#[tokio::test]
async fn a_request_through_haproxy_send_proxy_v2_is_the_clients() {
    let Some(program) = haproxy_or_skip("a_request_through_haproxy_send_proxy_v2_is_the_clients")
    else {
        return;
    };
    let (log, _guard) = Captured::install();
    within(async {
        let pair = Pair::builder()
            .h2c()
            .front_config(required_from_haproxy)
            .start()
            .await
            .unwrap();
        let haproxy = haproxy_before(&program, pair.front).await;

        let mut client = connect_from_127_0_0_2(haproxy.addr).await;
        let client_addr = client.local_addr().unwrap();
        client.write_all(GET).await.unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
        let line = front_line_for(&log, client_addr, "request").await;
        assert!(line.contains("status=200"), "{line}");

        // A WebSocket through it: the tunnel's line names the client too.
        let stream = connect_from_127_0_0_2(haproxy.addr).await;
        let ws_addr = stream.local_addr().unwrap();
        let url = format!("ws://{}/ws", haproxy.addr);
        let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
        ws.send(Message::text("via haproxy")).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::text("via haproxy")
        );
        ws.close(None).await.unwrap();
        while ws.next().await.is_some() {}
        front_line_for(&log, ws_addr, "tunnel").await;
    })
    .await;
}

#[tokio::test]
async fn tls_through_haproxy_send_proxy_v2_is_the_clients() {
    let Some(program) = haproxy_or_skip("tls_through_haproxy_send_proxy_v2_is_the_clients") else {
        return;
    };
    let (log, _guard) = Captured::install();
    within(async {
        let pair = Pair::builder()
            .h2c()
            .client_tls()
            .front_config(required_from_haproxy)
            .start()
            .await
            .unwrap();
        let haproxy = haproxy_before(&program, pair.front_tls.unwrap()).await;

        let tcp = connect_from_127_0_0_2(haproxy.addr).await;
        let client_addr = tcp.local_addr().unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pair.pki.ca_der()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut tls = TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        tls.write_all(GET).await.unwrap();
        let mut answer = Vec::new();
        // The front closes without close_notify after Connection: close
        // at times; what was read before counts.
        let _ = tls.read_to_end(&mut answer).await;
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
        front_line_for(&log, client_addr, "request").await;
    })
    .await;
}

/// The fields of `seen` that say who the client is and which request and
/// trace this is, one per line.
fn client_view(seen: &h2hop_integration::app::Recorded) -> String {
    let names = [
        "x-forwarded-for",
        "x-forwarded-proto",
        "forwarded",
        "x-request-id",
        "traceparent",
        "tracestate",
    ];
    let mut view = format!("{} {}\n", seen.method, seen.uri);
    for name in names {
        for value in seen.headers.get_all(name) {
            view.push_str(&format!("  {name}: {}\n", value.to_str().unwrap()));
        }
    }
    view
}

/// HAProxy (`mode tcp`, `send-proxy-v2`) → front → sidecar → app: the app
/// sees the client HAProxy saw (127.0.0.2) in `X-Forwarded-For` and
/// `Forwarded`, never what the client forged, a request id of the front's
/// (the one the client gets back and both access lines carry), and the
/// client's trace passed on; a WebSocket's upgrade request the same.
#[tokio::test]
async fn the_app_sees_the_client_fields_through_haproxy() {
    let Some(program) = haproxy_or_skip("the_app_sees_the_client_fields_through_haproxy") else {
        return;
    };
    let (log, _guard) = Captured::install();
    within(async {
        let pair = Pair::builder()
            .h2c()
            .front_config(|config| {
                required_from_haproxy(config);
                config.client_fields.write = h2hop_front::ForwardedFields::Both;
                config.client_fields.request_id_echo = true;
                config.client_fields.start_trace = true;
            })
            .start()
            .await
            .unwrap();
        let haproxy = haproxy_before(&program, pair.front).await;
        let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

        let mut client = connect_from_127_0_0_2(haproxy.addr).await;
        let forged = format!(
            "GET /echo?plain HTTP/1.1\r\nHost: app\r\nX-Forwarded-For: 6.6.6.6\r\n\
             Forwarded: for=6.6.6.6\r\nX-Request-Id: forged\r\ntraceparent: {trace}\r\n\
             tracestate: vendor=1\r\nConnection: close\r\n\r\n"
        );
        client.write_all(forged.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer).to_string();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let plain = pair.app.requests().pop().unwrap();
        eprintln!(
            "the app received, for a plain request:\n{}",
            client_view(&plain)
        );
        let fields = &plain.headers;
        assert_eq!(fields["x-forwarded-for"], "127.0.0.2");
        assert_eq!(fields["x-forwarded-proto"], "http");
        assert_eq!(fields["forwarded"], "for=127.0.0.2;host=app;proto=http");
        assert_eq!(fields["traceparent"], trace);
        assert_eq!(fields["tracestate"], "vendor=1");
        let id = fields["x-request-id"].to_str().unwrap();
        assert_eq!(id.len(), 36, "a UUID, not the forged id: {id}");
        assert!(answer.contains(&format!("x-request-id: {id}")), "{answer}");
        let line = log
            .wait_for(&[
                "h2hop::access",
                "client=127.0.0.2",
                id,
                "4bf92f3577b34da6a3ce929d0e0e4736",
            ])
            .await;
        assert!(line.contains("kind=\"request\""), "{line}");

        // A WebSocket without a trace of its own: the front starts one.
        let stream = connect_from_127_0_0_2(haproxy.addr).await;
        let request = http::Request::get(format!("ws://{}/ws?tunnel", haproxy.addr))
            .header("host", "app")
            .header("x-forwarded-for", "6.6.6.6")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("sec-websocket-version", "13")
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .body(())
            .unwrap();
        let (mut ws, response) = tokio_tungstenite::client_async(request, stream)
            .await
            .unwrap();
        ws.send(Message::text("via haproxy")).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::text("via haproxy")
        );
        let tunnel = pair.app.requests().pop().unwrap();
        eprintln!(
            "the app received, for a WebSocket:\n{}",
            client_view(&tunnel)
        );
        let fields = &tunnel.headers;
        assert_eq!(fields["upgrade"], "websocket");
        assert_eq!(fields["x-forwarded-for"], "127.0.0.2");
        assert_eq!(fields["forwarded"], "for=127.0.0.2;host=app;proto=http");
        assert_eq!(fields["x-request-id"], response.headers()["x-request-id"]);
        let started = fields["traceparent"].to_str().unwrap();
        assert!(
            started.starts_with("00-") && started.ends_with("-01"),
            "{started}"
        );
        assert!(!started.contains("4bf92f3577b34da6a3ce929d0e0e4736"));
        ws.close(None).await.unwrap();
        while ws.next().await.is_some() {}
        let trace_id = &started[3..35];
        log.wait_for(&[
            "h2hop::access",
            "kind=\"tunnel\"",
            "client=127.0.0.2",
            trace_id,
        ])
        .await;
    })
    .await;
}
