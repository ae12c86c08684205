//! A fresh PostgreSQL cluster on 127.0.0.1 made by initdb, and `psql` /
//! `pgbench` aimed at any address. Part of [`crate::services`].
//!
//! PostgreSQL refuses to run as root, so as root `initdb` and `postgres`
//! run as the `postgres` user (or `nobody`) through `setpriv`, which execs
//! the program itself: the child's pid is the postmaster's.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;

use super::{
    Programs, Service, User, client, passwd_user, run, running_as_root, start_on_free_port,
};
use crate::process::{Output, Process, Signal};
use crate::scratch::Scratch;

/// The database superuser that initdb makes, whatever the OS user.
pub const POSTGRES_USER: &str = "h2hop";

/// A fresh PostgreSQL cluster on 127.0.0.1 (trust authentication, no
/// fsync), its Unix socket in its scratch directory.
pub struct Postgres {
    /// Where it accepts.
    pub addr: SocketAddr,
    programs: Programs,
    // Declared before the scratch directory, so that it stops first.
    process: Process,
    _scratch: Scratch,
}

impl Postgres {
    /// Makes a cluster with initdb and starts postgres on it, or `None`
    /// (after a loud line) when its programs are missing.
    pub async fn start_or_skip(test: &str) -> anyhow::Result<Option<Postgres>> {
        let Some(programs) = Service::Postgres.programs_or_skip(test)? else {
            return Ok(None);
        };
        let scratch = Scratch::create("postgres")?;
        let owner = postgres_owner()?;
        if let Some(owner) = &owner {
            std::os::unix::fs::chown(scratch.dir(), Some(owner.uid), Some(owner.gid))
                .with_context(|| format!("giving {} to {}", scratch.dir().display(), owner.name))?;
        }
        let data = scratch.path("data");
        let mut initdb = as_owner(owner.as_ref(), &programs, programs.get("initdb")?)?;
        initdb.args([
            "-A",
            "trust",
            "-U",
            POSTGRES_USER,
            "--no-sync",
            "-E",
            "UTF8",
        ]);
        // The C locale exists everywhere, and keeps the server's log in
        // English for the ready line below.
        initdb.arg("--locale=C").arg("-D").arg(&data);
        run("initdb", &mut tokio::process::Command::from(initdb)).await?;
        let postgres = programs.get("postgres")?.to_owned();
        let socket_dir = scratch.dir().to_owned();
        let (addr, process) =
            start_on_free_port("postgres", "ready to accept connections", |port| {
                let mut command = as_owner(owner.as_ref(), &programs, &postgres)?;
                command.arg("-D").arg(&data).arg("-k").arg(&socket_dir);
                command.args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"]);
                // A test database: durability is not what is tested.
                command.args(["-c", "fsync=off", "-c", "synchronous_commit=off"]);
                command.args(["-c", "full_page_writes=off"]);
                Process::spawn("postgres", &mut command, Output::Lines)
            })
            .await?;
        Ok(Some(Postgres {
            addr,
            programs,
            process,
            _scratch: scratch,
        }))
    }

    /// `psql` or `pgbench` aimed at `addr` as [`POSTGRES_USER`] on the
    /// `postgres` database, with `args` before the database name.
    pub fn client(
        &self,
        program: &str,
        addr: SocketAddr,
        args: &[&str],
    ) -> anyhow::Result<tokio::process::Command> {
        let mut command = client(self.programs.get(program)?, &["-h", &addr.ip().to_string()]);
        command.arg("-p").arg(addr.port().to_string());
        command
            .args(["-U", POSTGRES_USER])
            .args(args)
            .arg("postgres");
        // Nothing from the environment picks another server or password.
        for var in [
            "PGHOST",
            "PGPORT",
            "PGUSER",
            "PGDATABASE",
            "PGSERVICE",
            "PGPASSWORD",
        ] {
            command.env_remove(var);
        }
        Ok(command)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT is postgres' fast shutdown: the backends end and the
        // shared memory goes. Killed (by the Process's own drop) if it is
        // not down within a bound.
        if self.process.signal(Signal::Int).is_ok() {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while matches!(self.process.try_wait(), Ok(None))
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Who runs initdb and postgres: nobody else when this process is not
/// root, else the `postgres` user (or `nobody`), as PostgreSQL refuses root.
fn postgres_owner() -> anyhow::Result<Option<User>> {
    if !running_as_root() {
        return Ok(None);
    }
    let user = passwd_user(|name, _| name == "postgres")?;
    let user = match user {
        Some(user) => Some(user),
        None => passwd_user(|name, _| name == "nobody")?,
    };
    user.context("neither a postgres nor a nobody user to run PostgreSQL as")
        .map(Some)
}

/// `program` run as `owner` through `setpriv` (which execs it, keeping the
/// pid), or directly when there is no owner.
fn as_owner(
    owner: Option<&User>,
    programs: &Programs,
    program: &Path,
) -> anyhow::Result<std::process::Command> {
    let Some(owner) = owner else {
        return Ok(std::process::Command::new(program));
    };
    let mut command = std::process::Command::new(programs.get("setpriv")?);
    command.arg(format!("--reuid={}", owner.uid));
    command.arg(format!("--regid={}", owner.gid));
    command.arg("--clear-groups").arg("--").arg(program);
    command.env("HOME", "/");
    Ok(command)
}
