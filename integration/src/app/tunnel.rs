//! Tunnel stage of the test app: what runs on a connection after its 101.
//!
//! Input: the upgraded socket from [`super::routes`]. WebSocket echo and
//! server-initiated close, raw byte echo, hold and reset; the raw ones record
//! how they ended in [`super::State`] for [`super::TestApp::next_raw_outcome`].

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

use super::{RawOutcome, State};

/// WebSocket echo: text and binary go back unchanged; tungstenite answers
/// pings and, on a Close, queues a reply with the peer's code and reason
/// (RFC 6455 §5.5.1), flushed by the next read, which then ends the stream.
pub(super) async fn ws_echo(io: TokioIo<Upgraded>) {
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
pub(super) async fn ws_server_close(io: TokioIo<Upgraded>, frame: CloseFrame) {
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
pub(super) async fn drain(mut io: TokioIo<Upgraded>) {
    let mut sink = tokio::io::sink();
    if let Err(err) = tokio::io::copy(&mut io, &mut sink).await {
        tracing::debug!(error = %err, "app drain ended with error");
    }
}

/// `/raw/echo`: echoes every byte until EOF, then shuts down the write side
/// (half-close) and records how it ended.
pub(super) async fn raw_echo(mut io: TokioIo<Upgraded>, state: Arc<State>) {
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
pub(super) async fn raw_hold(mut io: TokioIo<Upgraded>, state: Arc<State>) {
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

/// `/raw/reset` and `/raw/reply-reset`: waits for at least one byte, writes
/// `reply`, then closes with zero linger so the peer sees a TCP RST instead
/// of a FIN (right behind the reply, which the kernel has already sent).
pub(super) async fn raw_reset(io: TokioIo<Upgraded>, reply: &[u8]) {
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
    if let Err(err) = stream.write_all(reply).await {
        tracing::debug!(error = %err, "app raw reset reply failed");
    }
    if let Err(err) = stream.set_zero_linger() {
        tracing::warn!(error = %err, "app set_zero_linger failed");
    }
    drop(stream);
}
