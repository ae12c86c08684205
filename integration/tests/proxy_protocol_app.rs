//! `--app-proxy-protocol`: the sidecar starts each connection to the app
//! with a PROXY v2 header naming the client. The app here is a recorder
//! that parses the header by hand and relays the rest to the test app. The
//! client itself comes through the front with a PROXY header of its own
//! (192.0.2.7): the front settles on that address and sends it to the
//! sidecar in its `h2hop-client` field. Once in-process, once with the
//! real binaries and their flags; and once behind a trusted proxy chain,
//! where the client is not the last hop.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use h2hop_front::{ProxyMode, ProxyProtocol};
use h2hop_integration::app::TestApp;
use h2hop_integration::client::{body_bytes, full, request};
use h2hop_integration::harness::{Pair, loopback, within};
use h2hop_integration::process::Process;
use h2hop_integration::wait::eventually;
use http::Method;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

/// What a v2 header told the app: the command nibble and, for an IPv4
/// PROXY command, the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Proxy(SocketAddr),
    Local,
    Other(u8, u8),
}

/// Accepts on `listener`, reads a v2 header off each connection (by hand),
/// records it, and relays the rest both ways to `app`.
fn spawn_recorder(listener: TcpListener, app: SocketAddr) -> Arc<Mutex<Vec<Seen>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let record = record.clone();
            tokio::spawn(async move {
                let mut fixed = [0u8; 16];
                stream.read_exact(&mut fixed).await.unwrap();
                assert_eq!(&fixed[..12], V2_SIGNATURE, "no v2 signature");
                let len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
                let mut block = vec![0u8; len];
                stream.read_exact(&mut block).await.unwrap();
                let header = match (fixed[12], fixed[13]) {
                    (0x21, 0x11) => {
                        let ip = Ipv4Addr::new(block[0], block[1], block[2], block[3]);
                        let port = u16::from_be_bytes([block[8], block[9]]);
                        Seen::Proxy(SocketAddr::new(IpAddr::V4(ip), port))
                    }
                    (0x20, _) => Seen::Local,
                    (command, family) => Seen::Other(command, family),
                };
                record.lock().unwrap().push(header);
                let mut upstream = TcpStream::connect(app).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut stream, &mut upstream).await;
            });
        }
    });
    seen
}

/// A v1 line for client 192.0.2.7, as a balancer before the front sends.
const CLIENT_HEADER: &[u8] = b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 80\r\n";

#[tokio::test]
async fn the_app_gets_a_v2_header_naming_the_client() {
    within(async {
        let app = TestApp::spawn(loopback().await.unwrap(), CancellationToken::new()).unwrap();
        let recorder = loopback().await.unwrap();
        let recorder_addr = recorder.local_addr().unwrap();
        let seen = spawn_recorder(recorder, app.addr);
        let pair = Pair::builder()
            .h2c()
            .app_at(recorder_addr)
            .front_config(|config| {
                config.proxy_protocol = ProxyProtocol {
                    mode: ProxyMode::Required,
                    from: "127.0.0.1".parse().unwrap(),
                };
            })
            .sidecar_config(|config| config.app.proxy_protocol = true)
            .start()
            .await
            .unwrap();
        let client: SocketAddr = "192.0.2.7:0".parse().unwrap();

        // Two plain requests on one client connection: a connection (and
        // a header) each toward the app.
        let mut stream = TcpStream::connect(pair.front).await.unwrap();
        stream.write_all(CLIENT_HEADER).await.unwrap();
        let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(connection);
        for body in ["one", "two"] {
            let mut post = request(Method::POST, pair.front, "/echo", full(body)).unwrap();
            let xff = http::HeaderValue::from_static("192.0.2.7");
            post.headers_mut().insert("x-forwarded-for", xff);
            let response = sender.send_request(post).await.unwrap();
            assert_eq!(response.status(), 200);
            assert_eq!(body_bytes(response).await.unwrap(), body);
        }
        assert!(
            eventually(Duration::from_secs(5), || seen.lock().unwrap().len() == 2).await,
            "{:?}",
            seen.lock().unwrap()
        );
        assert_eq!(*seen.lock().unwrap(), [Seen::Proxy(client); 2]);
        assert_eq!(app.requests().len(), 2);

        // A WebSocket: its own connection, with the header first.
        let mut stream = TcpStream::connect(pair.front).await.unwrap();
        stream.write_all(CLIENT_HEADER).await.unwrap();
        let request = http::Request::get(format!("ws://{}/ws", pair.front))
            .header("x-forwarded-for", "192.0.2.7")
            .header("host", pair.front.to_string())
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("sec-websocket-version", "13")
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .body(())
            .unwrap();
        let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
            .await
            .unwrap();
        ws.send(Message::text("hi")).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hi"));
        assert_eq!(seen.lock().unwrap().len(), 3);
        assert_eq!(seen.lock().unwrap()[2], Seen::Proxy(client));
    })
    .await;
}

