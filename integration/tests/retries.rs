//! Retries of plain requests end to end (front → two sidecars → two apps):
//! a 503 or a dead sidecar is retried on the other one; a body is replayed
//! intact when small and of known length, and not retried otherwise; under
//! a total outage the retry budget caps the retries the apps see.
//!
//! With both sidecars idle the front takes the first one first, so a
//! request sent alone always tries `{A}` first.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use bytes::Bytes;
use h2hop_integration::client::{body_bytes, channel_body, full, http1_connect, request};
use h2hop_integration::harness::within;
use h2hop_integration::routed::Routed;
use http::{Method, StatusCode};

/// Two sidecars in one cluster, retries on (one retry, 503 among the
/// default conditions), bodies up to 1 KiB replayed, the default budget
/// (20% of requests in flight, at least 3).
const RETRYING: &str = r#"
[[cluster]]
name = "c"
endpoints = ["{A}", "{B}"]
h2c = true
retry = { retries = 1, max_body = 1024 }

[[route]]
cluster = "c"
"#;

/// Sends one request; returns status and body.
async fn send(routed: &Routed, method: Method, path: &str, body: Bytes) -> (StatusCode, Bytes) {
    let mut sender = http1_connect(routed.front).await.unwrap();
    let request = request(method, routed.front, path, full(body)).unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    (status, body_bytes(response).await.unwrap())
}

/// App 1 answers 503 to everything: every GET still gets app 2's 200,
/// and app 1 sees each request at most once.
#[tokio::test]
async fn a_503_is_retried_on_the_other_sidecar() {
    within(async {
        let routed = Routed::start(RETRYING).await.unwrap();
        routed.apps[0].answer_plain_with(Some(StatusCode::SERVICE_UNAVAILABLE));
        for _ in 0..10 {
            let (status, body) = send(&routed, Method::GET, "/flaky", Bytes::new()).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body, "hello from app");
        }
        let first = routed.apps[0].requests().len();
        assert!((1..=10).contains(&first), "app 1 saw {first}");
        assert_eq!(routed.apps[1].requests().len(), 10);
    })
    .await;
}

/// A small POST body reaches app 2 intact on the retry; one larger than
/// `max_body`, or of unknown length (chunked), goes out once and its 503
/// is relayed.
#[tokio::test]
async fn small_bodies_are_replayed_and_others_are_not_retried() {
    within(async {
        let routed = Routed::start(RETRYING).await.unwrap();
        routed.apps[0].answer_plain_with(Some(StatusCode::SERVICE_UNAVAILABLE));
        let small: Bytes = (0..1000u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>()
            .into();
        let (status, echoed) = send(&routed, Method::POST, "/echo", small.clone()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(echoed, small);
        assert_eq!(routed.apps[0].requests().len(), 1);
        assert_eq!(routed.apps[1].requests().len(), 1);

        let large = Bytes::from(vec![b'x'; 2000]);
        let (status, _) = send(&routed, Method::POST, "/echo", large).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

        let mut sender = http1_connect(routed.front).await.unwrap();
        let (chunks, body) = channel_body(1);
        let post = request(Method::POST, routed.front, "/echo", body).unwrap();
        let feed = tokio::spawn(async move {
            chunks.send(Bytes::from_static(b"chunked")).await.unwrap();
        });
        let response = sender.send_request(post).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        feed.await.unwrap();
        assert_eq!(routed.apps[0].requests().len(), 3);
        assert_eq!(routed.apps[1].requests().len(), 1, "nothing more retried");
    })
    .await;
}

/// Sidecar 1's port is closed: every request is answered by app 2.
#[tokio::test]
async fn a_dead_sidecar_is_passed_over() {
    within(async {
        let config = RETRYING.replace("{A}", "{DOWN}");
        let routed = Routed::start(&config).await.unwrap();
        for _ in 0..5 {
            let (status, _) = send(&routed, Method::GET, "/", Bytes::new()).await;
            assert_eq!(status, StatusCode::OK);
        }
        assert_eq!(routed.apps[1].requests().len(), 5);
    })
    .await;
}

/// Both apps answer 503 after a second. 50 requests at once: each would
/// be retried once without a budget (100 at the apps); the budget (20% of
/// 50 in flight, at least 3) lets at most 10 retries out while the first
/// tries wait, and every client gets the 503.
#[tokio::test]
async fn under_a_total_outage_the_budget_caps_retries() {
    within(async {
        let routed = Routed::start(RETRYING).await.unwrap();
        for app in &routed.apps {
            app.answer_plain_with(Some(StatusCode::SERVICE_UNAVAILABLE));
        }
        let mut senders = Vec::new();
        for _ in 0..50 {
            senders.push(http1_connect(routed.front).await.unwrap());
        }
        let front = routed.front;
        let tasks: Vec<_> = senders
            .into_iter()
            .map(|mut sender| {
                tokio::spawn(async move {
                    let get = request(Method::GET, front, "/delay/1000", full("")).unwrap();
                    sender.send_request(get).await.unwrap().status()
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), StatusCode::SERVICE_UNAVAILABLE);
        }
        let seen: usize = routed.apps.iter().map(|app| app.requests().len()).sum();
        let retries = seen - 50;
        assert!(
            (3..=10).contains(&retries),
            "{retries} retries reached the apps"
        );
    })
    .await;
}

/// Each try waits at most `per_try_timeout` for the head: both apps
/// answer only after a second, so each of the two tries is cut after
/// 300 ms (its stream reset) and the client gets 504, well before the
/// apps' answers.
#[tokio::test]
async fn a_slow_try_is_cut_by_the_per_try_timeout_and_retried() {
    within(async {
        let config = RETRYING.replace(
            "retry = { retries = 1, max_body = 1024 }",
            "retry = { retries = 1, on = [\"per-try-timeout\"], per_try_timeout = \"300ms\" }",
        );
        let routed = Routed::start(&config).await.unwrap();
        let (status, _) = send(&routed, Method::GET, "/delay/1000", Bytes::new()).await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(routed.apps[0].requests().len(), 1);
        assert_eq!(
            routed.apps[1].requests().len(),
            1,
            "the retry went to the other"
        );
    })
    .await;
}

/// A replayed body larger than the stream's first window (64 KiB - 1)
/// still reaches app 2 whole: it is sent as the window opens.
#[tokio::test]
async fn a_body_larger_than_the_window_is_replayed_intact() {
    within(async {
        let config = RETRYING.replace("max_body = 1024", "max_body = 262144");
        let routed = Routed::start(&config).await.unwrap();
        routed.apps[0].answer_plain_with(Some(StatusCode::SERVICE_UNAVAILABLE));
        let body: Bytes = (0..200_000u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>()
            .into();
        let (status, echoed) = send(&routed, Method::POST, "/echo", body.clone()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(echoed.len(), body.len());
        assert!(echoed == body, "the echoed body differs");
        assert_eq!(routed.apps[0].requests().len(), 1);
    })
    .await;
}
