//! Tests of the flags: defaults, validation, and what reaches the config.

use super::*;
use clap::Parser as _;

/// The flags' defaults are [`Config::default`]: a command line that
/// sets nothing but `--h2c` gives exactly it, field for field.
#[test]
fn bare_command_line_gives_the_default_config() {
    let parsed = Args::try_parse_from(["h2hop-sidecar", "--h2c"])
        .unwrap()
        .config()
        .unwrap();
    assert_eq!(format!("{parsed:#?}"), format!("{:#?}", Config::default()));
}

/// An address without a port is refused when the flags are read (and
/// so by `--check-config`), not met as a 502 per request.
#[test]
fn an_address_without_a_port_is_refused_at_start_up() {
    for flag in ["--app"] {
        for value in ["127.0.0.1", "localhost", "[::1]"] {
            let err = Args::try_parse_from(["h2hop-sidecar", "--h2c", flag, value]).unwrap_err();
            assert!(
                err.to_string().contains("has no port"),
                "{flag} {value}: {err}"
            );
        }
    }
}

#[test]
fn tls_files_are_required_unless_h2c() {
    assert!(Args::try_parse_from(["h2hop-sidecar"]).is_err());
    let args = Args::try_parse_from(["h2hop-sidecar", "--h2c", "--max-streams", "7"]).unwrap();
    let config = args.config().unwrap();
    assert!(config.tls.is_none());
    assert_eq!(config.max_concurrent_streams, 7);
    assert_eq!(config.upgrades, UpgradePolicy::default());
}

#[test]
fn tcp_keepalive_flags_reach_the_config() {
    let args = Args::try_parse_from(["h2hop-sidecar", "--h2c"]).unwrap();
    let default = args.config().unwrap().tcp_keepalive;
    assert_eq!(default, Some(h2hop::accept::Keepalive::DEFAULT));
    let argv = ["h2hop-sidecar", "--h2c", "--tcp-keepalive-probes", "3"];
    let probes = Args::try_parse_from(argv).unwrap().config().unwrap();
    assert_eq!(probes.tcp_keepalive.map(|k| k.probes), Some(3));
}

#[test]
fn upgrade_flags_make_the_policy() {
    let args = Args::try_parse_from([
        "h2hop-sidecar",
        "--h2c",
        "--upgrade-protocol",
        "my-proto",
        "--upgrade-as-get",
        "--upgrade-body-limit",
        "10",
    ])
    .unwrap();
    let upgrades = args.config().unwrap().upgrades;
    assert_eq!(upgrades.protocols.iter().collect::<Vec<_>>(), ["my-proto"]);
    assert!(upgrades.as_get);
    assert_eq!(upgrades.body_limit, 10);
    let args =
        Args::try_parse_from(["h2hop-sidecar", "--h2c", "--upgrade-protocol", "H2"]).unwrap();
    assert!(matches!(
        args.config(),
        Err(ArgsError::Protocols(ProtocolError::Forbidden(_)))
    ));
}

/// A sidecar's PEM files in a fresh directory, and the flags naming them.
fn tls_flags(dir: &std::path::Path) -> Vec<String> {
    let pki = h2hop_certs::DevPki::generate(&["localhost".to_owned()]).unwrap();
    pki.write_to(dir, false).unwrap();
    let file = |name: &str| dir.join(name).display().to_string();
    vec![
        "--cert".to_owned(),
        file("sidecar.pem"),
        "--key".to_owned(),
        file("sidecar-key.pem"),
        "--client-ca".to_owned(),
        file("ca.pem"),
    ]
}

#[test]
fn allow_front_san_is_repeatable_and_validated() {
    let dir = tempfile::tempdir().unwrap();
    let mut argv = vec!["h2hop-sidecar".to_owned()];
    argv.extend(tls_flags(dir.path()));
    let with = |extra: &[&str]| {
        let mut argv = argv.clone();
        argv.extend(extra.iter().map(|s| s.to_string()));
        Args::try_parse_from(argv).unwrap()
    };
    let args = with(&[
        "--allow-front-san",
        "spiffe://test/front,front.internal",
        "--allow-front-san",
        "spiffe://test/other",
    ]);
    assert_eq!(
        args.allow_front_sans,
        [
            "spiffe://test/front",
            "front.internal",
            "spiffe://test/other"
        ]
    );
    let config = args.config().unwrap();
    assert!(config.tls.as_ref().unwrap().is_from_files());
    assert_eq!(config.reloader().len(), 1);

    let err = with(&["--allow-front-san", "spiffe:/typo"])
        .config()
        .unwrap_err();
    assert!(matches!(err, ArgsError::AllowedSans(_)), "{err:?}");
    assert!(
        h2hop::telemetry::chain(&err).contains("\"spiffe:/typo\""),
        "{err}"
    );
    // Without TLS there is no certificate to check.
    assert!(Args::try_parse_from(["h2hop-sidecar", "--h2c", "--allow-front-san", "x"]).is_err());
}

