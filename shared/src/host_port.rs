//! `host:port` as an operator writes it (the front's `--sidecar` and config
//! file endpoints, the sidecar's `--app`), checked when the flags are read
//! so that a missing port fails at start-up, not as a 502 per request.
//!
//! The host is a name or an IPv4 address, or an IPv6 address in brackets
//! (RFC 3986 §3.2.2); the port is 1 to 65535. Names are resolved when a
//! connection is made, not here.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

/// A validated `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// As written, which is what connecting resolves.
    text: String,
    /// Where the host ends in `text` (before the `:port`).
    host_end: usize,
}

/// Why a string is not `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostPortError {
    /// No `:port` after the host.
    #[error("{0:?} has no port: write host:port, such as {0}:8080")]
    NoPort(String),
    /// The port is not a number from 1 to 65535.
    #[error("{0:?}: the port must be a number from 1 to 65535")]
    BadPort(String),
    /// Nothing before the `:port`.
    #[error("{0:?} has no host")]
    NoHost(String),
    /// An IPv6 address without brackets, or brackets around something else.
    #[error("{0:?}: an IPv6 address goes in brackets, e.g. [::1]:8443")]
    BadIpv6(String),
}

impl HostPort {
    /// The host, without IPv6 brackets: what a certificate must name.
    pub fn host(&self) -> &str {
        let host = &self.text[..self.host_end];
        host.strip_prefix('[')
            .and_then(|bracketed| bracketed.strip_suffix(']'))
            .unwrap_or(host)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        // Checked to be a u16 when parsed.
        self.text[self.host_end + 1..].parse().unwrap_or_default()
    }

    /// `host:port` as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for HostPort {
    type Err = HostPortError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let owned = || text.to_owned();
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => (host, port),
            _ => return Err(HostPortError::NoPort(owned())),
        };
        if host.is_empty() {
            return Err(HostPortError::NoHost(owned()));
        }
        match host.strip_prefix('[') {
            Some(bracketed) => {
                let ip = bracketed.strip_suffix(']');
                if ip.is_none_or(|ip| ip.parse::<Ipv6Addr>().is_err()) {
                    return Err(HostPortError::BadIpv6(owned()));
                }
            }
            // `::1` or `::1:8443`: ambiguous without brackets.
            None if host.contains(':') || host.contains(']') => {
                return Err(HostPortError::BadIpv6(owned()));
            }
            None => {}
        }
        if !port.parse::<u16>().is_ok_and(|port| port != 0) {
            return Err(HostPortError::BadPort(owned()));
        }
        Ok(Self {
            text: owned(),
            host_end: host.len(),
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<HostPort, HostPortError> {
        text.parse()
    }

    #[test]
    fn names_and_addresses_with_a_port_are_taken() {
        let cases = [
            ("sidecar.local:8443", "sidecar.local"),
            ("127.0.0.1:1", "127.0.0.1"),
            ("[::1]:8443", "::1"),
            ("[fd00::7]:65535", "fd00::7"),
            ("localhost:80", "localhost"),
        ];
        for (text, host) in cases {
            let parsed = parse(text).unwrap();
            assert_eq!(parsed.host(), host, "{text}");
            assert_eq!(parsed.to_string(), text);
            assert_eq!(parsed.as_str(), text);
            assert_eq!(parsed.port().to_string(), text.rsplit(':').next().unwrap());
        }
    }

    #[test]
    fn a_missing_port_is_refused_with_an_example() {
        for text in ["127.0.0.1", "localhost", "[::1]"] {
            let err = parse(text).unwrap_err();
            assert_eq!(err, HostPortError::NoPort(text.to_owned()));
            assert!(err.to_string().contains("write host:port"), "{err}");
        }
    }

    #[test]
    fn bad_ports_hosts_and_ipv6_forms_are_refused() {
        assert!(matches!(parse("a:0"), Err(HostPortError::BadPort(_))));
        assert!(matches!(parse("a:65536"), Err(HostPortError::BadPort(_))));
        assert!(matches!(parse("a:"), Err(HostPortError::BadPort(_))));
        assert!(matches!(parse("a:http"), Err(HostPortError::BadPort(_))));
        assert!(matches!(parse(":8443"), Err(HostPortError::NoHost(_))));
        assert!(matches!(parse("::1:8443"), Err(HostPortError::BadIpv6(_))));
        assert!(matches!(parse("[a.b]:1"), Err(HostPortError::BadIpv6(_))));
        assert!(matches!(parse("[::1:1"), Err(HostPortError::BadIpv6(_))));
    }
}
