//! The PROXY protocol on the front's listeners, with hand-made headers:
//! v1 and v2 (IPv4 and IPv6) name the client for the access log and the
//! per-address limit, on the plain and the TLS listener; truncated and
//! malformed headers, a required header missing, and a header from a peer
//! not listed all close the connection with nothing forwarded; a v2 LOCAL
//! header leaves the socket's address.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use h2hop_front::{Config, ProxyMode, ProxyProtocol};
use h2hop_integration::harness::{Pair, within};
use h2hop_integration::logs::Captured;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const GET: &[u8] = b"GET /echo HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n";
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

/// A v1 line for client 192.0.2.7:56324.
const V1_TCP4: &[u8] = b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n";

/// A v2 PROXY header over TCP/IPv4 from `client` (192.0.2.x) port 40000.
fn v2_tcp4(last_octet: u8) -> Vec<u8> {
    let mut header = V2_SIGNATURE.to_vec();
    header.extend_from_slice(&[0x21, 0x11, 0x00, 12]);
    header.extend_from_slice(&[192, 0, 2, last_octet, 198, 51, 100, 1]);
    header.extend_from_slice(&40000u16.to_be_bytes());
    header.extend_from_slice(&443u16.to_be_bytes());
    header
}

/// A v2 PROXY header over TCP/IPv6 from [2001:db8::7]:1, with a TLV after
/// the addresses (a NOOP, type 0x04) that must be skipped.
fn v2_tcp6() -> Vec<u8> {
    let mut header = V2_SIGNATURE.to_vec();
    header.extend_from_slice(&[0x21, 0x21, 0x00, 36 + 5]);
    let mut src = [0u8; 16];
    src[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    src[15] = 7;
    let mut dst = src;
    dst[15] = 1;
    header.extend_from_slice(&src);
    header.extend_from_slice(&dst);
    header.extend_from_slice(&1u16.to_be_bytes());
    header.extend_from_slice(&2u16.to_be_bytes());
    header.extend_from_slice(&[0x04, 0x00, 0x02, 0xaa, 0xbb]);
    header
}

fn required_from_loopback(config: &mut Config) {
    config.proxy_protocol = ProxyProtocol {
        mode: ProxyMode::Required,
        from: "127.0.0.1,::1".parse().unwrap(),
    };
}

async fn required_pair() -> Pair {
    Pair::builder()
        .h2c()
        .front_config(required_from_loopback)
        .start()
        .await
        .unwrap()
}

/// Writes `bytes` on a new connection to `addr` and reads until it ends.
async fn exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> (std::net::SocketAddr, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let local = stream.local_addr().unwrap();
    stream.write_all(bytes).await.unwrap();
    (local, read_until_closed(&mut stream).await)
}

/// Writes `bytes` on a new connection to `addr`, ends its half (so a
/// truncated header is seen as such) and reads until the front closes.
async fn send_and_end(addr: std::net::SocketAddr, bytes: &[u8]) -> (std::net::SocketAddr, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let local = stream.local_addr().unwrap();
    stream.write_all(bytes).await.unwrap();
    stream.shutdown().await.unwrap();
    (local, read_until_closed(&mut stream).await)
}

/// Everything read until the peer closes; a reset counts as a close.
async fn read_until_closed<S: AsyncRead + Unpin>(stream: &mut S) -> Vec<u8> {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer));
    match read.await.expect("the front kept the connection open") {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(err) => panic!("read failed: {err}"),
    }
    answer
}

/// The front's access line for a request from `peer`.
async fn access_line_from(log: &Captured, peer: &str) -> String {
    let needle = format!(" peer={peer} ");
    log.wait_for(&[
        "h2hop::access",
        "kind=\"request\"",
        "route=\"127.0.0.1",
        &needle,
    ])
    .await
}

#[tokio::test]
async fn v1_and_v2_headers_name_the_client_on_the_plain_listener() {
    let (log, _guard) = Captured::install();
    within(async {
        let pair = required_pair().await;
        let cases: [(Vec<u8>, &str); 3] = [
            (V1_TCP4.to_vec(), "192.0.2.7:56324"),
            (v2_tcp4(9), "192.0.2.9:40000"),
            (v2_tcp6(), "[2001:db8::7]:1"),
        ];
        for (header, client) in cases {
            let (_, answer) = exchange(pair.front, &[&header[..], GET].concat()).await;
            assert!(answer.starts_with(b"HTTP/1.1 200"), "{client}: {answer:?}");
            let line = access_line_from(&log, client).await;
            // The connection's other lines name the client too.
            let span = format!("proxied{{client={client}}}");
            assert!(line.contains(&span), "{line}");
        }
        assert_eq!(pair.app.requests().len(), 3);
    })
    .await;
}

