//! Listener stage: accepts fronts' connections and serves HTTP/2 on each.
//!
//! Per connection: TLS with a required client certificate (unless h2c),
//! with the certificates current at accept time (a reload changes the next
//! connection, never an open one) and the front's certificate SANs read
//! once (for the TCP allow-list's `fronts`, [`crate::tcp_allow`]),
//! then an HTTP/2 server that advertises SETTINGS_ENABLE_CONNECT_PROTOCOL
//! (RFC 8441 §3 (N1)), then one task per accepted stream, handed to
//! [`crate::dispatch`].

use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::join_all;
use h2hop::admin::{AdminLifetime, Readiness};
use h2hop::drain::Drain;
use h2hop::h2_settings::{CONNECTION_WINDOW, MAX_FRAME_SIZE, REMEMBERED_RESETS, STREAM_WINDOW};
use h2hop::limit::Limit;
use h2hop::tls;
use h2hop::tls::identity::Sans;
use h2hop::tls::reload::Reloadable;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::app::AppConfig;
use crate::apps::Apps;
use crate::context::{Context, Front};
use crate::{Config, Listeners, dispatch};

/// Accepts connections until `shutdown` is cancelled, then drains: each
/// front connection gets GOAWAY and its streams may finish, for up to the
/// drain timeout; whatever still runs after that is cut.
///
/// Worker 0 accepts on `listeners.hop` on the caller's runtime and serves
/// the admin listener; each of `more` is another worker's listener, served
/// on a thread and current-thread runtime of its own
/// ([`h2hop::runtime::spawn_workers`]). A worker has its own app pools;
/// the drain, the tunnel limit and the metrics are the whole process's.
pub async fn serve(
    config: Config,
    listeners: Listeners,
    more: Vec<std::net::TcpListener>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let Listeners { hop, admin } = listeners;
    let drained = CancellationToken::new();
    if let Some(admin) = admin {
        let ready = apps_reachable(&config);
        let metrics = config.metrics.clone();
        let lifetime = AdminLifetime {
            draining: shutdown.clone(),
            stopped: drained.clone(),
        };
        tokio::spawn(h2hop::admin::serve(admin, metrics, ready, lifetime));
    }
    let shared = Arc::new(Shared {
        drain: Drain::new(shutdown),
        tunnels: Limit::new("tunnels", config.max_tunnels),
        config,
        drained,
    });
    let for_workers = shared.clone();
    let others = h2hop::runtime::spawn_workers(more, move |worker, listener| {
        let shared = for_workers.clone();
        async move {
            match TcpListener::from_std(listener) {
                Ok(listener) => accept(&shared, listener, worker).await,
                Err(err) => warn!(worker, error = %err, "worker cannot listen"),
            }
            // Its runtime must run until every worker's streams drained:
            // ending it would drop the tasks it runs.
            shared.drained.cancelled().await;
        }
    });
    let others = match others {
        Ok(others) => others,
        Err(err) => {
            shared.drain.begun().cancel();
            shared.drained.cancel();
            return Err(err);
        }
    };
    accept(&shared, hop, 0).await;
    shared.config.metrics.drain_begun();
    shared.drain.finish(shared.config.drain_timeout).await;
    shared.drained.cancel();
    others.await;
    Ok(())
}

/// What the workers of one sidecar share.
struct Shared {
    config: Config,
    /// Every worker's connections and streams: one drain for the process.
    drain: Drain,
    /// Tunnels open at once, over all workers.
    tunnels: Limit,
    /// Cancelled when the drain has ended, which lets the other workers'
    /// runtimes stop.
    drained: CancellationToken,
}

