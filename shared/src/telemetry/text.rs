//! The text format's field writer and clock, cheaper than
//! `tracing-subscriber`'s defaults and writing the same line.
//!
//! A callgrind profile of plain GETs through the sidecar put about a fifth
//! of all its instructions in writing the access line: the default field
//! visitor sends every field through `write!` with styling wrappers, every
//! string through `str`'s `Debug`, and the default clock formats the
//! timestamp through `write!` as well. [`Fields`] and [`Clock`] write the
//! same text (`name=value` fields, strings quoted and escaped as `Debug`
//! does, an RFC 3339 UTC timestamp with microseconds) with plain string
//! writes on the common path, and fall back to `Debug` for anything unusual.
//! Styling is left out: these are for logs that are not a terminal.

use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// Writes an event's or a span's fields: the message as it is (control
/// characters escaped), then `name=value` separated by spaces.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fields;

impl<'writer> FormatFields<'writer> for Fields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = Visitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.finish()
    }
}

struct Visitor<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl Visitor<'_> {
    /// Writes the separator and `name=`, or nothing for the message; says
    /// whether the field is the message.
    fn start(&mut self, field: &Field) -> Result<bool, fmt::Error> {
        if !std::mem::take(&mut self.first) {
            self.writer.write_char(' ')?;
        }
        let name = field.name();
        if name == "message" {
            return Ok(true);
        }
        self.writer
            .write_str(name.strip_prefix("r#").unwrap_or(name))?;
        self.writer.write_char('=')?;
        Ok(false)
    }

    fn record(&mut self, field: &Field, write: impl FnOnce(&mut Self, bool) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self.start(field).and_then(|message| write(self, message));
        }
    }
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, |this, message| {
            if message {
                Escaped(&mut this.writer).write_str(value)
            } else {
                write_quoted(&mut this.writer, value)
            }
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.record(field, |this, _| {
            this.writer.write_str(itoa::Buffer::new().format(value))
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record(field, |this, _| {
            this.writer.write_str(itoa::Buffer::new().format(value))
        });
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.record(field, |this, _| {
            this.writer.write_str(if value { "true" } else { "false" })
        });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record(field, |this, _| {
            let mut out = Escaped(&mut this.writer);
            write!(out, "{value}")?;
            let mut source = value.source();
            while let Some(cause) = source {
                write!(out, ": {cause}")?;
                source = cause.source();
            }
            Ok(())
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record(field, |this, message| {
            if message {
                write!(Escaped(&mut this.writer), "{value:?}")
            } else {
                write!(this.writer, "{value:?}")
            }
        });
    }
}

impl VisitOutput<fmt::Result> for Visitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

/// Writes `value` in double quotes exactly as `str`'s `Debug` does: as it
/// is when it is printable ASCII without `"` or `\`, through `Debug`
/// otherwise.
pub(crate) fn write_quoted(out: &mut impl fmt::Write, value: &str) -> fmt::Result {
    let plain = value
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
    if plain {
        out.write_char('"')?;
        out.write_str(value)?;
        out.write_char('"')
    } else {
        write!(out, "{value:?}")
    }
}

/// Passes text on with control characters (C0 but tab, DEL and C1; ANSI
/// escapes among them) written as `\x1b` or `\u{9b}`, so that no log line
/// can carry terminal commands or break into two lines.
struct Escaped<'a, 'writer>(&'a mut Writer<'writer>);

impl fmt::Write for Escaped<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        // C1 characters are two bytes in UTF-8, the first being 0xc2.
        let clean = !text
            .bytes()
            .any(|b| (b.is_ascii_control() && b != b'\t') || b == 0xc2);
        if clean {
            return self.0.write_str(text);
        }
        for ch in text.chars() {
            match u32::from(ch) {
                code @ (0..=0x08 | 0x0a..=0x1f | 0x7f) => write!(self.0, "\\x{code:02x}")?,
                code @ 0x80..=0x9f => write!(self.0, "\\u{{{code:x}}}")?,
                _ => self.0.write_char(ch)?,
            }
        }
        Ok(())
    }
}

/// The wall clock as RFC 3339 UTC with microseconds
/// (`2026-11-26T10:42:48.348654Z`), like `tracing-subscriber`'s default.
#[derive(Debug, Clone, Copy, Default)]
pub struct Clock;

impl FormatTime for Clock {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let mut now = String::with_capacity(27);
        push_now(&mut now);
        w.write_str(&now)
    }
}

/// Appends the wall clock as [`Clock`] writes it.
pub(crate) fn push_now(out: &mut String) {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    push_rfc3339(out, since_epoch.as_secs(), since_epoch.subsec_micros());
}

