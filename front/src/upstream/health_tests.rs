//! Tests of the health state machine, one check against an HTTP/2 server
//! in the test, the cluster pick, and the readiness.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU16, Ordering};

use super::*;
use crate::upstream::UpstreamConfig;
use crate::upstream::tests::{closed_port, config, get, metrics};

fn check(healthy_threshold: u32, unhealthy_threshold: u32) -> HealthCheck {
    HealthCheck {
        healthy_threshold,
        unhealthy_threshold,
        ..HealthCheck::new("/health").unwrap()
    }
}

/// Feeds `results` (true: pass) and returns the state after each.
fn run_verdict(check: &HealthCheck, results: &[bool]) -> Vec<bool> {
    let mut verdict = Verdict::default();
    results
        .iter()
        .map(|&passed| {
            verdict.record(passed, check);
            verdict.healthy()
        })
        .collect()
}

/// Starts healthy; goes out only after `unhealthy_threshold` failures in a
/// row, and back only after `healthy_threshold` passes in a row; a result
/// that agrees with the state starts the count again.
#[test]
fn thresholds_count_results_in_a_row() {
    let check = check(2, 3);
    let (pass, fail) = (true, false);
    let states = run_verdict(
        &check,
        &[
            fail, fail, pass, fail, fail, fail, pass, fail, pass, pass, fail,
        ],
    );
    let expected = [
        true, true, true, true, true, false, false, false, false, true, true,
    ];
    assert_eq!(states, expected);
}

/// `record` reports the flips, and only them.
#[test]
fn record_reports_each_flip_once() {
    let check = check(1, 1);
    let mut verdict = Verdict::default();
    assert_eq!(verdict.record(true, &check), None);
    assert_eq!(verdict.record(false, &check), Some(false));
    assert_eq!(verdict.record(false, &check), None);
    assert_eq!(verdict.record(true, &check), Some(true));
}

/// What the HTTP/2 server in the test saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    uri: http::Uri,
    user_agent: Option<String>,
}

/// An h2c server answering every request with the status in `status`,
/// after `delay`; records what it saw.
async fn h2_server(status: Arc<AtomicU16>, delay: Duration, seen: Arc<Mutex<Vec<Seen>>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (status, seen) = (status.clone(), seen.clone());
            tokio::spawn(async move {
                let mut connection = h2::server::handshake(tcp).await.unwrap();
                while let Some(Ok((request, mut respond))) = connection.accept().await {
                    seen.lock().unwrap().push(Seen {
                        uri: request.uri().clone(),
                        user_agent: request
                            .headers()
                            .get(header::USER_AGENT)
                            .map(|v| v.to_str().unwrap().to_owned()),
                    });
                    let code = status.load(Ordering::SeqCst);
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let response = http::Response::builder().status(code).body(()).unwrap();
                        let mut body = respond.send_response(response, false).unwrap();
                        let _ = body.send_data(bytes::Bytes::from_static(b"ok"), true);
                    });
                }
            });
        }
    });
    addr
}

/// A check is a GET of the path, with the endpoint's address (or the
/// configured authority) and the health check user-agent; 2xx passes,
/// 503 fails naming the status, a slow answer fails naming the bound.
#[tokio::test]
async fn a_check_passes_on_2xx_only_and_within_its_timeout() {
    let status = Arc::new(AtomicU16::new(204));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let addr = h2_server(status.clone(), Duration::ZERO, seen.clone()).await;
    let endpoint = Endpoint::new(config(addr.clone()), metrics());
    let mut check = check(1, 1);
    assert_eq!(
        probe(&endpoint, &check).await.unwrap(),
        StatusCode::NO_CONTENT
    );
    status.store(503, Ordering::SeqCst);
    let failed = probe(&endpoint, &check).await.unwrap_err();
    assert!(
        matches!(
            failed,
            CheckFailure::Status(StatusCode::SERVICE_UNAVAILABLE)
        ),
        "{failed}"
    );
    check = check.with_authority("app.internal").unwrap();
    status.store(200, Ordering::SeqCst);
    assert_eq!(probe(&endpoint, &check).await.unwrap(), StatusCode::OK);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].uri.path(), "/health");
    assert_eq!(seen[0].uri.authority().unwrap().as_str(), addr);
    assert_eq!(seen[2].uri.authority().unwrap().as_str(), "app.internal");
    assert!(
        seen.iter()
            .all(|s| s.user_agent.as_deref() == Some(USER_AGENT))
    );

    let slow_addr = h2_server(
        Arc::new(AtomicU16::new(200)),
        Duration::from_secs(5),
        Arc::new(Mutex::new(Vec::new())),
    )
    .await;
    let slow = Endpoint::new(config(slow_addr), metrics());
    check.timeout = Duration::from_millis(100);
    let failed = probe(&slow, &check).await.unwrap_err();
    assert!(matches!(failed, CheckFailure::TimedOut(_)), "{failed}");
}