/// The TLS handshake comes after the header, on the same connection.
#[tokio::test]
async fn a_v2_header_names_the_client_on_the_tls_listener() {
    let (log, _guard) = Captured::install();
    within(async {
        let pair = Pair::builder()
            .h2c()
            .client_tls()
            .front_config(required_from_loopback)
            .start()
            .await
            .unwrap();
        let mut tcp = TcpStream::connect(pair.front_tls.unwrap()).await.unwrap();
        tcp.write_all(&v2_tcp4(44)).await.unwrap();
        let mut tls = tls_client(&pair, tcp).await;
        tls.write_all(GET).await.unwrap();
        let answer = read_until_closed(&mut tls).await;
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
        let line = access_line_from(&log, "192.0.2.44:40000").await;
        assert!(line.contains("status=200"), "{line}");

        // Without a header the TLS listener refuses the listed peer too.
        let mut bare = TcpStream::connect(pair.front_tls.unwrap()).await.unwrap();
        bare.write_all(b"\x16\x03\x01\x00\x05hello").await.unwrap();
        assert!(read_until_closed(&mut bare).await.is_empty());
        assert_eq!(pair.app.requests().len(), 1);
    })
    .await;
}

async fn tls_client(pair: &Pair, tcp: TcpStream) -> impl AsyncRead + AsyncWrite + Unpin + use<> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pair.pki.ca_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// The per-address limit counts the carried client, not the balancer:
/// with one connection per address, a second client behind the same
/// balancer is served while the first holds its connection, and the
/// first's second connection is refused.
#[tokio::test]
async fn the_per_address_limit_counts_the_carried_client() {
    within(async {
        let pair = Pair::builder()
            .h2c()
            .front_config(|config| {
                required_from_loopback(config);
                config.max_connections_per_client = 1;
            })
            .start()
            .await
            .unwrap();
        // Held open: a keep-alive request answered shows it is admitted.
        let mut held = TcpStream::connect(pair.front).await.unwrap();
        let keep = b"GET /echo HTTP/1.1\r\nHost: app\r\n\r\n";
        held.write_all(&[&v2_tcp4(7)[..], keep].concat())
            .await
            .unwrap();
        let mut head = [0u8; 12];
        held.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");

        let (_, other_client) = exchange(pair.front, &[&v2_tcp4(8)[..], GET].concat()).await;
        assert!(
            other_client.starts_with(b"HTTP/1.1 200"),
            "{other_client:?}"
        );
        let (_, same_client) = exchange(pair.front, &[&v2_tcp4(7)[..], GET].concat()).await;
        assert!(same_client.starts_with(b"HTTP/1.1 503"), "{same_client:?}");
        drop(held);
    })
    .await;
}

