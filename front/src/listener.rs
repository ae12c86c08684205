//! Listener stage: accepts client connections and serves HTTP/1.1 on each,
//! or, on the TLS listener, HTTP/2 when the client's ALPN chose it.
//!
//! One task per connection runs hyper's HTTP/1.1 server with upgrades on
//! (or its HTTP/2 server with RFC 8441 extended CONNECT);
//! each request is classified ([`crate::classify`]) and handed to
//! [`crate::upgrade`] or [`crate::forward`]. Errors become responses here,
//! and are logged here, once.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use h2::RecvStream;
use h2::client::ResponseFuture;
use h2hop::access::{self, Entry, Logged};
use h2hop::admin::Readiness;
use h2hop::drain::{Drain, Drained};
use h2hop::error_answer::RequestId;
use h2hop::limit::{Limit, Permit};
use h2hop::metrics::{Culprit, LimitKind, Metrics, TunnelResult};
use h2hop::relay::{self, CLIENT_CONNECTION_WINDOW, H2Body, MAX_FRAME_SIZE, STREAM_WINDOW};
use h2hop::tls;
use h2hop::tls::reload::Reloadable;
use h2hop::upgrade::Protocols;
use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, UPGRADE};
use http::uri::Scheme;
use http::{Request, Response, StatusCode, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug, debug_span, info, warn};

use crate::classify::{self, Class, Rejection};
use crate::client_limits::{Activity, AddressPlace, InFlight, PerAddress, Resets};
use crate::routes::{Route, RouteTable};
use crate::upstream::Cluster;
use crate::{Config, Error, Listeners, forward, upgrade};

/// The body of every response the front writes: its own short texts, or a
/// body streamed from the sidecar.
pub type ResponseBody = Either<Full<Bytes>, H2Body>;

/// An empty body.
pub fn empty() -> ResponseBody {
    Either::Left(Full::new(Bytes::new()))
}

/// A body streamed from an HTTP/2 stream.
pub fn streamed(body: H2Body) -> ResponseBody {
    Either::Right(body)
}

/// What every request handler shares.
pub struct Context {
    /// The sidecar clusters, indexed by the routes.
    pub clusters: Vec<Cluster>,
    routes: RouteTable,
    /// Bound on the sidecar's response head to a plain request.
    pub response_timeout: Duration,
    /// Bound on the sidecar's answer to an upgrade, and on an upgrade body.
    pub upgrade_timeout: Duration,
    /// Close a tunnel where nothing moved for this long, or where the
    /// client left its half open after the sidecar's side ended.
    pub tunnel_timeouts: relay::Timeouts,
    protocols: Protocols,
    upgrade_body_limit: u64,
    /// Shutdown: tunnels are spawned through it so that they drain.
    pub drain: Drain,
    /// Tunnels open at once.
    pub tunnels: Limit,
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
    /// Error answers carry their cause chain (`--error-details`).
    error_details: bool,
}

impl Context {
    /// Waits for the sidecar's response head, within `bound`; `cluster`
    /// names where it comes from in errors.
    pub async fn await_response(
        &self,
        response: ResponseFuture,
        bound: Duration,
        cluster: &Cluster,
    ) -> Result<Response<RecvStream>, Error> {
        let addr = cluster.name().to_owned();
        match tokio::time::timeout(bound, response).await {
            Err(_) => Err(Error::UpstreamTimeout {
                step: "response",
                addr,
                after: bound,
            }),
            Ok(Err(source)) => Err(Error::UpstreamH2 { addr, source }),
            Ok(Ok(response)) => Ok(response),
        }
    }
}

