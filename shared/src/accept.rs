//! The accept loop both binaries run on their listener.
//!
//! Accepts until shutdown begins, runs each connection in a task of its own
//! (tracked by the [`Drain`]) inside a `conn{peer}` span, and pauses briefly
//! when accept fails (out of descriptors, say) rather than spinning. Every
//! accepted connection gets `TCP_NODELAY` and TCP keep-alive ([`Keepalive`]):
//! set once on the listener, whose accepted sockets inherit them on Linux,
//! and set on each accepted socket only where the first one showed they
//! were not inherited. That saves five system calls per connection, about
//! a quarter of the front's for a short WebSocket.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use socket2::{SockRef, Socket, TcpKeepalive};
use tokio::net::{TcpListener, TcpStream};
use tracing::{Instrument as _, info_span, warn};

use crate::drain::Drain;

/// How long to wait after a failed accept before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// TCP keep-alive on accepted connections: a peer gone without a FIN or an
/// RST (power lost, a NAT or firewall that forgot the flow) is found
/// `idle + probes × interval` after its last packet and its connection and
/// tunnels closed, instead of at the tunnel idle timeout (1 h by default).
/// Probes are answered by the peer's kernel, so a live but quiet client (an
/// idle WebSocket) is never cut by them. RFC 9293 §3.8.4 has TCP leave
/// keep-alive off unless the application turns it on, with a configurable
/// threshold: [`KeepaliveArgs`] are the flags, [`Keepalive::DEFAULT`] what
/// proxies commonly set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Quiet time before the first probe.
    pub idle: Duration,
    /// Time between unanswered probes.
    pub interval: Duration,
    /// Unanswered probes after which the connection is dropped.
    pub probes: u32,
}

impl Keepalive {
    /// 60 s quiet, then 6 probes 10 s apart: a vanished peer is found about
    /// two minutes after its last packet.
    pub const DEFAULT: Keepalive = Keepalive {
        idle: Duration::from_secs(60),
        interval: Duration::from_secs(10),
        probes: 6,
    };

    fn tcp(self) -> TcpKeepalive {
        TcpKeepalive::new()
            .with_time(self.idle)
            .with_interval(self.interval)
            .with_retries(self.probes)
    }
}

/// The TCP keep-alive flags both binaries share.
#[derive(Debug, Clone, Args)]
pub struct KeepaliveArgs {
    /// Quiet time on an accepted connection before TCP keep-alive probes
    /// start, in whole seconds; `0s` turns keep-alive off.
    #[arg(long, env = "H2HOP_TCP_KEEPALIVE_IDLE", default_value_t = Keepalive::DEFAULT.idle.into(), value_parser = whole_seconds::<0>)]
    pub tcp_keepalive_idle: humantime::Duration,
    /// Time between unanswered keep-alive probes, in whole seconds.
    #[arg(long, env = "H2HOP_TCP_KEEPALIVE_INTERVAL", default_value_t = Keepalive::DEFAULT.interval.into(), value_parser = whole_seconds::<1>)]
    pub tcp_keepalive_interval: humantime::Duration,
    /// Unanswered probes after which the connection is closed.
    #[arg(long, env = "H2HOP_TCP_KEEPALIVE_PROBES", default_value_t = Keepalive::DEFAULT.probes, value_parser = clap::value_parser!(u32).range(1..=127))]
    pub tcp_keepalive_probes: u32,
}

impl KeepaliveArgs {
    /// The keep-alive the flags ask for; `None` when it is off.
    pub fn settings(&self) -> Option<Keepalive> {
        (!self.tcp_keepalive_idle.is_zero()).then_some(Keepalive {
            idle: self.tcp_keepalive_idle.into(),
            interval: self.tcp_keepalive_interval.into(),
            probes: self.tcp_keepalive_probes,
        })
    }
}

/// A duration of whole seconds from `MIN` to 32767 (Linux's limit for the
/// keep-alive times), written as `humantime` reads it (`90s`, `2m`).
fn whole_seconds<const MIN: u64>(text: &str) -> Result<humantime::Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|err| err.to_string())?;
    if duration.subsec_nanos() != 0 {
        return Err("must be whole seconds".into());
    }
    if !(MIN..=32_767).contains(&duration.as_secs()) {
        return Err(format!("must be from {MIN}s to 32767s"));
    }
    Ok(duration.into())
}

/// A listener that could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} ({role})")]
pub struct BindError {
    /// The address asked for.
    pub addr: SocketAddr,
    /// What the listener is for, as the flag says: "clients", "admin".
    pub role: &'static str,
    /// The socket error.
    #[source]
    pub source: std::io::Error,
}

