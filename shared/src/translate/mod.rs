//! Header translation between the HTTP/1.1 legs and the HTTP/2 hop.
//!
//! Pure functions, no I/O: [`request`] turns a client's HTTP/1.1 request head
//! into an HTTP/2 one (front), [`app_request`] an HTTP/2 request head into the
//! HTTP/1.1 one the app receives (sidecar); [`response`] does the way back;
//! [`hop_by_hop`] is the field hygiene every direction applies.

use http::header::{HeaderName, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY};

pub mod app_request;
pub mod hop_by_hop;
pub mod request;
pub mod response;

/// Fields of the RFC 6455 handshake that stay on their own HTTP/1.1 leg
/// (RFC 8441 §5 (N11)): each leg computes its own key and accept.
pub(crate) const HANDSHAKE_ONLY: [HeaderName; 2] = [SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_ACCEPT];

/// What a translation refuses, and so what the caller answers with a 4xx.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TranslateError {
    /// No `Host` and no absolute-form target: there is no `:authority` to send.
    #[error("request has no host")]
    MissingAuthority,
    /// The HTTP/2 request carries neither `:authority` nor `host`
    /// (RFC 9113 §8.3.1 (N24)).
    #[error("request has neither :authority nor host")]
    MissingH2Authority,
    /// A value could not become a URI or a header value.
    #[error("invalid {what}")]
    Invalid {
        /// Which part of the message was invalid.
        what: &'static str,
    },
}
