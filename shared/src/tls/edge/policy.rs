//! The edge listener's TLS policy: the lowest version it accepts and the
//! cipher suites it offers, from the front's `--tls-min-version` and
//! `--tls-ciphers` → the crypto provider and versions [`super`] builds its
//! `ServerConfig` with.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::{SupportedCipherSuite, SupportedProtocolVersion};

use super::EdgeError;

/// The lowest TLS version the edge listener accepts; the highest is 1.3.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MinTlsVersion {
    /// TLS 1.2 (RFC 5246) and 1.3: the default, for older clients.
    #[default]
    Tls12,
    /// TLS 1.3 only (RFC 8446).
    Tls13,
}

impl MinTlsVersion {
    /// The versions rustls may negotiate, newest first.
    pub(super) fn versions(self) -> &'static [&'static SupportedProtocolVersion] {
        match self {
            MinTlsVersion::Tls12 => crate::tls::EDGE_PROTOCOL_VERSIONS,
            MinTlsVersion::Tls13 => crate::tls::HOP_PROTOCOL_VERSIONS,
        }
    }
}

impl FromStr for MinTlsVersion {
    type Err = EdgeError;

    /// `1.2` or `1.3`.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "1.2" => Ok(MinTlsVersion::Tls12),
            "1.3" => Ok(MinTlsVersion::Tls13),
            other => Err(EdgeError::MinVersion {
                value: other.to_owned(),
            }),
        }
    }
}

impl fmt::Display for MinTlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MinTlsVersion::Tls12 => "1.2",
            MinTlsVersion::Tls13 => "1.3",
        })
    }
}

/// The cipher suites rustls offers with ring, by name. Both the rustls
/// name (`TLS13_AES_128_GCM_SHA256`) and, for TLS 1.3, the IANA one
/// (`TLS_AES_128_GCM_SHA256`) are accepted, in any case.
pub fn cipher_suites<S: AsRef<str>>(names: &[S]) -> Result<Vec<SupportedCipherSuite>, EdgeError> {
    let known = rustls::crypto::ring::DEFAULT_CIPHER_SUITES;
    names
        .iter()
        .map(|name| {
            let name = name.as_ref().trim();
            let wanted = name.to_ascii_uppercase();
            let iana13 = wanted.replacen("TLS_", "TLS13_", 1);
            known
                .iter()
                .find(|suite| {
                    let own = suite.suite().as_str().unwrap_or_default();
                    own == wanted || (suite.tls13().is_some() && own == iana13)
                })
                .copied()
                .ok_or_else(|| EdgeError::UnknownCipherSuite {
                    name: name.to_owned(),
                    valid: cipher_suite_names().join(", "),
                })
        })
        .collect()
}

/// The names [`cipher_suites`] knows, in rustls' order.
pub fn cipher_suite_names() -> Vec<&'static str> {
    rustls::crypto::ring::DEFAULT_CIPHER_SUITES
        .iter()
        .filter_map(|suite| suite.suite().as_str())
        .collect()
}

/// Versions and suites of the edge listener.
#[derive(Debug, Clone, Default)]
pub struct EdgePolicy {
    /// The lowest version accepted (default 1.2).
    pub min_version: MinTlsVersion,
    /// The suites offered (among them, rustls follows the client's order
    /// of preference); `None` keeps rustls' safe defaults.
    pub cipher_suites: Option<Vec<SupportedCipherSuite>>,
}

impl EdgePolicy {
    /// The crypto provider with the policy's suites, refused when none of
    /// them works with an allowed version.
    pub(super) fn provider(&self) -> Result<Arc<CryptoProvider>, EdgeError> {
        let mut provider = Arc::unwrap_or_clone(crate::tls::provider());
        if let Some(suites) = &self.cipher_suites {
            provider.cipher_suites = suites.clone();
        }
        let versions = self.min_version.versions();
        let usable = provider
            .cipher_suites
            .iter()
            .any(|suite| versions.contains(&suite.version()));
        if !usable {
            return Err(EdgeError::NoUsableCipherSuite {
                min_version: self.min_version,
            });
        }
        Ok(Arc::new(provider))
    }
}

#[cfg(test)]
mod tests {
    use rustls::CipherSuite;

    use super::*;

    #[test]
    fn min_version_parses_one_two_and_one_three_only() {
        assert_eq!(
            "1.2".parse::<MinTlsVersion>().unwrap(),
            MinTlsVersion::Tls12
        );
        assert_eq!(
            "1.3".parse::<MinTlsVersion>().unwrap(),
            MinTlsVersion::Tls13
        );
        assert_eq!(MinTlsVersion::default(), MinTlsVersion::Tls12);
        assert_eq!(MinTlsVersion::Tls13.to_string(), "1.3");
        for bad in ["1.1", "1.0", "tls1.3", ""] {
            let err = bad.parse::<MinTlsVersion>().unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("TLS version {bad:?} is not 1.2 or 1.3")
            );
        }
    }

    #[test]
    fn cipher_suites_by_rustls_or_iana_name_in_the_order_given() {
        let suites = cipher_suites(&[
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            "tls_aes_256_gcm_sha384",
            "TLS13_CHACHA20_POLY1305_SHA256",
        ])
        .unwrap();
        let got: Vec<CipherSuite> = suites.iter().map(|suite| suite.suite()).collect();
        assert_eq!(
            got,
            [
                CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                CipherSuite::TLS13_AES_256_GCM_SHA384,
                CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
            ]
        );
    }

    #[test]
    fn unknown_cipher_suite_lists_the_valid_ones() {
        let err = cipher_suites(&["TLS_RSA_WITH_AES_128_CBC_SHA"]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("unknown cipher suite \"TLS_RSA_WITH_AES_128_CBC_SHA\"; valid: "),
            "{text}"
        );
        for name in cipher_suite_names() {
            assert!(text.contains(name), "{name} missing from {text}");
        }
        assert_eq!(cipher_suite_names().len(), 9);
    }
}
