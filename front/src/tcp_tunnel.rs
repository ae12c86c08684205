//! TCP service stage: each connection accepted on a `[[tcp]]` listener
//! becomes a CONNECT stream to a sidecar of the entry's cluster, which
//! dials the entry's target; bytes are then relayed unchanged both ways,
//! as the stream's DATA (classic CONNECT) or in capsules (the connect-tcp
//! form, [`h2hop::capsule_relay`]).
//!
//! Input: the worker's TCP listeners, in [`crate::Config::tcp`] order
//! (started by [`crate::listener`]). Output: a relay task per tunnel,
//! spawned through the drain, and one access line per connection
//! (kind `tcp`, the entry's name as route, the form as protocol).
//!
//! The entry and its cluster are read from the live routing at each
//! accept, so a reload that changes them applies to new connections.
//! A connection takes a place under the tunnel limit only (as an upgraded
//! HTTP connection does), not under the client connection limits.
//! A tunnel that cannot open (the sidecar answers other than 2xx, or
//! cannot be reached) closes the client connection at once with FIN, as
//! Envoy's `tcp_proxy` does when its upstream fails: no byte was relayed,
//! so there is nothing a reset would tell the client beyond the close.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use h2::{RecvStream, SendStream};
use h2hop::accept::Keepalive;
use h2hop::access::{Entry, Kind};
use h2hop::limit::Permit;
use h2hop::metrics::{OpenTcpTunnel, TunnelResult};
use h2hop::tcp_connect::{self, ConnectForm};
use h2hop::{capsule_relay, relay};
use http::Request;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tracing::{Instrument as _, Span, debug, debug_span, warn};

use crate::context::Context;
use crate::error::{Error, UpstreamStep};
use crate::retry;
use crate::upstream::{Cluster, Outcome, StreamSlot, copy_head};

/// Accepts on each of `listeners` (listener `i` serves TCP entry `i`)
/// until shutdown begins; each connection is served in a task of its own
/// through the drain, with `TCP_NODELAY` and `keepalive`.
pub(crate) async fn accept(
    context: &Arc<Context>,
    listeners: Vec<TcpListener>,
    worker: usize,
    keepalive: Option<Keepalive>,
) {
    let mut loops = JoinSet::new();
    for (index, listener) in listeners.into_iter().enumerate() {
        let context = context.clone();
        loops.spawn(async move {
            let serve = |stream, peer| connection(stream, peer, index, context.clone());
            h2hop::accept::until_shutdown(listener, worker, keepalive, &context.drain, serve).await;
        });
    }
    while loops.join_next().await.is_some() {}
}

/// The sidecar's answer to a CONNECT, with the stream's halves and its
/// place on the connection.
type Answered = (
    http::response::Parts,
    RecvStream,
    SendStream<Bytes>,
    StreamSlot,
);

/// One accepted connection of TCP entry `index`: a tunnel place, the
/// CONNECT, then the relay (spawned); or a close, logged.
async fn connection(stream: TcpStream, peer: SocketAddr, index: usize, context: Arc<Context>) {
    let snapshot = context.routing.load();
    let Some(service) = snapshot.tcp.get(index).cloned() else {
        return warn!(
            index,
            "no [[tcp]] entry for this listener: connection closed"
        );
    };
    let cluster = snapshot
        .clusters
        .iter()
        .find(|cluster| cluster.name() == service.cluster)
        .cloned();
    // Held only to pick: a removed cluster drains once nothing holds it.
    drop(snapshot);
    let target = service.target.as_str();
    let metrics = &context.metrics;
    let mut entry = Entry::new(Kind::Tcp, peer, target, "");
    entry.route(service.name.clone());
    entry.protocol(service.form.as_str());
    let tunnels = &context.tunnels;
    let Some(permit) = tunnels.try_take() else {
        warn!(
            target,
            max = tunnels.max(),
            "tunnel limit reached: TCP connection closed"
        );
        metrics.tcp_not_opened(target, TunnelResult::Failed);
        return entry.status(http::StatusCode::SERVICE_UNAVAILABLE);
    };
    let Some(cluster) = cluster else {
        warn!(target, cluster = %service.cluster, "no such cluster: TCP connection closed");
        metrics.tcp_not_opened(target, TunnelResult::Failed);
        return entry.status(http::StatusCode::BAD_GATEWAY);
    };
    let request = match tcp_connect::request(service.form, &service.target, &authority(&cluster)) {
        Ok(request) => request,
        Err(err) => {
            warn!(target, error = %err, "cannot build the CONNECT request: TCP connection closed");
            metrics.tcp_not_opened(target, TunnelResult::Failed);
            return entry.status(http::StatusCode::BAD_GATEWAY);
        }
    };
    let asked = tokio::time::Instant::now();
    let bound = context.upgrade_timeout;
    let opened = match tokio::time::timeout(bound, open(&context, &cluster, request)).await {
        Ok(opened) => opened,
        Err(_) => Err(Error::UpstreamTimeout {
            step: UpstreamStep::Response,
            addr: cluster.name().to_owned(),
            after: bound,
        }),
    };
    let (head, recv, mut send, slot) = match opened {
        Ok(answered) => answered,
        Err(err) => {
            let error = h2hop::telemetry::chain(&err);
            warn!(target, %error, "TCP tunnel not opened: connection closed");
            metrics.tcp_not_opened(target, TunnelResult::Failed);
            return entry.status(err.status());
        }
    };
    entry.status(head.status);
    if !head.status.is_success() {
        let status = head.status.as_u16();
        warn!(
            target,
            status, "sidecar refused the TCP tunnel: connection closed"
        );
        metrics.tcp_not_opened(target, TunnelResult::Refused);
        // Nothing to send on a stream that will not tunnel.
        let _ = send.send_data(Bytes::new(), true);
        return;
    }
    let timeouts = relay::Timeouts {
        idle: service.idle_timeout.unwrap_or(context.tunnel_timeouts.idle),
        fin: context.tunnel_timeouts.fin,
    };
    let counted = metrics.tcp_opened(target, asked.elapsed());
    let places = (slot, permit);
    let span = debug_span!(parent: Span::current(), "tcp_tunnel");
    // Spawned, not awaited: the task keeps the relay's state only, not
    // this function's. Unboxed, for the reason given in crate::tunnel.
    let relay = relay_tunnel(
        service.form,
        stream,
        send,
        recv,
        places,
        counted,
        timeouts,
        entry,
    );
    context.drain.spawn(relay.instrument(span));
}

