//! nghttpx (Debian `nghttp2-proxy`) as the other half of an h2hop pair, for
//! the interoperability tests in `integration/tests/interop.rs`.
//!
//! Input: the nghttpx program ([`nghttpx_or_skip`]) and the address of the
//! in-process h2hop half or test app it should talk to. Output: a running
//! [`Nghttpx`] on a free loopback port whose access log the test can wait
//! on, with one worker thread; dropping the handle kills (SIGKILL) and
//! reaps that one process only. [`front_command`] and [`sidecar_command`]
//! are also the `h2hop-bench` nghttpx pair's command lines.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;

use crate::process::{Output, Process, find_program, free_port};
use crate::scratch::{Scratch, read_lines};
use crate::wait::eventually_some;

/// Access-log marks of an RFC 8441 WebSocket stream, as nghttpx's HTTP/2
/// frontend logs it: `"CONNECT ... HTTP/2"` with `ws-version=13`.
pub const EXTENDED_CONNECT_MARKS: &[&str] = &["\"CONNECT ", " HTTP/2\"", "ws-version=13"];

/// The access log line: the request line as nghttpx saw it (`$method` is
/// `CONNECT` and `$protocol_version` `HTTP/2` for an extended CONNECT), the
/// status, and the WebSocket version field that only a WebSocket carries.
const ACCESS_LOG_FORMAT: &str = "$remote_addr:$remote_port \"$method $path $protocol_version\" \
     $status alpn=$alpn ws-version=$http_sec_websocket_version \
     backend=$backend_host:$backend_port";

/// Timeouts long enough for the benchmark's idle hold (defaults are 1 to 3
/// minutes and would close held tunnels).
const TIMEOUTS: &[&str] = &[
    "--frontend-read-timeout=1h",
    "--frontend-http2-read-timeout=1h",
    "--frontend-keep-alive-timeout=1h",
    "--backend-read-timeout=1h",
];

/// Bound on the wait for an access-log line. nghttpx writes it as soon as
/// the response head is known (`--accesslog-write-early`), so this is slack
/// for a busy machine, not a delay anything relies on.
const ACCESS_LOG_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on nghttpx's start, until its port accepts.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Where nghttpx is installed, or `None` after a loud `!!! SKIPPED` line.
/// With `H2HOP_REQUIRE_EXTERNAL=1` a missing nghttpx fails the test
/// instead, so CI cannot pass by skipping.
#[allow(
    clippy::panic,
    reason = "test support: H2HOP_REQUIRE_EXTERNAL=1 turns a skip into a failure"
)]
pub fn nghttpx_or_skip(test: &str) -> Option<PathBuf> {
    if let Some(program) = find_program("nghttpx") {
        return Some(program);
    }
    if std::env::var("H2HOP_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1") {
        panic!("{test}: nghttpx is not installed and H2HOP_REQUIRE_EXTERNAL=1");
    }
    eprintln!("!!! SKIPPED {test}: nghttpx is not installed (apt-get install nghttp2-proxy)");
    None
}

/// One running nghttpx process; dropping it kills (SIGKILL) and reaps it.
#[derive(Debug)]
pub struct Nghttpx {
    /// Where nghttpx accepts connections (its `--frontend`).
    pub addr: SocketAddr,
    process: Process,
    scratch: Scratch,
}

impl Nghttpx {
    /// nghttpx as a front: HTTP/1.1 clients in, cleartext HTTP/2 with prior
    /// knowledge out to `sidecar`.
    pub async fn front(program: &Path, sidecar: SocketAddr) -> anyhow::Result<Nghttpx> {
        let scratch = Scratch::create("interop-nghttpx-front")?;
        let addr = free_port()?;
        let command = front_command(program, 1, addr, sidecar, &access_log(&scratch));
        Self::launch(command, addr, scratch).await
    }

    /// nghttpx as a sidecar: HTTP/2 with prior knowledge (or HTTP/1.1) in,
    /// HTTP/1.1 out to `app`.
    pub async fn sidecar(program: &Path, app: SocketAddr) -> anyhow::Result<Nghttpx> {
        let scratch = Scratch::create("interop-nghttpx-sidecar")?;
        let addr = free_port()?;
        let command = sidecar_command(program, 1, addr, app, &access_log(&scratch));
        Self::launch(command, addr, scratch).await
    }

