//! The bench's gRPC app: an HTTP/2 server with prior knowledge (h2c, raw
//! `h2` crate) that answers every unary call with the message it received
//! and the trailer `grpc-status: 0`.
//!
//! Input: a bound listener. Output: answers, one task per connection and
//! one per call. `h2hop-bench grpc-app` runs it as its own process, the
//! upstream of every system in the gRPC row, and it is also that row's
//! direct system.
//!
//! A call is answered as gRPC over HTTP/2 says: a `POST` whose content
//! type starts with `application/grpc`, else HTTP 405 or 415; a body of
//! exactly one length-prefixed message ([`crate::grpc_frame`]), else a
//! trailers-only answer with `grpc-status: 13` (INTERNAL); else HEADERS
//! (`:status 200`, `content-type: application/grpc`), one DATA frame with
//! the same message, and HEADERS with END_STREAM carrying
//! `grpc-status: 0` as trailers (RFC 9113 §8.1: a trailer section is a
//! HEADERS frame after the DATA).

use std::time::Duration;

use anyhow::{Context as _, ensure};
use bytes::{Bytes, BytesMut};
use h2::RecvStream;
use h2::server::SendResponse;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use tokio::net::{TcpListener, TcpStream};

use crate::grpc_frame::{self, CONTENT_TYPE};

/// Largest request body read; a call past it gets `grpc-status: 8`.
const MAX_BODY: usize = 64 * 1024;
/// Bound on the HTTP/2 preface and SETTINGS exchange, and on reading one
/// call's body, so that a stalled client holds a task for a bounded time.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// Calls one connection may have open at once, as h2hop-sidecar's
/// `--max-streams` default.
const MAX_STREAMS: u32 = 1000;
/// Stream and connection windows: 1 MiB, hyper's server default, so that
/// the app is not the slow hop.
const WINDOW: u32 = 1 << 20;

/// gRPC status codes the app sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GrpcStatus {
    /// The call succeeded.
    Ok,
    /// The request was larger than [`MAX_BODY`].
    ResourceExhausted,
    /// The body was not one length-prefixed message.
    Internal,
}

impl GrpcStatus {
    /// The `grpc-status` value.
    fn code(self) -> &'static str {
        match self {
            GrpcStatus::Ok => "0",
            GrpcStatus::ResourceExhausted => "8",
            GrpcStatus::Internal => "13",
        }
    }
}

/// Accepts connections on `listener` until it fails; each connection is
/// served on its own task.
pub async fn serve(listener: TcpListener) -> anyhow::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await.context("accepting")?;
        tokio::spawn(async move {
            if let Err(err) = serve_connection(stream).await {
                tracing::debug!(%peer, error = %format!("{err:#}"), "gRPC app connection ended");
            }
        });
    }
}

/// One HTTP/2 connection: every stream is answered on its own task.
async fn serve_connection(stream: TcpStream) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let handshake = h2::server::Builder::new()
        .max_concurrent_streams(MAX_STREAMS)
        .initial_window_size(WINDOW)
        .initial_connection_window_size(WINDOW)
        .handshake::<_, Bytes>(stream);
    let mut conn = tokio::time::timeout(STEP_TIMEOUT, handshake)
        .await
        .context("HTTP/2 handshake timed out")??;
    while let Some(accepted) = conn.accept().await {
        let (request, respond) = accepted?;
        tokio::spawn(async move {
            if let Err(err) = answer(request, respond).await {
                tracing::debug!(error = %format!("{err:#}"), "gRPC call failed");
            }
        });
    }
    Ok(())
}

/// Answers one call (see the module docs for the rules).
async fn answer(
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) -> anyhow::Result<()> {
    if request.method() != Method::POST {
        return refuse(&mut respond, StatusCode::METHOD_NOT_ALLOWED);
    }
    let is_grpc = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with(CONTENT_TYPE));
    if !is_grpc {
        return refuse(&mut respond, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    let body = tokio::time::timeout(STEP_TIMEOUT, read_body(request.into_body()))
        .await
        .context("reading the call's body timed out")??;
    let Some(body) = body else {
        return trailers_only(&mut respond, GrpcStatus::ResourceExhausted);
    };
    let message = match grpc_frame::unframe(&body) {
        Ok(message) => message,
        Err(_) => return trailers_only(&mut respond, GrpcStatus::Internal),
    };
    let reply = grpc_frame::frame(message).context("reply too long")?;
    let mut send = respond.send_response(grpc_response(None)?, false)?;
    send.send_data(reply, false)?;
    send.send_trailers(status_fields(GrpcStatus::Ok))?;
    Ok(())
}

/// The whole body, or `None` once it passes [`MAX_BODY`]; flow-control
/// capacity is released as each chunk is stored.
async fn read_body(mut body: RecvStream) -> anyhow::Result<Option<BytesMut>> {
    let mut stored = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        body.flow_control().release_capacity(chunk.len())?;
        if stored.len() + chunk.len() > MAX_BODY {
            return Ok(None);
        }
        stored.extend_from_slice(&chunk);
    }
    Ok(Some(stored))
}

