//! Several apps behind one sidecar (`--config` with `[[app]]` tables): the
//! stream's `:authority` picks an app first, else the longest path prefix
//! at a segment boundary; requests and tunnels alike; a stream no app
//! takes gets 404 and reaches no app; `/readyz` names an app that is down.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;

use clap::Parser as _;
use h2hop_integration::app::TestApp;
use h2hop_integration::binaries;
use h2hop_integration::client::{
    body_bytes, echo_roundtrip, full, http1_connect, raw_request, request, ws_connect,
};
use h2hop_integration::harness::{closed_port, loopback, within};
use h2hop_integration::logs::Captured;
use http::Method;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Two test apps behind one h2c sidecar built from a `--config` file, and
/// a front (h2c, one sidecar) in front of it.
struct Setup {
    /// `api` (by authority) and `web` (by path prefix).
    apps: [TestApp; 2],
    front: SocketAddr,
    sidecar_admin: SocketAddr,
    _stop: tokio_util::sync::DropGuard,
}

/// The sidecar's file; `{API}` and `{WEB}` stand for the apps' addresses.
const APPS: &str = r#"
[[app]]
name = "api"
address = "{API}"
authorities = ["api.test"]

[[app]]
name = "web"
address = "{WEB}"
path_prefix = "/web/"
"#;

async fn setup(web_down: bool) -> Setup {
    let stop = CancellationToken::new();
    let api = TestApp::spawn(loopback().await.unwrap(), stop.child_token()).unwrap();
    let web = TestApp::spawn(loopback().await.unwrap(), stop.child_token()).unwrap();
    let web_addr = if web_down {
        closed_port().await.unwrap()
    } else {
        web.addr
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sidecar.toml");
    let text = APPS
        .replace("{API}", &api.addr.to_string())
        .replace("{WEB}", &web_addr.to_string());
    std::fs::write(&path, text).unwrap();
    let argv = ["h2hop-sidecar", "--h2c", "--config", path.to_str().unwrap()];
    let config = h2hop_sidecar::args::Args::try_parse_from(argv)
        .unwrap()
        .config()
        .unwrap();
    let hop = loopback().await.unwrap();
    let sidecar = hop.local_addr().unwrap();
    let admin = loopback().await.unwrap();
    let sidecar_admin = admin.local_addr().unwrap();
    let listeners = h2hop_sidecar::Listeners {
        hop,
        admin: Some(admin),
    };
    tokio::spawn(h2hop_sidecar::run(config, listeners, stop.child_token()));
    let config = h2hop_front::Config::new(sidecar.to_string(), None);
    let listener = loopback().await.unwrap();
    let front = listener.local_addr().unwrap();
    tokio::spawn(h2hop_front::run(
        config,
        listener.into(),
        stop.child_token(),
    ));
    Setup {
        apps: [api, web],
        front,
        sidecar_admin,
        _stop: stop.drop_guard(),
    }
}

/// A GET of `path` with `Host: host` through the front: status and body.
async fn get(front: SocketAddr, host: &str, path: &str) -> (u16, String) {
    let head = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let mut response = raw_request(front, &head).await.unwrap();
    let body = response.read_body().await.unwrap();
    (response.status, String::from_utf8_lossy(&body).into_owned())
}

/// The paths each app received, in order.
fn paths(app: &TestApp) -> Vec<String> {
    let requests = app.requests();
    requests.iter().map(|seen| seen.uri.to_string()).collect()
}

/// Requests go to the app their authority names, else to the app whose
/// prefix matches their path; the authority wins when both could.
#[tokio::test]
async fn requests_reach_the_app_their_authority_or_path_picks() {
    within(async {
        let setup = setup(false).await;
        let [api, web] = &setup.apps;
        assert_eq!(get(setup.front, "api.test", "/users").await.0, 200);
        // Case and port do not matter to an entry without a port; the
        // authority wins over web's prefix.
        assert_eq!(get(setup.front, "API.Test:8080", "/web/x").await.0, 200);
        assert_eq!(paths(api), ["/users", "/web/x"]);
        assert!(paths(web).is_empty());

        assert_eq!(get(setup.front, "other.test", "/web/page?q=1").await.0, 200);
        assert_eq!(get(setup.front, "other.test", "/web").await.0, 200);
        assert_eq!(paths(web), ["/web/page?q=1", "/web"]);
        assert_eq!(paths(api).len(), 2);
    })
    .await;
}

/// A stream no app takes (unknown authority, a path outside every prefix,
/// `/webx` beside `/web`) gets 404 with a body that names no app, and
/// reaches no app.
#[tokio::test]
async fn a_stream_no_app_takes_gets_404() {
    within(async {
        let setup = setup(false).await;
        for path in ["/", "/webx", "/api"] {
            let (status, body) = get(setup.front, "other.test", path).await;
            assert_eq!(status, 404, "{path}: {body}");
            assert!(body.contains("no app for this authority/path"), "{body}");
            assert!(!body.contains("127.0.0.1"), "{body}");
        }
        let [api, web] = &setup.apps;
        assert_eq!(api.requests().len() + web.requests().len(), 0);
        let refused = ws_connect(setup.front, "/chat", &[("Host", "other.test")]).await;
        let Err(err) = refused else {
            panic!("no app takes /chat, yet the tunnel opened")
        };
        let err = err.to_string();
        assert!(err.contains("404"), "{err}");
        assert_eq!(api.requests().len() + web.requests().len(), 0);
    })
    .await;
}

/// A WebSocket tunnel goes to the app its path picks, or its authority,
/// and echoes through it.
#[tokio::test]
async fn tunnels_reach_the_app_their_path_or_authority_picks() {
    within(async {
        let setup = setup(false).await;
        let [api, web] = &setup.apps;
        let host = [("Host", "other.test")];
        let (mut ws, _) = ws_connect(setup.front, "/web/socket", &host).await.unwrap();
        let echoed = echo_roundtrip(&mut ws, Message::text("to web"))
            .await
            .unwrap();
        assert_eq!(echoed, Message::text("to web"));
        assert_eq!(paths(web), ["/web/socket"]);

        let host = [("Host", "api.test")];
        let (mut ws, _) = ws_connect(setup.front, "/web/socket", &host).await.unwrap();
        let echoed = echo_roundtrip(&mut ws, Message::text("to api"))
            .await
            .unwrap();
        assert_eq!(echoed, Message::text("to api"));
        assert_eq!(paths(api), ["/web/socket"]);
        assert_eq!(paths(web).len(), 1);
    })
    .await;
}

/// The sidecar's access line names the app a stream went to, as its
/// route; a stream no app took has none.
#[tokio::test]
async fn access_lines_name_the_app() {
    let (log, _guard) = Captured::install();
    within(async {
        let setup = setup(false).await;
        assert_eq!(get(setup.front, "other.test", "/web/logged").await.0, 200);
        let line = log
            .wait_for(&["h2hop::access", "path=\"/web/logged\"", "route=\"web\""])
            .await;
        assert!(line.contains("status=200"), "{line}");
        assert_eq!(get(setup.front, "api.test", "/api-logged").await.0, 200);
        log.wait_for(&["h2hop::access", "path=\"/api-logged\"", "route=\"api\""])
            .await;
        assert_eq!(get(setup.front, "other.test", "/nowhere").await.0, 404);
        let line = log
            .wait_for(&["h2hop::access", "path=\"/nowhere\"", "route=\"-\""])
            .await;
        assert!(line.contains("status=404"), "{line}");
    })
    .await;
}

/// `/readyz` is ready when every app accepts TCP; with one down, 503
/// naming that app and not the other.
#[tokio::test]
async fn readiness_names_the_app_that_is_down() {
    within(async {
        let up = setup(false).await;
        assert_eq!(readyz(up.sidecar_admin).await.0, 200);
        let down = setup(true).await;
        let (status, body) = readyz(down.sidecar_admin).await;
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("app web"), "{body}");
        assert!(!body.contains("app api"), "{body}");
    })
    .await;
}

