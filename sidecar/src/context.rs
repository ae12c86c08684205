//! What every stream handler of the sidecar shares: the [`Context`] the
//! listener builds once. Used by [`crate::dispatch`], [`crate::forward`]
//! and [`crate::tunnel`]; it calls none of them.

use std::sync::Arc;
use std::time::Duration;

use h2hop::drain::Drain;
use h2hop::limit::Limit;
use h2hop::metrics::Metrics;

use crate::apps::Apps;
use crate::config::UpgradePolicy;

/// What every stream handler shares.
pub struct Context {
    /// The app, or named apps, behind the sidecar; each stream goes to
    /// the one [`Apps::choose`] picks.
    pub apps: Apps,
    /// How upgrades reach the app.
    pub upgrades: UpgradePolicy,
    /// Shutdown: streams are spawned through it so that they drain.
    pub drain: Drain,
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
