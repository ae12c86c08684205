//! The client-facing TLS listener's settings, from the flags
//! (`--tls-cert`, `--tls-key`, `--tls-ocsp`, `--tls-min-version`,
//! `--tls-ciphers`) and the `--config` file's `[[certificate]]` tables →
//! the reloadable rustls configuration of [`crate::Config::client_tls`].
//! Called by [`crate::args`]; [`crate::config_file`] only reads the tables
//! and resolves their paths.
//!
//! ```toml
//! [[certificate]]
//! names = ["api.example.com", "*.example.com"]   # at least one; SNI names
//! cert = "certs/example.pem"                      # relative to the file's directory
//! key = "certs/example-key.pem"
//! ocsp = "certs/example.ocsp.der"                 # optional: DER OCSP response to staple
//! ```
//!
//! `--tls-cert` is the default certificate: served to clients that send no
//! SNI or a name no `[[certificate]]` lists. `[[certificate]]` tables need
//! `--tls-listen` (and so a default certificate).

use std::path::{Path, PathBuf};

use h2hop::tls::TlsError;
use h2hop::tls::edge::{self, CertFiles, EdgePolicy, EdgeTlsFiles, MinTlsVersion, SniCertificate};
use h2hop::tls::reload::Reloadable;
use h2hop::tls::sni::{BadSniName, SniName};
use serde::Deserialize;

/// One `[[certificate]]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertificate {
    names: Vec<String>,
    cert: PathBuf,
    key: PathBuf,
    ocsp: Option<PathBuf>,
}

impl RawCertificate {
    /// The table with its paths read from `base_dir` (the config file's
    /// directory) when relative.
    pub fn resolve(self, base_dir: &Path) -> CertificateEntry {
        CertificateEntry {
            names: self.names,
            files: CertFiles {
                cert: base_dir.join(self.cert),
                key: base_dir.join(self.key),
                ocsp: self.ocsp.map(|ocsp| base_dir.join(ocsp)),
            },
        }
    }
}

/// One `[[certificate]]` of a `--config` file, paths resolved, names not
/// yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateEntry {
    /// The names as written.
    pub names: Vec<String>,
    /// Its files.
    pub files: CertFiles,
}

/// The flags of the TLS listener.
#[derive(Debug, Clone, Default)]
pub struct EdgeTlsFlags {
    /// `--tls-cert`: the default certificate chain.
    pub cert: Option<PathBuf>,
    /// `--tls-key`.
    pub key: Option<PathBuf>,
    /// `--tls-ocsp`: the default certificate's OCSP staple.
    pub ocsp: Option<PathBuf>,
    /// `--tls-min-version` (default 1.2).
    pub min_version: Option<MinTlsVersion>,
    /// `--tls-ciphers` (default: rustls' safe defaults).
    pub ciphers: Option<Vec<String>>,
}

