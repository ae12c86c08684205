//! One client connection's HTTP, once accepted (and TLS done): hyper's
//! HTTP/1.1 server with upgrades, or its HTTP/2 server with RFC 8441
//! extended CONNECT (when ALPN chose `h2`, or a cleartext client sent the
//! HTTP/2 preface), each within the connection's
//! bounds ([`crate::client_limits`]: idle timeout, stream limit, early
//! resets). Each request goes to [`crate::dispatch::handle`]. Called by
//! [`crate::listener`].

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use h2hop::h2_settings::{CLIENT_CONNECTION_WINDOW, MAX_FRAME_SIZE, STREAM_WINDOW};
use h2hop::metrics::{Culprit, LimitKind};
use http::Request;
use http::uri::Scheme;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::client_limits::{Activity, Resets};
use crate::context::Context;
use crate::dispatch::handle;
use crate::preface::PlainH2c;

/// How long a connection closed for resetting most of its streams may
/// finish what it has in flight after its GOAWAY.
const ABUSIVE_GRACE: Duration = Duration::from_secs(1);

/// Streams a client may reset before the front accepted them, at once,
/// before it gets GOAWAY ENHANCE_YOUR_CALM.
const CLIENT_PENDING_RESETS: usize = 20;

/// What bounds and shapes one client connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientSettings {
    pub(crate) header_timeout: Duration,
    pub(crate) max_header_size: usize,
    /// Advertise SETTINGS_ENABLE_CONNECT_PROTOCOL to HTTP/2 clients.
    pub(crate) extended_connect: bool,
    /// Nothing in flight for this long closes the connection.
    pub(crate) idle_timeout: Duration,
    /// Streams open at once on an HTTP/2 connection.
    pub(crate) max_streams: u32,
    /// Whether a cleartext client may open with the HTTP/2 preface.
    pub(crate) plain_h2c: PlainH2c,
}

/// HTTP/1.1 with upgrades. Once shutdown begins it finishes the request in
/// flight and closes instead of waiting for another (an upgraded connection
/// has left hyper by then and drains as a tunnel).
pub(crate) async fn serve_h1<T>(
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
        note_tls(&mut request, &scheme);
        // Boxed: hyper moves the future it is given several times, and
        // this one is kilobytes (callgrind: a fifth of a plain GET's work
        // was those copies).
        Box::pin(handle(context, peer, request, exchange))
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout)
        // A head that does not fit is answered 431 by hyper.
        .max_buf_size(settings.max_header_size)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(served);
    let ending = ending(&begun, &activity, std::future::pending(), &settings);
    let result = run_until(served, ending, |served| served.graceful_shutdown()).await;
    if let Err(err) = result {
        debug!(error = %err, "client connection ended with an error");
    }
}

/// HTTP/2 from a client (ALPN `h2` over TLS, or cleartext with prior
/// knowledge, as `scheme` says): ordinary requests, and RFC 8441 extended
/// CONNECT when advertised. Shutdown sends GOAWAY and lets the open
/// streams finish.
pub(crate) async fn serve_h2<T>(
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
        // Classify checks the client's `:scheme` against the connection's.
        note_tls(&mut request, &scheme);
        // Boxed, as for HTTP/1.1.
        Box::pin(async move {
            let response = handle(context, peer, request, exchange).await;
            unanswered.answered();
            response
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
    // Before the first stream the idle bound covers the preface and
    // SETTINGS too.
    let abusive = async {
        resets.abusive().await;
        warn!(%peer, "client reset most of its streams before their answer: connection closed");
        metrics.error(Culprit::Client);
    };
    let ending = ending(&begun, &activity, abusive, &settings);
    let result = run_until(served, ending, |served| served.graceful_shutdown()).await;
    if let Err(err) = result {
        debug!(error = %err, "client HTTP/2 connection ended with an error");
    }
}

/// Notes in a request from a TLS connection that it came over TLS
/// (`Scheme::HTTPS` in its extensions); a request with no such note came
/// in the clear. Only TLS pays for the note: the extensions map it needs
/// cost a cleartext plain GET about 500 instructions (callgrind).
fn note_tls(request: &mut Request<Incoming>, scheme: &Scheme) {
    if *scheme == Scheme::HTTPS {
        request.extensions_mut().insert(Scheme::HTTPS);
    }
}

/// Why a connection must close before its client is done: ends with how
/// long it may then take to finish, `None` for as long as it needs (on
/// shutdown, the drain bounds that). `abusive` ends when the client has
/// earned a close ([`Resets::abusive`] on HTTP/2).
async fn ending(
    begun: &CancellationToken,
    activity: &Activity,
    abusive: impl Future<Output = ()>,
    settings: &ClientSettings,
) -> Option<Duration> {
    tokio::select! {
        () = begun.cancelled() => None,
        () = activity.idle(settings.header_timeout, settings.idle_timeout) => {
            debug!(after = ?settings.idle_timeout, "client connection idle: closed");
            // One that never completed its HTTP/2 preface would wait for
            // it forever: past the bound it is dropped, which closes it.
            Some(settings.header_timeout)
        }
        () = abusive => Some(ABUSIVE_GRACE),
    }
}

/// Runs `served` to its end; once `ending` ends first, asks it to close
/// with `graceful` (GOAWAY on HTTP/2; on HTTP/1.1, after the request in
/// flight) and lets it finish, within the bound `ending` gave.
async fn run_until<F, E>(
    mut served: Pin<&mut F>,
    ending: impl Future<Output = Option<Duration>>,
    graceful: impl FnOnce(Pin<&mut F>),
) -> Result<(), E>
where
    F: Future<Output = Result<(), E>>,
{
    tokio::select! {
        result = served.as_mut() => result,
        bound = ending => {
            graceful(served.as_mut());
            match bound {
                None => served.await,
                Some(bound) => tokio::time::timeout(bound, served).await.unwrap_or(Ok(())),
            }
        }
    }
}
