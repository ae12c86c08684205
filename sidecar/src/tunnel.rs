//! Tunnel stage: an extended CONNECT becomes an HTTP/1.1 Upgrade to the app.
//!
//! Input: a stream with `:protocol websocket`. The app gets a `GET` Upgrade
//! with a fresh key on a connection of its own; only a `101` that names the
//! protocol and carries the matching accept opens the tunnel, answered `200`
//! (RFC 8441 §5). Anything else is relayed, and that app connection closes.

use bytes::Bytes;
use h2::RecvStream;
use h2::server::SendResponse;
use h2hop::relay;
use h2hop::translate::request::{self, Kind};
use h2hop::translate::response::{self, Refusal};
use h2hop::websocket;
use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tracing::info;

use crate::dispatch::{self, WEBSOCKET};
use crate::listener::Context;
use crate::{Error, forward};

/// Opens the tunnel and relays it until both sides close.
pub async fn open(
    context: &Context,
    request: Request<RecvStream>,
    respond: &mut SendResponse<Bytes>,
) -> Result<(), Error> {
    let (parts, recv) = request.into_parts();
    // The exchange's state (heads, key, hyper's connection) is gone before
    // the relay starts: only the sockets and streams stay per tunnel. Boxed,
    // because a task's allocation is sized for its largest state, and the
    // exchange's is far larger than the relay's.
    let switched = match Box::pin(exchange(context, parts, respond)).await? {
        Exchange::Switched(switched) => switched,
        // RFC 6455 §4.1 (N45): a 401, 403, 426... goes back as it is. The app
        // connection goes when the body is done: never pooled (S1).
        Exchange::Refused(head, body) => {
            info!(status = head.status.as_u16(), "app refused the upgrade");
            let answered = forward::respond_with(respond, &head, body).await;
            // Held until the answer is out: dropping the stream's receive
            // half earlier could reset the stream before the front read it.
            drop(recv);
            return answered;
        }
    };
    let send = respond
        .send_response(switched.reply, false)
        .map_err(Error::Respond)?;
    let started = tokio::time::Instant::now();
    let end = relay::tunnel(switched.io, switched.prefix, send, recv).await;
    info!(
        bytes_up = end.to_tcp,
        bytes_down = end.to_stream,
        close = ?end.close,
        duration = ?started.elapsed(),
        "tunnel closed"
    );
    Ok(())
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
    /// The stream's `200` with the app's end-to-end fields.
    reply: http::Response<()>,
}

/// Sends the app a `GET` Upgrade with a fresh key on a connection of its own
/// and checks the answer (RFC 6455 §4.1 (N43)).
async fn exchange(
    context: &Context,
    parts: http::request::Parts,
    respond: &mut SendResponse<Bytes>,
) -> Result<Exchange, Error> {
    // RFC 8441 §5 (N11): the key is ours, fresh per attempt (RFC 6455 §4.1 (N40)).
    let key = websocket::fresh_key();
    let app_request = request::h2_to_h1(&parts, Kind::Tunnel(WEBSOCKET), &key)?;
    let app = &context.app;
    // S5: a stream the front resets while we wait cancels the dial.
    let mut answer = dispatch::unless_reset(respond, app.upgrade(app_request)).await?;
    let on_upgrade = hyper::upgrade::on(&mut answer);
    let (head, body) = answer.into_parts();
    match response::check_switch(&head, WEBSOCKET, &key) {
        Ok(()) => {}
        // Any 2xx to a CONNECT means "tunnel open" (RFC 9110 §9.3.6 (N13)):
        // relaying the app's 200 would make the front switch a client to a
        // tunnel the app never opened (S1). That is the app's fault: 502.
        Err(refusal @ Refusal::NotSwitching(status)) if status.is_success() => {
            return Err(Error::BadSwitch(refusal));
        }
        Err(Refusal::NotSwitching(_)) => return Ok(Exchange::Refused(head, body)),
        Err(refusal) => return Err(Error::BadSwitch(refusal)),
    }
    let app_error = |source: Box<dyn std::error::Error + Send + Sync>| Error::AppHttp {
        addr: app.config().addr.clone(),
        source,
    };
    let upgraded = on_upgrade.await.map_err(|err| app_error(Box::new(err)))?;
    let Ok(upgraded) = upgraded.downcast::<TokioIo<TcpStream>>() else {
        return Err(app_error(
            "upgraded app connection is not a TCP stream".into(),
        ));
    };
    Ok(Exchange::Switched(Switched {
        io: upgraded.io.into_inner(),
        prefix: upgraded.read_buf,
        reply: response::switched_to_h2(&head),
    }))
}