/// Behind a trusted hop that forwarded for 198.51.100.9, the app's header
/// names 198.51.100.9, the client the front settled on, not the hop that
/// the front appended last to X-Forwarded-For.
#[tokio::test]
async fn a_trusted_chains_client_is_named_not_the_last_hop() {
    within(async {
        let app = TestApp::spawn(loopback().await.unwrap(), CancellationToken::new()).unwrap();
        let recorder = loopback().await.unwrap();
        let recorder_addr = recorder.local_addr().unwrap();
        let seen = spawn_recorder(recorder, app.addr);
        let pair = Pair::builder()
            .h2c()
            .app_at(recorder_addr)
            .front_config(|config| {
                config.proxy_protocol = ProxyProtocol {
                    mode: ProxyMode::Required,
                    from: "127.0.0.1".parse().unwrap(),
                };
                config.client_fields.trusted_proxies = "192.0.2.7".parse().unwrap();
            })
            .sidecar_config(|config| config.app.proxy_protocol = true)
            .start()
            .await
            .unwrap();
        let mut stream = TcpStream::connect(pair.front).await.unwrap();
        let get = "GET /echo HTTP/1.1\r\nHost: app\r\nX-Forwarded-For: 198.51.100.9\r\nConnection: close\r\n\r\n";
        stream
            .write_all(&[CLIENT_HEADER, get.as_bytes()].concat())
            .await
            .unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
        let client: SocketAddr = "198.51.100.9:0".parse().unwrap();
        assert_eq!(*seen.lock().unwrap(), [Seen::Proxy(client)]);
        let at_app = app.requests().pop().unwrap();
        assert_eq!(at_app.headers["x-forwarded-for"], "198.51.100.9, 192.0.2.7");
        assert!(!at_app.headers.contains_key("h2hop-client"));
    })
    .await;
}

/// The same through the real binaries and their flags: the front with
/// `--proxy-protocol required --proxy-protocol-from 127.0.0.1`, the
/// sidecar with `--app-proxy-protocol`. The front's access line names the
/// client from the v1 header; the app's v2 header names it too.
#[tokio::test]
async fn the_flags_work_on_the_binaries() {
    let bin = h2hop_integration::binaries::dir();
    within(async {
        let app = TestApp::spawn(loopback().await.unwrap(), CancellationToken::new()).unwrap();
        let recorder = loopback().await.unwrap();
        let recorder_addr = recorder.local_addr().unwrap().to_string();
        let seen = spawn_recorder(recorder, app.addr);
        let common = ["--h2c", "--listen", "127.0.0.1:0", "--workers", "1"];
        let sidecar_flags = [&common[..], &["--app", &recorder_addr, "--app-proxy-protocol"]];
        let sidecar = Process::start(&bin.join("h2hop-sidecar"), &sidecar_flags.concat())
            .await
            .unwrap();
        let sidecar_addr = sidecar.listen().unwrap().to_string();
        let proxy = [
            "--proxy-protocol",
            "required",
            "--proxy-protocol-from",
            "127.0.0.1",
        ];
        let front_flags = [&common[..], &["--sidecar", &sidecar_addr], &proxy];
        let front = Process::start(&bin.join("h2hop-front"), &front_flags.concat())
            .await
            .unwrap();

        let mut stream = TcpStream::connect(front.listen().unwrap()).await.unwrap();
        let get = "GET /echo HTTP/1.1\r\nHost: app\r\nX-Forwarded-For: 192.0.2.7\r\nConnection: close\r\n\r\n";
        stream
            .write_all(&[CLIENT_HEADER, get.as_bytes()].concat())
            .await
            .unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
        let needles = ["kind=\"request\"", " peer=192.0.2.7:56324 ", "status=200"];
        front
            .wait_for_line(&needles, Duration::from_secs(5))
            .await
            .unwrap();
        let client: SocketAddr = "192.0.2.7:0".parse().unwrap();
        assert_eq!(*seen.lock().unwrap(), [Seen::Proxy(client)]);
    })
    .await;
}
