//! Moving bytes across the HTTP/2 hop, with flow control as the only buffer.
//!
//! - [`tunnel`]: an upgraded TCP connection ⇄ one HTTP/2 stream. The front
//!   runs it with the client's connection, the sidecar with the app's.
//! - [`H2Body`]: an HTTP/2 stream's incoming data as an `http_body::Body`,
//!   for hyper to write to an HTTP/1.1 peer.
//! - [`send_body`]: any `http_body::Body` written onto an HTTP/2 stream.
//!
//! Memory per stream stays bounded: received DATA is released to the peer's
//! window only after it was written onward, and we send only what the peer's
//! window grants (RFC 9113 §5.2).
//!
//! The tunnel's functions return `async move` blocks instead of being
//! `async fn`s: an `async fn` keeps its arguments twice in its state (once
//! as arguments, once as the locals they are moved into), and these states
//! live as long as their tunnels, in every idle one.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::FutureExt as _;
use h2::{Reason, RecvStream, SendStream};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::activity::Activity;

/// Fresh read space each worker thread's [`SCRATCH`] takes at a time. A
/// read gets at least [`MIN_READ`] of it, so throughput reads stay large.
const READ_CHUNK: usize = 64 * 1024;
/// Least spare room a read is given before [`SCRATCH`] takes a fresh chunk.
const MIN_READ: usize = 16 * 1024;

mod batch;
mod end;

pub(crate) use batch::{Batch, MAX_BATCH};
pub use end::{Cancel, Close, ConnectError, TcpFailure, Timeouts, TunnelEnd};

thread_local! {
    /// Where every tunnel on this thread reads from TCP into. Each read is
    /// split off as its own `Bytes` that shares the chunk, so small
    /// messages from many tunnels pack into one allocation, and an idle
    /// tunnel holds no buffer at all: a chunk lives only as long as some
    /// of its bytes are still in flight.
    static SCRATCH: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// Relays `io` ⇄ the stream `(send, recv)` until both directions end, or
/// until nothing moved either way for `timeouts.idle`, or `io` left its
/// half open for `timeouts.fin` after the stream ended.
///
/// `prefix` holds bytes already read from `io` (hyper's read buffer after an
/// upgrade); they go onto the stream first. `early` holds bytes already
/// taken off the stream (what followed an upgrade's body); they go to `io`
/// first. Each direction half-closes on its own: TCP EOF → empty DATA with
/// END_STREAM, END_STREAM → TCP shutdown (FIN). A TCP error, or either
/// timeout, sends RST_STREAM(CANCEL); a stream reset resets the TCP
/// connection (RFC 8441 §5 (N14), RFC 9113 §8.5 (N27)).
pub fn tunnel(
    io: TcpStream,
    prefix: Bytes,
    early: Bytes,
    send: SendStream<Bytes>,
    recv: RecvStream,
    timeouts: Timeouts,
) -> impl Future<Output = TunnelEnd> {
    tunnel_resetting::<Cancel>(io, prefix, early, send, recv, timeouts)
}

/// [`tunnel`], with [`TcpFailure::REASON`] of `F` as the reset the stream
/// gets when the TCP connection fails or is reset.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would keep its arguments twice (module doc)"
)]
pub fn tunnel_resetting<F: TcpFailure>(
    io: TcpStream,
    prefix: Bytes,
    early: Bytes,
    send: SendStream<Bytes>,
    recv: RecvStream,
    timeouts: Timeouts,
) -> impl Future<Output = TunnelEnd> {
    async move {
        let (reader, writer) = io.into_split();
        let halves = Halves { reader, writer };
        let (end, halves) = relay::<_, _, F>(halves, prefix, early, send, recv, timeouts).await;
        if end.close == Close::StreamReset {
            reset_tcp(halves.reader, halves.writer);
        }
        end
    }
}

/// Closes a TCP connection with RST instead of FIN: SO_LINGER 0 makes
/// close() send RST. If it fails the peer sees a FIN, which still ends
/// its tunnel.
pub(crate) fn reset_tcp(reader: OwnedReadHalf, writer: OwnedWriteHalf) {
    if let Ok(io) = reader.reunite(writer) {
        let _ = io.set_zero_linger();
    }
}

