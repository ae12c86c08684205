//! The edge TLS listener's whole set-up, clients ⇄ front: certificates
//! chosen by SNI, a default one, the lowest TLS version, the cipher
//! suites, and OCSP staples → one reloadable rustls `ServerConfig`.
//!
//! The front's flags and `--config` file describe it as an [`EdgeTlsFiles`]
//! and call [`edge_tls_config_files`] once at start-up; the returned
//! [`Reloadable`] is what the listener takes per handshake and what SIGHUP
//! reloads. A reload reads every file again (certificates, keys, OCSP
//! responses) and checks them as at start-up; any failure keeps the whole
//! set in use and names the file, so clients never see half a rotation.
//!
//! Each certificate is checked when loaded: its key must be the one its
//! leaf certifies ([`TlsError::KeyMismatch`]), and every name configured
//! for it must be one its leaf is valid for ([`EdgeError::NameNotInCertificate`]):
//! a client asking for that name would refuse the certificate anyway, so
//! the mistake is refused at load, not found by clients.
//!
//! What [`super::edge_server_config`] sets stays: the ring provider with
//! AES-128-GCM first, no client certificate, ALPN `h2` then `http/1.1`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::ResolvesServerCert;
use rustls::sign::CertifiedKey;

use super::identity::Sans;
use super::reload::{Loaded, Reloadable};
use super::sni::{SniName, SniResolver};
use super::{ALPN_H2, ALPN_HTTP11, TlsError, load_certs, load_key, name_key_files};

mod policy;

pub use policy::{EdgePolicy, MinTlsVersion, cipher_suite_names, cipher_suites};

/// Why the edge TLS set-up is refused, beyond unreadable files and keys
/// that do not match (those are [`TlsError`]'s own variants).
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// Not `1.2` or `1.3`.
    #[error("TLS version {value:?} is not 1.2 or 1.3")]
    MinVersion {
        /// The value as given.
        value: String,
    },
    /// A cipher suite name rustls (with ring) does not implement.
    #[error("unknown cipher suite {name:?}; valid: {valid}")]
    UnknownCipherSuite {
        /// The name as given.
        name: String,
        /// Every valid name, comma-separated.
        valid: String,
    },
    /// None of the listed suites can be used with the allowed versions.
    #[error("no listed cipher suite works with TLS {min_version} or later")]
    NoUsableCipherSuite {
        /// The lowest version allowed.
        min_version: MinTlsVersion,
    },
    /// A configured name is not a DNS name or wildcard.
    #[error("invalid certificate name")]
    Name(#[from] super::sni::BadSniName),
    /// A configured name is not among the certificate's SANs.
    #[error("the certificate in {} is not valid for {name} (it has {sans})", cert.display())]
    NameNotInCertificate {
        /// The name as configured.
        name: String,
        /// The certificate chain file.
        cert: PathBuf,
        /// What the leaf carries.
        sans: Sans,
    },
    /// A private key rustls cannot sign with (not RSA, ECDSA or Ed25519,
    /// or malformed inside its PEM).
    #[error("the private key in {} cannot be used", key.display())]
    UnusableKey {
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
    /// Two certificates are configured for the same name.
    #[error("{name} is configured for two certificates ({} and {})", first.display(), second.display())]
    DuplicateName {
        /// The name.
        name: String,
        /// The certificate that had it first.
        first: PathBuf,
        /// The one that names it again.
        second: PathBuf,
    },
    /// An OCSP response file that cannot be a DER OCSPResponse (RFC 6960
    /// §4.2.1, a SEQUENCE): empty, or PEM or base64 text.
    #[error("{} is not a DER OCSP response", path.display())]
    Ocsp {
        /// The file.
        path: PathBuf,
    },
}

impl From<EdgeError> for TlsError {
    fn from(err: EdgeError) -> Self {
        TlsError::Edge(Box::new(err))
    }
}

/// One certificate's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The chain, PEM, leaf first.
    pub cert: PathBuf,
    /// Its private key, PEM.
    pub key: PathBuf,
    /// A DER OCSP response to staple (RFC 6066 §8), if any.
    pub ocsp: Option<PathBuf>,
}