/// `secs` since the Unix epoch and `micros` within that second, as
/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` (years after 9999 are not written right;
/// this is a log timestamp).
#[cfg(test)]
fn rfc3339(secs: u64, micros: u32) -> String {
    let mut out = String::with_capacity(27);
    push_rfc3339(&mut out, secs, micros);
    out
}

/// Appends what [`rfc3339`] returns.
fn push_rfc3339(out: &mut String, secs: u64, micros: u32) {
    let days = secs / 86_400;
    let in_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    for (value, width, after) in [
        (year, 4, '-'),
        (month, 2, '-'),
        (day, 2, 'T'),
        (in_day / 3600, 2, ':'),
        (in_day / 60 % 60, 2, ':'),
        (in_day % 60, 2, '.'),
        (u64::from(micros), 6, 'Z'),
    ] {
        push_padded(out, value, width);
        out.push(after);
    }
}

/// Appends `value` in decimal, with leading zeros up to `width` digits.
pub(crate) fn push_padded(out: &mut String, value: u64, width: usize) {
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(value);
    for _ in digits.len()..width {
        out.push('0');
    }
    out.push_str(digits);
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar: the usual era-based conversion (eras of 400 years, years
/// counted from March so that the leap day comes last).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::captured::Captured;
    use tracing_subscriber::layer::SubscriberExt as _;

    #[test]
    fn timestamps_match_known_dates() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000Z");
        // 2000-02-29 (a leap day in a year divisible by 400), 12:34:56.
        assert_eq!(rfc3339(951_827_696, 7), "2000-02-29T12:34:56.000007Z");
        assert_eq!(
            rfc3339(1_795_689_768, 348_654),
            "2026-11-26T10:42:48.348654Z"
        );
        // The last second of 2100 (not a leap year).
        assert_eq!(
            rfc3339(4_133_980_799, 999_999),
            "2100-12-31T23:59:59.999999Z"
        );
    }

    #[test]
    fn the_clock_agrees_with_the_default_one() {
        let ours = |w: &mut String| Clock.format_time(&mut Writer::new(w));
        let theirs = |w: &mut String| {
            tracing_subscriber::fmt::time::SystemTime.format_time(&mut Writer::new(w))
        };
        let (mut a, mut b) = (String::new(), String::new());
        ours(&mut a).unwrap();
        theirs(&mut b).unwrap();
        // Same up to the seconds; the microseconds moved in between.
        assert_eq!(a.len(), b.len(), "{a} vs {b}");
        assert_eq!(a[..17], b[..17], "{a} vs {b}");
    }

    /// Formats one event inside a span with `fields` and `Clock`, and once
    /// with the defaults, and returns both lines without their timestamps.
    fn both_lines(emit: fn()) -> (String, String) {
        let line = |ours: bool| {
            let buffer = Captured::default();
            let sink = buffer.clone();
            let make = move || sink.clone();
            let layer = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(make);
            let subscriber = tracing_subscriber::registry();
            if ours {
                let layer = layer.fmt_fields(Fields).with_timer(Clock);
                tracing::subscriber::with_default(subscriber.with(layer), emit);
            } else {
                tracing::subscriber::with_default(subscriber.with(layer), emit);
            }
            let text = buffer.text();
            text.split_once(' ').unwrap().1.to_owned()
        };
        (line(true), line(false))
    }

    #[test]
    fn lines_match_the_default_format() {
        let (ours, theirs) = both_lines(|| {
            let peer: std::net::SocketAddr = ([127, 0, 0, 1], 4000).into();
            let span = tracing::info_span!("conn", %peer, n = 3u64);
            let _entered = span.enter();
            tracing::info!(
                target: "h2hop::access",
                kind = "request",
                path = "/a b\"c\\",
                status = 200u16,
                delta = -4i64,
                duration_ms = 4.25f64,
                ok = true,
                r#type = "x",
                list = ?[1, 2],
                "access {}", 7
            );
        });
        assert_eq!(ours, theirs);
        assert!(
            ours.contains(
                "conn{peer=127.0.0.1:4000 n=3}: h2hop::access: access 7 kind=\"request\""
            )
        );
    }

    #[test]
    fn control_characters_in_messages_are_escaped() {
        let (ours, _) = both_lines(|| tracing::warn!("bad \u{1b}[31mred\r\nline"));
        assert!(ours.ends_with("bad \\x1b[31mred\\x0d\\x0aline\n"), "{ours}");
        let (ours, _) = both_lines(|| tracing::warn!("c1 \u{9b}31m tab\tkept"));
        assert!(ours.ends_with("c1 \\u{9b}31m tab\tkept\n"), "{ours}");
    }
}
