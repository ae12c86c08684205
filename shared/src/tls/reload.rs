//! Certificate rotation without restart: TLS configurations built from PEM
//! files that can be built again while connections use them.
//!
//! Each listener or connector holds a [`Reloadable`] and takes
//! [`Reloadable::current`] once per new handshake (a read lock and an `Arc`
//! clone, nothing on the per-byte path). A connection keeps the
//! configuration it was made with, so open tunnels go on untouched while new
//! handshakes use the new certificates.
//!
//! `main` collects every file-backed configuration of its `Config` into a
//! [`Reloader`] and turns each SIGHUP into [`Reloader::reload`] through
//! [`on_hangup`]. A configuration that fails to build again (a missing
//! file, bad PEM, a key that does not match its certificate) keeps the one
//! in use, and the failure is logged: a bad rotation never stops the process.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, ServerConfig};
use tracing::{error, info};

use super::identity::{AllowedSans, Sans};
use super::{TlsError, load_certs, load_key, name_key_files};
use crate::metrics::{Metrics, ReloadResult};

/// What one load produced: the configuration, and the names its own
/// certificate carries, for the "reloaded" log line.
pub struct Loaded<T> {
    /// The new configuration.
    pub config: Arc<T>,
    /// The URI and DNS SANs of our certificate (the chain's leaf).
    pub names: Sans,
}

/// Builds the configuration again from its files.
type Load<T> = Box<dyn Fn() -> Result<Loaded<T>, TlsError> + Send + Sync>;

/// Where a file-backed configuration comes from.
struct Source<T> {
    /// What it is for, in log lines ("sidecar TLS", "cluster chat").
    label: String,
    /// The files it is read from, in log lines.
    files: Vec<PathBuf>,
    load: Load<T>,
}

struct Inner<T> {
    current: RwLock<Arc<T>>,
    /// `None` for a configuration handed over in memory: nothing to reload.
    /// Behind a lock of its own: [`Reloadable::adopt`] replaces it when a
    /// re-read `--config` names other files.
    source: RwLock<Option<Arc<Source<T>>>>,
}

/// A TLS configuration (rustls' `ServerConfig` or `ClientConfig`) that can
/// be replaced while in use. Clones share it: reloading one reloads all.
pub struct Reloadable<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for Reloadable<T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<T> fmt::Debug for Reloadable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.source() {
            Some(source) => f
                .debug_struct("Reloadable")
                .field("label", &source.label)
                .field("files", &source.files)
                .finish_non_exhaustive(),
            None => f.write_str("Reloadable(fixed)"),
        }
    }
}

impl<T> From<Arc<T>> for Reloadable<T> {
    /// A configuration made in memory; [`Reloadable::reload`] keeps it.
    fn from(config: Arc<T>) -> Self {
        Self {
            inner: Arc::new(Inner {
                current: RwLock::new(config),
                source: RwLock::new(None),
            }),
        }
    }
}

impl<T> Reloadable<T> {
    /// Loads the configuration with `load` now (its error is the caller's:
    /// at start-up a bad file is fatal), and keeps `load` for reloads.
    /// `label` and `files` name it in log lines.
    pub fn from_files(
        label: impl Into<String>,
        files: Vec<PathBuf>,
        load: impl Fn() -> Result<Loaded<T>, TlsError> + Send + Sync + 'static,
    ) -> Result<Self, TlsError> {
        let first = load()?;
        Ok(Self {
            inner: Arc::new(Inner {
                current: RwLock::new(first.config),
                source: RwLock::new(Some(Arc::new(Source {
                    label: label.into(),
                    files,
                    load: Box::new(load),
                }))),
            }),
        })
    }

