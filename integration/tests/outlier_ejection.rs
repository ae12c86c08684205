//! Passive outlier ejection end to end (front → two sidecars → two apps):
//! a sidecar whose app answers 500 three times in a row gets no requests
//! for the ejection time (1 s, then 2 s), then gets them again; with both
//! failing, only one of the two (the 50% share) is ejected.
//!
//! With both sidecars idle the front takes the first one first, so
//! requests sent one at a time go to `{A}` unless it is ejected.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use h2hop_integration::client::{body_bytes, full, http1_connect, request};
use h2hop_integration::harness::within;
use h2hop_integration::routed::Routed;
use http::{Method, StatusCode};

/// Two sidecars, ejected after 3 failures in a row for 1 s times the
/// ejection count; no retries.
const EJECTING: &str = r#"
[[cluster]]
name = "c"
endpoints = ["{A}", "{B}"]
h2c = true
outlier_detection = { consecutive_failures = 3, base_ejection_time = "1s", max_ejection_time = "10s", max_ejection_percent = 50 }

[[route]]
cluster = "c"
"#;

/// Sends `count` GETs one after another; returns their statuses.
async fn send(routed: &Routed, count: usize) -> Vec<StatusCode> {
    let mut sender = http1_connect(routed.front).await.unwrap();
    let mut statuses = Vec::new();
    for _ in 0..count {
        let get = request(Method::GET, routed.front, "/", full("")).unwrap();
        let response = sender.send_request(get).await.unwrap();
        statuses.push(response.status());
        body_bytes(response).await.unwrap();
    }
    statuses
}

fn seen(routed: &Routed) -> [usize; 2] {
    [0, 1].map(|i| routed.apps[i].requests().len())
}

/// App 1 answers 500: after 3 of them its sidecar rests 1 s, comes back,
/// fails 3 more times and rests 2 s.
#[tokio::test]
async fn a_failing_sidecar_is_ejected_for_a_growing_time() {
    within(async {
        let routed = Routed::start(EJECTING).await.unwrap();
        routed.apps[0].answer_plain_with(Some(StatusCode::INTERNAL_SERVER_ERROR));
        let first = send(&routed, 3).await;
        assert_eq!(first, vec![StatusCode::INTERNAL_SERVER_ERROR; 3]);
        assert_eq!(seen(&routed), [3, 0]);
        // Ejected: everything goes to app 2.
        assert_eq!(send(&routed, 5).await, vec![StatusCode::OK; 5]);
        assert_eq!(seen(&routed), [3, 5]);
        // Back after 1 s: three more failures eject it again, for 2 s.
        tokio::time::sleep(Duration::from_millis(1300)).await;
        let again = send(&routed, 3).await;
        assert_eq!(again, vec![StatusCode::INTERNAL_SERVER_ERROR; 3]);
        assert_eq!(seen(&routed), [6, 5]);
        tokio::time::sleep(Duration::from_millis(1300)).await;
        assert_eq!(send(&routed, 2).await, vec![StatusCode::OK; 2]);
        assert_eq!(seen(&routed), [6, 7], "still ejected 1.3 s into 2 s");
        tokio::time::sleep(Duration::from_millis(1000)).await;
        send(&routed, 1).await;
        assert_eq!(seen(&routed), [7, 7], "back after 2 s");
    })
    .await;
}

/// Both apps answer 500: one sidecar is ejected, the other keeps taking
/// every request (its app's 500s reach the client; the front never runs
/// out of sidecars).
#[tokio::test]
async fn with_both_failing_only_the_share_is_ejected() {
    within(async {
        let routed = Routed::start(EJECTING).await.unwrap();
        for app in &routed.apps {
            app.answer_plain_with(Some(StatusCode::INTERNAL_SERVER_ERROR));
        }
        let statuses = send(&routed, 13).await;
        assert_eq!(statuses, vec![StatusCode::INTERNAL_SERVER_ERROR; 13]);
        assert_eq!(seen(&routed), [3, 10]);
    })
    .await;
}
