//! A sidecar that vanishes without a FIN (its host lost power, a route was
//! dropped) is found by the front's HTTP/2 PING keep-alive: the tunnels on
//! that connection end at the client instead of hanging.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use h2hop_integration::client::ws_connect;
use h2hop_integration::harness::{Pair, within};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_silent_sidecar_is_found_by_ping_and_its_tunnels_end() {
    within(async {
        let pair = Pair::builder()
            .h2c()
            .count_upstream_connections()
            .front_config(|config| {
                config.upstream.keepalive_interval = Duration::from_millis(200);
                config.upstream.keepalive_timeout = Duration::from_millis(300);
            })
            .start()
            .await
            .unwrap();
        let (mut ws, _) = ws_connect(pair.front, "/ws", &[]).await.unwrap();
        // Several keep-alive rounds pass while the sidecar answers: the
        // pauses below are the time under test (600 ms, three PING
        // intervals, past the 300 ms PING timeout), not a wait for an event.
        for round in 0..4 {
            let text = format!("round {round}");
            ws.send(Message::text(text.clone())).await.unwrap();
            assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(text));
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        pair.freeze_upstream();
        // Nothing comes back from a frozen sidecar; the PING timeout ends
        // the tunnel (the default tunnel idle timeout is an hour).
        let _ = ws.send(Message::text("into the void")).await;
        match ws.next().await {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => {}
            Some(Ok(other)) => panic!("unexpected {other:?} from a frozen sidecar"),
        }
    })
    .await;
}
