//! Live reload of the front's `--config` file: routes and clusters change
//! under live tunnels and plain traffic and nothing is lost; a bad file
//! changes nothing and is logged; an unchanged cluster keeps its
//! connection; a removed or changed cluster's connection stays while its
//! streams live, then closes with GOAWAY (NO_ERROR). Reloads come from the
//! library handle, from the file watcher, and (the binary) from SIGHUP.
//!
//! Each cluster is one app behind one h2c sidecar, reached through a
//! forwarder that counts the front's connections and reads the frames the
//! front sends (for its GOAWAY).

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use h2hop_front::{ReloadError, ReloadSummary, RoutingReload};
use h2hop_integration::app::TestApp;
use h2hop_integration::binaries;
use h2hop_integration::client::{self, close_handshake, echo_roundtrip, raw_request, ws_connect};
use h2hop_integration::h2_tap::{self, Tapped};
use h2hop_integration::harness::{loopback, within};
use h2hop_integration::logs::Captured;
use h2hop_integration::process::{Process, Signal};
use h2hop_integration::wait::{eventually, eventually_async};
use http::{Method, StatusCode};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Bound on a condition the proxies make true soon (a connection closed,
/// a log line, a reload seen by the watcher).
const SOON: Duration = Duration::from_secs(5);

/// A cluster's one endpoint: an app behind an h2c sidecar, reached at
/// `addr` through a forwarder that sees the front's connections.
struct Backend {
    app: TestApp,
    addr: SocketAddr,
    seen: Arc<Tapped>,
}

impl Backend {
    async fn start(stop: &CancellationToken) -> Backend {
        let app = TestApp::spawn(loopback().await.unwrap(), stop.child_token()).unwrap();
        let sidecar = loopback().await.unwrap();
        let sidecar_addr = sidecar.local_addr().unwrap();
        let config = h2hop_sidecar::Config::new(app.addr.to_string(), None);
        tokio::spawn(h2hop_sidecar::run(
            config,
            sidecar.into(),
            stop.child_token(),
        ));
        let forwarder = loopback().await.unwrap();
        let addr = forwarder.local_addr().unwrap();
        let seen = Arc::new(Tapped::default());
        tokio::spawn(h2_tap::forward(
            forwarder,
            sidecar_addr,
            seen.clone(),
            stop.child_token(),
        ));
        Backend { app, addr, seen }
    }

    /// Requests (tunnels included) the app saw for `path`.
    fn saw(&self, path: &str) -> usize {
        let requests = self.app.requests();
        requests.iter().filter(|r| r.uri.path() == path).count()
    }
}

/// Clusters `a` and `b` (one endpoint each, h2c) and one route, for any
/// host, to `to`.
fn both_clusters(a: &Backend, b: &Backend, to: &str) -> String {
    format!(
        "[[cluster]]\nname = \"a\"\nendpoints = [\"{}\"]\nh2c = true\n\n\
         [[cluster]]\nname = \"b\"\nendpoints = [\"{}\"]\nh2c = true\n\n\
         [[route]]\ncluster = \"{to}\"\n",
        a.addr, b.addr
    )
}

/// Only cluster `b`, and the route to it.
fn only_b(b: &Backend) -> String {
    format!(
        "[[cluster]]\nname = \"b\"\nendpoints = [\"{}\"]\nh2c = true\n\n\
         [[route]]\ncluster = \"b\"\n",
        b.addr
    )
}

/// A front in-process, its routing from a config file it reloads.
struct Front {
    addr: SocketAddr,
    reload: RoutingReload,
    metrics: Arc<h2hop::metrics::Metrics>,
    file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Front {
    async fn start(toml: &str, watch: Option<Duration>, stop: &CancellationToken) -> Front {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("front.toml");
        std::fs::write(&file, toml).unwrap();
        let mut config = h2hop_front::Config::new(String::new(), None);
        config.use_config_file(&file).unwrap();
        config.config_watch_interval = watch;
        let reload = config.routing_reload.clone();
        let metrics = config.metrics.clone();
        let listener = loopback().await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(h2hop_front::run(
            config,
            listener.into(),
            stop.child_token(),
        ));
        Front {
            addr,
            reload,
            metrics,
            file,
            _dir: dir,
        }
    }

    fn write(&self, toml: &str) {
        std::fs::write(&self.file, toml).unwrap();
    }
}

/// A GET of `path` on a new connection: its status.
async fn get(front: SocketAddr, path: &str) -> u16 {
    let head = format!("GET {path} HTTP/1.1\r\nHost: svc.test\r\nConnection: close\r\n\r\n");
    raw_request(front, &head).await.unwrap().status
}

/// Work repeated in a background task until [`Looping::finish`]: how
/// many rounds went through, and what the task hands back.
struct Looping<T> {
    done: Arc<AtomicUsize>,
    stop: CancellationToken,
    task: JoinHandle<T>,
}

impl<T> Looping<T> {
    /// Waits until `more` further rounds went through, for at most [`SOON`].
    async fn wait_for_more(&self, more: usize) {
        let target = self.done.load(Ordering::SeqCst) + more;
        let done = eventually(SOON, || {
            self.task.is_finished() || self.done.load(Ordering::SeqCst) >= target
        });
        assert!(done.await, "{more} more rounds within {SOON:?}");
        assert!(!self.task.is_finished(), "the loop ended early");
    }

    /// Stops the loop: the rounds done, and what the task returned.
    async fn finish(self) -> (usize, T) {
        self.stop.cancel();
        let returned = self.task.await.unwrap();
        (self.done.load(Ordering::SeqCst), returned)
    }
}

/// Plain GETs in a loop on one keep-alive client connection, each to a
/// path of its own (`/plain/{lane}/{n}`); the task returns the failures.
async fn plain_loop(front: SocketAddr, lane: usize) -> Looping<Vec<String>> {
    let done = Arc::new(AtomicUsize::new(0));
    let stop = CancellationToken::new();
    let (count, stopped) = (done.clone(), stop.clone());
    let task = tokio::spawn(async move {
        let mut failures = Vec::new();
        let mut sender = client::http1_connect(front).await.unwrap();
        let mut n = 0;
        while !stopped.is_cancelled() {
            n += 1;
            let path = format!("/plain/{lane}/{n}");
            let request = client::request(Method::GET, front, &path, client::full("")).unwrap();
            match sender.send_request(request).await {
                Ok(response) if response.status() == StatusCode::OK => {
                    client::body_bytes(response).await.unwrap();
                    count.fetch_add(1, Ordering::SeqCst);
                }
                Ok(response) => failures.push(format!("{path}: {}", response.status())),
                Err(err) => {
                    failures.push(format!("{path}: {err}"));
                    break;
                }
            }
            // Paces the loop; nothing waits on this pause.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        failures
    });
    let looping = Looping { done, stop, task };
    looping.wait_for_more(3).await;
    looping
}

/// A tunnel echoing one message after another; any lost or wrong echo
/// fails the task, which returns the tunnel, still open.
async fn echo_loop(front: SocketAddr) -> Looping<WebSocketStream<TcpStream>> {
    let (mut ws, _) = ws_connect(front, "/ws/old", &[]).await.unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let stop = CancellationToken::new();
    let (count, stopped) = (done.clone(), stop.clone());
    let task = tokio::spawn(async move {
        while !stopped.is_cancelled() {
            let n = count.load(Ordering::SeqCst);
            echo(&mut ws, &format!("message {n}")).await;
            count.fetch_add(1, Ordering::SeqCst);
            // Paces the loop; nothing waits on this pause.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        ws
    });
    let looping = Looping { done, stop, task };
    looping.wait_for_more(3).await;
    looping
}

/// Plain requests the app of `backend` answered from a [`plain_loop`].
fn plain_seen(backend: &Backend) -> usize {
    let requests = backend.app.requests();
    let plain = requests
        .iter()
        .filter(|r| r.uri.path().starts_with("/plain/"));
    plain.count()
}

/// One echo on `ws`, checked.
async fn echo(ws: &mut WebSocketStream<TcpStream>, text: &str) {
    let echoed = echo_roundtrip(ws, Message::text(text)).await.unwrap();
    assert_eq!(echoed, Message::text(text));
}

/// A route moved from cluster `a` to cluster `b` under open tunnels (one
/// echoing throughout) and three plain request loops: no request fails,
/// the tunnels keep echoing, new requests and tunnels go to `b`; `a`,
/// kept, keeps its one connection, and takes requests on it again once
/// routed to.
#[tokio::test]
async fn a_route_moves_under_live_traffic_and_nothing_is_lost() {
    within(async {
        let stop = CancellationToken::new();
        let _stop = stop.clone().drop_guard();
        let (a, b) = (Backend::start(&stop).await, Backend::start(&stop).await);
        let front = Front::start(&both_clusters(&a, &b, "a"), None, &stop).await;

        let echoing = echo_loop(front.addr).await;
        let mut idle = Vec::new();
        for _ in 0..2 {
            let (ws, _) = ws_connect(front.addr, "/ws/old", &[]).await.unwrap();
            idle.push(ws);
        }
        assert_eq!((a.saw("/ws/old"), b.saw("/ws/old")), (3, 0));
        let mut plain = Vec::new();
        for lane in 0..3 {
            plain.push(plain_loop(front.addr, lane).await);
        }
        assert!(plain_seen(&a) >= 9 && plain_seen(&b) == 0);

        front.write(&both_clusters(&a, &b, "b"));
        let summary = front.reload.reload().unwrap();
        let expected = ReloadSummary {
            kept: vec!["a".to_owned(), "b".to_owned()],
            routes: 1,
            ..ReloadSummary::default()
        };
        assert_eq!(summary, expected);

        // Every lane's next requests go to b, and none to a any more.
        for lane in &plain {
            lane.wait_for_more(2).await;
        }
        let on_a = plain_seen(&a);
        let on_b = plain_seen(&b);
        assert!(on_b >= 6, "{on_b} plain requests reached b");
        for lane in &plain {
            lane.wait_for_more(5).await;
        }
        assert_eq!(plain_seen(&a), on_a, "a request went to a after the reload");
        assert!(plain_seen(&b) >= on_b + 15);
        echoing.wait_for_more(5).await;
        for (i, ws) in idle.iter_mut().enumerate() {
            echo(ws, &format!("still open {i}")).await;
        }
        let (mut new_ws, _) = ws_connect(front.addr, "/ws/new", &[]).await.unwrap();
        echo(&mut new_ws, "new").await;
        assert_eq!((a.saw("/ws/new"), b.saw("/ws/new")), (0, 1));

        for lane in plain {
            let (answered, failures) = lane.finish().await;
            assert!(failures.is_empty(), "failed requests: {failures:?}");
            assert!(answered >= 10, "{answered} answered");
        }
        let (echoed, mut ws) = echoing.finish().await;
        assert!(echoed >= 8, "{echoed} echoed");
        echo(&mut ws, "last").await;
        for ws in &mut idle {
            echo(ws, "last").await;
        }
        // Kept: a's connection stayed up, unused, and serves again.
        assert_eq!((a.seen.accepted(), a.seen.open()), (1, 1));
        front.write(&both_clusters(&a, &b, "a"));
        front.reload.reload().unwrap();
        assert_eq!(get(front.addr, "/back").await, 200);
        assert_eq!((a.saw("/back"), b.saw("/back")), (1, 0));
        let accepted = a.seen.accepted();
        assert_eq!(accepted, 1, "a kept cluster opened a new connection");
        assert_eq!(b.seen.accepted(), 1);
        assert!(a.seen.goaways().is_empty(), "{:?}", a.seen.goaways());
    })
    .await;
}

/// Files that cannot be used (not TOML, a route to an unknown cluster, a
/// TLS file that is not there) change nothing: the reload fails with the
/// cause, logged at ERROR, and requests go where they went.
#[tokio::test]
async fn a_bad_file_changes_nothing_and_is_logged() {
    within(async {
        let (logs, _guard) = Captured::install();
        let stop = CancellationToken::new();
        let _stop = stop.clone().drop_guard();
        let (a, b) = (Backend::start(&stop).await, Backend::start(&stop).await);
        let front = Front::start(&both_clusters(&a, &b, "a"), None, &stop).await;
        assert_eq!(get(front.addr, "/before").await, 200);

        let good = both_clusters(&a, &b, "b");
        let tls = good.replace(
            "h2c = true\n\n[[route]]",
            "ca = \"ca.pem\"\ncert = \"front.pem\"\nkey = \"front-key.pem\"\n\n[[route]]",
        );
        let bad = [
            ("[[cluster]\nname = ", "invalid configuration file"),
            (
                &*good.replace("cluster = \"b\"\n", "cluster = \"c\"\n"),
                "route 1: unknown cluster \"c\"",
            ),
            (&*tls, "cluster \"b\": TLS set-up failed: reading"),
        ];
        for (i, (text, cause)) in bad.into_iter().enumerate() {
            front.write(text);
            let err = front.reload.reload().unwrap_err();
            assert!(matches!(err, ReloadError::File { .. }), "{err:?}");
            assert!(!front.reload.reload_and_log());
            let line = logs.wait_for(&["configuration reload failed", cause]).await;
            assert!(line.contains("ERROR"), "{line}");
            assert!(line.contains("front.toml"), "{line}");
            let path = format!("/after/{i}");
            assert_eq!(get(front.addr, &path).await, 200);
            assert_eq!((a.saw(&path), b.saw(&path)), (1, 0), "{text}");
        }
        assert_eq!(a.seen.accepted(), 1);

        front.write(&good);
        assert!(front.reload.reload_and_log());
        let line = logs.wait_for(&["configuration reloaded"]).await;
        assert!(line.contains("kept=[\"a\", \"b\"]"), "{line}");
        assert_eq!(get(front.addr, "/good").await, 200);
        assert_eq!((a.saw("/good"), b.saw("/good")), (0, 1));
        // Only the logged reloads count.
        let text = front.metrics.encode();
        let counted = |result: &str| {
            let series = format!("h2hop_config_reloads_total{{result=\"{result}\"}} ");
            text.lines()
                .find_map(|line| line.strip_prefix(series.as_str())?.parse::<u32>().ok())
        };
        assert_eq!(
            (counted("ok"), counted("failed")),
            (Some(1), Some(3)),
            "{text}"
        );
    })
    .await;
}

/// A cluster removed from the file: its open tunnel keeps echoing on the
/// same connection while new requests go elsewhere; once the tunnel
/// closes, the front ends that connection with GOAWAY (NO_ERROR).
#[tokio::test]
async fn a_removed_cluster_drains_then_closes_with_goaway() {
    within(async {
        let stop = CancellationToken::new();
        let _stop = stop.clone().drop_guard();
        let (a, b) = (Backend::start(&stop).await, Backend::start(&stop).await);
        let front = Front::start(&both_clusters(&a, &b, "a"), None, &stop).await;
        let (mut ws, _) = ws_connect(front.addr, "/ws", &[]).await.unwrap();
        echo(&mut ws, "before").await;
        assert_eq!((a.seen.accepted(), a.seen.open()), (1, 1));

        front.write(&only_b(&b));
        let summary = front.reload.reload().unwrap();
        assert_eq!(summary.removed, ["a"]);
        assert_eq!(summary.kept, ["b"]);
        assert_eq!(get(front.addr, "/after").await, 200);
        assert_eq!((a.saw("/after"), b.saw("/after")), (0, 1));
        for i in 0..5 {
            echo(&mut ws, &format!("draining {i}")).await;
        }
        assert_eq!((a.seen.accepted(), a.seen.open()), (1, 1));
        assert!(a.seen.goaways().is_empty(), "GOAWAY under a live tunnel");

        let close = close_handshake(&mut ws, 1000, "done").await.unwrap();
        assert_eq!(close.map(|frame| u16::from(frame.code)), Some(1000));
        let closed = eventually(SOON, || a.seen.open() == 0).await;
        assert!(closed, "the removed cluster's connection stayed open");
        assert_eq!(a.seen.goaways(), [0], "one GOAWAY with NO_ERROR");
        assert_eq!(b.seen.open(), 1);
    })
    .await;
}

/// A cluster whose settings changed is a new cluster: a new connection
/// for the next request, and the old idle one closes with GOAWAY.
#[tokio::test]
async fn a_changed_cluster_gets_a_new_connection() {
    within(async {
        let stop = CancellationToken::new();
        let _stop = stop.clone().drop_guard();
        let (a, b) = (Backend::start(&stop).await, Backend::start(&stop).await);
        let front = Front::start(&both_clusters(&a, &b, "a"), None, &stop).await;
        assert_eq!(get(front.addr, "/one").await, 200);
        assert_eq!(a.seen.accepted(), 1);

        let changed =
            both_clusters(&a, &b, "a").replacen("h2c = true", "h2c = true\nmax_connections = 2", 1);
        front.write(&changed);
        let summary = front.reload.reload().unwrap();
        assert_eq!(
            (summary.replaced, summary.kept),
            (vec!["a".to_owned()], vec!["b".to_owned()])
        );
        assert_eq!(get(front.addr, "/two").await, 200);
        assert_eq!(a.saw("/two"), 1);
        assert_eq!(a.seen.accepted(), 2);
        let closed = eventually(SOON, || a.seen.open() == 1).await;
        assert!(closed, "the replaced cluster's idle connection stayed open");
        assert_eq!(a.seen.goaways(), [0]);
    })
    .await;
}

/// With a watch interval, a change of the file's content is reloaded
/// without being asked; a bad content keeps the routing.
#[tokio::test]
async fn the_watcher_reloads_a_changed_file() {
    within(async {
        let stop = CancellationToken::new();
        let _stop = stop.clone().drop_guard();
        let (a, b) = (Backend::start(&stop).await, Backend::start(&stop).await);
        let every = Some(Duration::from_millis(50));
        let front = Front::start(&both_clusters(&a, &b, "a"), every, &stop).await;
        assert_eq!(get(front.addr, "/first").await, 200);
        assert_eq!(a.saw("/first"), 1);

        front.write(&both_clusters(&a, &b, "b"));
        let mut n = 0;
        let moved = eventually_async(SOON, || {
            n += 1;
            let path = format!("/probe/{n}");
            let b = &b;
            async move {
                assert_eq!(get(front.addr, &path).await, 200);
                (b.saw(&path) == 1).then_some(())
            }
        });
        assert!(moved.await.is_some(), "the watcher did not reload");

        front.write("not toml");
        // Two watch intervals and more: the bad file was read and refused.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(get(front.addr, "/last").await, 200);
        assert_eq!(b.saw("/last"), 1);
    })
    .await;
}

/// The binary: SIGHUP re-reads `--config` (and logs what changed), a bad
/// file on SIGHUP is logged and changes nothing, SIGTERM still ends it
/// with 0.
#[tokio::test]
async fn the_binary_reloads_its_config_on_sighup() {
    let bin = binaries::dir();
    within(async {
        let stop = CancellationToken::new();
        let _stop = stop.clone().drop_guard();
        let (a, b) = (Backend::start(&stop).await, Backend::start(&stop).await);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("front.toml");
        std::fs::write(&file, both_clusters(&a, &b, "a")).unwrap();
        let flags = [
            "--listen",
            "127.0.0.1:0",
            "--drain-timeout",
            "1s",
            "--config",
            &file.display().to_string(),
        ]
        .map(str::to_owned);
        let mut front = Process::start(&bin.join("h2hop-front"), &flags)
            .await
            .unwrap();
        let addr = front.listen().unwrap();
        assert_eq!(get(addr, "/one").await, 200);
        assert_eq!(a.saw("/one"), 1);

        write(&file, &both_clusters(&a, &b, "b"));
        front.signal(Signal::Hup).unwrap();
        let line = front
            .wait_for_line(&["configuration reloaded"], SOON)
            .await
            .unwrap();
        assert!(line.contains("routes=1"), "{line}");
        assert_eq!(get(addr, "/two").await, 200);
        assert_eq!((a.saw("/two"), b.saw("/two")), (0, 1));

        write(
            &file,
            &only_b(&b).replace("cluster = \"b\"\n", "cluster = \"x\"\n"),
        );
        front.signal(Signal::Hup).unwrap();
        let line = front
            .wait_for_line(&["configuration reload failed"], SOON)
            .await
            .unwrap();
        assert!(line.contains("unknown cluster"), "{line}");
        assert_eq!(get(addr, "/three").await, 200);
        assert_eq!(b.saw("/three"), 1);

        front.signal(Signal::Term).unwrap();
        let status = front.wait(SOON).await.unwrap();
        assert_eq!(status.code(), Some(0), "the front exited with {status}");
    })
    .await;
}

fn write(file: &Path, text: &str) {
    std::fs::write(file, text).unwrap();
}
