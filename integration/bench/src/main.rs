//! `h2hop-bench`: one run, same machine, same workloads through direct,
//! the h2hop, nghttpx and HAProxy pairs (each over h2c and over mTLS), and
//! h2hop's TCP tunnel beside its floor, the TCP relay; a Markdown
//! table and an SVG chart of the ratios to direct go to `--out`, so that
//! ratios can be compared.
//!
//! - [`systems`]: starts each system under test as child processes
//!   (app, and the proxies in front of it) and says where clients connect;
//! - [`workloads`]: the load generator: throughput, latency, idle memory,
//!   handshakes, plain requests, gRPC unary calls (h2load);
//! - [`http1_rows`]: the rows measured through the HTTP/1.1 echo app;
//! - [`grpc_row`]: the gRPC unary row, each system in front of the gRPC
//!   app ([`grpc_app`], framing in [`grpc_frame`]);
//! - [`meter`] and [`h2hop_integration::procstat`]: CPU time and memory
//!   of the proxy processes, from `/proc`;
//! - [`report`]: medians over rounds, ratios to direct, a Markdown table and
//!   an SVG chart;
//! - [`crypto_floor`]: what AES-GCM alone costs per GB echoed over the mTLS
//!   hop on this machine;
//! - [`targets`]: the performance targets, met or not, from the same run;
//! - [`scaling`]: `--scaling`, CPU per handshake and per GET with one and
//!   two worker threads per proxy.
//!
//! `h2hop-bench app --listen ADDR` runs the echo app as its own process (the
//! benchmark starts it so; it is also the "direct" system);
//! `h2hop-bench grpc-app --listen ADDR` runs the gRPC app so.

mod crypto_floor;
mod grpc_app;
mod grpc_frame;
mod grpc_row;
mod http1_rows;
mod meter;
mod report;
mod scaling;
mod systems;
mod targets;
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