    /// Spawns `command`, its output to `nghttpx.out.log` and `nghttpx.log`,
    /// and returns once `addr` accepts.
    async fn launch(
        mut command: Command,
        addr: SocketAddr,
        scratch: Scratch,
    ) -> anyhow::Result<Self> {
        let output = Output::Files {
            stdout: scratch.path("nghttpx.out.log"),
            stderr: scratch.path("nghttpx.log"),
        };
        let mut process = Process::spawn("nghttpx", &mut command, output)?;
        let ready = process.wait_accepting(addr, START_TIMEOUT).await;
        ready.with_context(|| scratch.log_tails())?;
        Ok(Nghttpx {
            addr,
            process,
            scratch,
        })
    }

    /// The process id, to tell this nghttpx from any other.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Every access-log line so far.
    pub fn access_log(&self) -> anyhow::Result<Vec<String>> {
        read_lines(&access_log(&self.scratch))
    }

    /// Waits for the first access-log line that contains every one of
    /// `marks`; an error with the logs' tails after [`ACCESS_LOG_TIMEOUT`].
    pub async fn access_log_line(&self, marks: &[&str]) -> anyhow::Result<String> {
        let found = eventually_some(ACCESS_LOG_TIMEOUT, || {
            // The file appears with nghttpx's first line, not at start-up.
            let lines = self.access_log().unwrap_or_default();
            lines
                .into_iter()
                .find(|line| marks.iter().all(|mark| line.contains(mark)))
        })
        .await;
        found.with_context(|| {
            format!(
                "no access-log line of nghttpx {} contains all of {marks:?} within \
                 {ACCESS_LOG_TIMEOUT:?}{}",
                self.pid(),
                self.scratch.log_tails()
            )
        })
    }

    /// The last lines of nghttpx's access and error logs, for messages.
    pub fn log_tails(&self) -> String {
        self.scratch.log_tails()
    }
}

/// The access log inside `scratch` (a `.log`, so `log_tails` shows it).
fn access_log(scratch: &Scratch) -> PathBuf {
    scratch.path("access.log")
}

/// nghttpx as a sidecar: HTTP/1.1 or HTTP/2 with prior knowledge in on
/// `listen`, HTTP/1.1 out to `app` (see [`common`] for the shared options).
pub fn sidecar_command(
    program: &Path,
    workers: usize,
    listen: SocketAddr,
    app: SocketAddr,
    access_log: &Path,
) -> Command {
    let mut command = common(program, workers, access_log);
    command.arg(frontend(listen)).arg(format!(
        "--backend={},{};;proto=http/1.1",
        app.ip(),
        app.port()
    ));
    command
}

/// nghttpx as a front: HTTP/1.1 in on `listen`, cleartext HTTP/2 (prior
/// knowledge) out to `sidecar` (see [`common`] for the shared options).
pub fn front_command(
    program: &Path,
    workers: usize,
    listen: SocketAddr,
    sidecar: SocketAddr,
    access_log: &Path,
) -> Command {
    let mut command = common(program, workers, access_log);
    command.arg(frontend(listen)).arg(format!(
        "--backend={},{};;proto=h2",
        sidecar.ip(),
        sidecar.port()
    ));
    command
}

/// `--frontend=IP,PORT;no-tls`: a cleartext listener that takes HTTP/1.1
/// and HTTP/2 with prior knowledge alike.
fn frontend(addr: SocketAddr) -> String {
    format!("--frontend={},{};no-tls", addr.ip(), addr.port())
}

/// Options both nghttpx processes share: no system config file, one process
/// (so its pid is the one whose CPU and memory count) with `workers`
/// threads, the access log written as soon as the response head is known
/// (a tunnel's request otherwise shows only when it ends), and long
/// timeouts. The error log stays on stderr, which the caller sends to a
/// file ([`crate::process::Output::Files`]).
fn common(program: &Path, workers: usize, access_log: &Path) -> Command {
    let mut command = Command::new(program);
    command
        .arg("--conf=/dev/null")
        .arg("--single-process")
        .arg(format!("--workers={workers}"))
        .arg(format!("--accesslog-file={}", access_log.display()))
        .arg(format!("--accesslog-format={ACCESS_LOG_FORMAT}"))
        .arg("--accesslog-write-early")
        .args(TIMEOUTS);
    command
}