/// [`tunnel`] for any byte stream: a client's TLS connection, or a client's
/// own HTTP/2 stream. A stream reset closes it (there is no RST to send).
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would keep its arguments twice (module doc)"
)]
pub fn tunnel_io<T>(
    io: T,
    prefix: Bytes,
    early: Bytes,
    send: SendStream<Bytes>,
    recv: RecvStream,
    timeouts: Timeouts,
) -> impl Future<Output = TunnelEnd>
where
    T: AsyncRead + AsyncWrite + Send,
{
    async move {
        let (reader, writer) = tokio::io::split(io);
        let halves = Halves { reader, writer };
        relay::<_, _, Cancel>(halves, prefix, early, send, recv, timeouts)
            .await
            .0
    }
}

/// Runs a tunnel's two directions until both end, one fails, or the
/// tunnel is quiet too long, and evaluates to how it ended ([`Close`]).
/// `$up` (onto the stream) and `$down` (off it) are futures of
/// `Result<(), Close>` that stamp `$last_moved` ([`Activity`]) as bytes
/// move; `$timeouts` is the [`Timeouts`]. A macro rather than a function
/// so that the relays running it (this one and the capsule relay) keep
/// no pointers to their own directions and timeouts in their state: every
/// idle tunnel would carry them (16 bytes on [`tunnel`]'s 896).
macro_rules! drive {
    ($up:ident, $down:ident, $timeouts:ident, $last_moved:ident) => {{
        // The quiet allowed: the idle timeout, then, once the stream has
        // ended toward the byte stream, the fin timeout if that is shorter.
        let (mut quiet, mut quiet_close) = ($timeouts.idle, $crate::relay::Close::Idle);
        let idle = ::tokio::time::sleep(quiet);
        ::tokio::pin!($up, $down, idle);
        let (mut up_done, mut down_done) = (false, false);
        let mut close = $crate::relay::Close::Clean;
        while !(up_done && down_done) {
            let outcome = ::tokio::select! {
                outcome = &mut $up, if !up_done => { up_done = true; outcome }
                outcome = &mut $down, if !down_done => {
                    down_done = true;
                    if outcome.is_ok() && $timeouts.fin < quiet {
                        (quiet, quiet_close) = ($timeouts.fin, $crate::relay::Close::FinTimeout);
                        // The fin timeout counts from this shutdown.
                        $last_moved.touch();
                        idle.as_mut().reset(::tokio::time::Instant::now() + quiet);
                    }
                    outcome
                }
                () = &mut idle => match $last_moved.last().checked_add(quiet) {
                    Some(deadline) if deadline <= ::tokio::time::Instant::now() => {
                        Err(quiet_close)
                    }
                    Some(deadline) => {
                        idle.as_mut().reset(deadline);
                        Ok(())
                    }
                    // A timeout past the clock's range never ends a tunnel.
                    None => {
                        let year = ::std::time::Duration::from_secs(86_400 * 365);
                        idle.as_mut().reset(::tokio::time::Instant::now() + year);
                        Ok(())
                    }
                },
            };
            if let Err(ended) = outcome {
                close = ended;
                break;
            }
        }
        close
    }};
}
pub(crate) use drive;

/// The two halves of the byte stream a tunnel relays.
struct Halves<R, W> {
    reader: R,
    writer: W,
}

/// The tunnel itself; returns the halves so that [`tunnel`] can reset TCP.
/// A TCP failure resets the stream with `F`'s reason, a timeout with CANCEL.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would keep its arguments twice (module doc)"
)]
fn relay<R, W, F: TcpFailure>(
    mut halves: Halves<R, W>,
    prefix: Bytes,
    early: Bytes,
    mut send: SendStream<Bytes>,
    mut recv: RecvStream,
    timeouts: Timeouts,
) -> impl Future<Output = (TunnelEnd, Halves<R, W>)>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    async move {
        let mut end = TunnelEnd {
            to_stream: 0,
            to_tcp: 0,
            close: Close::Clean,
        };
        {
            // Both directions run in this one task and stamp it on each chunk;
            // the idle timer re-arms from the last stamp until one is too old.
            let last_moved = Activity::new();
            let up = tcp_to_stream(
                &mut halves.reader,
                prefix,
                &mut send,
                &mut end.to_stream,
                &last_moved,
            );
            let down = stream_to_tcp(
                early,
                &mut recv,
                &mut halves.writer,
                &mut end.to_tcp,
                &last_moved,
            );
            end.close = drive!(up, down, timeouts, last_moved);
        }
        reset_stream::<F>(&mut send, end.close).await;
        (end, halves)
    }
}

