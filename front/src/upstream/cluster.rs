//! A cluster: sidecars of equal standing, and which one takes a stream
//! (the least loaded healthy one not backing off; an unreachable one is
//! skipped for the next). Called by the request stages through [`Cluster::open_stream`].

use std::sync::Arc;

use h2hop::metrics::Metrics;
use http::Request;
use tracing::debug;

use crate::error::Error;
use crate::upstream::endpoint::Endpoint;
use crate::upstream::{OpenStream, UpstreamConfig};

/// A named set of sidecars of equal standing (a config file's cluster, or
/// the one `--sidecar`). Each stream goes to the sidecar with the fewest
/// open streams among those not backing off after a failed dial; a sidecar
/// that cannot be reached is skipped for the next.
pub struct Cluster {
    name: Arc<str>,
    endpoints: Vec<Arc<Endpoint>>,
}

impl Cluster {
    /// A cluster of `endpoints` (at least one); nothing connects yet.
    pub fn new(
        name: impl Into<Arc<str>>,
        endpoints: Vec<UpstreamConfig>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let endpoints = endpoints.into_iter();
        Self {
            name: name.into(),
            endpoints: endpoints
                .map(|config| Arc::new(Endpoint::new(config, metrics.clone())))
                .collect(),
        }
    }

    /// The cluster's name, for logs and errors.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cluster's name, shared (for access log entries).
    pub fn shared_name(&self) -> Arc<str> {
        self.name.clone()
    }

    /// The sidecars, in configuration order.
    pub fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }

    /// Opens a stream for `request` on the least loaded reachable sidecar
    /// that its health checks keep in (see [`Endpoint::open_stream`]).
    /// When none is healthy, fails at once: no dial.
    pub async fn open_stream(
        &self,
        request: Request<()>,
        end_of_stream: bool,
    ) -> Result<OpenStream, Error> {
        if !self.endpoints.iter().any(|endpoint| endpoint.healthy()) {
            return Err(Error::NoHealthyEndpoint {
                cluster: self.name.to_string(),
            });
        }
        if let [only] = self.endpoints.as_slice() {
            return only.open_stream(request, end_of_stream).await;
        }
        let mut candidates: Vec<&Endpoint> = self
            .endpoints
            .iter()
            .map(|endpoint| &**endpoint)
            .filter(|endpoint| endpoint.healthy() && endpoint.backing_off().is_none())
            .collect();
        candidates.sort_by_key(|endpoint| endpoint.active_streams());
        let mut last_failure = None;
        for endpoint in candidates {
            match endpoint
                .open_stream(copy_head(&request), end_of_stream)
                .await
            {
                Ok(open) => return Ok(open),
                Err(err) if err.is_dial_failure() => {
                    debug!(sidecar = endpoint.addr(), error = %err, "trying the next sidecar");
                    last_failure = Some(err);
                }
                Err(err) => return Err(err),
            }
        }
        Err(last_failure.unwrap_or_else(|| Error::NoEndpoint {
            cluster: self.name.to_string(),
        }))
    }
}

/// A request head again, for another attempt (`http::Request` is not
/// `Clone`): method, target, version, fields and `:protocol`.
fn copy_head(request: &Request<()>) -> Request<()> {
    let mut copy = Request::new(());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    if let Some(protocol) = request.extensions().get::<h2::ext::Protocol>() {
        copy.extensions_mut().insert(protocol.clone());
    }
    copy
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::tests::{closed_port, config, get, metrics};

    /// A cluster skips a sidecar it cannot reach, and one that is backing
    /// off, and says so when none is left.
    #[tokio::test]
    async fn a_cluster_with_no_reachable_sidecar_says_so() {
        let endpoints = vec![config(closed_port().await), config(closed_port().await)];
        let cluster = Cluster::new("c", endpoints, metrics());
        let first = cluster.open_stream(get(), true).await.err().unwrap();
        assert!(matches!(first, Error::ConnectUpstream { .. }), "{first}");
        assert!(
            cluster
                .endpoints()
                .iter()
                .all(|e| e.backing_off().is_some())
        );
        let none = cluster.open_stream(get(), true).await.err().unwrap();
        assert!(matches!(none, Error::NoEndpoint { .. }), "{none}");
        assert_eq!(none.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    }
}
