//! `h2hop-front` binary: flags → config → logging → bind → [`h2hop_front::run`];
//! SIGTERM/SIGINT shut it down, SIGHUP reloads its certificates and its
//! `--config` file.

use anyhow::Context as _;
use clap::Parser as _;
use h2hop_front::args::Args;
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
                if let Some(first) = endpoints.first() {
                    report_health_check(&mut out, first)?;
                }
            }
        }
        None => {
            writeln!(
                out,
                "configuration OK: one sidecar, {}",
                config.upstream.addr
            )?;
            report_health_check(&mut out, &config.upstream)?;
        }
    }
    let proxy = &config.proxy_protocol;
    if proxy.mode != h2hop_front::ProxyMode::Off {
        writeln!(out, "  PROXY protocol {} from {}", proxy.mode, proxy.from)?;
    }
    Ok(())
}

/// The active health check of `upstream`'s cluster, if it has one.
fn report_health_check(
    out: &mut impl std::io::Write,
    upstream: &h2hop_front::UpstreamConfig,
) -> std::io::Result<()> {
    let Some(check) = &upstream.health_check else {
        return Ok(());
    };
    writeln!(
        out,
        "    health check: GET {} every {:?} (timeout {:?}); out after {} failures, back after {} passes",
        check.path,
        check.interval,
        check.timeout,
        check.unhealthy_threshold,
        check.healthy_threshold
    )
}

async fn serve(args: Args, config: h2hop_front::Config) -> anyhow::Result<()> {
    use h2hop::accept::{bind, bind_if_set, local_addr_text};
    let plain = bind(args.listen, "clients").await?;
    let tls = bind_if_set(args.tls_listen, "TLS clients").await?;
    let admin = bind_if_set(args.admin_listen, "admin").await?;
    let listen = local_addr_text(Some(&plain));
    let tls_listen = local_addr_text(tls.as_ref());
    // SIGHUP reloads the TLS files; watched from before "ready" on.
    let reloads =
        h2hop::tls::reload::on_hangup(config.reloader()).context("cannot watch SIGHUP")?;
    tokio::spawn(reloads);
    // And the --config file's routes and clusters, beside the certificates.
    if config.config_file.is_some() {
        let routing = h2hop_front::live_routing::on_hangup(config.routing_reload.clone())
            .context("cannot watch SIGHUP")?;
        tokio::spawn(routing);
    }
    tracing::info!(
        %listen,
        %tls_listen,
        sidecar = %args.sidecar,
        h2c = args.h2c,
        "h2hop-front ready"
    );
    let shutdown = CancellationToken::new();
    tokio::spawn(h2hop::signals::on_signal(shutdown.clone()));
    let listeners = h2hop_front::Listeners { plain, tls, admin };
    h2hop_front::run(config, listeners, shutdown).await;
    Ok(())
}
