//! The gRPC unary row of the table: each system started for
//! [`Traffic::Grpc`] in front of the gRPC app, one call checked to its
//! `grpc-status: 0` trailer with the bench's own client, then h2load's
//! load, with the proxies' CPU read around it.
//!
//! Input: a [`Kind`], the gRPC app's address and the run's settings.
//! Output: figures recorded into [`Results`], and a note when a system
//! could not carry the call. Called by the bench binary once per system
//! per round; [`summary`] then compares h2hop with the better peer.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use h2hop_integration::scratch::Scratch;

use crate::meter::Meter;
use crate::report::{Figure, Results};
use crate::systems::{self, Binaries, Kind, Traffic};
use crate::workloads::{self, GrpcLoad};

/// Calls per second answered with 2xx, under h2load's load.
pub const GRPC_RATE: Figure = Figure {
    order: 32,
    label: "gRPC unary calls, 8 h2c connections × 4 streams",
    unit: "calls/s",
};
/// Calls that failed under load (h2load's count).
pub const GRPC_FAIL: Figure = Figure {
    order: 33,
    label: "gRPC call failures",
    unit: "count",
};
/// The proxies' CPU time per answered call.
pub const GRPC_CPU: Figure = Figure {
    order: 34,
    label: "proxy CPU per gRPC call",
    unit: "CPU-µs",
};
/// The kernel's part of [`GRPC_CPU`].
pub const GRPC_KERNEL: Figure = Figure {
    order: 35,
    label: "of which in the kernel, per gRPC call",
    unit: "CPU-µs",
};

/// The systems the h2hop figures are compared with in [`summary`].
const PEERS: [Kind; 2] = [Kind::Nghttpx, Kind::Haproxy];

/// How one system's gRPC row is run.
#[derive(Debug, Clone, Copy)]
pub struct RowSettings {
    /// How long h2load runs.
    pub duration: Duration,
    /// Worker threads per proxy process.
    pub workers: usize,
    /// Smoke mode: any failure fails the run.
    pub smoke: bool,
}

/// Starts `kind` in front of the gRPC app at `app`, checks one call, and
/// records the row's figures. A system that cannot carry the call, or
/// whose h2load run fails, gets a note and no figures, except in smoke
/// mode, where it is an error; so is any failed call under load.
pub async fn measure(
    kind: Kind,
    app: SocketAddr,
    bins: &Binaries,
    settings: RowSettings,
    load_pids: &[u32],
    results: &mut Results,
) -> anyhow::Result<Option<String>> {
    let name = kind.name();
    let running = systems::start(kind, Traffic::Grpc, app, bins, settings.workers).await?;
    let target = &running.target;
    if let Err(err) = workloads::check_call(target.addr).await {
        let note = format!("{name}: a gRPC call failed its check: {err:#}");
        if settings.smoke {
            bail!("{note}");
        }
        return Ok(Some(note));
    }
    let scratch = Scratch::create("grpc-load")?;
    let meter = Meter::start(&target.proxy_pids, load_pids);
    let load = workloads::grpc_load(target.addr, settings.duration, scratch.dir()).await;
    let load = match load.with_context(|| format!("h2load through {name}")) {
        Ok(load) => load,
        // One h2load run whose summary went missing (seen once under heavy
        // load: exit 0 without the "finished in" line) must not throw
        // away every other row of a long run; smoke mode stays strict.
        Err(err) if !settings.smoke => return Ok(Some(format!("{err:#}"))),
        Err(err) => return Err(err),
    };
    let (proxies, _) = meter.spent();
    if settings.smoke {
        smoke_check(name, &load)?;
    }
    let proxied = !target.proxy_pids.is_empty();
    let per = 1e6 / load.calls.max(1) as f64;
    results.record(GRPC_RATE, name, Some(load.per_s()));
    results.record(GRPC_FAIL, name, Some(load.failures as f64));
    results.record(GRPC_CPU, name, proxied.then_some(proxies.total * per));
    results.record(GRPC_KERNEL, name, proxied.then_some(proxies.kernel * per));
    Ok(None)
}

/// In smoke mode, calls must have been answered and none may have failed.
fn smoke_check(name: &str, load: &GrpcLoad) -> anyhow::Result<()> {
    if load.calls == 0 || load.failures > 0 {
        bail!(
            "{name}: h2load saw {} answered and {} failed gRPC calls",
            load.calls,
            load.failures
        );
    }
    Ok(())
}

/// One line comparing h2hop over h2c with the better of [`PEERS`] (the
/// one with more calls per second): calls per second and proxy CPU per
/// call, each with h2hop's ratio to that peer; `None` without figures for
/// h2hop or for any peer.
pub fn summary(results: &Results) -> Option<String> {
    let h2hop = Kind::H2hopH2c.name();
    let rate = |system: &str| results.median(&GRPC_RATE, system);
    let cpu = |system: &str| results.median(&GRPC_CPU, system);
    let best = PEERS
        .iter()
        .map(|kind| kind.name())
        .filter_map(|peer| Some((peer, rate(peer)?)))
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    let (peer, peer_rate) = best;
    let (h2hop_rate, h2hop_cpu, peer_cpu) = (rate(h2hop)?, cpu(h2hop)?, cpu(peer)?);
    Some(format!(
        "gRPC unary: {h2hop} {h2hop_rate:.0} calls/s ({:.2}× {peer}'s {peer_rate:.0}), \
         {h2hop_cpu:.1} proxy CPU-µs per call ({:.2}× {peer}'s {peer_cpu:.1}).",
        h2hop_rate / peer_rate,
        h2hop_cpu / peer_cpu,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(results: &mut Results, system: &str, rate: f64, cpu: f64) {
        results.record(GRPC_RATE, system, Some(rate));
        results.record(GRPC_CPU, system, Some(cpu));
    }

    #[test]
    fn summary_compares_h2hop_with_the_faster_peer() {
        let mut results = Results::default();
        results.next_round();
        record(&mut results, "h2hop-h2c", 6000.0, 100.0);
        record(&mut results, "nghttpx", 4000.0, 150.0);
        record(&mut results, "haproxy", 5000.0, 120.0);
        let line = summary(&results).unwrap();
        assert!(line.contains("1.20× haproxy's 5000"), "{line}");
        assert!(line.contains("0.83× haproxy's 120.0"), "{line}");
    }

    #[test]
    fn summary_needs_h2hop_and_a_peer() {
        let mut results = Results::default();
        results.next_round();
        record(&mut results, "nghttpx", 4000.0, 150.0);
        assert_eq!(summary(&results), None);
        record(&mut results, "h2hop-h2c", 6000.0, 100.0);
        assert!(summary(&results).is_some());
    }

    #[test]
    fn smoke_fails_on_no_calls_or_any_failure() {
        let load = |calls, failures| GrpcLoad {
            calls,
            failures,
            seconds: 1.0,
        };
        assert!(smoke_check("s", &load(10, 0)).is_ok());
        assert!(smoke_check("s", &load(0, 0)).is_err());
        assert!(smoke_check("s", &load(10, 1)).is_err());
    }
}
