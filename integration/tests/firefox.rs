//! A real Firefox through the front's TLS listener: headless Firefox (the
//! Debian `firefox-esr` package, with a fresh profile that trusts the pair's
//! CA) loads a page over HTTP/2 that opens, echoes one message on and closes
//! 300 WebSockets in turn. Firefox carries each one as an RFC 8441 extended
//! CONNECT stream on the page's HTTP/2 connection, and after the server has
//! ended its half of such a stream it never ends its own (it sends neither
//! END_STREAM nor RST_STREAM). Unless the front frees those streams itself,
//! they stay open and counted against the connection's stream limit, and a
//! later WebSocket is refused: every one of the 300 must be clean.
//!
//! The page reports its tally on the console, which Firefox copies to its
//! standard output (a refused stream cannot lose it, as it could a
//! request); the test reads it there.
//!
//! Without `firefox-esr` (or `firefox`) and `certutil` (Debian
//! `libnss3-tools`) the test says so loudly and passes, unless
//! `H2HOP_REQUIRE_EXTERNAL=1` (as CI sets), which makes it fail. Nothing
//! downloads a browser, and the profile keeps Firefox on loopback.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use h2hop_integration::harness::{Pair, closed_port};
use h2hop_integration::logs::Captured;
use h2hop_integration::process::{Output, Process};
use h2hop_integration::wait::eventually;
use tokio::process::Command;

/// How many WebSockets the page opens, one after another.
const SOCKETS: usize = 300;

/// The bound on the whole test, half of it for the page's report: Firefox's
/// start and 300 WebSockets take about 5 s on an idle 2-core machine; a
/// busy one gets ample margin.
const LIMIT: Duration = Duration::from_secs(90);

/// The programs the test runs.
struct Tools {
    firefox: PathBuf,
    certutil: PathBuf,
}

