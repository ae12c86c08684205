//! Unit tests of `tcp_config`: `[[tcp]]` entries in whole files, and
//! each error naming its entry.

use std::path::Path;
use std::time::Duration;

use h2hop::tcp_connect::ConnectForm;

use crate::config_file::{self, ConfigError, FileConfig};
use crate::tcp_config::{TcpEntryError, same_listeners};

const CLUSTER: &str =
    "[[cluster]]\nname = \"redis\"\nendpoints = [\"127.0.0.1:8443\"]\nh2c = true\n\n";

fn parse(tcp: &str) -> Result<FileConfig, ConfigError> {
    config_file::parse(&format!("{CLUSTER}{tcp}"), Path::new("/nonexistent"))
}

/// The entry's number, name and cause of a [`ConfigError::Tcp`].
fn tcp_error(tcp: &str) -> (usize, String, TcpEntryError) {
    match parse(tcp) {
        Err(ConfigError::Tcp { tcp, name, source }) => (tcp, name, source),
        other => panic!("expected a [[tcp]] error, got {other:?}"),
    }
}

#[test]
fn a_full_entry_and_a_minimal_one_parse_without_any_route() {
    let file = parse(
        "[[tcp]]\nname = \"cache\"\nlisten = \"127.0.0.1:6380\"\ncluster = \"redis\"\n\
         target = \"cache.internal:6379\"\nform = \"connect-tcp\"\nidle_timeout = \"10m\"\n\n\
         [[tcp]]\nlisten = \"[::1]:6381\"\ncluster = \"redis\"\ntarget = \"127.0.0.1:6379\"\n",
    )
    .unwrap();
    assert!(file.routes.routes().is_empty());
    let [full, minimal] = file.tcp.as_slice() else {
        panic!("{:?}", file.tcp)
    };
    assert_eq!(&*full.name, "cache");
    assert_eq!(full.listen, "127.0.0.1:6380".parse().unwrap());
    assert_eq!(full.cluster, "redis");
    assert_eq!(full.target.as_str(), "cache.internal:6379");
    assert_eq!(full.form, ConnectForm::ConnectTcp);
    assert_eq!(full.idle_timeout, Some(Duration::from_secs(600)));
    assert_eq!(&*minimal.name, "tcp-2");
    assert_eq!(minimal.listen, "[::1]:6381".parse().unwrap());
    assert_eq!(minimal.form, ConnectForm::Classic);
    assert_eq!(minimal.idle_timeout, None);
}

#[test]
fn a_file_without_route_nor_tcp_is_refused() {
    assert!(matches!(parse(""), Err(ConfigError::NoRoute)));
}

#[test]
fn an_unknown_key_is_a_syntax_error() {
    let err = parse(
        "[[tcp]]\nlisten = \"127.0.0.1:1\"\ncluster = \"redis\"\ntarget = \"a:1\"\nport = 1\n",
    )
    .unwrap_err();
    assert!(matches!(err, ConfigError::Syntax(_)), "{err:?}");
    assert!(format!("{:?}", err).contains("port"), "{err:?}");
}

#[test]
fn a_missing_target_is_a_syntax_error() {
    let err = parse("[[tcp]]\nlisten = \"127.0.0.1:1\"\ncluster = \"redis\"\n").unwrap_err();
    assert!(matches!(err, ConfigError::Syntax(_)), "{err:?}");
}

const ENTRY: &str = "listen = \"127.0.0.1:1\"\ncluster = \"redis\"\ntarget = \"a:1\"\n";

#[test]
fn a_bad_listen_address_names_the_entry() {
    let (number, name, source) =
        tcp_error("[[tcp]]\nlisten = \"localhost:1\"\ncluster = \"redis\"\ntarget = \"a:1\"\n");
    assert_eq!((number, name.as_str()), (1, "tcp-1"));
    assert!(matches!(source, TcpEntryError::Listen(text, _) if text == "localhost:1"));
}

#[test]
fn an_unknown_cluster_names_the_entry() {
    let entry = ENTRY.replace("\"redis\"", "\"nope\"");
    let (_, name, source) = tcp_error(&format!("[[tcp]]\nname = \"db\"\n{entry}"));
    assert_eq!(name, "db");
    assert!(matches!(source, TcpEntryError::UnknownCluster(cluster) if cluster == "nope"));
}

#[test]
fn a_target_without_port_is_refused() {
    let entry = ENTRY.replace("\"a:1\"", "\"a\"");
    let (_, _, source) = tcp_error(&format!("[[tcp]]\n{entry}"));
    assert!(matches!(source, TcpEntryError::Target(_)), "{source:?}");
}

