//! Results: every figure of every round, reduced to medians and to ratios
//! against direct taken in the same round, written as a Markdown table and
//! an SVG chart of the ratios.
//!
//! The machine is shared and has two cores, so absolute numbers drift from
//! round to round; a ratio taken within one round is what compares systems.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Which way a figure is better, for the chart's reading and the targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// More is better (throughput, rates).
    Higher,
    /// Less is better (latency, CPU, memory, failures).
    Lower,
}

/// One figure's description: its row label, unit and direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Figure {
    /// Position in the table.
    pub order: u16,
    /// Row label, e.g. "throughput".
    pub label: &'static str,
    /// Unit, e.g. "MB/s".
    pub unit: &'static str,
}

impl Figure {
    /// Whether a higher or lower value is better.
    pub fn better(&self) -> Better {
        match self.unit {
            "MB/s" | "round trips/s" | "conn/s" | "req/s" | "calls/s" | "tunnels" => Better::Higher,
            _ => Better::Lower,
        }
    }
}

/// Every value measured: figure → system → one value per round.
#[derive(Debug, Default)]
pub struct Results {
    values: BTreeMap<Figure, BTreeMap<String, Vec<Option<f64>>>>,
    systems: Vec<String>,
    rounds: usize,
}

impl Results {
    /// Starts a new round; values recorded next belong to it.
    pub fn next_round(&mut self) {
        self.rounds += 1;
    }

    /// Records `value` for `system` in the current round (`None` when a
    /// figure does not apply, such as proxy CPU for direct).
    pub fn record(&mut self, figure: Figure, system: &str, value: Option<f64>) {
        if !self.systems.iter().any(|known| known == system) {
            self.systems.push(system.to_owned());
        }
        let round = self.rounds.saturating_sub(1);
        let values = self
            .values
            .entry(figure)
            .or_default()
            .entry(system.to_owned())
            .or_default();
        values.resize(round + 1, None);
        values[round] = value;
    }

    /// The median over rounds of `system`'s value for `figure`.
    pub fn median(&self, figure: &Figure, system: &str) -> Option<f64> {
        let values = self.values.get(figure)?.get(system)?;
        median(values.iter().flatten().copied().collect())
    }

    /// The median over rounds of `system`'s value divided by direct's in
    /// the same round.
    pub fn ratio(&self, figure: &Figure, system: &str) -> Option<f64> {
        let by_system = self.values.get(figure)?;
        let direct = by_system.get("direct")?;
        let values = by_system.get(system)?;
        let ratios = values
            .iter()
            .zip(direct)
            .filter_map(|(value, base)| match (value, base) {
                (Some(value), Some(base)) if *base != 0.0 => Some(value / base),
                _ => None,
            })
            .collect();
        median(ratios)
    }

    /// The figures, in table order.
    pub fn figures(&self) -> impl Iterator<Item = &Figure> {
        self.values.keys()
    }

    /// The Markdown table: one row per figure, one column per system, each
    /// cell the median and, beside it, the median ratio to direct.
    pub fn markdown(&self, heading: &str) -> String {
        let mut out = format!("{heading}\n\n| figure | unit |");
        for system in &self.systems {
            let _ = write!(out, " {system} |");
        }
        out.push_str("\n| --- | --- |");
        for _ in &self.systems {
            out.push_str(" ---: |");
        }
        out.push('\n');
        for figure in self.figures() {
            let _ = write!(out, "| {} | {} |", figure.label, figure.unit);
            for system in &self.systems {
                let cell = match (self.median(figure, system), self.ratio(figure, system)) {
                    (None, _) => "–".to_owned(),
                    (Some(value), Some(ratio)) if system != "direct" => {
                        format!("{} ({ratio:.2}×)", number(value))
                    }
                    (Some(value), _) => number(value),
                };
                let _ = write!(out, " {cell} |");
            }
            out.push('\n');
        }
        out
    }
}

/// Bar colours for the systems after direct, in order: one per system of
/// a full run.
const COLOURS: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

