//! The monitoring files in `deploy/monitoring/`: the alert rules load and
//! pass their promtool unit tests, every dashboard query is valid PromQL,
//! the dashboard is well formed, and every metric the rules and the
//! dashboard name is one that a front and a sidecar export once traffic
//! has passed.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use h2hop_integration::client::{raw_request, ws_connect};
use h2hop_integration::harness::{Pair, within};
use h2hop_integration::process::program_or_skip;
use h2hop_integration::scrape;
use h2hop_integration::tcp_peer::{read_all, scripted_target};
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const ALERTS: &str = "deploy/monitoring/h2hop-alerts.yaml";
const ALERT_TESTS: &str = "deploy/monitoring/h2hop-alerts.test.yaml";
const DASHBOARD: &str = "deploy/monitoring/h2hop-dashboard.json";

/// Families a binary exposes only after their first event (the
/// `prometheus-client` crate writes no `# TYPE` line for a labelled family
/// without series), which the traffic of
/// [`every_metric_named_is_exported_by_the_binaries`] does not cause: a
/// limit refusing a connection, a `--config` reload, a retry, an outlier
/// ejection. They are checked against the registry the binaries use.
const AFTER_FIRST_EVENT: [&str; 4] = [
    "h2hop_limit_reached_total",
    "h2hop_config_reloads_total",
    "h2hop_retries_total",
    "h2hop_outlier_ejections_total",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the integration crate is in the repository root")
        .to_path_buf()
}

fn read(path: &str) -> String {
    let path = repo_root().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD)).expect("the dashboard is JSON")
}

/// Runs promtool with `args` in the repository root; its output, after
/// asserting that it succeeded.
fn promtool(program: &Path, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn alert_rules_load_and_pass_their_unit_tests() {
    let test = "alert_rules_load_and_pass_their_unit_tests";
    let Some(program) = program_or_skip(test, "promtool", "prometheus").unwrap() else {
        return;
    };
    let checked = promtool(&program, &["check", "rules", ALERTS]);
    eprintln!("{checked}");
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = promtool(&program, &["test", "rules", ALERT_TESTS]);
    eprintln!("{tested}");
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// Every panel's targets, in order: (panel title, expr).
fn dashboard_exprs(dashboard: &Value) -> Vec<(String, String)> {
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut exprs = Vec::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or_default();
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap_or_default();
            exprs.push((title.to_owned(), expr.to_owned()));
        }
    }
    exprs
}

/// `expr` as Prometheus would get it from Grafana: the interval macros
/// replaced, and the job and instance variables by a value that is a
/// valid regular expression.
fn as_grafana_sends_it(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$job", "h2hop")
        .replace("$instance", "h2hop")
}

