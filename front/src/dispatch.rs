//! Dispatch stage: one request from a client, its client address and
//! identity fields settled ([`crate::client_fields`]), classified
//! ([`crate::classify`]), routed ([`crate::routes`]) and handed to
//! [`crate::tunnel`] or [`crate::forward`]. Errors become answers here,
//! and are logged here, once; the access entry starts here.
//!
//! The route's header rules ([`crate::header_rules`]) apply here too: to
//! the request after the rewrites, before it is translated; to every
//! response the route's cluster gave (a plain response, a refused tunnel,
//! the 101 or 200 of an opened one), and not to the front's own answers
//! (no route, rejected, failed), which carry no route's fields.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use h2hop::access::{self, Entry, Logged};
use h2hop::metrics::{Culprit, TunnelResult};
use h2hop::request_identity::{ClientAddress, REQUEST_ID};
use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, UPGRADE};
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use tracing::{Instrument as _, debug, debug_span, warn};

use crate::classify::{self, Class, Rejection};
use crate::client_fields::Settled;
use crate::client_limits::InFlight;
use crate::context::{Context, ResponseBody};
use crate::header_rules::Substitutions;
use crate::live_routing::Snapshot;
use crate::routes::Route;
use crate::{forward, tunnel};

/// Answers one request; its access log line is written when the answer
/// (or, for a tunnel, the relay) ends. Never fails: the `Result` is the
/// shape hyper's service wants, so the connection boxes this future as it
/// is rather than wrapped in another (each wrapper is one more copy of its
/// kilobytes per request).
pub(crate) async fn handle(
    context: Arc<Context>,
    peer: SocketAddr,
    mut request: Request<Incoming>,
    exchange: InFlight,
) -> Result<Response<Logged<ResponseBody>>, Infallible> {
    // Before routing, so that routes and the app see the settled fields.
    let settled = context.client_fields.settle(peer, &mut request);
    // Carried to the sidecar for its PROXY header toward the app, unless
    // it can read it from X-Forwarded-For.
    if settled.carry_client {
        request
            .extensions_mut()
            .insert(ClientAddress(settled.client));
    }
    let class = classify::classify(&request, &context.protocols, context.upgrade_body_limit);
    let kind = match class {
        Class::Tunnel(_) => "tunnel",
        Class::Plain => "forward",
        Class::Reject(_) => "rejected",
    };
    // An absolute-form target's (or HTTP/2's) authority wins over Host
    // (RFC 9112 §3.2.2), for routing as on the hop.
    let authority = request
        .uri()
        .authority()
        .map(|authority| authority.as_str())
        .or_else(|| {
            let host = request.headers().get(http::header::HOST)?;
            host.to_str().ok()
        })
        .unwrap_or("");
    // One routing snapshot per request, held until its answer's head: a
    // reload meanwhile changes the next request, not this one. An open
    // tunnel or a streaming body holds its stream, not the snapshot.
    let snapshot = context.routing.load();
    let routing: &Snapshot = &snapshot;
    let route = routing.routes.find(authority, request.uri().path());
    let access_kind = match class {
        Class::Tunnel(_) => access::Kind::Tunnel,
        _ => access::Kind::Request,
    };
    let mut entry = Entry::new(access_kind, peer, authority, request.uri().path());
    entry.identity(settled.identity());
    // In flight on its connection for as long as the exchange lasts.
    entry.hold(exchange);
    let mut entry = Some(entry);
    // Fields are recorded now: the span borrows nothing from the request.
    // Debug level: at info the access line already says all this, and a
    // span per request cost about a twentieth of a plain GET's work.
    let version = request.version();
    let span = debug_span!("stream", kind, ?version, %authority, path = request.uri().path());
    let answered = answer(
        &context,
        class,
        route,
        routing,
        (&settled, request),
        &mut entry,
    );
    let mut response = answered.instrument(span).await;
    if context.client_fields.request_id_echo {
        response
            .headers_mut()
            .insert(REQUEST_ID, settled.request_id.clone());
    }
    if let Some(entry) = &mut entry {
        entry.status(response.status());
    }
    let length = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse().ok());
    Ok(response.map(|body| Logged::new(body, entry, length)))
}