    /// The configuration for a new handshake.
    pub fn current(&self) -> Arc<T> {
        // A poisoned lock still holds a whole `Arc`: writers only swap it.
        self.inner
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Builds the configuration again from its files and, if that works,
    /// uses it for every handshake from now on. Returns the names of the
    /// new certificate, or `None` for a configuration made in memory. On
    /// error the configuration in use stays.
    pub fn reload(&self) -> Result<Option<Sans>, TlsError> {
        let Some(source) = self.source() else {
            return Ok(None);
        };
        let loaded = (source.load)()?;
        *self
            .inner
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = loaded.config;
        Ok(Some(loaded.names))
    }

    /// Whether it is read from files, so that [`Reloadable::reload`] can
    /// change it.
    pub fn is_from_files(&self) -> bool {
        self.source().is_some()
    }

    /// Where it is read from now, if from files.
    fn source(&self) -> Option<Arc<Source<T>>> {
        let source = self.inner.source.read();
        source.unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Takes `other`'s configuration and files as its own: every clone of
    /// this one (the listener's, the [`Reloader`]'s) serves `other`'s
    /// configuration from the next handshake on, and reloads from
    /// `other`'s files. For a re-read `--config` that names other
    /// certificate files.
    pub fn adopt(&self, other: &Self) {
        let source = other.source();
        *self
            .inner
            .source
            .write()
            .unwrap_or_else(PoisonError::into_inner) = source;
        *self
            .inner
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = other.current();
    }

    /// The files it is read from (empty for one made in memory): two
    /// configurations from the same files are built alike.
    pub fn files(&self) -> Vec<PathBuf> {
        self.source()
            .map_or_else(Vec::new, |source| source.files.clone())
    }

    /// Whether `other` is a clone of this one (they share their value).
    pub fn shares(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

/// One file-backed configuration, whatever its type, for the [`Reloader`].
trait Reload: Send + Sync {
    fn reload_and_log(&self) -> bool;
}

impl<T: Send + Sync> Reload for Reloadable<T> {
    /// Reloads and logs the outcome; true when it worked.
    fn reload_and_log(&self) -> bool {
        let Some(source) = self.source() else {
            return true;
        };
        let files = source
            .files
            .iter()
            .map(|path| path.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        match self.reload() {
            Ok(names) => {
                let names = names.unwrap_or_default();
                info!(tls = %source.label, %files, %names, "certificates reloaded");
                true
            }
            Err(err) => {
                error!(
                    tls = %source.label,
                    %files,
                    error = %crate::telemetry::chain(&err),
                    "certificate reload failed; the previous certificates stay in use"
                );
                false
            }
        }
    }
}

/// Every file-backed TLS configuration of a process, reloaded together.
#[derive(Clone, Default)]
pub struct Reloader {
    /// Each configuration, with the address of what its clones share, to
    /// add it only once.
    configs: Vec<(usize, Arc<dyn Reload>)>,
}

/// How a [`Reloader::reload`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadReport {
    /// Configurations built again and in use.
    pub reloaded: usize,
    /// Configurations that failed and kept the previous certificates.
    pub failed: usize,
}

impl ReloadReport {
    /// Adds this reload's outcomes to `h2hop_tls_reloads_total`.
    pub fn count_in(&self, metrics: &Metrics) {
        metrics.tls_reloaded(ReloadResult::Ok, self.reloaded);
        metrics.tls_reloaded(ReloadResult::Failed, self.failed);
    }
}

impl fmt::Debug for Reloader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reloader")
            .field("configs", &self.configs.len())
            .finish()
    }
}

impl Reloader {
    /// A reloader with nothing to reload yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `config` if it is read from files and not already added (the
    /// endpoints of a cluster share one configuration).
    pub fn add<T: Send + Sync + 'static>(&mut self, config: &Reloadable<T>) {
        if !config.is_from_files() {
            return;
        }
        let id = Arc::as_ptr(&config.inner).cast::<()>().addr();
        if self.configs.iter().any(|(seen, _)| *seen == id) {
            return;
        }
        self.configs.push((id, Arc::new(config.clone())));
    }

    /// How many configurations it reloads.
    pub fn len(&self) -> usize {
        self.configs.len()
    }

    /// Whether there is nothing to reload (h2c, no TLS listener).
    pub fn is_empty(&self) -> bool {
        self.configs.is_empty()
    }

    /// Builds every configuration again from its files, logging each
    /// outcome ("certificates reloaded" with the new names, or why not).
    pub fn reload(&self) -> ReloadReport {
        if self.is_empty() {
            info!("no certificate files to reload");
        }
        let mut report = ReloadReport {
            reloaded: 0,
            failed: 0,
        };
        for (_, config) in &self.configs {
            if config.reload_and_log() {
                report.reloaded += 1;
            } else {
                report.failed += 1;
            }
        }
        report
    }
}

/// For the binaries' `main`: a task that reloads `reloader` on every
/// SIGHUP and counts each configuration's outcome in `metrics`
/// (`h2hop_tls_reloads_total`). The signal handler is installed before
/// this returns, so a SIGHUP that arrives once `main` has said "ready"
/// reloads instead of ending the process (the signal's default action).
#[cfg(unix)]
pub fn on_hangup(
    reloader: Reloader,
    metrics: Arc<Metrics>,
) -> io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())?;
    Ok(async move {
        while hangups.recv().await.is_some() {
            info!("SIGHUP: reloading certificates");
            let reloader = reloader.clone();
            // File reads and key parsing: off the async workers.
            match tokio::task::spawn_blocking(move || reloader.reload()).await {
                Ok(report) => report.count_in(&metrics),
                Err(err) => error!(error = %err, "certificate reload did not finish"),
            }
        }
    })
}