impl CertFiles {
    fn paths(&self) -> impl Iterator<Item = &PathBuf> {
        [&self.cert, &self.key].into_iter().chain(&self.ocsp)
    }
}

/// A certificate served for the names a client asks for by SNI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SniCertificate {
    /// Exact names and `*.` wildcards, at least one.
    pub names: Vec<SniName>,
    /// Its files.
    pub files: CertFiles,
}

/// Everything the edge listener's TLS is built from.
#[derive(Debug, Clone)]
pub struct EdgeTlsFiles {
    /// Served without SNI or for a name no other certificate has.
    pub default: CertFiles,
    /// The certificates chosen by name.
    pub by_name: Vec<SniCertificate>,
    /// Versions and suites.
    pub policy: EdgePolicy,
    /// Offer ALPN `h2` before `http/1.1`.
    pub h2: bool,
}

impl EdgeTlsFiles {
    /// Every file read, for log lines.
    fn paths(&self) -> Vec<PathBuf> {
        let by_name = self.by_name.iter().map(|sni| &sni.files);
        std::iter::once(&self.default)
            .chain(by_name)
            .flat_map(CertFiles::paths)
            .cloned()
            .collect()
    }

    /// Reads and checks every file and builds the configuration.
    pub fn load(&self) -> Result<Loaded<ServerConfig>, TlsError> {
        let provider = self.policy.provider()?;
        let (default, mut names) = certified_key(&self.default, &provider)?;
        let mut resolver = SniResolver::new(default);
        let mut owners: Vec<(&SniName, &Path)> = Vec::new();
        for sni in &self.by_name {
            let (key, sans) = certified_key(&sni.files, &provider)?;
            for name in &sni.names {
                if !name.is_covered_by(&sans.dns) {
                    return Err(EdgeError::NameNotInCertificate {
                        name: name.to_string(),
                        cert: sni.files.cert.clone(),
                        sans,
                    }
                    .into());
                }
                if !resolver.add(name, key.clone()) {
                    let first = owners.iter().find(|(seen, _)| *seen == name);
                    return Err(EdgeError::DuplicateName {
                        name: name.to_string(),
                        first: first
                            .map(|(_, path)| path.to_path_buf())
                            .unwrap_or_default(),
                        second: sni.files.cert.clone(),
                    }
                    .into());
                }
                owners.push((name, sni.files.cert.as_path()));
            }
            merge(&mut names, sans);
        }
        let config = server_config(provider, &self.policy, Arc::new(resolver), self.h2)?;
        Ok(Loaded { config, names })
    }
}

/// Adds the names of `more` that `names` lacks.
fn merge(names: &mut Sans, more: Sans) {
    for uri in more.uris {
        if !names.uris.contains(&uri) {
            names.uris.push(uri);
        }
    }
    for dns in more.dns {
        if !names.dns.contains(&dns) {
            names.dns.push(dns);
        }
    }
}

/// One certificate, its key checked against its leaf, with its OCSP
/// staple; and the leaf's names.
fn certified_key(
    files: &CertFiles,
    provider: &CryptoProvider,
) -> Result<(Arc<CertifiedKey>, Sans), TlsError> {
    let chain = load_certs(&files.cert)?;
    let sans = chain.first().map(Sans::of).unwrap_or_default();
    let key = load_key(&files.key)?;
    let mut certified = CertifiedKey::from_der(chain, key, provider).map_err(|err| {
        match name_key_files(TlsError::Config(err), &files.cert, &files.key) {
            TlsError::Config(source) => EdgeError::UnusableKey {
                key: files.key.clone(),
                source,
            }
            .into(),
            mismatch => mismatch,
        }
    })?;
    if let Some(path) = &files.ocsp {
        certified.ocsp = Some(read_ocsp(path)?);
    }
    Ok((Arc::new(certified), sans))
}

