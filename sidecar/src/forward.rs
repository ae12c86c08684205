//! Forward stage: an ordinary HTTP/2 stream becomes an HTTP/1.1 request on
//! the app's keep-alive pool, and the app's response streams back.
//!
//! Also used by [`crate::tunnel`] to relay an app's refusal of an upgrade.

use bytes::Bytes;
use h2::RecvStream;
use h2::server::SendResponse;
use h2hop::access::{Close, Counted, Direction, Entry};
use h2hop::relay::{self, H2Body};
use h2hop::translate::request;
use h2hop::translate::response;
use http::response::Parts;
use http::{Request, Version};
use http_body::Body as _;
use hyper::body::Incoming;
use tracing::debug;

use crate::listener::Context;
use crate::{Error, dispatch};

/// Forwards one request to the app and streams its response back; the
/// access log `entry` gets the status and the bytes each way.
pub async fn forward(
    context: &Context,
    request: Request<RecvStream>,
    respond: &mut SendResponse<Bytes>,
    entry: &mut Entry,
) -> Result<(), Error> {
    let asked = tokio::time::Instant::now();
    let (parts, recv) = request.into_parts();
    let body = Counted::new(H2Body::new(recv), entry.bytes(), Direction::Up);
    // The target is in origin form and Host carries the stream's
    // :authority; the pool has one address to dial, whatever they say.
    let app_request = request::h2_to_h1(&parts, None)?.map(|()| body);
    // S5: a stream the front resets while we wait cancels the request.
    let answer = dispatch::unless_reset(respond, context.app.send(app_request)).await?;
    let (head, body) = answer.into_parts();
    context
        .metrics
        .request_answered(head.status, asked.elapsed());
    respond_with(respond, &head, body, entry).await
}

/// Answers the stream with an app's response: end-to-end fields only
/// (RFC 9110 §7.6.1 (N29), S7), body streamed within the stream's window.
/// `entry` gets the status, the body's bytes and whether it all went out.
pub async fn respond_with(
    respond: &mut SendResponse<Bytes>,
    head: &Parts,
    body: Incoming,
    entry: &mut Entry,
) -> Result<(), Error> {
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
