//! `h2hop-bench`: one run, same machine, same workloads through direct,
//! h2hop (h2c and mTLS), an nghttpx pair and an HAProxy pair; a Markdown
//! table and an SVG chart of the ratios to direct go to `--out`, so that
//! ratios can be compared.
//!
//! - [`systems`]: starts each system under test as child processes
//!   (app, and the proxies in front of it) and says where clients connect;
//! - [`workloads`]: the load generator: throughput, latency, idle memory,
//!   handshakes, plain requests, gRPC unary calls (h2load);
//! - [`grpc_row`]: the gRPC unary row, each system in front of the gRPC
//!   app ([`grpc_app`], framing in [`grpc_frame`]);
//! - [`meter`] and [`procstat`] (from the integration library): CPU time
//!   and memory of the proxy processes, from `/proc`;
//! - [`report`]: medians over rounds, ratios to direct, a Markdown table and
//!   an SVG chart.
//!
//! `h2hop-bench app --listen ADDR` runs the echo app as its own process (the
//! benchmark starts it so; it is also the "direct" system);
//! `h2hop-bench grpc-app --listen ADDR` runs the gRPC app so.

mod grpc_app;
mod grpc_frame;
mod grpc_row;
mod meter;
mod report;
mod systems;
mod workloads;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser as _;
use h2hop_integration::app::TestApp;
use h2hop_integration::process::{Output, Process};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use h2hop_integration::procstat;
use meter::Meter;
use report::{Figure, Results};
use systems::{Binaries, Kind, Running, Target, Traffic};

/// Benchmarks h2hop against direct and peer proxy pairs on loopback.
#[derive(Debug, clap::Parser)]
#[command(name = "h2hop-bench", version)]
struct Args {
    /// Run the echo app only, on this address, until killed.
    #[command(subcommand)]
    app: Option<AppCommand>,
    /// Rounds; every figure is the median over them.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds per timed workload.
    #[arg(long, default_value_t = 5.0, value_parser = positive_seconds)]
    seconds: f64,
    /// Systems to measure, comma-separated: direct, h2hop-h2c, h2hop-mtls,
    /// nghttpx, haproxy, tcp-relay (two HAProxy processes in TCP mode: not
    /// a peer but the floor of any two-process chain).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "direct,h2hop-h2c,h2hop-mtls,nghttpx,haproxy,tcp-relay"
    )]
    systems: Vec<String>,
    /// Worker threads of every proxy process (and of the app).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Idle WebSockets held open for the memory figure.
    #[arg(long, default_value_t = 10_000)]
    idle: usize,
    /// Workloads to run, comma-separated: throughput, latency, memory,
    /// handshakes, plain, grpc (h2load's gRPC unary calls over h2c).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "throughput,latency,memory,handshakes,plain,grpc",
        value_parser = ["throughput", "latency", "memory", "handshakes", "plain", "grpc"]
    )]
    workloads: Vec<String>,
    /// A few seconds per workload, h2hop over h2c and direct only: proves the
    /// benchmark runs (CI), measures nothing worth quoting.
    #[arg(long)]
    smoke: bool,
    /// Folder for results.md and ratios.svg.
    #[arg(long, default_value = "integration/bench/results")]
    out: PathBuf,
}

#[derive(Debug, clap::Subcommand)]
enum AppCommand {
    /// Serve the echo app (WebSocket echo at /ws, GET /bytes/N, ...).
    App {
        /// Address to listen on; port 0 picks one, printed as `listening ADDR`.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Runtime worker threads.
        #[arg(long, default_value_t = 1)]
        workers: usize,
    },
    /// Serve the gRPC app (h2c; answers every unary call with its message
    /// and `grpc-status: 0`).
    GrpcApp {
        /// Address to listen on; port 0 picks one, printed as `listening ADDR`.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Runtime worker threads.
        #[arg(long, default_value_t = 1)]
        workers: usize,
    },
    /// Run one workload against a system already running at `--addr` and
    /// print what it measured: for profiling a pair started by hand (under
    /// valgrind or perf, say).
    Drive {
        /// Where the system accepts clients.
        #[arg(long)]
        addr: SocketAddr,
        /// handshakes (32 in flight), plain (8 connections), latency (1
        /// tunnel) or grpc (h2load; the system must carry gRPC).
        #[arg(long)]
        workload: String,
        /// How long to run it, in seconds.
        #[arg(long, default_value_t = 5.0, value_parser = positive_seconds)]
        seconds: f64,
    },
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    match args.app.take() {
        Some(AppCommand::App { listen, workers }) => {
            return h2hop::runtime::build(Some(workers))?.block_on(serve_app(listen));
        }
        Some(AppCommand::GrpcApp { listen, workers }) => {
            return h2hop::runtime::build(Some(workers))?.block_on(serve_grpc_app(listen));
        }
        Some(AppCommand::Drive {
            addr,
            workload,
            seconds,
        }) => {
            let duration = Duration::from_secs_f64(seconds);
            return h2hop::runtime::build(Some(1))?.block_on(drive(addr, &workload, duration));
        }
        None => {}
    }
    if args.smoke {
        args.rounds = 1;
        args.seconds = args.seconds.min(1.0);
        args.idle = args.idle.min(200);
        args.systems = vec!["direct".into(), "h2hop-h2c".into()];
    }
    raise_descriptor_limit(args.idle)?;
    tokio::runtime::Runtime::new()?.block_on(bench(args))
}