/// Each refused header closes the connection without an answer, the
/// request after it never reaches the app, and the log says why.
#[tokio::test]
async fn truncated_and_malformed_headers_are_refused() {
    let (log, _guard) = Captured::install();
    within(async {
        let pair = required_pair().await;
        let mut bad_version = v2_tcp4(7);
        bad_version[12] = 0x11;
        let mut bad_command = v2_tcp4(7);
        bad_command[12] = 0x2f;
        let mut bad_family = v2_tcp4(7);
        bad_family[13] = 0x51;
        let mut short_block = v2_tcp4(7);
        short_block[13] = 0x21;
        let mut huge = v2_tcp4(7);
        huge[14..16].copy_from_slice(&60000u16.to_be_bytes());
        let too_long = [&b"PROXY TCP4 "[..], &[b'1'; 120], b"\r\n"].concat();
        let cases: [(&str, Vec<u8>, &str); 10] = [
            ("truncated v1", V1_TCP4[..20].to_vec(), "closed inside"),
            ("truncated v2", v2_tcp4(7)[..20].to_vec(), "closed inside"),
            (
                "v1 too long",
                [&too_long[..], GET].concat(),
                "longer than 107",
            ),
            (
                "v1 bad port",
                [&b"PROXY TCP4 192.0.2.7 198.51.100.1 99999 443\r\n"[..], GET].concat(),
                "malformed PROXY v1",
            ),
            (
                "v2 version 1",
                [&bad_version[..], GET].concat(),
                "version 1",
            ),
            (
                "v2 command 15",
                [&bad_command[..], GET].concat(),
                "command 15",
            ),
            ("v2 family 5", [&bad_family[..], GET].concat(), "family"),
            (
                "v2 IPv6 in 12 bytes",
                [&short_block[..], GET].concat(),
                "too short",
            ),
            ("v2 too long", [&huge[..], GET].concat(), "more than 4096"),
            ("no header", GET.to_vec(), "no PROXY protocol signature"),
        ];
        for (case, bytes, reason) in cases {
            let (local, answer) = send_and_end(pair.front, &bytes).await;
            assert!(answer.is_empty(), "{case}: answered {answer:?}");
            let peer = format!("peer={local}");
            log.wait_for(&["PROXY header refused", &peer, reason]).await;
        }
        assert_eq!(pair.app.requests().len(), 0, "something was forwarded");
    })
    .await;
}

/// A listed peer that sends nothing is closed at the header timeout.
#[tokio::test]
async fn a_required_header_missing_is_refused_within_the_header_timeout() {
    within(async {
        let pair = Pair::builder()
            .h2c()
            .front_config(|config| {
                required_from_loopback(config);
                config.header_timeout = Duration::from_millis(300);
            })
            .start()
            .await
            .unwrap();
        let started = Instant::now();
        let mut silent = TcpStream::connect(pair.front).await.unwrap();
        assert!(read_until_closed(&mut silent).await.is_empty());
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(250) && waited < Duration::from_secs(5),
            "closed after {waited:?}"
        );
        assert_eq!(pair.app.requests().len(), 0);
    })
    .await;
}

/// With the feature on, a peer outside --proxy-protocol-from that sends a
/// header is refused; one that sends none is served under its own address.
#[tokio::test]
async fn a_header_from_an_unlisted_peer_is_refused() {
    let (log, _guard) = Captured::install();
    within(async {
        let pair = Pair::builder()
            .h2c()
            .front_config(|config| {
                config.proxy_protocol = ProxyProtocol {
                    mode: ProxyMode::Optional,
                    from: "192.0.2.0/24".parse().unwrap(),
                };
            })
            .start()
            .await
            .unwrap();
        for header in [V1_TCP4.to_vec(), v2_tcp4(7)] {
            let (local, answer) = exchange(pair.front, &[&header[..], GET].concat()).await;
            assert!(answer.is_empty(), "answered {answer:?}");
            let peer = format!("peer={local}");
            log.wait_for(&["not in --proxy-protocol-from", &peer]).await;
        }
        assert_eq!(pair.app.requests().len(), 0);
        let (local, answer) = exchange(pair.front, GET).await;
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
        access_line_from(&log, &local.to_string()).await;
    })
    .await;
}

/// A v2 LOCAL header (a balancer's health check) and a v1 UNKNOWN keep
/// the socket's address; in optional mode so does no header at all.
#[tokio::test]
async fn local_unknown_and_absent_headers_keep_the_socket_address() {
    let (log, _guard) = Captured::install();
    within(async {
        let pair = Pair::builder()
            .h2c()
            .front_config(|config| {
                config.proxy_protocol = ProxyProtocol {
                    mode: ProxyMode::Optional,
                    from: "127.0.0.0/8".parse().unwrap(),
                };
            })
            .start()
            .await
            .unwrap();
        let local_command = [V2_SIGNATURE, &[0x20, 0x00, 0x00, 0x00]].concat();
        for header in [local_command, b"PROXY UNKNOWN\r\n".to_vec(), Vec::new()] {
            let (local, answer) = exchange(pair.front, &[&header[..], GET].concat()).await;
            assert!(
                answer.starts_with(b"HTTP/1.1 200"),
                "{header:?}: {answer:?}"
            );
            access_line_from(&log, &local.to_string()).await;
        }
        assert_eq!(pair.app.requests().len(), 3);
    })
    .await;
}
