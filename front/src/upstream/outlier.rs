//! Passive outlier ejection: what each answer says about the sidecar that
//! gave it.
//!
//! Input: the [`Outcome`] of every stream (or dial) a cluster's endpoint
//! took, reported through [`crate::upstream::Cluster::record`]. Output:
//! which endpoints are ejected now: the cluster's pick takes them last,
//! only when no other endpoint can be dialled. An endpoint with `consecutive_failures` failures in a row
//! (5xx answers, resets, timeouts, failed dials) is ejected for
//! `base_ejection_time` times its ejection count, up to
//! `max_ejection_time`; at most `max_ejection_percent` of the cluster's
//! endpoints (rounded down, and never all of them) are ejected at once, so
//! a cluster of one is never ejected. The count starts again after an
//! endpoint went `max_ejection_time` past its last ejection.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tracing::warn;

/// How a cluster ejects failing endpoints. Off unless configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierConfig {
    /// Failures in a row that eject an endpoint (at least 1).
    pub consecutive_failures: u32,
    /// The first ejection's length; the n-th lasts n times this.
    pub base_ejection_time: Duration,
    /// The longest ejection.
    pub max_ejection_time: Duration,
    /// Most endpoints ejected at once, in percent of the cluster
    /// (rounded down; at least one endpoint always stays in).
    pub max_ejection_percent: u8,
}

impl Default for OutlierConfig {
    /// 5 failures in a row; 30 s, growing by 30 s per ejection up to
    /// 300 s; at most half the cluster.
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 50,
        }
    }
}

/// What one stream or dial said about its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A response head with a status below 500.
    Success,
    /// A 5xx response head.
    ServerError,
    /// The stream or its connection broke before the response head.
    Reset,
    /// No response head within the bound.
    Timeout,
    /// The endpoint could not be dialled.
    ConnectFailure,
}

impl Outcome {
    /// The outcome of a response head with `status`.
    pub fn of_status(status: http::StatusCode) -> Self {
        if status.is_server_error() {
            Self::ServerError
        } else {
            Self::Success
        }
    }

    fn is_failure(self) -> bool {
        self != Self::Success
    }
}

/// One endpoint's record.
#[derive(Debug, Default, Clone)]
struct Record {
    /// Failures since the last success or ejection.
    consecutive: u32,
    /// Ejections so far (the multiplier of the next ejection's length).
    ejections: u32,
    /// When the current or last ejection ends.
    ejected_until: Option<Instant>,
}

/// The ejection state of a cluster's endpoints, by index.
#[derive(Debug)]
pub(crate) struct Outliers {
    config: Option<OutlierConfig>,
    records: Mutex<Vec<Record>>,
}

impl Outliers {
    /// The state of `endpoints` endpoints; `None` never ejects.
    pub(crate) fn new(config: Option<OutlierConfig>, endpoints: usize) -> Self {
        Self {
            config,
            records: Mutex::new(vec![Record::default(); endpoints]),
        }
    }

    /// Which endpoints are ejected now, by index (empty when off).
    pub(crate) fn ejected(&self) -> Vec<bool> {
        if self.config.is_none() {
            return Vec::new();
        }
        let now = Instant::now();
        let records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        records
            .iter()
            .map(|record| is_ejected(record, now))
            .collect()
    }

    /// Records `outcome` for endpoint `index`, and ejects it if that makes
    /// `consecutive_failures` in a row and the share allows. Returns the
    /// ejection's length if it ejected.
    pub(crate) fn record(&self, index: usize, outcome: Outcome, addr: &str) -> Option<Duration> {
        let config = self.config.as_ref()?;
        let now = Instant::now();
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        let ejected_now = records.iter().filter(|r| is_ejected(r, now)).count();
        let allowed = max_ejected(records.len(), config.max_ejection_percent);
        let record = records.get_mut(index)?;
        if is_ejected(record, now) {
            // Late answers of streams opened before the ejection.
            return None;
        }
        if !outcome.is_failure() {
            record.consecutive = 0;
            return None;
        }
        record.consecutive = record.consecutive.saturating_add(1);
        if record.consecutive < config.consecutive_failures || ejected_now >= allowed {
            return None;
        }
        if record
            .ejected_until
            .is_some_and(|until| now >= until + config.max_ejection_time)
        {
            record.ejections = 0;
        }
        record.ejections = record.ejections.saturating_add(1);
        record.consecutive = 0;
        let length = ejection_time(config, record.ejections);
        record.ejected_until = Some(now + length);
        warn!(sidecar = addr, ejections = record.ejections, ejected_for = ?length, "sidecar ejected after failures in a row");
        Some(length)
    }
}

fn is_ejected(record: &Record, now: Instant) -> bool {
    record.ejected_until.is_some_and(|until| until > now)
}

