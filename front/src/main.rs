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
    let workers = h2hop::runtime::worker_count(args.workers);
    let plain = h2hop::accept::bind_each(args.listen, "clients", workers)?;
    let tls = match args.tls_listen {
        Some(addr) => h2hop::accept::bind_each(addr, "TLS clients", workers)?,
        None => Vec::new(),
    };
    let tcp = config
        .tcp
        .iter()
        .map(|service| h2hop::accept::bind_each(service.listen, "TCP service", workers))
        .collect::<Result<Vec<_>, _>>()?;
    let runtime = h2hop::runtime::main_thread().context("cannot start the runtime")?;
    runtime.block_on(serve(args, config, plain, tls, by_worker(tcp, workers)))
}

/// Each TCP service's listeners (one per worker) regrouped by worker: the
/// `w`-th holds every service's `w`-th listener, in service order.
fn by_worker(
    services: Vec<Vec<std::net::TcpListener>>,
    workers: usize,
) -> Vec<Vec<std::net::TcpListener>> {
    let mut grouped: Vec<Vec<_>> = (0..workers.max(1)).map(|_| Vec::new()).collect();
    for listeners in services {
        for (group, listener) in grouped.iter_mut().zip(listeners) {
            group.push(listener);
        }
    }
    grouped
}

/// The ready line's `tcp` field: `name=address` of each TCP service.
fn tcp_listeners_text(
    services: &[h2hop_front::TcpService],
    listeners: &[tokio::net::TcpListener],
) -> String {
    let named: Vec<String> = services
        .iter()
        .zip(listeners)
        .map(|(service, listener)| {
            let addr = h2hop::accept::local_addr_text(Some(listener));
            format!("{}={addr}", service.name)
        })
        .collect();
    if named.is_empty() {
        "-".to_owned()
    } else {
        named.join(",")
    }
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
    for service in &config.tcp {
        writeln!(
            out,
            "  tcp {}: {} -> cluster {} -> {} ({})",
            service.name,
            service.listen,
            service.cluster,
            service.target.as_str(),
            service.form
        )?;
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

/// Worker 0, on the main thread, with the process's signals, reloads and
/// admin listener; it starts the other workers, one per listener of
/// `plain` after the first (each with its sibling in `tls`, if any, and
/// its group of `tcp`).
async fn serve(
    args: Args,
    config: h2hop_front::Config,
    plain: Vec<std::net::TcpListener>,
    tls: Vec<std::net::TcpListener>,
    tcp: Vec<Vec<std::net::TcpListener>>,
) -> anyhow::Result<()> {
    use h2hop::accept::{bind_if_set, first_addr_text, local_addr_text};
    use tokio::net::TcpListener;
    let (listen, tls_listen) = (first_addr_text(&plain), first_addr_text(&tls));
    let mut plain = plain.into_iter();
    let mut tls = tls
        .into_iter()
        .map(Some)
        .chain(std::iter::repeat_with(|| None));
    let first = plain.next().context("no listener bound")?;
    let first = TcpListener::from_std(first).context("cannot listen")?;
    let first_tls = tls.next().flatten().map(TcpListener::from_std);
    let first_tls = first_tls.transpose().context("cannot listen")?;
    let mut tcp = tcp.into_iter();
    let first_tcp = tcp.next().unwrap_or_default().into_iter();
    let first_tcp = first_tcp.map(TcpListener::from_std);
    let first_tcp = first_tcp
        .collect::<Result<Vec<_>, _>>()
        .context("cannot listen")?;
    let more: Vec<h2hop_front::WorkerListeners> = plain
        .zip(tls)
        .zip(tcp)
        .map(|((plain, tls), tcp)| h2hop_front::WorkerListeners { plain, tls, tcp })
        .collect();
    let tcp_listen = tcp_listeners_text(&config.tcp, &first_tcp);
    let admin = bind_if_set(args.admin_listen, "admin").await?;
    // SIGHUP reloads the TLS files; watched from before "ready" on.
    let reloads = h2hop::tls::reload::on_hangup(config.reloader(), config.metrics.clone())
        .context("cannot watch SIGHUP")?;
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
        tcp = %tcp_listen,
        sidecar = %args.sidecar,
        h2c = args.h2c,
        admin = %local_addr_text(admin.as_ref()),
        workers = more.len() + 1,
        "h2hop-front ready"
    );
    let shutdown = CancellationToken::new();
    tokio::spawn(h2hop::signals::on_signal(shutdown.clone()));
    let listeners = h2hop_front::Listeners {
        plain: first,
        tls: first_tls,
        admin,
        tcp: first_tcp,
    };
    h2hop_front::run_workers(config, listeners, more, shutdown)
        .await
        .context("cannot start the workers")
}
