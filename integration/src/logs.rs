//! Log capture for tests: the events of this thread, kept in memory.
//!
//! Tests run the pair in-process on tokio's current-thread runtime, so a
//! subscriber set as this thread's default sees the front's and the
//! sidecar's events as well as the test's own.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use tracing::subscriber::DefaultGuard;
use tracing_subscriber::fmt::MakeWriter;

use crate::harness;
use crate::wait::eventually_some;

/// Sets, once per process, a global subscriber that takes every event and
/// writes none. `tracing` caches whether a call site is enabled when it is
/// first hit, from the subscribers alive then: a test thread without a
/// capture could otherwise hit a `warn!` first and leave it disabled for a
/// capturing test running beside it (seen: a missing `request failed` line
/// in 3 runs of 4). With this one always interested, no call site is
/// cached as disabled.
fn keep_callsites_enabled() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
    });
}

/// Log output of this thread, appended in memory.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Captures every event at DEBUG and above on this thread, as text
    /// lines, until the guard drops.
    pub fn install() -> (Captured, DefaultGuard) {
        keep_callsites_enabled();
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        (
            captured.clone(),
            tracing::subscriber::set_default(subscriber),
        )
    }

    /// As [`Captured::install`], one JSON object per line (`--log-format json`).
    pub fn install_json() -> (Captured, DefaultGuard) {
        keep_callsites_enabled();
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(captured.clone())
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        (
            captured.clone(),
            tracing::subscriber::set_default(subscriber),
        )
    }

    /// Everything captured so far.
    pub fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The captured lines that contain every one of `needles`.
    pub fn lines_with(&self, needles: &[&str]) -> Vec<String> {
        self.text()
            .lines()
            .filter(|line| needles.iter().all(|needle| line.contains(needle)))
            .map(str::to_owned)
            .collect()
    }

    /// Waits until a line contains every one of `needles` (the proxies log
    /// from their own tasks, in no fixed order relative to what the client
    /// saw) and returns it. Fails, showing the logs, after half of
    /// [`harness::TEST_LIMIT`].
    pub async fn wait_for(&self, needles: &[&str]) -> String {
        let found = eventually_some(harness::TEST_LIMIT / 2, || {
            self.lines_with(needles).into_iter().next()
        });
        let found = found.await;
        assert!(
            found.is_some(),
            "no log line with {needles:?} in:\n{}",
            self.text()
        );
        found.unwrap_or_default()
    }
}

impl Captured {
    /// Waits for the proxies' log line of the request id that an error
    /// answer's `body` names, holding every one of `needles` too (the
    /// cause the body leaves out), and returns it. Fails when `body` names
    /// no id.
    pub async fn wait_for_request(&self, body: &str, needles: &[&str]) -> String {
        let id = request_id(body);
        assert!(id.is_some(), "no request id in the body {body:?}");
        let field = format!("request_id={}", id.unwrap_or_default());
        let mut all = vec![field.as_str()];
        all.extend_from_slice(needles);
        self.wait_for(&all).await
    }
}

/// The request id an error answer's body names: `… (request id ID)`.
pub fn request_id(body: &str) -> Option<&str> {
    let (_, after) = body.rsplit_once("(request id ")?;
    let (id, _) = after.split_once(')')?;
    Some(id)
}

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
