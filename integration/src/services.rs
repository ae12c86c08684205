//! Real TCP services on loopback for the TCP tunnel tests: redis-server,
//! PostgreSQL and OpenSSH's sshd, each a child process on 127.0.0.1 with
//! its files in a scratch directory, and the client commands that talk to
//! it (`redis-benchmark`, `redis-cli`, `pgbench`, `psql`, `ssh`) at any
//! address: the service's own, or a front's `[[tcp]]` listener in front of
//! it.
//!
//! Input: a [`Service`] kind. Output: a running [`Redis`], [`Postgres`] or
//! [`Sshd`] that accepts on its `addr` (killed, by its own pid, on drop), or
//! `None` after a loud `!!! SKIPPED` line when a program is missing; with
//! `H2HOP_REQUIRE_EXTERNAL=1` (as CI sets) a missing program is an error.
//! Called by `integration/tests/tcp_services.rs`.
//!
//! One module per service: `redis`, `postgres`, `sshd`; this one
//! finds their programs and starts each on a free port.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::process::{Process, find_program, free_port};

mod postgres;
mod redis;
mod sshd;

pub use postgres::{POSTGRES_USER, Postgres};
pub use redis::{Redis, Reply, RespClient};
pub use sshd::Sshd;

/// How long a service may take to say it accepts connections (initdb's
/// cluster starting on a busy 2-core machine is the slowest).
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How many free ports a service tries: another process may take the port
/// between [`free_port`] and the service's bind.
const PORT_TRIES: usize = 3;

/// A real service that the tests tunnel to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// redis-server, with redis-cli and redis-benchmark.
    Redis,
    /// A PostgreSQL cluster made by initdb, with psql and pgbench.
    Postgres,
    /// OpenSSH's sshd, with ssh and ssh-keygen.
    Ssh,
}

impl Service {
    /// The Debian packages that install its programs.
    pub fn packages(self) -> &'static str {
        match self {
            Service::Redis => "redis-server redis-tools",
            Service::Postgres => "postgresql util-linux",
            Service::Ssh => "openssh-server openssh-client",
        }
    }

    /// The programs it needs, found in `$PATH`, the sbin directories or
    /// (PostgreSQL's, which Debian keeps out of `$PATH`) the newest
    /// `/usr/lib/postgresql/N/bin`.
    fn programs(self) -> &'static [&'static str] {
        match self {
            Service::Redis => &["redis-server", "redis-cli", "redis-benchmark"],
            // As root, setpriv runs initdb and postgres as another user.
            Service::Postgres if running_as_root() => {
                &["initdb", "postgres", "psql", "pgbench", "setpriv"]
            }
            Service::Postgres => &["initdb", "postgres", "psql", "pgbench"],
            Service::Ssh => &["sshd", "ssh", "ssh-keygen"],
        }
    }

    /// Where its programs are, or `None` after a loud `!!! SKIPPED` line
    /// when one is missing; with `H2HOP_REQUIRE_EXTERNAL=1` that is an
    /// error.
    pub fn programs_or_skip(self, test: &str) -> anyhow::Result<Option<Programs>> {
        let found: Vec<_> = self
            .programs()
            .iter()
            .map(|program| (*program, locate(self, program)))
            .collect();
        let missing: Vec<_> = found
            .iter()
            .filter(|(_, path)| path.is_none())
            .map(|(program, _)| *program)
            .collect();
        if missing.is_empty() {
            let paths = found.into_iter().filter_map(|(_, path)| path).collect();
            return Ok(Some(Programs { paths }));
        }
        let what = format!("{} not installed", missing.join(", "));
        if std::env::var("H2HOP_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1") {
            bail!("{test}: {what} and H2HOP_REQUIRE_EXTERNAL=1");
        }
        eprintln!(
            "!!! SKIPPED {test}: {what} (apt-get install {})",
            self.packages()
        );
        Ok(None)
    }
}

