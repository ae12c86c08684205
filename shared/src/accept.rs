//! The accept loop both binaries run on their listener.
//!
//! Accepts until shutdown begins, runs each connection in a task of its own
//! (tracked by the [`Drain`]) inside a `conn{peer}` span, and pauses briefly
//! when accept fails (out of descriptors, say) rather than spinning. Every
//! accepted connection gets `TCP_NODELAY` and TCP keep-alive ([`KEEPALIVE`]):
//! set once on the listener, whose accepted sockets inherit them on Linux,
//! and set on each accepted socket only where the first one showed they
//! were not inherited. That saves five system calls per connection, about
//! a fifth of the front's for a short WebSocket.

use std::net::SocketAddr;
use std::time::Duration;

use socket2::{SockRef, Socket, TcpKeepalive};
use tokio::net::{TcpListener, TcpStream};
use tracing::{Instrument as _, info_span, warn};

use crate::drain::Drain;

/// How long to wait after a failed accept before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// TCP keep-alive on accepted connections: a peer gone without a FIN or an
/// RST (power lost, a NAT or firewall that forgot the flow) is found about
/// two minutes after its last packet (60 s quiet, then 6 probes 10 s apart)
/// and its connection and tunnels closed, instead of at the tunnel idle
/// timeout (1 h by default). Probes are answered by the peer's kernel, so a
/// live but quiet client (an idle WebSocket) is never cut by them. RFC 9293
/// §3.8.4 leaves keep-alive off by default in TCP and to the application to
/// turn on, with a threshold the application chooses (here 60 s, as
/// proxies commonly set it; not yet a flag).
pub const KEEPALIVE: TcpKeepalive = TcpKeepalive::new()
    .with_time(KEEPALIVE_TIME)
    .with_interval(KEEPALIVE_INTERVAL)
    .with_retries(KEEPALIVE_PROBES);

/// Quiet time before the first keep-alive probe.
const KEEPALIVE_TIME: Duration = Duration::from_secs(60);
/// Time between unanswered probes.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// Unanswered probes after which the connection is dropped.
const KEEPALIVE_PROBES: u32 = 6;

/// Accepts connections on `listener` until shutdown begins, and spawns
/// `serve(stream, peer)` for each through `drain`. The listener is closed
/// on return, so new connections are refused from then on.
pub async fn until_shutdown<F, Fut>(listener: TcpListener, drain: &Drain, mut serve: F)
where
    F: FnMut(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener_set = set_options(&SockRef::from(&listener)).is_ok();
    // Known from the first accepted connection on.
    let mut inherited = None;
    loop {
        let accepted = tokio::select! {
            () = drain.begun().cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let socket = SockRef::from(&stream);
                let inherited =
                    *inherited.get_or_insert_with(|| listener_set && has_options(&socket));
                if !inherited && let Err(err) = set_options(&socket) {
                    warn!(%peer, error = %err, "cannot set TCP_NODELAY and keep-alive");
                }
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

/// `TCP_NODELAY` (fewer, larger segments matter less than latency here)
/// and [`KEEPALIVE`].
fn set_options(socket: &Socket) -> std::io::Result<()> {
    socket.set_tcp_nodelay(true)?;
    socket.set_tcp_keepalive(&KEEPALIVE)
}

/// Whether `socket` already has what [`set_options`] sets.
fn has_options(socket: &Socket) -> bool {
    let read = || -> std::io::Result<bool> {
        Ok(socket.tcp_nodelay()?
            && socket.keepalive()?
            && socket.tcp_keepalive_time()? == KEEPALIVE_TIME
            && socket.tcp_keepalive_interval()? == KEEPALIVE_INTERVAL
            && socket.tcp_keepalive_retries()? == KEEPALIVE_PROBES)
    };
    read().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;
    use tokio_util::sync::CancellationToken;

    /// What an accepted socket is set to: NODELAY, and keep-alive with its
    /// idle time, probe interval and probe count.
    type Options = (bool, bool, Duration, Duration, u32);

    fn options(stream: &TcpStream) -> io::Result<Options> {
        let socket = SockRef::from(stream);
        Ok((
            stream.nodelay()?,
            socket.keepalive()?,
            socket.tcp_keepalive_time()?,
            socket.tcp_keepalive_interval()?,
            socket.tcp_keepalive_retries()?,
        ))
    }

    #[tokio::test]
    async fn accepted_connections_get_nodelay_and_keepalive() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let drain = Drain::new(shutdown.clone());
        let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
        let accepting = until_shutdown(listener, &drain, move |stream, _| {
            let _ = seen_tx.send(options(&stream).map_err(|err| err.to_string()));
            async move { drop(stream) }
        });
        // The first connection decides whether the options are inherited
        // or set; the second shows the decision holds.
        let client = async {
            let mut seen = Vec::new();
            for _ in 0..2 {
                let _client = TcpStream::connect(addr).await.unwrap();
                seen.push(seen_rx.recv().await.unwrap());
            }
            shutdown.cancel();
            seen
        };
        let ((), seen) = tokio::join!(accepting, client);
        let expected = (
            true,
            true,
            Duration::from_secs(60),
            Duration::from_secs(10),
            6,
        );
        assert_eq!(seen, vec![Ok(expected), Ok(expected)]);
    }
}
