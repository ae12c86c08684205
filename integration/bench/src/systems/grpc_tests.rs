//! The systems as the gRPC row starts them: each hop's config speaks
//! HTTP/2 toward an h2c app, and a gRPC call through the peers' pairs
//! arrives with its `grpc-status: 0` trailer (the bench's own check).
//!
//! The h2hop pair's commands are checked here; a call through it needs
//! the front's h2c listener and the sidecar's h2c app protocol, which
//! `h2hop-integration`'s tests cover.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use h2hop_integration::scratch::Scratch;
use tokio::net::TcpListener;

use super::tests::{binaries_for, peer_installed};
use super::{Binaries, Kind, Plan, Traffic, plan, start};
use crate::grpc_app;
use crate::workloads::{check_call, grpc_load};

/// Bound on each whole test.
const TEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An app address for configs that are built and never started.
fn unused_app() -> SocketAddr {
    "127.0.0.1:9".parse().unwrap()
}

/// A command's arguments as strings.
fn args(command: &Command) -> Vec<String> {
    command
        .get_args()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect()
}

/// The plan of `kind` for `traffic`, its files in a fresh scratch.
fn planned(kind: Kind, traffic: Traffic) -> (Plan, Scratch) {
    let scratch = Scratch::create("grpc-plan-test").unwrap();
    let bins = Binaries {
        front: PathBuf::from("h2hop-front"),
        sidecar: PathBuf::from("h2hop-sidecar"),
    };
    let plan = plan(kind, traffic, unused_app(), &bins, 1, &scratch).unwrap();
    (plan, scratch)
}

#[test]
fn h2hop_sidecar_speaks_h2c_to_the_grpc_app_only() {
    for kind in [Kind::H2hopH2c, Kind::H2hopMtls] {
        let (grpc, _scratch) = planned(kind, Traffic::Grpc);
        let sidecar = args(&grpc.sidecar);
        let at = sidecar.iter().position(|arg| arg == "--app-protocol");
        assert_eq!(sidecar.get(at.unwrap() + 1).unwrap(), "h2c", "{sidecar:?}");
        assert!(grpc.evidence.is_none());
        let (http1, _scratch) = planned(kind, Traffic::Http1);
        assert!(!args(&http1.sidecar).contains(&"--app-protocol".to_owned()));
        assert!(http1.evidence.is_some());
    }
}

#[test]
fn nghttpx_pair_for_grpc_has_an_h2_backend_at_both_hops() {
    if !peer_installed("nghttpx") {
        return;
    }
    let (grpc, _scratch) = planned(Kind::Nghttpx, Traffic::Grpc);
    let app = unused_app();
    let sidecar = args(&grpc.sidecar);
    let to_app = format!("--backend={},{};;proto=h2", app.ip(), app.port());
    assert!(sidecar.contains(&to_app), "{sidecar:?}");
    let front = args(&grpc.front);
    let to_sidecar = format!(
        "--backend={},{};;proto=h2",
        grpc.sidecar_addr.ip(),
        grpc.sidecar_addr.port()
    );
    assert!(front.contains(&to_sidecar), "{front:?}");
    // Cleartext frontends, which take HTTP/2 with prior knowledge.
    for args in [&sidecar, &front] {
        assert!(args.iter().any(|arg| arg.ends_with(";no-tls")), "{args:?}");
    }
    let (http1, _scratch) = planned(Kind::Nghttpx, Traffic::Http1);
    let to_app = format!("--backend={},{};;proto=http/1.1", app.ip(), app.port());
    assert!(args(&http1.sidecar).contains(&to_app));
}

