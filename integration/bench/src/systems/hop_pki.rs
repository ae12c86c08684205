//! The development PKI of every system whose middle hop is mutual TLS
//! (h2hop-mtls, nghttpx-mtls, haproxy-mtls): one fresh [`DevPki`] per
//! system, written into its scratch directory, so that every pair
//! authenticates alike (ECDSA P-256 leaves under one CA, the sidecar's
//! certificate for `127.0.0.1` and `localhost`, the front's client
//! certificate with CN `h2hop-front`).
//!
//! Input: a scratch directory. Output: the [`HopPki`] paths the per-system
//! modules put on their command lines or in their configs.

use std::path::PathBuf;

use anyhow::Context as _;
use h2hop_certs::DevPki;
use h2hop_integration::scratch::Scratch;

/// The name the front checks in the sidecar's certificate (a DNS SAN).
pub(super) const SIDECAR_NAME: &str = "localhost";

/// Paths of the PEM files in a system's scratch directory.
#[derive(Debug, Clone)]
pub(super) struct HopPki {
    /// The CA certificate both sides trust.
    pub ca: PathBuf,
    /// The sidecar's server certificate.
    pub server_cert: PathBuf,
    /// The sidecar's private key.
    pub server_key: PathBuf,
    /// HAProxy's `crt`: the sidecar's certificate followed by its key.
    pub server_combined: PathBuf,
    /// The front's client certificate.
    pub client_cert: PathBuf,
    /// The front's private key.
    pub client_key: PathBuf,
    /// HAProxy's `crt`: the front's certificate followed by its key.
    pub client_combined: PathBuf,
}

/// Generates a [`DevPki`] (server SANs `127.0.0.1` and `localhost`) and
/// writes it into `scratch`, with combined certificate-and-key files for
/// HAProxy.
pub(super) fn write(scratch: &Scratch) -> anyhow::Result<HopPki> {
    let pki = DevPki::generate(&["127.0.0.1".into(), SIDECAR_NAME.into()])
        .context("generating the development PKI")?;
    pki.write_to(scratch.dir(), false)
        .context("writing the development PKI")?;
    let combined = |cert: &str, key: &str, name: &str| -> anyhow::Result<PathBuf> {
        let cert = std::fs::read_to_string(scratch.path(cert))?;
        let key = std::fs::read_to_string(scratch.path(key))?;
        scratch.write(name, &(cert + &key))
    };
    Ok(HopPki {
        ca: scratch.path("ca.pem"),
        server_cert: scratch.path("sidecar.pem"),
        server_key: scratch.path("sidecar-key.pem"),
        server_combined: combined("sidecar.pem", "sidecar-key.pem", "sidecar-combined.pem")?,
        client_cert: scratch.path("front.pem"),
        client_key: scratch.path("front-key.pem"),
        client_combined: combined("front.pem", "front-key.pem", "front-combined.pem")?,
    })
}
