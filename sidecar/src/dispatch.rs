//! Dispatch stage: what kind of stream is this?
//!
//! Input: one accepted HTTP/2 stream. A CONNECT that asks for a TCP
//! connection ([`h2hop::tcp_connect::target_of`]: `CONNECT host:port`,
//! RFC 9113 §8.5, or `:protocol connect-tcp`) goes to
//! [`crate::tcp_tunnel`], which only dials targets of the allow-list (a bad
//! target gets 400). Extended CONNECT with an allowed
//! `:protocol` goes to [`crate::tunnel`]; a `:protocol` that is not a token
//! gets 400 (S4), one not allowed 501 (RFC 9220 §3 (N16)); anything else is
//! an ordinary request for
//! [`crate::forward`]. Toward an h2c app (`--app-protocol h2c`) the same
//! streams go to [`crate::tunnel_h2c`] and [`crate::forward_h2c`]. Tunnels
//! and requests go to the app [`crate::apps::Apps::choose`] picks by
//! `:authority` and path; where it picks none, 404. Failures are answered
//! and logged here, once; an app's reset is passed on as a reset.

use std::net::SocketAddr;

use bytes::Bytes;
use h2::RecvStream;
use h2::server::SendResponse;
use h2hop::access::{self, Entry};
use h2hop::error_answer::RequestId;
use h2hop::host_port::HostPort;
use h2hop::limit::Limit;
use h2hop::request_identity::RequestIdentity;
use h2hop::tcp_connect;
use h2hop::translate::TranslateError;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Request, Response};
use tracing::{Instrument as _, debug, debug_span, warn};

use crate::context::{Context, Front};
use crate::{AppProtocol, Error, forward, forward_h2c, tcp_tunnel, tunnel, tunnel_h2c};

/// What a stream from the front asks for, by its method and `:protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamKind {
    /// Extended CONNECT (RFC 8441 §4): a tunnel to the app.
    Tunnel,
    /// Any other method: an ordinary request, forwarded to the app.
    Forward,
}

impl StreamKind {
    /// The name the stream's span carries.
    fn as_str(self) -> &'static str {
        match self {
            StreamKind::Tunnel => "tunnel",
            StreamKind::Forward => "forward",
        }
    }
}

/// A tunnel that opened, to be relayed once dispatch's state is gone.
pub enum Opened {
    /// An upgrade to the app ([`crate::tunnel`]).
    Upgrade(tunnel::Opened),
    /// A TCP connection to a target ([`crate::tcp_tunnel`]).
    Tcp(tcp_tunnel::Opened),
}

impl Opened {
    /// Relays until both sides close; `entry` writes its line at the end.
    /// Either future as it is, unboxed: the task's state is the larger of
    /// the two, as it was with one.
    pub fn relay(self, entry: Entry) -> impl Future<Output = ()> {
        use futures_util::future::Either;
        match self {
            Opened::Upgrade(tunnel) => Either::Left(tunnel.relay(entry)),
            Opened::Tcp(tunnel) => Either::Right(tunnel.relay(entry)),
        }
    }
}

/// Serves one stream from `front`; `dials` bounds the dials its HTTP/2
/// connection has pending. A tunnel that opens comes back with its access
/// entry, to be relayed once this state is gone ([`Opened::relay`]);
/// every other stream is answered here to its end.
pub async fn dispatch(
    context: &Context,
    dials: &Limit,
    front: Front,
    request: Request<RecvStream>,
    respond: SendResponse<Bytes>,
) -> Option<(Opened, Entry)> {
    match tcp_connect::target_of(&request) {
        Some(target) => tcp(context, dials, &front, target, request, respond).await,
        None => http(context, dials, front.addr, request, respond).await,
    }
}

