//! Listener stage: accepts client connections on the plain and the TLS
//! listener, each in a task of its own under the connection limits, takes
//! the client's address from a PROXY header if one is expected
//! ([`crate::proxy_header`]), does the TLS handshake, and hands the
//! connection to [`crate::client_http`] (HTTP/2 if the client's ALPN
//! chose it, or a cleartext client sent the HTTP/2 preface
//! ([`crate::preface`]), else HTTP/1.1); a TCP service's listener goes
//! to [`crate::tcp_tunnel`]. It builds the [`Context`] every request
//! shares, serves readiness on the admin listener, and drains on shutdown.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use h2hop::admin::{AdminLifetime, Readiness};
use h2hop::drain::Drain;
use h2hop::limit::{Limit, Permit};
use h2hop::metrics::{LimitKind, Metrics};
use h2hop::relay;
use h2hop::tls;
use h2hop::tls::reload::Reloadable;
use http::uri::Scheme;
use rustls::ServerConfig;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug, info_span, warn};

use crate::client_http::{ClientSettings, serve_h1, serve_h2};
use crate::client_limits::{AddressPlace, PerAddress};
use crate::context::Context;
use crate::live_routing::{self, LiveRouting, Snapshot};
use crate::preface::{self, PlainH2c, Spoken};
use crate::proxy_header::{self, ProxyProtocol};
use crate::{Config, Listeners};

/// Accepts connections on `plain` (HTTP/1.1, or h2c) and, when the configuration
/// has client TLS, on `tls` (HTTP/2 or HTTP/1.1 by ALPN), until `shutdown`
/// is cancelled; then drains: open connections finish their request in
/// flight and close, tunnels get up to `drain_timeout`, and whatever still
/// runs after that is cut.
///
/// Worker 0 accepts on `listeners` on the caller's runtime and serves the
/// admin listener; each of `more` is another worker's pair of listeners
/// (plain, TLS), served on a thread and current-thread runtime of its own
/// ([`h2hop::runtime::spawn_workers`]). The workers share the routing
/// (with its connections to the sidecars), the limits, the drain and the
/// metrics.
pub async fn serve(
    config: Config,
    listeners: Listeners,
    more: Vec<WorkerListeners>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let Listeners {
        plain,
        tls,
        admin,
        tcp,
    } = listeners;
    // Before the routing is built: its endpoints keep connections per worker.
    h2hop::runtime::expect_workers(more.len() + 1);
    let shared = Arc::new(shared(config, shutdown));
    if let Some(admin) = admin {
        let ready = sidecar_usable(shared.context.clone());
        let metrics = shared.context.metrics.clone();
        let lifetime = AdminLifetime {
            draining: shared.context.drain.begun().clone(),
            stopped: shared.drained.clone(),
        };
        tokio::spawn(h2hop::admin::serve(admin, metrics, ready, lifetime));
    }
    let for_workers = shared.clone();
    let others = h2hop::runtime::spawn_workers(more, move |worker, listeners| {
        let shared = for_workers.clone();
        async move {
            let WorkerListeners { plain, tls, tcp } = listeners;
            let tls = tls.map(TcpListener::from_std).transpose();
            let tcp = tcp.into_iter().map(TcpListener::from_std).collect();
            match (TcpListener::from_std(plain), tls, tcp) {
                (Ok(plain), Ok(tls), Ok(tcp)) => accept(&shared, plain, tls, tcp, worker).await,
                (Err(err), _, _) | (_, Err(err), _) | (_, _, Err(err)) => {
                    warn!(worker, error = %err, "worker cannot listen");
                }
            }
            // Its runtime must run until every worker's connections
            // drained: ending it would drop the tasks it runs.
            shared.drained.cancelled().await;
        }
    });
    let others = match others {
        Ok(others) => others,
        Err(err) => {
            shared.context.drain.begun().cancel();
            shared.drained.cancel();
            return Err(err);
        }
    };
    accept(&shared, plain, tls, tcp, 0).await;
    shared.context.metrics.drain_begun();
    shared.context.drain.finish(shared.drain_timeout).await;
    shared.drained.cancel();
    others.await;
    Ok(())
}

