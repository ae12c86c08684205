//! TLS for both legs: PEM files → rustls configurations, and after a
//! handshake, the ALPN check and a short reason for log lines when it failed.
//!
//! Each builder is named by the leg it serves and its role on it:
//!
//! - the hop, front ⇄ sidecar, mutual TLS 1.3 with ALPN `h2`: the sidecar's
//!   listener wraps accepted sockets with [`hop_server_config`] (a client
//!   certificate is required); the front's upstream connector uses
//!   [`hop_client_config`] (it presents its own). Both then call
//!   [`require_h2_alpn`], and log [`describe_failure`] of any error from the
//!   handshake or the first read.
//! - the edge, clients ⇄ front: the front's listener serves browsers and
//!   CLIs with [`edge_server_config`] (no client certificate, `h2` or
//!   `http/1.1`).
//!
//! Every configuration is built with the ring provider explicitly, never
//! rustls' process-wide default: with two providers compiled in,
//! `ServerConfig::builder()` panics.
//!
//! Two concerns have modules of their own: [`identity`], the sidecar's
//! allow-list of front certificate SANs ([`hop_server_config_allowing`]), and
//! [`reload`], the same configurations read from files that SIGHUP builds
//! again (`*_files`). The edge listener's full set-up (certificates chosen
//! by SNI in [`sni`], TLS version, suites, OCSP) is [`edge`]'s.

use std::error::Error as StdError;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::CipherSuite;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{VerifierBuilderError, WebPkiClientVerifier};
use rustls::{
    AlertDescription, CertificateError, ClientConfig, InconsistentKeys, InvalidMessage,
    RootCertStore, ServerConfig,
};

pub mod edge;
pub mod identity;
pub mod reload;
pub mod sni;

use identity::{AllowedSans, SanVerifier};

/// ALPN id for the hop between front and sidecar.
pub const ALPN_H2: &[u8] = b"h2";

/// The hop: TLS 1.3 only, both ends are ours, so there is no older peer to
/// support.
static HOP_PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// The edge: clients may be older, so TLS 1.2 as well.
static EDGE_PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// What went wrong while loading TLS material, building a configuration, or
/// checking a finished handshake.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be opened or read.
    #[error("reading {}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: io::Error,
    },
    /// A PEM file holds no CERTIFICATE section.
    #[error("no certificate found in {}", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A PEM file holds no private key section (PKCS#8, PKCS#1 or SEC1).
    #[error("no private key found in {}", path.display())]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// A PEM file is malformed.
    #[error("malformed PEM in {}", path.display())]
    BadPem {
        /// The file.
        path: PathBuf,
        /// What the PEM parser found.
        #[source]
        source: pem::Error,
    },
    /// The list of trusted CA certificates is empty.
    #[error("no CA certificate to trust")]
    NoTrustAnchors,
    /// A CA certificate could not be used as a trust anchor.
    #[error("adding a CA certificate to the trust store")]
    TrustAnchor(#[source] rustls::Error),
    /// rustls refused the configuration (for example a key that does not
    /// match its certificate, when they were not read from files).
    #[error("building the TLS configuration")]
    Config(#[source] rustls::Error),
    /// The private key read from `key` is not the one whose public half the
    /// certificate read from `cert` carries.
    #[error(
        "the private key in {} does not belong to the certificate in {}",
        key.display(),
        cert.display()
    )]
    KeyMismatch {
        /// The certificate chain file.
        cert: PathBuf,
        /// The private key file.
        key: PathBuf,
    },
    /// The client certificate verifier could not be built.
    #[error("building the client certificate verifier")]
    Verifier(#[source] VerifierBuilderError),
    /// A value for the allowed client certificate SANs is neither a URI
    /// (`scheme://...`) nor a DNS name.
    #[error("allowed SAN {value:?} is neither a URI (scheme://...) nor a DNS name")]
    AllowedSan {
        /// The value as given.
        value: String,
    },
    /// The handshake finished without agreeing on `h2`.
    #[error("peer negotiated ALPN {got} instead of h2")]
    Alpn {
        /// The negotiated protocol, quoted, or `none`.
        got: String,
    },
    /// The edge listener's certificates by name, versions, suites or OCSP
    /// staples are refused ([`edge`]). Boxed: it is the largest variant.
    #[error(transparent)]
    Edge(Box<edge::EdgeError>),
}

