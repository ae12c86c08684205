//! Faults end to end, one test each: the app dies mid-tunnel, the sidecar
//! dies mid-tunnel, the app is slow to accept, a client vanishes without a
//! FIN, and one end of a tunnel stops reading.
//!
//! A process that dies is a real one killed with SIGKILL by its pid (the
//! `h2hop-echo` app, the `h2hop-sidecar` binary), so the kernel closes its
//! sockets as it would in production; everything else runs in-process.
//! Each test asserts what the client and the other hops see, and prints
//! the figures it measured (close latencies, bytes in flight, memory).

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt as _;
use h2hop_certs::DevPki;
use h2hop_integration::app::{RawOutcome, TestApp};
use h2hop_integration::binaries;
use h2hop_integration::client::{self, echo_roundtrip, raw_upgrade, ws_connect};
use h2hop_integration::harness::{Pair, loopback, within};
use h2hop_integration::noise::{BLOCK, Noise};
use h2hop_integration::process::Process;
use h2hop_integration::procstat;
use h2hop_integration::wait::eventually_async;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// How soon a death must reach every client of its tunnels.
const CLOSE_WITHIN: Duration = Duration::from_secs(2);

/// `n` WebSockets to `/ws` through `front`, each shown to echo once.
async fn open_tunnels(front: SocketAddr, n: usize) -> Vec<WebSocketStream<TcpStream>> {
    let mut tunnels = Vec::new();
    for i in 0..n {
        let (mut ws, _) = ws_connect(front, "/ws", &[]).await.unwrap();
        let text = format!("tunnel {i}");
        let echo = echo_roundtrip(&mut ws, Message::text(text.clone())).await;
        assert_eq!(echo.unwrap(), Message::text(text));
        tunnels.push(ws);
    }
    tunnels
}

/// Runs `kill` with every tunnel watched, and returns how long after it
/// each tunnel ended at its client (a Close, an error or the end of the
/// stream: whatever a dead peer leaves), at most [`CLOSE_WITHIN`] each.
async fn close_latencies(
    tunnels: Vec<WebSocketStream<TcpStream>>,
    kill: impl FnOnce(),
) -> Vec<Duration> {
    let watchers: Vec<_> = tunnels
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                match ws.next().await {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => Instant::now(),
                    Some(Ok(other)) => panic!("unexpected {other:?} from a dead peer"),
                }
            })
        })
        .collect();
    let killed = Instant::now();
    kill();
    let mut latencies = Vec::new();
    for watcher in watchers {
        let ended = tokio::time::timeout(CLOSE_WITHIN * 2, watcher).await;
        let ended = ended.expect("a tunnel outlived the kill").unwrap();
        latencies.push(ended - killed);
    }
    let slowest = latencies.iter().max().unwrap();
    assert!(*slowest <= CLOSE_WITHIN, "closes took {latencies:?}");
    latencies
}

/// The status of a WebSocket upgrade through `front` (101 if it opened).
async fn upgrade_status(front: SocketAddr) -> u16 {
    raw_upgrade(front, "/ws", "Upgrade", &[])
        .await
        .unwrap()
        .status
}

/// The app (`h2hop-echo`, a real process) is SIGKILLed under five tunnels:
/// each client sees its WebSocket end within [`CLOSE_WITHIN`]; while it
/// is down a new tunnel gets 502, and once an app listens on the same port
/// again the same front and sidecar tunnel to it.
#[tokio::test]
async fn app_killed_mid_tunnel_ends_every_tunnel_and_a_new_app_is_used() {
    within(async {
        let echo = Path::new(env!("CARGO_BIN_EXE_h2hop-echo"));
        let mut app = Process::start(echo, &["--listen", "127.0.0.1:0"])
            .await
            .unwrap();
        let pair = Pair::builder()
            .app_at(app.listen().unwrap())
            .start()
            .await
            .unwrap();
        let tunnels = open_tunnels(pair.front, 5).await;
        let latencies = close_latencies(tunnels, || app.kill().unwrap()).await;
        eprintln!("app killed: tunnels ended at the client after {latencies:?}");

        assert_eq!(upgrade_status(pair.front).await, 502, "app down");
        let listen = app.listen().unwrap().to_string();
        let _app = Process::start(echo, &["--listen", &listen]).await.unwrap();
        open_tunnels(pair.front, 2).await;
    })
    .await;
}

