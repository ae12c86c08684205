//! The performance targets, each checked against figures of the same run: one
//! line per target with h2hop's figure, the bound worked out from the peers
//! (or tcp-relay, or the crypto floor) and whether it is met. The TCP
//! tunnel (h2hop-tcp) is held against tcp-relay alone, and its connections
//! per second are shown beside tcp-relay's without a bound.
//!
//! Input: the run's [`Results`] and the [`CryptoFloor`]. Output: Markdown
//! lines for results.md and stdout. Called by the bench binary after the
//! last round. A target whose figures the run did not measure (a workload
//! or system left out) says so instead of a verdict.

use crate::crypto_floor::CryptoFloor;
use crate::http1_rows::{
    CPU_PER_GB, HANDSHAKES, HANDSHAKES_CLOSE, HandshakeFigures, IDLE_KIB, LAT1_CPU, LAT1_P50,
    LAT1_P99, LAT16_CPU, LAT16_P50, LAT16_P99, PLAIN_RATE, PLAIN_USER, THROUGHPUT,
};
use crate::report::{Figure, Results, number};

/// The h2hop system most targets are about.
const H2HOP: &str = "h2hop-h2c";
/// h2hop over mutual TLS.
const H2HOP_MTLS: &str = "h2hop-mtls";
/// The peers over h2c: "the better peer" is the better of these.
const PEERS: &[&str] = &["nghttpx", "haproxy"];
/// The peers over mutual TLS.
const TLS_PEERS: &[&str] = &["nghttpx-mtls", "haproxy-mtls"];
/// The floor of any two-process chain.
const TCP_RELAY: &str = "tcp-relay";
/// The h2hop pair as a TCP tunnel over h2c, held against [`TCP_RELAY`].
const H2HOP_TCP: &str = "h2hop-tcp";
/// The TCP tunnels shown beside tcp-relay's connections per second.
const TCP_TUNNELS: &[&str] = &[H2HOP_TCP, "h2hop-tcp-mtls", "h2hop-connect-tcp"];
/// Share of tcp-relay's throughput the TCP tunnel must reach.
const TCP_THROUGHPUT_FACTOR: f64 = 0.9;
/// Most CPU per GB the TCP tunnel may spend, as a multiple of tcp-relay's.
const TCP_CPU_FACTOR: f64 = 1.2;
/// Memory per idle tunnel kept as a target.
const IDLE_KIB_BOUND: f64 = 6.0;
/// Margin over h2c plus the crypto floor allowed to h2hop-mtls's CPU/GB.
const MTLS_MARGIN: f64 = 1.15;

/// Which side of the bound h2hop's figure must be on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relation {
    AtMost,
    AtLeast,
}

/// One target, evaluated: `value` of h2hop against `bound`.
#[derive(Debug, Clone, PartialEq)]
struct Check {
    value: f64,
    relation: Relation,
    bound: f64,
    /// How the bound was reached, e.g. "0.9 × haproxy's 155".
    bound_from: String,
}

impl Check {
    fn met(&self) -> bool {
        match self.relation {
            Relation::AtMost => self.value <= self.bound,
            Relation::AtLeast => self.value >= self.bound,
        }
    }

    fn text(&self) -> String {
        let sign = match self.relation {
            Relation::AtMost => "≤",
            Relation::AtLeast => "≥",
        };
        let verdict = if self.met() { "met" } else { "**not met**" };
        format!(
            "{} {sign} {} ({}): {verdict}",
            number(self.value),
            number(self.bound),
            self.bound_from
        )
    }
}

/// The better of `systems`' medians for `figure`: lowest for
/// [`Relation::AtMost`], highest for [`Relation::AtLeast`].
fn better(
    results: &Results,
    figure: &Figure,
    systems: &[&str],
    relation: Relation,
) -> Option<(String, f64)> {
    let found = systems
        .iter()
        .filter_map(|system| Some((system.to_string(), results.median(figure, system)?)));
    match relation {
        Relation::AtMost => found.min_by(|a, b| a.1.total_cmp(&b.1)),
        Relation::AtLeast => found.max_by(|a, b| a.1.total_cmp(&b.1)),
    }
}

/// The TCP tunnel's throughput and CPU per GB against tcp-relay's.
fn tcp_tunnel(results: &Results) -> [Option<Check>; 2] {
    let relay = |figure, relation, factor| {
        against_peers(results, figure, H2HOP_TCP, &[TCP_RELAY], relation, factor)
    };
    [
        relay(&THROUGHPUT, Relation::AtLeast, TCP_THROUGHPUT_FACTOR),
        relay(&CPU_PER_GB, Relation::AtMost, TCP_CPU_FACTOR),
    ]
}