/// Resets the stream when the tunnel ended on this side: with `F`'s
/// reason after a TCP failure, with CANCEL after a timeout (the other
/// endings need no reset).
pub(crate) async fn reset_stream<F: TcpFailure>(send: &mut SendStream<Bytes>, close: Close) {
    if close == Close::TcpReset {
        // What was read just before the TCP error may still wait in h2's
        // send queue, and a reset (explicit or implicit) drops the queue
        // (h2 has no way to wait for it to drain). One turn of the
        // scheduler lets the connection task write it first, so the peer
        // gets the bytes sent before the reset, as it would directly.
        // That task was woken when the data was queued, into this
        // worker's next slot, so it runs before this one is polled again,
        // unless another worker was running it already (then it is
        // writing meanwhile): best effort with several workers.
        tokio::task::yield_now().await;
    }
    match close {
        Close::TcpReset => send.send_reset(F::REASON),
        Close::Idle | Close::FinTimeout => send.send_reset(Reason::CANCEL),
        Close::Clean | Close::StreamReset => {}
    }
}

/// TCP → stream: read, wait for window, send; EOF ends the stream. Reads go
/// into this thread's [`SCRATCH`], so the tunnel holds no read buffer of its
/// own (idle memory is a per-tunnel cost times many tunnels).
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would keep its arguments twice (module doc)"
)]
fn tcp_to_stream<'a, R: AsyncRead + Unpin>(
    reader: &'a mut R,
    prefix: Bytes,
    send: &'a mut SendStream<Bytes>,
    sent: &'a mut u64,
    last_moved: &'a Activity,
) -> impl Future<Output = Result<(), Close>> + 'a {
    async move {
        send_data(send, prefix, sent).await?;
        loop {
            match poll_fn(|cx| poll_read_shared(Pin::new(&mut *reader), cx)).await {
                Ok(chunk) if chunk.is_empty() => {
                    return send
                        .send_data(Bytes::new(), true)
                        .map_err(|_| Close::StreamReset);
                }
                Ok(chunk) => {
                    last_moved.touch();
                    send_data(send, chunk, sent).await?;
                }
                Err(_) => return Err(Close::TcpReset),
            }
        }
    }
}

/// Reads what `reader` has into this thread's [`SCRATCH`] and splits it off;
/// empty at EOF. Going through `AsyncRead` (not `try_read`) lets tokio treat
/// a short read as "drained" and skip a read that would only say `EAGAIN`.
fn poll_read_shared<R: AsyncRead>(
    reader: Pin<&mut R>,
    cx: &mut Context<'_>,
) -> Poll<io::Result<Bytes>> {
    poll_read_after(reader, 0, cx).map_ok(BytesMut::freeze)
}

/// [`poll_read_shared`] that leaves `headroom` bytes in front of what it
/// reads, for the caller to write a header into: header and data then go
/// out as one buffer with no copy. Empty at EOF (no headroom either).
pub(crate) fn poll_read_after<R: AsyncRead>(
    reader: Pin<&mut R>,
    headroom: usize,
    cx: &mut Context<'_>,
) -> Poll<io::Result<BytesMut>> {
    SCRATCH.with_borrow_mut(|scratch| {
        if scratch.capacity() - scratch.len() < MIN_READ + headroom {
            scratch.reserve(READ_CHUNK);
        }
        // Every read is split off whole, so the scratch is empty here.
        scratch.resize(headroom, 0);
        let read = match tokio_util::io::poll_read_buf(reader, cx, scratch) {
            Poll::Ready(Ok(read)) if read > 0 => read,
            other => {
                scratch.clear();
                return other.map_ok(|_| BytesMut::new());
            }
        };
        Poll::Ready(Ok(scratch.split_to(headroom + read)))
    })
}

