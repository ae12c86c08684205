//! Hop-by-hop field handling (RFC 9110 §7.6.1, RFC 9113 §8.2.2).
//!
//! Every translation in both binaries copies a message's fields in one pass
//! and leaves out those [`HopByHop`] names, whatever the direction: h1 → h2
//! request, h2 → h1 request, and each response on its way back. Only the
//! front's rebuilt `101` carries `Upgrade` and `Connection`, and it is built
//! from scratch, never filtered (the Kong bug).

use http::HeaderMap;
use http::header::{CONNECTION, HeaderName, TE, TRANSFER_ENCODING, UPGRADE};

/// Fields that are hop-by-hop whether or not `Connection` names them
/// (RFC 9110 §7.6.1 (N30); RFC 9113 §8.2.2 (N17) forbids them on HTTP/2).
/// Kept as parsed names: comparing with a `&str` parses it every time.
static ALWAYS: [HeaderName; 6] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    TE,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// A message's hop-by-hop fields, as a test: `Connection`, every field it
/// names, and the fields that are always hop-by-hop (RFC 9110 §7.6.1 (N29,
/// N30), RFC 9113 §8.2.2 (N19)). `Connection` is read first, so a field
/// named there goes even if it looks end-to-end, such as `X-Foo`.
#[derive(Debug)]
pub struct HopByHop {
    /// What `Connection` names; empty (no allocation) without `Connection`.
    named: Vec<HeaderName>,
}

impl HopByHop {
    /// Reads the message's `Connection` fields.
    pub fn of(headers: &HeaderMap) -> Self {
        Self {
            named: named_by_connection(headers),
        }
    }

    /// True when `name` must not cross the hop.
    pub fn contains(&self, name: &HeaderName) -> bool {
        is_always_hop_by_hop(name) || self.named.contains(name)
    }
}

/// The field names in `Connection`'s elements. Split as bytes, not text: an
/// element that is no token (obs-text) must not keep the value's other
/// elements from naming their fields.
fn named_by_connection(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&byte| byte == b','))
        .filter_map(|token| HeaderName::from_bytes(token.trim_ascii()).ok())
        .collect()
}

/// True when `name` is a field that never crosses a hop on its own.
pub fn is_always_hop_by_hop(name: &HeaderName) -> bool {
    ALWAYS.contains(name)
}

/// True when any comma-separated element of any `name` field equals `token`,
/// ignoring ASCII case and optional whitespace (RFC 9110 §5.6.1 lists).
///
/// Used for `Connection: upgrade` and `Upgrade: websocket` (RFC 6455 §4.1
/// (N39): both are case-insensitive and may sit among other tokens).
pub fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    tokens(headers, name).any(|element| element.eq_ignore_ascii_case(token))
}

/// The comma-separated elements of every `name` field, trimmed, in order
/// (RFC 9110 §5.6.1); empty elements and non-text values are skipped.
pub fn tokens<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|element| !element.is_empty())
}

/// Appends `from`'s fields to `to` in one pass, but those [`HopByHop`]
/// names and `also`: what every response translation copies.
pub fn copy_end_to_end(from: &HeaderMap, also: &[HeaderName], to: &mut HeaderMap) {
    let hop = HopByHop::of(from);
    for (name, value) in from {
        if !hop.contains(name) && !also.contains(name) {
            to.append(name.clone(), value.clone());
        }
    }
}

/// The `TE: trailers` case: the one hop-by-hop field value that HTTP/2 allows
/// on requests (RFC 9113 §8.2.2 (N18)). Callers that forward a request to an
/// HTTP/2 peer re-add it after leaving out the hop-by-hop fields when the
/// client asked for trailers.
pub fn wants_trailers(headers: &HeaderMap) -> bool {
    has_token(headers, &TE, "trailers")
}

/// True when the message is framed by `Transfer-Encoding` (RFC 9112 §6.1).
pub fn is_chunked(headers: &HeaderMap) -> bool {
    headers.contains_key(TRANSFER_ENCODING)
}

