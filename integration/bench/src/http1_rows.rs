//! The rows measured through the HTTP/1.1 echo app: WebSocket
//! throughput, round-trip latency, idle memory, handshakes in both close
//! patterns ([`Closing`]), and plain GETs, each with the proxies' CPU read around it.
//!
//! Input: a running system's [`Target`] and the run's settings. Output:
//! figures recorded into [`Results`]. Called by the bench binary once per
//! system per round.

use std::time::Duration;

use h2hop_integration::procstat;

use crate::meter::Meter;
use crate::report::{Figure, Results};
use crate::systems::Target;
use crate::workloads::{self, Closing};

/// A row that [`crate::targets`] also reads.
pub const THROUGHPUT: Figure = Figure {
    order: 1,
    label: "throughput, 1 WebSocket, 64 KiB messages",
    unit: "MB/s",
};
/// A row that [`crate::targets`] also reads.
pub const CPU_PER_GB: Figure = Figure {
    order: 2,
    label: "proxy CPU per GB echoed",
    unit: "CPU-s/GB",
};
/// A row that [`crate::targets`] also reads.
pub const LAT1_P50: Figure = Figure {
    order: 3,
    label: "round trip p50, 1 tunnel",
    unit: "µs",
};
/// A row that [`crate::targets`] also reads.
pub const LAT1_P99: Figure = Figure {
    order: 4,
    label: "round trip p99, 1 tunnel",
    unit: "µs",
};
const LAT1_P999: Figure = Figure {
    order: 5,
    label: "round trip p99.9, 1 tunnel",
    unit: "µs",
};
const LAT1_RATE: Figure = Figure {
    order: 6,
    label: "round trips, 1 tunnel",
    unit: "round trips/s",
};
/// A row that [`crate::targets`] also reads.
pub const LAT1_CPU: Figure = Figure {
    order: 7,
    label: "proxy CPU per round trip, 1 tunnel",
    unit: "CPU-µs",
};
const LAT1_KERNEL: Figure = Figure {
    order: 8,
    label: "of which in the kernel, per round trip",
    unit: "CPU-µs",
};
/// A row that [`crate::targets`] also reads.
pub const LAT16_P50: Figure = Figure {
    order: 9,
    label: "round trip p50, 16 tunnels",
    unit: "µs",
};
/// A row that [`crate::targets`] also reads.
pub const LAT16_P99: Figure = Figure {
    order: 10,
    label: "round trip p99, 16 tunnels",
    unit: "µs",
};
const LAT16_P999: Figure = Figure {
    order: 11,
    label: "round trip p99.9, 16 tunnels",
    unit: "µs",
};
const LAT16_RATE: Figure = Figure {
    order: 12,
    label: "round trips, 16 tunnels",
    unit: "round trips/s",
};
/// A row that [`crate::targets`] also reads.
pub const LAT16_CPU: Figure = Figure {
    order: 13,
    label: "proxy CPU per round trip, 16 tunnels",
    unit: "CPU-µs",
};
/// A row that [`crate::targets`] also reads.
pub const IDLE_KIB: Figure = Figure {
    order: 14,
    label: "memory per idle tunnel, front + sidecar",
    unit: "KiB",
};
const IDLE_ECHO: Figure = Figure {
    order: 15,
    label: "idle tunnels still echoing after the hold",
    unit: "tunnels",
};
/// The figures of one handshake workload, in table order.
#[derive(Debug, Clone, Copy)]
pub struct HandshakeFigures {
    /// Completed cycles per second.
    pub rate: Figure,
    /// Failed cycles.
    pub failures: Figure,
    /// Proxy CPU (user + kernel) per completed cycle.
    pub cpu: Figure,
    /// The kernel's part of [`HandshakeFigures::cpu`].
    pub kernel: Figure,
    /// Client and app CPU per completed cycle.
    pub load: Figure,
}

/// The `handshakes` workload: [`Closing::UntilEof`].
pub const HANDSHAKES: HandshakeFigures = HandshakeFigures {
    rate: Figure {
        order: 16,
        label: "handshakes (open, echo, close until EOF), 32 in flight",
        unit: "conn/s",
    },
    failures: Figure {
        order: 17,
        label: "handshake failures",
        unit: "count",
    },
    cpu: Figure {
        order: 18,
        label: "proxy CPU per handshake",
        unit: "CPU-µs",
    },
    kernel: Figure {
        order: 19,
        label: "of which in the kernel, per handshake",
        unit: "CPU-µs",
    },
    load: Figure {
        order: 20,
        label: "client + app CPU per handshake",
        unit: "CPU-µs",
    },
};

/// The `handshakes-close` workload: [`Closing::OnCloseFrame`].
pub const HANDSHAKES_CLOSE: HandshakeFigures = HandshakeFigures {
    rate: Figure {
        order: 21,
        label: "handshakes (open, echo, close until Close frame), 32 in flight",
        unit: "conn/s",
    },
    failures: Figure {
        order: 22,
        label: "handshake failures, close until Close frame",
        unit: "count",
    },
    cpu: Figure {
        order: 23,
        label: "proxy CPU per handshake, close until Close frame",
        unit: "CPU-µs",
    },
    kernel: Figure {
        order: 24,
        label: "of which in the kernel, per handshake, close until Close frame",
        unit: "CPU-µs",
    },
    load: Figure {
        order: 25,
        label: "client + app CPU per handshake, close until Close frame",
        unit: "CPU-µs",
    },
};

