//! Systems under test, started as child processes on loopback in front of
//! an app that is already running: direct (no proxy), the h2hop, nghttpx
//! and HAProxy pairs, each with a middle hop over h2c or over mutual TLS,
//! and the h2hop pair as a TCP tunnel (a `[[tcp]]` listener at the front)
//! beside its floor, two HAProxy processes relaying TCP.
//!
//! Input: a [`Kind`], the [`Traffic`] it carries (so which app is behind
//! it and what its clients speak), the app's address, the [`Binaries`]
//! and the worker count. Output: a [`Running`] whose [`Target`] says where the load
//! generator connects and which pids are the proxies; dropping it kills
//! exactly the processes it started. Called by the `h2hop-bench` binary.
//!
//! Each pair is a sidecar in front of the app and a front in front of the
//! sidecar, the sidecar started (and accepting) first so the front never
//! sees it down. [`Process`] owns the mechanics; [`h2hop_pair`],
//! [`h2hop_tcp`], [`nghttpx`] and [`haproxy`] only build command lines and
//! configs.

#[cfg(test)]
mod grpc_tests;
mod h2hop_pair;
mod h2hop_tcp;
mod haproxy;
mod hop_pki;
mod nghttpx;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};
use h2hop_integration::process::{Output, Process};
use h2hop_integration::scratch::Scratch;

/// How long a system may take until its client port accepts.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A system under test, running: where clients connect, and which
/// processes are the proxies whose CPU and memory count.
#[derive(Debug, Clone)]
pub struct Target {
    /// Short name for tables: [`Kind::name`].
    pub name: String,
    /// Where the load generator connects (HTTP/1.1, WebSocket).
    pub addr: SocketAddr,
    /// Process ids of the proxies (front and sidecar); empty for direct.
    pub proxy_pids: Vec<u32>,
}

/// Evidence lines [`Running::middle_hop_evidence`] returns at most.
const MAX_EVIDENCE: usize = 10;

/// Paths of the h2hop binaries the h2hop systems run (release builds in the
/// benchmark).
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `h2hop-front`.
    pub front: PathBuf,
    /// `h2hop-sidecar`.
    pub sidecar: PathBuf,
}

impl Binaries {
    /// `h2hop-front` and `h2hop-sidecar` in the directory of the running
    /// executable (cargo puts every binary of a profile side by side).
    pub fn beside_current_exe() -> anyhow::Result<Binaries> {
        let exe = std::env::current_exe().context("locating the running executable")?;
        let dir = exe
            .parent()
            .with_context(|| format!("{} has no parent directory", exe.display()))?;
        Binaries::in_dir(dir)
    }

    /// `h2hop-front` and `h2hop-sidecar` in `dir`; an error naming the
    /// missing one (build them with `cargo build --release --workspace`).
    pub fn in_dir(dir: &Path) -> anyhow::Result<Binaries> {
        let bins = Binaries {
            front: dir.join("h2hop-front"),
            sidecar: dir.join("h2hop-sidecar"),
        };
        for path in [&bins.front, &bins.sidecar] {
            if !path.is_file() {
                bail!(
                    "{} not found; build it with `cargo build --release --workspace`",
                    path.display()
                );
            }
        }
        Ok(bins)
    }
}

/// What a system carries, which decides how each hop is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    /// HTTP/1.1 and WebSocket clients in, an HTTP/1.1 app behind (the echo
    /// app): the middle hop carries WebSockets as RFC 8441 extended CONNECT.
    Http1,
    /// gRPC: HTTP/2 clients with prior knowledge in, an h2c app behind
    /// (the gRPC app), HTTP/2 at every hop so that trailers pass.
    Grpc,
}

/// How a pair's middle hop is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// Cleartext HTTP/2 with prior knowledge.
    H2c,
    /// HTTP/2 over TLS, ALPN `h2`, the front presenting a client
    /// certificate that the sidecar verifies (and the front the sidecar's),
    /// from a fresh [`hop_pki`].
    Mtls,
}

