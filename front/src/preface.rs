//! Which HTTP a cleartext client speaks, told by its first bytes: the
//! HTTP/2 connection preface (RFC 9113 §3.4) starts cleartext HTTP/2 with
//! prior knowledge (RFC 9113 §3.3, "h2c", as mesh gRPC clients speak);
//! anything else is HTTP/1.1.
//!
//! Input: a plain connection, after its PROXY header if any; output: its
//! protocol, and the connection wrapped in a [`Replay`] that gives back
//! the bytes read to tell, so that the HTTP server reads them first.
//! Called by [`crate::listener`] when `--plain-h2c` is on.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;

/// The client connection preface, RFC 9113 §3.4.
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether the plain listener serves HTTP/2 with prior knowledge
/// (`--plain-h2c`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PlainH2c {
    /// A connection that opens with the HTTP/2 preface is served HTTP/2.
    #[default]
    On,
    /// HTTP/1.1 only: the preface gets what any HTTP/1.1 server gives it.
    Off,
}

impl std::fmt::Display for PlainH2c {
    /// As the flag writes it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PlainH2c::On => "on",
            PlainH2c::Off => "off",
        })
    }
}

/// What a cleartext client's first bytes say it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spoken {
    /// The whole HTTP/2 preface came.
    Http2,
    /// Bytes that are not the preface (or the start of it, then the end
    /// of the stream).
    Http1,
}

/// Reads a cleartext client's first bytes until they either are the
/// whole preface or stop matching it: one read for nearly every HTTP/1.1
/// client, whose method is not `PRI`. `None` when nothing decisive came
/// within `bound` (the header timeout), the read failed, the client closed
/// before sending anything, or `shutdown` began: the connection is to be
/// closed.
pub async fn tell<T>(
    mut io: T,
    bound: Duration,
    shutdown: &CancellationToken,
) -> Option<(Spoken, Replay<T>)>
where
    T: AsyncRead + Unpin,
{
    let deadline = Instant::now() + bound;
    let mut read = [0u8; PREFACE.len()];
    let mut filled = 0;
    let spoken = loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => return None,
            next = timeout_at(deadline, io.read(&mut read[filled..])) => next,
        };
        match next {
            Err(_) | Ok(Err(_)) => return None,
            Ok(Ok(0)) if filled == 0 => return None,
            Ok(Ok(0)) => break Spoken::Http1,
            Ok(Ok(count)) => filled += count,
        }
        if read[..filled] != PREFACE[..filled] {
            break Spoken::Http1;
        }
        if filled == PREFACE.len() {
            break Spoken::Http2;
        }
    };
    let replay = Replay {
        read,
        start: 0,
        end: filled,
        io,
    };
    Some((spoken, replay))
}

/// A connection whose first bytes were read already: reads give them back
/// first, then read on; writes go straight through.
#[derive(Debug)]
pub struct Replay<T> {
    read: [u8; PREFACE.len()],
    start: usize,
    end: usize,
    io: T,
}

impl<T> Replay<T> {
    /// The bytes read ahead and not given back yet, and the connection:
    /// a tunnel relays the bare socket, which it can reset.
    pub fn into_parts(self) -> (bytes::Bytes, T) {
        let unread = bytes::Bytes::copy_from_slice(&self.read[self.start..self.end]);
        (unread, self.io)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Replay<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.start < this.end {
            let count = (this.end - this.start).min(buf.remaining());
            buf.put_slice(&this.read[this.start..this.start + count]);
            this.start += count;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Replay<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;

    const LONG: Duration = Duration::from_secs(5);

    /// What `tell` says of `chunks` written one by one, and every byte the
    /// replay then reads (up to the client's end).
    async fn told(chunks: &[&[u8]]) -> Option<(Spoken, Vec<u8>)> {
        let (mut client, server) = tokio::io::duplex(1024);
        let chunks: Vec<Vec<u8>> = chunks.iter().map(|chunk| chunk.to_vec()).collect();
        let writer = tokio::spawn(async move {
            for chunk in chunks {
                client.write_all(&chunk).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            client.shutdown().await.unwrap();
        });
        let (spoken, mut replay) = tell(server, LONG, &CancellationToken::new()).await?;
        let mut all = Vec::new();
        replay.read_to_end(&mut all).await.unwrap();
        writer.await.unwrap();
        Some((spoken, all))
    }

    #[tokio::test]
    async fn the_whole_preface_is_http2_and_no_byte_is_lost() {
        let mut sent = PREFACE.to_vec();
        sent.extend_from_slice(b"\0\0\0\x04\0\0\0\0\0");
        let (spoken, all) = told(&[&sent]).await.unwrap();
        assert_eq!(spoken, Spoken::Http2);
        assert_eq!(all, sent);
    }

    #[tokio::test]
    async fn the_preface_one_byte_at_a_time_is_http2() {
        let bytes: Vec<&[u8]> = PREFACE.chunks(1).collect();
        let (spoken, all) = told(&bytes).await.unwrap();
        assert_eq!(spoken, Spoken::Http2);
        assert_eq!(all, PREFACE);
    }

    #[tokio::test]
    async fn an_http1_request_is_http1_and_replayed_whole() {
        let request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let (spoken, all) = told(&[request]).await.unwrap();
        assert_eq!(spoken, Spoken::Http1);
        assert_eq!(all, request);
    }

    #[tokio::test]
    async fn a_start_of_the_preface_that_then_differs_is_http1() {
        let (spoken, all) = told(&[b"PRI * HTTP/2.0\r\n", b"\r\nXX"]).await.unwrap();
        assert_eq!(spoken, Spoken::Http1);
        assert_eq!(all, b"PRI * HTTP/2.0\r\n\r\nXX");
        let (spoken, all) = told(&[b"PRI * H"]).await.unwrap();
        assert_eq!(spoken, Spoken::Http1, "a start, then the end of the stream");
        assert_eq!(all, b"PRI * H");
    }

    #[tokio::test]
    async fn nothing_sent_is_no_protocol() {
        assert_eq!(told(&[]).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_start_of_the_preface_then_silence_waits_only_the_bound() {
        let (mut client, server) = tokio::io::duplex(1024);
        client.write_all(b"PRI * HTTP/2").await.unwrap();
        let started = Instant::now();
        let told = tell(server, Duration::from_secs(3), &CancellationToken::new()).await;
        assert!(told.is_none());
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        drop(client);
    }

    #[tokio::test]
    async fn shutdown_ends_the_wait() {
        let (_client, server) = tokio::io::duplex(1024);
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        assert!(tell(server, LONG, &shutdown).await.is_none());
    }
}
