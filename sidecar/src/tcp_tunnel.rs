//! TCP tunnel stage: a CONNECT to `host:port` becomes a TCP connection to
//! that target, relayed.
//!
//! Input: a stream [`h2hop::tcp_connect::target_of`] read a target from.
//! The target must be on the allow-list ([`crate::tcp_allow`]) for this
//! front, else 403 and nothing is dialled. Then, under the tunnel and
//! pending-dial limits (503), the target is dialled within
//! `--connect-timeout` (refused or unreachable: 502, too slow: 504; a
//! stream the front resets cancels the dial), and the stream is answered
//! `200` (RFC 9113 §8.5; the connect-tcp form's with `capsule-protocol:
//! ?1`). Output: an [`Opened`] tunnel, relayed by the stream's task once
//! dispatch has returned, as [`crate::tunnel`]'s are: raw bytes for the
//! classic form ([`h2hop::relay`]), capsules for the connect-tcp form
//! ([`h2hop::capsule_relay`]).
//! Called by [`crate::dispatch`].

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use h2hop::access::Entry;
use h2hop::host_port::HostPort;
use h2hop::limit::{Limit, Permit};
use h2hop::metrics::{OpenTcpTunnel, TunnelResult};
use h2hop::tcp_connect::{CAPSULE_PROTOCOL, ConnectForm};
use h2hop::{capsule_relay, relay};
use http::Response;
use http::header::HeaderValue;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tracing::{debug, warn};

use crate::context::{Context, Front};
use crate::tcp_allow::Verdict;
use crate::tunnel::overloaded_unless;
use crate::{Error, respond};

/// The `target` label of denials whose target is on no allow-list entry.
pub const UNLISTED_TARGET: &str = "other";

/// Opens the tunnel to `target`: allowed, dialled and answered `200`
/// (which the access line is to record).
/// `recv` is the stream's receive half, kept for the relay.
pub async fn open(
    context: &Context,
    dials: &Limit,
    front: &Front,
    form: ConnectForm,
    target: &HostPort,
    recv: RecvStream,
    respond: &mut SendResponse<Bytes>,
) -> Result<Opened, Error> {
    let verdict = context.tcp_allow.verdict(target, front.sans.as_deref());
    if verdict != Verdict::Allowed {
        // Named here, once, with who asked: the answer says only 403.
        let san = front.sans.as_deref().map(ToString::to_string);
        warn!(%target, front = %front.addr, san = san.as_deref().unwrap_or("none (h2c)"), reason = %verdict, "TCP tunnel denied");
        // Labelled by the target only when it is on the list: a target
        // no entry names counts as "other", so that the series stay as
        // few as the list, whatever fronts ask for.
        let label = match verdict {
            Verdict::NotListed => UNLISTED_TARGET,
            _ => target.as_str(),
        };
        context.metrics.tcp_not_opened(label, TunnelResult::Denied);
        return Err(Error::TcpDenied {
            target: target.to_string(),
            verdict,
        });
    }
    let opened = dial_and_answer(context, dials, form, target, recv, respond).await;
    if opened.is_err() {
        context
            .metrics
            .tcp_not_opened(target.as_str(), TunnelResult::Failed);
    }
    opened
}

/// The allowed part of [`open`]: limits, dial, answer.
async fn dial_and_answer(
    context: &Context,
    dials: &Limit,
    form: ConnectForm,
    target: &HostPort,
    recv: RecvStream,
    respond: &mut SendResponse<Bytes>,
) -> Result<Opened, Error> {
    // Held for the tunnel's life.
    let place = overloaded_unless(context.tunnels.try_take(), &context.tunnels)?;
    let dialing = overloaded_unless(dials.try_take(), dials)?;
    let asked = Instant::now();
    // S5: a stream the front resets while we dial cancels the dial.
    let io = respond::unless_reset(respond, dial(target, context.tcp_connect_timeout)).await?;
    drop(dialing);
    let dialled = asked.elapsed();
    let send = respond
        .send_response(answer(form), false)
        .map_err(Error::Respond)?;
    debug!(%target, ?dialled, "TCP tunnel open");
    Ok(Opened {
        io,
        form,
        send,
        recv,
        // The target is trusted to end its half: no fin timeout of its own.
        timeouts: relay::Timeouts {
            idle: context.tunnel_idle_timeout,
            fin: context.tunnel_idle_timeout,
        },
        metrics: context.metrics.tcp_opened(target.as_str(), dialled),
        _place: place,
    })
}

/// TCP connect to `target` (a name is resolved here) within `bound`.
async fn dial(target: &HostPort, bound: std::time::Duration) -> Result<TcpStream, Error> {
    let connect = TcpStream::connect(target.as_str());
    let io = match timeout(bound, connect).await {
        Err(_) => {
            return Err(Error::TargetTimeout {
                target: target.to_string(),
                after: bound,
            });
        }
        Ok(io) => io.map_err(|source| Error::ConnectTarget {
            target: target.to_string(),
            source,
        })?,
    };
    // Tunnelled protocols are often request/response: no Nagle delay.
    let _ = io.set_nodelay(true);
    Ok(io)
}

/// The `200` that opens the tunnel (RFC 9113 §8.5); the connect-tcp form
/// says its content is capsules (RFC 9297 §3.4).
fn answer(form: ConnectForm) -> Response<()> {
    let mut response = Response::new(());
    if form == ConnectForm::ConnectTcp {
        response
            .headers_mut()
            .insert(CAPSULE_PROTOCOL, HeaderValue::from_static("?1"));
    }
    response
}

/// An open TCP tunnel, ready to relay after dispatch has returned.
pub struct Opened {
    io: TcpStream,
    /// Raw bytes in DATA, or capsules: which relay runs.
    form: ConnectForm,
    send: SendStream<Bytes>,
    recv: RecvStream,
    timeouts: relay::Timeouts,
    metrics: OpenTcpTunnel,
    _place: Permit,
}

impl Opened {
    /// Relays until both sides close; `entry` gets the bytes each way (up
    /// = toward the target) and how it ended. The target's reset or
    /// failure resets the stream with CONNECT_ERROR (RFC 9113 §8.5, and
    /// the connect-tcp draft §3.4 for the capsule form). Not an `async
    /// fn`, so that nothing is kept twice (see [`h2hop::relay`]).
    pub fn relay(self, mut entry: Entry) -> impl Future<Output = ()> {
        let Self {
            io,
            form,
            send,
            recv,
            timeouts,
            metrics,
            _place: place,
        } = self;
        async move {
            let _place = &place;
            let started = Instant::now();
            // One of two relays, each awaited in place: the task's state
            // is the larger of the two, not both.
            let end = match form {
                ConnectForm::Classic => {
                    relay::tunnel_resetting::<relay::ConnectError>(
                        io,
                        Bytes::new(),
                        Bytes::new(),
                        send,
                        recv,
                        timeouts,
                    )
                    .await
                }
                ConnectForm::ConnectTcp => capsule_relay::tunnel(io, send, recv, timeouts).await,
            };
            debug!(duration = ?started.elapsed(), close = ?end.close, "TCP tunnel closed");
            entry.add_bytes(end.to_tcp, end.to_stream);
            entry.close(end.close.into());
            metrics.ended(end.close.into(), end.to_tcp, end.to_stream);
        }
    }
}