/// Which system to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Client straight to the app: the baseline of every ratio.
    Direct,
    /// h2hop-front → cleartext HTTP/2 → h2hop-sidecar.
    H2hopH2c,
    /// h2hop-front → HTTP/2 over mutual TLS → h2hop-sidecar.
    H2hopMtls,
    /// nghttpx → cleartext HTTP/2 → nghttpx.
    Nghttpx,
    /// nghttpx → HTTP/2 over mutual TLS → nghttpx.
    NghttpxMtls,
    /// HAProxy → cleartext HTTP/2 → HAProxy.
    Haproxy,
    /// HAProxy → HTTP/2 over mutual TLS → HAProxy.
    HaproxyMtls,
    /// Two HAProxy processes in TCP mode, one TCP connection per client
    /// connection at each hop: no HTTP is parsed and nothing is
    /// multiplexed. Not a peer but a floor: what two relaying processes in
    /// the chain cost on this machine before any HTTP work.
    TcpRelay,
    /// h2hop-front's `[[tcp]]` listener → one CONNECT stream (RFC 9113
    /// §8.5) per client connection over cleartext HTTP/2 → h2hop-sidecar,
    /// which dials the app (on its `--tcp-allow` list). Bytes pass
    /// unchanged, so the WebSocket workloads run through it as through
    /// [`Kind::TcpRelay`], the floor it is held against.
    H2hopTcp,
    /// [`Kind::H2hopTcp`] with the middle hop over mutual TLS.
    H2hopTcpMtls,
    /// [`Kind::H2hopTcp`] in the `connect-tcp` form: extended CONNECT
    /// (RFC 8441 §4) with `:protocol connect-tcp`, the bytes in RFC 9297
    /// capsules.
    H2hopConnectTcp,
}

impl Kind {
    /// Short name for tables and `--systems`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Direct => "direct",
            Kind::H2hopH2c => "h2hop-h2c",
            Kind::H2hopMtls => "h2hop-mtls",
            Kind::Nghttpx => "nghttpx",
            Kind::NghttpxMtls => "nghttpx-mtls",
            Kind::Haproxy => "haproxy",
            Kind::HaproxyMtls => "haproxy-mtls",
            Kind::TcpRelay => "tcp-relay",
            Kind::H2hopTcp => "h2hop-tcp",
            Kind::H2hopTcpMtls => "h2hop-tcp-mtls",
            Kind::H2hopConnectTcp => "h2hop-connect-tcp",
        }
    }

    /// Whether the idle-memory workload runs on it: not on the TCP relay,
    /// a floor for time rather than memory, whose front holds two
    /// descriptors per tunnel (10,000 idle tunnels pass a 20,000 limit).
    pub fn holds_idle_tunnels(self) -> bool {
        self != Kind::TcpRelay
    }

    /// Whether the kind has an HTTP/2 middle hop whose sidecar log shows
    /// the CONNECT streams (every pair but the TCP relay).
    pub fn has_http2_hop(self) -> bool {
        self.hop().is_some()
    }

    /// The middle hop's transport; `None` for direct and the TCP relay.
    pub fn hop(self) -> Option<Hop> {
        match self {
            Kind::H2hopH2c
            | Kind::Nghttpx
            | Kind::Haproxy
            | Kind::H2hopTcp
            | Kind::H2hopConnectTcp => Some(Hop::H2c),
            Kind::H2hopMtls | Kind::NghttpxMtls | Kind::HaproxyMtls | Kind::H2hopTcpMtls => {
                Some(Hop::Mtls)
            }
            Kind::Direct | Kind::TcpRelay => None,
        }
    }

    /// Every kind, direct first (ratios are taken against it).
    pub fn all() -> [Kind; 11] {
        [
            Kind::Direct,
            Kind::H2hopH2c,
            Kind::H2hopMtls,
            Kind::Nghttpx,
            Kind::NghttpxMtls,
            Kind::Haproxy,
            Kind::HaproxyMtls,
            Kind::TcpRelay,
            Kind::H2hopTcp,
            Kind::H2hopTcpMtls,
            Kind::H2hopConnectTcp,
        ]
    }

    /// The kind whose [`Kind::name`] is `s` (surrounding spaces and case
    /// ignored).
    pub fn parse(s: &str) -> Option<Kind> {
        let s = s.trim();
        Kind::all()
            .into_iter()
            .find(|kind| kind.name().eq_ignore_ascii_case(s))
    }
}

