//! The app connection an upgrade goes out on ([`crate::app::App::upgrade`]),
//! driven by the tunnel's own task instead of a task of its own: until the
//! answer, then to the hand-over of the socket after a `101`
//! ([`UpgradeConn::into_upgraded`]). Only a refusal, whose body is relayed
//! while the connection reads it, gets a task ([`UpgradeConn::spawn`]).
//!
//! A task per upgrade connection cost a spawn of hyper's whole state and
//! two cross-task wake-ups per handshake (callgrind, sidecar WebSocket
//! handshake: 102.5k → 101.4k instructions, one spawn fewer).

use std::future::poll_fn;
use std::pin::pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::Connection;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tracing::debug;

/// hyper's state for one upgrade connection.
type Http1 = Connection<TokioIo<TcpStream>, Full<Bytes>>;

/// An upgrade's app connection; see the module docs.
pub struct UpgradeConn {
    /// Boxed: hyper's state is over a kilobyte, and moves with the
    /// tunnel's futures.
    conn: Box<Http1>,
    /// hyper is done with the connection: switched, closed or failed.
    done: bool,
}

impl UpgradeConn {
    /// A connection fresh from hyper's handshake.
    pub(crate) fn new(conn: Http1) -> Self {
        Self {
            conn: Box::new(conn),
            done: false,
        }
    }

    /// `work` (the answer to the request sent on this connection), with
    /// the connection driven meanwhile.
    pub(crate) async fn driving<F: Future>(&mut self, work: F) -> F::Output {
        let mut work = pin!(work);
        poll_fn(|cx| {
            if let Poll::Ready(output) = work.as_mut().poll(cx) {
                return Poll::Ready(output);
            }
            // Writes the request and reads the answer; a connection that
            // fails fails the request too, which says why.
            let _ = self.poll_done(cx);
            work.as_mut().poll(cx)
        })
        .await
    }

    /// Polls hyper until it is done with the connection; without shutdown,
    /// so that the socket stays whole for the tunnel.
    fn poll_done(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), hyper::Error>> {
        if self.done {
            return Poll::Ready(Ok(()));
        }
        let polled = self.conn.poll_without_shutdown(cx);
        self.done = polled.is_ready();
        polled
    }

    /// After a `101`: the app's socket, and what hyper read behind the
    /// `101` (the app's first tunnel bytes).
    pub async fn into_upgraded(mut self) -> Result<(TcpStream, Bytes), hyper::Error> {
        poll_fn(|cx| self.poll_done(cx)).await?;
        let parts = self.conn.into_parts();
        Ok((parts.io.into_inner(), parts.read_buf))
    }

    /// After any other answer: hyper reads its body on a task of its own
    /// while it is relayed, then closes the connection.
    pub fn spawn(self) {
        if self.done {
            return;
        }
        let mut conn = self.conn;
        tokio::spawn(async move {
            if let Err(err) = (&mut *conn).await {
                debug!(error = %err, "app connection ended with an error");
            }
        });
    }
}
