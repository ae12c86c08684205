//! A config file cluster's `outlier_detection` and `retry` tables →
//! an [`OutlierConfig`] and a [`RetryPolicy`]. Called by
//! [`crate::config_file`] for each cluster.
//!
//! ```toml
//! [[cluster]]
//! name = "api"
//! endpoints = ["10.0.0.5:8443", "10.0.0.6:8443"]
//! # Off unless present; each key has the default shown.
//! outlier_detection = { consecutive_failures = 5, base_ejection_time = "30s", max_ejection_time = "300s", max_ejection_percent = 50 }
//! # Off unless present (or retries = 0).
//! retry = { retries = 1, on = ["connect-failure", "refused-stream", "reset", "503"], per_try_timeout = "2s", budget_percent = 20, min_retries_concurrent = 3, max_body = 65536 }
//! ```
//!
//! Durations are written as `humantime` reads them (`"250ms"`, `"30s"`);
//! `per_try_timeout` has no default (the response timeout bounds each try).

use std::time::Duration;

use serde::Deserialize;

use crate::upstream::retry::RetryOnError;
use crate::upstream::{OutlierConfig, RetryOn, RetryPolicy};

/// `outlier_detection` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOutlier {
    consecutive_failures: Option<u32>,
    base_ejection_time: Option<String>,
    max_ejection_time: Option<String>,
    max_ejection_percent: Option<u8>,
}

/// `retry` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetry {
    retries: Option<u32>,
    on: Option<Vec<String>>,
    per_try_timeout: Option<String>,
    budget_percent: Option<u8>,
    min_retries_concurrent: Option<u32>,
    max_body: Option<u64>,
}

/// Why an `outlier_detection` or `retry` table cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A duration is not understood.
    #[error("{key}: invalid duration {text:?} (write e.g. \"500ms\" or \"30s\")")]
    Duration {
        /// The key.
        key: &'static str,
        /// The value as written.
        text: String,
    },
    /// A number is out of its range.
    #[error("{key} must be {range}")]
    Range {
        /// The key.
        key: &'static str,
        /// The allowed values, in words.
        range: &'static str,
    },
    /// An entry of `retry.on` is not understood.
    #[error("retry.on")]
    RetryOn(#[source] RetryOnError),
}

/// Parses a duration of key `key`.
fn duration(key: &'static str, text: &str) -> Result<Duration, PolicyError> {
    humantime::parse_duration(text).map_err(|_| PolicyError::Duration {
        key,
        text: text.to_owned(),
    })
}

/// Checks `valid`, or names `key` and its `range`.
fn check(valid: bool, key: &'static str, range: &'static str) -> Result<(), PolicyError> {
    if valid {
        Ok(())
    } else {
        Err(PolicyError::Range { key, range })
    }
}

impl RawOutlier {
    /// The validated settings, defaults filled in.
    pub(crate) fn validate(self) -> Result<OutlierConfig, PolicyError> {
        let defaults = OutlierConfig::default();
        let config = OutlierConfig {
            consecutive_failures: self
                .consecutive_failures
                .unwrap_or(defaults.consecutive_failures),
            base_ejection_time: match &self.base_ejection_time {
                Some(text) => duration("outlier_detection.base_ejection_time", text)?,
                None => defaults.base_ejection_time,
            },
            max_ejection_time: match &self.max_ejection_time {
                Some(text) => duration("outlier_detection.max_ejection_time", text)?,
                None => defaults.max_ejection_time,
            },
            max_ejection_percent: self
                .max_ejection_percent
                .unwrap_or(defaults.max_ejection_percent),
        };
        check_outlier(&config)?;
        Ok(config)
    }
}

/// The ranges of an [`OutlierConfig`], from a file or the flags.
pub fn check_outlier(config: &OutlierConfig) -> Result<(), PolicyError> {
    check(
        config.consecutive_failures >= 1,
        "outlier_detection.consecutive_failures",
        "at least 1",
    )?;
    check(
        !config.base_ejection_time.is_zero(),
        "outlier_detection.base_ejection_time",
        "more than 0",
    )?;
    check(
        config.max_ejection_time >= config.base_ejection_time,
        "outlier_detection.max_ejection_time",
        "at least base_ejection_time",
    )?;
    check(
        config.max_ejection_percent <= 100,
        "outlier_detection.max_ejection_percent",
        "from 0 to 100",
    )
}