/// The sidecar (the binary, over mutual TLS) is SIGKILLed under ten
/// tunnels: all end at their clients within [`CLOSE_WITHIN`]; new tunnels
/// get 502 while it is down; once a sidecar listens on the same address
/// again, the same front reconnects (after its dial backoff) and tunnels.
#[tokio::test]
async fn sidecar_killed_mid_tunnel_ends_its_tunnels_and_the_front_reconnects() {
    let bin = binaries::dir();
    within(async {
        let stop = CancellationToken::new();
        let _stop = stop.clone().drop_guard();
        let app = TestApp::spawn(loopback().await.unwrap(), stop.child_token()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::generate(&["localhost".to_owned()]).unwrap();
        pki.write_to(dir.path(), true).unwrap();
        let mut sidecar = start_sidecar(&bin, dir.path(), app.addr, "127.0.0.1:0").await;
        let sidecar_addr = sidecar.listen().unwrap();
        let front = start_front(&pki, sidecar_addr, &stop).await;

        let tunnels = open_tunnels(front, 10).await;
        let latencies = close_latencies(tunnels, || sidecar.kill().unwrap()).await;
        eprintln!("sidecar killed: tunnels ended at the client after {latencies:?}");
        assert_eq!(upgrade_status(front).await, 502, "sidecar down");

        let _sidecar = start_sidecar(&bin, dir.path(), app.addr, &sidecar_addr.to_string()).await;
        let restarted = Instant::now();
        // The front's dial backoff (at most 5 s) decides when it tries again.
        let reconnected = eventually_async(Duration::from_secs(10), || async {
            (upgrade_status(front).await == 101).then_some(())
        });
        assert!(reconnected.await.is_some(), "no reconnect");
        let after = restarted.elapsed();
        eprintln!("sidecar restarted: a new tunnel opened after {after:?}");
        open_tunnels(front, 3).await;
    })
    .await;
}

/// The sidecar binary on `listen` over mutual TLS with the PKI in `dir`.
async fn start_sidecar(bin: &Path, dir: &Path, app: SocketAddr, listen: &str) -> Process {
    let mut args = ["--listen", listen, "--app", &app.to_string()]
        .map(String::from)
        .to_vec();
    let files = [
        ("--cert", "sidecar.pem"),
        ("--key", "sidecar-key.pem"),
        ("--client-ca", "ca.pem"),
    ];
    for (flag, name) in files {
        args.extend([flag.to_owned(), dir.join(name).display().to_string()]);
    }
    Process::start(&bin.join("h2hop-sidecar"), &args)
        .await
        .unwrap()
}

/// An in-process front over mutual TLS toward `sidecar`, trusting `pki`.
async fn start_front(pki: &DevPki, sidecar: SocketAddr, stop: &CancellationToken) -> SocketAddr {
    let tls = h2hop_front::UpstreamTls {
        config: h2hop::tls::hop_client_config(
            vec![pki.ca_der()],
            Some((pki.client_chain(), pki.client_key())),
        )
        .unwrap()
        .into(),
        server_name: rustls::pki_types::ServerName::try_from("localhost").unwrap(),
    };
    let config = h2hop_front::Config::new(sidecar.to_string(), Some(tls));
    let listener = loopback().await.unwrap();
    let front = listener.local_addr().unwrap();
    tokio::spawn(h2hop_front::run(
        config,
        listener.into(),
        stop.child_token(),
    ));
    front
}

/// An address for `app` whose listener calls accept() only once per
/// permit the test adds: connections beyond the permits wait in the
/// kernel's accept queue, as with an app too busy to accept. Each accepted
/// connection is piped to `app`.
async fn slow_accepting(app: SocketAddr, permits: Arc<Semaphore>) -> SocketAddr {
    let listener = loopback().await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok(permit) = permits.acquire().await {
            permit.forget();
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut outbound = TcpStream::connect(app).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    addr
}

/// An app that leaves a tunnel's connection in its accept queue for
/// 1.5 s: the tunnel opens once it is accepted, while another tunnel
/// through the same pair keeps echoing; one left there beyond the
/// sidecar's 3 s upgrade timeout gets 504 from the sidecar.
#[tokio::test]
async fn app_slow_to_accept_delays_only_its_own_tunnel() {
    within(async {
        let stop = CancellationToken::new();
        let _stop = stop.clone().drop_guard();
        let app = TestApp::spawn(loopback().await.unwrap(), stop.child_token()).unwrap();
        let permits = Arc::new(Semaphore::new(1));
        let gate = slow_accepting(app.addr, permits.clone()).await;
        let pair = Pair::builder()
            .app_at(gate)
            .sidecar_config(|config| config.app.upgrade_timeout = Duration::from_secs(3))
            .start()
            .await
            .unwrap();
        let mut flowing = open_tunnels(pair.front, 1).await.pop().unwrap();

        let front = pair.front;
        let asked = Instant::now();
        let mut waiting = tokio::spawn(async move { open_tunnels(front, 1).await });
        let mut rounds = 0;
        while asked.elapsed() < Duration::from_millis(1500) {
            let text = format!("meanwhile {rounds}");
            let echo = echo_roundtrip(&mut flowing, Message::text(text.clone())).await;
            assert_eq!(echo.unwrap(), Message::text(text));
            assert!(!waiting.is_finished(), "opened before the app accepted");
            rounds += 1;
            // Pacing, not synchronisation: the other tunnel is used all
            // the while the slow accept is pending.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        permits.add_permits(1);
        let opened = tokio::time::timeout(Duration::from_secs(5), &mut waiting).await;
        opened.expect("the accepted tunnel did not open").unwrap();
        eprintln!(
            "slow accept: the tunnel opened after {:?}; the other echoed {rounds} times meanwhile",
            asked.elapsed()
        );

        let asked = Instant::now();
        let mut late = raw_upgrade(pair.front, "/ws", "Upgrade", &[]).await;
        let late = late.as_mut().unwrap();
        let body = String::from_utf8(late.read_body().await.unwrap()).unwrap();
        let after = asked.elapsed();
        assert_eq!(late.status, 504, "{body}");
        assert!(body.starts_with("h2hop-sidecar:"), "{body}");
        assert!(after >= Duration::from_millis(2900), "504 after {after:?}");
        let echo = echo_roundtrip(&mut flowing, Message::text("still")).await;
        assert_eq!(echo.unwrap(), Message::text("still"));
    })
    .await;
}

/// The body of `GET path` on an admin listener, which must answer 200.
async fn admin(addr: SocketAddr, path: &str) -> String {
    let mut client = client::http1_connect(addr).await.unwrap();
    let request = client::request(http::Method::GET, addr, path, client::full("")).unwrap();
    let response = client.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = client::body_bytes(response).await.unwrap();
    String::from_utf8(body.to_vec()).unwrap()
}

/// The value of one series of a Prometheus text exposition (0 if absent).
fn series(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .map_or(0.0, |value| value.parse().unwrap())
}

/// Tunnels open, on either proxy's `/metrics`.
const ACTIVE: &str = "h2hop_tunnels_active{protocol=\"websocket\"}";

/// A client that goes silent without closing its socket (a laptop lid
/// shut, a dropped route): the front's tunnel idle timeout (800 ms) ends
/// the tunnel, the app sees its side reset, the front closes the client's
/// socket, and neither proxy counts the tunnel as open any more.
#[tokio::test]
async fn vanished_client_is_released_by_the_idle_timeout() {
    within(async {
        let idle = Duration::from_millis(800);
        let pair = Pair::builder()
            .h2c()
            .admin()
            .front_config(|config| config.tunnel_idle_timeout = Duration::from_millis(800))
            .start()
            .await
            .unwrap();
        let (front_admin, sidecar_admin) = (pair.front_admin.unwrap(), pair.sidecar_admin.unwrap());
        let mut vanished = raw_upgrade(pair.front, "/raw/hold", "Upgrade", &[])
            .await
            .unwrap();
        assert_eq!(vanished.status, 101);
        vanished.stream.write_all(b"last words").await.unwrap();
        let last_byte = Instant::now();
        assert_eq!(series(&admin(front_admin, "/metrics").await, ACTIVE), 1.0);

        // From here on the client neither reads, writes nor closes.
        let outcome = tokio::time::timeout(idle * 4, pair.app.next_raw_outcome()).await;
        let released_after = last_byte.elapsed();
        assert_eq!(outcome.expect("the app saw no end"), RawOutcome::Reset);
        assert!(released_after >= idle * 9 / 10, "{released_after:?}");
        eprintln!("vanished client: the app saw the reset {released_after:?} after the last byte");

        // Its socket was closed under it (a FIN or a reset), nothing sent.
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(CLOSE_WITHIN, vanished.stream.read_to_end(&mut rest));
        let closed = closed.await.expect("the client's socket stayed open");
        assert!(rest.is_empty(), "{closed:?}: {rest:?}");
        for proxy in [front_admin, sidecar_admin] {
            let released = eventually_async(CLOSE_WITHIN, || async {
                (series(&admin(proxy, "/metrics").await, ACTIVE) == 0.0).then_some(())
            });
            assert!(released.await.is_some(), "{proxy} still holds the tunnel");
        }
        let idle_total = "h2hop_tunnels_total{protocol=\"websocket\",result=\"idle\"}";
        assert_eq!(
            series(&admin(front_admin, "/metrics").await, idle_total),
            1.0
        );
    })
    .await;
}

/// What each slow-reader run offers: far beyond every buffer on the way.
const OFFERED: u64 = 256 * 1024 * 1024;
/// Growth of this process's resident memory allowed while a reader stalls.
const RSS_BOUND: u64 = 64 * 1024 * 1024;

/// This process's resident set, from `/proc/self/status`.
fn vm_rss() -> u64 {
    procstat::rss_kib(std::process::id()).unwrap() * 1024
}

/// Offers [`OFFERED`] bytes from `writer` while `reader` reads nothing:
/// the writer must stall short of them and memory must stay within
/// [`RSS_BOUND`]; then `reader` reads, and every byte arrives in order.
/// Returns the bytes in flight when the writer stalled and the RSS growth.
async fn stall_then_drain<W, R>(mut writer: W, mut reader: R, seed: u64) -> (u64, u64)
where
    W: AsyncWrite + Unpin + Send + 'static,
    R: AsyncRead + Unpin,
{
    let rss_before = vm_rss();
    let written = Arc::new(AtomicU64::new(0));
    let counter = written.clone();
    let mut writing = tokio::spawn(async move {
        let mut noise = Noise::new(seed);
        while counter.load(Ordering::SeqCst) < OFFERED {
            writer.write_all(noise.rest_of_block()).await.unwrap();
            noise.advance(BLOCK);
            counter.fetch_add(BLOCK as u64, Ordering::SeqCst);
        }
        writer.shutdown().await.unwrap();
    });
    // Stalled: no progress for 500 ms. The quiet period is what is
    // checked, so it is waited out, sampled every 50 ms.
    let mut seen = (0, Instant::now());
    while seen.1.elapsed() < Duration::from_millis(500) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = written.load(Ordering::SeqCst);
        if now != seen.0 {
            seen = (now, Instant::now());
        }
        assert!(!writing.is_finished(), "nothing held the writer back");
    }
    let in_flight = seen.0;
    assert!(in_flight < OFFERED / 4, "stalled after {in_flight} bytes");
    let growth = vm_rss().saturating_sub(rss_before);
    assert!(growth < RSS_BOUND, "memory grew {growth} bytes");

    let mut noise = Noise::new(seed);
    let mut buf = vec![0u8; BLOCK];
    let mut received = 0u64;
    while received < OFFERED {
        let n = reader.read(&mut buf).await.unwrap();
        assert_ne!(n, 0, "the tunnel ended after {received} bytes");
        assert!(noise.matches(&buf[..n]), "wrong bytes after {received}");
        received += n as u64;
    }
    tokio::time::timeout(Duration::from_secs(5), &mut writing)
        .await
        .expect("the writer never finished")
        .unwrap();
    (in_flight, growth)
}

/// The app's side of one WebSocket upgrade, by hand: reads the sidecar's
/// request head and answers 101 with the matching accept value.
async fn accept_upgrade(listener: &TcpListener) -> TcpStream {
    let (mut stream, _) = listener.accept().await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "head cut short");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let key = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-key")
                .then(|| value.trim())
        })
        .unwrap();
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        client::accept_for(key)
    );
    stream.write_all(answer.as_bytes()).await.unwrap();
    stream
}

