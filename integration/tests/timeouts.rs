//! The timeouts that end requests and tunnels: a slow app gets 504 within
//! the response or upgrade timeout, a tunnel is never ended by a request
//! timeout however long it lives, and a silent tunnel is closed after the
//! tunnel idle timeout.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use h2hop_integration::client::{raw_request, raw_upgrade, ws_connect};
use h2hop_integration::harness::{Pair, Timeouts, loopback, unaccepting_listener, within};
use h2hop_integration::logs::Captured;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message;

/// Short timeouts, so that the tests take about a second.
const SHORT: Timeouts = Timeouts {
    response: Duration::from_millis(300),
    upgrade: Duration::from_millis(300),
    tunnel_idle: Duration::from_millis(700),
};

async fn pair() -> Pair {
    Pair::builder().h2c().timeouts(SHORT).start().await.unwrap()
}

/// An app that never answers: 504 for a plain request and for an upgrade,
/// each within its own timeout.
#[tokio::test]
async fn a_silent_app_gets_504_for_requests_and_upgrades() {
    within(async {
        let pair = pair().await;
        let started = Instant::now();
        let plain = raw_request(pair.front, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(plain.status, 504);
        let upgrade = raw_upgrade(pair.front, "/slow", "Upgrade", &[])
            .await
            .unwrap();
        assert_eq!(upgrade.status, 504);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "two 300 ms timeouts took {:?}",
            started.elapsed()
        );
    })
    .await;
}

/// A tunnel that keeps talking lives far past the request timeouts and the
/// idle timeout; once it falls silent it is closed after the idle timeout.
#[tokio::test]
async fn tunnels_outlive_request_timeouts_and_close_when_idle() {
    within(async {
        let pair = pair().await;
        let (mut ws, _) = ws_connect(pair.front, "/ws", &[]).await.unwrap();
        // Four times the response timeout, twice the idle timeout.
        let mut last_echo = Instant::now();
        for round in 0..7 {
            let text = format!("ping {round}");
            ws.send(Message::text(text.clone())).await.unwrap();
            let echo = ws.next().await.expect("an echo").unwrap();
            assert_eq!(echo, Message::text(text));
            last_echo = Instant::now();
            // The tunnel's age is what is under test: each pause is below
            // the idle timeout, and together they pass the request timeouts.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        match ws.next().await {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => {}
            Some(Ok(other)) => panic!("unexpected {other:?}"),
        }
        let silent_for = last_echo.elapsed();
        assert!(
            silent_for >= Duration::from_millis(600),
            "closed after only {silent_for:?} of silence"
        );
    })
    .await;
}

/// Slowloris: a client that never finishes its request head is closed
/// after the header timeout.
#[tokio::test]
async fn an_unfinished_request_head_is_closed_after_the_header_timeout() {
    within(async {
        let pair = Pair::builder()
            .h2c()
            .front_config(|config| config.header_timeout = Duration::from_millis(300))
            .start()
            .await
            .unwrap();
        let mut stream = tokio::net::TcpStream::connect(pair.front).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: h\r\nX-Slow: ")
            .await
            .unwrap();
        let started = Instant::now();
        let mut rest = Vec::new();
        // Whatever the front says (perhaps a 408), it then closes.
        let _ = stream.read_to_end(&mut rest).await;
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "closed after {:?}, before the timeout",
            started.elapsed()
        );
    })
    .await;
}

/// A sidecar that accepts TCP and never speaks TLS: 504 after the TLS
/// timeout, whose log line names the TLS handshake.
#[tokio::test]
async fn a_mute_sidecar_times_out_the_tls_handshake() {
    let (logs, _guard) = Captured::install();
    within(async {
        let mute = loopback().await.unwrap();
        let addr = mute.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((tcp, _)) = mute.accept().await {
                held.push(tcp);
            }
        });
        let pki = h2hop_certs::DevPki::generate(&["localhost".to_owned()]).unwrap();
        let tls = h2hop_front::UpstreamTls {
            config: h2hop::tls::hop_client_config(
                vec![pki.ca_der()],
                Some((pki.client_chain(), pki.client_key())),
            )
            .unwrap()
            .into(),
            server_name: rustls::pki_types::ServerName::try_from("localhost").unwrap(),
        };
        let mut config = h2hop_front::Config::new(addr.to_string(), Some(tls));
        config.upstream.tls_timeout = Duration::from_millis(300);
        let listener = loopback().await.unwrap();
        let front = listener.local_addr().unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        let _stop = stop.clone().drop_guard();
        tokio::spawn(h2hop_front::run(config, listener.into(), stop));
        let mut answer = raw_request(front, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(answer.status, 504);
        let body = String::from_utf8(answer.read_body().await.unwrap()).unwrap();
        assert!(body.starts_with("h2hop-front: gateway timeout"), "{body}");
        logs.wait_for_request(&body, &["status=504", "TLS handshake"])
            .await;
    })
    .await;
}

/// An app whose accept queue is full: a plain request (on the keep-alive
/// pool) and an upgrade (on a connection of its own) both get 504 after
/// the sidecar's app connect timeout, whose log line names the connect step.
#[tokio::test]
async fn an_app_that_never_accepts_times_out_the_connect() {
    let (logs, _guard) = Captured::install();
    within(async {
        let (app, _full) = unaccepting_listener().await.unwrap();
        let pair = Pair::builder()
            .h2c()
            .app_at(app)
            .sidecar_config(|config| config.app.connect_timeout = Duration::from_millis(300))
            .start()
            .await
            .unwrap();
        let mut plain = raw_request(pair.front, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            .await
            .unwrap();
        let body = String::from_utf8(plain.read_body().await.unwrap()).unwrap();
        assert_eq!(plain.status, 504, "{body}");
        assert!(body.starts_with("h2hop-sidecar: gateway timeout"), "{body}");
        logs.wait_for_request(&body, &["status=504", "connect with app"])
            .await;
        let upgrade = raw_upgrade(pair.front, "/ws", "Upgrade", &[])
            .await
            .unwrap();
        assert_eq!(upgrade.status, 504);
    })
    .await;
}

/// A sidecar whose accept queue is full drops new SYNs, so connecting
/// hangs: 504 after the connect timeout, whose log line names the connect
/// step.
#[tokio::test]
async fn a_sidecar_that_never_accepts_times_out_the_connect() {
    let (logs, _guard) = Captured::install();
    within(async {
        let (addr, _full) = unaccepting_listener().await.unwrap();
        let mut config = h2hop_front::Config::new(addr.to_string(), None);
        config.upstream.connect_timeout = Duration::from_millis(300);
        let listener = loopback().await.unwrap();
        let front = listener.local_addr().unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        let _stop = stop.clone().drop_guard();
        tokio::spawn(h2hop_front::run(config, listener.into(), stop));
        let mut answer = raw_request(front, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            .await
            .unwrap();
        let body = String::from_utf8(answer.read_body().await.unwrap()).unwrap();
        assert_eq!(answer.status, 504, "{body}");
        assert!(body.starts_with("h2hop-front: gateway timeout"), "{body}");
        logs.wait_for_request(&body, &["status=504", "connect with sidecar"])
            .await;
    })
    .await;
}