/// A workload's length in seconds: more than 0, at most a day.
fn positive_seconds(text: &str) -> Result<f64, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if seconds > 0.0 && seconds <= 86_400.0 {
        Ok(seconds)
    } else {
        Err("must be more than 0 and at most 86400".into())
    }
}

/// Runs one workload against `addr` and prints its figures.
async fn drive(addr: SocketAddr, workload: &str, duration: Duration) -> anyhow::Result<()> {
    let line = match workload {
        "handshakes" => {
            let done = workloads::handshakes(addr, 32, duration).await?;
            format!(
                "handshakes: {} completed, {} failed, {:.0}/s",
                done.completed,
                done.failures,
                done.per_s()
            )
        }
        "plain" => {
            let done = workloads::plain(addr, 8, duration).await?;
            format!(
                "plain: {} requests, {} failed, {:.0}/s",
                done.requests,
                done.failures,
                done.per_s()
            )
        }
        "latency" => {
            let done = workloads::latency(addr, 1, duration).await?;
            format!(
                "latency: {} round trips, p50 {} µs, p99 {} µs",
                done.round_trips, done.p50_us, done.p99_us
            )
        }
        "grpc" => {
            workloads::check_call(addr).await?;
            let scratch = h2hop_integration::scratch::Scratch::create("grpc-drive")?;
            let done = workloads::grpc_load(addr, duration, scratch.dir()).await?;
            format!(
                "grpc: {} calls, {} failed, {:.0}/s",
                done.calls,
                done.failures,
                done.per_s()
            )
        }
        other => bail!("unknown workload {other:?}: handshakes, plain, latency or grpc"),
    };
    say(&line)
}

/// The app process: serves until killed.
async fn serve_app(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    let app = TestApp::spawn_unrecorded(listener, CancellationToken::new())?;
    writeln!(std::io::stdout().lock(), "listening {}", app.addr)?;
    std::future::pending::<()>().await;
    Ok(())
}

/// The gRPC app process: serves until killed.
async fn serve_grpc_app(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    writeln!(
        std::io::stdout().lock(),
        "listening {}",
        listener.local_addr()?
    )?;
    grpc_app::serve(listener).await
}

/// Each idle tunnel costs about six descriptors across client, proxies and app.
fn raise_descriptor_limit(idle: usize) -> anyhow::Result<()> {
    let want = (idle as u64 * 6 + 4096).max(65_536);
    let (_, hard) = rlimit::Resource::NOFILE.get()?;
    let soft = want.min(hard);
    rlimit::Resource::NOFILE.set(soft, hard)?;
    if soft < want {
        say(&format!(
            "warning: descriptor limit {soft} is below the {want} wanted"
        ))?;
    }
    Ok(())
}

