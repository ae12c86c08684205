//! Response heads on the way back: the sidecar checks the app's `101` and
//! answers the stream, the front rebuilds the client's `101`.
//!
//! Called by the sidecar's tunnel stage ([`check_switch`], [`switched_to_h2`])
//! and forward stage ([`relay_head`]), and by the front's upgrade stage
//! ([`switched_to_h1`]) and forward stage ([`relay_head`]).

use http::header::{
    CONNECTION, CONTENT_LENGTH, HeaderName, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    UPGRADE,
};
use http::response::Parts;
use http::{HeaderMap, Response, StatusCode, Version};

use super::hop_by_hop::{self, HopByHop, copy_end_to_end};
use crate::websocket;

/// Fields that belong to one leg's handshake, or to framing that the
/// switch ends, and never cross with an accepted tunnel.
const SWITCH_ONLY: [HeaderName; 3] = [SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, CONTENT_LENGTH];

/// Why an app's answer to an upgrade does not open a tunnel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a 101: relay it as an ordinary response (RFC 6455 §4.1 (N45)).
    #[error("app answered {0} instead of 101")]
    NotSwitching(StatusCode),
    /// A 101 to another protocol than asked (RFC 9110 §7.8 (N33)).
    #[error("app switched to {got:?}, not {want}")]
    WrongProtocol {
        /// The token the request asked for.
        want: String,
        /// The app's `Upgrade` value, if any.
        got: Option<String>,
    },
    /// A 101 without `Connection: upgrade` (RFC 6455 §4.1 (N43)).
    #[error("app's 101 lacks Connection: upgrade")]
    NoConnectionUpgrade,
    /// A 101 whose accept does not match our key (RFC 6455 §4.1 (N43)).
    #[error("app's Sec-WebSocket-Accept does not match the key sent")]
    WrongAccept,
}

/// Checks that the app's answer opens the tunnel asked for: a `101` whose
/// `Upgrade` names `protocol`, with `Connection: upgrade`, and when a
/// WebSocket `key` was sent a `Sec-WebSocket-Accept` derived from it
/// (RFC 6455 §4.1 (N43), RFC 9110 §7.8 (N32, N33)).
pub fn check_switch(parts: &Parts, protocol: &str, key: Option<&str>) -> Result<(), Refusal> {
    if parts.status != StatusCode::SWITCHING_PROTOCOLS {
        return Err(Refusal::NotSwitching(parts.status));
    }
    let upgrade = parts.headers.get(UPGRADE);
    if !upgrade.is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(protocol.as_bytes())) {
        return Err(Refusal::WrongProtocol {
            want: protocol.to_owned(),
            got: upgrade.map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned()),
        });
    }
    if !hop_by_hop::has_token(&parts.headers, &CONNECTION, "upgrade") {
        return Err(Refusal::NoConnectionUpgrade);
    }
    if let Some(key) = key {
        let expected = websocket::accept_for(key.as_bytes());
        let accept = parts.headers.get(SEC_WEBSOCKET_ACCEPT);
        if accept.is_none_or(|value| value.as_bytes() != expected.as_bytes()) {
            return Err(Refusal::WrongAccept);
        }
    }
    Ok(())
}

/// The sidecar's `200` for an accepted tunnel (RFC 8441 §5 (N13); HTTP/2
/// never carries 101, RFC 9113 §8.6 (N28)), with the app's end-to-end fields
/// such as `Sec-WebSocket-Protocol` and `Set-Cookie` (N12).
pub fn switched_to_h2(app: &Parts) -> Response<()> {
    let mut response = Response::new(());
    let headers = response.headers_mut();
    headers.reserve(app.headers.len());
    copy_end_to_end(&app.headers, &SWITCH_ONLY, headers);
    response
}

/// The front's `101` for an accepted tunnel, built from scratch rather than
/// filtered from the sidecar's answer (the Kong bug, S7): `Upgrade`,
/// `Connection: Upgrade` (RFC 9110 §7.8 (N31, N32)) and, for a WebSocket,
/// the accept for the client's own key (RFC 6455 §4.2.2 (N42)), then the
/// end-to-end fields.
pub fn switched_to_h1(sidecar: &Parts, protocol: &str, client_key: Option<&[u8]>) -> Response<()> {
    let mut headers = HeaderMap::with_capacity(sidecar.headers.len() + 3);
    if let Ok(upgrade) = HeaderValue::from_str(protocol) {
        headers.insert(UPGRADE, upgrade);
    }
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Some(accept) =
        client_key.and_then(|key| HeaderValue::from_str(&websocket::accept_for(key)).ok())
    {
        headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    }
    copy_end_to_end(&sidecar.headers, &SWITCH_ONLY, &mut headers);
    let mut response = Response::new(());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *response.version_mut() = Version::HTTP_11;
    *response.headers_mut() = headers;
    response
}

