//! Each system, started in front of an in-process [`TestApp`], carries one
//! WebSocket echo, and each pair's sidecar log shows the RFC 8441 CONNECT.
//!
//! The h2hop kinds run `h2hop-front` and `h2hop-sidecar` of this test's
//! profile, which [`binaries::dir`] builds; nghttpx and HAProxy need their
//! Debian packages. A missing peer is skipped loudly, unless
//! `H2HOP_REQUIRE_EXTERNAL=1` makes it a failure.

use std::path::PathBuf;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::{Binaries, Kind, Running, Traffic, start};
use h2hop_integration::app::TestApp;
use h2hop_integration::binaries;
use h2hop_integration::client::{close_handshake, echo_roundtrip, ws_connect};
use h2hop_integration::process::find_program;
use h2hop_integration::wait::eventually_some;

/// Bound on each whole test.
const TEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on the wait for a sidecar's log line after the tunnel closed.
const EVIDENCE_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether the peer program for `kind` is installed; if it is not, skips
/// loudly, or fails when `H2HOP_REQUIRE_EXTERNAL=1`.
pub(super) fn peer_installed(program: &str) -> bool {
    if find_program(program).is_some() {
        return true;
    }
    let required = std::env::var("H2HOP_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{program} is not installed and H2HOP_REQUIRE_EXTERNAL=1"
    );
    eprintln!("!!! SKIPPED: {program} is not installed (apt-get install nghttp2-proxy haproxy)");
    false
}

/// Binaries for `kind` (built if need be: call it before a time limit
/// starts), or `None` if the test must be skipped. Kinds that run no h2hop
/// binary get placeholder paths they never use.
pub(super) fn binaries_for(kind: Kind) -> Option<Binaries> {
    let unused = || Binaries {
        front: PathBuf::new(),
        sidecar: PathBuf::new(),
    };
    match kind {
        Kind::Direct => Some(unused()),
        Kind::H2hopH2c
        | Kind::H2hopMtls
        | Kind::H2hopTcp
        | Kind::H2hopTcpMtls
        | Kind::H2hopConnectTcp => Some(Binaries::in_dir(&binaries::dir()).unwrap()),
        Kind::Nghttpx | Kind::NghttpxMtls => peer_installed("nghttpx").then(unused),
        Kind::Haproxy | Kind::HaproxyMtls | Kind::TcpRelay => {
            peer_installed("haproxy").then(unused)
        }
    }
}

/// Waits until [`Running::middle_hop_evidence`] has a line: h2hop-sidecar
/// logs a tunnel when it closes, a moment after the client saw the close.
async fn evidence(running: &Running) -> Vec<String> {
    let mut last = None;
    let found = eventually_some(EVIDENCE_TIMEOUT, || {
        running
            .middle_hop_evidence()
            .map_err(|err| last = Some(err))
            .ok()
    });
    found.await.unwrap_or_else(|| {
        let err = last.map(|err| format!("{err:#}")).unwrap_or_default();
        panic!("{}: {err}{}", running.target.name, running.log_tails())
    })
}

/// Starts `kind` with `workers` threads per proxy in front of a fresh app,
/// echoes one message through a WebSocket, closes it, and for a pair checks
/// the sidecar's evidence.
async fn echo_through(kind: Kind, bins: &Binaries, workers: usize) {
    let shutdown = CancellationToken::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = TestApp::spawn(listener, shutdown.clone()).unwrap();
    let running = start(kind, Traffic::Http1, app.addr, bins, workers)
        .await
        .unwrap();
    assert_eq!(running.target.name, kind.name());

    let (mut ws, response) = ws_connect(running.target.addr, "/ws", &[]).await.unwrap();
    assert_eq!(response.status(), 101);
    let reply = echo_roundtrip(&mut ws, Message::text("through the pair"))
        .await
        .unwrap();
    assert_eq!(reply, Message::text("through the pair"));
    close_handshake(&mut ws, 1000, "done").await.unwrap();
    // The tunnel ends only when the client's half closes too.
    drop(ws);

    if kind == Kind::Direct {
        assert!(running.target.proxy_pids.is_empty());
        assert!(running.middle_hop_evidence().is_err());
    } else if !kind.has_http2_hop() {
        assert_eq!(running.target.proxy_pids.len(), 2);
        assert!(running.middle_hop_evidence().is_err());
    } else {
        assert_eq!(running.target.proxy_pids.len(), 2);
        let lines = evidence(&running).await;
        eprintln!("{} middle hop evidence:", kind.name());
        for line in &lines {
            eprintln!("    {line}");
        }
        assert!(!lines.is_empty());
    }
    shutdown.cancel();
}

