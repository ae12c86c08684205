//! The h2hop pair as child processes: `h2hop-sidecar` in front of the app
//! and `h2hop-front` in front of it, over h2c or mutual TLS. For gRPC the
//! sidecar speaks h2c to the app (`--app-protocol h2c`) and clients speak
//! h2c with prior knowledge to the front's plain listener.
//!
//! Input: the app address, the release binaries, the worker count and a
//! scratch directory (which receives the development PKI for mTLS).
//! Output: a [`Plan`] for [`super::start`].

use std::net::SocketAddr;
use std::process::Command;

use h2hop_integration::process::free_port;
use h2hop_integration::scratch::Scratch;

use super::hop_pki::{self, HopPki};
use super::{Binaries, Evidence, Hop, Plan, Traffic};

/// The log settings of both processes: the sidecar's access lines are the
/// middle-hop evidence.
pub(super) const LOGGING: [&str; 4] = ["--log-level", "info", "--log-format", "text"];

/// What the sidecar logs for each RFC 8441 stream: its access line with
/// `kind="tunnel"` and the `:protocol` (`h2hop_sidecar::dispatch` makes a
/// tunnel entry only when the request carried `:protocol`).
const TUNNEL_MARKS: &[&str] = &["h2hop::access", "kind=\"tunnel\"", "protocol=\"websocket\""];

/// Picks ports, writes certificates if needed, and builds both commands:
/// `h2hop-sidecar --listen S --app APP (--h2c | --cert --key --client-ca)
/// [--app-protocol h2c] --workers W --log-level info --log-format text`
/// and `h2hop-front --listen F --sidecar S (--h2c | --ca --cert --key)
/// --workers W` (same logging). The sidecar's log is the WebSocket
/// evidence for [`Traffic::Http1`]; gRPC has none.
pub(super) fn plan(
    app: SocketAddr,
    traffic: Traffic,
    bins: &Binaries,
    workers: usize,
    hop: Hop,
    scratch: &Scratch,
) -> anyhow::Result<Plan> {
    let sidecar_addr = free_port()?;
    let front_addr = free_port()?;
    let workers = workers.to_string();

    let mut sidecar = Command::new(&bins.sidecar);
    sidecar
        .arg("--listen")
        .arg(sidecar_addr.to_string())
        .arg("--app")
        .arg(app.to_string());
    let mut front = Command::new(&bins.front);
    front
        .arg("--listen")
        .arg(front_addr.to_string())
        .arg("--sidecar")
        .arg(sidecar_addr.to_string());

    match hop {
        Hop::H2c => {
            sidecar.arg("--h2c");
            front.arg("--h2c");
        }
        Hop::Mtls => mtls_args(&mut sidecar, &mut front, scratch)?,
    }
    if traffic == Traffic::Grpc {
        sidecar.args(["--app-protocol", "h2c"]);
    }
    for command in [&mut sidecar, &mut front] {
        command.arg("--workers").arg(&workers).args(LOGGING);
    }

    Ok(Plan {
        sidecar,
        sidecar_addr,
        front,
        front_addr,
        evidence: (traffic == Traffic::Http1).then(|| Evidence {
            log: scratch.path("sidecar.log"),
            marks: TUNNEL_MARKS,
        }),
    })
}

/// Writes a fresh [`super::hop_pki`] into the scratch directory and points
/// both commands at it (SAN `127.0.0.1` matches the front's default
/// `--sidecar-name`).
fn mtls_args(sidecar: &mut Command, front: &mut Command, scratch: &Scratch) -> anyhow::Result<()> {
    let pki = hop_pki::write(scratch)?;
    sidecar_tls_args(sidecar, &pki);
    front
        .arg("--ca")
        .arg(&pki.ca)
        .arg("--cert")
        .arg(&pki.client_cert)
        .arg("--key")
        .arg(&pki.client_key);
    Ok(())
}

/// The sidecar's side of the mTLS hop: its certificate and key, and the CA
/// the front's client certificate must chain to.
pub(super) fn sidecar_tls_args(sidecar: &mut Command, pki: &HopPki) {
    sidecar
        .arg("--cert")
        .arg(&pki.server_cert)
        .arg("--key")
        .arg(&pki.server_key)
        .arg("--client-ca")
        .arg(&pki.ca);
}
