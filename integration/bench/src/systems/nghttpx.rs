//! The nghttpx pair (Debian `nghttp2-proxy`, nghttpx 1.52): one nghttpx as
//! the front (HTTP/1.1 in, cleartext HTTP/2 backend) and a second as the
//! sidecar (HTTP/2 prior knowledge in, HTTP/1.1 to the app).
//!
//! nghttpx speaks RFC 8441 on both sides without an option: its HTTP/2
//! frontend advertises `SETTINGS_ENABLE_CONNECT_PROTOCOL`, and its HTTP/2
//! backend turns an HTTP/1.1 WebSocket upgrade into an extended CONNECT
//! when the backend advertises that setting.
//!
//! For gRPC the sidecar's backend is HTTP/2 too (`proto=h2`): both
//! processes then run [`front_command`], whose `no-tls` frontend takes
//! HTTP/2 with prior knowledge from the client as well.
//!
//! With [`Hop::Mtls`] (the `nghttpx-mtls` system) the middle hop is HTTP/2
//! over TLS: the front's backend gets `;tls` and a client certificate, the
//! sidecar's frontend is a TLS listener that requires one
//! (`--verify-client`), both from [`super::hop_pki`].
//!
//! Input: the app address, the traffic, the middle hop, the worker count
//! and a scratch directory.
//! Output: a [`Plan`] for [`super::start`]. The command lines are
//! [`h2hop_integration::interop`]'s, which runs each half alone opposite
//! an in-process h2hop; for mTLS the arguments that differ are rewritten
//! ([`rewrite_arg`]).

use std::net::SocketAddr;
use std::process::Command;

use anyhow::Context as _;
use h2hop_integration::interop::{EXTENDED_CONNECT_MARKS, front_command, sidecar_command};
use h2hop_integration::process::{find_program, free_port};
use h2hop_integration::scratch::Scratch;

use super::hop_pki::{self, HopPki, SIDECAR_NAME};
use super::{Evidence, Hop, Plan, Traffic};

/// Streams one middle-hop connection may carry, as h2hop-sidecar's
/// `--max-streams` default, instead of nghttpx's 100.
const MAX_STREAMS: &str = "--frontend-http2-max-concurrent-streams=1000";

/// Access-log fields added for mTLS: the sidecar's TLS version and cipher
/// toward the front, and the subject of the client certificate it verified.
const TLS_LOG_FIELDS: &str =
    " tls=$tls_protocol cipher=$tls_cipher client=$tls_client_subject_name";

/// [`EXTENDED_CONNECT_MARKS`] over TLS with ALPN `h2` (not `h2c`) and the
/// front's verified certificate (CN `h2hop-front`).
const MTLS_MARKS: &[&str] = &[
    "\"CONNECT ",
    " HTTP/2\"",
    "ws-version=13",
    "alpn=h2 ",
    "tls=TLSv1.",
    "client=",
    "h2hop-front",
];

/// Picks ports and builds both nghttpx command lines.
pub(super) fn plan(
    app: SocketAddr,
    traffic: Traffic,
    hop: Hop,
    workers: usize,
    scratch: &Scratch,
) -> anyhow::Result<Plan> {
    let program = find_program("nghttpx").context("nghttpx is not installed (nghttp2-proxy)")?;
    let sidecar_addr = free_port()?;
    let front_addr = free_port()?;
    let sidecar_log = scratch.path("sidecar-access.log");
    let mut sidecar = match traffic {
        Traffic::Http1 => sidecar_command(&program, workers, sidecar_addr, app, &sidecar_log),
        // HTTP/2 with prior knowledge in and out.
        Traffic::Grpc => front_command(&program, workers, sidecar_addr, app, &sidecar_log),
    };
    sidecar.arg(MAX_STREAMS);
    let mut front = front_command(
        &program,
        workers,
        front_addr,
        sidecar_addr,
        &scratch.path("front-access.log"),
    );
    let marks = match hop {
        Hop::H2c => EXTENDED_CONNECT_MARKS,
        Hop::Mtls => {
            let pki = hop_pki::write(scratch)?;
            sidecar = tls_sidecar(&sidecar, sidecar_addr, &pki);
            front = tls_front(&front, &pki);
            MTLS_MARKS
        }
    };
    Ok(Plan {
        sidecar,
        sidecar_addr,
        front,
        front_addr,
        evidence: (traffic == Traffic::Http1).then_some(Evidence {
            log: sidecar_log,
            marks,
        }),
    })
}

/// The sidecar with a TLS frontend on `listen` that requires a client
/// certificate from the CA (`--verify-client`), and TLS fields in its log.
fn tls_sidecar(sidecar: &Command, listen: SocketAddr, pki: &HopPki) -> Command {
    let cleartext = format!("--frontend={},{};no-tls", listen.ip(), listen.port());
    let tls = format!("--frontend={},{}", listen.ip(), listen.port());
    let mut command = rewrite_arg(sidecar, |arg| {
        if arg == cleartext {
            tls.clone()
        } else if arg.starts_with("--accesslog-format=") {
            format!("{arg}{TLS_LOG_FIELDS}")
        } else {
            arg.to_owned()
        }
    });
    command
        .arg("--verify-client")
        .arg(format!("--verify-client-cacert={}", pki.ca.display()))
        // The positional private key and certificate of the TLS frontend.
        .arg(&pki.server_key)
        .arg(&pki.server_cert);
    command
}

/// The front with its HTTP/2 backend over TLS (`;tls`, the sidecar's
/// certificate checked against the CA for `localhost`) and a client
/// certificate.
fn tls_front(front: &Command, pki: &HopPki) -> Command {
    let mut command = rewrite_arg(front, |arg| {
        if arg.starts_with("--backend=") {
            format!("{arg};tls;sni={SIDECAR_NAME}")
        } else {
            arg.to_owned()
        }
    });
    command
        .arg(format!("--cacert={}", pki.ca.display()))
        .arg(format!(
            "--client-private-key-file={}",
            pki.client_key.display()
        ))
        .arg(format!("--client-cert-file={}", pki.client_cert.display()));
    command
}

/// A copy of `command` (program and arguments; nothing else is set on
/// these) with each argument passed through `rewrite`.
fn rewrite_arg(command: &Command, rewrite: impl Fn(&str) -> String) -> Command {
    let mut copy = Command::new(command.get_program());
    for arg in command.get_args() {
        match arg.to_str() {
            Some(text) => copy.arg(rewrite(text)),
            None => copy.arg(arg),
        };
    }
    copy
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn rewrite_arg_keeps_the_program_and_changes_only_matching_arguments() {
        let mut command = Command::new("nghttpx");
        command.args(["--a=1", "--backend=x"]);
        let copy = rewrite_arg(&command, |arg| arg.replace("backend=x", "backend=y"));
        assert_eq!(copy.get_program(), OsStr::new("nghttpx"));
        let args: Vec<&OsStr> = copy.get_args().collect();
        assert_eq!(args, [OsStr::new("--a=1"), OsStr::new("--backend=y")]);
    }
}
