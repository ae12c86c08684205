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
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{Notify, futures::OwnedNotified};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
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
    force: Force,
    tracker: TaskTracker,
}

/// The signal that the drain period ran out. A `Notify` and a flag, not a
/// `CancellationToken`: each clone of a token and each drop of one takes
/// the token's mutex, which every task shares, and every task takes one
/// (callgrind, sidecar plain GET: about 0.35k instructions per stream
/// less, 1.67k → 1.33k for its spawn, registration and drop).
#[derive(Clone, Debug, Default)]
struct Force {
    /// Wakes every task waiting when the period runs out.
    notify: Arc<Notify>,
    /// Set just before `notify` wakes them, read by later polls.
    forced: Arc<AtomicBool>,
}

impl Force {
    fn fire(&self) {
        self.forced.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }
}

pin_project_lite::pin_project! {
    /// `work` until it ends or the drain period runs out. A struct, not an
    /// `async` block around `select!`: such a block keeps both the captured
    /// future and the one it polls, which doubled the size of every task
    /// (a tunnel's among them, for as long as it lives).
    ///
    /// The force notification is polled once, to register the task's
    /// waker: every later poll of a waiting `Notified` takes the `Notify`'s
    /// mutex, which all tasks share, and this runs on every wake-up of
    /// every relay. The waker of a spawned task's own future never changes,
    /// so the one registration stands, and later polls only read the flag.
    /// The `Notified` is made at spawn, so a firing between then and the
    /// first poll still reaches it (`Notify::notify_waiters`).
    struct UntilForced<F> {
        #[pin]
        work: F,
        #[pin]
        notified: OwnedNotified,
        forced: Arc<AtomicBool>,
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
            return if this.forced.load(Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            };
        }
        *this.registered = true;
        if this.notified.poll(cx).is_ready() || this.forced.load(Ordering::Acquire) {
            // Fired before this task's `Notified` was made, or since.
            return Poll::Ready(());
        }
        Poll::Pending
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
            force: Force::default(),
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
            notified: self.force.notify.clone().notified_owned(),
            forced: self.force.forced.clone(),
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
        self.force.fire();
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

    /// Work spawned after the period ran out (a connection taking one
    /// more stream) is cut at its first wait.
    #[tokio::test(start_paused = true)]
    async fn work_spawned_after_the_cut_is_cancelled() {
        let drain = Drain::new(CancellationToken::new());
        assert_eq!(drain.finish(Duration::from_secs(1)).await, Drained::Clean);
        drain.force.fire();
        let late = drain.spawn(std::future::pending());
        let ended = tokio::time::timeout(Duration::from_secs(1), late).await;
        assert!(ended.is_ok_and(|joined| joined.is_ok()));
    }

    /// A task woken many times before the period runs out (a busy relay)
    /// is still cut: later polls read the force flag instead of
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
