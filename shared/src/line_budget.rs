//! A budget of log lines per second for a kind of line that one client can
//! make in bulk: access lines of streams reset before any answer (a
//! rapid-reset flood once wrote 84 MB of them in 10 s). Past the budget
//! lines are counted, not written, and the count is written with the first
//! line of a later second. Called by [`crate::access`].

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Up to `per_second` lines in each second; the rest are counted.
#[derive(Debug)]
pub struct LineBudget {
    per_second: u32,
    /// The second the counts below are for.
    second: AtomicU64,
    written: AtomicU32,
    /// Lines left out and not yet reported.
    left_out: AtomicU64,
}

/// Whether a line may be written now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Write it; `left_out_before` lines were left out since the last
    /// report (say so first when it is not zero).
    Write {
        /// Lines left out and not yet reported.
        left_out_before: u64,
    },
    /// Leave it out: this second's budget is spent.
    LeaveOut,
}

impl LineBudget {
    /// A budget of `per_second` lines.
    pub const fn new(per_second: u32) -> Self {
        Self {
            per_second,
            second: AtomicU64::new(0),
            written: AtomicU32::new(0),
            left_out: AtomicU64::new(0),
        }
    }

    /// Asks to write one line in `second` (seconds on any steady clock).
    /// Lines racing across a second's edge may be counted in either; the
    /// budget is a bound on volume, not an exact quota.
    pub fn take(&self, second: u64) -> Verdict {
        if self.second.swap(second, Ordering::Relaxed) != second {
            self.written.store(0, Ordering::Relaxed);
        }
        if self.written.fetch_add(1, Ordering::Relaxed) < self.per_second {
            let left_out_before = self.left_out.swap(0, Ordering::Relaxed);
            Verdict::Write { left_out_before }
        } else {
            self.left_out.fetch_add(1, Ordering::Relaxed);
            Verdict::LeaveOut
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_budget_lines_are_counted_and_reported_in_a_later_second() {
        let budget = LineBudget::new(3);
        let verdicts: Vec<Verdict> = (0..10).map(|_| budget.take(7)).collect();
        let written = verdicts
            .iter()
            .filter(|verdict| matches!(verdict, Verdict::Write { .. }))
            .count();
        assert_eq!(written, 3);
        assert_eq!(budget.take(8), Verdict::Write { left_out_before: 7 });
        assert_eq!(budget.take(8), Verdict::Write { left_out_before: 0 });
    }

    #[test]
    fn a_quiet_flow_is_never_cut() {
        let budget = LineBudget::new(2);
        for second in 0..100 {
            assert_eq!(budget.take(second), Verdict::Write { left_out_before: 0 });
            assert_eq!(budget.take(second), Verdict::Write { left_out_before: 0 });
        }
    }
}