/// Accepts connections on `plain` (HTTP/1.1) and, when the configuration
/// has client TLS, on `tls` (HTTP/2 or HTTP/1.1 by ALPN), until `shutdown`
/// is cancelled; then drains: open connections finish their request in
/// flight and close, tunnels get up to `drain_timeout`, and whatever still
/// runs after that is cut.
pub async fn serve(config: Config, listeners: Listeners, shutdown: CancellationToken) {
    let Listeners { plain, tls, admin } = listeners;
    let metrics = config.metrics.clone();
    let connections = Limit::new("client connections", config.max_connections);
    let per_address = PerAddress::new(config.max_connections_per_client);
    let drain = Drain::new(shutdown);
    let settings = ClientSettings {
        header_timeout: config.header_timeout,
        max_header_size: config.max_header_size,
        extended_connect: config.client_extended_connect,
        idle_timeout: config.client_idle_timeout,
        max_streams: config.client_max_streams,
    };
    let client_tls = config.client_tls.clone();
    let (clusters, routes) = match config.routing {
        Some(routing) => {
            let clusters = routing.clusters.into_iter();
            let clusters =
                clusters.map(|(name, endpoints)| Cluster::new(name, endpoints, metrics.clone()));
            (clusters.collect(), routing.routes)
        }
        None => {
            let name = config.upstream.addr.clone();
            let cluster = Cluster::new(name, vec![config.upstream], metrics.clone());
            (vec![cluster], RouteTable::single(0))
        }
    };
    let context = Arc::new(Context {
        clusters,
        routes,
        response_timeout: config.response_timeout,
        upgrade_timeout: config.upgrade_timeout,
        tunnel_timeouts: relay::Timeouts {
            idle: config.tunnel_idle_timeout,
            fin: config.client_fin_timeout,
        },
        protocols: config.protocols,
        upgrade_body_limit: config.upgrade_body_limit,
        drain: drain.clone(),
        tunnels: Limit::new("tunnels", config.max_tunnels),
        metrics: metrics.clone(),
        error_details: config.error_details,
    });
    if let Some(admin) = admin {
        let ready = sidecar_usable(context.clone());
        tokio::spawn(h2hop::admin::serve(
            admin,
            metrics,
            ready,
            drain.begun().clone(),
        ));
    }
    let keepalive = config.tcp_keepalive;
    let accept = |listener: TcpListener, client_tls: Option<Reloadable<ServerConfig>>| {
        let (drain, context) = (&drain, &context);
        let (connections, per_address) = (&connections, &per_address);
        h2hop::accept::until_shutdown(listener, keepalive, drain, move |stream, peer| {
            let permit = places(connections, per_address, peer, &context.metrics);
            connection(
                stream,
                peer,
                client_tls.clone(),
                context.clone(),
                settings,
                permit,
            )
        })
    };
    let plain_loop = accept(plain, None);
    let tls_loop = async {
        match (tls, client_tls.clone()) {
            (Some(listener), Some(client_tls)) => accept(listener, Some(client_tls)).await,
            (Some(_), None) => warn!("a TLS listener without client TLS settings: not served"),
            (None, _) => {}
        }
    };
    tokio::join!(plain_loop, tls_loop);
    info!(
        connections_and_tunnels = drain.running(),
        "stopped accepting; draining"
    );
    match drain.finish(config.drain_timeout).await {
        Drained::Clean => info!("drained"),
        Drained::Cut(tasks) => {
            warn!(tasks, after = ?config.drain_timeout, "drain timeout: closed what was still open");
        }
    }
}

/// A new connection's places under the connection limit and under its
/// address's; `None`, logged, when either is full.
fn places(
    connections: &Limit,
    per_address: &PerAddress,
    peer: SocketAddr,
    metrics: &Metrics,
) -> Option<(Permit, AddressPlace)> {
    let Some(permit) = connections.try_take() else {
        warn!(%peer, max = connections.max(), "client connection limit reached: refused");
        metrics.limit_reached(LimitKind::ClientConnections);
        return None;
    };
    let Some(place) = per_address.try_take(peer.ip()) else {
        warn!(%peer, max = per_address.max(), "connection limit of this client address reached: refused");
        metrics.limit_reached(LimitKind::ClientAddress);
        return None;
    };
    Some((permit, place))
}

/// How long a connection closed for resetting most of its streams may
/// finish what it has in flight after its GOAWAY.
const ABUSIVE_GRACE: Duration = Duration::from_secs(1);

/// Streams a client may reset before the front accepted them, at once,
/// before it gets GOAWAY ENHANCE_YOUR_CALM.
const CLIENT_PENDING_RESETS: usize = 20;

