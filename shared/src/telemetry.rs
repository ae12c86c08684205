//! Logging set-up for the binaries' `main`: level and format from flags.
//!
//! Libraries only emit `tracing` events; this module installs the one
//! subscriber, writing to standard error so standard output stays free for
//! the programs' own output.

use std::io::{BufWriter, IsTerminal as _};

use clap::{Args, ValueEnum};
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per event, for log shippers.
    Json,
}

/// The logging flags both binaries share.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Least severe level logged: error, warn, info, debug or trace.
    #[arg(long, env = "H2HOP_LOG_LEVEL", default_value = "info")]
    pub log_level: LevelFilter,
    /// Log line format.
    #[arg(long, env = "H2HOP_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Keeps the log writer thread alive; dropping it flushes what is queued.
/// `main` holds it until the process ends.
pub type LogGuard = tracing_appender::non_blocking::WorkerGuard;

/// Installs the global subscriber. h2hop's own events follow `log_level`;
/// the libraries' (h2, hyper, rustls) stay at warn unless trace is asked for.
///
/// Lines are written by a background thread through a buffer that is
/// flushed whenever its queue runs dry: one write per line on the hot path
/// cost about a quarter of the CPU of a tunnel handshake. The queue blocks
/// rather than drops when full: no log line is lost.
pub fn init(args: &LogArgs) -> Result<LogGuard, tracing_subscriber::util::TryInitError> {
    let libraries = if args.log_level == LevelFilter::TRACE {
        LevelFilter::TRACE
    } else {
        LevelFilter::WARN
    };
    // Targets match by prefix, so "h2hop" covers every crate of ours
    // (h2hop, h2hop_front, h2hop_sidecar, ...) and nothing else.
    let filter = Targets::new()
        .with_default(libraries)
        .with_target("h2hop", args.log_level);
    let ansi = std::io::stderr().is_terminal();
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(BufWriter::new(std::io::stderr()));
    let registry = tracing_subscriber::registry().with(filter);
    match args.log_format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(ansi)
                    .with_writer(writer),
            )
            .try_init()?,
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json().with_writer(writer))
            .try_init()?,
    }
    Ok(guard)
}

/// An error and its causes on one line (`outer: inner: root`), for log
/// fields and the short bodies the binaries answer failures with.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chain_joins_every_cause() {
        let err = Outer(std::io::Error::other("root"));
        assert_eq!(chain(&err), "outer: root");
    }
}
