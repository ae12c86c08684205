//! The pair wired together in-process, on loopback port 0: app, sidecar and
//! front, with a fresh mTLS PKI from `h2hop_certs` (or h2c).
//!
//! Tests build a [`Pair`] with [`PairBuilder`] knobs for the failure cases
//! (front without a certificate, another CA, app or sidecar down) and use
//! [`Pair::front`] as the address a client dials. Dropping the pair stops
//! all three.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use h2hop::tls::identity::AllowedSans;
use h2hop::upgrade::Protocols;
use h2hop_certs::DevPki;
use h2hop_front::UpstreamTls;
use h2hop_sidecar::UpgradePolicy;
use http::{Method, Response, StatusCode};
use rustls::pki_types::ServerName;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::TestApp;

/// Which client identity the front shows the sidecar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontIdentity {
    /// A certificate from the sidecar's CA (the normal case).
    Trusted,
    /// No certificate at all.
    None,
    /// A certificate from another CA.
    OtherCa,
}

/// Knobs for a [`Pair`].
#[derive(Debug, Clone)]
pub struct PairBuilder {
    h2c: bool,
    identity: FrontIdentity,
    max_streams: u32,
    app_down: bool,
    sidecar: SidecarKind,
    count_upstream: bool,
    protocols: Vec<String>,
    sidecar_protocols: Option<Vec<String>>,
    upgrade_as_get: bool,
    body_limit: u64,
    app_at: Option<SocketAddr>,
    drain_timeout: Option<Duration>,
    timeouts: Option<Timeouts>,
    front_config: Option<fn(&mut h2hop_front::Config)>,
    sidecar_config: Option<fn(&mut h2hop_sidecar::Config)>,
    client_tls: bool,
    admin: bool,
    front_uri_sans: Vec<String>,
    allow_front_sans: Vec<String>,
    tcp: Vec<TcpSpec>,
}

/// A TCP service of the front in a [`Pair`] ([`PairBuilder::tcp`]):
/// by default the classic CONNECT form, the front's tunnel idle timeout,
/// and its target on the sidecar's allow-list.
#[derive(Debug, Clone)]
pub struct TcpSpec {
    target: String,
    form: h2hop::tcp_connect::ConnectForm,
    idle_timeout: Option<Duration>,
    allowed: bool,
}

impl TcpSpec {
    /// A service to `target` (`host:port`).
    pub fn to(target: &str) -> Self {
        Self {
            target: target.to_owned(),
            form: h2hop::tcp_connect::ConnectForm::Classic,
            idle_timeout: None,
            allowed: true,
        }
    }

    /// How the front asks for the tunnel.
    pub fn form(mut self, form: h2hop::tcp_connect::ConnectForm) -> Self {
        self.form = form;
        self
    }

    /// The service's own idle timeout.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = Some(idle);
        self
    }

    /// Leaves the target off the sidecar's allow-list (it answers 403).
    pub fn not_allowed(mut self) -> Self {
        self.allowed = false;
        self
    }

    /// The front's entry number `number` (named `tcp-N`), on `listen`,
    /// through the cluster named `cluster`.
    fn service(
        &self,
        number: usize,
        listen: SocketAddr,
        cluster: &str,
    ) -> anyhow::Result<h2hop_front::TcpService> {
        Ok(h2hop_front::TcpService {
            name: format!("tcp-{number}").into(),
            listen,
            cluster: cluster.to_owned(),
            target: self.target.parse()?,
            form: self.form,
            idle_timeout: self.idle_timeout,
        })
    }
}