#[test]
fn haproxy_pair_for_grpc_speaks_h2_on_every_hop() {
    if !peer_installed("haproxy") {
        return;
    }
    let (grpc, scratch) = planned(Kind::Haproxy, Traffic::Grpc);
    let front = std::fs::read_to_string(scratch.path("front.cfg")).unwrap();
    let sidecar = std::fs::read_to_string(scratch.path("sidecar.cfg")).unwrap();
    let bind = format!("bind {} proto h2\n", grpc.front_addr);
    assert!(front.contains(&bind), "{front}");
    let to_sidecar = format!("server s1 {} proto h2\n", grpc.sidecar_addr);
    assert!(front.contains(&to_sidecar), "{front}");
    assert!(sidecar.contains(&format!("bind {} proto h2\n", grpc.sidecar_addr)));
    let to_app = format!("server a {} proto h2\n", unused_app());
    assert!(sidecar.contains(&to_app), "{sidecar}");

    let (http1, scratch) = planned(Kind::Haproxy, Traffic::Http1);
    let front = std::fs::read_to_string(scratch.path("front.cfg")).unwrap();
    let sidecar = std::fs::read_to_string(scratch.path("sidecar.cfg")).unwrap();
    assert!(
        front.contains(&format!("bind {}\n", http1.front_addr)),
        "{front}"
    );
    let to_app = format!("server a {}\n", unused_app());
    assert!(sidecar.contains(&to_app), "{sidecar}");
}

/// Starts `kind` for gRPC in front of a fresh gRPC app and checks one
/// call through it, trailers included.
async fn call_through(kind: Kind) {
    let Some(bins) = binaries_for(kind) else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = listener.local_addr().unwrap();
    let served = tokio::spawn(grpc_app::serve(listener));
    let call = async {
        let running = start(kind, Traffic::Grpc, app, &bins, 1).await.unwrap();
        assert_eq!(running.target.name, kind.name());
        if let Err(err) = check_call(running.target.addr).await {
            panic!("{}: {err:#}{}", kind.name(), running.log_tails());
        }
    };
    tokio::time::timeout(TEST_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| panic!("{} timed out", kind.name()));
    served.abort();
}

#[tokio::test]
async fn grpc_call_direct_arrives_with_its_trailer() {
    call_through(Kind::Direct).await;
}

#[tokio::test]
async fn grpc_call_through_the_nghttpx_pair_arrives_with_its_trailer() {
    call_through(Kind::Nghttpx).await;
}

#[tokio::test]
async fn grpc_call_through_the_haproxy_pair_arrives_with_its_trailer() {
    call_through(Kind::Haproxy).await;
}

#[tokio::test]
async fn grpc_call_through_the_mtls_peer_pairs_arrives_with_its_trailer() {
    call_through(Kind::NghttpxMtls).await;
    call_through(Kind::HaproxyMtls).await;
}

#[tokio::test]
async fn grpc_call_through_the_tcp_relay_arrives_with_its_trailer() {
    call_through(Kind::TcpRelay).await;
}

#[tokio::test]
async fn grpc_call_through_the_h2hop_tcp_tunnel_arrives_with_its_trailer() {
    call_through(Kind::H2hopTcp).await;
}

#[test]
fn h2hop_tcp_tunnel_allows_only_the_app_and_keeps_no_grpc_evidence() {
    let (grpc, scratch) = planned(Kind::H2hopTcp, Traffic::Grpc);
    let sidecar = args(&grpc.sidecar);
    let at = sidecar.iter().position(|arg| arg == "--tcp-allow").unwrap();
    assert_eq!(sidecar[at + 1], unused_app().to_string(), "{sidecar:?}");
    assert_eq!(
        sidecar.iter().filter(|arg| *arg == "--tcp-allow").count(),
        1
    );
    // The bytes pass unchanged: no app protocol to set for gRPC.
    assert!(
        !sidecar.contains(&"--app-protocol".to_owned()),
        "{sidecar:?}"
    );
    assert!(grpc.evidence.is_none());
    let config = std::fs::read_to_string(scratch.path("front.toml")).unwrap();
    let listen = format!("listen = \"{}\"\n", grpc.front_addr);
    assert!(config.contains(&listen), "{config}");
    assert!(args(&grpc.front).contains(&"--config".to_owned()));
}

#[tokio::test]
async fn h2load_counts_answered_grpc_calls() {
    if !peer_installed("h2load") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = listener.local_addr().unwrap();
    let served = tokio::spawn(grpc_app::serve(listener));
    let scratch = Scratch::create("h2load-test").unwrap();
    let load = grpc_load(app, Duration::from_millis(300), scratch.dir());
    let load = tokio::time::timeout(TEST_TIMEOUT, load)
        .await
        .unwrap()
        .unwrap();
    assert!(load.calls > 0, "{load:?}");
    assert_eq!(load.failures, 0, "{load:?}");
    served.abort();
}
