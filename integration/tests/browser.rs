//! A real browser through the front: headless Chromium (Debian `chromium`,
//! the system browser, driven over its DevTools protocol) loads the demo
//! page, which opens a WebSocket back to its origin and sends five
//! messages. Over `http://` that WebSocket is HTTP/1.1; over `https://`
//! the page itself comes over HTTP/2, and Chromium opens the WebSocket on
//! that connection with an RFC 8441 extended CONNECT, which the front's log
//! shows as a tunnel on an HTTP/2 stream.
//!
//! Without Chromium the test says so loudly and passes, unless
//! `H2HOP_REQUIRE_EXTERNAL=1` (as CI sets), which makes it fail.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::cell::RefCell;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use h2hop_integration::client::{body_bytes, full, http1_connect, request};
use h2hop_integration::harness::{Pair, within};
use h2hop_integration::logs::Captured;
use h2hop_integration::process::{Output, Process};
use h2hop_integration::wait::{eventually_async, eventually_some};
use http::Method;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The system Chromium, or `None` after a loud skip line; with
/// `H2HOP_REQUIRE_EXTERNAL=1` a missing browser fails the test.
fn chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser"] {
        for dir in std::env::var("PATH").unwrap_or_default().split(':') {
            let path = PathBuf::from(dir).join(name);
            if path.is_file() {
                return Some(path);
            }
        }
    }
    let required = std::env::var("H2HOP_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "chromium is not installed and H2HOP_REQUIRE_EXTERNAL=1"
    );
    eprintln!("!!! SKIPPED: chromium is not installed (apt-get install chromium)");
    None
}

/// How long Chromium may take to offer its DevTools page target.
const START_BOUND: Duration = Duration::from_secs(20);

/// How long the demo page may take to show its five echoes.
const ECHOES_BOUND: Duration = Duration::from_secs(10);

/// A headless Chromium with a fresh profile and a DevTools WebSocket;
/// dropping it kills the browser.
struct Browser {
    _process: Process,
    _profile: tempfile::TempDir,
    /// The page's DevTools socket and the next command id.
    devtools: Mutex<(WebSocketStream<MaybeTlsStream<TcpStream>>, u64)>,
}

impl Browser {
    async fn launch(program: PathBuf) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut command = Command::new(program);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                // The pair's certificate comes from a throwaway CA.
                "--ignore-certificate-errors",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank");
        let process = Process::spawn("chromium", &mut command, Output::Null).unwrap();
        // Chromium writes the port it picked into the profile.
        let port_file = profile.path().join("DevToolsActivePort");
        let port = eventually_some(START_BOUND, || {
            let text = std::fs::read_to_string(&port_file).ok()?;
            text.lines().next()?.parse::<u16>().ok()
        })
        .await
        .expect("Chromium never wrote its DevTools port");
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let page = eventually_async(START_BOUND, || page_target(addr))
            .await
            .expect("Chromium never listed a page target");
        let (devtools, _) = tokio_tungstenite::connect_async(page.as_str())
            .await
            .unwrap();
        Browser {
            _process: process,
            _profile: profile,
            devtools: Mutex::new((devtools, 1)),
        }
    }

    /// Sends one DevTools command and returns its result.
    async fn call(&self, method: &str, params: Value) -> Value {
        let mut devtools = self.devtools.lock().await;
        let (devtools, next_id) = &mut *devtools;
        let id = *next_id;
        *next_id += 1;
        let command = json!({ "id": id, "method": method, "params": params });
        devtools
            .send(Message::text(command.to_string()))
            .await
            .unwrap();
        loop {
            let message = devtools.next().await.expect("DevTools closed").unwrap();
            let Message::Text(text) = message else {
                continue;
            };
            let reply: Value = serde_json::from_str(&text).unwrap();
            if reply["id"] == id {
                assert!(reply.get("error").is_none(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    /// Loads `url` and waits until the demo page shows its WebSocket
    /// connected with all five echoes; returns the HTTP version the page
    /// itself came over (`nextHopProtocol`).
    async fn demo_page_echoes(&self, url: &str) -> String {
        self.call("Page.navigate", json!({ "url": url })).await;
        let probe = "JSON.stringify({ status: document.getElementById('status')?.textContent, \
             echoes: [...document.querySelectorAll('#echoes li')].map(li => li.textContent), \
             protocol: performance.getEntriesByType('navigation')[0]?.nextHopProtocol })";
        let last = RefCell::new(Value::Null);
        let shown = eventually_async(ECHOES_BOUND, || async {
            let evaluate = json!({ "expression": probe, "returnByValue": true });
            let result = self.call("Runtime.evaluate", evaluate).await;
            let seen: Value =
                serde_json::from_str(result["result"]["value"].as_str().unwrap_or("null"))
                    .unwrap_or(Value::Null);
            let echoes = seen["echoes"].as_array().map_or(0, Vec::len);
            let done = seen["status"] == "connected" && echoes == 5;
            last.replace(seen.clone());
            done.then_some(seen)
        });
        let Some(shown) = shown.await else {
            panic!(
                "{url}: the page never showed five echoes; last seen {}",
                last.borrow()
            );
        };
        let expected: Vec<String> = (1..=5).map(|i| format!("hello {i}")).collect();
        assert_eq!(shown["echoes"], json!(expected));
        shown["protocol"].as_str().unwrap_or_default().to_owned()
    }
}

/// The DevTools socket of Chromium's page target at `addr`, once it lists
/// one.
async fn page_target(addr: std::net::SocketAddr) -> Option<String> {
    let mut client = http1_connect(addr).await.unwrap();
    let list = request(Method::GET, addr, "/json/list", full("")).unwrap();
    let body = body_bytes(client.send_request(list).await.unwrap())
        .await
        .unwrap();
    let targets: Value = serde_json::from_slice(&body).unwrap();
    targets
        .as_array()?
        .iter()
        .find(|target| target["type"] == "page")?["webSocketDebuggerUrl"]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test]
async fn chromium_websockets_over_http11_and_over_http2() {
    let Some(program) = chromium() else {
        return;
    };
    let (log, _guard) = Captured::install();
    within(async {
        let pair = Pair::builder().h2c().client_tls().start().await.unwrap();
        let browser = Browser::launch(program).await;

        let plain = format!("http://{}/", pair.front);
        let protocol = browser.demo_page_echoes(&plain).await;
        assert_eq!(protocol, "http/1.1");

        let tls = format!("https://{}/", pair.front_tls.unwrap());
        let protocol = browser.demo_page_echoes(&tls).await;
        assert_eq!(protocol, "h2", "the page did not come over HTTP/2");

        // The front's own account of each WebSocket: a tunnel opened on an
        // HTTP/1.1 request, and one opened on an HTTP/2 stream (an RFC 8441
        // extended CONNECT is the only way a tunnel starts on HTTP/2).
        let open = |version: &str| {
            log.lines_with(&["tunnel open", "kind=\"tunnel\"", version, "path=\"/ws\""])
        };
        assert_eq!(open("version=HTTP/1.1").len(), 1, "{:?}", open(""));
        assert_eq!(open("version=HTTP/2.0").len(), 1, "{:?}", open(""));
    })
    .await;
}
