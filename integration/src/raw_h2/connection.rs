//! A raw HTTP/2 connection: the preface and SETTINGS exchange, frames
//! written as given, frames read back one by one; over h2c or over TLS
//! with ALPN `h2`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{
    AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadHalf, WriteHalf,
};
use tokio::net::TcpStream;
use tokio::time::{error::Elapsed, timeout};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::hpack::block;
use super::{
    ACK, Answer, END_HEADERS, END_STREAM, Frame, GOAWAY, HEADERS, PING, SETTINGS, frame, ping,
    settings, settings_ack,
};

/// How long [`FrameReader::next_frame`] waits in silence before the test
/// fails.
const SILENCE: Duration = Duration::from_secs(5);

/// Frames read from one direction of a connection.
pub struct FrameReader<R> {
    io: R,
    buf: Vec<u8>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Reads frames from `io`, `buf` first (bytes already read).
    pub fn new(io: R, buf: Vec<u8>) -> Self {
        Self { io, buf }
    }

    /// The next frame, or `None` when the connection ended; fails the test
    /// after 5 s of silence.
    #[allow(
        clippy::expect_used,
        reason = "test support: a silent peer fails the test"
    )]
    pub async fn next_frame(&mut self) -> Option<Frame> {
        self.next_frame_within(SILENCE)
            .await
            .expect("the peer answers within 5 s")
    }

    /// The next frame, `Ok(None)` when the connection ended (or failed),
    /// `Err` after `silence` without one.
    pub async fn next_frame_within(&mut self, silence: Duration) -> Result<Option<Frame>, Elapsed> {
        loop {
            if let Some(frame) = self.parse() {
                return Ok(Some(frame));
            }
            let mut chunk = [0u8; 16 * 1024];
            match timeout(silence, self.io.read(&mut chunk)).await? {
                Ok(0) | Err(_) => return Ok(None),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// A whole frame from the front of the buffer, if there is one.
    fn parse(&mut self) -> Option<Frame> {
        let head = self.buf.get(..9)?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        if self.buf.len() < 9 + len {
            return None;
        }
        let head: Vec<u8> = self.buf.drain(..9).collect();
        let payload = self.buf.drain(..len).collect();
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        Some(Frame {
            kind: head[3],
            flags: head[4],
            stream,
            payload,
        })
    }

    /// Reads until something decides `stream`: its response HEADERS, its
    /// RST_STREAM, a GOAWAY or the end of the connection.
    pub async fn answer(&mut self, stream: u32) -> Answer {
        loop {
            let Some(frame) = self.next_frame().await else {
                return Answer::Closed;
            };
            if let Some(answer) = frame.answer_for(stream) {
                return answer;
            }
        }
    }

    /// Reads (and drops) frames for up to `wait`, until a GOAWAY
    /// (`Answer::GoAway`) or the end of the connection (`Answer::Closed`);
    /// `None` if the connection is still open then.
    pub async fn ending(&mut self, wait: Duration) -> Option<Answer> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_frame_within(left).await {
                Err(_) => return None,
                Ok(None) => return Some(Answer::Closed),
                Ok(Some(frame)) if frame.kind == GOAWAY => {
                    return Some(Answer::GoAway(frame.error_code(4)));
                }
                Ok(Some(_)) => {}
            }
        }
    }
}

/// A raw HTTP/2 connection, past the SETTINGS exchange.
pub struct Raw<S> {
    frames: FrameReader<S>,
    /// The peer's SETTINGS, by identifier.
    pub settings: HashMap<u16, u32>,
}

