//! Counted limits (connections, tunnels, dials): a place is taken before
//! the work starts and given back when its [`Permit`] drops. Past the limit
//! the caller refuses at once (503, or REFUSED_STREAM) and logs it; nothing
//! waits in a queue.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A place under a [`Limit`], given back on drop.
pub type Permit = OwnedSemaphorePermit;

/// At most `max` at once of something.
#[derive(Debug, Clone)]
pub struct Limit {
    what: &'static str,
    max: usize,
    places: Arc<Semaphore>,
}

impl Limit {
    /// A limit of `max` (at least 1) places; `what` names them in logs.
    pub fn new(what: &'static str, max: usize) -> Self {
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            what,
            max,
            places: Arc::new(Semaphore::new(max)),
        }
    }

    /// A place, or `None` when all are taken.
    pub fn try_take(&self) -> Option<Permit> {
        self.places.clone().try_acquire_owned().ok()
    }

    /// Places taken now.
    pub fn in_use(&self) -> usize {
        self.max - self.places.available_permits()
    }

    /// The configured maximum.
    pub fn max(&self) -> usize {
        self.max
    }

    /// What is counted, for logs and error messages.
    pub fn what(&self) -> &'static str {
        self.what
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_refused_past_the_limit_and_come_back_on_drop() {
        let limit = Limit::new("tunnels", 2);
        let first = limit.try_take().unwrap();
        let _second = limit.try_take().unwrap();
        assert!(limit.try_take().is_none());
        assert_eq!(limit.in_use(), 2);
        drop(first);
        assert_eq!(limit.in_use(), 1);
        assert!(limit.try_take().is_some());
    }

    #[test]
    fn zero_means_one() {
        assert_eq!(Limit::new("x", 0).max(), 1);
    }
}
