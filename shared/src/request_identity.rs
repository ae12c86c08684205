//! What names one request across front, sidecar and app: its
//! `X-Request-Id` and its W3C Trace Context (`traceparent`, `tracestate`).
//!
//! The front calls [`new_request_id`], [`is_sane_request_id`] and
//! [`TraceParent`] when it settles a request's fields; the sidecar reads
//! what arrived with [`RequestIdentity::from_headers`]. Both hand a
//! [`RequestIdentity`] to their access [`crate::access::Entry`], whose line
//! then carries `client`, `request_id` and `trace_id`.

use std::fmt::{self, Write as _};
use std::net::IpAddr;

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

/// `X-Request-Id`.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `traceparent` (W3C Trace Context §3.2).
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `tracestate` (W3C Trace Context §3.3).
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The client address the front settled on, carried to the sidecar in a
/// field of h2hop's own (`h2hop-…` fields never come from a client, and
/// never reach the app) when it is not the rightmost `X-Forwarded-For`
/// entry: the sidecar's PROXY header toward the app names it.
pub const CLIENT_FIELD: HeaderName = HeaderName::from_static("h2hop-client");

/// The settled client address, as a request extension: the front's
/// dispatch sets it, and [`crate::translate::request::h1_to_h2`] writes it
/// as [`CLIENT_FIELD`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// Longest incoming request id kept from a trusted hop, in bytes.
pub const MAX_REQUEST_ID_LEN: usize = 200;

/// A fresh request id: a random UUID (RFC 9562 §5.4, version 4) in its
/// lowercase hyphenated form, `3f2c…-…`.
pub fn new_request_id() -> HeaderValue {
    let mut bytes = random_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    // By hand, not through `write!`: this runs for every request.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = [b'-'; 36];
    let mut at = 0;
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            at += 1;
        }
        text[at] = HEX[usize::from(byte >> 4)];
        text[at + 1] = HEX[usize::from(byte & 0x0f)];
        at += 2;
    }
    // Hex digits and hyphens are always a valid field value.
    let value = HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static("-"));
    never_indexed(value)
}

/// 16 random bytes from the thread's generator, drawn as one `u128`: as
/// `[u8; 16]`, `rand` draws a `u32` for each byte (callgrind: a request id
/// at the front 833 → 587 instructions inclusive).
fn random_bytes() -> [u8; 16] {
    rand::random::<u128>().to_le_bytes()
}

/// `ip` as a field value (`192.0.2.7`, `2001:db8::7`). IPv4, the common
/// case, is written by hand: through `Display` it cost about 1,300
/// instructions per request at the front (callgrind), twice per request.
pub fn address_value(ip: IpAddr) -> HeaderValue {
    let text = match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let mut text = String::with_capacity(15);
            let mut digits = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text.push('.');
                }
                text.push_str(digits.format(octet));
            }
            text
        }
        IpAddr::V6(v6) => v6.to_string(),
    };
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// Marks a value unique to one request (a request id, a `traceparent`) as
/// never to be indexed by HPACK (RFC 7541 §6.2.3, §7.1.3): indexed, each
/// one would be inserted into the sidecar connection's dynamic table and
/// evict the fields that do repeat, and the encoder compared every new one
/// with the dozens already there (callgrind: about 5,500 instructions per
/// request at the front).
pub fn never_indexed(mut value: HeaderValue) -> HeaderValue {
    value.set_sensitive(true);
    value
}

/// Whether an incoming request id is worth keeping: 1 to
/// [`MAX_REQUEST_ID_LEN`] visible ASCII characters (no spaces, no
/// controls), so that it is one token in a log line and a safe field.
pub fn is_sane_request_id(value: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&value.len())
        && value.iter().all(|byte| byte.is_ascii_graphic())
}

/// A trace id: 16 bytes, never all zero (W3C Trace Context §3.2.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceId([u8; 16]);

impl fmt::Display for TraceId {
    /// 32 lowercase hex digits, as in `traceparent`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// A parsed `traceparent` (W3C Trace Context §3.2):
/// `VERSION-TRACE_ID-PARENT_ID-FLAGS`, lowercase hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The whole trace's id.
    pub trace_id: TraceId,
    /// The id of the caller's span.
    pub parent_id: [u8; 8],
    /// Trace flags; bit 0 is `sampled` (§3.2.2.5).
    pub flags: u8,
}