/// Why the TLS listener's settings are refused.
#[derive(Debug, thiserror::Error)]
pub enum EdgeTlsError {
    /// `--tls-ciphers` names a suite rustls does not offer, or none that
    /// works with `--tls-min-version`.
    #[error("--tls-ciphers")]
    Ciphers(#[source] edge::EdgeError),
    /// A `[[certificate]]` has no names.
    #[error("[[certificate]] {number} has no names")]
    NoNames {
        /// Its number, from 1, in file order.
        number: usize,
    },
    /// A `[[certificate]]` name is not a DNS name or `*.` wildcard.
    #[error("[[certificate]] {number}")]
    Name {
        /// Its number, from 1, in file order.
        number: usize,
        /// The name.
        #[source]
        source: BadSniName,
    },
    /// `[[certificate]]` tables without a TLS listener to serve them.
    #[error("[[certificate]] needs --tls-listen, --tls-cert and --tls-key")]
    NoListener,
    /// A file could not be loaded, or the set does not make a
    /// configuration (its message names the file).
    #[error("client TLS set-up failed")]
    Load(#[source] TlsError),
}

/// The TLS listener's configuration, or `None` without `--tls-cert` and
/// `--tls-key`. Every file is read now and again on each reload (SIGHUP),
/// as one set.
pub fn client_tls(
    flags: &EdgeTlsFlags,
    certificates: Vec<CertificateEntry>,
) -> Result<Option<Reloadable<rustls::ServerConfig>>, EdgeTlsError> {
    let (Some(cert), Some(key)) = (&flags.cert, &flags.key) else {
        if certificates.is_empty() {
            return Ok(None);
        }
        return Err(EdgeTlsError::NoListener);
    };
    let cipher_suites = flags
        .ciphers
        .as_deref()
        .map(edge::cipher_suites)
        .transpose()
        .map_err(EdgeTlsError::Ciphers)?;
    let files = EdgeTlsFiles {
        default: CertFiles {
            cert: cert.clone(),
            key: key.clone(),
            ocsp: flags.ocsp.clone(),
        },
        by_name: by_name(certificates)?,
        policy: EdgePolicy {
            min_version: flags.min_version.unwrap_or_default(),
            cipher_suites,
        },
        h2: true,
    };
    let config =
        edge::edge_tls_config_files("client listener", files).map_err(|err| match err {
            TlsError::Edge(edge)
                if matches!(*edge, edge::EdgeError::NoUsableCipherSuite { .. }) =>
            {
                EdgeTlsError::Ciphers(*edge)
            }
            other => EdgeTlsError::Load(other),
        })?;
    Ok(Some(config))
}

/// The `[[certificate]]` tables with their names checked.
fn by_name(certificates: Vec<CertificateEntry>) -> Result<Vec<SniCertificate>, EdgeTlsError> {
    certificates
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let number = i + 1;
            if entry.names.is_empty() {
                return Err(EdgeTlsError::NoNames { number });
            }
            let names = entry
                .names
                .iter()
                .map(|name| name.parse::<SniName>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|source| EdgeTlsError::Name { number, source })?;
            Ok(SniCertificate {
                names,
                files: entry.files,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use h2hop_certs::DevPki;

    use super::*;

    fn entry(names: &[&str]) -> CertificateEntry {
        RawCertificate {
            names: names.iter().map(|s| s.to_string()).collect(),
            cert: "certs/a.pem".into(),
            key: "/abs/a-key.pem".into(),
            ocsp: Some("a.ocsp".into()),
        }
        .resolve(Path::new("/etc/h2hop"))
    }

    #[test]
    fn relative_paths_are_read_from_the_file_directory() {
        let entry = entry(&["a.example"]);
        assert_eq!(entry.files.cert, Path::new("/etc/h2hop/certs/a.pem"));
        assert_eq!(entry.files.key, Path::new("/abs/a-key.pem"));
        assert_eq!(
            entry.files.ocsp.as_deref(),
            Some(Path::new("/etc/h2hop/a.ocsp"))
        );
    }

    /// The tables come through `--config`, in file order, with the
    /// file's directory; a misspelt key is an error, not a default.
    #[test]
    fn config_file_passes_the_tables_on() {
        let text = r#"
            [[cluster]]
            name = "web"
            endpoints = ["web:80"]
            h2c = true

            [[route]]
            cluster = "web"

            [[certificate]]
            names = ["a.example", "*.a.example"]
            cert = "a.pem"
            key = "a-key.pem"

            [[certificate]]
            names = ["b.example"]
            cert = "b.pem"
            key = "b-key.pem"
            ocsp = "b.ocsp"
        "#;
        let file = crate::config_file::parse(text, Path::new("/etc/h2hop")).unwrap();
        let names: Vec<&[String]> = file.certificates.iter().map(|c| &c.names[..]).collect();
        assert_eq!(names, [&["a.example", "*.a.example"][..], &["b.example"]]);
        assert_eq!(file.certificates[0].files.ocsp, None);
        assert_eq!(
            file.certificates[1].files.ocsp.as_deref(),
            Some(Path::new("/etc/h2hop/b.ocsp"))
        );
        let typo = text.replace("ocsp =", "oscp =");
        let err = crate::config_file::parse(&typo, Path::new("/etc/h2hop")).unwrap_err();
        let source = std::error::Error::source(&err).unwrap().to_string();
        assert!(source.contains("unknown field `oscp`"), "{source}");
    }

    #[test]
    fn names_are_checked_with_the_table_number() {
        let err = by_name(vec![entry(&["a.example"]), entry(&[])]).unwrap_err();
        assert_eq!(err.to_string(), "[[certificate]] 2 has no names");
        let err = by_name(vec![entry(&["a.*.example"])]).unwrap_err();
        let source = std::error::Error::source(&err).unwrap().to_string();
        assert_eq!(
            (err.to_string(), source),
            (
                "[[certificate]] 1".to_owned(),
                "\"a.*.example\" is neither a DNS name nor *. followed by one".to_owned()
            )
        );
    }

    #[test]
    fn certificates_need_a_listener() {
        let none = client_tls(&EdgeTlsFlags::default(), Vec::new()).unwrap();
        assert!(none.is_none());
        let err = client_tls(&EdgeTlsFlags::default(), vec![entry(&["a.example"])]).unwrap_err();
        assert!(matches!(err, EdgeTlsError::NoListener), "{err:?}");
    }

    #[test]
    fn unknown_or_unusable_ciphers_blame_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        DevPki::generate(&["localhost".to_owned()])
            .unwrap()
            .write_to(dir.path(), false)
            .unwrap();
        let mut flags = EdgeTlsFlags {
            cert: Some(dir.path().join("sidecar.pem")),
            key: Some(dir.path().join("sidecar-key.pem")),
            ciphers: Some(vec!["TLS13_AES_128_CCM_SHA256".to_owned()]),
            ..EdgeTlsFlags::default()
        };
        let err = client_tls(&flags, Vec::new()).unwrap_err();
        assert!(matches!(err, EdgeTlsError::Ciphers(_)), "{err:?}");
        flags.ciphers = Some(vec!["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".to_owned()]);
        flags.min_version = Some(MinTlsVersion::Tls13);
        let err = client_tls(&flags, Vec::new()).unwrap_err();
        assert!(matches!(err, EdgeTlsError::Ciphers(_)), "{err:?}");
        flags.min_version = None;
        let config = client_tls(&flags, Vec::new()).unwrap().unwrap();
        assert_eq!(config.current().crypto_provider().cipher_suites.len(), 1);
    }
}
