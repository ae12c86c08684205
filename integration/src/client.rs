//! Test clients for the start of the chain: the WebSocket/HTTP/1.1 client that
//! talks to h2hop-front (or straight to the test app).
//!
//! Three levels, from friendliest to most exact: [`ws_connect`] (tungstenite
//! client), [`http1_connect`] (hyper keep-alive connection for plain requests)
//! and [`raw_upgrade`] (hand-written upgrade request, byte-exact response
//! head). Used by the end-to-end tests, the app's own tests and the demo.

use std::io;
use std::net::SocketAddr;

use anyhow::{Context, bail};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Largest response head [`raw_upgrade`] accepts before giving up.
const MAX_HEAD: usize = 64 * 1024;

/// Request body type of [`http1_connect`]: boxed so one connection can send
/// both [`full`] bodies and streaming [`channel_body`] bodies.
pub type ClientBody = BoxBody<Bytes, io::Error>;

/// WebSocket client over plain TCP to `addr` with
/// `tokio_tungstenite::client_async`, returning the stream and the 101
/// response. The request comes from `ws://{addr}{path}`; each `extra` header
/// replaces a default of the same name on its first occurrence (so `Host` can
/// be overridden) and is appended on later ones.
pub async fn ws_connect(
    addr: SocketAddr,
    path: &str,
    extra: &[(&str, &str)],
) -> anyhow::Result<(WebSocketStream<TcpStream>, http::Response<Option<Vec<u8>>>)> {
    let mut request = format!("ws://{addr}{path}").into_client_request()?;
    let headers = request.headers_mut();
    let mut seen: Vec<HeaderName> = Vec::new();
    for (name, value) in extra {
        let name = HeaderName::from_bytes(name.as_bytes())?;
        let value = HeaderValue::from_str(value)?;
        if seen.contains(&name) {
            headers.append(name, value);
        } else {
            seen.push(name.clone());
            headers.insert(name, value);
        }
    }
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (ws, response) = tokio_tungstenite::client_async(request, stream).await?;
    Ok((ws, response))
}

/// Sends `msg` and returns the next data or Close message (pings and pongs
/// are skipped; tungstenite answers pings itself).
pub async fn echo_roundtrip<S>(ws: &mut WebSocketStream<S>, msg: Message) -> anyhow::Result<Message>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ws.send(msg).await?;
    next_message(ws).await
}

/// The next Text, Binary or Close message; an error if the stream ends first.
pub async fn next_message<S>(ws: &mut WebSocketStream<S>) -> anyhow::Result<Message>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(msg) = ws.next().await {
        let msg = msg?;
        if !(msg.is_ping() || msg.is_pong()) {
            return Ok(msg);
        }
    }
    bail!("websocket ended without a message")
}

/// Starts the close handshake with `code` and `reason` and returns the
/// peer's Close frame (RFC 6455 §5.5.1: it echoes the code it received).
pub async fn close_handshake<S>(
    ws: &mut WebSocketStream<S>,
    code: u16,
    reason: &str,
) -> anyhow::Result<Option<CloseFrame>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    };
    ws.close(Some(frame)).await?;
    wait_close(ws).await
}

/// Reads until the peer's Close frame arrives (discarding data), lets
/// tungstenite finish the close handshake, and returns that frame.
pub async fn wait_close<S>(ws: &mut WebSocketStream<S>) -> anyhow::Result<Option<CloseFrame>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let frame = loop {
        match next_message(ws).await? {
            Message::Close(frame) => break frame,
            _ => continue,
        }
    };
    // The next read flushes our reply (if any) and reports the end.
    while let Some(msg) = ws.next().await {
        msg?;
    }
    Ok(frame)
}

/// A hand-written upgrade and the response head read back byte-exactly.
pub struct RawUpgrade {
    /// The connection, positioned right after the response head.
    pub stream: TcpStream,
    /// Response status code.
    pub status: u16,
    /// Response headers in wire order, names as sent.
    pub headers: Vec<(String, String)>,
    /// Bytes read past the head (start of the body or tunnel data).
    pub leftover: Vec<u8>,
    /// The `Sec-WebSocket-Key` that was sent.
    pub key: String,
}

