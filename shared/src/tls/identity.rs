//! Workload identity on the mutual TLS hop: which client certificates the
//! sidecar accepts, by their subject alternative names (SANs).
//!
//! [`AllowedSans`] is the sidecar's `--allow-front-san` list: URI SANs such
//! as `spiffe://trust-domain/front` and DNS SANs.
//! [`super::hop_server_config_allowing`] wraps rustls' chain verifier in
//! [`SanVerifier`], which, once the chain checks out, refuses a certificate
//! that carries none of the allowed names.
//! The refusal happens inside the TLS handshake, so no HTTP/2 byte is ever
//! served to a refused front; rustls answers it with a fatal
//! `certificate_unknown` alert (RFC 8446 §6.2), and the sidecar's listener
//! logs the [`IdentityRefused`] it carries, naming what the front presented.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, DnsName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, SignatureScheme,
};

use super::TlsError;

/// The names a certificate carries in its subjectAltName extension
/// (RFC 5280 §4.2.1.6) that h2hop can match: URIs and DNS names. IP
/// addresses and other name forms are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sans {
    /// `uniformResourceIdentifier` names, as written.
    pub uris: Vec<String>,
    /// `dNSName` names, as written.
    pub dns: Vec<String>,
}

impl Sans {
    /// The URI and DNS SANs of `cert` (DER). A certificate that does not
    /// parse has none: the chain verifier has refused it already by the time
    /// [`SanVerifier`] asks.
    pub fn of(cert: &CertificateDer<'_>) -> Sans {
        let Ok(parsed) = webpki::EndEntityCert::try_from(cert) else {
            return Sans::default();
        };
        Sans {
            uris: parsed.valid_uri_names().map(str::to_owned).collect(),
            dns: parsed.valid_dns_names().map(str::to_owned).collect(),
        }
    }
}

impl fmt::Display for Sans {
    /// `URI SANs [a, b], DNS SANs [c]`, or `no URI or DNS SAN`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.uris.is_empty() && self.dns.is_empty() {
            return f.write_str("no URI or DNS SAN");
        }
        write!(
            f,
            "URI SANs [{}], DNS SANs [{}]",
            self.uris.join(", "),
            self.dns.join(", ")
        )
    }
}

/// The SANs a client certificate must carry one of to be accepted; empty
/// accepts any certificate that chains to the client CA.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedSans {
    /// URI SANs, compared byte for byte.
    uris: Vec<String>,
    /// DNS SANs, lower-cased: DNS names compare case-insensitively
    /// (RFC 4343 §3, RFC 6125 §6.4.1).
    dns: Vec<String>,
}

impl AllowedSans {
    /// No restriction: any certificate that chains to the client CA.
    pub fn any() -> Self {
        Self::default()
    }

    /// Sorts `values` into URI SANs (a value containing `://`, such as a
    /// SPIFFE ID `spiffe://trust-domain/path`) and DNS SANs (anything else,
    /// which must then be a valid DNS name). An empty list accepts any
    /// certificate.
    pub fn new<S: AsRef<str>>(values: &[S]) -> Result<Self, TlsError> {
        let mut allowed = Self::default();
        for value in values.iter().map(AsRef::as_ref) {
            if is_uri(value) {
                allowed.uris.push(value.to_owned());
            } else if DnsName::try_from(value).is_ok() {
                allowed.dns.push(value.to_ascii_lowercase());
            } else {
                return Err(TlsError::AllowedSan {
                    value: value.to_owned(),
                });
            }
        }
        Ok(allowed)
    }

    /// Whether every certificate from the client CA is accepted.
    pub fn is_empty(&self) -> bool {
        self.uris.is_empty() && self.dns.is_empty()
    }

    /// Whether `presented` carries one of the allowed names. URI SANs must
    /// match exactly; DNS SANs match whatever their case, and a wildcard is
    /// only ever matched by the same wildcard (these name identities, not
    /// hosts to connect to).
    pub fn permits(&self, presented: &Sans) -> bool {
        if self.is_empty() {
            return true;
        }
        presented.uris.iter().any(|uri| self.uris.contains(uri))
            || presented
                .dns
                .iter()
                .any(|dns| self.dns.contains(&dns.to_ascii_lowercase()))
    }
}

impl fmt::Display for AllowedSans {
    /// The allowed names, comma-separated, or `any`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("any");
        }
        let all: Vec<&str> = self
            .uris
            .iter()
            .chain(&self.dns)
            .map(String::as_str)
            .collect();
        f.write_str(&all.join(", "))
    }
}

/// A URI SAN as the allow-list and `h2hop-certs` write it: a scheme (RFC
/// 3986 §3.1), then `://` and something after it.
pub fn is_uri(value: &str) -> bool {
    let Some((scheme, rest)) = value.split_once("://") else {
        return false;
    };
    let mut chars = scheme.chars();
    let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    scheme_ok && !rest.is_empty() && value.is_ascii() && !value.contains(char::is_whitespace)
}

/// A client certificate that chains to the CA but carries none of the
/// allowed SANs. It travels inside the rustls error, so that the one log
/// line of the refused handshake can name what the front presented.
#[derive(Debug, Clone, thiserror::Error)]
#[error("client certificate identity not allowed: it has {presented}, none of them allowed")]
pub struct IdentityRefused {
    /// What the certificate carries.
    pub presented: Sans,
}

