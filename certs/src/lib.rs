//! Development PKI for h2hop: one CA, a sidecar server certificate and a front
//! client certificate, for the mutual TLS hop between front and sidecar.
//!
//! [`DevPki::generate`] builds everything in memory with fresh ECDSA P-256
//! keys; integration tests hand the DER forms straight to rustls, and the
//! `h2hop-certs` binary calls [`DevPki::write_to`] to put PEM files on disk.
//! [`DevPki::generate_with`] also puts URI SANs (workload identities such as
//! SPIFFE IDs) on the front's certificate, for sidecars that allow fronts by
//! identity.
//!
//! The CA private key is dropped as soon as both leaves are signed: it is never
//! returned nor written, so nothing can be issued from this CA later. To add a
//! name or a client, generate a whole new set. Certificates use rcgen's default
//! validity (1975 to 4096), which is fine for development and wrong for
//! production.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, DnsName, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Server names used when the caller gives none: the sidecar on loopback.
pub const DEFAULT_SERVER_SANS: &[&str] = &["localhost", "127.0.0.1"];

/// Common name (and only DNS SAN) of the front's client certificate.
const CLIENT_NAME: &str = "h2hop-front";

/// Common name of the CA certificate.
const CA_NAME: &str = "h2hop dev CA";

/// File names written by [`DevPki::write_to`], with whether each holds a key.
const FILES: [(&str, bool); 5] = [
    ("ca.pem", false),
    ("sidecar.pem", false),
    ("sidecar-key.pem", true),
    ("front.pem", false),
    ("front-key.pem", true),
];

/// What went wrong while generating or writing the development PKI.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// `generate` was called with an empty list of server names.
    #[error("the server certificate needs at least one name")]
    NoServerNames,
    /// A front URI SAN is not `scheme://...`.
    #[error("invalid URI SAN {name:?}: expected scheme://... (such as spiffe://domain/path)")]
    InvalidUriSan {
        /// The URI as given.
        name: String,
    },
    /// A server name is neither an IP address nor a valid DNS name.
    #[error("invalid server name {name:?}: not an IP address nor a DNS name")]
    InvalidSan {
        /// The name as given.
        name: String,
        /// Why it is not a DNS name.
        #[source]
        source: rustls::pki_types::InvalidDnsNameError,
    },
    /// Key generation or signing failed for one certificate.
    #[error("generating the {which} certificate")]
    Generate {
        /// "CA", "server" or "client".
        which: &'static str,
        /// The rcgen failure.
        #[source]
        source: rcgen::Error,
    },
    /// An output file already exists and `force` was not given.
    #[error("{} already exists (use --force to overwrite)", path.display())]
    Exists {
        /// The file that would have been overwritten.
        path: PathBuf,
    },
    /// The output directory could not be created.
    #[error("creating directory {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: io::Error,
    },
    /// An output file could not be removed, created or written.
    #[error("writing {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: io::Error,
    },
}

/// One leaf: its certificate and private key, both PEM encoded.
#[derive(Clone)]
pub struct Pem {
    /// The certificate, PEM ("CERTIFICATE").
    pub cert: String,
    /// The private key, PKCS#8 PEM ("PRIVATE KEY").
    pub key: String,
}

impl std::fmt::Debug for Pem {
    // Keys end up in test logs through `{:?}`; keep them out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pem")
            .field("cert", &self.cert)
            .field("key", &"[elided]")
            .finish()
    }
}

/// One signed leaf in both encodings.
#[derive(Clone)]
struct Leaf {
    pem: Pem,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

/// A CA certificate plus a sidecar server leaf and a front client leaf it signed.
#[derive(Clone)]
pub struct DevPki {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    server: Leaf,
    client: Leaf,
}

impl std::fmt::Debug for DevPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevPki")
            .field("ca", &self.ca_pem)
            .field("server", &self.server.pem)
            .field("client", &self.client.pem)
            .finish()
    }
}

impl DevPki {
    /// Generates a CA "h2hop dev CA", a sidecar server certificate valid for
    /// `server_sans` (each parsed as an IP address if it parses, else used as a
    /// DNS name, `*.example.com` as a wildcard one; EKU serverAuth) and a front client certificate (CN and DNS SAN
    /// "h2hop-front"; EKU clientAuth). Every call makes fresh ECDSA P-256 keys.
    /// The CA key is discarded before returning.
    pub fn generate(server_sans: &[String]) -> Result<DevPki, CertsError> {
        Self::generate_with(server_sans, &[])
    }

