//! What every stream handler of the sidecar shares: the [`Context`] the
//! listener builds once. Used by [`crate::dispatch`], [`crate::forward`]
//! [`crate::tunnel`] and [`crate::tcp_tunnel`]; it calls none of them.

use std::sync::Arc;
use std::time::Duration;

use h2hop::drain::Drain;
use h2hop::limit::Limit;
use h2hop::metrics::Metrics;

use crate::apps::Apps;
use crate::config::UpgradePolicy;
use crate::tcp_allow::TcpAllowList;

/// What every stream handler shares.
pub struct Context {
    /// The app, or named apps, behind the sidecar; each stream goes to
    /// the one [`Apps::choose`] picks.
    pub apps: Apps,
    /// How upgrades reach the app.
    pub upgrades: UpgradePolicy,
    /// Shutdown: streams are spawned through it so that they drain.
    pub drain: Drain,
    /// The targets a TCP CONNECT may reach.
    pub tcp_allow: TcpAllowList,
    /// Bound on TCP connect to a TCP tunnel's target (`--connect-timeout`).
    pub tcp_connect_timeout: Duration,
    /// Closes a tunnel where nothing moved for this long.
    pub tunnel_idle_timeout: Duration,
    /// Tunnels open at once.
    pub tunnels: Limit,
    /// App dials one front connection may have pending.
    pub max_pending_dials: usize,
    /// Error answers carry their cause chain (`--error-details`).
    pub error_details: bool,
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
}

/// The front a stream came from.
#[derive(Debug, Clone)]
pub struct Front {
    /// Its address.
    pub addr: std::net::SocketAddr,
    /// The URI and DNS SANs of its client certificate; `None` over h2c.
    pub sans: Option<Arc<h2hop::tls::identity::Sans>>,
}
