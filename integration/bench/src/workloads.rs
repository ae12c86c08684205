//! Load generator of `h2hop-bench`: its six workloads, each run
//! against one [`crate::systems::Target`] address (HTTP/1.1, and WebSocket on `/ws`;
//! for gRPC, HTTP/2 with prior knowledge), loopback only.
//!
//! Input: where to connect and for how long. Output: plain figures
//! ([`Throughput`], [`Latency`], [`IdleSet`], [`Handshakes`], [`Plain`],
//! [`GrpcLoad`])
//! that the bench binary combines with [`h2hop_integration::procstat`] readings and hands
//! to [`super::report`].
//!
//! - `websocket`: the client steps every WebSocket workload shares
//!   (connect, one echo, clean close);
//! - `tunnels`: traffic over tunnels already open ([`throughput`],
//!   [`latency`]);
//! - `connections`: the tunnel's life itself ([`IdleSet`], [`handshakes`]);
//! - `plain`: keep-alive HTTP/1.1 requests ([`plain()`]);
//! - `grpc`: one gRPC unary call over h2c, checked to its trailers
//!   ([`check_call`]);
//! - `h2load`: gRPC unary load from h2load ([`grpc_load`]).
//!
//! Every loop stops at a deadline or after a fixed count, and every network
//! step has [`IO_TIMEOUT`], so a stalled proxy fails the run instead of
//! hanging it. The generator must not be the bottleneck on a 2-core machine:
//! payloads are `Bytes` cloned by reference count, sockets set `TCP_NODELAY`,
//! and latency samples go to capped `Vec<u32>`s of µs, sorted once.

#[cfg(test)]
mod against_test_app;
mod connections;
mod grpc;
mod h2load;
mod plain;
mod tunnels;
mod websocket;

use std::time::Duration;

use anyhow::Context;

pub use connections::{Closing, IdleSet, handshakes};
pub use grpc::check_call;
#[cfg(test)]
pub use grpc::unary_call;
pub use h2load::{GrpcLoad, grpc_load};
pub use plain::plain;
pub use tunnels::{latency, throughput};

/// Time limit of every single network step (connect, handshake, one echo,
/// one request, close), so a stalled peer fails the run instead of hanging it.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Cap on stored latency samples per workload (20 MB of `u32`); counting
/// goes on past it.
const MAX_SAMPLES: usize = 5_000_000;
/// Pause after a failed handshake or request, so that an instant failure
/// (refused connection) does not turn a worker into a busy loop.
const FAILURE_PAUSE: Duration = Duration::from_millis(1);

/// Runs one network step under [`IO_TIMEOUT`].
async fn timed<T>(step: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::time::timeout(IO_TIMEOUT, step)
        .await
        .with_context(|| format!("timed out after {IO_TIMEOUT:?}"))?
}

/// `count` per second, 0 when no time passed.
fn rate(count: f64, seconds: f64) -> f64 {
    if seconds > 0.0 { count / seconds } else { 0.0 }
}

/// Whole microseconds, saturating (a round trip over 71 minutes is moot).
fn micros(elapsed: Duration) -> u32 {
    u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX)
}

/// Nearest-rank percentile of `sorted` samples: the smallest sample with at
/// least `per_mille`/1000 of all samples at or below it, rank
/// ⌈per_mille × n / 1000⌉ (at least 1). Integer arithmetic, so that p99.9
/// of 1000 samples is rank 999, not a float's 1000. `None` when empty.
fn nearest_rank(sorted: &[u32], per_mille: usize) -> Option<u32> {
    let rank = (per_mille * sorted.len()).div_ceil(1000).max(1);
    sorted.get(rank.min(sorted.len()).checked_sub(1)?).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_of_one_to_a_hundred() {
        let samples: Vec<u32> = (1..=100).collect();
        assert_eq!(nearest_rank(&samples, 500), Some(50));
        assert_eq!(nearest_rank(&samples, 990), Some(99));
        assert_eq!(nearest_rank(&samples, 999), Some(100));
        assert_eq!(nearest_rank(&samples, 1000), Some(100));
        assert_eq!(nearest_rank(&samples, 0), Some(1));
    }

    #[test]
    fn nearest_rank_p999_of_a_thousand_is_rank_999() {
        let samples: Vec<u32> = (1..=1000).collect();
        assert_eq!(nearest_rank(&samples, 999), Some(999));
        assert_eq!(nearest_rank(&samples, 990), Some(990));
    }

    #[test]
    fn nearest_rank_of_one_sample_is_that_sample_and_of_none_is_none() {
        assert_eq!(nearest_rank(&[7], 500), Some(7));
        assert_eq!(nearest_rank(&[7], 999), Some(7));
        assert_eq!(nearest_rank(&[], 500), None);
    }

    #[test]
    fn rate_survives_zero_time() {
        assert_eq!(rate(3.0, 2.0), 1.5);
        assert_eq!(rate(5.0, 0.0), 0.0);
    }

    #[test]
    fn micros_saturate() {
        assert_eq!(micros(Duration::from_millis(2)), 2000);
        assert_eq!(micros(Duration::from_secs(1 << 40)), u32::MAX);
    }
}
