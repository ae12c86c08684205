//! Certificate choice by SNI on the edge listener: the name a client asks
//! for in its ClientHello (RFC 6066 §3) → the certificate to show it.
//!
//! [`super::edge`] builds one [`SniResolver`] per load of the edge TLS
//! files and hands it to rustls, which calls
//! [`ResolvesServerCert::resolve`] once per handshake. The choice is, in
//! order: a certificate configured for exactly that name; one configured
//! for `*.suffix` where the name is one label followed by `.suffix` (a
//! wildcard stands for exactly one label, as in certificates, RFC 6125
//! §6.4.3); else the default certificate, which also serves clients that
//! send no SNI. DNS names compare case-insensitively (RFC 4343 §3).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use rustls::pki_types::DnsName;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// A name a certificate is configured for: `api.example.com`, or
/// `*.example.com` for any one label in front of `example.com`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SniName {
    /// Exactly this name, lower-cased.
    Exact(String),
    /// One label followed by `.` and this suffix, lower-cased (stored
    /// without the leading `*.`).
    Wildcard(String),
}

/// A configured name that is not a DNS name or a `*.` wildcard of one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is neither a DNS name nor *. followed by one")]
pub struct BadSniName {
    /// The name as given.
    pub value: String,
}

impl FromStr for SniName {
    type Err = BadSniName;

    /// `*.example.com` is a wildcard; anything else must be a DNS name.
    /// A `*` anywhere but as the whole first label is refused, as are IP
    /// addresses (SNI carries host names only, RFC 6066 §3).
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let bad = || BadSniName {
            value: value.to_owned(),
        };
        let lower = value.to_ascii_lowercase();
        let (kind, name): (fn(String) -> SniName, &str) = match lower.strip_prefix("*.") {
            Some(suffix) => (SniName::Wildcard, suffix),
            None => (SniName::Exact, lower.as_str()),
        };
        let is_dns = DnsName::try_from(name).is_ok();
        if !is_dns || name.contains('*') || name.parse::<std::net::IpAddr>().is_ok() {
            return Err(bad());
        }
        Ok(kind(name.trim_end_matches('.').to_owned()))
    }
}

impl fmt::Display for SniName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SniName::Exact(name) => f.write_str(name),
            SniName::Wildcard(suffix) => write!(f, "*.{suffix}"),
        }
    }
}

impl SniName {
    /// Whether a certificate with these DNS SANs is valid for every name
    /// this one stands for: an exact name needs the same SAN or a wildcard
    /// SAN covering it; a wildcard needs the same wildcard SAN.
    pub fn is_covered_by(&self, dns_sans: &[String]) -> bool {
        dns_sans.iter().any(|san| {
            let san = san.to_ascii_lowercase();
            match (self, san.strip_prefix("*.")) {
                (SniName::Exact(name), None) => *name == san,
                (SniName::Exact(name), Some(suffix)) => parent_of(name) == Some(suffix),
                (SniName::Wildcard(own), Some(suffix)) => own == suffix,
                (SniName::Wildcard(_), None) => false,
            }
        })
    }
}

/// What follows the first label of `name`: `example.com` for
/// `www.example.com`; `None` for a single label.
fn parent_of(name: &str) -> Option<&str> {
    match name.split_once('.') {
        Some((label, parent)) if !label.is_empty() && !parent.is_empty() => Some(parent),
        _ => None,
    }
}

/// The certificates of the edge listener, by the names they serve.
pub struct SniResolver {
    /// Exact names, lower-cased.
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Wildcard suffixes (without `*.`), lower-cased.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    /// For no SNI, or a name nothing else is configured for.
    default: Arc<CertifiedKey>,
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut exact: Vec<&String> = self.exact.keys().collect();
        exact.sort();
        let mut wildcard: Vec<&String> = self.wildcard.keys().collect();
        wildcard.sort();
        f.debug_struct("SniResolver")
            .field("exact", &exact)
            .field("wildcard", &wildcard)
            .finish_non_exhaustive()
    }
}

impl SniResolver {
    /// Serves `default` to every client until names are added.
    pub fn new(default: Arc<CertifiedKey>) -> Self {
        Self {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            default,
        }
    }

    /// Serves `key` for `name`. Returns false, changing nothing, when the
    /// name already has a certificate: which one to show would otherwise
    /// depend on the order of the configuration.
    pub fn add(&mut self, name: &SniName, key: Arc<CertifiedKey>) -> bool {
        let (map, name) = match name {
            SniName::Exact(name) => (&mut self.exact, name),
            SniName::Wildcard(suffix) => (&mut self.wildcard, suffix),
        };
        if map.contains_key(name) {
            return false;
        }
        map.insert(name.clone(), key);
        true
    }

