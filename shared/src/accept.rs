//! The accept loop both binaries run on their listener.
//!
//! Accepts until shutdown begins, runs each connection in a task of its own
//! (tracked by the [`Drain`]) inside a `conn{peer}` span, and pauses briefly
//! when accept fails (out of descriptors, say) rather than spinning.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tracing::{Instrument as _, info_span, warn};

use crate::drain::Drain;

/// How long to wait after a failed accept before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts connections on `listener` until shutdown begins, and spawns
/// `serve(stream, peer)` for each through `drain`. The listener is closed
/// on return, so new connections are refused from then on.
pub async fn until_shutdown<F, Fut>(listener: TcpListener, drain: &Drain, mut serve: F)
where
    F: FnMut(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            () = drain.begun().cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                // Fewer, larger segments matter less than latency here.
                let _ = stream.set_nodelay(true);
                let span = info_span!("conn", %peer);
                drain.spawn(serve(stream, peer).instrument(span));
            }
            Err(err) => {
                warn!(error = %err, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}
