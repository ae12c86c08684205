//! Live reload of routes and clusters. The routing the front uses now is
//! one immutable [`Snapshot`] (clusters and route table) behind an atomic
//! swap ([`LiveRouting`]); [`RoutingReload`] re-reads the `--config` file
//! and swaps a new snapshot in.
//!
//! Input: the config file, re-read on SIGHUP ([`on_hangup`], spawned by
//! `main`), on a change the [`watch`]er sees (`--config-watch-interval`),
//! or when a library caller asks ([`RoutingReload::reload`]). Output: the
//! snapshot that new requests and tunnels use. [`crate::listener`] builds
//! the first one and attaches the handle; [`crate::dispatch`] loads the
//! snapshot once per request and holds it only until the request's stream
//! to the sidecar is open (the relay and the response body hold the
//! stream, not the snapshot).
//!
//! The file's `[[certificate]]` tables are read again too: with the
//! `--tls-*` flags they make a new TLS listener configuration, which the
//! listener's [`Reloadable`] adopts (new handshakes use it) in the same
//! reload as the routing.
//!
//! A bad file changes nothing, routing or certificates: the error is
//! logged with its cause chain. So does a file whose `[[tcp]]` entries
//! listen elsewhere ([`ReloadError::TcpListeners`]): sockets are bound once;
//! the other keys of an entry (cluster, target, form, idle timeout, name)
//! apply to the connections accepted after the reload.
//! A good one keeps each cluster whose settings are unchanged (same name,
//! endpoints, timeouts, TLS files and server name, `max_connections`,
//! `health_check`, outlier ejection and retry policy) as the same object,
//! with its connections and its endpoints' health; a changed cluster gets a new
//! one, and a removed one leaves the snapshot. A cluster no snapshot holds
//! any more is dropped with its connections' request handles: h2 then
//! lets the streams still open (live tunnels, bodies) run to their end and
//! closes each connection with GOAWAY (NO_ERROR) after its last stream
//! (RFC 9113 §6.8), resetting none of them.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use h2hop::metrics::{Metrics, ReloadResult};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use h2hop::tls::reload::Reloadable;

use crate::config_file::{self, ConfigError};
use crate::edge_tls_config::{self, EdgeTlsError, EdgeTlsFlags};
use crate::routes::{RouteTable, Routing};
use crate::tcp_config::{self, TcpService};
use crate::upstream::{Cluster, UpstreamConfig, UpstreamTls, health};

/// The clusters and routes one request is routed with.
pub(crate) struct Snapshot {
    /// The sidecar clusters, indexed by the routes.
    pub(crate) clusters: Vec<Arc<Cluster>>,
    /// Routes in order; the first match wins.
    pub(crate) routes: RouteTable,
    /// The TCP services, by listener position ([`crate::tcp_tunnel`]
    /// reads its entry at each accept).
    pub(crate) tcp: Vec<TcpService>,
}

impl Snapshot {
    /// The first snapshot: the `--config` file's clusters and routes, or
    /// the one cluster of `upstream` taking every request.
    pub(crate) fn initial(
        routing: Option<Routing>,
        upstream: UpstreamConfig,
        metrics: &Arc<Metrics>,
    ) -> Self {
        match routing {
            Some(routing) => Self {
                clusters: routing
                    .clusters
                    .into_iter()
                    .map(|(name, endpoints)| checked_cluster(name, endpoints, metrics))
                    .collect(),
                routes: routing.routes,
                tcp: Vec::new(),
            },
            None => {
                let name = upstream.addr.clone();
                let cluster = checked_cluster(name, vec![upstream], metrics);
                Self {
                    clusters: vec![cluster],
                    routes: RouteTable::single(0),
                    tcp: Vec::new(),
                }
            }
        }
    }

    /// This snapshot serving the TCP services `tcp`.
    pub(crate) fn with_tcp(mut self, tcp: Vec<TcpService>) -> Self {
        self.tcp = tcp;
        self
    }
}

/// A new shared cluster, its health checks (if it has any) started: they
/// end once the cluster is dropped.
fn checked_cluster(
    name: String,
    endpoints: Vec<UpstreamConfig>,
    metrics: &Arc<Metrics>,
) -> Arc<Cluster> {
    let cluster = Arc::new(Cluster::new(name, endpoints, metrics.clone()));
    health::start(&cluster, metrics);
    cluster
}

/// The snapshot in use now. `arc-swap` rather than `RwLock<Arc<_>>`: a
/// request's load is one reference count increment and never waits
/// behind a reload, where a lock adds two more atomic writes on a line
/// every worker shares.
pub(crate) struct LiveRouting {
    current: ArcSwap<Snapshot>,
}