/// A TCP CONNECT: the target's tunnel, or an error answered here.
async fn tcp(
    context: &Context,
    dials: &Limit,
    front: &Front,
    target: Result<(tcp_connect::ConnectForm, HostPort), tcp_connect::TargetError>,
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) -> Option<(Opened, Entry)> {
    let authority = match &target {
        Ok((_, target)) => target.as_str(),
        Err(_) => request.uri().authority().map_or("", |a| a.as_str()),
    };
    let span = debug_span!("stream", kind = "tcp", %authority, path = "");
    let mut entry = Entry::new(access::Kind::Tcp, front.addr, authority, "");
    entry.identity(RequestIdentity::from_headers(request.headers()));
    async move {
        let (form, target) = match target {
            Ok(target) => target,
            Err(err) => {
                fail(context, &mut respond, &mut entry, Error::TcpTarget(err));
                return None;
            }
        };
        entry.protocol(form.as_str());
        let recv = request.into_body();
        let opened = tcp_tunnel::open(context, dials, front, form, &target, recv, &mut respond);
        match opened.await {
            Ok(opened) => {
                entry.status(http::StatusCode::OK);
                Some((Opened::Tcp(opened), entry))
            }
            Err(err) => {
                fail(context, &mut respond, &mut entry, err);
                None
            }
        }
    }
    .instrument(span)
    .await
}

/// Any other stream: a tunnel to the app, an ordinary request, or an
/// error answered here.
async fn http(
    context: &Context,
    dials: &Limit,
    peer: SocketAddr,
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) -> Option<(Opened, Entry)> {
    let protocol = request
        .extensions()
        .get::<h2::ext::Protocol>()
        .map(|protocol| protocol.as_str().to_owned());
    let kind = match &protocol {
        Some(_) => StreamKind::Tunnel,
        None => StreamKind::Forward,
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
                Err(Error::Translate(TranslateError::Invalid {
                    what: ":protocol",
                }))
            }
            Some(protocol) => match context.upgrades.protocols.find(&protocol) {
                Some(allowed) => {
                    let result = match app {
                        Some(app) if app.config().protocol == AppProtocol::H2c => {
                            let opened = tunnel_h2c::open(
                                context,
                                app,
                                request,
                                allowed,
                                &mut respond,
                                &mut entry,
                            );
                            Box::pin(opened).await
                        }
                        Some(app) => {
                            let opened = tunnel::open(
                                context,
                                app,
                                dials,
                                request,
                                allowed,
                                &mut respond,
                                &mut entry,
                            );
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
            None => match app {
                Some(app) if app.config().protocol == AppProtocol::H2c => {
                    let forwarded =
                        forward_h2c::forward(context, app, request, &mut respond, &mut entry);
                    Box::pin(forwarded).await.map(|()| None)
                }
                Some(app) => {
                    let forwarded =
                        forward::forward(context, app, request, &mut respond, &mut entry);
                    Box::pin(forwarded).await.map(|()| None)
                }
                None => Err(Error::NoApp),
            },
        };
        match result {
            Ok(opened) => return opened.map(|opened| (Opened::Upgrade(opened), entry)),
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
                if kind != StreamKind::Tunnel {
                    context
                        .metrics
                        .request_answered(err.status(), started.elapsed());
                }
                fail(context, &mut respond, &mut entry, err);
            }
        }
        None
    }
    .instrument(span)
    .await
}

/// Logs `err` (a TCP target denied has had its own line), counts it, and
/// answers the stream with its status and body if it is still open.
fn fail(context: &Context, respond: &mut SendResponse<Bytes>, entry: &mut Entry, err: Error) {
    // The id ties the answer the front relays to this line, which alone
    // has the cause: the stream's X-Request-Id, as on the access lines,
    // or one of ours if it came without.
    let id = entry
        .request_id()
        .map_or_else(|| RequestId::next().to_string(), str::to_owned);
    match &err {
        Error::TcpDenied { .. } => {}
        // Nobody to answer, nothing that failed here.
        Error::Reset(reason) => return debug!(?reason, "front reset the stream"),
        _ => {
            let chain = h2hop::telemetry::chain(&err);
            warn!(status = err.status().as_u16(), request_id = %id, error = %chain, "stream failed");
        }
    }
    context.metrics.error(err.culprit());
    let body = err.body(&id, context.error_details);
    if answer_error(respond, &err, body) {
        entry.status(err.status());
        entry.close(access::Close::Done);
    }
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