impl TraceParent {
    /// Parses one `traceparent` value. Version `00` must be exactly 55
    /// characters; a later version (not `ff`, §3.2.2.2) is read by its
    /// first 55, which must be followed by the end or a `-` (§3.2.4). An
    /// all-zero trace or parent id is invalid (§3.2.2.3, §3.2.2.4).
    pub fn parse(value: &[u8]) -> Option<Self> {
        let version = hex::<1>(value.get(0..2)?)?[0];
        if version == 0xff || (version == 0 && value.len() != 55) {
            return None;
        }
        if value.len() > 55 && value.get(55) != Some(&b'-') {
            return None;
        }
        if value.get(2) != Some(&b'-') || value.get(35) != Some(&b'-') {
            return None;
        }
        if value.get(52) != Some(&b'-') {
            return None;
        }
        let trace_id = hex::<16>(value.get(3..35)?)?;
        let parent_id = hex::<8>(value.get(36..52)?)?;
        let flags = hex::<1>(value.get(53..55)?)?[0];
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id: TraceId(trace_id),
            parent_id,
            flags,
        })
    }

    /// The one valid `traceparent` of `headers`; `None` when there is
    /// none, more than one, or it does not parse.
    pub fn of(headers: &HeaderMap) -> Option<Self> {
        let mut values = headers.get_all(TRACEPARENT).iter();
        let value = values.next()?;
        if values.next().is_some() {
            return None;
        }
        Self::parse(value.as_bytes())
    }

    /// A new trace that starts here: a random trace id and span id (never
    /// all zero), flagged `sampled`, so that the app records what the
    /// operator asked to trace.
    pub fn start() -> Self {
        let mut trace_id = random_bytes();
        let mut parent_id = rand::random::<u64>().to_le_bytes();
        // One chance in 2^128 (2^64): a zero id is invalid, so nudge it.
        if trace_id == [0; 16] {
            trace_id[15] = 1;
        }
        if parent_id == [0; 8] {
            parent_id[7] = 1;
        }
        Self {
            trace_id: TraceId(trace_id),
            parent_id,
            flags: 0x01,
        }
    }

    /// The value to send, version `00`.
    pub fn to_header_value(&self) -> HeaderValue {
        let mut text = String::with_capacity(55);
        let _ = write!(text, "00-{}-", self.trace_id);
        for byte in self.parent_id {
            let _ = write!(text, "{byte:02x}");
        }
        let _ = write!(text, "-{:02x}", self.flags);
        let value = HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("-"));
        never_indexed(value)
    }
}

/// `N` bytes from `2N` lowercase hex digits (uppercase is invalid in
/// `traceparent`, W3C Trace Context §3.2.2).
fn hex<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    if digits.len() != 2 * N {
        return None;
    }
    let nibble = |digit: u8| match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    };
    let mut out = [0; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

/// What an access line says about who and which request: the client
/// address the front settled on (the sidecar has none), the request id and
/// the trace id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestIdentity {
    /// The client address the front settled on; `None` at the sidecar.
    pub client: Option<IpAddr>,
    /// The `X-Request-Id` sent on (front) or received (sidecar).
    pub request_id: Option<Box<str>>,
    /// The trace id of the `traceparent` sent on or received.
    pub trace_id: Option<TraceId>,
}

