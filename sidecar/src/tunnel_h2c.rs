//! Tunnel stage toward an h2c app (`--app-protocol h2c`): the front's
//! extended CONNECT goes to the app as an extended CONNECT (RFC 8441 §4),
//! same `:protocol`, `:path`, `:authority` and fields.
//!
//! Input: a stream with an allowed `:protocol`. Only an app whose SETTINGS
//! enabled extended CONNECT gets one (RFC 8441 §3); otherwise the stream
//! is answered 501 ([`crate::Error::NoExtendedConnect`]). The app's 2xx
//! opens the tunnel, answered `200` (RFC 8441 §5), and the two streams are
//! relayed ([`crate::stream_relay`]); any other answer is relayed as is.
//! No method, body or key is rewritten: those are HTTP/1.1 Upgrade
//! matters. An upgrade whose body the front carried is refused (501): an
//! extended CONNECT has no request body (RFC 8441 §4).

use bytes::Bytes;
use h2::RecvStream;
use h2::server::SendResponse;
use h2hop::access::Entry;
use h2hop::metrics::TunnelResult;
use h2hop::relay::H2Body;
use h2hop::translate::response;
use h2hop::upgrade;
use http::{Request, StatusCode, Version};
use tracing::debug;

use crate::app::{App, OpenedStream, app_request, response_head};
use crate::context::Context;
use crate::tunnel::{Opened, overloaded_unless};
use crate::{Error, respond, stream_relay};

/// Opens the tunnel: the app's 2xx relayed as the stream's `200`. Returns
/// what the relay needs, or `None` when the app refused and its answer was
/// relayed instead (`entry` gets its status and body).
pub async fn open(
    context: &Context,
    app: &App,
    request: Request<RecvStream>,
    protocol: &str,
    respond: &mut SendResponse<Bytes>,
    entry: &mut Entry,
) -> Result<Option<Opened>, Error> {
    // Held for the tunnel's life.
    let place = overloaded_unless(context.tunnels.try_take(), &context.tunnels)?;
    let asked = tokio::time::Instant::now();
    let (parts, front_recv) = request.into_parts();
    // A method the front carried has no place in an extended CONNECT and
    // is dropped; a body would reach the app as tunnel bytes, so an
    // upgrade with one is refused.
    let carried = upgrade::carried(&parts.headers, context.upgrades.body_limit)?;
    if carried.body_length > 0 {
        return Err(Error::UpgradeBodyToH2c(carried.body_length));
    }
    let head = app_request(&parts)?;
    // S5: a stream the front resets while we wait cancels the open.
    let opened = respond::unless_reset(respond, app.open_h2c(head, false)).await?;
    let OpenedStream {
        response,
        send: app_send,
        place: stream_place,
    } = opened;
    let bound = app.config().upgrade_timeout;
    let answer =
        respond::unless_reset(respond, response_head(app.config(), response, bound)).await?;
    let (head, app_recv) = answer.into_parts();
    if !head.status.is_success() {
        debug!(
            status = head.status.as_u16(),
            "app refused the extended CONNECT"
        );
        context
            .metrics
            .tunnel_not_opened(protocol, TunnelResult::Refused);
        let body = H2Body::with_guard(app_recv, stream_place);
        respond::respond_with(respond, head, body, entry).await?;
        // Held until the answer is out: dropping the stream's receive half
        // earlier could reset the stream before the front read it.
        drop((front_recv, app_send));
        return Ok(None);
    }
    // RFC 9110 §9.3.6: any 2xx to a CONNECT opens the tunnel; the front
    // gets the 200 RFC 8441 §5 names, with the app's end-to-end fields.
    let mut reply = response::relay(&head, Version::HTTP_2);
    *reply.status_mut() = StatusCode::OK;
    entry.status(StatusCode::OK);
    let front_send = respond
        .send_response(reply, false)
        .map_err(Error::Respond)?;
    let front = stream_relay::Halves {
        send: front_send,
        recv: front_recv,
    };
    let app = stream_relay::Halves {
        send: app_send,
        recv: app_recv,
    };
    Ok(Some(Opened::streams(
        context,
        protocol,
        asked,
        front,
        app,
        stream_place,
        place,
    )))
}