/// Puts the allowed targets of `specs` on the sidecar's allow-list, for
/// any front; the list is left alone when no spec is allowed.
fn allow_tcp(config: &mut h2hop_sidecar::Config, specs: &[TcpSpec]) -> anyhow::Result<()> {
    use h2hop_sidecar::tcp_allow::{TcpAllowList, TcpAllowed};
    let allowed = specs.iter().filter(|spec| spec.allowed);
    let entries = allowed
        .map(|spec| {
            Ok(TcpAllowed {
                target: spec.target.parse()?,
                fronts: None,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if !entries.is_empty() {
        config.tcp_allow = TcpAllowList::new(entries);
    }
    Ok(())
}

/// Timeouts for both front and sidecar, from [`PairBuilder::timeouts`].
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Plain request: the wait for the response head.
    pub response: Duration,
    /// Upgrade: the wait for the answer.
    pub upgrade: Duration,
    /// Tunnel: silence either way before it is closed.
    pub tunnel_idle: Duration,
}

/// What sits where the sidecar should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SidecarKind {
    /// h2hop-sidecar.
    H2hop,
    /// Nothing listens: connections are refused.
    Down,
    /// An HTTP/2 server that never advertises extended CONNECT (h2c only).
    WithoutExtendedConnect,
}

impl Default for PairBuilder {
    fn default() -> Self {
        Self {
            h2c: false,
            identity: FrontIdentity::Trusted,
            max_streams: 1000,
            app_down: false,
            sidecar: SidecarKind::H2hop,
            count_upstream: false,
            protocols: vec![h2hop::upgrade::WEBSOCKET.to_owned()],
            sidecar_protocols: None,
            upgrade_as_get: false,
            body_limit: h2hop::upgrade::DEFAULT_BODY_LIMIT,
            app_at: None,
            drain_timeout: None,
            timeouts: None,
            front_config: None,
            sidecar_config: None,
            client_tls: false,
            admin: false,
            front_uri_sans: Vec::new(),
            allow_front_sans: Vec::new(),
            tcp: Vec::new(),
        }
    }
}

impl PairBuilder {
    /// Cleartext HTTP/2 between front and sidecar.
    pub fn h2c(mut self) -> Self {
        self.h2c = true;
        self
    }

    /// The front's client identity.
    pub fn identity(mut self, identity: FrontIdentity) -> Self {
        self.identity = identity;
        self
    }

    /// The sidecar's SETTINGS_MAX_CONCURRENT_STREAMS.
    pub fn max_streams(mut self, max_streams: u32) -> Self {
        self.max_streams = max_streams;
        self
    }

    /// Points the sidecar at a port where nothing listens.
    pub fn app_down(mut self) -> Self {
        self.app_down = true;
        self
    }

    /// Puts a counting TCP forwarder between front and sidecar, so that
    /// [`Pair::upstream_connections`] tells how many the front opened.
    pub fn count_upstream_connections(mut self) -> Self {
        self.count_upstream = true;
        self
    }

    /// The Upgrade allow-list of both front and sidecar.
    pub fn protocols(mut self, tokens: &[&str]) -> Self {
        self.protocols = tokens.iter().map(|token| (*token).to_owned()).collect();
        self
    }

    /// The sidecar's allow-list alone (after [`Self::protocols`]).
    pub fn sidecar_protocols(mut self, tokens: &[&str]) -> Self {
        self.sidecar_protocols = Some(tokens.iter().map(|token| (*token).to_owned()).collect());
        self
    }

    /// The upgrade body limit of both front and sidecar.
    pub fn upgrade_body_limit(mut self, limit: u64) -> Self {
        self.body_limit = limit;
        self
    }

    /// The sidecar's `--upgrade-as-get` (Envoy's behaviour).
    pub fn upgrade_as_get(mut self) -> Self {
        self.upgrade_as_get = true;
        self
    }

    /// Points the sidecar at an app of the test's own instead of [`TestApp`]
    /// (which still runs, unused).
    pub fn app_at(mut self, addr: SocketAddr) -> Self {
        self.app_at = Some(addr);
        self
    }

    /// The response, upgrade and tunnel idle timeouts of both proxies.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = Some(timeouts);
        self
    }

    /// A second front listener, [`Pair::front_tls`], serving TLS to clients
    /// (HTTP/2 or HTTP/1.1 by ALPN) with the pair's server certificate
    /// (`localhost`, `127.0.0.1`; trust [`DevPki::ca_der`]).
    pub fn client_tls(mut self) -> Self {
        self.client_tls = true;
        self
    }

    /// Admin listeners on both proxies: [`Pair::front_admin`] and
    /// [`Pair::sidecar_admin`].
    pub fn admin(mut self) -> Self {
        self.admin = true;
        self
    }

    /// URI SANs on the front's client certificate (its workload identity,
    /// such as `spiffe://test/front`).
    pub fn front_uri_sans(mut self, uris: &[&str]) -> Self {
        self.front_uri_sans = uris.iter().map(|uri| (*uri).to_owned()).collect();
        self
    }

    /// The sidecar's `--allow-front-san` list: the SANs a front's
    /// certificate must carry one of.
    pub fn allow_front_sans(mut self, sans: &[&str]) -> Self {
        self.allow_front_sans = sans.iter().map(|san| (*san).to_owned()).collect();
        self
    }

    /// A TCP service to `target` on a listener of its own
    /// ([`Pair::front_tcp`]), the target on the sidecar's allow-list.
    pub fn tcp_service(self, target: SocketAddr) -> Self {
        self.tcp(TcpSpec::to(&target.to_string()))
    }

    /// A TCP service as `spec` says; [`Pair::front_tcp`] lists their
    /// listeners in the order they were added.
    pub fn tcp(mut self, spec: TcpSpec) -> Self {
        self.tcp.push(spec);
        self
    }

    /// Changes the front's configuration last, for settings without a knob.
    pub fn front_config(mut self, change: fn(&mut h2hop_front::Config)) -> Self {
        self.front_config = Some(change);
        self
    }

    /// Changes the sidecar's configuration last, for settings without a knob.
    pub fn sidecar_config(mut self, change: fn(&mut h2hop_sidecar::Config)) -> Self {
        self.sidecar_config = Some(change);
        self
    }

    /// The drain timeout of both front and sidecar.
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = Some(timeout);
        self
    }

    /// What the front connects to.
    pub fn sidecar(mut self, sidecar: SidecarKind) -> Self {
        self.sidecar = sidecar;
        self
    }

    /// Starts app, sidecar and front, the front on a fresh loopback port.
    pub async fn start(self) -> anyhow::Result<Pair> {
        let front_listener = loopback().await?;
        self.start_on(front_listener).await
    }

    /// Starts app, sidecar and front, the front on `front_listener`.
    pub async fn start_on(self, front_listener: TcpListener) -> anyhow::Result<Pair> {
        let shutdown = CancellationToken::new();
        let app = TestApp::spawn(loopback().await?, shutdown.child_token())?;
        let app_addr = if self.app_down {
            closed_port().await?
        } else {
            self.app_at.unwrap_or(app.addr)
        };
        let server_sans = ["localhost".to_owned(), "127.0.0.1".to_owned()];
        let pki = DevPki::generate_with(&server_sans, &self.front_uri_sans)?;
        let sidecar_listener = loopback().await?;
        let mut sidecar_addr = sidecar_listener.local_addr()?;
        let extended_connects = Arc::new(AtomicUsize::new(0));
        // Front and sidecar stop on their own token, so that a test can
        // shut them down while the app keeps serving.
        let proxies = shutdown.child_token();
        let mut sidecar_run = None;
        let mut sidecar_admin = None;
        match self.sidecar {
            SidecarKind::H2hop => {
                let tls = if self.h2c {
                    None
                } else {
                    Some(h2hop::tls::hop_server_config_allowing(
                        pki.server_chain(),
                        pki.server_key(),
                        vec![pki.ca_der()],
                        &AllowedSans::new(&self.allow_front_sans)?,
                    )?)
                };
                let mut config = h2hop_sidecar::Config::new(app_addr.to_string(), tls);
                config.max_concurrent_streams = self.max_streams;
                config.upgrades = UpgradePolicy {
                    protocols: Protocols::new(
                        self.sidecar_protocols.as_ref().unwrap_or(&self.protocols),
                    )?,
                    body_limit: self.body_limit,
                    as_get: self.upgrade_as_get,
                };
                if let Some(drain) = self.drain_timeout {
                    config.drain_timeout = drain;
                }
                if let Some(timeouts) = self.timeouts {
                    config.app.response_timeout = timeouts.response;
                    config.app.upgrade_timeout = timeouts.upgrade;
                    config.tunnel_idle_timeout = timeouts.tunnel_idle;
                }
                allow_tcp(&mut config, &self.tcp)?;
                if let Some(change) = self.sidecar_config {
                    change(&mut config);
                }
                let admin = if self.admin {
                    let listener = loopback().await?;
                    sidecar_admin = Some(listener.local_addr()?);
                    Some(listener)
                } else {
                    None
                };
                sidecar_run = Some(tokio::spawn(h2hop_sidecar::run(
                    config,
                    h2hop_sidecar::Listeners {
                        hop: sidecar_listener,
                        admin,
                    },
                    proxies.clone(),
                )));
            }
            SidecarKind::Down => {
                drop(sidecar_listener);
                sidecar_addr = closed_port().await?;
            }
            SidecarKind::WithoutExtendedConnect => {
                let seen = extended_connects.clone();
                tokio::spawn(plain_h2_server(
                    sidecar_listener,
                    seen,
                    shutdown.child_token(),
                ));
            }
        }
        let upstream_connections = Arc::new(AtomicUsize::new(0));
        let upstream_frozen = CancellationToken::new();
        if self.count_upstream {
            let forwarder = loopback().await?;
            let target = sidecar_addr;
            sidecar_addr = forwarder.local_addr()?;
            let count = upstream_connections.clone();
            tokio::spawn(counting_forwarder(
                forwarder,
                target,
                count,
                upstream_frozen.clone(),
                shutdown.child_token(),
            ));
        }
        let tls = if self.h2c || self.sidecar == SidecarKind::WithoutExtendedConnect {
            None
        } else {
            Some(self.front_tls(&pki)?)
        };
        let mut config = h2hop_front::Config::new(sidecar_addr.to_string(), tls);
        config.protocols = Protocols::new(&self.protocols)?;
        config.upgrade_body_limit = self.body_limit;
        let front = front_listener.local_addr()?;
        if let Some(drain) = self.drain_timeout {
            config.drain_timeout = drain;
        }
        if let Some(timeouts) = self.timeouts {
            config.response_timeout = timeouts.response;
            config.upgrade_timeout = timeouts.upgrade;
            config.tunnel_idle_timeout = timeouts.tunnel_idle;
        }
        let mut front_tcp = Vec::with_capacity(self.tcp.len());
        let mut tcp_listeners = Vec::with_capacity(self.tcp.len());
        for (i, spec) in self.tcp.iter().enumerate() {
            let listener = loopback().await?;
            let listen = listener.local_addr()?;
            // Without a --config file the one cluster is named by its address.
            config
                .tcp
                .push(spec.service(i + 1, listen, &sidecar_addr.to_string())?);
            front_tcp.push(listen);
            tcp_listeners.push(listener);
        }
        let mut front_tls = None;
        let tls_listener = if self.client_tls {
            let listener = loopback().await?;
            front_tls = Some(listener.local_addr()?);
            config.client_tls = Some(
                h2hop::tls::edge_server_config(pki.server_chain(), pki.server_key(), true)?.into(),
            );
            Some(listener)
        } else {
            None
        };
        if let Some(change) = self.front_config {
            change(&mut config);
        }
        let mut front_admin = None;
        let admin = if self.admin {
            let listener = loopback().await?;
            front_admin = Some(listener.local_addr()?);
            Some(listener)
        } else {
            None
        };
        let listeners = h2hop_front::Listeners {
            plain: front_listener,
            tls: tls_listener,
            admin,
            tcp: tcp_listeners,
        };
        let front_run = tokio::spawn(h2hop_front::run(config, listeners, proxies.clone()));
        Ok(Pair {
            app,
            front,
            front_tls,
            front_tcp,
            front_admin,
            sidecar_admin,
            sidecar: sidecar_addr,
            pki,
            extended_connects,
            upstream_connections,
            upstream_frozen,
            shutdown,
            proxies,
            runs: [Some(front_run), sidecar_run],
        })
    }

    fn front_tls(&self, pki: &DevPki) -> anyhow::Result<UpstreamTls> {
        let identity = match self.identity {
            FrontIdentity::Trusted => Some((pki.client_chain(), pki.client_key())),
            FrontIdentity::None => None,
            FrontIdentity::OtherCa => {
                let other = DevPki::generate(&["localhost".to_owned()])?;
                Some((other.client_chain(), other.client_key()))
            }
        };
        Ok(UpstreamTls {
            config: h2hop::tls::hop_client_config(vec![pki.ca_der()], identity)?.into(),
            server_name: ServerName::try_from("localhost")?,
        })
    }
}