/// A client certificate verifier: rustls' WebPKI chain check first, then
/// the SAN allow-list. Everything else is the inner verifier's.
#[derive(Debug)]
pub struct SanVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: AllowedSans,
}

impl SanVerifier {
    /// Wraps `inner` (normally a [`rustls::server::WebPkiClientVerifier`]) so that it also
    /// requires one of `allowed`.
    pub fn new(inner: Arc<dyn ClientCertVerifier>, allowed: AllowedSans) -> Self {
        Self { inner, allowed }
    }
}

impl ClientCertVerifier for SanVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // The chain first: an unknown CA is reported as such, whatever the
        // certificate's names.
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let presented = Sans::of(end_entity);
        if self.allowed.permits(&presented) {
            return Ok(verified);
        }
        let refused = IdentityRefused { presented };
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            OtherError(Arc::new(refused)),
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }
}

/// The refusal inside a rustls certificate error, if it is one.
pub fn refusal_of(err: &CertificateError) -> Option<&IdentityRefused> {
    match err {
        CertificateError::Other(OtherError(inner)) => inner.downcast_ref::<IdentityRefused>(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use h2hop_certs::DevPki;

    use super::*;

    fn sans(uris: &[&str], dns: &[&str]) -> Sans {
        Sans {
            uris: uris.iter().map(|s| s.to_string()).collect(),
            dns: dns.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn sans_of_reads_uri_and_dns_names() {
        let pki = DevPki::generate_with(
            &["localhost".to_owned(), "127.0.0.1".to_owned()],
            &["spiffe://test/front".to_owned()],
        )
        .unwrap();
        let front = Sans::of(&pki.client_chain()[0]);
        assert_eq!(front, sans(&["spiffe://test/front"], &["h2hop-front"]));
        // IP SANs are not among the names matched.
        let sidecar = Sans::of(&pki.server_chain()[0]);
        assert_eq!(sidecar, sans(&[], &["localhost"]));
    }

    #[test]
    fn sans_of_garbage_is_empty() {
        let garbage = CertificateDer::from(vec![1u8, 2, 3]);
        assert_eq!(Sans::of(&garbage), Sans::default());
        assert_eq!(Sans::default().to_string(), "no URI or DNS SAN");
    }

    #[test]
    fn values_with_a_scheme_are_uris_others_dns_names() {
        let allowed =
            AllowedSans::new(&["spiffe://test/front", "Front.Example.com", "h2hop-front"]).unwrap();
        assert_eq!(allowed.uris, ["spiffe://test/front"]);
        assert_eq!(allowed.dns, ["front.example.com", "h2hop-front"]);
        assert_eq!(
            allowed.to_string(),
            "spiffe://test/front, front.example.com, h2hop-front"
        );
    }

    #[test]
    fn values_that_are_neither_are_refused() {
        for bad in [
            "spiffe:/test",
            "://x",
            "spiffe://",
            "bad name",
            "1spiffe://x",
            "",
        ] {
            let err = AllowedSans::new(&[bad]).unwrap_err();
            assert!(
                matches!(&err, TlsError::AllowedSan { value } if value == bad),
                "{bad:?}: {err:?}"
            );
        }
    }

    #[test]
    fn empty_list_permits_everything() {
        let any = AllowedSans::new::<&str>(&[]).unwrap();
        assert!(any.is_empty());
        assert!(any.permits(&Sans::default()));
        assert!(any.permits(&sans(&["spiffe://x/y"], &[])));
        assert_eq!(any.to_string(), "any");
    }

    #[test]
    fn uri_sans_match_exactly() {
        let allowed = AllowedSans::new(&["spiffe://test/front"]).unwrap();
        assert!(allowed.permits(&sans(&["spiffe://test/front"], &[])));
        assert!(allowed.permits(&sans(&["spiffe://other/x", "spiffe://test/front"], &[])));
        for other in [
            "spiffe://test/front/",
            "spiffe://test/fronts",
            "SPIFFE://test/front",
            "spiffe://test/Front",
        ] {
            assert!(!allowed.permits(&sans(&[other], &[])), "{other}");
        }
        // A DNS SAN spelled like the URI does not count.
        assert!(!allowed.permits(&sans(&[], &["spiffe://test/front"])));
    }

    #[test]
    fn dns_sans_match_whatever_their_case() {
        let allowed = AllowedSans::new(&["front.Example.com"]).unwrap();
        assert!(allowed.permits(&sans(&[], &["FRONT.example.COM"])));
        assert!(!allowed.permits(&sans(&[], &["other.example.com"])));
        assert!(!allowed.permits(&sans(&[], &["*.example.com"])));
        assert!(!allowed.permits(&sans(&["front.example.com"], &[])));
    }

    #[test]
    fn refusal_names_what_was_presented() {
        let refused = IdentityRefused {
            presented: sans(&["spiffe://test/front"], &["h2hop-front"]),
        };
        assert_eq!(
            refused.to_string(),
            "client certificate identity not allowed: it has URI SANs [spiffe://test/front], \
             DNS SANs [h2hop-front], none of them allowed"
        );
        let err = CertificateError::Other(OtherError(Arc::new(refused)));
        let found = refusal_of(&err).unwrap();
        assert_eq!(found.presented.uris, ["spiffe://test/front"]);
        assert!(refusal_of(&CertificateError::UnknownIssuer).is_none());
    }
}
