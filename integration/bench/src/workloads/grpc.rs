//! One gRPC unary call over cleartext HTTP/2 with prior knowledge (raw
//! `h2` client), read to its trailers: the correctness check the gRPC row
//! makes through each system before [`super::h2load`] loads it, since
//! h2load counts status codes only. Called by the bench binary's gRPC row
//! and by the tests.

use std::net::SocketAddr;

use anyhow::{Context as _, ensure};
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, StatusCode};
use tokio::net::TcpStream;

use super::timed;
use crate::grpc_frame::{self, CALL_PATH, CONTENT_TYPE, PAYLOAD};

/// What came back for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallAnswer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The response's `content-type`, if any.
    pub content_type: Option<String>,
    /// The response body (length-prefixed messages).
    pub body: Bytes,
    /// The trailer section; `None` when the stream ended without one
    /// (a trailers-only answer puts `grpc-status` in the head instead).
    pub trailers: Option<HeaderMap>,
    /// The response head's fields.
    pub head: HeaderMap,
}

impl CallAnswer {
    /// `grpc-status` from the trailers, else from the head (trailers-only).
    #[cfg(test)]
    pub fn grpc_status(&self) -> Option<&str> {
        fn field(fields: &HeaderMap) -> Option<&str> {
            fields.get("grpc-status")?.to_str().ok()
        }
        self.trailers
            .as_ref()
            .and_then(field)
            .or_else(|| field(&self.head))
    }
}

/// Sends `body` as a `POST` to `path` with `content_type` and `te:
/// trailers` on a fresh h2c connection to `addr`, and reads the answer to
/// its end, each step under the workloads' time bound.
pub async fn unary_call(
    addr: SocketAddr,
    path: &str,
    content_type: &str,
    body: Bytes,
) -> anyhow::Result<CallAnswer> {
    let stream = timed(async { Ok(TcpStream::connect(addr).await?) }).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = timed(async { Ok(h2::client::handshake(stream).await?) }).await?;
    tokio::spawn(async move {
        if let Err(err) = conn.await {
            tracing::debug!(error = %err, "gRPC check connection ended with error");
        }
    });
    let request = Request::post(format!("http://{addr}{path}"))
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::TE, "trailers")
        .body(())?;
    let mut sender = timed(async { Ok(sender.ready().await?) }).await?;
    let (response, mut send) = sender.send_request(request, false)?;
    send.send_data(body, true)?;
    timed(read_answer(response)).await
}

/// The response head, body and trailers of one call.
async fn read_answer(response: h2::client::ResponseFuture) -> anyhow::Result<CallAnswer> {
    let (parts, mut body) = response.await?.into_parts();
    let mut stored = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        body.flow_control().release_capacity(chunk.len())?;
        stored.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await?;
    Ok(CallAnswer {
        status: parts.status,
        content_type: parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
        body: stored.freeze(),
        trailers,
        head: parts.headers,
    })
}

/// One bench call through `addr`, checked: 200, `application/grpc`, the
/// echoed message, and `grpc-status: 0` in a trailer section.
pub async fn check_call(addr: SocketAddr) -> anyhow::Result<()> {
    let request = grpc_frame::frame(PAYLOAD).context("payload too long")?;
    let answer = unary_call(addr, CALL_PATH, CONTENT_TYPE, request).await?;
    ensure!(answer.status == StatusCode::OK, "status {}", answer.status);
    ensure!(
        answer.content_type.as_deref() == Some(CONTENT_TYPE),
        "content-type {:?}",
        answer.content_type
    );
    let message = grpc_frame::unframe(&answer.body).context("response body")?;
    ensure!(message == PAYLOAD, "the reply is not the message sent");
    let trailers = answer.trailers.as_ref().context("no trailers arrived")?;
    let status = trailers
        .get("grpc-status")
        .context("no grpc-status trailer")?;
    ensure!(status == "0", "grpc-status {status:?}");
    Ok(())
}