    /// [`DevPki::generate`], and the front's client certificate also
    /// carries each of `front_uri_sans` as a URI SAN (RFC 5280 §4.2.1.6),
    /// such as the SPIFFE ID `spiffe://trust-domain/front`. Each must be
    /// `scheme://` followed by something, in ASCII without spaces.
    pub fn generate_with(
        server_sans: &[String],
        front_uri_sans: &[String],
    ) -> Result<DevPki, CertsError> {
        let (ca_params, ca_key) = ca_params()?;
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .map_err(|source| CertsError::Generate {
                which: "CA",
                source,
            })?;
        let issuer = Issuer::new(ca_params, ca_key);

        let server = sign_leaf(server_params(server_sans)?, &issuer, "server")?;
        let client = sign_leaf(client_params(front_uri_sans)?, &issuer, "client")?;
        Ok(DevPki {
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().clone(),
            server,
            client,
        })
    }

    /// The CA certificate, PEM encoded.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The sidecar's server certificate and key, PEM encoded.
    pub fn server(&self) -> &Pem {
        &self.server.pem
    }

    /// The front's client certificate and key, PEM encoded.
    pub fn client(&self) -> &Pem {
        &self.client.pem
    }

    /// The CA certificate, DER: the trust anchor for both sides.
    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.ca_der.clone()
    }

    /// The sidecar's certificate chain (the leaf only; the CA is the root).
    pub fn server_chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.server.cert_der.clone()]
    }

    /// The sidecar's private key, PKCS#8 DER.
    pub fn server_key(&self) -> PrivateKeyDer<'static> {
        pkcs8(&self.server.key_der)
    }

    /// The front's certificate chain (the leaf only; the CA is the root).
    pub fn client_chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.client.cert_der.clone()]
    }

    /// The front's private key, PKCS#8 DER.
    pub fn client_key(&self) -> PrivateKeyDer<'static> {
        pkcs8(&self.client.key_der)
    }

    /// Writes `ca.pem`, `sidecar.pem`, `sidecar-key.pem`, `front.pem` and
    /// `front-key.pem` into `dir`, creating `dir` if needed. Key files are
    /// created with mode 0600. The CA key is not written (there is none left).
    ///
    /// Without `force`, refuses with [`CertsError::Exists`] before writing
    /// anything if any of the five files exists. With `force`, existing files
    /// are removed and created afresh, so keys get mode 0600 even if the old
    /// file had another. Returns the paths written, in the order above.
    pub fn write_to(&self, dir: &Path, force: bool) -> Result<Vec<PathBuf>, CertsError> {
        fs::create_dir_all(dir).map_err(|source| CertsError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let paths: Vec<PathBuf> = FILES.iter().map(|(name, _)| dir.join(name)).collect();
        if !force {
            // Check all five first so a refusal leaves the directory untouched.
            if let Some(path) = paths.iter().find(|p| p.symlink_metadata().is_ok()) {
                return Err(CertsError::Exists { path: path.clone() });
            }
        }
        let contents = [
            self.ca_pem.as_str(),
            &self.server.pem.cert,
            &self.server.pem.key,
            &self.client.pem.cert,
            &self.client.pem.key,
        ];
        for ((path, (_, secret)), text) in paths.iter().zip(FILES).zip(contents) {
            write_file(path, text, secret, force).map_err(|source| CertsError::Write {
                path: path.clone(),
                source,
            })?;
        }
        Ok(paths)
    }
}