/// `GET /readyz` on an admin listener: status and body.
async fn readyz(addr: SocketAddr) -> (u16, String) {
    let mut client = http1_connect(addr).await.unwrap();
    let asked = request(Method::GET, addr, "/readyz", full("")).unwrap();
    let response = client.send_request(asked).await.unwrap();
    let status = response.status().as_u16();
    let body = body_bytes(response).await.unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// `h2hop-sidecar --check-config --config FILE`: the apps and exit 0 for a
/// good file; the app at fault and a failure exit for a bad one; `--app`
/// beside `--config` is refused.
#[test]
fn check_config_validates_the_file() {
    let dir = binaries::dir();
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("sidecar.toml");
    let check = |text: &str, extra: &[&str]| {
        std::fs::write(&path, text).unwrap();
        std::process::Command::new(dir.join("h2hop-sidecar"))
            .args(["--h2c", "--check-config", "--config"])
            .arg(&path)
            .args(extra)
            .output()
            .unwrap()
    };
    let good = APPS
        .replace("{API}", "10.0.0.1:9000")
        .replace("{WEB}", "10.0.0.2:8000");
    let output = check(&good, &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains("configuration OK: 2 app(s)"), "{stdout}");
    assert!(
        stdout.contains("app api: 10.0.0.1:9000 (http1); authorities api.test"),
        "{stdout}"
    );
    assert!(
        stdout.contains("app web: 10.0.0.2:8000 (http1); path_prefix /web"),
        "{stdout}"
    );

    let output = check(&good.replace("path_prefix = \"/web/\"", ""), &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{output:?}");
    assert!(
        stderr.contains("--config") && stderr.contains("app \"web\" matches nothing"),
        "{stderr}"
    );

    let output = check(&good, &["--app", "127.0.0.1:1"]);
    assert!(!output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--app"),
        "{output:?}"
    );
}
