//! A TCP connection ⇄ an HTTP/2 stream of capsules: the relay of the
//! `connect-tcp` form (see [`crate::tcp_connect`]). The front runs it with
//! its client's connection, the sidecar with its target's.
//!
//! It is [`crate::relay::tunnel`] with the payload framed as capsules
//! ([`crate::capsule`]), and ends the same ways ([`Close`]):
//! - TCP bytes → one DATA capsule per read, its header written in front of
//!   the read in the same buffer (no copy); TCP FIN → an empty FINAL_DATA
//!   capsule on the frame that carries END_STREAM (draft §3.4).
//! - Capsules → TCP writes; FINAL_DATA → TCP shutdown (FIN); unknown
//!   capsules are skipped (RFC 9297 §3.2). A stream that ends without
//!   FINAL_DATA, or inside a capsule, or that is malformed, is an abort:
//!   RST_STREAM and a TCP reset (draft §3.4, RFC 9297 §3.3).
//! - A TCP error → RST_STREAM(CONNECT_ERROR) (draft §3.4); a stream reset
//!   → TCP reset; idle and fin timeouts → RST_STREAM(CANCEL).
//!
//! Flow control bounds memory as in the byte relay: received frames are
//! released only after their payload was written, and sends wait for the
//! peer's window (RFC 9113 §5.2).

use std::future::poll_fn;
use std::pin::Pin;

use bytes::{Buf, Bytes};
use futures_util::FutureExt as _;
use h2::{Reason, RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::activity::Activity;
use crate::capsule::{CapsuleError, Decoder, EMPTY_FINAL_DATA, Event, Header, Kind};
use crate::relay::{self, Batch, Close, ConnectError, MAX_BATCH, Timeouts, TunnelEnd};

/// Room left in front of each TCP read for its capsule header: the Type
/// (4 bytes for DATA) and the longest Length (8).
const HEADROOM: usize = 12;

/// Relays `io` ⇄ the capsule stream `(send, recv)` until both directions
/// end, or a timeout or an error ends the tunnel; what moved (payload
/// bytes, headers not counted) and how it ended.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would keep its arguments twice (see crate::relay)"
)]
pub fn tunnel(
    io: TcpStream,
    send: SendStream<Bytes>,
    recv: RecvStream,
    timeouts: Timeouts,
) -> impl Future<Output = TunnelEnd> {
    async move {
        let (mut reader, mut writer) = io.into_split();
        let end = relay(&mut reader, &mut writer, send, recv, timeouts).await;
        if end.close == Close::StreamReset {
            relay::reset_tcp(reader, writer);
        }
        end
    }
}

/// The tunnel over any byte stream's halves; [`tunnel`] adds the TCP reset.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would keep its arguments twice (see crate::relay)"
)]
fn relay<'a, R, W>(
    reader: &'a mut R,
    writer: &'a mut W,
    mut send: SendStream<Bytes>,
    mut recv: RecvStream,
    timeouts: Timeouts,
) -> impl Future<Output = TunnelEnd> + 'a
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
        // Set when the capsules are no valid content: the reset's reason.
        let mut abort = None;
        {
            let last_moved = Activity::new();
            let up = tcp_to_capsules(reader, &mut send, &mut end.to_stream, &last_moved);
            let down = capsules_to_tcp(&mut recv, writer, &mut end.to_tcp, &last_moved, &mut abort);
            end.close = relay::drive!(up, down, timeouts, last_moved);
        }
        match abort {
            Some(reason) => send.send_reset(reason),
            // The draft closes the stream of a failed TCP connection with
            // CONNECT_ERROR (§3.4); a timeout's reset is CANCEL.
            None => relay::reset_stream::<ConnectError>(&mut send, end.close).await,
        }
        end
    }
}

/// TCP → stream: each read becomes a DATA capsule; EOF an empty
/// FINAL_DATA with END_STREAM. `sent` counts payload bytes only.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would keep its arguments twice (see crate::relay)"
)]
fn tcp_to_capsules<'a, R: AsyncRead + Unpin>(
    reader: &'a mut R,
    send: &'a mut SendStream<Bytes>,
    sent: &'a mut u64,
    last_moved: &'a Activity,
) -> impl Future<Output = Result<(), Close>> + 'a {
    async move {
        // What went onto the stream, headers included.
        let mut wire = 0;
        loop {
            let read = poll_fn(|cx| relay::poll_read_after(Pin::new(&mut *reader), HEADROOM, cx))
                .await
                .map_err(|_| Close::TcpReset)?;
            if read.is_empty() {
                let fin = Bytes::from_static(&EMPTY_FINAL_DATA);
                return relay::send_chunks(send, fin, &mut wire, true).await;
            }
            last_moved.touch();
            let mut capsule = read;
            let payload = capsule.len() - HEADROOM;
            // A read is never 2^62 bytes long; if it were, it could not be
            // framed, and the tunnel ends as if TCP had failed.
            let header = Header::new(Kind::Data, payload as u64).ok_or(Close::TcpReset)?;
            let header = header.as_bytes();
            let start = HEADROOM - header.len();
            capsule[start..HEADROOM].copy_from_slice(header);
            capsule.advance(start);
            relay::send_data(send, capsule.freeze(), &mut wire).await?;
            *sent += payload as u64;
        }
    }
}

