//! The crypto floor of the mTLS middle hop: what AES-GCM alone costs per
//! gigabyte echoed on this machine, measured in-process with `ring` (the
//! provider h2hop's rustls uses), so that h2hop-mtls's CPU per GB can be
//! judged against h2hop-h2c's plus this floor.
//!
//! Input: the suite and how much CPU time to spend measuring. Output: a
//! [`CryptoFloor`]; the bench binary prints it under the table and
//! [`crate::targets`] uses it. Called once per run.
//!
//! An echoed byte crosses the TLS hop twice, up (front seals, sidecar
//! opens) and back (sidecar seals, front opens), so the floor per GB
//! echoed is 2 × (seal + open) per GB. Records are 16 KiB, TLS's maximum
//! plaintext (RFC 8446 §5.1), which a bulk transfer fills.

use std::time::Duration;

use anyhow::{Context as _, bail};
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};

/// Plaintext bytes per record.
const RECORD: usize = 16 * 1024;
/// TLS hop crossings per echoed byte: once up, once back.
pub const CROSSINGS_PER_ECHOED_BYTE: f64 = 2.0;
/// Records between two reads of the thread's CPU time.
const BATCH: u64 = 256;

/// A TLS 1.3 AES-GCM suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// `TLS_AES_128_GCM_SHA256`: what h2hop's hop negotiates (its rustls
    /// configs put it first) and nghttpx's too.
    Aes128Gcm,
    /// `TLS_AES_256_GCM_SHA384`: what the HAProxy pair negotiates
    /// (OpenSSL's default order).
    Aes256Gcm,
}

impl Suite {
    /// The IANA name.
    pub fn name(self) -> &'static str {
        match self {
            Suite::Aes128Gcm => "TLS_AES_128_GCM_SHA256",
            Suite::Aes256Gcm => "TLS_AES_256_GCM_SHA384",
        }
    }

    fn algorithm(self) -> &'static aead::Algorithm {
        match self {
            Suite::Aes128Gcm => &aead::AES_128_GCM,
            Suite::Aes256Gcm => &aead::AES_256_GCM,
        }
    }
}

/// CPU seconds per GB (10^9 bytes) of plaintext for one suite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CryptoFloor {
    /// Which suite.
    pub suite: Suite,
    /// Sealing (encrypting and tagging).
    pub seal_s_per_gb: f64,
    /// Opening (checking the tag and decrypting).
    pub open_s_per_gb: f64,
}

impl CryptoFloor {
    /// The floor per GB echoed: [`CROSSINGS_PER_ECHOED_BYTE`] × (seal + open).
    pub fn per_gb_echoed(&self) -> f64 {
        CROSSINGS_PER_ECHOED_BYTE * (self.seal_s_per_gb + self.open_s_per_gb)
    }

    /// One line for the report.
    pub fn line(&self) -> String {
        format!(
            "crypto floor ({}, ring, 16 KiB records, this machine): seal {:.3} + open {:.3} \
             CPU-s/GB per crossing; an echoed byte crosses the TLS hop twice (up and back), \
             so {:.3} CPU-s per GB echoed",
            self.suite.name(),
            self.seal_s_per_gb,
            self.open_s_per_gb,
            self.per_gb_echoed()
        )
    }
}

/// Measures `suite` on the calling thread for at least `min_cpu` of its
/// CPU time per step: first seals alone, then seal-and-open pairs (each
/// open undoes its seal in place, so no copy is timed); open is the
/// difference. Blocks: run it off the async runtime.
pub fn measure(suite: Suite, min_cpu: Duration) -> anyhow::Result<CryptoFloor> {
    let key = UnboundKey::new(
        suite.algorithm(),
        &[0x42; 32][..suite.algorithm().key_len()],
    )
    .map_err(|_| anyhow::anyhow!("ring refused the {} key", suite.name()))?;
    let key = LessSafeKey::new(key);
    let mut record = vec![0x5a_u8; RECORD];
    let seal_only = timed_records(min_cpu, |n| {
        key.seal_in_place_separate_tag(nonce(n), Aad::empty(), &mut record)
            .map(drop)
            .map_err(|_| anyhow::anyhow!("seal failed"))
    })?;
    let seal_open = timed_records(min_cpu, |n| {
        let tag = key
            .seal_in_place_separate_tag(nonce(n), Aad::empty(), &mut record)
            .map_err(|_| anyhow::anyhow!("seal failed"))?;
        key.open_in_place_separate_tag(nonce(n), Aad::empty(), tag, &mut record, 0..)
            .map(drop)
            .map_err(|_| anyhow::anyhow!("open failed"))
    })?;
    if seal_open <= seal_only {
        bail!("seal and open measured cheaper than seal alone: a busy machine, try again");
    }
    let per_gb = |seconds_per_record: f64| seconds_per_record * 1e9 / RECORD as f64;
    Ok(CryptoFloor {
        suite,
        seal_s_per_gb: per_gb(seal_only),
        open_s_per_gb: per_gb(seal_open - seal_only),
    })
}

/// A distinct nonce per record, as TLS's sequence number gives.
fn nonce(n: u64) -> Nonce {
    let mut bytes = [0u8; aead::NONCE_LEN];
    bytes[4..].copy_from_slice(&n.to_be_bytes());
    Nonce::assume_unique_for_key(bytes)
}

/// Runs `step` on records 0, 1, ... in batches until the thread has spent
/// `min_cpu`; returns CPU seconds per record.
fn timed_records(
    min_cpu: Duration,
    mut step: impl FnMut(u64) -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    let start = thread_cpu_seconds()?;
    let mut records = 0;
    loop {
        for _ in 0..BATCH {
            step(records)?;
            records += 1;
        }
        let spent = thread_cpu_seconds()? - start;
        if spent >= min_cpu.as_secs_f64() {
            return Ok(spent / records as f64);
        }
    }
}

/// The calling thread's CPU seconds (user + system), from fields 14 and 15
/// of `/proc/thread-self/stat`, in ticks of 1/100 s (USER_HZ).
fn thread_cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat")
        .context("reading /proc/thread-self/stat")?;
    parse_ticks(&stat)
        .map(|ticks| ticks as f64 / 100.0)
        .context("parsing /proc/thread-self/stat")
}

/// `utime` + `stime` of a `stat` line: the 12th and 13th fields after the
/// `(comm)` field, which may itself hold spaces and parentheses.
fn parse_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(") ")?;
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_utime_plus_stime_even_with_a_parenthesis_in_the_name() {
        let stat = "42 (a) b) S 1 42 42 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 1 0";
        assert_eq!(parse_ticks(stat), Some(280));
    }

    #[test]
    fn floor_per_gb_echoed_counts_two_crossings_of_seal_and_open() {
        let floor = CryptoFloor {
            suite: Suite::Aes128Gcm,
            seal_s_per_gb: 0.2,
            open_s_per_gb: 0.3,
        };
        assert!((floor.per_gb_echoed() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn measured_floor_is_positive_for_both_suites() {
        for suite in [Suite::Aes128Gcm, Suite::Aes256Gcm] {
            let floor = measure(suite, Duration::from_millis(50)).unwrap();
            assert!(
                floor.seal_s_per_gb > 0.0 && floor.open_s_per_gb > 0.0,
                "{floor:?}"
            );
        }
    }
}
