//! CPU spent by the proxies and by the load (client and app) over one
//! workload, from [`h2hop_integration::procstat`] readings taken before
//! and after it. Used by every row of the bench binary.

use h2hop_integration::procstat::{self, CpuTimes};

/// CPU spent by the proxies and by the load (client and app) from
/// [`Meter::start`] to [`Meter::spent`]; a process gone counts as zero.
pub struct Meter<'a> {
    proxies: &'a [u32],
    load: &'a [u32],
    proxies_before: CpuTimes,
    load_before: CpuTimes,
}

impl<'a> Meter<'a> {
    /// Reads the CPU times of `proxies` and of `load` now.
    pub fn start(proxies: &'a [u32], load: &'a [u32]) -> Self {
        Meter {
            proxies,
            load,
            proxies_before: times(proxies),
            load_before: times(load),
        }
    }

    /// The proxies' and the load's CPU since the start.
    pub fn spent(&self) -> (CpuTimes, CpuTimes) {
        (
            times(self.proxies) - self.proxies_before,
            times(self.load) - self.load_before,
        )
    }
}

fn times(pids: &[u32]) -> CpuTimes {
    procstat::total_cpu_times(pids).unwrap_or_default()
}