impl Raw<TcpStream> {
    /// An h2c connection (prior knowledge) to `addr`.
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        Self::handshake(tcp).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Raw<S> {
    /// Preface and SETTINGS, then waits for the peer's SETTINGS and ACKs
    /// them (RFC 9113 §3.4). Our SETTINGS_HEADER_TABLE_SIZE is 0, so the
    /// peer's field blocks use no dynamic table (RFC 7541 §4.2) and
    /// [`status`] can read every response without decoding state.
    pub async fn handshake(mut io: S) -> anyhow::Result<Self> {
        const HEADER_TABLE_SIZE: u16 = 0x1;
        let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        hello.extend(settings(&[(HEADER_TABLE_SIZE, 0)]));
        io.write_all(&hello).await?;
        let mut raw = Raw {
            frames: FrameReader::new(io, Vec::new()),
            settings: HashMap::new(),
        };
        loop {
            let frame = raw
                .frames
                .next_frame()
                .await
                .context("the connection ended before the peer's SETTINGS")?;
            if frame.kind == SETTINGS && frame.flags & ACK == 0 {
                for setting in frame.payload.chunks_exact(6) {
                    let id = u16::from_be_bytes([setting[0], setting[1]]);
                    let value =
                        u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]);
                    raw.settings.insert(id, value);
                }
                raw.send(&settings_ack()).await?;
                return Ok(raw);
            }
        }
    }

    /// Writes `bytes` (any number of frames).
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.frames.io.write_all(bytes).await
    }

    /// Sends a request HEADERS (END_HEADERS | END_STREAM) on `stream`.
    pub async fn request(&mut self, stream: u32, fields: &[(&str, &str)]) -> std::io::Result<()> {
        let headers = frame(HEADERS, END_HEADERS | END_STREAM, stream, &block(fields));
        self.send(&headers).await
    }

    /// The next frame; see [`FrameReader::next_frame`].
    pub async fn next_frame(&mut self) -> Option<Frame> {
        self.frames.next_frame().await
    }

    /// See [`FrameReader::next_frame_within`].
    pub async fn next_frame_within(&mut self, silence: Duration) -> Result<Option<Frame>, Elapsed> {
        self.frames.next_frame_within(silence).await
    }

    /// The frames read until the ACK of a PING sent now, that ACK left out;
    /// `None` if the connection ends first. The ACK shows that the peer
    /// has read every frame sent before the PING; its answers to them may
    /// still come after the ACK (h2 sends a PING ACK ahead of queued
    /// stream frames, which RFC 9113 §6.7 allows).
    pub async fn until_ping_ack(&mut self, data: u64) -> Option<Vec<Frame>> {
        self.send(&ping(data)).await.ok()?;
        let mut seen = Vec::new();
        loop {
            let frame = self.frames.next_frame().await?;
            if frame.kind == PING && frame.flags & ACK != 0 && frame.payload == data.to_be_bytes() {
                return Some(seen);
            }
            seen.push(frame);
        }
    }

    /// See [`FrameReader::answer`].
    pub async fn answer(&mut self, stream: u32) -> Answer {
        self.frames.answer(stream).await
    }

    /// See [`FrameReader::ending`].
    pub async fn ending(&mut self, wait: Duration) -> Option<Answer> {
        self.frames.ending(wait).await
    }

    /// Separate halves, for a writer that floods while a reader watches.
    pub fn into_split(self) -> (FrameReader<ReadHalf<S>>, WriteHalf<S>) {
        let FrameReader { io, buf } = self.frames;
        let (read, write) = tokio::io::split(io);
        (FrameReader::new(read, buf), write)
    }
}

/// TLS to `addr` (server name `localhost`) trusting `ca`, offering ALPN
/// `h2` only; fails unless the server chose `h2`.
pub async fn tls_h2(
    addr: SocketAddr,
    ca: CertificateDer<'static>,
) -> anyhow::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    tls_h2_over(tcp, ca).await
}

/// [`tls_h2`] over a socket whose receive buffer is `bytes` (the kernel
/// doubles it) instead of one the kernel grows to megabytes: a client
/// that does not read then holds back its peer's writes almost at once.
pub async fn tls_h2_small_receive_buffer(
    addr: SocketAddr,
    ca: CertificateDer<'static>,
    bytes: u32,
) -> anyhow::Result<TlsStream<TcpStream>> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(bytes)?;
    let tcp = socket.connect(addr).await?;
    tls_h2_over(tcp, ca).await
}

async fn tls_h2_over(
    tcp: TcpStream,
    ca: CertificateDer<'static>,
) -> anyhow::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    tcp.set_nodelay(true)?;
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    anyhow::ensure!(
        tls.get_ref().1.alpn_protocol() == Some(&b"h2"[..]),
        "the server did not choose ALPN h2"
    );
    Ok(tls)
}