impl LiveRouting {
    pub(crate) fn new(snapshot: Snapshot) -> Self {
        Self {
            current: ArcSwap::from_pointee(snapshot),
        }
    }

    /// The snapshot for one request: hold it while routing and opening
    /// the stream, not longer (a removed cluster drains once no request
    /// holds a snapshot that has it).
    pub(crate) fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    fn store(&self, snapshot: Snapshot) {
        self.current.store(Arc::new(snapshot));
    }
}

/// Re-reads the `--config` file and swaps the routing in. Clones share
/// one front: the one [`crate::run`] serves with the [`crate::Config`]
/// that holds it. Reloads are serialized.
#[derive(Clone, Default)]
pub struct RoutingReload {
    attached: Arc<Mutex<Option<Attached>>>,
}

impl std::fmt::Debug for RoutingReload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RoutingReload")
    }
}

/// What a reload needs from the running front.
struct Attached {
    /// The `--config` file; `None` when the routing came from the flags.
    file: Option<PathBuf>,
    /// The flags' sidecar settings: the timeouts every endpoint takes.
    flags: UpstreamConfig,
    live: Arc<LiveRouting>,
    metrics: Arc<Metrics>,
    /// The TLS listener's configuration and the flags it was built from;
    /// `None` without a TLS listener.
    client_tls: Option<(Reloadable<rustls::ServerConfig>, EdgeTlsFlags)>,
}

/// What a reload changed, by cluster name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Clusters new in the file.
    pub added: Vec<String>,
    /// Clusters with unchanged settings: same object, same connections.
    pub kept: Vec<String>,
    /// Clusters whose settings changed: a new cluster; the old one's
    /// connections drain.
    pub replaced: Vec<String>,
    /// Clusters no longer in the file: their connections drain.
    pub removed: Vec<String>,
    /// Routes in the new table.
    pub routes: usize,
    /// `[[certificate]]` tables the TLS listener now serves (besides its
    /// default certificate).
    pub certificates: usize,
}

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// [`crate::run`] has not started with this handle's configuration.
    #[error("the front is not serving yet")]
    NotServing,
    /// The routing came from the flags: there is no file to re-read.
    #[error("no --config file to reload")]
    NoConfigFile,
    /// The file is unusable; the routing in use stays.
    #[error("--config {}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: ConfigError,
    },
    /// The file's `[[tcp]]` entries listen elsewhere than those in use
    /// (added, removed, moved or reordered): listeners are bound once, at
    /// start, so this takes a restart. Nothing else changed either.
    #[error("--config {}: [[tcp]] listen addresses changed from {before:?} to {after:?}; restart to move TCP listeners", path.display())]
    TcpListeners {
        /// The file.
        path: PathBuf,
        /// The listen addresses in use, in order.
        before: Vec<std::net::SocketAddr>,
        /// The file's, in order.
        after: Vec<std::net::SocketAddr>,
    },
    /// The file's `[[certificate]]` tables (or the files they name) do not
    /// make a TLS configuration; routing and certificates in use stay.
    #[error("--config {}: certificates", path.display())]
    ClientTls {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the table or file.
        #[source]
        source: EdgeTlsError,
    },
}

