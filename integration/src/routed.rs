//! A routed set-up for the end-to-end tests of `[[route]]` features (header
//! rules, weighted clusters): two test apps, each behind its own h2c
//! sidecar, and a front built from a `--config` TOML text that listens for
//! HTTP/1.1 in cleartext and for HTTP/2 over TLS.
//!
//! Input: the TOML, in which `{A}` and `{B}` stand for the two sidecars and
//! `{DOWN}` for a port where nothing listens. Output: a [`Routed`] with the
//! apps (to read what reached them) and the front's addresses, and an
//! HTTP/2 client for its TLS listener ([`Routed::h2_connect`]), and its
//! admin listener. Everything
//! stops when the [`Routed`] is dropped.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use h2::client::SendRequest;
use h2hop_certs::DevPki;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::app::TestApp;
use crate::harness::{closed_port, loopback};

/// Two apps behind two sidecars, and a front routing to them.
pub struct Routed {
    /// The apps behind the sidecars `{A}` and `{B}`, in that order.
    pub apps: [TestApp; 2],
    /// The sidecars `{A}` and `{B}`, in that order.
    pub sidecars: [SocketAddr; 2],
    /// The front's cleartext HTTP/1.1 listener.
    pub front: SocketAddr,
    /// The front's TLS listener (ALPN `h2` or `http/1.1`).
    pub front_tls: SocketAddr,
    /// The front's admin listener (`/readyz`, `/metrics`).
    pub admin: SocketAddr,
    /// The CA that signed the front's certificate for `localhost`.
    pki: DevPki,
    _stop: DropGuard,
}

impl Routed {
    /// Starts the apps, the sidecars and a front configured by `toml`.
    pub async fn start(toml: &str) -> anyhow::Result<Routed> {
        Self::start_with(toml, |_| {}).await
    }

    /// [`Routed::start`], with `change` applied to the front's
    /// configuration (flags the file does not cover).
    pub async fn start_with(
        toml: &str,
        change: impl FnOnce(&mut h2hop_front::Config),
    ) -> anyhow::Result<Routed> {
        let stop = CancellationToken::new();
        let mut apps = Vec::new();
        let mut sidecars = Vec::new();
        for _ in 0..2 {
            let app = TestApp::spawn(loopback().await?, stop.child_token())?;
            let listener = loopback().await?;
            sidecars.push(listener.local_addr()?);
            let config = h2hop_sidecar::Config::new(app.addr.to_string(), None);
            tokio::spawn(h2hop_sidecar::run(
                config,
                listener.into(),
                stop.child_token(),
            ));
            apps.push(app);
        }
        let text = toml
            .replace("{A}", &sidecars[0].to_string())
            .replace("{B}", &sidecars[1].to_string())
            .replace("{DOWN}", &closed_port().await?.to_string());
        let file = h2hop_front::config_file::parse(&text, Path::new("."))?;
        let pki = DevPki::generate(&["localhost".to_owned()])?;
        let mut config = h2hop_front::Config::new(String::new(), None);
        config.routing = Some(file.into_routing(&config.upstream));
        config.client_tls = Some(
            h2hop::tls::edge_server_config(pki.server_chain(), pki.server_key(), true)?.into(),
        );
        change(&mut config);
        let plain = loopback().await?;
        let tls = loopback().await?;
        let front = plain.local_addr()?;
        let front_tls = tls.local_addr()?;
        let admin_listener = loopback().await?;
        let admin = admin_listener.local_addr()?;
        let listeners = h2hop_front::Listeners {
            plain,
            tls: Some(tls),
            admin: Some(admin_listener),
            tcp: Vec::new(),
        };
        tokio::spawn(h2hop_front::run(config, listeners, stop.child_token()));
        let [a, b]: [TestApp; 2] = apps.try_into().ok().context("two apps were started")?;
        Ok(Routed {
            apps: [a, b],
            sidecars: [sidecars[0], sidecars[1]],
            front,
            front_tls,
            admin,
            pki,
            _stop: stop.drop_guard(),
        })
    }

    /// An HTTP/2 connection to the TLS listener, trusting the set-up's CA,
    /// whose SETTINGS from the front are in effect (the front sends them
    /// before it can ACK our PING); it runs in a task of its own.
    pub async fn h2_connect(&self) -> anyhow::Result<SendRequest<Bytes>> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.pki.ca_der())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let tcp = TcpStream::connect(self.front_tls).await?;
        let tls = TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost")?, tcp)
            .await?;
        crate::h2_client::h2_over(tls).await
    }
}
