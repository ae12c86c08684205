//! Dispatch stage: what kind of stream is this?
//!
//! Input: one accepted HTTP/2 stream. Extended CONNECT with an allowed
//! `:protocol` goes to [`crate::tunnel`]; a `:protocol` that is not a token
//! gets 400 (S4), one not allowed 501 (RFC 9220 §3 (N16)); plain CONNECT gets
//! 405 (RFC 8441 §4 (N8)); anything else is an ordinary request for
//! [`crate::forward`]. Tunnels and requests go to the app
//! [`crate::apps::Apps::choose`] picks by `:authority` and path; where it
//! picks none, 404. Failures are answered and logged here, once.

use std::net::SocketAddr;

use bytes::Bytes;
use h2::RecvStream;
use h2::server::SendResponse;
use h2hop::access::{self, Entry};
use h2hop::error_answer::RequestId;
use h2hop::limit::Limit;
use h2hop::request_identity::RequestIdentity;
use h2hop::translate::TranslateError;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response};
use tracing::{Instrument as _, debug, debug_span, warn};

use crate::context::Context;
use crate::{AppProtocol, Error, forward, forward_h2c, tunnel, tunnel_h2c};

/// What a stream from the front asks for, by its method and `:protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamKind {
    /// Extended CONNECT (RFC 8441 §4): a tunnel to the app.
    Tunnel,
    /// CONNECT without `:protocol`: a TCP tunnel, which is refused.
    PlainConnect,
    /// Any other method: an ordinary request, forwarded to the app.
    Forward,
}

impl StreamKind {
    /// The name the stream's span carries.
    fn as_str(self) -> &'static str {
        match self {
            StreamKind::Tunnel => "tunnel",
            StreamKind::PlainConnect => "connect",
            StreamKind::Forward => "forward",
        }
    }
}