impl RequestIdentity {
    /// What a request's `headers` say: its one `X-Request-Id` (if it is a
    /// sane one, [`is_sane_request_id`]) and its valid `traceparent`'s
    /// trace id. For the sidecar, which logs what the front sent.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let request_id = headers
            .get(REQUEST_ID)
            .filter(|value| is_sane_request_id(value.as_bytes()))
            .and_then(|value| value.to_str().ok())
            .map(Box::from);
        Self {
            client: None,
            request_id,
            trace_id: TraceParent::of(headers).map(|parent| parent.trace_id),
        }
    }

    /// The access line's `client`: the address, or `-`.
    pub fn client_text(&self) -> String {
        self.client
            .map_or_else(|| "-".to_owned(), |ip| ip.to_string())
    }

    /// The access line's `request_id`: the id, or `-`.
    pub fn request_id_text(&self) -> &str {
        self.request_id.as_deref().unwrap_or("-")
    }

    /// The access line's `trace_id`: 32 hex digits, or `-`.
    pub fn trace_id_text(&self) -> String {
        self.trace_id
            .map_or_else(|| "-".to_owned(), |id| id.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_specification_example_parses() {
        let parent = TraceParent::parse(EXAMPLE.as_bytes());
        let parent = parent.unwrap_or_else(|| unreachable!("the W3C example is valid"));
        assert_eq!(
            parent.trace_id.to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(
            parent.parent_id,
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert_eq!(parent.flags, 1);
        assert_eq!(parent.to_header_value(), EXAMPLE);
    }

    #[test]
    fn invalid_traceparents_are_refused() {
        for value in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(value.as_bytes()), None, "{value}");
        }
    }

    #[test]
    fn a_later_version_is_read_by_its_first_55_characters() {
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next";
        let parent = TraceParent::parse(later.as_bytes());
        assert_eq!(
            parent.map(|parent| parent.trace_id.to_string()),
            Some("4bf92f3577b34da6a3ce929d0e0e4736".to_owned())
        );
    }

    #[test]
    fn two_traceparents_are_none() {
        let mut headers = HeaderMap::new();
        headers.append(TRACEPARENT, HeaderValue::from_static(EXAMPLE));
        assert!(TraceParent::of(&headers).is_some());
        headers.append(TRACEPARENT, HeaderValue::from_static(EXAMPLE));
        assert_eq!(TraceParent::of(&headers), None);
    }

    #[test]
    fn a_started_trace_is_valid_and_new_each_time() {
        let first = TraceParent::start();
        let second = TraceParent::start();
        assert_ne!(first.trace_id, second.trace_id);
        let value = first.to_header_value();
        assert_eq!(TraceParent::parse(value.as_bytes()), Some(first));
        assert_eq!(first.flags, 1);
    }

    #[test]
    fn addresses_are_written_as_display_does_ipv4_mapped_as_ipv4() {
        for text in [
            "0.0.0.0",
            "192.0.2.7",
            "255.255.255.255",
            "10.20.3.40",
            "2001:db8::7",
            "::1",
        ] {
            let ip: IpAddr = text.parse().unwrap_or(IpAddr::from([0; 4]));
            assert_eq!(address_value(ip), text, "{text}");
        }
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap_or(IpAddr::from([0; 4]));
        assert_eq!(address_value(mapped), "192.0.2.7");
    }

    #[test]
    fn values_unique_to_a_request_are_never_indexed() {
        assert!(new_request_id().is_sensitive());
        assert!(TraceParent::start().to_header_value().is_sensitive());
    }

    #[test]
    fn new_request_ids_are_version_4_uuids() {
        let id = new_request_id();
        let text = id.to_str().unwrap_or_default();
        assert_eq!(text.len(), 36, "{text}");
        let groups: Vec<usize> = text.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{text}");
        assert_eq!(&text[14..15], "4", "version: {text}");
        assert!(
            matches!(&text[19..20], "8" | "9" | "a" | "b"),
            "variant: {text}"
        );
        assert_ne!(new_request_id(), id);
    }

    #[test]
    fn sane_request_ids_are_short_visible_ascii() {
        assert!(is_sane_request_id(b"abc-123_XYZ"));
        assert!(!is_sane_request_id(b""));
        assert!(!is_sane_request_id(b"has space"));
        assert!(!is_sane_request_id("é".as_bytes()));
        assert!(!is_sane_request_id(&[b'a'; MAX_REQUEST_ID_LEN + 1]));
        assert!(is_sane_request_id(&[b'a'; MAX_REQUEST_ID_LEN]));
    }

    #[test]
    fn the_sidecar_reads_id_and_trace_from_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_static("req-1"));
        headers.insert(TRACEPARENT, HeaderValue::from_static(EXAMPLE));
        let identity = RequestIdentity::from_headers(&headers);
        assert_eq!(identity.request_id_text(), "req-1");
        assert_eq!(identity.trace_id_text(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(identity.client_text(), "-");
        let none = RequestIdentity::from_headers(&HeaderMap::new());
        assert_eq!(
            (none.request_id_text(), none.trace_id_text()),
            ("-", "-".to_owned())
        );
    }
}