/// A running app + sidecar + front.
pub struct Pair {
    /// The app behind the sidecar.
    pub app: TestApp,
    /// Where clients connect.
    pub front: SocketAddr,
    /// With [`PairBuilder::client_tls`]: where TLS clients connect.
    pub front_tls: Option<SocketAddr>,
    /// With [`PairBuilder::tcp_service`] or [`PairBuilder::tcp`]: the
    /// front's TCP service listeners, in the order they were added.
    pub front_tcp: Vec<SocketAddr>,
    /// With [`PairBuilder::admin`]: the front's admin listener.
    pub front_admin: Option<SocketAddr>,
    /// With [`PairBuilder::admin`]: the sidecar's admin listener.
    pub sidecar_admin: Option<SocketAddr>,
    /// Where the front connects.
    pub sidecar: SocketAddr,
    /// The PKI the pair runs with.
    pub pki: DevPki,
    extended_connects: Arc<AtomicUsize>,
    upstream_connections: Arc<AtomicUsize>,
    upstream_frozen: CancellationToken,
    shutdown: CancellationToken,
    proxies: CancellationToken,
    runs: [Option<tokio::task::JoinHandle<()>>; 2],
}

impl Pair {
    /// Knobs for a pair; the default is mutual TLS with everything up.
    pub fn builder() -> PairBuilder {
        PairBuilder::default()
    }

