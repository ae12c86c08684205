//! Waiting for a condition that something else makes true (a counter the
//! proxies bump, a log line, a port that accepts): the condition is probed
//! every [`PROBE_INTERVAL`] until it holds or a bound passes. A test waits
//! on the condition itself, never on a fixed sleep that hopes it holds by
//! then.
//!
//! Called by the tests, by [`crate::process`] and by the benchmark.

use std::time::Duration;

use tokio::time::Instant;

/// Pause between two probes.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(10);

/// Waits until `probe` holds, for at most `bound`; whether it held. The
/// probe runs once more at the bound, so a slow machine that overslept the
/// last pause still sees a condition that became true meanwhile.
pub async fn eventually(bound: Duration, mut probe: impl FnMut() -> bool) -> bool {
    eventually_some(bound, || probe().then_some(()))
        .await
        .is_some()
}

/// Waits until `probe` returns a value, for at most `bound`: that value, or
/// `None` once the bound passed.
pub async fn eventually_some<T>(
    bound: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Option<T> {
    eventually_async(bound, || std::future::ready(probe())).await
}

/// [`eventually_some`] with a probe that awaits (a request, a connect).
/// Each probe runs to its end: bound it if it can hang.
pub async fn eventually_async<T, F>(bound: Duration, mut probe: impl FnMut() -> F) -> Option<T>
where
    F: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + bound;
    loop {
        if let Some(value) = probe().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_condition_that_becomes_true_is_seen() {
        let mut probes = 0;
        let held = eventually(Duration::from_secs(5), || {
            probes += 1;
            probes == 3
        })
        .await;
        assert!(held);
        assert_eq!(probes, 3);
    }

    #[tokio::test]
    async fn a_condition_that_never_holds_fails_after_the_bound() {
        let started = Instant::now();
        let held = eventually(Duration::from_millis(50), || false).await;
        assert!(!held);
        assert!(started.elapsed() >= Duration::from_millis(50));
    }

    #[tokio::test]
    async fn an_async_probe_returns_its_value() {
        let mut n = 0;
        let found = eventually_async(Duration::from_secs(5), || {
            n += 1;
            let now = n;
            async move { (now == 2).then_some(now * 10) }
        })
        .await;
        assert_eq!(found, Some(20));
    }
}