/// Stream → TCP: write each DATA frame, then give its window back; END_STREAM
/// shuts the TCP write side down.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would keep its arguments twice (module doc)"
)]
fn stream_to_tcp<'a, W: AsyncWrite + Unpin>(
    early: Bytes,
    recv: &'a mut RecvStream,
    writer: &'a mut W,
    written: &'a mut u64,
    last_moved: &'a Activity,
) -> impl Future<Output = Result<(), Close>> + 'a {
    async move {
        if !early.is_empty() {
            writer
                .write_all(&early)
                .await
                .map_err(|_| Close::TcpReset)?;
            *written += early.len() as u64;
        }
        // Set once the stream ends: by END_STREAM, or by a reset, which may
        // come right behind DATA that must still be written first.
        let mut ended: Option<Result<(), Close>> = None;
        while ended.is_none() {
            // A new batch each time: an idle tunnel keeps no deque.
            let mut batch = Batch::default();
            match recv.data().await {
                Some(chunk) => batch.push(chunk.map_err(|_| Close::StreamReset)?),
                None => break,
            }
            // Frames that already arrived go out in the same writev: a 64 KiB
            // message is four 16 KiB DATA frames, and one syscall, not four.
            while batch.len() < MAX_BATCH && ended.is_none() {
                match recv.data().now_or_never() {
                    Some(Some(Ok(chunk))) => batch.push(chunk),
                    Some(Some(Err(_))) => ended = Some(Err(Close::StreamReset)),
                    Some(None) => ended = Some(Ok(())),
                    None => break,
                }
            }
            let len = batch.remaining();
            last_moved.touch();
            writer
                .write_all_buf(&mut batch)
                .await
                .map_err(|_| Close::TcpReset)?;
            *written += len as u64;
            // Released only now, after the write: a slow TCP reader stops the
            // HTTP/2 sender instead of growing a buffer here.
            let _ = recv.flow_control().release_capacity(len);
        }
        ended.unwrap_or(Ok(()))?;
        writer.shutdown().await.map_err(|_| Close::TcpReset)
    }
}

/// Sends `data` as the peer's window allows, never buffering beyond it.
pub fn send_data<'a>(
    send: &'a mut SendStream<Bytes>,
    data: Bytes,
    sent: &'a mut u64,
) -> impl Future<Output = Result<(), Close>> + 'a {
    send_chunks(send, data, sent, false)
}

/// [`send_data`], the last chunk carrying END_STREAM when `end_stream`
/// (and `data` is not empty).
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would keep its arguments twice (module doc)"
)]
pub(crate) fn send_chunks<'a>(
    send: &'a mut SendStream<Bytes>,
    mut data: Bytes,
    sent: &'a mut u64,
    end_stream: bool,
) -> impl Future<Output = Result<(), Close>> + 'a {
    async move {
        while !data.is_empty() {
            send.reserve_capacity(data.len());
            let granted = match poll_fn(|cx| send.poll_capacity(cx)).await {
                Some(Ok(0)) => continue,
                Some(Ok(granted)) => granted,
                Some(Err(_)) | None => return Err(Close::StreamReset),
            };
            let chunk = data.split_to(granted.min(data.len()));
            *sent += chunk.len() as u64;
            send.send_data(chunk, end_stream && data.is_empty())
                .map_err(|_| Close::StreamReset)?;
        }
        Ok(())
    }
}

/// Writes `body` onto `send`: data within the window, then trailers or
/// END_STREAM (on the last DATA frame when the body knows it is the
/// last). A body error resets the stream with CANCEL; a reset from the
/// peer stops reading the body.
pub async fn send_body<B>(body: B, mut send: SendStream<Bytes>) -> Result<u64, io::Error>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let mut body = std::pin::pin!(body);
    let mut sent = 0;
    loop {
        let frame = poll_fn(|cx| {
            if let Poll::Ready(reason) = send.poll_reset(cx) {
                return Poll::Ready(Err(reset_error(reason.ok())));
            }
            body.as_mut().poll_frame(cx).map(Ok)
        })
        .await?;
        let Some(frame) = frame else {
            send.send_data(Bytes::new(), true).map_err(h2_error)?;
            return Ok(sent);
        };
        let frame = match frame {
            Ok(frame) => frame,
            Err(err) => {
                send.send_reset(Reason::CANCEL);
                return Err(io::Error::other(err));
            }
        };
        match frame.into_data() {
            Ok(data) => {
                // The last chunk carries END_STREAM itself when the body
                // says nothing follows (a Content-Length body read to its
                // end): one DATA frame fewer per response, here and at the
                // peer (callgrind, plain GET: sidecar 58.9k → 56.3k
                // instructions per request, front 56.0k → 53.6k).
                let end_stream = !data.is_empty() && body.is_end_stream();
                send_chunks(&mut send, data, &mut sent, end_stream)
                    .await
                    .map_err(|_| reset_error(None))?;
                if end_stream {
                    return Ok(sent);
                }
            }
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    send.send_trailers(trailers).map_err(h2_error)?;
                    return Ok(sent);
                }
            }
        }
    }
}

