//! Forward stage: a plain HTTP/1.1 request becomes an ordinary HTTP/2 stream.
//!
//! Input: a request [`crate::classify`] found plain. Output: the sidecar's
//! response, head translated and body streamed back as it arrives. The
//! request body streams up in its own task, bounded by the stream window.
//! When the cluster retries, a body its policy can replay (none, or a
//! known length within `max_body`) is read whole first and the request
//! goes through [`crate::retry`]; any other streams up once.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use h2hop::access::{self, Counted, Direction};
use h2hop::metrics::RetryResult;
use h2hop::relay::{self, H2Body};
use h2hop::translate::request;
use h2hop::translate::response;
use http::{Request, Response};
use http_body::Body as _;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use tokio::sync::oneshot;
use tracing::{Instrument as _, Span, debug};

use crate::Error;
use crate::context::{self, Context, ResponseBody, answer_version, client_scheme};
use crate::retry;
use crate::upstream::{Cluster, Outcome, RetryOn};

/// Forwards one request and returns the response to stream to the client;
/// the request body's bytes are counted into `counts`.
pub async fn forward(
    context: &Context,
    cluster: &Cluster,
    client: Request<Incoming>,
    counts: Arc<access::ByteCounts>,
) -> Result<Response<ResponseBody>, Error> {
    let (parts, body) = client.into_parts();
    let version = answer_version(&parts);
    let scheme = client_scheme(&parts);
    let upstream_request = request::forward_h1_to_h2(parts, scheme)?;
    let end_of_stream = body.is_end_stream();
    let _active = cluster.retry_budget().request();
    let policy = cluster.retry_policy();
    if policy.retries > 0 && retry::replayable(end_of_stream, body.size_hint().exact(), policy) {
        // Boxed: the retry loop's future is kilobytes that every request's
        // would otherwise be sized for, retried or not.
        let replayed = replay(context, cluster, upstream_request, body, counts);
        let (response, slot) = Box::pin(replayed).await?;
        let (head, recv) = response.into_parts();
        let relayed = response::relay_head(head, version);
        return Ok(relayed.map(|()| context::streamed(H2Body::with_guard(recv, slot))));
    }
    let opened = cluster.open_stream(upstream_request, end_of_stream).await;
    let (index, (response, send, slot)) = opened.inspect_err(|err| {
        not_replayed(context, cluster, retry::condition_of(err, false));
    })?;
    // A client body that breaks (bad chunking, a cut connection) resets the
    // stream, which fails the response below; this says it was the client.
    let (body_failed, mut body_failure) = oneshot::channel();
    if !end_of_stream {
        let mut body_failed = Some(body_failed);
        let body = body.map_err(move |err| {
            if let Some(failed) = body_failed.take() {
                let _ = failed.send(err);
            }
            io::Error::other("client request body failed")
        });
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
        .await
        .map_err(|err| match body_failure.try_recv() {
            Ok(body_err) => Error::ClientBody(body_err),
            Err(_) => {
                if let Some(outcome) = retry::outcome_of(&err) {
                    cluster.record(index, outcome);
                }
                not_replayed(context, cluster, retry::condition_of(&err, false));
                err
            }
        })?;
    cluster.record(index, Outcome::of_status(response.status()));
    let status = RetryOn::Status(response.status());
    not_replayed(context, cluster, Some(status));
    let (head, recv) = response.into_parts();
    let relayed = response::relay_head(head, version);
    Ok(relayed.map(|()| context::streamed(H2Body::with_guard(recv, slot))))
}

/// Reads a replayable `body` whole (none at its end of stream), then
/// sends `head` with it through [`retry::send`].
async fn replay(
    context: &Context,
    cluster: &Cluster,
    head: Request<()>,
    body: Incoming,
    counts: Arc<access::ByteCounts>,
) -> Result<retry::Answered, Error> {
    let body = if body.is_end_stream() {
        None
    } else {
        Some(read_body(context, body, counts).await?)
    };
    retry::send(context, cluster, head, body).await
}

/// Counts a failure the cluster would have retried, had the request's
/// body been replayable.
fn not_replayed(context: &Context, cluster: &Cluster, condition: Option<RetryOn>) {
    if condition.is_some_and(|condition| cluster.retry_policy().retries_on(condition)) {
        context
            .metrics
            .retried(cluster.name(), RetryResult::NotReplayable);
    }
}

/// A replayable request body, read whole within the response timeout
/// (its length is known and small: [`retry::replayable`]).
async fn read_body(
    context: &Context,
    body: Incoming,
    counts: Arc<access::ByteCounts>,
) -> Result<Bytes, Error> {
    let bound = context.response_timeout;
    let body = Counted::new(body, counts, Direction::Up);
    let collected = tokio::time::timeout(bound, body.collect())
        .await
        .map_err(|_| Error::ClientBodyTimeout(bound))?
        .map_err(Error::ClientBody)?;
    Ok(collected.to_bytes())
}
