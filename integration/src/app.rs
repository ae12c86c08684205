//! The test app that sits behind the sidecar: a plain HTTP/1.1 server (hyper
//! http1 with upgrades) that speaks WebSocket, raw upgraded byte streams and
//! ordinary requests.
//!
//! Input: TCP connections on a listener the caller bound. Output: responses
//! chosen by path (see [`TestApp`]) plus a record of what reached the app, so
//! the end-to-end tests in `integration/tests/` and the demo binary can assert
//! on the far side of the front → sidecar chain.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_util::sync::CancellationToken;

/// Subprotocols the app supports, for `Sec-WebSocket-Protocol` negotiation.
const SUBPROTOCOLS: [&str; 2] = ["chat.v2", "echo"];
/// Largest `/bytes/N` body the app agrees to build in memory.
const MAX_BYTES_ROUTE: usize = 256 * 1024 * 1024;

type AppBody = BoxBody<Bytes, hyper::Error>;

/// A running test app; see the module docs. Routes, for requests carrying
/// `Upgrade: websocket` and `Connection: upgrade`:
/// `/status/NNN` (that status, no upgrade), `/bad-accept` (wrong accept),
/// `/wrong-token` (`Upgrade: foo`), `/raw/echo`, `/raw/reset`, `/raw/hold`
/// (raw bytes after the 101), `/ws/server-close?code=&reason=` and any other
/// path (WebSocket echo). Plain requests: `GET /` (demo page), `/echo`,
/// `/bytes/N`, `/status/NNN`, anything else `hello from app`.
pub struct TestApp {
    /// The address the app listens on.
    pub addr: SocketAddr,
    state: Arc<State>,
}

/// The head of one request as the app received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Request method.
    pub method: Method,
    /// Request target as sent on the wire (origin form for HTTP/1.1).
    pub uri: Uri,
    /// HTTP version of the request line.
    pub version: Version,
    /// All request headers, in received order per name.
    pub headers: HeaderMap,
}

/// How a raw tunnel on `/raw/echo` or `/raw/hold` ended, seen from the app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawOutcome {
    /// The peer half-closed cleanly after sending `bytes` bytes.
    Eof {
        /// Bytes read from the peer before EOF.
        bytes: u64,
    },
    /// The peer reset the connection (TCP RST).
    Reset,
    /// Any other I/O error, as text.
    OtherError(String),
}

/// State shared by every connection task and the [`TestApp`] handle.
struct State {
    requests: Mutex<Vec<Recorded>>,
    outcomes: Mutex<Outcomes>,
    outcome_added: Notify,
    connections: AtomicUsize,
}

/// Raw outcomes in completion order, plus how many `next_raw_outcome` took.
#[derive(Default)]
struct Outcomes {
    list: Vec<RawOutcome>,
    taken: usize,
}

/// What each request handler needs.
#[derive(Clone)]
struct Ctx {
    state: Arc<State>,
    shutdown: CancellationToken,
}

/// Locks a mutex even if a panicking test thread poisoned it: the data is
/// append-only records, so a half-finished update cannot break an invariant.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TestApp {
    /// Binds nothing itself: serves on the given listener (bound by the
    /// caller on 127.0.0.1:0) until the token is cancelled; one task per
    /// connection.
    pub fn spawn(listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<TestApp> {
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            requests: Mutex::new(Vec::new()),
            outcomes: Mutex::new(Outcomes::default()),
            outcome_added: Notify::new(),
            connections: AtomicUsize::new(0),
        });
        let ctx = Ctx {
            state: state.clone(),
            shutdown,
        };
        tokio::spawn(accept_loop(listener, ctx));
        Ok(TestApp { addr, state })
    }

    /// Every request head the app received, in order (method, uri, version,
    /// headers): tests assert on what reached the app.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.state.requests).clone()
    }

    /// How each raw tunnel on `/raw/echo` and `/raw/hold` ended from the
    /// app's point of view, in completion order. `/raw/reset` records nothing.
    pub fn raw_outcomes(&self) -> Vec<RawOutcome> {
        lock(&self.state.outcomes).list.clone()
    }

    /// Waits for the next raw outcome not yet returned by this method (the
    /// first call returns the first outcome ever recorded, and so on).
    pub async fn next_raw_outcome(&self) -> RawOutcome {
        loop {
            // Register interest before checking, so an outcome recorded in
            // between still wakes us.
            let notified = self.state.outcome_added.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut outcomes = lock(&self.state.outcomes);
                if let Some(outcome) = outcomes.list.get(outcomes.taken).cloned() {
                    outcomes.taken += 1;
                    return outcome;
                }
            }
            notified.await;
        }
    }

    /// Number of TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }
}