/// The answer to one request, its client fields `settled`. A tunnel that
/// opens takes the access log `entry` into its relay.
async fn answer(
    context: &Context,
    class: Class,
    route: Option<&Route>,
    routing: &Snapshot,
    (settled, request): (&Settled, Request<Incoming>),
    entry: &mut Option<Entry>,
) -> Response<ResponseBody> {
    let started = tokio::time::Instant::now();
    // A tunnel to open, or `None` for a plain request.
    let tunnel = match class {
        Class::Reject(rejection) => {
            context.metrics.error(Culprit::Client);
            return rejected(rejection);
        }
        Class::Tunnel(tunnel) => Some(tunnel),
        Class::Plain => None,
    };
    let Some(route) = route else {
        debug!("no route");
        return text(StatusCode::NOT_FOUND, "no route for this host and path");
    };
    // Drawn once per request (per tunnel) when the route is weighted.
    let cluster = &*routing.clusters[route.cluster.pick()];
    if let Some(entry) = entry {
        entry.route(cluster.shared_name());
    }
    let (mut parts, body) = request.into_parts();
    if let Err(err) = route.rewrite(&mut parts) {
        warn!(error = %h2hop::telemetry::chain(&err), "route rewrite failed");
        return text(StatusCode::INTERNAL_SERVER_ERROR, "route rewrite failed");
    }
    let substitutions = Substitutions {
        client_address: settled.client,
        request_id: settled.request_id.to_str().unwrap_or_default(),
        route: &route.name,
    };
    route
        .headers
        .request
        .apply(&mut parts.headers, &substitutions);
    let request = Request::from_parts(parts, body);
    // Borrowed by the tunnel, not copied: its protocol names it below.
    let protocol = tunnel.as_ref().map(|tunnel| tunnel.protocol.as_str());
    let result = match &tunnel {
        // Boxed: a tunnel's future is kilobytes that every plain request's
        // would otherwise be sized for, and copied whole at each move.
        Some(tunnel) => Box::pin(tunnel::open(context, cluster, request, tunnel, entry)).await,
        None => {
            let counts = entry.as_ref().map(Entry::bytes).unwrap_or_default();
            forward::forward(context, cluster, request, counts).await
        }
    };
    let response = match result {
        Ok(mut response) => {
            route
                .headers
                .response
                .apply(response.headers_mut(), &substitutions);
            response
        }
        Err(err) => {
            // The request id ties the client's answer to this line, which
            // alone has the cause, and to the access lines of both binaries.
            let id = settled.request_id.to_str().unwrap_or_default();
            warn!(status = err.status().as_u16(), request_id = %id, error = %h2hop::telemetry::chain(&err), "request failed");
            context.metrics.error(err.culprit());
            if let Some(protocol) = protocol {
                context
                    .metrics
                    .tunnel_not_opened(protocol, TunnelResult::Failed);
            }
            text_body(err.status(), err.body(id, context.error_details))
        }
    };
    if protocol.is_none() {
        context
            .metrics
            .request_answered(response.status(), started.elapsed());
    }
    response
}

/// The answer to a request refused at the front.
fn rejected(rejection: Rejection) -> Response<ResponseBody> {
    debug!(reason = rejection.reason(), "request rejected");
    let mut response = text(rejection.status(), rejection.reason());
    if rejection == Rejection::UnsupportedVersion {
        // RFC 6455 §4.4 (N41), RFC 9110 §7.8 (N32): say what we speak.
        let headers = response.headers_mut();
        headers.insert(
            "sec-websocket-version",
            HeaderValue::from_static(h2hop::websocket::VERSION),
        );
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    }
    response
}

/// A short plain-text answer from the front itself.
fn text(status: StatusCode, message: &str) -> Response<ResponseBody> {
    text_body(status, format!("h2hop-front: {message}\n"))
}

/// A plain-text answer with `body` as it is.
fn text_body(status: StatusCode, body: String) -> Response<ResponseBody> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
