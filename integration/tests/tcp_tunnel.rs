//! TCP services: a raw client socket → the front's `[[tcp]]` listener →
//! CONNECT over the mTLS hop → the sidecar → a loopback target. Bytes
//! cross unchanged, FIN and resets cross per direction, the idle timeout
//! closes both sides, a target off the sidecar's allow-list is closed
//! without a byte, and the access lines and metrics name the target.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use h2hop_integration::binaries;
use h2hop_integration::client::{body_bytes, full, http1_connect, request};
use h2hop_integration::harness::{
    Pair, SidecarKind, TEST_LIMIT, TcpSpec, Timeouts, loopback, within,
};
use h2hop_integration::logs::Captured;
use h2hop_integration::process::{Process, Signal};
use h2hop_integration::tcp_peer::{read_all, scripted_target};
use h2hop_integration::wait::eventually_async;
use http::Method;
use rand::RngCore as _;
use ring::digest::{SHA256, digest};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// Echoes everything back, then ends its half when the client ended its.
async fn echo(mut stream: TcpStream) {
    let (mut read, mut write) = stream.split();
    // A reset ends it too: the tests that reset look at the client's side.
    if tokio::io::copy(&mut read, &mut write).await.is_ok() {
        let _ = write.shutdown().await;
    }
}

/// The front's access lines of TCP entry `tcp-1`.
fn front_tcp_needles() -> Vec<&'static str> {
    vec!["h2hop::access", "kind=\"tcp\"", "route=\"tcp-1\""]
}

#[tokio::test]
async fn a_mebibyte_crosses_unchanged_both_ways() {
    let (log, _guard) = Captured::install();
    within(async {
        let (target_addr, served) = scripted_target(echo).await;
        let pair = Pair::builder()
            .tcp_service(target_addr)
            .start()
            .await
            .unwrap();
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
        let authority = format!("authority=\"{target_addr}\"");
        let mut needles = front_tcp_needles();
        needles.extend([
            authority.as_str(),
            "protocol=\"connect\"",
            "status=200",
            "bytes_up=1048576",
            "bytes_down=1048576",
            "close=\"done\"",
        ]);
        log.wait_for(&needles).await;
    })
    .await;
}

#[tokio::test]
async fn a_client_that_ends_its_half_still_reads_the_whole_answer() {
    let answer: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let expected = answer.clone();
    within(async {
        let (target_addr, served) = scripted_target(move |mut stream: TcpStream| async move {
            let mut question = Vec::new();
            // Only the client's FIN ends this read.
            stream.read_to_end(&mut question).await.unwrap();
            stream.write_all(&answer).await.unwrap();
            stream.shutdown().await.unwrap();
            question
        })
        .await;
        let pair = Pair::builder()
            .tcp_service(target_addr)
            .start()
            .await
            .unwrap();
        let mut client = TcpStream::connect(pair.front_tcp[0]).await.unwrap();
        client.write_all(b"question").await.unwrap();
        client.shutdown().await.unwrap();
        let (got, reset) = read_all(&mut client).await;
        assert!(!reset, "the client was reset");
        assert_eq!(got, expected);
        assert_eq!(served.await.unwrap(), b"question");
    })
    .await;
}

#[tokio::test]
async fn a_client_reset_reaches_the_target_and_the_access_line() {
    let (log, _guard) = Captured::install();
    within(async {
        let (target_addr, served) = scripted_target(|mut stream: TcpStream| async move {
            let mut first = [0u8; 5];
            stream.read_exact(&mut first).await.unwrap();
            stream.write_all(b"ready").await.unwrap();
            // The client's reset: a reset, or at least an end.
            let (rest, reset) = read_all(&mut stream).await;
            (first, rest, reset)
        })
        .await;
        let pair = Pair::builder()
            .tcp_service(target_addr)
            .start()
            .await
            .unwrap();
        let mut client = TcpStream::connect(pair.front_tcp[0]).await.unwrap();
        client.write_all(b"hello").await.unwrap();
        let mut ready = [0u8; 5];
        client.read_exact(&mut ready).await.unwrap();
        assert_eq!(&ready, b"ready");
        client.set_zero_linger().unwrap();
        drop(client);
        let (first, rest, _) = served.await.unwrap();
        assert_eq!(&first, b"hello");
        assert!(rest.is_empty());
        let mut needles = front_tcp_needles();
        needles.push("close=\"tcp_reset\"");
        log.wait_for(&needles).await;
    })
    .await;
}

