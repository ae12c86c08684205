//! The nghttpx pair (Debian `nghttp2-proxy`, nghttpx 1.52): one nghttpx as
//! the front (HTTP/1.1 in, cleartext HTTP/2 backend) and a second as the
//! sidecar (HTTP/2 prior knowledge in, HTTP/1.1 to the app).
//!
//! nghttpx speaks RFC 8441 on both sides without an option: its HTTP/2
//! frontend advertises `SETTINGS_ENABLE_CONNECT_PROTOCOL`, and its HTTP/2
//! backend turns an HTTP/1.1 WebSocket upgrade into an extended CONNECT
//! when the backend advertises that setting.
//!
//! Input: the app address, the worker count and a scratch directory.
//! Output: a [`Plan`] for [`super::start`]. [`crate::interop`] uses each
//! half's command line alone, opposite an in-process h2hop.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use anyhow::Context as _;

use super::process::{Scratch, find_program, free_port};
use super::{Evidence, Plan};

/// The access log line: the request line as nghttpx saw it (`$method` is
/// `CONNECT` and `$protocol_version` `HTTP/2` for an extended CONNECT), the
/// status, and the WebSocket version field that only a WebSocket carries.
const ACCESS_LOG_FORMAT: &str = "$remote_addr:$remote_port \"$method $path $protocol_version\" \
     $status alpn=$alpn ws-version=$http_sec_websocket_version \
     backend=$backend_host:$backend_port";

/// A sidecar access-log line that shows an RFC 8441 WebSocket stream.
pub(crate) const CONNECT_MARKS: &[&str] = &["\"CONNECT ", " HTTP/2\"", "ws-version=13"];

/// Timeouts long enough for the benchmark's idle hold (defaults are 1 to 3
/// minutes and would close held tunnels).
const TIMEOUTS: &[&str] = &[
    "--frontend-read-timeout=1h",
    "--frontend-http2-read-timeout=1h",
    "--frontend-keep-alive-timeout=1h",
    "--backend-read-timeout=1h",
];

/// Streams one middle-hop connection may carry, as h2hop-sidecar's
/// `--max-streams` default, instead of nghttpx's 100.
const MAX_STREAMS: &str = "--frontend-http2-max-concurrent-streams=1000";

/// Picks ports and builds both nghttpx command lines.
pub(super) fn plan(app: SocketAddr, workers: usize, scratch: &Scratch) -> anyhow::Result<Plan> {
    let program = find_program("nghttpx").context("nghttpx is not installed (nghttp2-proxy)")?;
    let sidecar_addr = free_port()?;
    let front_addr = free_port()?;
    let mut sidecar = sidecar_command(
        &program,
        workers,
        sidecar_addr,
        app,
        &scratch.path("sidecar-access.log"),
    );
    sidecar.arg(MAX_STREAMS);
    let front = front_command(
        &program,
        workers,
        front_addr,
        sidecar_addr,
        &scratch.path("front-access.log"),
    );
    Ok(Plan {
        sidecar,
        sidecar_addr,
        front,
        front_addr,
        evidence: Some(Evidence {
            log: scratch.path("sidecar-access.log"),
            marks: CONNECT_MARKS,
        }),
    })
}

/// nghttpx as a sidecar: HTTP/1.1 or HTTP/2 with prior knowledge in on
/// `listen`, HTTP/1.1 out to `app` (see [`common`] for the shared options).
pub(crate) fn sidecar_command(
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
pub(crate) fn front_command(
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
/// timeouts. The error log stays on stderr, which [`super::process::spawn`]
/// sends to a file.
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