use report::Results;
use systems::{Binaries, Kind, Running, Traffic};

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
    /// nghttpx, nghttpx-mtls, haproxy, haproxy-mtls (the -mtls pairs carry
    /// the middle hop as HTTP/2 over TLS with a verified client
    /// certificate), tcp-relay (two HAProxy processes in TCP mode: not a
    /// peer but the floor of any two-process chain), h2hop-tcp and
    /// h2hop-tcp-mtls (the h2hop pair as a TCP tunnel: a `[[tcp]]`
    /// listener at the front, one CONNECT stream per client connection,
    /// held against tcp-relay), h2hop-connect-tcp (the same over h2c in
    /// the connect-tcp form: extended CONNECT, bytes in capsules).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "direct,h2hop-h2c,h2hop-mtls,nghttpx,nghttpx-mtls,haproxy,haproxy-mtls,tcp-relay,h2hop-tcp,h2hop-tcp-mtls,h2hop-connect-tcp"
    )]
    systems: Vec<String>,
    /// Worker threads of every proxy process (and of the app).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Idle WebSockets held open for the memory figure.
    #[arg(long, default_value_t = 10_000)]
    idle: usize,
    /// Workloads to run, comma-separated: throughput, latency, memory,
    /// handshakes (the client reads after the Close reply until the proxy
    /// closes TCP), handshakes-close (the client drops the socket once the
    /// proxy's Close frame arrived), plain, grpc (h2load's gRPC unary calls
    /// over h2c).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "throughput,latency,memory,handshakes,handshakes-close,plain,grpc",
        value_parser = ["throughput", "latency", "memory", "handshakes", "handshakes-close", "plain", "grpc"]
    )]
    workloads: Vec<String>,
    /// Also measure h2hop-h2c, nghttpx and haproxy with 1 and with 2 worker
    /// threads per proxy (handshakes and plain) and print the ratios, in a
    /// section of their own. Not in smoke mode.
    #[arg(long)]
    scaling: bool,
    /// A few seconds per workload, direct, h2hop over h2c and h2hop's TCP
    /// tunnel over h2c only: proves the benchmark runs (CI), measures
    /// nothing worth quoting.
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
        /// handshakes or handshakes-close (32 in flight), plain (8
        /// connections), latency (1 tunnel) or grpc (h2load; the system
        /// must carry gRPC).
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
        args.systems = vec!["direct".into(), "h2hop-h2c".into(), "h2hop-tcp".into()];
        args.scaling = false;
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
        "handshakes" | "handshakes-close" => {
            let closing = if workload == "handshakes" {
                workloads::Closing::UntilEof
            } else {
                workloads::Closing::OnCloseFrame
            };
            let done = workloads::handshakes(addr, 32, duration, closing).await?;
            format!(
                "{workload}: {} completed, {} failed, {:.0}/s",
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
        other => bail!(
            "unknown workload {other:?}: handshakes, handshakes-close, plain, latency or grpc"
        ),
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
    let floors = if args.workloads.iter().any(|w| w == "throughput") {
        crypto_floors(args.smoke).await?
    } else {
        Vec::new()
    };
    let mut results = Results::default();
    let mut scaling = args.scaling.then(Results::default);
    let mut evidence = Vec::new();
    let mut notes = Vec::new();
    for round in 1..=args.rounds {
        results.next_round();
        if let Some(scaling) = &mut scaling {
            scaling.next_round();
        }
        for &kind in &kinds {
            say(&format!("round {round}/{}: {}", args.rounds, kind.name()))?;
            if http1 {
                let running =
                    systems::start(kind, Traffic::Http1, app_addr, &bins, args.workers).await?;
                let idle = kind.holds_idle_tunnels();
                let settings = http1_rows::RowSettings {
                    duration: Duration::from_secs_f64(args.seconds),
                    workloads: &args.workloads,
                    idle: args.idle,
                };
                let target = &running.target;
                http1_rows::measure(target, &load_pids, idle, settings, &mut results).await?;
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
        if let Some(scaling) = &mut scaling {
            say(&format!("round {round}/{}: worker scaling", args.rounds))?;
            let duration = Duration::from_secs_f64(args.seconds);
            scaling::measure(app_addr, &bins, &load_pids, duration, scaling).await?;
        }
    }
    drop(app);
    drop(grpc);
    let report = Report {
        results: &results,
        scaling: scaling.as_ref(),
        floors: &floors,
        evidence: &evidence,
        notes: &notes,
    };
    write_report(&args, &report)
}

/// The crypto floors of both AES-GCM suites (h2hop's first, the one the
/// mTLS target uses), measured on a blocking thread: 0.5 s of CPU per
/// step, 50 ms in smoke mode.
async fn crypto_floors(smoke: bool) -> anyhow::Result<Vec<crypto_floor::CryptoFloor>> {
    let min_cpu = Duration::from_millis(if smoke { 50 } else { 500 });
    tokio::task::spawn_blocking(move || {
        [
            crypto_floor::Suite::Aes128Gcm,
            crypto_floor::Suite::Aes256Gcm,
        ]
        .into_iter()
        .map(|suite| crypto_floor::measure(suite, min_cpu))
        .collect()
    })
    .await
    .context("crypto floor thread panicked")?
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

/// What a run measured, for [`write_report`].
struct Report<'a> {
    /// The main table.
    results: &'a Results,
    /// `--scaling`'s figures.
    scaling: Option<&'a Results>,
    /// Crypto floors, h2hop's suite first.
    floors: &'a [crypto_floor::CryptoFloor],
    /// Middle-hop log lines per system.
    evidence: &'a [(&'a str, Vec<String>)],
    /// Notes from the gRPC rows.
    notes: &'a [String],
}

/// Writes results.md and ratios.svg into `--out`, and the table to stdout.
fn write_report(args: &Args, report: &Report<'_>) -> anyhow::Result<()> {
    let Report {
        results,
        scaling,
        floors,
        evidence,
        notes,
    } = *report;
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
    for floor in floors {
        text.push_str(&format!("\n{}.\n", floor.line()));
    }
    text.push_str(&targets::section(results, floors.first()));
    if let Some(scaling) = scaling {
        text.push_str(&scaling::section(scaling));
        text.push('\n');
    }
    for note in notes {
        text.push_str(&format!("\n- {}\n", note.replace('`', "'")));
    }
    if !evidence.is_empty() {
        text.push_str(
            "\nThe middle hop is HTTP/2 extended CONNECT (for h2hop-tcp, CONNECT to the app's host:port, RFC 9113 §8.5; for h2hop-connect-tcp, extended CONNECT with :protocol connect-tcp), and for the -mtls peers TLS with a verified client certificate (sidecar-side logs, first round):\n\n",
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