/// The bytes of a DER OCSP response file, refused when they cannot be one.
fn read_ocsp(path: &Path) -> Result<Vec<u8>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    // DER of a SEQUENCE starts with tag 0x30 (X.690 §8.9); PEM or base64
    // text never does.
    if bytes.first() != Some(&0x30) {
        return Err(EdgeError::Ocsp {
            path: path.to_path_buf(),
        }
        .into());
    }
    Ok(bytes)
}

/// The server configuration for `resolver`'s certificates under `policy`.
fn server_config(
    provider: Arc<CryptoProvider>,
    policy: &EdgePolicy,
    resolver: Arc<dyn ResolvesServerCert>,
    h2: bool,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(policy.min_version.versions())
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = if h2 {
        vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()]
    } else {
        vec![ALPN_HTTP11.to_vec()]
    };
    Ok(Arc::new(config))
}

/// The edge listener's configuration from `files`, loaded now (an error is
/// the caller's: at start-up a bad file is fatal) and again on every
/// reload, all files as one unit. `label` names it in log lines.
pub fn edge_tls_config_files(
    label: &str,
    files: EdgeTlsFiles,
) -> Result<Reloadable<ServerConfig>, TlsError> {
    let paths = files.paths();
    Reloadable::from_files(label, paths, move || files.load())
}

#[cfg(test)]
mod tests {
    use h2hop_certs::DevPki;
    use rustls::CipherSuite;
    use tempfile::TempDir;

    use super::*;

    /// Writes a certificate for `sans` and its key as `<stem>.pem` and
    /// `<stem>-key.pem` in `dir`.
    fn write_cert(dir: &Path, stem: &str, sans: &[&str]) -> CertFiles {
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let pki = DevPki::generate(&sans).unwrap();
        let files = CertFiles {
            cert: dir.join(format!("{stem}.pem")),
            key: dir.join(format!("{stem}-key.pem")),
            ocsp: None,
        };
        std::fs::write(&files.cert, &pki.server().cert).unwrap();
        std::fs::write(&files.key, &pki.server().key).unwrap();
        files
    }

    /// Why `files` do not load (`Loaded` has no `Debug` for `unwrap_err`).
    fn load_err(files: &EdgeTlsFiles) -> TlsError {
        match files.load() {
            Ok(_) => panic!("{files:?} loaded"),
            Err(err) => err,
        }
    }

    fn names(list: &[&str]) -> Vec<SniName> {
        list.iter().map(|name| name.parse().unwrap()).collect()
    }

    /// A default certificate for `localhost` and one for `api.example.com`
    /// named `configured`.
    fn setup(configured: &[&str]) -> (TempDir, EdgeTlsFiles) {
        let dir = tempfile::tempdir().unwrap();
        let default = write_cert(dir.path(), "default", &["localhost"]);
        let api = write_cert(dir.path(), "api", &["api.example.com"]);
        let files = EdgeTlsFiles {
            default,
            by_name: vec![SniCertificate {
                names: names(configured),
                files: api,
            }],
            policy: EdgePolicy::default(),
            h2: true,
        };
        (dir, files)
    }

