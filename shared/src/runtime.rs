//! The tokio runtime each binary runs on, sized by its `--workers` flag.

use std::io;

/// Builds the runtime: one thread that does everything for `Some(1)`, a
/// work-stealing pool of `n` threads for `Some(n)`, one per CPU for `None`.
pub fn build(workers: Option<usize>) -> io::Result<tokio::runtime::Runtime> {
    match workers {
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_size_runs_spawned_tasks() {
        for workers in [Some(1), Some(2), None] {
            let runtime = build(workers).unwrap();
            let answer = runtime.block_on(async { tokio::spawn(async { 42 }).await.unwrap() });
            assert_eq!(answer, 42);
        }
    }
}
