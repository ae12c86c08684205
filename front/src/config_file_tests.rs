//! Unit tests of `config_file`: whole files, clusters and their errors.

use std::fs;

use h2hop_certs::DevPki;
use tempfile::TempDir;

use super::*;
use crate::routes::RouteError;

/// A directory with `certs/{ca,front,front-key}.pem` for "sidecar.internal".
fn pki_dir() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::generate(&["sidecar.internal".to_owned()]).unwrap();
    pki.write_to(&dir.path().join("certs"), false).unwrap();
    dir
}

const FULL: &str = r#"
    [[cluster]]
    name = "chat"
    endpoints = ["10.0.0.5:8443", "10.0.0.6:8443"]
    ca = "certs/ca.pem"
    cert = "certs/front.pem"
    key = "certs/front-key.pem"
    server_name = "sidecar.internal"
    max_connections = 8

    [[cluster]]
    name = "web"
    endpoints = ["[fd00::7]:8080"]
    h2c = true

    [[route]]
    host = "*.Example.com"
    path_prefix = "/chat/"
    cluster = "chat"
    prefix_rewrite = "/"
    host_rewrite = "chat.internal"

    [[route]]
    cluster = "web"
"#;

/// A minimal valid file with `extra` appended.
fn h2c_with(extra: &str) -> String {
    format!(
        "[[cluster]]\nname = \"web\"\nendpoints = [\"web:80\"]\nh2c = true\n\n{extra}\n\
         [[route]]\ncluster = \"web\"\n"
    )
}

fn parse_err(text: &str) -> ConfigError {
    parse(text, Path::new("/nonexistent")).unwrap_err()
}

/// The error and its sources, joined as anyhow's `{:#}` would.
fn chain(err: &ConfigError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

#[test]
fn full_example_parses() {
    let dir = pki_dir();
    let config = parse(FULL, dir.path()).unwrap();
    let [chat, web] = &config.clusters[..] else {
        panic!("two clusters expected: {config:?}");
    };
    assert_eq!(chat.name, "chat");
    let endpoints: Vec<&str> = chat.endpoints.iter().map(HostPort::as_str).collect();
    assert_eq!(endpoints, ["10.0.0.5:8443", "10.0.0.6:8443"]);
    assert_eq!(chat.max_connections, 8);
    let tls = chat.tls.as_ref().unwrap();
    assert_eq!(tls.server_name.to_str(), "sidecar.internal");
    assert_eq!(tls.config.current().alpn_protocols, [b"h2".to_vec()]);
    assert!(tls.config.is_from_files());
    assert_eq!(web.name, "web");
    assert!(web.tls.is_none());
    assert_eq!(
        web.max_connections,
        crate::config::defaults::ENDPOINT_MAX_CONNECTIONS
    );
    let routes = config.routes.routes();
    assert_eq!(
        routes[0],
        Route {
            name: "route-1".to_owned(),
            host: HostMatch::Suffix(".example.com".to_owned()),
            path_prefix: "/chat/".to_owned(),
            cluster: ClusterChoice::One(0),
            prefix_rewrite: Some("/".to_owned()),
            host_rewrite: Some("chat.internal".to_owned()),
            headers: HeaderRules::default(),
        }
    );
    let catch_all = Route {
        name: "route-2".to_owned(),
        ..RouteTable::single(1).routes()[0].clone()
    };
    assert_eq!(routes[1], catch_all);
    assert_eq!(
        config
            .routes
            .find("a.example.com", "/chat/x")
            .unwrap()
            .cluster
            .pick(),
        0
    );
    assert_eq!(
        config
            .routes
            .find("example.com", "/chat/x")
            .unwrap()
            .cluster
            .pick(),
        1
    );
}

#[test]
fn module_doc_example_parses() {
    // The example in this file's `//!` block, so the docs cannot rot.
    let example: String = include_str!("config_file.rs")
        .lines()
        .skip_while(|line| *line != "//! ```toml")
        .skip(1)
        .take_while(|line| *line != "//! ```")
        .map(|line| format!("{}\n", line.trim_start_matches("//!").trim_start()))
        .collect();
    let config = parse(&example, pki_dir().path()).unwrap();
    assert_eq!(config.clusters.len(), 2);
    assert_eq!(config.routes.routes().len(), 2);
    let check = config.clusters[0].health_check.as_ref().unwrap();
    assert_eq!(check.path.as_str(), "/healthz");
    assert!(config.clusters[1].health_check.is_none());
}

/// A cluster's `health_check` reaches each of its endpoints; a bad one
/// names the cluster and the key.
#[test]
fn health_check_goes_to_every_endpoint_and_bad_ones_name_the_cluster() {
    let text =
        h2c_with("health_check = { path = \"/h\", interval = \"100ms\", unhealthy_threshold = 2 }")
            .replace("[\"web:80\"]", "[\"web:80\", \"web:81\"]");
    let routing = parse(&text, Path::new("/nonexistent"))
        .unwrap()
        .into_routing(&UpstreamConfig::default());
    let (_, endpoints) = &routing.clusters[0];
    assert_eq!(endpoints.len(), 2);
    for endpoint in endpoints {
        let check = endpoint.health_check.as_ref().unwrap();
        assert_eq!(check.interval, std::time::Duration::from_millis(100));
        assert_eq!(check.unhealthy_threshold, 2);
    }
    let err = parse_err(&h2c_with(
        "health_check = { path = \"/h\", healthy_threshold = 0 }",
    ));
    assert_eq!(
        chain(&err),
        "cluster \"web\": health_check: health check healthy_threshold must be at least 1"
    );
    let err = parse_err(&h2c_with("health_check = { interval = \"1s\" }"));
    assert!(
        chain(&err).contains("missing field `path`"),
        "{}",
        chain(&err)
    );
}

#[test]
fn load_reads_tls_files_relative_to_the_config_file() {
    let dir = pki_dir();
    let path = dir.path().join("front.toml");
    fs::write(&path, FULL).unwrap();
    let config = load(&path).unwrap();
    assert!(config.clusters[0].tls.is_some());
}

#[test]
fn absolute_tls_paths_are_kept() {
    let dir = pki_dir();
    let certs = dir.path().join("certs");
    let text = FULL.replace("\"certs/", &format!("\"{}/", certs.display()));
    parse(&text, Path::new("/nonexistent")).unwrap();
}

#[test]
fn server_name_defaults_to_the_first_endpoint_host() {
    let dir = pki_dir();
    let text = FULL
        .replace("server_name = \"sidecar.internal\"\n", "")
        .replace("10.0.0.5:8443", "sidecar.internal:8443");
    let config = parse(&text, dir.path()).unwrap();
    let tls = config.clusters[0].tls.as_ref().unwrap();
    assert_eq!(tls.server_name.to_str(), "sidecar.internal");
}

#[test]
fn unreadable_file_names_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.toml");
    let err = load(&path).unwrap_err();
    assert!(matches!(&err, ConfigError::Read { path: p, .. } if *p == path));
    assert!(err.to_string().contains("missing.toml"), "{err}");
}

