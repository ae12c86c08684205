//! Tests of [`super`]: parsing both versions, refusing malformed headers,
//! and taking exactly the header's bytes off a real loopback socket.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use super::*;

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// A connected pair on loopback: (the writer's end, the reader's end).
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, server)
}

/// Writes `chunks` (pausing between them), then `after`, and reads the
/// header; returns it and what the reader finds after it.
async fn read_after(chunks: &[&[u8]], after: &[u8]) -> (Result<Header, ProxyError>, Vec<u8>) {
    let (mut client, mut server) = pair().await;
    let chunks: Vec<Vec<u8>> = chunks.iter().map(|chunk| chunk.to_vec()).collect();
    let after = after.to_vec();
    let writer = tokio::spawn(async move {
        for chunk in chunks {
            client.write_all(&chunk).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        client.write_all(&after).await.unwrap();
        client.shutdown().await.unwrap();
    });
    let header = read_header(&mut server, Duration::from_secs(5)).await;
    let mut rest = Vec::new();
    if header.is_ok() {
        server.read_to_end(&mut rest).await.unwrap();
    }
    writer.await.unwrap();
    (header, rest)
}

#[test]
fn v1_tcp4_and_tcp6_lines_parse() {
    let header = parse_v1(b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n").unwrap();
    assert_eq!(header.version, Version::V1);
    let addresses = header.addresses.unwrap();
    assert_eq!(addresses.source, addr("192.0.2.7:56324"));
    assert_eq!(addresses.destination, addr("198.51.100.1:443"));
    let header = parse_v1(b"PROXY TCP6 2001:db8::7 2001:db8::1 65535 0\r\n").unwrap();
    assert_eq!(
        header.client(addr("127.0.0.1:1")),
        addr("[2001:db8::7]:65535")
    );
}

#[test]
fn v1_unknown_keeps_the_socket_address() {
    let peer = addr("127.0.0.1:9");
    for line in [
        &b"PROXY UNKNOWN\r\n"[..],
        b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
    ] {
        let header = parse_v1(line).unwrap();
        assert_eq!(header.addresses, None);
        assert_eq!(header.client(peer), peer);
    }
}

#[test]
fn malformed_v1_lines_are_refused() {
    for line in [
        &b"PROXY TCP4 192.0.2.7 198.51.100.1 56324\r\n"[..],
        b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 443 9\r\n",
        b"PROXY TCP4 2001:db8::7 198.51.100.1 56324 443\r\n",
        b"PROXY TCP6 192.0.2.7 198.51.100.1 56324 443\r\n",
        b"PROXY TCP4 192.0.2.7 198.51.100.1 65536 443\r\n",
        b"PROXY TCP4 192.0.2.7 198.51.100.1 +1 443\r\n",
        b"PROXY TCP4 192.0.2.7 198.51.100.1 080 443\r\n",
        b"PROXY TCP4  192.0.2.7 198.51.100.1 1 443\r\n",
        b"PROXY UDP4 192.0.2.7 198.51.100.1 1 443\r\n",
        b"PROXY TCP4 192.0.2.7 198.51.100.1 1 443\n",
    ] {
        let refused = parse_v1(line);
        assert!(
            matches!(refused, Err(ProxyError::BadLine(_))),
            "{:?}: {refused:?}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn v2_ipv4_ipv6_and_local_parse() {
    let v4 = Addresses {
        source: addr("192.0.2.7:56324"),
        destination: addr("198.51.100.1:443"),
    };
    let header = v2_header(Some(v4));
    assert_eq!(header.len(), 16 + 12);
    let parsed = parse_v2(header[12], header[13], &header[16..]).unwrap();
    assert_eq!(parsed.addresses, Some(v4));
    let v6 = Addresses {
        source: addr("[2001:db8::7]:1"),
        destination: addr("[2001:db8::1]:2"),
    };
    let header = v2_header(Some(v6));
    assert_eq!(header.len(), 16 + 36);
    let parsed = parse_v2(header[12], header[13], &header[16..]).unwrap();
    assert_eq!(parsed.addresses, Some(v6));
    let local = v2_header(None);
    assert_eq!(local.len(), 16);
    assert_eq!(parse_v2(local[12], local[13], &[]).unwrap().addresses, None);
}

#[test]
fn v2_mixed_families_are_written_as_ipv6() {
    let mixed = Addresses {
        source: addr("192.0.2.7:1"),
        destination: addr("[2001:db8::1]:2"),
    };
    let header = v2_header(Some(mixed));
    let parsed = parse_v2(header[12], header[13], &header[16..]).unwrap();
    let addresses = parsed.addresses.unwrap();
    assert_eq!(addresses.source, addr("[::ffff:192.0.2.7]:1"));
    assert_eq!(addresses.destination, mixed.destination);
    // The client is the IPv4 address the mapped one stands for.
    assert_eq!(parsed.client(addr("127.0.0.1:9")), addr("192.0.2.7:1"));
}

#[test]
fn bad_v2_version_command_family_and_short_blocks_are_refused() {
    let block = [0u8; 12];
    assert!(matches!(
        parse_v2(0x11, 0x11, &block),
        Err(ProxyError::BadVersion(1))
    ));
    assert!(matches!(
        parse_v2(0x22, 0x11, &block),
        Err(ProxyError::BadCommand(2))
    ));
    assert!(matches!(
        parse_v2(0x21, 0x41, &block),
        Err(ProxyError::BadFamily(0x41))
    ));
    assert!(matches!(
        parse_v2(0x21, 0x13, &block),
        Err(ProxyError::BadFamily(0x13))
    ));
    assert!(matches!(
        parse_v2(0x21, 0x21, &block),
        Err(ProxyError::ShortAddresses { len: 12, need: 36 })
    ));
    // AF_UNSPEC under PROXY: no address, the socket's stands.
    assert_eq!(parse_v2(0x21, 0x00, &[]).unwrap().addresses, None);
}

/// The bytes after the header are left on the socket, for TLS or HTTP,
/// for both versions, whole or split across segments.
#[tokio::test]
async fn only_the_header_is_taken_off_the_socket() {
    let line = b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n";
    let (header, rest) = read_after(&[line], b"GET / HTTP/1.1\r\n\r\n").await;
    assert_eq!(
        header.unwrap().client(addr("127.0.0.1:1")),
        addr("192.0.2.7:56324")
    );
    assert_eq!(rest, b"GET / HTTP/1.1\r\n\r\n");
    // Split inside the signature, inside the line, and between CR and LF.
    let (header, rest) = read_after(&[&line[..3], &line[3..20], &line[20..44]], b"\nxyz").await;
    let header = header.unwrap();
    assert_eq!(header.version, Version::V1);
    assert_eq!(header.client(addr("127.0.0.1:1")), addr("192.0.2.7:56324"));
    assert_eq!(rest, b"xyz");

    let v2 = v2_header(Some(Addresses {
        source: addr("[2001:db8::7]:1"),
        destination: addr("[2001:db8::1]:2"),
    }));
    let (header, rest) = read_after(&[&v2[..10], &v2[10..20], &v2[20..]], b"\x16\x03\x01").await;
    assert_eq!(
        header.unwrap().client(addr("127.0.0.1:1")),
        addr("[2001:db8::7]:1")
    );
    assert_eq!(rest, b"\x16\x03\x01");
}

#[tokio::test]
async fn truncated_long_and_foreign_headers_are_refused() {
    let line = b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n";
    let (refused, _) = read_after(&[&line[..20]], b"").await;
    assert!(matches!(refused, Err(ProxyError::Truncated)), "{refused:?}");
    let v2 = v2_header(None);
    let (refused, _) = read_after(&[&v2[..14]], b"").await;
    assert!(matches!(refused, Err(ProxyError::Truncated)), "{refused:?}");
    let long = [&b"PROXY UNKNOWN "[..], &[b'x'; 120]].concat();
    let (refused, _) = read_after(&[&long], b"\r\n").await;
    assert!(matches!(refused, Err(ProxyError::TooLong)), "{refused:?}");
    let (refused, _) = read_after(&[b"GET / HTTP/1.1\r\n\r\n"], b"").await;
    assert!(
        matches!(refused, Err(ProxyError::BadSignature)),
        "{refused:?}"
    );
    let mut huge = v2.clone();
    huge[14..16].copy_from_slice(&5000u16.to_be_bytes());
    let (refused, _) = read_after(&[&huge], b"").await;
    assert!(
        matches!(refused, Err(ProxyError::V2TooLong(5000))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_silent_peer_times_out() {
    let (_client, mut server) = pair().await;
    let refused = read_header(&mut server, Duration::from_millis(50)).await;
    assert!(
        matches!(refused, Err(ProxyError::Timeout(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn signatures_are_recognised_without_consuming() {
    for (first, expected) in [
        (&b"PROXY TCP4"[..], true),
        (&V2_SIGNATURE[..], true),
        (b"GET / HTTP/1.1\r\n", false),
        (b"\x16\x03\x01\x00", false),
        (b"\r\n\r\nGET", false),
    ] {
        let (mut client, server) = pair().await;
        client.write_all(first).await.unwrap();
        let found = starts_with_signature(&server).await.unwrap();
        assert_eq!(found, expected, "{first:?}");
        let mut still = vec![0u8; first.len()];
        server.peek(&mut still).await.unwrap();
        assert_eq!(still, first);
    }
    // Part of a signature, then the rest.
    let (mut client, server) = pair().await;
    client.write_all(b"PRO").await.unwrap();
    let found = tokio::spawn(async move { starts_with_signature(&server).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(30)).await;
    client.write_all(b"XY ").await.unwrap();
    assert!(found.await.unwrap());
}
