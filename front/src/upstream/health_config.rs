//! The settings of an active health check ([`HealthCheck`]), validated from
//! a config file's `health_check` table ([`RawHealthCheck`]) or from the
//! `--health-check-*` flags. [`crate::upstream::health`] runs the checks.
//!
//! A check is a `GET` of `path` sent as an ordinary stream to the sidecar,
//! which passes it to the app: the app's own health counts. The first check
//! of each endpoint waits a little random part of `interval`; then each
//! check starts `interval` after the previous one ended. A 2xx answer
//! within `timeout` passes; another status, an error, or no answer fails.
//! An endpoint starts healthy; `unhealthy_threshold` failures in a row take
//! it out, and `healthy_threshold` passes in a row bring it back.

use std::time::Duration;

use http::uri::{Authority, PathAndQuery};
use serde::Deserialize;

use crate::defaults;

/// The settings of one cluster's active health checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// The path (and query) to `GET`; starts with `/`.
    pub path: PathAndQuery,
    /// The `:authority` of the check; `None`: the endpoint's address.
    pub authority: Option<Authority>,
    /// The pause between the end of one check and the start of the next.
    pub interval: Duration,
    /// Bound on one check: opening the stream (dialling, if the endpoint
    /// has no connection), the response head, and its body (of which
    /// 64 KiB at most are read).
    pub timeout: Duration,
    /// Passes in a row that bring an unhealthy endpoint back.
    pub healthy_threshold: u32,
    /// Failures in a row that take a healthy endpoint out.
    pub unhealthy_threshold: u32,
}

/// Why health check settings cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HealthCheckError {
    /// The path is not an absolute path.
    #[error("health check path {0:?} must start with '/' and be a valid path")]
    Path(String),
    /// The authority is not `host` or `host:port`.
    #[error("health check authority {0:?} is not a valid host or host:port")]
    Authority(String),
    /// A duration is not one (`5s`, `250ms`, ...).
    #[error("health check {key} {value:?} is not a duration (such as 5s or 250ms)")]
    Duration {
        /// The key or flag.
        key: &'static str,
        /// The value as written.
        value: String,
    },
    /// A duration is zero.
    #[error("health check {0} must be more than 0")]
    ZeroDuration(&'static str),
    /// A threshold is zero.
    #[error("health check {0} must be at least 1")]
    ZeroThreshold(&'static str),
}

impl HealthCheck {
    /// Checks of `path` with the default interval, timeout and thresholds.
    pub fn new(path: &str) -> Result<Self, HealthCheckError> {
        let path = path
            .starts_with('/')
            .then(|| path.parse::<PathAndQuery>().ok())
            .flatten()
            .ok_or_else(|| HealthCheckError::Path(path.to_owned()))?;
        Ok(Self {
            path,
            authority: None,
            interval: defaults::HEALTH_CHECK_INTERVAL,
            timeout: defaults::HEALTH_CHECK_TIMEOUT,
            healthy_threshold: defaults::HEALTH_CHECK_HEALTHY_THRESHOLD,
            unhealthy_threshold: defaults::HEALTH_CHECK_UNHEALTHY_THRESHOLD,
        })
    }

    /// Sets the `:authority`, which must be `host` or `host:port`.
    pub fn with_authority(mut self, authority: &str) -> Result<Self, HealthCheckError> {
        let parsed = authority
            .parse::<Authority>()
            .ok()
            .filter(|parsed| !parsed.host().is_empty() && !authority.contains('@'))
            .ok_or_else(|| HealthCheckError::Authority(authority.to_owned()))?;
        self.authority = Some(parsed);
        Ok(self)
    }

    /// Refuses zero durations and thresholds; `interval` and `timeout`
    /// name the keys (or flags) in the errors.
    pub fn validate(self, names: &KeyNames) -> Result<Self, HealthCheckError> {
        if self.interval.is_zero() {
            return Err(HealthCheckError::ZeroDuration(names.interval));
        }
        if self.timeout.is_zero() {
            return Err(HealthCheckError::ZeroDuration(names.timeout));
        }
        if self.healthy_threshold == 0 {
            return Err(HealthCheckError::ZeroThreshold(names.healthy_threshold));
        }
        if self.unhealthy_threshold == 0 {
            return Err(HealthCheckError::ZeroThreshold(names.unhealthy_threshold));
        }
        Ok(self)
    }
}

/// What the settings are called where they were written, for errors.
#[derive(Debug, Clone, Copy)]
pub struct KeyNames {
    /// The interval's name.
    pub interval: &'static str,
    /// The timeout's name.
    pub timeout: &'static str,
    /// The healthy threshold's name.
    pub healthy_threshold: &'static str,
    /// The unhealthy threshold's name.
    pub unhealthy_threshold: &'static str,
}

/// The names of a config file's `health_check` keys.
pub const FILE_KEYS: KeyNames = KeyNames {
    interval: "interval",
    timeout: "timeout",
    healthy_threshold: "healthy_threshold",
    unhealthy_threshold: "unhealthy_threshold",
};

/// The names of the `--health-check-*` flags.
pub const FLAG_NAMES: KeyNames = KeyNames {
    interval: "--health-check-interval",
    timeout: "--health-check-timeout",
    healthy_threshold: "--health-check-healthy-threshold",
    unhealthy_threshold: "--health-check-unhealthy-threshold",
};

/// A config file's `health_check` table as written: `path` is required,
/// the rest default as the flags do.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    path: String,
    authority: Option<String>,
    interval: Option<String>,
    timeout: Option<String>,
    healthy_threshold: Option<u32>,
    unhealthy_threshold: Option<u32>,
}

