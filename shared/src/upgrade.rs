//! Which Upgrade protocols h2hop tunnels, and how an upgrade's method and
//! body cross the HTTP/2 hop.
//!
//! RFC 8441 has no place for the HTTP/1.1 request's method or body: an
//! extended CONNECT is a `CONNECT`, and its DATA is the tunnel. h2hop-front
//! therefore puts two fields of its own on the stream, which h2hop-sidecar
//! reads and removes before the app sees the request:
//!
//! - [`METHOD_FIELD`] (`h2hop-upgrade-method: POST`): the client's method,
//!   sent only when it is not `GET`; absent means `GET`.
//! - [`BODY_LENGTH_FIELD`] (`h2hop-upgrade-body-length: 5`): the first that
//!   many bytes of the stream's DATA are the request body (from the client's
//!   `Content-Length`); the tunnel's bytes follow. Absent means no body.
//!
//! Every field named `h2hop-…` is h2hop's own: the front removes them from
//! client requests and the sidecar from what it sends the app
//! ([`is_reserved`]), so no client can set them.

use http::header::HeaderName;
use http::{HeaderMap, Method};

/// The upgrade's method when it is not `GET`.
pub const METHOD_FIELD: &str = "h2hop-upgrade-method";
/// How many bytes at the start of the stream are the upgrade's body.
pub const BODY_LENGTH_FIELD: &str = "h2hop-upgrade-body-length";
/// The prefix of every field h2hop reserves for itself.
pub const RESERVED_PREFIX: &str = "h2hop-";
/// The WebSocket token (RFC 6455 §4.1, RFC 8441 §5 (N9)).
pub const WEBSOCKET: &str = "websocket";
/// Default bound on an upgrade request's body, in bytes.
pub const DEFAULT_BODY_LIMIT: u64 = 64 * 1024;

/// Why an allow-list cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Not an HTTP token (RFC 9110 §5.6.2).
    #[error("{0:?} is not a valid Upgrade token")]
    NotToken(String),
    /// `h2c` or `h2`: HTTP/2 is never tunnelled (h2c smuggling, S3).
    #[error(
        "{0:?} cannot be tunnelled: forwarding an upgrade to HTTP/2 lets clients smuggle requests past the proxy"
    )]
    Forbidden(String),
    /// Nothing allowed at all.
    #[error("the Upgrade allow-list is empty")]
    Empty,
}

/// The Upgrade tokens a binary tunnels, compared without regard to case and
/// kept in lower case (the spelling sent as `:protocol` and `Upgrade`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocols {
    tokens: Vec<String>,
}

impl Default for Protocols {
    /// WebSocket only.
    fn default() -> Self {
        Self {
            tokens: vec![WEBSOCKET.to_owned()],
        }
    }
}

impl Protocols {
    /// Validates an allow-list: every entry a token, `h2c` and `h2` refused.
    pub fn new<I, S>(tokens: I) -> Result<Self, ProtocolError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut allowed: Vec<String> = Vec::new();
        for token in tokens {
            let token = token.as_ref();
            if !is_token(token) {
                return Err(ProtocolError::NotToken(token.to_owned()));
            }
            let lower = token.to_ascii_lowercase();
            // "h2c" and "h2", also with a version suffix such as "h2c/1".
            let name = lower.split('/').next().unwrap_or_default();
            if name == "h2c" || name == "h2" {
                return Err(ProtocolError::Forbidden(token.to_owned()));
            }
            if !allowed.contains(&lower) {
                allowed.push(lower);
            }
        }
        if allowed.is_empty() {
            return Err(ProtocolError::Empty);
        }
        Ok(Self { tokens: allowed })
    }

    /// The allowed spelling of `token`, if it is allowed.
    pub fn find(&self, token: &str) -> Option<&str> {
        self.tokens
            .iter()
            .find(|allowed| allowed.eq_ignore_ascii_case(token))
            .map(String::as_str)
    }

    /// The first protocol of an `Upgrade` field list (RFC 9110 §7.8: in the
    /// client's order of preference) that is allowed.
    pub fn first_offered<'a>(&self, offered: impl IntoIterator<Item = &'a str>) -> Option<&str> {
        offered.into_iter().find_map(|token| self.find(token))
    }

    /// The allowed tokens, lower case.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.tokens.iter().map(String::as_str)
    }
}

/// Whether `text` is an HTTP token (RFC 9110 §5.6.2), optionally with a
/// `/version` that is a token too (RFC 9110 §7.8 `protocol`).
pub fn is_token(text: &str) -> bool {
    let mut parts = text.splitn(2, '/');
    let name = parts.next().unwrap_or_default();
    is_plain_token(name) && parts.next().is_none_or(is_plain_token)
}

fn is_plain_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte))
}

/// True for an `h2hop-…` field: set only by the front, consumed only by
/// the sidecar, never taken from a client nor given to an app.
pub fn is_reserved(name: &HeaderName) -> bool {
    name.as_str().starts_with(RESERVED_PREFIX)
}

/// An upgrade's method and body length as the front carried them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carried {
    /// The client's method; `GET` when the field was absent.
    pub method: Method,
    /// Bytes of body at the start of the stream; 0 when absent.
    pub body_length: u64,
}