/// What bounds and shapes one client connection.
#[derive(Debug, Clone, Copy)]
struct ClientSettings {
    header_timeout: Duration,
    max_header_size: usize,
    /// Advertise SETTINGS_ENABLE_CONNECT_PROTOCOL to HTTP/2 clients.
    extended_connect: bool,
    /// Nothing in flight for this long closes the connection.
    idle_timeout: Duration,
    /// Streams open at once on an HTTP/2 connection.
    max_streams: u32,
}

/// Serves one client connection: TLS first when `client_tls` is set, then
/// HTTP/2 if ALPN chose `h2`, else HTTP/1.1. `permit` is its place under
/// the connection limits; `None` refuses it.
async fn connection(
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
        return serve_h1(stream, peer, Scheme::HTTP, context, settings).await;
    };
    // Over the limit, a TLS client is simply closed: an answer would cost
    // the handshake the limit is there to spare.
    let Some(_permit) = permit else { return };
    // Boxed: the TLS handshake's state is kilobytes that a cleartext
    // connection's task need not be sized for.
    Box::pin(serve_tls(stream, peer, client_tls, context, settings)).await;
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
        serve_h2(tls, peer, context, settings).await;
    } else {
        serve_h1(tls, peer, Scheme::HTTPS, context, settings).await;
    }
}

/// HTTP/1.1 with upgrades. Once shutdown begins it finishes the request in
/// flight and closes instead of waiting for another (an upgraded connection
/// has left hyper by then and drains as a tunnel).
async fn serve_h1<T>(
    io: T,
    peer: SocketAddr,
    scheme: Scheme,
    context: Arc<Context>,
    settings: ClientSettings,
) where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let begun = context.drain.begun().clone();
    let activity = Activity::default();
    let in_flight = activity.clone();
    let service = service_fn(move |mut request: Request<Incoming>| {
        let context = context.clone();
        let exchange = in_flight.begin();
        request.extensions_mut().insert(scheme.clone());
        // Boxed: hyper moves the future it is given several times, and
        // this one is kilobytes (callgrind: a fifth of a plain GET's work
        // was those copies).
        Box::pin(
            async move { Ok::<_, Infallible>(handle(&context, peer, request, exchange).await) },
        )
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout)
        // A head that does not fit is answered 431 by hyper.
        .max_buf_size(settings.max_header_size)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(served);
    let idle = activity.idle(settings.header_timeout, settings.idle_timeout);
    let result = tokio::select! {
        result = served.as_mut() => result,
        () = begun.cancelled() => {
            served.as_mut().graceful_shutdown();
            served.await
        }
        () = idle => {
            debug!(after = ?settings.idle_timeout, "client connection idle: closed");
            served.as_mut().graceful_shutdown();
            close_within(settings.header_timeout, served).await
        }
    };
    if let Err(err) = result {
        debug!(error = %err, "client connection ended with an error");
    }
}

