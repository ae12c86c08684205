//! A scratch directory for the files of child processes (configs,
//! certificates, logs), removed on drop, and the tails of its logs for
//! error messages.
//!
//! Called by [`crate::interop`], whose nghttpx writes its logs there, and by
//! the `h2hop-bench` systems.

use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context as _;

/// Lines of each log shown by [`Scratch::log_tails`].
const TAIL_LINES: usize = 20;

/// Distinguishes scratch directories of systems started by one process.
static SCRATCH_SEQ: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory under the system temp dir, removed (best effort) on
/// drop, so that a benchmark run leaves no configs or keys behind.
#[derive(Debug)]
pub struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    /// Creates `$TMPDIR/h2hop-bench-{name}-{pid}-{seq}`.
    pub fn create(name: &str) -> anyhow::Result<Scratch> {
        let seq = SCRATCH_SEQ.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("h2hop-bench-{name}-{}-{seq}", std::process::id()));
        // A leftover from a killed run with the same pid would hold stale logs.
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("removing stale {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Scratch { dir })
    }

    /// The directory itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A file inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes `contents` to `name` inside the directory and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> anyhow::Result<PathBuf> {
        let path = self.path(name);
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// The last lines of every `*.log` file, for error messages.
    pub fn log_tails(&self) -> String {
        let mut logs: Vec<PathBuf> = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
                .collect(),
            Err(err) => return format!("(cannot list {}: {err})", self.dir.display()),
        };
        logs.sort();
        let mut out = String::new();
        for path in logs {
            let lines = read_lines(&path).unwrap_or_default();
            let start = lines.len().saturating_sub(TAIL_LINES);
            out.push_str(&format!(
                "\n--- {} (last {TAIL_LINES} lines)\n",
                path.display()
            ));
            for line in &lines[start..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Best effort: a leftover temp directory is harmless.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Every line of a text file (invalid UTF-8 replaced).
pub fn read_lines(path: &Path) -> anyhow::Result<Vec<String>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut lines = Vec::new();
    let mut reader = BufReader::new(file);
    let mut buf = Vec::new();
    while reader.read_until(b'\n', &mut buf)? > 0 {
        lines.push(String::from_utf8_lossy(&buf).trim_end().to_owned());
        buf.clear();
    }
    Ok(lines)
}