/// Another worker's listeners, siblings of worker 0's [`Listeners`].
#[derive(Debug)]
pub struct WorkerListeners {
    /// Cleartext clients.
    pub plain: std::net::TcpListener,
    /// TLS clients, when the front has a TLS listener.
    pub tls: Option<std::net::TcpListener>,
    /// One per TCP service, in [`Config::tcp`] order.
    pub tcp: Vec<std::net::TcpListener>,
}

/// What the workers of one front share.
struct Shared {
    context: Arc<Context>,
    connections: Limit,
    per_address: PerAddress,
    proxy: Arc<ProxyProtocol>,
    settings: ClientSettings,
    client_tls: Option<Reloadable<ServerConfig>>,
    keepalive: Option<h2hop::accept::Keepalive>,
    drain_timeout: Duration,
    /// Cancelled when the drain has ended, which lets the other workers'
    /// runtimes stop.
    drained: CancellationToken,
}

/// Builds what the workers share from `config`: the live routing (its
/// reloads attached, the config file watched), the [`Context`], the
/// connection limits.
fn shared(config: Config, shutdown: CancellationToken) -> Shared {
    let metrics = config.metrics.clone();
    let drain = Drain::new(shutdown);
    let settings = ClientSettings {
        header_timeout: config.header_timeout,
        max_header_size: config.max_header_size,
        extended_connect: config.client_extended_connect,
        idle_timeout: config.client_idle_timeout,
        max_streams: config.client_max_streams,
        plain_h2c: config.plain_h2c,
    };
    let client_tls = config.client_tls.clone();
    let flags = config.upstream.clone();
    let snapshot = Snapshot::initial(config.routing, config.upstream, &metrics);
    let snapshot = snapshot.with_tcp(config.tcp);
    let routing = Arc::new(LiveRouting::new(snapshot));
    let reload = config.routing_reload.clone();
    reload.attach(
        config.config_file.clone(),
        flags,
        routing.clone(),
        metrics.clone(),
        client_tls
            .clone()
            .map(|tls| (tls, config.client_tls_flags.clone())),
    );
    if let (Some(file), Some(every)) = (&config.config_file, config.config_watch_interval) {
        let stop = drain.begun().clone();
        // Read before serving, so that a change from now on is seen.
        let loaded = std::fs::read(file).ok();
        let watch = live_routing::watch(reload, file.clone(), loaded, every, stop);
        tokio::spawn(watch);
    }
    let context = Arc::new(Context {
        routing,
        response_timeout: config.response_timeout,
        upgrade_timeout: config.upgrade_timeout,
        tunnel_timeouts: relay::Timeouts {
            idle: config.tunnel_idle_timeout,
            fin: config.client_fin_timeout,
        },
        protocols: config.protocols,
        upgrade_body_limit: config.upgrade_body_limit,
        drain,
        tunnels: Limit::new("tunnels", config.max_tunnels),
        metrics,
        error_details: config.error_details,
        client_fields: config.client_fields,
    });
    Shared {
        context,
        connections: Limit::new("client connections", config.max_connections),
        per_address: PerAddress::new(config.max_connections_per_client),
        proxy: Arc::new(config.proxy_protocol),
        settings,
        client_tls,
        keepalive: config.tcp_keepalive,
        drain_timeout: config.drain_timeout,
        drained: CancellationToken::new(),
    }
}

/// One worker's accept loops on `plain`, `tls` and the TCP services'
/// listeners `tcp`, until shutdown begins; its connections run on the
/// caller's runtime.
async fn accept(
    shared: &Shared,
    plain: TcpListener,
    tls: Option<TcpListener>,
    tcp: Vec<TcpListener>,
    worker: usize,
) {
    let Shared {
        context,
        connections,
        per_address,
        proxy,
        settings,
        ..
    } = shared;
    let (drain, settings) = (&context.drain, *settings);
    let accept = |listener: TcpListener, client_tls: Option<Reloadable<ServerConfig>>| {
        h2hop::accept::until_shutdown(
            listener,
            worker,
            shared.keepalive,
            drain,
            move |stream, peer| {
                let metrics = &context.metrics;
                let permit = connection_place(connections, peer, metrics);
                // In accept order where the address is known now; after the
                // header where a PROXY header may name another client.
                let address = match permit {
                    Some(_) if proxy.may_speak_for_others(peer) => {
                        AddressLimit::AfterHeader(per_address.clone())
                    }
                    Some(_) => AddressLimit::Settled(address_place(per_address, peer, metrics)),
                    None => AddressLimit::Settled(None),
                };
                let places = Places {
                    permit,
                    address,
                    proxy: proxy.clone(),
                };
                // Boxed: the spawn would otherwise copy the connection's
                // kilobytes of state several times on its way into the task.
                Box::pin(connection(
                    stream,
                    peer,
                    client_tls.clone(),
                    context.clone(),
                    settings,
                    places,
                ))
            },
        )
    };
    let plain_loop = accept(plain, None);
    let tls_loop = async {
        match (tls, shared.client_tls.clone()) {
            (Some(listener), Some(client_tls)) => accept(listener, Some(client_tls)).await,
            (Some(_), None) => warn!("a TLS listener without client TLS settings: not served"),
            (None, _) => {}
        }
    };
    let tcp_loop = crate::tcp_tunnel::accept(context, tcp, worker, shared.keepalive);
    tokio::join!(plain_loop, tls_loop, tcp_loop);
}

