//! TLS on the front → sidecar hop: mutual TLS works, h2c works, and every
//! broken identity (no client certificate, one from another CA, a sidecar
//! certificate for another name) ends in a 502 for the client and a log line
//! on each side that says why.
//!
//! Log capture ([`h2hop_integration::logs`]): each test runs on tokio's
//! current-thread runtime, so every task the pair spawns runs on the test
//! thread, where the capturing subscriber is the default. Parallel tests
//! keep their logs apart.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;

use h2hop_certs::DevPki;
use h2hop_front::UpstreamTls;
use h2hop_integration::app::TestApp;
use h2hop_integration::client;
use h2hop_integration::harness::{FrontIdentity, Pair, loopback, within};
use h2hop_integration::logs::Captured;
use http::{Method, StatusCode};
use rustls::pki_types::ServerName;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// A WebSocket handshake through the front: status and body.
async fn websocket_status(front: SocketAddr) -> (u16, String) {
    let mut raw = client::raw_upgrade(front, "/ws", "Upgrade", &[])
        .await
        .unwrap();
    let body = raw.read_body().await.unwrap();
    (raw.status, String::from_utf8(body).unwrap())
}

/// A plain GET through the front: status and body.
async fn get(front: SocketAddr, path: &str) -> (StatusCode, String) {
    let mut sender = client::http1_connect(front).await.unwrap();
    let request = client::request(Method::GET, front, path, client::full("")).unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    let body = client::body_bytes(response).await.unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// Both the WebSocket and the plain GET get a 502 that names only a
/// request id, the sidecar logs its refusal with `sidecar_reason`, and the
/// front logs each failed request once, under that id, as a TLS failure.
/// Returns the front's log lines for the failed requests.
async fn assert_refused(pair: &Pair, logs: &Captured, sidecar_reason: &str) -> Vec<String> {
    let (status, body) = websocket_status(pair.front).await;
    assert_eq!(status, 502, "{body}");
    assert_tls_failure_hidden(logs, &body, "TLS with sidecar").await;
    let (status, body) = get(pair.front, "/").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_tls_failure_hidden(logs, &body, "TLS with sidecar").await;

    logs.wait_for(&["TLS handshake refused", sidecar_reason])
        .await;
    logs.wait_for(&["request failed", "status=502", "TLS with sidecar"])
        .await;
    let front = logs.lines_with(&["request failed"]);
    assert_eq!(front.len(), 2, "one line per request:\n{}", logs.text());
    assert!(pair.app.requests().is_empty());
    front
}

/// The front's 502 `body` says "bad gateway" and a request id, not `cause`;
/// the front's log line of that id has it.
async fn assert_tls_failure_hidden(logs: &Captured, body: &str, cause: &str) {
    assert!(body.starts_with("h2hop-front: bad gateway"), "{body}");
    assert!(!body.contains(cause), "{body}");
    logs.wait_for_request(body, &["request failed", cause])
        .await;
}

/// A sidecar requires a client certificate: a front that sends none is
/// refused in the TLS handshake (the sidecar logs "peer sent no
/// certificate"), and its clients get 502.
#[tokio::test]
async fn sidecar_refuses_front_without_certificate() {
    let (logs, _guard) = Captured::install();
    within(async {
        let pair = Pair::builder()
            .identity(FrontIdentity::None)
            .start()
            .await
            .unwrap();
        assert_refused(&pair, &logs, "no certificate").await;
    })
    .await;
}

/// A front whose certificate comes from another CA is refused (the sidecar
/// logs "unknown CA"), and its clients get 502.
#[tokio::test]
async fn sidecar_refuses_front_certificate_from_another_ca() {
    let (logs, _guard) = Captured::install();
    within(async {
        let pair = Pair::builder()
            .identity(FrontIdentity::OtherCa)
            .start()
            .await
            .unwrap();
        assert_refused(&pair, &logs, "unknown CA").await;
    })
    .await;
}

/// The front's log line for a request it failed says why the sidecar
/// refused the TLS session (the alert the sidecar sent: certificate
/// required, unknown CA), not only that TLS failed; either rustls' wording
/// or h2hop's own description of the alert will do.
#[tokio::test]
async fn front_failure_log_names_the_sidecars_tls_refusal() {
    let (logs, _guard) = Captured::install();
    within(async {
        let cases = [
            (FrontIdentity::None, ["sent none", "CertificateRequired"]),
            (FrontIdentity::OtherCa, ["unknown CA", "UnknownCA"]),
        ];
        for (identity, reasons) in cases {
            let pair = Pair::builder().identity(identity).start().await.unwrap();
            let before = logs.lines_with(&["request failed"]).len();
            let (status, _) = get(pair.front, "/").await;
            assert_eq!(status, StatusCode::BAD_GATEWAY);
            let lines = logs.lines_with(&["request failed"]);
            let line = lines.get(before).expect("the front logged the failure");
            assert!(
                reasons.iter().any(|reason| line.contains(reason)),
                "{identity:?}: the front's failure line does not say why: {line}"
            );
        }
    })
    .await;
}

/// The front checks the sidecar's certificate against the configured name:
/// a sidecar certificate for `localhost` does not pass for `other.example`,
/// so no request reaches the app and the client gets 502.
#[tokio::test]
async fn front_refuses_sidecar_certificate_for_another_name() {
    let (logs, _guard) = Captured::install();
    within(async {
        let shutdown = CancellationToken::new();
        let _stop = shutdown.clone().drop_guard();
        let pki = DevPki::generate(&["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let app = TestApp::spawn(loopback().await.unwrap(), shutdown.child_token()).unwrap();

        let sidecar_tls =
            h2hop::tls::hop_server_config(pki.server_chain(), pki.server_key(), vec![pki.ca_der()])
                .unwrap();
        let sidecar_config = h2hop_sidecar::Config::new(app.addr.to_string(), Some(sidecar_tls));
        let sidecar_listener = loopback().await.unwrap();
        let sidecar = sidecar_listener.local_addr().unwrap();
        tokio::spawn(h2hop_sidecar::run(
            sidecar_config,
            sidecar_listener.into(),
            shutdown.child_token(),
        ));

        let front_tls = UpstreamTls {
            config: h2hop::tls::hop_client_config(
                vec![pki.ca_der()],
                Some((pki.client_chain(), pki.client_key())),
            )
            .unwrap()
            .into(),
            server_name: ServerName::try_from("other.example").unwrap(),
        };
        let front_config = h2hop_front::Config::new(sidecar.to_string(), Some(front_tls));
        let front_listener = loopback().await.unwrap();
        let front = front_listener.local_addr().unwrap();
        tokio::spawn(h2hop_front::run(
            front_config,
            front_listener.into(),
            shutdown.child_token(),
        ));

        let (status, body) = websocket_status(front).await;
        assert_eq!(status, 502, "{body}");
        assert_tls_failure_hidden(&logs, &body, "other.example").await;
        let (status, body) = get(front, "/").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
        assert_tls_failure_hidden(&logs, &body, "other.example").await;

        logs.wait_for(&[
            "request failed",
            "certificate is valid for localhost or 127.0.0.1, not for other.example",
        ])
        .await;
        // Names as an operator writes them, not in Rust's Debug form.
        assert!(!logs.text().contains("DnsName("), "{}", logs.text());
        logs.wait_for(&["TLS handshake refused"]).await;
        assert!(app.requests().is_empty());
    })
    .await;
}

/// RFC 8441 over mutual TLS with ALPN h2: a WebSocket echoes and a plain
/// GET works, and neither side logs a TLS refusal.
#[tokio::test]
async fn mutual_tls_carries_websocket_and_plain_requests() {
    let (logs, _guard) = Captured::install();
    within(async {
        let pair = Pair::start().await.unwrap();
        let (mut ws, response) = client::ws_connect(pair.front, "/ws", &[]).await.unwrap();
        assert_eq!(response.status(), 101);
        let echoed = client::echo_roundtrip(&mut ws, Message::text("over mTLS"))
            .await
            .unwrap();
        assert_eq!(echoed, Message::text("over mTLS"));
        let (status, body) = get(pair.front, "/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("new WebSocket("), "{body}");
        assert!(
            logs.lines_with(&["TLS handshake refused"]).is_empty(),
            "{}",
            logs.text()
        );
        assert!(logs.lines_with(&["request failed"]).is_empty());
    })
    .await;
}

/// h2c with prior knowledge (no TLS): the same WebSocket echo and plain GET.
#[tokio::test]
async fn h2c_carries_websocket_and_plain_requests() {
    within(async {
        let pair = Pair::builder().h2c().start().await.unwrap();
        let (mut ws, response) = client::ws_connect(pair.front, "/ws", &[]).await.unwrap();
        assert_eq!(response.status(), 101);
        let echoed = client::echo_roundtrip(&mut ws, Message::binary(vec![0u8, 1, 2]))
            .await
            .unwrap();
        assert_eq!(echoed, Message::binary(vec![0u8, 1, 2]));
        let (status, body) = get(pair.front, "/status/404").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, "app says 404");
    })
    .await;
}

/// Workload identity: a front whose certificate carries the URI SAN
/// `spiffe://test/front` gets through a sidecar that allows that SAN, and
/// its tunnel echoes.
#[tokio::test]
async fn sidecar_accepts_front_with_an_allowed_uri_san() {
    let (logs, _guard) = Captured::install();
    within(async {
        let pair = Pair::builder()
            .front_uri_sans(&["spiffe://test/front"])
            .allow_front_sans(&["spiffe://test/other", "spiffe://test/front"])
            .start()
            .await
            .unwrap();
        let (mut ws, response) = client::ws_connect(pair.front, "/ws", &[]).await.unwrap();
        assert_eq!(response.status(), 101);
        let echoed = client::echo_roundtrip(&mut ws, Message::text("allowed"))
            .await
            .unwrap();
        assert_eq!(echoed, Message::text("allowed"));
        let (status, _) = get(pair.front, "/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            logs.lines_with(&["TLS handshake refused"]).is_empty(),
            "{}",
            logs.text()
        );
    })
    .await;
}

/// The same front, when the sidecar allows only another SAN, is refused in
/// the TLS handshake: its clients get 502, nothing reaches the app, and
/// the sidecar's log line names the identity the front presented.
#[tokio::test]
async fn sidecar_refuses_front_without_an_allowed_san() {
    let (logs, _guard) = Captured::install();
    within(async {
        let pair = Pair::builder()
            .front_uri_sans(&["spiffe://test/front"])
            .allow_front_sans(&["spiffe://test/other"])
            .start()
            .await
            .unwrap();
        let front_lines = assert_refused(&pair, &logs, "identity not allowed").await;
        let refusal = logs
            .wait_for(&["TLS handshake refused", "identity not allowed"])
            .await;
        assert!(refusal.contains("spiffe://test/front"), "{refusal}");
        assert!(refusal.contains("h2hop-front"), "{refusal}");
        assert!(refusal.contains("WARN"), "{refusal}");
        // The front hears of it as a rejected certificate (the alert is
        // certificate_unknown, RFC 8446 §6.2), in rustls' words or h2hop's.
        for line in front_lines {
            assert!(
                ["CertificateUnknown", "rejected our certificate"]
                    .iter()
                    .any(|reason| line.contains(reason)),
                "{line}"
            );
        }
    })
    .await;
}
