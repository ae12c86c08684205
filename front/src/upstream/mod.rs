//! Upstream stage: the multiplexed HTTP/2 connections to the sidecars.
//!
//! [`Cluster::open_stream`] picks an [`endpoint::Endpoint`] (a sidecar) and puts the
//! stream on its first live connection with a free place under the peer's
//! MAX_CONCURRENT_STREAMS; the endpoint dials another connection (TCP, then
//! TLS with ALPN `h2` unless h2c) when none has room or all broke, and the
//! [`session`] handshake makes it a usable [`session::Session`]. Called by
//! [`crate::tunnel`] and [`crate::forward`]. With a [`HealthCheck`], the
//! [`health`] tasks take endpoints whose app fails it out of the pick.

mod cluster;
mod endpoint;
pub(crate) mod health;
mod health_config;
mod session;

use std::time::Duration;

use bytes::Bytes;
use h2::SendStream;
use h2::client::ResponseFuture;
use h2hop::tls::reload::Reloadable;
use rustls::pki_types::ServerName;

pub use cluster::Cluster;
pub use health_config::{FLAG_NAMES, HealthCheck, HealthCheckError, RawHealthCheck};
pub use session::StreamSlot;

/// How the front reaches its sidecar.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// The sidecar's `host:port`.
    pub addr: String,
    /// TLS toward the sidecar, or `None` for h2c with prior knowledge.
    pub tls: Option<UpstreamTls>,
    /// Bound on TCP connect, and again on the SETTINGS round trip.
    pub connect_timeout: Duration,
    /// Bound on the TLS handshake.
    pub tls_timeout: Duration,
    /// How often an idle-or-not connection sends a PING.
    pub keepalive_interval: Duration,
    /// A PING unanswered this long closes the connection and fails its
    /// streams: a sidecar that vanished without a FIN is found this way.
    pub keepalive_timeout: Duration,
    /// Most HTTP/2 connections to this sidecar.
    pub max_connections: usize,
    /// Active health checks of this sidecar (through it, of its app);
    /// `None`: off, the sidecar always takes new streams.
    pub health_check: Option<HealthCheck>,
}

/// TLS settings toward the sidecar.
#[derive(Debug, Clone)]
pub struct UpstreamTls {
    /// Client configuration: roots, our certificate, ALPN `h2`. Each new
    /// connection takes its current value: a reload changes the next
    /// connection, and those open (with their tunnels) stay as they are.
    pub config: Reloadable<rustls::ClientConfig>,
    /// The name the sidecar's certificate must carry.
    pub server_name: ServerName<'static>,
}

/// What [`Endpoint::open_stream`] hands back: the response to wait for, the
/// stream's send half, and its place on the connection.
pub type OpenStream = (ResponseFuture, SendStream<Bytes>, StreamSlot);

#[cfg(test)]
pub(crate) mod tests {
    //! Helpers for the endpoint and cluster tests.

    use std::sync::Arc;

    use h2hop::metrics::Metrics;
    use http::Request;

    use super::*;

    pub(crate) async fn closed_port() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        addr.to_string()
    }

    pub(crate) fn config(addr: String) -> UpstreamConfig {
        UpstreamConfig {
            addr,
            connect_timeout: Duration::from_secs(1),
            tls_timeout: Duration::from_secs(1),
            ..UpstreamConfig::default()
        }
    }

    pub(crate) fn metrics() -> Arc<Metrics> {
        Metrics::new("sidecar", "connections", "streams")
    }

    pub(crate) fn get() -> Request<()> {
        Request::get("http://app/").body(()).unwrap()
    }
}
