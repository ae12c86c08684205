//! Tunnel stage: an extended CONNECT becomes an HTTP/1.1 Upgrade to the app.
//!
//! Input: a stream with an allowed `:protocol`. The app gets an Upgrade on
//! a connection of its own, with the method and body the front carried
//! ([`h2hop::upgrade`]; `GET` and no body with `--upgrade-as-get` or from a
//! front that carries none) and, for a WebSocket, a fresh key. Only a `101`
//! that names the protocol (and carries the matching accept) opens the
//! tunnel, answered `200` (RFC 8441 §5). Anything else is relayed, and that
//! app connection closes. Stream bytes behind the body wait until the 101.

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use std::time::Duration;

use bytes::BytesMut;
use h2hop::access::Entry;
use h2hop::limit::{Limit, Permit};
use h2hop::metrics::{OpenTunnel, TunnelResult};
use h2hop::relay;
use h2hop::translate::request::{self, AppUpgrade};
use h2hop::translate::response::{self, Refusal};
use h2hop::upgrade::{self, WEBSOCKET};
use h2hop::websocket;
use http::{Method, Request};
use hyper::body::Incoming;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tracing::debug;

use crate::app::{App, StreamPlace};
use crate::context::Context;
use crate::{Error, respond, stream_relay};

/// Opens the tunnel to `app`: its `101` checked and the stream answered `200`.
/// Returns what the relay needs, or `None` when the app refused the
/// upgrade and its answer was relayed instead (`entry` gets its status and
/// body).
pub async fn open(
    context: &Context,
    app: &App,
    dials: &Limit,
    request: Request<RecvStream>,
    protocol: &str,
    respond: &mut SendResponse<Bytes>,
    entry: &mut Entry,
) -> Result<Option<Opened>, Error> {
    // Held for the tunnel's life.
    let place = overloaded_unless(context.tunnels.try_take(), &context.tunnels)?;
    let asked = tokio::time::Instant::now();
    let (parts, mut recv) = request.into_parts();
    // Boxed: the exchange's state (heads, key, hyper's connection) is far
    // larger than anything else here, and is gone once it has run.
    let exchange = exchange(context, app, dials, parts, &mut recv, protocol, respond);
    let switched = match Box::pin(exchange).await? {
        Exchange::Switched(switched) => switched,
        // RFC 6455 §4.1 (N45): a 401, 403, 426... goes back as it is. The app
        // connection goes when the body is done: never pooled (S1).
        Exchange::Refused(head, body) => {
            debug!(status = head.status.as_u16(), "app refused the upgrade");
            let refused = TunnelResult::Refused;
            context.metrics.tunnel_not_opened(protocol, refused);
            respond::respond_with(respond, head, body, entry).await?;
            // Held until the answer is out: dropping the stream's receive
            // half earlier could reset the stream before the front read it.
            drop(recv);
            return Ok(None);
        }
    };
    entry.status(switched.reply.status());
    let send = respond
        .send_response(switched.reply, false)
        .map_err(Error::Respond)?;
    Ok(Some(Opened {
        way: Way::Tcp {
            io: switched.io,
            prefix: switched.prefix,
            early: switched.early,
            recv,
        },
        send,
        // The app is trusted to end its half: no fin timeout of its own.
        timeouts: relay::Timeouts {
            idle: context.tunnel_idle_timeout,
            fin: context.tunnel_idle_timeout,
        },
        metrics: context.metrics.tunnel_opened(protocol, asked.elapsed()),
        _place: place,
    }))
}

/// An open tunnel, ready to relay. It is relayed after the stream's
/// dispatch has returned, so that a tunnel's task keeps only this for its
/// whole life, not the state of everything that opened it.
pub struct Opened {
    way: Way,
    send: SendStream<Bytes>,
    timeouts: relay::Timeouts,
    metrics: OpenTunnel,
    _place: Permit,
}

/// What the front's stream is relayed with.
enum Way {
    /// An HTTP/1.1 app's upgraded connection.
    Tcp {
        io: TcpStream,
        prefix: Bytes,
        early: Bytes,
        recv: RecvStream,
    },
    /// An h2c app's extended CONNECT stream ([`crate::tunnel_h2c`]).
    Stream {
        /// The front's stream, receive half.
        front_recv: RecvStream,
        /// The app's stream.
        app: stream_relay::Halves,
        /// Its place on the app connection, held for the tunnel's life.
        place: StreamPlace,
    },
}

impl Opened {
    /// A tunnel to an h2c app's stream, for [`crate::tunnel_h2c`].
    pub(crate) fn streams(
        context: &Context,
        protocol: &str,
        asked: tokio::time::Instant,
        front: stream_relay::Halves,
        app: stream_relay::Halves,
        stream_place: StreamPlace,
        place: Permit,
    ) -> Self {
        Self {
            way: Way::Stream {
                front_recv: front.recv,
                app,
                place: stream_place,
            },
            send: front.send,
            timeouts: relay::Timeouts {
                idle: context.tunnel_idle_timeout,
                fin: context.tunnel_idle_timeout,
            },
            metrics: context.metrics.tunnel_opened(protocol, asked.elapsed()),
            _place: place,
        }
    }
}

