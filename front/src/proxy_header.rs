//! The PROXY protocol on the front's listeners: which peers may (or must)
//! put a PROXY header before their bytes ([`ProxyProtocol`], from
//! `--proxy-protocol` and `--proxy-protocol-from`), and the client address
//! a new connection settles on ([`client_address`]).
//!
//! Input: a freshly accepted connection and its socket peer address;
//! output: the client's address (the header's source, else the peer's), or
//! `None` when the connection is refused (logged, to be closed). Called by
//! [`crate::listener`] before TLS or HTTP, so the address it returns is
//! the one limits, logs and forwarded fields see.

use std::net::SocketAddr;
use std::time::Duration;

use h2hop::networks::Networks;
use h2hop::proxy_protocol::{self, ProxyError};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tracing::{debug, warn};

/// Whether the listed peers send a PROXY header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ProxyMode {
    /// No PROXY protocol: nothing is read or peeked before TLS or HTTP.
    #[default]
    Off,
    /// A listed peer may send a header; without one its own address stands.
    Optional,
    /// A listed peer must send a header; a connection without one is
    /// refused (at once, or after the header timeout if it stays silent).
    Required,
}

impl std::fmt::Display for ProxyMode {
    /// As the flag writes it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProxyMode::Off => "off",
            ProxyMode::Optional => "optional",
            ProxyMode::Required => "required",
        })
    }
}

/// `--proxy-protocol` and `--proxy-protocol-from`, for both listeners.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyProtocol {
    /// Off, optional or required, for the peers in [`ProxyProtocol::from`].
    pub mode: ProxyMode,
    /// The peers (load balancers) whose header is believed. Any other
    /// peer whose first bytes are a PROXY signature is refused.
    pub from: Networks,
}

impl ProxyProtocol {
    /// Whether `peer` may send a header naming another client.
    pub fn may_speak_for_others(&self, peer: SocketAddr) -> bool {
        self.mode != ProxyMode::Off && self.from.contains(peer.ip())
    }
}

/// The address `stream`'s client is known by under `policy`: the source
/// its PROXY header carries, or `peer`; `None` when the connection is
/// refused (logged here). Reads exactly the header's bytes, and nothing at
/// all when the feature is off; waits at most `bound` (the header timeout).
pub(crate) async fn client_address(
    policy: &ProxyProtocol,
    stream: &mut TcpStream,
    peer: SocketAddr,
    bound: Duration,
) -> Option<SocketAddr> {
    if policy.mode == ProxyMode::Off {
        return Some(peer);
    }
    let started = Instant::now();
    let listed = policy.from.contains(peer.ip());
    if !listed || policy.mode == ProxyMode::Optional {
        match timeout(bound, proxy_protocol::starts_with_signature(stream)).await {
            Ok(Ok(false)) => return Some(peer),
            Ok(Ok(true)) if !listed => {
                warn!(%peer, "PROXY header from a peer not in --proxy-protocol-from: connection refused");
                return None;
            }
            Ok(Ok(true)) => {}
            Ok(Err(err)) => {
                debug!(%peer, error = %err, "connection failed before its first byte");
                return None;
            }
            Err(_) => {
                debug!(%peer, after = ?bound, "nothing received within the header timeout: closed");
                return None;
            }
        }
    }
    let left = bound.saturating_sub(started.elapsed());
    match proxy_protocol::read_header(stream, left).await {
        Ok(header) => {
            let client = header.client(peer);
            debug!(%peer, %client, version = ?header.version, "PROXY header read");
            Some(client)
        }
        Err(err) => {
            refused(peer, &err);
            None
        }
    }
}

fn refused(peer: SocketAddr, err: &ProxyError) {
    warn!(%peer, reason = %err, "PROXY header refused: connection closed");
}
