//! Bad HTTP/1.1 request heads at the front: malformed request lines and
//! targets, bad field names and values (and a missing, repeated or invalid
//! Host), and heads over `--max-header-size`.
//!
//! - `malformed_request_lines_get_400_and_reach_nobody`: a request line
//!   that is not `method SP target SP HTTP/1.x`, an unusable target or a
//!   version hyper does not speak gets 400, and `OPTIONS *` is no 5xx.
//! - `bad_field_names_and_values_get_400_and_reach_nobody`: whitespace
//!   before the colon, obs-fold, bare CR, NUL, DEL and non-token bytes, and
//!   a bad Host get 400; bare LF line ends, where accepted, deliver exactly
//!   the fields sent.
//! - `oversized_heads_get_431`: one huge field, too many fields or a huge
//!   target get 431 and a close.
//!
//! The cases are written byte by byte ([`h2hop_integration::bad_input_h1`]);
//! none may reach the app, and the front serves a good request afterwards.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use h2hop_integration::bad_input_h1::cases::{field_cases, oversized_cases, request_line_cases};
use h2hop_integration::bad_input_h1::{
    assert_serves_and_nothing_else_arrived, body_text, pair, run_refusals, send,
};
use h2hop_integration::harness::within;

/// RFC 9112 §3, §3.2: the [`request_line_cases`] get 400, reach nobody, and `OPTIONS *` is no 5xx.
#[tokio::test]
async fn malformed_request_lines_get_400_and_reach_nobody() {
    within(async {
        let pair = pair().await;
        let before = pair.app.requests().len();
        let mut wrong = run_refusals(&pair, &request_line_cases()).await;

        // RFC 9112 §3.2.4: `OPTIONS *` is legitimate; whatever the front
        // does with it, it is not a failure of the app or the sidecar.
        let head = "OPTIONS * HTTP/1.1\r\nHost: app.test\r\n\r\n";
        let mut raw = send(pair.front, "OPTIONS *", head.as_bytes())
            .await
            .expect("OPTIONS * is answered");
        let body = body_text("OPTIONS *", &mut raw).await;
        if raw.status >= 500 {
            wrong.push(format!("OPTIONS *: got {} {body:?}", raw.status));
        }
        let after = pair.app.requests();
        if let Some(options) = after[before..].iter().find(|r| r.method == "OPTIONS")
            && options.uri != "*"
        {
            wrong.push(format!("OPTIONS *: the app saw target {}", options.uri));
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
        assert_serves_and_nothing_else_arrived(&pair, pair.app.requests().len()).await;
    })
    .await;
}

/// RFC 9112 §5.1, §5.2, §2.2 (N50), §3.2 (N51), S4: the [`field_cases`]
/// get 400 and reach nobody; bare LF line ends, where accepted, deliver
/// exactly the fields sent.
#[tokio::test]
async fn bad_field_names_and_values_get_400_and_reach_nobody() {
    within(async {
        let pair = pair().await;
        let wrong = run_refusals(&pair, &field_cases()).await;
        assert!(wrong.is_empty(), "{wrong:#?}");

        // RFC 9112 §2.2: a recipient may take a bare LF as a line end
        // (hyper does); then the app gets exactly the fields sent.
        let head = "GET /bare-lf HTTP/1.1\nHost: app.test\nX-A: b\n\n";
        let before = pair.app.requests().len();
        let raw = send(pair.front, "bare LF line ends", head.as_bytes()).await;
        let status = raw.as_ref().map(|raw| raw.status);
        assert!(
            matches!(status, Some(200 | 400)),
            "bare LF line ends: {status:?}"
        );
        if status == Some(200) {
            let requests = pair.app.requests();
            let seen = &requests[before];
            assert_eq!(seen.uri, "/bare-lf");
            assert_eq!(seen.headers["x-a"], "b");
            // Besides the fields the front adds to every request: the
            // client's address, scheme and request id.
            let front_adds = ["x-forwarded-for", "x-forwarded-proto", "x-request-id"];
            let sent = seen
                .headers
                .keys()
                .filter(|name| !front_adds.contains(&name.as_str()));
            assert_eq!(sent.count(), 2, "{:?}", seen.headers);
        }
        assert_serves_and_nothing_else_arrived(&pair, pair.app.requests().len()).await;
    })
    .await;
}

/// RFC 6585 §5: the [`oversized_cases`] get 431 and reach nobody; a
/// normal request still goes through.
#[tokio::test]
async fn oversized_heads_get_431() {
    within(async {
        let pair = pair().await;
        let before = pair.app.requests().len();
        let wrong = run_refusals(&pair, &oversized_cases()).await;
        assert!(wrong.is_empty(), "{wrong:#?}");
        assert_serves_and_nothing_else_arrived(&pair, before).await;
    })
    .await;
}
