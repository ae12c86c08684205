//! The termination signals: SIGINT and SIGTERM cancel a token, which starts
//! the shutdown ([`crate::drain`]). Called by the binaries' `main`; SIGHUP
//! is [`crate::tls::reload::on_hangup`]'s.

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Cancels `token` on the first SIGINT (Ctrl-C) or SIGTERM.
pub async fn on_signal(token: CancellationToken) {
    wait_for_signal().await;
    info!("shutting down");
    token.cancel();
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        }
        Err(err) => {
            warn!(error = %err, "cannot watch SIGTERM; Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
