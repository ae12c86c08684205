//! Client → front → sidecar → h2c app (`--app-protocol h2c`), the client
//! speaking HTTP/2 over TLS to the front as a gRPC client or a browser
//! would: trailers both ways (RFC 9113 §8.1) and an RFC 8441 WebSocket
//! whose extended CONNECT reaches the app as one.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use bytes::Bytes;
use h2::RecvStream;
use h2hop_integration::h2_client::{extended_connect, h2_connect};
use h2hop_integration::h2c_app::{H2cApp, H2cAppOptions};
use h2hop_integration::harness::{Pair, within};
use h2hop_sidecar::AppProtocol;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};

async fn pair_toward(app: &H2cApp) -> Pair {
    Pair::builder()
        .h2c()
        .client_tls()
        .app_at(app.addr)
        .sidecar_config(|config| config.app.protocol = AppProtocol::H2c)
        .start()
        .await
        .unwrap()
}

async fn read_to_end(recv: &mut RecvStream) -> Vec<u8> {
    let mut got = Vec::new();
    while let Some(chunk) = recv.data().await {
        let chunk = chunk.unwrap();
        recv.flow_control().release_capacity(chunk.len()).unwrap();
        got.extend_from_slice(&chunk);
    }
    got
}

/// A gRPC-shaped call: `te: trailers`, a body, request trailers; the
/// app's trailers come back to the client through both hops.
#[tokio::test]
async fn trailers_cross_both_hops_both_ways() {
    within(async {
        let app = H2cApp::spawn(H2cAppOptions::default()).await.unwrap();
        let pair = pair_toward(&app).await;
        let client = h2_connect(&pair).await.unwrap();
        let request = Request::builder()
            .method(Method::POST)
            .uri("https://localhost/echo")
            .header("te", "trailers")
            .header("content-type", "application/grpc")
            .body(())
            .unwrap();
        let mut ready = client.ready().await.unwrap();
        let (response, mut upload) = ready.send_request(request, false).unwrap();
        upload
            .send_data(Bytes::from_static(b"hello app"), false)
            .unwrap();
        let mut trailers = HeaderMap::new();
        trailers.insert("x-client-trailer", HeaderValue::from_static("yes"));
        upload.send_trailers(trailers).unwrap();
        let response = response.await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut recv = response.into_body();
        assert_eq!(read_to_end(&mut recv).await, b"hello app");
        let answer = recv.trailers().await.unwrap().expect("response trailers");
        assert_eq!(answer["grpc-status"], "0");
        assert_eq!(answer["x-echo-bytes"], "9");
        let seen = app.seen();
        assert!(
            seen.trailers
                .iter()
                .any(|(path, fields)| path == "/echo" && fields["x-client-trailer"] == "yes"),
            "{seen:?}"
        );
    })
    .await;
}

/// A browser's RFC 8441 WebSocket reaches the app as an extended CONNECT
/// and its bytes echo.
#[tokio::test]
async fn an_rfc8441_websocket_reaches_the_app_as_extended_connect() {
    within(async {
        let options = H2cAppOptions {
            extended_connect: true,
        };
        let app = H2cApp::spawn(options).await.unwrap();
        let pair = pair_toward(&app).await;
        let client = h2_connect(&pair).await.unwrap();
        let mut ready = client.ready().await.unwrap();
        let request = extended_connect("websocket", "/chat").unwrap();
        let (response, mut upload) = ready.send_request(request, false).unwrap();
        let response = response.await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut recv = response.into_body();
        upload
            .send_data(Bytes::from_static(b"frame"), false)
            .unwrap();
        let mut got = Vec::new();
        while got.len() < 5 {
            let chunk = recv.data().await.unwrap().unwrap();
            recv.flow_control().release_capacity(chunk.len()).unwrap();
            got.extend_from_slice(&chunk);
        }
        assert_eq!(got, b"frame");
        upload.send_data(Bytes::new(), true).unwrap();
        assert_eq!(read_to_end(&mut recv).await, b"");
        assert_eq!(app.seen().protocols, ["websocket"]);
    })
    .await;
}