/// A response head: 200, `content-type: application/grpc`, and for a
/// trailers-only answer the `grpc-status` too.
fn grpc_response(status: Option<GrpcStatus>) -> anyhow::Result<Response<()>> {
    let mut response = Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, CONTENT_TYPE)
        .body(())?;
    if let Some(status) = status {
        response.headers_mut().extend(status_fields(status));
    }
    Ok(response)
}

/// `grpc-status: CODE`.
fn status_fields(status: GrpcStatus) -> HeaderMap {
    let mut fields = HeaderMap::new();
    fields.insert("grpc-status", HeaderValue::from_static(status.code()));
    fields
}

/// A trailers-only answer: one HEADERS frame with END_STREAM.
fn trailers_only(respond: &mut SendResponse<Bytes>, status: GrpcStatus) -> anyhow::Result<()> {
    respond.send_response(grpc_response(Some(status))?, true)?;
    Ok(())
}

/// An HTTP error with no body, for requests that are not gRPC at all.
fn refuse(respond: &mut SendResponse<Bytes>, status: StatusCode) -> anyhow::Result<()> {
    ensure!(!status.is_success(), "refusing with a success status");
    respond.send_response(Response::builder().status(status).body(())?, true)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc_frame::{CALL_PATH, PAYLOAD};
    use crate::workloads::{check_call, unary_call};

    /// Bound on each whole test.
    const TEST_TIMEOUT: Duration = Duration::from_secs(20);

    /// The app on a fresh loopback port, served until the test ends.
    async fn app() -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener));
        addr
    }

    #[tokio::test]
    async fn a_call_gets_its_message_back_and_grpc_status_0_as_a_trailer() {
        let addr = app().await;
        let body = grpc_frame::frame(PAYLOAD).unwrap();
        let call = unary_call(addr, CALL_PATH, CONTENT_TYPE, body);
        let answer = tokio::time::timeout(TEST_TIMEOUT, call)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.content_type.as_deref(), Some(CONTENT_TYPE));
        assert_eq!(grpc_frame::unframe(&answer.body), Ok(PAYLOAD));
        let trailers = answer.trailers.as_ref().expect("a trailer section");
        assert_eq!(trailers.get("grpc-status").unwrap(), "0");
        assert!(answer.head.get("grpc-status").is_none());
        // The check the benchmark makes through every system agrees.
        let checked = tokio::time::timeout(TEST_TIMEOUT, check_call(addr)).await;
        checked.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_body_that_is_not_one_message_gets_grpc_status_13_trailers_only() {
        let addr = app().await;
        let body = Bytes::from_static(b"\0\0\0\0\x09short");
        let call = unary_call(addr, CALL_PATH, CONTENT_TYPE, body);
        let answer = tokio::time::timeout(TEST_TIMEOUT, call)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        assert!(answer.body.is_empty());
        assert!(answer.trailers.is_none(), "{:?}", answer.trailers);
        assert_eq!(answer.grpc_status(), Some("13"));
    }

    #[tokio::test]
    async fn a_body_past_the_limit_gets_grpc_status_8() {
        let addr = app().await;
        let body = grpc_frame::frame(&vec![7; MAX_BODY]).unwrap();
        let call = unary_call(addr, CALL_PATH, CONTENT_TYPE, body);
        let answer = tokio::time::timeout(TEST_TIMEOUT, call)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(answer.grpc_status(), Some("8"));
    }

    #[tokio::test]
    async fn a_request_that_is_not_grpc_gets_415() {
        let addr = app().await;
        let body = grpc_frame::frame(PAYLOAD).unwrap();
        let call = unary_call(addr, CALL_PATH, "text/plain", body);
        let answer = tokio::time::timeout(TEST_TIMEOUT, call)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(answer.grpc_status(), None);
    }
}
