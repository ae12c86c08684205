//! Active health checks end to end (front → sidecar → app): an app whose
//! health path answers 503 is taken out of its cluster within the
//! thresholds, and back in once it answers 200 again; with every app of a
//! cluster failing, `/readyz` is not ready and requests get 503 naming the
//! cluster.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use h2hop_integration::app::TestApp;
use h2hop_integration::client::{body_bytes, full, http1_connect, request};
use h2hop_integration::harness::within;
use h2hop_integration::routed::Routed;
use h2hop_integration::wait::eventually_async;
use http::{Method, StatusCode};

/// Two sidecars in one cluster, checked every 100 ms; two failures take
/// one out, two passes bring it back.
const CHECKED: &str = r#"
[[cluster]]
name = "web"
endpoints = ["{A}", "{B}"]
h2c = true
health_check = { path = "/health", interval = "100ms", timeout = "500ms", healthy_threshold = 2, unhealthy_threshold = 2 }

[[route]]
cluster = "web"
"#;

/// The longest any state change here may take: the thresholds need a few
/// hundred milliseconds; the rest is room for a loaded machine.
const BOUND: Duration = Duration::from_secs(10);

/// Status and body of `GET path` at `addr`.
async fn get(addr: SocketAddr, path: &str) -> (StatusCode, String) {
    let mut client = http1_connect(addr).await.unwrap();
    let response = client
        .send_request(request(Method::GET, addr, path, full("")).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = body_bytes(response).await.unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// The value of one series of the front's `/metrics`, if it is there.
async fn metric(routed: &Routed, series: &str) -> Option<f64> {
    let (_, text) = get(routed.admin, "/metrics").await;
    text.lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .map(|value| value.parse().unwrap())
}

/// Requests for `path` that reached `app`, health checks left out.
fn traffic(app: &TestApp, path: &str) -> usize {
    app.requests()
        .iter()
        .filter(|r| r.uri.path() == path)
        .count()
}

/// Health checks that reached `app`: a GET of the path, marked.
fn checks(app: &TestApp) -> usize {
    let marked = |r: &&h2hop_integration::app::Recorded| {
        r.uri.path() == "/health"
            && r.headers.get("user-agent").map(|v| v.as_bytes()) == Some(b"h2hop-health-check")
    };
    app.requests().iter().filter(marked).count()
}

/// Waits until the series `series` reads `value`.
async fn wait_for_metric(routed: &Routed, series: &str, value: f64) {
    let seen = eventually_async(BOUND, || async {
        (metric(routed, series).await == Some(value)).then_some(())
    })
    .await;
    assert!(seen.is_some(), "{series} never became {value}");
}

/// Sends `count` GETs for `path` through the front, one after the other;
/// every answer must be 200.
async fn send(routed: &Routed, path: &str, count: usize) {
    for _ in 0..count {
        let (status, body) = get(routed.front, path).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

#[tokio::test]
async fn a_failing_app_is_taken_out_and_brought_back() {
    within(async {
        let routed = Routed::start_with(CHECKED, |config| config.error_details = true)
            .await
            .unwrap();
        let [a, b] = &routed.apps;
        let [sidecar_a, sidecar_b] = routed.sidecars;
        let healthy = |endpoint: SocketAddr| {
            format!("h2hop_upstream_healthy{{cluster=\"web\",endpoint=\"{endpoint}\"}}")
        };
        let (healthy_a, healthy_b) = (healthy(sidecar_a), healthy(sidecar_b));
        // Both apps are checked, through their sidecars, and both are in.
        let both_checked = eventually_async(BOUND, || async {
            (checks(a) >= 1 && checks(b) >= 1).then_some(())
        })
        .await;
        assert!(both_checked.is_some(), "the apps saw no health check");
        assert_eq!(metric(&routed, &healthy_a).await, Some(1.0));
        assert_eq!(get(routed.admin, "/readyz").await.0, StatusCode::OK);

        // App A fails its checks: two failures in a row take it out.
        a.set_health(StatusCode::SERVICE_UNAVAILABLE);
        wait_for_metric(&routed, &healthy_a, 0.0).await;
        let failures = format!(
            "h2hop_health_checks_total{{cluster=\"web\",endpoint=\"{sidecar_a}\",result=\"fail\"}}"
        );
        assert!(metric(&routed, &failures).await >= Some(2.0));
        assert_eq!(metric(&routed, &healthy_b).await, Some(1.0));
        send(&routed, "/while-out", 20).await;
        assert_eq!(traffic(a, "/while-out"), 0, "an unhealthy app got traffic");
        assert_eq!(traffic(b, "/while-out"), 20);
        let (ready, body) = get(routed.admin, "/readyz").await;
        assert_eq!(ready, StatusCode::OK, "{body}");

        // A passes again: two passes bring it back, and it takes traffic.
        a.set_health(StatusCode::OK);
        wait_for_metric(&routed, &healthy_a, 1.0).await;
        send(&routed, "/back", 20).await;
        assert!(traffic(a, "/back") > 0, "the recovered app got no traffic");
        assert_eq!(traffic(a, "/back") + traffic(b, "/back"), 20);

        // Both fail: not ready, and requests are turned away naming the
        // cluster, without reaching either app.
        a.set_health(StatusCode::SERVICE_UNAVAILABLE);
        b.set_health(StatusCode::INTERNAL_SERVER_ERROR);
        wait_for_metric(&routed, &healthy_a, 0.0).await;
        wait_for_metric(&routed, &healthy_b, 0.0).await;
        let (ready, body) = get(routed.admin, "/readyz").await;
        assert_eq!(ready, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(
            body.contains("no healthy sidecar in cluster \"web\""),
            "{body}"
        );
        let (status, body) = get(routed.front, "/all-out").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(
            body.contains("no healthy sidecar in cluster \"web\""),
            "{body}"
        );
        assert_eq!(traffic(a, "/all-out") + traffic(b, "/all-out"), 0);

        // One back is enough to be ready again.
        b.set_health(StatusCode::OK);
        wait_for_metric(&routed, &healthy_b, 1.0).await;
        assert_eq!(get(routed.admin, "/readyz").await.0, StatusCode::OK);
        send(&routed, "/one-back", 3).await;
        assert_eq!(traffic(b, "/one-back"), 3);
    })
    .await;
}
