//! Which TCP targets fronts may reach through the sidecar, and which
//! fronts may reach each: [`TcpAllowList`], from `--tcp-allow` and the
//! `[[tcp]]` tables of `--config` ([`crate::config_file`]). Read by
//! [`crate::tcp_tunnel`] for every CONNECT before anything is dialled.

use std::fmt;

use h2hop::host_port::HostPort;
use h2hop::tls::identity::{AllowedSans, Sans};

/// One target fronts may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpAllowed {
    /// `host:port`, matched exactly (the host ignoring ASCII case).
    pub target: HostPort,
    /// The fronts, by certificate SAN, that may reach it; `None`: any
    /// front the TLS handshake let in (and any h2c front).
    pub fronts: Option<AllowedSans>,
}

/// What the allow-list says of one CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The target may be dialled.
    Allowed,
    /// No entry names the target.
    NotListed,
    /// Entries name the target, none for this front.
    NotForThisFront,
}

impl Verdict {
    /// The reason the denial's log line gives.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::NotListed => "target not on the allow-list",
            Verdict::NotForThisFront => "target not allowed for this front",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The targets of `--tcp-allow` and `[[tcp]]`; empty: every CONNECT is
/// refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpAllowList {
    entries: Vec<TcpAllowed>,
}

impl TcpAllowList {
    /// The list of `entries`; a target given more than once is allowed to
    /// the fronts of every entry naming it.
    pub fn new(entries: Vec<TcpAllowed>) -> Self {
        Self { entries }
    }

    /// Whether no target is allowed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries, in the order given.
    pub fn entries(&self) -> &[TcpAllowed] {
        &self.entries
    }

    /// Whether the front with certificate SANs `front` (`None` over h2c,
    /// where there is no identity) may reach `target`. An entry with
    /// `fronts` never lets a front without identity in.
    pub fn verdict(&self, target: &HostPort, front: Option<&Sans>) -> Verdict {
        let mut listed = false;
        for entry in self
            .entries
            .iter()
            .filter(|e| same_target(&e.target, target))
        {
            listed = true;
            let permitted = match (&entry.fronts, front) {
                (None, _) => true,
                (Some(fronts), Some(sans)) => fronts.permits(sans),
                (Some(_), None) => false,
            };
            if permitted {
                return Verdict::Allowed;
            }
        }
        if listed {
            Verdict::NotForThisFront
        } else {
            Verdict::NotListed
        }
    }
}

/// Exact `host:port` equality, the host ignoring ASCII case (RFC 4343 §3
/// for names; addresses have no case but their hex digits).
fn same_target(allowed: &HostPort, asked: &HostPort) -> bool {
    allowed.port() == asked.port() && allowed.host().eq_ignore_ascii_case(asked.host())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(text: &str) -> HostPort {
        text.parse().unwrap()
    }

    fn sans(uris: &[&str], dns: &[&str]) -> Sans {
        Sans {
            uris: uris.iter().map(|s| (*s).to_owned()).collect(),
            dns: dns.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn list() -> TcpAllowList {
        TcpAllowList::new(vec![
            TcpAllowed {
                target: target("Redis.internal:6379"),
                fronts: None,
            },
            TcpAllowed {
                target: target("[::1]:5432"),
                fronts: Some(AllowedSans::new(&["spiffe://td/front", "front.internal"]).unwrap()),
            },
        ])
    }

    #[test]
    fn targets_match_exactly_with_the_host_ignoring_case() {
        let list = list();
        let any = Some(&Sans::default());
        assert_eq!(
            list.verdict(&target("redis.INTERNAL:6379"), any),
            Verdict::Allowed
        );
        assert_eq!(
            list.verdict(&target("redis.internal:6379"), None),
            Verdict::Allowed
        );
        for other in [
            "redis.internal:6380",
            "redis.internal.:6379",
            "redis:6379",
            "127.0.0.1:6379",
        ] {
            assert_eq!(
                list.verdict(&target(other), any),
                Verdict::NotListed,
                "{other}"
            );
        }
    }

    #[test]
    fn fronts_restrict_a_target_to_those_identities() {
        let list = list();
        let db = target("[::1]:5432");
        let spiffe = sans(&["spiffe://td/front"], &[]);
        let dns = sans(&[], &["FRONT.internal"]);
        let other = sans(&["spiffe://td/other"], &["other.internal"]);
        assert_eq!(list.verdict(&db, Some(&spiffe)), Verdict::Allowed);
        assert_eq!(list.verdict(&db, Some(&dns)), Verdict::Allowed);
        assert_eq!(list.verdict(&db, Some(&other)), Verdict::NotForThisFront);
        // h2c: no identity, so a target with fronts is denied.
        assert_eq!(list.verdict(&db, None), Verdict::NotForThisFront);
    }

    #[test]
    fn an_empty_list_allows_nothing() {
        let verdict = TcpAllowList::default().verdict(&target("127.0.0.1:1"), None);
        assert_eq!(verdict, Verdict::NotListed);
    }
}
