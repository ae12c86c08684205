//! A real load balancer before the front: HAProxy in `mode tcp` with
//! `send-proxy-v2`, the front requiring a PROXY header from it. A client
//! bound to 127.0.0.2 connects to HAProxy on 127.0.0.1, and the front
//! (which sees only HAProxy's 127.0.0.1) must log the client as 127.0.0.2,
//! for a plain request on the plain listener, a WebSocket, and a request
//! on the TLS listener (HAProxy passing TLS through untouched).
//!
//! Needs the `haproxy` program (Debian `haproxy`): without it each test
//! says so loudly and passes, unless `H2HOP_REQUIRE_EXTERNAL=1`.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use h2hop_front::{Config, ProxyMode, ProxyProtocol};
use h2hop_integration::harness::{Pair, within};
use h2hop_integration::logs::Captured;
use h2hop_integration::process::{Output, Process, find_program, free_port};
use h2hop_integration::scratch::Scratch;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;

const GET: &[u8] = b"GET /echo HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n";

/// Where haproxy is installed, or `None` after a loud `!!! SKIPPED` line;
/// with `H2HOP_REQUIRE_EXTERNAL=1` a missing haproxy fails the test.
fn haproxy_or_skip(test: &str) -> Option<PathBuf> {
    if let Some(program) = find_program("haproxy") {
        return Some(program);
    }
    if std::env::var("H2HOP_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1") {
        panic!("{test}: haproxy is not installed and H2HOP_REQUIRE_EXTERNAL=1");
    }
    eprintln!("!!! SKIPPED {test}: haproxy is not installed (apt-get install haproxy)");
    None
}

/// One haproxy process relaying TCP to `target` with a PROXY v2 header;
/// dropping it kills and reaps it.
struct Haproxy {
    addr: SocketAddr,
    _process: Process,
    _scratch: Scratch,
}

impl Haproxy {
    async fn start(program: &Path, target: SocketAddr) -> Haproxy {
        let scratch = Scratch::create("proxy-protocol-haproxy").unwrap();
        let addr = free_port().unwrap();
        let config = format!(
            "global\n\
             \x20   maxconn 100\n\
             defaults\n\
             \x20   mode tcp\n\
             \x20   timeout connect 5s\n\
             \x20   timeout client 30s\n\
             \x20   timeout server 30s\n\
             frontend lb\n\
             \x20   bind {addr}\n\
             \x20   default_backend h2hop\n\
             backend h2hop\n\
             \x20   server front {target} send-proxy-v2\n"
        );
        let config = scratch.write("haproxy.cfg", &config).unwrap();
        let output = Output::Files {
            stdout: scratch.path("haproxy.out.log"),
            stderr: scratch.path("haproxy.log"),
        };
        // -db: stay in the foreground, no daemon to lose track of.
        let mut command = Command::new(program);
        command.arg("-db").arg("-f").arg(&config);
        let mut process = Process::spawn("haproxy", &mut command, output).unwrap();
        let ready = process.wait_accepting(addr, Duration::from_secs(10)).await;
        if let Err(err) = ready {
            panic!("{err:#}{}", scratch.log_tails());
        }
        Haproxy {
            addr,
            _process: process,
            _scratch: scratch,
        }
    }
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
        let haproxy = Haproxy::start(&program, pair.front).await;

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
        let haproxy = Haproxy::start(&program, pair.front_tls.unwrap()).await;

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