/// The first of `names` on `PATH`.
fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    names.iter().find_map(|name| {
        path.split(':')
            .map(|dir| PathBuf::from(dir).join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// Firefox and certutil, or `None` after a loud skip line; with
/// `H2HOP_REQUIRE_EXTERNAL=1` a missing one fails the test.
fn tools() -> Option<Tools> {
    let firefox = on_path(&["firefox-esr", "firefox"]);
    let certutil = on_path(&["certutil"]);
    if let (Some(firefox), Some(certutil)) = (firefox.clone(), certutil.clone()) {
        return Some(Tools { firefox, certutil });
    }
    let missing = match (firefox, certutil) {
        (None, None) => "firefox-esr and certutil are",
        (None, Some(_)) => "firefox-esr is",
        _ => "certutil is",
    };
    let required = std::env::var("H2HOP_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{missing} not installed and H2HOP_REQUIRE_EXTERNAL=1"
    );
    eprintln!("!!! SKIPPED: {missing} not installed (apt-get install firefox-esr libnss3-tools)");
    None
}

/// Preferences for a quiet test profile: the page's console on standard
/// output, no first-run or welcome pages, no
/// telemetry, updates, captive-portal or connectivity checks, remote
/// settings, safe-browsing lists, push, DNS over HTTPS or prefetching. As
/// a backstop every proxied scheme goes to `PROXY_PORT` on loopback, where
/// nothing listens: Firefox never proxies loopback itself, so the page
/// works and any other connection fails without leaving the machine.
const USER_JS: &str = r#"
user_pref("devtools.console.stdout.content", true);
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("browser.startup.homepage_override.mstone", "ignore");
user_pref("browser.startup.page", 0);
user_pref("startup.homepage_welcome_url", "");
user_pref("startup.homepage_welcome_url.additional", "");
user_pref("browser.aboutwelcome.enabled", false);
user_pref("trailhead.firstrun.didSeeAboutWelcome", true);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("datareporting.healthreport.uploadEnabled", false);
user_pref("toolkit.telemetry.enabled", false);
user_pref("toolkit.telemetry.unified", false);
user_pref("toolkit.telemetry.archive.enabled", false);
user_pref("toolkit.telemetry.server", "");
user_pref("browser.ping-centre.telemetry", false);
user_pref("app.update.auto", false);
user_pref("app.update.enabled", false);
user_pref("app.update.disabledForTesting", true);
user_pref("app.normandy.enabled", false);
user_pref("app.normandy.api_url", "");
user_pref("app.shield.optoutstudies.enabled", false);
user_pref("extensions.update.enabled", false);
user_pref("extensions.getAddons.cache.enabled", false);
user_pref("extensions.blocklist.enabled", false);
user_pref("extensions.systemAddon.update.enabled", false);
user_pref("services.settings.server", "data:,#remote-settings-dummy/v1");
user_pref("network.captive-portal-service.enabled", false);
user_pref("network.connectivity-service.enabled", false);
user_pref("network.trr.mode", 5);
user_pref("network.dns.disablePrefetch", true);
user_pref("network.prefetch-next", false);
user_pref("network.http.speculative-parallel-limit", 0);
user_pref("browser.safebrowsing.malware.enabled", false);
user_pref("browser.safebrowsing.phishing.enabled", false);
user_pref("browser.safebrowsing.downloads.enabled", false);
user_pref("browser.safebrowsing.blockedURIs.enabled", false);
user_pref("browser.safebrowsing.update.enabled", false);
user_pref("browser.newtabpage.enabled", false);
user_pref("browser.topsites.contile.enabled", false);
user_pref("browser.region.update.enabled", false);
user_pref("browser.region.network.url", "");
user_pref("browser.search.update", false);
user_pref("dom.push.enabled", false);
user_pref("dom.push.connection.enabled", false);
user_pref("geo.provider.network.url", "");
user_pref("identity.fxaccounts.enabled", false);
user_pref("media.gmp-manager.updateEnabled", false);
user_pref("security.OCSP.enabled", 0);
user_pref("security.remote_settings.crlite_filters.enabled", false);
user_pref("security.remote_settings.intermediates.enabled", false);
user_pref("toolkit.startup.max_resumed_crashes", -1);
user_pref("browser.sessionstore.resume_from_crash", false);
user_pref("network.proxy.type", 1);
user_pref("network.proxy.http", "127.0.0.1");
user_pref("network.proxy.http_port", PROXY_PORT);
user_pref("network.proxy.ssl", "127.0.0.1");
user_pref("network.proxy.ssl_port", PROXY_PORT);
user_pref("network.proxy.socks", "127.0.0.1");
user_pref("network.proxy.socks_port", PROXY_PORT);
user_pref("network.proxy.socks_remote_dns", true);
user_pref("network.proxy.no_proxies_on", "");
user_pref("network.proxy.failover_direct", false);
"#;

/// A headless Firefox on its own throwaway profile, its standard output
/// and error kept as lines; dropping it kills it (this child, by its pid).
struct Firefox {
    process: Process,
    _dir: tempfile::TempDir,
}

impl Firefox {
    /// Makes a profile that trusts `ca_pem` and starts Firefox on `url`.
    async fn launch(tools: &Tools, ca_pem: &str, url: &str) -> Firefox {
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("profile");
        std::fs::create_dir(&profile).unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, ca_pem).unwrap();
        let db = format!("sql:{}", profile.display());
        certutil(&tools.certutil, &["-N", "--empty-password", "-d", &db]).await;
        let ca = ca.display().to_string();
        let trust = ["-A", "-d", &db, "-t", "C,,", "-n", "h2hop-test", "-i", &ca];
        certutil(&tools.certutil, &trust).await;
        let proxy_port = closed_port().await.unwrap().port().to_string();
        std::fs::write(
            profile.join("user.js"),
            USER_JS.replace("PROXY_PORT", &proxy_port),
        )
        .unwrap();
        let mut command = std::process::Command::new(&tools.firefox);
        command
            .args(["--headless", "--no-remote", "--profile"])
            .arg(&profile)
            .arg(url)
            // Its caches and any other dot-directory stay in the temp dir.
            .env("HOME", dir.path())
            .env("MOZ_CRASHREPORTER_DISABLE", "1")
            // Firefox's own switch for test runs: it refuses connections to
            // anything but loopback, and honours the remote-settings
            // override above (which turns that service off).
            .env("MOZ_DISABLE_NONLOCAL_CONNECTIONS", "1");
        let process = Process::spawn("firefox", &mut command, Output::Lines).unwrap();
        Firefox { process, _dir: dir }
    }
}

/// Runs certutil with `args`; fails the test if it fails.
async fn certutil(program: &Path, args: &[&str]) {
    let out = Command::new(program).args(args).output().await.unwrap();
    assert!(
        out.status.success(),
        "certutil {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The page's report (see `integration/src/ws_cycle.html`): its fields by
/// name, once Firefox has printed it, within `bound`.
async fn wait_for_report(firefox: &Firefox, bound: Duration) -> BTreeMap<String, String> {
    const MARK: &str = "ws-cycle report: ";
    let line = firefox
        .process
        .wait_for_line(&[MARK], bound)
        .await
        .unwrap_or_else(|err| panic!("no report from the page: {err:#}"));
    let query = line.split(MARK).nth(1).unwrap_or_default().trim();
    let query = query.trim_end_matches('"');
    query
        .split('&')
        .filter_map(|field| field.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

/// The value of the ` NAME=VALUE` field of an access line (quotes kept).
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let mark = format!(" {name}=");
    let start = line.find(&mark)? + mark.len();
    line[start..].split_whitespace().next()
}

/// The front's account of the run: every WebSocket was a tunnel opened on
/// an HTTP/2 stream (an extended CONNECT is the only way a tunnel starts on
/// HTTP/2), and every one ended while Firefox still held its connection
/// (the access line comes at the tunnel's end), all on the client
/// connection that loaded the page, either cleanly or by the front's
/// client-fin timeout: no stream needed the connection to go. Returns how
/// many ended each way (the access lines' `close` field).
async fn assert_front_saw_all_end(log: &Captured, pair: &Pair) -> BTreeMap<String, usize> {
    let opens = log.lines_with(&["tunnel open", "version=HTTP/2.0", "path=\"/ws/cycle\""]);
    assert_eq!(opens.len(), SOCKETS, "tunnels opened on HTTP/2 streams");
    // The front's access lines name the sidecar as their route.
    let front = format!("route=\"{}\"", pair.sidecar);
    let page = log
        .wait_for(&["access kind=\"request\"", &front, "path=\"/ws-cycle\""])
        .await;
    let tunnel_ends = || log.lines_with(&["access kind=\"tunnel\"", &front, "path=\"/ws/cycle\""]);
    // Each waits at most the client-fin timeout (1 s) after its close.
    eventually(Duration::from_secs(15), || tunnel_ends().len() >= SOCKETS).await;
    let ends = tunnel_ends();
    assert_eq!(ends.len(), SOCKETS, "tunnels the front saw end");
    let peers: BTreeSet<&str> = ends.iter().filter_map(|line| field(line, "peer")).collect();
    let page_peer = field(&page, "peer").unwrap();
    assert_eq!(peers, BTreeSet::from([page_peer]), "client connections");
    let mut closes = BTreeMap::new();
    for line in &ends {
        let close = field(line, "close").unwrap_or_default().trim_matches('"');
        *closes.entry(close.to_owned()).or_default() += 1;
    }
    let freed = BTreeSet::from(["done".to_owned(), "fin_timeout".to_owned()]);
    assert!(
        closes.keys().all(|close| freed.contains(close)),
        "tunnel ends by close: {closes:?}"
    );
    closes
}

#[tokio::test]
async fn firefox_cycles_300_websockets_on_one_http2_connection() {
    let Some(tools) = tools() else {
        return;
    };
    let (log, _guard) = Captured::install();
    tokio::time::timeout(LIMIT, async {
        // Firefox never ends its half of a WebSocket's stream, so each
        // closed one holds a place under the client stream limit until the
        // front's client-fin timeout frees it: with the defaults (1 s, 256
        // streams) a page may cycle over a hundred a second.
        let pair = Pair::builder().h2c().client_tls().start().await.unwrap();
        let url = format!(
            "https://127.0.0.1:{}/ws-cycle?n={SOCKETS}",
            pair.front_tls.unwrap().port()
        );
        let firefox = Firefox::launch(&tools, pair.pki.ca_pem(), &url).await;
        let report = wait_for_report(&firefox, LIMIT / 2).await;
        eprintln!("page report: {report:?}");
        let all = SOCKETS.to_string();
        assert_eq!(report.get("n"), Some(&all), "{report:?}");
        assert_eq!(report.get("clean"), Some(&all), "not all clean: {report:?}");
        assert_eq!(
            report.get("codes"),
            Some(&format!("1000.{SOCKETS}")),
            "{report:?}"
        );

        // Firefox stays up until then: killing it would reset the
        // connection and with it every stream still waiting to be freed.
        let closes = assert_front_saw_all_end(&log, &pair).await;
        drop(firefox);
        eprintln!("tunnel ends at the front, by close: {closes:?}");
    })
    .await
    .expect("test timed out");
}
