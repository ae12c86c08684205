//! Answering on an HTTP/2 stream from the front: waiting for work unless
//! the front resets the stream ([`unless_reset`]), and relaying an app's
//! response onto it ([`respond_with`]). Used by [`crate::forward`] and
//! [`crate::tunnel`] (an app's refusal of an upgrade is relayed as is).

use std::future::poll_fn;

use bytes::Bytes;
use h2::server::SendResponse;
use h2hop::access::{Close, Counted, Direction, Entry};
use h2hop::relay;
use h2hop::translate::response;
use http::Version;
use http::response::Parts;
use http_body::Body;
use tracing::debug;

use crate::Error;

/// Runs `work` unless the front resets the stream first, so an abandoned
/// request stops holding an app connection or dial (S5).
pub async fn unless_reset<T>(
    respond: &mut SendResponse<Bytes>,
    work: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::select! {
        result = work => result,
        reset = poll_fn(|cx| respond.poll_reset(cx)) => Err(Error::Reset(reset.ok())),
    }
}

/// Answers the stream with an app's response (an HTTP/1.1 `Incoming`, or
/// an h2c app's stream with its trailers): end-to-end fields only
/// (RFC 9110 §7.6.1 (N29), S7), body streamed within the stream's window.
/// `entry` gets the status, the body's bytes and whether it all went out.
pub async fn respond_with<B>(
    respond: &mut SendResponse<Bytes>,
    head: &Parts,
    body: B,
    entry: &mut Entry,
) -> Result<(), Error>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    entry.status(head.status);
    let end_of_stream = body.is_end_stream();
    let send = respond
        .send_response(response::relay(head, Version::HTTP_2), end_of_stream)
        .map_err(Error::Respond)?;
    if !end_of_stream {
        let body = Counted::new(body, entry.bytes(), Direction::Down);
        if let Err(err) = relay::send_body(body, send).await {
            // Headers are out: a body failure can only reset the stream,
            // which send_body did.
            debug!(error = %err, "response body not fully sent");
            return Ok(());
        }
    }
    entry.close(Close::Done);
    Ok(())
}
