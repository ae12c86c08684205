//! A log sink that costs the request path no syscall and no thread wake-up.
//!
//! Log lines are appended to a shared buffer under a short lock; a
//! background thread writes the buffer out [`FLUSH_EVERY`] after its first
//! line, or sooner once it holds [`FLUSH_AT`] bytes. A channel-based writer
//! (one message and one thread wake-up per line) cost about a tenth of the
//! CPU of a tunnel handshake; this one wakes its thread at most about fifty
//! times a second, and never while nothing is logged.
//!
//! Nothing is dropped: past [`CAPACITY`] unwritten bytes a logging thread
//! waits for the writer instead. Dropping the [`FlushGuard`] writes what is
//! left and stops the thread.

use std::io::{self, Write};
use std::mem;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// Longest a line waits before it is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// Buffered bytes that wake the writer early.
pub const FLUSH_AT: usize = 64 * 1024;
/// Buffered bytes past which loggers wait for the writer.
pub const CAPACITY: usize = 4 * 1024 * 1024;

/// The handle loggers write through; cheap to clone.
#[derive(Clone)]
pub struct BatchWriter {
    shared: Arc<Shared>,
}

/// Writes what is left and stops the writer thread when dropped.
pub struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    pending: Mutex<Pending>,
    /// Wakes the writer thread (early flush, shutdown).
    to_writer: Condvar,
    /// Wakes loggers waiting for room.
    to_loggers: Condvar,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    closing: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves only whole lines behind.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl BatchWriter {
    /// Starts the writer thread, writing into `sink`.
    pub fn spawn<W: Write + Send + 'static>(sink: W) -> io::Result<(BatchWriter, FlushGuard)> {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            to_writer: Condvar::new(),
            to_loggers: Condvar::new(),
        });
        let thread = std::thread::Builder::new()
            .name("h2hop-log".into())
            .spawn({
                let shared = shared.clone();
                move || write_until_closed(&shared, sink)
            })?;
        let writer = BatchWriter {
            shared: shared.clone(),
        };
        let guard = FlushGuard {
            shared,
            thread: Some(thread),
        };
        Ok((writer, guard))
    }
}

impl BatchWriter {
    /// Appends `buf` (whole lines) to what the writer thread writes next;
    /// waits only while [`CAPACITY`] bytes are already waiting.
    pub fn append(&self, buf: &[u8]) {
        let mut pending = self.shared.lock();
        while pending.bytes.len() >= CAPACITY && !pending.closing {
            self.shared.to_writer.notify_one();
            pending = self
                .shared
                .to_loggers
                .wait(pending)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let was_empty = pending.bytes.is_empty();
        pending.bytes.extend_from_slice(buf);
        // The first line wakes the writer, which then gathers more for
        // FLUSH_EVERY; a full buffer wakes it early. Other lines wake no one.
        if was_empty || pending.bytes.len() >= FLUSH_AT {
            self.shared.to_writer.notify_one();
        }
    }
}

impl Write for BatchWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchWriter {
    type Writer = BatchWriter;

    fn make_writer(&'a self) -> BatchWriter {
        self.clone()
    }
}

/// The writer thread: sleeps until a line arrives, gathers for up to
/// [`FLUSH_EVERY`], takes the buffer and writes it without holding the
/// lock. An idle process wakes it never. A failing sink (a closed pipe)
/// discards lines rather than stopping the process.
fn write_until_closed<W: Write>(shared: &Shared, mut sink: W) {
    let mut spare = Vec::new();
    loop {
        let closing = {
            let mut pending = shared.lock();
            while pending.bytes.is_empty() && !pending.closing {
                pending = shared
                    .to_writer
                    .wait(pending)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if pending.bytes.len() < FLUSH_AT && !pending.closing {
                pending = shared
                    .to_writer
                    .wait_timeout(pending, FLUSH_EVERY)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            mem::swap(&mut pending.bytes, &mut spare);
            shared.to_loggers.notify_all();
            pending.closing
        };
        if !spare.is_empty() {
            let _ = sink.write_all(&spare).and_then(|()| sink.flush());
            spare.clear();
            // A burst can leave a large buffer behind; give it back.
            spare.shrink_to(FLUSH_AT);
        }
        if closing && shared.lock().bytes.is_empty() {
            return;
        }
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.to_writer.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::captured::Captured;

    #[test]
    fn every_line_is_written_in_order_by_the_time_the_guard_drops() {
        let sink = Captured::default();
        let (mut writer, guard) = BatchWriter::spawn(sink.clone()).unwrap();
        let mut expected = Vec::new();
        for line in 0..10_000 {
            let text = format!("line {line}\n");
            writer.write_all(text.as_bytes()).unwrap();
            expected.extend_from_slice(text.as_bytes());
        }
        drop(guard);
        assert_eq!(sink.bytes(), expected);
    }

    #[test]
    fn lines_are_written_without_a_flush_or_a_drop() {
        let sink = Captured::default();
        let (mut writer, _guard) = BatchWriter::spawn(sink.clone()).unwrap();
        writer.write_all(b"soon\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while sink.bytes().is_empty() {
            assert!(std::time::Instant::now() < deadline, "line never written");
            std::thread::sleep(FLUSH_EVERY);
        }
        assert_eq!(sink.bytes(), b"soon\n");
    }

    #[test]
    fn a_slow_sink_makes_loggers_wait_instead_of_dropping() {
        /// Takes 1 ms per write, so the buffer fills past its capacity.
        struct Slow(Captured);
        impl Write for Slow {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                std::thread::sleep(Duration::from_millis(1));
                self.0.write(buf)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let sink = Captured::default();
        let (writer, guard) = BatchWriter::spawn(Slow(sink.clone())).unwrap();
        let chunk = vec![b'x'; 256 * 1024];
        let loggers: Vec<_> = (0..4)
            .map(|_| {
                let mut writer = writer.clone();
                let chunk = chunk.clone();
                std::thread::spawn(move || {
                    for _ in 0..40 {
                        writer.write_all(&chunk).unwrap();
                    }
                })
            })
            .collect();
        for logger in loggers {
            logger.join().unwrap();
        }
        drop(guard);
        assert_eq!(sink.bytes().len(), 4 * 40 * chunk.len());
    }
}
