//! What bounds one client connection beyond the request itself: how many
//! connections its address may hold ([`PerAddress`]), how long it may sit
//! with nothing in flight ([`Activity`]), and how many of its HTTP/2
//! streams it may reset before their answer ([`Resets`]). The listener takes a
//! [`PerAddress`] place at accept (for a PROXY protocol balancer, once its
//! header named the client) and runs [`Activity::idle`] beside each
//! connection; each request's access entry holds an [`InFlight`] until its
//! exchange (a response, or a tunnel) ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// At most `max` connections at once from each IP address.
#[derive(Debug, Clone)]
pub struct PerAddress {
    max: usize,
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerAddress {
    /// A limit of `max` (at least 1) connections per address.
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            held: Arc::default(),
        }
    }

    /// A place for a connection from `ip`, or `None` when it holds `max`.
    pub fn try_take(&self, ip: IpAddr) -> Option<AddressPlace> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let count = held.entry(ip).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(AddressPlace {
            ip,
            held: self.held.clone(),
        })
    }

    /// The configured maximum.
    pub fn max(&self) -> usize {
        self.max
    }
}

/// One connection's place under [`PerAddress`], given back on drop; an
/// address with no place left is forgotten, so the map holds only the
/// addresses connected now.
#[derive(Debug)]
pub struct AddressPlace {
    ip: IpAddr,
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for AddressPlace {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = held.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

/// How many requests and tunnels of one connection are in flight, and
/// since when none has been.
///
/// Kept to two atomic operations per exchange and no timer of its own:
/// a `watch` channel with a timeout re-armed on each change cost the front
/// about 7,000 instructions per plain GET (callgrind: 43.7k → 50.9k), for
/// the wake-ups and the timer entry each request made.
#[derive(Debug, Clone)]
pub struct Activity(Arc<ActivityState>);

#[derive(Debug)]
struct ActivityState {
    started: Instant,
    open: AtomicUsize,
    /// Whether any exchange began: the first bound applies until one did.
    began: AtomicBool,
    /// Milliseconds from `started` to when the last exchange ended.
    quiet_since_ms: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Self(Arc::new(ActivityState {
            started: Instant::now(),
            open: AtomicUsize::new(0),
            began: AtomicBool::new(false),
            quiet_since_ms: AtomicU64::new(0),
        }))
    }
}

impl Activity {
    /// One more in flight until the returned guard drops.
    pub fn begin(&self) -> InFlight {
        self.0.open.fetch_add(1, Ordering::Relaxed);
        if !self.0.began.load(Ordering::Relaxed) {
            self.0.began.store(true, Ordering::Relaxed);
        }
        InFlight(self.0.clone())
    }

    /// In flight now.
    pub fn in_flight(&self) -> usize {
        self.0.open.load(Ordering::Relaxed)
    }

    /// Ends once nothing has been in flight for `first` (before any
    /// exchange began) or for `then` (after one did). It wakes only at its
    /// deadlines: while something is in flight it looks again every
    /// quarter of `then`, so it ends within 1.25 × `then` of the last end.
    pub async fn idle(&self, first: Duration, then: Duration) {
        let state = &self.0;
        // The first look comes as early as either bound could end.
        let mut deadline = state.started + first.min(then);
        loop {
            tokio::time::sleep_until(deadline).await;
            let now = Instant::now();
            if state.open.load(Ordering::Relaxed) > 0 {
                deadline = now + then / 4;
                continue;
            }
            let (since, bound) = if state.began.load(Ordering::Relaxed) {
                let ms = state.quiet_since_ms.load(Ordering::Relaxed);
                (state.started + Duration::from_millis(ms), then)
            } else {
                (state.started, first)
            };
            match since.checked_add(bound) {
                Some(end) if end > now => deadline = end,
                // Past it, or past the clock's range (never idle then).
                Some(_) => return,
                None => deadline = now + Duration::from_secs(86_400),
            }
        }
    }
}

/// A request or tunnel in flight on its connection, until dropped.
#[derive(Debug)]
pub struct InFlight(Arc<ActivityState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let state = &self.0;
        if state.open.fetch_sub(1, Ordering::Relaxed) == 1 {
            let ms = u64::try_from(state.started.elapsed().as_millis()).unwrap_or(u64::MAX);
            state.quiet_since_ms.store(ms, Ordering::Relaxed);
        }
    }
}

/// Streams a client reset before the front answered them, out of all it
/// opened on one HTTP/2 connection. Resetting what was accepted gets past
/// h2's rapid-reset limit (which counts streams not yet accepted) while
/// each reset stream still cost a stream to the sidecar and a dial to the
/// app. Like Envoy's premature-reset check, a connection where at least
/// [`PREMATURE_RESETS_MIN`] streams, and half of all, ended that way is
/// flagged as abusive ([`Resets::abusive`]), and the listener closes it.
#[derive(Debug, Clone, Default)]
pub struct Resets(Arc<ResetCounts>);

