//! Retries when a sidecar resets the stream before answering, end to end:
//! a fake sidecar (an `h2` server that counts streams) refuses every
//! stream with REFUSED_STREAM or resets it with INTERNAL_ERROR, beside a
//! real sidecar and app. A plain request is retried on the real one in
//! both cases; a tunnel only when refused (RFC 9113 §8.7: not processed),
//! and never after the fake answered.
//!
//! With both sidecars idle the front takes the first one (the fake)
//! first.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use h2::Reason;
use h2hop_integration::client::{body_bytes, full, http1_connect, request, ws_connect};
use h2hop_integration::harness::{loopback, within};
use h2hop_integration::routed::Routed;
use http::{Method, Response, StatusCode};

/// What the fake sidecar does with every stream.
#[derive(Clone, Copy)]
enum Answer {
    Reset(Reason),
    Status(StatusCode),
}

/// An HTTP/2 server (extended CONNECT on) that answers every stream with
/// `answer`, and counts the streams.
async fn fake_sidecar(answer: Answer) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = loopback().await.unwrap();
    let addr = listener.local_addr().unwrap();
    let streams = Arc::new(AtomicUsize::new(0));
    let seen = streams.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut builder = h2::server::Builder::new();
                builder.enable_connect_protocol();
                let Ok(mut connection) = builder.handshake::<_, bytes::Bytes>(tcp).await else {
                    return;
                };
                while let Some(Ok((_request, mut respond))) = connection.accept().await {
                    seen.fetch_add(1, Ordering::SeqCst);
                    match answer {
                        Answer::Reset(reason) => respond.send_reset(reason),
                        Answer::Status(status) => {
                            let head = Response::builder().status(status).body(()).unwrap();
                            let _ = respond.send_response(head, true);
                        }
                    }
                }
            });
        }
    });
    (addr, streams)
}

/// The fake sidecar first, the real `{B}` second, one retry.
async fn start(answer: Answer) -> (Routed, Arc<AtomicUsize>) {
    let (fake, streams) = fake_sidecar(answer).await;
    let config = format!(
        "[[cluster]]\nname = \"c\"\nendpoints = [\"{fake}\", \"{{B}}\"]\nh2c = true\n\
         retry = {{ retries = 1 }}\n\n[[route]]\ncluster = \"c\"\n"
    );
    (Routed::start(&config).await.unwrap(), streams)
}

async fn get(routed: &Routed) -> StatusCode {
    let mut sender = http1_connect(routed.front).await.unwrap();
    let get = request(Method::GET, routed.front, "/", full("")).unwrap();
    let response = sender.send_request(get).await.unwrap();
    let status = response.status();
    body_bytes(response).await.unwrap();
    status
}

/// REFUSED_STREAM: plain requests and tunnels go to the other sidecar.
#[tokio::test]
async fn a_refused_stream_is_retried_plain_or_tunnel() {
    within(async {
        let (routed, refused) = start(Answer::Reset(Reason::REFUSED_STREAM)).await;
        assert_eq!(get(&routed).await, StatusCode::OK);
        assert_eq!(refused.load(Ordering::SeqCst), 1);
        let (_ws, response) = ws_connect(routed.front, "/ws", &[]).await.unwrap();
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(refused.load(Ordering::SeqCst), 2);
        assert_eq!(routed.apps[1].requests().len(), 2);
    })
    .await;
}

/// A reset (INTERNAL_ERROR) before the head: a plain request is retried,
/// a tunnel is not (the sidecar may have passed it on).
#[tokio::test]
async fn a_reset_is_retried_for_plain_requests_only() {
    within(async {
        let (routed, reset) = start(Answer::Reset(Reason::INTERNAL_ERROR)).await;
        assert_eq!(get(&routed).await, StatusCode::OK);
        assert_eq!(routed.apps[1].requests().len(), 1);
        assert!(ws_connect(routed.front, "/ws", &[]).await.is_err());
        assert_eq!(reset.load(Ordering::SeqCst), 2);
        assert_eq!(
            routed.apps[1].requests().len(),
            1,
            "the tunnel was not retried"
        );
    })
    .await;
}

/// A tunnel the sidecar answered (503) is never retried.
#[tokio::test]
async fn an_answered_tunnel_is_not_retried() {
    within(async {
        let (routed, answered) = start(Answer::Status(StatusCode::SERVICE_UNAVAILABLE)).await;
        assert!(ws_connect(routed.front, "/ws", &[]).await.is_err());
        assert_eq!(answered.load(Ordering::SeqCst), 1);
        assert_eq!(routed.apps[1].requests().len(), 0);
    })
    .await;
}