/// One worker's accept loop on `listener`, until shutdown begins; its
/// connections and streams run on the caller's runtime, with app pools
/// of this worker's own.
async fn accept(shared: &Arc<Shared>, listener: TcpListener, worker: usize) {
    let config = &shared.config;
    let context = Arc::new(Context {
        apps: Apps::new(&config.app, &config.apps),
        upgrades: config.upgrades.clone(),
        drain: shared.drain.clone(),
        tcp_allow: config.tcp_allow.clone(),
        tcp_connect_timeout: config.app.connect_timeout,
        tunnel_idle_timeout: config.tunnel_idle_timeout,
        tunnels: shared.tunnels.clone(),
        max_pending_dials: config.max_pending_dials,
        error_details: config.error_details,
        metrics: config.metrics.clone(),
    });
    let tls = config.tls.clone();
    let keepalive = config.tcp_keepalive;
    h2hop::accept::until_shutdown(
        listener,
        worker,
        keepalive,
        &shared.drain,
        |stream, peer| connection(stream, peer, tls.clone(), shared.clone(), context.clone()),
    )
    .await;
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<Reloadable<rustls::ServerConfig>>,
    shared: Arc<Shared>,
    context: Arc<Context>,
) {
    let config = &shared.config;
    let Some(tls) = tls else {
        return serve_h2(stream, peer, None, config, context).await;
    };
    // The certificates as of now: a reload changes the next handshake, not
    // this connection.
    let acceptor = TlsAcceptor::from(tls.current());
    let bound = config.handshake_timeout;
    let tls = match timeout(bound, acceptor.accept(stream)).await {
        Err(_) => return warn!(after = ?bound, "TLS handshake timed out"),
        Ok(Err(err)) => {
            // A front with no certificate, one from another CA, or one
            // without an allowed SAN (named in the reason) ends here.
            return warn!(%peer, reason = %tls::describe_failure(&err), "TLS handshake refused");
        }
        Ok(Ok(tls)) => tls,
    };
    if let Err(err) = tls::require_h2_alpn(tls.get_ref().1.alpn_protocol()) {
        return warn!(error = %err, "TLS peer did not negotiate h2");
    }
    // The front's identity, for the TCP allow-list's `fronts`: read once
    // per connection, from the certificate the handshake verified.
    let sans = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|cert| Arc::new(Sans::of(cert)));
    serve_h2(tls, peer, sans, config, context).await;
}

/// Runs one HTTP/2 connection from the front at `peer`, whose certificate
/// carries `sans` (`None` over h2c): the accept loop also drives its I/O,
/// so it only spawns and never waits on a stream.
async fn serve_h2<T>(
    io: T,
    peer: SocketAddr,
    sans: Option<Arc<Sans>>,
    config: &Config,
    context: Arc<Context>,
) where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let handshake = h2::server::Builder::new()
        .enable_connect_protocol()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME_SIZE)
        .max_concurrent_streams(config.max_concurrent_streams)
        // The front is this connection's one peer, authenticated, and
        // the one that applies rapid-reset limits to its own clients
        // (RFC 9113 §10.5). Each reset it sends here is some client's,
        // and one client's burst must not end every other client's
        // streams, which h2's defaults would: GOAWAY ENHANCE_YOUR_CALM
        // after 20 resets of streams not yet accepted, and after 1,024
        // resets of its own over the connection's whole life.
        .max_pending_accept_reset_streams(pending_reset_limit(config.max_concurrent_streams))
        .max_local_error_reset_streams(None)
        .max_concurrent_reset_streams(REMEMBERED_RESETS)
        .handshake::<_, Bytes>(io);
    let mut connection = match timeout(config.handshake_timeout, handshake).await {
        Err(_) => return warn!("HTTP/2 handshake timed out"),
        Ok(Err(err)) => {
            return warn!(reason = %tls::describe_failure(&err), "HTTP/2 handshake failed");
        }
        Ok(Ok(connection)) => connection,
    };
    info!("front connected");
    let metrics = context.metrics.clone();
    metrics.connections(1);
    let _counted = scopeguard(move || metrics.connections(-1));
    // One wait for the drain, for the connection's life: made anew for
    // each stream, it registered with the token (a mutex every task
    // shares) and left it again per request (callgrind, sidecar plain
    // GET: 54.0k → 53.8k instructions per request).
    let mut begun = pin!(context.drain.begun().clone().cancelled_owned());
    let mut going_away = false;
    let dials = Limit::new("pending app dials", context.max_pending_dials);
    loop {
        let accepted = tokio::select! {
            accepted = connection.accept() => accepted,
            // GOAWAY: the front opens no new stream here, the open ones
            // finish; accept() keeps driving them and ends when they have.
            () = &mut begun, if !going_away => {
                going_away = true;
                connection.graceful_shutdown();
                continue;
            }
        };
        let Some(accepted) = accepted else { break };
        match accepted {
            Ok((request, respond)) => {
                context.metrics.streams(1);
                let counted = stream_counted(context.metrics.clone());
                // Boxed, with all it needs: the dispatch state is kilobytes
                // (the request among it), and freed before a tunnel's relay
                // starts. The relay stays in the stream's task, unboxed:
                // that makes every plain request's task as big as a relay,
                // which tokio copies a few times while spawning (callgrind,
                // sidecar plain GET: 58.9k → 60.6k instructions), but boxed
                // or in a task of its own it cost each idle tunnel more
                // (front and sidecar RSS at 10,000 idle tunnels: 6.17 →
                // 6.78 KiB boxed, 6.6 → 7.0 KiB in a task of its own).
                let (stream_context, dials) = (context.clone(), dials.clone());
                let front = Front {
                    addr: peer,
                    sans: sans.clone(),
                };
                let dispatch = Box::pin(async move {
                    dispatch::dispatch(&stream_context, &dials, front, request, respond).await
                });
                context.drain.spawn(async move {
                    let _counted = counted;
                    let relay = match dispatch.await {
                        Some((tunnel, entry)) => tunnel.relay(entry),
                        None => return,
                    };
                    relay.await;
                });
            }
            Err(err) => {
                return warn!(reason = %tls::describe_failure(&err), "connection failed");
            }
        }
    }
    debug!("front disconnected");
}

