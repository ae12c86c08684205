//! Graceful shutdown: stop taking work, let what runs finish within a drain
//! period, then stop the rest.
//!
//! The binaries' listeners spawn every connection, stream and tunnel
//! through [`Drain::spawn`]. When the shutdown token fires, listeners stop
//! accepting and connections stop taking requests (HTTP/1.1 keep-alive
//! ends, HTTP/2 sends GOAWAY); [`Drain::finish`] then waits for the tracked
//! work for the drain period and cancels whatever is still running. A
//! cancelled tunnel closes its TCP side (FIN) and resets its stream.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// Bound on the wait for cancelled work to stop once the drain period ran
/// out: dropping a task's future is immediate, this only covers the
/// scheduler getting to it.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// The shutdown state every listener shares; cheap to clone.
#[derive(Clone, Debug)]
pub struct Drain {
    begin: CancellationToken,
    force: CancellationToken,
    tracker: TaskTracker,
}

pin_project_lite::pin_project! {
    /// `work` until it ends or the drain period runs out. A struct, not an
    /// `async` block around `select!`: such a block keeps both the captured
    /// future and the one it polls, which doubled the size of every task
    /// (a tunnel's among them, for as long as it lives).
    ///
    /// The force token is polled once, to register the task's waker: every
    /// later poll of a waiting `Notified` takes the token's mutex, which all
    /// tasks share, and this runs on every wake-up of every relay. The
    /// waker of a spawned task's own future never changes, so the one
    /// registration stands, and later polls only read the token's flag.
    struct UntilForced<F> {
        #[pin]
        work: F,
        #[pin]
        force: WaitForCancellationFutureOwned,
        token: CancellationToken,
        registered: bool,
    }
}

impl<F: Future<Output = ()>> Future for UntilForced<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        if this.work.poll(cx).is_ready() {
            return Poll::Ready(());
        }
        if *this.registered {
            return if this.token.is_cancelled() {
                Poll::Ready(())
            } else {
                Poll::Pending
            };
        }
        *this.registered = true;
        this.force.poll(cx)
    }
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Everything finished within the drain period.
    Clean,
    /// This many tasks were still running when the period ran out, and
    /// were cancelled.
    Cut(usize),
}

impl Drain {
    /// A drain that begins when `shutdown` is cancelled.
    pub fn new(shutdown: CancellationToken) -> Self {
        Self {
            begin: shutdown,
            force: CancellationToken::new(),
            tracker: TaskTracker::new(),
        }
    }

    /// Cancelled when shutdown begins: stop accepting, stop taking requests.
    pub fn begun(&self) -> &CancellationToken {
        &self.begin
    }

    /// Runs `work` as a task that counts for the drain and is dropped when
    /// the drain period runs out.
    pub fn spawn<F>(&self, work: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(UntilForced {
            work,
            force: self.force.clone().cancelled_owned(),
            token: self.force.clone(),
            registered: false,
        })
    }

    /// Tasks still running.
    pub fn running(&self) -> usize {
        self.tracker.len()
    }

    /// Call once shutdown has begun and nothing new will be spawned: waits
    /// for the running tasks up to `period`, then cancels the rest and
    /// waits (briefly) for them to stop. Logs the start and the outcome.
    pub async fn finish(&self, period: Duration) -> Drained {
        info!(running = self.running(), "stopped accepting; draining");
        let drained = self.wait_or_cut(period).await;
        match drained {
            Drained::Clean => info!("drained"),
            Drained::Cut(tasks) => {
                warn!(tasks, after = ?period, "drain timeout: closed what was still open");
            }
        }
        drained
    }

    async fn wait_or_cut(&self, period: Duration) -> Drained {
        self.tracker.close();
        if tokio::time::timeout(period, self.tracker.wait())
            .await
            .is_ok()
        {
            return Drained::Clean;
        }
        let cut = self.tracker.len();
        self.force.cancel();
        let _ = tokio::time::timeout(STOP_GRACE, self.tracker.wait()).await;
        Drained::Cut(cut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn work_that_ends_within_the_period_drains_cleanly() {
        let drain = Drain::new(CancellationToken::new());
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = done.clone();
        drain.spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        assert_eq!(drain.finish(Duration::from_secs(5)).await, Drained::Clean);
        assert!(done.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn work_past_the_period_is_cancelled() {
        let drain = Drain::new(CancellationToken::new());
        let (dropped_tx, dropped_rx) = tokio::sync::oneshot::channel::<()>();
        drain.spawn(async move {
            // Dropping the task drops the sender, which the test sees.
            let _dropped = dropped_tx;
            std::future::pending::<()>().await;
        });
        drain.spawn(async {});
        let started = tokio::time::Instant::now();
        assert_eq!(drain.finish(Duration::from_secs(3)).await, Drained::Cut(1));
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        assert!(dropped_rx.await.is_err(), "the cut task was dropped");
        assert_eq!(drain.running(), 0);
    }

    /// A task woken many times before the period runs out (a busy relay)
    /// is still cut: later polls read the force token's flag instead of
    /// polling it again.
    #[tokio::test(start_paused = true)]
    async fn busy_work_past_the_period_is_cancelled() {
        let drain = Drain::new(CancellationToken::new());
        let (dropped_tx, dropped_rx) = tokio::sync::oneshot::channel::<()>();
        let polls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = polls.clone();
        drain.spawn(async move {
            let _dropped = dropped_tx;
            loop {
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        assert_eq!(drain.finish(Duration::from_secs(2)).await, Drained::Cut(1));
        let dropped = tokio::time::timeout(Duration::from_secs(5), dropped_rx).await;
        assert!(
            dropped.is_ok_and(|sent| sent.is_err()),
            "the cut task was dropped"
        );
        assert!(polls.load(std::sync::atomic::Ordering::Relaxed) >= 10);
        assert_eq!(drain.running(), 0);
    }
}
