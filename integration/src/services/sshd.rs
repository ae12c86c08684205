//! OpenSSH's sshd on 127.0.0.1 with keys made for the test, and `ssh`
//! aimed at any address. Part of [`crate::services`].

use std::net::SocketAddr;

use anyhow::Context as _;

use super::{
    Programs, Service, User, client, current_user, run, running_as_root, start_on_free_port,
};
use crate::process::{Output, Process};
use crate::scratch::Scratch;

/// The name the client knows the test's sshd host key by, whatever port
/// it reaches the server on (its own or a front's).
const SSH_HOST_ALIAS: &str = "h2hop-test-sshd";

/// OpenSSH's sshd on 127.0.0.1 with a host key and a client key made for
/// the test, the client's known-hosts file holding that host key alone,
/// and public-key login as the current user.
pub struct Sshd {
    /// Where it accepts.
    pub addr: SocketAddr,
    /// Who logs in.
    pub user: User,
    programs: Programs,
    _process: Process,
    scratch: Scratch,
}

impl Sshd {
    /// Makes the keys and the config and starts sshd, or `None` (after a
    /// loud line) when its programs are missing.
    pub async fn start_or_skip(test: &str) -> anyhow::Result<Option<Sshd>> {
        let Some(programs) = Service::Ssh.programs_or_skip(test)? else {
            return Ok(None);
        };
        let scratch = Scratch::create("sshd")?;
        let keygen = programs.get("ssh-keygen")?;
        for key in ["host_key", "client_key"] {
            let mut command = tokio::process::Command::new(keygen);
            command.args(["-q", "-t", "ed25519", "-N", "", "-C", "h2hop-test", "-f"]);
            run("ssh-keygen", command.arg(scratch.path(key))).await?;
        }
        let read = |name: &str| {
            let path = scratch.path(name);
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
        };
        let host_key = read("host_key.pub")?;
        scratch.write("known_hosts", &format!("{SSH_HOST_ALIAS} {host_key}"))?;
        std::fs::copy(
            scratch.path("client_key.pub"),
            scratch.path("authorized_keys"),
        )
        .context("writing authorized_keys")?;
        let user = current_user()?;
        let config = scratch.write("sshd_config", &sshd_config(&scratch, &user))?;
        if running_as_root() {
            // sshd as root needs its privilege separation directory, which
            // Debian makes only when the service starts.
            std::fs::create_dir_all("/run/sshd").context("creating /run/sshd")?;
        }
        // sshd re-executes itself, so it needs its absolute path.
        let sshd = std::path::absolute(programs.get("sshd")?)?;
        let (addr, process) = start_on_free_port("sshd", "Server listening", |port| {
            let mut command = std::process::Command::new(&sshd);
            command.arg("-D").arg("-e").arg("-f").arg(&config);
            command.arg("-p").arg(port.to_string());
            Process::spawn("sshd", &mut command, Output::Lines)
        })
        .await?;
        Ok(Some(Sshd {
            addr,
            user,
            programs,
            _process: process,
            scratch,
        }))
    }

    /// `ssh` to `addr` running `remote` there: the test's client key, the
    /// host key checked strictly against the test's known-hosts file,
    /// nothing read from the user's or the system's ssh config.
    pub fn client(
        &self,
        addr: SocketAddr,
        remote: &str,
    ) -> anyhow::Result<tokio::process::Command> {
        let mut command = client(self.programs.get("ssh")?, &["-F", "/dev/null", "-T"]);
        command.arg("-p").arg(addr.port().to_string());
        command.arg("-i").arg(self.scratch.path("client_key"));
        let known_hosts = self.scratch.path("known_hosts");
        let options = [
            "IdentitiesOnly=yes".to_owned(),
            "BatchMode=yes".to_owned(),
            "StrictHostKeyChecking=yes".to_owned(),
            format!("HostKeyAlias={SSH_HOST_ALIAS}"),
            format!("UserKnownHostsFile={}", known_hosts.display()),
            "GlobalKnownHostsFile=/dev/null".to_owned(),
            "ConnectTimeout=10".to_owned(),
        ];
        for option in options {
            command.arg("-o").arg(option);
        }
        command
            .arg(format!("{}@{}", self.user.name, addr.ip()))
            .arg(remote);
        Ok(command)
    }
}

/// sshd's config: loopback only, the test's keys, public-key login as
/// `user` alone, no PAM (which would want a system login setup).
fn sshd_config(scratch: &Scratch, user: &User) -> String {
    let path = |name: &str| scratch.path(name).display().to_string();
    format!(
        "ListenAddress 127.0.0.1\n\
         HostKey {host_key}\n\
         PidFile none\n\
         AuthorizedKeysFile {authorized_keys}\n\
         StrictModes no\n\
         UsePAM no\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         PermitRootLogin prohibit-password\n\
         AllowUsers {user}\n\
         LogLevel INFO\n",
        host_key = path("host_key"),
        authorized_keys = path("authorized_keys"),
        user = user.name,
    )
}