/// Streams the front may reset before this connection accepted them, at
/// once: ten times the stream limit, so that every client of the front
/// can drop all its streams in the same instant. It still bounds the
/// queue h2 keeps of them.
fn pending_reset_limit(max_concurrent_streams: u32) -> usize {
    usize::try_from(max_concurrent_streams)
        .unwrap_or(usize::MAX)
        .saturating_mul(10)
}

/// Takes one off the open streams gauge when dropped, however the stream's
/// task ends.
fn stream_counted(metrics: Arc<h2hop::metrics::Metrics>) -> impl Drop {
    scopeguard(move || metrics.streams(-1))
}

/// Runs `undo` when dropped: keeps a gauge right however a task ends.
fn scopeguard<F: FnOnce()>(undo: F) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(undo) = self.0.take() {
                undo();
            }
        }
    }
    Guard(Some(undo))
}

/// `/readyz`: every app accepts a TCP connection within its connect
/// timeout; the reason names each app that does not.
fn apps_reachable(config: &Config) -> Readiness {
    let apps: Arc<[(String, AppConfig)]> = if config.apps.is_empty() {
        Arc::from([("app".to_owned(), config.app.clone())])
    } else {
        let named = config.apps.iter();
        named
            .map(|app| (format!("app {}", app.name), app.config.clone()))
            .collect()
    };
    Arc::new(move || {
        let apps = apps.clone();
        Box::pin(async move {
            let checks = apps.iter().map(|(label, app)| app_reachable(label, app));
            let failures: Vec<String> = join_all(checks).await.into_iter().flatten().collect();
            if failures.is_empty() {
                Ok(())
            } else {
                Err(failures.join("; "))
            }
        })
    })
}

/// Why the app under `label` is not reachable, or `None` when it accepts
/// a TCP connection within its connect timeout.
async fn app_reachable(label: &str, app: &AppConfig) -> Option<String> {
    match timeout(app.connect_timeout, TcpStream::connect(app.addr.as_str())).await {
        Ok(Ok(_)) => None,
        Ok(Err(err)) => Some(format!(
            "{label} at {} refuses connections: {err}",
            app.addr
        )),
        Err(_) => Some(format!("{label} at {} did not accept in time", app.addr)),
    }
}