/// Off by default; the flag, or its environment variable, turns it on.
#[test]
fn app_proxy_protocol_is_off_unless_asked_for() {
    let args = Args::try_parse_from(["h2hop-sidecar", "--h2c"]).unwrap();
    assert!(!args.config().unwrap().app.proxy_protocol);
    let args = Args::try_parse_from(["h2hop-sidecar", "--h2c", "--app-proxy-protocol"]).unwrap();
    assert!(args.config().unwrap().app.proxy_protocol);
    let command = <Args as clap::CommandFactory>::command();
    let flag = command
        .get_arguments()
        .find(|arg| arg.get_id() == "app_proxy_protocol");
    let env = flag.and_then(|flag| flag.get_env());
    assert_eq!(
        env,
        Some(std::ffi::OsStr::new("H2HOP_SIDECAR_APP_PROXY_PROTOCOL"))
    );
}

/// Off by default; the flag, or its environment variable, turns it on.
#[test]
fn error_details_are_off_unless_asked_for() {
    let args = Args::try_parse_from(["h2hop-sidecar", "--h2c"]).unwrap();
    assert!(!args.config().unwrap().error_details);
    let args = Args::try_parse_from(["h2hop-sidecar", "--h2c", "--error-details"]).unwrap();
    assert!(args.config().unwrap().error_details);
    let command = <Args as clap::CommandFactory>::command();
    let flag = command
        .get_arguments()
        .find(|arg| arg.get_id() == "error_details");
    let env = flag.and_then(|flag| flag.get_env());
    assert_eq!(
        env,
        Some(std::ffi::OsStr::new("H2HOP_SIDECAR_ERROR_DETAILS"))
    );
}

#[test]
fn h2c_has_nothing_to_reload() {
    let args = Args::try_parse_from(["h2hop-sidecar", "--h2c"]).unwrap();
    assert!(args.config().unwrap().reloader().is_empty());
}

#[test]
fn zero_streams_is_refused() {
    let args = Args::try_parse_from(["h2hop-sidecar", "--h2c", "--max-streams", "0"]).unwrap();
    assert!(matches!(args.config(), Err(ArgsError::MaxStreams)));
}

/// A PROXY header per connection cannot name the clients of an h2c
/// connection's many streams: the combination is refused up front.
#[test]
fn app_proxy_protocol_is_refused_with_h2c_apps() {
    let args = Args::try_parse_from(["h2hop-sidecar", "--h2c", "--app-protocol", "h2c"]).unwrap();
    assert_eq!(args.config().unwrap().app.protocol, AppProtocol::H2c);
    let args = Args::try_parse_from([
        "h2hop-sidecar",
        "--h2c",
        "--app-protocol",
        "h2c",
        "--app-proxy-protocol",
    ])
    .unwrap();
    let err = args.config().unwrap_err();
    assert!(matches!(err, ArgsError::ProxyProtocolWithH2c), "{err:?}");
}

#[test]
fn tcp_allow_targets_reach_the_allow_list() {
    let argv = [
        "h2hop-sidecar",
        "--h2c",
        "--tcp-allow",
        "127.0.0.1:6379",
        "--tcp-allow",
        "db.internal:5432,[::1]:22",
    ];
    let config = Args::try_parse_from(argv).unwrap().config().unwrap();
    let targets: Vec<&str> = config
        .tcp_allow
        .entries()
        .iter()
        .map(|entry| entry.target.as_str())
        .collect();
    assert_eq!(targets, ["127.0.0.1:6379", "db.internal:5432", "[::1]:22"]);
    assert!(
        config
            .tcp_allow
            .entries()
            .iter()
            .all(|e| e.fronts.is_none())
    );
    let bare = Args::try_parse_from(["h2hop-sidecar", "--h2c"]).unwrap();
    assert!(bare.config().unwrap().tcp_allow.is_empty());
}

/// A bad --tcp-allow value stops the start, naming the flag and the value.
#[test]
fn a_bad_tcp_allow_value_is_refused_at_start_up() {
    for value in ["127.0.0.1", "redis", "host:0", "host:99999", ""] {
        let err =
            Args::try_parse_from(["h2hop-sidecar", "--h2c", "--tcp-allow", value]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("--tcp-allow") && text.contains(&format!("'{value}'")),
            "{value}: {text}"
        );
    }
}
