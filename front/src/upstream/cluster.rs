//! A cluster: sidecars of equal standing, and which one takes a stream
//! (the least loaded healthy one not backing off nor ejected; an unreachable one is
//! skipped for the next). Called by the request stages through
//! [`Cluster::open_stream`], which report each stream's outcome back
//! through [`Cluster::record`] for the [`crate::upstream::outlier`] ejection.

use std::sync::Arc;

use h2hop::metrics::Metrics;
use http::Request;
use tracing::debug;

use crate::error::Error;
use crate::upstream::endpoint::Endpoint;
use crate::upstream::outlier::{Outcome, Outliers};
use crate::upstream::retry::{RetryBudget, RetryPolicy};
use crate::upstream::{OpenStream, UpstreamConfig};

/// A named set of sidecars of equal standing (a config file's cluster, or
/// the one `--sidecar`). Each stream goes to the sidecar with the fewest
/// open streams among those not backing off after a failed dial, not
/// ejected, and not tried yet by the same request; a sidecar that cannot
/// be reached is skipped for the next.
pub struct Cluster {
    name: Arc<str>,
    endpoints: Vec<Arc<Endpoint>>,
    outliers: Outliers,
    retry: RetryPolicy,
    budget: RetryBudget,
    metrics: Arc<Metrics>,
}

impl Cluster {
    /// A cluster of `endpoints` (at least one); nothing connects yet.
    pub fn new(
        name: impl Into<Arc<str>>,
        endpoints: Vec<UpstreamConfig>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (outlier, retry) = endpoints
            .first()
            .map(|first| (first.outlier, first.retry.clone()))
            .unwrap_or_default();
        let outliers = Outliers::new(outlier, endpoints.len());
        Self {
            name: name.into(),
            endpoints: endpoints
                .into_iter()
                .map(|config| Arc::new(Endpoint::new(config, metrics.clone())))
                .collect(),
            outliers,
            retry,
            budget: RetryBudget::default(),
            metrics,
        }
    }

    /// How plain requests to this cluster are retried.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The cluster's requests in flight and retries among them.
    pub fn retry_budget(&self) -> &RetryBudget {
        &self.budget
    }

    /// Records what a stream on endpoint `index` (from
    /// [`Cluster::open_stream_avoiding`]) said about it.
    pub fn record(&self, index: usize, outcome: Outcome) {
        let addr = self
            .endpoints
            .get(index)
            .map_or("", |endpoint| endpoint.addr());
        if self.outliers.record(index, outcome, addr).is_some() {
            self.metrics.outlier_ejected(&self.name);
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
    ) -> Result<(usize, OpenStream), Error> {
        self.open_stream_avoiding(request, end_of_stream, &[]).await
    }

    /// [`Cluster::open_stream`], taking the endpoints in `avoid` (indexes,
    /// those a request already tried) only when no other is left. Returns
    /// the index of the endpoint that took the stream, for
    /// [`Cluster::record`]. A failed dial is recorded here.
    pub async fn open_stream_avoiding(
        &self,
        request: Request<()>,
        end_of_stream: bool,
        avoid: &[usize],
    ) -> Result<(usize, OpenStream), Error> {
        if !self.endpoints.iter().any(|endpoint| endpoint.healthy()) {
            return Err(Error::NoHealthyEndpoint {
                cluster: self.name.to_string(),
            });
        }
        if let [only] = self.endpoints.as_slice() {
            let opened = only.open_stream(request, end_of_stream).await;
            return opened.map(|open| (0, open));
        }
        // Boxed: the pick's future holds one endpoint's attempt besides its
        // own state, and a single sidecar's requests need not be sized for it.
        Box::pin(self.open_on_least_loaded(request, end_of_stream, avoid)).await
    }

    /// [`Cluster::open_stream_avoiding`] among several endpoints: the least
    /// loaded of those neither ejected nor avoided, the next one when a
    /// dial fails.
    async fn open_on_least_loaded(
        &self,
        request: Request<()>,
        end_of_stream: bool,
        avoid: &[usize],
    ) -> Result<(usize, OpenStream), Error> {
        // Ejected endpoints come last: they take a stream only when no
        // other could be dialled, rather than the request failing.
        let ejected = self.outliers.ejected();
        let is_ejected = |index: usize| ejected.get(index).copied().unwrap_or(false);
        let mut candidates: Vec<(usize, &Endpoint)> = self
            .endpoints
            .iter()
            .map(|endpoint| &**endpoint)
            .enumerate()
            .filter(|(_, endpoint)| endpoint.healthy() && endpoint.backing_off().is_none())
            .collect();
        candidates.sort_by_key(|(index, endpoint)| {
            (
                is_ejected(*index),
                avoid.contains(index),
                endpoint.active_streams(),
            )
        });
        let mut last_failure = None;
        for (index, endpoint) in candidates {
            match endpoint
                .open_stream(copy_head(&request), end_of_stream)
                .await
            {
                Ok(open) => return Ok((index, open)),
                Err(err) if err.is_dial_failure() => {
                    debug!(sidecar = endpoint.addr(), error = %err, "trying the next sidecar");
                    self.record(index, Outcome::ConnectFailure);
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
pub(crate) fn copy_head(request: &Request<()>) -> Request<()> {
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
