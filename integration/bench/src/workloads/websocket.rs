//! The WebSocket client steps the workloads share: connect to `/ws`, one
//! echo, a clean close. Used by `tunnels` and `connections`.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::timed;

/// A client WebSocket over plain TCP.
pub(super) type Ws = WebSocketStream<TcpStream>;

/// The small message of the latency, idle and handshake workloads.
pub(super) const SMALL: &[u8] = &[0x5a; 32];

/// The app's WebSocket echo route.
const WS_PATH: &str = "/ws";
/// Control frames tolerated while waiting for one echo or a close reply.
const MAX_SKIPPED: usize = 64;
/// Read buffer of sockets carrying only small messages: tungstenite
/// allocates it eagerly (128 KiB by default), which 10,000 idle sockets
/// cannot afford.
const SMALL_READ_BUFFER: usize = 4 * 1024;

/// WebSocket client handshake on `{addr}/ws` over a `TCP_NODELAY` socket.
pub(super) async fn connect(addr: SocketAddr, config: WebSocketConfig) -> anyhow::Result<Ws> {
    let request = format!("ws://{addr}{WS_PATH}").into_client_request()?;
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (ws, _response) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
    Ok(ws)
}

/// Config for sockets that carry only small messages.
pub(super) fn small_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(SMALL_READ_BUFFER)
}

/// Sends `payload` as one binary message and waits for its echo.
pub(super) async fn echo_once(ws: &mut Ws, payload: Bytes) -> anyhow::Result<()> {
    let len = payload.len();
    ws.send(Message::Binary(payload)).await?;
    for _ in 0..MAX_SKIPPED {
        if check_echo(ws.next().await, len)? {
            return Ok(());
        }
    }
    bail!("more than {MAX_SKIPPED} control frames before an echo")
}

/// One item read while an echo of `len` bytes is due: `true` for that
/// echo, `false` for a ping or pong (tungstenite answers pings itself), an
/// error for anything else.
pub(super) fn check_echo(
    item: Option<Result<Message, WsError>>,
    len: usize,
) -> anyhow::Result<bool> {
    match item.context("websocket ended while an echo was due")?? {
        Message::Binary(data) if data.len() == len => Ok(true),
        Message::Binary(data) => bail!("echo of {} bytes, expected {len}", data.len()),
        Message::Ping(_) | Message::Pong(_) => Ok(false),
        Message::Text(_) => bail!("text message instead of a binary echo"),
        Message::Close(frame) => bail!("peer closed ({frame:?}) while an echo was due"),
        Message::Frame(_) => bail!("raw frame instead of a binary echo"),
    }
}

/// Sends a Close (1000) and reads until the peer's Close reply ends the
/// stream, or until EOF (RFC 6455 §5.5.1), within [`super::IO_TIMEOUT`].
pub(super) async fn close(ws: &mut Ws) -> anyhow::Result<()> {
    timed(async {
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        ws.close(Some(frame)).await?;
        for _ in 0..MAX_SKIPPED {
            match ws.next().await {
                None | Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => {
                    return Ok(());
                }
                // A bare EOF instead of the Close reply also ends the socket.
                Some(Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake))) => {
                    return Ok(());
                }
                Some(Err(err)) => return Err(err.into()),
                // The Close reply: the next read reports the end.
                Some(Ok(_)) => {}
            }
        }
        bail!("more than {MAX_SKIPPED} messages after our close")
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary(data: &'static [u8]) -> Option<Result<Message, WsError>> {
        Some(Ok(Message::Binary(Bytes::from_static(data))))
    }

    #[test]
    fn echo_of_the_expected_length_is_counted() {
        assert!(check_echo(binary(b"abcd"), 4).unwrap());
    }

    #[test]
    fn echo_of_the_wrong_length_is_an_error() {
        assert!(check_echo(binary(b"abc"), 4).is_err());
    }

    #[test]
    fn pong_is_skipped_and_text_close_or_end_are_errors() {
        assert!(!check_echo(Some(Ok(Message::Pong(Bytes::new()))), 4).unwrap());
        assert!(check_echo(Some(Ok(Message::text("abcd"))), 4).is_err());
        assert!(check_echo(Some(Ok(Message::Close(None))), 4).is_err());
        assert!(check_echo(None, 4).is_err());
    }
}