/// Without Unix signals there is no SIGHUP: a task that never reloads.
#[cfg(not(unix))]
pub fn on_hangup(
    reloader: Reloader,
    metrics: Arc<Metrics>,
) -> io::Result<impl Future<Output = ()> + Send + 'static> {
    drop((reloader, metrics));
    Ok(std::future::pending())
}

/// The names of a chain's leaf, for log lines.
fn leaf_names(chain: &[CertificateDer<'static>]) -> Sans {
    chain.first().map(Sans::of).unwrap_or_default()
}

/// The hop server configuration, the sidecar's
/// ([`super::hop_server_config_allowing`]), from its certificate chain, key
/// and client CA files; `allowed` stays the same across reloads.
pub fn hop_server_config_files(
    label: &str,
    cert: &Path,
    key: &Path,
    client_ca: &Path,
    allowed: AllowedSans,
) -> Result<Reloadable<ServerConfig>, TlsError> {
    let files = vec![
        cert.to_path_buf(),
        key.to_path_buf(),
        client_ca.to_path_buf(),
    ];
    let (cert, key, client_ca) = (
        cert.to_path_buf(),
        key.to_path_buf(),
        client_ca.to_path_buf(),
    );
    Reloadable::from_files(label, files, move || {
        let chain = load_certs(&cert)?;
        let names = leaf_names(&chain);
        let ca = load_certs(&client_ca)?;
        let config = super::hop_server_config_allowing(chain, load_key(&key)?, ca, &allowed)
            .map_err(|err| name_key_files(err, &cert, &key))?;
        Ok(Loaded { config, names })
    })
}

/// The hop client configuration, the front's toward sidecars
/// ([`super::hop_client_config`]), from its CA, certificate chain and key
/// files.
pub fn hop_client_config_files(
    label: &str,
    ca: &Path,
    cert: &Path,
    key: &Path,
) -> Result<Reloadable<ClientConfig>, TlsError> {
    let files = vec![ca.to_path_buf(), cert.to_path_buf(), key.to_path_buf()];
    let (ca, cert, key) = (ca.to_path_buf(), cert.to_path_buf(), key.to_path_buf());
    Reloadable::from_files(label, files, move || {
        let chain = load_certs(&cert)?;
        let names = leaf_names(&chain);
        let identity = (chain, load_key(&key)?);
        let config = super::hop_client_config(load_certs(&ca)?, Some(identity))
            .map_err(|err| name_key_files(err, &cert, &key))?;
        Ok(Loaded { config, names })
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use h2hop_certs::DevPki;
    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    use super::*;

    /// A file-backed value that loads `value` (and counts its loads).
    fn counting(label: &str, value: u32) -> (Reloadable<u32>, Arc<std::sync::atomic::AtomicUsize>) {
        let loads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = loads.clone();
        let files = vec![PathBuf::from(label)];
        let reloadable = Reloadable::from_files(label, files, move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(Loaded {
                config: Arc::new(value),
                names: Sans::default(),
            })
        });
        (reloadable.unwrap(), loads)
    }

    #[test]
    fn adopting_takes_the_others_value_and_files_for_every_clone() {
        use std::sync::atomic::Ordering::Relaxed;
        let (old, old_loads) = counting("old.pem", 1);
        let served = old.clone();
        let mut reloader = Reloader::new();
        reloader.add(&old);
        let (new, new_loads) = counting("new.pem", 2);
        served.adopt(&new);
        assert_eq!(*old.current(), 2);
        assert_eq!(old.files(), [PathBuf::from("new.pem")]);
        assert_eq!(reloader.reload().failed, 0);
        assert_eq!((old_loads.load(Relaxed), new_loads.load(Relaxed)), (1, 2));
        let fixed: Reloadable<u32> = Arc::new(7).into();
        assert!(!fixed.is_from_files());
        fixed.adopt(&new);
        assert!(fixed.is_from_files());
        assert_eq!(*fixed.current(), 2);
    }

    fn pki(front_uri: &str) -> DevPki {
        DevPki::generate_with(&["localhost".to_owned()], &[front_uri.to_owned()]).unwrap()
    }

    /// A handshake and one byte each way, so that a refused client
    /// certificate (TLS 1.3 reports it after `connect`) fails it too.
    async fn handshake(server: Arc<ServerConfig>, client: Arc<ClientConfig>) -> io::Result<()> {
        let (server_io, client_io) = tokio::io::duplex(64 * 1024);
        let server_side = async {
            let mut tls = TlsAcceptor::from(server).accept(server_io).await?;
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).await?;
            tls.write_all(&byte).await?;
            tls.flush().await
        };
        let client_side = async {
            let name = ServerName::try_from("localhost").unwrap();
            let mut tls = TlsConnector::from(client).connect(name, client_io).await?;
            tls.write_all(b"x").await?;
            tls.flush().await?;
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).await.map(|_| ())
        };
        let both = async { tokio::join!(server_side, client_side) };
        let (server, client) = tokio::time::timeout(Duration::from_secs(5), both)
            .await
            .unwrap();
        server.and(client)
    }

    /// The sidecar's and the front's file-backed configurations, from `dir`.
    fn from_dir(dir: &Path) -> (Reloadable<ServerConfig>, Reloadable<ClientConfig>) {
        let file = |name: &str| dir.join(name);
        let server = hop_server_config_files(
            "sidecar",
            &file("sidecar.pem"),
            &file("sidecar-key.pem"),
            &file("ca.pem"),
            AllowedSans::any(),
        )
        .unwrap();
        let client = hop_client_config_files(
            "front",
            &file("ca.pem"),
            &file("front.pem"),
            &file("front-key.pem"),
        )
        .unwrap();
        (server, client)
    }

    #[tokio::test]
    async fn reload_puts_new_files_into_new_handshakes() {
        let dir = tempfile::tempdir().unwrap();
        pki("spiffe://a/front").write_to(dir.path(), false).unwrap();
        let (server, client) = from_dir(dir.path());
        let (old_server, old_client) = (server.current(), client.current());
        handshake(old_server.clone(), old_client.clone())
            .await
            .unwrap();

        // A whole new PKI, CA included, at the same paths.
        pki("spiffe://b/front").write_to(dir.path(), true).unwrap();
        let names = client.reload().unwrap().unwrap();
        assert_eq!(names.uris, ["spiffe://b/front"]);
        let names = server.reload().unwrap().unwrap();
        assert_eq!(names.dns, ["localhost"]);

        handshake(server.current(), client.current()).await.unwrap();
        // Old and new do not trust each other: the swap really happened.
        assert!(handshake(old_server, client.current()).await.is_err());
        assert!(handshake(server.current(), old_client).await.is_err());
    }

    #[tokio::test]
    async fn failed_reload_keeps_the_configuration_in_use() {
        let dir = tempfile::tempdir().unwrap();
        pki("spiffe://a/front").write_to(dir.path(), false).unwrap();
        let (server, client) = from_dir(dir.path());
        let before = server.current();

        // A key that does not match the certificate.
        let other = pki("spiffe://b/front");
        std::fs::write(dir.path().join("sidecar-key.pem"), &other.server().key).unwrap();
        let err = server.reload().unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err:?}");
        assert!(Arc::ptr_eq(&before, &server.current()));

        // A missing file.
        std::fs::remove_file(dir.path().join("ca.pem")).unwrap();
        let err = client.reload().unwrap_err();
        assert!(matches!(err, TlsError::ReadFile { .. }), "{err:?}");
        assert!(matches!(server.reload(), Err(TlsError::ReadFile { .. })));

        // Handshakes go on with what was loaded before.
        handshake(server.current(), client.current()).await.unwrap();
    }

    #[test]
    fn mismatched_key_names_both_files() {
        let dir = tempfile::tempdir().unwrap();
        pki("spiffe://a/front").write_to(dir.path(), false).unwrap();
        // Keys of another PKI, at the paths of the first one's.
        let other = pki("spiffe://b/front");
        std::fs::write(dir.path().join("front-key.pem"), &other.client().key).unwrap();
        std::fs::write(dir.path().join("sidecar-key.pem"), &other.server().key).unwrap();
        let (cert, key) = (
            dir.path().join("front.pem"),
            dir.path().join("front-key.pem"),
        );
        let (server_cert, server_key) = (
            dir.path().join("sidecar.pem"),
            dir.path().join("sidecar-key.pem"),
        );

        let hop_client = hop_client_config_files("front", &dir.path().join("ca.pem"), &cert, &key);
        let hop_server = hop_server_config_files(
            "sidecar",
            &server_cert,
            &server_key,
            &dir.path().join("ca.pem"),
            AllowedSans::any(),
        );
        for (err, cert, key) in [
            (hop_client.unwrap_err(), &cert, &key),
            (hop_server.unwrap_err(), &server_cert, &server_key),
        ] {
            let text = crate::telemetry::chain(&err);
            assert_eq!(
                text,
                format!(
                    "the private key in {} does not belong to the certificate in {}",
                    key.display(),
                    cert.display()
                )
            );
        }
    }

    #[test]
    fn from_files_fails_at_once_on_a_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = hop_client_config_files("front", &missing, &missing, &missing).unwrap_err();
        assert!(matches!(err, TlsError::ReadFile { .. }), "{err:?}");
    }

    #[test]
    fn reloader_reloads_each_file_backed_configuration_once() {
        let dir = tempfile::tempdir().unwrap();
        let pki = pki("spiffe://a/front");
        pki.write_to(dir.path(), false).unwrap();
        let (server, client) = from_dir(dir.path());
        let fixed: Reloadable<ServerConfig> =
            crate::tls::hop_server_config(pki.server_chain(), pki.server_key(), vec![pki.ca_der()])
                .unwrap()
                .into();
        assert!(!fixed.is_from_files());
        assert_eq!(fixed.reload().unwrap(), None);

        let mut reloader = Reloader::new();
        assert!(reloader.is_empty());
        reloader.add(&server);
        reloader.add(&client);
        // A clone is the same configuration (a cluster's endpoints share one).
        reloader.add(&client.clone());
        reloader.add(&fixed);
        assert_eq!(reloader.len(), 2);
        let report = reloader.reload();
        assert_eq!(
            report,
            ReloadReport {
                reloaded: 2,
                failed: 0
            }
        );

        std::fs::write(dir.path().join("front-key.pem"), "not a key").unwrap();
        let report = reloader.reload();
        assert_eq!(
            report,
            ReloadReport {
                reloaded: 1,
                failed: 1
            }
        );
    }
}
