//! gRPC unary load from h2load (Debian `nghttp2-client`): h2c with prior
//! knowledge to an `http://` address, each call a `POST` of one
//! length-prefixed message with `content-type: application/grpc` and `te:
//! trailers`. Called by the bench binary's gRPC row and by `drive`.
//!
//! Input: where to connect, for how long, and a scratch directory for the
//! request body file. Output: a [`GrpcLoad`] read from h2load's summary.
//! h2load counts HTTP status codes, not `grpc-status`:
//! [`super::grpc::check_call`] checks the trailers of a call through the
//! same system first.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};
use h2hop_integration::process::{Output, Process, find_program};

use super::rate;
use crate::grpc_frame::{self, CALL_PATH, CONTENT_TYPE, PAYLOAD};

/// Client connections h2load opens.
pub const CONNECTIONS: usize = 8;
/// Calls each connection keeps in flight (HTTP/2 streams at once).
pub const STREAMS_PER_CONNECTION: usize = 4;
/// Slack past the load's duration before h2load counts as stuck.
const EXIT_SLACK: Duration = Duration::from_secs(15);

/// What h2load reported for one run.
#[derive(Debug, Clone, PartialEq)]
pub struct GrpcLoad {
    /// Calls answered with a 2xx status.
    pub calls: u64,
    /// Calls that failed, errored, timed out or got another status.
    pub failures: u64,
    /// The measured period, as h2load reports it.
    pub seconds: f64,
}

impl GrpcLoad {
    /// Calls answered with a 2xx status per second.
    pub fn per_s(&self) -> f64 {
        rate(self.calls as f64, self.seconds)
    }
}

/// Runs h2load against `addr` for `duration` with [`CONNECTIONS`] ×
/// [`STREAMS_PER_CONNECTION`] calls in flight, one h2load thread, and
/// returns its summary. The request body file goes to `scratch`.
pub async fn grpc_load(
    addr: SocketAddr,
    duration: Duration,
    scratch: &Path,
) -> anyhow::Result<GrpcLoad> {
    let program = find_program("h2load").context("h2load is not installed (nghttp2-client)")?;
    let body = scratch.join("grpc-call.bin");
    let message = grpc_frame::frame(PAYLOAD).context("payload too long")?;
    std::fs::write(&body, &message).with_context(|| format!("writing {}", body.display()))?;
    let mut command = Command::new(program);
    command.args(h2load_args(addr, duration, &body));
    let mut h2load = Process::spawn("h2load", &mut command, Output::Lines)?;
    let status = h2load.wait(duration + EXIT_SLACK).await?;
    let lines = h2load.lines();
    if !status.success() {
        bail!("h2load exited with {status}:\n{}", lines.join("\n"));
    }
    parse_summary(&lines).with_context(|| format!("h2load said:\n{}", lines.join("\n")))
}

/// h2load's arguments: timing-based for `duration` (in whole
/// milliseconds, at least one), the body from `body`, the gRPC fields, and
/// the URI of [`CALL_PATH`] on `addr`.
pub fn h2load_args(addr: SocketAddr, duration: Duration, body: &Path) -> Vec<String> {
    let millis = duration.as_millis().max(1);
    vec![
        format!("--duration={millis}ms"),
        format!("--clients={CONNECTIONS}"),
        format!("--max-concurrent-streams={STREAMS_PER_CONNECTION}"),
        "--threads=1".into(),
        format!("--data={}", body.display()),
        format!("--header=content-type: {CONTENT_TYPE}"),
        "--header=te: trailers".into(),
        format!("http://{addr}{CALL_PATH}"),
    ]
}

/// The summary of h2load's output: from `finished in T, ...` the seconds,
/// from `status codes: N 2xx, ...` the calls, and from `requests: ...` the
/// calls that did not succeed (failed, errored, timed out) plus those that
/// succeeded without a 2xx status.
pub fn parse_summary(lines: &[String]) -> anyhow::Result<GrpcLoad> {
    let line = |prefix: &str| {
        lines
            .iter()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .with_context(|| format!("no line starting {prefix:?}"))
    };
    let finished = line("finished in ")?;
    let elapsed = finished.split(',').next().unwrap_or_default().trim();
    let seconds = parse_duration(elapsed)?;
    let requests = line("requests:")?;
    let statuses = line("status codes:")?;
    let calls = count_of(statuses, "2xx")?;
    let succeeded = count_of(requests, "succeeded")?;
    let mut failures = succeeded.saturating_sub(calls);
    for word in ["failed", "errored", "timeout"] {
        failures += count_of(requests, word)?;
    }
    Ok(GrpcLoad {
        calls,
        failures,
        seconds,
    })
}

/// In `a comma-separated list of "N word" items`, the N before `word`.
fn count_of(items: &str, word: &str) -> anyhow::Result<u64> {
    items
        .split(',')
        .find_map(|item| item.trim().strip_suffix(word)?.trim().parse().ok())
        .with_context(|| format!("no count of {word:?} in {items:?}"))
}

/// An h2load duration: `1.00s`, `500.12ms` or `250us`.
fn parse_duration(text: &str) -> anyhow::Result<f64> {
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 1e-3)
    } else if let Some(us) = text.strip_suffix("us") {
        (us, 1e-6)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else {
        bail!("{text:?} has no unit");
    };
    let number: f64 = number
        .parse()
        .with_context(|| format!("{text:?} is not a duration"))?;
    Ok(number * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The summary h2load 1.52 prints for a timing-based run.
    const SUMMARY: &str = "\
finished in 1.00s, 10234.00 req/s, 700.12KB/s
requests: 10234 total, 10266 started, 10234 done, 10230 succeeded, 3 failed, 1 errored, 0 timeout
status codes: 10228 2xx, 0 3xx, 0 4xx, 2 5xx
traffic: 700.12KB (716923) total, 100.00KB (102400) headers (space savings 90.00%), 500.00KB (512000) data";

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn summary_counts_2xx_as_calls_and_the_rest_as_failures() {
        let load = parse_summary(&lines(SUMMARY)).unwrap();
        assert_eq!(load.calls, 10228);
        // 2 succeeded with a 5xx, 3 failed, 1 errored.
        assert_eq!(load.failures, 6);
        assert_eq!(load.seconds, 1.0);
        assert_eq!(load.per_s(), 10228.0);
    }

    #[test]
    fn summary_without_status_codes_is_an_error() {
        let text = SUMMARY.replace("status codes:", "codes:");
        let err = parse_summary(&lines(&text)).unwrap_err();
        assert!(format!("{err:#}").contains("status codes"), "{err:#}");
    }

    #[test]
    fn durations_in_each_unit() {
        assert_eq!(parse_duration("2.50s").unwrap(), 2.5);
        assert_eq!(parse_duration("500ms").unwrap(), 0.5);
        assert!((parse_duration("250.5us").unwrap() - 250.5e-6).abs() < 1e-12);
        assert!(parse_duration("3").is_err());
        assert!(parse_duration("fast s").is_err());
    }

    #[test]
    fn arguments_post_the_body_with_grpc_fields_over_h2c() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let args = h2load_args(addr, Duration::from_millis(1500), Path::new("/tmp/b"));
        assert!(args.contains(&"--duration=1500ms".to_owned()), "{args:?}");
        assert!(args.contains(&"--data=/tmp/b".to_owned()), "{args:?}");
        assert!(args.contains(&"--header=content-type: application/grpc".to_owned()));
        assert!(args.contains(&"--header=te: trailers".to_owned()));
        assert_eq!(
            args.last().unwrap(),
            "http://127.0.0.1:8080/h2hop.bench.Echo/Call"
        );
    }
}
