//! The sidecar's keep-alive pool toward the app (RFC 9112 §9.3), seen from
//! the app: which TCP connection, by peer port, each plain request arrives
//! on.
//!
//! The app here is the test's own ([`PortApp`]): it records the peer port
//! of every request, answers `/close` with `Connection: close`, holds
//! `/hold` until the test releases it, and can drop every open connection
//! as a restarted app would.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use h2hop_integration::client;
use h2hop_integration::harness::{Pair, loopback, within};
use http::{Method, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// An HTTP/1.1 keep-alive app that says which connection each request
/// came on; see the module docs.
struct PortApp {
    addr: SocketAddr,
    state: Arc<AppState>,
}

struct AppState {
    /// Path and peer port of every request, in arrival order.
    requests: Mutex<Vec<(String, u16)>>,
    request_seen: Notify,
    accepted: AtomicUsize,
    /// `/hold` answers once a permit is added.
    held: Semaphore,
    /// Cancelled by [`PortApp::restart`]: the connections open until then
    /// are dropped.
    generation: Mutex<CancellationToken>,
    connections: Mutex<Vec<JoinHandle<()>>>,
}

impl PortApp {
    async fn start() -> PortApp {
        let listener = loopback().await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(AppState {
            requests: Mutex::new(Vec::new()),
            request_seen: Notify::new(),
            accepted: AtomicUsize::new(0),
            held: Semaphore::new(0),
            generation: Mutex::new(CancellationToken::new()),
            connections: Mutex::new(Vec::new()),
        });
        tokio::spawn(accept_loop(listener, state.clone()));
        PortApp { addr, state }
    }

    /// TCP connections accepted so far.
    fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// The peer port of the request for `path`.
    fn port(&self, path: &str) -> u16 {
        let requests = self.state.requests.lock().unwrap();
        let found = requests.iter().find(|(seen, _)| seen == path);
        found
            .unwrap_or_else(|| panic!("{path} never reached the app"))
            .1
    }

    fn arrived(&self, path: &str) -> bool {
        let requests = self.state.requests.lock().unwrap();
        requests.iter().any(|(seen, _)| seen == path)
    }

    /// Waits until the request for `path` has reached the app.
    async fn seen(&self, path: &str) {
        loop {
            // Interest first, so that a request recorded in between wakes us.
            let notified = self.state.request_seen.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.arrived(path) {
                return;
            }
            notified.await;
        }
    }

    /// Lets one `/hold` request be answered.
    fn release(&self) {
        self.state.held.add_permits(1);
    }

    /// Drops every open connection, as an app restart would, and returns
    /// once they are all closed; the listener stays.
    async fn restart(&self) {
        let old = std::mem::take(&mut *self.state.generation.lock().unwrap());
        old.cancel();
        let connections = std::mem::take(&mut *self.state.connections.lock().unwrap());
        for connection in connections {
            connection.await.unwrap();
        }
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<AppState>) {
    loop {
        let (stream, peer) = listener.accept().await.unwrap();
        state.accepted.fetch_add(1, Ordering::SeqCst);
        let generation = state.generation.lock().unwrap().clone();
        let service_state = state.clone();
        let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
            let state = service_state.clone();
            async move {
                let path = request.uri().path().to_owned();
                // Read the body, so that the connection can be kept alive.
                request.into_body().collect().await.unwrap();
                state
                    .requests
                    .lock()
                    .unwrap()
                    .push((path.clone(), peer.port()));
                state.request_seen.notify_waiters();
                let mut response = Response::new(Full::new(Bytes::from(path.clone())));
                match path.as_str() {
                    "/close" => {
                        let close = header::HeaderValue::from_static("close");
                        response.headers_mut().insert(header::CONNECTION, close);
                    }
                    "/hold" => state.held.acquire().await.unwrap().forget(),
                    _ => {}
                }
                Ok::<_, Infallible>(response)
            }
        });
        let connection = tokio::spawn(async move {
            let serving = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            // Dropping `serving` closes the socket.
            tokio::select! {
                _ = serving => {}
                () = generation.cancelled() => {}
            }
        });
        state.connections.lock().unwrap().push(connection);
    }
}

/// A pair whose sidecar talks to a fresh [`PortApp`].
async fn pair_with_port_app() -> (Pair, PortApp) {
    let app = PortApp::start().await;
    let pair = Pair::builder()
        .h2c()
        .app_at(app.addr)
        .start()
        .await
        .unwrap();
    (pair, app)
}

/// Sends one request on a new client connection to the front and reads the
/// whole response; the app echoes the path.
async fn request(front: SocketAddr, method: Method, path: &str, body: &'static str) {
    let mut sender = client::http1_connect(front).await.unwrap();
    let request = client::request(method, front, path, client::full(body)).unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    assert_eq!(client::body_bytes(response).await.unwrap(), path);
}

async fn get(front: SocketAddr, path: &str) {
    request(front, Method::GET, path, "").await;
}

/// RFC 9112 §9.3: sequential plain requests, with and without a body, all
/// reach the app on one connection.
#[tokio::test]
async fn sequential_requests_reuse_one_app_connection() {
    within(async {
        let (pair, app) = pair_with_port_app().await;
        get(pair.front, "/one").await;
        request(pair.front, Method::POST, "/two", "a body").await;
        get(pair.front, "/three").await;
        assert_eq!(app.accepted(), 1);
        assert_eq!(app.port("/one"), app.port("/two"));
        assert_eq!(app.port("/one"), app.port("/three"));
    })
    .await;
}

/// A connection waiting for its response is not handed to another
/// request: that one gets a second connection and its answer meanwhile;
/// then both connections are idle and the next request reuses one.
#[tokio::test]
async fn a_busy_app_connection_is_not_shared() {
    within(async {
        let (pair, app) = pair_with_port_app().await;
        let front = pair.front;
        let held = tokio::spawn(async move { get(front, "/hold").await });
        app.seen("/hold").await;
        get(pair.front, "/meanwhile").await;
        assert_ne!(app.port("/hold"), app.port("/meanwhile"));
        app.release();
        held.await.unwrap();
        get(pair.front, "/after").await;
        assert_eq!(app.accepted(), 2);
        let after = app.port("/after");
        assert!(after == app.port("/hold") || after == app.port("/meanwhile"));
    })
    .await;
}

/// RFC 9112 §9.6: after a response with `Connection: close` the app closes
/// the connection; the next request gets a new one and succeeds, and that
/// one is kept alive in turn.
#[tokio::test]
async fn a_connection_the_app_closes_is_not_reused() {
    within(async {
        let (pair, app) = pair_with_port_app().await;
        get(pair.front, "/first").await;
        get(pair.front, "/close").await;
        assert_eq!(app.port("/first"), app.port("/close"));
        get(pair.front, "/next").await;
        get(pair.front, "/again").await;
        assert_ne!(app.port("/next"), app.port("/close"));
        assert_eq!(app.port("/next"), app.port("/again"));
        assert_eq!(app.accepted(), 2);
    })
    .await;
}

/// An app restart drops the pooled connection without a word of HTTP; the
/// next request still succeeds, on a new connection.
#[tokio::test]
async fn after_an_app_restart_the_next_request_succeeds_on_a_new_connection() {
    within(async {
        let (pair, app) = pair_with_port_app().await;
        get(pair.front, "/before").await;
        app.restart().await;
        get(pair.front, "/after").await;
        assert_ne!(app.port("/before"), app.port("/after"));
        assert_eq!(app.accepted(), 2);
    })
    .await;
}