/// Connections per second (until EOF, else until the Close frame) of the
/// TCP tunnels beside tcp-relay's, with the ratio: no bound, since a
/// connection through the tunnel costs an HTTP/2 stream that tcp-relay
/// does not pay. `None` when the run lacks tcp-relay or both tunnels.
fn tcp_connections(results: &Results) -> Option<String> {
    let figure = [HANDSHAKES.rate, HANDSHAKES_CLOSE.rate]
        .into_iter()
        .find(|figure| results.median(figure, TCP_RELAY).is_some())?;
    let relay = results.median(&figure, TCP_RELAY)?;
    let tunnels: Vec<String> = TCP_TUNNELS
        .iter()
        .filter_map(|system| {
            let value = results.median(&figure, system)?;
            Some(format!(
                "{system} {} ({:.2} × tcp-relay's)",
                number(value),
                value / relay
            ))
        })
        .collect();
    if tunnels.is_empty() {
        return None;
    }
    Some(format!(
        "TCP tunnel, {} (conn/s): {}; tcp-relay {}",
        figure.label,
        tunnels.join(", "),
        number(relay)
    ))
}

/// `system`'s `figure` against `factor` × the better of `peers`.
fn against_peers(
    results: &Results,
    figure: &Figure,
    system: &str,
    peers: &[&str],
    relation: Relation,
    factor: f64,
) -> Option<Check> {
    let value = results.median(figure, system)?;
    let (peer, peer_value) = better(results, figure, peers, relation)?;
    Some(Check {
        value,
        relation,
        bound: factor * peer_value,
        bound_from: format!("{factor} × {peer}'s {}", number(peer_value)),
    })
}

/// A latency figure against both 1.05 × tcp-relay and the better peer:
/// the bound is the lower of the two.
fn latency(results: &Results, figure: &Figure) -> Option<Check> {
    let value = results.median(figure, H2HOP)?;
    let relay = results.median(figure, TCP_RELAY)?;
    let (peer, peer_value) = better(results, figure, PEERS, Relation::AtMost)?;
    let bound = (1.05 * relay).min(peer_value);
    Some(Check {
        value,
        relation: Relation::AtMost,
        bound,
        bound_from: format!(
            "lower of 1.05 × tcp-relay's {} and {peer}'s {}",
            number(relay),
            number(peer_value)
        ),
    })
}

/// h2hop-mtls's CPU per GB against (h2hop-h2c's + the crypto floor) × 1.15.
fn mtls_cpu(results: &Results, floor: Option<&CryptoFloor>) -> Option<Check> {
    let value = results.median(&CPU_PER_GB, H2HOP_MTLS)?;
    let h2c = results.median(&CPU_PER_GB, H2HOP)?;
    let floor = floor?.per_gb_echoed();
    Some(Check {
        value,
        relation: Relation::AtMost,
        bound: (h2c + floor) * MTLS_MARGIN,
        bound_from: format!(
            "(h2hop-h2c's {} + crypto floor {}) × {MTLS_MARGIN}",
            number(h2c),
            number(floor)
        ),
    })
}

/// The two handshake targets of one workload.
fn handshakes(results: &Results, figures: &HandshakeFigures) -> [Option<Check>; 2] {
    [
        against_peers(results, &figures.cpu, H2HOP, PEERS, Relation::AtMost, 0.9),
        against_peers(results, &figures.rate, H2HOP, PEERS, Relation::AtLeast, 1.0),
    ]
}