impl RoutingReload {
    /// Connects the handle to the front now serving `live`.
    pub(crate) fn attach(
        &self,
        file: Option<PathBuf>,
        flags: UpstreamConfig,
        live: Arc<LiveRouting>,
        metrics: Arc<Metrics>,
        client_tls: Option<(Reloadable<rustls::ServerConfig>, EdgeTlsFlags)>,
    ) {
        let attached = Attached {
            file,
            flags,
            live,
            metrics,
            client_tls,
        };
        *self.lock() = Some(attached);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Attached>> {
        self.attached.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Re-reads the file and, if it is valid, swaps its routing in. Reads
    /// files and parses keys: call it off the async workers (or accept the
    /// short block, as a test does).
    pub fn reload(&self) -> Result<ReloadSummary, ReloadError> {
        let attached = self.lock();
        let Some(attached) = attached.as_ref() else {
            return Err(ReloadError::NotServing);
        };
        let Some(path) = &attached.file else {
            return Err(ReloadError::NoConfigFile);
        };
        let mut file = config_file::load(path).map_err(|source| ReloadError::File {
            path: path.clone(),
            source,
        })?;
        let old = attached.live.load();
        let tcp = std::mem::take(&mut file.tcp);
        if !tcp_config::same_listeners(&old.tcp, &tcp) {
            let listens = |services: &[TcpService]| services.iter().map(|s| s.listen).collect();
            return Err(ReloadError::TcpListeners {
                path: path.clone(),
                before: listens(&old.tcp),
                after: listens(&tcp),
            });
        }
        // Built before anything is swapped: a bad table changes nothing.
        let certificates = std::mem::take(&mut file.certificates);
        let count = certificates.len();
        let tls_error = |source| ReloadError::ClientTls {
            path: path.clone(),
            source,
        };
        let client_tls = match &attached.client_tls {
            Some((in_use, flags)) => edge_tls_config::client_tls(flags, certificates)
                .map_err(tls_error)?
                .map(|built| (in_use, built)),
            None if count > 0 => return Err(tls_error(EdgeTlsError::NoListener)),
            None => None,
        };
        let routing = file.into_routing(&attached.flags);
        let (snapshot, mut summary) = rebuild(routing, &old, &attached.metrics);
        let snapshot = snapshot.with_tcp(tcp);
        if let Some((in_use, built)) = client_tls {
            in_use.adopt(&built);
        }
        attached.live.store(snapshot);
        summary.certificates = count;
        Ok(summary)
    }

    /// [`RoutingReload::reload`], with its outcome logged (what changed,
    /// or why nothing did) and counted in `h2hop_config_reloads_total`.
    /// True when the new routing is in use.
    pub fn reload_and_log(&self) -> bool {
        let result = self.reload();
        if let Some(attached) = self.lock().as_ref() {
            let counted = match result {
                Ok(_) => ReloadResult::Ok,
                Err(_) => ReloadResult::Failed,
            };
            attached.metrics.config_reloaded(counted);
        }
        match result {
            Ok(summary) => {
                info!(
                    added = ?summary.added,
                    kept = ?summary.kept,
                    replaced = ?summary.replaced,
                    removed = ?summary.removed,
                    routes = summary.routes,
                    certificates = summary.certificates,
                    "configuration reloaded"
                );
                true
            }
            Err(err) => {
                error!(
                    error = %h2hop::telemetry::chain(&err),
                    "configuration reload failed; the routing in use stays"
                );
                false
            }
        }
    }
}

/// The snapshot of `routing`, reusing each cluster of `old` whose
/// settings are unchanged.
fn rebuild(routing: Routing, old: &Snapshot, metrics: &Arc<Metrics>) -> (Snapshot, ReloadSummary) {
    let mut summary = ReloadSummary {
        routes: routing.routes.routes().len(),
        ..ReloadSummary::default()
    };
    let mut clusters = Vec::with_capacity(routing.clusters.len());
    for (name, endpoints) in routing.clusters {
        let previous = old.clusters.iter().find(|cluster| cluster.name() == name);
        let cluster = match previous {
            Some(previous) if same_endpoints(previous, &endpoints) => {
                refresh_tls(previous);
                summary.kept.push(name);
                previous.clone()
            }
            Some(_) => {
                info!(cluster = %name, "cluster changed: new connections; the old ones close once their streams end");
                summary.replaced.push(name.clone());
                checked_cluster(name, endpoints, metrics)
            }
            None => {
                summary.added.push(name.clone());
                checked_cluster(name, endpoints, metrics)
            }
        };
        clusters.push(cluster);
    }
    for cluster in &old.clusters {
        if !clusters.iter().any(|kept| kept.name() == cluster.name()) {
            info!(cluster = %cluster.name(), "cluster removed: its connections close once their streams end");
            summary.removed.push(cluster.name().to_owned());
        }
    }
    let snapshot = Snapshot {
        clusters,
        routes: routing.routes,
        tcp: Vec::new(),
    };
    (snapshot, summary)
}

/// Whether `cluster` was built from exactly `endpoints`.
fn same_endpoints(cluster: &Cluster, endpoints: &[UpstreamConfig]) -> bool {
    let current = cluster.endpoints();
    current.len() == endpoints.len()
        && current
            .iter()
            .zip(endpoints)
            .all(|(endpoint, new)| same_settings(endpoint.config(), new))
}

/// Whether two sidecar settings are the same. Every field is named, so
/// that a new one cannot be forgotten here.
fn same_settings(current: &UpstreamConfig, new: &UpstreamConfig) -> bool {
    let UpstreamConfig {
        addr,
        tls,
        connect_timeout,
        tls_timeout,
        keepalive_interval,
        keepalive_timeout,
        max_connections,
        health_check,
        outlier,
        retry,
    } = current;
    *addr == new.addr
        && same_tls(tls.as_ref(), new.tls.as_ref())
        && *connect_timeout == new.connect_timeout
        && *tls_timeout == new.tls_timeout
        && *keepalive_interval == new.keepalive_interval
        && *keepalive_timeout == new.keepalive_timeout
        && *max_connections == new.max_connections
        && *health_check == new.health_check
        && *outlier == new.outlier
        && *retry == new.retry
}

/// Same server name, and the same TLS configuration or one read from the
/// same files.
fn same_tls(current: Option<&UpstreamTls>, new: Option<&UpstreamTls>) -> bool {
    match (current, new) {
        (None, None) => true,
        (Some(current), Some(new)) => {
            let (a, b) = (&current.config, &new.config);
            current.server_name == new.server_name
                && (a.shares(b) || (!a.files().is_empty() && a.files() == b.files()))
        }
        _ => false,
    }
}

/// A kept cluster's TLS files are read again, as the new file's were, so
/// that its next connection uses them as they are now (its endpoints share
/// one configuration). Its open connections keep theirs.
fn refresh_tls(cluster: &Cluster) {
    let tls = cluster
        .endpoints()
        .first()
        .and_then(|e| e.config().tls.as_ref());
    if let Some(tls) = tls
        && let Err(err) = tls.config.reload()
    {
        warn!(cluster = %cluster.name(), error = %h2hop::telemetry::chain(&err), "kept cluster's TLS files did not load again; its certificates stay");
    }
}

/// For `main`: a task that reloads the routing on every SIGHUP. The signal
/// handler is installed before this returns.
#[cfg(unix)]
pub fn on_hangup(reload: RoutingReload) -> io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())?;
    Ok(async move {
        while hangups.recv().await.is_some() {
            info!("SIGHUP: reloading the configuration file");
            reload_off_workers(&reload).await;
        }
    })
}