impl RawRetry {
    /// The validated policy, defaults filled in.
    pub(crate) fn validate(self) -> Result<RetryPolicy, PolicyError> {
        let defaults = RetryPolicy::default();
        let on = match self.on {
            Some(entries) => entries
                .iter()
                .map(|entry| entry.parse::<RetryOn>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(PolicyError::RetryOn)?,
            None => defaults.on,
        };
        let per_try_timeout = match &self.per_try_timeout {
            Some(text) => Some(duration("retry.per_try_timeout", text)?),
            None => None,
        };
        let policy = RetryPolicy {
            // Present without `retries`: one retry.
            retries: self.retries.unwrap_or(1),
            on,
            per_try_timeout,
            budget_percent: self.budget_percent.unwrap_or(defaults.budget_percent),
            min_retries_concurrent: self
                .min_retries_concurrent
                .unwrap_or(defaults.min_retries_concurrent),
            max_body: self.max_body.unwrap_or(defaults.max_body),
        };
        check_retry(&policy)?;
        Ok(policy)
    }
}

/// The ranges of a [`RetryPolicy`], from a file or the flags.
pub fn check_retry(policy: &RetryPolicy) -> Result<(), PolicyError> {
    check(policy.retries <= 10, "retry.retries", "from 0 to 10")?;
    check(
        policy.budget_percent <= 100,
        "retry.budget_percent",
        "from 0 to 100",
    )?;
    check(
        policy.per_try_timeout.is_none_or(|bound| !bound.is_zero()),
        "retry.per_try_timeout",
        "more than 0",
    )?;
    check(
        policy.max_body <= 16 * 1024 * 1024,
        "retry.max_body",
        "at most 16777216 (16 MiB)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outlier(text: &str) -> Result<OutlierConfig, PolicyError> {
        toml::from_str::<RawOutlier>(text).unwrap().validate()
    }

    fn retry(text: &str) -> Result<RetryPolicy, PolicyError> {
        toml::from_str::<RawRetry>(text).unwrap().validate()
    }

    #[test]
    fn an_empty_outlier_table_takes_the_defaults() {
        assert_eq!(outlier("").unwrap(), OutlierConfig::default());
        let set = outlier(
            "consecutive_failures = 2\nbase_ejection_time = \"1s\"\n\
             max_ejection_time = \"4s\"\nmax_ejection_percent = 100",
        )
        .unwrap();
        assert_eq!(set.consecutive_failures, 2);
        assert_eq!(set.base_ejection_time, Duration::from_secs(1));
        assert_eq!(set.max_ejection_time, Duration::from_secs(4));
        assert_eq!(set.max_ejection_percent, 100);
    }

    #[test]
    fn bad_outlier_values_name_their_key() {
        for (text, key) in [
            ("consecutive_failures = 0", "consecutive_failures"),
            ("base_ejection_time = \"soon\"", "base_ejection_time"),
            ("base_ejection_time = \"0s\"", "base_ejection_time"),
            ("max_ejection_time = \"1s\"", "max_ejection_time"),
            ("max_ejection_percent = 101", "max_ejection_percent"),
        ] {
            let err = outlier(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn a_retry_table_turns_retries_on() {
        let policy = retry("").unwrap();
        assert_eq!(policy.retries, 1);
        assert_eq!(policy.on, RetryPolicy::default().on);
        let set = retry(
            "retries = 2\non = [\"reset\", \"502\"]\nper_try_timeout = \"250ms\"\n\
             budget_percent = 50\nmin_retries_concurrent = 0\nmax_body = 10",
        )
        .unwrap();
        assert_eq!(set.retries, 2);
        assert_eq!(
            set.on,
            vec![
                RetryOn::Reset,
                RetryOn::Status(http::StatusCode::BAD_GATEWAY)
            ]
        );
        assert_eq!(set.per_try_timeout, Some(Duration::from_millis(250)));
        assert_eq!(set.budget_percent, 50);
        assert_eq!(set.min_retries_concurrent, 0);
        assert_eq!(set.max_body, 10);
    }

    #[test]
    fn bad_retry_values_name_their_key() {
        for (text, key) in [
            ("retries = 11", "retry.retries"),
            ("on = [\"5xx\"]", "retry.on"),
            ("per_try_timeout = \"0s\"", "per_try_timeout"),
            ("budget_percent = 120", "budget_percent"),
            ("max_body = 99999999", "max_body"),
        ] {
            let err = retry(text).unwrap_err();
            let chain = format!(
                "{err}: {}",
                std::error::Error::source(&err)
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            );
            assert!(chain.contains(key), "{text}: {chain}");
        }
        assert!(toml::from_str::<RawRetry>("attempts = 2").is_err());
    }
}
