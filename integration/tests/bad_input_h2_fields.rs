//! Malformed HTTP/2 field blocks at the sidecar, from a front that
//! misbehaves: requests written as raw frames ([`h2hop_integration::raw_h2`];
//! the `h2` client refuses to send them), each on a connection of its own.
//!
//! - `raw_frames_well_formed_get_is_served`: the control: a well-formed GET
//!   and extended CONNECT written the same way are served, so the refusals
//!   are the sidecar's.
//! - `data_frames_above_16_kib_are_accepted`: the sidecar advertises
//!   64 KiB frames and takes a 60,000-byte DATA frame whole.
//! - `malformed_protocol_pseudo_header_never_reaches_the_app`: `:protocol`
//!   without CONNECT, twice, not a token or with CR, LF or NUL, and an
//!   extended CONNECT without `:scheme` or `:path`.
//! - `connection_specific_fields_never_reach_the_app`: `connection`,
//!   `upgrade`, `keep-alive`, `proxy-connection`, `transfer-encoding` and a
//!   `te` other than `trailers`, also on an extended CONNECT.
//! - `malformed_field_names_and_values_never_reach_the_app`: upper-case,
//!   empty or non-token names, CR, LF or NUL in values, and pseudo-header
//!   misuse.
//! - `field_value_with_surrounding_whitespace_never_reaches_the_app`: a
//!   value with leading or trailing whitespace.
//!
//! Every malformed request is refused (a PROTOCOL_ERROR reset, a GOAWAY
//! or a 400), none reaches the app, and the sidecar serves a well-formed
//! GET afterwards. These tests measure no memory, so unlike the floods
//! (`bad_input_h2_floods.rs`) they run in parallel.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;

use h2hop_integration::harness::{Pair, within};
use h2hop_integration::raw_h2::fields::{extended, get, get_with};
use h2hop_integration::raw_h2::{
    Answer, DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS, PROTOCOL_ERROR, Raw, block, frame,
};

/// A pair over h2c: the tests speak to [`Pair::sidecar`] directly.
async fn pair() -> Pair {
    Pair::builder().h2c().start().await.unwrap()
}

/// Sends `fields` as stream 1 of a fresh raw connection and returns the
/// sidecar's answer.
async fn answer_to(addr: SocketAddr, fields: &[(&str, &str)]) -> Answer {
    let mut raw = Raw::connect(addr).await.unwrap();
    raw.request(1, fields).await.unwrap();
    raw.answer(1).await
}

/// The raw encoder is sound: a well-formed GET written the same way gets
/// 200 and reaches the app, so the refusals below are the sidecar's.
#[tokio::test]
async fn raw_frames_well_formed_get_is_served() {
    within(async {
        let pair = pair().await;
        let answer = answer_to(pair.sidecar, &get_with("/echo", &[("x-fine", "yes")])).await;
        assert_eq!(answer, Answer::Status(200));
        let seen = pair.app.requests();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].headers["x-fine"], "yes");
        let answer = answer_to(pair.sidecar, &extended(&[("sec-websocket-version", "13")])).await;
        assert_eq!(answer, Answer::Status(200), "extended CONNECT control");
    })
    .await;
}

/// RFC 9113 §6.5.2: the sidecar advertises SETTINGS_MAX_FRAME_SIZE 64 KiB
/// (`relay::MAX_FRAME_SIZE`), and a DATA frame above the 16 KiB default
/// reaches the app whole instead of ending the connection with
/// FRAME_SIZE_ERROR (§4.2).
#[tokio::test]
async fn data_frames_above_16_kib_are_accepted() {
    const MAX_FRAME_SIZE: u16 = 0x5;
    // Above the 16 KiB default, within the 65,535-byte initial connection
    // window.
    const BODY: usize = 60_000;
    within(async {
        let pair = pair().await;
        let mut raw = Raw::connect(pair.sidecar).await.unwrap();
        assert_eq!(raw.settings.get(&MAX_FRAME_SIZE), Some(&(64 * 1024)));
        let length = BODY.to_string();
        let mut fields = get("/echo");
        fields[0] = (":method", "POST");
        fields.push(("content-length", &length));
        raw.send(&frame(HEADERS, END_HEADERS, 1, &block(&fields)))
            .await
            .unwrap();
        raw.send(&frame(DATA, END_STREAM, 1, &[b'x'; BODY]))
            .await
            .unwrap();
        assert_eq!(raw.answer(1).await, Answer::Status(200));
        let mut echoed = 0;
        loop {
            let frame = raw.next_frame().await.expect("the echoed body");
            assert_ne!(frame.kind, GOAWAY, "{:?}", frame.payload);
            if frame.kind == DATA && frame.stream == 1 {
                echoed += frame.payload.len();
                if frame.flags & END_STREAM != 0 {
                    break;
                }
            }
        }
        assert_eq!(echoed, BODY);
    })
    .await;
}

