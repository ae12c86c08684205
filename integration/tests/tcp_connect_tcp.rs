//! TCP services in the `connect-tcp` form: a raw client socket → the
//! front's `[[tcp]]` listener (`form = "connect-tcp"`) → extended CONNECT
//! over the mTLS hop, TCP bytes in RFC 9297 capsules → the sidecar → a
//! loopback target. Bytes cross unchanged, FIN crosses per direction as
//! FINAL_DATA, and resets cross both ways.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;

use h2hop::tcp_connect::ConnectForm;
use h2hop_integration::harness::{Pair, TcpSpec, within};
use h2hop_integration::logs::Captured;
use h2hop_integration::tcp_peer::{read_all, scripted_target};
use rand::RngCore as _;
use ring::digest::{SHA256, digest};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A front and sidecar pair with one `connect-tcp` service to `target`.
async fn pair_to(target: SocketAddr) -> Pair {
    let spec = TcpSpec::to(&target.to_string()).form(ConnectForm::ConnectTcp);
    Pair::builder().tcp(spec).start().await.unwrap()
}

#[tokio::test]
async fn a_mebibyte_crosses_unchanged_both_ways_in_capsules() {
    let (log, _guard) = Captured::install();
    within(async {
        let (target_addr, served) = scripted_target(|mut stream: TcpStream| async move {
            let (mut read, mut write) = stream.split();
            tokio::io::copy(&mut read, &mut write).await.unwrap();
            write.shutdown().await.unwrap();
        })
        .await;
        let pair = pair_to(target_addr).await;
        let mut sent = vec![0u8; 1 << 20];
        rand::rng().fill_bytes(&mut sent);
        let mut client = TcpStream::connect(pair.front_tcp[0]).await.unwrap();
        let (mut read, mut write) = client.split();
        let writing = async {
            write.write_all(&sent).await.unwrap();
            write.shutdown().await.unwrap();
        };
        let reading = async {
            let mut got = Vec::new();
            read.read_to_end(&mut got).await.unwrap();
            got
        };
        let ((), got) = tokio::join!(writing, reading);
        assert_eq!(got.len(), sent.len());
        assert_eq!(
            digest(&SHA256, &got).as_ref(),
            digest(&SHA256, &sent).as_ref()
        );
        served.await.unwrap();
        // Payload bytes are counted, not the capsule headers around them.
        let authority = format!("authority=\"{target_addr}\"");
        log.wait_for(&[
            "h2hop::access",
            "kind=\"tcp\"",
            "route=\"tcp-1\"",
            authority.as_str(),
            "protocol=\"connect-tcp\"",
            "status=200",
            "bytes_up=1048576",
            "bytes_down=1048576",
            "close=\"done\"",
        ])
        .await;
    })
    .await;
}

#[tokio::test]
async fn a_client_that_ends_its_half_still_reads_the_whole_answer_in_capsules() {
    let answer: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let expected = answer.clone();
    within(async {
        let (target_addr, served) = scripted_target(move |mut stream: TcpStream| async move {
            let mut question = Vec::new();
            // Only the client's FIN (FINAL_DATA on the hop) ends this read.
            stream.read_to_end(&mut question).await.unwrap();
            stream.write_all(&answer).await.unwrap();
            stream.shutdown().await.unwrap();
            question
        })
        .await;
        let pair = pair_to(target_addr).await;
        let mut client = TcpStream::connect(pair.front_tcp[0]).await.unwrap();
        client.write_all(b"question").await.unwrap();
        client.shutdown().await.unwrap();
        let (got, reset) = read_all(&mut client).await;
        assert!(!reset, "the client was reset");
        assert!(got == expected, "the answer changed on the way");
        assert_eq!(served.await.unwrap(), b"question");
    })
    .await;
}

#[tokio::test]
async fn a_client_reset_reaches_the_target_as_a_reset_in_capsule_form() {
    let (log, _guard) = Captured::install();
    within(async {
        let (target_addr, served) = scripted_target(|mut stream: TcpStream| async move {
            let mut first = [0u8; 5];
            stream.read_exact(&mut first).await.unwrap();
            stream.write_all(b"ready").await.unwrap();
            let (rest, reset) = read_all(&mut stream).await;
            (first, rest, reset)
        })
        .await;
        let pair = pair_to(target_addr).await;
        let mut client = TcpStream::connect(pair.front_tcp[0]).await.unwrap();
        client.write_all(b"hello").await.unwrap();
        let mut ready = [0u8; 5];
        client.read_exact(&mut ready).await.unwrap();
        assert_eq!(&ready, b"ready");
        client.set_zero_linger().unwrap();
        drop(client);
        let (first, rest, reset) = served.await.unwrap();
        assert_eq!(&first, b"hello");
        assert!(rest.is_empty());
        assert!(reset, "the target saw a FIN, not ECONNRESET");
        log.wait_for(&[
            "h2hop::access",
            "kind=\"tcp\"",
            "route=\"tcp-1\"",
            "protocol=\"connect-tcp\"",
            "close=\"tcp_reset\"",
        ])
        .await;
    })
    .await;
}

#[tokio::test]
async fn a_target_reset_resets_the_client_in_capsule_form() {
    within(async {
        let (target_addr, served) = scripted_target(|mut stream: TcpStream| async move {
            let mut first = [0u8; 5];
            stream.read_exact(&mut first).await.unwrap();
            stream.set_zero_linger().unwrap();
            drop(stream);
            first
        })
        .await;
        let pair = pair_to(target_addr).await;
        let mut client = TcpStream::connect(pair.front_tcp[0]).await.unwrap();
        client.write_all(b"hello").await.unwrap();
        assert_eq!(&served.await.unwrap(), b"hello");
        let (got, reset) = read_all(&mut client).await;
        assert!(got.is_empty());
        assert!(reset, "the client saw a FIN, not ECONNRESET");
    })
    .await;
}