/// A sidecar that cannot be reached fails its check.
#[tokio::test]
async fn an_unreachable_sidecar_fails_its_check() {
    let endpoint = Endpoint::new(config(closed_port().await), metrics());
    let failed = probe(&endpoint, &check(1, 1)).await.unwrap_err();
    assert!(
        matches!(failed, CheckFailure::Open(Error::ConnectUpstream { .. })),
        "{failed}"
    );
}

fn checked(addr: String) -> UpstreamConfig {
    UpstreamConfig {
        health_check: Some(check(1, 1)),
        ..config(addr)
    }
}

/// An unhealthy endpoint gets no stream; with none healthy the cluster
/// answers at once, naming itself, without dialling; readiness names it.
#[tokio::test]
async fn unhealthy_endpoints_take_no_streams_and_make_the_front_unready() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let status = Arc::new(AtomicU16::new(200));
    let up = h2_server(status, Duration::ZERO, seen.clone()).await;
    let down = closed_port().await;
    let cluster = Arc::new(Cluster::new(
        "web",
        vec![checked(down), checked(up)],
        metrics(),
    ));
    let [first, second] = cluster.endpoints() else {
        panic!("two endpoints");
    };
    let clusters = [cluster.clone()];
    assert_eq!(readiness(&clusters).await, Ok(()));
    first.set_healthy(false);
    let (response, _send, _slot) = cluster.open_stream(get(), true).await.unwrap();
    assert_eq!(response.await.unwrap().status(), StatusCode::OK);
    assert!(
        first.backing_off().is_none(),
        "the unhealthy one was dialled"
    );
    second.set_healthy(false);
    let err = cluster.open_stream(get(), true).await.err().unwrap();
    assert!(matches!(err, Error::NoHealthyEndpoint { .. }), "{err}");
    assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(err.to_string(), "no healthy sidecar in cluster \"web\"");
    assert_eq!(seen.lock().unwrap().len(), 1);
    let unready = readiness(&clusters).await.unwrap_err();
    assert_eq!(unready, "no healthy sidecar in cluster \"web\"");
    second.set_healthy(true);
    assert_eq!(readiness(&clusters).await, Ok(()));
}

/// Clusters without checks keep the old rule: some sidecar among them must
/// be reachable; a checked cluster's health does not stand in for it.
#[tokio::test]
async fn unchecked_clusters_need_a_usable_sidecar() {
    let unchecked = Arc::new(Cluster::new(
        "plain",
        vec![config(closed_port().await)],
        metrics(),
    ));
    let checked_up = Arc::new(Cluster::new(
        "web",
        vec![checked(closed_port().await)],
        metrics(),
    ));
    let unready = readiness(&[checked_up, unchecked]).await.unwrap_err();
    assert!(unready.contains("cannot connect"), "{unready}");
}

/// The checks of a cluster stop once it is dropped, and its gauge goes.
#[tokio::test]
async fn checks_run_until_the_cluster_is_dropped() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let addr = h2_server(Arc::new(AtomicU16::new(503)), Duration::ZERO, seen.clone()).await;
    let config = UpstreamConfig {
        health_check: Some(HealthCheck {
            interval: Duration::from_millis(20),
            ..check(1, 2)
        }),
        ..config(addr.clone())
    };
    let metrics = metrics();
    let cluster = Arc::new(Cluster::new("web", vec![config], metrics.clone()));
    start(&cluster, &metrics);
    let gauge = format!("h2hop_upstream_healthy{{cluster=\"web\",endpoint=\"{addr}\"}} 0");
    let out = async {
        while cluster.endpoints()[0].healthy() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), out)
        .await
        .unwrap();
    assert!(seen.lock().unwrap().len() >= 2);
    let text = metrics.encode();
    assert!(text.contains(&gauge), "{text}");
    drop(cluster);
    let gone = async {
        while metrics.encode().contains("h2hop_upstream_healthy{") {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), gone)
        .await
        .unwrap();
    let checks = seen.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(seen.lock().unwrap().len(), checks, "checks went on");
}