/// A refusal the sidecar may give a malformed request: the stream reset
/// with PROTOCOL_ERROR (RFC 9113 §8.1.1), the connection closed with an
/// error (stricter, allowed), or a 400 of its own.
fn refused(answer: &Answer) -> bool {
    matches!(
        answer,
        Answer::Reset(PROTOCOL_ERROR) | Answer::GoAway(1..) | Answer::Status(400)
    )
}

/// Sends each case on its own connection; every one is refused, the
/// sidecar still serves a well-formed GET afterwards and the app saw only
/// that GET.
async fn each_refused(cases: &[(&str, Vec<(&'static str, &'static str)>)]) {
    let pair = pair().await;
    let mut report = Vec::new();
    for (what, fields) in cases {
        let answer = answer_to(pair.sidecar, fields).await;
        eprintln!("{what}: {answer:?}");
        report.push((*what, answer));
    }
    let accepted: Vec<_> = report
        .iter()
        .filter(|(_, answer)| !refused(answer))
        .collect();
    let seen = pair.app.requests();
    assert!(
        accepted.is_empty(),
        "not refused: {accepted:?}; the app saw {seen:?}"
    );
    assert!(seen.is_empty(), "reached the app: {seen:?}");
    assert_eq!(
        answer_to(pair.sidecar, &get("/echo")).await,
        Answer::Status(200)
    );
}

/// `:protocol` only with CONNECT (RFC 8441 §4 (N6)); an extended CONNECT
/// needs `:scheme` and `:path` (RFC 8441 §4 (N7)); a `:protocol` that is
/// not a token, carries CR/LF or NUL never becomes an `Upgrade` value (S4).
#[tokio::test]
async fn malformed_protocol_pseudo_header_never_reaches_the_app() {
    within(async {
        let no_path: Vec<_> = extended(&[])
            .into_iter()
            .filter(|f| f.0 != ":path")
            .collect();
        let no_scheme: Vec<_> = extended(&[])
            .into_iter()
            .filter(|f| f.0 != ":scheme")
            .collect();
        let with_protocol = |value| {
            extended(&[])
                .into_iter()
                .map(|f| {
                    if f.0 == ":protocol" {
                        (":protocol", value)
                    } else {
                        f
                    }
                })
                .collect::<Vec<_>>()
        };
        each_refused(&[
            (
                "N6 :protocol on GET",
                vec![
                    (":method", "GET"),
                    (":protocol", "websocket"),
                    (":scheme", "http"),
                    (":authority", "app.example"),
                    (":path", "/ws"),
                ],
            ),
            (
                "N6 :protocol on POST",
                vec![
                    (":method", "POST"),
                    (":protocol", "websocket"),
                    (":scheme", "http"),
                    (":authority", "app.example"),
                    (":path", "/ws"),
                ],
            ),
            ("N7 extended CONNECT without :path", no_path),
            ("N7 extended CONNECT without :scheme", no_scheme),
            ("N7 extended CONNECT with empty :path", with_path("")),
            (
                "N6 duplicate :protocol",
                vec![
                    (":method", "CONNECT"),
                    (":protocol", "websocket"),
                    (":protocol", "websocket"),
                    (":scheme", "http"),
                    (":authority", "a"),
                    (":path", "/ws"),
                ],
            ),
            (
                "S4 :protocol not a token (space)",
                with_protocol("web socket"),
            ),
            (
                "S4 :protocol with CR LF",
                with_protocol("websocket\r\nx-injected: 1"),
            ),
            (
                "S4 :protocol with bare LF",
                with_protocol("websocket\nx-injected: 1"),
            ),
            ("S4 :protocol with NUL", with_protocol("websocket\0")),
            ("S4 :protocol list", with_protocol("websocket, h2c")),
            ("S4 empty :protocol", with_protocol("")),
        ])
        .await;
    })
    .await;
}

/// An extended CONNECT whose `:path` is `path`.
fn with_path(path: &'static str) -> Vec<(&'static str, &'static str)> {
    extended(&[])
        .into_iter()
        .map(|f| if f.0 == ":path" { (":path", path) } else { f })
        .collect()
}