#[test]
fn an_unknown_form_is_refused() {
    let (_, _, source) = tcp_error(&format!("[[tcp]]\n{ENTRY}form = \"udp\"\n"));
    assert!(matches!(source, TcpEntryError::Form(_)), "{source:?}");
}

#[test]
fn a_zero_or_unreadable_idle_timeout_is_refused() {
    for idle in ["0s", "soon"] {
        let (_, _, source) = tcp_error(&format!("[[tcp]]\n{ENTRY}idle_timeout = \"{idle}\"\n"));
        assert!(matches!(source, TcpEntryError::IdleTimeout(text) if text == idle));
    }
}

#[test]
fn a_bad_name_is_refused() {
    let (_, name, source) = tcp_error(&format!("[[tcp]]\nname = \"a b\"\n{ENTRY}"));
    assert_eq!(name, "a b");
    assert!(matches!(source, TcpEntryError::Name));
}

#[test]
fn a_name_taken_twice_names_the_second_entry() {
    let second = ENTRY.replace(":1\"\ncluster", ":2\"\ncluster");
    let (number, name, source) = tcp_error(&format!(
        "[[tcp]]\n{ENTRY}\n[[tcp]]\nname = \"tcp-1\"\n{second}"
    ));
    assert_eq!((number, name.as_str()), (2, "tcp-1"));
    assert!(matches!(source, TcpEntryError::DuplicateName));
}

#[test]
fn a_listen_address_taken_twice_is_refused() {
    let (number, _, source) = tcp_error(&format!("[[tcp]]\n{ENTRY}\n[[tcp]]\n{ENTRY}"));
    assert_eq!(number, 2);
    assert!(matches!(source, TcpEntryError::DuplicateListen(addr) if addr.port() == 1));
}

#[test]
fn listeners_stay_only_with_the_same_addresses_in_the_same_order() {
    let two = |a: &str, b: &str| {
        let entry = |listen: &str| ENTRY.replace("127.0.0.1:1", listen);
        parse(&format!("[[tcp]]\n{}\n[[tcp]]\n{}", entry(a), entry(b)))
            .unwrap()
            .tcp
    };
    let old = two("127.0.0.1:1", "127.0.0.1:2");
    let mut retargeted = old.clone();
    retargeted[0].target = "b:2".parse().unwrap();
    retargeted[1].form = ConnectForm::ConnectTcp;
    assert!(same_listeners(&old, &retargeted));
    assert!(!same_listeners(&old, &two("127.0.0.1:2", "127.0.0.1:1")));
    assert!(!same_listeners(&old, &two("127.0.0.1:1", "127.0.0.1:3")));
    assert!(!same_listeners(&old, &old[..1]));
}

/// A reload applies a new target to the entry in use, and refuses a
/// file that moves a listener, keeping what was in use.
#[test]
fn a_reload_retargets_but_does_not_move_listeners() {
    use std::sync::Arc;

    use h2hop::metrics::Metrics;

    use crate::live_routing::{LiveRouting, ReloadError, RoutingReload, Snapshot};
    use crate::upstream::UpstreamConfig;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("front.toml");
    let file = |listen: &str, target: &str| {
        let entry = ENTRY.replace("127.0.0.1:1", listen).replace("a:1", target);
        std::fs::write(&path, format!("{CLUSTER}[[tcp]]\n{entry}")).unwrap();
    };
    file("127.0.0.1:1", "a:1");
    let metrics = Metrics::new("sidecar", "connections", "streams");
    let mut loaded = config_file::load(&path).unwrap();
    let tcp = std::mem::take(&mut loaded.tcp);
    let routing = loaded.into_routing(&UpstreamConfig::default());
    let snapshot = Snapshot::initial(Some(routing), UpstreamConfig::default(), &metrics);
    let live = Arc::new(LiveRouting::new(snapshot.with_tcp(tcp)));
    let reload = RoutingReload::default();
    let flags = UpstreamConfig::default();
    reload.attach(Some(path.clone()), flags, live.clone(), metrics, None);

    file("127.0.0.1:1", "b:2");
    reload.reload().unwrap();
    assert_eq!(live.load().tcp[0].target.as_str(), "b:2");

    file("127.0.0.1:9", "c:3");
    let err = reload.reload().unwrap_err();
    assert!(matches!(err, ReloadError::TcpListeners { .. }), "{err:?}");
    assert!(err.to_string().contains("restart"), "{err}");
    assert_eq!(live.load().tcp[0].target.as_str(), "b:2");
}
