//! What every request handler of the front shares: the [`Context`] the
//! listener builds once (the live routing, timeouts, limits, metrics), and
//! the shape of every answer ([`ResponseBody`]). Used by [`crate::dispatch`],
//! [`crate::tunnel`] and [`crate::forward`]; it calls none of them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use h2::RecvStream;
use h2::client::ResponseFuture;
use h2hop::drain::Drain;
use h2hop::limit::Limit;
use h2hop::metrics::Metrics;
use h2hop::relay::{self, H2Body};
use h2hop::upgrade::Protocols;
use http::uri::Scheme;
use http::{Response, Version};
use http_body_util::{Either, Full};

use crate::client_fields::ClientFields;
use crate::error::{Error, UpstreamStep};
use crate::live_routing::LiveRouting;
use crate::upstream::Cluster;

/// The body of every response the front writes: its own short texts, or a
/// body streamed from the sidecar.
pub type ResponseBody = Either<Full<Bytes>, H2Body>;

/// An empty body.
pub fn empty() -> ResponseBody {
    Either::Left(Full::new(Bytes::new()))
}

/// A body streamed from an HTTP/2 stream.
pub fn streamed(body: H2Body) -> ResponseBody {
    Either::Right(body)
}

/// What every request handler shares.
pub struct Context {
    /// The clusters and routes in use now; a reload swaps them. Each
    /// request loads them once.
    pub(crate) routing: Arc<LiveRouting>,
    /// Bound on the sidecar's response head to a plain request.
    pub response_timeout: Duration,
    /// Bound on the sidecar's answer to an upgrade, and on an upgrade body.
    pub upgrade_timeout: Duration,
    /// Close a tunnel where nothing moved for this long, or where the
    /// client left its half open after the sidecar's side ended.
    pub tunnel_timeouts: relay::Timeouts,
    pub(crate) protocols: Protocols,
    pub(crate) upgrade_body_limit: u64,
    /// Shutdown: tunnels are spawned through it so that they drain.
    pub drain: Drain,
    /// Tunnels open at once.
    pub tunnels: Limit,
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
    /// Error answers carry their cause chain (`--error-details`).
    pub(crate) error_details: bool,
    /// How each request's client address and identity fields are settled.
    pub(crate) client_fields: ClientFields,
}

impl Context {
    /// Waits for the sidecar's response head, within `bound`; `cluster`
    /// names where it comes from in errors.
    pub async fn await_response(
        &self,
        response: ResponseFuture,
        bound: Duration,
        cluster: &Cluster,
    ) -> Result<Response<RecvStream>, Error> {
        // The name is copied only for an error: not every request pays
        // its allocation.
        let addr = || cluster.name().to_owned();
        match tokio::time::timeout(bound, response).await {
            Err(_) => Err(Error::UpstreamTimeout {
                step: UpstreamStep::Response,
                addr: addr(),
                after: bound,
            }),
            Ok(Err(source)) => Err(Error::UpstreamH2 {
                addr: addr(),
                source,
            }),
            Ok(Ok(response)) => Ok(response),
        }
    }
}

/// The scheme the client used: HTTP/2 carries it; of an HTTP/1.1 request,
/// a TLS connection notes `https` in the request's extensions, and one
/// without the note came in the clear.
pub fn client_scheme(parts: &http::request::Parts) -> Scheme {
    parts
        .uri
        .scheme()
        .or_else(|| parts.extensions.get::<Scheme>())
        .cloned()
        .unwrap_or(Scheme::HTTP)
}

/// The version of the answer: HTTP/2 for an HTTP/2 client, else HTTP/1.1.
pub fn answer_version(parts: &http::request::Parts) -> Version {
    if parts.version == Version::HTTP_2 {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    }
}