/// An ordinary response for the next leg: same status, end-to-end fields
/// only (RFC 9110 §7.6.1 (N29, N30); S7). `Content-Length` stays: it frames
/// the body the same way on either version.
pub fn relay(parts: &Parts, version: Version) -> Response<()> {
    let mut response = Response::new(());
    *response.status_mut() = parts.status;
    *response.version_mut() = version;
    let headers = response.headers_mut();
    headers.reserve(parts.headers.len());
    copy_end_to_end(&parts.headers, &[], headers);
    response
}

/// [`relay`], taking the head: its field map moves over, not copied field
/// by field (callgrind: the copy was about 1,500 instructions of the
/// front's plain GET, 1,200 of the sidecar's). Hop-by-hop fields (never
/// there in a head received over HTTP/2, where h2 refuses them, RFC 9113
/// §8.2.2) are taken out of it; that moves the map's last field into the
/// place of each one removed, and the order of differently named fields
/// carries no meaning (RFC 9110 §5.3).
pub fn relay_head(mut parts: Parts, version: Version) -> Response<()> {
    if parts.headers.keys().any(hop_by_hop::is_always_hop_by_hop) {
        // `Connection` among them, and so whatever it names.
        let hop = HopByHop::of(&parts.headers);
        let left_out: Vec<HeaderName> = parts
            .headers
            .keys()
            .filter(|name| hop.contains(name))
            .cloned()
            .collect();
        for name in &left_out {
            parts.headers.remove(name);
        }
    }
    let mut response = Response::new(());
    *response.status_mut() = parts.status;
    *response.version_mut() = version;
    *response.headers_mut() = parts.headers;
    response
}

