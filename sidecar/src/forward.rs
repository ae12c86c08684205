//! Forward stage: an ordinary HTTP/2 stream becomes an HTTP/1.1 request on
//! the app's keep-alive pool, and the app's response streams back
//! ([`crate::respond`]).

use bytes::Bytes;
use h2::RecvStream;
use h2::server::SendResponse;
use h2hop::access::{Counted, Direction, Entry};
use h2hop::relay::H2Body;
use h2hop::translate::request;
use http::Request;

use crate::app::App;
use crate::context::Context;
use crate::{Error, respond};

/// Forwards one request to `app` and streams its response back; the
/// access log `entry` gets the status and the bytes each way.
pub async fn forward(
    context: &Context,
    app: &App,
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
    let answer = respond::unless_reset(respond, app.send(app_request)).await?;
    let (head, body) = answer.into_parts();
    context
        .metrics
        .request_answered(head.status, asked.elapsed());
    respond::respond_with(respond, head, body, entry).await
}