/// The one crypto provider h2hop uses: ring's suites, with AES-128-GCM
/// ahead of AES-256-GCM (as BoringSSL and so Envoy order them): four fewer
/// AES rounds for every tunnelled byte, at a strength TLS 1.3 requires
/// every implementation to offer (RFC 8446 §9.1).
fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|suite| suite.suite() != CipherSuite::TLS13_AES_128_GCM_SHA256);
    Arc::new(provider)
}

/// A root store holding exactly `certs`; empty is an error, because a store
/// with no anchors would fail every handshake with a less obvious message.
fn root_store(certs: Vec<CertificateDer<'static>>) -> Result<Arc<RootCertStore>, TlsError> {
    if certs.is_empty() {
        return Err(TlsError::NoTrustAnchors);
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(TlsError::TrustAnchor)?;
    }
    Ok(Arc::new(roots))
}

/// The ALPN name of HTTP/1.1.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// The edge server, the front toward its clients (browsers, CLIs): no
/// client certificate, ALPN `h2` (unless `h2` is false) and `http/1.1`, in
/// that order of preference. The connection's `alpn_protocol()` says which
/// to serve; none means HTTP/1.1.
pub fn edge_server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    h2: bool,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(EDGE_PROTOCOL_VERSIONS)
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Config)?;
    config.alpn_protocols = if h2 {
        vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()]
    } else {
        vec![ALPN_HTTP11.to_vec()]
    };
    Ok(Arc::new(config))
}

/// The hop server, the sidecar toward fronts: TLS 1.3 only, ALPN h2 only,
/// client certificate REQUIRED and verified against `client_ca`.
///
/// A client that offers ALPN without `h2` is refused during the handshake; a
/// client that offers no ALPN at all completes it, so the caller must still
/// call [`require_h2_alpn`].
pub fn hop_server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_ca: Vec<CertificateDer<'static>>,
) -> Result<Arc<ServerConfig>, TlsError> {
    hop_server_config_allowing(chain, key, client_ca, &AllowedSans::any())
}

/// [`hop_server_config`], and the client certificate must also carry one of
/// the `allowed` SANs (none listed: any certificate from `client_ca`). A
/// certificate without one is refused in the handshake with
/// [`identity::IdentityRefused`], after the chain check.
pub fn hop_server_config_allowing(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_ca: Vec<CertificateDer<'static>>,
    allowed: &AllowedSans,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let mut verifier =
        WebPkiClientVerifier::builder_with_provider(root_store(client_ca)?, provider.clone())
            .build()
            .map_err(TlsError::Verifier)?;
    if !allowed.is_empty() {
        verifier = Arc::new(SanVerifier::new(verifier, allowed.clone()));
    }
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(HOP_PROTOCOL_VERSIONS)
        .map_err(TlsError::Config)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(TlsError::Config)?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// The hop client, the front toward sidecars: TLS 1.3 only, ALPN h2,
/// server verified against `ca` (the only roots). `identity` is the client certificate chain and key; `None` sends
/// no certificate, which a sidecar refuses (useful to test that refusal).
pub fn hop_client_config(
    ca: Vec<CertificateDer<'static>>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(HOP_PROTOCOL_VERSIONS)
        .map_err(TlsError::Config)?
        .with_root_certificates(root_store(ca)?);
    let mut config = match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(TlsError::Config)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// Reads every CERTIFICATE section of the PEM file at `path`, in order (leaf
/// first for a chain). Other sections are skipped; none at all is an error.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|err| pem_error(path, err))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| pem_error(path, err))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) of the PEM file at
/// `path`.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|err| match err {
        pem::Error::NoItemsFound => TlsError::NoKey {
            path: path.to_path_buf(),
        },
        other => pem_error(path, other),
    })
}