/// How the stream's content ended.
enum StreamEnd {
    /// END_STREAM after FINAL_DATA.
    Clean,
    /// The peer reset the stream.
    Reset,
    /// The capsules were no valid `connect-tcp` content.
    Invalid(CapsuleError),
}

/// Stream → TCP: the payload of each batch of frames in one write, then
/// their window given back; FINAL_DATA shuts the TCP write side down.
/// `written` counts payload bytes.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would keep its arguments twice (see crate::relay)"
)]
fn capsules_to_tcp<'a, W: AsyncWrite + Unpin>(
    recv: &'a mut RecvStream,
    writer: &'a mut W,
    written: &'a mut u64,
    last_moved: &'a Activity,
    abort: &'a mut Option<Reason>,
) -> impl Future<Output = Result<(), Close>> + 'a {
    async move {
        let mut decoder = Decoder::new();
        let mut ended = None;
        while ended.is_none() {
            // A new batch each time: an idle tunnel keeps no deque.
            let mut frames = Frames::default();
            match recv.data().await {
                Some(Ok(chunk)) => ended = frames.take(&mut decoder, chunk),
                Some(Err(_)) => return Err(Close::StreamReset),
                None => ended = Some(end_of_stream(&decoder)),
            }
            // Frames that already arrived go out in the same writev.
            while ended.is_none() && frames.batch.len() < MAX_BATCH {
                match recv.data().now_or_never() {
                    Some(Some(Ok(chunk))) => ended = frames.take(&mut decoder, chunk),
                    Some(Some(Err(_))) => ended = Some(StreamEnd::Reset),
                    Some(None) => ended = Some(end_of_stream(&decoder)),
                    None => break,
                }
            }
            let len = frames.batch.remaining();
            last_moved.touch();
            writer
                .write_all_buf(&mut frames.batch)
                .await
                .map_err(|_| Close::TcpReset)?;
            *written += len as u64;
            // Released only now, after the write, headers and skipped
            // capsules too: a slow TCP reader stops the HTTP/2 sender.
            let _ = recv.flow_control().release_capacity(frames.taken);
            if frames.fin {
                writer.shutdown().await.map_err(|_| Close::TcpReset)?;
            }
        }
        match ended {
            Some(StreamEnd::Reset) => Err(Close::StreamReset),
            Some(StreamEnd::Invalid(err)) => {
                tracing::debug!(error = %err, "capsule stream aborted");
                *abort = Some(reason_for(err));
                Err(Close::StreamReset)
            }
            Some(StreamEnd::Clean) | None => Ok(()),
        }
    }
}

/// DATA frames taken off the stream and not yet written on.
#[derive(Default)]
struct Frames {
    /// Their payload.
    batch: Batch,
    /// Their bytes, headers and skipped capsules included: the window to
    /// give back once the batch is written.
    taken: usize,
    /// They held FINAL_DATA's end.
    fin: bool,
}

impl Frames {
    /// Decodes `chunk` into the batch; an ending if it was invalid.
    fn take(&mut self, decoder: &mut Decoder, mut chunk: Bytes) -> Option<StreamEnd> {
        self.taken += chunk.len();
        loop {
            match decoder.decode(&mut chunk) {
                Ok(Some(Event::Payload(payload))) => self.batch.push(payload),
                Ok(Some(Event::Final)) => self.fin = true,
                Ok(Some(Event::Skipped(code))) => {
                    tracing::trace!(capsule_type = code, "unknown capsule skipped");
                }
                Ok(None) => return None,
                Err(err) => return Some(StreamEnd::Invalid(err)),
            }
        }
    }
}

/// END_STREAM: clean after FINAL_DATA, an abort otherwise.
fn end_of_stream(decoder: &Decoder) -> StreamEnd {
    match decoder.finish() {
        Ok(()) => StreamEnd::Clean,
        Err(err) => StreamEnd::Invalid(err),
    }
}

/// The reset a broken capsule stream gets: a malformed one is a
/// PROTOCOL_ERROR (RFC 9297 §3.3, RFC 9113 §8.1.1); one that ended without
/// FINAL_DATA stands for a failed TCP connection: CONNECT_ERROR (draft §3.4).
fn reason_for(err: CapsuleError) -> Reason {
    match err {
        CapsuleError::NoFinal => Reason::CONNECT_ERROR,
        CapsuleError::Truncated | CapsuleError::AfterFinal => Reason::PROTOCOL_ERROR,
    }
}

#[cfg(test)]
#[path = "capsule_relay_tests.rs"]
mod tests;