    /// The default pair: mutual TLS, everything up.
    pub async fn start() -> anyhow::Result<Pair> {
        PairBuilder::default().start().await
    }

    /// With [`SidecarKind::WithoutExtendedConnect`]: how many requests with
    /// `:protocol` that server received (RFC 8441 §3 says: none).
    pub fn extended_connects_seen(&self) -> usize {
        self.extended_connects.load(Ordering::SeqCst)
    }
}

impl Pair {
    /// With [`PairBuilder::count_upstream_connections`]: how many TCP
    /// connections the front opened toward the sidecar.
    pub fn upstream_connections(&self) -> usize {
        self.upstream_connections.load(Ordering::SeqCst)
    }

    /// With [`PairBuilder::count_upstream_connections`]: the forwarder
    /// stops moving bytes but keeps every connection open, as a sidecar
    /// host that vanished without a FIN (power loss, a dropped route).
    pub fn freeze_upstream(&self) {
        self.upstream_frozen.cancel();
    }
}

impl Pair {
    /// Shuts front and sidecar down as SIGTERM would (the app keeps
    /// serving). Returns when each has finished draining (its `run`
    /// returned), front first; an in-process test cannot see a task the
    /// binary would have lost when its `main` returned, so these instants
    /// are what shows that draining waited.
    pub async fn shut_down_proxies(&mut self) -> Stopped {
        self.proxies.cancel();
        let [front, sidecar] = &mut self.runs;
        let front = front.take();
        let sidecar = sidecar.take();
        let finished = |run: Option<tokio::task::JoinHandle<()>>| async move {
            if let Some(run) = run {
                let _ = run.await;
            }
            tokio::time::Instant::now()
        };
        let (front, sidecar) = tokio::join!(finished(front), finished(sidecar));
        Stopped { front, sidecar }
    }
}