/// Every target as (what, check); `None` where the run lacks a figure.
fn checks(results: &Results, floor: Option<&CryptoFloor>) -> Vec<(&'static str, Option<Check>)> {
    let peers = |figure: &Figure, relation, factor| {
        against_peers(results, figure, H2HOP, PEERS, relation, factor)
    };
    let [hs_cpu, hs_rate] = handshakes(results, &HANDSHAKES);
    let [hc_cpu, hc_rate] = handshakes(results, &HANDSHAKES_CLOSE);
    let [tcp_throughput, tcp_cpu] = tcp_tunnel(results);
    let idle = results.median(&IDLE_KIB, H2HOP).map(|value| Check {
        value,
        relation: Relation::AtMost,
        bound: IDLE_KIB_BOUND,
        bound_from: "fixed".into(),
    });
    vec![
        (
            "plain GETs, h2hop-h2c proxy user CPU per GET (CPU-µs)",
            peers(&PLAIN_USER, Relation::AtMost, 1.0),
        ),
        (
            "plain GETs, h2hop-h2c requests/s",
            peers(&PLAIN_RATE, Relation::AtLeast, 1.1),
        ),
        (
            "handshakes (until EOF), h2hop-h2c proxy CPU per connection (CPU-µs)",
            hs_cpu,
        ),
        ("handshakes (until EOF), h2hop-h2c connections/s", hs_rate),
        (
            "handshakes (until Close frame), h2hop-h2c proxy CPU per connection (CPU-µs)",
            hc_cpu,
        ),
        (
            "handshakes (until Close frame), h2hop-h2c connections/s",
            hc_rate,
        ),
        (
            "latency, h2hop-h2c p50, 1 tunnel (µs)",
            latency(results, &LAT1_P50),
        ),
        (
            "latency, h2hop-h2c p99, 1 tunnel (µs)",
            latency(results, &LAT1_P99),
        ),
        (
            "latency, h2hop-h2c p50, 16 tunnels (µs)",
            latency(results, &LAT16_P50),
        ),
        (
            "latency, h2hop-h2c p99, 16 tunnels (µs)",
            latency(results, &LAT16_P99),
        ),
        (
            "latency, h2hop-h2c proxy CPU per round trip, 1 tunnel (CPU-µs)",
            peers(&LAT1_CPU, Relation::AtMost, 0.9),
        ),
        (
            "latency, h2hop-h2c proxy CPU per round trip, 16 tunnels (CPU-µs)",
            peers(&LAT16_CPU, Relation::AtMost, 0.9),
        ),
        (
            "mTLS, h2hop-mtls throughput (MB/s)",
            against_peers(
                results,
                &THROUGHPUT,
                H2HOP_MTLS,
                TLS_PEERS,
                Relation::AtLeast,
                1.5,
            ),
        ),
        (
            "mTLS, h2hop-mtls proxy CPU per GB (CPU-s/GB)",
            mtls_cpu(results, floor),
        ),
        (
            "kept, h2hop-h2c throughput (MB/s)",
            peers(&THROUGHPUT, Relation::AtLeast, 1.5),
        ),
        (
            "kept, h2hop-h2c proxy CPU per GB (CPU-s/GB)",
            peers(&CPU_PER_GB, Relation::AtMost, 0.6),
        ),
        ("kept, h2hop-h2c memory per idle tunnel (KiB)", idle),
        ("TCP tunnel, h2hop-tcp throughput (MB/s)", tcp_throughput),
        ("TCP tunnel, h2hop-tcp proxy CPU per GB (CPU-s/GB)", tcp_cpu),
    ]
}