/// Binds `addr` for `role` (named in the error). Called by the binaries'
/// `main`, the only place that binds.
pub async fn bind(addr: SocketAddr, role: &'static str) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, role, source })
}

/// [`bind`] for a listener that is off unless its address is set.
pub async fn bind_if_set(
    addr: Option<SocketAddr>,
    role: &'static str,
) -> Result<Option<TcpListener>, BindError> {
    match addr {
        Some(addr) => bind(addr, role).await.map(Some),
        None => Ok(None),
    }
}

/// Binds `count` listening sockets to `addr` for `role`, one per worker
/// (see [`crate::runtime`]): with more than one, each has `SO_REUSEPORT`
/// and the kernel spreads new connections over them by their addresses'
/// hash. The first takes the port when `addr` asks for port 0; the
/// others bind the port it took. Blocking-free `std` sockets, so that
/// each worker registers its own with its runtime
/// (`TcpListener::from_std`). Called by the binaries' `main`.
pub fn bind_each(
    addr: SocketAddr,
    role: &'static str,
    count: usize,
) -> Result<Vec<std::net::TcpListener>, BindError> {
    let mut bound = Vec::with_capacity(count);
    let mut at = addr;
    for _ in 0..count.max(1) {
        let listener = bind_one(at, count > 1).map_err(|source| BindError {
            addr: at,
            role,
            source,
        })?;
        at = listener.local_addr().map_err(|source| BindError {
            addr: at,
            role,
            source,
        })?;
        bound.push(listener);
    }
    Ok(bound)
}

