//! Lists of source networks, as an operator writes them in a flag or the
//! config file: `10.0.0.0/8`, `fd00::/8`, or a bare address (`127.0.0.1`,
//! `::1`), comma-separated in one flag or repeated. Used where trust depends
//! on who is connecting: which peers may send a PROXY protocol header, and
//! whose `X-Forwarded-For`, `Forwarded` and `X-Request-Id` are kept.
//!
//! An IPv4 address that reaches a dual-stack socket as IPv4-mapped IPv6
//! (`::ffff:10.1.2.3`) is matched as the IPv4 address it is.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// A set of networks; empty matches nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Networks {
    nets: Vec<IpNet>,
}

/// Why a string is not a network list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{entry:?} is not a network: write an address (10.1.2.3, ::1) or address/prefix (10.0.0.0/8, fd00::/8)"
)]
pub struct NetworksError {
    /// The entry that failed, as written.
    pub entry: String,
}

impl Networks {
    /// Matches nothing.
    pub fn none() -> Self {
        Self::default()
    }

    /// Every IPv4 and IPv6 address.
    pub fn any() -> Self {
        let all = ["0.0.0.0/0", "::/0"].map(|net| net.parse().map_err(|_| ()));
        Self {
            nets: all.into_iter().flatten().collect(),
        }
    }

    /// Whether no network is listed.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `addr` is in one of the networks.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        self.nets.iter().any(|net| net.contains(&addr))
    }

    /// Adds the networks of `other`.
    pub fn extend(&mut self, other: Networks) {
        self.nets.extend(other.nets);
    }
}

impl FromStr for Networks {
    type Err = NetworksError;

    /// Comma-separated entries, spaces around them allowed; an empty string
    /// is the empty list.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut nets = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let net = match entry.parse::<IpNet>() {
                Ok(net) => net.trunc(),
                Err(_) => match entry.parse::<IpAddr>() {
                    Ok(addr) => IpNet::from(addr.to_canonical()),
                    Err(_) => {
                        return Err(NetworksError {
                            entry: entry.to_owned(),
                        });
                    }
                },
            };
            nets.push(net);
        }
        Ok(Self { nets })
    }
}

impl fmt::Display for Networks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, net) in self.nets.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{net}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse()
            .unwrap_or_else(|_| unreachable!("test address"))
    }

    #[test]
    fn prefixes_and_bare_addresses_match_what_they_cover() -> Result<(), NetworksError> {
        let nets: Networks = "10.0.0.0/8, 192.168.1.7,fd00::/8 , ::1".parse()?;
        assert!(nets.contains(ip("10.200.3.4")));
        assert!(nets.contains(ip("192.168.1.7")));
        assert!(!nets.contains(ip("192.168.1.8")));
        assert!(nets.contains(ip("fd12::1")));
        assert!(nets.contains(ip("::1")));
        assert!(!nets.contains(ip("11.0.0.1")));
        assert!(!nets.contains(ip("fe80::1")));
        Ok(())
    }

    #[test]
    fn ipv4_mapped_addresses_match_as_ipv4() -> Result<(), NetworksError> {
        let nets: Networks = "127.0.0.0/8".parse()?;
        assert!(nets.contains(ip("::ffff:127.0.0.1")));
        let mapped: Networks = "::ffff:10.0.0.1".parse()?;
        assert!(mapped.contains(ip("10.0.0.1")));
        Ok(())
    }

    #[test]
    fn host_bits_are_ignored_and_shown_truncated() -> Result<(), NetworksError> {
        let nets: Networks = "10.1.2.3/16".parse()?;
        assert!(nets.contains(ip("10.1.99.1")));
        assert_eq!(nets.to_string(), "10.1.0.0/16");
        Ok(())
    }

    #[test]
    fn empty_matches_nothing_and_any_matches_everything() -> Result<(), NetworksError> {
        let empty: Networks = "".parse()?;
        assert!(empty.is_empty());
        assert!(!empty.contains(ip("127.0.0.1")));
        assert!(Networks::any().contains(ip("203.0.113.9")));
        assert!(Networks::any().contains(ip("2001:db8::1")));
        Ok(())
    }

    #[test]
    fn junk_is_refused_naming_the_entry() {
        let err = "10.0.0.0/8,example.com".parse::<Networks>();
        assert_eq!(
            err,
            Err(NetworksError {
                entry: "example.com".into()
            })
        );
        assert!("10.0.0.0/33".parse::<Networks>().is_err());
    }
}