/// True when a response head promises no body: HEAD requests aside, 204, 304
/// and 1xx never have one, and `Content-Length: 0` says so.
pub fn is_bodiless(parts: &Parts) -> bool {
    parts.status.is_informational()
        || parts.status == StatusCode::NO_CONTENT
        || parts.status == StatusCode::NOT_MODIFIED
        || parts.headers.get(CONTENT_LENGTH).is_some_and(|v| v == "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn head(status: u16, headers: &[(&str, &str)]) -> Parts {
        let mut builder = Response::builder().status(status);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn good_101() -> Parts {
        head(
            101,
            &[
                ("upgrade", "WebSocket"),
                ("connection", "keep-alive, Upgrade"),
                ("sec-websocket-accept", ACCEPT),
                ("sec-websocket-protocol", "chat"),
                ("set-cookie", "s=1"),
            ],
        )
    }

    /// RFC 6455 §4.1 (N43): a proper 101 opens the tunnel.
    #[test]
    fn matching_101_is_accepted() {
        assert_eq!(check_switch(&good_101(), "websocket", Some(KEY)), Ok(()));
    }

    /// RFC 6455 §4.1 (N43), S1: a wrong accept never opens a tunnel.
    #[test]
    fn wrong_accept_is_refused() {
        let mut parts = good_101();
        parts
            .headers
            .insert("sec-websocket-accept", HeaderValue::from_static("bogus"));
        assert_eq!(
            check_switch(&parts, "websocket", Some(KEY)),
            Err(Refusal::WrongAccept)
        );
        parts.headers.remove("sec-websocket-accept");
        assert_eq!(
            check_switch(&parts, "websocket", Some(KEY)),
            Err(Refusal::WrongAccept)
        );
    }

    /// RFC 9110 §7.8 (N33): the 101 must name the protocol asked for.
    #[test]
    fn wrong_or_missing_upgrade_token_is_refused() {
        let mut parts = good_101();
        parts
            .headers
            .insert(UPGRADE, HeaderValue::from_static("h2c"));
        assert!(matches!(
            check_switch(&parts, "websocket", Some(KEY)),
            Err(Refusal::WrongProtocol { .. })
        ));
        parts.headers.remove(UPGRADE);
        assert!(matches!(
            check_switch(&parts, "websocket", Some(KEY)),
            Err(Refusal::WrongProtocol { got: None, .. })
        ));
    }

    #[test]
    fn missing_connection_upgrade_is_refused() {
        let mut parts = good_101();
        parts
            .headers
            .insert(CONNECTION, HeaderValue::from_static("keep-alive"));
        assert_eq!(
            check_switch(&parts, "websocket", Some(KEY)),
            Err(Refusal::NoConnectionUpgrade)
        );
    }

    /// RFC 6455 §4.1 (N45): anything but 101 is an ordinary response.
    #[test]
    fn non_101_is_not_switching() {
        let parts = head(403, &[]);
        assert_eq!(
            check_switch(&parts, "websocket", Some(KEY)),
            Err(Refusal::NotSwitching(StatusCode::FORBIDDEN))
        );
    }

    /// RFC 8441 §5 (N12, N13), RFC 9113 §8.6 (N28).
    #[test]
    fn accepted_tunnel_answers_200_with_end_to_end_fields() {
        let response = switched_to_h2(&good_101());
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(headers["sec-websocket-protocol"], "chat");
        assert_eq!(headers["set-cookie"], "s=1");
        for gone in ["upgrade", "connection", "sec-websocket-accept"] {
            assert!(!headers.contains_key(gone), "{gone}");
        }
    }

    /// S7, the Kong bug: the 101 always carries Upgrade and Connection, even
    /// when the sidecar's answer had fields that a filter would have cut.
    #[test]
    fn client_101_is_rebuilt_with_upgrade_and_accept() {
        let sidecar = head(
            200,
            &[
                ("sec-websocket-protocol", "chat"),
                ("sec-websocket-accept", "stale"),
            ],
        );
        let response = switched_to_h1(&sidecar, "websocket", Some(KEY.as_bytes()));
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        let headers = response.headers();
        assert_eq!(headers["upgrade"], "websocket");
        assert_eq!(headers["connection"], "Upgrade");
        assert_eq!(headers["sec-websocket-accept"], ACCEPT);
        assert_eq!(headers.get_all("sec-websocket-accept").iter().count(), 1);
        assert_eq!(headers["sec-websocket-protocol"], "chat");
    }

    /// Another protocol: the 101 names it, needs no accept, and a 101 to
    /// another token is refused (RFC 9110 §7.8 (N33)).
    #[test]
    fn other_protocols_switch_without_an_accept() {
        let app = head(101, &[("upgrade", "My-Proto"), ("connection", "upgrade")]);
        assert_eq!(check_switch(&app, "my-proto", None), Ok(()));
        assert!(matches!(
            check_switch(&app, "other", None),
            Err(Refusal::WrongProtocol { .. })
        ));
        let response = switched_to_h1(&head(200, &[]), "my-proto", None);
        let headers = response.headers();
        assert_eq!(headers["upgrade"], "my-proto");
        assert_eq!(headers["connection"], "Upgrade");
        assert!(!headers.contains_key("sec-websocket-accept"));
    }

    /// RFC 9110 §7.6.1 (N29), S7: relayed responses lose hop-by-hop fields.
    #[test]
    fn relayed_response_loses_hop_by_hop_fields() {
        let parts = head(
            404,
            &[
                ("connection", "close, x-hop"),
                ("x-hop", "1"),
                ("keep-alive", "timeout=5"),
                ("transfer-encoding", "chunked"),
                ("content-type", "text/plain"),
            ],
        );
        let response = relay(&parts, Version::HTTP_2);
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers().len(), 1);
        assert_eq!(response.headers()["content-type"], "text/plain");
    }

    /// [`relay_head`] drops what [`relay`] drops, and keeps the rest with
    /// the status and the version asked for.
    #[test]
    fn relayed_head_loses_hop_by_hop_fields_and_keeps_the_rest() {
        let parts = head(
            404,
            &[
                ("connection", "close, x-hop"),
                ("x-hop", "1"),
                ("set-cookie", "a=1"),
                ("keep-alive", "timeout=5"),
                ("content-type", "text/plain"),
                ("set-cookie", "b=2"),
                ("transfer-encoding", "chunked"),
            ],
        );
        let response = relay_head(parts, Version::HTTP_2);
        assert_eq!(response.headers().len(), 3);
        assert_eq!(response.headers()["content-type"], "text/plain");
        // Same-named fields keep their order.
        let cookies: Vec<_> = response.headers().get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        let clean = head(
            200,
            &[("content-type", "text/plain"), ("set-cookie", "a=1")],
        );
        let response = relay_head(clean, Version::HTTP_11);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.version(), Version::HTTP_11);
        assert_eq!(response.headers().len(), 2);
        assert_eq!(response.headers()["set-cookie"], "a=1");
    }
}
