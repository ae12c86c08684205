//! Error answers keep their causes to the logs: a 5xx from the front or
//! from the sidecar (relayed by the front as it is) tells the client the
//! status and a request id, never a sidecar or app address, a TLS failure
//! or an OS error; the proxy's log line with that id has the whole cause
//! chain. `--error-details` (`Config::error_details`) puts the chain back
//! in the body, for development.
//!
//! Every test captures logs, even where it reads none: with a single
//! subscriber registered in the process, tracing asks the thread that
//! first hits a callsite, and a test thread without one would turn that
//! callsite off for the test that reads its logs.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;

use h2hop_integration::client;
use h2hop_integration::harness::{FrontIdentity, Pair, SidecarKind, within};
use h2hop_integration::logs::Captured;
use http::{Method, StatusCode};

/// Words of a cause chain that must never reach a client unasked.
const CAUSE_WORDS: [&str; 5] = ["127.0.0.1", "os error", "refused", "TLS", "certificate"];

/// A plain GET through the front: status and body.
async fn get(front: SocketAddr) -> (StatusCode, String) {
    let mut sender = client::http1_connect(front).await.unwrap();
    let request = client::request(Method::GET, front, "/", client::full("")).unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    let body = client::body_bytes(response).await.unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// A WebSocket handshake through the front: status and body.
async fn upgrade(front: SocketAddr) -> (u16, String) {
    let mut raw = client::raw_upgrade(front, "/ws", "Upgrade", &[])
        .await
        .unwrap();
    let body = raw.read_body().await.unwrap();
    (raw.status, String::from_utf8(body).unwrap())
}

/// `body` is `who`'s fixed 502 text and a request id, with nothing of the
/// cause; the log line of that id has `cause`.
async fn assert_only_an_id(logs: &Captured, body: &str, who: &str, cause: &str) {
    let fixed = format!("{who}: bad gateway (request id ");
    assert!(body.starts_with(&fixed), "{body}");
    for word in CAUSE_WORDS.iter().chain([&cause]) {
        assert!(!body.contains(word), "{word:?} leaked into {body:?}");
    }
    logs.wait_for_request(body, &[cause]).await;
}

/// The front's own 502s (sidecar down, sidecar refusing the front's TLS)
/// and the sidecar's (app down), for a plain request and an upgrade: no
/// address, OS error or TLS reason in any body, and every one in the log
/// under the body's request id.
#[tokio::test]
async fn no_cause_reaches_the_client_by_default() {
    let (logs, _guard) = Captured::install();
    within(async {
        let down = Pair::builder()
            .sidecar(SidecarKind::Down)
            .start()
            .await
            .unwrap();
        let cause = format!("cannot connect to sidecar {}", down.sidecar);
        let tls = Pair::builder()
            .identity(FrontIdentity::OtherCa)
            .start()
            .await
            .unwrap();
        let app_down = Pair::builder().app_down().start().await.unwrap();
        let cases = [
            (&down, "h2hop-front", cause.as_str()),
            (&tls, "h2hop-front", "TLS with sidecar"),
            (
                &app_down,
                "h2hop-sidecar",
                "cannot connect to app 127.0.0.1:",
            ),
        ];
        for (pair, who, cause) in cases {
            let (status, body) = get(pair.front).await;
            assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
            assert_only_an_id(&logs, &body, who, cause).await;
            let (status, body) = upgrade(pair.front).await;
            assert_eq!(status, 502, "{body}");
            assert_only_an_id(&logs, &body, who, cause).await;
        }
    })
    .await;
}

/// Each failed request gets an id of its own.
#[tokio::test]
async fn each_failure_has_its_own_request_id() {
    let (_logs, _guard) = Captured::install();
    within(async {
        let pair = Pair::builder()
            .sidecar(SidecarKind::Down)
            .start()
            .await
            .unwrap();
        let (_, first) = get(pair.front).await;
        let (_, second) = get(pair.front).await;
        let id = h2hop_integration::logs::request_id;
        assert!(id(&first).is_some(), "{first}");
        assert_ne!(id(&first), id(&second));
    })
    .await;
}

/// With error details on, the front's body names the sidecar it could not
/// reach, and the sidecar's the app, as the logs do.
#[tokio::test]
async fn error_details_put_the_cause_in_the_body() {
    let (_logs, _guard) = Captured::install();
    within(async {
        let down = Pair::builder()
            .sidecar(SidecarKind::Down)
            .front_config(|config| config.error_details = true)
            .start()
            .await
            .unwrap();
        let (status, body) = get(down.front).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        let cause = format!("h2hop-front: cannot connect to sidecar {}", down.sidecar);
        assert!(body.starts_with(&cause), "{body}");
        assert!(body.contains("(request id "), "{body}");

        let app_down = Pair::builder()
            .app_down()
            .sidecar_config(|config| config.error_details = true)
            .start()
            .await
            .unwrap();
        let (status, body) = upgrade(app_down.front).await;
        assert_eq!(status, 502);
        assert!(
            body.starts_with("h2hop-sidecar: cannot connect to app 127.0.0.1:"),
            "{body}"
        );
    })
    .await;
}
