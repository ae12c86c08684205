//! Logging set-up for the binaries' `main`: level and format from flags.
//!
//! Libraries only emit `tracing` events; this module installs the one
//! subscriber, writing to standard error so standard output stays free for
//! the programs' own output.

use std::io::IsTerminal as _;

use clap::{Args, ValueEnum};
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::batch_writer::BatchWriter;

pub(crate) mod text;

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
pub type LogGuard = crate::batch_writer::FlushGuard;

/// Why logging could not start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// Another global subscriber was installed first.
    #[error(transparent)]
    Subscriber(#[from] tracing_subscriber::util::TryInitError),
    /// The log writer thread could not start.
    #[error("cannot start the log writer thread")]
    Thread(#[from] std::io::Error),
}

/// Installs the global subscriber. h2hop's own events follow `log_level`;
/// the libraries' (h2, hyper, rustls) stay at warn unless trace is asked for.
///
/// Lines are written in batches by a background thread
/// ([`crate::batch_writer`]): one write per line on the hot path cost about
/// a quarter of the CPU of a tunnel handshake. No log line is dropped.
pub fn init(args: &LogArgs) -> Result<LogGuard, InitError> {
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
    let (writer, guard) = BatchWriter::spawn(std::io::stderr())?;
    let registry = tracing_subscriber::registry().with(filter);
    match args.log_format {
        // A terminal gets the default, coloured fields; anything else gets
        // the same text written more cheaply.
        LogFormat::Text if ansi => registry
            .with(tracing_subscriber::fmt::layer().with_writer(writer))
            .try_init()?,
        LogFormat::Text => {
            // At debug and trace, lines keep their span context.
            if args.log_level == LevelFilter::INFO {
                crate::access::write_directly(writer.clone());
            }
            registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_ansi(false)
                        .fmt_fields(text::Fields)
                        .with_timer(text::Clock)
                        .with_writer(writer),
                )
                .try_init()?
        }
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