/// Serves one stream from the front at `peer`; `dials` bounds the app
/// dials its HTTP/2 connection has pending. A tunnel that opens comes back
/// with its access entry, to be relayed once this state is gone
/// ([`tunnel::Opened::relay`]); every other stream is answered here to its
/// end.
pub async fn dispatch(
    context: &Context,
    dials: &Limit,
    peer: SocketAddr,
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) -> Option<(tunnel::Opened, Entry)> {
    let protocol = request
        .extensions()
        .get::<h2::ext::Protocol>()
        .map(|protocol| protocol.as_str().to_owned());
    let kind = match (&protocol, request.method() == Method::CONNECT) {
        (Some(_), _) => StreamKind::Tunnel,
        (None, true) => StreamKind::PlainConnect,
        (None, false) => StreamKind::Forward,
    };
    let authority = request.uri().authority().map_or("", |a| a.as_str());
    // Fields are recorded now: the span borrows nothing from the request.
    // Debug level, as at the front: the access line says all this at info.
    let span = debug_span!("stream", kind = kind.as_str(), %authority, path = request.uri().path());
    let started = tokio::time::Instant::now();
    let access_kind = match protocol {
        Some(_) => access::Kind::Tunnel,
        None => access::Kind::Request,
    };
    // Written when this task ends, however the stream ended.
    let mut entry = Entry::new(access_kind, peer, authority, request.uri().path());
    if let Some(protocol) = &protocol {
        entry.protocol(protocol);
    }
    // The front's request id and trace id, as received: one grep of either
    // follows the request through front, sidecar and app.
    entry.identity(RequestIdentity::from_headers(request.headers()));
    // The app this stream goes to, by its `:authority` or path; the
    // access line names it (as `route`) when apps have names.
    let chosen = context.apps.choose(authority, request.uri().path());
    if let Some(name) = chosen.as_ref().and_then(|chosen| chosen.name) {
        entry.route(name.clone());
    }
    let app = chosen.map(|chosen| chosen.app);
    async move {
        let result = match protocol {
            // h2 itself refuses :protocol on anything but CONNECT (RFC 8441 §4 (N6)).
            Some(protocol) if !h2hop::upgrade::is_token(&protocol) => {
                Err(Error::Translate(TranslateError::Invalid { what: ":protocol" }))
            }
            Some(protocol) => match context.upgrades.protocols.find(&protocol) {
                Some(allowed) => {
                    let result = match app {
                        Some(app) if app.config().protocol == AppProtocol::H2c => {
                            let opened = tunnel_h2c::open(context, app, request, allowed, &mut respond, &mut entry);
                            Box::pin(opened).await
                        }
                        Some(app) => {
                            let opened = tunnel::open(context, app, dials, request, allowed, &mut respond, &mut entry);
                            opened.await
                        }
                        None => Err(Error::NoApp),
                    };
                    if result.is_err() {
                        let failed = h2hop::metrics::TunnelResult::Failed;
                        context.metrics.tunnel_not_opened(allowed, failed);
                    }
                    result
                }
                None => Err(Error::UnsupportedProtocol(protocol)),
            },
            None if kind == StreamKind::PlainConnect => Err(Error::PlainConnect),
            None => match app {
                Some(app) if app.config().protocol == AppProtocol::H2c => {
                    let forwarded = forward_h2c::forward(context, app, request, &mut respond, &mut entry);
                    Box::pin(forwarded).await.map(|()| None)
                }
                Some(app) => {
                    let forwarded = forward::forward(context, app, request, &mut respond, &mut entry);
                    Box::pin(forwarded).await.map(|()| None)
                }
                None => Err(Error::NoApp),
            },
        };
        match result {
            Ok(opened) => return opened.map(|opened| (opened, entry)),
            Err(Error::Reset(reason)) => debug!(?reason, "front reset the stream"),
            Err(Error::AppReset(reason)) => {
                // RFC 9113 §8.1: no answer follows a reset; the front's
                // stream is reset in turn, REFUSED_STREAM kept so that the
                // front may retry it (RFC 9113 §8.7).
                debug!(?reason, "app reset the stream");
                context.metrics.error(h2hop::metrics::Culprit::App);
                respond.send_reset(reset_toward_front(reason));
                entry.close(access::Close::Aborted);
            }
            Err(err) => {
                // The id ties the answer the front relays to this line,
                // which alone has the cause: the stream's X-Request-Id, as
                // on the access lines, or one of ours if it came without.
                let id = entry.request_id().map_or_else(|| RequestId::next().to_string(), str::to_owned);
                warn!(status = err.status().as_u16(), request_id = %id, error = %h2hop::telemetry::chain(&err), "stream failed");
                context.metrics.error(err.culprit());
                if kind != StreamKind::Tunnel {
                    context.metrics.request_answered(err.status(), started.elapsed());
                }
                let body = err.body(&id, context.error_details);
                if answer_error(&mut respond, &err, body) {
                    entry.status(err.status());
                    entry.close(access::Close::Done);
                }
            }
        }
        None
    }
    .instrument(span)
    .await
}

/// The reset the front gets for an app's reset: REFUSED_STREAM (nothing
/// was processed, RFC 9113 §8.7) and CANCEL stay, anything else is an
/// INTERNAL_ERROR of ours.
fn reset_toward_front(app: h2::Reason) -> h2::Reason {
    match app {
        h2::Reason::REFUSED_STREAM => h2::Reason::REFUSED_STREAM,
        h2::Reason::CANCEL | h2::Reason::NO_ERROR => h2::Reason::CANCEL,
        _ => h2::Reason::INTERNAL_ERROR,
    }
}

/// Answers a failed stream with `body`, if it was not answered yet; says
/// whether the answer went out.
fn answer_error(respond: &mut SendResponse<Bytes>, err: &Error, body: String) -> bool {
    if matches!(err, Error::Respond(_) | Error::Reset(_)) {
        return false;
    }
    let body = Bytes::from(body);
    let mut response = Response::new(());
    *response.status_mut() = err.status();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    // Errors here mean the stream is already gone: nothing more to tell.
    match respond.send_response(response, false) {
        Ok(mut send) => send.send_data(body, true).is_ok(),
        Err(_) => false,
    }
}