/// Premature resets a connection may have before the share counts.
pub const PREMATURE_RESETS_MIN: u32 = 200;

#[derive(Debug, Default)]
struct ResetCounts {
    opened: AtomicU32,
    premature: AtomicU32,
    abusive: CancellationToken,
}

impl Resets {
    /// A stream opened; it counts as reset early unless
    /// [`Unanswered::answered`] is called before the guard drops.
    pub fn opened(&self) -> Unanswered {
        self.0.opened.fetch_add(1, Ordering::Relaxed);
        Unanswered(Some(self.0.clone()))
    }

    /// Ends once the connection is flagged as abusive.
    pub async fn abusive(&self) {
        self.0.abusive.cancelled().await;
    }
}

/// A stream not yet answered; dropped so (hyper drops the request's
/// handler when the client resets the stream), it counts as reset early.
#[derive(Debug)]
pub struct Unanswered(Option<Arc<ResetCounts>>);

impl Unanswered {
    /// The answer is out: this stream is no early reset.
    pub fn answered(mut self) {
        self.0 = None;
    }
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        let Some(counts) = self.0.take() else { return };
        let premature = counts.premature.fetch_add(1, Ordering::Relaxed) + 1;
        let opened = counts.opened.load(Ordering::Relaxed);
        if premature >= PREMATURE_RESETS_MIN && premature.saturating_mul(2) >= opened {
            counts.abusive.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_max_places_and_they_come_back() {
        let limit = PerAddress::new(2);
        let one: IpAddr = [192, 0, 2, 1].into();
        let other: IpAddr = [192, 0, 2, 2].into();
        let first = limit.try_take(one).unwrap();
        let _second = limit.try_take(one).unwrap();
        assert!(limit.try_take(one).is_none());
        assert!(
            limit.try_take(other).is_some(),
            "other addresses unaffected"
        );
        drop(first);
        assert!(limit.try_take(one).is_some());
    }

    #[test]
    fn a_released_address_is_forgotten() {
        let limit = PerAddress::new(1);
        let place = limit.try_take([192, 0, 2, 1].into()).unwrap();
        drop(place);
        assert!(limit.held.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn idle_waits_for_nothing_in_flight_then_the_bound() {
        let activity = Activity::default();
        let started = tokio::time::Instant::now();
        let request = activity.begin();
        let watcher = {
            let activity = activity.clone();
            tokio::spawn(async move {
                activity
                    .idle(Duration::from_secs(1), Duration::from_secs(5))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!watcher.is_finished(), "a request in flight is not idle");
        assert_eq!(activity.in_flight(), 1);
        drop(request);
        watcher.await.unwrap();
        // After a request, the later bound counts from its end.
        assert_eq!(started.elapsed(), Duration::from_secs(35));
    }

    /// A long first bound (HTTP/1.1's header timeout, say) does not delay
    /// the idle timeout once a request came and went.
    #[tokio::test(start_paused = true)]
    async fn after_a_request_the_shorter_idle_bound_counts() {
        let activity = Activity::default();
        let started = tokio::time::Instant::now();
        drop(activity.begin());
        activity
            .idle(Duration::from_secs(30), Duration::from_secs(2))
            .await;
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn mostly_reset_streams_flag_the_connection_past_the_minimum() {
        let resets = Resets::default();
        for _ in 0..PREMATURE_RESETS_MIN - 1 {
            drop(resets.opened());
        }
        let flagged = tokio::time::timeout(Duration::from_secs(1), resets.abusive());
        assert!(flagged.await.is_err(), "not below the minimum");
        drop(resets.opened());
        let flagged = tokio::time::timeout(Duration::from_secs(1), resets.abusive());
        assert!(flagged.await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn resets_among_many_answered_streams_are_no_abuse() {
        let resets = Resets::default();
        for round in 0..3 * PREMATURE_RESETS_MIN {
            let stream = resets.opened();
            if round % 3 == 0 {
                drop(stream);
            } else {
                stream.answered();
            }
        }
        let flagged = tokio::time::timeout(Duration::from_secs(1), resets.abusive());
        assert!(flagged.await.is_err(), "a third reset is within the share");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_never_asks_is_idle_after_the_first_bound() {
        let activity = Activity::default();
        let started = tokio::time::Instant::now();
        activity
            .idle(Duration::from_secs(1), Duration::from_secs(5))
            .await;
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }
}