impl State {
    fn record_outcome(&self, outcome: RawOutcome) {
        lock(&self.outcomes).list.push(outcome);
        self.outcome_added.notify_waiters();
    }
}

/// Accepts connections until shutdown, spawning one task per connection.
async fn accept_loop(listener: TcpListener, ctx: Ctx) {
    loop {
        let accepted = tokio::select! {
            () = ctx.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => {
                ctx.state.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve_connection(stream, ctx.clone()));
            }
            Err(err) => {
                // Usually fd exhaustion: back off instead of spinning.
                tracing::warn!(error = %err, "app accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Serves one keep-alive HTTP/1.1 connection; upgrades continue in their own
/// tasks once hyper hands the socket over.
async fn serve_connection(stream: TcpStream, ctx: Ctx) {
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(error = %err, "app set_nodelay failed");
    }
    let svc_ctx = ctx.clone();
    let service = service_fn(move |req| {
        let response = route(req, &svc_ctx);
        async move { Ok::<_, Infallible>(response) }
    });
    // `with_upgrades` is required, or `hyper::upgrade::on` never resolves.
    let conn = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = ctx.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.as_mut().await
        }
    };
    if let Err(err) = result {
        tracing::debug!(error = %err, "app connection ended with error");
    }
}

/// Records the request head, then picks the handler by upgrade and path.
fn route(req: Request<Incoming>, ctx: &Ctx) -> Response<AppBody> {
    lock(&ctx.state.requests).push(Recorded {
        method: req.method().clone(),
        uri: req.uri().clone(),
        version: req.version(),
        headers: req.headers().clone(),
    });
    if is_upgrade(req.headers()) {
        route_upgrade(req, ctx)
    } else {
        route_plain(req)
    }
}

/// Plain (non-upgrade) routes.
fn route_plain(req: Request<Incoming>) -> Response<AppBody> {
    let path = req.uri().path();
    if let Some(code) = path.strip_prefix("/status/") {
        return status_page(code);
    }
    if let Some(len) = path.strip_prefix("/bytes/") {
        return match len.parse::<usize>() {
            Ok(n) if n <= MAX_BYTES_ROUTE => {
                let pattern: Vec<u8> = (b'a'..=b'z').cycle().take(n).collect();
                // `Full` has an exact size hint, so hyper sends content-length N.
                full(StatusCode::OK, "application/octet-stream", pattern)
            }
            _ => text(StatusCode::BAD_REQUEST, "bad length"),
        };
    }
    match path {
        "/" if req.method() == Method::GET => {
            full(StatusCode::OK, "text/html; charset=utf-8", DEMO_PAGE)
        }
        "/echo" => {
            let method = header_value(req.method().as_str());
            // `Incoming` is itself a streaming body: each frame goes back out
            // as it arrives, nothing is buffered whole.
            let mut resp = Response::new(BoxBody::new(req.into_body()));
            resp.headers_mut()
                .insert(HeaderName::from_static("x-app-method"), method);
            resp
        }
        _ => text(StatusCode::OK, "hello from app"),
    }
}

/// Upgrade routes: error statuses, broken handshakes, raw streams, WebSocket.
fn route_upgrade(mut req: Request<Incoming>, ctx: &Ctx) -> Response<AppBody> {
    let path = req.uri().path().to_owned();
    if let Some(code) = path.strip_prefix("/status/") {
        return status_page(code);
    }
    let Some(accept) = handshake_accept(req.headers()) else {
        return text(StatusCode::BAD_REQUEST, "bad websocket handshake");
    };
    match path.as_str() {
        "/bad-accept" => {
            after_upgrade(&mut req, ctx, |io, _| drain(io));
            switching("websocket", &derive_accept_key(b"not the client's key"))
        }
        "/wrong-token" => {
            after_upgrade(&mut req, ctx, |io, _| drain(io));
            switching("foo", &accept)
        }
        "/raw/echo" => {
            after_upgrade(&mut req, ctx, raw_echo);
            switching("websocket", &accept)
        }
        "/raw/reset" => {
            after_upgrade(&mut req, ctx, |io, _| raw_reset(io));
            switching("websocket", &accept)
        }
        "/raw/hold" => {
            after_upgrade(&mut req, ctx, raw_hold);
            switching("websocket", &accept)
        }
        "/ws/server-close" => {
            let frame = close_frame_from_query(req.uri().query().unwrap_or(""));
            after_upgrade(&mut req, ctx, |io, _| ws_server_close(io, frame));
            ws_switching(req.headers(), &accept)
        }
        _ => {
            after_upgrade(&mut req, ctx, |io, _| ws_echo(io));
            ws_switching(req.headers(), &accept)
        }
    }
}

/// Takes the pending upgrade and spawns `run` on it. Pitfall: the upgrade
/// resolves only after the 101 is returned, so the wait must be spawned, and
/// `hyper::upgrade::on` must run before the request is consumed.
fn after_upgrade<F, Fut>(req: &mut Request<Incoming>, ctx: &Ctx, run: F)
where
    F: FnOnce(TokioIo<Upgraded>, Arc<State>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let on_upgrade = hyper::upgrade::on(req);
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(err) => {
                tracing::debug!(error = %err, "app upgrade did not complete");
                return;
            }
        };
        tokio::select! {
            () = ctx.shutdown.cancelled() => {}
            () = run(TokioIo::new(upgraded), ctx.state.clone()) => {}
        }
    });
}

