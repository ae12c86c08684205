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
//! Input: the app address, the traffic, the worker count and a scratch
//! directory.
//! Output: a [`Plan`] for [`super::start`]. The command lines are
//! [`h2hop_integration::interop`]'s, which runs each half alone opposite
//! an in-process h2hop.

use std::net::SocketAddr;

use anyhow::Context as _;
use h2hop_integration::interop::{EXTENDED_CONNECT_MARKS, front_command, sidecar_command};
use h2hop_integration::process::{find_program, free_port};
use h2hop_integration::scratch::Scratch;

use super::{Evidence, Plan, Traffic};

/// Streams one middle-hop connection may carry, as h2hop-sidecar's
/// `--max-streams` default, instead of nghttpx's 100.
const MAX_STREAMS: &str = "--frontend-http2-max-concurrent-streams=1000";

/// Picks ports and builds both nghttpx command lines.
pub(super) fn plan(
    app: SocketAddr,
    traffic: Traffic,
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
        evidence: (traffic == Traffic::Http1).then_some(Evidence {
            log: sidecar_log,
            marks: EXTENDED_CONNECT_MARKS,
        }),
    })
}
