//! The `[[tcp]]` tables of the `--config` file → validated [`TcpService`]s:
//! a listen address, the cluster whose sidecars reach the target, the
//! target itself and how the tunnel is asked for on the hop. Called by
//! [`crate::config_file`] (parse) and [`crate::live_routing`] (what a
//! reload may change); served by [`crate::tcp_tunnel`].
//!
//! ```toml
//! [[tcp]]
//! name = "redis"                 # default "tcp-N" (N from 1); unique
//! listen = "127.0.0.1:6380"      # socket address; unique; required
//! cluster = "redis"              # must name a [[cluster]]
//! target = "127.0.0.1:6379"      # host:port the sidecar dials
//! form = "connect"               # or "connect-tcp"; default "connect"
//! idle_timeout = "10m"           # default: --tunnel-idle-timeout
//! ```

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use h2hop::host_port::HostPort;
use h2hop::tcp_connect::ConnectForm;
use serde::Deserialize;

use crate::config_error::{ConfigError, TcpEntryError};

/// One TCP service of the front: each connection accepted on `listen`
/// becomes a tunnel to `target` through a sidecar of `cluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpService {
    /// The access line's route: the name given, or `tcp-N`.
    pub name: Arc<str>,
    /// Where the front listens (a restart is needed to move it).
    pub listen: SocketAddr,
    /// The cluster, by name, whose sidecars open the tunnels. Without a
    /// `--config` file the one cluster is named by the sidecar address.
    pub cluster: String,
    /// The `host:port` the sidecar connects to.
    pub target: HostPort,
    /// How the tunnel is asked for on the hop.
    pub form: ConnectForm,
    /// Quiet either way for this long closes the tunnel; `None`: the
    /// front's tunnel idle timeout.
    pub idle_timeout: Option<Duration>,
}

/// One `[[tcp]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTcp {
    name: Option<String>,
    listen: String,
    cluster: String,
    target: String,
    form: Option<String>,
    idle_timeout: Option<String>,
}

/// Validates the `[[tcp]]` entries in file order; `clusters` are the
/// names of the file's clusters.
pub(crate) fn services(
    raw: Vec<RawTcp>,
    clusters: &HashSet<&str>,
) -> Result<Vec<TcpService>, ConfigError> {
    let mut names = HashSet::new();
    let mut listens = HashSet::new();
    let mut services = Vec::with_capacity(raw.len());
    for (i, entry) in raw.into_iter().enumerate() {
        let number = i + 1;
        let name = entry
            .name
            .clone()
            .unwrap_or_else(|| format!("tcp-{number}"));
        let invalid = |source| ConfigError::Tcp {
            tcp: number,
            name: name.clone(),
            source,
        };
        let service = service(entry, name.clone(), clusters).map_err(invalid)?;
        if !names.insert(name.clone()) {
            return Err(invalid(TcpEntryError::DuplicateName));
        }
        if !listens.insert(service.listen) {
            return Err(invalid(TcpEntryError::DuplicateListen(service.listen)));
        }
        services.push(service);
    }
    Ok(services)
}

/// One entry, named `name`, checked on its own.
fn service(
    raw: RawTcp,
    name: String,
    clusters: &HashSet<&str>,
) -> Result<TcpService, TcpEntryError> {
    if !crate::routes::is_route_name(&name) {
        return Err(TcpEntryError::Name);
    }
    let listen = raw
        .listen
        .parse()
        .map_err(|source| TcpEntryError::Listen(raw.listen.clone(), source))?;
    if !clusters.contains(raw.cluster.as_str()) {
        return Err(TcpEntryError::UnknownCluster(raw.cluster));
    }
    let target = raw.target.parse().map_err(TcpEntryError::Target)?;
    let form = match raw.form {
        Some(form) => form.parse().map_err(TcpEntryError::Form)?,
        None => ConnectForm::default(),
    };
    let idle_timeout = match raw.idle_timeout {
        Some(text) => match humantime::parse_duration(&text) {
            Ok(idle) if !idle.is_zero() => Some(idle),
            _ => return Err(TcpEntryError::IdleTimeout(text)),
        },
        None => None,
    };
    Ok(TcpService {
        name: name.into(),
        listen,
        cluster: raw.cluster,
        target,
        form,
        idle_timeout,
    })
}

/// Whether a reload from `old` to `new` keeps every listener: the same
/// listen addresses in the same order (the front's sockets are bound once,
/// at start, and each serves the entry of its position). Anything else of
/// an entry may change.
pub(crate) fn same_listeners(old: &[TcpService], new: &[TcpService]) -> bool {
    old.len() == new.len() && old.iter().zip(new).all(|(a, b)| a.listen == b.listen)
}

#[cfg(test)]
#[path = "tcp_config_tests.rs"]
mod tests;