impl Results {
    /// An SVG chart of the ratios to direct: one group of bars per figure
    /// (those with a direct value), one bar per system, and a line at 1×.
    pub fn svg(&self, title: &str) -> String {
        let systems: Vec<&String> = self.systems.iter().filter(|s| *s != "direct").collect();
        let rows: Vec<(&Figure, Vec<Option<f64>>)> = self
            .figures()
            .map(|figure| {
                (
                    figure,
                    systems
                        .iter()
                        .map(|s| self.ratio(figure, s))
                        .collect::<Vec<_>>(),
                )
            })
            .filter(|(_, ratios)| ratios.iter().any(Option::is_some))
            .collect();
        let top = rows
            .iter()
            .flat_map(|(_, ratios)| ratios.iter().flatten())
            .fold(1.0_f64, |top, ratio| top.max(*ratio))
            * 1.1;
        let (left, width, bar) = (340.0, 560.0, 12.0);
        let group = bar * systems.len() as f64 + 10.0;
        let height = 60.0 + group * rows.len() as f64 + 20.0 * systems.len() as f64;
        let mut out = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{height}\" \
             font-family=\"sans-serif\" font-size=\"11\">\n\
             <text x=\"10\" y=\"20\" font-size=\"14\">{title}</text>\n",
            w = left + width + 80.0
        );
        for (n, (figure, ratios)) in rows.iter().enumerate() {
            let y0 = 40.0 + group * n as f64;
            let arrow = if figure.better() == Better::Higher {
                "↑"
            } else {
                "↓"
            };
            let _ = writeln!(
                out,
                "<text x=\"{x}\" y=\"{y}\" text-anchor=\"end\">{} ({}) {arrow}</text>",
                figure.label,
                figure.unit,
                x = left - 6.0,
                y = y0 + group / 2.0
            );
            for (i, ratio) in ratios.iter().enumerate() {
                let Some(ratio) = ratio else { continue };
                let y = y0 + bar * i as f64;
                let w = width * ratio / top;
                let colour = COLOURS[i % COLOURS.len()];
                let _ = writeln!(
                    out,
                    "<rect x=\"{left}\" y=\"{y}\" width=\"{w:.1}\" height=\"{h}\" fill=\"{colour}\"/>\
                     <text x=\"{tx:.1}\" y=\"{ty}\">{ratio:.2}×</text>",
                    h = bar - 2.0,
                    tx = left + w + 4.0,
                    ty = y + bar - 3.0
                );
            }
        }
        let one = left + width / top;
        let bottom = 40.0 + group * rows.len() as f64;
        let _ = writeln!(
            out,
            "<line x1=\"{one:.1}\" y1=\"34\" x2=\"{one:.1}\" y2=\"{bottom}\" stroke=\"#333\" \
             stroke-dasharray=\"4 3\"/><text x=\"{one:.1}\" y=\"32\">direct = 1×</text>"
        );
        for (i, system) in systems.iter().enumerate() {
            let y = bottom + 14.0 + 18.0 * i as f64;
            let colour = COLOURS[i % COLOURS.len()];
            let _ = writeln!(
                out,
                "<rect x=\"{left}\" y=\"{y}\" width=\"12\" height=\"12\" fill=\"{colour}\"/>\
                 <text x=\"{tx}\" y=\"{ty}\">{system}</text>",
                tx = left + 18.0,
                ty = y + 10.0
            );
        }
        out.push_str("</svg>\n");
        out
    }
}

/// The median of `values`, `None` if empty.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    })
}

/// A number with as many decimals as its size deserves.
pub(crate) fn number(value: f64) -> String {
    match value.abs() {
        v if v >= 100.0 => format!("{value:.0}"),
        v if v >= 10.0 => format!("{value:.1}"),
        _ => format!("{value:.2}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Figure = Figure {
        order: 1,
        label: "throughput",
        unit: "MB/s",
    };

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }

    /// A ratio is taken within each round, then the median of those.
    #[test]
    fn ratio_is_taken_within_each_round() {
        let mut results = Results::default();
        for (direct, proxy) in [(100.0, 50.0), (200.0, 60.0), (10.0, 9.0)] {
            results.next_round();
            results.record(RATE, "direct", Some(direct));
            results.record(RATE, "proxy", Some(proxy));
        }
        // Per-round ratios 0.5, 0.3, 0.9: median 0.5 (not 60/100).
        assert_eq!(results.ratio(&RATE, "proxy"), Some(0.5));
        assert_eq!(results.median(&RATE, "proxy"), Some(50.0));
    }

    #[test]
    fn svg_draws_a_bar_per_ratio() {
        let mut results = Results::default();
        results.next_round();
        results.record(RATE, "direct", Some(100.0));
        results.record(RATE, "proxy", Some(25.0));
        let svg = results.svg("t");
        assert!(svg.starts_with("<svg"));
        assert_eq!(
            svg.matches("<rect").count(),
            2,
            "one bar and one legend swatch: {svg}"
        );
        assert!(svg.contains("0.25×"));
    }

    #[test]
    fn markdown_has_a_row_per_figure_and_a_column_per_system() {
        let mut results = Results::default();
        results.next_round();
        results.record(RATE, "direct", Some(100.0));
        results.record(RATE, "proxy", Some(25.0));
        let table = results.markdown("## t");
        assert!(
            table.contains("| figure | unit | direct | proxy |"),
            "{table}"
        );
        assert!(
            table.contains("| throughput | MB/s | 100 | 25.0 (0.25×) |"),
            "{table}"
        );
    }
}