impl RawHealthCheck {
    /// The validated settings.
    pub fn resolve(self) -> Result<HealthCheck, HealthCheckError> {
        let mut check = HealthCheck::new(&self.path)?;
        if let Some(authority) = &self.authority {
            check = check.with_authority(authority)?;
        }
        if let Some(interval) = &self.interval {
            check.interval = duration("interval", interval)?;
        }
        if let Some(timeout) = &self.timeout {
            check.timeout = duration("timeout", timeout)?;
        }
        if let Some(threshold) = self.healthy_threshold {
            check.healthy_threshold = threshold;
        }
        if let Some(threshold) = self.unhealthy_threshold {
            check.unhealthy_threshold = threshold;
        }
        check.validate(&FILE_KEYS)
    }
}

fn duration(key: &'static str, value: &str) -> Result<Duration, HealthCheckError> {
    humantime::parse_duration(value).map_err(|_| HealthCheckError::Duration {
        key,
        value: value.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Result<HealthCheck, HealthCheckError> {
        toml::from_str::<RawHealthCheck>(text).unwrap().resolve()
    }

    /// Every key is read; the ones left out take the flags' defaults.
    #[test]
    fn a_table_sets_every_key_and_defaults_the_rest() {
        let check = raw(
            "path = \"/healthz?full=1\"\ninterval = \"250ms\"\ntimeout = \"2s\"\n\
                         healthy_threshold = 4\nunhealthy_threshold = 5\nauthority = \"app:81\"",
        )
        .unwrap();
        assert_eq!(check.path.as_str(), "/healthz?full=1");
        assert_eq!(check.authority.unwrap().as_str(), "app:81");
        assert_eq!(check.interval, Duration::from_millis(250));
        assert_eq!(check.timeout, Duration::from_secs(2));
        assert_eq!((check.healthy_threshold, check.unhealthy_threshold), (4, 5));
        let plain = raw("path = \"/\"").unwrap();
        assert_eq!(plain.authority, None);
        assert_eq!(plain.interval, defaults::HEALTH_CHECK_INTERVAL);
        assert_eq!(plain.timeout, defaults::HEALTH_CHECK_TIMEOUT);
        assert_eq!(
            plain.unhealthy_threshold,
            defaults::HEALTH_CHECK_UNHEALTHY_THRESHOLD
        );
    }

    /// Bad values are refused, each with what is wrong.
    #[test]
    fn bad_values_are_refused_with_the_key() {
        let cases = [
            (
                "path = \"healthz\"",
                HealthCheckError::Path("healthz".into()),
            ),
            ("path = \"\"", HealthCheckError::Path(String::new())),
            (
                "path = \"/h\"\nauthority = \"a b\"",
                HealthCheckError::Authority("a b".into()),
            ),
            (
                "path = \"/h\"\nauthority = \"user@app\"",
                HealthCheckError::Authority("user@app".into()),
            ),
            (
                "path = \"/h\"\ninterval = \"5\"",
                HealthCheckError::Duration {
                    key: "interval",
                    value: "5".into(),
                },
            ),
            (
                "path = \"/h\"\ntimeout = \"0s\"",
                HealthCheckError::ZeroDuration("timeout"),
            ),
            (
                "path = \"/h\"\ninterval = \"0ms\"",
                HealthCheckError::ZeroDuration("interval"),
            ),
            (
                "path = \"/h\"\nhealthy_threshold = 0",
                HealthCheckError::ZeroThreshold("healthy_threshold"),
            ),
            (
                "path = \"/h\"\nunhealthy_threshold = 0",
                HealthCheckError::ZeroThreshold("unhealthy_threshold"),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(raw(text).unwrap_err(), expected, "{text}");
        }
        let unknown = toml::from_str::<RawHealthCheck>("path = \"/\"\nintervall = \"1s\"");
        assert!(unknown.unwrap_err().to_string().contains("intervall"));
    }
}