/// True when the request asks for a WebSocket upgrade (RFC 6455 §4.1: both
/// headers are token lists, matched case-insensitively).
fn is_upgrade(headers: &HeaderMap) -> bool {
    has_token(headers, &header::UPGRADE, "websocket")
        && has_token(headers, &header::CONNECTION, "upgrade")
}

fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    tokens(headers, name).any(|t| t.eq_ignore_ascii_case(token))
}

/// The comma-separated tokens of every `name` header, trimmed.
fn tokens<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Validates the client handshake (RFC 6455 §4.2.1: version 13 and a key
/// that is 16 base64-encoded bytes) and returns the matching accept value.
fn handshake_accept(headers: &HeaderMap) -> Option<String> {
    let version = headers.get(header::SEC_WEBSOCKET_VERSION)?;
    let key = headers.get(header::SEC_WEBSOCKET_KEY)?.as_bytes();
    let base64 = |b: &u8| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/';
    let key_ok = key.len() == 24 && key[..22].iter().all(base64) && key.ends_with(b"==");
    (version == "13" && key_ok).then(|| derive_accept_key(key))
}

/// A 101 with the given `Upgrade` token and accept value.
fn switching(upgrade: &'static str, accept: &str) -> Response<AppBody> {
    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = resp.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static(upgrade));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, header_value(accept));
    resp
}

/// The WebSocket 101: accept, the negotiated subprotocol and a cookie.
fn ws_switching(request: &HeaderMap, accept: &str) -> Response<AppBody> {
    let mut resp = switching("websocket", accept);
    let headers = resp.headers_mut();
    headers.insert(
        header::SET_COOKIE,
        HeaderValue::from_static("app-session=1"),
    );
    // RFC 6455 §4.2.2: pick one the client offered, or send none. The
    // client's order decides among the ones the app supports.
    let chosen =
        tokens(request, &header::SEC_WEBSOCKET_PROTOCOL).find(|p| SUBPROTOCOLS.contains(p));
    if let Some(protocol) = chosen {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, header_value(protocol));
    }
    resp
}

/// `/status/NNN`: that status with body `app says NNN`.
fn status_page(code: &str) -> Response<AppBody> {
    let status = match code.parse::<u16>().map(StatusCode::from_u16) {
        Ok(Ok(status)) if (200..600).contains(&status.as_u16()) => status,
        _ => return text(StatusCode::BAD_REQUEST, "bad status"),
    };
    let mut resp = text(status, &format!("app says {}", status.as_u16()));
    if status == StatusCode::UPGRADE_REQUIRED {
        // RFC 6455 §4.4: a 426 names the versions the server speaks.
        resp.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
    }
    resp
}

fn text(status: StatusCode, body: &str) -> Response<AppBody> {
    full(status, "text/plain; charset=utf-8", body.to_owned())
}