    /// The default policy keeps the provider of the other configurations:
    /// every ring suite, AES-128-GCM first, TLS 1.2 and 1.3.
    #[test]
    fn default_policy_keeps_the_safe_defaults() {
        let (_dir, files) = setup(&["api.example.com"]);
        let config = files.load().unwrap().config;
        let suites = &config.crypto_provider().cipher_suites;
        assert_eq!(suites[0].suite(), CipherSuite::TLS13_AES_128_GCM_SHA256);
        assert_eq!(suites.len(), 9);
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn suites_without_one_for_an_allowed_version_are_refused() {
        let (_dir, mut files) = setup(&["api.example.com"]);
        files.policy = EdgePolicy {
            min_version: MinTlsVersion::Tls13,
            cipher_suites: Some(
                cipher_suites(&["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"]).unwrap(),
            ),
        };
        let err = load_err(&files);
        assert_eq!(
            err.to_string(),
            "no listed cipher suite works with TLS 1.3 or later"
        );
    }

    #[test]
    fn a_name_the_certificate_lacks_is_refused() {
        let (_dir, files) = setup(&["api.example.com", "*.example.com"]);
        let err = load_err(&files);
        assert!(
            matches!(&err, TlsError::Edge(edge) if matches!(&**edge, EdgeError::NameNotInCertificate { name, .. } if name == "*.example.com")),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("api.pem is not valid for *.example.com"),
            "{text}"
        );
        assert!(text.contains("DNS SANs [api.example.com]"), "{text}");
    }

    #[test]
    fn a_name_given_twice_is_refused() {
        let (dir, mut files) = setup(&["api.example.com"]);
        let again = write_cert(dir.path(), "again", &["api.example.com"]);
        files.by_name.push(SniCertificate {
            names: names(&["API.example.com"]),
            files: again,
        });
        let err = load_err(&files);
        let text = err.to_string();
        assert!(
            text.starts_with("api.example.com is configured for two certificates"),
            "{text}"
        );
        assert!(
            text.contains("api.pem and ") && text.ends_with("again.pem)"),
            "{text}"
        );
    }

    #[test]
    fn a_key_of_another_certificate_names_both_files() {
        let (dir, mut files) = setup(&["api.example.com"]);
        files.by_name[0].files.key = dir.path().join("default-key.pem");
        let err = load_err(&files);
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err:?}");
        assert!(err.to_string().contains("default-key.pem"), "{err}");
        assert!(err.to_string().contains("api.pem"), "{err}");
    }

    #[test]
    fn a_key_rustls_cannot_use_names_its_file() {
        let (dir, files) = setup(&["api.example.com"]);
        // A PKCS#8 section whose DER is an empty SEQUENCE.
        let pem = "-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n";
        std::fs::write(dir.path().join("api-key.pem"), pem).unwrap();
        let err = load_err(&files);
        assert_eq!(
            err.to_string(),
            format!(
                "the private key in {} cannot be used",
                dir.path().join("api-key.pem").display()
            )
        );
    }

    /// The staple is the file's bytes; a file that is not DER is refused.
    #[test]
    fn ocsp_staples_are_read_as_der() {
        let (dir, mut files) = setup(&["api.example.com"]);
        let ocsp = dir.path().join("api.ocsp");
        std::fs::write(&ocsp, [0x30, 0x03, 0x0a, 0x01, 0x00]).unwrap();
        files.by_name[0].files.ocsp = Some(ocsp.clone());
        let provider = files.policy.provider().unwrap();
        let (key, _) = certified_key(&files.by_name[0].files, &provider).unwrap();
        assert_eq!(
            key.ocsp.as_deref(),
            Some(&[0x30, 0x03, 0x0a, 0x01, 0x00][..])
        );
        files.load().unwrap();
        std::fs::write(&ocsp, "-----BEGIN OCSP RESPONSE-----\n").unwrap();
        let err = load_err(&files);
        assert_eq!(
            err.to_string(),
            format!("{} is not a DER OCSP response", ocsp.display())
        );
        std::fs::remove_file(&ocsp).unwrap();
        assert!(matches!(load_err(&files), TlsError::ReadFile { .. }));
    }

    /// A reload reads every file; any broken one keeps the whole set.
    #[test]
    fn a_failed_reload_keeps_every_certificate() {
        let (dir, files) = setup(&["api.example.com"]);
        let paths = files.paths();
        assert_eq!(paths.len(), 4);
        let reloadable = edge_tls_config_files("clients", files).unwrap();
        let before = reloadable.current();
        let names = reloadable.reload().unwrap().unwrap();
        assert_eq!(names.dns, ["localhost", "api.example.com"]);
        assert!(!Arc::ptr_eq(&before, &reloadable.current()));
        let in_use = reloadable.current();
        std::fs::write(dir.path().join("api-key.pem"), "not a key").unwrap();
        let err = reloadable.reload().unwrap_err();
        assert!(
            matches!(&err, TlsError::NoKey { path } if path.ends_with("api-key.pem")),
            "{err:?}"
        );
        assert!(Arc::ptr_eq(&in_use, &reloadable.current()));
    }
}
