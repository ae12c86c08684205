//! `--workers 2` on the binaries: each worker thread accepts on a listener
//! of its own (`SO_REUSEPORT`), and the process stays one server: its
//! `/metrics` count every worker's tunnels, and its drain holds and then
//! closes every worker's connections.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use h2hop_integration::app::TestApp;
use h2hop_integration::binaries;
use h2hop_integration::client::{body_bytes, full, http1_connect, request, ws_connect};
use h2hop_integration::harness::{loopback, within};
use h2hop_integration::process::{Process, Signal};
use http::Method;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// WebSockets opened through the front: with two workers, the chance that
/// one worker accepts all of them is 2^-31.
const TUNNELS: usize = 32;

/// The body of `GET /metrics` on an admin listener.
async fn metrics(addr: SocketAddr) -> String {
    let mut client = http1_connect(addr).await.unwrap();
    let get = request(Method::GET, addr, "/metrics", full("")).unwrap();
    let response = client.send_request(get).await.unwrap();
    String::from_utf8(body_bytes(response).await.unwrap().to_vec()).unwrap()
}

/// The value of one series in a Prometheus text exposition (0 if absent).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .map_or(0.0, |value| value.parse().unwrap())
}

/// Log lines of `process` inside a connection that worker `worker` accepted
/// (at debug, lines carry their `conn{peer, worker}` span).
fn accepted_by(process: &Process, worker: usize) -> usize {
    let mark = format!("worker={worker}}}");
    process
        .lines()
        .iter()
        .filter(|line| line.contains("conn{") && line.contains(&mark))
        .count()
}

/// Both workers of each binary accept connections, `/metrics` counts the
/// tunnels of both, and on SIGTERM every tunnel, whichever worker holds
/// it, keeps flowing through the drain period, is closed at its end, and
/// the process exits 0.
#[tokio::test]
async fn two_workers_share_the_port_the_metrics_and_the_drain() {
    let bin = binaries::dir();
    within(async {
        let app = TestApp::spawn(loopback().await.unwrap(), CancellationToken::new()).unwrap();
        let app_addr = app.addr.to_string();
        let common = [
            "--h2c",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--drain-timeout",
            "1500ms",
            "--log-level",
            "debug",
        ];
        // One stream per front connection: the front opens a connection to
        // the sidecar per tunnel, and the sidecar's workers get some each
        // as surely as the front's do.
        let sidecar_flags = [&common[..], &["--app", &app_addr, "--max-streams", "1"]];
        let mut sidecar = Process::start(&bin.join("h2hop-sidecar"), &sidecar_flags.concat())
            .await
            .unwrap();
        let sidecar_addr = sidecar.listen().unwrap().to_string();
        let front_flags = [&common[..], &["--sidecar", &sidecar_addr]];
        let mut front = Process::start(&bin.join("h2hop-front"), &front_flags.concat())
            .await
            .unwrap();
        let front_addr = front.listen().unwrap();

        let mut tunnels = Vec::new();
        for _ in 0..TUNNELS {
            let (mut ws, _) = ws_connect(front_addr, "/ws", &[]).await.unwrap();
            ws.send(Message::text("open")).await.unwrap();
            assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("open"));
            tunnels.push(ws);
        }
        for (name, process) in [("front", &front), ("sidecar", &sidecar)] {
            let counts = [accepted_by(process, 0), accepted_by(process, 1)];
            assert!(
                counts.iter().all(|&lines| lines > 0),
                "{name}: lines by worker {counts:?}"
            );
            let text = metrics(process.ready_addr("admin").unwrap()).await;
            let open = value(&text, "h2hop_tunnels_active{protocol=\"websocket\"}");
            assert_eq!(open, TUNNELS as f64, "{name}: {text}");
        }

        front.signal(Signal::Term).unwrap();
        front
            .wait_for_line(&["stopped accepting; draining"], Duration::from_secs(5))
            .await
            .unwrap();
        for ws in &mut tunnels {
            ws.send(Message::text("draining")).await.unwrap();
            let echo = ws.next().await.expect("an echo during the drain").unwrap();
            assert_eq!(echo, Message::text("draining"));
        }
        // At the end of the period, every worker's tunnels are cut.
        let cut = front
            .wait_for_line(&["drain timeout"], Duration::from_secs(5))
            .await
            .unwrap();
        let tasks: usize = cut
            .split_whitespace()
            .find_map(|field| field.strip_prefix("tasks="))
            .and_then(|tasks| tasks.parse().ok())
            .unwrap_or_else(|| panic!("no task count in {cut:?}"));
        assert!(tasks >= TUNNELS, "only {tasks} cut: {cut}");
        for ws in &mut tunnels {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => {}
                Some(Ok(other)) => panic!("unexpected {other:?}"),
            }
        }
        let status = front.wait(Duration::from_secs(10)).await.unwrap();
        assert_eq!(status.code(), Some(0), "the front exited with {status}");
        sidecar.signal(Signal::Term).unwrap();
        let status = sidecar.wait(Duration::from_secs(10)).await.unwrap();
        assert_eq!(status.code(), Some(0), "the sidecar exited with {status}");
    })
    .await;
}