/// CA parameters and a fresh key for it.
fn ca_params() -> Result<(CertificateParams, KeyPair), CertsError> {
    let gen_err = |source| CertsError::Generate {
        which: "CA",
        source,
    };
    let key = KeyPair::generate().map_err(gen_err)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name(CA_NAME);
    // Every dev CA would otherwise have the same subject, and webpki picks an
    // issuer by subject: a leaf from another dev CA would then fail as "bad
    // signature" instead of "unknown issuer". A unit named after the CA's own
    // key identifier makes each subject unique.
    let key_id: String = params
        .key_identifier(&key)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, format!("key {key_id}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok((params, key))
}

/// Sidecar leaf parameters: SANs from the caller, EKU serverAuth.
fn server_params(server_sans: &[String]) -> Result<CertificateParams, CertsError> {
    let first = server_sans.first().ok_or(CertsError::NoServerNames)?;
    let mut params = CertificateParams::default();
    params.subject_alt_names = server_sans
        .iter()
        .map(|name| parse_san(name, "server"))
        .collect::<Result<_, _>>()?;
    params.distinguished_name = common_name(first);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// Front leaf parameters: CN and DNS SAN "h2hop-front", the URI SANs
/// `uri_sans`, EKU clientAuth.
fn client_params(uri_sans: &[String]) -> Result<CertificateParams, CertsError> {
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![parse_san(CLIENT_NAME, "client")?];
    for uri in uri_sans {
        params.subject_alt_names.push(uri_san(uri)?);
    }
    params.distinguished_name = common_name(CLIENT_NAME);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// An IP SAN when `name` parses as an address, else a DNS SAN; `which` names
/// the certificate in errors.
fn parse_san(name: &str, which: &'static str) -> Result<SanType, CertsError> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    // rcgen only checks for ASCII; validate with the same rules rustls applies
    // to the name a client connects to, so a typo fails here, not at handshake.
    // A leading `*.` is a wildcard for one label (RFC 6125 §6.4.3).
    let host = name.strip_prefix("*.").unwrap_or(name);
    DnsName::try_from(host).map_err(|source| CertsError::InvalidSan {
        name: name.to_owned(),
        source,
    })?;
    Ia5String::try_from(name)
        .map(SanType::DnsName)
        .map_err(|source| CertsError::Generate { which, source })
}

/// A URI SAN: a scheme (RFC 3986 §3.1), `://` and a non-empty rest, in
/// ASCII without spaces; the same rule by which a sidecar's allow-list
/// tells a URI from a DNS name.
fn uri_san(uri: &str) -> Result<SanType, CertsError> {
    let invalid = || CertsError::InvalidUriSan {
        name: uri.to_owned(),
    };
    let (scheme, rest) = uri.split_once("://").ok_or_else(invalid)?;
    let mut chars = scheme.chars();
    let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok || rest.is_empty() || uri.contains(char::is_whitespace) {
        return Err(invalid());
    }
    Ia5String::try_from(uri)
        .map(SanType::URI)
        .map_err(|_| invalid())
}

/// A distinguished name holding only a common name.
fn common_name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

/// Makes a fresh key for `params` and has `issuer` sign it.
fn sign_leaf(
    params: CertificateParams,
    issuer: &Issuer<'_, KeyPair>,
    which: &'static str,
) -> Result<Leaf, CertsError> {
    let gen_err = |source| CertsError::Generate { which, source };
    let key = KeyPair::generate().map_err(gen_err)?;
    let cert = params.signed_by(&key, issuer).map_err(gen_err)?;
    Ok(Leaf {
        pem: Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        },
        cert_der: cert.der().clone(),
        key_der: key.serialize_der(),
    })
}

/// Wraps PKCS#8 DER bytes as an owned rustls private key.
fn pkcs8(der: &[u8]) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der.to_vec()))
}

/// Writes one file; `secret` files are created 0600 from the start so the key
/// is never readable by others, not even briefly.
fn write_file(path: &Path, text: &str, secret: bool, force: bool) -> io::Result<()> {
    if force {
        // Remove rather than truncate: a fresh file gets our mode, and a
        // symlink planted at `path` is replaced instead of followed.
        match fs::remove_file(path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
            _ => {}
        }
    }
    let mut file = create_new(path, secret)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// Creates `path`, failing if it exists; mode 0600 for secrets, 0644 otherwise.
#[cfg(unix)]
fn create_new(path: &Path, secret: bool) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
}

