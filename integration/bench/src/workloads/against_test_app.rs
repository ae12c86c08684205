//! The workloads against an in-process [`TestApp`] on
//! 127.0.0.1:0, with short durations: each runs, checks its echoes and
//! reports sane figures. No timed assertions: the benchmark itself is a
//! separate command.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::tunnels::BIG_LEN;
use super::*;
use h2hop_integration::app::TestApp;

/// How long each workload runs here: enough to move data, far from a
/// benchmark.
const SHORT: Duration = Duration::from_millis(300);
/// Per-test limit.
const TEST_LIMIT: Duration = Duration::from_secs(5);

/// An in-process app on 127.0.0.1:0; dropping the guard stops it.
async fn start_app() -> (SocketAddr, DropGuard) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = CancellationToken::new();
    let app = TestApp::spawn(listener, shutdown.clone()).unwrap();
    (app.addr, shutdown.drop_guard())
}

/// Runs a test body under [`TEST_LIMIT`].
async fn within<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(TEST_LIMIT, test)
        .await
        .expect("test timed out")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_moves_whole_echoes_and_closes() {
    within(async {
        let (addr, _app) = start_app().await;
        let moved = throughput(addr, SHORT).await.unwrap();
        assert!(moved.bytes_each_way > 0);
        assert_eq!(moved.bytes_each_way % BIG_LEN as u64, 0);
        assert!(moved.seconds >= SHORT.as_secs_f64());
        assert!(moved.mb_per_s() > 0.0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_percentiles_are_ordered() {
    within(async {
        let (addr, _app) = start_app().await;
        let measured = latency(addr, 4, SHORT).await.unwrap();
        assert!(measured.round_trips > 0);
        assert!(measured.p50_us <= measured.p99_us, "{measured:?}");
        assert!(measured.p99_us <= measured.p999_us, "{measured:?}");
        assert!(measured.round_trips_per_s() > 0.0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_set_of_fifty_all_echo() {
    within(async {
        let (addr, _app) = start_app().await;
        let mut idle = IdleSet::open(addr, 50).await.unwrap();
        assert_eq!(idle.len(), 50);
        assert_eq!(idle.echo_all().await.unwrap(), 50);
        idle.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_set_says_how_many_opened_when_nothing_listens() {
    within(async {
        // Bound, then dropped: connections there are refused.
        let addr = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let err = IdleSet::open(addr, 3).await.err().unwrap();
        assert!(format!("{err:#}").contains("opened 0 of 3"), "{err:#}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_complete_without_failures() {
    within(async {
        let (addr, _app) = start_app().await;
        let cycles = handshakes(addr, 4, SHORT, Closing::UntilEof).await.unwrap();
        assert!(cycles.completed > 0);
        assert_eq!(cycles.failures, 0);
        assert!(cycles.per_s() > 0.0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_count_failures_when_nothing_listens() {
    within(async {
        let addr = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        for closing in [Closing::UntilEof, Closing::OnCloseFrame] {
            let cycles = handshakes(addr, 2, Duration::from_millis(50), closing)
                .await
                .unwrap();
            assert_eq!(cycles.completed, 0);
            assert!(cycles.failures > 0);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_closing_on_the_close_frame_complete_without_failures() {
    within(async {
        let (addr, _app) = start_app().await;
        let cycles = handshakes(addr, 4, SHORT, Closing::OnCloseFrame)
            .await
            .unwrap();
        assert!(cycles.completed > 0);
        assert_eq!(cycles.failures, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_requests_succeed_with_ordered_percentiles() {
    within(async {
        let (addr, _app) = start_app().await;
        let served = plain(addr, 2, SHORT).await.unwrap();
        assert!(served.requests > 0);
        assert_eq!(served.failures, 0);
        assert!(served.p50_us <= served.p99_us, "{served:?}");
        assert!(served.per_s() > 0.0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_counts_failures_and_reports_nan_when_nothing_listens() {
    within(async {
        let addr = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let served = plain(addr, 1, Duration::from_millis(50)).await.unwrap();
        assert_eq!(served.requests, 0);
        assert!(served.failures > 0);
        assert!(served.p99_us.is_nan());
    })
    .await;
}