/// What a per-system module prepares for [`launch`].
struct Plan {
    /// The sidecar process, not yet started.
    sidecar: Command,
    /// Where the sidecar accepts the front.
    sidecar_addr: SocketAddr,
    /// The front process, not yet started.
    front: Command,
    /// Where the front accepts clients.
    front_addr: SocketAddr,
    /// Where the sidecar logs its streams, and what a tunnel line
    /// contains; `None` for the TCP relay, which has no HTTP/2 hop, and
    /// for gRPC traffic.
    evidence: Option<Evidence>,
}

/// A log file and the substrings that together mark an RFC 8441 stream.
#[derive(Debug)]
struct Evidence {
    log: PathBuf,
    marks: &'static [&'static str],
}

/// A running system. Dropping it kills (SIGKILL) and reaps the processes it
/// started, front first, then removes its scratch directory.
#[derive(Debug)]
pub struct Running {
    /// Where clients connect and which pids are the proxies.
    pub target: Target,
    /// Front first, then sidecar; empty for direct.
    children: Vec<Process>,
    /// `None` for direct and the TCP relay.
    evidence: Option<Evidence>,
    /// Configs, certificates and logs; `None` for direct. Declared after
    /// `children` only for clarity: [`Drop`] kills them before any field drops.
    scratch: Option<Scratch>,
}

impl Running {
    /// Evidence that the middle hop is HTTP/2 extended CONNECT: up to
    /// [`MAX_EVIDENCE`] lines of the sidecar's log that show a WebSocket
    /// arriving as an RFC 8441 CONNECT (h2hop-sidecar: a `kind="tunnel"`
    /// stream, logged when the tunnel closes; nghttpx: `"CONNECT ... HTTP/2"`
    /// with a WebSocket version; HAProxy: `HTTP/2.0 ... upgrade=websocket`,
    /// see `haproxy::CONNECT_MARKS`), or for the h2hop TCP tunnel a
    /// `kind="tcp"` stream (RFC 9113 §8.5 CONNECT). An error for direct, or
    /// if no line matches yet, and for the TCP relay and gRPC traffic.
    pub fn middle_hop_evidence(&self) -> anyhow::Result<Vec<String>> {
        let Some(evidence) = &self.evidence else {
            bail!("{} keeps no middle-hop evidence", self.target.name);
        };
        let file = File::open(&evidence.log)
            .with_context(|| format!("opening {}", evidence.log.display()))?;
        let mut lines = Vec::new();
        for line in BufReader::new(file).lines() {
            let line = line?;
            if evidence.marks.iter().all(|mark| line.contains(mark)) {
                lines.push(line);
                if lines.len() == MAX_EVIDENCE {
                    break;
                }
            }
        }
        if lines.is_empty() {
            bail!(
                "no line of {} contains all of {:?}",
                evidence.log.display(),
                evidence.marks
            );
        }
        Ok(lines)
    }

    /// The scratch directory (configs, certificates, logs); `None` for direct.
    #[cfg(test)]
    pub fn scratch_dir(&self) -> Option<&Path> {
        self.scratch.as_ref().map(Scratch::dir)
    }

    /// The last lines of every process's logs, for error messages; empty
    /// for direct.
    #[cfg(test)]
    pub fn log_tails(&self) -> String {
        self.scratch
            .as_ref()
            .map(Scratch::log_tails)
            .unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Each Process kills its child as it drops, in order.
        self.children.clear();
    }
}