/// One listening socket as tokio's `TcpListener::bind` makes it
/// (`SO_REUSEADDR`, backlog 1024), with `SO_REUSEPORT` when `shared`.
fn bind_one(addr: SocketAddr, shared: bool) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if shared {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// The address of the first of `listeners`, for the "ready" line.
pub fn first_addr_text(listeners: &[std::net::TcpListener]) -> String {
    listeners
        .first()
        .and_then(|listener| listener.local_addr().ok())
        .map_or_else(|| "-".to_owned(), |addr| addr.to_string())
}

/// The address a listener took, for the "ready" line (port 0 resolved);
/// `-` for none.
pub fn local_addr_text(listener: Option<&TcpListener>) -> String {
    listener
        .and_then(|listener| listener.local_addr().ok())
        .map_or_else(|| "-".to_owned(), |addr| addr.to_string())
}

/// Accepts connections on `listener` until shutdown begins, and spawns
/// `serve(stream, peer)` for each through `drain`; each connection gets
/// `TCP_NODELAY`, and `keepalive` unless it is `None`, and a
/// `conn{peer, worker}` span (`worker`: the index of the worker thread
/// whose listener this is, see [`crate::runtime`]). The listener is
/// closed on return, so new connections are refused from then on.
pub async fn until_shutdown<F, Fut>(
    listener: TcpListener,
    worker: usize,
    keepalive: Option<Keepalive>,
    drain: &Drain,
    mut serve: F,
) where
    F: FnMut(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener_set = set_options(&SockRef::from(&listener), keepalive).is_ok();
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
                let inherited = *inherited
                    .get_or_insert_with(|| listener_set && has_options(&socket, keepalive));
                if !inherited && let Err(err) = set_options(&socket, keepalive) {
                    warn!(%peer, error = %err, "cannot set TCP_NODELAY and keep-alive");
                }
                let span = info_span!("conn", %peer, worker);
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
/// and `keepalive` (or keep-alive off).
fn set_options(socket: &Socket, keepalive: Option<Keepalive>) -> std::io::Result<()> {
    socket.set_tcp_nodelay(true)?;
    match keepalive {
        Some(keepalive) => socket.set_tcp_keepalive(&keepalive.tcp()),
        None => socket.set_keepalive(false),
    }
}

/// Whether `socket` already has what [`set_options`] sets.
fn has_options(socket: &Socket, keepalive: Option<Keepalive>) -> bool {
    let read = || -> std::io::Result<bool> {
        if !socket.tcp_nodelay()? {
            return Ok(false);
        }
        Ok(match keepalive {
            None => !socket.keepalive()?,
            Some(wanted) => {
                socket.keepalive()?
                    && socket.tcp_keepalive_time()? == wanted.idle
                    && socket.tcp_keepalive_interval()? == wanted.interval
                    && socket.tcp_keepalive_retries()? == wanted.probes
            }
        })
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

    /// The options of two connections accepted with `keepalive`: the first
    /// decides whether the listener's options are inherited or set on each
    /// socket; the second shows the decision holds.
    async fn accepted_options(keepalive: Option<Keepalive>) -> Vec<Result<Options, String>> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let drain = Drain::new(shutdown.clone());
        let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
        let accepting = until_shutdown(listener, 0, keepalive, &drain, move |stream, _| {
            let _ = seen_tx.send(options(&stream).map_err(|err| err.to_string()));
            async move { drop(stream) }
        });
        let client = async {
            let mut seen = Vec::new();
            for _ in 0..2 {
                let _client = TcpStream::connect(addr).await.unwrap();
                seen.push(seen_rx.recv().await.unwrap());
            }
            shutdown.cancel();
            seen
        };
        tokio::join!(accepting, client).1
    }

    #[tokio::test]
    async fn accepted_connections_get_nodelay_and_keepalive() {
        let expected = (
            true,
            true,
            Duration::from_secs(60),
            Duration::from_secs(10),
            6,
        );
        let seen = accepted_options(Some(Keepalive::DEFAULT)).await;
        assert_eq!(seen, vec![Ok(expected), Ok(expected)]);
    }

    #[tokio::test]
    async fn keepalive_follows_its_settings_or_stays_off() {
        let custom = Keepalive {
            idle: Duration::from_secs(90),
            interval: Duration::from_secs(7),
            probes: 3,
        };
        for seen in accepted_options(Some(custom)).await {
            let (nodelay, on, idle, interval, probes) = seen.unwrap();
            assert!(nodelay && on);
            assert_eq!((idle, interval, probes), (custom.idle, custom.interval, 3));
        }
        for seen in accepted_options(None).await {
            let (nodelay, on, ..) = seen.unwrap();
            assert!(nodelay);
            assert!(!on, "keep-alive is off when turned off");
        }
    }

    #[tokio::test]
    async fn each_worker_listener_shares_the_port_and_accepts() {
        let bound = bind_each("127.0.0.1:0".parse().unwrap(), "test", 2).unwrap();
        let ports: Vec<u16> = bound
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        assert_ne!(ports[0], 0);
        assert_eq!(
            ports[0], ports[1],
            "the second binds the port the first took"
        );
        let listeners: Vec<TcpListener> = bound
            .into_iter()
            .map(|l| TcpListener::from_std(l).unwrap())
            .collect();
        let addr = listeners[0].local_addr().unwrap();
        // The kernel spreads connections by their 4-tuple: within 64, each
        // listener gets some (the chance it does not is 2^-63).
        let mut accepted = [0usize; 2];
        let mut clients = Vec::new();
        for _ in 0..64 {
            clients.push(TcpStream::connect(addr).await.unwrap());
            let which = tokio::select! {
                _ = listeners[0].accept() => 0,
                _ = listeners[1].accept() => 1,
            };
            accepted[which] += 1;
        }
        assert!(accepted.iter().all(|&n| n > 0), "{accepted:?}");
    }

    #[test]
    fn one_listener_is_not_shared() {
        let bound = bind_each("127.0.0.1:0".parse().unwrap(), "test", 1).unwrap();
        let addr = bound[0].local_addr().unwrap();
        let again = bind_each(addr, "test", 1);
        assert!(again.is_err(), "a second bind of the port is refused");
    }

    #[derive(clap::Parser)]
    struct Flags {
        #[command(flatten)]
        keepalive: KeepaliveArgs,
    }

    fn parse(args: &[&str]) -> Result<Option<Keepalive>, String> {
        use clap::Parser as _;
        let argv = std::iter::once("test").chain(args.iter().copied());
        Flags::try_parse_from(argv)
            .map(|flags| flags.keepalive.settings())
            .map_err(|err| err.to_string())
    }

    #[test]
    fn keepalive_flags_default_turn_off_and_are_checked() {
        assert_eq!(parse(&[]), Ok(Some(Keepalive::DEFAULT)));
        assert_eq!(parse(&["--tcp-keepalive-idle", "0s"]), Ok(None));
        let custom = parse(&[
            "--tcp-keepalive-idle",
            "2m",
            "--tcp-keepalive-interval",
            "5s",
            "--tcp-keepalive-probes",
            "9",
        ]);
        let expected = Keepalive {
            idle: Duration::from_secs(120),
            interval: Duration::from_secs(5),
            probes: 9,
        };
        assert_eq!(custom, Ok(Some(expected)));
        for bad in [
            ["--tcp-keepalive-idle", "1500ms"],
            ["--tcp-keepalive-idle", "10h"],
            ["--tcp-keepalive-interval", "0s"],
            ["--tcp-keepalive-probes", "0"],
            ["--tcp-keepalive-probes", "128"],
        ] {
            assert!(parse(&bad).is_err(), "{bad:?} accepted");
        }
    }
}
