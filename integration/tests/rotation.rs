//! Certificate rotation without restart: the whole PKI, CA included, is
//! replaced on disk under a tunnel that keeps echoing; both proxies reload
//! (in-process through their reload handle, and as binaries on a real
//! SIGHUP). The open tunnel goes on, new connections use the new
//! certificates, a front that still has the old ones is refused, and a
//! reload that fails keeps the certificates in use; the binaries count
//! each outcome in `h2hop_tls_reloads_total`.
//!
//! The sidecar allows one stream per connection (`--max-streams 1`), so
//! every new tunnel makes the front open a new TLS connection: a new tunnel
//! only works if both sides reloaded.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use clap::Parser as _;
use h2hop::tls::reload::{ReloadReport, Reloader};
use h2hop_certs::DevPki;
use h2hop_integration::app::TestApp;
use h2hop_integration::binaries;
use h2hop_integration::client::{echo_roundtrip, ws_connect};
use h2hop_integration::harness::{loopback, within};
use h2hop_integration::process::{Process, Signal};
use h2hop_integration::scrape;
use h2hop_integration::wait::eventually;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

/// A fresh PKI for a sidecar on loopback, its five PEM files written into
/// `dir` over whatever is there.
fn write_pki(dir: &Path) -> DevPki {
    let pki = DevPki::generate(&["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    pki.write_to(dir, true).unwrap();
    pki
}

fn file(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

/// The sidecar's flags: TLS files from `dir`, one stream per connection.
fn sidecar_flags(dir: &Path, app: SocketAddr) -> Vec<String> {
    [
        "--app",
        &app.to_string(),
        "--cert",
        &file(dir, "sidecar.pem"),
        "--key",
        &file(dir, "sidecar-key.pem"),
        "--client-ca",
        &file(dir, "ca.pem"),
        "--max-streams",
        "1",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// The front's flags: TLS files toward `sidecar` from `dir`.
fn front_flags(dir: &Path, sidecar: SocketAddr) -> Vec<String> {
    [
        "--sidecar",
        &sidecar.to_string(),
        "--ca",
        &file(dir, "ca.pem"),
        "--cert",
        &file(dir, "front.pem"),
        "--key",
        &file(dir, "front-key.pem"),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// A front in-process, configured by its flags as `main` would be, with a
/// TLS listener for clients when `client_tls` (the sidecar's certificate
/// files of `dir` serve, being for `localhost`). Returns its plain and TLS
/// addresses and its reload handle.
async fn start_front(
    dir: &Path,
    sidecar: SocketAddr,
    client_tls: bool,
    stop: &CancellationToken,
) -> (SocketAddr, Option<SocketAddr>, Reloader) {
    let mut argv = vec!["h2hop-front".to_owned()];
    argv.extend(front_flags(dir, sidecar));
    if client_tls {
        let tls = [
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            &file(dir, "sidecar.pem"),
            "--tls-key",
            &file(dir, "sidecar-key.pem"),
        ];
        argv.extend(tls.map(str::to_owned));
    }
    let config = h2hop_front::args::Args::try_parse_from(argv)
        .unwrap()
        .config()
        .unwrap();
    let reloader = config.reloader();
    let plain = loopback().await.unwrap();
    let front = plain.local_addr().unwrap();
    let (tls, front_tls) = if client_tls {
        let listener = loopback().await.unwrap();
        let addr = listener.local_addr().unwrap();
        (Some(listener), Some(addr))
    } else {
        (None, None)
    };
    let listeners = h2hop_front::Listeners {
        plain,
        tls,
        admin: None,
        tcp: Vec::new(),
    };
    tokio::spawn(h2hop_front::run(config, listeners, stop.child_token()));
    (front, front_tls, reloader)
}

/// A sidecar in-process, configured by its flags; its address and reload handle.
async fn start_sidecar(
    dir: &Path,
    app: SocketAddr,
    stop: &CancellationToken,
) -> (SocketAddr, Reloader) {
    let mut argv = vec!["h2hop-sidecar".to_owned()];
    argv.extend(sidecar_flags(dir, app));
    let config = h2hop_sidecar::args::Args::try_parse_from(argv)
        .unwrap()
        .config()
        .unwrap();
    let reloader = config.reloader();
    let listener = loopback().await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(h2hop_sidecar::run(
        config,
        listener.into(),
        stop.child_token(),
    ));
    (addr, reloader)
}

/// How long [`Traffic::wait_for_more`] waits for its echoes.
const ECHOES_BOUND: Duration = Duration::from_secs(10);

/// A WebSocket through `front` echoing one message after another in the
/// background until [`Traffic::finish`]; any lost or wrong echo fails it.
struct Traffic {
    echoed: Arc<AtomicUsize>,
    stop: CancellationToken,
    task: JoinHandle<WebSocketStream<TcpStream>>,
}

impl Traffic {
    async fn start(front: SocketAddr) -> Traffic {
        let (mut ws, response) = ws_connect(front, "/ws", &[]).await.unwrap();
        assert_eq!(response.status(), 101);
        let echoed = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let (count, stopped) = (echoed.clone(), stop.clone());
        let task = tokio::spawn(async move {
            while !stopped.is_cancelled() {
                let n = count.load(Ordering::SeqCst);
                let text = format!("message {n}");
                let echo = echo_roundtrip(&mut ws, Message::text(text.clone()))
                    .await
                    .unwrap_or_else(|err| panic!("the open tunnel broke after {n} echoes: {err}"));
                assert_eq!(echo, Message::text(text));
                count.fetch_add(1, Ordering::SeqCst);
                // Paces the traffic; nothing waits on this pause.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            ws
        });
        let traffic = Traffic { echoed, stop, task };
        traffic.wait_for_more(3).await;
        traffic
    }

    /// Waits until `more` further messages have been echoed, for at most
    /// [`ECHOES_BOUND`].
    async fn wait_for_more(&self, more: usize) {
        let target = self.echoed.load(Ordering::SeqCst) + more;
        let echoed = || self.echoed.load(Ordering::SeqCst);
        eventually(ECHOES_BOUND, || {
            self.task.is_finished() || echoed() >= target
        })
        .await;
        let done = echoed();
        assert!(
            done >= target || !self.task.is_finished(),
            "the echo loop ended"
        );
        assert!(
            done >= target,
            "{} of {more} more echoes within {ECHOES_BOUND:?}",
            done + more - target
        );
    }

    /// Stops the loop; the tunnel is still open and echoes once more.
    async fn finish(self) -> usize {
        self.stop.cancel();
        let mut ws = self.task.await.expect("the echo loop failed");
        let last = echo_roundtrip(&mut ws, Message::text("last"))
            .await
            .unwrap();
        assert_eq!(last, Message::text("last"));
        self.echoed.load(Ordering::SeqCst)
    }
}

/// A new tunnel through `front`: 101 and one echo, or the status it got.
async fn new_tunnel(front: SocketAddr) -> Result<(), u16> {
    let (mut ws, _) = match ws_connect(front, "/ws", &[]).await {
        Ok(opened) => opened,
        Err(err) => match err.downcast_ref::<tungstenite::Error>() {
            Some(tungstenite::Error::Http(response)) => return Err(response.status().as_u16()),
            _ => panic!("no answer to the upgrade: {err:#}"),
        },
    };
    let echo = echo_roundtrip(&mut ws, Message::text("new")).await.unwrap();
    assert_eq!(echo, Message::text("new"));
    Ok(())
}

/// A TLS handshake with the front's client listener, trusting only `ca`.
async fn client_handshake(
    front_tls: SocketAddr,
    ca: CertificateDer<'static>,
) -> std::io::Result<()> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(front_tls).await?;
    let name = ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map(drop)
}

/// In-process: PKI A is replaced by PKI B under running traffic, and the
/// reload handles of both proxies are called. The tunnel keeps echoing; a
/// new tunnel (on a new upstream connection) works; clients of the TLS
/// listener see B's certificate; a fresh front with A's files, which
/// worked before, is refused. Then a broken reload keeps B in use.
#[tokio::test]
async fn pki_rotates_under_traffic_in_process() {
    within(async {
        let stop = CancellationToken::new();
        let _stop = stop.clone().drop_guard();
        let app = TestApp::spawn(loopback().await.unwrap(), stop.child_token()).unwrap();
        let live = tempfile::tempdir().unwrap();
        let pki_a = write_pki(live.path());
        // A's files, kept aside for a front that never rotates.
        let stale = tempfile::tempdir().unwrap();
        pki_a.write_to(stale.path(), false).unwrap();

        let (sidecar, sidecar_reloader) = start_sidecar(live.path(), app.addr, &stop).await;
        let (front, front_tls, front_reloader) =
            start_front(live.path(), sidecar, true, &stop).await;
        let front_tls = front_tls.unwrap();
        assert_eq!(front_reloader.len(), 2, "sidecar TLS and client TLS");

        let traffic = Traffic::start(front).await;
        client_handshake(front_tls, pki_a.ca_der()).await.unwrap();
        let (stale_front, _, _) = start_front(stale.path(), sidecar, false, &stop).await;
        assert_eq!(new_tunnel(stale_front).await, Ok(()));

        // Rotation: a whole new PKI at the same paths, then the reloads.
        let pki_b = write_pki(live.path());
        let both = ReloadReport {
            reloaded: 2,
            failed: 0,
        };
        let one = ReloadReport {
            reloaded: 1,
            failed: 0,
        };
        assert_eq!(sidecar_reloader.reload(), one);
        assert_eq!(front_reloader.reload(), both);
        traffic.wait_for_more(5).await;

        assert_eq!(new_tunnel(front).await, Ok(()), "a new connection with B");
        client_handshake(front_tls, pki_b.ca_der()).await.unwrap();
        assert!(client_handshake(front_tls, pki_a.ca_der()).await.is_err());
        // A front started now with A's files: the sidecar trusts only B.
        let (stale_front, _, _) = start_front(stale.path(), sidecar, false, &stop).await;
        assert_eq!(new_tunnel(stale_front).await, Err(502));

        // A broken rotation: keys that do not match their certificates.
        let stray = DevPki::generate(&["localhost".to_owned()]).unwrap();
        std::fs::write(live.path().join("sidecar-key.pem"), &stray.server().key).unwrap();
        std::fs::write(live.path().join("front-key.pem"), "not a key").unwrap();
        let failed = |n| ReloadReport {
            reloaded: 0,
            failed: n,
        };
        assert_eq!(sidecar_reloader.reload(), failed(1));
        assert_eq!(front_reloader.reload(), failed(2));
        assert_eq!(new_tunnel(front).await, Ok(()), "B still in use");
        client_handshake(front_tls, pki_b.ca_der()).await.unwrap();

        let echoed = traffic.finish().await;
        assert!(echoed >= 8, "{echoed}");
    })
    .await;
}

/// The series that count certificate reloads by result.
const TLS_RELOADS_OK: &str = "h2hop_tls_reloads_total{result=\"ok\"}";
const TLS_RELOADS_FAILED: &str = "h2hop_tls_reloads_total{result=\"failed\"}";

/// How long a binary may take to log what a test waits for.
const LOG_WAIT: Duration = Duration::from_secs(10);

/// The binaries on a real SIGHUP: both reload the rotated PKI and log it,
/// the tunnel through them keeps echoing, a new tunnel works, a front with
/// the old files is refused, and a SIGHUP over a broken key logs the
/// failure and changes nothing; SIGTERM still ends both with 0.
#[tokio::test]
async fn binaries_reload_certificates_on_sighup() {
    let bin = binaries::dir();
    within(async {
        let stop = CancellationToken::new();
        let _stop = stop.clone().drop_guard();
        let app = TestApp::spawn(loopback().await.unwrap(), stop.child_token()).unwrap();
        let live = tempfile::tempdir().unwrap();
        let pki_a = write_pki(live.path());
        let stale = tempfile::tempdir().unwrap();
        pki_a.write_to(stale.path(), false).unwrap();

        let listen = [
            "--listen",
            "127.0.0.1:0",
            "--drain-timeout",
            "1s",
            "--admin-listen",
            "127.0.0.1:0",
        ]
        .map(str::to_owned);
        let mut flags = listen.to_vec();
        flags.extend(sidecar_flags(live.path(), app.addr));
        let sidecar_bin = bin.join("h2hop-sidecar");
        let mut sidecar = Process::start(&sidecar_bin, &flags).await.unwrap();
        let sidecar_addr = sidecar.listen().unwrap();
        let mut flags = listen.to_vec();
        flags.extend(front_flags(live.path(), sidecar_addr));
        let mut front = Process::start(&bin.join("h2hop-front"), &flags)
            .await
            .unwrap();
        let front_addr = front.listen().unwrap();

        let traffic = Traffic::start(front_addr).await;
        write_pki(live.path());
        sidecar.signal(Signal::Hup).unwrap();
        front.signal(Signal::Hup).unwrap();
        let reloaded = sidecar
            .wait_for_line(&["certificates reloaded"], LOG_WAIT)
            .await
            .unwrap();
        assert!(reloaded.contains("sidecar.pem"), "{reloaded}");
        let reloaded = front
            .wait_for_line(&["certificates reloaded"], LOG_WAIT)
            .await
            .unwrap();
        assert!(reloaded.contains("h2hop-front"), "{reloaded}");
        // Each binary has one file-backed configuration: one `ok` each.
        let (sidecar_admin, front_admin) = (
            sidecar.ready_addr("admin").unwrap(),
            front.ready_addr("admin").unwrap(),
        );
        for admin in [sidecar_admin, front_admin] {
            let text = scrape::wait_for_value(admin, TLS_RELOADS_OK, 1.0)
                .await
                .unwrap();
            assert_eq!(
                scrape::value(&text, TLS_RELOADS_FAILED),
                Some(0.0),
                "{text}"
            );
        }
        traffic.wait_for_more(5).await;

        assert_eq!(
            new_tunnel(front_addr).await,
            Ok(()),
            "a new connection with B"
        );
        let (stale_front, _, _) = start_front(stale.path(), sidecar_addr, false, &stop).await;
        assert_eq!(new_tunnel(stale_front).await, Err(502));

        // A broken key: the failure is logged, the process goes on with B.
        std::fs::write(live.path().join("sidecar-key.pem"), "not a key").unwrap();
        sidecar.signal(Signal::Hup).unwrap();
        let failed = sidecar
            .wait_for_line(&["certificate reload failed"], LOG_WAIT)
            .await
            .unwrap();
        assert!(failed.contains("ERROR"), "{failed}");
        let text = scrape::wait_for_value(sidecar_admin, TLS_RELOADS_FAILED, 1.0)
            .await
            .unwrap();
        assert_eq!(scrape::value(&text, TLS_RELOADS_OK), Some(1.0), "{text}");
        assert_eq!(new_tunnel(front_addr).await, Ok(()), "B still in use");
        traffic.wait_for_more(2).await;
        assert!(traffic.finish().await >= 10);

        sidecar.signal(Signal::Term).unwrap();
        front.signal(Signal::Term).unwrap();
        let status = sidecar.wait(LOG_WAIT).await.unwrap();
        assert_eq!(status.code(), Some(0), "the sidecar exited with {status}");
        let status = front.wait(LOG_WAIT).await.unwrap();
        assert_eq!(status.code(), Some(0), "the front exited with {status}");
    })
    .await;
}