fn reset_error(reason: Option<Reason>) -> io::Error {
    let reason = reason.map_or_else(|| "unknown".to_owned(), |r| r.to_string());
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        format!("stream reset by peer: {reason}"),
    )
}

fn h2_error(err: h2::Error) -> io::Error {
    io::Error::other(err)
}

/// An HTTP/2 stream's incoming data and trailers as an `http_body::Body`.
///
/// Each DATA frame's window is released when hyper takes the frame, so the
/// peer can send at most one window ahead of what was written onward.
pub struct H2Body {
    recv: RecvStream,
    data_done: bool,
    // Whatever must live exactly as long as the stream, such as the
    // front's place on its connection; dropped with the body.
    _guard: Option<Box<dyn Send>>,
}

impl H2Body {
    /// Wraps a received stream.
    pub fn new(recv: RecvStream) -> Self {
        Self {
            recv,
            data_done: false,
            _guard: None,
        }
    }

    /// Wraps a received stream and keeps `guard` until the body is dropped.
    pub fn with_guard(recv: RecvStream, guard: impl Send + 'static) -> Self {
        Self {
            recv,
            data_done: false,
            _guard: Some(Box::new(guard)),
        }
    }
}

impl std::fmt::Debug for H2Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Body")
            .field("stream", &self.recv.stream_id())
            .field("data_done", &self.data_done)
            .finish()
    }
}

impl Body for H2Body {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        if !self.data_done {
            match ready!(self.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = self.recv.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(err)) => return Poll::Ready(Some(Err(err))),
                None => self.data_done = true,
            }
        }
        let trailers: Result<Option<HeaderMap>, h2::Error> = ready!(self.recv.poll_trailers(cx));
        Poll::Ready(
            trailers
                .transpose()
                .map(|trailers| trailers.map(Frame::trailers)),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::IoSlice;

    fn batch_of(parts: &[&'static [u8]]) -> Batch {
        let mut batch = Batch::default();
        for part in parts {
            batch.push(Bytes::from_static(part));
        }
        batch
    }

    #[test]
    fn batch_offers_every_frame_to_one_writev_and_skips_empty_ones() {
        let batch = batch_of(&[b"ab", b"", b"cde", b"f"]);
        assert_eq!(batch.len(), 3);
        assert_eq!(batch.remaining(), 6);
        let mut slices = [IoSlice::new(&[]); 8];
        let filled = batch.chunks_vectored(&mut slices);
        let joined: Vec<u8> = slices[..filled].iter().flat_map(|s| s.to_vec()).collect();
        assert_eq!(joined, b"abcdef");
    }

    #[test]
    fn batch_resumes_a_partial_write_mid_frame() {
        let mut batch = batch_of(&[b"ab", b"cde", b"f"]);
        batch.advance(3);
        assert_eq!(batch.chunk(), b"de");
        assert_eq!(batch.remaining(), 3);
        batch.advance(3);
        assert_eq!(batch.remaining(), 0);
        assert_eq!(batch.chunk(), b"");
    }

    #[tokio::test]
    async fn reads_from_many_sockets_share_chunks_and_keep_their_own_bytes() {
        let (mut a_far, mut a_near) = tokio::io::duplex(64);
        let (mut b_far, mut b_near) = tokio::io::duplex(64);
        a_far.write_all(b"first").await.unwrap();
        b_far.write_all(b"second").await.unwrap();
        let a = poll_fn(|cx| poll_read_shared(Pin::new(&mut a_near), cx))
            .await
            .unwrap();
        let b = poll_fn(|cx| poll_read_shared(Pin::new(&mut b_near), cx))
            .await
            .unwrap();
        assert_eq!((&a[..], &b[..]), (&b"first"[..], &b"second"[..]));
        // The second read landed right after the first, in the same chunk.
        assert_eq!(a.as_ptr().wrapping_add(a.len()), b.as_ptr());
        drop(a_far);
        let eof = poll_fn(|cx| poll_read_shared(Pin::new(&mut a_near), cx))
            .await
            .unwrap();
        assert!(eof.is_empty());
    }
}
