//! The admin listener both binaries can open (`--admin-listen`):
//! `/metrics` (Prometheus text), `/healthz` (the process serves) and
//! `/readyz` (the binary's own readiness check: a usable sidecar for the
//! front, a reachable app for the sidecar; 503 once shutdown has begun).
//! It serves through the shutdown drain and stops when the drain ends.
//!
//! The listener is bounded like the client-facing ones, so that a scraper
//! gone wrong or a stray client cannot pin its tasks and sockets: a
//! connection that does not send a request head in time (or stays idle that
//! long between requests) is closed, and past a number of connections at
//! once new ones are closed on accept ([`AdminLimits`]).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::limit::Limit;
use crate::metrics::Metrics;

/// A readiness check: `Ok` when ready, else why not.
pub type Readiness =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// What bounds the admin listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminLimits {
    /// Bound on reading a request head, and on the quiet between two
    /// requests on one connection.
    pub header_timeout: Duration,
    /// Connections served at once; more are closed on accept.
    pub max_connections: usize,
}

impl Default for AdminLimits {
    /// 5 s and 64 connections: a Prometheus scrape or a probe sends its
    /// head at once, and a few of them poll at a time.
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(5),
            max_connections: 64,
        }
    }
}

/// When the admin listener changes and when it ends. It outlives the
/// client listeners: a scrape during the shutdown drain still sees the
/// tunnels the drain holds (and `h2hop_draining`).
#[derive(Debug, Clone, Default)]
pub struct AdminLifetime {
    /// Cancelled when shutdown begins: `/readyz` answers 503 from then on,
    /// so that a load balancer stops sending new work.
    pub draining: CancellationToken,
    /// Cancelled once the drain has ended: the listener stops accepting.
    pub stopped: CancellationToken,
}

/// Serves the admin endpoints on `listener`, within the default
/// [`AdminLimits`], until `lifetime.stopped` is cancelled.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    ready: Readiness,
    lifetime: AdminLifetime,
) {
    let limits = AdminLimits::default();
    serve_within(listener, metrics, ready, lifetime, limits).await;
}

/// [`serve`] within `limits`.
pub async fn serve_within(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    ready: Readiness,
    lifetime: AdminLifetime,
    limits: AdminLimits,
) {
    let connections = Limit::new("admin connections", limits.max_connections);
    loop {
        let accepted = tokio::select! {
            () = lifetime.stopped.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, peer)) = accepted else {
            warn!("admin accept failed");
            continue;
        };
        // Over the limit: closed at once, unread (dropping the stream).
        let Some(permit) = connections.try_take() else {
            debug!(%peer, max = connections.max(), "admin connection limit reached: closed");
            continue;
        };
        let (metrics, ready) = (metrics.clone(), ready.clone());
        let draining = lifetime.draining.clone();
        let service = service_fn(move |request: Request<Incoming>| {
            let (metrics, ready, draining) = (metrics.clone(), ready.clone(), draining.clone());
            async move {
                let draining = draining.is_cancelled();
                Ok::<_, Infallible>(answer(&request, &metrics, &ready, draining).await)
            }
        });
        tokio::spawn(async move {
            let _permit = permit;
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(err) = served {
                debug!(error = %err, "admin connection ended with an error");
            }
        });
    }
}

/// The answer to `request`; `draining` when shutdown has begun.
async fn answer(
    request: &Request<Incoming>,
    metrics: &Metrics,
    ready: &Readiness,
    draining: bool,
) -> Response<Full<Bytes>> {
    match request.uri().path() {
        "/metrics" => text(
            StatusCode::OK,
            metrics.encode(),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        "/healthz" => text(StatusCode::OK, "ok\n".into(), "text/plain"),
        "/readyz" if draining => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: draining\n".into(),
            "text/plain",
        ),
        "/readyz" => match ready().await {
            Ok(()) => text(StatusCode::OK, "ready\n".into(), "text/plain"),
            Err(reason) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {reason}\n"),
                "text/plain",
            ),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n".into(), "text/plain"),
    }
}

