//! Tests of the `--config` file: what it gives, and each refusal naming
//! the app at fault.

use super::*;
use crate::apps::pick;

fn flags() -> AppConfig {
    crate::Config::default().app
}

fn refused(text: &str) -> String {
    let err = parse(text, &flags()).unwrap_err();
    h2hop::telemetry::chain(&err)
}

const TWO_APPS: &str = r#"
[[app]]
name = "api"
address = "127.0.0.1:9000"
protocol = "h2c"
authorities = ["API.internal", "api.internal:8443"]

[[app]]
name = "web"
address = "localhost:8000"
path_prefix = "/web/"
response_timeout = "2m"
"#;

#[test]
fn a_file_gives_named_apps_with_the_flags_timeouts() {
    let mut flags = flags();
    flags.response_timeout = std::time::Duration::from_secs(3);
    flags.proxy_protocol = true;
    let apps = parse(TWO_APPS, &flags).unwrap().apps;
    let [api, web] = apps.as_slice() else {
        panic!("{apps:?}")
    };
    assert_eq!(&*api.name, "api");
    assert_eq!(api.config.addr, "127.0.0.1:9000");
    assert_eq!(api.config.protocol, AppProtocol::H2c);
    assert_eq!(api.config.response_timeout, flags.response_timeout);
    assert!(api.config.proxy_protocol);
    let authorities: Vec<String> = api
        .route
        .authorities
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(authorities, ["api.internal", "api.internal:8443"]);
    assert_eq!(api.route.path_prefix, None);
    assert_eq!(web.config.protocol, AppProtocol::Http1);
    assert_eq!(web.config.response_timeout.as_secs(), 120);
    assert_eq!(web.config.connect_timeout, flags.connect_timeout);
    assert_eq!(web.config.addr, "localhost:8000");
    assert_eq!(web.route.path_prefix.as_deref(), Some("/web"));
    let routes: Vec<AppRoute> = apps.iter().map(|app| app.route.clone()).collect();
    assert_eq!(pick(&routes, "api.internal:8443", "/web/x"), Some(0));
    assert_eq!(pick(&routes, "elsewhere", "/web/x"), Some(1));
    assert_eq!(pick(&routes, "elsewhere", "/webx"), None);
}

#[test]
fn an_empty_file_is_refused() {
    assert!(refused("").contains("no [[app]] is defined"));
}

#[test]
fn unknown_keys_and_protocols_are_refused_with_their_line() {
    let typo = TWO_APPS.replace("path_prefix", "path_prefx");
    let chain = refused(&typo);
    assert!(
        chain.contains("path_prefx") && chain.contains("line 11"),
        "{chain}"
    );
    let chain = refused(&TWO_APPS.replace("\"h2c\"", "\"h3\""));
    assert!(chain.contains("h3"), "{chain}");
}

#[test]
fn each_refusal_names_the_app() {
    let cases = [
        (
            TWO_APPS.replace("\"2m\"", "\"soon\""),
            "app \"web\": response_timeout \"soon\" is not a duration",
        ),
        (
            TWO_APPS.replace("\"2m\"", "\"0s\""),
            "app \"web\": response_timeout \"0s\" is not a duration above zero",
        ),
        (
            TWO_APPS.replace("\"web\"", "\"api\""),
            "app \"api\" is defined twice",
        ),
        (
            TWO_APPS.replace("\"web\"", "\"we b\""),
            "app \"we b\": invalid name",
        ),
        (
            TWO_APPS.replace("localhost:8000", "localhost"),
            "app \"web\": bad address",
        ),
        (
            TWO_APPS.replace("\"/web/\"", "\"web\""),
            "app \"web\": path_prefix \"web\"",
        ),
        (
            TWO_APPS.replace("api.internal:8443", "api internal"),
            "app \"api\": authority \"api internal\"",
        ),
        (
            TWO_APPS.replace("path_prefix = \"/web/\"", ""),
            "app \"web\" matches nothing",
        ),
        (
            TWO_APPS.replace(
                "path_prefix = \"/web/\"",
                "authorities = [\"Api.Internal\"]",
            ),
            "app \"web\": authority \"api.internal\" is already app \"api\"'s",
        ),
        (
            format!(
                "{TWO_APPS}\n[[app]]\nname = \"w2\"\naddress = \"a:1\"\npath_prefix = \"/web\"\n"
            ),
            "app \"w2\": path_prefix \"/web\" is already app \"web\"'s",
        ),
    ];
    for (text, expected) in cases {
        let chain = refused(&text);
        assert!(chain.contains(expected), "{expected}: {chain}");
    }
}

#[test]
fn a_missing_file_is_named() {
    let err = load(Path::new("/nonexistent/sidecar.toml"), &flags()).unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/sidecar.toml"),
        "{err}"
    );
}