/// When each proxy finished draining, from [`Pair::shut_down_proxies`].
#[derive(Debug, Clone, Copy)]
pub struct Stopped {
    /// The front's `run` returned.
    pub front: tokio::time::Instant,
    /// The sidecar's `run` returned.
    pub sidecar: tokio::time::Instant,
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The bound on every end-to-end test: generous for a busy 2-core machine,
/// short enough that a hang fails the test instead of the CI run.
pub const TEST_LIMIT: Duration = Duration::from_secs(30);

/// Runs one test body under [`TEST_LIMIT`]; a hang fails the test.
#[allow(
    clippy::expect_used,
    reason = "test support: a timeout must fail the test"
)]
pub async fn within<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(TEST_LIMIT, future)
        .await
        .expect("test timed out")
}

/// A listener on 127.0.0.1, port 0.
pub async fn loopback() -> anyhow::Result<TcpListener> {
    TcpListener::bind("127.0.0.1:0")
        .await
        .context("bind 127.0.0.1:0")
}

/// A loopback listener that never accepts, its queue filled so that the
/// kernel drops new SYNs and a connect to it hangs. Keep what is returned
/// alive while the address is in use.
pub async fn unaccepting_listener() -> anyhow::Result<(SocketAddr, UnacceptingListener)> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind("127.0.0.1:0".parse()?)?;
    let addr = socket.local_addr()?;
    let listener = socket.listen(1)?;
    let mut queued = Vec::new();
    for _ in 0..8 {
        let attempt = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await;
        match attempt {
            Ok(Ok(stream)) => queued.push(stream),
            _ => break,
        }
    }
    let held = UnacceptingListener {
        _listener: listener,
        _queued: queued,
    };
    Ok((addr, held))
}