/// Why the carried fields cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CarriedError {
    /// A field is repeated or its value does not parse.
    #[error("invalid {0} field")]
    Invalid(&'static str),
    /// `CONNECT` is not an upgrade method.
    #[error("an upgrade cannot carry the CONNECT method")]
    Connect,
    /// The body is longer than this sidecar accepts.
    #[error("upgrade body of {length} bytes is over the {limit}-byte limit")]
    TooLarge {
        /// Announced length.
        length: u64,
        /// The configured bound.
        limit: u64,
    },
}

/// Reads [`METHOD_FIELD`] and [`BODY_LENGTH_FIELD`]; a stream from a front
/// that sends neither (nghttpx, Envoy) is a `GET` without body.
pub fn carried(headers: &HeaderMap, body_limit: u64) -> Result<Carried, CarriedError> {
    let method = match single(headers, METHOD_FIELD)? {
        None => Method::GET,
        Some(value) => {
            let method = Method::from_bytes(value.as_bytes())
                .map_err(|_| CarriedError::Invalid(METHOD_FIELD))?;
            if method == Method::CONNECT {
                return Err(CarriedError::Connect);
            }
            method
        }
    };
    let body_length = match single(headers, BODY_LENGTH_FIELD)? {
        None => 0,
        Some(value) => std::str::from_utf8(value.as_bytes())
            .ok()
            .filter(|text| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|text| text.parse().ok())
            .ok_or(CarriedError::Invalid(BODY_LENGTH_FIELD))?,
    };
    if body_length > body_limit {
        return Err(CarriedError::TooLarge {
            length: body_length,
            limit: body_limit,
        });
    }
    Ok(Carried {
        method,
        body_length,
    })
}

/// The field's one value, `None` if absent, an error if repeated.
fn single<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
) -> Result<Option<&'a http::HeaderValue>, CarriedError> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (value, None) => Ok(value),
        _ => Err(CarriedError::Invalid(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn allow_list_normalises_case_and_refuses_http2_tokens() {
        let protocols = Protocols::new(["WebSocket", "my-proto", "websocket"]).unwrap();
        assert_eq!(
            protocols.iter().collect::<Vec<_>>(),
            ["websocket", "my-proto"]
        );
        assert_eq!(protocols.find("MY-PROTO"), Some("my-proto"));
        assert_eq!(protocols.find("other"), None);
        for forbidden in ["h2c", "H2", "h2c/1"] {
            assert!(matches!(
                Protocols::new([forbidden]),
                Err(ProtocolError::Forbidden(_))
            ));
        }
        for bad in ["", "a b", "x\r\ny", "a/b/c", "é"] {
            assert!(
                matches!(Protocols::new([bad]), Err(ProtocolError::NotToken(_))),
                "{bad:?}"
            );
        }
        assert_eq!(
            Protocols::new(Vec::<String>::new()),
            Err(ProtocolError::Empty)
        );
    }

    #[test]
    fn the_first_allowed_offer_wins() {
        let protocols = Protocols::new(["websocket", "my-proto"]).unwrap();
        assert_eq!(
            protocols.first_offered(["HTTP/2.0", "My-Proto", "websocket"]),
            Some("my-proto")
        );
        assert_eq!(protocols.first_offered(["h2c"]), None);
    }

    #[test]
    fn reserved_fields_are_the_h2hop_prefixed_ones() {
        for (name, reserved) in [
            (METHOD_FIELD, true),
            (BODY_LENGTH_FIELD, true),
            ("h2hop-anything", true),
            ("x-h2hop", false),
            ("h2hop", false),
        ] {
            let name = HeaderName::from_static(name);
            assert_eq!(is_reserved(&name), reserved, "{name}");
        }
    }

    fn fields(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn absent_fields_mean_get_without_body() {
        let carried = carried(&HeaderMap::new(), 10).unwrap();
        assert_eq!(
            carried,
            Carried {
                method: Method::GET,
                body_length: 0
            }
        );
    }

    #[test]
    fn carried_fields_are_checked() {
        let ok = carried(
            &fields(&[(METHOD_FIELD, "POST"), (BODY_LENGTH_FIELD, "5")]),
            10,
        );
        assert_eq!(
            ok,
            Ok(Carried {
                method: Method::POST,
                body_length: 5
            })
        );
        let cases: [(&[(&'static str, &'static str)], CarriedError); 5] = [
            (
                &[(BODY_LENGTH_FIELD, "11")],
                CarriedError::TooLarge {
                    length: 11,
                    limit: 10,
                },
            ),
            (
                &[(BODY_LENGTH_FIELD, "-1")],
                CarriedError::Invalid(BODY_LENGTH_FIELD),
            ),
            (
                &[(BODY_LENGTH_FIELD, "1"), (BODY_LENGTH_FIELD, "1")],
                CarriedError::Invalid(BODY_LENGTH_FIELD),
            ),
            (&[(METHOD_FIELD, "CONNECT")], CarriedError::Connect),
            (
                &[(METHOD_FIELD, "PO ST")],
                CarriedError::Invalid(METHOD_FIELD),
            ),
        ];
        for (pairs, expected) in cases {
            assert_eq!(carried(&fields(pairs), 10), Err(expected), "{pairs:?}");
        }
    }
}
