//! Long-lived child processes of the tests and the benchmark: the h2hop
//! binaries, the `h2hop-echo` app, peer proxies, browsers, the Autobahn
//! runner. One [`Process`] spawns a child with its output kept as lines
//! or sent to files, waits for a log line or a port that accepts, sends it
//! a signal, waits for its exit within a bound, and kills it on drop: this
//! child alone, by its own pid.
//!
//! A one-off tool run to completion (`openssl s_client`, `h2spec`,
//! `certutil`) needs none of this and uses `Command::output`.

use std::fs::File;
use std::io::{BufRead as _, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, bail};
use rustix::process::Pid;
use tokio::sync::watch;

use crate::wait::{eventually_async, eventually_some};

/// How long an h2hop binary may take to log its "ready" line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A signal [`Process::signal`] sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: graceful shutdown.
    Term,
    /// SIGHUP: reload certificates.
    Hup,
    /// SIGINT: as Ctrl-C.
    Int,
}

impl Signal {
    fn to_rustix(self) -> rustix::process::Signal {
        match self {
            Signal::Term => rustix::process::Signal::TERM,
            Signal::Hup => rustix::process::Signal::HUP,
            Signal::Int => rustix::process::Signal::INT,
        }
    }
}

/// Where a child's standard output and error go; its standard input is
/// always closed.
#[derive(Debug, Clone)]
pub enum Output {
    /// Both read line by line into memory: [`Process::lines`] and
    /// [`Process::wait_for_line`].
    Lines,
    /// Standard output and standard error to these files.
    Files {
        /// Standard output's file.
        stdout: PathBuf,
        /// Standard error's file.
        stderr: PathBuf,
    },
    /// Discarded.
    Null,
}

/// A running child. Dropping it kills (SIGKILL) and reaps it if it is
/// still running.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    /// Changes with every line; closed once both pipes reached their end.
    more: watch::Receiver<usize>,
}

impl Process {
    /// Spawns `command` (named `name` in messages) with its output sent
    /// as `output` says.
    pub fn spawn(name: &str, command: &mut Command, output: Output) -> anyhow::Result<Process> {
        command.stdin(Stdio::null());
        match &output {
            Output::Lines => {
                command.stdout(Stdio::piped()).stderr(Stdio::piped());
            }
            Output::Files { stdout, stderr } => {
                let create = |path: &Path| {
                    File::create(path).with_context(|| format!("creating {}", path.display()))
                };
                command.stdout(create(stdout)?).stderr(create(stderr)?);
            }
            Output::Null => {
                command.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {name}: {command:?}"))?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (sender, more) = watch::channel(0);
        let sender = Arc::new(sender);
        if let Some(stdout) = child.stdout.take() {
            collect(stdout, lines.clone(), sender.clone());
        }
        if let Some(stderr) = child.stderr.take() {
            collect(stderr, lines.clone(), sender);
        }
        Ok(Process {
            name: name.to_owned(),
            child,
            lines,
            more,
        })
    }

    /// Starts an h2hop binary (or `h2hop-echo`) at `path` with `args`, its
    /// log kept as lines, and waits up to [`READY_TIMEOUT`] for its
    /// "ready" line, which says its listeners are bound.
    pub async fn start<S: AsRef<std::ffi::OsStr>>(
        path: &Path,
        args: &[S],
    ) -> anyhow::Result<Process> {
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        );
        let process = Process::spawn(&name, Command::new(path).args(args), Output::Lines)?;
        process.wait_for_line(&["ready"], READY_TIMEOUT).await?;
        Ok(process)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The lines of its output so far (with [`Output::Lines`]).
    pub fn lines(&self) -> Vec<String> {
        let lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        lines.clone()
    }

    /// The lines so far that contain every one of `needles`.
    pub fn lines_with(&self, needles: &[&str]) -> Vec<String> {
        let lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        lines
            .iter()
            .filter(|line| needles.iter().all(|needle| line.contains(needle)))
            .cloned()
            .collect()
    }

    /// Waits for the first line that contains every one of `needles`, for
    /// at most `bound`; an error, with its output, if the bound passes or
    /// its output ends first.
    pub async fn wait_for_line(&self, needles: &[&str], bound: Duration) -> anyhow::Result<String> {
        self.wait_for_lines(needles, 1, bound)
            .await?
            .pop()
            .context("no line")
    }

    /// Waits until `count` lines contain every one of `needles` and returns
    /// them, as [`Process::wait_for_line`].
    pub async fn wait_for_lines(
        &self,
        needles: &[&str],
        count: usize,
        bound: Duration,
    ) -> anyhow::Result<Vec<String>> {
        let mut more = self.more.clone();
        let wait = async {
            loop {
                // Marks the current lines as seen before reading them, so
                // that a line added meanwhile wakes the wait below.
                more.borrow_and_update();
                let found = self.lines_with(needles);
                if found.len() >= count {
                    return Ok(found);
                }
                if more.changed().await.is_err() {
                    bail!("its output ended first");
                }
            }
        };
        let waited = tokio::time::timeout(bound, wait).await;
        let outcome = waited.unwrap_or_else(|_| Err(anyhow::anyhow!("not within {bound:?}")));
        outcome.with_context(|| {
            format!(
                "{} {} logged {count} line(s) with {needles:?}:\n{}",
                self.name,
                self.pid(),
                self.lines().join("\n")
            )
        })
    }

    /// The address logged as `name=ADDR` on its "ready" line.
    pub fn ready_addr(&self, name: &str) -> anyhow::Result<SocketAddr> {
        let ready = self
            .lines_with(&["ready"])
            .into_iter()
            .next()
            .context("no ready line")?;
        let prefix = format!("{name}=");
        let value = ready
            .split_whitespace()
            .find_map(|field| field.strip_prefix(prefix.as_str()))
            .with_context(|| format!("no {name}= in {ready:?}"))?;
        // A string field is logged quoted.
        value
            .trim_matches('"')
            .parse()
            .with_context(|| format!("bad {name}= in {ready:?}"))
    }

    /// Where an h2hop binary listens: `listen=` on its "ready" line.
    pub fn listen(&self) -> anyhow::Result<SocketAddr> {
        self.ready_addr("listen")
    }

    /// Waits until `addr` accepts a TCP connection, for at most `bound`;
    /// an error if it exits first or the bound passes.
    pub async fn wait_accepting(
        &mut self,
        addr: SocketAddr,
        bound: Duration,
    ) -> anyhow::Result<()> {
        let child = &mut self.child;
        let accepted = eventually_async(bound, || {
            let exited = child.try_wait();
            async move {
                match exited {
                    Ok(Some(status)) => Some(Err(anyhow::anyhow!("exited with {status}"))),
                    Err(err) => Some(Err(err.into())),
                    Ok(None) => {
                        let probe = tokio::time::timeout(
                            Duration::from_millis(200),
                            tokio::net::TcpStream::connect(addr),
                        );
                        matches!(probe.await, Ok(Ok(_))).then_some(Ok(()))
                    }
                }
            }
        })
        .await;
        let outcome = accepted.unwrap_or_else(|| Err(anyhow::anyhow!("not within {bound:?}")));
        outcome.with_context(|| format!("{} {}: {addr} did not accept", self.name, self.pid()))
    }

    /// Sends it `signal`: this process alone, by its pid.
    pub fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        let pid = i32::try_from(self.pid())
            .ok()
            .and_then(Pid::from_raw)
            .context("pid out of range")?;
        rustix::process::kill_process(pid, signal.to_rustix())
            .with_context(|| format!("sending {signal:?} to {} {pid:?}", self.name))
    }

    /// Its exit status if it has exited (reaping it), `None` if it runs.
    pub fn try_wait(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// Waits for it to exit, for at most `bound`; an error if it still runs
    /// then (it is left running: drop it to kill it).
    pub async fn wait(&mut self, bound: Duration) -> anyhow::Result<ExitStatus> {
        let child = &mut self.child;
        let exited = eventually_some(bound, || child.try_wait().transpose()).await;
        let name = &self.name;
        exited
            .with_context(|| format!("{name} did not exit within {bound:?}"))?
            .map_err(Into::into)
    }

    /// Kills it with SIGKILL (what `Child::kill` sends on Unix), as a
    /// crash or the OOM killer would, and reaps it.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Only this child, and only if it is still running.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.kill();
        }
    }
}