/// A new connection's place under the connection limit, taken at accept;
/// `None`, logged, when it is full.
fn connection_place(connections: &Limit, peer: SocketAddr, metrics: &Metrics) -> Option<Permit> {
    let Some(permit) = connections.try_take() else {
        warn!(%peer, max = connections.max(), "client connection limit reached: refused");
        metrics.limit_reached(LimitKind::ClientConnections);
        return None;
    };
    Some(permit)
}

/// The client's place under its address's limit, taken once the address
/// is settled (a PROXY header's source counts, not the balancer's); `None`,
/// logged, when it is full.
fn address_place(
    per_address: &PerAddress,
    client: SocketAddr,
    metrics: &Metrics,
) -> Option<AddressPlace> {
    let Some(place) = per_address.try_take(client.ip()) else {
        warn!(%client, max = per_address.max(), "connection limit of this client address reached: refused");
        metrics.limit_reached(LimitKind::ClientAddress);
        return None;
    };
    Some(place)
}

/// What a new connection is admitted by: its place under the connection
/// limit (`None`: refused), its place under its address's, and the PROXY
/// protocol policy that settles that address.
struct Places {
    permit: Option<Permit>,
    address: AddressLimit,
    proxy: Arc<ProxyProtocol>,
}

/// A connection's place under the per-address limit.
enum AddressLimit {
    /// Taken at accept (`None`: refused), the peer being the client.
    Settled(Option<AddressPlace>),
    /// To be taken once the PROXY header, if any, named the client: the
    /// peer is a balancer that speaks for many.
    AfterHeader(PerAddress),
}

/// Serves one client connection: the PROXY header first when one is
/// expected, TLS next when `client_tls` is set, then HTTP/2 if ALPN chose
/// `h2`, else HTTP/1.1. `places` admits it under the connection limits.
async fn connection(
    mut stream: TcpStream,
    socket_peer: SocketAddr,
    client_tls: Option<Reloadable<ServerConfig>>,
    context: Arc<Context>,
    settings: ClientSettings,
    places: Places,
) {
    let Places {
        permit,
        address,
        proxy,
    } = places;
    let admitted = match &address {
        AddressLimit::Settled(place) => permit.is_some() && place.is_some(),
        AddressLimit::AfterHeader(_) => permit.is_some(),
    };
    let peer = if admitted {
        let bound = settings.header_timeout;
        let settled = proxy_header::client_address(&proxy, &mut stream, socket_peer, bound).await;
        let Some(peer) = settled else { return };
        peer
    } else {
        socket_peer
    };
    let place = match address {
        AddressLimit::Settled(place) => place,
        AddressLimit::AfterHeader(per_address) => {
            address_place(&per_address, peer, &context.metrics)
        }
    };
    let permit = permit.zip(place);
    let serve = serve_admitted(stream, peer, client_tls, context, settings, permit);
    if peer == socket_peer {
        return serve.await;
    }
    // Behind a balancer: the lines logged from here on name the client
    // too, not only the balancer's `conn{peer}`. Boxed: only these pay.
    let span = info_span!("proxied", client = %peer);
    Box::pin(serve.instrument(span)).await;
}