#[test]
fn unknown_field_is_an_error_with_its_position() {
    let err = parse_err(&h2c_with("").replace("name = \"web\"", "nmae = \"web\""));
    assert!(matches!(err, ConfigError::Syntax(_)), "{err:?}");
    let text = chain(&err);
    assert!(text.contains("unknown field `nmae`"), "{text}");
    assert!(text.contains("line 2"), "{text}");
}

#[test]
fn unknown_route_field_is_an_error() {
    let text = chain(&parse_err(
        &h2c_with("").replace("cluster = \"web\"\n", "cluster = \"web\"\nprefix = \"/\"\n"),
    ));
    assert!(text.contains("unknown field `prefix`"), "{text}");
}

#[test]
fn no_cluster_is_an_error() {
    let err = parse_err("[[route]]\ncluster = \"web\"\n");
    assert!(matches!(err, ConfigError::NoCluster), "{err:?}");
}

#[test]
fn no_route_is_an_error() {
    let text = "[[cluster]]\nname = \"web\"\nendpoints = [\"web:80\"]\nh2c = true\n";
    let err = parse_err(text);
    assert!(matches!(err, ConfigError::NoRoute), "{err:?}");
}

#[test]
fn duplicate_cluster_name_is_an_error() {
    let err = parse_err(&h2c_with(
        "[[cluster]]\nname = \"web\"\nendpoints = [\"other:80\"]\nh2c = true\n",
    ));
    assert!(matches!(&err, ConfigError::DuplicateCluster { name } if name == "web"));
    assert_eq!(err.to_string(), "cluster \"web\" is defined twice");
}

#[test]
fn route_naming_an_unknown_cluster_is_an_error() {
    let err = parse_err(&h2c_with("[[route]]\ncluster = \"chat\"\n"));
    assert_eq!(err.to_string(), "route 1: unknown cluster \"chat\"");
}

#[test]
fn endpoint_without_port_is_an_error() {
    for endpoint in [
        "web", "web:", "web:http", "web:0", ":80", "::1:80", "[::1]", "[x]:80",
    ] {
        let err = parse_err(&h2c_with("").replace("web:80", endpoint));
        assert!(
            matches!(&err, ConfigError::Endpoint { source, .. } if source.to_string().contains(endpoint)),
            "{endpoint}: {err:?}"
        );
    }
    parse(&h2c_with("").replace("web:80", "[::1]:80"), Path::new("")).unwrap();
}

#[test]
fn empty_endpoints_is_an_error() {
    let err = parse_err(&h2c_with("").replace("[\"web:80\"]", "[]"));
    assert!(matches!(err, ConfigError::NoEndpoints { .. }), "{err:?}");
}

#[test]
fn zero_max_connections_is_an_error() {
    let err = parse_err(&h2c_with("").replace("h2c = true", "h2c = true\nmax_connections = 0"));
    assert!(matches!(err, ConfigError::MaxConnections { .. }), "{err:?}");
}

