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
///
/// tungstenite, as a client, reports the end only at TCP EOF after the
/// Close reply (RFC 6455 §7.1.1: the server closes the TCP connection
/// first), so this waits for the proxy's FIN too: the connection's
/// TIME_WAIT stays with whoever sent that FIN, the front proxy.
/// [`close_on_reply`] stops at the Close frame instead.
pub(super) async fn close(ws: &mut Ws) -> anyhow::Result<()> {
    timed(async {
        ws.close(Some(normal_close())).await?;
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

/// Sends a Close (1000) and reads until the peer's Close frame arrives,
/// and no further, within [`super::IO_TIMEOUT`]: no wait for TCP EOF. The
/// caller then drops the socket, so the client sends the first FIN and
/// keeps the TIME_WAIT, as browsers and most client libraries do once the
/// close handshake is done. Unlike [`close`], an EOF before the Close frame
/// is an error.
pub(super) async fn close_on_reply(ws: &mut Ws) -> anyhow::Result<()> {
    timed(async {
        ws.close(Some(normal_close())).await?;
        for _ in 0..MAX_SKIPPED {
            let item = ws
                .next()
                .await
                .context("ended before the peer's Close frame");
            // Anything else is a ping, or an echo still in flight.
            if let Message::Close(_) = item?? {
                return Ok(());
            }
        }
        bail!("more than {MAX_SKIPPED} messages after our close")
    })
    .await
}

/// The Close frame both close patterns send: 1000, no reason.
fn normal_close() -> CloseFrame {
    CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::net::TcpListener;

    /// A WebSocket server that answers the client's Close and then holds
    /// the TCP connection open for `hold`, never sending FIN.
    async fn server_holding_tcp_after_close(hold: Duration) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
            // tungstenite queues the Close reply on reading the Close and
            // sends it on the next read or flush.
            while let Some(Ok(message)) = ws.next().await {
                if message.is_close() {
                    break;
                }
            }
            ws.flush().await.unwrap();
            tokio::time::sleep(hold).await;
        });
        addr
    }

    #[tokio::test]
    async fn close_on_reply_returns_at_the_close_frame_without_eof() {
        let addr = server_holding_tcp_after_close(Duration::from_secs(10)).await;
        let mut ws = connect(addr, small_config()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), close_on_reply(&mut ws))
            .await
            .expect("close_on_reply waited for more than the Close frame")
            .unwrap();
    }

    #[tokio::test]
    async fn close_waits_for_eof_after_the_close_frame() {
        let addr = server_holding_tcp_after_close(Duration::from_secs(10)).await;
        let mut ws = connect(addr, small_config()).await.unwrap();
        let waited = tokio::time::timeout(Duration::from_millis(500), close(&mut ws)).await;
        assert!(waited.is_err(), "close returned before the server's FIN");
    }

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
