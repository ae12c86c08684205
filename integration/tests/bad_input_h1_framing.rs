//! Bad HTTP/1.1 message framing at the front: Content-Length and
//! Transfer-Encoding that disagree or cannot be read, and invalid chunking,
//! each with a request hidden behind the body that must never reach the app.
//!
//! - `framing_conflicts_get_400_and_close`: Content-Length values that
//!   disagree or are not one decimal number, a Transfer-Encoding whose
//!   final coding is not chunked, and Transfer-Encoding in HTTP/1.0 get 400
//!   and a close.
//! - `content_length_with_transfer_encoding_never_smuggles_a_request`:
//!   with both (CL.TE, TE.CL) the front refuses, or forwards only the
//!   chunked body without the stale Content-Length and closes; two equal
//!   Content-Length lines are one.
//! - `invalid_chunking_gets_400`: a bad chunk size, chunk data without
//!   CRLF or bare LF in the chunk framing get 400 and a close (or a close),
//!   never a 2xx and never a 502 that blames the sidecar.
//!
//! The cases are written byte by byte ([`h2hop_integration::bad_input_h1`]);
//! the front serves a good request afterwards.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use h2hop_integration::app::Recorded;
use h2hop_integration::bad_input_h1::cases::{SMUGGLED, chunk_cases, framing_cases};
use h2hop_integration::bad_input_h1::{
    Expect, assert_serves_and_nothing_else_arrived, body_text, closes, pair, run_refusals, send,
};
use h2hop_integration::harness::within;

/// RFC 9112 §6.1, §6.3 (N49): the [`framing_cases`] get 400 and a close,
/// and the request hidden behind each never reaches the app.
#[tokio::test]
async fn framing_conflicts_get_400_and_close() {
    within(async {
        let pair = pair().await;
        let before = pair.app.requests().len();
        let wrong = run_refusals(&pair, &framing_cases()).await;
        assert!(wrong.is_empty(), "{wrong:#?}");
        assert_serves_and_nothing_else_arrived(&pair, before).await;
    })
    .await;
}

/// The app's record of the request carrying `?case=NAME`.
fn recorded<'a>(requests: &'a [Recorded], name: &str) -> Option<&'a Recorded> {
    requests
        .iter()
        .find(|r| r.uri.query() == Some(&format!("case={name}")))
}

/// RFC 9112 §6.1, §6.3 (N48): with both Content-Length and
/// Transfer-Encoding: chunked (CL.TE, TE.CL), Transfer-Encoding wins; the
/// front may refuse with 400, or forward only the chunked body, without
/// the stale Content-Length, and close after answering. Either way the
/// request behind the body (or inside it) never reaches the app as a
/// request. Two equal Content-Length lines are one (RFC 9110 §8.6).
#[tokio::test]
async fn content_length_with_transfer_encoding_never_smuggles_a_request() {
    within(async {
        let pair = pair().await;
        let inner = format!("{:x}\r\n{SMUGGLED}\r\n0\r\n\r\n", SMUGGLED.len());
        let cases = [
            // CL covers "0\r\n\r\n": a CL-framing hop would read the rest.
            (
                "cl-te",
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                format!("0\r\n\r\n{SMUGGLED}"),
                "",
            ),
            (
                "cl-te-body",
                "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
                format!("5\r\nhello\r\n0\r\n\r\n{SMUGGLED}"),
                "hello",
            ),
            // CL covers "2a\r\n": a CL-framing hop would see the request.
            (
                "te-cl",
                "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
                inner,
                SMUGGLED,
            ),
        ];
        for (name, fields, body, decoded) in &cases {
            let request =
                format!("POST /echo?case={name} HTTP/1.1\r\nHost: app.test\r\n{fields}\r\n{body}");
            let mut raw = send(pair.front, name, request.as_bytes())
                .await
                .unwrap_or_else(|| panic!("{name}: closed without an answer"));
            if raw.status == 400 {
                assert!(closes(&mut raw).await, "{name}: open after 400");
                continue;
            }
            assert_eq!(raw.status, 200, "{name}");
            assert_eq!(body_text(name, &mut raw).await, *decoded, "{name}");
            assert!(closes(&mut raw).await, "{name}: kept alive after CL+TE");
            let requests = pair.app.requests();
            let seen = recorded(&requests, name).expect("forwarded");
            let length = seen.headers.get("content-length");
            assert!(
                length.is_none_or(|length| *length == decoded.len().to_string().as_str()),
                "{name}: stale Content-Length reached the app: {:?}",
                seen.headers
            );
        }

        let request = "POST /echo?case=cl-twice HTTP/1.1\r\nHost: app.test\r\n\
                       Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello";
        let mut raw = send(pair.front, "cl-twice", request.as_bytes())
            .await
            .unwrap();
        assert!(matches!(raw.status, 200 | 400), "cl-twice: {}", raw.status);
        if raw.status == 200 {
            assert_eq!(body_text("cl-twice", &mut raw).await, "hello");
            let requests = pair.app.requests();
            let seen = recorded(&requests, "cl-twice").expect("forwarded");
            let lengths: Vec<_> = seen.headers.get_all("content-length").iter().collect();
            assert_eq!(lengths, ["5"], "cl-twice");
        }

        let before = pair.app.requests().len();
        assert_serves_and_nothing_else_arrived(&pair, before).await;
        let smuggled: Vec<_> = pair
            .app
            .requests()
            .into_iter()
            .filter(|r| r.uri.path() == "/smuggled")
            .collect();
        assert!(smuggled.is_empty(), "smuggled: {smuggled:?}");
    })
    .await;
}

/// RFC 9112 §7.1: the [`chunk_cases`] get 400 and a close (or a close),
/// never a 2xx and never a 502 that blames the sidecar for the client's
/// bytes.
#[tokio::test]
async fn invalid_chunking_gets_400() {
    within(async {
        let pair = pair().await;
        let mut wrong = Vec::new();
        for case in chunk_cases() {
            let answer = send(pair.front, case.name, &case.bytes).await;
            let Some(mut raw) = answer else {
                // A close without an answer is acceptable here too.
                continue;
            };
            let status = raw.status;
            let body = body_text(case.name, &mut raw).await;
            let closed = closes(&mut raw).await;
            if case.expect != Expect::StatusThenClose(status) || !closed {
                wrong.push(format!(
                    "{}: expected {:?}, got {status} {body:?} (then closed: {closed})",
                    case.name, case.expect
                ));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
        // The head may cross the hop before the bad chunk is parsed (and
        // even reach the app a moment later): only the answer is checked
        // here, and that the front still serves.
        let head = "GET /still-serving HTTP/1.1\r\nHost: app.test\r\n\r\n";
        let raw = send(pair.front, "good request", head.as_bytes()).await;
        assert_eq!(raw.map(|raw| raw.status), Some(200));
    })
    .await;
}