/// RFC 9113 §5.2 flow control end to end: a client that stops reading
/// while the app sends, and an app that stops reading while the client
/// sends. Each time the sender stalls after a bounded amount, this
/// process's memory stays within [`RSS_BOUND`] while 256 MiB is offered,
/// and once the reader resumes every byte arrives in order.
#[tokio::test]
async fn slow_reader_on_either_end_pauses_the_sender_and_loses_nothing() {
    within(async {
        let app = loopback().await.unwrap();
        let pair = Pair::builder()
            .app_at(app.local_addr().unwrap())
            .start()
            .await
            .unwrap();
        for direction in ["app to client", "client to app"] {
            let (upgraded, app_side) = tokio::join!(
                raw_upgrade(pair.front, "/ws", "Upgrade", &[]),
                accept_upgrade(&app)
            );
            let upgraded = upgraded.unwrap();
            assert_eq!((upgraded.status, upgraded.leftover.len()), (101, 0));
            let client_side = upgraded.stream;
            let (in_flight, growth) = if direction == "app to client" {
                stall_then_drain(app_side, client_side, 1).await
            } else {
                stall_then_drain(client_side, app_side, 2).await
            };
            let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
            eprintln!(
                "slow reader, {direction}: sender stalled with {:.1} MiB in flight \
                 of {:.0} MiB offered; RSS grew {:.1} MiB",
                mib(in_flight),
                mib(OFFERED),
                mib(growth)
            );
        }
    })
    .await;
}