/// Creates `path`, failing if it exists (no Unix modes on this platform).
#[cfg(not(unix))]
fn create_new(path: &Path, _secret: bool) -> io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::RootCertStore;
    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{ServerName, UnixTime};
    use rustls::server::WebPkiClientVerifier;

    use super::*;

    fn default_sans() -> Vec<String> {
        DEFAULT_SERVER_SANS.iter().map(|s| s.to_string()).collect()
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn roots(pki: &DevPki) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots.add(pki.ca_der()).unwrap();
        Arc::new(roots)
    }

    fn verify_server(pki: &DevPki, trusted: &DevPki, name: &str) -> Result<(), rustls::Error> {
        let verifier = WebPkiServerVerifier::builder_with_provider(roots(trusted), provider())
            .build()
            .unwrap();
        let name = ServerName::try_from(name.to_owned()).unwrap();
        let chain = pki.server_chain();
        verifier
            .verify_server_cert(&chain[0], &chain[1..], &name, &[], UnixTime::now())
            .map(|_| ())
    }

    #[test]
    fn generated_certificates_and_keys_parse() {
        let pki = DevPki::generate(&default_sans()).unwrap();
        // Each PEM decodes to exactly the DER handed to rustls.
        let ca = CertificateDer::from_pem_slice(pki.ca_pem().as_bytes()).unwrap();
        assert_eq!(ca, pki.ca_der());
        let server = CertificateDer::from_pem_slice(pki.server().cert.as_bytes()).unwrap();
        assert_eq!(vec![server], pki.server_chain());
        let client = CertificateDer::from_pem_slice(pki.client().cert.as_bytes()).unwrap();
        assert_eq!(vec![client], pki.client_chain());
        let key = PrivateKeyDer::from_pem_slice(pki.server().key.as_bytes()).unwrap();
        assert_eq!(key.secret_der(), pki.server_key().secret_der());
        let key = PrivateKeyDer::from_pem_slice(pki.client().key.as_bytes()).unwrap();
        assert_eq!(key.secret_der(), pki.client_key().secret_der());
        // rustls loads each key and finds it matches its certificate.
        for (chain, key) in [
            (pki.server_chain(), pki.server_key()),
            (pki.client_chain(), pki.client_key()),
        ] {
            rustls::ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .unwrap();
        }
    }

    #[test]
    fn server_certificate_verifies_for_localhost() {
        let pki = DevPki::generate(&default_sans()).unwrap();
        verify_server(&pki, &pki, "localhost").unwrap();
    }

    #[test]
    fn server_certificate_verifies_for_loopback_ip() {
        let pki = DevPki::generate(&default_sans()).unwrap();
        verify_server(&pki, &pki, "127.0.0.1").unwrap();
    }

    #[test]
    fn server_certificate_rejects_unlisted_name() {
        let pki = DevPki::generate(&default_sans()).unwrap();
        let err = verify_server(&pki, &pki, "example.com").unwrap_err();
        assert!(
            matches!(err, rustls::Error::InvalidCertificate(_)),
            "{err:?}"
        );
    }

    #[test]
    fn server_certificate_rejected_by_another_ca() {
        let pki = DevPki::generate(&default_sans()).unwrap();
        let other = DevPki::generate(&default_sans()).unwrap();
        let err = verify_server(&pki, &other, "localhost").unwrap_err();
        assert_eq!(
            err,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
        );
    }

    #[test]
    fn client_certificate_verifies_against_ca() {
        let pki = DevPki::generate(&default_sans()).unwrap();
        let verifier = WebPkiClientVerifier::builder_with_provider(roots(&pki), provider())
            .build()
            .unwrap();
        let chain = pki.client_chain();
        verifier
            .verify_client_cert(&chain[0], &chain[1..], UnixTime::now())
            .unwrap();
    }

    #[test]
    fn custom_sans_are_used() {
        let sans = vec!["sidecar.internal".to_owned(), "::1".to_owned()];
        let pki = DevPki::generate(&sans).unwrap();
        verify_server(&pki, &pki, "sidecar.internal").unwrap();
        verify_server(&pki, &pki, "::1").unwrap();
        assert!(verify_server(&pki, &pki, "localhost").is_err());
    }

    /// RFC 6125 §6.4.3: `*.example.com` is valid for one label in front of
    /// `example.com`, not for two, nor for `example.com` itself.
    #[test]
    fn wildcard_sans_cover_one_label() {
        let pki = DevPki::generate(&["*.example.com".to_owned()]).unwrap();
        verify_server(&pki, &pki, "www.example.com").unwrap();
        assert!(verify_server(&pki, &pki, "a.b.example.com").is_err());
        assert!(verify_server(&pki, &pki, "example.com").is_err());
        let err = DevPki::generate(&["*.*.example.com".to_owned()]).unwrap_err();
        assert!(matches!(err, CertsError::InvalidSan { .. }), "{err:?}");
    }

    /// The URI and DNS SANs of a certificate, as a verifier reads them.
    fn names_of(cert: &CertificateDer<'_>) -> (Vec<String>, Vec<String>) {
        let parsed = webpki::EndEntityCert::try_from(cert).unwrap();
        let uris = parsed.valid_uri_names().map(str::to_owned).collect();
        let dns = parsed.valid_dns_names().map(str::to_owned).collect();
        (uris, dns)
    }

    #[test]
    fn front_certificate_carries_uri_sans() {
        let uris = vec![
            "spiffe://test/front".to_owned(),
            "spiffe://test/other".to_owned(),
        ];
        let pki = DevPki::generate_with(&default_sans(), &uris).unwrap();
        let (found, dns) = names_of(&pki.client_chain()[0]);
        assert_eq!(found, uris);
        assert_eq!(dns, [CLIENT_NAME]);
        // The sidecar's certificate gets none.
        let (found, _) = names_of(&pki.server_chain()[0]);
        assert!(found.is_empty());
        // Still a client certificate the CA vouches for.
        let verifier = WebPkiClientVerifier::builder_with_provider(roots(&pki), provider())
            .build()
            .unwrap();
        let chain = pki.client_chain();
        verifier
            .verify_client_cert(&chain[0], &[], UnixTime::now())
            .unwrap();
    }

    #[test]
    fn front_certificate_without_uri_sans_has_none() {
        let pki = DevPki::generate(&default_sans()).unwrap();
        let (uris, dns) = names_of(&pki.client_chain()[0]);
        assert!(uris.is_empty());
        assert_eq!(dns, [CLIENT_NAME]);
    }

    #[test]
    fn generate_refuses_malformed_uri_san() {
        for bad in [
            "spiffe:/x",
            "no-scheme",
            "://x",
            "spiffe://",
            "spiffe://a b",
            "1x://y",
            "spiffe://é",
        ] {
            let err = DevPki::generate_with(&default_sans(), &[bad.to_owned()]).unwrap_err();
            assert!(
                matches!(&err, CertsError::InvalidUriSan { name } if name == bad),
                "{bad:?}: {err:?}"
            );
        }
    }

    #[test]
    fn generate_refuses_empty_sans() {
        let err = DevPki::generate(&[]).unwrap_err();
        assert!(matches!(err, CertsError::NoServerNames), "{err:?}");
    }

    #[test]
    fn generate_refuses_invalid_dns_name() {
        let err = DevPki::generate(&["bad name".to_owned()]).unwrap_err();
        match err {
            CertsError::InvalidSan { name, .. } => assert_eq!(name, "bad name"),
            other => panic!("expected InvalidSan, got {other:?}"),
        }
    }

    #[test]
    fn each_call_makes_fresh_keys() {
        let a = DevPki::generate(&default_sans()).unwrap();
        let b = DevPki::generate(&default_sans()).unwrap();
        assert_ne!(a.server().key, b.server().key);
        assert_ne!(a.ca_pem(), b.ca_pem());
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn write_to_writes_five_files_with_private_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pki");
        let pki = DevPki::generate(&default_sans()).unwrap();
        let written = pki.write_to(&dir, false).unwrap();
        let names: Vec<_> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "ca.pem",
                "sidecar.pem",
                "sidecar-key.pem",
                "front.pem",
                "front-key.pem"
            ]
        );
        assert_eq!(fs::read_to_string(&written[0]).unwrap(), pki.ca_pem());
        assert_eq!(fs::read_to_string(&written[2]).unwrap(), pki.server().key);
        assert_eq!(fs::read_to_string(&written[4]).unwrap(), pki.client().key);
        #[cfg(unix)]
        {
            assert_eq!(mode(&dir.join("sidecar-key.pem")), 0o600);
            assert_eq!(mode(&dir.join("front-key.pem")), 0o600);
        }
    }

    #[test]
    fn write_to_refuses_to_overwrite_without_force() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("front-key.pem"), "keep me").unwrap();
        let pki = DevPki::generate(&default_sans()).unwrap();
        let err = pki.write_to(tmp.path(), false).unwrap_err();
        match err {
            CertsError::Exists { path } => assert_eq!(path, tmp.path().join("front-key.pem")),
            other => panic!("expected Exists, got {other:?}"),
        }
        // Nothing was written, and the existing file is untouched.
        assert!(!tmp.path().join("ca.pem").exists());
        let kept = fs::read_to_string(tmp.path().join("front-key.pem")).unwrap();
        assert_eq!(kept, "keep me");
    }

    #[test]
    fn write_to_overwrites_with_force() {
        let tmp = tempfile::tempdir().unwrap();
        let old = DevPki::generate(&default_sans()).unwrap();
        old.write_to(tmp.path(), false).unwrap();
        // A key file left world-readable must come back 0600.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let key = tmp.path().join("sidecar-key.pem");
            fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        }
        let new = DevPki::generate(&default_sans()).unwrap();
        new.write_to(tmp.path(), true).unwrap();
        let key = fs::read_to_string(tmp.path().join("sidecar-key.pem")).unwrap();
        assert_eq!(key, new.server().key);
        assert_ne!(key, old.server().key);
        #[cfg(unix)]
        assert_eq!(mode(&tmp.path().join("sidecar-key.pem")), 0o600);
    }
}
