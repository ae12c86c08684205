//! Tests of [`super`]: the exposition of every family.
use super::*;

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[test]
fn tcp_tunnels_are_counted_by_target() {
    let metrics = Metrics::new("sidecar", "connections", "streams");
    let open = metrics.tcp_opened("127.0.0.1:6379", Duration::from_millis(1));
    let active = "h2hop_tcp_tunnels_active{target=\"127.0.0.1:6379\"}";
    assert_eq!(value(&metrics.encode(), active), Some(1.0));
    open.ended(TunnelResult::Clean, 5, 7);
    metrics.tcp_not_opened("10.0.0.1:22", TunnelResult::Denied);
    let text = metrics.encode();
    let series = [
        (active, 0.0),
        (
            "h2hop_tcp_tunnels_total{target=\"127.0.0.1:6379\",result=\"clean\"}",
            1.0,
        ),
        (
            "h2hop_tcp_tunnels_total{target=\"10.0.0.1:22\",result=\"denied\"}",
            1.0,
        ),
        (
            "h2hop_tcp_tunnel_bytes_total{target=\"127.0.0.1:6379\",direction=\"up\"}",
            5.0,
        ),
        (
            "h2hop_tcp_tunnel_bytes_total{target=\"127.0.0.1:6379\",direction=\"down\"}",
            7.0,
        ),
        ("h2hop_tcp_connect_seconds_count", 1.0),
    ];
    for (name, count) in series {
        assert_eq!(value(&text, name), Some(count), "{name} in {text}");
    }
}

#[test]
fn retries_and_ejections_are_counted_by_cluster() {
    let metrics = Metrics::new("sidecar", "connections", "streams");
    metrics.retried("api", RetryResult::Sent);
    metrics.retried("api", RetryResult::Sent);
    metrics.retried("api", RetryResult::BudgetExhausted);
    metrics.retried("web", RetryResult::NotReplayable);
    metrics.outlier_ejected("api");
    let text = metrics.encode();
    let series = [
        ("h2hop_retries_total{cluster=\"api\",result=\"sent\"}", 2.0),
        (
            "h2hop_retries_total{cluster=\"api\",result=\"budget_exhausted\"}",
            1.0,
        ),
        (
            "h2hop_retries_total{cluster=\"web\",result=\"not_replayable\"}",
            1.0,
        ),
        ("h2hop_outlier_ejections_total{cluster=\"api\"}", 1.0),
    ];
    for (name, count) in series {
        assert_eq!(value(&text, name), Some(count), "{name} in {text}");
    }
}

/// The counter kept for a status class is the family's: every request
/// shows in the exposition, and a class never answered has no series.
#[test]
fn requests_are_counted_by_class_only_once_answered() {
    let metrics = Metrics::new("front", "connections", "streams");
    for status in [200, 204, 502] {
        let status = http::StatusCode::from_u16(status).unwrap();
        metrics.request_answered(status, Duration::from_millis(1));
    }
    let text = metrics.encode();
    assert_eq!(
        value(&text, "h2hop_requests_total{status=\"2xx\"}"),
        Some(2.0)
    );
    assert_eq!(
        value(&text, "h2hop_requests_total{status=\"5xx\"}"),
        Some(1.0)
    );
    assert_eq!(value(&text, "h2hop_requests_total{status=\"4xx\"}"), None);
}

