//! `h2hop-sidecar` binary: flags → config → logging → bind → [`h2hop_sidecar::run`];
//! SIGTERM/SIGINT shut it down, SIGHUP reloads its certificates.

use anyhow::Context as _;
use clap::Parser as _;
use h2hop_sidecar::args::Args;
use tokio_util::sync::CancellationToken;

/// mimalloc instead of glibc's malloc: tasks, buffers and streams come and
/// go with every connection, and glibc served most of them from its slow
/// paths (aligned task cells, sizes above its per-thread cache).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Held to the end of main: dropping it flushes the last log lines.
    let _log = h2hop::telemetry::init(&args.log).context("cannot start logging")?;
    let config = args.config().context("invalid configuration")?;
    if args.check_config {
        use std::io::Write as _;
        std::io::stdout()
            .lock()
            .write_all(config.apps_summary().as_bytes())?;
        return Ok(());
    }
    let workers = h2hop::runtime::worker_count(args.workers);
    let hop = h2hop::accept::bind_each(args.listen, "fronts", workers)?;
    let runtime = h2hop::runtime::main_thread().context("cannot start the runtime")?;
    runtime.block_on(serve(args, config, hop))
}

/// Worker 0, on the main thread, with the process's signals, reloads and
/// admin listener; it starts the other workers, one per listener of `hop`
/// after the first.
async fn serve(
    args: Args,
    config: h2hop_sidecar::Config,
    hop: Vec<std::net::TcpListener>,
) -> anyhow::Result<()> {
    use h2hop::accept::{bind_if_set, first_addr_text, local_addr_text};
    let listen = first_addr_text(&hop);
    let mut hop = hop.into_iter();
    let first = hop.next().context("no listener bound")?;
    let first = tokio::net::TcpListener::from_std(first).context("cannot listen")?;
    let admin = bind_if_set(args.admin_listen, "admin").await?;
    // SIGHUP reloads the TLS files; watched from before "ready" on.
    let reloads = h2hop::tls::reload::on_hangup(config.reloader(), config.metrics.clone())
        .context("cannot watch SIGHUP")?;
    tokio::spawn(reloads);
    let allow_front_sans = match args.allow_front_sans.as_slice() {
        [] => "any".to_owned(),
        sans => sans.join(","),
    };
    let app = match config.apps.as_slice() {
        [] => args.app.to_string(),
        apps => apps
            .iter()
            .map(|app| app.name.as_ref())
            .collect::<Vec<_>>()
            .join(","),
    };
    let workers = hop.len() + 1;
    let admin_listen = local_addr_text(admin.as_ref());
    let tcp_targets = config.tcp_allow.entries().len();
    tracing::info!(%listen, admin = %admin_listen, %app, h2c = args.h2c, %allow_front_sans, tcp_targets, workers, "h2hop-sidecar ready");
    let shutdown = CancellationToken::new();
    tokio::spawn(h2hop::signals::on_signal(shutdown.clone()));
    let listeners = h2hop_sidecar::Listeners { hop: first, admin };
    h2hop_sidecar::run_workers(config, listeners, hop.collect(), shutdown)
        .await
        .context("cannot start the workers")
}