async fn bench(args: Args) -> anyhow::Result<()> {
    let kinds: Vec<Kind> = args
        .systems
        .iter()
        .map(|name| Kind::parse(name).with_context(|| format!("unknown system {name:?}")))
        .collect::<anyhow::Result<_>>()?;
    if kinds.first() != Some(&Kind::Direct) {
        bail!("--systems must start with direct: every ratio is taken against it");
    }
    let bins = Binaries::beside_current_exe()?;
    let (app, app_addr) = start_app("app", args.workers).await?;
    // The load generator (this process) and the app: their CPU per
    // handshake or request bounds what any proxy pair can reach on a
    // machine whose cores they share.
    let load_pids = [std::process::id(), app.pid()];
    let http1 = args.workloads.iter().any(|w| w != "grpc");
    let grpc = if args.workloads.iter().any(|w| w == "grpc") {
        Some(start_app("grpc-app", args.workers).await?)
    } else {
        None
    };
    let grpc_settings = grpc_row::RowSettings {
        duration: Duration::from_secs_f64(args.seconds),
        workers: args.workers,
        smoke: args.smoke,
    };
    let mut results = Results::default();
    let mut evidence = Vec::new();
    let mut notes = Vec::new();
    for round in 1..=args.rounds {
        results.next_round();
        for &kind in &kinds {
            say(&format!("round {round}/{}: {}", args.rounds, kind.name()))?;
            if http1 {
                let running =
                    systems::start(kind, Traffic::Http1, app_addr, &bins, args.workers).await?;
                let idle = kind.holds_idle_tunnels();
                measure(&running.target, &load_pids, idle, &args, &mut results).await?;
                if round == 1 && kind.has_http2_hop() {
                    evidence.push((kind.name(), middle_hop(&running)));
                }
            }
            if let Some((grpc_app, grpc_addr)) = &grpc {
                let load_pids = [std::process::id(), grpc_app.pid()];
                let (addr, settings) = (*grpc_addr, grpc_settings);
                let row = grpc_row::measure(kind, addr, &bins, settings, &load_pids, &mut results);
                if let Some(note) = row.await? {
                    say(&note)?;
                    notes.push(format!("round {round}: {note}"));
                }
            }
        }
    }
    drop(app);
    drop(grpc);
    write_report(&args, &results, &evidence, &notes)
}

/// Starts an app process (`app` or `grpc-app`, a subcommand of this
/// binary) and reads the address it printed.
async fn start_app(subcommand: &str, workers: usize) -> anyhow::Result<(Process, SocketAddr)> {
    let exe = std::env::current_exe()?;
    let workers = workers.to_string();
    let args = [subcommand, "--listen", "127.0.0.1:0", "--workers", &workers];
    let mut command = std::process::Command::new(exe);
    command.args(args);
    let child = Process::spawn(subcommand, &mut command, Output::Lines)?;
    let line = child
        .wait_for_line(&["listening "], Duration::from_secs(10))
        .await?;
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .context("app said something else")?
        .parse()?;
    Ok((child, addr))
}

/// The first evidence lines, or the reason there are none.
fn middle_hop(running: &Running) -> Vec<String> {
    match running.middle_hop_evidence() {
        Ok(lines) => lines.into_iter().take(2).collect(),
        Err(err) => vec![format!("no evidence: {err:#}")],
    }
}