/// Serves a connection whose client address is settled: TLS first when
/// `client_tls` is set, then HTTP/2 if ALPN chose `h2`, else HTTP/1.1.
/// `permit` is its place under the connection limits; `None` refuses it.
async fn serve_admitted(
    stream: TcpStream,
    peer: SocketAddr,
    client_tls: Option<Reloadable<ServerConfig>>,
    context: Arc<Context>,
    settings: ClientSettings,
    permit: Option<(Permit, AddressPlace)>,
) {
    let Some(client_tls) = client_tls else {
        let Some(_permit) = permit else {
            return refuse_connection(stream).await;
        };
        return serve_plain(stream, peer, context, settings).await;
    };
    // Over the limit, a TLS client is simply closed: an answer would cost
    // the handshake the limit is there to spare.
    let Some(_permit) = permit else { return };
    // Boxed: the TLS handshake's state is kilobytes that a cleartext
    // connection's task need not be sized for.
    Box::pin(serve_tls(stream, peer, client_tls, context, settings)).await;
}

/// A cleartext connection: HTTP/2 with prior knowledge if it opens with
/// the preface (RFC 9113 §3.3, §3.4) and `--plain-h2c` is on, else
/// HTTP/1.1. The wait for the first bytes is bounded by the header timeout
/// (a client that sends part of the preface, then something else, may
/// then take that long again to send its HTTP/1.1 head).
async fn serve_plain(
    stream: TcpStream,
    peer: SocketAddr,
    context: Arc<Context>,
    settings: ClientSettings,
) {
    if settings.plain_h2c == PlainH2c::Off {
        return serve_h1(stream, peer, Scheme::HTTP, context, settings).await;
    }
    let begun = context.drain.begun();
    let Some((spoken, stream)) = preface::tell(stream, settings.header_timeout, begun).await else {
        return debug!("cleartext client sent nothing decisive: closed");
    };
    match spoken {
        Spoken::Http2 => serve_h2(stream, peer, Scheme::HTTP, context, settings).await,
        Spoken::Http1 => serve_h1(stream, peer, Scheme::HTTP, context, settings).await,
    }
}

/// TLS, then HTTP/2 if ALPN chose `h2`, else HTTP/1.1.
async fn serve_tls(
    stream: TcpStream,
    peer: SocketAddr,
    client_tls: Reloadable<ServerConfig>,
    context: Arc<Context>,
    settings: ClientSettings,
) {
    let bound = settings.header_timeout;
    // The certificate as of now: a reload changes the next handshake.
    let acceptor = TlsAcceptor::from(client_tls.current());
    let tls = match tokio::time::timeout(bound, acceptor.accept(stream)).await {
        Err(_) => return debug!(after = ?bound, "client TLS handshake timed out"),
        Ok(Err(err)) => {
            return debug!(reason = %tls::describe_failure(&err), "client TLS handshake failed");
        }
        Ok(Ok(tls)) => tls,
    };
    if tls.get_ref().1.alpn_protocol() == Some(tls::ALPN_H2) {
        serve_h2(tls, peer, Scheme::HTTPS, context, settings).await;
    } else {
        serve_h1(tls, peer, Scheme::HTTPS, context, settings).await;
    }
}

/// Past the connection limit: a 503 without reading the request, then
/// close. The request is drained briefly first, so that closing does not
/// reset the connection before the client read the answer.
async fn refuse_connection(mut stream: TcpStream) {
    const ANSWER: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 45\r\n\r\nh2hop-front: client connection limit reached\n";
    if stream.write_all(ANSWER).await.is_err() || stream.shutdown().await.is_err() {
        return;
    }
    // On the heap: an array here would make every connection's future
    // (which holds this one's state) 4 KiB bigger, refused or not.
    let mut sink = vec![0u8; 4096];
    let drain = async {
        let mut left: usize = 64 * 1024;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(read) => left = left.saturating_sub(read),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// `/readyz`, over the clusters of the routing in use: each with health
/// checks has a healthy sidecar, and some sidecar of the others has a
/// usable connection, or takes a new one now
/// ([`crate::upstream::health::readiness`]).
fn sidecar_usable(context: Arc<Context>) -> Readiness {
    Arc::new(move || {
        let context = context.clone();
        Box::pin(async move {
            let routing = context.routing.load();
            crate::upstream::health::readiness(&routing.clusters).await
        })
    })
}