/// HTTP/2 from a client (ALPN `h2`): ordinary requests, and RFC 8441
/// extended CONNECT when advertised. Shutdown sends GOAWAY and lets the
/// open streams finish.
async fn serve_h2<T>(io: T, peer: SocketAddr, context: Arc<Context>, settings: ClientSettings)
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let begun = context.drain.begun().clone();
    let activity = Activity::default();
    let in_flight = activity.clone();
    let max_streams = settings.max_streams;
    let at_limit_logged = AtomicBool::new(false);
    let resets = Resets::default();
    let counted = resets.clone();
    let metrics = context.metrics.clone();
    let service = service_fn(move |mut request: Request<Incoming>| {
        let context = context.clone();
        let exchange = in_flight.begin();
        let unanswered = counted.opened();
        // h2 refuses streams past the limit without telling us: say when
        // this connection reaches it, once (a browser that keeps streams
        // half open, or a client holding them, shows here).
        if in_flight.in_flight() >= max_streams as usize
            && !at_limit_logged.swap(true, Ordering::Relaxed)
        {
            warn!(%peer, max_streams, "HTTP/2 client reached its stream limit: further streams are refused (REFUSED_STREAM)");
            context.metrics.limit_reached(LimitKind::ClientStreams);
        }
        // HTTP/2 is served over TLS only: classify checks the client's
        // `:scheme` against it.
        request.extensions_mut().insert(Scheme::HTTPS);
        // Boxed, as for HTTP/1.1.
        Box::pin(async move {
            let response = handle(&context, peer, request, exchange).await;
            unanswered.answered();
            Ok::<_, Infallible>(response)
        })
    });
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CLIENT_CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME_SIZE)
        .max_concurrent_streams(settings.max_streams)
        // The rapid-reset limit stays here, with the client (RFC 9113
        // §10.5): past 20 streams reset before they were accepted, GOAWAY
        // ENHANCE_YOUR_CALM (h2's default, stated so it stays). The
        // sidecar takes the resets it is then sent from us as they come.
        .max_pending_accept_reset_streams(Some(CLIENT_PENDING_RESETS))
        .max_header_list_size(u32::try_from(settings.max_header_size).unwrap_or(u32::MAX));
    if settings.extended_connect {
        builder.enable_connect_protocol();
    }
    let served = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(served);
    // Before the first stream this bounds the preface and SETTINGS too.
    let idle = activity.idle(settings.header_timeout, settings.idle_timeout);
    let result = tokio::select! {
        result = served.as_mut() => result,
        () = begun.cancelled() => {
            served.as_mut().graceful_shutdown();
            served.await
        }
        () = idle => {
            debug!(after = ?settings.idle_timeout, "client HTTP/2 connection idle: GOAWAY");
            served.as_mut().graceful_shutdown();
            close_within(settings.header_timeout, served).await
        }
        () = resets.abusive() => {
            warn!(%peer, "client reset most of its streams before their answer: connection closed");
            metrics.error(Culprit::Client);
            served.as_mut().graceful_shutdown();
            close_within(ABUSIVE_GRACE, served).await
        }
    };
    if let Err(err) = result {
        debug!(error = %err, "client HTTP/2 connection ended with an error");
    }
}

/// Lets an idle connection that was told to close (GOAWAY) finish, within
/// `bound`: one that never completed its HTTP/2 preface would otherwise
/// wait for it forever. Past the bound it is dropped, which closes it.
async fn close_within<F, E>(bound: Duration, served: F) -> Result<(), E>
where
    F: Future<Output = Result<(), E>>,
{
    tokio::time::timeout(bound, served).await.unwrap_or(Ok(()))
}

/// The scheme the client used: HTTP/2 carries it, HTTP/1.1 connections
/// note theirs in the request's extensions.
pub fn client_scheme(parts: &http::request::Parts) -> Scheme {
    parts
        .uri
        .scheme()
        .or_else(|| parts.extensions.get::<Scheme>())
        .cloned()
        .unwrap_or(Scheme::HTTP)
}

/// The version of the answer: HTTP/2 for an HTTP/2 client, else HTTP/1.1.
pub fn answer_version(parts: &http::request::Parts) -> Version {
    if parts.version == Version::HTTP_2 {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    }
}

/// Answers one request; its access log line is written when the answer
/// (or, for a tunnel, the relay) ends.
async fn handle(
    context: &Context,
    peer: SocketAddr,
    request: Request<Incoming>,
    exchange: InFlight,
) -> Response<Logged<ResponseBody>> {
    let class = classify::classify(&request, &context.protocols, context.upgrade_body_limit);
    let kind = match class {
        Class::Upgrade(_) => "tunnel",
        Class::Plain => "forward",
        Class::Reject(_) => "rejected",
    };
    // An absolute-form target's (or HTTP/2's) authority wins over Host
    // (RFC 9112 §3.2.2), for routing as on the hop.
    let authority = request
        .uri()
        .authority()
        .map(|authority| authority.as_str())
        .or_else(|| {
            let host = request.headers().get(http::header::HOST)?;
            host.to_str().ok()
        })
        .unwrap_or("");
    let route = context.routes.find(authority, request.uri().path());
    let access_kind = match class {
        Class::Upgrade(_) => access::Kind::Tunnel,
        _ => access::Kind::Request,
    };
    let mut entry = Entry::new(access_kind, peer, authority, request.uri().path());
    // In flight on its connection for as long as the exchange lasts.
    entry.hold(exchange);
    let mut entry = Some(entry);
    // Fields are recorded now: the span borrows nothing from the request.
    // Debug level: at info the access line already says all this, and a
    // span per request cost about a twentieth of a plain GET's work.
    let version = request.version();
    let span = debug_span!("stream", kind, ?version, %authority, path = request.uri().path());
    async move {
        let response = answer(context, class, route, request, &mut entry).await;
        if let Some(entry) = &mut entry {
            entry.status(response.status());
        }
        let length = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse().ok());
        response.map(|body| Logged::new(body, entry, length))
    }
    .instrument(span)
    .await
}

