//! Tunnel stage: an allowed HTTP/1.1 Upgrade, or a client's own extended
//! CONNECT, becomes an RFC 8441 tunnel to the sidecar.
//!
//! Input: a request [`crate::classify`] found to be an upgrade h2hop
//! tunnels. Output: the rebuilt `101` (and a spawned relay once hyper hands
//! over the connection), or the sidecar's refusal relayed as an ordinary
//! response.
//!
//! A non-`GET` method and a body cross the hop as described in
//! [`h2hop::upgrade`]: the method and body length as fields of ours, the
//! body as the stream's first DATA. Whatever the client sends after its body
//! stays in hyper's buffer until our 101, so it reaches the app only after
//! the app's 101 (RFC 6455 §4.1 (N46), S2).

use bytes::Bytes;
use h2::{Reason, RecvStream, SendStream};
use h2hop::relay::{self, H2Body};
use h2hop::translate::request::{self, Kind};
use h2hop::translate::response;
use http::header::{CONNECTION, HeaderValue, UPGRADE};
use http::{Request, Response, StatusCode, Version};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tracing::{Instrument as _, Span, debug, debug_span, warn};

use h2hop::access::Entry;
use h2hop::limit::Permit;
use h2hop::metrics::{OpenTunnel, TunnelResult};

use crate::Error;
use crate::classify::TunnelRequest;
use crate::context::{self, Context, ResponseBody, answer_version, client_scheme};
use crate::preface::Replay;
use crate::retry;
use crate::upstream::{Cluster, Outcome, StreamSlot};

/// Sends the extended CONNECT (and the upgrade's body) and answers the
/// client with what came back.
///
/// Only a `200` opens the tunnel (RFC 8441 §5 (N13): h2hop takes exactly
/// 200, like hyper's client); every other status is relayed with its body
/// and no byte of the client's is tunnelled (RFC 6455 §4.1 (N45), S1).
/// A tunnel that opens takes the access log `entry` into its relay.
pub async fn open(
    context: &Context,
    cluster: &Cluster,
    mut client: Request<Incoming>,
    upgrade: &TunnelRequest,
    entry: &mut Option<Entry>,
) -> Result<Response<ResponseBody>, Error> {
    // Taken before the request is consumed: hyper resolves it only after
    // our 101 has been written.
    let asked = tokio::time::Instant::now();
    let on_upgrade = hyper::upgrade::on(&mut client);
    let tunnels = &context.tunnels;
    let permit = tunnels.try_take().ok_or(Error::Overloaded {
        what: tunnels.what(),
        max: tunnels.max(),
    })?;
    let (parts, body) = client.into_parts();
    let protocol = upgrade.protocol.as_str();
    if let Some(entry) = entry {
        entry.protocol(protocol);
        entry.add_bytes(upgrade.body_length, 0);
    }
    let (head, recv, send, slot) = connect(context, cluster, &parts, body, upgrade).await?;
    if head.status != StatusCode::OK {
        let refusal = relay_refusal(context, &parts, upgrade, &head, send);
        return Ok(refusal.map(|()| context::streamed(H2Body::with_guard(recv, slot))));
    }
    // HTTP/2 clients get the sidecar's 200 as it is (RFC 8441 §5 (N13)).
    let switched = if upgrade.over_h2 {
        response::relay(&head, Version::HTTP_2)
    } else {
        let key = upgrade.key.as_ref().map(HeaderValue::as_bytes);
        response::switched_to_h1(&head, protocol, key)
    };
    let entry = entry.take().map(|mut entry| {
        entry.status(switched.status());
        entry
    });
    // Tracked by the drain: on shutdown the tunnel may run out its drain
    // period, then it is closed. Its span is a debug one: a tunnel that
    // kept the connection's span alive held its fields for its whole life,
    // a few hundred bytes, and the access line names the tunnel anyway.
    let span = debug_span!(parent: Span::current(), "tunnel");
    let relay = relay_when_upgraded(
        on_upgrade,
        send,
        recv,
        (slot, permit),
        context.metrics.tunnel_opened(protocol, asked.elapsed()),
        context.tunnel_timeouts,
        entry,
    );
    // Not boxed, though the spawn moves the relay's future a few times on
    // its way into the task (callgrind: a tenth of the front's memcpy per
    // WebSocket handshake): boxed, every idle tunnel held more memory
    // (front and sidecar RSS at 10,000 idle tunnels, this and the
    // sidecar's relay boxed: 6.6 → 7.0 KiB per tunnel).
    context.drain.spawn(relay.instrument(span));
    Ok(switched.map(|()| context::empty()))
}

/// The sidecar's answer to an extended CONNECT, with what the tunnel would
/// run on: the stream's halves and its place on the connection.
type Answered = (
    http::response::Parts,
    RecvStream,
    SendStream<Bytes>,
    StreamSlot,
);