/// The paths of a [`Service`]'s programs, found by [`Service::programs_or_skip`].
#[derive(Debug, Clone)]
pub struct Programs {
    paths: Vec<PathBuf>,
}

impl Programs {
    /// The path of `program`, one of the service's programs.
    pub fn get(&self, program: &str) -> anyhow::Result<&Path> {
        self.paths
            .iter()
            .find(|path| path.file_name().is_some_and(|name| name == program))
            .map(PathBuf::as_path)
            .with_context(|| format!("{program} is not one of the service's programs"))
    }
}

/// `program` in `$PATH` or the sbin directories; PostgreSQL's programs
/// first in the newest `/usr/lib/postgresql/N/bin`, so that the server and
/// its clients are of one version.
fn locate(service: Service, program: &str) -> Option<PathBuf> {
    if service == Service::Postgres
        && let Some(dir) = postgres_bin_dir()
        && dir.join(program).is_file()
    {
        return Some(dir.join(program));
    }
    find_program(program)
}

/// The newest `/usr/lib/postgresql/N/bin` that has `initdb`.
fn postgres_bin_dir() -> Option<PathBuf> {
    let versions = std::fs::read_dir("/usr/lib/postgresql").ok()?;
    versions
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version)
        .map(|(_, bin)| bin)
}

/// A user of `/etc/passwd`.
#[derive(Debug, Clone)]
pub struct User {
    /// Login name.
    pub name: String,
    uid: u32,
    gid: u32,
}

/// The first `/etc/passwd` entry that `wanted` accepts (by name and uid).
fn passwd_user(wanted: impl Fn(&str, u32) -> bool) -> anyhow::Result<Option<User>> {
    let passwd = std::fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    Ok(passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        let (name, uid, gid) = (fields.first()?, fields.get(2)?, fields.get(3)?);
        let (uid, gid) = (uid.parse().ok()?, gid.parse().ok()?);
        wanted(name, uid).then(|| User {
            name: (*name).to_owned(),
            uid,
            gid,
        })
    }))
}

/// The user this process runs as.
pub fn current_user() -> anyhow::Result<User> {
    let uid = rustix::process::geteuid().as_raw();
    passwd_user(|_, entry| entry == uid)?.with_context(|| format!("uid {uid} not in /etc/passwd"))
}

/// Whether this process runs as root (PostgreSQL refuses to; sshd needs
/// its privilege separation directory).
fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Starts a service with `spawn(port)` on a free port, up to [`PORT_TRIES`]
/// times, until it logs a line with `ready`: a service that exits first
/// (its port taken meanwhile) is tried again on another port.
async fn start_on_free_port(
    name: &str,
    ready: &str,
    mut spawn: impl FnMut(u16) -> anyhow::Result<Process>,
) -> anyhow::Result<(SocketAddr, Process)> {
    let mut failures = Vec::new();
    for _ in 0..PORT_TRIES {
        let addr = free_port()?;
        let mut process = spawn(addr.port())?;
        match process.wait_for_line(&[ready], READY_TIMEOUT).await {
            Ok(_) => return Ok((addr, process)),
            Err(err) => {
                // Its output ends as it exits: give the exit a moment to
                // be seen. One still running had its chance and failed.
                if process.wait(Duration::from_secs(2)).await.is_err() {
                    return Err(err);
                }
                failures.push(err);
            }
        }
    }
    bail!("{name} did not start on any of {PORT_TRIES} ports: {failures:?}")
}

/// Runs `command` to completion; an error with its output if it fails.
async fn run(what: &str, command: &mut tokio::process::Command) -> anyhow::Result<()> {
    command.stdin(Stdio::null()).kill_on_drop(true);
    let output = command
        .output()
        .await
        .with_context(|| format!("{what}: cannot run {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed with {}: {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// A client command (`program` with `args`) whose standard input is
/// closed and which is killed if dropped before it exits.
fn client(program: &Path, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(program);
    command.args(args).stdin(Stdio::null()).kill_on_drop(true);
    command
}