/// Plain GETs per second.
pub const PLAIN_RATE: Figure = Figure {
    order: 26,
    label: "plain GETs, 8 keep-alive connections",
    unit: "req/s",
};
const PLAIN_P99: Figure = Figure {
    order: 27,
    label: "plain GET p99",
    unit: "µs",
};
/// Proxy CPU (user + kernel) per plain GET.
pub const PLAIN_CPU: Figure = Figure {
    order: 28,
    label: "proxy CPU per plain GET",
    unit: "CPU-µs",
};
const PLAIN_KERNEL: Figure = Figure {
    order: 29,
    label: "of which in the kernel, per plain GET",
    unit: "CPU-µs",
};
/// Proxy user-space CPU per plain GET (the plain-GET CPU target).
pub const PLAIN_USER: Figure = Figure {
    order: 30,
    label: "of which in user space, per plain GET",
    unit: "CPU-µs",
};
const PLAIN_LOAD: Figure = Figure {
    order: 31,
    label: "client + app CPU per plain GET",
    unit: "CPU-µs",
};

/// How the rows are run.
#[derive(Debug, Clone, Copy)]
pub struct RowSettings<'a> {
    /// How long each timed workload runs.
    pub duration: Duration,
    /// The workloads wanted (`--workloads`).
    pub workloads: &'a [String],
    /// Idle WebSockets held open for the memory figure.
    pub idle: usize,
}

/// Runs every wanted workload against `target` and records its figures;
/// `load_pids` are the client's and the app's processes; `idle` says
/// whether the idle-memory workload runs.
pub async fn measure(
    target: &Target,
    load_pids: &[u32],
    idle: bool,
    settings: RowSettings<'_>,
    results: &mut Results,
) -> anyhow::Result<()> {
    let name = target.name.as_str();
    let duration = settings.duration;
    let proxied = !target.proxy_pids.is_empty();
    let meter = || Meter::start(&target.proxy_pids, load_pids);
    let wanted = |workload: &str| settings.workloads.iter().any(|w| w == workload);

    if wanted("throughput") {
        let meter = meter();
        let throughput = workloads::throughput(target.addr, duration).await?;
        let (proxies, _) = meter.spent();
        results.record(THROUGHPUT, name, Some(throughput.mb_per_s()));
        let gigabytes = throughput.bytes_each_way as f64 / 1e9;
        results.record(CPU_PER_GB, name, proxied.then(|| proxies.total / gigabytes));
    }

    let latencies = if wanted("latency") {
        vec![
            (
                1,
                [LAT1_P50, LAT1_P99, LAT1_P999, LAT1_RATE, LAT1_CPU],
                Some(LAT1_KERNEL),
            ),
            (
                16,
                [LAT16_P50, LAT16_P99, LAT16_P999, LAT16_RATE, LAT16_CPU],
                None,
            ),
        ]
    } else {
        Vec::new()
    };
    for (tunnels, figures, kernel_figure) in latencies {
        let meter = meter();
        let latency = workloads::latency(target.addr, tunnels, duration).await?;
        let (proxies, _) = meter.spent();
        let [p50, p99, p999, rate, per] = figures;
        results.record(p50, name, Some(latency.p50_us));
        results.record(p99, name, Some(latency.p99_us));
        results.record(p999, name, Some(latency.p999_us));
        results.record(rate, name, Some(latency.round_trips_per_s()));
        let per_trip = 1e6 / latency.round_trips.max(1) as f64;
        results.record(per, name, proxied.then_some(proxies.total * per_trip));
        if let Some(figure) = kernel_figure {
            results.record(figure, name, proxied.then_some(proxies.kernel * per_trip));
        }
    }

    if wanted("memory") && idle {
        let rss_before = procstat::total_rss_kib(&target.proxy_pids).unwrap_or(0);
        let mut idle = workloads::IdleSet::open(target.addr, settings.idle).await?;
        // Let lazily freed buffers settle before reading memory.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_held = procstat::total_rss_kib(&target.proxy_pids).unwrap_or(0);
        let echoed = idle.echo_all().await?;
        idle.close().await;
        let per_tunnel = rss_held.saturating_sub(rss_before) as f64 / settings.idle.max(1) as f64;
        results.record(IDLE_KIB, name, proxied.then_some(per_tunnel));
        results.record(IDLE_ECHO, name, Some(echoed as f64));
    }

    for (workload, closing, figures) in [
        ("handshakes", Closing::UntilEof, HANDSHAKES),
        ("handshakes-close", Closing::OnCloseFrame, HANDSHAKES_CLOSE),
    ] {
        if !wanted(workload) {
            continue;
        }
        let meter = meter();
        let handshakes = workloads::handshakes(target.addr, 32, duration, closing).await?;
        let (proxies, load) = meter.spent();
        results.record(figures.rate, name, Some(handshakes.per_s()));
        let failures = handshakes.failures as f64;
        results.record(figures.failures, name, Some(failures));
        let per = 1e6 / handshakes.completed.max(1) as f64;
        results.record(figures.load, name, Some(load.total * per));
        results.record(figures.cpu, name, proxied.then_some(proxies.total * per));
        let kernel = proxied.then_some(proxies.kernel * per);
        results.record(figures.kernel, name, kernel);
    }

    if wanted("plain") {
        let meter = meter();
        let plain = workloads::plain(target.addr, 8, duration).await?;
        let (proxies, load) = meter.spent();
        results.record(PLAIN_RATE, name, Some(plain.per_s()));
        results.record(PLAIN_P99, name, Some(plain.p99_us));
        let per = 1e6 / plain.requests.max(1) as f64;
        results.record(PLAIN_LOAD, name, Some(load.total * per));
        results.record(PLAIN_CPU, name, proxied.then_some(proxies.total * per));
        results.record(PLAIN_KERNEL, name, proxied.then_some(proxies.kernel * per));
        let user = proxies.total - proxies.kernel;
        results.record(PLAIN_USER, name, proxied.then_some(user * per));
    }
    Ok(())
}
