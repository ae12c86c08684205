//! The sidecar's one error type, and the HTTP/2 status each failure earns.
//!
//! Stream stages return [`Error`]; [`crate::dispatch`] answers the stream
//! with [`Error::status`] and [`Error::body`], and logs it once.

use std::io;
use std::time::Duration;

use h2hop::error_answer;
use h2hop::metrics::Culprit;
use h2hop::tcp_connect::TargetError;
use h2hop::translate::TranslateError;
use h2hop::translate::response::Refusal;
use h2hop::upgrade::CarriedError;
use http::StatusCode;

use crate::tcp_allow::Verdict;

/// What went wrong while serving one HTTP/2 stream.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The stream's request cannot become an HTTP/1.1 request.
    #[error("bad request")]
    Translate(#[from] TranslateError),
    /// An extended CONNECT for a protocol we do not tunnel (RFC 9220 §3 (N16)).
    #[error("protocol {0:?} is not supported")]
    UnsupportedProtocol(String),
    /// No app of `--config` takes the stream's `:authority` or path.
    #[error("no app for this authority/path")]
    NoApp,
    /// A TCP CONNECT that names no usable `host:port` target.
    #[error("bad TCP CONNECT target")]
    TcpTarget(#[source] TargetError),
    /// A TCP CONNECT to a target the allow-list does not give this front.
    #[error("TCP tunnel to {target} refused: {verdict}")]
    TcpDenied {
        /// The target asked for.
        target: String,
        /// Why.
        verdict: Verdict,
    },
    /// TCP connect to a TCP tunnel's target failed.
    #[error("cannot connect to TCP target {target}")]
    ConnectTarget {
        /// The target.
        target: String,
        /// The socket error.
        #[source]
        source: io::Error,
    },
    /// TCP connect to a TCP tunnel's target did not finish in time
    /// (`--connect-timeout`).
    #[error("connect to TCP target {target} timed out after {after:?}")]
    TargetTimeout {
        /// The target.
        target: String,
        /// The bound that ran out.
        after: Duration,
    },
    /// The front's method or body-length field cannot be used.
    #[error("bad upgrade fields")]
    Carried(#[from] CarriedError),
    /// The stream ended, or was reset, before the announced upgrade body.
    #[error("stream ended after {got} of {want} upgrade body bytes")]
    BodyCut {
        /// Bytes received.
        got: u64,
        /// Bytes announced.
        want: u64,
    },
    /// The upgrade body did not arrive in time.
    #[error("upgrade body not received within {0:?}")]
    BodyTimeout(Duration),
    /// TCP connect to the app failed.
    #[error("cannot connect to app {addr}")]
    ConnectApp {
        /// The app address.
        addr: String,
        /// The socket error.
        #[source]
        source: io::Error,
    },
    /// The app did not answer in time.
    #[error("{step} with app {addr} timed out after {after:?}")]
    AppTimeout {
        /// Which step.
        step: AppStep,
        /// The app address.
        addr: String,
        /// The bound that ran out.
        after: Duration,
    },
    /// HTTP/1.1 with the app failed.
    #[error("HTTP/1.1 with app {addr} failed")]
    AppHttp {
        /// The app address.
        addr: String,
        /// hyper's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// HTTP/2 with the app failed (`--app-protocol h2c`): the handshake,
    /// or the connection, not one stream.
    #[error("HTTP/2 with app {addr} failed")]
    AppH2 {
        /// The app address.
        addr: String,
        /// h2's error.
        #[source]
        source: h2::Error,
    },
    /// The app reset its HTTP/2 stream; the front's stream is reset in
    /// turn (RFC 9113 §8.1: a reset ends the exchange, no answer follows).
    #[error("app reset the stream ({0})")]
    AppReset(h2::Reason),
    /// An extended CONNECT toward an h2c app whose SETTINGS did not carry
    /// ENABLE_CONNECT_PROTOCOL = 1: it must not be sent (RFC 8441 §3).
    #[error(
        "the app does not accept extended CONNECT: its HTTP/2 SETTINGS did not enable it (SETTINGS_ENABLE_CONNECT_PROTOCOL, RFC 8441 §3)"
    )]
    NoExtendedConnect,
    /// An upgrade that carried a request body, toward an h2c app: an
    /// extended CONNECT has no body of its own (RFC 8441 §4), so the app
    /// would read the body as tunnel bytes.
    #[error(
        "an upgrade request with a body ({0} bytes) cannot reach an HTTP/2 app: extended CONNECT carries no request body (RFC 8441 §4)"
    )]
    UpgradeBodyToH2c(u64),
    /// The app answered the upgrade with a 101 that does not open the
    /// tunnel asked for (RFC 6455 §4.1 (N43)).
    #[error("app's upgrade answer refused")]
    BadSwitch(#[source] Refusal),
    /// A limit is reached: nothing queues behind it.
    #[error("{what} limit of {max} reached")]
    Overloaded {
        /// What is counted.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// The front reset the stream before it was answered.
    #[error("stream reset by the front ({0:?})")]
    Reset(Option<h2::Reason>),
    /// Answering on the HTTP/2 stream failed (the peer reset it, or the
    /// connection is gone).
    #[error("cannot answer the stream")]
    Respond(#[source] h2::Error),
}

/// A step toward the app with its own bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppStep {
    /// TCP connect (`--connect-timeout`).
    Connect,
    /// The response head, or the answer to an upgrade
    /// (`--response-timeout`, `--upgrade-timeout`).
    Response,
}

impl std::fmt::Display for AppStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AppStep::Connect => "connect",
            AppStep::Response => "response",
        })
    }
}