#[tokio::test]
async fn a_target_reset_resets_the_client() {
    within(async {
        let (target_addr, served) = scripted_target(|mut stream: TcpStream| async move {
            let mut first = [0u8; 5];
            stream.read_exact(&mut first).await.unwrap();
            stream.set_zero_linger().unwrap();
            drop(stream);
        })
        .await;
        let pair = Pair::builder()
            .tcp_service(target_addr)
            .start()
            .await
            .unwrap();
        let mut client = TcpStream::connect(pair.front_tcp[0]).await.unwrap();
        client.write_all(b"hello").await.unwrap();
        served.await.unwrap();
        let (got, reset) = read_all(&mut client).await;
        assert!(got.is_empty());
        assert!(reset, "the client saw a FIN, not ECONNRESET");
    })
    .await;
}

#[tokio::test]
async fn a_quiet_tunnel_is_closed_after_its_idle_timeout() {
    let (log, _guard) = Captured::install();
    within(async {
        let (target_addr, served) = scripted_target(|mut stream: TcpStream| async move {
            stream.write_all(b"hi").await.unwrap();
            read_all(&mut stream).await
        })
        .await;
        let idle = Duration::from_millis(300);
        let pair = Pair::builder()
            .tcp(TcpSpec::to(&target_addr.to_string()).idle_timeout(idle))
            .start()
            .await
            .unwrap();
        let mut client = TcpStream::connect(pair.front_tcp[0]).await.unwrap();
        let opened = tokio::time::Instant::now();
        let (got, _) = read_all(&mut client).await;
        assert_eq!(got, b"hi");
        assert!(
            opened.elapsed() >= idle,
            "closed after {:?}",
            opened.elapsed()
        );
        // The target's side ends too: the sidecar saw the stream reset.
        served.await.unwrap();
        let mut needles = front_tcp_needles();
        needles.push("close=\"idle\"");
        log.wait_for(&needles).await;
    })
    .await;
}

#[tokio::test]
async fn a_target_off_the_allow_list_is_closed_without_a_byte() {
    let (log, _guard) = Captured::install();
    within(async {
        let listener = loopback().await.unwrap();
        let target_addr = listener.local_addr().unwrap();
        let pair = Pair::builder()
            .tcp(TcpSpec::to(&target_addr.to_string()).not_allowed())
            .start()
            .await
            .unwrap();
        let mut client = TcpStream::connect(pair.front_tcp[0]).await.unwrap();
        let (got, _) = read_all(&mut client).await;
        assert!(got.is_empty(), "{got:?}");
        let authority = format!("target=\"{target_addr}\"");
        log.wait_for(&[
            "WARN",
            "sidecar refused the TCP tunnel",
            authority.as_str(),
            "status=403",
        ])
        .await;
        let mut needles = front_tcp_needles();
        needles.push("status=403");
        log.wait_for(&needles).await;
        // The sidecar never dialled it.
        assert_nothing_accepted(&listener).await;
    })
    .await;
}

/// No connection waits on `listener`.
async fn assert_nothing_accepted(listener: &TcpListener) {
    let accepted = tokio::time::timeout(Duration::from_millis(100), listener.accept()).await;
    assert!(accepted.is_err(), "the target was dialled");
}

#[tokio::test]
async fn metrics_count_tcp_tunnels_by_target() {
    within(async {
        let (target_addr, served) = scripted_target(echo).await;
        let denied = loopback().await.unwrap().local_addr().unwrap();
        let pair = Pair::builder()
            .admin()
            .tcp_service(target_addr)
            .tcp(TcpSpec::to(&denied.to_string()).not_allowed())
            .start()
            .await
            .unwrap();
        let mut client = TcpStream::connect(pair.front_tcp[0]).await.unwrap();
        client.write_all(b"12345").await.unwrap();
        client.shutdown().await.unwrap();
        assert_eq!(read_all(&mut client).await, (b"12345".to_vec(), false));
        served.await.unwrap();
        let mut refused = TcpStream::connect(pair.front_tcp[1]).await.unwrap();
        assert!(read_all(&mut refused).await.0.is_empty());

        let front = pair.front_admin.unwrap();
        let ok = format!("h2hop_tcp_tunnels_total{{target=\"{target_addr}\",result=\"clean\"}} 1");
        let no = format!("h2hop_tcp_tunnels_total{{target=\"{denied}\",result=\"refused\"}} 1");
        let up =
            format!("h2hop_tcp_tunnel_bytes_total{{target=\"{target_addr}\",direction=\"up\"}} 5");
        let active = format!("h2hop_tcp_tunnels_active{{target=\"{target_addr}\"}} 0");
        let text = wait_for_metrics(front, &[&ok, &no, &up, &active]).await;
        assert!(text.contains("h2hop_tcp_connect_seconds"), "{text}");
    })
    .await;
}