/// Connection-specific fields make a message malformed, also on an
/// extended CONNECT, and are never forwarded (RFC 9113 §8.2.2 (N17, N18,
/// N20)); neither is an Upgrade smuggled beside them (S3).
#[tokio::test]
async fn connection_specific_fields_never_reach_the_app() {
    within(async {
        each_refused(&[
            (
                "N17 connection",
                get_with("/echo", &[("connection", "keep-alive")]),
            ),
            (
                "N17 connection: upgrade + upgrade: h2c (S3)",
                get_with("/echo", &[("connection", "upgrade"), ("upgrade", "h2c")]),
            ),
            (
                "N17 upgrade",
                get_with("/echo", &[("upgrade", "websocket")]),
            ),
            (
                "N17 keep-alive",
                get_with("/echo", &[("keep-alive", "timeout=5")]),
            ),
            (
                "N17 proxy-connection",
                get_with("/echo", &[("proxy-connection", "keep-alive")]),
            ),
            (
                "N17 transfer-encoding",
                get_with("/echo", &[("transfer-encoding", "chunked")]),
            ),
            ("N18 te: gzip", get_with("/echo", &[("te", "gzip")])),
            (
                "N17 connection on extended CONNECT",
                extended(&[("connection", "upgrade")]),
            ),
            (
                "N17 upgrade on extended CONNECT",
                extended(&[("upgrade", "websocket")]),
            ),
        ])
        .await;
    })
    .await;
}

/// Field names and values that HTTP/2 forbids (RFC 9113 §8.2.1 (N21,
/// N22)) and pseudo-header misuse (RFC 9113 §8.3 (N23)).
#[tokio::test]
async fn malformed_field_names_and_values_never_reach_the_app() {
    within(async {
        each_refused(&[
            (
                "N21 upper-case name",
                get_with("/echo", &[("X-Upper", "1")]),
            ),
            ("N21 space in name", get_with("/echo", &[("x bad", "1")])),
            ("N21 colon in name", get_with("/echo", &[("x:bad", "1")])),
            ("N21 empty name", get_with("/echo", &[("", "1")])),
            (
                "N22 CR LF in value",
                get_with("/echo", &[("x-evil", "a\r\nx-injected: 1")]),
            ),
            (
                "N22 bare LF in value",
                get_with("/echo", &[("x-evil", "a\nx-injected: 1")]),
            ),
            ("N22 NUL in value", get_with("/echo", &[("x-evil", "a\0b")])),
            ("N22 CR LF in :path", get("/echo\r\nx-injected: 1")),
            (
                "N22 CR LF in :authority",
                vec![
                    (":method", "GET"),
                    (":scheme", "http"),
                    (":authority", "a\r\nx-injected: 1"),
                    (":path", "/echo"),
                ],
            ),
            (
                "N23 unknown pseudo-header",
                vec![
                    (":method", "GET"),
                    (":foo", "bar"),
                    (":scheme", "http"),
                    (":authority", "a"),
                    (":path", "/echo"),
                ],
            ),
            (
                "N23 pseudo-header after a field",
                vec![
                    (":method", "GET"),
                    (":scheme", "http"),
                    (":path", "/echo"),
                    ("x-first", "1"),
                    (":authority", "a"),
                ],
            ),
            (
                "N23 duplicate :path",
                get_with("/echo", &[(":path", "/other")]),
            ),
            (
                "N23 :status in a request",
                vec![
                    (":status", "200"),
                    (":method", "GET"),
                    (":scheme", "http"),
                    (":authority", "a"),
                    (":path", "/echo"),
                ],
            ),
            (
                "N23 missing :method",
                vec![(":scheme", "http"), (":authority", "a"), (":path", "/echo")],
            ),
        ])
        .await;
    })
    .await;
}

/// A field value with leading or trailing whitespace is malformed too
/// (RFC 9113 §8.2.1 (N22)); kept apart because `h2` does not check it, so
/// this one tests what the sidecar adds.
#[tokio::test]
async fn field_value_with_surrounding_whitespace_never_reaches_the_app() {
    within(async {
        each_refused(&[
            ("N22 leading space", get_with("/echo", &[("x-ws", " a")])),
            ("N22 trailing tab", get_with("/echo", &[("x-ws", "a\t")])),
        ])
        .await;
    })
    .await;
}