/// Reads `pipe` line by line (invalid UTF-8 replaced) into `lines` on a
/// thread of its own, telling waiters of each line; the thread ends with
/// the pipe, and with the last pipe `more`'s sender.
fn collect(
    pipe: impl Read + Send + 'static,
    lines: Arc<Mutex<Vec<String>>>,
    more: Arc<watch::Sender<usize>>,
) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        while reader.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
            let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
            buf.clear();
            lines
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(line);
            more.send_modify(|count| *count += 1);
        }
    });
}

/// A loopback address with a port that was free a moment ago, for a child
/// that takes its port on the command line.
///
/// The listener is dropped before the child binds the port, so another
/// process could take it in between. That race is acceptable for peer
/// proxies on a quiet machine; a lost race shows up as a start failure.
pub fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding a probe port")?;
    Ok(listener.local_addr()?)
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

/// Where `program` is installed, or `None` after a loud `!!! SKIPPED` line
/// naming the Debian `package` that brings it. With
/// `H2HOP_REQUIRE_EXTERNAL=1` (as CI sets) a missing program is an error
/// instead, so CI cannot pass by skipping.
pub fn program_or_skip(
    test: &str,
    program: &str,
    package: &str,
) -> anyhow::Result<Option<PathBuf>> {
    if let Some(found) = find_program(program) {
        return Ok(Some(found));
    }
    if std::env::var("H2HOP_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1") {
        anyhow::bail!("{test}: {program} is not installed and H2HOP_REQUIRE_EXTERNAL=1");
    }
    eprintln!("!!! SKIPPED {test}: {program} is not installed (apt-get install {package})");
    Ok(None)
}

/// Runs `command` to its end within `limit` and returns what it printed
/// and its status; a command still running at `limit` is killed.
pub async fn output_within(
    command: &mut tokio::process::Command,
    limit: Duration,
) -> anyhow::Result<std::process::Output> {
    let description = format!("{command:?}");
    let output = command.kill_on_drop(true).output();
    tokio::time::timeout(limit, output)
        .await
        .with_context(|| format!("{description} still running after {limit:?}"))?
        .with_context(|| format!("cannot run {description}"))
}
