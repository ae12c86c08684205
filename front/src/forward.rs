//! Forward stage: a plain HTTP/1.1 request becomes an ordinary HTTP/2 stream.
//!
//! Input: a request [`crate::classify`] found plain. Output: the sidecar's
//! response, head translated and body streamed back as it arrives. The
//! request body streams up in its own task, bounded by the stream window.

use std::sync::Arc;

use h2hop::access::{self, Counted, Direction};
use h2hop::relay::{self, H2Body};
use h2hop::translate::request::{self, Kind};
use h2hop::translate::response;
use http::{Request, Response};
use http_body::Body as _;
use hyper::body::Incoming;
use tracing::{Instrument as _, Span, debug};

use crate::Error;
use crate::listener::{Context, ResponseBody, answer_version, client_scheme};
use crate::upstream::Cluster;

/// Forwards one request and returns the response to stream to the client;
/// the request body's bytes are counted into `counts`.
pub async fn forward(
    context: &Context,
    cluster: &Cluster,
    client: Request<Incoming>,
    counts: Arc<access::Bytes>,
) -> Result<Response<ResponseBody>, Error> {
    let (parts, body) = client.into_parts();
    let upstream_request = request::h1_to_h2(&parts, client_scheme(&parts), Kind::Forward)?;
    let end_of_stream = body.is_end_stream();
    let (response, send, slot) = cluster.open_stream(upstream_request, end_of_stream).await?;
    if !end_of_stream {
        let body = Counted::new(body, counts, Direction::Up);
        let upload = async move {
            if let Err(err) = relay::send_body(body, send).await {
                debug!(error = %err, "request body not fully sent");
            }
        };
        tokio::spawn(upload.instrument(Span::current()));
    }
    let response = context
        .await_response(response, context.response_timeout, cluster)
        .await?;
    let (head, recv) = response.into_parts();
    let relayed = response::relay(&head, answer_version(&parts));
    Ok(relayed.map(|()| crate::listener::streamed(H2Body::with_guard(recv, slot))))
}