#[test]
fn tunnels_requests_and_errors_are_counted() {
    let metrics = Metrics::new("front", "connections", "streams");
    let open = metrics.tunnel_opened("websocket", Duration::from_millis(3));
    let text = metrics.encode();
    assert_eq!(
        value(&text, "h2hop_tunnels_active{protocol=\"websocket\"}"),
        Some(1.0)
    );
    open.ended(TunnelResult::Clean, 10, 20);
    metrics.tunnel_not_opened("websocket", TunnelResult::Refused);
    metrics.request_answered(http::StatusCode::NOT_FOUND, Duration::from_millis(1));
    metrics.error(Culprit::App);
    metrics.connections(1);
    let text = metrics.encode();
    assert_eq!(
        value(&text, "h2hop_tunnels_active{protocol=\"websocket\"}"),
        Some(0.0)
    );
    assert_eq!(
        value(
            &text,
            "h2hop_tunnels_total{protocol=\"websocket\",result=\"clean\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "h2hop_tunnels_total{protocol=\"websocket\",result=\"refused\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "h2hop_tunnel_bytes_total{direction=\"down\"}"),
        Some(20.0)
    );
    assert_eq!(
        value(&text, "h2hop_requests_total{status=\"4xx\"}"),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "h2hop_errors_total{culprit=\"app\"}"),
        Some(1.0)
    );
    assert_eq!(value(&text, "h2hop_http2_connections"), Some(1.0));
    assert_eq!(
        value(&text, "h2hop_tunnel_handshake_seconds_count"),
        Some(1.0)
    );
}

#[test]
fn the_peer_culprit_is_named_after_the_other_hop() {
    let metrics = Metrics::new("sidecar", "connections", "streams");
    metrics.error(Culprit::Peer);
    metrics.error(Culprit::Peer);
    let text = metrics.encode();
    assert_eq!(
        value(&text, "h2hop_errors_total{culprit=\"sidecar\"}"),
        Some(2.0)
    );
    assert_eq!(value(&text, "h2hop_errors_total{culprit=\"peer\"}"), None);
}

#[test]
fn endpoint_health_is_a_gauge_and_checks_are_counted() {
    let metrics = Metrics::new("sidecar", "connections", "streams");
    metrics.endpoint_health("web", "10.0.0.1:8443", false);
    metrics.health_checked("web", "10.0.0.1:8443", HealthCheckResult::Fail);
    metrics.health_checked("web", "10.0.0.1:8443", HealthCheckResult::Fail);
    metrics.health_checked("web", "10.0.0.1:8443", HealthCheckResult::Pass);
    let text = metrics.encode();
    let labels = "cluster=\"web\",endpoint=\"10.0.0.1:8443\"";
    let gauge = format!("h2hop_upstream_healthy{{{labels}}}");
    assert_eq!(value(&text, &gauge), Some(0.0));
    let checks = format!("h2hop_health_checks_total{{{labels},result=");
    assert_eq!(value(&text, &format!("{checks}\"fail\"}}")), Some(2.0));
    assert_eq!(value(&text, &format!("{checks}\"pass\"}}")), Some(1.0));
    metrics.endpoint_health("web", "10.0.0.1:8443", true);
    assert_eq!(value(&metrics.encode(), &gauge), Some(1.0));
    metrics.endpoint_health_gone("web", "10.0.0.1:8443");
    assert_eq!(value(&metrics.encode(), &gauge), None);
}

#[test]
fn config_reloads_are_counted_by_result() {
    let metrics = Metrics::new("sidecar", "connections", "streams");
    metrics.config_reloaded(ReloadResult::Ok);
    metrics.config_reloaded(ReloadResult::Failed);
    metrics.config_reloaded(ReloadResult::Failed);
    let text = metrics.encode();
    let series = "h2hop_config_reloads_total{result=";
    assert_eq!(value(&text, &format!("{series}\"ok\"}}")), Some(1.0));
    assert_eq!(value(&text, &format!("{series}\"failed\"}}")), Some(2.0));
}

/// Both TLS reload series exist at 0 before any reload, so that an alert
/// on `increase()` sees the first failure; a reload counts each
/// configuration by its outcome.
#[test]
fn tls_reloads_start_at_zero_and_count_each_configuration() {
    let metrics = Metrics::new("sidecar", "connections", "streams");
    let series = "h2hop_tls_reloads_total{result=";
    let (ok, failed) = (format!("{series}\"ok\"}}"), format!("{series}\"failed\"}}"));
    let text = metrics.encode();
    assert_eq!(value(&text, &ok), Some(0.0), "{text}");
    assert_eq!(value(&text, &failed), Some(0.0), "{text}");
    metrics.tls_reloaded(ReloadResult::Ok, 2);
    metrics.tls_reloaded(ReloadResult::Failed, 1);
    metrics.tls_reloaded(ReloadResult::Failed, 0);
    let text = metrics.encode();
    assert_eq!(value(&text, &ok), Some(2.0), "{text}");
    assert_eq!(value(&text, &failed), Some(1.0), "{text}");
}

#[test]
fn draining_is_zero_until_the_drain_begins() {
    let metrics = Metrics::new("front", "connections", "streams");
    assert_eq!(value(&metrics.encode(), "h2hop_draining"), Some(0.0));
    metrics.drain_begun();
    assert_eq!(value(&metrics.encode(), "h2hop_draining"), Some(1.0));
}
