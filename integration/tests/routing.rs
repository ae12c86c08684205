//! Routes and clusters from a `--config` TOML file: host (exact or
//! `*.suffix`) and path prefix pick a cluster in order, with prefix and
//! host rewrites; no match is 404; a cluster spreads streams over its
//! sidecars by open streams and skips one it cannot reach.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;

use h2hop_integration::app::TestApp;
use h2hop_integration::binaries;
use h2hop_integration::client::{raw_request, ws_connect};
use h2hop_integration::harness::{closed_port, loopback, within};
use tokio_util::sync::CancellationToken;

/// Apps, sidecars (h2c, one per app) and a front built from `toml`, in
/// which `{A}`, `{B}` and `{DOWN}` stand for the two sidecars and a port
/// where nothing listens.
struct Setup {
    apps: [TestApp; 2],
    front: SocketAddr,
    _stop: tokio_util::sync::DropGuard,
}

async fn setup(toml: &str) -> Setup {
    let stop = CancellationToken::new();
    let mut apps = Vec::new();
    let mut sidecars = Vec::new();
    for _ in 0..2 {
        let app = TestApp::spawn(loopback().await.unwrap(), stop.child_token()).unwrap();
        let listener = loopback().await.unwrap();
        sidecars.push(listener.local_addr().unwrap());
        let config = h2hop_sidecar::Config::new(app.addr.to_string(), None);
        tokio::spawn(h2hop_sidecar::run(
            config,
            listener.into(),
            stop.child_token(),
        ));
        apps.push(app);
    }
    let text = toml
        .replace("{A}", &sidecars[0].to_string())
        .replace("{B}", &sidecars[1].to_string())
        .replace("{DOWN}", &closed_port().await.unwrap().to_string());
    let file = h2hop_front::config_file::parse(&text, Path::new(".")).unwrap();
    let mut config = h2hop_front::Config::new(String::new(), None);
    config.routing = Some(file.into_routing(&config.upstream));
    let listener = loopback().await.unwrap();
    let front = listener.local_addr().unwrap();
    tokio::spawn(h2hop_front::run(
        config,
        listener.into(),
        stop.child_token(),
    ));
    let [a, b]: [TestApp; 2] = apps.try_into().ok().unwrap();
    Setup {
        apps: [a, b],
        front,
        _stop: stop.drop_guard(),
    }
}

async fn get(front: SocketAddr, host: &str, path: &str) -> u16 {
    let head = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    raw_request(front, &head).await.unwrap().status
}

const ROUTES: &str = r#"
[[cluster]]
name = "a"
endpoints = ["{A}"]
h2c = true

[[cluster]]
name = "b"
endpoints = ["{B}"]
h2c = true

[[route]]
host = "*.b.test"
cluster = "b"
host_rewrite = "inside.b"

[[route]]
host = "a.test"
path_prefix = "/api/"
cluster = "a"
prefix_rewrite = "/v2/"

[[route]]
host = "a.test"
cluster = "b"
"#;

/// Host and path pick the route, first match first; rewrites reach the
/// app; a host no route takes gets 404 and reaches no app.
#[tokio::test]
async fn routes_pick_clusters_and_rewrite() {
    within(async {
        let setup = setup(ROUTES).await;
        let [a, b] = &setup.apps;

        assert_eq!(get(setup.front, "x.B.test:8080", "/p?q=1").await, 200);
        let seen = b.requests().pop().unwrap();
        assert_eq!(seen.headers["host"], "inside.b");
        assert_eq!(seen.uri, "/p?q=1");

        assert_eq!(get(setup.front, "a.test", "/api/users?id=7").await, 200);
        let seen = a.requests().pop().unwrap();
        assert_eq!(seen.headers["host"], "a.test");
        assert_eq!(seen.uri, "/v2/users?id=7");

        // Same host, another path: the later route, to the other cluster.
        assert_eq!(get(setup.front, "a.test", "/other").await, 200);
        assert_eq!(b.requests().pop().unwrap().uri, "/other");

        // `*.b.test` does not take `b.test` itself; nothing else does.
        let before = a.requests().len() + b.requests().len();
        assert_eq!(get(setup.front, "b.test", "/").await, 404);
        assert_eq!(get(setup.front, "c.test", "/").await, 404);
        assert_eq!(a.requests().len() + b.requests().len(), before);

        // Tunnels are routed too.
        let (_ws, _) = ws_connect(setup.front, "/api/ws", &[("Host", "a.test")])
            .await
            .unwrap();
        assert_eq!(a.requests().pop().unwrap().uri, "/v2/ws");
    })
    .await;
}

/// Open tunnels spread evenly over a cluster's two sidecars, and a
/// sidecar that cannot be reached is skipped.
#[tokio::test]
async fn clusters_balance_by_open_streams_and_skip_dead_sidecars() {
    within(async {
        let setup = setup(
            r#"
[[cluster]]
name = "both"
endpoints = ["{DOWN}", "{A}", "{B}"]
h2c = true

[[route]]
cluster = "both"
"#,
        )
        .await;
        let mut open = Vec::new();
        for _ in 0..10 {
            let (ws, _) = ws_connect(setup.front, "/ws", &[]).await.unwrap();
            open.push(ws);
        }
        let [a, b] = &setup.apps;
        assert_eq!((a.requests().len(), b.requests().len()), (5, 5));
    })
    .await;
}

/// `--check-config` with `--config`: a summary and exit 0 for a good file;
/// a clear error and a failure exit for a route to an unknown cluster.
#[tokio::test]
async fn check_config_validates_the_file() {
    let dir = binaries::dir();
    let scratch = tempfile::tempdir().unwrap();
    let check = |text: &str| {
        let path = scratch.path().join("front.toml");
        std::fs::write(&path, text).unwrap();
        std::process::Command::new(dir.join("h2hop-front"))
            .arg("--check-config")
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap()
    };
    let good = ROUTES
        .replace("{A}", "10.0.0.1:8443")
        .replace("{B}", "10.0.0.2:8443");
    let output = check(&good);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains("2 cluster(s), 3 route(s)"), "{stdout}");
    assert!(stdout.contains("cluster a: 10.0.0.1:8443"), "{stdout}");

    let bad = good.replace(
        "cluster = \"b\"\nhost_rewrite",
        "cluster = \"nope\"\nhost_rewrite",
    );
    let output = check(&bad);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{output:?}");
    assert!(stderr.contains("nope"), "{stderr}");
    assert!(stderr.contains("--config"), "{stderr}");
}