/// The answer to one request. A tunnel that opens takes the access log
/// `entry` into its relay.
async fn answer(
    context: &Context,
    class: Class,
    route: Option<&Route>,
    request: Request<Incoming>,
    entry: &mut Option<Entry>,
) -> Response<ResponseBody> {
    let started = tokio::time::Instant::now();
    // A tunnel to open, or `None` for a plain request.
    let tunnel = match class {
        Class::Reject(rejection) => {
            context.metrics.error(Culprit::Client);
            return rejected(rejection);
        }
        Class::Upgrade(tunnel) => Some(tunnel),
        Class::Plain => None,
    };
    let Some(route) = route else {
        debug!("no route");
        return text(StatusCode::NOT_FOUND, "no route for this host and path");
    };
    let cluster = &context.clusters[route.cluster];
    if let Some(entry) = entry {
        entry.route(cluster.shared_name());
    }
    let (mut parts, body) = request.into_parts();
    if let Err(err) = route.rewrite(&mut parts) {
        warn!(error = %h2hop::telemetry::chain(&err), "route rewrite failed");
        return text(StatusCode::INTERNAL_SERVER_ERROR, "route rewrite failed");
    }
    let request = Request::from_parts(parts, body);
    let protocol = tunnel.as_ref().map(|tunnel| tunnel.protocol.clone());
    let result = match tunnel {
        Some(tunnel) => upgrade::open(context, cluster, request, tunnel, entry).await,
        None => {
            let counts = entry.as_ref().map(Entry::bytes).unwrap_or_default();
            forward::forward(context, cluster, request, counts).await
        }
    };
    let response = result.unwrap_or_else(|err| {
        // The id ties the client's answer to this line, which alone has
        // the cause.
        let id = RequestId::next();
        warn!(status = err.status().as_u16(), request_id = %id, error = %h2hop::telemetry::chain(&err), "request failed");
        context.metrics.error(err.culprit());
        if let Some(protocol) = &protocol {
            context.metrics.tunnel_not_opened(protocol, TunnelResult::Failed);
        }
        text_body(err.status(), err.body(id, context.error_details))
    });
    if protocol.is_none() {
        context
            .metrics
            .request_answered(response.status(), started.elapsed());
    }
    response
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

/// The answer to a request refused at the front.
fn rejected(rejection: Rejection) -> Response<ResponseBody> {
    debug!(reason = rejection.reason(), "request rejected");
    let mut response = text(rejection.status(), rejection.reason());
    if rejection == Rejection::UnsupportedVersion {
        // RFC 6455 §4.4 (N41), RFC 9110 §7.8 (N32): say what we speak.
        let headers = response.headers_mut();
        headers.insert(
            "sec-websocket-version",
            HeaderValue::from_static(h2hop::websocket::VERSION),
        );
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    }
    response
}

/// A short plain-text answer from the front itself.
fn text(status: StatusCode, message: &str) -> Response<ResponseBody> {
    text_body(status, format!("h2hop-front: {message}\n"))
}

/// A plain-text answer with `body` as it is.
fn text_body(status: StatusCode, body: String) -> Response<ResponseBody> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// `/readyz`: some sidecar of some cluster has a usable connection, or
/// takes a new one now.
fn sidecar_usable(context: Arc<Context>) -> Readiness {
    Arc::new(move || {
        let context = context.clone();
        Box::pin(async move {
            let mut reasons = Vec::new();
            for cluster in &context.clusters {
                for endpoint in cluster.endpoints() {
                    match endpoint.ready().await {
                        Ok(()) => return Ok(()),
                        Err(err) => reasons.push(h2hop::telemetry::chain(&err)),
                    }
                }
            }
            Err(reasons.join("; "))
        })
    })
}