fn full(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<AppBody> {
    let body = Full::new(body.into())
        .map_err(|never| match never {})
        .boxed();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn empty() -> AppBody {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

/// Values here are base64, digits or method names, always valid header
/// bytes; an empty value stands in rather than panicking if not.
fn header_value(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Parses `code=4001&reason=bye` (no percent-decoding; tests use plain words).
fn close_frame_from_query(query: &str) -> CloseFrame {
    let mut frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    for (key, value) in query.split('&').filter_map(|kv| kv.split_once('=')) {
        match key {
            "code" => {
                frame.code = value
                    .parse::<u16>()
                    .map_or(CloseCode::Normal, CloseCode::from)
            }
            "reason" => frame.reason = value.into(),
            _ => {}
        }
    }
    frame
}

/// WebSocket echo: text and binary go back unchanged; tungstenite answers
/// pings and, on a Close, queues a reply with the peer's code and reason
/// (RFC 6455 §5.5.1), flushed by the next read, which then ends the stream.
async fn ws_echo(io: TokioIo<Upgraded>) {
    let mut ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
    while let Some(msg) = ws.next().await {
        let result = match msg {
            Ok(msg) if msg.is_text() || msg.is_binary() => ws.send(msg).await,
            Ok(_) => Ok(()),
            Err(err) => Err(err),
        };
        if let Err(err) = result {
            tracing::debug!(error = %err, "app websocket ended with error");
            return;
        }
    }
}

/// Sends `frame` first, then reads until the peer's Close completes the
/// handshake.
async fn ws_server_close(io: TokioIo<Upgraded>, frame: CloseFrame) {
    let mut ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
    if let Err(err) = ws.close(Some(frame)).await {
        tracing::debug!(error = %err, "app websocket close failed");
        return;
    }
    while let Some(msg) = ws.next().await {
        if let Err(err) = msg {
            tracing::debug!(error = %err, "app websocket ended with error");
            return;
        }
    }
}

/// Reads and discards until EOF, so a broken handshake is left for the peer
/// to reject rather than closed by the app.
async fn drain(mut io: TokioIo<Upgraded>) {
    let mut sink = tokio::io::sink();
    if let Err(err) = tokio::io::copy(&mut io, &mut sink).await {
        tracing::debug!(error = %err, "app drain ended with error");
    }
}

/// `/raw/echo`: echoes every byte until EOF, then shuts down the write side
/// (half-close) and records how it ended.
async fn raw_echo(mut io: TokioIo<Upgraded>, state: Arc<State>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut bytes = 0u64;
    let outcome = loop {
        let n = match io.read(&mut buf).await {
            Ok(0) => break io.shutdown().await.map(|()| bytes),
            Ok(n) => n,
            Err(err) => break Err(err),
        };
        bytes += n as u64;
        if let Err(err) = io.write_all(&buf[..n]).await {
            break Err(err);
        }
    };
    state.record_outcome(outcome_of(outcome));
}

/// `/raw/hold`: reads until EOF or error without writing anything.
async fn raw_hold(mut io: TokioIo<Upgraded>, state: Arc<State>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut bytes = 0u64;
    let outcome = loop {
        match io.read(&mut buf).await {
            Ok(0) => break Ok(bytes),
            Ok(n) => bytes += n as u64,
            Err(err) => break Err(err),
        }
    };
    state.record_outcome(outcome_of(outcome));
}

fn outcome_of(result: std::io::Result<u64>) -> RawOutcome {
    match result {
        Ok(bytes) => RawOutcome::Eof { bytes },
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => RawOutcome::Reset,
        Err(err) => RawOutcome::OtherError(err.to_string()),
    }
}

/// `/raw/reset`: waits for at least one byte, then closes with zero linger
/// so the peer sees a TCP RST instead of a FIN.
async fn raw_reset(io: TokioIo<Upgraded>) {
    // Zero linger needs the socket itself, not hyper's wrapper around it.
    let Ok(parts) = io.into_inner().downcast::<TokioIo<TcpStream>>() else {
        tracing::warn!("app upgraded io is not a TcpStream");
        return;
    };
    let mut stream = parts.io.into_inner();
    if parts.read_buf.is_empty() {
        let mut buf = [0u8; 1024];
        if let Err(err) = stream.read(&mut buf).await {
            tracing::debug!(error = %err, "app raw reset read failed");
        }
    }
    if let Err(err) = stream.set_zero_linger() {
        tracing::warn!(error = %err, "app set_zero_linger failed");
    }
    drop(stream);
}

/// The demo page: opens a WebSocket back to `/ws` on the same origin and
/// shows the echoes.
const DEMO_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>h2hop demo</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; color: #222; }
  #status { font-weight: bold; }
  #status.connected { color: #17803d; } #status.closed { color: #666; } #status.error { color: #b91c1c; }
  ul { border: 1px solid #ddd; padding: .5rem 2rem; min-height: 6rem; }
  form { display: flex; gap: .5rem; } input { flex: 1; padding: .3rem; }
</style>
</head>
<body>
<h1>h2hop demo</h1>
<p>WebSocket over HTTP/1.1 &rarr; HTTP/2 extended CONNECT &rarr; HTTP/1.1. Status: <span id="status">connecting</span></p>
<ul id="echoes"></ul>
<form id="form"><input id="input" autocomplete="off" placeholder="message"><button>Send</button></form>
<script>
  const statusEl = document.getElementById('status');
  const list = document.getElementById('echoes');
  const input = document.getElementById('input');
  function setStatus(s) { statusEl.textContent = s; statusEl.className = s; }
  const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws');
  ws.onopen = () => {
    setStatus('connected');
    for (let i = 1; i <= 5; i++) ws.send('hello ' + i);
  };
  ws.onmessage = (ev) => {
    const li = document.createElement('li');
    li.textContent = ev.data;
    list.appendChild(li);
  };
  ws.onclose = () => setStatus('closed');
  ws.onerror = () => setStatus('error');
  document.getElementById('form').onsubmit = (ev) => {
    ev.preventDefault();
    if (input.value && ws.readyState === WebSocket.OPEN) { ws.send(input.value); input.value = ''; }
  };
</script>
</body>
</html>
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{self, RawUpgrade};
    use tokio_tungstenite::tungstenite::Message;

    const TIMEOUT: Duration = Duration::from_secs(10);

    /// Starts an app on 127.0.0.1:0; dropping the guard stops it.
    async fn start() -> anyhow::Result<(TestApp, tokio_util::sync::DropGuard)> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let shutdown = CancellationToken::new();
        let app = TestApp::spawn(listener, shutdown.clone())?;
        Ok((app, shutdown.drop_guard()))
    }

    /// Runs a test body under the per-test timeout.
    async fn within(test: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
        tokio::time::timeout(TIMEOUT, test).await?
    }

    async fn upgrade(
        app: &TestApp,
        path: &str,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<RawUpgrade> {
        client::raw_upgrade(app.addr, path, "Upgrade", extra).await
    }

    #[tokio::test]
    async fn websocket_echoes_text_and_binary() -> anyhow::Result<()> {
        within(async {
            let (app, _guard) = start().await?;
            let (mut ws, resp) = client::ws_connect(app.addr, "/chat?room=1", &[]).await?;
            assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
            assert_eq!(resp.headers()[header::SET_COOKIE], "app-session=1");
            let text = client::echo_roundtrip(&mut ws, Message::text("hi there")).await?;
            assert_eq!(text, Message::text("hi there"));
            let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
            let binary = client::echo_roundtrip(&mut ws, Message::binary(big.clone())).await?;
            assert_eq!(binary, Message::binary(big));
            assert_eq!(app.requests()[0].uri, "/chat?room=1");
            Ok(())
        })
        .await
    }

    #[tokio::test]
    async fn websocket_selects_first_offered_supported_subprotocol() -> anyhow::Result<()> {
        within(async {
            let (app, _guard) = start().await?;
            let offer = [
                ("Sec-WebSocket-Protocol", "foo, echo"),
                ("Sec-WebSocket-Protocol", "chat.v2"),
            ];
            let (_ws, resp) = client::ws_connect(app.addr, "/ws", &offer).await?;
            assert_eq!(resp.headers()[header::SEC_WEBSOCKET_PROTOCOL], "echo");
            let none = upgrade(&app, "/ws", &[("Sec-WebSocket-Protocol", "foo, bar")]).await?;
            assert_eq!(none.status, 101);
            assert_eq!(none.header("sec-websocket-protocol"), None);
            Ok(())
        })
        .await
    }

    #[tokio::test]
    async fn websocket_handshake_returns_correct_accept() -> anyhow::Result<()> {
        within(async {
            let (app, _guard) = start().await?;
            let up = upgrade(&app, "/ws", &[]).await?;
            assert_eq!(up.status, 101);
            assert_eq!(
                up.header("sec-websocket-accept"),
                Some(client::accept_for(&up.key).as_str())
            );
            assert_eq!(up.header("upgrade"), Some("websocket"));
            assert!(up.leftover.is_empty());
            Ok(())
        })
        .await
    }

    #[tokio::test]
    async fn websocket_close_echoes_code_and_reason() -> anyhow::Result<()> {
        within(async {
            let (app, _guard) = start().await?;
            let (mut ws, _) = client::ws_connect(app.addr, "/ws", &[]).await?;
            let frame = client::close_handshake(&mut ws, 4000, "done here").await?;
            let frame = frame.ok_or_else(|| anyhow::anyhow!("close without a frame"))?;
            assert_eq!(
                (u16::from(frame.code), frame.reason.as_str()),
                (4000, "done here")
            );
            Ok(())
        })
        .await
    }

    #[tokio::test]
    async fn server_close_path_sends_requested_code() -> anyhow::Result<()> {
        within(async {
            let (app, _guard) = start().await?;
            let (mut ws, _) =
                client::ws_connect(app.addr, "/ws/server-close?code=4001&reason=bye", &[]).await?;
            let frame = client::wait_close(&mut ws).await?;
            let frame = frame.ok_or_else(|| anyhow::anyhow!("close without a frame"))?;
            assert_eq!(
                (u16::from(frame.code), frame.reason.as_str()),
                (4001, "bye")
            );
            Ok(())
        })
        .await
    }

    #[tokio::test]
    async fn upgrade_on_status_path_returns_that_status() -> anyhow::Result<()> {
        within(async {
            let (app, _guard) = start().await?;
            let mut forbidden = upgrade(&app, "/status/403", &[]).await?;
            assert_eq!(forbidden.status, 403);
            assert_eq!(forbidden.read_body().await?, b"app says 403");
            let mut required = upgrade(&app, "/status/426", &[]).await?;
            assert_eq!(required.status, 426);
            assert_eq!(required.header("sec-websocket-version"), Some("13"));
            assert_eq!(required.read_body().await?, b"app says 426");
            Ok(())
        })
        .await
    }

    #[tokio::test]
    async fn broken_handshake_paths_answer_as_documented() -> anyhow::Result<()> {
        within(async {
            let (app, _guard) = start().await?;
            let bad = upgrade(&app, "/bad-accept", &[]).await?;
            assert_eq!(bad.status, 101);
            assert_ne!(
                bad.header("sec-websocket-accept"),
                Some(client::accept_for(&bad.key).as_str())
            );
            let wrong = upgrade(&app, "/wrong-token", &[]).await?;
            assert_eq!((wrong.status, wrong.header("upgrade")), (101, Some("foo")));
            assert_eq!(
                wrong.header("sec-websocket-accept"),
                Some(client::accept_for(&wrong.key).as_str())
            );
            let old = upgrade(&app, "/ws", &[("Sec-WebSocket-Version", "8")]).await?;
            assert_eq!(old.status, 400);
            Ok(())
        })
        .await
    }

    #[tokio::test]
    async fn raw_echo_half_close_returns_all_bytes_then_eof() -> anyhow::Result<()> {
        within(async {
            let (app, _guard) = start().await?;
            let mut up = upgrade(&app, "/raw/echo", &[]).await?;
            assert_eq!(up.status, 101);
            let sent: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
            let (mut rd, mut wr) = up.stream.split();
            let write = async {
                wr.write_all(&sent).await?;
                wr.shutdown().await
            };
            let mut got = std::mem::take(&mut up.leftover);
            let (written, read) = tokio::join!(write, rd.read_to_end(&mut got));
            written?;
            read?;
            assert!(got == sent, "echoed bytes differ");
            assert_eq!(
                app.next_raw_outcome().await,
                RawOutcome::Eof { bytes: 1_000_000 }
            );
            Ok(())
        })
        .await
    }

    #[tokio::test]
    async fn raw_reset_gives_client_connection_reset() -> anyhow::Result<()> {
        within(async {
            let (app, _guard) = start().await?;
            let mut up = upgrade(&app, "/raw/reset", &[]).await?;
            up.stream.write_all(b"x").await?;
            let mut buf = [0u8; 16];
            let err = up
                .stream
                .read(&mut buf)
                .await
                .expect_err("read after RST must fail");
            assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
            Ok(())
        })
        .await
    }

    #[tokio::test]
    async fn raw_hold_records_reset_when_client_aborts() -> anyhow::Result<()> {
        within(async {
            let (app, _guard) = start().await?;
            let up = upgrade(&app, "/raw/hold", &[]).await?;
            up.stream.set_zero_linger()?;
            drop(up.stream);
            assert_eq!(app.next_raw_outcome().await, RawOutcome::Reset);
            assert_eq!(app.raw_outcomes(), vec![RawOutcome::Reset]);
            Ok(())
        })
        .await
    }

    #[tokio::test]
    async fn echo_streams_post_body_back() -> anyhow::Result<()> {
        within(async {
            let (app, _guard) = start().await?;
            let mut sender = client::http1_connect(app.addr).await?;
            let (tx, body) = client::channel_body(1);
            let req = client::request(Method::POST, app.addr, "/echo", body)?;
            let response = tokio::spawn(sender.send_request(req));
            tx.send(Bytes::from_static(b"first")).await?;
            let mut resp = response.await??;
            assert_eq!(resp.headers()["x-app-method"], "POST");
            // The first chunk comes back while the request body is still open.
            let frame = resp
                .body_mut()
                .frame()
                .await
                .ok_or_else(|| anyhow::anyhow!("no frame"))??;
            assert_eq!(frame.into_data().ok(), Some(Bytes::from_static(b"first")));
            tx.send(Bytes::from_static(b"second")).await?;
            drop(tx);
            assert_eq!(client::body_bytes(resp).await?, "second");
            Ok(())
        })
        .await
    }

    #[tokio::test]
    async fn keep_alive_serves_two_requests_on_one_connection() -> anyhow::Result<()> {
        within(async {
            let (app, _guard) = start().await?;
            let mut sender = client::http1_connect(app.addr).await?;
            for path in ["/bytes/30", "/anything"] {
                sender.ready().await?;
                let req = client::request(Method::GET, app.addr, path, client::full(""))?;
                let resp = sender.send_request(req).await?;
                assert_eq!(resp.status(), StatusCode::OK);
                let body = client::body_bytes(resp).await?;
                let want: &[u8] = if path == "/anything" {
                    b"hello from app"
                } else {
                    b"abcdefghijklmnopqrstuvwxyzabcd"
                };
                assert_eq!(body, want);
            }
            assert_eq!(app.connections(), 1);
            Ok(())
        })
        .await
    }

    #[tokio::test]
    async fn requests_records_heads_in_order() -> anyhow::Result<()> {
        within(async {
            let (app, _guard) = start().await?;
            let mut sender = client::http1_connect(app.addr).await?;
            let mut req =
                client::request(Method::PUT, app.addr, "/echo?x=1", client::full("data"))?;
            req.headers_mut()
                .insert("x-test", HeaderValue::from_static("yes"));
            client::body_bytes(sender.send_request(req).await?).await?;
            upgrade(&app, "/ws", &[("X-Other", "2")]).await?;
            let recorded = app.requests();
            assert_eq!(recorded.len(), 2);
            assert_eq!(
                (&recorded[0].method, recorded[0].version),
                (&Method::PUT, Version::HTTP_11)
            );
            assert_eq!(recorded[0].uri, "/echo?x=1");
            assert_eq!(recorded[0].headers["x-test"], "yes");
            assert_eq!(recorded[1].headers["x-other"], "2");
            assert_eq!(recorded[1].headers[header::HOST], app.addr.to_string());
            Ok(())
        })
        .await
    }

    #[tokio::test]
    async fn root_serves_demo_page_and_status_route_works() -> anyhow::Result<()> {
        within(async {
            let (app, _guard) = start().await?;
            let mut sender = client::http1_connect(app.addr).await?;
            let resp = sender
                .send_request(client::request(
                    Method::GET,
                    app.addr,
                    "/",
                    client::full(""),
                )?)
                .await?;
            assert_eq!(
                resp.headers()[header::CONTENT_TYPE],
                "text/html; charset=utf-8"
            );
            let page = client::body_bytes(resp).await?;
            assert!(String::from_utf8_lossy(&page).contains("new WebSocket("));
            sender.ready().await?;
            let resp = sender
                .send_request(client::request(
                    Method::GET,
                    app.addr,
                    "/status/404",
                    client::full(""),
                )?)
                .await?;
            assert_eq!(resp.status(), StatusCode::NOT_FOUND);
            assert_eq!(client::body_bytes(resp).await?, "app says 404");
            Ok(())
        })
        .await
    }
}
