//! The front as a child process (the built `h2hop-front` binary, with its
//! own allocator) in front of an in-process sidecar and app, so that a
//! test can read the front's resident memory alone from `/proc` while it
//! attacks the front: the app's bodies, the sidecar's buffers and the
//! test's own clients are in another process.
//!
//! [`UnderAttack`] adds what every abuse test checks: a bystander tunnel
//! through the front's plain listener that must keep echoing, and the
//! front's peak resident memory, sampled every 10 ms.
//!
//! The binary comes from [`crate::binaries::dir`], which the test calls
//! before its time limit starts.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::bystander::Bystander;
use crate::harness::Pair;
use crate::process::Process;
use crate::procstat::rss_kib;
use crate::raw_h2::{Raw, tls_h2, tls_h2_small_receive_buffer};

const MIB: f64 = 1024.0 * 1024.0;

/// A front child process serving plain HTTP/1.1 and TLS (HTTP/2 by ALPN),
/// the pair's sidecar (h2c) behind it.
pub struct FrontProcess {
    /// The in-process app and sidecar (the pair's own in-process front is
    /// not used).
    pub pair: Pair,
    /// The running front; dropping it kills it.
    pub process: Process,
    /// Its plain HTTP/1.1 listener.
    pub plain: SocketAddr,
    /// Its TLS listener, certificate from [`Pair::pki`]
    /// (`localhost`, `127.0.0.1`).
    pub tls: SocketAddr,
    _certs: TempDir,
}

/// Starts the pair (h2c between front and sidecar) and the front binary
/// of `bin` with `extra` flags.
pub async fn start(bin: &Path, extra: &[&str]) -> anyhow::Result<FrontProcess> {
    let pair = Pair::builder().h2c().start().await?;
    let certs = tempfile::tempdir()?;
    pair.pki.write_to(certs.path(), false)?;
    let cert = certs.path().join("sidecar.pem");
    let key = certs.path().join("sidecar-key.pem");
    let sidecar = pair.sidecar.to_string();
    let mut args = vec![
        "--h2c",
        "--sidecar",
        &sidecar,
        "--listen",
        "127.0.0.1:0",
        "--tls-listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    let mut args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    args.extend(["--tls-cert".into(), cert.into_os_string()]);
    args.extend(["--tls-key".into(), key.into_os_string()]);
    let process = Process::start(&bin.join("h2hop-front"), &args)
        .await
        .context("starting h2hop-front")?;
    let tls = process.ready_addr("tls_listen")?;
    Ok(FrontProcess {
        pair,
        plain: process.listen()?,
        tls,
        process,
        _certs: certs,
    })
}

impl FrontProcess {
    /// The front's resident set size in bytes.
    pub fn rss(&self) -> anyhow::Result<u64> {
        rss_of(self.process.pid())
    }
}

/// The front under attack: a bystander tunnel echoing through its plain
/// listener and its resident memory sampled, from [`under_attack`].
pub struct UnderAttack {
    /// The front and the pair behind it.
    pub front: FrontProcess,
    bystander: Bystander,
    before: u64,
    peak: Arc<AtomicU64>,
    stop_sampling: CancellationToken,
    sampler: JoinHandle<()>,
}

/// A raw HTTP/2 connection to the front's TLS listener.
pub type TlsRaw = Raw<TlsStream<TcpStream>>;

/// What [`UnderAttack::finish`] measured.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    /// Resident memory before the attack, bytes.
    pub before: u64,
    /// The highest sample during the attack.
    pub peak: u64,
    /// After the attack.
    pub after: u64,
}

impl Figures {
    /// Growth from before to the peak.
    pub fn growth(&self) -> u64 {
        self.peak.saturating_sub(self.before)
    }
}

/// Starts the front binary of `bin` ([`start`], no extra flags), opens
/// the bystander tunnel and takes the first memory sample.
pub async fn under_attack(bin: &Path) -> anyhow::Result<UnderAttack> {
    let front = start(bin, &[]).await?;
    let bystander = Bystander::tunnel(front.plain).await?;
    let before = front.rss()?;
    let peak = Arc::new(AtomicU64::new(before));
    let stop_sampling = CancellationToken::new();
    let (pid, highest, stop) = (front.process.pid(), peak.clone(), stop_sampling.clone());
    let sampler = tokio::spawn(async move {
        while !stop.is_cancelled() {
            if let Ok(rss) = rss_of(pid) {
                highest.fetch_max(rss, Ordering::Relaxed);
            }
            // The sampling period, not a wait for an event.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    Ok(UnderAttack {
        front,
        bystander,
        before,
        peak,
        stop_sampling,
        sampler,
    })
}

impl UnderAttack {
    /// A new raw HTTP/2 connection to the front's TLS listener, past the
    /// SETTINGS exchange.
    pub async fn h2(&self) -> anyhow::Result<TlsRaw> {
        let tls = tls_h2(self.front.tls, self.front.pair.pki.ca_der()).await?;
        Raw::handshake(tls).await
    }

    /// [`UnderAttack::h2`] with a 16 KiB receive buffer: see
    /// [`tls_h2_small_receive_buffer`].
    pub async fn h2_small_receive_buffer(&self) -> anyhow::Result<TlsRaw> {
        let ca = self.front.pair.pki.ca_der();
        let tls = tls_h2_small_receive_buffer(self.front.tls, ca, 16 * 1024).await?;
        Raw::handshake(tls).await
    }

    /// Ends the attack's measurement: prints the memory figures and the
    /// bystander's report for `attack`, and fails if the bystander was cut
    /// or stalled, or if the memory grew by `bound` bytes or more.
    pub async fn finish(self, attack: &str, bound: u64) -> anyhow::Result<Figures> {
        self.stop_sampling.cancel();
        let _ = self.sampler.await;
        let report = self.bystander.stop().await;
        // The last sample, taken here, comes after the attack's own last
        // step, and counts toward the peak.
        let after = self.front.rss()?;
        let figures = Figures {
            before: self.before,
            peak: self.peak.fetch_max(after, Ordering::Relaxed).max(after),
            after,
        };
        eprintln!(
            "{attack}: front RSS before {:.1} MiB, peak {:.1} MiB (growth {:.1} MiB, bound {:.0} MiB), after {:.1} MiB; bystander {report}",
            figures.before as f64 / MIB,
            figures.peak as f64 / MIB,
            figures.growth() as f64 / MIB,
            bound as f64 / MIB,
            figures.after as f64 / MIB,
        );
        if let Some(failure) = &report.failure {
            anyhow::bail!("{attack}: the bystander tunnel was cut: {failure}");
        }
        anyhow::ensure!(
            figures.growth() < bound,
            "{attack}: the front's memory grew without bound"
        );
        Ok(figures)
    }
}

/// The resident set size of process `pid`, in bytes.
fn rss_of(pid: u32) -> anyhow::Result<u64> {
    Ok(rss_kib(pid)? * 1024)
}