#[test]
fn h2c_with_tls_files_is_an_error() {
    let err = parse_err(&h2c_with("").replace("h2c = true", "h2c = true\ncert = \"a.pem\""));
    assert_eq!(
        err.to_string(),
        "cluster \"web\": cert is not allowed with h2c = true"
    );
}

#[test]
fn missing_tls_files_without_h2c_is_an_error() {
    let text = h2c_with("").replace("h2c = true", "ca = \"ca.pem\"\ncert = \"front.pem\"");
    let err = parse_err(&text);
    assert_eq!(
        err.to_string(),
        "cluster \"web\": key is required unless h2c = true"
    );
}

#[test]
fn unreadable_tls_file_names_cluster_and_path() {
    let dir = pki_dir();
    let err = parse(&FULL.replace("certs/ca.pem", "certs/nope.pem"), dir.path()).unwrap_err();
    assert!(matches!(err, ConfigError::Tls { .. }), "{err:?}");
    let text = chain(&err);
    assert!(
        text.starts_with("cluster \"chat\": TLS set-up failed"),
        "{text}"
    );
    assert!(text.contains("certs/nope.pem"), "{text}");
}

#[test]
fn invalid_server_name_is_an_error() {
    let dir = pki_dir();
    let text = FULL.replace("\"sidecar.internal\"", "\"bad name\"");
    let err = parse(&text, dir.path()).unwrap_err();
    assert!(matches!(err, ConfigError::ServerName { .. }), "{err:?}");
}

#[test]
fn bad_host_pattern_is_an_error() {
    let err = parse_err(&h2c_with(
        "[[route]]\nhost = \"a.*.com\"\ncluster = \"web\"\n",
    ));
    assert!(
        matches!(err, ConfigError::Route { route: 1, .. }),
        "{err:?}"
    );
    let text = chain(&err);
    assert!(
        text.starts_with("route 1: invalid host pattern \"a.*.com\""),
        "{text}"
    );
}

#[test]
fn path_prefix_without_slash_is_an_error() {
    let err = parse_err(&h2c_with("").replace(
        "cluster = \"web\"\n",
        "cluster = \"web\"\npath_prefix = \"chat\"\n",
    ));
    assert_eq!(
        chain(&err),
        "route 1: path prefix \"chat\" does not start with '/'"
    );
}

#[test]
fn bad_rewrites_are_errors() {
    let err = parse_err(&h2c_with("").replace(
        "cluster = \"web\"\n",
        "cluster = \"web\"\nhost_rewrite = \"user@a\"\n",
    ));
    assert!(
        matches!(
            &err,
            ConfigError::Route {
                source: RouteError::HostRewrite { .. },
                ..
            }
        ),
        "{err:?}"
    );
    let err = parse_err(&h2c_with("").replace(
        "cluster = \"web\"\n",
        "cluster = \"web\"\nprefix_rewrite = \"v2\"\n",
    ));
    assert!(
        matches!(
            &err,
            ConfigError::Route {
                source: RouteError::PrefixRewrite { .. },
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn routes_are_numbered_in_file_order() {
    let err = parse_err(&h2c_with(
        "[[route]]\ncluster = \"web\"\npath_prefix = \"x\"\n",
    ));
    assert!(
        matches!(err, ConfigError::Route { route: 1, .. }),
        "{err:?}"
    );
    let err = parse_err(&format!("{}[[route]]\ncluster = \"nope\"\n", h2c_with("")));
    assert!(
        matches!(err, ConfigError::UnknownCluster { route: 2, .. }),
        "{err:?}"
    );
}

/// A cluster's `outlier_detection` and `retry` tables reach every one of
/// its endpoints; clusters without them have neither; a bad table names
/// the cluster and the key.
#[test]
fn outlier_and_retry_tables_reach_the_endpoints() {
    let text = r#"
        [[cluster]]
        name = "api"
        endpoints = ["a:1", "b:1"]
        h2c = true
        outlier_detection = { consecutive_failures = 2 }
        retry = { retries = 2, on = ["503"] }

        [[cluster]]
        name = "plain"
        endpoints = ["c:1"]
        h2c = true

        [[route]]
        cluster = "api"
    "#;
    let routing = parse(text, Path::new("."))
        .unwrap()
        .into_routing(&UpstreamConfig::default());
    let (_, api) = &routing.clusters[0];
    for endpoint in api {
        assert_eq!(endpoint.outlier.unwrap().consecutive_failures, 2);
        assert_eq!(endpoint.retry.retries, 2);
    }
    let (_, plain) = &routing.clusters[1];
    assert_eq!(plain[0].outlier, None);
    assert_eq!(plain[0].retry.retries, 0);
    let bad = text.replace("consecutive_failures = 2", "consecutive_failures = 0");
    let err = parse(&bad, Path::new(".")).unwrap_err();
    let chain = h2hop::telemetry::chain(&err);
    assert!(
        chain.contains("\"api\"") && chain.contains("consecutive_failures"),
        "{chain}"
    );
}