/// What [`unaccepting_listener`] keeps open.
pub struct UnacceptingListener {
    _listener: TcpListener,
    _queued: Vec<tokio::net::TcpStream>,
}

/// A loopback port where nothing listens (bound, read, released).
pub async fn closed_port() -> anyhow::Result<SocketAddr> {
    let listener = loopback().await?;
    Ok(listener.local_addr()?)
}

/// An h2c server that never sends SETTINGS_ENABLE_CONNECT_PROTOCOL; it
/// answers every stream 200 "plain" and counts those that carried `:protocol`.
async fn plain_h2_server(
    listener: TcpListener,
    seen: Arc<AtomicUsize>,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else { continue };
        let seen = seen.clone();
        tokio::spawn(async move {
            let Ok(mut connection) = h2::server::handshake(stream).await else {
                return;
            };
            while let Some(Ok((request, mut respond))) = connection.accept().await {
                if request.extensions().get::<h2::ext::Protocol>().is_some()
                    || request.method() == Method::CONNECT
                {
                    seen.fetch_add(1, Ordering::SeqCst);
                }
                let response = Response::builder()
                    .status(StatusCode::OK)
                    .body(())
                    .unwrap_or_default();
                if let Ok(mut send) = respond.send_response(response, false) {
                    let _ = send.send_data(Bytes::from_static(b"plain"), true);
                }
            }
        });
    }
}

/// Forwards each accepted connection to `target`, counting them.
async fn counting_forwarder(
    listener: TcpListener,
    target: SocketAddr,
    count: Arc<AtomicUsize>,
    frozen: CancellationToken,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((mut inbound, _)) = accepted else {
            continue;
        };
        count.fetch_add(1, Ordering::SeqCst);
        let frozen = frozen.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    // Frozen: silence, both sockets held open until the end.
                    () = frozen.cancelled() => shutdown.cancelled().await,
                }
            }
        });
    }
}