fn text(status: StatusCode, body: String, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpStream;

    const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n";

    /// An admin listener on loopback within `limits`; it stops when the
    /// returned guard drops.
    async fn admin(limits: AdminLimits) -> (std::net::SocketAddr, tokio_util::sync::DropGuard) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Metrics::new("peer", "connections", "streams");
        let ready: Readiness = Arc::new(|| Box::pin(async { Ok(()) }));
        let lifetime = AdminLifetime::default();
        let guard = lifetime.stopped.clone().drop_guard();
        tokio::spawn(serve_within(listener, metrics, ready, lifetime, limits));
        (addr, guard)
    }

    /// What the admin listener writes back to `request` before it closes
    /// (a reset counts as a close); `None` if it is still open after 10 s.
    async fn answer_to(addr: std::net::SocketAddr, request: &[u8]) -> Option<Vec<u8>> {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let _ = stream.write_all(request).await;
        read_until_closed(&mut stream).await
    }

    async fn read_until_closed(stream: &mut TcpStream) -> Option<Vec<u8>> {
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer));
        match read.await {
            Err(_) => None,
            Ok(_) => Some(answer),
        }
    }

    /// Slowloris: a head sent one byte every 50 ms never completes, and
    /// the connection is closed once the header timeout has passed.
    #[tokio::test]
    async fn a_head_that_never_completes_is_closed_after_the_header_timeout() {
        let header_timeout = Duration::from_millis(300);
        let limits = AdminLimits {
            header_timeout,
            ..AdminLimits::default()
        };
        let (addr, _stop) = admin(limits).await;
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        let trickle = tokio::spawn(async move {
            let head = b"GET /metrics HTTP/1.1\r\nHost: admin\r\nX-Slow: ";
            for byte in head.iter().chain(std::iter::repeat(&b'a')) {
                if writer.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let started = tokio::time::Instant::now();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut answer));
        let closed = read.await.is_ok();
        trickle.abort();
        assert!(closed, "still open after 10 s");
        assert!(started.elapsed() >= header_timeout);
        assert!(!answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    }

    /// Past the connection limit a new connection is closed unanswered,
    /// even with a complete request; once a held one closes, `/healthz`
    /// answers again.
    #[tokio::test]
    async fn connections_past_the_limit_are_closed_until_one_frees_up() {
        let limits = AdminLimits {
            header_timeout: Duration::from_secs(20),
            max_connections: 2,
        };
        let (addr, _stop) = admin(limits).await;
        let ok = answer_to(addr, HEALTHZ).await.unwrap();
        assert!(ok.starts_with(b"HTTP/1.1 200"), "{ok:?}");
        let mut held = Vec::new();
        for _ in 0..limits.max_connections {
            held.push(TcpStream::connect(addr).await.unwrap());
        }
        // The listener accepts in order: these two hold both places when
        // the next one is accepted.
        let refused = answer_to(addr, HEALTHZ).await;
        assert_eq!(refused, Some(Vec::new()), "not refused");
        drop(held.pop());
        let mut answered = false;
        for _ in 0..100 {
            let answer = answer_to(addr, HEALTHZ).await.unwrap();
            if answer.starts_with(b"HTTP/1.1 200") {
                answered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(answered, "no /healthz answer after a place freed up");
    }

    /// Once shutdown begins `/readyz` answers 503 while `/metrics` and
    /// `/healthz` still answer; once the drain ends nothing is accepted.
    #[tokio::test]
    async fn readiness_fails_while_draining_and_the_listener_stops_after() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Metrics::new("peer", "connections", "streams");
        let ready: Readiness = Arc::new(|| Box::pin(async { Ok(()) }));
        let lifetime = AdminLifetime::default();
        let served = tokio::spawn(serve(listener, metrics, ready, lifetime.clone()));
        let get =
            |path: &str| format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
        let status = |answer: Vec<u8>| String::from_utf8_lossy(&answer[..12]).into_owned();
        let readyz = answer_to(addr, get("/readyz").as_bytes()).await.unwrap();
        assert_eq!(status(readyz), "HTTP/1.1 200");
        lifetime.draining.cancel();
        let readyz = answer_to(addr, get("/readyz").as_bytes()).await.unwrap();
        assert_eq!(status(readyz.clone()), "HTTP/1.1 503");
        assert!(String::from_utf8_lossy(&readyz).contains("draining"));
        for path in ["/metrics", "/healthz"] {
            let answer = answer_to(addr, get(path).as_bytes()).await.unwrap();
            assert_eq!(status(answer), "HTTP/1.1 200", "{path}");
        }
        lifetime.stopped.cancel();
        tokio::time::timeout(Duration::from_secs(5), served)
            .await
            .expect("the listener stops once the drain ended")
            .unwrap();
        assert!(TcpStream::connect(addr).await.is_err());
    }
}
