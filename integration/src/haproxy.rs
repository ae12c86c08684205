//! HAProxy as a real load balancer before the front, for the tests of the
//! client address (`X-Forwarded-For` from HAProxy in `mode http`, the PROXY
//! protocol from HAProxy in `mode tcp`).
//!
//! Needs the `haproxy` program (Debian `haproxy`): [`haproxy_or_skip`] says
//! loudly when it is missing, and fails the test under
//! `H2HOP_REQUIRE_EXTERNAL=1`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;

use crate::process::{Output, Process, find_program, free_port};
use crate::scratch::Scratch;

/// Where haproxy is installed, or `None` after a loud `!!! SKIPPED` line;
/// with `H2HOP_REQUIRE_EXTERNAL=1` a missing haproxy is an error.
pub fn haproxy_or_skip(test: &str) -> anyhow::Result<Option<PathBuf>> {
    if let Some(program) = find_program("haproxy") {
        return Ok(Some(program));
    }
    if std::env::var("H2HOP_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1") {
        anyhow::bail!("{test}: haproxy is not installed and H2HOP_REQUIRE_EXTERNAL=1");
    }
    eprintln!("!!! SKIPPED {test}: haproxy is not installed (apt-get install haproxy)");
    Ok(None)
}

/// One haproxy process on a free loopback port; dropping it kills and
/// reaps it.
pub struct Haproxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    _process: Process,
    _scratch: Scratch,
}

impl Haproxy {
    /// Starts `program` with the configuration `config` makes for the
    /// address it is to listen on, and waits until it accepts there.
    /// `name` names its scratch directory.
    pub async fn start(
        program: &Path,
        name: &str,
        config: impl FnOnce(SocketAddr) -> String,
    ) -> anyhow::Result<Haproxy> {
        let scratch = Scratch::create(name)?;
        let addr = free_port()?;
        let path = scratch.write("haproxy.cfg", &config(addr))?;
        let output = Output::Files {
            stdout: scratch.path("haproxy.out.log"),
            stderr: scratch.path("haproxy.log"),
        };
        // -db: stay in the foreground, no daemon to lose track of.
        let mut command = Command::new(program);
        command.arg("-db").arg("-f").arg(&path);
        let mut process = Process::spawn("haproxy", &mut command, output)?;
        let ready = process.wait_accepting(addr, Duration::from_secs(10)).await;
        ready.with_context(|| scratch.log_tails())?;
        Ok(Haproxy {
            addr,
            _process: process,
            _scratch: scratch,
        })
    }
}