/// The front's `/metrics` once it holds every one of `series` lines (the
/// relay records its end just after the client saw it).
async fn wait_for_metrics(admin: SocketAddr, series: &[&str]) -> String {
    let scrape = || async {
        let mut client = http1_connect(admin).await.unwrap();
        let get = request(Method::GET, admin, "/metrics", full("")).unwrap();
        let response = client.send_request(get).await.unwrap();
        let text = String::from_utf8(body_bytes(response).await.unwrap().to_vec()).unwrap();
        let all = series.iter().all(|line| text.lines().any(|l| l == *line));
        all.then_some(text)
    };
    let found = eventually_async(TEST_LIMIT / 2, scrape).await;
    found.unwrap_or_else(|| panic!("no {series:?} in the front's metrics"))
}

#[tokio::test]
async fn the_tunnel_idle_timeout_is_the_default_of_a_service() {
    within(async {
        let (target_addr, served) = scripted_target(|mut stream: TcpStream| async move {
            read_all(&mut stream).await;
        })
        .await;
        let timeouts = Timeouts {
            response: Duration::from_secs(5),
            upgrade: Duration::from_secs(5),
            tunnel_idle: Duration::from_millis(300),
        };
        let pair = Pair::builder()
            .timeouts(timeouts)
            .tcp_service(target_addr)
            .start()
            .await
            .unwrap();
        let mut client = TcpStream::connect(pair.front_tcp[0]).await.unwrap();
        let (got, _) = read_all(&mut client).await;
        assert!(got.is_empty());
        served.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn shutdown_stops_accepting_and_cuts_open_tunnels_after_the_drain() {
    let (log, _guard) = Captured::install();
    within(async {
        let (target_addr, _served) = scripted_target(echo).await;
        let drain = Duration::from_millis(500);
        // The sidecar's drain is longer: the front's cut ends the tunnel.
        let mut pair = Pair::builder()
            .drain_timeout(Duration::from_secs(10))
            .front_config(|config| config.drain_timeout = Duration::from_millis(500))
            .tcp_service(target_addr)
            .start()
            .await
            .unwrap();
        let listen = pair.front_tcp[0];
        let mut client = TcpStream::connect(listen).await.unwrap();
        client.write_all(b"before").await.unwrap();
        let mut echoed = [0u8; 6];
        client.read_exact(&mut echoed).await.unwrap();
        let draining = async {
            // New connections are refused once shutdown begins...
            let refused = || async { TcpStream::connect(listen).await.is_err().then_some(()) };
            assert!(eventually_async(TEST_LIMIT / 2, refused).await.is_some());
            // ...while the open tunnel still carries bytes...
            client.write_all(b"during").await.unwrap();
            client.read_exact(&mut echoed).await.unwrap();
            assert_eq!(&echoed, b"during");
            // ...until the drain period ends and it is cut.
            let (rest, _) = read_all(&mut client).await;
            (rest, tokio::time::Instant::now())
        };
        let began = tokio::time::Instant::now();
        let (_, (rest, cut)) = tokio::join!(pair.shut_down_proxies(), draining);
        assert!(rest.is_empty());
        assert!(cut - began >= drain, "cut after {:?}", cut - began);
        let mut needles = front_tcp_needles();
        needles.push("close=\"aborted\"");
        log.wait_for(&needles).await;
    })
    .await;
}

#[tokio::test]
async fn past_the_tunnel_limit_a_connection_is_closed_at_once() {
    let (log, _guard) = Captured::install();
    within(async {
        let (target_addr, _served) = scripted_target(echo).await;
        let pair = Pair::builder()
            .front_config(|config| config.max_tunnels = 1)
            .tcp_service(target_addr)
            .start()
            .await
            .unwrap();
        let mut first = TcpStream::connect(pair.front_tcp[0]).await.unwrap();
        first.write_all(b"one").await.unwrap();
        let mut echoed = [0u8; 3];
        first.read_exact(&mut echoed).await.unwrap();
        let mut second = TcpStream::connect(pair.front_tcp[0]).await.unwrap();
        let (got, _) = read_all(&mut second).await;
        assert!(got.is_empty());
        log.wait_for(&["WARN", "tunnel limit reached: TCP connection closed"])
            .await;
        // The first tunnel is untouched.
        first.write_all(b"two").await.unwrap();
        first.read_exact(&mut echoed).await.unwrap();
        assert_eq!(&echoed, b"two");
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_sidecar_closes_the_client_with_a_warning() {
    let (log, _guard) = Captured::install();
    within(async {
        let listener = loopback().await.unwrap();
        let target_addr = listener.local_addr().unwrap();
        let pair = Pair::builder()
            .sidecar(SidecarKind::Down)
            .tcp_service(target_addr)
            .start()
            .await
            .unwrap();
        let mut client = TcpStream::connect(pair.front_tcp[0]).await.unwrap();
        let (got, _) = read_all(&mut client).await;
        assert!(got.is_empty());
        log.wait_for(&["WARN", "TCP tunnel not opened", "cannot connect to sidecar"])
            .await;
        let mut needles = front_tcp_needles();
        needles.push("status=502");
        log.wait_for(&needles).await;
    })
    .await;
}

/// A target that answers every connection with `tag`, then closes.
async fn tagged(tag: &'static [u8]) -> SocketAddr {
    let listener = loopback().await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = stream.write_all(tag).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    addr
}

/// What the target behind `listen` answers a new connection.
async fn answer(listen: SocketAddr) -> Vec<u8> {
    let mut client = TcpStream::connect(listen).await.unwrap();
    read_all(&mut client).await.0
}

/// The binary: `[[tcp]]` in `--config` is bound for each worker and named
/// in the ready line; SIGHUP applies a new target to new connections,
/// and refuses a file that moves the listener (the old one keeps serving).
#[tokio::test]
async fn the_binary_serves_config_file_entries_and_reloads_their_targets() {
    let bin = binaries::dir();
    within(async {
        let (a, b) = (tagged(b"A").await, tagged(b"B").await);
        // In-process sidecar (h2c) that allows both targets; its pair's
        // own front is not used.
        let pair = Pair::builder()
            .h2c()
            .tcp_service(a)
            .tcp_service(b)
            .start()
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("front.toml");
        let config = |listen: &str, target: SocketAddr| {
            format!(
                "[[cluster]]\nname = \"hop\"\nendpoints = [\"{}\"]\nh2c = true\n\n\
                 [[tcp]]\nname = \"tagged\"\nlisten = \"{listen}\"\ncluster = \"hop\"\n\
                 target = \"{target}\"\n",
                pair.sidecar
            )
        };
        std::fs::write(&file, config("127.0.0.1:0", a)).unwrap();
        let flags = [
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--config",
            &file.display().to_string(),
        ]
        .map(str::to_owned);
        let mut front = Process::start(&bin.join("h2hop-front"), &flags)
            .await
            .unwrap();
        let ready = front.wait_for_line(&["ready"], SOON).await.unwrap();
        let listen: SocketAddr = ready
            .split_whitespace()
            .find_map(|field| field.strip_prefix("tcp=tagged="))
            .unwrap_or_else(|| panic!("no tcp=tagged= in {ready}"))
            .trim_matches('"')
            .parse()
            .unwrap();
        // Several connections: the kernel spreads them over both workers.
        for _ in 0..6 {
            assert_eq!(answer(listen).await, b"A");
        }

        // The same listen address as written (port 0), another target.
        std::fs::write(&file, config("127.0.0.1:0", b)).unwrap();
        front.signal(Signal::Hup).unwrap();
        front
            .wait_for_line(&["configuration reloaded"], SOON)
            .await
            .unwrap();
        for _ in 0..6 {
            assert_eq!(answer(listen).await, b"B");
        }

        std::fs::write(&file, config("127.0.0.1:1", a)).unwrap();
        front.signal(Signal::Hup).unwrap();
        let line = front
            .wait_for_line(&["configuration reload failed"], SOON)
            .await
            .unwrap();
        assert!(line.contains("restart to move TCP listeners"), "{line}");
        assert_eq!(answer(listen).await, b"B");

        front.signal(Signal::Term).unwrap();
        let status = front.wait(SOON).await.unwrap();
        assert_eq!(status.code(), Some(0), "the front exited with {status}");
    })
    .await;
}

/// Bound on a binary's answer to a signal.
const SOON: Duration = Duration::from_secs(10);
