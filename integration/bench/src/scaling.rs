//! Worker scaling (`--scaling`): h2hop-h2c and the two peers with one and
//! with two worker threads per proxy process, under the handshakes and
//! plain workloads, in the same run as the main table; the target is
//! h2hop's CPU per handshake and per GET with two workers at most 1.15×
//! its one-worker figure.
//!
//! Input: the app, the binaries and the run's settings. Output: figures in
//! a [`Results`] of their own (system names like `h2hop-h2c ×2`), and a
//! Markdown section. Called by the bench binary once per round, after the
//! main systems.

use std::net::SocketAddr;
use std::time::Duration;

use crate::http1_rows::{self, HANDSHAKES, PLAIN_CPU};
use crate::report::{Figure, Results};
use crate::systems::{self, Binaries, Kind, Traffic};

/// The systems compared, h2hop first.
pub const SYSTEMS: [Kind; 3] = [Kind::H2hopH2c, Kind::Nghttpx, Kind::Haproxy];
/// Worker threads per proxy process: the base, then the scaled count.
const WORKERS: [usize; 2] = [1, 2];
/// The bound on h2hop's two-worker/one-worker ratio.
const H2HOP_BOUND: f64 = 1.15;

/// The name a system's figures go under with `workers` threads.
fn name(kind: Kind, workers: usize) -> String {
    format!("{} ×{workers}", kind.name())
}

/// Starts each of [`SYSTEMS`] with each worker count in turn in front of
/// the app at `app`, and records its handshakes and plain figures into
/// `scaling`.
pub async fn measure(
    app: SocketAddr,
    bins: &Binaries,
    load_pids: &[u32],
    duration: Duration,
    scaling: &mut Results,
) -> anyhow::Result<()> {
    let workloads = ["handshakes".to_owned(), "plain".to_owned()];
    for kind in SYSTEMS {
        for workers in WORKERS {
            let running = systems::start(kind, Traffic::Http1, app, bins, workers).await?;
            let mut target = running.target.clone();
            target.name = name(kind, workers);
            let settings = http1_rows::RowSettings {
                duration,
                workloads: &workloads,
                idle: 0,
            };
            http1_rows::measure(&target, load_pids, false, settings, scaling).await?;
        }
    }
    Ok(())
}

/// The section: per system, CPU per handshake and per plain GET with one
/// and two workers and their ratio; h2hop's ratios against 1.15×.
pub fn section(scaling: &Results) -> String {
    let mut out = String::from(
        "\n### Worker scaling: proxy CPU (user + kernel) with 1 and 2 worker threads per process\n\n\
         | system | CPU-µs per handshake, ×1 | ×2 | ratio | CPU-µs per plain GET, ×1 | ×2 | ratio |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for kind in SYSTEMS {
        out.push_str(&format!("| {} |", kind.name()));
        for figure in [HANDSHAKES.cpu, PLAIN_CPU] {
            let [one, two] = WORKERS.map(|workers| scaling.median(&figure, &name(kind, workers)));
            for value in [one, two, ratio(one, two)] {
                let cell = value.map_or_else(|| "–".to_owned(), |value| format!("{value:.2}"));
                out.push_str(&format!(" {cell} |"));
            }
        }
        out.push('\n');
    }
    for (what, figure) in [("handshake", HANDSHAKES.cpu), ("plain GET", PLAIN_CPU)] {
        out.push_str(&h2hop_line(scaling, what, &figure));
    }
    out
}

/// `two / one`, if both were measured.
fn ratio(one: Option<f64>, two: Option<f64>) -> Option<f64> {
    Some(two? / one?)
}

/// The target line for h2hop's ratio of one figure.
fn h2hop_line(scaling: &Results, what: &str, figure: &Figure) -> String {
    let [one, two] = WORKERS.map(|workers| scaling.median(figure, &name(Kind::H2hopH2c, workers)));
    match ratio(one, two) {
        Some(ratio) => {
            let verdict = if ratio <= H2HOP_BOUND {
                "met"
            } else {
                "**not met**"
            };
            format!(
                "\n- h2hop-h2c CPU per {what}, 2 workers / 1 worker: {ratio:.2}× ≤ {H2HOP_BOUND}×: {verdict}"
            )
        }
        None => format!("\n- h2hop-h2c CPU per {what}, 2 workers / 1 worker: not measured"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_gives_each_ratio_and_h2hops_verdict() {
        let mut scaling = Results::default();
        scaling.next_round();
        scaling.record(HANDSHAKES.cpu, "h2hop-h2c ×1", Some(200.0));
        scaling.record(HANDSHAKES.cpu, "h2hop-h2c ×2", Some(220.0));
        scaling.record(PLAIN_CPU, "h2hop-h2c ×1", Some(50.0));
        scaling.record(PLAIN_CPU, "h2hop-h2c ×2", Some(60.0));
        let text = section(&scaling);
        assert!(
            text.contains("| h2hop-h2c | 200.00 | 220.00 | 1.10 | 50.00 | 60.00 | 1.20 |"),
            "{text}"
        );
        assert!(
            text.contains("per handshake, 2 workers / 1 worker: 1.10× ≤ 1.15×: met"),
            "{text}"
        );
        assert!(
            text.contains("per plain GET, 2 workers / 1 worker: 1.20× ≤ 1.15×: **not met**"),
            "{text}"
        );
        assert!(text.contains("| nghttpx | – | – | – |"), "{text}");
    }
}