/// Without Unix signals there is no SIGHUP: a task that never reloads.
#[cfg(not(unix))]
pub fn on_hangup(reload: RoutingReload) -> io::Result<impl Future<Output = ()> + Send + 'static> {
    drop(reload);
    Ok(std::future::pending())
}

/// File reads and key parsing: off the async workers.
async fn reload_off_workers(reload: &RoutingReload) {
    let reload = reload.clone();
    if let Err(err) = tokio::task::spawn_blocking(move || reload.reload_and_log()).await {
        error!(error = %err, "configuration reload did not finish");
    }
}

/// Reads `file` every `every` and reloads when its content changed from
/// the last one seen, `loaded` at first (content, not modification time: a touch alone reloads nothing, and
/// two writes within the clock's granularity are not missed). A file that
/// cannot be read is skipped until it can (an editor or a ConfigMap
/// swapping it in place); a bad content is reported once, and the next
/// change is tried again. Ends when `stop` is cancelled.
pub(crate) async fn watch(
    reload: RoutingReload,
    file: PathBuf,
    loaded: Option<Vec<u8>>,
    every: Duration,
    stop: CancellationToken,
) {
    let mut seen = loaded;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let Some(now) = read(&file).await else {
            continue;
        };
        if seen.as_ref() == Some(&now) {
            continue;
        }
        seen = Some(now);
        info!(file = %file.display(), "configuration file changed: reloading");
        reload_off_workers(&reload).await;
    }
}