/// `--config` loads the file into [`crate::Config::apps`], and refuses
/// `--app` and `--app-protocol` beside it (each app has its own).
#[test]
fn the_config_flag_loads_the_apps_and_excludes_app() {
    use clap::Parser as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sidecar.toml");
    std::fs::write(&path, TWO_APPS).unwrap();
    let path = path.to_str().unwrap();
    let argv = [
        "h2hop-sidecar",
        "--h2c",
        "--config",
        path,
        "--response-timeout",
        "4s",
    ];
    let config = crate::args::Args::try_parse_from(argv)
        .unwrap()
        .config()
        .unwrap();
    let names: Vec<&str> = config.apps.iter().map(|app| &*app.name).collect();
    assert_eq!(names, ["api", "web"]);
    assert_eq!(config.apps[0].config.response_timeout.as_secs(), 4);
    for extra in [["--app", "127.0.0.1:1"], ["--app-protocol", "h2c"]] {
        let mut with = argv.to_vec();
        with.extend(extra);
        assert!(
            crate::args::Args::try_parse_from(with).is_err(),
            "{extra:?}"
        );
    }
    std::fs::write(dir.path().join("sidecar.toml"), "[[app]]\nname = \"x\"\n").unwrap();
    let err = crate::args::Args::try_parse_from(argv)
        .unwrap()
        .config()
        .unwrap_err();
    let chain = h2hop::telemetry::chain(&err);
    assert!(
        chain.contains("--config") && chain.contains("sidecar.toml"),
        "{chain}"
    );
    assert!(chain.contains("address"), "{chain}");
}

/// `--check-config`'s report names each app, how it is reached and what
/// it takes; without a file, the one app.
#[test]
fn the_summary_lists_each_app() {
    let mut config = crate::Config::default();
    assert_eq!(
        config.apps_summary(),
        "configuration OK: one app, 127.0.0.1:8000 (http1), for every stream\n"
    );
    config.apps = parse(TWO_APPS, &flags()).unwrap().apps;
    assert_eq!(
        config.apps_summary(),
        "configuration OK: 2 app(s)\n\
         \x20 app api: 127.0.0.1:9000 (h2c); authorities api.internal, api.internal:8443\n\
         \x20 app web: localhost:8000 (http1); path_prefix /web\n"
    );
}

const TCP: &str = r#"
[[app]]
name = "web"
address = "127.0.0.1:8000"
path_prefix = "/"

[[tcp]]
target = "127.0.0.1:6379"

[[tcp]]
target = "db.internal:5432"
fronts = ["spiffe://td/front", "front.internal"]
"#;

#[test]
fn tcp_tables_give_allowed_targets_with_their_fronts() {
    let file = parse(TCP, &flags()).unwrap();
    assert_eq!(file.apps.len(), 1);
    let [redis, db] = file.tcp.as_slice() else {
        panic!("{:?}", file.tcp)
    };
    assert_eq!(redis.target.as_str(), "127.0.0.1:6379");
    assert_eq!(redis.fronts, None);
    assert_eq!(db.target.as_str(), "db.internal:5432");
    let fronts = db.fronts.as_ref().unwrap();
    assert_eq!(fronts.to_string(), "spiffe://td/front, front.internal");
    // No [[tcp]]: no TCP target at all.
    assert!(parse(TWO_APPS, &flags()).unwrap().tcp.is_empty());
}

#[test]
fn bad_tcp_tables_are_refused_naming_the_target() {
    let chain = refused(&TCP.replace("127.0.0.1:6379", "127.0.0.1"));
    assert!(
        chain.contains("[[tcp]] target \"127.0.0.1\"") && chain.contains("no port"),
        "{chain}"
    );
    let chain = refused(&TCP.replace("\"front.internal\"", "\"not a name\""));
    assert!(
        chain.contains("db.internal:5432") && chain.contains("not a name"),
        "{chain}"
    );
    let chain = refused(&TCP.replace(
        "fronts = [\"spiffe://td/front\", \"front.internal\"]",
        "fronts = []",
    ));
    assert!(chain.contains("fronts is empty"), "{chain}");
    let chain = refused(&TCP.replace("target = \"127.0.0.1:6379\"", "taget = \"127.0.0.1:6379\""));
    assert!(chain.contains("taget"), "{chain}");
}

#[test]
fn tcp_tables_alone_are_no_app() {
    let only_tcp = "[[tcp]]\ntarget = \"127.0.0.1:6379\"\n";
    assert!(refused(only_tcp).contains("no [[app]] is defined"));
}

/// `--check-config` lists the TCP targets after the apps.
#[test]
fn the_summary_lists_each_tcp_target() {
    let config = crate::Config {
        tcp_allow: crate::tcp_allow::TcpAllowList::new(parse(TCP, &flags()).unwrap().tcp),
        ..crate::Config::default()
    };
    assert_eq!(
        config.apps_summary(),
        "configuration OK: one app, 127.0.0.1:8000 (http1), for every stream\n\
         \x20 tcp target 127.0.0.1:6379: any front\n\
         \x20 tcp target db.internal:5432: fronts spiffe://td/front, front.internal\n"
    );
}
