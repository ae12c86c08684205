//! Weighted clusters end to end (front → sidecar → app): a route's
//! `clusters = [{ name, weight }, …]` splits plain requests and tunnels
//! between clusters by weight, drawn per request; weight 0 gets nothing.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use h2hop_integration::client::{body_bytes, full, http1_connect, request, ws_connect};
use std::time::Duration;

use h2hop_integration::harness::within;
use h2hop_integration::logs::Captured;
use h2hop_integration::routed::Routed;
use h2hop_integration::wait::eventually;
use http::{Method, StatusCode};

const WEIGHTED: &str = r#"
[[cluster]]
name = "a"
endpoints = ["{A}"]
h2c = true

[[cluster]]
name = "b"
endpoints = ["{B}"]
h2c = true

[[route]]
path_prefix = "/zero"
clusters = [{ name = "a", weight = 0 }, { name = "b", weight = 1 }]

[[route]]
path_prefix = "/even"
clusters = [{ name = "a", weight = 1 }, { name = "b", weight = 1 }]

[[route]]
clusters = [{ name = "a", weight = 80 }, { name = "b", weight = 20 }]
"#;

/// Sends `count` GETs for `path` over `connections` keep-alive HTTP/1.1
/// connections at once; every answer must be 200.
async fn send_many(routed: &Routed, path: &str, count: usize, connections: usize) {
    let mut tasks = Vec::new();
    for c in 0..connections {
        let front = routed.front;
        let path = path.to_owned();
        let share = count / connections + usize::from(c < count % connections);
        tasks.push(tokio::spawn(async move {
            let mut sender = http1_connect(front).await.unwrap();
            for _ in 0..share {
                let get = request(Method::GET, front, &path, full("")).unwrap();
                let response = sender.send_request(get).await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                body_bytes(response).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// 3000 requests at 80/20: B's count is binomial (n = 3000, p = 0.2),
/// mean 600, standard deviation √(3000 · 0.2 · 0.8) ≈ 21.9. The test
/// takes 4 standard deviations either side, [513, 687]: a correct split
/// fails it about once in 16 000 runs, while a split off by 3 points
/// (17% or 23%, a mean of 510 or 690) passes it less than half the time.
#[tokio::test]
async fn requests_split_by_weight() {
    within(async {
        let routed = Routed::start(WEIGHTED).await.unwrap();
        const TOTAL: usize = 3000;
        send_many(&routed, "/split", TOTAL, 4).await;
        let [a, b] = &routed.apps;
        let (to_a, to_b) = (a.requests().len(), b.requests().len());
        assert_eq!(to_a + to_b, TOTAL);
        assert!((513..=687).contains(&to_b), "a {to_a}, b {to_b}");
    })
    .await;
}

/// A cluster of weight 0 gets no request, its partner every one.
#[tokio::test]
async fn zero_weight_gets_nothing() {
    within(async {
        let routed = Routed::start(WEIGHTED).await.unwrap();
        send_many(&routed, "/zero", 300, 2).await;
        let [a, b] = &routed.apps;
        assert_eq!((a.requests().len(), b.requests().len()), (0, 300));
    })
    .await;
}

/// Tunnels draw a cluster each: 40 WebSockets at 50/50 reach both apps
/// (all 40 to one app has probability 2 · 2⁻⁴⁰).
#[tokio::test]
async fn tunnels_split_by_weight() {
    within(async {
        let routed = Routed::start(WEIGHTED).await.unwrap();
        for _ in 0..40 {
            let (_ws, switched) = ws_connect(routed.front, "/even/ws", &[]).await.unwrap();
            assert_eq!(switched.status(), StatusCode::SWITCHING_PROTOCOLS);
        }
        let [a, b] = &routed.apps;
        let (to_a, to_b) = (a.requests().len(), b.requests().len());
        assert_eq!(to_a + to_b, 40);
        assert!(to_a > 0 && to_b > 0, "a {to_a}, b {to_b}");
    })
    .await;
}

/// The front's access line names the cluster each request was drawn to:
/// as many `route="a"` lines as app A saw requests, and so for B.
#[tokio::test]
async fn access_lines_name_the_cluster_drawn() {
    let (log, _guard) = Captured::install();
    within(async {
        let routed = Routed::start(WEIGHTED).await.unwrap();
        send_many(&routed, "/even", 40, 1).await;
        let [a, b] = &routed.apps;
        let (to_a, to_b) = (a.requests().len(), b.requests().len());
        assert_eq!(to_a + to_b, 40);
        let lines = |cluster: &str| {
            let route = format!("route=\"{cluster}\"");
            log.lines_with(&["h2hop::access", "path=\"/even\"", &route])
                .len()
        };
        let logged = eventually(Duration::from_secs(10), || {
            (lines("a"), lines("b")) == (to_a, to_b)
        })
        .await;
        assert!(
            logged,
            "a {to_a} ({} lines), b {to_b} ({} lines)",
            lines("a"),
            lines("b")
        );
    })
    .await;
}
