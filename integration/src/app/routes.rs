//! Routing stage of the test app: a request head in, a response out, plus
//! the task that takes over the connection after a 101.
//!
//! Called by [`super::serve_connection`] for each request; the upgrade
//! routes hand the upgraded socket to [`super::tunnel`]. The route list is
//! on [`super::TestApp`].

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::soak::{self, MAX_SCRIPT_BYTES};
use super::tunnel::{drain, raw_echo, raw_hold, raw_reset, ws_echo, ws_server_close};
use super::{Ctx, LAST_WORDS, Recorded, State, lock};

/// Subprotocols the app supports, for `Sec-WebSocket-Protocol` negotiation.
const SUBPROTOCOLS: [&str; 2] = ["chat.v2", "echo"];
/// Largest `/bytes/N` body the app agrees to build in memory.
const MAX_BYTES_ROUTE: usize = 256 * 1024 * 1024;

type AppBody = BoxBody<Bytes, hyper::Error>;

/// The demo page served on `GET /`: opens a WebSocket back to `/ws` on the
/// same origin and shows the echoes.
const DEMO_PAGE: &str = include_str!("../page.html");

/// The page served on `GET /ws-cycle?n=N`: opens, echoes on and closes N
/// WebSockets in turn, then reports a tally on the console (see the page).
const WS_CYCLE_PAGE: &str = include_str!("../ws_cycle.html");

/// What `GET /hop-fields` adds to its 200: `X-Hop` is hop-by-hop only
/// because `Connection` names it, `Keep-Alive` is named and hop-by-hop
/// anyway, `Proxy-Connection` is hop-by-hop though unnamed (RFC 9110 §7.6.1
/// (N29, N30)). `X-E2e` is the end-to-end control that must arrive. No
/// `close`: the connection stays alive.
const PLAIN_HOP_FIELDS: [(&str, &str); 5] = [
    ("connection", "X-Hop, Keep-Alive"),
    ("x-hop", "secret"),
    ("keep-alive", "timeout=5"),
    ("proxy-connection", "keep-alive"),
    ("x-e2e", "kept"),
];

/// What the 101 of `/ws/hop-fields` carries beyond a normal WebSocket 101:
/// the Kong case (S7), a `Connection` that lists more than `Upgrade`.
const SWITCH_HOP_FIELDS: [(&str, &str); 4] = [
    ("connection", "Upgrade, X-Hop"),
    ("x-hop", "secret"),
    ("keep-alive", "timeout=5"),
    ("x-e2e", "kept"),
];

/// Picks the handler by upgrade and path.
pub(super) fn route(req: Request<Incoming>, ctx: &Ctx) -> Response<AppBody> {
    if is_upgrade(req.headers()) {
        route_upgrade(req, ctx)
    } else if req.uri().path() == "/health" {
        let status = ctx.state.health.load(std::sync::atomic::Ordering::SeqCst);
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        text(status, "health")
    } else {
        route_plain(req)
    }
}

/// Records the request head as it arrives, before any `/delay/MS`, so that
/// a test can wait for a request to have reached the app.
pub(super) fn record(req: &Request<Incoming>, ctx: &Ctx) {
    if ctx.state.record {
        lock(&ctx.state.requests).push(Recorded {
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            headers: req.headers().clone(),
        });
    }
}

/// The `Upgrade` token of a request for a protocol other than WebSocket.
pub(super) fn other_upgrade(headers: &HeaderMap) -> Option<String> {
    if !has_token(headers, &header::CONNECTION, "upgrade") {
        return None;
    }
    tokens(headers, &header::UPGRADE)
        .next()
        .filter(|token| !token.eq_ignore_ascii_case("websocket"))
        .map(str::to_owned)
}

/// Any other Upgrade protocol, any method: reads the whole body, answers
/// 101 naming the same token, then writes `METHOD LENGTH\n` and the body it
/// received, and echoes raw bytes until EOF (`/status/NNN` answers that
/// status instead).
pub(super) async fn other_protocol(
    mut req: Request<Incoming>,
    ctx: &Ctx,
    token: String,
) -> Response<AppBody> {
    if let Some(code) = req.uri().path().strip_prefix("/status/") {
        return status_page(code);
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    let method = req.method().clone();
    let body = match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return text(StatusCode::BAD_REQUEST, "unreadable body"),
    };
    let state = ctx.state.clone();
    let shutdown = ctx.shutdown.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut io = TokioIo::new(upgraded);
        let greeting = format!("{method} {}\n", body.len());
        let run = async {
            use tokio::io::AsyncWriteExt as _;
            if io.write_all(greeting.as_bytes()).await.is_ok() && io.write_all(&body).await.is_ok()
            {
                raw_echo(io, state).await;
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = run => {}
        }
    });
    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, header_value(&token));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    response
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
        "/ws-cycle" if req.method() == Method::GET => {
            full(StatusCode::OK, "text/html; charset=utf-8", WS_CYCLE_PAGE)
        }
        "/hop-fields" if req.method() == Method::GET => {
            with_fields(text(StatusCode::OK, "hop"), &PLAIN_HOP_FIELDS)
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
            after_upgrade(&mut req, ctx, |io, _| raw_reset(io, b""));
            switching("websocket", &accept)
        }
        "/raw/reply-reset" => {
            after_upgrade(&mut req, ctx, |io, _| raw_reset(io, &LAST_WORDS));
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
        "/ws/soak" => {
            let Some((seed, bytes)) = soak_from_query(req.uri().query().unwrap_or("")) else {
                return text(StatusCode::BAD_REQUEST, "bad soak query");
            };
            after_upgrade(&mut req, ctx, move |io, _| soak::ws_soak(io, seed, bytes));
            ws_switching(req.headers(), &accept)
        }
        "/ws/hop-fields" => {
            after_upgrade(&mut req, ctx, |io, _| ws_echo(io));
            with_fields(ws_switching(req.headers(), &accept), &SWITCH_HOP_FIELDS)
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

/// Sets each of `fields` on `resp`, replacing a field of the same name.
fn with_fields(
    mut resp: Response<AppBody>,
    fields: &[(&'static str, &'static str)],
) -> Response<AppBody> {
    let headers = resp.headers_mut();
    for (name, value) in fields {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
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

/// Parses `seed=S&bytes=N` (both required, `N` at most
/// [`MAX_SCRIPT_BYTES`]).
fn soak_from_query(query: &str) -> Option<(u64, u64)> {
    let (mut seed, mut bytes) = (None, None);
    for (key, value) in query.split('&').filter_map(|kv| kv.split_once('=')) {
        match key {
            "seed" => seed = value.parse::<u64>().ok(),
            "bytes" => bytes = value.parse::<u64>().ok(),
            _ => {}
        }
    }
    Some((seed?, bytes.filter(|n| *n <= MAX_SCRIPT_BYTES)?))
}
