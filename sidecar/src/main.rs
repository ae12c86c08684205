//! `h2hop-sidecar` binary: flags → config → logging → bind → [`h2hop_sidecar::run`];
//! SIGTERM/SIGINT shut it down, SIGHUP reloads its certificates.

use anyhow::Context as _;
use clap::Parser as _;
use h2hop_sidecar::args::Args;
use tokio::net::TcpListener;
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
    let runtime =
        h2hop::runtime::build(args.workers.map(usize::from)).context("cannot start the runtime")?;
    runtime.block_on(serve(args, config))
}

async fn serve(args: Args, config: h2hop_sidecar::Config) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let listen = listener
        .local_addr()
        .context("reading the listen address")?;
    let admin = match args.admin_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (admin)"))?,
        ),
        None => None,
    };
    // SIGHUP reloads the TLS files; watched from before "ready" on.
    let reloads =
        h2hop::tls::reload::on_hangup(config.reloader()).context("cannot watch SIGHUP")?;
    tokio::spawn(reloads);
    let allow_front_sans = match args.allow_front_sans.as_slice() {
        [] => "any".to_owned(),
        sans => sans.join(","),
    };
    tracing::info!(%listen, app = %args.app, h2c = args.h2c, %allow_front_sans, "h2hop-sidecar ready");
    let shutdown = CancellationToken::new();
    tokio::spawn(h2hop::signals::on_signal(shutdown.clone()));
    let listeners = h2hop_sidecar::Listeners {
        hop: listener,
        admin,
    };
    h2hop_sidecar::run(config, listeners, shutdown).await;
    Ok(())
}