impl Error {
    /// Who the failure is blamed on, for the errors metric.
    pub fn culprit(&self) -> Culprit {
        match self {
            Error::AppTimeout { .. } | Error::BodyTimeout(_) | Error::TargetTimeout { .. } => {
                Culprit::Timeout
            }
            Error::ConnectApp { .. }
            | Error::ConnectTarget { .. }
            | Error::AppHttp { .. }
            | Error::AppH2 { .. }
            | Error::AppReset(_)
            | Error::NoExtendedConnect
            | Error::BadSwitch(_) => Culprit::App,
            Error::UpgradeBodyToH2c(_) => Culprit::Client,
            Error::Respond(_) => Culprit::Peer,
            _ => Culprit::Client,
        }
    }

    /// The status the front gets: 4xx for the request's own faults (403
    /// for a TCP target not allowed), 504 when the app or TCP target was
    /// too slow, 502 when it failed.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Carried(CarriedError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Translate(_)
            | Error::Carried(_)
            | Error::BodyCut { .. }
            | Error::TcpTarget(_) => StatusCode::BAD_REQUEST,
            Error::TcpDenied { .. } => StatusCode::FORBIDDEN,
            Error::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Error::UnsupportedProtocol(_)
            | Error::NoExtendedConnect
            | Error::UpgradeBodyToH2c(_) => StatusCode::NOT_IMPLEMENTED,
            Error::NoApp => StatusCode::NOT_FOUND,
            Error::AppTimeout { .. } | Error::TargetTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Error::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            // Nobody reads the answer to a reset stream; 499 as nginx logs it.
            Error::Reset(_) => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            Error::ConnectApp { .. }
            | Error::ConnectTarget { .. }
            | Error::AppHttp { .. }
            | Error::AppH2 { .. }
            | Error::AppReset(_)
            | Error::BadSwitch(_)
            | Error::Respond(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// The body the front relays to its client, request `id`: a 5xx names
    /// no app address and no OS failure unless `details`
    /// (`--error-details`) is set; those stay in the log line with the
    /// same id.
    pub fn body(&self, id: &str, details: bool) -> String {
        // A 501 names only the client's own `:protocol`, which it needs to
        // know was refused (RFC 9220 §3), or says that the app does not
        // take extended CONNECT: nothing of ours to hide.
        let details = details
            || matches!(
                self,
                Error::UnsupportedProtocol(_)
                    | Error::NoExtendedConnect
                    | Error::UpgradeBodyToH2c(_)
            );
        let chain = h2hop::telemetry::chain(self);
        error_answer::body("h2hop-sidecar", self.status(), &chain, id, details)
    }
}
