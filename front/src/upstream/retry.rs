//! A cluster's retry policy for plain requests, and its retry budget.
//!
//! Input: the `retry` table of a config file cluster, or the `--retry*`
//! flags. Output: a [`RetryPolicy`] that [`crate::retry`] follows, and a
//! [`RetryBudget`] that counts the cluster's requests and the retries in
//! flight, so that retries cannot multiply an outage: a retry goes out
//! only while the retries in flight are fewer than
//! `max(min_retries_concurrent, budget_percent × active requests)`.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::StatusCode;

/// When a try may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOn {
    /// No endpoint could be dialled (`connect-failure`).
    ConnectFailure,
    /// The sidecar refused the stream unprocessed, REFUSED_STREAM
    /// (RFC 9113 §8.7) (`refused-stream`).
    RefusedStream,
    /// The stream or connection broke before the response head (`reset`).
    Reset,
    /// No response head within `per_try_timeout` (`per-try-timeout`).
    PerTryTimeout,
    /// A response head with this status (`503`, any 3-digit status).
    Status(StatusCode),
}

/// Why a `retry on` entry is not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown retry condition {0:?}: use connect-failure, refused-stream, reset, per-try-timeout or a status from 100 to 599"
)]
pub struct RetryOnError(pub String);

impl FromStr for RetryOn {
    type Err = RetryOnError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "connect-failure" => Ok(Self::ConnectFailure),
            "refused-stream" => Ok(Self::RefusedStream),
            "reset" => Ok(Self::Reset),
            "per-try-timeout" => Ok(Self::PerTryTimeout),
            _ => text
                .parse::<u16>()
                .ok()
                .filter(|code| (100..=599).contains(code))
                .and_then(|code| StatusCode::from_u16(code).ok())
                .map(Self::Status)
                .ok_or_else(|| RetryOnError(text.to_owned())),
        }
    }
}

/// How a cluster retries plain requests. Off (no retries) unless
/// configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries after the first; 0 turns retries off.
    pub retries: u32,
    /// What may be retried.
    pub on: Vec<RetryOn>,
    /// Bound on each try's wait for the response head; the response
    /// timeout still bounds all tries together.
    pub per_try_timeout: Option<Duration>,
    /// Retries in flight, in percent of the cluster's active requests.
    pub budget_percent: u8,
    /// Retries in flight allowed whatever the percentage gives.
    pub min_retries_concurrent: u32,
    /// Largest request body kept for a replay; a larger (or unknown
    /// length) body streams up and is not retried.
    pub max_body: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retries: 0,
            on: vec![
                RetryOn::ConnectFailure,
                RetryOn::RefusedStream,
                RetryOn::Reset,
                RetryOn::Status(StatusCode::SERVICE_UNAVAILABLE),
            ],
            per_try_timeout: None,
            budget_percent: 20,
            min_retries_concurrent: 3,
            max_body: 64 * 1024,
        }
    }
}

impl RetryPolicy {
    /// Whether `condition` may be retried.
    pub fn retries_on(&self, condition: RetryOn) -> bool {
        self.retries > 0 && self.on.contains(&condition)
    }
}

/// Most retries in flight for `active` requests.
pub fn retries_allowed(active: usize, budget_percent: u8, min_concurrent: u32) -> usize {
    let share = active.saturating_mul(usize::from(budget_percent)) / 100;
    share.max(usize::try_from(min_concurrent).unwrap_or(usize::MAX))
}

/// A cluster's requests in flight and the retries among them.
#[derive(Debug, Default)]
pub struct RetryBudget {
    active: Arc<AtomicUsize>,
    retrying: Arc<AtomicUsize>,
}

/// Counts one request as active until dropped.
#[derive(Debug)]
pub struct ActiveRequest(Arc<AtomicUsize>);

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Counts one retry as in flight until dropped.
#[derive(Debug)]
pub struct RetryInFlight(Arc<AtomicUsize>);

impl Drop for RetryInFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl RetryBudget {
    /// Counts a request as active while the guard lives.
    pub fn request(&self) -> ActiveRequest {
        self.active.fetch_add(1, Ordering::AcqRel);
        ActiveRequest(self.active.clone())
    }

    /// A place for one more retry in flight, if the budget has one.
    pub fn try_retry(&self, policy: &RetryPolicy) -> Option<RetryInFlight> {
        let active = self.active.load(Ordering::Acquire);
        let allowed = retries_allowed(active, policy.budget_percent, policy.min_retries_concurrent);
        self.retrying
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |retrying| {
                (retrying < allowed).then_some(retrying + 1)
            })
            .ok()
            .map(|_| RetryInFlight(self.retrying.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_parse_with_clear_errors() {
        assert_eq!("reset".parse(), Ok(RetryOn::Reset));
        assert_eq!("connect-failure".parse(), Ok(RetryOn::ConnectFailure));
        assert_eq!("refused-stream".parse(), Ok(RetryOn::RefusedStream));
        assert_eq!("per-try-timeout".parse(), Ok(RetryOn::PerTryTimeout));
        assert_eq!("502".parse(), Ok(RetryOn::Status(StatusCode::BAD_GATEWAY)));
        for bad in ["5xx", "600", "99", "Reset", ""] {
            let err = bad.parse::<RetryOn>().unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn the_budget_is_a_share_of_active_requests_with_a_floor() {
        assert_eq!(retries_allowed(0, 20, 3), 3);
        assert_eq!(retries_allowed(14, 20, 3), 3);
        assert_eq!(retries_allowed(50, 20, 3), 10);
        assert_eq!(retries_allowed(54, 20, 3), 10);
        assert_eq!(retries_allowed(1000, 100, 0), 1000);
    }

    #[test]
    fn retries_in_flight_stay_within_the_budget() {
        let policy = RetryPolicy {
            retries: 1,
            ..RetryPolicy::default()
        };
        let budget = RetryBudget::default();
        let requests: Vec<_> = (0..20).map(|_| budget.request()).collect();
        let mut retries: Vec<_> = (0..10).filter_map(|_| budget.try_retry(&policy)).collect();
        assert_eq!(retries.len(), 4);
        assert!(budget.try_retry(&policy).is_none());
        retries.pop();
        assert!(budget.try_retry(&policy).is_some());
        drop(requests);
        assert_eq!(budget.active.load(Ordering::Acquire), 0);
    }

    #[test]
    fn no_retries_means_off() {
        let policy = RetryPolicy::default();
        assert!(!policy.retries_on(RetryOn::Reset));
        let on = RetryPolicy {
            retries: 2,
            ..policy
        };
        assert!(on.retries_on(RetryOn::Status(StatusCode::SERVICE_UNAVAILABLE)));
        assert!(!on.retries_on(RetryOn::Status(StatusCode::BAD_GATEWAY)));
    }
}