    /// The certificate for a client that asked for `server_name` (`None`:
    /// it sent no SNI).
    pub fn pick(&self, server_name: Option<&str>) -> &Arc<CertifiedKey> {
        let Some(name) = server_name else {
            return &self.default;
        };
        // A trailing dot names the same host (RFC 6066 §3 forbids it in
        // SNI, but a lenient client may still send it).
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(key) = self.exact.get(&name) {
            return key;
        }
        parent_of(&name)
            .and_then(|parent| self.wildcard.get(parent))
            .unwrap_or(&self.default)
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(client_hello.server_name()).clone())
    }
}

#[cfg(test)]
mod tests {
    use h2hop_certs::DevPki;
    use rustls::pki_types::CertificateDer;

    use super::*;

    /// A certified key whose leaf carries `sans`; tests tell them apart by
    /// the leaf.
    fn key(sans: &[&str]) -> Arc<CertifiedKey> {
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let pki = DevPki::generate(&sans).unwrap();
        let provider = rustls::crypto::ring::default_provider();
        Arc::new(CertifiedKey::from_der(pki.server_chain(), pki.server_key(), &provider).unwrap())
    }

    fn leaf(key: &CertifiedKey) -> &CertificateDer<'static> {
        &key.cert[0]
    }

    fn name(value: &str) -> SniName {
        value.parse().unwrap()
    }

    /// Default, `api.example.com` and `*.example.com`.
    fn resolver() -> (SniResolver, [Arc<CertifiedKey>; 3]) {
        let keys = [
            key(&["localhost"]),
            key(&["api.example.com"]),
            key(&["*.example.com"]),
        ];
        let mut resolver = SniResolver::new(keys[0].clone());
        assert!(resolver.add(&name("api.example.com"), keys[1].clone()));
        assert!(resolver.add(&name("*.example.com"), keys[2].clone()));
        (resolver, keys)
    }

    #[test]
    fn exact_name_wins_over_the_wildcard() {
        let (resolver, [_, api, _]) = resolver();
        assert_eq!(leaf(resolver.pick(Some("api.example.com"))), leaf(&api));
    }

    /// RFC 6125 §6.4.3: the wildcard stands for exactly one label.
    #[test]
    fn wildcard_matches_one_label_only() {
        let (resolver, [default, _, wildcard]) = resolver();
        assert_eq!(
            leaf(resolver.pick(Some("www.example.com"))),
            leaf(&wildcard)
        );
        for other in ["a.b.example.com", "example.com", "xexample.com"] {
            assert_eq!(leaf(resolver.pick(Some(other))), leaf(&default), "{other}");
        }
    }

    /// RFC 4343 §3: case does not matter; nor does a trailing dot.
    #[test]
    fn names_compare_case_insensitively() {
        let (resolver, [_, api, wildcard]) = resolver();
        assert_eq!(leaf(resolver.pick(Some("API.Example.COM"))), leaf(&api));
        assert_eq!(leaf(resolver.pick(Some("api.example.com."))), leaf(&api));
        assert_eq!(
            leaf(resolver.pick(Some("WWW.EXAMPLE.com"))),
            leaf(&wildcard)
        );
    }

    #[test]
    fn unknown_name_and_no_sni_get_the_default() {
        let (resolver, [default, ..]) = resolver();
        assert_eq!(leaf(resolver.pick(Some("other.test"))), leaf(&default));
        assert_eq!(leaf(resolver.pick(None)), leaf(&default));
    }

    #[test]
    fn a_name_is_given_once() {
        let (mut resolver, [default, api, _]) = resolver();
        assert!(!resolver.add(&name("API.example.com"), default.clone()));
        assert!(!resolver.add(&name("*.EXAMPLE.com"), default));
        assert_eq!(leaf(resolver.pick(Some("api.example.com"))), leaf(&api));
    }

    #[test]
    fn names_parse_as_exact_or_wildcard() {
        assert_eq!(
            name("API.example.com"),
            SniName::Exact("api.example.com".into())
        );
        assert_eq!(
            name("*.Example.com"),
            SniName::Wildcard("example.com".into())
        );
        assert_eq!(name("*.Example.com").to_string(), "*.example.com");
        for bad in [
            "",
            "*",
            "a.*.com",
            "w*.example.com",
            "*.*.com",
            "a b",
            "127.0.0.1",
        ] {
            let err = bad.parse::<SniName>().unwrap_err();
            assert_eq!(err.value, bad);
        }
    }

    #[test]
    fn names_are_covered_by_matching_sans() {
        let sans = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let exact = name("api.example.com");
        assert!(exact.is_covered_by(&sans(&["API.example.com"])));
        assert!(exact.is_covered_by(&sans(&["other", "*.example.com"])));
        assert!(!exact.is_covered_by(&sans(&["*.api.example.com", "example.com"])));
        let wildcard = name("*.example.com");
        assert!(wildcard.is_covered_by(&sans(&["*.example.com"])));
        assert!(!wildcard.is_covered_by(&sans(&["api.example.com", "*.com"])));
        assert!(!name("a.b.example.com").is_covered_by(&sans(&["*.example.com"])));
    }
}