/// True when the request offers an `Upgrade` at all.
pub fn offers_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(UPGRADE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    /// What a translation copies of `headers`: all but what `HopByHop` names.
    fn strip(headers: &mut HeaderMap) {
        let mut kept = HeaderMap::new();
        copy_end_to_end(headers, &[], &mut kept);
        *headers = kept;
    }

    /// RFC 9110 §7.6.1 (N29): fields named by `Connection` go, with it.
    #[test]
    fn strip_removes_fields_named_by_connection() {
        let mut headers = map(&[
            ("connection", "keep-alive, Upgrade, X-Foo"),
            ("x-foo", "secret"),
            ("x-bar", "kept"),
            ("upgrade", "websocket"),
        ]);
        strip(&mut headers);
        assert!(headers.get("x-foo").is_none());
        assert!(headers.get("connection").is_none());
        assert!(headers.get("upgrade").is_none());
        assert_eq!(headers.get("x-bar").unwrap(), "kept");
    }

    /// `HopByHop` names `Connection`, what it lists (a non-text element
    /// aside) and the always hop-by-hop fields, and nothing else.
    #[test]
    fn hop_by_hop_names_connection_its_list_and_the_fixed_set() {
        let headers = map(&[
            ("connection", "keep-alive, X-Foo, \u{fffd}, content-length"),
            ("x-foo", "secret"),
            ("x-bar", "kept"),
            ("content-length", "3"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("origin", "http://example.com"),
        ]);
        let hop = HopByHop::of(&headers);
        for name in headers.keys() {
            let kept = matches!(name.as_str(), "x-bar" | "origin");
            assert_eq!(hop.contains(name), !kept, "{name}");
        }
    }

    /// RFC 9110 §7.6.1 (N30), RFC 9113 §8.2.2 (N17): removed even if unlisted.
    #[test]
    fn strip_removes_always_hop_by_hop_fields_without_connection() {
        let mut headers = map(&[
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("origin", "http://example.com"),
        ]);
        strip(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("origin"));
    }

    /// Several `Connection` lines are one list (RFC 9110 §5.3).
    #[test]
    fn strip_reads_every_connection_line() {
        let mut headers = map(&[
            ("connection", "x-one"),
            ("connection", " x-two "),
            ("x-one", "1"),
            ("x-two", "2"),
        ]);
        strip(&mut headers);
        assert!(headers.is_empty());
    }

    /// A `Connection` element that is not text (found by the `hop_by_hop`
    /// and `h1_to_h2` fuzz targets) does not hide the fields the others name.
    #[test]
    fn strip_honours_connection_beside_a_non_text_element() {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONNECTION,
            HeaderValue::from_bytes(b"cl\xff\xff, X-Hop").unwrap(),
        );
        headers.insert("x-hop", HeaderValue::from_static("1"));
        headers.insert("cookie", HeaderValue::from_static("a=b"));
        strip(&mut headers);
        assert!(!headers.contains_key("x-hop"));
        assert_eq!(headers.len(), 1);
    }

    /// RFC 6455 §4.1 (N39): tokens match in any case and position.
    #[test]
    fn has_token_ignores_case_order_and_spaces() {
        for value in [
            "Upgrade",
            "keep-alive, Upgrade",
            "UpGrade,keep-alive",
            "a ,  upgrade ,b",
        ] {
            let headers = map(&[("connection", value)]);
            assert!(has_token(&headers, &CONNECTION, "upgrade"), "{value}");
        }
        let headers = map(&[("connection", "upgrades, keep-alive")]);
        assert!(!has_token(&headers, &CONNECTION, "upgrade"));
    }

    /// RFC 9113 §8.2.2 (N18): `TE: trailers` is recognised among other codings.
    #[test]
    fn wants_trailers_reads_te_list() {
        assert!(wants_trailers(&map(&[("te", "gzip, trailers")])));
        assert!(!wants_trailers(&map(&[("te", "gzip")])));
    }
}