impl Opened {
    /// Relays until both sides close; `entry` gets the bytes each way and
    /// how it ended, and writes its line when this returns. Not an `async
    /// fn`, so that nothing is kept twice for the tunnel's life (see
    /// [`h2hop::relay`]).
    pub fn relay(self, mut entry: Entry) -> impl Future<Output = ()> {
        let Self {
            way,
            send,
            timeouts,
            metrics,
            _place: place,
        } = self;
        // The relay's future is made inside the block: one made outside
        // would be kept twice, as the block's capture and as what it awaits.
        async move {
            // Its place under the tunnel limit, held to the end (a borrow
            // makes the block keep it).
            let _place = &place;
            let started = tokio::time::Instant::now();
            let end = match way {
                Way::Tcp {
                    io,
                    prefix,
                    early,
                    recv,
                } => relay::tunnel(io, prefix, early, send, recv, timeouts).await,
                Way::Stream {
                    front_recv,
                    app,
                    place,
                } => {
                    let front = stream_relay::Halves {
                        send,
                        recv: front_recv,
                    };
                    // Boxed: an HTTP/1.1 app's idle tunnels are not to
                    // carry the size of this other relay's state.
                    let end = Box::pin(stream_relay::relay(front, app, timeouts.idle)).await;
                    drop(place);
                    end
                }
            };
            debug!(duration = ?started.elapsed(), "tunnel closed");
            entry.add_bytes(end.to_tcp, end.to_stream);
            entry.close(end.close.into());
            let result = end.close.into();
            metrics.ended(result, end.to_tcp, end.to_stream);
        }
    }
}

/// How the app answered the upgrade.
enum Exchange {
    /// A proper 101: the connection is ours to relay.
    Switched(Switched),
    /// Anything else that may be relayed as it is.
    Refused(http::response::Parts, Incoming),
}

/// An accepted upgrade, ready to relay.
struct Switched {
    /// The app connection.
    io: TcpStream,
    /// What the app sent right behind its 101, already read by hyper.
    prefix: Bytes,
    /// What the front sent right behind the upgrade body, held until now.
    early: Bytes,
    /// The stream's `200` with the app's end-to-end fields.
    reply: http::Response<()>,
}

/// Reads the upgrade body off the stream, sends the app its Upgrade on a
/// connection of its own and checks the answer (RFC 6455 §4.1 (N43)).
async fn exchange(
    context: &Context,
    app: &App,
    dials: &Limit,
    parts: http::request::Parts,
    recv: &mut RecvStream,
    protocol: &str,
    respond: &mut SendResponse<Bytes>,
) -> Result<Exchange, Error> {
    let policy = &context.upgrades;
    let carried = upgrade::carried(&parts.headers, policy.body_limit)?;
    // S5: a stream the front resets while we wait cancels the read and the dial.
    let read = read_body(recv, carried.body_length, app.config().upgrade_timeout);
    let (body, early) = respond::unless_reset(respond, read).await?;
    let (method, body) = if policy.as_get {
        (Method::GET, Bytes::new())
    } else {
        (carried.method, body)
    };
    // RFC 8441 §5 (N11): the key is ours, fresh per attempt (RFC 6455 §4.1 (N40)).
    let key = (protocol == WEBSOCKET).then(websocket::fresh_key);
    let app_upgrade = AppUpgrade {
        protocol,
        method,
        body_length: body.len() as u64,
        key: key.as_deref(),
    };
    let app_request = request::h2_to_h1(&parts, Some(&app_upgrade))?;
    // Held from the dial until the app's answer; a reset stream gives it
    // back at once (S5).
    let dialing = overloaded_unless(dials.try_take(), dials)?;
    let (answer, conn) = respond::unless_reset(respond, app.upgrade(app_request, body)).await?;
    drop(dialing);
    let (head, body) = answer.into_parts();
    match response::check_switch(&head, protocol, key.as_deref()) {
        Ok(()) => {}
        // Any 2xx to a CONNECT means "tunnel open" (RFC 9110 §9.3.6 (N13)):
        // relaying the app's 200 would make the front switch a client to a
        // tunnel the app never opened (S1). That is the app's fault: 502.
        Err(refusal @ Refusal::NotSwitching(status)) if status.is_success() => {
            return Err(Error::BadSwitch(refusal));
        }
        Err(Refusal::NotSwitching(_)) => {
            // The body comes as hyper reads the connection.
            conn.spawn();
            return Ok(Exchange::Refused(head, body));
        }
        Err(refusal) => return Err(Error::BadSwitch(refusal)),
    }
    let (io, prefix) = conn.into_upgraded().await.map_err(|err| Error::AppHttp {
        addr: app.config().addr.clone(),
        source: Box::new(err),
    })?;
    Ok(Exchange::Switched(Switched {
        io,
        prefix,
        early,
        reply: response::switched_to_h2(&head),
    }))
}

/// The place, or a 503 naming the limit.
pub(crate) fn overloaded_unless(place: Option<Permit>, limit: &Limit) -> Result<Permit, Error> {
    place.ok_or(Error::Overloaded {
        what: limit.what(),
        max: limit.max(),
    })
}

/// Takes the first `length` bytes off the stream as the upgrade's body,
/// within `bound`; returns it and whatever arrived behind it, which must
/// wait for the app's 101. Nothing is read when there is no body.
async fn read_body(
    recv: &mut RecvStream,
    length: u64,
    bound: Duration,
) -> Result<(Bytes, Bytes), Error> {
    let mut body = BytesMut::new();
    let reading = async {
        while (body.len() as u64) < length {
            let cut = Error::BodyCut {
                got: body.len() as u64,
                want: length,
            };
            let chunk = match recv.data().await {
                Some(Ok(chunk)) => chunk,
                Some(Err(_)) | None => return Err(cut),
            };
            let _ = recv.flow_control().release_capacity(chunk.len());
            body.extend_from_slice(&chunk);
        }
        Ok(())
    };
    timeout(bound, reading)
        .await
        .map_err(|_| Error::BodyTimeout(bound))??;
    // The body limit is far below usize on every platform we build for.
    let early = body.split_off(usize::try_from(length).unwrap_or(usize::MAX));
    Ok((body.freeze(), early.freeze()))
}