/// Sends a hand-written HTTP/1.1 upgrade request: `Host: {addr}`,
/// `Upgrade: websocket`, `Connection: {connection}` (omitted when empty), a
/// fresh `Sec-WebSocket-Key`, `Sec-WebSocket-Version: 13`, then `extra`. An
/// `extra` header with the same name as a default replaces that default.
/// Reads the response head byte-exactly.
pub async fn raw_upgrade(
    addr: SocketAddr,
    path: &str,
    connection: &str,
    extra: &[(&str, &str)],
) -> anyhow::Result<RawUpgrade> {
    let key = generate_key();
    let host = addr.to_string();
    let defaults = [
        ("Host", host.as_str()),
        ("Upgrade", "websocket"),
        ("Connection", connection),
        ("Sec-WebSocket-Key", key.as_str()),
        ("Sec-WebSocket-Version", "13"),
    ];
    let mut head = format!("GET {path} HTTP/1.1\r\n");
    for (name, value) in defaults {
        let overridden = extra.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
        if !overridden && !value.is_empty() {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut upgrade = raw_request(addr, &head).await?;
    upgrade.key = key;
    Ok(upgrade)
}

/// Reads a response head up to `\r\n\r\n` and parses it. Returns the status,
/// the headers and any bytes read past the head.
pub async fn read_response_head(
    stream: &mut TcpStream,
) -> anyhow::Result<(u16, Vec<(String, String)>, Vec<u8>)> {
    let mut buf = Vec::new();
    let end = loop {
        if let Some(pos) = find(&buf, b"\r\n\r\n") {
            break pos;
        }
        if buf.len() > MAX_HEAD {
            bail!("response head longer than {MAX_HEAD} bytes");
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!(
                "connection closed before the response head ended: {:?}",
                String::from_utf8_lossy(&buf)
            );
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let leftover = buf.split_off(end + 4);
    let head = std::str::from_utf8(&buf[..end]).context("response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.split(' ').nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let headers = lines
        .map(|line| {
            let (name, value) = line
                .split_once(':')
                .with_context(|| format!("bad header line {line:?}"))?;
            Ok((name.to_owned(), value.trim().to_owned()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((status, headers, leftover))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl RawUpgrade {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header called `name` (case-insensitive), in wire order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Reads the body of a non-101 response: by content-length, chunked, or
    /// until EOF when neither is given (RFC 9112 §6.3).
    pub async fn read_body(&mut self) -> anyhow::Result<Vec<u8>> {
        if let Some(len) = self.header("content-length") {
            let len = len.parse::<usize>().context("bad content-length")?;
            return self.take_exact(len).await;
        }
        let chunked = self
            .header("transfer-encoding")
            .is_some_and(|te| te.eq_ignore_ascii_case("chunked"));
        if chunked {
            return self.read_chunked().await;
        }
        let mut body = std::mem::take(&mut self.leftover);
        self.stream.read_to_end(&mut body).await?;
        Ok(body)
    }

    /// Decodes a chunked body (RFC 9112 §7.1), discarding trailers.
    async fn read_chunked(&mut self) -> anyhow::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.take_line().await?;
            let size = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size, 16)
                .with_context(|| format!("bad chunk size {line:?}"))?;
            if size == 0 {
                while !self.take_line().await?.is_empty() {}
                return Ok(body);
            }
            body.extend(self.take_exact(size).await?);
            if self.take_exact(2).await? != b"\r\n" {
                bail!("chunk not followed by CRLF");
            }
        }
    }

    /// Takes one CRLF-terminated line (without the CRLF).
    async fn take_line(&mut self) -> anyhow::Result<String> {
        loop {
            if let Some(pos) = find(&self.leftover, b"\r\n") {
                let line: Vec<u8> = self.leftover.drain(..pos + 2).take(pos).collect();
                return Ok(String::from_utf8(line)?);
            }
            self.fill().await?;
        }
    }

    /// Takes exactly `n` bytes, first from `leftover`, then from the stream.
    async fn take_exact(&mut self, n: usize) -> anyhow::Result<Vec<u8>> {
        while self.leftover.len() < n {
            self.fill().await?;
        }
        Ok(self.leftover.drain(..n).collect())
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed in the middle of a body");
        }
        self.leftover.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

/// Writes `head` (a whole request, by hand, so that no client library can
/// refuse or repair a field) and reads the response head back.
pub async fn raw_request(addr: SocketAddr, head: &str) -> anyhow::Result<RawUpgrade> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    stream.write_all(head.as_bytes()).await?;
    let (status, headers, leftover) = read_response_head(&mut stream).await?;
    Ok(RawUpgrade {
        stream,
        status,
        headers,
        leftover,
        key: String::new(),
    })
}

/// A keep-alive HTTP/1.1 client connection (hyper `client::conn::http1`
/// handshake over a `TcpStream`) for plain-request tests. The connection
/// task is spawned with upgrades enabled; it ends when the sender drops.
pub async fn http1_connect(addr: SocketAddr) -> anyhow::Result<SendRequest<ClientBody>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(err) = conn.with_upgrades().await {
            tracing::debug!(error = %err, "test client connection ended with error");
        }
    });
    Ok(sender)
}

/// A request for [`http1_connect`] with `Host: {addr}`.
pub fn request(
    method: Method,
    addr: SocketAddr,
    path: &str,
    body: ClientBody,
) -> anyhow::Result<Request<ClientBody>> {
    Ok(Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, addr.to_string())
        .body(body)?)
}

/// A complete request body.
pub fn full(data: impl Into<Bytes>) -> ClientBody {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A streaming request body: each `Bytes` sent becomes a data frame; the
/// body ends when the sender is dropped.
pub fn channel_body(capacity: usize) -> (mpsc::Sender<Bytes>, ClientBody) {
    let (tx, rx) = mpsc::channel::<Bytes>(capacity);
    let frames = futures_util::stream::unfold(rx, |mut rx| async move {
        let data = rx.recv().await?;
        Some((Ok::<_, io::Error>(Frame::data(data)), rx))
    });
    (tx, BodyExt::boxed(StreamBody::new(frames)))
}

/// Collects a response body whole.
pub async fn body_bytes(response: http::Response<Incoming>) -> anyhow::Result<Bytes> {
    Ok(response.into_body().collect().await?.to_bytes())
}

/// The accept value for a key (RFC 6455 §4.2.2), for assertions.
pub fn accept_for(key: &str) -> String {
    derive_accept_key(key.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_for_matches_rfc_6455_example() {
        // RFC 6455 §1.3 worked example.
        assert_eq!(
            accept_for("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
