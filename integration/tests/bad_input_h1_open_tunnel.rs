//! Bad HTTP/1.1 input beside an open tunnel: every case of the
//! `bad_input_h1` tables at once, each on its own connection, while a
//! WebSocket echoes through the pair.
//!
//! - `bad_input_does_not_disturb_an_open_tunnel`: no case gets a 2xx or
//!   hangs, the WebSocket still echoes afterwards, and the front serves a
//!   good request.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use h2hop_integration::bad_input_h1::cases::{
    chunk_cases, field_cases, framing_cases, handshake_cases, oversized_cases, request_line_cases,
};
use h2hop_integration::bad_input_h1::{Case, body_text, pair, send};
use h2hop_integration::client;
use h2hop_integration::harness::within;
use tokio_tungstenite::tungstenite::Message;

/// Every bad input of the `bad_input_h1` tables at once, each on its own connection, while
/// a WebSocket echoes through the pair: none gets a 2xx or hangs, the
/// WebSocket still echoes afterwards, and the front serves a good request.
#[tokio::test]
async fn bad_input_does_not_disturb_an_open_tunnel() {
    within(async {
        let pair = pair().await;
        let (mut ws, _) = client::ws_connect(pair.front, "/ws", &[]).await.unwrap();
        let echoed = client::echo_roundtrip(&mut ws, Message::text("before"))
            .await
            .unwrap();
        assert_eq!(echoed, Message::text("before"));

        let cases: Vec<Case> = [
            request_line_cases(),
            field_cases(),
            framing_cases(),
            chunk_cases(),
            oversized_cases(),
            handshake_cases(),
        ]
        .into_iter()
        .flatten()
        .collect();
        let answers = futures_util::future::join_all(
            cases
                .iter()
                .map(|case| send(pair.front, case.name, &case.bytes)),
        )
        .await;
        // Checked last, so that a wrong answer does not hide whether the
        // tunnel survived.
        let answered_2xx: Vec<String> = cases
            .iter()
            .zip(answers)
            .filter_map(|(case, answer)| {
                let status = answer.map(|raw| raw.status)?;
                (200..300)
                    .contains(&status)
                    .then(|| format!("{}: {status}", case.name))
            })
            .collect();

        let echoed = client::echo_roundtrip(&mut ws, Message::text("after"))
            .await
            .unwrap();
        assert_eq!(echoed, Message::text("after"));
        let (status, body) = {
            let head = "GET /still-serving HTTP/1.1\r\nHost: app.test\r\n\r\n";
            let mut raw = send(pair.front, "good request", head.as_bytes())
                .await
                .unwrap();
            (raw.status, body_text("good request", &mut raw).await)
        };
        assert_eq!(status, 200);
        assert_eq!(body, "hello from app");
        client::close_handshake(&mut ws, 1000, "done")
            .await
            .unwrap();
        assert!(answered_2xx.is_empty(), "{answered_2xx:#?}");
    })
    .await;
}
