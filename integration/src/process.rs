//! Child processes of a peer proxy or a system under test: the scratch
//! directory that holds their configs, certificates and logs, spawning with
//! output sent to log files, free loopback ports, and waiting until a port
//! accepts.
//!
//! Called by [`crate::interop`], which runs one nghttpx against in-process
//! h2hop, and by the `h2hop-bench` systems.

use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};

/// How long a system may take until its client port accepts.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between readiness probes.
const READY_POLL: Duration = Duration::from_millis(20);
/// Lines of each log shown when a system fails to start.
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

/// A loopback address with a port that was free a moment ago.
///
/// The listener is dropped before the system under test binds the port, so
/// another process could take it in between. That race is acceptable for a
/// benchmark on a quiet machine; a lost race shows up as a start failure.
pub fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding a probe port")?;
    Ok(listener.local_addr()?)
}

/// Spawns `command` with stdout to `{name}.out.log` and stderr to
/// `{name}.log` in `scratch`, and stdin closed.
pub fn spawn(mut command: Command, scratch: &Scratch, name: &str) -> anyhow::Result<Child> {
    let stdout = File::create(scratch.path(&format!("{name}.out.log")))?;
    let stderr = File::create(scratch.path(&format!("{name}.log")))?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr));
    command
        .spawn()
        .with_context(|| format!("cannot start {name}: {command:?}"))
}

/// Polls until `addr` accepts a TCP connection; fails early if any child
/// exits, and after [`READY_TIMEOUT`], with the log tails either way.
pub async fn wait_ready(
    addr: SocketAddr,
    children: &mut [Child],
    scratch: &Scratch,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        let probe = tokio::time::timeout(READY_POLL, tokio::net::TcpStream::connect(addr)).await;
        if let Ok(Ok(_stream)) = probe {
            return Ok(());
        }
        for child in children.iter_mut() {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "process {} exited with {status} before {addr} accepted{}",
                    child.id(),
                    scratch.log_tails()
                );
            }
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "{addr} did not accept within {READY_TIMEOUT:?}{}",
                scratch.log_tails()
            );
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

/// Kills (SIGKILL) and reaps every child, in order; errors are ignored
/// because the child may already be gone.
pub fn kill_all(children: &mut [Child]) {
    for child in children.iter_mut() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Where `program` is installed: `$PATH` first, then the sbin directories
/// that a non-root `$PATH` often lacks (Debian puts nghttpx and haproxy in
/// `/usr/sbin`).
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
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