/// Names the files of a key that does not match its certificate: rustls
/// only says `KeyMismatch`, without knowing where either came from. Other
/// errors pass unchanged.
fn name_key_files(err: TlsError, cert: &Path, key: &Path) -> TlsError {
    match err {
        TlsError::Config(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            TlsError::KeyMismatch {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
            }
        }
        other => other,
    }
}

/// Sorts a PEM failure into "could not read the file" and "bad contents".
fn pem_error(path: &Path, err: pem::Error) -> TlsError {
    let path = path.to_path_buf();
    match err {
        pem::Error::Io(source) => TlsError::ReadFile { path, source },
        source => TlsError::BadPem { path, source },
    }
}

/// The ALPN check after a handshake: `Err(TlsError::Alpn)` unless the
/// negotiated protocol is h2. Pass `alpn_protocol()` of the connection.
pub fn require_h2_alpn(negotiated: Option<&[u8]>) -> Result<(), TlsError> {
    match negotiated {
        Some(ALPN_H2) => Ok(()),
        Some(other) => Err(TlsError::Alpn {
            got: format!("{:?}", String::from_utf8_lossy(other)),
        }),
        None => Err(TlsError::Alpn {
            got: "none".to_owned(),
        }),
    }
}

/// A short human reason for a failed handshake or first read, such as "peer
/// sent no certificate" or "certificate signed by unknown CA", for log lines.
///
/// Walks `err`'s source chain for a [`rustls::Error`], looking inside
/// [`io::Error`]s too (tokio-rustls reports rustls errors wrapped in one, and
/// `io::Error::source` skips the wrapped error). Without one, returns `err`'s
/// Display.
pub fn describe_failure(err: &(dyn StdError + 'static)) -> String {
    let mut next = Some(err);
    while let Some(current) = next {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return describe_rustls(tls);
        }
        let wrapped = current
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
            .map(|inner| inner as &(dyn StdError + 'static));
        next = wrapped.or_else(|| current.source());
    }
    err.to_string()
}

/// The reason for one rustls error, seen from our side of the handshake.
fn describe_rustls(err: &rustls::Error) -> String {
    use rustls::Error as E;
    match err {
        E::NoCertificatesPresented => "peer sent no certificate".to_owned(),
        E::InvalidCertificate(cert) => {
            describe_certificate(cert).unwrap_or_else(|| err.to_string())
        }
        E::AlertReceived(alert) => describe_alert(*alert),
        E::NoApplicationProtocol => {
            "peer offered no ALPN protocol in common (h2 required)".to_owned()
        }
        // A plain-text HTTP request or another protocol on the TLS port.
        E::InvalidMessage(InvalidMessage::InvalidContentType) => {
            "peer is not speaking TLS".to_owned()
        }
        other => other.to_string(),
    }
}

/// Why we refused the peer's certificate, for the common cases.
fn describe_certificate(err: &CertificateError) -> Option<String> {
    use CertificateError as C;
    let reason = match err {
        C::UnknownIssuer => "certificate signed by unknown CA",
        C::BadSignature => "certificate signature does not verify (issuer key mismatch)",
        C::NotValidForNameContext {
            expected,
            presented,
        } => return Some(wrong_name(&expected.to_str(), presented)),
        C::NotValidForName => "certificate not valid for the requested name",
        C::Expired | C::ExpiredContext { .. } => "certificate expired",
        C::NotValidYet | C::NotValidYetContext { .. } => "certificate not yet valid",
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "certificate not issued for this use (extended key usage)"
        }
        C::Revoked => "certificate revoked",
        C::Other(_) => return identity::refusal_of(err).map(ToString::to_string),
        _ => return None,
    };
    Some(reason.to_owned())
}

/// "certificate is valid for a or b, not for c": the names the peer's
/// certificate carries, and the one we asked for.
fn wrong_name(expected: &str, presented: &[String]) -> String {
    let names: Vec<&str> = presented.iter().map(|name| plain_name(name)).collect();
    match names.split_last() {
        None => format!("certificate is valid for no name, not for {expected}"),
        Some((last, [])) => format!("certificate is valid for {last}, not for {expected}"),
        Some((last, rest)) => format!(
            "certificate is valid for {} or {last}, not for {expected}",
            rest.join(", ")
        ),
    }
}

/// One name as webpki reports it, in its Debug form (`DnsName("a.example")`,
/// `IpAddress(192.0.2.1)`, `UniformResourceIdentifier("spiffe://...")`),
/// without the wrapper. A form it does not know stays as it is.
fn plain_name(presented: &str) -> &str {
    ["DnsName", "IpAddress", "UniformResourceIdentifier"]
        .iter()
        .find_map(|kind| {
            let inner = presented.strip_prefix(kind)?.strip_prefix('(')?;
            let inner = inner.strip_suffix(')')?;
            Some(
                inner
                    .strip_prefix('"')
                    .and_then(|quoted| quoted.strip_suffix('"'))
                    .unwrap_or(inner),
            )
        })
        .unwrap_or(presented)
}

/// Why the peer aborted, from the alert it sent us.
fn describe_alert(alert: AlertDescription) -> String {
    use AlertDescription as A;
    let reason = match alert {
        A::CertificateRequired => "peer requires a client certificate and we sent none",
        A::UnknownCA => "peer rejected our certificate: unknown CA",
        A::BadCertificate | A::UnsupportedCertificate | A::CertificateUnknown => {
            "peer rejected our certificate"
        }
        A::CertificateExpired => "peer rejected our certificate: expired",
        A::CertificateRevoked => "peer rejected our certificate: revoked",
        A::NoApplicationProtocol => "peer does not accept ALPN h2",
        A::ProtocolVersion => "peer does not accept TLS 1.3",
        A::HandshakeFailure => "peer found no acceptable handshake parameters",
        other => return format!("peer sent fatal alert {other:?}"),
    };
    reason.to_owned()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use h2hop_certs::{DEFAULT_SERVER_SANS, DevPki};
    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    use super::*;

    fn new_pki() -> DevPki {
        let sans: Vec<String> = DEFAULT_SERVER_SANS.iter().map(|s| s.to_string()).collect();
        DevPki::generate(&sans).unwrap()
    }

    /// Server config with `server`'s certificate, trusting `client_ca`'s CA.
    fn sidecar(server: &DevPki, client_ca: &DevPki) -> Arc<ServerConfig> {
        hop_server_config(
            server.server_chain(),
            server.server_key(),
            vec![client_ca.ca_der()],
        )
        .unwrap()
    }

    /// Client config trusting `ca`'s CA, presenting `identity`'s client cert.
    fn front(ca: &DevPki, identity: Option<&DevPki>) -> Arc<ClientConfig> {
        let identity = identity.map(|p| (p.client_chain(), p.client_key()));
        hop_client_config(vec![ca.ca_der()], identity).unwrap()
    }

    /// Outcome of one side: the negotiated ALPN, or the error it saw.
    type Side = io::Result<Option<Vec<u8>>>;

    /// Runs a handshake over an in-memory pipe, then one byte each way so a
    /// refusal that TLS 1.3 delivers after `connect()` still surfaces.
    async fn exchange(
        server: Arc<ServerConfig>,
        client: Arc<ClientConfig>,
        name: &str,
    ) -> (Side, Side) {
        let (server_io, client_io) = tokio::io::duplex(64 * 1024);
        let name = ServerName::try_from(name.to_owned()).unwrap();
        let server_side = async {
            let mut tls = TlsAcceptor::from(server).accept(server_io).await?;
            let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).await?;
            tls.write_all(&byte).await?;
            tls.flush().await?;
            Ok(alpn)
        };
        let client_side = async {
            let mut tls = TlsConnector::from(client).connect(name, client_io).await?;
            let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
            tls.write_all(b"x").await?;
            tls.flush().await?;
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).await?;
            Ok(alpn)
        };
        let both = async { tokio::join!(server_side, client_side) };
        tokio::time::timeout(Duration::from_secs(5), both)
            .await
            .unwrap()
    }

    fn reason(side: Side) -> String {
        let err = side.expect_err("this side should have failed");
        describe_failure(&err)
    }

    #[tokio::test]
    async fn mutual_handshake_negotiates_h2() {
        let pki = new_pki();
        let (server, client) =
            exchange(sidecar(&pki, &pki), front(&pki, Some(&pki)), "localhost").await;
        assert_eq!(server.unwrap().as_deref(), Some(ALPN_H2));
        let alpn = client.unwrap();
        require_h2_alpn(alpn.as_deref()).unwrap();
    }

    #[test]
    fn both_ends_offer_aes_128_gcm_first_and_keep_every_ring_suite() {
        let pki = new_pki();
        let ring = rustls::crypto::ring::default_provider().cipher_suites;
        for suites in [
            &sidecar(&pki, &pki).crypto_provider().cipher_suites,
            &front(&pki, Some(&pki)).crypto_provider().cipher_suites,
        ] {
            assert_eq!(suites[0].suite(), CipherSuite::TLS13_AES_128_GCM_SHA256);
            assert_eq!(suites.len(), ring.len());
            assert!(ring.iter().all(|suite| suites.contains(suite)));
        }
    }

    #[tokio::test]
    async fn mutual_handshake_works_for_ip_address() {
        let pki = new_pki();
        let (server, client) =
            exchange(sidecar(&pki, &pki), front(&pki, Some(&pki)), "127.0.0.1").await;
        server.unwrap();
        client.unwrap();
    }

    #[tokio::test]
    async fn sidecar_rejects_client_without_certificate() {
        let pki = new_pki();
        let (server, client) = exchange(sidecar(&pki, &pki), front(&pki, None), "localhost").await;
        let server_reason = reason(server);
        assert!(server_reason.contains("no certificate"), "{server_reason}");
        // The client only learns of it on its first read, from the alert.
        let client_reason = reason(client);
        assert!(
            client_reason.contains("requires a client certificate"),
            "{client_reason}"
        );
    }

    #[tokio::test]
    async fn sidecar_rejects_client_certificate_from_another_ca() {
        let pki = new_pki();
        let stranger = new_pki();
        let (server, client) = exchange(
            sidecar(&pki, &pki),
            front(&pki, Some(&stranger)),
            "localhost",
        )
        .await;
        let server_reason = reason(server);
        assert!(server_reason.contains("unknown CA"), "{server_reason}");
        let client_reason = reason(client);
        assert!(
            client_reason.contains("rejected our certificate"),
            "{client_reason}"
        );
    }

    /// A sidecar that allows `allowed` SANs, with `pki`'s certificates.
    fn sidecar_allowing(pki: &DevPki, allowed: &[&str]) -> Arc<ServerConfig> {
        let allowed = AllowedSans::new(allowed).unwrap();
        hop_server_config_allowing(
            pki.server_chain(),
            pki.server_key(),
            vec![pki.ca_der()],
            &allowed,
        )
        .unwrap()
    }

    fn pki_with_front_uri(uri: &str) -> DevPki {
        let sans: Vec<String> = DEFAULT_SERVER_SANS.iter().map(|s| s.to_string()).collect();
        DevPki::generate_with(&sans, &[uri.to_owned()]).unwrap()
    }

    #[tokio::test]
    async fn sidecar_accepts_client_certificate_with_an_allowed_san() {
        let pki = pki_with_front_uri("spiffe://test/front");
        for allowed in [
            &["spiffe://test/other", "spiffe://test/front"][..],
            &["H2HOP-FRONT"],
            &[],
        ] {
            let server = sidecar_allowing(&pki, allowed);
            let (server, client) = exchange(server, front(&pki, Some(&pki)), "localhost").await;
            server.unwrap();
            client.unwrap();
        }
    }

    #[tokio::test]
    async fn sidecar_refuses_client_certificate_without_an_allowed_san() {
        let pki = pki_with_front_uri("spiffe://test/front");
        let server = sidecar_allowing(&pki, &["spiffe://test/other", "other-front"]);
        let (server, client) = exchange(server, front(&pki, Some(&pki)), "localhost").await;
        assert_eq!(
            reason(server),
            "client certificate identity not allowed: it has URI SANs [spiffe://test/front], \
             DNS SANs [h2hop-front], none of them allowed"
        );
        let client_reason = reason(client);
        assert!(
            client_reason.contains("rejected our certificate"),
            "{client_reason}"
        );
    }

    #[tokio::test]
    async fn san_allow_list_checks_the_chain_first() {
        let pki = pki_with_front_uri("spiffe://test/front");
        let stranger = pki_with_front_uri("spiffe://test/front");
        let server = sidecar_allowing(&pki, &["spiffe://test/front"]);
        let (server, _) = exchange(server, front(&pki, Some(&stranger)), "localhost").await;
        let server_reason = reason(server);
        assert!(server_reason.contains("unknown CA"), "{server_reason}");
    }

    #[tokio::test]
    async fn front_rejects_server_certificate_for_another_name() {
        let pki = new_pki();
        let (server, client) =
            exchange(sidecar(&pki, &pki), front(&pki, Some(&pki)), "example.com").await;
        assert_eq!(
            reason(client),
            "certificate is valid for localhost or 127.0.0.1, not for example.com"
        );
        assert!(server.is_err());
    }

    #[test]
    fn wrong_name_reads_as_plain_names() {
        let presented = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(
            wrong_name(
                "other.internal",
                &presented(&[r#"DnsName("sidecar.internal")"#])
            ),
            "certificate is valid for sidecar.internal, not for other.internal"
        );
        assert_eq!(
            wrong_name(
                "192.0.2.9",
                &presented(&[
                    r#"DnsName("a.example")"#,
                    "IpAddress(192.0.2.1)",
                    r#"UniformResourceIdentifier("spiffe://t/sidecar")"#,
                    "DirectoryName",
                ])
            ),
            "certificate is valid for a.example, 192.0.2.1, spiffe://t/sidecar or \
             DirectoryName, not for 192.0.2.9"
        );
        assert_eq!(
            wrong_name("a.example", &[]),
            "certificate is valid for no name, not for a.example"
        );
    }

    #[tokio::test]
    async fn front_rejects_server_from_another_ca() {
        let pki = new_pki();
        let impostor = new_pki();
        let (server, client) = exchange(
            sidecar(&impostor, &pki),
            front(&pki, Some(&pki)),
            "localhost",
        )
        .await;
        let client_reason = reason(client);
        assert!(client_reason.contains("unknown CA"), "{client_reason}");
        let server_reason = reason(server);
        assert!(
            server_reason.contains("rejected our certificate: unknown CA"),
            "{server_reason}"
        );
    }

    #[tokio::test]
    async fn configs_from_pem_files_complete_a_handshake() {
        let pki = new_pki();
        let dir = tempfile::tempdir().unwrap();
        pki.write_to(dir.path(), false).unwrap();
        let file = |name: &str| dir.path().join(name);

        let ca = load_certs(&file("ca.pem")).unwrap();
        assert_eq!(ca, vec![pki.ca_der()]);
        let server_chain = load_certs(&file("sidecar.pem")).unwrap();
        assert_eq!(server_chain, pki.server_chain());
        let server_key = load_key(&file("sidecar-key.pem")).unwrap();
        assert_eq!(server_key.secret_der(), pki.server_key().secret_der());
        let client_chain = load_certs(&file("front.pem")).unwrap();
        let client_key = load_key(&file("front-key.pem")).unwrap();

        let server = hop_server_config(server_chain, server_key, ca.clone()).unwrap();
        let client = hop_client_config(ca, Some((client_chain, client_key))).unwrap();
        let (server, client) = exchange(server, client, "localhost").await;
        server.unwrap();
        client.unwrap();
    }

    #[tokio::test]
    async fn describe_failure_spots_plain_http_on_tls_port() {
        let pki = new_pki();
        let (server_io, mut client_io) = tokio::io::duplex(64 * 1024);
        client_io
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let accept = TlsAcceptor::from(sidecar(&pki, &pki)).accept(server_io);
        let result = tokio::time::timeout(Duration::from_secs(5), accept)
            .await
            .unwrap();
        let Err(err) = result else {
            panic!("plain HTTP must not complete a handshake");
        };
        assert_eq!(describe_failure(&err), "peer is not speaking TLS");
    }

    #[test]
    fn load_certs_names_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.pem");
        let err = load_certs(&path).unwrap_err();
        assert!(
            matches!(&err, TlsError::ReadFile { path: p, .. } if *p == path),
            "{err:?}"
        );
        assert!(err.to_string().contains("absent.pem"));
    }

    #[test]
    fn load_certs_rejects_file_without_certificate() {
        let dir = tempfile::tempdir().unwrap();
        new_pki().write_to(dir.path(), false).unwrap();
        let err = load_certs(&dir.path().join("front-key.pem")).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err:?}");
    }

    #[test]
    fn load_certs_rejects_malformed_pem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.pem");
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = load_certs(&path).unwrap_err();
        assert!(matches!(err, TlsError::BadPem { .. }), "{err:?}");
    }

    #[test]
    fn load_key_rejects_file_without_key() {
        let dir = tempfile::tempdir().unwrap();
        new_pki().write_to(dir.path(), false).unwrap();
        let err = load_key(&dir.path().join("ca.pem")).unwrap_err();
        assert!(matches!(err, TlsError::NoKey { .. }), "{err:?}");
    }

    #[test]
    fn server_config_requires_a_client_ca() {
        let pki = new_pki();
        let err = hop_server_config(pki.server_chain(), pki.server_key(), Vec::new()).unwrap_err();
        assert!(matches!(err, TlsError::NoTrustAnchors), "{err:?}");
    }

    #[test]
    fn client_config_rejects_key_not_matching_certificate() {
        let pki = new_pki();
        let identity = Some((pki.client_chain(), pki.server_key()));
        let err = hop_client_config(vec![pki.ca_der()], identity).unwrap_err();
        assert!(matches!(err, TlsError::Config(_)), "{err:?}");
    }

    #[test]
    fn require_h2_alpn_accepts_only_h2() {
        require_h2_alpn(Some(b"h2")).unwrap();
        let err = require_h2_alpn(Some(b"http/1.1")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "peer negotiated ALPN \"http/1.1\" instead of h2"
        );
        let err = require_h2_alpn(None).unwrap_err();
        assert_eq!(err.to_string(), "peer negotiated ALPN none instead of h2");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("accepting a connection")]
    struct Accepting(#[source] io::Error);

    #[test]
    fn describe_failure_finds_rustls_error_inside_io_error() {
        let io = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::NoCertificatesPresented,
        );
        assert_eq!(describe_failure(&Accepting(io)), "peer sent no certificate");
    }

    #[test]
    fn describe_failure_falls_back_to_display() {
        let err = Accepting(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "tls handshake eof",
        ));
        assert_eq!(describe_failure(&err), "accepting a connection");
    }
}
