//! The front's one error type, and the HTTP status each failure earns.
//!
//! Every stage returns [`Error`]; the listener turns it into a response with
//! [`Error::status`] and [`Error::body`], and logs it once (style: culprit
//! decides the status).

use std::io;
use std::time::Duration;

use h2hop::error_answer;
use h2hop::metrics::Culprit;
use h2hop::translate::TranslateError;
use http::StatusCode;

/// What went wrong while serving one client request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The client's request cannot be translated (no host, bad target).
    #[error("bad request")]
    Translate(#[from] TranslateError),
    /// TCP connect to the sidecar failed.
    #[error("cannot connect to sidecar {addr}")]
    ConnectUpstream {
        /// The sidecar address.
        addr: String,
        /// The socket error.
        #[source]
        source: io::Error,
    },
    /// A step toward the sidecar took longer than its bound.
    #[error("{step} with sidecar {addr} timed out after {after:?}")]
    UpstreamTimeout {
        /// Which step.
        step: UpstreamStep,
        /// The sidecar address.
        addr: String,
        /// The bound that ran out.
        after: Duration,
    },
    /// TLS with the sidecar failed (certificate, name, protocol).
    #[error("TLS with sidecar {addr} failed: {reason}")]
    UpstreamTls {
        /// The sidecar address.
        addr: String,
        /// The failure in words, from [`h2hop::tls::describe_failure`].
        reason: String,
    },
    /// The HTTP/2 connection to the sidecar failed or broke.
    #[error("HTTP/2 with sidecar {addr} failed")]
    UpstreamH2 {
        /// The sidecar address.
        addr: String,
        /// The HTTP/2 error.
        #[source]
        source: h2::Error,
    },
    /// The sidecar's SETTINGS lacked SETTINGS_ENABLE_CONNECT_PROTOCOL = 1, so
    /// no `:protocol` may be sent to it (RFC 8441 §3 (N4)).
    #[error("sidecar {addr} does not support extended CONNECT (RFC 8441)")]
    NoExtendedConnect {
        /// The sidecar address.
        addr: String,
    },
    /// Every upstream connection is at the sidecar's stream limit and no
    /// more may open.
    #[error("all connections to sidecar {addr} are at its stream limit")]
    UpstreamFull {
        /// The sidecar address.
        addr: String,
    },
    /// The client's request body (of an upgrade or a plain request) could
    /// not be read.
    #[error("cannot read the request body")]
    ClientBody(#[source] hyper::Error),
    /// The client's upgrade body did not arrive in time.
    #[error("upgrade request body not received within {0:?}")]
    ClientBodyTimeout(Duration),
    /// A limit is reached: nothing queues behind it.
    #[error("{what} limit of {max} reached")]
    Overloaded {
        /// What is counted.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// The sidecar failed to connect recently; no dial until the backoff
    /// has passed.
    #[error("{last} ({failures} failed attempts in a row to {addr}; next in {wait:?})")]
    BackingOff {
        /// The sidecar address.
        addr: String,
        /// The last dial's failure, in words.
        last: String,
        /// Failed dials in a row.
        failures: u32,
        /// Time left before the next dial.
        wait: Duration,
    },
    /// No sidecar of the cluster could take the stream.
    #[error("no sidecar of cluster {cluster:?} is available")]
    NoEndpoint {
        /// The cluster's name.
        cluster: String,
    },
    /// Active health checks took every sidecar of the cluster out.
    #[error("no healthy sidecar in cluster {cluster:?}")]
    NoHealthyEndpoint {
        /// The cluster's name.
        cluster: String,
    },
    /// The upgraded client connection could not be taken over.
    #[error("client upgrade failed")]
    ClientUpgrade(#[source] hyper::Error),
}

/// A step of reaching the sidecar and hearing from it, each with its own
/// bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamStep {
    /// TCP connect (`--connect-timeout`).
    Connect,
    /// The TLS handshake (`--tls-timeout`).
    TlsHandshake,
    /// The HTTP/2 preface and SETTINGS round trip (`--connect-timeout`).
    Settings,
    /// The response head to a request (`--response-timeout`).
    Response,
}

impl std::fmt::Display for UpstreamStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UpstreamStep::Connect => "connect",
            UpstreamStep::TlsHandshake => "TLS handshake",
            UpstreamStep::Settings => "settings exchange",
            UpstreamStep::Response => "response",
        })
    }
}

impl Error {
    /// Who the failure is blamed on, for the errors metric.
    pub fn culprit(&self) -> Culprit {
        match self {
            Error::Translate(_)
            | Error::ClientBody(_)
            | Error::ClientUpgrade(_)
            | Error::Overloaded { .. } => Culprit::Client,
            Error::UpstreamTimeout { .. } | Error::ClientBodyTimeout(_) => Culprit::Timeout,
            _ => Culprit::Peer,
        }
    }

    /// The sidecar could not be reached at all (connect, TLS, backoff):
    /// another sidecar of the cluster may take the stream instead.
    pub fn is_dial_failure(&self) -> bool {
        matches!(
            self,
            Error::ConnectUpstream { .. }
                | Error::UpstreamTls { .. }
                | Error::BackingOff { .. }
                | Error::UpstreamTimeout {
                    step: UpstreamStep::Connect | UpstreamStep::TlsHandshake,
                    ..
                }
        )
    }

    /// The status the client gets: 400 for its own mistakes, 504 when a
    /// bound ran out, 502 when the sidecar failed us.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Translate(_) | Error::ClientBody(_) => StatusCode::BAD_REQUEST,
            Error::ClientBodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Error::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Error::UpstreamFull { .. }
            | Error::Overloaded { .. }
            | Error::NoEndpoint { .. }
            | Error::NoHealthyEndpoint { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::ConnectUpstream { .. }
            | Error::UpstreamTls { .. }
            | Error::UpstreamH2 { .. }
            | Error::NoExtendedConnect { .. }
            | Error::BackingOff { .. }
            | Error::ClientUpgrade(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// The body the client gets, request `id`: a 5xx names no sidecar
    /// address and no TLS or OS failure unless `details` (`--error-details`)
    /// is set; those stay in the log line with the same id.
    pub fn body(&self, id: &str, details: bool) -> String {
        let chain = h2hop::telemetry::chain(self);
        error_answer::body("h2hop-front", self.status(), &chain, id, details)
    }
}
