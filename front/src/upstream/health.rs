//! Active health checks: one task per endpoint of a cluster with a
//! [`HealthCheck`], which sends the check on the endpoint's own pooled
//! connections (so it goes through the sidecar to the app), counts the
//! results ([`Verdict`]) and sets [`Endpoint::healthy`], which the
//! cluster's pick reads. Also the front's readiness over all clusters
//! ([`readiness`]).
//!
//! Input: a cluster, once it is shared ([`start`]). Output: the endpoints'
//! health flags, the `h2hop_upstream_healthy` gauge and the
//! `h2hop_health_checks_total` counter. A task holds its endpoint only
//! weakly, and only during a check: once the routing no longer holds the
//! cluster (removed or replaced on reload), the task ends at its next
//! turn and drops its gauge.

use std::sync::{Arc, Weak};
use std::time::Duration;

use h2hop::metrics::{HealthCheckResult, Metrics};
use http::{HeaderValue, Request, StatusCode, Uri, header};
use rand::Rng as _;
use tracing::{debug, info, warn};

use crate::error::Error;
use crate::upstream::endpoint::Endpoint;
use crate::upstream::{Cluster, HealthCheck};

/// The `user-agent` of every check, so that the app can tell checks from
/// traffic.
pub const USER_AGENT: &str = "h2hop-health-check";

/// Most body bytes read from one check's answer; the rest is dropped
/// (the stream is then reset).
const BODY_LIMIT: usize = 64 * 1024;

/// Consecutive results, and whether they keep the endpoint in. Starts
/// healthy, as HAProxy does: an endpoint takes streams until
/// `unhealthy_threshold` checks in a row have failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    healthy: bool,
    /// Results in a row that disagree with `healthy`.
    streak: u32,
}

impl Default for Verdict {
    fn default() -> Self {
        Self {
            healthy: true,
            streak: 0,
        }
    }
}

impl Verdict {
    /// Whether the endpoint takes new streams.
    pub fn healthy(&self) -> bool {
        self.healthy
    }

    /// Counts one result; returns the new state when this result flips it.
    pub fn record(&mut self, passed: bool, check: &HealthCheck) -> Option<bool> {
        if passed == self.healthy {
            self.streak = 0;
            return None;
        }
        self.streak = self.streak.saturating_add(1);
        let needed = if self.healthy {
            check.unhealthy_threshold
        } else {
            check.healthy_threshold
        };
        if self.streak < needed {
            return None;
        }
        self.healthy = passed;
        self.streak = 0;
        Some(passed)
    }
}

/// Spawns the checks of each of `cluster`'s endpoints that has a
/// [`HealthCheck`]. Needs a Tokio runtime; without one (a library caller
/// reloading from a plain thread) the checks do not run, and a warning
/// says so.
pub(crate) fn start(cluster: &Cluster, metrics: &Arc<Metrics>) {
    for endpoint in cluster.endpoints() {
        let Some(check) = endpoint.config().health_check.clone() else {
            continue;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            warn!(
                cluster = cluster.name(),
                "no Tokio runtime: health checks do not run"
            );
            return;
        };
        let task = run(
            Arc::downgrade(endpoint),
            cluster.shared_name(),
            check,
            metrics.clone(),
        );
        runtime.spawn(task);
    }
}

/// Checks one endpoint until it is gone.
async fn run(
    endpoint: Weak<Endpoint>,
    cluster: Arc<str>,
    check: HealthCheck,
    metrics: Arc<Metrics>,
) {
    let Some(addr) = endpoint.upgrade().map(|e| e.addr().to_owned()) else {
        return;
    };
    metrics.endpoint_health(&cluster, &addr, true);
    // Up to a tenth of the interval, so that endpoints (and fronts) started
    // together do not check in step.
    let most = check.interval / 10;
    let jitter = rand::rng().random_range(Duration::ZERO..=most);
    tokio::time::sleep(jitter).await;
    let mut verdict = Verdict::default();
    loop {
        let Some(endpoint) = endpoint.upgrade() else {
            break;
        };
        let outcome = probe(&endpoint, &check).await;
        let passed = outcome.is_ok();
        let result = if passed {
            HealthCheckResult::Pass
        } else {
            HealthCheckResult::Fail
        };
        metrics.health_checked(&cluster, &addr, result);
        let flipped = verdict.record(passed, &check);
        if let Some(healthy) = flipped {
            endpoint.set_healthy(healthy);
        }
        log_outcome(&cluster, &addr, &check, &outcome, flipped.is_some());
        metrics.endpoint_health(&cluster, &addr, verdict.healthy());
        drop(endpoint);
        tokio::time::sleep(check.interval).await;
    }
    metrics.endpoint_health_gone(&cluster, &addr);
}

