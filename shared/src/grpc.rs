//! gRPC over HTTP/2 details a hop must honour: the `grpc-timeout` request
//! field ([`timeout`]) and the trailers-only answer a hop gives when that
//! deadline runs out ([`deadline_exceeded`]).
//!
//! From the gRPC over HTTP/2 protocol description, "Requests" (Timeout) and
//! "Responses" (Trailers-Only).

use std::time::Duration;

use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};

/// The request field that carries the client's deadline.
pub const TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// The trailer that carries a call's status code.
pub const STATUS: HeaderName = HeaderName::from_static("grpc-status");

/// The trailer that carries a call's status message.
pub const MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// gRPC status code 4, DEADLINE_EXCEEDED.
pub const DEADLINE_EXCEEDED: u16 = 4;

/// Most digits a `grpc-timeout` value may have ("TimeoutValue → {positive
/// integer as ASCII string of at most 8 digits}").
const MAX_DIGITS: usize = 8;

/// The deadline a request's `grpc-timeout` field asks for: up to eight
/// digits then a unit (`H` hours, `M` minutes, `S` seconds, `m` millis,
/// `u` micros, `n` nanos). A missing, repeated or malformed field gives
/// `None`: it is ignored, as if the client had set no deadline.
pub fn timeout(headers: &HeaderMap) -> Option<Duration> {
    let mut values = headers.get_all(TIMEOUT).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    parse_timeout(value.as_bytes())
}

/// One `grpc-timeout` value; `None` unless well formed.
pub fn parse_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > MAX_DIGITS || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let amount: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(amount * 3600),
        b'M' => Duration::from_secs(amount * 60),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// A request is gRPC when its `content-type` is `application/grpc` or
/// starts with `application/grpc+` or `application/grpc;`.
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers.get(CONTENT_TYPE).is_some_and(|value| {
        let value = value.as_bytes();
        value == b"application/grpc"
            || value.starts_with(b"application/grpc+")
            || value.starts_with(b"application/grpc;")
    })
}

/// The trailers-only answer ("Responses": HEADERS with END_STREAM) for a
/// call whose deadline ran out: `200`, `content-type: application/grpc`,
/// `grpc-status: 4`, and a message naming `who` answered.
pub fn deadline_exceeded(message: &'static str) -> Response<()> {
    let mut response = Response::new(());
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(STATUS, HeaderValue::from(DEADLINE_EXCEEDED));
    headers.insert(MESSAGE, HeaderValue::from_static(message));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_is_read() {
        let cases: [(&[u8], Duration); 6] = [
            (b"2H", Duration::from_secs(7200)),
            (b"3M", Duration::from_secs(180)),
            (b"10S", Duration::from_secs(10)),
            (b"100m", Duration::from_millis(100)),
            (b"250u", Duration::from_micros(250)),
            (b"99999999n", Duration::from_nanos(99_999_999)),
        ];
        for (value, want) in cases {
            assert_eq!(parse_timeout(value), Some(want), "{value:?}");
        }
    }

    #[test]
    fn eight_digits_at_most() {
        assert_eq!(
            parse_timeout(b"12345678S"),
            Some(Duration::from_secs(12_345_678))
        );
        assert_eq!(parse_timeout(b"123456789S"), None);
    }

    #[test]
    fn malformed_values_are_ignored() {
        for value in [
            &b""[..],
            b"S",
            b"10",
            b"10s",
            b"10x",
            b"-1S",
            b"1 S",
            b" 1S",
            b"1.5S",
        ] {
            assert_eq!(parse_timeout(value), None, "{value:?}");
        }
    }

    #[test]
    fn a_repeated_field_is_ignored() {
        let mut headers = HeaderMap::new();
        assert_eq!(timeout(&headers), None);
        headers.append(TIMEOUT, HeaderValue::from_static("1S"));
        assert_eq!(timeout(&headers), Some(Duration::from_secs(1)));
        headers.append(TIMEOUT, HeaderValue::from_static("2S"));
        assert_eq!(timeout(&headers), None);
    }

    #[test]
    fn grpc_content_types_are_recognised() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(value));
            is_grpc(&headers)
        };
        assert!(with("application/grpc"));
        assert!(with("application/grpc+proto"));
        assert!(!with("application/grpcx"));
        assert!(!with("application/json"));
        assert!(!is_grpc(&HeaderMap::new()));
    }

    #[test]
    fn deadline_answer_is_trailers_only_shape() {
        let answer = deadline_exceeded("deadline exceeded at the sidecar");
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(answer.headers()[CONTENT_TYPE], "application/grpc");
        assert_eq!(answer.headers()[STATUS], "4");
    }
}
