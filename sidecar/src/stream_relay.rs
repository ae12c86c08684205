//! A tunnel between two HTTP/2 streams: the front's stream ⇄ the h2c app's
//! extended CONNECT stream (RFC 8441 §5), DATA to DATA, each direction
//! ending on its own with END_STREAM, a reset on either side resetting the
//! other (RFC 9113 §8.5). Used by [`crate::tunnel`] for an h2c app.
//!
//! A DATA frame's window is given back to its sender only once the frame
//! went out on the other stream, within that stream's window: memory per
//! direction stays at one frame, flow control runs end to end.

use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use h2::{Reason, RecvStream, SendStream};
use h2hop::relay::{self, Close, TunnelEnd};
use tokio::time::Instant;

/// The two halves of one HTTP/2 stream.
pub struct Halves {
    /// What we send on the stream.
    pub send: SendStream<Bytes>,
    /// What the peer sends on it.
    pub recv: RecvStream,
}

/// Relays `front` ⇄ `app` until both directions end, until nothing moved
/// either way for `idle` (then both streams are reset with CANCEL), or
/// until either stream is reset (then the other is reset with CANCEL).
/// `to_stream` in the result counts bytes toward the front, `to_tcp`
/// bytes toward the app, as for a TCP tunnel whose far side is the app.
pub async fn relay(front: Halves, app: Halves, idle: Duration) -> TunnelEnd {
    let Halves {
        send: mut front_send,
        recv: mut front_recv,
    } = front;
    let Halves {
        send: mut app_send,
        recv: mut app_recv,
    } = app;
    let mut end = TunnelEnd {
        to_stream: 0,
        to_tcp: 0,
        close: Close::Clean,
    };
    {
        let last_moved = Activity::new();
        let up = pipe(&mut front_recv, &mut app_send, &mut end.to_tcp, &last_moved);
        let down = pipe(
            &mut app_recv,
            &mut front_send,
            &mut end.to_stream,
            &last_moved,
        );
        let quiet = tokio::time::sleep(idle);
        tokio::pin!(up, down, quiet);
        let (mut up_done, mut down_done) = (false, false);
        while !(up_done && down_done) {
            let outcome = tokio::select! {
                outcome = &mut up, if !up_done => { up_done = true; outcome }
                outcome = &mut down, if !down_done => { down_done = true; outcome }
                () = &mut quiet => match last_moved.last().checked_add(idle) {
                    Some(deadline) if deadline > Instant::now() => {
                        quiet.as_mut().reset(deadline);
                        Ok(())
                    }
                    _ => Err(Close::Idle),
                },
            };
            if let Err(close) = outcome {
                end.close = close;
                break;
            }
        }
    }
    if end.close != Close::Clean {
        // Either side's reset (or the idle timeout) ends both: a stream
        // already reset ignores another.
        front_send.send_reset(Reason::CANCEL);
        app_send.send_reset(Reason::CANCEL);
    }
    end
}

/// One direction: each DATA frame from `recv` goes onto `send` within its
/// window, then its window goes back to `recv`'s sender; END_STREAM ends
/// `send`. A reset of either stream is [`Close::StreamReset`].
async fn pipe(
    recv: &mut RecvStream,
    send: &mut SendStream<Bytes>,
    moved: &mut u64,
    last_moved: &Activity,
) -> Result<(), Close> {
    loop {
        let frame = tokio::select! {
            frame = recv.data() => frame,
            _ = poll_fn(|cx| send.poll_reset(cx)) => return Err(Close::StreamReset),
        };
        match frame {
            None => {
                return send
                    .send_data(Bytes::new(), true)
                    .map_err(|_| Close::StreamReset);
            }
            Some(Err(_)) => return Err(Close::StreamReset),
            Some(Ok(data)) => {
                last_moved.touch();
                let len = data.len();
                relay::send_data(send, data, moved).await?;
                let _ = recv.flow_control().release_capacity(len);
            }
        }
    }
}

/// When a byte last moved either way (atomic only because the task may
/// move between threads).
struct Activity {
    started: Instant,
    /// Milliseconds from `started` to the last byte moved.
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.started + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}