/// Every failed check at debug; a check that flips the endpoint's state at
/// warn (out) or info (back in), with the status or the failure.
fn log_outcome(
    cluster: &str,
    addr: &str,
    check: &HealthCheck,
    outcome: &Result<StatusCode, CheckFailure>,
    flipped: bool,
) {
    match outcome {
        Ok(status) if flipped => {
            info!(cluster, sidecar = addr, %status, passes = check.healthy_threshold, "health check passed: endpoint takes new streams again");
        }
        Ok(_) => {}
        Err(failure) => {
            let error = h2hop::telemetry::chain(failure);
            if flipped {
                warn!(cluster, sidecar = addr, %error, failures = check.unhealthy_threshold, "health check failed: endpoint takes no new streams");
            } else {
                debug!(cluster, sidecar = addr, %error, "health check failed");
            }
        }
    }
}

/// Why one check failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckFailure {
    /// The check's target does not make a request.
    #[error("health check request")]
    Request(#[source] http::Error),
    /// No stream could be opened on the endpoint (connect, TLS, backoff).
    #[error("cannot open the health check stream")]
    Open(#[source] Error),
    /// The stream failed before the answer ended.
    #[error("health check stream failed")]
    Stream(#[source] h2::Error),
    /// No complete answer within the check's timeout.
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    /// The answer is not a 2xx.
    #[error("answered {0}")]
    Status(StatusCode),
}

/// One check of `endpoint`: the status of a 2xx answer, or why it failed.
pub async fn probe(endpoint: &Endpoint, check: &HealthCheck) -> Result<StatusCode, CheckFailure> {
    let request = check_request(endpoint.addr(), check).map_err(CheckFailure::Request)?;
    let exchange = async {
        let (response, _send, _slot) = endpoint
            .open_stream(request, true)
            .await
            .map_err(CheckFailure::Open)?;
        let response = response.await.map_err(CheckFailure::Stream)?;
        let status = response.status();
        let mut body = response.into_body();
        let mut read = 0;
        while read < BODY_LIMIT {
            let Some(chunk) = body.data().await else {
                break;
            };
            let chunk = chunk.map_err(CheckFailure::Stream)?;
            read += chunk.len();
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        Ok(status)
    };
    let status = tokio::time::timeout(check.timeout, exchange)
        .await
        .map_err(|_| CheckFailure::TimedOut(check.timeout))??;
    if status.is_success() {
        Ok(status)
    } else {
        Err(CheckFailure::Status(status))
    }
}

/// `GET` of the check's path, its authority or else `addr`, marked with
/// [`USER_AGENT`].
fn check_request(addr: &str, check: &HealthCheck) -> Result<Request<()>, http::Error> {
    let authority = match &check.authority {
        Some(authority) => authority.as_str(),
        None => addr,
    };
    let uri = Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(check.path.clone())
        .build()?;
    let mut request = Request::get(uri).body(())?;
    request
        .headers_mut()
        .insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
    Ok(request)
}

/// `/readyz`: every cluster with health checks has a healthy endpoint, and,
/// if some clusters have none, one of their endpoints has a usable
/// connection (or takes a new one now). Otherwise, why not: the clusters
/// with no healthy endpoint by name, or the connection failures.
pub(crate) async fn readiness(clusters: &[Arc<Cluster>]) -> Result<(), String> {
    let mut unhealthy = Vec::new();
    let mut unchecked = false;
    let mut usable = false;
    let mut failures = Vec::new();
    for cluster in clusters {
        let endpoints = cluster.endpoints();
        if endpoints.iter().any(|e| e.config().health_check.is_some()) {
            if !endpoints.iter().any(|e| e.healthy()) {
                unhealthy.push(format!("{:?}", cluster.name()));
            }
            continue;
        }
        unchecked = true;
        for endpoint in endpoints {
            if usable {
                break;
            }
            match endpoint.ready().await {
                Ok(()) => usable = true,
                Err(err) => failures.push(h2hop::telemetry::chain(&err)),
            }
        }
    }
    if !unhealthy.is_empty() {
        return Err(format!(
            "no healthy sidecar in cluster {}",
            unhealthy.join(", ")
        ));
    }
    if unchecked && !usable {
        return Err(failures.join("; "));
    }
    Ok(())
}

#[cfg(test)]
#[path = "health_tests.rs"]
mod tests;
