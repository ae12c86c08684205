//! Forward stage toward an h2c app (`--app-protocol h2c`): the front's
//! stream becomes a stream on the app's HTTP/2 pool, frame for frame.
//!
//! Input: an ordinary stream from [`crate::dispatch`]. The request head is
//! copied ([`crate::app::app_request`]); its body and trailers stream to the app in a
//! task of their own, within each side's flow control; the app's head,
//! body and trailers stream back ([`crate::respond`]). The response
//! timeout bounds the head. A `grpc-timeout` bounds the whole exchange
//! (gRPC over HTTP/2, "Timeout"): when it runs out the app's stream is
//! reset and the front gets DEADLINE_EXCEEDED, trailers-only if no head
//! went out yet, else a reset. A reset on either side resets the other
//! (RFC 9113 §8.1, §5.4.2).

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, RecvStream};
use h2hop::access::{Close, Counted, Direction, Entry};
use h2hop::grpc;
use h2hop::relay::{self, H2Body};
use http::Request;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};
use tracing::warn;

use crate::app::{App, OpenedStream, app_request, response_head};
use crate::context::Context;
use crate::{Error, respond};

/// The message of the sidecar's DEADLINE_EXCEEDED answer.
const DEADLINE_MESSAGE: &str = "deadline exceeded at h2hop-sidecar";

/// Forwards one stream to the h2c app and streams its answer back; the
/// access log `entry` gets the status and the bytes each way.
pub async fn forward(
    context: &Context,
    app: &App,
    request: Request<RecvStream>,
    respond: &mut SendResponse<Bytes>,
    entry: &mut Entry,
) -> Result<(), Error> {
    let asked = Instant::now();
    let (parts, recv) = request.into_parts();
    let deadline = grpc::timeout(&parts.headers).and_then(|after| asked.checked_add(after));
    let head = app_request(&parts)?;
    let end_of_stream = recv.is_end_stream();
    // S5: a stream the front resets while we wait cancels the open.
    let opening = until(deadline, app.open_h2c(head, end_of_stream));
    let Some(opened) = respond::unless_reset(respond, opening).await? else {
        return deadline_exceeded(context, respond, entry, asked);
    };
    let OpenedStream {
        response,
        send,
        place,
    } = opened;
    // Aborted (so the app's stream is reset) when this returns early.
    let _upload = (!end_of_stream).then(|| {
        let body = Counted::new(H2Body::new(recv), entry.bytes(), Direction::Up);
        Upload(tokio::spawn(relay::send_body(body, send)))
    });
    let bound = app.config().response_timeout;
    let head = until(deadline, response_head(app.config(), response, bound));
    let Some(answer) = respond::unless_reset(respond, head).await? else {
        return deadline_exceeded(context, respond, entry, asked);
    };
    let (head, body) = answer.into_parts();
    context
        .metrics
        .request_answered(head.status, asked.elapsed());
    // The stream's place on the app connection goes with its body.
    let body = H2Body::with_guard(body, place);
    let relayed = respond::respond_with(respond, head, body, entry);
    let Some(deadline) = deadline else {
        return relayed.await;
    };
    match timeout_at(deadline, relayed).await {
        Ok(relayed) => relayed,
        Err(_) => {
            // The head went out: only a reset can say it (gRPC "Timeout").
            warn!(after = ?asked.elapsed(), "grpc-timeout ran out during the response; stream reset");
            respond.send_reset(Reason::CANCEL);
            entry.close(Close::Aborted);
            Ok(())
        }
    }
}

/// The request body's upload task; dropping it aborts the task, which
/// drops its stream handle so that h2 resets the app's stream (CANCEL).
struct Upload(JoinHandle<Result<u64, std::io::Error>>);

impl Drop for Upload {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `work` until `deadline`; `Ok(None)` when the deadline came first.
async fn until<T>(
    deadline: Option<Instant>,
    work: impl Future<Output = Result<T, Error>>,
) -> Result<Option<T>, Error> {
    match deadline {
        None => work.await.map(Some),
        Some(deadline) => match timeout_at(deadline, work).await {
            Ok(result) => result.map(Some),
            Err(_) => Ok(None),
        },
    }
}

/// Answers a call whose `grpc-timeout` ran out before the app's head:
/// `200`, trailers-only, `grpc-status: 4` (gRPC over HTTP/2, "Responses").
/// The app's stream was reset when its handles were dropped.
fn deadline_exceeded(
    context: &Context,
    respond: &mut SendResponse<Bytes>,
    entry: &mut Entry,
    asked: Instant,
) -> Result<(), Error> {
    warn!(after = ?asked.elapsed(), "grpc-timeout ran out before the app answered; DEADLINE_EXCEEDED");
    let answer = grpc::deadline_exceeded(DEADLINE_MESSAGE);
    let status = answer.status();
    respond
        .send_response(answer, true)
        .map_err(Error::Respond)?;
    context.metrics.request_answered(status, asked.elapsed());
    entry.status(status);
    entry.close(Close::Done);
    Ok(())
}
