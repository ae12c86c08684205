//! How a tunnel ends: its close cause, its bounds, what it moved, and the
//! reset its stream gets when the TCP side fails.

use std::time::Duration;

use h2::Reason;

/// How a tunnel ended, for the log line of its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// Both directions ended with FIN / END_STREAM (RFC 8441 §5 (N14)).
    Clean,
    /// The TCP peer reset or failed; we sent RST_STREAM(CANCEL), or the
    /// [`TcpFailure`] reason [`super::tunnel_resetting`] was given.
    TcpReset,
    /// The HTTP/2 peer reset the stream; we reset the TCP connection.
    StreamReset,
    /// No byte moved either way for the idle timeout: we sent
    /// RST_STREAM(CANCEL) and closed the TCP connection.
    Idle,
    /// The stream had ended, and the byte-stream side did not end its half
    /// within the fin timeout: we sent RST_STREAM(CANCEL) and closed it.
    FinTimeout,
}

/// The bounds on a quiet tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Nothing moved either way for this long: the tunnel is closed.
    pub idle: Duration,
    /// Once the stream has ended, the byte-stream side must end its half
    /// within this much quiet (HAProxy's `timeout client-fin`): Firefox
    /// never ends its half of an RFC 8441 stream the server ended, which
    /// would hold a stream slot for the idle timeout.
    pub fin: Duration,
}

/// What [`super::tunnel`] moved and how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelEnd {
    /// Bytes from the TCP side onto the stream.
    pub to_stream: u64,
    /// Bytes from the stream onto the TCP side.
    pub to_tcp: u64,
    /// How it ended.
    pub close: Close,
}

/// The reset a tunnel's stream gets when its TCP connection fails or is
/// reset ([`Close::TcpReset`]). A type rather than a value: it costs an
/// idle tunnel no byte of state.
pub trait TcpFailure {
    /// The RST_STREAM error code.
    const REASON: Reason;
}

/// CANCEL: the reset of an upgraded connection's tunnel ([`super::tunnel`]).
#[derive(Debug)]
pub enum Cancel {}

impl TcpFailure for Cancel {
    const REASON: Reason = Reason::CANCEL;
}

/// CONNECT_ERROR: a CONNECT proxy's TCP tunnel (RFC 9113 §8.5: "a proxy
/// that detects an error with the TCP connection ... MUST send RST_STREAM
/// with CONNECT_ERROR").
#[derive(Debug)]
pub enum ConnectError {}

impl TcpFailure for ConnectError {
    const REASON: Reason = Reason::CONNECT_ERROR;
}
