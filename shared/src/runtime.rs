//! The threads and tokio runtimes each binary runs on, sized by its
//! `--workers` flag.
//!
//! One event loop per worker thread, as nghttpx, HAProxy and Envoy run:
//! each worker has a current-thread runtime and a listener socket of its
//! own ([`crate::accept::bind_each`], `SO_REUSEPORT`: the kernel spreads
//! the connections), so a connection lives and dies on one thread, with
//! no work stealing and no cross-thread wake-ups. Worker 0 runs on the
//! main thread, beside what the whole process shares (signals, reloads,
//! admin); [`spawn_workers`] starts the others. A work-stealing runtime
//! of two threads had cost, under callgrind, 1.05–1.10× the instructions
//! per request and per WebSocket handshake of one thread, and about 1.3×
//! the CPU time (cross-thread wake-ups, futex calls, cache lines moving).

use std::cell::Cell;
use std::io;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

thread_local! {
    /// The index of the worker this thread runs.
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// The most workers any server of this process runs (see [`expect_workers`]).
static MOST_WORKERS: AtomicUsize = AtomicUsize::new(1);

/// The index of the worker running on this thread: 1 and up on the
/// threads [`spawn_workers`] started, 0 elsewhere (worker 0, tests).
pub fn current_worker() -> usize {
    WORKER.with(Cell::get)
}

/// Declares that a server of this process is about to run `count`
/// workers, before it builds state kept per worker.
pub fn expect_workers(count: usize) {
    MOST_WORKERS.fetch_max(count, Ordering::Relaxed);
}

/// How many workers state kept per worker is sized for: the most any
/// server of this process declared ([`expect_workers`]), at least 1.
/// Index such state by [`current_worker`] modulo this.
pub fn most_workers() -> usize {
    MOST_WORKERS.load(Ordering::Relaxed)
}

/// A runtime for a process that is not a proxy (the bench's app and
/// client): one thread for `Some(1)`, a work-stealing pool of `n` threads
/// for `Some(n)`, one per CPU for `None`.
pub fn build(workers: Option<usize>) -> io::Result<tokio::runtime::Runtime> {
    match workers {
        Some(1) => main_thread(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    }
}

/// The runtime of the main thread: worker 0, and the process's control
/// tasks (signals, reloads, admin).
pub fn main_thread() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// The workers `--workers` asks for: the flag's value, else one per CPU.
pub fn worker_count(flag: Option<u16>) -> usize {
    match flag {
        Some(workers) => usize::from(workers).max(1),
        None => std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
    }
}

/// Starts one worker per item of `inputs` (a listener, say), numbered
/// from 1, each on a thread of its own (`h2hop-worker-N`) running
/// `worker(N, input)` on a current-thread runtime. The returned future
/// ends once every one of them has returned (or panicked); worker 0 is
/// the caller's to run.
pub fn spawn_workers<T, W, F>(inputs: Vec<T>, worker: W) -> io::Result<impl Future<Output = ()>>
where
    T: Send + 'static,
    W: Fn(usize, T) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + 'static,
{
    expect_workers(inputs.len() + 1);
    let worker = Arc::new(worker);
    let mut ended = Vec::with_capacity(inputs.len());
    for (input, index) in inputs.into_iter().zip(1..) {
        let runtime = main_thread()?;
        let (done, end) = tokio::sync::oneshot::channel::<()>();
        let worker = worker.clone();
        std::thread::Builder::new()
            .name(format!("h2hop-worker-{index}"))
            .spawn(move || {
                WORKER.with(|current| current.set(index));
                runtime.block_on(worker(index, input));
                // Dropped on a panic too, which ends the wait as well.
                let _ = done.send(());
            })?;
        ended.push(end);
    }
    Ok(async move {
        for end in ended {
            let _ = end.await;
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn each_size_runs_spawned_tasks() {
        for workers in [Some(1), Some(2), None] {
            let runtime = build(workers).unwrap();
            let answer = runtime.block_on(async { tokio::spawn(async { 42 }).await.unwrap() });
            assert_eq!(answer, 42);
        }
    }

    #[test]
    fn each_worker_runs_on_its_own_thread() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let runtime = main_thread().unwrap();
        runtime.block_on(async {
            let others = spawn_workers(vec!["one", "two"], move |index, input| {
                let record = record.clone();
                async move {
                    // A spawned task runs on this worker's runtime.
                    let name = tokio::spawn(async move {
                        assert_eq!(current_worker(), index);
                        std::thread::current().name().map(str::to_owned)
                    });
                    let name = name.await.unwrap();
                    record.lock().unwrap().push((index, input, name));
                }
            })
            .unwrap();
            others.await;
        });
        assert!(most_workers() >= 3);
        let mut seen = seen.lock().unwrap().clone();
        seen.sort();
        assert_eq!(
            seen,
            vec![
                (1, "one", Some("h2hop-worker-1".to_owned())),
                (2, "two", Some("h2hop-worker-2".to_owned())),
            ]
        );
    }

    #[test]
    fn worker_count_defaults_to_the_cpus() {
        assert_eq!(worker_count(Some(3)), 3);
        assert!(worker_count(None) >= 1);
    }
}