/// Runs [`echo_through`] with one worker under [`TEST_TIMEOUT`].
async fn bounded(kind: Kind) {
    let Some(bins) = binaries_for(kind) else {
        return;
    };
    tokio::time::timeout(TEST_TIMEOUT, echo_through(kind, &bins, 1))
        .await
        .unwrap_or_else(|_| panic!("{} timed out", kind.name()));
}

#[tokio::test]
async fn direct_target_is_the_app_with_no_proxy_pids() {
    bounded(Kind::Direct).await;
}

#[tokio::test]
async fn h2hop_h2c_pair_echoes_and_sidecar_logs_a_tunnel() {
    bounded(Kind::H2hopH2c).await;
}

#[tokio::test]
async fn h2hop_mtls_pair_echoes_and_sidecar_logs_a_tunnel() {
    bounded(Kind::H2hopMtls).await;
}

#[tokio::test]
async fn nghttpx_pair_echoes_and_sidecar_logs_extended_connect() {
    bounded(Kind::Nghttpx).await;
}

#[tokio::test]
async fn nghttpx_mtls_pair_echoes_and_sidecar_logs_extended_connect_over_tls() {
    bounded(Kind::NghttpxMtls).await;
}

#[tokio::test]
async fn haproxy_pair_echoes_and_sidecar_logs_websocket_over_h2() {
    bounded(Kind::Haproxy).await;
}

#[tokio::test]
async fn haproxy_mtls_pair_echoes_and_sidecar_logs_websocket_over_h2_and_tls() {
    bounded(Kind::HaproxyMtls).await;
}

#[tokio::test]
async fn tcp_relay_echoes_through_two_processes() {
    bounded(Kind::TcpRelay).await;
}

#[tokio::test]
async fn h2hop_tcp_pair_echoes_and_sidecar_logs_a_tcp_tunnel() {
    bounded(Kind::H2hopTcp).await;
}

#[tokio::test]
async fn h2hop_tcp_mtls_pair_echoes_and_sidecar_logs_a_tcp_tunnel() {
    bounded(Kind::H2hopTcpMtls).await;
}

#[tokio::test]
async fn h2hop_connect_tcp_pair_echoes_and_sidecar_logs_a_tcp_tunnel() {
    bounded(Kind::H2hopConnectTcp).await;
}

#[tokio::test]
async fn every_pair_starts_with_two_workers_per_process() {
    let kinds: Vec<(Kind, Binaries)> = Kind::all()
        .into_iter()
        .filter_map(|kind| Some((kind, binaries_for(kind)?)))
        .collect();
    let all_pairs = async {
        for (kind, bins) in &kinds {
            echo_through(*kind, bins, 2).await;
        }
    };
    tokio::time::timeout(TEST_TIMEOUT, all_pairs)
        .await
        .expect("pairs with two workers timed out");
}

#[tokio::test]
async fn dropping_a_pair_kills_its_processes() {
    let Some(bins) = binaries_for(Kind::H2hopH2c) else {
        return;
    };
    let shutdown = CancellationToken::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = TestApp::spawn(listener, shutdown.clone()).unwrap();
    let running = tokio::time::timeout(
        TEST_TIMEOUT,
        start(Kind::H2hopH2c, Traffic::Http1, app.addr, &bins, 1),
    )
    .await
    .unwrap()
    .unwrap();
    let pids = running.target.proxy_pids.clone();
    let scratch = running.scratch_dir().unwrap().to_path_buf();
    assert!(pids.iter().all(|pid| alive(*pid)));
    drop(running);
    // Drop reaps the children, so their /proc entries are gone at once.
    assert!(pids.iter().all(|pid| !alive(*pid)), "{pids:?} still alive");
    assert!(!scratch.exists());
    shutdown.cancel();
}

/// Whether process `pid` exists (and is not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'))
    })
}

#[test]
fn kind_names_round_trip_through_parse() {
    for kind in Kind::all() {
        assert_eq!(Kind::parse(kind.name()), Some(kind));
    }
    assert_eq!(Kind::parse(" HAProxy "), Some(Kind::Haproxy));
    assert_eq!(Kind::parse("envoy"), None);
    assert_eq!(Kind::all()[0], Kind::Direct);
}