const THROUGHPUT: Figure = Figure {
    order: 1,
    label: "throughput, 1 WebSocket, 64 KiB messages",
    unit: "MB/s",
};
const CPU_PER_GB: Figure = Figure {
    order: 2,
    label: "proxy CPU per GB echoed",
    unit: "CPU-s/GB",
};
const LAT1_P50: Figure = Figure {
    order: 3,
    label: "round trip p50, 1 tunnel",
    unit: "µs",
};
const LAT1_P99: Figure = Figure {
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
const LAT1_CPU: Figure = Figure {
    order: 7,
    label: "proxy CPU per round trip, 1 tunnel",
    unit: "CPU-µs",
};
const LAT1_KERNEL: Figure = Figure {
    order: 8,
    label: "of which in the kernel, per round trip",
    unit: "CPU-µs",
};
const LAT16_P50: Figure = Figure {
    order: 9,
    label: "round trip p50, 16 tunnels",
    unit: "µs",
};
const LAT16_P99: Figure = Figure {
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
const LAT16_CPU: Figure = Figure {
    order: 13,
    label: "proxy CPU per round trip, 16 tunnels",
    unit: "CPU-µs",
};
const IDLE_KIB: Figure = Figure {
    order: 14,
    label: "memory per idle tunnel, front + sidecar",
    unit: "KiB",
};
const IDLE_ECHO: Figure = Figure {
    order: 15,
    label: "idle tunnels still echoing after the hold",
    unit: "tunnels",
};
const HANDSHAKES: Figure = Figure {
    order: 16,
    label: "handshakes (open, echo, close), 32 in flight",
    unit: "conn/s",
};
const HANDSHAKE_FAIL: Figure = Figure {
    order: 17,
    label: "handshake failures",
    unit: "count",
};
const HANDSHAKE_CPU: Figure = Figure {
    order: 18,
    label: "proxy CPU per handshake",
    unit: "CPU-µs",
};
const HANDSHAKE_LOAD: Figure = Figure {
    order: 20,
    label: "client + app CPU per handshake",
    unit: "CPU-µs",
};
const HANDSHAKE_KERNEL: Figure = Figure {
    order: 19,
    label: "of which in the kernel, per handshake",
    unit: "CPU-µs",
};
const PLAIN_RATE: Figure = Figure {
    order: 21,
    label: "plain GETs, 8 keep-alive connections",
    unit: "req/s",
};
const PLAIN_P99: Figure = Figure {
    order: 22,
    label: "plain GET p99",
    unit: "µs",
};
const PLAIN_CPU: Figure = Figure {
    order: 23,
    label: "proxy CPU per plain GET",
    unit: "CPU-µs",
};
const PLAIN_LOAD: Figure = Figure {
    order: 25,
    label: "client + app CPU per plain GET",
    unit: "CPU-µs",
};
const PLAIN_KERNEL: Figure = Figure {
    order: 24,
    label: "of which in the kernel, per plain GET",
    unit: "CPU-µs",
};

/// Runs every workload against `target` and records its figures;
/// `load_pids` are the client's and the app's processes; `idle` says
/// whether the idle-memory workload runs.
async fn measure(
    target: &Target,
    load_pids: &[u32],
    idle: bool,
    args: &Args,
    results: &mut Results,
) -> anyhow::Result<()> {
    let name = target.name.as_str();
    let duration = Duration::from_secs_f64(args.seconds);
    let proxied = !target.proxy_pids.is_empty();
    let meter = || Meter::start(&target.proxy_pids, load_pids);
    let wanted = |workload: &str| args.workloads.iter().any(|w| w == workload);

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
        let mut idle = workloads::IdleSet::open(target.addr, args.idle).await?;
        // Let lazily freed buffers settle before reading memory.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_held = procstat::total_rss_kib(&target.proxy_pids).unwrap_or(0);
        let echoed = idle.echo_all().await?;
        idle.close().await;
        let per_tunnel = rss_held.saturating_sub(rss_before) as f64 / args.idle.max(1) as f64;
        results.record(IDLE_KIB, name, proxied.then_some(per_tunnel));
        results.record(IDLE_ECHO, name, Some(echoed as f64));
    }

    if wanted("handshakes") {
        let meter = meter();
        let handshakes = workloads::handshakes(target.addr, 32, duration).await?;
        let (proxies, load) = meter.spent();
        results.record(HANDSHAKES, name, Some(handshakes.per_s()));
        results.record(HANDSHAKE_FAIL, name, Some(handshakes.failures as f64));
        let per = 1e6 / handshakes.completed.max(1) as f64;
        results.record(HANDSHAKE_LOAD, name, Some(load.total * per));
        results.record(HANDSHAKE_CPU, name, proxied.then_some(proxies.total * per));
        results.record(
            HANDSHAKE_KERNEL,
            name,
            proxied.then_some(proxies.kernel * per),
        );
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
    }
    Ok(())
}

/// Writes results.md and ratios.svg into `--out`, and the table to stdout.
fn write_report(
    args: &Args,
    results: &Results,
    evidence: &[(&str, Vec<String>)],
    notes: &[String],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let heading = format!(
        "## h2hop-bench, {rounds} round(s) of {seconds} s per workload, {workers} worker thread(s) per process{smoke}",
        rounds = args.rounds,
        seconds = args.seconds,
        workers = args.workers,
        smoke = if args.smoke {
            " (smoke mode: not a measurement)"
        } else {
            ""
        },
    );
    let mut text = results.markdown(&heading);
    text.push_str("\nEach cell: the median over rounds, and in brackets the median of the per-round ratios to direct.\n");
    if let Some(line) = grpc_row::summary(results) {
        text.push_str(&format!("\n{line}\n"));
    }
    for note in notes {
        text.push_str(&format!("\n- {}\n", note.replace('`', "'")));
    }
    if !evidence.is_empty() {
        text.push_str(
            "\nThe middle hop is HTTP/2 extended CONNECT (sidecar-side logs, first round):\n\n",
        );
        for (system, lines) in evidence {
            for line in lines {
                text.push_str(&format!("- {system}: `{}`\n", line.replace('`', "'")));
            }
        }
    }
    std::fs::write(args.out.join("results.md"), &text)?;
    std::fs::write(
        args.out.join("ratios.svg"),
        results.svg("ratio to direct (median of per-round ratios)"),
    )?;
    say(&text)
}

fn say(line: &str) -> anyhow::Result<()> {
    writeln!(std::io::stdout().lock(), "{line}").context("cannot write to stdout")
}