/// The targets section: a heading, then one line per target.
pub fn section(results: &Results, floor: Option<&CryptoFloor>) -> String {
    let checks = checks(results, floor);
    let met = checks
        .iter()
        .filter(|(_, c)| c.as_ref().is_some_and(Check::met))
        .count();
    let measured = checks.iter().filter(|(_, c)| c.is_some()).count();
    let mut out = format!(
        "\n### Targets: {met} of {measured} measured met; medians of this run, the better peer of {}\n\n",
        PEERS.join(" and ")
    );
    for (what, check) in &checks {
        let text = check
            .as_ref()
            .map_or_else(|| "not measured in this run".to_owned(), Check::text);
        out.push_str(&format!("- {what}: {text}\n"));
    }
    if let Some(line) = tcp_connections(results) {
        out.push_str(&format!("- {line}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto_floor::Suite;

    fn one_round(rows: &[(Figure, &str, f64)]) -> Results {
        let mut results = Results::default();
        results.next_round();
        for (figure, system, value) in rows {
            results.record(*figure, system, Some(*value));
        }
        results
    }

    #[test]
    fn plain_user_cpu_is_held_against_the_lower_peer() {
        let results = one_round(&[
            (PLAIN_USER, "h2hop-h2c", 15.0),
            (PLAIN_USER, "nghttpx", 14.0),
            (PLAIN_USER, "haproxy", 16.0),
        ]);
        let check = against_peers(&results, &PLAIN_USER, H2HOP, PEERS, Relation::AtMost, 1.0);
        let check = check.unwrap();
        assert_eq!(check.bound, 14.0);
        assert!(!check.met());
        assert!(check.text().contains("nghttpx's 14.0"), "{}", check.text());
    }

    #[test]
    fn rates_are_held_against_the_higher_peer_times_the_factor() {
        let results = one_round(&[
            (PLAIN_RATE, "h2hop-h2c", 23_000.0),
            (PLAIN_RATE, "nghttpx", 20_000.0),
            (PLAIN_RATE, "haproxy", 21_000.0),
        ]);
        let check = against_peers(&results, &PLAIN_RATE, H2HOP, PEERS, Relation::AtLeast, 1.1);
        let check = check.unwrap();
        assert!((check.bound - 23_100.0).abs() < 1e-6);
        assert!(!check.met());
    }

    #[test]
    fn latency_bound_is_the_lower_of_relay_and_peer() {
        let results = one_round(&[
            (LAT1_P50, "h2hop-h2c", 140.0),
            (LAT1_P50, "tcp-relay", 130.0),
            (LAT1_P50, "nghttpx", 150.0),
            (LAT1_P50, "haproxy", 160.0),
        ]);
        let check = latency(&results, &LAT1_P50).unwrap();
        assert!((check.bound - 136.5).abs() < 1e-9);
        assert!(!check.met());
    }

    #[test]
    fn mtls_cpu_bound_adds_the_floor_then_the_margin() {
        let results = one_round(&[
            (CPU_PER_GB, "h2hop-h2c", 1.5),
            (CPU_PER_GB, "h2hop-mtls", 2.2),
        ]);
        let floor = CryptoFloor {
            suite: Suite::Aes128Gcm,
            seal_s_per_gb: 0.1,
            open_s_per_gb: 0.15,
        };
        let check = mtls_cpu(&results, Some(&floor)).unwrap();
        assert!((check.bound - 2.3).abs() < 1e-9, "{check:?}");
        assert!(check.met());
    }

    #[test]
    fn tcp_tunnel_is_held_against_tcp_relay_not_the_peers() {
        let results = one_round(&[
            (THROUGHPUT, "h2hop-tcp", 850.0),
            (THROUGHPUT, "tcp-relay", 1000.0),
            (THROUGHPUT, "haproxy", 500.0),
            (CPU_PER_GB, "h2hop-tcp", 1.1),
            (CPU_PER_GB, "tcp-relay", 1.0),
            (CPU_PER_GB, "haproxy", 3.0),
        ]);
        let [throughput, cpu] = tcp_tunnel(&results);
        let throughput = throughput.unwrap();
        assert!((throughput.bound - 900.0).abs() < 1e-9, "{throughput:?}");
        assert!(!throughput.met());
        assert!(
            throughput.text().contains("0.9 × tcp-relay's 1000"),
            "{}",
            throughput.text()
        );
        let cpu = cpu.unwrap();
        assert!((cpu.bound - 1.2).abs() < 1e-9, "{cpu:?}");
        assert!(cpu.met());
    }

    #[test]
    fn tcp_tunnel_targets_need_tcp_relay_in_the_run() {
        let results = one_round(&[(THROUGHPUT, "h2hop-tcp", 850.0)]);
        assert_eq!(tcp_tunnel(&results), [None, None]);
        assert!(tcp_connections(&results).is_none());
    }

    #[test]
    fn tcp_connections_are_shown_beside_tcp_relay_with_the_ratio() {
        let results = one_round(&[
            (HANDSHAKES.rate, "tcp-relay", 4000.0),
            (HANDSHAKES.rate, "h2hop-tcp", 3000.0),
            (HANDSHAKES.rate, "h2hop-tcp-mtls", 2000.0),
        ]);
        let line = tcp_connections(&results).unwrap();
        assert!(
            line.contains("h2hop-tcp 3000 (0.75 × tcp-relay's), h2hop-tcp-mtls 2000 (0.50 × tcp-relay's); tcp-relay 4000"),
            "{line}"
        );
        let text = section(&results, None);
        assert!(text.contains(&format!("- {line}\n")), "{text}");
    }

    #[test]
    fn section_says_which_targets_were_not_measured() {
        let results = one_round(&[(IDLE_KIB, "h2hop-h2c", 4.3)]);
        let text = section(&results, None);
        assert!(text.contains("1 of 1 measured met"), "{text}");
        assert!(
            text.contains("memory per idle tunnel (KiB): 4.30 ≤ 6.00 (fixed): met"),
            "{text}"
        );
        assert!(
            text.contains("requests/s: not measured in this run"),
            "{text}"
        );
    }
}
