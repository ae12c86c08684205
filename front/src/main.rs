//! `h2hop-front` binary: flags → config → logging → bind → [`h2hop_front::run`];
//! SIGTERM/SIGINT shut it down, SIGHUP reloads its certificates.

use anyhow::Context as _;
use clap::Parser as _;
use h2hop_front::args::Args;
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
    if args.check_config {
        return report_config(&config);
    }
    let runtime =
        h2hop::runtime::build(args.workers.map(usize::from)).context("cannot start the runtime")?;
    runtime.block_on(serve(args, config))
}

/// `--check-config`: what the configuration amounts to, on standard output.
fn report_config(config: &h2hop_front::Config) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match &config.routing {
        Some(routing) => {
            writeln!(
                out,
                "configuration OK: {} cluster(s), {} route(s)",
                routing.clusters.len(),
                routing.routes.routes().len()
            )?;
            for (name, endpoints) in &routing.clusters {
                let addrs: Vec<&str> = endpoints.iter().map(|e| e.addr.as_str()).collect();
                writeln!(out, "  cluster {name}: {}", addrs.join(", "))?;
            }
        }
        None => writeln!(
            out,
            "configuration OK: one sidecar, {}",
            config.upstream.addr
        )?,
    }
    Ok(())
}

async fn serve(args: Args, config: h2hop_front::Config) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let listen = listener
        .local_addr()
        .context("reading the listen address")?;
    let tls_listener = match args.tls_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?,
        ),
        None => None,
    };
    let admin = match args.admin_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (admin)"))?,
        ),
        None => None,
    };
    let tls_listen = match &tls_listener {
        Some(listener) => Some(
            listener
                .local_addr()
                .context("reading the TLS listen address")?,
        ),
        None => None,
    };
    let tls_listen = tls_listen.map(|addr| addr.to_string());
    // SIGHUP reloads the TLS files; watched from before "ready" on.
    let reloads =
        h2hop::tls::reload::on_hangup(config.reloader()).context("cannot watch SIGHUP")?;
    tokio::spawn(reloads);
    tracing::info!(
        %listen,
        tls_listen = tls_listen.as_deref().unwrap_or("-"),
        sidecar = %args.sidecar,
        h2c = args.h2c,
        "h2hop-front ready"
    );
    let shutdown = CancellationToken::new();
    tokio::spawn(h2hop::signals::on_signal(shutdown.clone()));
    let listeners = h2hop_front::Listeners {
        plain: listener,
        tls: tls_listener,
        admin,
    };
    h2hop_front::run(config, listeners, shutdown).await;
    Ok(())
}