/// Reads the upgrade's body, opens the extended CONNECT stream, sends the
/// body as its first DATA, and waits for the sidecar's answer.
async fn connect(
    context: &Context,
    cluster: &Cluster,
    parts: &http::request::Parts,
    body: Incoming,
    upgrade: &TunnelRequest,
) -> Result<Answered, Error> {
    // Read whole before the stream opens: classify bounded its length.
    let body = if upgrade.body_length > 0 {
        read_body(context, body).await?
    } else {
        Bytes::new()
    };
    let protocol = Kind::Tunnel(upgrade.protocol.as_str());
    let mut first = Some(request::h1_to_h2(parts, client_scheme(parts), protocol)?);
    let mut tried = Vec::new();
    let mut _in_flight = None;
    loop {
        // The first try sends the head as it is; a retry (rare: a refused
        // stream) translates it again. Copying it for each try cost every
        // tunnel about 1,400 instructions (callgrind).
        let head = match first.take() {
            Some(head) => head,
            None => request::h1_to_h2(parts, client_scheme(parts), protocol)?,
        };
        let opened = cluster.open_stream_avoiding(head, false, &tried).await;
        let (index, (response, mut send, slot)) = opened?;
        tried.push(index);
        if !body.is_empty() {
            // A failure here (the stream reset) shows in the response below.
            let mut sent = 0;
            let bound = context.upgrade_timeout;
            let data = body.clone();
            let _ = tokio::time::timeout(bound, relay::send_data(&mut send, data, &mut sent)).await;
        }
        let response = context
            .await_response(response, context.upgrade_timeout, cluster)
            .await;
        match response {
            Ok(response) => {
                cluster.record(index, Outcome::of_status(response.status()));
                let (head, recv) = response.into_parts();
                return Ok((head, recv, send, slot));
            }
            Err(err) => {
                if let Some(outcome) = retry::outcome_of(&err) {
                    cluster.record(index, outcome);
                }
                // Only a stream the sidecar refused unprocessed is tried
                // again (RFC 9113 §8.7): the app has not seen it.
                let Some(place) = retry::tunnel_retry(context, cluster, &err, tried.len()) else {
                    return Err(err);
                };
                debug!(attempt = tried.len(), "retrying the refused tunnel");
                _in_flight = Some(place);
            }
        }
    }
}

/// The sidecar refused the tunnel: ends our half of the stream and builds
/// the client's answer, whose body the caller streams from the sidecar's.
fn relay_refusal(
    context: &Context,
    parts: &http::request::Parts,
    upgrade: &TunnelRequest,
    head: &http::response::Parts,
    mut send: SendStream<Bytes>,
) -> Response<()> {
    debug!(status = head.status.as_u16(), "sidecar refused the tunnel");
    let protocol = upgrade.protocol.as_str();
    context
        .metrics
        .tunnel_not_opened(protocol, TunnelResult::Refused);
    // We have nothing to send on a stream that will not tunnel.
    let _ = send.send_data(Bytes::new(), true);
    let mut relayed = response::relay(head, answer_version(parts));
    if relayed.status() == StatusCode::UPGRADE_REQUIRED && !upgrade.over_h2 {
        // RFC 9110 §7.8 (N32): a 426 names the protocol to upgrade to;
        // the field was hop-by-hop on the way in, so it is rebuilt.
        if let Ok(token) = HeaderValue::from_str(protocol) {
            relayed.headers_mut().insert(UPGRADE, token);
        }
        relayed
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    }
    relayed
}

/// The upgrade's body, within the response timeout.
async fn read_body(context: &Context, body: Incoming) -> Result<Bytes, Error> {
    let bound = context.upgrade_timeout;
    let collected = tokio::time::timeout(bound, body.collect())
        .await
        .map_err(|_| Error::ClientBodyTimeout(bound))?
        .map_err(Error::ClientBody)?;
    Ok(collected.to_bytes())
}

/// Waits for hyper to hand over the client connection after our 101, then
/// relays it with the stream until both sides close. Not an `async fn`, so
/// that its arguments are kept once for the tunnel's life, not twice (see
/// [`h2hop::relay`]).
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would keep its arguments twice"
)]
fn relay_when_upgraded(
    on_upgrade: OnUpgrade,
    mut send: SendStream<Bytes>,
    recv: RecvStream,
    // Held for the tunnel's life: its place on the upstream connection and
    // under the tunnel limit.
    places: (StreamSlot, Permit),
    open: OpenTunnel,
    timeouts: relay::Timeouts,
    // Written when the tunnel ends, however it ends.
    entry: Option<Entry>,
) -> impl Future<Output = ()> {
    async move {
        // Captured by the block (a borrow is a use) and dropped at its end.
        let _places = &places;
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(err) => {
                send.send_reset(Reason::CANCEL);
                warn!(error = %err, "client connection was not upgraded");
                return;
            }
        };
        debug!("tunnel open");
        let started = tokio::time::Instant::now();
        let end = match upgraded.downcast::<TokioIo<TcpStream>>() {
            // A plain TCP client: the relay can reset it, and skips a layer.
            // read_buf: bytes the client sent right behind its handshake. They
            // go out only now, after the app's 101 (RFC 6455 §4.1 (N46), S2).
            Ok(parts) => {
                let io = parts.io.into_inner();
                relay::tunnel(io, parts.read_buf, Bytes::new(), send, recv, timeouts).await
            }
            Err(upgraded) => match upgraded.downcast::<TokioIo<Replay<TcpStream>>>() {
                // A plain TCP client whose first bytes the listener read to
                // tell HTTP/1.1 from h2c: the same, after those bytes.
                Ok(parts) => {
                    let (unread, io) = parts.io.into_inner().into_parts();
                    let early = if unread.is_empty() {
                        parts.read_buf
                    } else {
                        Bytes::from([unread, parts.read_buf].concat())
                    };
                    relay::tunnel(io, early, Bytes::new(), send, recv, timeouts).await
                }
                // TLS, or the client's own HTTP/2 stream.
                Err(upgraded) => {
                    let io = TokioIo::new(upgraded);
                    relay::tunnel_io(io, Bytes::new(), Bytes::new(), send, recv, timeouts).await
                }
            },
        };
        debug!(duration = ?started.elapsed(), "tunnel closed");
        if let Some(mut entry) = entry {
            entry.add_bytes(end.to_stream, end.to_tcp);
            entry.close(end.close.into());
        }
        let result = end.close.into();
        open.ended(result, end.to_stream, end.to_tcp);
    }
}
