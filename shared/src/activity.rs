//! When a tunnel last moved a byte: [`Activity`], stamped by both
//! directions of a relay and read by its idle timer. Used by
//! [`crate::relay`] and by the sidecar's stream-to-stream relay.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// When a tunnel last moved a byte, stamped by both directions (which run
/// in one task; atomic only because the task may move between threads).
#[derive(Debug)]
pub struct Activity {
    started: Instant,
    /// Milliseconds from `started` to the last byte moved.
    last_ms: AtomicU64,
}

impl Activity {
    /// Starts now, as if a byte had just moved.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    /// A byte moved now.
    pub fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// When a byte last moved (to the millisecond).
    pub fn last(&self) -> Instant {
        self.started + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}
