//! Forward stage toward an h2c app (`--app-protocol h2c`): the front's
//! stream becomes a stream on the app's HTTP/2 pool, frame for frame.
//!
//! Input: an ordinary stream from [`crate::dispatch`]. The request head is
//! copied ([`app_request`]); its body and trailers stream to the app in a
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
use http::header::HOST;
use http::{HeaderMap, Request, Version};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout, timeout_at};
use tracing::warn;

use crate::app::{App, OpenedStream};
use crate::context::Context;
use crate::{AppStep, Error, respond};

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
    let head = until(deadline, response_head(app, response, bound));
    let Some(answer) = respond::unless_reset(respond, head).await? else {
        return deadline_exceeded(context, respond, entry, asked);
    };
    let (head, body) = answer.into_parts();
    context
        .metrics
        .request_answered(head.status, asked.elapsed());
    // The stream's place on the app connection goes with its body.
    let body = H2Body::with_guard(body, place);
    let relayed = respond::respond_with(respond, &head, body, entry);
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

/// The app's response head within `bound`. A stream the app reset is
/// [`Error::AppReset`], answered with a reset.
pub(crate) async fn response_head(
    app: &App,
    response: h2::client::ResponseFuture,
    bound: std::time::Duration,
) -> Result<http::Response<RecvStream>, Error> {
    let config = app.config();
    match timeout(bound, response).await {
        Err(_) => Err(Error::AppTimeout {
            step: AppStep::Response,
            addr: config.addr.clone(),
            after: bound,
        }),
        Ok(Ok(response)) => Ok(response),
        Ok(Err(err)) => Err(app_stream_error(app, err)),
    }
}

/// A stream error from the app as the sidecar's error: a reset the app
/// sent stays a reset, anything else is a failure of the connection.
pub(crate) fn app_stream_error(app: &App, err: h2::Error) -> Error {
    match err.reason() {
        Some(reason) if err.is_reset() && err.is_remote() => Error::AppReset(reason),
        _ => Error::AppH2 {
            addr: app.config().addr.clone(),
            source: err,
        },
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

/// The request head the app receives: method, `:scheme`, `:authority`,
/// `:path` (and `:protocol` for an extended CONNECT) and fields as the
/// front sent them, `h2hop-…` fields aside; HTTP/2's own rules on fields
/// (RFC 9113 §8.2.2) already held for the front's stream. A value with
/// surrounding blanks makes the request malformed (RFC 9113 §8.2.1) and is
/// never forwarded.
pub(crate) fn app_request(parts: &http::request::Parts) -> Result<Request<()>, Error> {
    let mut headers = HeaderMap::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        // `:authority` says it; a second `host` could only disagree.
        if h2hop::upgrade::is_reserved(name) || (name == HOST && parts.uri.authority().is_some()) {
            continue;
        }
        let blank = |byte: &u8| matches!(byte, b' ' | b'\t');
        let bytes = value.as_bytes();
        if bytes.first().is_some_and(blank) || bytes.last().is_some_and(blank) {
            return Err(Error::Translate(
                h2hop::translate::TranslateError::Invalid {
                    what: "field value",
                },
            ));
        }
        headers.append(name.clone(), value.clone());
    }
    let mut request = Request::new(());
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = Version::HTTP_2;
    *request.headers_mut() = headers;
    if let Some(protocol) = parts.extensions.get::<h2::ext::Protocol>() {
        request.extensions_mut().insert(protocol.clone());
    }
    Ok(request)
}
