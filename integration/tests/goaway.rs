//! GOAWAY from a sidecar: the front sends no new stream on that
//! connection (it opens another) and the streams already open on it finish.
//!
//! The sidecar here is a small `h2` server of the test's own, so that it
//! can send GOAWAY while it keeps serving: it answers each GET with the
//! number of the connection it arrived on, holds `/hold` open until told,
//! and sends GOAWAY on connection 1 once `/hold` is in, then a PING: the
//! front answers that PING only after it has read the GOAWAY before it.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use h2hop_integration::client::{body_bytes, full, http1_connect, request};
use h2hop_integration::harness::{loopback, within};
use http::{Method, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// What the test's sidecar tells the test, and is told by it.
#[derive(Clone, Default)]
struct Signals {
    /// The front has read the GOAWAY: the PING sent after it came back.
    gone_away: Arc<Notify>,
    /// The held stream may end.
    release: Arc<Notify>,
}

/// Serves connections, numbering them from 1.
async fn sidecar(listener: TcpListener, signals: Signals) {
    let mut number = 0;
    loop {
        let (tcp, _) = listener.accept().await.unwrap();
        number += 1;
        tokio::spawn(connection(tcp, number, signals.clone()));
    }
}

async fn connection(tcp: tokio::net::TcpStream, number: usize, signals: Signals) {
    let mut connection = h2::server::Builder::new()
        .enable_connect_protocol()
        .handshake::<_, Bytes>(tcp)
        .await
        .unwrap();
    let mut ping_pong = connection.ping_pong();
    while let Some(accepted) = connection.accept().await {
        let (request, mut respond) = accepted.unwrap();
        let hold = request.uri().path() == "/hold";
        let mut send = respond.send_response(Response::new(()), false).unwrap();
        if hold {
            // The stream stays open; then this connection goes away.
            connection.graceful_shutdown();
            // h2 writes the queued GOAWAY before any PING, and the front
            // reads frames in order: the pong means it has seen the GOAWAY.
            let mut ping_pong = ping_pong.take().unwrap();
            let gone_away = signals.gone_away.clone();
            tokio::spawn(async move {
                ping_pong.ping(h2::Ping::opaque()).await.unwrap();
                gone_away.notify_one();
            });
            let release = signals.release.clone();
            tokio::spawn(async move {
                release.notified().await;
                send.send_data(Bytes::from(format!("held on {number}")), true)
                    .unwrap();
            });
        } else {
            send.send_data(Bytes::from(format!("conn {number}")), true)
                .unwrap();
        }
    }
}

async fn get(front: SocketAddr, path: &str) -> (StatusCode, Bytes) {
    let mut client = http1_connect(front).await.unwrap();
    let response = client
        .send_request(request(Method::GET, front, path, full("")).unwrap())
        .await
        .unwrap();
    let status = response.status();
    (status, body_bytes(response).await.unwrap())
}

#[tokio::test]
async fn goaway_moves_new_streams_to_a_new_connection_and_open_ones_finish() {
    within(async {
        let stop = CancellationToken::new();
        let _stop = stop.clone().drop_guard();
        let listener = loopback().await.unwrap();
        let sidecar_addr = listener.local_addr().unwrap();
        let signals = Signals::default();
        tokio::spawn(sidecar(listener, signals.clone()));
        let front_listener = loopback().await.unwrap();
        let front = front_listener.local_addr().unwrap();
        let config = h2hop_front::Config::new(sidecar_addr.to_string(), None);
        tokio::spawn(h2hop_front::run(
            config,
            front_listener.into(),
            stop.child_token(),
        ));

        let held = tokio::spawn(get(front, "/hold"));
        // Connection 1 took /hold and the front has read its GOAWAY.
        signals.gone_away.notified().await;
        for _ in 0..3 {
            let (status, body) = get(front, "/next").await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(
                &body[..],
                b"conn 2",
                "a new stream went to the old connection"
            );
        }
        signals.release.notify_one();
        let (status, body) = held.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], b"held on 1");
    })
    .await;
}