async fn read(file: &Path) -> Option<Vec<u8>> {
    match tokio::fs::read(file).await {
        Ok(content) => Some(content),
        Err(err) => {
            debug!(file = %file.display(), error = %err, "configuration file not readable now");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_file;

    fn metrics() -> Arc<Metrics> {
        Metrics::new("sidecar", "connections", "streams")
    }

    /// The routing of `text`, TLS paths read from `dir`.
    fn routing(text: &str, dir: &Path) -> Routing {
        let file = config_file::parse(text, dir).unwrap();
        file.into_routing(&UpstreamConfig::default())
    }

    fn h2c(name: &str, endpoint: &str) -> String {
        format!("[[cluster]]\nname = \"{name}\"\nendpoints = [\"{endpoint}\"]\nh2c = true\n\n")
    }

    fn find<'a>(snapshot: &'a Snapshot, name: &str) -> &'a Arc<Cluster> {
        let found = snapshot.clusters.iter().find(|c| c.name() == name);
        found.unwrap()
    }

    /// An unchanged cluster is the same object; a changed endpoint makes a
    /// new one; new and missing names are added and removed; the routes
    /// index the new cluster order.
    #[test]
    fn rebuild_keeps_unchanged_clusters_and_reports_the_rest() {
        let dir = Path::new("/nonexistent");
        let before = format!(
            "{}{}{}[[route]]\ncluster = \"gone\"\n",
            h2c("same", "a:1"),
            h2c("moved", "b:1"),
            h2c("gone", "c:1")
        );
        let old = Snapshot::initial(
            Some(routing(&before, dir)),
            UpstreamConfig::default(),
            &metrics(),
        );
        let after = format!(
            "{}{}{}[[route]]\ncluster = \"same\"\n",
            h2c("new", "d:1"),
            h2c("moved", "b:2"),
            h2c("same", "a:1")
        );
        let (new, summary) = rebuild(routing(&after, dir), &old, &metrics());
        let expected = ReloadSummary {
            added: vec!["new".to_owned()],
            kept: vec!["same".to_owned()],
            replaced: vec!["moved".to_owned()],
            removed: vec!["gone".to_owned()],
            routes: 1,
            certificates: 0,
        };
        assert_eq!(summary, expected);
        assert!(Arc::ptr_eq(find(&old, "same"), find(&new, "same")));
        assert!(!Arc::ptr_eq(find(&old, "moved"), find(&new, "moved")));
        assert_eq!(new.clusters[2].name(), "same");
        assert_eq!(
            new.routes.find("x", "/").unwrap().cluster,
            crate::weighted::ClusterChoice::One(2)
        );
    }

    /// TLS clusters: the same files and server name keep the cluster
    /// (loaded twice, they are two configurations); another server name
    /// or h2c instead replaces it.
    #[test]
    fn tls_clusters_compare_by_files_and_server_name() {
        let dir = tempfile::tempdir().unwrap();
        let pki = h2hop_certs::DevPki::generate(&["sidecar.internal".to_owned()]).unwrap();
        pki.write_to(dir.path(), false).unwrap();
        let tls = "[[cluster]]\nname = \"t\"\nendpoints = [\"sidecar.internal:1\"]\n\
                   ca = \"ca.pem\"\ncert = \"front.pem\"\nkey = \"front-key.pem\"\n\n\
                   [[route]]\ncluster = \"t\"\n";
        let old = Snapshot::initial(
            Some(routing(tls, dir.path())),
            UpstreamConfig::default(),
            &metrics(),
        );
        let (_, summary) = rebuild(routing(tls, dir.path()), &old, &metrics());
        assert_eq!(summary.kept, ["t"]);
        let renamed = tls.replace(
            "\n\n[[route]]",
            "\nserver_name = \"other.internal\"\n\n[[route]]",
        );
        let (_, summary) = rebuild(routing(&renamed, dir.path()), &old, &metrics());
        assert_eq!(summary.replaced, ["t"]);
        let cleartext = format!(
            "{}[[route]]\ncluster = \"t\"\n",
            h2c("t", "sidecar.internal:1")
        );
        let (_, summary) = rebuild(routing(&cleartext, dir.path()), &old, &metrics());
        assert_eq!(summary.replaced, ["t"]);
    }

    /// A cluster's health check is part of its settings: the same check
    /// keeps the cluster (and its endpoints' health), another replaces it.
    #[tokio::test]
    async fn a_changed_health_check_replaces_the_cluster() {
        let dir = Path::new("/nonexistent");
        let checked = |path: &str| {
            let check = format!("health_check = {{ path = \"{path}\" }}\n\n[[route]]");
            format!("{}[[route]]\ncluster = \"web\"\n", h2c("web", "a:1"))
                .replace("\n\n[[route]]", &format!("\n{check}"))
        };
        let old = Snapshot::initial(
            Some(routing(&checked("/health"), dir)),
            UpstreamConfig::default(),
            &metrics(),
        );
        let (same, summary) = rebuild(routing(&checked("/health"), dir), &old, &metrics());
        assert_eq!(summary.kept, ["web"]);
        assert!(Arc::ptr_eq(find(&old, "web"), find(&same, "web")));
        let (_, summary) = rebuild(routing(&checked("/ready"), dir), &old, &metrics());
        assert_eq!(summary.replaced, ["web"]);
        let unchecked = format!("{}[[route]]\ncluster = \"web\"\n", h2c("web", "a:1"));
        let (_, summary) = rebuild(routing(&unchecked, dir), &old, &metrics());
        assert_eq!(summary.replaced, ["web"]);
    }

    /// Before the front runs, and for a front without a file, a reload
    /// says why it did nothing.
    #[test]
    fn a_reload_without_a_front_or_a_file_says_so() {
        let reload = RoutingReload::default();
        assert!(matches!(reload.reload(), Err(ReloadError::NotServing)));
        let snapshot = Snapshot::initial(None, UpstreamConfig::default(), &metrics());
        let live = Arc::new(LiveRouting::new(snapshot));
        reload.attach(None, UpstreamConfig::default(), live, metrics(), None);
        assert!(matches!(reload.reload(), Err(ReloadError::NoConfigFile)));
    }
}