/// Most endpoints of `endpoints` that may be ejected at once:
/// `percent` of them rounded down, and never all.
pub(crate) fn max_ejected(endpoints: usize, percent: u8) -> usize {
    let share = endpoints.saturating_mul(usize::from(percent.min(100))) / 100;
    share.min(endpoints.saturating_sub(1))
}

/// The length of the `ejections`-th ejection: the base time that many
/// times, capped.
pub(crate) fn ejection_time(config: &OutlierConfig, ejections: u32) -> Duration {
    config
        .base_ejection_time
        .saturating_mul(ejections.max(1))
        .min(config.max_ejection_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> OutlierConfig {
        OutlierConfig {
            consecutive_failures: 3,
            base_ejection_time: Duration::from_secs(10),
            max_ejection_time: Duration::from_secs(25),
            max_ejection_percent: 50,
        }
    }

    #[test]
    fn the_share_rounds_down_and_never_takes_all() {
        assert_eq!(max_ejected(1, 50), 0);
        assert_eq!(max_ejected(1, 100), 0);
        assert_eq!(max_ejected(2, 50), 1);
        assert_eq!(max_ejected(3, 50), 1);
        assert_eq!(max_ejected(4, 100), 3);
        assert_eq!(max_ejected(10, 10), 1);
        assert_eq!(max_ejected(9, 10), 0);
    }

    #[test]
    fn ejection_time_grows_linearly_to_the_cap() {
        let config = config();
        assert_eq!(ejection_time(&config, 1), Duration::from_secs(10));
        assert_eq!(ejection_time(&config, 2), Duration::from_secs(20));
        assert_eq!(ejection_time(&config, 3), Duration::from_secs(25));
        assert_eq!(ejection_time(&config, 40), Duration::from_secs(25));
    }

    /// Three failures in a row eject for 10 s; a success in between
    /// starts the count again; the second ejection lasts 20 s.
    #[tokio::test(start_paused = true)]
    async fn failures_in_a_row_eject_for_a_growing_time() {
        let outliers = Outliers::new(Some(config()), 2);
        outliers.record(0, Outcome::ServerError, "a");
        outliers.record(0, Outcome::Reset, "a");
        outliers.record(0, Outcome::Success, "a");
        outliers.record(0, Outcome::Timeout, "a");
        assert_eq!(outliers.record(0, Outcome::ConnectFailure, "a"), None);
        assert_eq!(outliers.ejected(), vec![false, false]);
        let first = outliers.record(0, Outcome::ServerError, "a");
        assert_eq!(first, Some(Duration::from_secs(10)));
        assert_eq!(outliers.ejected(), vec![true, false]);
        // Failures of streams opened before the ejection change nothing.
        assert_eq!(outliers.record(0, Outcome::ServerError, "a"), None);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(outliers.ejected(), vec![false, false]);
        for _ in 0..2 {
            outliers.record(0, Outcome::ServerError, "a");
        }
        let second = outliers.record(0, Outcome::ServerError, "a");
        assert_eq!(second, Some(Duration::from_secs(20)));
        tokio::time::advance(Duration::from_secs(19)).await;
        assert_eq!(outliers.ejected(), vec![true, false]);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(outliers.ejected(), vec![false, false]);
        // Long after, the count starts again at the base time.
        tokio::time::advance(Duration::from_secs(25)).await;
        for _ in 0..2 {
            outliers.record(0, Outcome::ServerError, "a");
        }
        let third = outliers.record(0, Outcome::ServerError, "a");
        assert_eq!(third, Some(Duration::from_secs(10)));
    }

    /// With both endpoints failing, only the share (one of two) is out.
    #[tokio::test(start_paused = true)]
    async fn only_the_share_is_ejected() {
        let outliers = Outliers::new(Some(config()), 2);
        for _ in 0..3 {
            outliers.record(0, Outcome::ServerError, "a");
            outliers.record(1, Outcome::ServerError, "b");
        }
        assert_eq!(outliers.ejected(), vec![true, false]);
        assert_eq!(outliers.record(1, Outcome::ServerError, "b"), None);
        tokio::time::advance(Duration::from_secs(10)).await;
        // The first one is back; the next failure of the second ejects it.
        let ejected = outliers.record(1, Outcome::ServerError, "b");
        assert_eq!(ejected, Some(Duration::from_secs(10)));
        assert_eq!(outliers.ejected(), vec![false, true]);
    }

    #[test]
    fn off_never_ejects() {
        let outliers = Outliers::new(None, 2);
        for _ in 0..100 {
            assert_eq!(outliers.record(0, Outcome::ServerError, "a"), None);
        }
        assert!(outliers.ejected().is_empty());
    }
}