#[test]
fn every_dashboard_query_is_valid_promql() {
    let test = "every_dashboard_query_is_valid_promql";
    let Some(program) = program_or_skip(test, "promtool", "prometheus").unwrap() else {
        return;
    };
    let exprs = dashboard_exprs(&dashboard());
    assert!(exprs.len() >= 12, "only {} queries", exprs.len());
    // Each query as a recording rule, which `promtool check rules` parses.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (n, (title, expr)) in exprs.iter().enumerate() {
        let sent = as_grafana_sends_it(expr);
        assert!(!sent.contains('$'), "{title}: a variable left in {sent}");
        // A JSON string is a YAML double-quoted scalar.
        let quoted = serde_json::to_string(&sent).unwrap();
        rules.push_str(&format!(
            "      - record: dashboard:query_{n}\n        expr: {quoted}\n"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard-queries.yaml");
    std::fs::write(&file, &rules).unwrap();
    let checked = promtool(&program, &["check", "rules", file.to_str().unwrap()]);
    let found = format!("SUCCESS: {} rules found", exprs.len());
    assert!(checked.contains(&found), "{checked}\n{rules}");
}

/// One panel's place on Grafana's 24-column grid: (x, y, w, h).
fn grid_place(panel: &Value) -> (u64, u64, u64, u64) {
    let grid = &panel["gridPos"];
    let field = |name: &str| {
        grid[name]
            .as_u64()
            .unwrap_or_else(|| panic!("panel {}: gridPos.{name}", panel["title"]))
    };
    (field("x"), field("y"), field("w"), field("h"))
}

#[test]
fn dashboard_is_well_formed() {
    let dashboard = dashboard();
    for field in ["title", "uid"] {
        assert!(
            dashboard[field].as_str().is_some_and(|v| !v.is_empty()),
            "{field}"
        );
    }
    assert!(
        dashboard["schemaVersion"].as_u64().is_some(),
        "schemaVersion"
    );
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    let variable = |name: &str| variables.iter().find(|v| v["name"] == name);
    let source = variable("datasource").expect("a datasource variable");
    assert_eq!(
        (&source["type"], &source["query"]),
        (&"datasource".into(), &"prometheus".into())
    );
    for name in ["job", "instance"] {
        assert_eq!(variable(name).expect(name)["type"], "query", "{name}");
    }

    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut places = Vec::new();
    for panel in panels {
        let id = panel["id"].as_u64().expect("a numeric panel id");
        assert!(ids.insert(id), "panel id {id} twice");
        let place = grid_place(panel);
        assert!(
            place.0 + place.2 <= 24,
            "{}: wider than the grid",
            panel["title"]
        );
        places.push((panel["title"].to_string(), place));
        if panel["type"] == "row" {
            continue;
        }
        let targets = panel["targets"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        assert!(!targets.is_empty(), "{}: no target", panel["title"]);
        for target in targets {
            let expr = target["expr"].as_str().unwrap_or_default();
            assert!(!expr.trim().is_empty(), "{}: an empty expr", panel["title"]);
            // Rates over Grafana's interval: at least four scrapes.
            for window in expr.split('[').skip(1) {
                assert!(
                    window.starts_with("$__rate_interval]"),
                    "{}: {expr}",
                    panel["title"]
                );
            }
        }
    }
    // No two panels cover the same cell.
    for (i, (a, (ax, ay, aw, ah))) in places.iter().enumerate() {
        for (b, (bx, by, bw, bh)) in &places[i + 1..] {
            let apart = ax + aw <= *bx || bx + bw <= *ax || ay + ah <= *by || by + bh <= *ay;
            assert!(apart, "panels {a} and {b} overlap");
        }
    }
}

#[tokio::test]
async fn every_metric_named_is_exported_by_the_binaries() {
    let named = named_families(&[read(ALERTS), read(DASHBOARD)]);
    eprintln!("families named by the rules and the dashboard: {named:?}");
    assert!(
        named.len() >= 12,
        "only {} families named: {named:?}",
        named.len()
    );

    let scraped = within(scrape_after_traffic()).await;
    let registered = registered_after_every_event();
    let mut missing = Vec::new();
    for family in &named {
        let seen = if scraped.contains(family) {
            "scraped"
        } else if AFTER_FIRST_EVENT.contains(&family.as_str()) && registered.contains(family) {
            "registered, shown after its first event"
        } else {
            missing.push(family.clone());
            "MISSING"
        };
        eprintln!("  {family}: {seen}");
    }
    assert!(
        missing.is_empty(),
        "not exported: {missing:?}\nscraped: {scraped:?}"
    );
    let from_binaries = named.iter().filter(|family| scraped.contains(*family));
    assert!(
        from_binaries.count() >= 12,
        "few families seen at the binaries"
    );
}

/// Starts a front (with an active health check and a TCP service) and a
/// sidecar, drives one WebSocket tunnel, one plain request, one bad
/// request and one TCP tunnel through them, and returns the families both
/// `/metrics` show.
async fn scrape_after_traffic() -> BTreeSet<String> {
    let (target, served) = scripted_target(|mut stream: TcpStream| async move {
        stream.write_all(b"hello").await.unwrap();
        stream.shutdown().await.unwrap();
    })
    .await;
    let pair = Pair::builder()
        .h2c()
        .admin()
        .tcp_service(target)
        .front_config(with_health_check)
        .start()
        .await
        .unwrap();
    let (mut ws, _) = ws_connect(pair.front, "/ws", &[]).await.unwrap();
    ws.send(Message::text("0123456789")).await.unwrap();
    ws.next().await.unwrap().unwrap();
    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}
    drop(ws);
    let plain = raw_request(pair.front, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(plain.await.unwrap().status, 200);
    let bad = raw_request(pair.front, "GET / HTTP/1.1\r\n\r\n");
    assert_eq!(bad.await.unwrap().status, 400);
    let mut tcp = TcpStream::connect(pair.front_tcp[0]).await.unwrap();
    tcp.shutdown().await.unwrap();
    assert_eq!(read_all(&mut tcp).await.0, b"hello");
    served.await.unwrap();

    let (front, sidecar) = (pair.front_admin.unwrap(), pair.sidecar_admin.unwrap());
    // The ends are counted once both relays are done, the health once
    // the first check has run.
    let counted = [
        "h2hop_tunnels_total",
        "h2hop_tcp_tunnel_bytes_total",
        "h2hop_upstream_healthy",
    ];
    let families = families_when(front, Duration::from_secs(5), |families| {
        counted.iter().all(|family| families.contains(*family))
    })
    .await;
    let (_, sidecar_text) = scrape::get(sidecar, "/metrics").await.unwrap();
    families
        .into_iter()
        .chain(exposed_families(&sidecar_text))
        .collect()
}

/// The metric families named in `texts`: every `h2hop_...` token, a
/// histogram's `_bucket`, `_sum` and `_count` series taken as their family.
fn named_families(texts: &[String]) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    for text in texts {
        let mut rest = text.as_str();
        while let Some(at) = rest.find("h2hop_") {
            let before = rest[..at].chars().next_back();
            let token_len = rest[at..]
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(rest.len() - at);
            let token = &rest[at..at + token_len];
            // `h2hop_` alone is prose ("the h2hop_* metrics").
            let inside_a_word = before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            if !inside_a_word && token != "h2hop_" {
                named.insert(family_of(token).to_owned());
            }
            rest = &rest[at + token_len..];
        }
    }
    named
}

/// The family a series name belongs to (a histogram's parts to the
/// histogram; a counter keeps its `_total`, as queries name it).
fn family_of(series: &str) -> &str {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| series.strip_suffix(suffix))
        .unwrap_or(series)
}

/// The families in a text exposition: those with a `# TYPE` line (a
/// counter by its `_total` name) and those with a sample.
fn exposed_families(text: &str) -> BTreeSet<String> {
    let mut families = BTreeSet::new();
    for line in text.lines() {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let mut words = declared.split_whitespace();
            if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                let name = if kind == "counter" {
                    format!("{name}_total")
                } else {
                    name.to_owned()
                };
                families.insert(name);
            }
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            if !name.is_empty() {
                families.insert(family_of(name).to_owned());
            }
        }
    }
    families
}

