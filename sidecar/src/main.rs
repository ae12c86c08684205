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
    let runtime =
        h2hop::runtime::build(args.workers.map(usize::from)).context("cannot start the runtime")?;
    runtime.block_on(serve(args, config))
}

async fn serve(args: Args, config: h2hop_sidecar::Config) -> anyhow::Result<()> {
    use h2hop::accept::{bind, bind_if_set, local_addr_text};
    let hop = bind(args.listen, "fronts").await?;
    let admin = bind_if_set(args.admin_listen, "admin").await?;
    let listen = local_addr_text(Some(&hop));
    // SIGHUP reloads the TLS files; watched from before "ready" on.
    let reloads =
        h2hop::tls::reload::on_hangup(config.reloader()).context("cannot watch SIGHUP")?;
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
    tracing::info!(%listen, %app, h2c = args.h2c, %allow_front_sans, "h2hop-sidecar ready");
    let shutdown = CancellationToken::new();
    tokio::spawn(h2hop::signals::on_signal(shutdown.clone()));
    let listeners = h2hop_sidecar::Listeners { hop, admin };
    h2hop_sidecar::run(config, listeners, shutdown).await;
    Ok(())
}