/// Starts `kind` in front of the app at `app`, already running (for
/// [`Traffic::Http1`] an HTTP/1.1 server with a WebSocket echo at `/ws`,
/// for [`Traffic::Grpc`] the h2c gRPC app), each proxy process with
/// `workers` worker threads, and returns once the client port accepts TCP
/// (at most 10 s, else an error with the tails of the processes' logs).
pub async fn start(
    kind: Kind,
    traffic: Traffic,
    app: SocketAddr,
    bins: &Binaries,
    workers: usize,
) -> anyhow::Result<Running> {
    if kind == Kind::Direct {
        return Ok(Running {
            target: Target {
                name: kind.name().to_owned(),
                addr: app,
                proxy_pids: Vec::new(),
            },
            children: Vec::new(),
            evidence: None,
            scratch: None,
        });
    }
    let scratch = Scratch::create(kind.name())?;
    let plan = plan(kind, traffic, app, bins, workers, &scratch)?;
    launch(kind, scratch, plan).await
}

/// The [`Plan`] of a pair: its configs written to `scratch`, its commands
/// built, nothing started.
fn plan(
    kind: Kind,
    traffic: Traffic,
    app: SocketAddr,
    bins: &Binaries,
    workers: usize,
    scratch: &Scratch,
) -> anyhow::Result<Plan> {
    let (h2c, mtls) = (Hop::H2c, Hop::Mtls);
    match kind {
        Kind::H2hopH2c => h2hop_pair::plan(app, traffic, bins, workers, h2c, scratch),
        Kind::H2hopMtls => h2hop_pair::plan(app, traffic, bins, workers, mtls, scratch),
        Kind::Nghttpx => nghttpx::plan(app, traffic, h2c, workers, scratch),
        Kind::NghttpxMtls => nghttpx::plan(app, traffic, mtls, workers, scratch),
        Kind::Haproxy => haproxy::plan(app, traffic, h2c, workers, scratch),
        Kind::HaproxyMtls => haproxy::plan(app, traffic, mtls, workers, scratch),
        // TCP carries any protocol alike.
        Kind::TcpRelay => haproxy::plan_tcp_relay(app, workers, scratch),
        Kind::H2hopTcp | Kind::H2hopTcpMtls | Kind::H2hopConnectTcp => {
            h2hop_tcp::plan(app, traffic, bins, workers, kind, scratch)
        }
        Kind::Direct => bail!("direct has no processes"),
    }
}

/// Starts the sidecar, waits for it, starts the front, waits for it. The
/// [`Running`] exists from the first spawn on, so an error on the way kills
/// whatever was already started.
async fn launch(kind: Kind, scratch: Scratch, plan: Plan) -> anyhow::Result<Running> {
    let Plan {
        sidecar,
        sidecar_addr,
        front,
        front_addr,
        evidence,
    } = plan;
    let mut running = Running {
        target: Target {
            name: kind.name().to_owned(),
            addr: front_addr,
            proxy_pids: Vec::new(),
        },
        children: Vec::new(),
        evidence,
        scratch: None,
    };
    let sidecar = spawn(sidecar, &scratch, "sidecar")?;
    running.children.push(sidecar);
    let ready = running.children[0].wait_accepting(sidecar_addr, READY_TIMEOUT);
    ready.await.with_context(|| scratch.log_tails())?;
    let front = spawn(front, &scratch, "front")?;
    // Front first, so that Drop stops the traffic before the sidecar.
    running.children.insert(0, front);
    let ready = running.children[0].wait_accepting(front_addr, READY_TIMEOUT);
    ready.await.with_context(|| scratch.log_tails())?;
    if let Some(status) = running.children[1].try_wait()? {
        bail!("the sidecar exited with {status}{}", scratch.log_tails());
    }
    running.target.proxy_pids = running.children.iter().map(Process::pid).collect();
    running.scratch = Some(scratch);
    Ok(running)
}

/// Spawns `command` with stdout to `{name}.out.log` and stderr to
/// `{name}.log` in `scratch`.
fn spawn(mut command: Command, scratch: &Scratch, name: &str) -> anyhow::Result<Process> {
    let output = Output::Files {
        stdout: scratch.path(&format!("{name}.out.log")),
        stderr: scratch.path(&format!("{name}.log")),
    };
    Process::spawn(name, &mut command, output)
}