/// The families `/metrics` at `addr` shows once `ready` holds of them,
/// scraping for up to `bound`.
async fn families_when(
    addr: std::net::SocketAddr,
    bound: Duration,
    ready: impl Fn(&BTreeSet<String>) -> bool,
) -> BTreeSet<String> {
    let started = tokio::time::Instant::now();
    loop {
        let (_, text) = scrape::get(addr, "/metrics").await.unwrap();
        let families = exposed_families(&text);
        if ready(&families) {
            return families;
        }
        assert!(started.elapsed() < bound, "never ready:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The families of the registry both binaries use once every recorder
/// has been called.
fn registered_after_every_event() -> BTreeSet<String> {
    use h2hop::metrics::{
        Culprit, HealthCheckResult, LimitKind, Metrics, ReloadResult, RetryResult, TunnelResult,
    };
    let metrics = Metrics::new("sidecar", "connections", "streams");
    let took = Duration::from_millis(1);
    metrics
        .tunnel_opened("websocket", took)
        .ended(TunnelResult::Clean, 1, 1);
    metrics
        .tcp_opened("db:5432", took)
        .ended(TunnelResult::Clean, 1, 1);
    metrics.request_answered(http::StatusCode::OK, took);
    metrics.error(Culprit::Peer);
    metrics.limit_reached(LimitKind::ClientConnections);
    metrics.config_reloaded(ReloadResult::Failed);
    metrics.tls_reloaded(ReloadResult::Failed, 1);
    metrics.endpoint_health("api", "10.0.0.1:8443", true);
    metrics.health_checked("api", "10.0.0.1:8443", HealthCheckResult::Pass);
    metrics.retried("api", RetryResult::Sent);
    metrics.outlier_ejected("api");
    metrics.drain_begun();
    exposed_families(&metrics.encode())
}

/// An active health check of the front's sidecar, every 100 ms, so that
/// `h2hop_upstream_healthy` and `h2hop_health_checks_total` have series.
fn with_health_check(config: &mut h2hop_front::Config) {
    config.upstream.health_check = Some(h2hop_front::HealthCheck {
        path: http::uri::PathAndQuery::from_static("/"),
        authority: None,
        interval: Duration::from_millis(100),
        timeout: Duration::from_secs(1),
        healthy_threshold: 1,
        unhealthy_threshold: 1,
    });
}
