//! Resource use of the proxies under test, read from `/proc`: CPU seconds
//! from `/proc/PID/stat` and resident memory from `/proc/PID/status`.
//!
//! Input: process ids from [`crate::systems::Target::proxy_pids`]. Output: totals the
//! bench samples before and after each workload, so that CPU per gigabyte,
//! per round trip or per connection, and memory per idle tunnel, can be
//! worked out by [`super::report`]. Linux only.

use anyhow::{Context, bail};

/// Clock ticks per second of the `utime` and `stime` fields. This is
/// `USER_HZ`, which the kernel fixes at 100 on every Linux ABI regardless of
/// its internal `HZ` (see proc(5) and `sysconf(_SC_CLK_TCK)`), so it needs
/// no call into libc.
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds used so far: in all (user + system), and of them in the
/// kernel (system calls and the network stack).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTimes {
    /// `utime` + `stime`.
    pub total: f64,
    /// `stime` alone.
    pub kernel: f64,
}

impl std::ops::Sub for CpuTimes {
    type Output = CpuTimes;

    fn sub(self, earlier: CpuTimes) -> CpuTimes {
        CpuTimes {
            total: self.total - earlier.total,
            kernel: self.kernel - earlier.kernel,
        }
    }
}

/// [`CpuTimes`] of `pid`, from fields 14 (`utime`) and 15 (`stime`) of
/// `/proc/PID/stat`.
pub fn cpu_times(pid: u32) -> anyhow::Result<CpuTimes> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let (user, system) = parse_stat_ticks(&stat).with_context(|| format!("parsing {path}"))?;
    // Ticks stay far below 2^53, so the conversion to f64 is exact.
    Ok(CpuTimes {
        total: (user + system) as f64 / TICKS_PER_SECOND,
        kernel: system as f64 / TICKS_PER_SECOND,
    })
}

/// Resident set size of `pid` in KiB, from the `VmRSS` line of
/// `/proc/PID/status`.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_vm_rss_kib(&status).with_context(|| format!("parsing {path}"))
}

/// Sum of [`cpu_times`] over `pids`; an error if any process is gone.
pub fn total_cpu_times(pids: &[u32]) -> anyhow::Result<CpuTimes> {
    pids.iter().try_fold(CpuTimes::default(), |sum, &pid| {
        let times = cpu_times(pid)?;
        Ok(CpuTimes {
            total: sum.total + times.total,
            kernel: sum.kernel + times.kernel,
        })
    })
}

/// Sum of [`rss_kib`] over `pids`; an error if any process is gone.
pub fn total_rss_kib(pids: &[u32]) -> anyhow::Result<u64> {
    pids.iter().map(|&pid| rss_kib(pid)).sum()
}

/// `utime` and `stime` in clock ticks from one `/proc/PID/stat` line.
///
/// Field 2, the command name, is in parentheses and may itself contain
/// spaces and parentheses, so the fixed fields are counted from the *last*
/// `)`: field 3 (`state`) is the first word after it, which puts field 14
/// at index 11 and field 15 at index 12.
fn parse_stat_ticks(stat: &str) -> anyhow::Result<(u64, u64)> {
    let (_, after_comm) = stat
        .rsplit_once(')')
        .context("no ')' closing the comm field")?;
    let mut fields = after_comm.split_ascii_whitespace().skip(11);
    let mut next_ticks = |name: &str| -> anyhow::Result<u64> {
        let field = fields.next().with_context(|| format!("no {name} field"))?;
        field
            .parse()
            .with_context(|| format!("{name} field {field:?} is not a number"))
    };
    let user = next_ticks("utime")?;
    let system = next_ticks("stime")?;
    Ok((user, system))
}

/// The `VmRSS:  1234 kB` value of a `/proc/PID/status` text, in KiB.
fn parse_vm_rss_kib(status: &str) -> anyhow::Result<u64> {
    let Some(rest) = status.lines().find_map(|line| line.strip_prefix("VmRSS:")) else {
        // Kernel threads and zombies have no memory map and no VmRSS line.
        bail!("no VmRSS line");
    };
    let mut words = rest.split_ascii_whitespace();
    let (Some(value), Some("kB")) = (words.next(), words.next()) else {
        bail!("VmRSS line {rest:?} is not `VmRSS: N kB`");
    };
    value
        .parse()
        .with_context(|| format!("VmRSS value {value:?} is not a number"))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// A stat line (Linux 6.x, 52 fields) whose comm contains `) (` and
    /// spaces; utime is 1234 and stime 567.
    const STAT_WITH_TRICKY_COMM: &str = "4242 (a) (b c) S 1 4242 4242 0 -1 4194560 \
        1041 0 0 0 1234 567 0 0 20 0 3 0 81 12345678 900 18446744073709551615 1 1 0 0 \
        0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

    #[test]
    fn stat_ticks_are_counted_from_the_last_parenthesis() {
        assert_eq!(
            parse_stat_ticks(STAT_WITH_TRICKY_COMM).unwrap(),
            (1234, 567)
        );
    }

    #[test]
    fn stat_without_closing_parenthesis_is_an_error() {
        assert!(parse_stat_ticks("4242 (broken S 1 2 3").is_err());
    }

    #[test]
    fn truncated_stat_is_an_error() {
        assert!(parse_stat_ticks("4242 (short) S 1 4242 4242 0 -1").is_err());
    }

    #[test]
    fn vm_rss_is_read_in_kib() {
        let status = "Name:\tbench\nVmPeak:\t  9000 kB\nVmRSS:\t    4321 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss_kib(status).unwrap(), 4321);
    }

    #[test]
    fn status_without_vm_rss_is_an_error() {
        assert!(parse_vm_rss_kib("Name:\tkthreadd\nState:\tS (sleeping)\n").is_err());
    }

    #[test]
    fn own_cpu_times_grow_after_a_busy_loop() {
        let pid = std::process::id();
        let before = cpu_times(pid).unwrap().total;
        // Spin for 300 ms of wall time (the test's own time limit): at
        // 100 ticks per second that is many ticks even on a busy machine.
        let deadline = Instant::now() + Duration::from_millis(300);
        let mut spins = 0u64;
        while Instant::now() < deadline {
            spins = std::hint::black_box(spins.wrapping_add(1));
        }
        let after = cpu_times(pid).unwrap().total;
        assert!(
            after > before,
            "cpu seconds {before} -> {after} after {spins} spins"
        );
        assert!(cpu_times(pid).unwrap().kernel <= after);
    }

    #[test]
    fn own_rss_is_positive_and_totals_add_up() {
        let pid = std::process::id();
        assert!(rss_kib(pid).unwrap() > 0);
        assert!(total_rss_kib(&[pid, pid]).unwrap() > 0);
        let once = total_cpu_times(&[pid]).unwrap();
        assert!(total_cpu_times(&[pid, pid]).unwrap().total >= 2.0 * once.total);
        assert_eq!(total_rss_kib(&[]).unwrap(), 0);
    }

    #[test]
    fn missing_process_is_an_error() {
        // Above the kernel's PID_MAX_LIMIT (2^22), so never a live pid.
        assert!(cpu_times(u32::MAX).is_err());
        assert!(rss_kib(u32::MAX).is_err());
    }
}