/// The `:authority` of the templated form: the name the cluster's
/// sidecars are checked against, or the first one's address for h2c.
fn authority(cluster: &Cluster) -> String {
    let Some(first) = cluster.endpoints().first() else {
        return cluster.name().to_owned();
    };
    let config = first.config();
    match &config.tls {
        Some(tls) => tls.server_name.to_str().into_owned(),
        None => config.addr.clone(),
    }
}

/// Opens the CONNECT stream on `cluster` and waits for the sidecar's
/// answer; a stream the sidecar refused unprocessed is tried again
/// (RFC 9113 §8.7), as the cluster's retry policy allows.
async fn open(
    context: &Context,
    cluster: &Cluster,
    request: Request<()>,
) -> Result<Answered, Error> {
    let mut tried = Vec::new();
    let mut _in_flight = None;
    loop {
        let opened = cluster
            .open_stream_avoiding(copy_head(&request), false, &tried)
            .await;
        let (index, (response, send, slot)) = opened?;
        tried.push(index);
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
                let Some(place) = retry::tunnel_retry(context, cluster, &err, tried.len()) else {
                    return Err(err);
                };
                debug!(attempt = tried.len(), "retrying the refused TCP tunnel");
                _in_flight = Some(place);
            }
        }
    }
}

/// Relays the client's connection with the stream in `form`: classic
/// CONNECT (RFC 9113 §8.5), the client's bytes as the stream's DATA and
/// back, FIN ⇄ END_STREAM per direction, reset ⇄ RST_STREAM; or
/// connect-tcp, the same in RFC 9297 capsules (DATA, and FINAL_DATA for
/// a FIN) by [`h2hop::capsule_relay`], a client reset becoming
/// RST_STREAM(CONNECT_ERROR) (connect-tcp draft §3.4). Not an `async fn`,
/// so that its arguments are kept once for the tunnel's life, not twice
/// (see [`h2hop::relay`]).
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would keep its arguments twice"
)]
#[expect(
    clippy::too_many_arguments,
    reason = "each is moved into the tunnel's task, none borrowed"
)]
fn relay_tunnel(
    form: ConnectForm,
    io: TcpStream,
    send: SendStream<Bytes>,
    recv: RecvStream,
    // Held for the tunnel's life: its place on the sidecar connection and
    // under the tunnel limit.
    places: (StreamSlot, Permit),
    counted: OpenTcpTunnel,
    timeouts: relay::Timeouts,
    // Written when the tunnel ends, however it ends.
    mut entry: Entry,
) -> impl Future<Output = ()> {
    async move {
        let _places = &places;
        debug!("TCP tunnel open");
        // One of two relays, each awaited in place: the task's state is
        // the larger of the two, not both.
        let end = match form {
            ConnectForm::Classic => {
                relay::tunnel(io, Bytes::new(), Bytes::new(), send, recv, timeouts).await
            }
            ConnectForm::ConnectTcp => capsule_relay::tunnel(io, send, recv, timeouts).await,
        };
        debug!(close = ?end.close, "TCP tunnel closed");
        entry.add_bytes(end.to_stream, end.to_tcp);
        entry.close(end.close.into());
        counted.ended(end.close.into(), end.to_stream, end.to_tcp);
    }
}
